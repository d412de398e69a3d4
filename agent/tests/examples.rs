//! Every file under `examples/` is a valid push, and the schema covers every section.

use std::path::Path;
use std::process::Command;

fn agent() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vr-agent"))
}

#[test]
fn every_example_validates() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut files = Vec::new();
    for dir in ["native", "cloudstack", "demo"] {
        if let Ok(rd) = std::fs::read_dir(root.join(dir)) {
            files.extend(rd.flatten().map(|e| e.path()).filter(|p| p.is_file()));
        }
    }
    assert!(files.len() >= 2, "examples missing");
    files.sort();
    let out = agent().arg("validate").args(&files).output().unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn schema_names_every_section() {
    let out = agent().arg("schema").output().unwrap();
    assert!(out.status.success());
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let props = schema["properties"].as_object().expect("properties");
    for section in [
        "schema",
        "interfaces",
        "routes",
        "nat",
        "firewall",
        "acls",
        "vpn",
        "ospf",
    ] {
        assert!(props.contains_key(section), "schema lacks {section}");
    }
    assert_eq!(
        schema["additionalProperties"], false,
        "unknown fields must be refused"
    );
}

#[test]
fn validate_exit_status_and_message_name_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"schema":1,"interfaces":[{"device":"eth0","role":"guest","mac":"02:00:0a:01:01"}]}"#,
    )
    .unwrap();
    let out = agent().arg("validate").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("interfaces[0].mac") && text.contains("02:00:0a:01:01"),
        "{text}"
    );
    let out = agent().arg("validate").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "missing FILE is a usage error");
}
