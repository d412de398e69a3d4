//! Issue 9 acceptance (secrets): the test PSKs, pushed natively, the CloudStack way, through the
//! spool and inside a push that is rejected, never appear in the agent's log, in any push
//! result, in the output of any subcommand (text and `--json`), in the tech-support bundle,
//! or in any file that users other than root can read. The one file that must hold them
//! (`state.json`, for replay) is readable by root alone.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use vr_tests::peers::{Charon, CHARON};
use vr_tests::{require_program, require_root, veth, AgentProc, Netns};

const PSK_NATIVE: &str = "scan-native-psk-Hq27Tz";
const PSK_CS: &str = "scan-cloudstack-psk-Vw81Rd";
const PSK_SPOOL: &str = "scan-spool-psk-Mn55Pk";
const PSK_BAD: &str = "scan-rejected-psk-Jx03Ls";
const PSKS: [&str; 4] = [PSK_NATIVE, PSK_CS, PSK_SPOOL, PSK_BAD];

fn native(psk: &str, peer: &str, ike: &str) -> String {
    format!(
        r#"{{"schema":1,"interfaces":[{{"device":"eth2","role":"public","addresses":["192.0.2.10/24"]}}],
        "vpn":{{"site_to_site":[{{"local_public_ip":"192.0.2.10","local_cidrs":["10.1.1.0/24"],
        "peer_gateway":"{peer}","peer_cidrs":["10.2.0.0/24"],"psk":"{psk}","ike_policy":"{ike}",
        "esp_policy":"aes128-sha1","passive":true}}]}}}}"#
    )
}

fn cloudstack(psk: &str) -> String {
    format!(
        r#"{{"type":"site2sitevpn","local_public_ip":"192.0.2.10","local_guest_cidr":"10.1.1.0/24",
        "local_public_gateway":"192.0.2.1","peer_gateway_ip":"203.0.113.9","peer_guest_cidr_list":"10.9.0.0/16",
        "esp_policy":"aes128-sha1;modp1536","ike_policy":"aes128-sha1;modp1536","ipsec_psk":"{psk}",
        "ike_lifetime":86400,"esp_lifetime":3600,"create":true,"dpd":true,"passive":true,"encap":false,
        "split_connections":false}}"#
    )
}

/// (where, how many PSK occurrences) for every text that leaks.
fn leaks(what: &str, bytes: &[u8], found: &mut Vec<String>) {
    for psk in PSKS {
        if bytes.windows(psk.len()).any(|w| w == psk.as_bytes()) {
            found.push(format!("{psk} in {what}"));
        }
    }
}

/// Whether someone other than root can read `p`: o+r on the file, o+x on every directory
/// above it.
fn readable_by_others(p: &Path) -> bool {
    let mode = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.permissions().mode())
            .unwrap_or(0)
    };
    if mode(p) & 0o004 == 0 {
        return false;
    }
    p.ancestors().skip(1).all(|d| mode(d) & 0o001 != 0)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => walk(&p, out),
            Ok(t) if t.is_file() => out.push(p),
            _ => {}
        }
    }
}

#[test]
fn psks_appear_nowhere_but_the_root_only_state() {
    if !require_root("psks_appear_nowhere_but_the_root_only_state")
        || !require_program("psks_appear_nowhere_but_the_root_only_state", CHARON)
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut vr = Netns::new("scvr");
    let peer = Netns::new("scpeer");
    veth(&vr, "eth2", &peer, "eth0");
    let charon = Charon::start(&mut vr, &dir.path().join("charon"));
    let mut agent = AgentProc::new(Some(&vr.name));
    agent.extra_args = vec![
        "--vici-socket".into(),
        charon.vici_socket.display().to_string(),
    ];
    agent.start();

    let mut found = Vec::new();
    let mut scanned = 0u64;
    let mut scan = |what: String, bytes: &[u8], found: &mut Vec<String>| {
        scanned += 1;
        leaks(&what, bytes, found);
    };

    // Pushes: accepted natively and the CloudStack way, through the spool, and one rejected
    // (an unknown cipher) whose error must name the field without echoing the secret.
    let (code, r) = agent.apply_text(
        "native.json",
        &native(PSK_NATIVE, "203.0.113.5", "aes128-sha1;modp1536"),
    );
    assert_eq!(code, 0, "{r}");
    scan(
        "native push result".into(),
        r.to_string().as_bytes(),
        &mut found,
    );
    let (code, r) = agent.apply_text("cs.json", &cloudstack(PSK_CS));
    assert_eq!(code, 0, "{r}");
    scan(
        "cloudstack push result".into(),
        r.to_string().as_bytes(),
        &mut found,
    );
    let (code, r) = agent.apply_text(
        "bad.json",
        &native(PSK_BAD, "203.0.113.7", "rot13-sha1;modp1536"),
    );
    assert_ne!(
        code, 0,
        "a push with an unknown cipher must be rejected: {r}"
    );
    assert!(
        r.to_string().contains("ike_policy"),
        "the error names the field: {r}"
    );
    scan(
        "rejected push result".into(),
        r.to_string().as_bytes(),
        &mut found,
    );
    agent.spool_push(
        "spooled.json",
        &native(PSK_SPOOL, "203.0.113.6", "aes256-sha256;modp2048"),
    );
    let (ok, r) = agent
        .spool_result("spooled.json", std::time::Duration::from_secs(30))
        .expect("spool result");
    assert!(ok, "{r}");

    // Every subcommand, as text and as JSON.
    let out_bundle = agent.dir.path().join("support.tar.gz");
    let commands: Vec<Vec<&str>> = vec![
        vec!["status"],
        vec!["show", "state"],
        vec!["show", "pushes"],
        vec!["show", "vpn"],
        vec!["show", "nat"],
        vec!["show", "firewall"],
        vec!["show", "acl"],
        vec!["show", "interfaces"],
        vec!["show", "routes"],
        vec!["show", "conntrack"],
        vec!["show", "ospf"],
        vec!["diff"],
        vec!["check"],
        vec!["reconcile"],
        vec!["validate", "PATH_NATIVE"],
        vec!["apply", "--dry-run", "PATH_NATIVE"],
        vec!["tech-support", "--output", out_bundle.to_str().unwrap()],
    ];
    let native_path = agent.dir.path().join("native.json");
    for cmd in commands {
        for json in [false, true] {
            let mut args: Vec<&str> = cmd
                .iter()
                .map(|a| {
                    if *a == "PATH_NATIVE" {
                        native_path.to_str().unwrap()
                    } else {
                        a
                    }
                })
                .collect();
            if json {
                args.push("--json");
            }
            let out = agent.cli(&args);
            scan(
                format!("`vr-agent {}` stdout", args.join(" ")),
                &out.stdout,
                &mut found,
            );
            scan(
                format!("`vr-agent {}` stderr", args.join(" ")),
                &out.stderr,
                &mut found,
            );
        }
    }

    // The tech-support bundle, unpacked.
    let x = agent.dir.path().join("unpacked");
    std::fs::create_dir(&x).unwrap();
    assert!(Command::new("tar")
        .arg("xzf")
        .arg(&out_bundle)
        .arg("-C")
        .arg(&x)
        .status()
        .unwrap()
        .success());
    let mut bundle_files = Vec::new();
    walk(&x, &mut bundle_files);
    assert!(bundle_files.len() > 5, "bundle too small: {bundle_files:?}");
    for f in &bundle_files {
        scan(
            format!("tech-support {}", f.display()),
            &std::fs::read(f).unwrap(),
            &mut found,
        );
    }
    std::fs::remove_dir_all(&x).unwrap();

    // The agent's log, then every file it or its tests wrote that others can read, including
    // charon's directory (the PSKs reach charon over VICI only, never as a file).
    scan("agent log".into(), agent.log_text().as_bytes(), &mut found);
    let mut files = Vec::new();
    walk(agent.dir.path(), &mut files);
    walk(&dir.path().join("charon"), &mut files);
    let mut state_seen = false;
    for f in &files {
        let bytes = std::fs::read(f).unwrap_or_default();
        if f.file_name()
            .is_some_and(|n| n == "state.json" || n == "state.next")
        {
            state_seen = true;
            assert!(
                !readable_by_others(f),
                "{} is readable by others",
                f.display()
            );
            continue;
        }
        // The pushes this test wrote (as the management server would) carry the PSK by
        // design; what the agent keeps of them (spool `done/`, results) is scanned.
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        if f.parent() == Some(agent.dir.path()) && name.ends_with(".json") {
            continue;
        }
        if readable_by_others(f) || name.ends_with(".result.json") || name == "agent.log" {
            scan(format!("file {}", f.display()), &bytes, &mut found);
        }
    }
    assert!(
        state_seen,
        "no state.json found under {}",
        agent.dir.path().display()
    );
    let state_dir_mode = std::fs::metadata(&agent.state_dir)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(
        state_dir_mode & 0o077,
        0,
        "state dir mode {state_dir_mode:o}"
    );

    // The scan can fail: the state holds the secrets it must keep.
    let mut control = Vec::new();
    leaks("state.json", &agent.state_json().unwrap(), &mut control);
    assert!(
        !control.is_empty(),
        "state.json lacks the PSKs: the scan proves nothing"
    );

    vr_tests::summary::record(vr_tests::summary::Row {
        check: "secrets".into(),
        runs: scanned,
        unit: "outputs and files scanned".into(),
        failures: found.len() as u64,
        leaked_secrets: Some(found.len() as u64),
        ..Default::default()
    });
    println!(
        "secrets: {scanned} outputs and files scanned, {} leaked",
        found.len()
    );
    assert!(found.is_empty(), "secrets leaked:\n{}", found.join("\n"));
}
