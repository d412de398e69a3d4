//! Issue 14 acceptance (DHCP and DNS): the agent's own dnsmasq serves two guest networks to real
//! clients (busybox udhcpc and ISC dhclient) and a VM's non-default NIC (an address without
//! router, DNS or domain), answers their names and forwards the rest to a
//! resolver namespace, never answers on the public side; a guest in an IP-alias subnet gets its
//! lease from the extra range with that subnet's own gateway, resolver and MTU; adding a host
//! to a network of 5,000 is two files dnsmasq reads by inotify, not a restart (an existing
//! lease holder renews and keeps its address), removing one drops its lease and name; an agent restart adopts dnsmasq and a replay keeps every lease; a killed
//! dnsmasq is respawned by self-heal with its leases; after a reboot (empty run directory) the
//! replay starts it again with every lease.
//!
//! ```text
//! g1 eth0 02:00:00:11:00:11 -- eth0 10.11.0.1/16 (domain one.test, MTU 1400) \
//! g2 eth0 02:00:00:12:00:12 -- eth1 10.12.0.1/24 (domain two.test)            vr -- eth2 203.0.113.1/24 -- up 203.0.113.2
//! g3 eth0 02:00:00:13:00:13 -- eth3 10.13.0.1/24 (a non-default NIC)        /
//! g4 eth0 02:00:00:17:00:17 -- eth4 10.16.0.1/24 + alias 10.17.0.1/24 (gateway 10.17.0.254, MTU 1450)
//!                                                          (resolver: dnsmasq answering upstream.example)
//! ```

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use vr_tests::{require_program, require_root, veth, wait_for, AgentProc, Netns};

const FILLER: usize = 5000;

fn push(with_guest2: bool) -> String {
    // guest1's second NIC (non-default) is on the third network.
    let mut hosts =
        vec![r#"{"mac":"02:00:00:11:00:11","ipv4":"10.11.0.11","hostname":"guest1"}"#.to_string()];
    // An address, but no router, DNS server or domain.
    hosts.push(
        r#"{"mac":"02:00:00:13:00:13","ipv4":"10.13.0.13","hostname":"guest1","default_nic":false}"#
            .to_string(),
    );
    // The guest of the alias subnet.
    hosts
        .push(r#"{"mac":"02:00:00:17:00:17","ipv4":"10.17.0.17","hostname":"guest4"}"#.to_string());
    if with_guest2 {
        hosts.push(
            r#"{"mac":"02:00:00:12:00:12","ipv4":"10.12.0.12","hostname":"guest2"}"#.to_string(),
        );
    }
    for i in 0..FILLER {
        hosts.push(format!(
            r#"{{"mac":"02:00:00:aa:{:02x}:{:02x}","ipv4":"10.11.{}.{}","hostname":"vm{i}"}}"#,
            i / 256,
            i % 256,
            100 + i / 250,
            1 + i % 250
        ));
    }
    format!(
        r#"{{"schema":1,
 "interfaces":[
   {{"device":"eth0","role":"guest","addresses":["10.11.0.1/16"]}},
   {{"device":"eth1","role":"guest","addresses":["10.12.0.1/24"]}},
   {{"device":"eth3","role":"guest","addresses":["10.13.0.1/24"]}},
   {{"device":"eth4","role":"guest","addresses":["10.16.0.1/24","10.17.0.1/24"]}},
   {{"device":"eth2","role":"public","addresses":["203.0.113.1/24"],"gateway":"203.0.113.2"}}],
 "dhcp":{{"networks":[
   {{"device":"eth0","address":"10.11.0.1/16","domain":"one.test","mtu":1400}},
   {{"device":"eth1","address":"10.12.0.1/24","domain":"two.test"}},
   {{"device":"eth3","address":"10.13.0.1/24","domain":"three.test"}},
   {{"device":"eth4","address":"10.16.0.1/24","domain":"four.test","mtu":1450,
     "extra_ranges":[{{"address":"10.17.0.1/24","gateway":"10.17.0.254"}}]}}],
  "upstream_dns":["203.0.113.2"],
  "hosts":[{}]}}}}"#,
        hosts.join(",\n")
    )
}

fn dhcpentry(mac: &str, ip: &str, name: &str, remove: bool) -> String {
    format!(
        r#"{{"type":"dhcpentry","host_name":"{name}","mac_address":"{mac}","ipv4_address":"{ip}",
            "default_gateway":"10.11.0.1","default_entry":true,"remove":{remove}}}"#
    )
}

const UDHCPC_SCRIPT: &str = r#"#!/bin/sh
PATH=/usr/sbin:/usr/bin:/sbin:/bin
case "$1" in
  deconfig) ip link set "$interface" up; ip -4 addr flush dev "$interface" ;;
  bound|renew)
    ip -4 addr replace "$ip/${mask:-24}" dev "$interface"
    [ -n "${mtu:-}" ] && ip link set "$interface" mtu "$mtu"
    [ -n "${router:-}" ] && ip -4 route replace default via "${router%% *}" dev "$interface"
    { [ -n "${domain:-}" ] && echo "search $domain"; for s in ${dns:-}; do echo "nameserver $s"; done; } > "$GDIR/resolv.conf"
    for v in ip mask router dns domain mtu hostname; do eval "echo $v=\"\${$v:-}\""; done > "$GDIR/dhcp-options"
    ;;
esac
echo "$1 ${ip:-}" >> "$GDIR/events"
"#;

const DHCLIENT_SCRIPT: &str = r#"#!/bin/sh
PATH=/usr/sbin:/usr/bin:/sbin:/bin
GDIR=$(dirname "$0")
case "$reason" in
  PREINIT) ip link set "$interface" up ;;
  BOUND|RENEW|REBIND|REBOOT)
    ip -4 addr replace "$new_ip_address/$new_subnet_mask" dev "$interface"
    [ -n "${new_interface_mtu:-}" ] && ip link set "$interface" mtu "$new_interface_mtu"
    [ -n "${new_routers:-}" ] && ip -4 route replace default via "${new_routers%% *}" dev "$interface"
    { [ -n "${new_domain_name:-}" ] && echo "search $new_domain_name"; for s in ${new_domain_name_servers:-}; do echo "nameserver $s"; done; } > "$GDIR/resolv.conf"
    for v in new_ip_address new_routers new_domain_name_servers new_domain_name new_interface_mtu new_host_name; do
      eval "echo $v=\"\${$v:-}\""; done > "$GDIR/dhcp-options"
    ;;
  EXPIRE|FAIL|RELEASE|STOP) ip -4 addr flush dev "$interface" ;;
esac
echo "$reason ${new_ip_address:-}" >> "$GDIR/events"
"#;

fn write_exec(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn has_addr(ns: &Netns, ip: &str) -> bool {
    ns.ip(&["-4", "-o", "addr", "show", "dev", "eth0"])
        .contains(&format!(" {ip}/"))
}

/// `dig +short` of an A record from inside `ns` (empty: no answer).
fn dig(ns: &Netns, server: &str, name: &str) -> String {
    let out = ns.exec(
        "dig",
        &[
            "+short",
            "+time=1",
            "+tries=1",
            &format!("@{server}"),
            name,
            "A",
        ],
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.parse::<std::net::Ipv4Addr>().is_ok())
        .unwrap_or("")
        .to_string()
}

fn lease_of(agent: &AgentProc, mac: &str) -> Option<String> {
    std::fs::read_to_string(agent.state_dir.join("dnsmasq.leases"))
        .ok()?
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(mac))
        .map(String::from)
}

fn options(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("dhcp-options")).unwrap_or_default()
}

fn apply_ok(agent: &AgentProc, name: &str, text: &str) -> f64 {
    let t = Instant::now();
    let (code, res) = agent.apply_text(name, text);
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(code, 0, "{name}: {res:#}\n{}", agent.log_text());
    secs
}

#[test]
fn dnsmasq_serves_guests_with_real_clients() {
    if !require_root("guest_dhcp") {
        return;
    }
    for p in [
        "/usr/sbin/dnsmasq",
        "/usr/bin/dhcp_release",
        "/bin/busybox",
        "/sbin/dhclient",
        "/usr/bin/dig",
    ] {
        if !require_program("guest_dhcp", p) {
            return;
        }
    }
    let vr = Netns::new("gdvr");
    let mut g1 = Netns::new("gdg1");
    let mut g2 = Netns::new("gdg2");
    let mut up = Netns::new("gdup");
    veth(&g1, "eth0", &vr, "eth0");
    veth(&g2, "eth0", &vr, "eth1");
    veth(&up, "eth0", &vr, "eth2");
    let mut g3 = Netns::new("gdg3");
    veth(&g3, "eth0", &vr, "eth3");
    g3.ip(&["link", "set", "eth0", "address", "02:00:00:13:00:13"]);
    let mut g4 = Netns::new("gdg4");
    veth(&g4, "eth0", &vr, "eth4");
    g4.ip(&["link", "set", "eth0", "address", "02:00:00:17:00:17"]);
    g1.ip(&["link", "set", "eth0", "address", "02:00:00:11:00:11"]);
    g2.ip(&["link", "set", "eth0", "address", "02:00:00:12:00:12"]);
    up.ip(&["addr", "add", "203.0.113.2/24", "dev", "eth0"]);

    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    for g in ["g1", "g2", "g3", "g4"] {
        std::fs::create_dir_all(d.join(g)).unwrap();
    }
    write_exec(&d.join("udhcpc.script"), UDHCPC_SCRIPT);
    write_exec(&d.join("g2/dhclient.script"), DHCLIENT_SCRIPT);
    std::fs::write(
        d.join("g2/dhclient.conf"),
        "request subnet-mask, broadcast-address, routers, domain-name, domain-name-servers, \
         host-name, interface-mtu;\ninitial-interval 1;\nbackoff-cutoff 2;\ntimeout 20;\n",
    )
    .unwrap();
    // The zone's resolver: a dnsmasq of the test's own, in the public-side namespace.
    up.spawn(
        "dnsmasq",
        &[
            "-k",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            "--listen-address=203.0.113.2",
            "--address=/upstream.example/198.51.100.80",
            &format!("--pid-file={}", d.join("resolver.pid").display()),
        ],
        Stdio::null(),
        Stdio::null(),
    );

    let mut agent = AgentProc::new(Some(&vr.name));
    agent
        .env
        .push(("VR_AGENT_OBSERVE_INTERVAL".into(), "1".into()));
    agent.start();
    let t_full = apply_ok(&agent, "guests.json", &push(true));
    let pid0 = agent.dnsmasq_pid().expect("dnsmasq started by the agent");
    println!(
        "push of 4 networks and {} hosts: {t_full:.3} s, dnsmasq pid {pid0}",
        FILLER + 4
    );

    // Real clients.
    let g1_dir = d.join("g1");
    let g1_env = format!("GDIR={}", g1_dir.display());
    let script = d.join("udhcpc.script").display().to_string();
    let udhcpc_pidfile = g1_dir.join("udhcpc.pid").display().to_string();
    let t = Instant::now();
    g1.spawn(
        "env",
        &[
            &g1_env,
            "busybox",
            "udhcpc",
            "-f",
            "-i",
            "eth0",
            "-s",
            &script,
            "-p",
            &udhcpc_pidfile,
            "-t",
            "5",
            "-T",
            "1",
            "-A",
            "2",
            "-O",
            "mtu",
            "-O",
            "hostname",
        ],
        Stdio::null(),
        Stdio::null(),
    );
    assert!(
        wait_for(Duration::from_secs(20), || has_addr(&g1, "10.11.0.11")
            && options(&g1_dir).contains("ip=10.11.0.11")),
        "guest1 got no lease: {}",
        options(&g1_dir)
    );
    println!(
        "guest1 (udhcpc) bound 10.11.0.11 in {:.3} s",
        t.elapsed().as_secs_f64()
    );
    let g2_dir = d.join("g2");
    let p = |f: &str| g2_dir.join(f).display().to_string();
    let t = Instant::now();
    g2.spawn(
        "dhclient",
        &[
            "-4",
            "-d",
            "-cf",
            &p("dhclient.conf"),
            "-lf",
            &p("dhclient.leases"),
            "-pf",
            &p("dhclient.pid"),
            "-sf",
            &p("dhclient.script"),
            "eth0",
        ],
        Stdio::null(),
        Stdio::null(),
    );
    assert!(
        wait_for(Duration::from_secs(30), || has_addr(&g2, "10.12.0.12")
            && options(&g2_dir).contains("=10.12.0.12")),
        "guest2 got no lease"
    );
    println!(
        "guest2 (dhclient) bound 10.12.0.12 in {:.3} s",
        t.elapsed().as_secs_f64()
    );

    let g3_dir = d.join("g3");
    let g3_env = format!("GDIR={}", g3_dir.display());
    g3.spawn(
        "env",
        &[
            &g3_env, "busybox", "udhcpc", "-f", "-i", "eth0", "-s", &script, "-t", "5", "-T", "1",
            "-A", "2",
        ],
        Stdio::null(),
        Stdio::null(),
    );
    assert!(
        wait_for(Duration::from_secs(20), || has_addr(&g3, "10.13.0.13")
            && options(&g3_dir).contains("ip=10.13.0.13")),
        "the non-default NIC got no lease"
    );
    let o3 = options(&g3_dir);
    for want in ["ip=10.13.0.13", "router=", "dns=", "domain="] {
        assert!(
            o3.lines().any(|l| l == want),
            "non-default NIC: {want} wanted: {o3}"
        );
    }
    println!("non-default NIC options: {}", o3.replace('\n', " "));

    // The IP-alias subnet: its own range, gateway (the push's, not the router's address) and
    // resolver (the router's alias address), and the network's MTU.
    let g4_dir = d.join("g4");
    let g4_env = format!("GDIR={}", g4_dir.display());
    g4.spawn(
        "env",
        &[
            &g4_env, "busybox", "udhcpc", "-f", "-i", "eth0", "-s", &script, "-t", "5", "-T", "1",
            "-A", "2", "-O", "mtu",
        ],
        Stdio::null(),
        Stdio::null(),
    );
    assert!(
        wait_for(Duration::from_secs(20), || has_addr(&g4, "10.17.0.17")
            && options(&g4_dir).contains("ip=10.17.0.17")),
        "the alias subnet's guest got no lease: {}",
        options(&g4_dir)
    );
    let o4 = options(&g4_dir);
    for want in [
        "ip=10.17.0.17",
        "router=10.17.0.254",
        "dns=10.17.0.1",
        "domain=four.test",
        "mtu=1450",
    ] {
        assert!(o4.lines().any(|l| l == want), "guest4 lacks {want}: {o4}");
    }
    assert_eq!(dig(&g4, "10.17.0.1", "guest1.one.test"), "10.11.0.11");
    assert_eq!(dig(&g4, "10.17.0.1", "guest4.four.test"), "10.17.0.17");
    println!("alias subnet lease: {}", o4.replace('\n', " "));

    // What the clients received.
    let o1 = options(&g1_dir);
    for want in [
        "ip=10.11.0.11",
        "router=10.11.0.1",
        "dns=10.11.0.1",
        "domain=one.test",
        "mtu=1400",
        "hostname=guest1",
    ] {
        assert!(o1.lines().any(|l| l == want), "guest1 lacks {want}: {o1}");
    }
    assert!(g1.ip(&["link", "show", "eth0"]).contains("mtu 1400"));
    let o2 = options(&g2_dir);
    for want in [
        "new_ip_address=10.12.0.12",
        "new_routers=10.12.0.1",
        "new_domain_name_servers=10.12.0.1",
        "new_domain_name=two.test",
        "new_host_name=guest2",
    ] {
        assert!(o2.lines().any(|l| l == want), "guest2 lacks {want}: {o2}");
    }
    println!("guest1 options: {}", o1.replace('\n', " "));
    println!("guest2 options: {}", o2.replace('\n', " "));

    // DNS: each VM's name, data-server, an upstream name; nothing on the public side.
    assert_eq!(dig(&g1, "10.11.0.1", "guest2.two.test"), "10.12.0.12");
    assert_eq!(dig(&g2, "10.12.0.1", "guest1.one.test"), "10.11.0.11");
    assert_eq!(dig(&g1, "10.11.0.1", "guest1"), "10.11.0.11");
    assert_eq!(dig(&g1, "10.11.0.1", "vm4999.one.test"), "10.11.119.250");
    assert_eq!(dig(&g1, "10.11.0.1", "data-server"), "10.11.0.1");
    assert_eq!(dig(&g2, "10.12.0.1", "data-server"), "10.12.0.1");
    assert_eq!(dig(&g1, "10.11.0.1", "upstream.example"), "198.51.100.80");
    assert_eq!(
        dig(&up, "203.0.113.1", "guest1.one.test"),
        "",
        "public side answered"
    );
    assert_eq!(
        dig(&up, "203.0.113.1", "upstream.example"),
        "",
        "public side answered"
    );
    println!("DNS: VM names, data-server per network, upstream forwarded; public side: no answer");

    // One host added to the network of 5,000: two files read by inotify, not a restart.
    let dnsmasq_log =
        || std::fs::read_to_string(agent.run_dir.join("dnsmasq/dnsmasq.log")).unwrap_or_default();
    let hups = || dnsmasq_log().matches("cleared cache").count();
    let hups_before = hups();
    let t_add = apply_ok(
        &agent,
        "add.json",
        &dhcpentry("02:00:00:11:00:13", "10.11.0.13", "guest3", false),
    );
    println!("one host added at {} hosts: {t_add:.3} s", FILLER + 4);
    assert_eq!(
        agent.dnsmasq_pid(),
        Some(pid0),
        "dnsmasq was restarted; its log:\n{}\nagent log:\n{}",
        std::fs::read_to_string(agent.run_dir.join("dnsmasq/dnsmasq.log")).unwrap_or_default(),
        agent.log_text()
    );
    assert!(
        wait_for(Duration::from_secs(5), || dig(
            &g1,
            "10.11.0.1",
            "guest3.one.test"
        ) == "10.11.0.13"),
        "guest3 not in DNS after its files were written"
    );
    let log = dnsmasq_log();
    for dir in ["dhcp-hosts.d", "hosts.d"] {
        let line = format!(
            "inotify: {}/dnsmasq/{dir}/02:00:00:11:00:13 new or modified",
            agent.run_dir.display()
        );
        assert!(log.contains(&line), "no inotify read of {dir}: {log}");
    }
    assert_eq!(hups(), hups_before, "the added host cost a SIGHUP");
    // The existing lease holder renews across it and keeps its address.
    let renews = |dir: &PathBuf| {
        std::fs::read_to_string(dir.join("events"))
            .unwrap_or_default()
            .lines()
            .filter(|l| *l == "renew 10.11.0.11")
            .count()
    };
    let before = renews(&g1_dir);
    // udhcpc renews on SIGUSR1.
    let udhcpc_pid = std::fs::read_to_string(&udhcpc_pidfile)
        .unwrap()
        .trim()
        .to_string();
    g1.exec_ok("kill", &["-USR1", &udhcpc_pid]);
    assert!(
        wait_for(Duration::from_secs(10), || renews(&g1_dir) > before),
        "guest1 did not renew 10.11.0.11"
    );
    assert!(lease_of(&agent, "02:00:00:11:00:11").is_some());
    println!(
        "guest1 renewed 10.11.0.11 after the host was added; dnsmasq pid still {pid0}, no SIGHUP"
    );

    // Removing a host drops its lease and its name.
    assert!(lease_of(&agent, "02:00:00:12:00:12").is_some());
    let dhclient_pid = g2.exec_ok("cat", &[&p("dhclient.pid")]).trim().to_string();
    g2.exec_ok("kill", &["-9", &dhclient_pid]);
    apply_ok(
        &agent,
        "remove.json",
        &dhcpentry("02:00:00:12:00:12", "10.12.0.12", "guest2", true),
    );
    assert!(
        wait_for(Duration::from_secs(5), || lease_of(
            &agent,
            "02:00:00:12:00:12"
        )
        .is_none()),
        "guest2's lease was not released"
    );
    assert_eq!(dig(&g1, "10.11.0.1", "guest2.two.test"), "");
    assert_eq!(agent.dnsmasq_pid(), Some(pid0));
    println!("guest2 removed: lease released, name gone, same dnsmasq");

    // `show dhcp` / `show dns`.
    let out = agent.cli(&["show", "dhcp", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let g1_row = v["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["mac"] == "02:00:00:11:00:11")
        .cloned()
        .unwrap();
    assert_eq!(g1_row["state"], "leased", "{g1_row}");
    // guest1, guest3, guest4, the extra NIC and the filler (guest2 was removed).
    assert_eq!(v["hosts"].as_array().unwrap().len(), FILLER + 4);
    let extra = v["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["mac"] == "02:00:00:13:00:13")
        .cloned()
        .unwrap();
    assert_eq!(
        (&extra["default_nic"], &extra["state"]),
        (&Value::Bool(false), &Value::from("leased"))
    );
    let out = agent.cli(&["show", "dns"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("guest3.one.test"), "{text}");
    assert!(text.contains("forwarded to: 203.0.113.2"), "{text}");

    // An agent restart adopts dnsmasq; the replay keeps every lease.
    agent.kill9();
    agent.start();
    assert_eq!(
        agent.dnsmasq_pid(),
        Some(pid0),
        "agent restart restarted dnsmasq"
    );
    assert!(lease_of(&agent, "02:00:00:11:00:11").is_some());
    let out = agent.cli(&["diff"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    println!("agent restarted: dnsmasq {pid0} adopted, leases kept, diff empty");

    // A killed dnsmasq is respawned by self-heal, reading its leases back.
    // SAFETY: kill(2) on the dnsmasq the agent started under this test's run dir.
    unsafe {
        libc::kill(pid0, libc::SIGKILL);
    }
    let t = Instant::now();
    assert!(
        wait_for(Duration::from_secs(15), || agent
            .dnsmasq_pid()
            .is_some_and(|p| p != pid0)),
        "dnsmasq not respawned:\n{}",
        agent.log_text()
    );
    println!(
        "dnsmasq respawned by self-heal in {:.2} s",
        t.elapsed().as_secs_f64()
    );
    let before = renews(&g1_dir);
    g1.exec_ok("kill", &["-USR1", &udhcpc_pid]);
    assert!(
        wait_for(Duration::from_secs(10), || renews(&g1_dir) > before),
        "guest1 did not renew after the respawn"
    );
    assert!(lease_of(&agent, "02:00:00:11:00:11").is_some());
    assert_eq!(dig(&g1, "10.11.0.1", "guest3.one.test"), "10.11.0.13");
    println!("guest1 kept 10.11.0.11 across the respawn");

    // A router reboot: agent and dnsmasq gone, the run directory (tmpfs) empty; the boot
    // replay starts dnsmasq again from the state, and the lease file (state directory) keeps
    // every lease.
    agent.kill9();
    agent.kill_dnsmasq();
    std::fs::remove_dir_all(&agent.run_dir).unwrap();
    // 10,000 host files to write again: allow a busy disk.
    let t = Instant::now();
    agent.start_within(Duration::from_secs(90));
    println!("reboot replay ready in {:.2} s", t.elapsed().as_secs_f64());
    assert!(
        agent.dnsmasq_pid().is_some(),
        "replay did not start dnsmasq"
    );
    for mac in ["02:00:00:11:00:11", "02:00:00:13:00:13"] {
        assert!(lease_of(&agent, mac).is_some(), "lease of {mac} lost");
    }
    let before = renews(&g1_dir);
    g1.exec_ok("kill", &["-USR1", &udhcpc_pid]);
    assert!(
        wait_for(Duration::from_secs(10), || renews(&g1_dir) > before),
        "guest1 did not renew after the reboot"
    );
    assert_eq!(dig(&g1, "10.11.0.1", "guest3.one.test"), "10.11.0.13");
    println!("after a reboot (empty run dir, replay): leases kept, guest1 renewed 10.11.0.11");
}
