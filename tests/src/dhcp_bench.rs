//! The DHCP rows of `vr-bench` (issue 14): one host added to a guest network of 50 and of
//! 5,000 hosts through the agent (two small files dnsmasq reads by inotify), side by side in
//! the same run with the obvious alternatives on a dnsmasq of the bench's own with the same
//! hosts: rewriting the whole host files and sending SIGHUP (CloudStack's way), and a restart.
//! Each is timed until the new name answers over DNS, from a client namespace.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::{veth, AgentProc, Netns};

/// One size.
#[derive(Debug, Clone)]
pub struct Row {
    pub hosts: u32,
    /// The dhcp concern's own time (plan and execute), from the push result.
    pub concern_ms: f64,
    /// The agent's whole push (parse, merge, every concern, state file), from the result.
    pub agent_ms: f64,
    /// Of which in concerns (all of them); the rest is parsing, merging, validation and the
    /// state file (written whole, with fsync).
    pub concerns_ms: f64,
    /// Until the new name answered, from the start of the push (CLI client included).
    pub agent_served_ms: f64,
    /// The agent's dnsmasq kept its pid.
    pub kept: bool,
    /// Rendering and writing both whole files plus the SIGHUP.
    pub rewrite_ms: f64,
    pub rewrite_served_ms: f64,
    /// Stop, start, until the new name answered.
    pub restart_served_ms: f64,
}

fn enter(ns: &str) {
    let f = std::fs::File::open(format!("/run/netns/{ns}")).expect("netns file");
    // SAFETY: setns on a valid namespace fd, for the calling thread only; CLONE_NEWNET.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns {ns}");
}

/// An A query for `name`: Ok when the answer is NOERROR with at least one record, else what
/// came back.
fn answers(sock: &UdpSocket, server: Ipv4Addr, name: &str, id: u16) -> Result<(), String> {
    let mut q = Vec::with_capacity(64);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    sock.send_to(&q, (server, 53))
        .map_err(|e| format!("send: {e}"))?;
    let mut buf = [0u8; 512];
    // A late answer to an earlier query (after its timeout) is skipped, not taken for this one.
    loop {
        let n = sock.recv(&mut buf).map_err(|e| format!("recv: {e}"))?;
        if n < 12 || buf[..2] != id.to_be_bytes() {
            continue;
        }
        return if buf[3] & 0x0f == 0 && (buf[6], buf[7]) != (0, 0) {
            Ok(())
        } else {
            Err(format!("rcode {}, {} answers", buf[3] & 0x0f, buf[7]))
        };
    }
}

/// A poller in `client`: returns a sender of the start instant and the receiver of the time
/// (ms from that instant) at which `name` first answered (NaN after 30 s).
fn poller(
    client: &str,
    server: Ipv4Addr,
    name: &str,
) -> (mpsc::Sender<Instant>, mpsc::Receiver<f64>) {
    let (go_tx, go_rx) = mpsc::channel::<Instant>();
    let (done_tx, done_rx) = mpsc::channel();
    let (ready_tx, ready_rx) = mpsc::channel();
    let (client, name) = (client.to_string(), name.to_string());
    std::thread::spawn(move || {
        enter(&client);
        let sock = UdpSocket::bind("0.0.0.0:0").expect("udp");
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        ready_tx.send(()).unwrap();
        let t0 = go_rx.recv().unwrap();
        let mut id = 1u16;
        let mut last = String::new();
        while t0.elapsed() < Duration::from_secs(30) {
            match answers(&sock, server, &name, id) {
                Ok(()) => {
                    let _ = done_tx.send(t0.elapsed().as_secs_f64() * 1000.0);
                    return;
                }
                Err(e) => last = e,
            }
            id = id.wrapping_add(1);
            std::thread::sleep(Duration::from_micros(500));
        }
        println!("vr-bench: {name} did not answer within 30 s (last: {last})");
        let _ = done_tx.send(f64::NAN);
    });
    ready_rx.recv().unwrap();
    (go_tx, done_rx)
}

/// Waits until dnsmasq answers a name it had from the start: it reads its host files after it
/// forked, and a measurement taken while it still reads thousands of them would time that.
fn settled(client: &str, n: u32) {
    let (go, done) = poller(
        client,
        Ipv4Addr::new(10, 1, 0, 1),
        &format!("vm{}.bench.test", n - 1),
    );
    go.send(Instant::now()).unwrap();
    assert!(done.recv().unwrap().is_finite(), "dnsmasq never answered");
}

fn host(i: u32) -> (String, String, String) {
    (
        format!("02:00:00:bb:{:02x}:{:02x}", i / 256, i % 256),
        format!("10.1.{}.{}", 10 + i / 250, 1 + i % 250),
        format!("vm{i}"),
    )
}

/// A guest network with `n` static DHCP hosts.
fn state(n: u32) -> String {
    let hosts: Vec<String> = (0..n)
        .map(|i| {
            let (mac, ip, name) = host(i);
            format!(r#"{{"mac":"{mac}","ipv4":"{ip}","hostname":"{name}"}}"#)
        })
        .collect();
    format!(
        r#"{{"schema":1,
        "interfaces":[{{"device":"eth0","role":"guest","addresses":["10.1.0.1/16"]}}],
        "dhcp":{{"networks":[{{"device":"eth0","address":"10.1.0.1/16","domain":"bench.test"}}],
                 "hosts":[{}]}}}}"#,
        hosts.join(",")
    )
}

/// A router namespace with a client namespace on its eth0 (10.1.0.2).
fn pair(tag: &str) -> (Netns, Netns) {
    let r = Netns::new(tag);
    let c = Netns::new(&format!("{tag}c"));
    veth(&r, "eth0", &c, "eth0");
    r.ip(&["link", "set", "eth0", "up"]);
    c.ip(&["addr", "add", "10.1.0.2/16", "dev", "eth0"]);
    (r, c)
}

fn concern_ms(res: &serde_json::Value, name: &str) -> f64 {
    res[0]["outcomes"]
        .as_array()
        .and_then(|o| o.iter().find(|o| o["concern"] == name))
        .and_then(|o| o["millis"].as_f64())
        .unwrap_or(f64::NAN)
}

/// The agent: `n` hosts, then one `dhcpentry` as CloudStack adds a VM.
fn agent_row(n: u32) -> (f64, f64, f64, f64, bool) {
    let (r, c) = pair("bdhcp");
    r.ip(&["addr", "add", "10.1.0.1/16", "dev", "eth0"]);
    let mut agent = AgentProc::new(Some(&r.name));
    agent.start();
    let (code, res) = agent.apply_text("full.json", &state(n));
    assert_eq!(code, 0, "{res}");
    let pid = agent.dnsmasq_pid();
    settled(&c.name, n);
    let (go, done) = poller(
        &c.name,
        Ipv4Addr::new(10, 1, 0, 1),
        &format!("new{n}.bench.test"),
    );
    let entry = format!(
        r#"{{"type":"dhcpentry","host_name":"new{n}","mac_address":"02:00:00:cc:00:01",
            "ipv4_address":"10.1.9.1","default_entry":true}}"#
    );
    let t = Instant::now();
    go.send(t).unwrap();
    let (code, res) = agent.apply_text("plus1.json", &entry);
    assert_eq!(code, 0, "{res}");
    let served = done.recv().unwrap();
    let kept = pid.is_some() && agent.dnsmasq_pid() == pid;
    let slow: Vec<String> = res[0]["outcomes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|o| o["millis"].as_f64().is_some_and(|m| m >= 5.0))
        .map(|o| format!("{} {} ms", o["concern"], o["millis"]))
        .collect();
    if !slow.is_empty() {
        println!(
            "vr-bench: +1 host at {n}: concerns over 5 ms: {}",
            slow.join(", ")
        );
    }
    let all: f64 = res[0]["outcomes"]
        .as_array()
        .map(|o| o.iter().filter_map(|o| o["millis"].as_f64()).sum())
        .unwrap_or(f64::NAN);
    let row = (
        concern_ms(&res, "dhcp"),
        res[0]["millis"].as_f64().unwrap_or(f64::NAN),
        all,
        served,
        kept,
    );
    agent.stop();
    agent.kill_dnsmasq();
    row
}

/// The whole-file way: `dhcp-hostsfile` + `addn-hosts` rewritten, then SIGHUP; then a restart.
fn alternative_row(n: u32) -> (f64, f64, f64) {
    let (r, c) = pair("balt");
    r.ip(&["addr", "add", "10.1.0.1/16", "dev", "eth0"]);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    let conf = d.join("dnsmasq.conf");
    std::fs::write(
        &conf,
        format!(
            "pid-file={d}/pid\ndhcp-leasefile={d}/leases\ndhcp-hostsfile={d}/dhcphosts\n\
             addn-hosts={d}/hosts\nno-resolv\nno-hosts\nbind-dynamic\nexcept-interface=lo\n\
             interface=eth0\ndomain=bench.test\nlocal=/bench.test/\n\
             dhcp-range=10.1.0.0,static,255.255.0.0,infinite\n",
            d = d.display()
        ),
    )
    .unwrap();
    // The files as CloudStack's scripts write them: every host, every time.
    let write_all = |extra: &[(String, String, String)]| {
        let (mut dh, mut hs) = (String::new(), String::new());
        for (mac, ip, name) in (0..n).map(host).chain(extra.iter().cloned()) {
            let _ = writeln!(dh, "{mac},{ip},{name},infinite");
            let _ = writeln!(hs, "{ip} {name} {name}.bench.test");
        }
        for (file, text) in [("dhcphosts", dh), ("hosts", hs)] {
            let tmp = d.join(format!("{file}.tmp"));
            std::fs::write(&tmp, text).unwrap();
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)).unwrap();
            std::fs::rename(&tmp, d.join(file)).unwrap();
        }
    };
    write_all(&[]);
    let start = || {
        let ok = r
            .command("dnsmasq")
            .arg(format!("--conf-file={}", conf.display()))
            .status()
            .expect("dnsmasq");
        assert!(ok.success(), "bench dnsmasq did not start");
    };
    let pid = || -> i32 {
        std::fs::read_to_string(d.join("pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    start();
    settled(&c.name, n);
    let server = Ipv4Addr::new(10, 1, 0, 1);
    let new = |k: &str| {
        (
            format!("02:00:00:cc:00:{k}"),
            format!("10.1.9.{}", if k == "01" { 1 } else { 2 }),
            format!("new{n}{k}"),
        )
    };
    // Rewrite + SIGHUP.
    let a = new("01");
    let (go, done) = poller(&c.name, server, &format!("{}.bench.test", a.2));
    let t = Instant::now();
    go.send(t).unwrap();
    write_all(std::slice::from_ref(&a));
    // SAFETY: kill(2) on the dnsmasq this function started.
    unsafe { libc::kill(pid(), libc::SIGHUP) };
    let rewrite = t.elapsed().as_secs_f64() * 1000.0;
    let rewrite_served = done.recv().unwrap();
    // Rewrite + restart.
    let b = new("02");
    let (go, done) = poller(&c.name, server, &format!("{}.bench.test", b.2));
    let t = Instant::now();
    go.send(t).unwrap();
    write_all(&[a, b]);
    let old = pid();
    // SAFETY: as above.
    unsafe { libc::kill(old, libc::SIGTERM) };
    while std::path::Path::new(&format!("/proc/{old}")).exists() {
        std::thread::sleep(Duration::from_millis(1));
    }
    start();
    let restart_served = done.recv().unwrap();
    // SAFETY: as above.
    unsafe { libc::kill(pid(), libc::SIGTERM) };
    (rewrite, rewrite_served, restart_served)
}

/// Both sizes, agent and alternatives.
pub fn run() -> Vec<Row> {
    if !std::path::Path::new("/usr/sbin/dnsmasq").exists() {
        println!("vr-bench: dnsmasq not installed, DHCP rows skipped");
        return Vec::new();
    }
    [50u32, 5000]
        .into_iter()
        .map(|n| {
            let (concern_ms, agent_ms, concerns_ms, agent_served_ms, kept) = agent_row(n);
            let (rewrite_ms, rewrite_served_ms, restart_served_ms) = alternative_row(n);
            Row {
                hosts: n,
                concern_ms,
                agent_ms,
                concerns_ms,
                agent_served_ms,
                kept,
                rewrite_ms,
                rewrite_served_ms,
                restart_served_ms,
            }
        })
        .collect()
}

/// The table, and the ratio against issue 14's target.
pub fn print(rows: &[Row]) {
    let [small, large] = rows else { return };
    println!();
    println!(
        "| DHCP hosts | agent +1 host: dhcp concern (ms) | agent: whole push (ms) | of which outside the concerns (ms) | agent: until the name answers (ms) | dnsmasq restarted by the agent | rewrite whole files + SIGHUP: write (ms) | ... until the name answers (ms) | restart dnsmasq: until the name answers (ms) |"
    );
    println!("|---:|---:|---:|---:|---:|:---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {:.2} | {:.0} | {:.0} | {:.1} | {} | {:.2} | {:.1} | {:.1} |",
            r.hosts,
            r.concern_ms,
            r.agent_ms,
            r.agent_ms - r.concerns_ms,
            r.agent_served_ms,
            if r.kept { "no" } else { "YES" },
            r.rewrite_ms,
            r.rewrite_served_ms,
            r.restart_served_ms
        );
    }
    println!(
        "\n+1 DHCP host at {} = {:.2}x the dhcp concern's time at {} (target <= 2x); \
         whole-file rewrite: {:.2}x",
        large.hosts,
        large.concern_ms / small.concern_ms,
        small.hosts,
        large.rewrite_ms / small.rewrite_ms
    );
}
