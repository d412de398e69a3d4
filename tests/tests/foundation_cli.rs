//! The synchronous paths a management server and an operator use: `apply` with and without a
//! running agent, `--dry-run`, `show state` with secrets redacted.

use vr_tests::{require_root, AgentProc, Netns};

fn router() -> Netns {
    let ns = Netns::new("vrcli");
    ns.ip(&[
        "link", "add", "lan0", "type", "veth", "peer", "name", "lan0p",
    ]);
    ns.ip(&["addr", "add", "10.99.0.1/24", "dev", "lan0"]);
    ns.ip(&["link", "set", "lan0", "up"]);
    ns.ip(&["link", "set", "lan0p", "up"]);
    ns
}

const PUSH: &str = r#"{"schema":1,"routes":[{"destination":"10.201.0.0/24","gateway":"10.99.0.2","device":"lan0"}],
  "vpn":{"site_to_site":[{"local_public_ip":"192.0.2.10","local_cidrs":["10.1.1.0/24"],"peer_gateway":"203.0.113.5",
  "peer_cidrs":["10.2.0.0/24"],"psk":"cli-test-psk-0xdeadbeef","ike_policy":"aes128-sha1;modp1536","esp_policy":"aes128-sha1"}]}}"#;

#[test]
fn apply_without_a_running_agent_applies_in_process() {
    if !require_root("apply_without_a_running_agent_applies_in_process") {
        return;
    }
    let ns = router();
    let agent = AgentProc::new(Some(&ns.name));
    let (code, r) = agent.apply_text("p.json", PUSH);
    assert_eq!(code, 0, "{r}");
    assert_eq!(r[0]["generation"], 1);
    let state: serde_json::Value =
        serde_json::from_slice(&agent.state_json().expect("state.json written")).unwrap();
    assert_eq!(state["generation"], 1);
    // status without an agent: understood, but it is not running -> exit 1
    let out = agent.cli(&["status"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("not running"));
    // show state works from the state directory and redacts the PSK
    let out = agent.cli(&["show", "state"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("203.0.113.5"),
        "{text}"
    );
    assert!(!text.contains("cli-test-psk"), "PSK printed: {text}");
}

#[test]
fn dry_run_prints_the_plan_and_changes_nothing() {
    if !require_root("dry_run_prints_the_plan_and_changes_nothing") {
        return;
    }
    let ns = router();
    let mut agent = AgentProc::new(Some(&ns.name));
    agent.start();
    let p = agent.dir.path().join("p.json");
    std::fs::write(&p, PUSH).unwrap();
    let out = agent.cli(&["apply", "--dry-run", p.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("dry run") && text.contains("# routes"),
        "{text}"
    );
    assert!(!text.contains("cli-test-psk"), "PSK printed: {text}");
    assert!(agent.state_json().is_none(), "dry run wrote state");
    let routes = ns.ip(&["route", "show", "table", "all"]);
    assert!(
        !routes.contains("10.201.0.0"),
        "dry run changed the kernel: {routes}"
    );
    // and the real apply, through the socket, redacts too
    let (code, r) = agent.apply(&[&p]);
    assert_eq!(code, 0, "{r}");
    assert!(!r.to_string().contains("cli-test-psk"));
    let out = agent.cli(&["show", "state", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["state"]["vpn"]["site_to_site"][0]["psk"], "<redacted>");
    let out = agent.cli(&["show", "pushes", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["name"], "p.json");
    assert!(!agent.log_text().contains("cli-test-psk"), "PSK in the log");
}
