//! A push after a self-heal pass is still planned as the elements it changes (issue 15).
//!
//! The kernel keeps one ruleset generation for every table, and the rule counters' table bumps
//! it right after the nftables concern in every push that changes forwards; the next self-heal
//! pass then listed `ip vr`. It used to drop the concern's mirror whatever the listing said, so
//! the push after it (nearly every push a management server sends, seconds apart) planned from
//! the listing and replaced the table whole. Now the agent's own writes are not drift (no
//! listing at all), a listing that holds exactly the mirror keeps it, and a change by somebody
//! else (an element deleted by hand) is still drift, repaired.

use std::time::Duration;

use vr_tests::bench_e2e::forwardrules;
use vr_tests::{require_root, AgentProc, Netns};

const BASE: &str = r#"{"schema":1,
    "interfaces":[{"device":"eth0","role":"guest","addresses":["10.1.0.1/16"]},
                  {"device":"eth2","role":"public","addresses":["192.0.2.10/24","192.0.2.11/24"]}],
    "nat":{"source_nat":[{"device":"eth2","public_ip":"192.0.2.10","source_cidrs":["10.1.0.0/16"]}]}}"#;

/// The nftables concern's `applying` line of the push that ends the log after `from`.
fn nft_applying(agent: &AgentProc, from: usize) -> String {
    let log = agent.log_text();
    log.get(from..)
        .unwrap_or("")
        .split("applying")
        .filter(|chunk| chunk.contains(r#"concern="nftables""#))
        .map(|chunk| chunk.split(r#"concern="nftables""#).next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("|")
}

fn push(agent: &AgentProc, name: &str, text: &str) {
    let file = agent.dir.path().join(name);
    std::fs::write(&file, text).expect("write push");
    let (code, r) = agent.apply(&[&file]);
    assert_eq!(code, 0, "{name}: {r}");
}

#[test]
fn a_push_after_a_self_heal_pass_changes_only_its_elements() {
    if !require_root("a_push_after_a_self_heal_pass_changes_only_its_elements") {
        return;
    }
    let ns = Netns::new("nftheal");
    for (a, b) in [("eth0", "eth0p"), ("eth2", "eth2p")] {
        ns.ip(&["link", "add", a, "type", "veth", "peer", "name", b]);
        ns.ip(&["link", "set", a, "up"]);
        ns.ip(&["link", "set", b, "up"]);
    }
    let mut agent = AgentProc::new(Some(&ns.name));
    agent
        .env
        .push(("VR_AGENT_OBSERVE_INTERVAL".into(), "1".into()));
    agent.start();
    push(&agent, "base.json", BASE);
    push(&agent, "full.json", &forwardrules(0, 200));
    let before_plus1 = agent.log_text().len();
    push(&agent, "plus1.json", &forwardrules(0, 201));
    // Self-heal passes (every second) see the generation the rule counters bumped after the
    // nftables concern's write: the agent's own, so nobody lists the 200-forward table.
    std::thread::sleep(Duration::from_secs(3));
    let mark = agent.log_text().len();
    let passes = agent.log_text();
    assert!(
        !passes[before_plus1..mark].contains("reading table ip vr back"),
        "a self-heal pass listed the table after the agent's own writes:\n{}",
        &passes[before_plus1..mark]
    );
    push(&agent, "plus2.json", &forwardrules(0, 202));
    let applying = nft_applying(&agent, mark);
    assert!(
        applying.contains("add element ip vr pf_exact") && !applying.contains("plan at debug"),
        "the push after a self-heal pass was not one element: {applying:?}"
    );
    // Drift is still drift: an element deleted by hand comes back without a push.
    ns.exec_ok(
        "nft",
        &[
            "delete",
            "element",
            "ip",
            "vr",
            "pf_exact",
            "{ 192.0.2.11 . tcp . 10005 }",
        ],
    );
    let back = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(200));
        ns.exec_ok("nft", &["list", "map", "ip", "vr", "pf_exact"])
            .contains("10005")
    });
    assert!(back, "the deleted element was not repaired");
    agent.stop();
}
