//! Issue 2 acceptance: SIGKILL between journaling a push's intent and its commit; after a restart
//! the old state is replayed, whole, and the interrupted push left nothing behind.

use std::time::Duration;

use vr_tests::{require_root, wait_for, AgentProc, Netns};

fn router() -> Netns {
    let ns = Netns::new("vrcr");
    ns.ip(&[
        "link", "add", "lan0", "type", "veth", "peer", "name", "lan0p",
    ]);
    ns.ip(&["addr", "add", "10.99.0.1/24", "dev", "lan0"]);
    ns.ip(&["addr", "add", "10.99.0.2/24", "dev", "lan0p"]);
    ns.ip(&["link", "set", "lan0", "up"]);
    ns.ip(&["link", "set", "lan0p", "up"]);
    ns
}

fn push(net: &str) -> String {
    format!(
        r#"{{"schema":1,"routes":[{{"destination":"{net}","gateway":"10.99.0.2","device":"lan0"}}]}}"#
    )
}

#[test]
fn sigkill_between_state_next_and_commit_replays_the_old_state() {
    if !require_root("sigkill_between_state_next_and_commit_replays_the_old_state") {
        return;
    }
    let ns = router();
    let mut agent = AgentProc::new(Some(&ns.name));
    agent.start();
    let (code, old) = agent.apply_text("old.json", &push("10.201.0.0/24"));
    assert_eq!(code, 0, "{old}");
    let routes_applied = old[0]["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|o| o["concern"] == "routes" && o["status"] == "applied");
    let old_bytes = agent.state_json().expect("state.json after the first push");
    agent.stop();

    // The test hook parks the agent right before the commit record (the push's intent is in
    // the journal, executed, not committed).
    let marker = agent.dir.path().join("at-commit");
    agent.env.push((
        "VR_AGENT_TEST_HOOK".into(),
        format!("before-commit:{}", marker.display()),
    ));
    agent.start();
    let new_file = agent.dir.path().join("new.json");
    std::fs::write(&new_file, push("10.202.0.0/24")).unwrap();
    // The management server's synchronous path: `vr-agent apply` over the socket.
    let mut client = agent
        .command()
        .arg("apply")
        .arg(&new_file)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        wait_for(Duration::from_secs(20), || marker.exists()),
        "hook not reached; log:\n{}",
        agent.log_text()
    );
    assert!(
        agent.pending_intent(),
        "the journal must end with the push's intent at the hook"
    );
    agent.kill9();
    let client_status = client.wait().unwrap();
    assert!(
        !client_status.success(),
        "the interrupted apply must not report success"
    );

    agent.env.clear();
    agent.start();
    assert_eq!(
        agent.state_json().unwrap(),
        old_bytes,
        "the committed state must be the old one, byte for byte"
    );
    assert!(
        !agent.pending_intent(),
        "the interrupted intent must be cut off after replay"
    );
    let status: serde_json::Value =
        serde_json::from_slice(&agent.cli(&["status", "--json"]).stdout).unwrap();
    assert_eq!(status["generation"], 1);
    assert_eq!(
        status["replay"]["interrupted_push_rolled_back"], true,
        "{status}"
    );
    let routes = ns.ip(&["-j", "route", "show", "table", "all"]);
    assert!(
        !routes.contains("10.202.0.0"),
        "the interrupted push's route is in the kernel: {routes}"
    );
    assert!(routes_applied, "the routes concern did not apply: {old}");
    assert!(
        routes.contains("10.201.0.0"),
        "the old state's route is not replayed: {routes}"
    );
    // The push failed visibly; sending it again applies it.
    let (code, result) = agent.apply(&[&new_file]);
    assert_eq!(code, 0, "{result}");
    assert_eq!(result[0]["generation"], 2);
}
