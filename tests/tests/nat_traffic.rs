//! NAT and firewall with real traffic: the agent applies a push in a router namespace and TCP
//! connections between namespaces prove port forwards (single port, shifted range, same-port
//! range), source NAT, static NAT both ways, hairpin, ingress allow/deny and router input.
//!
//! ```text
//! h1 10.1.0.10 -lan0/eth0- vr -eth2/wan0- ext 192.0.2.2
//! h2 10.3.0.10 -lan0/eth3-/   192.0.2.10 (source NAT), .11 (static NAT -> h2), .12
//! ```

use std::time::Duration;

use vr_tests::traffic::{tcp_probe, tcp_server};
use vr_tests::{require_program, require_root, veth, AgentProc, Netns};

const PUSH: &str = r#"{"schema":1,
 "interfaces":[
   {"device":"eth0","role":"guest","addresses":["10.1.0.1/24"]},
   {"device":"eth3","role":"guest","addresses":["10.3.0.1/24"]},
   {"device":"eth2","role":"public","addresses":["192.0.2.10/24","192.0.2.11/24","192.0.2.12/24"],
    "gateway":"192.0.2.2"}],
 "nat":{"source_nat":[{"device":"eth2","public_ip":"192.0.2.10"}],
   "static_nat":[{"public_ip":"192.0.2.11","private_ip":"10.3.0.10"}],
   "port_forwards":[
     {"public_ip":"192.0.2.10","protocol":"tcp","public_ports":2222,"private_ip":"10.1.0.10","private_ports":22},
     {"public_ip":"192.0.2.10","protocol":"tcp","public_ports":"8000-8002","private_ip":"10.1.0.10","private_ports":"9000-9002"},
     {"public_ip":"192.0.2.12","protocol":"tcp","public_ports":"7000-7001","private_ip":"10.1.0.10","private_ports":"7000-7001"}]},
 "firewall":{"ingress":[
   {"id":1,"public_ip":"192.0.2.10","protocol":"tcp","ports":2222},
   {"id":2,"public_ip":"192.0.2.10","protocol":"tcp","ports":"8000-8002"},
   {"id":3,"public_ip":"192.0.2.11","protocol":"tcp","ports":80},
   {"id":4,"public_ip":"192.0.2.12","protocol":"tcp","ports":"7000-7001","source_cidrs":["192.0.2.0/24"]}]}}"#;

struct Topo {
    h1: Netns,
    h2: Netns,
    vr: Netns,
    ext: Netns,
}

fn topo() -> Topo {
    let h1 = Netns::new("nath1");
    let h2 = Netns::new("nath2");
    let vr = Netns::new("natvr");
    let ext = Netns::new("natext");
    veth(&h1, "lan0", &vr, "eth0");
    veth(&h2, "lan0", &vr, "eth3");
    veth(&ext, "wan0", &vr, "eth2");
    h1.ip(&["addr", "add", "10.1.0.10/24", "dev", "lan0"]);
    h1.ip(&["route", "add", "default", "via", "10.1.0.1"]);
    h2.ip(&["addr", "add", "10.3.0.10/24", "dev", "lan0"]);
    h2.ip(&["route", "add", "default", "via", "10.3.0.1"]);
    ext.ip(&["addr", "add", "192.0.2.2/24", "dev", "wan0"]);
    for a in ["10.1.0.1/24 dev eth0", "10.3.0.1/24 dev eth3"] {
        let mut args = vec!["addr", "add"];
        args.extend(a.split(' '));
        vr.ip(&args);
    }
    for a in ["192.0.2.10/24", "192.0.2.11/24", "192.0.2.12/24"] {
        vr.ip(&["addr", "add", a, "dev", "eth2"]);
    }
    Topo { h1, h2, vr, ext }
}

const T: Duration = Duration::from_secs(2);

fn peer_of(greeting: &str) -> &str {
    greeting
        .split_whitespace()
        .find_map(|w| w.strip_prefix("peer="))
        .unwrap_or("")
}

fn local_of(greeting: &str) -> &str {
    greeting
        .split_whitespace()
        .find_map(|w| w.strip_prefix("local="))
        .unwrap_or("")
}

fn nftables_changes(result: &serde_json::Value) -> Option<u64> {
    // The result lists one outcome per concern: find the nftables one wherever it sits.
    fn find(v: &serde_json::Value) -> Option<u64> {
        match v {
            serde_json::Value::Object(m) => {
                if m.get("concern").and_then(|c| c.as_str()) == Some("nftables") {
                    return m.get("changes").and_then(|c| c.as_u64());
                }
                m.values().find_map(find)
            }
            serde_json::Value::Array(a) => a.iter().find_map(find),
            _ => None,
        }
    }
    find(result)
}

#[test]
fn nat_and_firewall_with_real_traffic() {
    let name = "nat_and_firewall_with_real_traffic";
    if !require_root(name) || !require_program(name, "/usr/sbin/nft") {
        return;
    }
    let mut t = topo();
    tcp_server(&mut t.h1, "10.1.0.10", 22);
    for p in [9000, 9001, 9002, 7000, 7001] {
        tcp_server(&mut t.h1, "10.1.0.10", p);
    }
    tcp_server(&mut t.h2, "10.3.0.10", 80);
    tcp_server(&mut t.h2, "10.3.0.10", 81);
    tcp_server(&mut t.ext, "192.0.2.2", 5000);
    tcp_server(&mut t.vr, "10.1.0.1", 53);
    tcp_server(&mut t.vr, "10.1.0.1", 5353);

    let mut agent = AgentProc::new(Some(&t.vr.name));
    agent.start();
    let (code, r) = agent.apply_text("nat.json", PUSH);
    eprintln!("first apply: {r}");
    assert_eq!(code, 0, "{r}");
    let ruleset = t.vr.exec_ok("nft", &["list", "table", "ip", "vr"]);
    let ctx = |what: &str| format!("{what}\nruleset:\n{ruleset}");

    // Single-port forward, from outside.
    let g = tcp_probe(&t.ext, "192.0.2.10", 2222, T).unwrap_or_else(|e| panic!("{}", ctx(&e)));
    assert_eq!(local_of(&g), "10.1.0.10:22", "{}", ctx(&g));
    assert_eq!(peer_of(&g), "192.0.2.2", "{g}");
    // New inbound connections carry the connmark of their public device (100 + 2 for eth2).
    if std::path::Path::new("/usr/sbin/conntrack").exists() {
        let out =
            t.vr.exec("conntrack", &["-L", "-p", "tcp", "--orig-port-dst", "2222"]);
        let flows = String::from_utf8_lossy(&out.stdout);
        assert!(flows.contains("mark=102"), "{flows}");
    }
    // A public range onto a private range of equal length, shifted: port k -> 9000 + k.
    for (public, private) in [(8000, 9000), (8001, 9001), (8002, 9002)] {
        let g =
            tcp_probe(&t.ext, "192.0.2.10", public, T).unwrap_or_else(|e| panic!("{}", ctx(&e)));
        assert_eq!(local_of(&g), format!("10.1.0.10:{private}"), "{g}");
    }
    // Same-port range, restricted to sources in 192.0.2.0/24.
    let g = tcp_probe(&t.ext, "192.0.2.12", 7001, T).unwrap_or_else(|e| panic!("{}", ctx(&e)));
    assert_eq!(local_of(&g), "10.1.0.10:7001", "{g}");
    // Source NAT: the far host sees the public IP.
    let g = tcp_probe(&t.h1, "192.0.2.2", 5000, T).unwrap_or_else(|e| panic!("{}", ctx(&e)));
    assert_eq!(peer_of(&g), "192.0.2.10", "{g}");
    // Static NAT both ways.
    let g = tcp_probe(&t.h2, "192.0.2.2", 5000, T).unwrap_or_else(|e| panic!("{}", ctx(&e)));
    assert_eq!(peer_of(&g), "192.0.2.11", "{g}");
    let g = tcp_probe(&t.ext, "192.0.2.11", 80, T).unwrap_or_else(|e| panic!("{}", ctx(&e)));
    assert_eq!(local_of(&g), "10.3.0.10:80", "{g}");
    assert_eq!(peer_of(&g), "192.0.2.2", "{g}");
    // Ingress deny: h2 listens on 81 too, but no rule allows it.
    assert!(
        tcp_probe(&t.ext, "192.0.2.11", 81, T).is_err(),
        "{}",
        ctx("81 open")
    );
    // Hairpin: a guest reaches a port forward on a public IP; the target sees the router.
    let g = tcp_probe(&t.h2, "192.0.2.10", 2222, T).unwrap_or_else(|e| panic!("{}", ctx(&e)));
    assert_eq!(local_of(&g), "10.1.0.10:22", "{g}");
    assert_eq!(peer_of(&g), "10.1.0.1", "{g}");
    // Router input: DNS from guests, nothing else.
    assert!(
        tcp_probe(&t.h1, "10.1.0.1", 53, T).is_ok(),
        "{}",
        ctx("dns")
    );
    assert!(
        tcp_probe(&t.h1, "10.1.0.1", 5353, T).is_err(),
        "{}",
        ctx("5353 open")
    );

    // The same push again sends nothing to nftables.
    let (code, r) = agent.apply_text("nat-again.json", PUSH);
    assert_eq!(code, 0, "{r}");
    eprintln!("second apply: {r}");
    assert_eq!(nftables_changes(&r), Some(0), "{r}");

    // Revoking one forward is one element delete; the forward stops taking new connections.
    let fewer = PUSH.replace(
        r#"{"public_ip":"192.0.2.10","protocol":"tcp","public_ports":2222,"private_ip":"10.1.0.10","private_ports":22},"#,
        "",
    );
    assert_ne!(fewer, PUSH);
    let (code, r) = agent.apply_text("nat-fewer.json", &fewer);
    assert_eq!(code, 0, "{r}");
    assert_eq!(nftables_changes(&r), Some(1), "{r}");
    assert!(
        tcp_probe(&t.ext, "192.0.2.10", 2222, T).is_err(),
        "2222 still forwarded"
    );
    assert!(
        tcp_probe(&t.ext, "192.0.2.10", 8001, T).is_ok(),
        "8001 lost"
    );
}

const ACL_PUSH: &str = r#"{"schema":1,
 "interfaces":[
   {"device":"eth0","role":"guest","addresses":["10.1.0.1/24"]},
   {"device":"eth3","role":"guest","addresses":["10.3.0.1/24"]},
   {"device":"eth2","role":"public","addresses":["192.0.2.10/24"],"gateway":"192.0.2.2"}],
 "nat":{"source_nat":[{"device":"eth2","public_ip":"192.0.2.10"}]},
 "firewall":{"egress":[{"guest_cidr":"10.1.0.0/24","default_allow":false,"rules":[
   {"id":7,"protocol":"tcp","ports":5000}]}]},
 "acls":[{"device":"eth3","tier_cidr":"10.3.0.0/24","ingress":[
   {"number":1,"action":"deny","protocol":"tcp","ports":22,"cidrs":["10.1.0.0/24"]},
   {"number":2,"action":"allow","protocol":"tcp","ports":"22-80"}],
  "egress":[{"number":1,"action":"deny","protocol":"tcp","ports":5001}]}]}"#;

#[test]
fn acl_order_and_egress_default_deny() {
    let name = "acl_order_and_egress_default_deny";
    if !require_root(name) || !require_program(name, "/usr/sbin/nft") {
        return;
    }
    let mut t = topo();
    tcp_server(&mut t.h2, "10.3.0.10", 22);
    tcp_server(&mut t.h2, "10.3.0.10", 80);
    tcp_server(&mut t.h2, "10.3.0.10", 81);
    tcp_server(&mut t.ext, "192.0.2.2", 5000);
    tcp_server(&mut t.ext, "192.0.2.2", 5001);
    let agent = AgentProc::new(Some(&t.vr.name));
    let (code, r) = agent.apply_text("acl.json", ACL_PUSH);
    assert_eq!(code, 0, "{r}");
    let ruleset = t.vr.exec_ok("nft", &["list", "table", "ip", "vr"]);
    let ctx = |what: &str| format!("{what}\nruleset:\n{ruleset}");

    // ACL item 1 (deny 22 from 10.1.0.0/24) beats item 2 (allow 22-80).
    assert!(
        tcp_probe(&t.h1, "10.3.0.10", 22, T).is_err(),
        "{}",
        ctx("22 open")
    );
    assert!(
        tcp_probe(&t.h1, "10.3.0.10", 80, T).is_ok(),
        "{}",
        ctx("80 closed")
    );
    // Unmatched ingress ends in deny.
    assert!(
        tcp_probe(&t.h1, "10.3.0.10", 81, T).is_err(),
        "{}",
        ctx("81 open")
    );
    // Tier egress: allowed unless denied.
    let g = tcp_probe(&t.h2, "192.0.2.2", 5000, T).unwrap_or_else(|e| panic!("{}", ctx(&e)));
    assert_eq!(peer_of(&g), "192.0.2.10", "{g}");
    assert!(
        tcp_probe(&t.h2, "192.0.2.2", 5001, T).is_err(),
        "{}",
        ctx("5001 open")
    );
    // Guest network with egress default deny: only the allowed port leaves.
    assert!(
        tcp_probe(&t.h1, "192.0.2.2", 5000, T).is_ok(),
        "{}",
        ctx("5000 closed")
    );
    assert!(
        tcp_probe(&t.h1, "192.0.2.2", 5001, T).is_err(),
        "{}",
        ctx("5001 open")
    );
}

/// One TCP connection kept open from `ns`: send a line, read the echo.
struct Flow {
    child: std::process::Child,
    out: std::io::BufReader<std::process::ChildStdout>,
}

const FLOW_CLIENT: &str = r#"
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
f = s.makefile()
print(f.readline().strip(), flush=True)
for line in sys.stdin:
    try:
        s.sendall(line.encode())
        print("OK " + f.readline().strip(), flush=True)
    except Exception as e:
        print("ERR %s" % type(e).__name__, flush=True)
"#;

impl Flow {
    fn open(ns: &Netns, addr: &str, port: u16) -> (Flow, String) {
        use std::io::BufRead;
        use std::process::Stdio;
        let mut child = ns
            .command("python3")
            .args(["-u", "-c", FLOW_CLIENT, addr, &port.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("flow client");
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut greeting = String::new();
        out.read_line(&mut greeting).unwrap();
        (Flow { child, out }, greeting.trim().to_string())
    }

    fn say(&mut self, line: &str) -> String {
        use std::io::{BufRead, Write};
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
        let mut answer = String::new();
        self.out.read_line(&mut answer).unwrap();
        answer.trim().to_string()
    }
}

impl Drop for Flow {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn full_replace_keeps_established_flows() {
    let name = "full_replace_keeps_established_flows";
    if !require_root(name) || !require_program(name, "/usr/sbin/nft") {
        return;
    }
    let mut t = topo();
    tcp_server(&mut t.h1, "10.1.0.10", 22);
    tcp_server(&mut t.ext, "192.0.2.2", 5000);
    let mut agent = AgentProc::new(Some(&t.vr.name));
    agent.without_self_heal();
    let (code, r) = agent.apply_text("nat.json", PUSH);
    assert_eq!(code, 0, "{r}");
    let (mut inbound, g) = Flow::open(&t.ext, "192.0.2.10", 2222);
    assert!(g.contains("local=10.1.0.10:22"), "{g}");
    let (mut outbound, g) = Flow::open(&t.h1, "192.0.2.2", 5000);
    assert!(g.contains("peer=192.0.2.10"), "{g}");
    assert_eq!(inbound.say("a1"), "OK a1");
    assert_eq!(outbound.say("b1"), "OK b1");
    // A new process reads the table back: the same push sends nothing.
    let (code, r) = agent.apply_text("nat-same.json", PUSH);
    assert_eq!(code, 0, "{r}");
    assert_eq!(nftables_changes(&r), Some(0), "nothing to send: {r}");
    // A new rule is structure: the table is replaced whole. Conntrack keeps both flows.
    let more = PUSH.replace(
        r#"{"id":1,"#,
        r#"{"id":9,"public_ip":"192.0.2.10","protocol":"udp","ports":53},{"id":1,"#,
    );
    let (code, r) = agent.apply_text("nat-more.json", &more);
    assert_eq!(code, 0, "{r}");
    assert_eq!(nftables_changes(&r), Some(1), "full replace expected: {r}");
    assert_eq!(inbound.say("a2"), "OK a2");
    assert_eq!(outbound.say("b2"), "OK b2");
    // A starting agent replays the state onto a matching table: the flows still live.
    agent.start();
    assert_eq!(inbound.say("a3"), "OK a3");
    assert_eq!(outbound.say("b3"), "OK b3");
    // `check` sees the table; once it is gone, `check` says so.
    let out = agent.cli(&["check", "--json"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("sets/maps and"), "{text}");
    t.vr.exec_ok("nft", &["delete", "table", "ip", "vr"]);
    let out = agent.cli(&["check", "--json"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("not enforced"), "{text}");
    assert_eq!(out.status.code(), Some(1), "{text}");
}
