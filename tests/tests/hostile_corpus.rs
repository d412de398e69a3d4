//! Issue 9: the hostile-input corpus (`tests/corpus/bad/`, written by `generate.py`, plus the
//! cases too big for the repository, generated here): every push is rejected with an error that
//! names the field or the parse position, `state.json` and the kernel's ruleset stay exactly as
//! they were, the agent's memory stays bounded, and it keeps serving.

use std::path::PathBuf;

use vr_tests::{require_root, AgentProc, Netns};

const BASELINE: &str = r#"{"schema":1,
  "interfaces":[{"device":"eth0","role":"guest","addresses":["10.1.1.1/24"]},{"device":"eth2","role":"public","addresses":["192.0.2.10/24","192.0.2.11/24"]}],
  "nat":{"source_nat":[{"device":"eth2","public_ip":"192.0.2.10","source_cidrs":["10.1.1.0/24"]}],
         "port_forwards":[{"public_ip":"192.0.2.11","protocol":"tcp","public_ports":8080,"private_ip":"10.1.1.10","private_ports":80}]}}"#;

/// Cases generated at run time: (name, bytes).
fn big_cases() -> Vec<(String, Vec<u8>)> {
    let mut v = Vec::new();
    let million: Vec<String> = (0..1_000_000)
        .map(|i| {
            format!(
                r#"{{"destination":"10.{}.{}.0/24","gateway":"10.1.1.254"}}"#,
                (i / 256) % 256,
                i % 256
            )
        })
        .collect();
    v.push((
        "huge-array-1m-routes".into(),
        format!(r#"{{"schema":1,"routes":[{}]}}"#, million.join(",")).into_bytes(),
    ));
    let ints: Vec<String> = (0..1_000_000).map(|i| (i % 65536).to_string()).collect();
    v.push((
        "huge-array-1m-ints".into(),
        format!(r#"{{"schema":1,"routes":[{}]}}"#, ints.join(",")).into_bytes(),
    ));
    v.push((
        "string-10mb-device".into(),
        format!(
            r#"{{"schema":1,"interfaces":[{{"device":"{}","role":"guest"}}]}}"#,
            "e".repeat(10 << 20)
        )
        .into_bytes(),
    ));
    v.push(("string-10mb-cs".into(), format!(r#"{{"type":"staticroutes","delete_from_processed_cache":false,"routes":[{{"revoke":false,"ip_address":"10.1.1.1","gateway":"{}","network":"10.9.0.0/16"}}]}}"#, "1".repeat(10 << 20)).into_bytes()));
    v.push((
        "deep-nesting-arrays".into(),
        format!(
            r#"{{"schema":1,"routes":{}{}}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        )
        .into_bytes(),
    ));
    v.push((
        "deep-nesting-objects".into(),
        format!(
            r#"{{"schema":1,"nat":{}1{}}}"#,
            r#"{"a":"#.repeat(50_000),
            "}".repeat(50_000)
        )
        .into_bytes(),
    ));
    v.push((
        "over-size-limit-20mb".into(),
        format!(
            r#"{{"schema":1,"routes":[],"pad":"{}"}}"#,
            " ".repeat(20 << 20)
        )
        .into_bytes(),
    ));
    v
}

fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[test]
fn every_hostile_push_is_rejected_and_changes_nothing() {
    if !require_root("every_hostile_push_is_rejected_and_changes_nothing") {
        return;
    }
    let ns = Netns::new("hostile");
    for (a, b) in [("eth0", "eth0p"), ("eth2", "eth2p")] {
        ns.ip(&["link", "add", a, "type", "veth", "peer", "name", b]);
        ns.ip(&["link", "set", a, "up"]);
    }
    let mut agent = AgentProc::new(Some(&ns.name));
    agent.start();
    let (code, r) = agent.apply_text("baseline.json", BASELINE);
    assert_eq!(code, 0, "{r}");
    let state_before = agent.state_json().unwrap();
    let nft_before = ns.exec_ok("nft", &["-s", "list", "ruleset"]);

    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/corpus/bad"));
    let mut cases: Vec<(String, PathBuf)> = std::fs::read_dir(&dir)
        .expect("tests/corpus/bad (python3 tests/corpus/generate.py)")
        .flatten()
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect();
    cases.sort();
    let gen_dir = agent.dir.path().join("generated");
    std::fs::create_dir_all(&gen_dir).unwrap();
    for (name, bytes) in big_cases() {
        let p = gen_dir.join(format!("{name}.json"));
        std::fs::write(&p, bytes).unwrap();
        cases.push((name, p));
    }
    assert!(cases.len() >= 200, "corpus too small: {}", cases.len());

    let mut wrong = Vec::new();
    for chunk in cases.chunks(50) {
        let paths: Vec<&std::path::Path> = chunk.iter().map(|(_, p)| p.as_path()).collect();
        let (code, results) = agent.apply(&paths);
        let list = results.as_array().cloned().unwrap_or_default();
        if code != 1 || list.len() != chunk.len() {
            // Files refused before reaching the agent (e.g. not UTF-8, over the size limit)
            // end the CLI early: retry one by one.
            for (name, p) in chunk {
                let (code, r) = agent.apply(&[p.as_path()]);
                let stderr = r["stderr"].as_str().unwrap_or("").to_string();
                let named = r[0]["errors"][0]["path"]
                    .as_str()
                    .is_some_and(|p| !p.is_empty())
                    || stderr.contains("(document)")
                    || r[0]["message"]
                        .as_str()
                        .unwrap_or("")
                        .contains("(document)");
                if code != 1 || !named {
                    wrong.push(format!(
                        "{name}: exit {code}: {}",
                        r.to_string().chars().take(300).collect::<String>()
                    ));
                }
            }
            continue;
        }
        for ((name, _), res) in chunk.iter().zip(&list) {
            let named = res["errors"][0]["path"]
                .as_str()
                .is_some_and(|p| !p.is_empty())
                || res["message"].as_str().unwrap_or("").contains("(document)");
            if res["ok"] != false || !named {
                wrong.push(format!(
                    "{name}: {}",
                    res.to_string().chars().take(300).collect::<String>()
                ));
            }
        }
    }
    let peak = agent.pid().map(peak_rss_kib).unwrap_or(0);
    assert_eq!(
        agent.state_json().unwrap(),
        state_before,
        "state.json changed"
    );
    assert_eq!(
        ns.exec_ok("nft", &["-s", "list", "ruleset"]),
        nft_before,
        "the ruleset changed"
    );
    println!(
        "hostile corpus: {} files, {} rejected, {} accepted or unnamed wrongly, peak RSS {} MiB",
        cases.len(),
        cases.len() - wrong.len(),
        wrong.len(),
        peak / 1024
    );
    vr_tests::summary::record(vr_tests::summary::Row {
        check: "hostile corpus".into(),
        runs: cases.len() as u64,
        unit: "pushes".into(),
        failures: wrong.len() as u64,
        rss_end_kib: Some(peak),
        ..Default::default()
    });
    assert!(
        wrong.is_empty(),
        "{} hostile pushes mishandled:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    assert!(peak < 256 * 1024, "agent peak RSS {peak} KiB over 256 MiB");
    let (code, r) = agent.apply_text("after.json", &BASELINE.replace("8080", "8081"));
    assert_eq!(code, 0, "the agent must keep serving: {r}");
}
