//! Kernel state the agent owns (issue 12). In a fresh namespace, where the kernel starts with
//! `ip_forward=0` and no harness turns it on, a pushed port forward carries traffic because
//! the agent turns forwarding on. A hand-reset `ip_forward=0` shows in `diff`, and
//! `reconcile` repairs it. With self-heal on, the agent repairs a reset sysctl, and restores
//! its nftables table deleted by hand, by itself within the observe interval, without a push.

use std::time::Duration;

use vr_tests::summary::{record, Row};
use vr_tests::traffic::{tcp_probe, tcp_server};
use vr_tests::{require_root, veth, wait_for, AgentProc, Netns};

const PUSH: &str = r#"{"schema":1,
  "interfaces":[{"device":"eth0","role":"guest","addresses":["10.1.1.1/24"]},
                {"device":"eth2","role":"public","addresses":["192.0.2.11/24"]}],
  "nat":{"port_forwards":[{"public_ip":"192.0.2.11","protocol":"tcp","public_ports":8080,"private_ip":"10.1.1.10","private_ports":80}]},
  "firewall":{"ingress":[{"id":7,"public_ip":"192.0.2.11","protocol":"tcp","ports":8080,"source_cidrs":[]}]}}"#;

const T: Duration = Duration::from_secs(2);
/// The agent's default `--observe-interval` (seconds).
const DEFAULT_OBSERVE_INTERVAL: u64 = 5;

struct Topo {
    vr: Netns,
    _srv: Netns,
    cli: Netns,
}

/// vr (eth0 guest 10.1.1.1, eth2 public 192.0.2.11) between a server and a client; only the
/// hosts get addresses and routes from the harness, the router nothing at all.
fn topology(tag: &str) -> Topo {
    let vr = Netns::new(&format!("{tag}vr"));
    let mut srv = Netns::new(&format!("{tag}srv"));
    let cli = Netns::new(&format!("{tag}cli"));
    veth(&vr, "eth0", &srv, "eth0");
    veth(&vr, "eth2", &cli, "eth0");
    srv.ip(&["addr", "add", "10.1.1.10/24", "dev", "eth0"]);
    srv.ip(&["route", "add", "default", "via", "10.1.1.1"]);
    cli.ip(&["addr", "add", "192.0.2.100/24", "dev", "eth0"]);
    tcp_server(&mut srv, "10.1.1.10", 80);
    Topo { vr, _srv: srv, cli }
}

fn sysctl(ns: &Netns, key: &str) -> String {
    ns.exec_ok("sysctl", &["-n", key]).trim().to_string()
}

fn passes(t: &Topo) -> bool {
    tcp_probe(&t.cli, "192.0.2.11", 8080, T).is_ok()
}

#[test]
fn the_agent_turns_forwarding_on_and_diff_and_reconcile_own_it() {
    if !require_root("the_agent_turns_forwarding_on_and_diff_and_reconcile_own_it") {
        return;
    }
    let t = topology("tun");
    assert_eq!(
        sysctl(&t.vr, "net.ipv4.ip_forward"),
        "0",
        "a fresh namespace"
    );
    let mut agent = AgentProc::new(Some(&t.vr.name));
    agent.without_self_heal();
    agent.start();

    // The dry run prints the sysctl writes with everything else.
    let dry = agent.dir.path().join("dry.json");
    std::fs::write(&dry, PUSH).unwrap();
    let out = agent.cli(&["apply", "--dry-run", dry.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("sysctl -w net.ipv4.ip_forward=1"),
        "dry run: {text}"
    );
    assert_eq!(
        sysctl(&t.vr, "net.ipv4.ip_forward"),
        "0",
        "a dry run changes nothing"
    );

    let (code, r) = agent.apply_text("push.json", PUSH);
    assert_eq!(code, 0, "{r}");
    assert!(passes(&t), "the port forward carries a connection");
    assert_eq!(sysctl(&t.vr, "net.ipv4.ip_forward"), "1");
    assert_eq!(
        sysctl(&t.vr, "net.ipv4.conf.eth0.rp_filter"),
        "1",
        "guest: strict"
    );
    assert_eq!(
        sysctl(&t.vr, "net.ipv4.conf.eth2.rp_filter"),
        "2",
        "public: loose"
    );
    assert_eq!(sysctl(&t.vr, "net.ipv6.conf.eth2.accept_ra"), "0");
    assert_eq!(
        sysctl(&t.vr, "net.netfilter.nf_conntrack_tcp_timeout_established"),
        "86400"
    );
    assert_eq!(agent.cli(&["diff"]).status.code(), Some(0), "in sync");

    // Someone turns forwarding off by hand: diff names it, reconcile repairs it.
    t.vr.sysctl("net.ipv4.ip_forward=0");
    assert!(!passes(&t), "no forwarding, no port forward");
    let out = agent.cli(&["diff"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("sysctl -w net.ipv4.ip_forward=1  # was 0"),
        "{text}"
    );
    let out = agent.cli(&["check"]);
    assert_eq!(out.status.code(), Some(1), "check fails on drift");
    assert!(agent.cli(&["reconcile"]).status.success());
    assert_eq!(sysctl(&t.vr, "net.ipv4.ip_forward"), "1");
    assert!(passes(&t), "repaired");
}

#[test]
fn self_heal_repairs_a_reset_sysctl_without_a_push() {
    if !require_root("self_heal_repairs_a_reset_sysctl_without_a_push") {
        return;
    }
    let t = topology("tuh");
    let mut agent = AgentProc::new(Some(&t.vr.name));
    agent.extra_args = vec!["--observe-interval".into(), "1".into()];
    agent.start();
    let (code, r) = agent.apply_text("push.json", PUSH);
    assert_eq!(code, 0, "{r}");
    assert!(passes(&t));
    t.vr.sysctl("net.ipv4.ip_forward=0");
    t.vr.sysctl("net.ipv4.conf.eth0.rp_filter=0");
    assert!(
        wait_for(Duration::from_secs(10), || sysctl(
            &t.vr,
            "net.ipv4.ip_forward"
        ) == "1"
            && sysctl(&t.vr, "net.ipv4.conf.eth0.rp_filter") == "1"),
        "not repaired; log:\n{}",
        agent.log_text()
    );
    assert!(passes(&t), "forwarding back without a push");
    let out = agent.cli(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["self_heal"]["repairs"].as_u64() >= Some(1), "status: {v}");
    assert_eq!(v["generation"], 1, "no push was made: {v}");
}

#[test]
fn a_deleted_table_is_restored_within_the_observe_interval() {
    if !require_root("a_deleted_table_is_restored_within_the_observe_interval") {
        return;
    }
    let t = topology("tud");
    let mut agent = AgentProc::new(Some(&t.vr.name));
    // The product's default interval: this is the promise the README makes.
    agent.start();
    let (code, r) = agent.apply_text("push.json", PUSH);
    assert_eq!(code, 0, "{r}");
    assert!(passes(&t));
    let rounds = 3;
    let mut failures = 0;
    let mut slowest = Duration::ZERO;
    for _ in 0..rounds {
        t.vr.exec_ok("nft", &["delete", "table", "ip", "vr"]);
        let gone = std::time::Instant::now();
        let back = wait_for(Duration::from_secs(12), || {
            t.vr.exec("nft", &["list", "table", "ip", "vr"])
                .status
                .success()
        });
        slowest = slowest.max(gone.elapsed());
        if !back || !passes(&t) {
            failures += 1;
        }
    }
    let out = agent.cli(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    record(Row {
        check: "self-heal: nft table deleted".into(),
        runs: rounds,
        failures,
        unit: format!(
            "deletions (slowest restore {:.1} s, no push)",
            slowest.as_secs_f64()
        ),
        ..Default::default()
    });
    assert_eq!(failures, 0, "log:\n{}", agent.log_text());
    assert!(
        slowest <= Duration::from_secs(DEFAULT_OBSERVE_INTERVAL + 2),
        "took {slowest:?}"
    );
    assert_eq!(v["generation"], 1, "no push was made: {v}");
}
