//! Issue 7: `diff` notices drift made by hand — a rule deleted with `nft`, an address removed
//! with `ip`, a connection unloaded with `swanctl` — and `reconcile` repairs each, after which
//! `diff` exits 0.

use vr_tests::peers::{Charon, CHARON};
use vr_tests::{require_program, require_root, veth, AgentProc, Netns};

const PUSH: &str = r#"{"schema":1,
  "interfaces":[{"device":"eth0","role":"guest","addresses":["10.1.1.1/24"]},{"device":"eth2","role":"public","addresses":["192.0.2.10/24"]}],
  "nat":{"port_forwards":[{"public_ip":"192.0.2.10","protocol":"tcp","public_ports":8080,"private_ip":"10.1.1.10","private_ports":80}]},
  "vpn":{"site_to_site":[{"local_public_ip":"192.0.2.10","local_cidrs":["10.1.1.0/24"],"peer_gateway":"192.0.2.20","peer_cidrs":["10.2.0.0/24"],
    "psk":"diff-test-psk-1","ike_policy":"aes128-sha256;modp2048","esp_policy":"aes128-sha256","passive":true}]}}"#;

fn diff(agent: &AgentProc) -> (i32, serde_json::Value) {
    let out = agent.cli(&["diff", "--json"]);
    (
        out.status.code().unwrap_or(-1),
        serde_json::from_slice(&out.stdout).unwrap_or_default(),
    )
}

#[test]
fn diff_sees_hand_made_drift_and_reconcile_repairs_it() {
    if !require_root("diff_sees_hand_made_drift_and_reconcile_repairs_it")
        || !require_program("diff_sees_hand_made_drift_and_reconcile_repairs_it", CHARON)
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut vr = Netns::new("dfvr");
    let peer = Netns::new("dfpeer");
    veth(&vr, "eth2", &peer, "eth0");
    vr.ip(&[
        "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p",
    ]);
    vr.ip(&["link", "set", "eth0", "up"]);
    vr.ip(&["addr", "replace", "10.1.1.1/24", "dev", "eth0"]);
    vr.ip(&["addr", "replace", "192.0.2.10/24", "dev", "eth2"]);
    let charon = Charon::start(&mut vr, &dir.path().join("charon"));
    let mut agent = AgentProc::new(Some(&vr.name));
    agent.without_self_heal();
    agent.extra_args = vec![
        "--vici-socket".into(),
        charon.vici_socket.display().to_string(),
    ];
    agent.start();
    let (code, r) = agent.apply_text("p.json", PUSH);
    assert_eq!(code, 0, "{r}");
    let (code, d) = diff(&agent);
    assert_eq!(code, 0, "in sync right after the push: {d}");

    // A rule deleted by hand.
    let listing = vr.exec_ok("nft", &["-a", "list", "chain", "ip", "vr", "pre_nat"]);
    let handle = listing
        .lines()
        .find(|l| l.contains("dnat"))
        .and_then(|l| l.rsplit("handle ").next())
        .expect("a dnat rule")
        .trim()
        .to_string();
    vr.exec_ok(
        "nft",
        &["delete", "rule", "ip", "vr", "pre_nat", "handle", &handle],
    );
    let (code, d) = diff(&agent);
    assert_eq!(code, 1, "deleted rule not noticed: {d}");
    assert!(
        d["plan"].as_str().unwrap_or("").contains("# nftables:"),
        "{d}"
    );
    let out = agent.cli(&["reconcile"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(diff(&agent).0, 0, "reconcile did not repair the ruleset");
    assert!(vr
        .exec_ok("nft", &["list", "chain", "ip", "vr", "pre_nat"])
        .contains("dnat"));

    // An address removed by hand.
    vr.ip(&["addr", "del", "192.0.2.10/24", "dev", "eth2"]);
    let (code, d) = diff(&agent);
    assert_eq!(code, 1, "removed address not noticed: {d}");
    assert!(
        d["plan"]
            .as_str()
            .unwrap_or("")
            .contains("ip addr replace 192.0.2.10/24 brd + dev eth2"),
        "{d}"
    );
    assert!(agent.cli(&["reconcile"]).status.success());
    assert_eq!(diff(&agent).0, 0, "reconcile did not restore the address");
    assert!(vr
        .ip(&["-4", "addr", "show", "eth2"])
        .contains("192.0.2.10/24"));

    // A connection unloaded by hand.
    // swanctl 5.9 has no --unload-conn: loading an empty connection set unloads the rest.
    let empty = dir.path().join("empty-swanctl.conf");
    std::fs::write(&empty, "connections {\n}\n").unwrap();
    let out = charon.swanctl(&["--load-conns", "--file", empty.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, d) = diff(&agent);
    assert_eq!(code, 1, "unloaded connection not noticed: {d}");
    assert!(
        d["plan"]
            .as_str()
            .unwrap_or("")
            .contains("load-conn s2s-192.0.2.20"),
        "{d}"
    );
    assert!(agent.cli(&["reconcile"]).status.success());
    assert_eq!(diff(&agent).0, 0, "reconcile did not reload the connection");
    let conns = String::from_utf8_lossy(&charon.swanctl(&["--list-conns"]).stdout).into_owned();
    assert!(conns.contains("s2s-192.0.2.20"), "{conns}");
    assert!(
        !d.to_string().contains("diff-test-psk"),
        "PSK in diff output"
    );
}
