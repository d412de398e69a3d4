//! IPv6 end to end (issue 19, IPv6 half), one topology, real radvd, real kernel SLAAC, real
//! traffic:
//!
//! ```text
//! g (SLAAC in 2001:db8:10::/64) -lan0/eth0- vr -eth2/wan0- up 2001:db8:ff::2
//!                                 2001:db8:10::1 | 2001:db8:ff::1 (IPv6 default via ::2)
//! ```
//!
//! The agent gets the addresses and the IPv6 default route in a native push, and the IPv6
//! firewall rule in a CloudStack `ipv6firewallrules` push. Proves: the guest's SLAAC address
//! and default route come from the router's advertisements (radvd owned by the agent); ping6
//! and TCP from the guest reach the upstream host; a new inbound connection to a guest port no
//! rule opens is dropped; the rule opens its port and the next port stays dropped; SSH (3922)
//! to the router over IPv6 from the public side is dropped although something listens; the
//! same pushes again change nothing in `ip6 vr`. Dual-stack DHCPv6: the guest network's
//! `dhcp` entry carries the IPv6 prefix, radvd advertises the managed flag there, and a
//! CloudStack `dhcpentry` with `ipv6_address`/`ipv6_duid` gives a real DHCPv6 client (ISC
//! `dhclient -6` with its DUID pinned to DUID-LL of its MAC, as CloudStack computes it)
//! exactly that address, from the agent's dnsmasq.

use std::process::Stdio;
use std::time::{Duration, Instant};

use vr_tests::traffic::{ping, tcp_probe};
use vr_tests::{require_program, require_root, veth, wait_for, AgentProc, Netns};

const PUSH: &str = r#"{"schema":1,
 "interfaces":[
   {"device":"eth0","role":"guest","addresses":["10.1.0.1/24"],"addresses6":["2001:db8:10::1/64"]},
   {"device":"eth2","role":"public","addresses":["192.0.2.10/24"],"gateway":"192.0.2.2",
    "addresses6":["2001:db8:ff::1/64"],"gateway6":"2001:db8:ff::2"}],
 "nat":{"source_nat":[{"device":"eth2","public_ip":"192.0.2.10"}]},
 "dhcp":{"networks":[{"device":"eth0","address":"10.1.0.1/24","address6":"2001:db8:10::1/64"}]}}"#;

/// The guest's MAC, and the DUID-LL `dhclient -6 -D LL` derives from it (type 3, hardware
/// type 1, the MAC): what CloudStack sends as `ipv6_duid`.
const GUEST_MAC: &str = "02:00:0a:01:00:0b";
const GUEST_DUID: &str = "00:03:00:01:02:00:0a:01:00:0b";
const GUEST_IP6: &str = "2001:db8:10::11";

/// A dual-stack VM's entry, in CloudStack's wire format.
fn dhcpentry6() -> String {
    format!(
        r#"{{"type":"dhcpentry","host_name":"dual","mac_address":"{GUEST_MAC}",
            "ipv4_address":"10.1.0.11","ipv6_address":"{GUEST_IP6}","ipv6_duid":"{GUEST_DUID}",
            "default_gateway":"10.1.0.1","default_entry":true,"remove":false}}"#
    )
}

/// dhclient -6's script: puts the bound address on the NIC (nothing in the shared /etc).
const DHCLIENT6_SCRIPT: &str = r#"#!/bin/sh
PATH=/usr/sbin:/usr/bin:/sbin:/bin
case "$reason" in
  BOUND6|RENEW6|REBIND6|REBOOT6)
    ip -6 addr replace "$new_ip6_address/128" dev "$interface" nodad ;;
esac
echo "$reason ${new_ip6_address:-}" >> "$(dirname "$0")/events"
"#;

fn dhcp6_addrs(g: &Netns) -> Vec<String> {
    g.exec_ok(
        "ip",
        &["-6", "-o", "addr", "show", "dev", "lan0", "scope", "global"],
    )
    .lines()
    .filter_map(|l| {
        l.split_whitespace()
            .skip_while(|w| *w != "inet6")
            .nth(1)
            .filter(|a| a.ends_with("/128"))
            .map(|a| a.trim_end_matches("/128").to_string())
    })
    .collect()
}

/// CloudStack's wire format: open TCP 8080 of the guest prefix to anyone.
const RULES: &str = r#"{"type":"ipv6firewallrules","delete_from_processed_cache":false,"rules":[
 {"id":61,"src_ip":"","protocol":"tcp","src_port_range":[8080,8080],"revoked":false,
  "already_added":false,"source_cidr_list":["::/0"],"dest_cidr_list":[],"purpose":"Ipv6Firewall",
  "traffic_type":"Ingress","default_egress_policy":true,"guest_ip6_cidr":"2001:db8:10::/64"}]}"#;

/// An IPv6 TCP server answering `hello <port>` (the shared one is IPv4-only).
const SERVER6: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("::", int(sys.argv[1]))); s.listen(16)
while True:
    c, a = s.accept(); c.sendall(b"hello %s\n" % sys.argv[1].encode()); c.close()
"#;

fn server6(ns: &mut Netns, port: u16) {
    let p = port.to_string();
    ns.spawn(
        "python3",
        &["-c", SERVER6, &p],
        Stdio::null(),
        Stdio::null(),
    );
    let needle = format!(":{port} ");
    assert!(
        wait_for(Duration::from_secs(5), || ns
            .exec_ok("ss", &["-ltnH", "-6"])
            .contains(&needle)),
        "IPv6 server on {port} in {} did not listen",
        ns.name
    );
}

fn slaac(g: &Netns) -> Option<String> {
    let out = g.exec_ok(
        "ip",
        &["-6", "-o", "addr", "show", "dev", "lan0", "scope", "global"],
    );
    if out.contains("tentative") {
        return None;
    }
    out.split_whitespace()
        .skip_while(|w| *w != "inet6")
        .nth(1)
        .and_then(|a| a.split('/').next())
        .filter(|a| a.starts_with("2001:db8:10:"))
        .map(str::to_string)
}

fn changes_of(result: &serde_json::Value, concern: &str) -> Option<u64> {
    fn find(v: &serde_json::Value, concern: &str) -> Option<u64> {
        match v {
            serde_json::Value::Object(m) => {
                if m.get("concern").and_then(|c| c.as_str()) == Some(concern) {
                    return m.get("changes").and_then(|c| c.as_u64());
                }
                m.values().find_map(|v| find(v, concern))
            }
            serde_json::Value::Array(a) => a.iter().find_map(|v| find(v, concern)),
            _ => None,
        }
    }
    find(result, concern)
}

/// What an operator would look at when an assertion fails.
fn context(g: &Netns, vr: &Netns, agent: &AgentProc) -> String {
    format!(
        "guest:\n{}\n{}\nrouter:\n{}\n{}\nagent log:\n{}",
        g.exec_ok("ip", &["-6", "addr"]),
        g.exec_ok("ip", &["-6", "route"]),
        vr.exec_ok("ip", &["-6", "addr"]),
        vr.exec_ok("nft", &["list", "table", "ip6", "vr"]),
        agent.log_text()
    )
}

const T: Duration = Duration::from_millis(1500);

#[test]
fn ipv6_slaac_forwarding_firewall_and_router_input() {
    let name = "ipv6_slaac_forwarding_firewall_and_router_input";
    if !require_root(name)
        || !require_program(name, "/usr/sbin/nft")
        || !require_program(name, "/usr/sbin/radvd")
        || !require_program(name, "/usr/bin/curl")
    {
        return;
    }
    let t0 = Instant::now();
    let mut g = Netns::new("v6g");
    let mut vr = Netns::new("v6vr");
    let mut up = Netns::new("v6up");
    // The test hosts skip duplicate address detection (their addresses are unique by
    // construction); the router's own addresses are added `nodad` by the agent.
    for ns in [&g, &up] {
        ns.sysctl("net.ipv6.conf.all.accept_dad=0");
        ns.sysctl("net.ipv6.conf.default.accept_dad=0");
    }
    veth(&up, "wan0", &vr, "eth2");
    up.ip(&["addr", "add", "192.0.2.2/24", "dev", "wan0"]);
    up.ip(&[
        "-6",
        "addr",
        "add",
        "2001:db8:ff::2/64",
        "dev",
        "wan0",
        "nodad",
    ]);
    up.ip(&[
        "-6",
        "route",
        "add",
        "2001:db8:10::/64",
        "via",
        "2001:db8:ff::1",
    ]);

    // The guest's end stays down until the ruleset is in, so SLAAC itself proves that the
    // router's input lets router solicitations and neighbour discovery through.
    veth(&g, "lan0", &vr, "eth0");
    g.ip(&["link", "set", "lan0", "down"]);
    g.ip(&["link", "set", "lan0", "address", GUEST_MAC]);
    let mut agent = AgentProc::new(Some(&vr.name));
    agent
        .env
        .push(("VR_AGENT_OBSERVE_INTERVAL".into(), "1".into()));
    agent
        .env
        .push(("VR_AGENT_METRICS_REFRESH_MS".into(), "200".into()));
    // This topology has no control NIC: the endpoint on the router's loopback.
    agent.extra_args = vec!["--metrics-listen".into(), "127.0.0.1:9100".into()];
    agent.start();
    let (code, r) = agent.apply_text("v6.json", PUSH);
    assert_eq!(code, 0, "{r}");
    let table = vr.exec_ok("nft", &["list", "table", "ip6", "vr"]);
    assert!(table.contains("hook input"), "{table}");
    g.ip(&["link", "set", "lan0", "up"]);
    let t_link = Instant::now();
    let got = wait_for(Duration::from_secs(15), || {
        slaac(&g).is_some()
            && g.exec_ok("ip", &["-6", "route", "show", "default"])
                .contains("proto ra")
    });
    assert!(
        got,
        "no SLAAC address / RA default route\n{}",
        context(&g, &vr, &agent)
    );
    let addr = slaac(&g).unwrap();
    eprintln!(
        "guest SLAAC {addr} and RA default route {:.2} s after link up",
        t_link.elapsed().as_secs_f32()
    );
    let radvd_pid =
        std::fs::read_to_string(agent.run_dir.join("radvd/radvd.pid")).unwrap_or_default();
    assert!(
        !radvd_pid.trim().is_empty(),
        "radvd pid file\n{}",
        context(&g, &vr, &agent)
    );

    // Guest -> upstream: ping6 and TCP (replies only through `ct state established`).
    // Neighbour discovery on both links (link-locals may still be tentative) can outlast one
    // ping's wait on a loaded machine: the path counts once a ping gets through.
    assert!(
        wait_for(Duration::from_secs(8), || ping(&g, "2001:db8:ff::2", 1)),
        "ping6 guest -> upstream\n{}",
        context(&g, &vr, &agent)
    );
    server6(&mut up, 80);
    let reply = tcp_probe(&g, "2001:db8:ff::2", 80, T);
    assert_eq!(
        reply.as_deref(),
        Ok("hello 80"),
        "{}",
        context(&g, &vr, &agent)
    );

    // Upstream -> guest: nothing opens 8080 yet.
    server6(&mut g, 8080);
    server6(&mut g, 8081);
    assert!(
        tcp_probe(&up, &addr, 8080, T).is_err(),
        "new inbound 8080 passed without a rule\n{}",
        context(&g, &vr, &agent)
    );

    // SSH to the router over IPv6 from the public side: dropped, though sshd's port listens.
    server6(&mut vr, 3922);
    assert!(
        tcp_probe(&up, "2001:db8:ff::1", 3922, T).is_err(),
        "ssh over IPv6 from the public side reached the router\n{}",
        context(&g, &vr, &agent)
    );

    // The CloudStack rule opens 8080 only.
    let (code, r) = agent.apply_text("v6rules.json", RULES);
    assert_eq!(code, 0, "{r}");
    eprintln!("rules apply: {r}");
    let reply = tcp_probe(&up, &addr, 8080, T);
    assert_eq!(
        reply.as_deref(),
        Ok("hello 8080"),
        "{}",
        context(&g, &vr, &agent)
    );
    assert!(
        tcp_probe(&up, &addr, 8081, T).is_err(),
        "8081 passed with only 8080 open\n{}",
        context(&g, &vr, &agent)
    );
    let table = vr.exec_ok("nft", &["list", "table", "ip6", "vr"]);
    assert!(table.contains("comment \"rule 61\""), "{table}");

    // The rule's counter in the metrics: the connection it admitted (its first packet).
    const RULE61: &str =
        r#"vr_firewall_rule_packets_total{family="ip6",kind="ingress",scope="guest",rule="61"} "#;
    let mut text = String::new();
    let counted = wait_for(Duration::from_secs(5), || {
        let out = vr.exec(
            "curl",
            &["-sS", "--max-time", "2", "http://127.0.0.1:9100/metrics"],
        );
        text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines()
            .find_map(|l| l.strip_prefix(RULE61))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .is_some_and(|v| v >= 1.0)
    });
    assert!(counted, "no IPv6 rule 61 count in the metrics:\n{text}");

    // The same pushes again: the IPv6 table, addresses and radvd are left as they are.
    let (code, r) = agent.apply_text("v6-again.json", PUSH);
    assert_eq!(code, 0, "{r}");
    let (code, r2) = agent.apply_text("v6rules-again.json", RULES);
    assert_eq!(code, 0, "{r2}");
    for (what, res) in [("push", &r), ("rules", &r2)] {
        for c in ["nftables6", "ipv6", "radvd"] {
            assert_eq!(changes_of(res, c), Some(0), "{what} again: {c}: {res}");
        }
    }
    let pid_after =
        std::fs::read_to_string(agent.run_dir.join("radvd/radvd.pid")).unwrap_or_default();
    assert_eq!(radvd_pid, pid_after, "radvd restarted");

    // A radvd that dies is started again by self-heal, without a push. Its privileged child
    // holds the pid file's lock until it notices its parent is gone; stopped here, it never
    // does, so the agent must clear it (a slow exit once made the restart fail and back off).
    let pid: i32 = radvd_pid.trim().parse().expect("radvd pid");
    let helpers = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|c| c.parse::<i32>().ok())
        .collect::<Vec<_>>();
    assert!(!helpers.is_empty(), "radvd {pid} has no privileged child");
    // SAFETY: kill(2) on the radvd the agent under test started (its pid file is ours) and on
    // that radvd's own children.
    unsafe {
        for h in &helpers {
            libc::kill(*h, libc::SIGSTOP);
        }
        libc::kill(pid, libc::SIGKILL);
    }
    let t_kill = Instant::now();
    let back = wait_for(Duration::from_secs(15), || {
        std::fs::read_to_string(agent.run_dir.join("radvd/radvd.pid"))
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
            .is_some_and(|p| p != pid && std::path::Path::new(&format!("/proc/{p}")).exists())
    });
    let stopped_left: Vec<i32> = helpers
        .iter()
        .copied()
        .filter(|h| {
            std::fs::read_to_string(format!("/proc/{h}/stat")).is_ok_and(|st| {
                st.rsplit_once(") ")
                    .is_some_and(|(_, r)| r.starts_with('T'))
            })
        })
        .collect();
    for h in &stopped_left {
        // SAFETY: kill(2) on the helper this test stopped, so a failed run leaves nothing.
        unsafe {
            libc::kill(*h, libc::SIGKILL);
        }
    }
    assert!(back, "radvd not respawned\n{}", context(&g, &vr, &agent));
    assert!(
        stopped_left.is_empty(),
        "the dead radvd's helpers {stopped_left:?} were left running"
    );
    eprintln!(
        "radvd respawned by self-heal {:.2} s after SIGKILL",
        t_kill.elapsed().as_secs_f32()
    );
    // Dual-stack DHCPv6: radvd tells guests to use it, and a real client gets exactly the
    // address of its DUID's CloudStack entry.
    let radvd_conf =
        std::fs::read_to_string(agent.run_dir.join("radvd/radvd.conf")).unwrap_or_default();
    assert!(
        radvd_conf.contains("AdvManagedFlag on;") && radvd_conf.contains("AdvAutonomous on;"),
        "{radvd_conf}"
    );
    let t6 = Instant::now();
    let (code, r) = agent.apply_text("dhcp6.json", &dhcpentry6());
    assert_eq!(code, 0, "{r}");
    let host_file = agent.run_dir.join("dnsmasq/dhcp-hosts.d").join(GUEST_MAC);
    let lines = std::fs::read_to_string(&host_file).unwrap_or_default();
    assert!(
        lines.contains(&format!("id:{GUEST_DUID},[{GUEST_IP6}],infinite")),
        "{lines}"
    );
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let p = |f: &str| d.join(f).display().to_string();
    std::fs::write(d.join("dhclient6.script"), DHCLIENT6_SCRIPT).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            d.join("dhclient6.script"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
    }
    std::fs::write(
        d.join("dhclient6.conf"),
        "initial-interval 1;\nbackoff-cutoff 2;\ntimeout 10;\n",
    )
    .unwrap();
    g.spawn(
        "dhclient",
        &[
            "-6",
            "-d",
            "-D",
            "LL",
            "-cf",
            &p("dhclient6.conf"),
            "-lf",
            &p("dhclient6.leases"),
            "-pf",
            &p("dhclient6.pid"),
            "-sf",
            &p("dhclient6.script"),
            "lan0",
        ],
        Stdio::null(),
        Stdio::null(),
    );
    let bound = wait_for(Duration::from_secs(10), || !dhcp6_addrs(&g).is_empty());
    let dnsmasq_log =
        std::fs::read_to_string(agent.run_dir.join("dnsmasq/dnsmasq.log")).unwrap_or_default();
    assert!(
        bound,
        "no DHCPv6 address\nevents: {}\nleases: {}\ndnsmasq log:\n{dnsmasq_log}\n{}",
        std::fs::read_to_string(d.join("events")).unwrap_or_default(),
        std::fs::read_to_string(d.join("dhclient6.leases")).unwrap_or_default(),
        context(&g, &vr, &agent)
    );
    assert_eq!(dhcp6_addrs(&g), [GUEST_IP6], "{}", context(&g, &vr, &agent));
    let leases = std::fs::read_to_string(d.join("dhclient6.leases")).unwrap_or_default();
    assert!(leases.contains(&format!("iaaddr {GUEST_IP6}")), "{leases}");
    eprintln!(
        "guest (dhclient -6, DUID {GUEST_DUID}) bound {GUEST_IP6} {:.2} s after the dhcpentry push",
        t6.elapsed().as_secs_f32()
    );
    // The address is the guest's own: it carries traffic to the upstream host.
    let out = g.exec(
        "ping",
        &[
            "-6",
            "-c",
            "1",
            "-W",
            "2",
            "-I",
            GUEST_IP6,
            "2001:db8:ff::2",
        ],
    );
    assert!(
        out.status.success(),
        "ping6 from the DHCPv6 address: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        context(&g, &vr, &agent)
    );
    eprintln!(
        "ipv6_routed: SLAAC, ping6, TCP out, inbound drop, rule 8080 open / 8081 dropped, \
         ssh over IPv6 dropped, idempotent re-push, DHCPv6 dual-stack host: {:.1} s",
        t0.elapsed().as_secs_f32()
    );
    agent.stop();
}
