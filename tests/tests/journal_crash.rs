//! Issue 15 persistence: a SIGKILL at each instant of the journal's life (the intent just
//! written, the push executed but not committed, a compaction between its snapshot and its
//! copy, and between the copy and emptying the journal). After each restart the committed
//! state is the old one (the push never reported success) or the new one (it did), whole, in
//! the kernel as on disk, and the agent's own `diff` finds nothing to change.

use std::time::Duration;

use vr_tests::{require_root, wait_for, AgentProc, Netns};

fn router() -> Netns {
    let ns = Netns::new("vrjc");
    ns.ip(&[
        "link", "add", "lan0", "type", "veth", "peer", "name", "lan0p",
    ]);
    ns.ip(&["addr", "add", "10.99.0.1/24", "dev", "lan0"]);
    ns.ip(&["addr", "add", "10.99.0.2/24", "dev", "lan0p"]);
    ns.ip(&["link", "set", "lan0", "up"]);
    ns.ip(&["link", "set", "lan0p", "up"]);
    ns
}

/// Routes `10.220.k.0/24` for k in `ks`.
fn push(ks: &[u32]) -> String {
    let routes: Vec<String> = ks
        .iter()
        .map(|k| {
            format!(r#"{{"destination":"10.220.{k}.0/24","gateway":"10.99.0.2","device":"lan0"}}"#)
        })
        .collect();
    format!(r#"{{"schema":1,"routes":[{}]}}"#, routes.join(","))
}

fn committed_routes(agent: &AgentProc) -> (u64, Vec<String>) {
    let v: serde_json::Value = serde_json::from_slice(&agent.state_json().unwrap()).unwrap();
    let routes = v["state"]["routes"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| r["destination"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default();
    (v["generation"].as_u64().unwrap(), routes)
}

#[test]
fn sigkill_in_journal_appends_and_compactions_leaves_old_or_new() {
    if !require_root("sigkill_in_journal_appends_and_compactions_leaves_old_or_new") {
        return;
    }
    let ns = router();
    let mut agent = AgentProc::new(Some(&ns.name));
    // Compaction at every second commit (after the answer): pushes 2, 4, 6 and 8 compact.
    let base_env = ("VR_AGENT_JOURNAL_RECORDS".to_string(), "2".to_string());
    agent.env.push(base_env.clone());
    agent.start();
    let mut ks: Vec<u32> = vec![0];
    let (code, r) = agent.apply_text("p1.json", &push(&ks));
    assert_eq!(code, 0, "{r}");
    // (hook, whether the killed push is committed when the hook is reached)
    let points = [
        ("after-intent", false),
        ("before-commit", false),
        ("compact-snapshot", true),
        ("compact-good", true),
    ];
    let mut generation = 1u64;
    for (i, (point, lands)) in points.iter().enumerate() {
        // Bring the journal to one record short of the bound, so the hooked push compacts.
        let mut pads = 0;
        while point.starts_with("compact") && vr_tests::stored::read(&agent.state_dir).records != 1
        {
            pads += 1;
            assert!(pads < 4, "{point}: the journal does not reach one record");
            ks.push(100 + 10 * i as u32 + pads);
            let (code, r) = agent.apply_text("pad.json", &push(&ks));
            assert_eq!(code, 0, "{r}");
            generation += 1;
            // The agent compacts after the answer, within a tick of its main loop.
            assert!(
                wait_for(Duration::from_secs(5), || {
                    vr_tests::stored::read(&agent.state_dir).records < 2
                }),
                "{point}: the journal was not compacted after the answer"
            );
        }
        agent.stop();
        let marker = agent.dir.path().join(format!("at-{point}"));
        agent.env = vec![
            base_env.clone(),
            (
                "VR_AGENT_TEST_HOOK".into(),
                format!("{point}:{}", marker.display()),
            ),
        ];
        agent.start();
        let mut next = ks.clone();
        next.push(200 + i as u32);
        let file = agent.dir.path().join(format!("{point}.json"));
        std::fs::write(&file, push(&next)).unwrap();
        let mut client = agent
            .command()
            .arg("apply")
            .arg(&file)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        assert!(
            wait_for(Duration::from_secs(20), || marker.exists()),
            "{point}: hook not reached; log:\n{}",
            agent.log_text()
        );
        agent.kill9();
        let _ = client.wait();
        agent.env = vec![base_env.clone()];
        agent.start();

        if *lands {
            ks = next;
            generation += 1;
        }
        let (g, routes) = committed_routes(&agent);
        let want: Vec<String> = ks.iter().map(|k| format!("10.220.{k}.0/24")).collect();
        assert_eq!(
            (g, &routes),
            (generation, &want),
            "{point}: committed state"
        );
        assert!(!agent.pending_intent(), "{point}: an intent was left");
        let kernel = ns.ip(&["route", "show", "table", "all"]);
        for k in 0..300u32 {
            let net = format!("10.220.{k}.0");
            assert_eq!(
                kernel.contains(&format!("{net}/24")),
                ks.contains(&k),
                "{point}: route {net} in the kernel: {kernel}"
            );
        }
        let diff = agent.cli(&["diff"]);
        assert!(
            diff.status.success(),
            "{point}: diff after restart: {}",
            String::from_utf8_lossy(&diff.stdout)
        );
        let status: serde_json::Value =
            serde_json::from_slice(&agent.cli(&["status", "--json"]).stdout).unwrap();
        assert_eq!(status["generation"], generation, "{point}: {status}");
        println!(
            "{point}: killed; restarted at generation {generation} ({} routes), old-or-new holds",
            ks.len()
        );
    }
    // The snapshot and its copy agree after the compactions, and a push still lands.
    let snap = std::fs::read(agent.state_dir.join("state.json")).unwrap();
    let good = std::fs::read(agent.state_dir.join("state.good")).unwrap();
    let s: serde_json::Value = serde_json::from_slice(&snap).unwrap();
    let g: serde_json::Value = serde_json::from_slice(&good).unwrap();
    assert!(s["generation"].as_u64() >= g["generation"].as_u64());
    ks.push(250);
    let (code, r) = agent.apply_text("last.json", &push(&ks));
    assert_eq!(code, 0, "{r}");
    assert_eq!(committed_routes(&agent).0, generation + 1);
    let log = agent.log_text();
    assert!(
        log.contains("journal compacted"),
        "no compaction logged:\n{log}"
    );
}
