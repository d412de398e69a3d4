//! Diagnostics that need no backend: `check`, the validated network tools, and the
//! tech-support bundle (which must not contain the PSK).

use std::process::Command;

use vr_tests::{require_root, AgentProc, Netns};

const PSK: &str = "diag-test-psk-Zq81x";

fn push() -> String {
    format!(
        r#"{{"schema":1,"vpn":{{"site_to_site":[{{"local_public_ip":"192.0.2.10","local_cidrs":["10.1.1.0/24"],
        "peer_gateway":"203.0.113.5","peer_cidrs":["10.2.0.0/24"],"psk":"{PSK}","ike_policy":"aes128-sha1;modp1536",
        "esp_policy":"aes128-sha1"}}]}}}}"#
    )
}

#[test]
fn check_reports_each_line_and_tools_refuse_hostile_arguments() {
    if !require_root("check_reports_each_line_and_tools_refuse_hostile_arguments") {
        return;
    }
    let ns = Netns::new("vrdg");
    let mut agent = AgentProc::new(Some(&ns.name));
    agent.start();
    let out = agent.cli(&["check", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    for want in [
        "agent running",
        "boot replay",
        "last push",
        "conntrack table usage",
    ] {
        assert!(names.contains(&want), "check lacks {want:?}: {names:?}");
    }
    assert!(
        names.iter().any(|n| n.starts_with("disk space")),
        "{names:?}"
    );
    let long = "9".repeat(10_000);
    for bad in ["; rm -rf /", "--help", long.as_str(), "$(reboot)"] {
        // After `--` every hostile string reaches the validator as the destination.
        for tool in [
            vec!["ping", "--", bad],
            vec!["traceroute", "--", bad],
            vec!["arping", "--interface", "lo", "--", bad],
        ] {
            let out = agent.cli(&tool);
            assert_eq!(
                out.status.code(),
                Some(2),
                "{tool:?} not refused: {}",
                String::from_utf8_lossy(&out.stdout)
            );
            assert!(
                String::from_utf8_lossy(&out.stdout).is_empty(),
                "{tool:?} ran something"
            );
        }
    }
    let out = agent.cli(&["ping", "127.0.0.1", "--count", "1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 received"));
}

#[test]
fn tech_support_bundle_has_the_outputs_and_no_secret() {
    if !require_root("tech_support_bundle_has_the_outputs_and_no_secret") {
        return;
    }
    let ns = Netns::new("vrts");
    let mut agent = AgentProc::new(Some(&ns.name));
    agent.start();
    let (code, r) = agent.apply_text("p.json", &push());
    assert_eq!(code, 0, "{r}");
    let out_path = agent.dir.path().join("bundle.tar.gz");
    let out = agent.cli(&["tech-support", "--output", out_path.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let x = agent.dir.path().join("x");
    std::fs::create_dir(&x).unwrap();
    assert!(Command::new("tar")
        .arg("xzf")
        .arg(&out_path)
        .arg("-C")
        .arg(&x)
        .status()
        .unwrap()
        .success());
    let root = x.join("vr-agent-tech-support");
    for f in [
        "status.json",
        "show-state.json",
        "nft-ruleset.txt",
        "ip-addr.txt",
        "swanctl-list-sas.txt",
        "vtysh-ospf-neighbors.txt",
    ] {
        assert!(root.join(f).exists(), "{f} missing from the bundle");
    }
    let state = std::fs::read_to_string(root.join("show-state.json")).unwrap();
    assert!(
        state.contains("203.0.113.5") && state.contains("<redacted>"),
        "{state}"
    );
    for entry in std::fs::read_dir(&root).unwrap().flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        assert!(!text.contains(PSK), "PSK in {}", entry.path().display());
    }
    let raw = std::fs::read(&out_path).unwrap();
    assert!(!raw.windows(PSK.len()).any(|w| w == PSK.as_bytes()));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&out_path).unwrap().permissions().mode() & 0o077,
        0,
        "bundle readable by others"
    );
}

/// `--json` is honoured by the tools and tech-support: one JSON object with the tool, the
/// target, the exit status and the output lines (or the bundle path).
#[test]
fn tools_and_tech_support_answer_json() {
    if !require_root("tools_and_tech_support_answer_json") {
        return;
    }
    let ns = Netns::new("vrdj");
    let mut agent = AgentProc::new(Some(&ns.name));
    agent.start();
    let json = |args: &[&str]| -> (Option<i32>, serde_json::Value) {
        let out = agent.cli(args);
        let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{args:?}: not JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        });
        (out.status.code(), v)
    };
    let (code, v) = json(&["ping", "127.0.0.1", "--count", "1", "--json"]);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["tool"], "ping");
    assert_eq!(v["target"], "127.0.0.1");
    assert_eq!(v["exit_status"], 0);
    let lines = v["output"].as_array().expect("output lines");
    assert!(
        lines
            .iter()
            .any(|l| l.as_str().unwrap_or("").contains("1 received")),
        "{v}"
    );
    let (code, v) = json(&["traceroute", "127.0.0.1", "--max-hops", "2", "--json"]);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(
        (v["tool"].as_str(), v["target"].as_str()),
        (Some("traceroute"), Some("127.0.0.1"))
    );
    assert!(!v["output"].as_array().unwrap().is_empty(), "{v}");
    // No neighbour answers ARP on loopback: the exit status says so, still as JSON.
    let (code, v) = json(&[
        "arping",
        "--interface",
        "lo",
        "--count",
        "1",
        "--json",
        "127.0.0.2",
    ]);
    assert_eq!(v["tool"], "arping");
    assert_eq!(v["target"], "127.0.0.2");
    assert!(v["exit_status"].as_i64().is_some_and(|c| c != 0), "{v}");
    assert_eq!(code, Some(1), "{v}");
    // Refused arguments: nothing runs, the answer is still one JSON object.
    let (code, v) = json(&["ping", "--json", "--", "$(reboot)"]);
    assert_eq!(code, Some(2));
    assert!(v["refused"].as_str().unwrap().contains("not an IP address"));
    let out_path = agent.dir.path().join("b.tar.gz");
    let (code, v) = json(&[
        "tech-support",
        "--output",
        out_path.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["tool"], "tech-support");
    assert_eq!(v["bundle"], out_path.to_str().unwrap());
    assert!(out_path.exists());
}
