//! Issue 12 survivable state: a `state.json` that is truncated, garbage or written by a newer
//! version is not a permanent outage. The agent starts from the last-known-good copy, replays
//! it, serves, says so in `status` and `check` (which fails, naming state.json), and accepts
//! the next push, which writes a readable state.json again.

use vr_tests::{require_root, AgentProc, Netns};

fn push(i: u32) -> String {
    format!(
        r#"{{"schema":1,"routes":[{{"destination":"10.220.{i}.0/24","gateway":"10.98.0.2","device":"lan0"}}]}}"#
    )
}

/// `push(i)` with a second route: applied after a compaction, it lives in the journal only.
fn push2(i: u32) -> String {
    format!(
        r#"{{"schema":1,"routes":[{{"destination":"10.220.{i}.0/24","gateway":"10.98.0.2","device":"lan0"}},{{"destination":"10.221.{i}.0/24","gateway":"10.98.0.2","device":"lan0"}}]}}"#
    )
}

/// Turns a good state.json into a bad one.
type Corrupt = fn(&[u8]) -> Vec<u8>;

fn routes(ns: &Netns) -> String {
    ns.ip(&["route", "show"])
}

#[test]
fn an_unreadable_state_json_starts_from_the_last_known_good_copy() {
    if !require_root("an_unreadable_state_json_starts_from_the_last_known_good_copy") {
        return;
    }
    let ns = Netns::new("vrstate");
    ns.ip(&[
        "link", "add", "lan0", "type", "veth", "peer", "name", "lan0p",
    ]);
    ns.ip(&["addr", "add", "10.98.0.1/24", "dev", "lan0"]);
    ns.ip(&["link", "set", "lan0", "up"]);
    ns.ip(&["link", "set", "lan0p", "up"]);
    let mut agent = AgentProc::new(Some(&ns.name));
    agent.start();
    let (code, r) = agent.apply_text("p1.json", &push(1));
    assert_eq!(code, 0, "{r}");

    let state = agent.state_dir.join("state.json");
    let mut failures = Vec::new();
    let mut runs = 0;
    let kinds: [(&str, Corrupt); 3] = [
        ("truncated", |b| b[..b.len() / 2].to_vec()),
        ("garbage", |_| b"\x00\x01 not json at all".to_vec()),
        ("newer format", |b| {
            let mut v: serde_json::Value = serde_json::from_slice(b).unwrap();
            v["format"] = 2.into();
            serde_json::to_vec(&v).unwrap()
        }),
    ];
    for (next, (kind, corrupt)) in (2..).zip(kinds) {
        runs += 1;
        // A push after the last compaction: the journal holds it, the snapshot does not, so
        // the recovery is the good copy plus the journal.
        let (code, r) = agent.apply_text("journaled.json", &push2(next - 1));
        assert_eq!(code, 0, "{r}");
        let good = std::fs::read(&state).unwrap();
        let committed: serde_json::Value =
            serde_json::from_slice(&agent.state_json().unwrap()).unwrap();
        let generation = committed["generation"].as_u64().unwrap();
        agent.stop();
        std::fs::write(&state, corrupt(&good)).unwrap();
        // Something else removed the routes meanwhile: the replay of the good copy and the
        // journal restores them.
        for net in ["10.220", "10.221"] {
            let _ = ns.exec("ip", &["route", "del", &format!("{net}.{}.0/24", next - 1)]);
        }
        agent.start();

        let status = agent.cli(&["status", "--json"]);
        let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
        let problem = status["state_file"]["problem"].as_str().unwrap_or("");
        if status["state_file"]["ok"] != false || !problem.contains("state.json") {
            failures.push(format!("{kind}: status does not say so: {status}"));
        }
        if status["generation"] != generation {
            failures.push(format!(
                "{kind}: not started from the good copy (generation {generation}): {status}"
            ));
        }
        let check = agent.cli(&["check"]);
        let text = String::from_utf8_lossy(&check.stdout);
        let line = text
            .lines()
            .find(|l| l.contains("state file"))
            .unwrap_or("");
        if check.status.code() != Some(1) || !line.contains("state.json") {
            failures.push(format!(
                "{kind}: check passes or does not name state.json:\n{text}"
            ));
        }
        if !routes(&ns).contains(&format!("10.220.{}.0/24", next - 1))
            || !routes(&ns).contains(&format!("10.221.{}.0/24", next - 1))
        {
            failures.push(format!(
                "{kind}: the good copy was not replayed: {}",
                routes(&ns)
            ));
        }
        // It accepts pushes; the push makes state.json readable again.
        let (code, r) = agent.apply_text(&format!("p{next}.json"), &push(next));
        if code != 0 || r[0]["generation"] != generation + 1 {
            failures.push(format!("{kind}: push refused: {r}"));
        }
        let status = agent.cli(&["status", "--json"]);
        let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
        if status["state_file"]["ok"] != true {
            failures.push(format!("{kind}: still unreadable after a push: {status}"));
        }
        if serde_json::from_slice::<serde_json::Value>(&std::fs::read(&state).unwrap()).is_err() {
            failures.push(format!("{kind}: state.json not rewritten"));
        }
    }
    // Both unreadable: the agent starts from the empty state but neither replays nor
    // self-heals it onto the kernel (that would tear the router down); a push is accepted.
    runs += 1;
    agent.stop();
    std::fs::write(&state, b"{").unwrap();
    std::fs::write(agent.state_dir.join("state.good"), b"{").unwrap();
    agent.start();
    let check = agent.cli(&["check"]);
    let text = String::from_utf8_lossy(&check.stdout);
    if check.status.code() != Some(1) || !text.contains("no usable last-known-good copy") {
        failures.push(format!("no copy: check passes or does not say so:\n{text}"));
    }
    // Longer than the self-heal interval (5 s by default).
    std::thread::sleep(std::time::Duration::from_secs(7));
    if !routes(&ns).contains("10.220.4.0/24") {
        failures.push(format!(
            "no copy: the kernel was torn down to the empty state: {}",
            routes(&ns)
        ));
    }
    let (code, r) = agent.apply_text("p9.json", &push(9));
    if code != 0 || !routes(&ns).contains("10.220.9.0/24") {
        failures.push(format!("no copy: push refused: {r}"));
    }
    println!(
        "state.json faults: {runs} kinds, {} failures",
        failures.len()
    );
    vr_tests::summary::record(vr_tests::summary::Row {
        check: "state.json unreadable".into(),
        runs,
        unit: "faults (truncated, garbage, newer format, no usable copy)".into(),
        failures: failures.len() as u64,
        ..Default::default()
    });
    assert!(failures.is_empty(), "{failures:#?}");
}
