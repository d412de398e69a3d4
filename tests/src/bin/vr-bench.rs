//! Benchmark harness (issue 3): full apply of N port forwards by the agent, side by side in
//! the same run with `nft -f` of the same ruleset and with one `iptables -t nat -A` per rule;
//! one mapping added at each N; TCP connect rate through the router at 10 and 10,000
//! mappings; one DHCP host added to a guest network of 50 and of 5,000 hosts (two files the
//! agent's dnsmasq reads by inotify, never a restart), beside a whole-file rewrite plus SIGHUP
//! and a restart (`vr_tests::dhcp_bench`). Everything runs in namespaces it creates. Prints
//! one table per part.
//!
//! Usage: vr-bench [--quick | --dhcp-only | --e2e-only]   (--quick: N = 100 and 1,000 only,
//! shorter connect runs; --dhcp-only: the DHCP rows alone; --e2e-only: the end-to-end section
//! of issue 15 alone, see `vr_tests::bench_e2e`)

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use vr_tests::{require_program, require_root, veth, AgentProc, Netns};

/// A router with N port forwards (and, at the 10k point, 1,000 static NATs and 1,000 firewall
/// source CIDRs), all on one public IP so the maps grow, not the rules.
fn state(n: u32, extras: bool) -> String {
    let mut pf = String::new();
    for i in 0..n {
        let private = 10 + (i / 250);
        let host = 1 + (i % 250);
        let _ = write!(
            pf,
            r#"{}{{"public_ip":"192.0.2.11","protocol":"tcp","public_ports":{},"private_ip":"10.1.{private}.{host}","private_ports":80}}"#,
            if i > 0 { "," } else { "" },
            10_000 + i
        );
    }
    let (mut snat, mut cidrs) = (String::new(), String::new());
    if extras {
        for i in 0..1000u32 {
            let _ = write!(
                snat,
                r#"{}{{"public_ip":"203.0.{}.{}","private_ip":"10.2.{}.{}"}}"#,
                if i > 0 { "," } else { "" },
                i / 250,
                1 + i % 250,
                i / 250,
                1 + i % 250
            );
            let _ = write!(
                cidrs,
                r#"{}"198.{}.{}.0/24""#,
                if i > 0 { "," } else { "" },
                18 + i / 256,
                i % 256
            );
        }
    }
    format!(
        r#"{{"schema":1,
        "interfaces":[{{"device":"eth0","role":"guest","addresses":["10.1.0.1/16"]}},
                      {{"device":"eth2","role":"public","addresses":["192.0.2.10/24","192.0.2.11/24"]}}],
        "nat":{{"source_nat":[{{"device":"eth2","public_ip":"192.0.2.10","source_cidrs":["10.1.0.0/16"]}}],
               "static_nat":[{snat}],"port_forwards":[{pf}]}},
        "firewall":{{"ingress":[{{"id":1,"public_ip":"192.0.2.11","protocol":"tcp","ports":"10000-60000","source_cidrs":[{cidrs}]}}]}}}}"#
    )
}

struct Router {
    ns: Netns,
    agent: AgentProc,
}

fn router(tag: &str) -> Router {
    let ns = Netns::new(tag);
    for (a, b) in [("eth0", "eth0p"), ("eth2", "eth2p")] {
        ns.ip(&["link", "add", a, "type", "veth", "peer", "name", b]);
        ns.ip(&["link", "set", a, "up"]);
        ns.ip(&["link", "set", b, "up"]);
    }
    let agent = AgentProc::new(Some(&ns.name));
    Router { ns, agent }
}

/// Applies `text` through the running agent; returns the nftables concern's own time (ms),
/// which excludes process start-up of the CLI client.
fn agent_apply(r: &Router, name: &str, text: &str) -> f64 {
    let (code, res) = r.agent.apply_text(name, text);
    assert_eq!(code, 0, "{res}");
    res[0]["outcomes"]
        .as_array()
        .and_then(|o| o.iter().find(|o| o["concern"] == "nftables"))
        .and_then(|o| o["millis"].as_f64())
        .unwrap_or(f64::NAN)
}

fn time<F: FnOnce()>(f: F) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64() * 1000.0
}

fn nft_f(ns: &Netns, file: &std::path::Path) -> f64 {
    let f = file.to_str().unwrap().to_string();
    time(|| {
        ns.exec_ok("nft", &["-f", &f]);
    })
}

fn iptables_per_rule(n: u32) -> f64 {
    let ns = Netns::new("bipt");
    time(|| {
        for i in 0..n {
            let dport = (10_000 + i).to_string();
            let to = format!("10.1.{}.{}:80", 10 + i / 250, 1 + i % 250);
            ns.exec_ok(
                "iptables",
                &[
                    "-t",
                    "nat",
                    "-A",
                    "PREROUTING",
                    "-d",
                    "192.0.2.11",
                    "-p",
                    "tcp",
                    "--dport",
                    &dport,
                    "-j",
                    "DNAT",
                    "--to-destination",
                    &to,
                ],
            );
        }
    })
}

/// Enters a namespace on the current thread (setns), for the connect-rate loop.
fn enter(ns: &str) {
    let f = std::fs::File::open(format!("/run/netns/{ns}")).expect("netns file");
    // SAFETY: setns on a valid namespace fd for this thread only; CLONE_NEWNET.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns {ns}");
}

/// Connections per second from `client` to 192.0.2.11:port (forwarded to 10.1.10.1:80 in
/// `server`), during `dur`.
fn connect_rate(client: &str, server: &str, port: u16, dur: Duration) -> f64 {
    let server = server.to_string();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        enter(&server);
        let l = TcpListener::bind("10.1.10.1:80").expect("bind");
        tx.send(()).unwrap();
        for s in l.incoming() {
            drop(s);
        }
    });
    rx.recv().unwrap();
    let client = client.to_string();
    std::thread::spawn(move || {
        enter(&client);
        let addr: SocketAddr = format!("192.0.2.11:{port}").parse().unwrap();
        let t = Instant::now();
        let mut n = 0u64;
        while t.elapsed() < dur {
            if TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok() {
                n += 1;
            }
        }
        n as f64 / t.elapsed().as_secs_f64()
    })
    .join()
    .unwrap()
}

/// 100 site-to-site connections (passive: no peers needed) loaded into one charon, then one of
/// them changed; and the same change with only 2 loaded. Times are the vpn concern's own.
fn vpn_bench() -> Option<(f64, f64, f64)> {
    if !std::path::Path::new(vr_tests::peers::CHARON).exists() {
        return None;
    }
    let tunnels = |n: u32, changed_life: u32| -> String {
        let list: Vec<String> = (0..n)
            .map(|i| {
                let life = if i == 0 { changed_life } else { 3600 };
                format!(
                    r#"{{"local_public_ip":"192.0.2.10","local_cidrs":["10.1.0.0/16"],"peer_gateway":"198.18.{}.{}","peer_cidrs":["10.{}.{}.0/24"],
                    "psk":"bench-psk-{i}","ike_policy":"aes128-sha256;modp2048","esp_policy":"aes128-sha256","esp_lifetime":{life},"passive":true}}"#,
                    i / 250,
                    1 + i % 250,
                    100 + i / 250,
                    i % 250
                )
            })
            .collect();
        format!(
            r#"{{"schema":1,"vpn":{{"site_to_site":[{}]}}}}"#,
            list.join(",")
        )
    };
    let concern_ms = |res: &serde_json::Value| -> f64 {
        res[0]["outcomes"]
            .as_array()
            .and_then(|o| o.iter().find(|o| o["concern"] == "vpn"))
            .and_then(|o| o["millis"].as_f64())
            .unwrap_or(f64::NAN)
    };
    let run = |n: u32| -> (f64, f64) {
        let dir = tempfile::tempdir().unwrap();
        let mut ns = Netns::new("bvpn");
        let charon = vr_tests::peers::Charon::start(&mut ns, &dir.path().join("charon"));
        let mut agent = AgentProc::new(Some(&ns.name));
        agent.extra_args = vec![
            "--vici-socket".into(),
            charon.vici_socket.display().to_string(),
        ];
        agent.start();
        let (code, res) = agent.apply_text("load.json", &tunnels(n, 3600));
        assert_eq!(code, 0, "{res}");
        let load = concern_ms(&res);
        let (code, res) = agent.apply_text("change.json", &tunnels(n, 1800));
        assert_eq!(code, 0, "{res}");
        let change = concern_ms(&res);
        agent.stop();
        (load, change)
    };
    let (load100, change100) = run(100);
    let (_, change2) = run(2);
    Some((load100, change100, change2))
}

fn main() -> ExitCode {
    let quick = std::env::args().any(|a| a == "--quick");
    if !require_root("vr-bench") || !require_program("vr-bench", "/usr/sbin/nft") {
        return ExitCode::from(1);
    }
    if std::env::args().any(|a| a == "--e2e-only") {
        print!("{}", vr_tests::bench_e2e::run(quick));
        return ExitCode::SUCCESS;
    }
    if std::env::args().any(|a| a == "--metrics-only") {
        print!(
            "{}",
            vr_tests::metrics_bench::print(&vr_tests::metrics_bench::run(quick))
        );
        return ExitCode::SUCCESS;
    }
    if std::env::args().any(|a| a == "--dhcp-only") {
        vr_tests::dhcp_bench::print(&vr_tests::dhcp_bench::run());
        return ExitCode::SUCCESS;
    }
    let have_iptables = std::path::Path::new("/usr/sbin/iptables").exists();
    let sizes: &[u32] = if quick {
        &[100, 1000]
    } else {
        &[100, 1000, 10_000]
    };
    let mut rows = Vec::new();
    for &n in sizes {
        let extras = n == 10_000;
        let text = state(n, extras);
        let mut r = router("bagt");
        r.agent.start();
        let full = agent_apply(&r, "full.json", &text);
        let listing = r.ns.exec_ok("nft", &["list", "ruleset"]);
        let one = agent_apply(&r, "plus1.json", &state(n + 1, extras));
        // Same ruleset with nft -f, into a fresh namespace.
        let file = r.agent.dir.path().join("ruleset.nft");
        std::fs::write(&file, &listing).unwrap();
        let fresh = Netns::new("bnft");
        let nft = nft_f(&fresh, &file);
        let ipt = if have_iptables && n <= 1000 {
            Some(iptables_per_rule(n))
        } else {
            None
        };
        rows.push((n, extras, full, nft, ipt, one));
        r.agent.stop();
    }
    // Connect rate at 10 and at the largest N.
    let mut rates = Vec::new();
    for &n in &[10u32, *sizes.last().unwrap()] {
        let mut r = router("brate");
        let client = Netns::new("bcli");
        let server = Netns::new("bsrv");
        r.ns.ip(&["link", "del", "eth0"]);
        r.ns.ip(&["link", "del", "eth2"]);
        veth(&r.ns, "eth0", &server, "eth0");
        veth(&r.ns, "eth2", &client, "eth0");
        server.ip(&["addr", "add", "10.1.10.1/16", "dev", "eth0"]);
        server.ip(&["route", "add", "default", "via", "10.1.0.1"]);
        client.ip(&["addr", "add", "192.0.2.100/24", "dev", "eth0"]);
        // Closed connections sit in TIME_WAIT: give the client the whole port range.
        client.sysctl("net.ipv4.ip_local_port_range=1024 65000");
        r.ns.ip(&["addr", "add", "10.1.0.1/16", "dev", "eth0"]);
        r.ns.ip(&["addr", "add", "192.0.2.10/24", "dev", "eth2"]);
        r.ns.ip(&["addr", "add", "192.0.2.11/24", "dev", "eth2"]);
        r.agent.start();
        // Forward i = 0 is 192.0.2.11:10000 -> 10.1.10.1:80 in every state.
        agent_apply(&r, "s.json", &state(n, false));
        let dur = Duration::from_secs(if quick { 2 } else { 5 });
        let rate = connect_rate(&client.name, &server.name, 10_000, dur);
        rates.push((n, rate));
        r.agent.stop();
    }
    let vpn = vpn_bench();
    let dhcp = vr_tests::dhcp_bench::run();
    let e2e = vr_tests::bench_e2e::run(quick);
    let metrics = vr_tests::metrics_bench::run(quick);

    println!();
    println!(
        "vr-agent benchmark ({} run)",
        if quick { "quick" } else { "full" }
    );
    println!("| forwards | +1k static NAT, +1k CIDRs | agent full apply (ms) | nft -f same ruleset (ms) | agent / nft -f | iptables -A per rule (ms) | agent +1 mapping (ms) |");
    println!("|---:|:---:|---:|---:|---:|---:|---:|");
    for (n, extras, full, nft, ipt, one) in &rows {
        println!(
            "| {n} | {} | {full:.1} | {nft:.1} | {:.2} | {} | {one:.2} |",
            if *extras { "yes" } else { "no" },
            full / nft,
            ipt.map(|v| format!("{v:.0}")).unwrap_or_else(|| "-".into()),
        );
    }
    println!();
    println!("| mappings | TCP connects/s through a port forward |");
    println!("|---:|---:|");
    for (n, rate) in &rates {
        println!("| {n} | {rate:.0} |");
    }
    if let [(_, low), (_, high)] = rates[..] {
        println!(
            "\nconnect rate at {} mappings = {:.0}% of the rate at 10",
            rates[1].0,
            high / low * 100.0
        );
    }
    if let Some((load100, change100, change2)) = vpn {
        println!();
        println!("| VPN, one charon over VICI | ms |");
        println!("|---|---:|");
        println!("| load 100 tunnels | {load100:.0} |");
        println!("| change 1 of 100 tunnels | {change100:.1} |");
        println!("| change 1 of 2 tunnels | {change2:.1} |");
    }
    vr_tests::dhcp_bench::print(&dhcp);
    print!("{e2e}");
    print!("{}", vr_tests::metrics_bench::print(&metrics));
    ExitCode::SUCCESS
}
