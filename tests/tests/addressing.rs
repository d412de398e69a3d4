//! Issue 4 acceptance: addresses, routes and policy routing through rtnetlink, in namespaces.
//!
//! ```text
//! h1 10.1.0.10 -lan0/eth0- vr -eth2/up2- net -cl0/lan0- client 192.0.2.50
//!                              \-eth3/up3-/
//! vr eth2 198.51.100.1/24 (gw .254, default route), eth3 203.0.113.1/24 (gw .254)
//! ```
//!
//! `net` routes between the client and both public subnets and drops any packet from
//! 203.0.113.1 that arrives on the eth2 side: a reply to a connection that came in on eth3
//! only gets through if policy routing sends it back out of eth3.

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use vr_tests::traffic::{ping, tcp_probe, tcp_server};
use vr_tests::{require_program, require_root, veth, wait_for, AgentProc, Netns};

const PUSH: &str = r#"{"schema":1,
 "interfaces":[
   {"device":"eth0","role":"guest","addresses":["10.1.0.1/24"]},
   {"device":"eth2","role":"public","addresses":["198.51.100.1/24","198.51.100.2/24"],
    "gateway":"198.51.100.254"},
   {"device":"eth3","role":"public","addresses":["203.0.113.1/24"],"gateway":"203.0.113.254",
    "mtu":1400}],
 "routes":[{"destination":"10.50.0.0/16","gateway":"10.1.0.10"},
           {"destination":"10.60.0.0/16","gateway":"198.51.100.254","device":"eth2"}],
 "nat":{"source_nat":[{"device":"eth2","public_ip":"198.51.100.1"}],
   "port_forwards":[{"public_ip":"203.0.113.1","protocol":"tcp","public_ports":8080,
     "private_ip":"10.1.0.10","private_ports":8080}]},
 "firewall":{"ingress":[{"id":1,"public_ip":"203.0.113.1","protocol":"tcp","ports":8080},
   {"id":2,"public_ip":"203.0.113.1","protocol":"icmp"}]}}"#;

/// The same push with 198.51.100.2 and the 10.60.0.0/16 route revoked.
fn revoked() -> String {
    PUSH.replace(r#","198.51.100.2/24""#, "").replace(
        r#",
           {"destination":"10.60.0.0/16","gateway":"198.51.100.254","device":"eth2"}"#,
        "",
    )
}

struct Topo {
    h1: Netns,
    vr: Netns,
    net: Netns,
    client: Netns,
}

fn topo() -> Topo {
    let h1 = Netns::new("adh1");
    let vr = Netns::new("advr");
    let net = Netns::new("adnet");
    let client = Netns::new("adcl");
    veth(&h1, "lan0", &vr, "eth0");
    veth(&net, "up2", &vr, "eth2");
    veth(&net, "up3", &vr, "eth3");
    veth(&client, "lan0", &net, "cl0");
    h1.ip(&["addr", "add", "10.1.0.10/24", "dev", "lan0"]);
    h1.ip(&["route", "add", "default", "via", "10.1.0.1"]);
    net.ip(&["addr", "add", "198.51.100.254/24", "dev", "up2"]);
    net.ip(&["addr", "add", "203.0.113.254/24", "dev", "up3"]);
    net.ip(&["addr", "add", "192.0.2.1/24", "dev", "cl0"]);
    net.sysctl("net.ipv4.ip_forward=1");
    // Learn addresses from gratuitous ARP (the default only updates known ones).
    net.sysctl("net.ipv4.conf.up2.arp_accept=1");
    client.ip(&["addr", "add", "192.0.2.50/24", "dev", "lan0"]);
    client.ip(&["route", "add", "default", "via", "192.0.2.1"]);
    // IPv6 link-local addresses arrive on their own a second after a link comes up: they
    // would be noise in the `ip monitor` check, and the agent manages IPv4 only.
    vr.sysctl("net.ipv6.conf.all.disable_ipv6=1");
    vr.sysctl("net.ipv6.conf.default.disable_ipv6=1");
    net.exec_ok(
        "nft",
        &[
            "add table ip asym; add chain ip asym pathcheck { type filter hook forward priority 0; }; \
             add rule ip asym pathcheck iifname \"up2\" ip saddr 203.0.113.1 counter drop; \
             add rule ip asym pathcheck iifname \"up3\" ip saddr 203.0.113.1 counter accept",
        ],
    );
    Topo {
        h1,
        vr,
        net,
        client,
    }
}

fn ok(result: &(i32, Value)) {
    assert_eq!(result.0, 0, "push failed: {}", result.1);
}

fn changes(result: &Value, concern: &str) -> u64 {
    result[0]["outcomes"]
        .as_array()
        .and_then(|a| a.iter().find(|o| o["concern"] == concern))
        .and_then(|o| o["changes"].as_u64())
        .unwrap_or_else(|| panic!("no {concern} outcome in {result}"))
}

/// `ip -j -4 addr`: (device, address/prefix).
fn addresses(ns: &Netns) -> BTreeSet<String> {
    let v: Value = serde_json::from_str(&ns.ip(&["-j", "-4", "addr"])).unwrap();
    let mut out = BTreeSet::new();
    for l in v.as_array().unwrap() {
        for a in l["addr_info"].as_array().unwrap() {
            if l["ifname"] != "lo" {
                out.insert(format!(
                    "{} {}/{}",
                    l["ifname"].as_str().unwrap(),
                    a["local"].as_str().unwrap(),
                    a["prefixlen"]
                ));
            }
        }
    }
    out
}

/// `ip -j -4 route show table all` without the kernel's own (local, broadcast, connected).
fn routes(ns: &Netns) -> BTreeSet<String> {
    let v: Value =
        serde_json::from_str(&ns.ip(&["-j", "-4", "route", "show", "table", "all"])).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .filter(|r| r["protocol"] != "kernel" && r["table"] != "local")
        .map(|r| {
            format!(
                "{} via {} dev {} table {}",
                r["dst"].as_str().unwrap(),
                r["gateway"].as_str().unwrap_or("-"),
                r["dev"].as_str().unwrap_or("-"),
                r["table"].as_str().unwrap_or("main")
            )
        })
        .collect()
}

/// `ip -j -4 rule`: the non-default rules.
fn rules(ns: &Netns) -> BTreeSet<String> {
    let v: Value = serde_json::from_str(&ns.ip(&["-j", "-4", "rule"])).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .filter(|r| ![0, 32766, 32767].contains(&r["priority"].as_u64().unwrap()))
        .map(|r| {
            format!(
                "{} fwmark {} lookup {}",
                r["priority"],
                r["fwmark"].as_str().unwrap_or("-"),
                r["table"].as_str().unwrap()
            )
        })
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Runs `f` while `ip monitor` watches `ns`; returns what it printed.
fn monitored(ns: &mut Netns, f: impl FnOnce()) -> String {
    let out = tempfile::NamedTempFile::new().unwrap();
    let file = out.reopen().unwrap();
    let pid = ns.spawn(
        "ip",
        &["monitor", "link", "address", "route", "rule"],
        Stdio::from(file),
        Stdio::null(),
    );
    std::thread::sleep(Duration::from_millis(300));
    f();
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: kill(2) of the monitor this test started.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    std::fs::read_to_string(out.path()).unwrap()
}

#[test]
fn push_owns_exactly_its_addresses_routes_and_rules() {
    if !require_root("push_owns_exactly_its_addresses_routes_and_rules") {
        return;
    }
    let mut t = topo();
    // Added by hand before the agent ever ran: no push or replay may touch these.
    t.vr.ip(&["addr", "add", "198.51.100.77/24", "dev", "eth2"]);
    t.vr.ip(&["link", "set", "eth2", "up"]);
    t.vr.ip(&["route", "add", "10.77.0.0/16", "via", "198.51.100.253"]);
    // A default of someone else's at another metric: the agent's default must never take it.
    t.vr.ip(&[
        "route",
        "add",
        "default",
        "via",
        "198.51.100.253",
        "metric",
        "100",
    ]);
    let hand_addr = "eth2 198.51.100.77/24";
    let hand_route = "10.77.0.0/16 via 198.51.100.253 dev eth2 table main";
    let hand_default = "default via 198.51.100.253 dev eth2 table main";

    let mut agent = AgentProc::new(Some(&t.vr.name));
    agent.start();
    ok(&agent.apply_text("push.json", PUSH));
    assert_eq!(
        addresses(&t.vr),
        set(&[
            "eth0 10.1.0.1/24",
            hand_addr,
            "eth2 198.51.100.1/24",
            "eth2 198.51.100.2/24",
            "eth3 203.0.113.1/24",
        ])
    );
    let full_routes = set(&[
        "default via 198.51.100.254 dev eth2 table main",
        hand_route,
        hand_default,
        "10.50.0.0/16 via 10.1.0.10 dev eth0 table main",
        "10.60.0.0/16 via 198.51.100.254 dev eth2 table main",
        "default via 198.51.100.254 dev eth2 table 102",
        "198.51.100.0/24 via - dev eth2 table 102",
        "default via 203.0.113.254 dev eth3 table 103",
        "203.0.113.0/24 via - dev eth3 table 103",
    ]);
    assert_eq!(routes(&t.vr), full_routes);
    assert_eq!(
        rules(&t.vr),
        set(&["102 fwmark 0x66 lookup 102", "103 fwmark 0x67 lookup 103"])
    );
    assert!(t.vr.ip(&["link", "show", "eth3"]).contains("mtu 1400"));

    // Gratuitous ARP: `net` learned where 198.51.100.1 lives without asking.
    let mac = t.vr.ip(&["-j", "link", "show", "eth2"]);
    let mac: Value = serde_json::from_str(&mac).unwrap();
    let mac = mac[0]["address"].as_str().unwrap().to_string();
    let learned = wait_for(Duration::from_secs(3), || {
        t.net
            .ip(&["neigh", "show", "198.51.100.1", "dev", "up2"])
            .contains(&mac)
    });
    assert!(
        learned,
        "no neighbour entry for 198.51.100.1 from the gratuitous ARP"
    );

    // The same push again, then a SIGKILL and a replay: no netlink change at all. One known
    // change at the end proves the monitor was watching.
    let vr_name = t.vr.name.clone();
    let events = monitored(&mut t.vr, || {
        let again = agent.apply_text("push.json", PUSH);
        ok(&again);
        assert_eq!(changes(&again.1, "links"), 0);
        assert_eq!(changes(&again.1, "routes"), 0);
        agent.kill9();
        agent.start();
        let st = std::process::Command::new("ip")
            .args([
                "-n",
                &vr_name,
                "addr",
                "add",
                "10.255.255.1/32",
                "dev",
                "lo",
            ])
            .status()
            .unwrap();
        assert!(st.success());
    });
    assert!(
        events.contains("10.255.255.1"),
        "the monitor saw nothing: {events:?}"
    );
    let foreign: Vec<&str> = events
        .lines()
        .filter(|l| !l.contains("10.255.255.1") && !l.trim().starts_with("valid_lft"))
        .collect();
    assert!(
        foreign.is_empty(),
        "replay changed the kernel:\n{}",
        foreign.join("\n")
    );
    t.vr.ip(&["addr", "del", "10.255.255.1/32", "dev", "lo"]);
    // Added by hand after the push, on a NIC whose primary address is the agent's: when the
    // agent's address goes, this one must be promoted, not deleted with it.
    t.vr.ip(&["addr", "add", "203.0.113.99/24", "dev", "eth3"]);

    // Revoke one address and one route: exactly those go.
    ok(&agent.apply_text("revoke.json", &revoked()));
    assert_eq!(
        addresses(&t.vr),
        set(&[
            "eth0 10.1.0.1/24",
            hand_addr,
            "eth2 198.51.100.1/24",
            "eth3 203.0.113.1/24",
            "eth3 203.0.113.99/24",
        ])
    );
    let mut expected = full_routes.clone();
    expected.remove("10.60.0.0/16 via 198.51.100.254 dev eth2 table main");
    assert_eq!(routes(&t.vr), expected);

    // Everything the agent added goes with an empty push; the hand-made pair stays.
    ok(&agent.apply_text(
        "empty.json",
        r#"{"schema":1,"interfaces":[],"routes":[],"nat":{},"firewall":{}}"#,
    ));
    assert_eq!(addresses(&t.vr), set(&[hand_addr, "eth3 203.0.113.99/24"]));
    assert_eq!(routes(&t.vr), set(&[hand_route, hand_default]));
    assert!(rules(&t.vr).is_empty());
    drop(t.h1);
}

#[test]
fn replies_leave_through_the_public_nic_the_connection_came_in_on() {
    if !require_root("replies_leave_through_the_public_nic_the_connection_came_in_on")
        || !require_program(
            "replies_leave_through_the_public_nic_the_connection_came_in_on",
            "/usr/sbin/nft",
        )
    {
        return;
    }
    let mut t = topo();
    let mut agent = AgentProc::new(Some(&t.vr.name));
    agent.without_self_heal();
    agent.start();
    ok(&agent.apply_text("push.json", PUSH));
    tcp_server(&mut t.h1, "10.1.0.10", 8080);

    // To the router itself on its second public NIC, and through a port forward on it.
    assert!(
        ping(&t.client, "203.0.113.1", 2),
        "no echo reply from 203.0.113.1"
    );
    let got = tcp_probe(&t.client, "203.0.113.1", 8080, Duration::from_secs(5));
    assert_eq!(got.as_deref(), Ok("peer=192.0.2.50 local=10.1.0.10:8080"));
    // And on the first NIC, whose replies take the main table's default.
    assert!(
        ping(&t.client, "198.51.100.1", 1),
        "no echo reply from 198.51.100.1"
    );

    let counters = t
        .net
        .exec_ok("nft", &["list", "chain", "ip", "asym", "pathcheck"]);
    assert!(
        counters.contains("iifname \"up2\" ip saddr 203.0.113.1 counter packets 0 bytes 0 drop"),
        "a reply left through eth2:\n{counters}"
    );

    // Without the rules (as before this agent), the same connection dies on the asymmetric
    // path: proof that the check above can fail.
    t.vr.ip(&["rule", "del", "priority", "103"]);
    assert!(
        tcp_probe(&t.client, "203.0.113.1", 8080, Duration::from_secs(2)).is_err(),
        "connection succeeded without policy routing: the topology does not test it"
    );
    // `check` names the missing rule.
    let out = agent.cli(&["check", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let line = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "routes and policy rules")
        .cloned()
        .unwrap_or_default();
    assert_eq!(line["verdict"], "fail", "{v}");
    assert!(
        line["detail"]
            .as_str()
            .unwrap_or("")
            .contains("ip rule add priority 103"),
        "{line}"
    );
    // `reconcile` repairs the drift.
    let out = agent.cli(&["reconcile"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let got = tcp_probe(&t.client, "203.0.113.1", 8080, Duration::from_secs(5));
    assert!(got.is_ok(), "after reconcile: {got:?}");
}
