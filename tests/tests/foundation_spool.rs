//! Issue 2 acceptance: 50 pushes written into the spool of a running agent (temp name, then
//! rename) are all processed, in name order, each with its result file.

use std::time::Duration;

use vr_tests::{require_root, wait_for, AgentProc, Netns};

/// A router namespace with one veth pair inside it, so routes have a reachable gateway.
fn router() -> Netns {
    let ns = Netns::new("vrsp");
    ns.ip(&[
        "link", "add", "lan0", "type", "veth", "peer", "name", "lan0p",
    ]);
    ns.ip(&["addr", "add", "10.99.0.1/24", "dev", "lan0"]);
    ns.ip(&["addr", "add", "10.99.0.2/24", "dev", "lan0p"]);
    ns.ip(&["link", "set", "lan0", "up"]);
    ns.ip(&["link", "set", "lan0p", "up"]);
    ns
}

fn push(i: usize) -> String {
    format!(
        r#"{{"schema":1,"routes":[{{"destination":"10.200.{i}.0/24","gateway":"10.99.0.2","device":"lan0"}}]}}"#
    )
}

#[test]
fn fifty_spool_pushes_are_processed_in_name_order() {
    if !require_root("fifty_spool_pushes_are_processed_in_name_order") {
        return;
    }
    let ns = router();
    let mut agent = AgentProc::new(Some(&ns.name));
    // The first 25 wait in the spool before the agent starts, written in reverse name order:
    // the start-up scan must still take them by name. The other 25 arrive while it runs.
    for i in (0..25).rev() {
        agent.spool_push(&format!("push-{i:03}.json"), &push(i));
    }
    agent.start();
    for i in 25..50 {
        agent.spool_push(&format!("push-{i:03}.json"), &push(i));
    }
    for i in 0..50 {
        let name = format!("push-{i:03}.json");
        let (ok, result) = agent
            .spool_result(&name, Duration::from_secs(30))
            .unwrap_or_else(|| panic!("{name} not processed; log:\n{}", agent.log_text()));
        assert!(ok, "{name} failed: {result}");
        assert_eq!(result["name"], name.as_str());
        // The result is written first (a crash in between reprocesses the push rather than
        // losing its result), then the push itself moves.
        let moved = agent.spool_dir.join("done").join(&name);
        assert!(
            wait_for(Duration::from_secs(5), || moved.exists()),
            "{name} not moved to done/"
        );
        // Generations are handed out in processing order: the i-th name must be the i-th commit.
        assert_eq!(
            result["generation"],
            (i + 1) as u64,
            "{name} processed out of order: {result}; log:\n{}",
            agent.log_text()
        );
    }
    let left: Vec<_> = std::fs::read_dir(&agent.spool_dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "files left in the spool: {left:?}");
    let state: serde_json::Value = serde_json::from_slice(&agent.state_json().unwrap()).unwrap();
    assert_eq!(state["generation"], 50);
    assert_eq!(state["state"]["routes"][0]["destination"], "10.200.49.0/24");
}

#[test]
fn writer_temp_files_are_ignored_and_bad_pushes_fail_with_a_result() {
    if !require_root("writer_temp_files_are_ignored_and_bad_pushes_fail_with_a_result") {
        return;
    }
    let ns = router();
    let mut agent = AgentProc::new(Some(&ns.name));
    agent.start();
    std::fs::write(agent.spool_dir.join(".half-written.json"), "{").unwrap();
    std::fs::write(agent.spool_dir.join("other.json.tmp"), "{").unwrap();
    agent.spool_push(
        "bad.json",
        r#"{"schema":1,"routes":[{"destination":"10.1.0.0/33","gateway":"10.99.0.2"}]}"#,
    );
    let (ok, result) = agent
        .spool_result("bad.json", Duration::from_secs(10))
        .expect("bad.json processed");
    assert!(!ok);
    assert_eq!(result["errors"][0]["path"], "routes[0].destination");
    assert_eq!(result["errors"][0]["value"], "\"10.1.0.0/33\"");
    assert!(agent.spool_dir.join("failed/bad.json").exists());
    std::thread::sleep(Duration::from_millis(700));
    assert!(
        agent.spool_dir.join(".half-written.json").exists(),
        "writer temp file touched"
    );
    assert!(
        agent.spool_dir.join("other.json.tmp").exists(),
        "writer temp file touched"
    );
    // Still serving.
    let (code, _) = agent.apply_text("good.json", &push(1));
    assert_eq!(code, 0, "log:\n{}", agent.log_text());
}
