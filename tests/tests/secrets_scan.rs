//! Issues 9 and 12 acceptance (secrets): every kind of secret (site-to-site and remote-access
//! PSKs, the remote-access gateway's certificate key, OSPF keys, VM passwords, user data, VPN
//! user and BGP passwords, secret `cmdline` keys, load balancers' TLS keys), pushed natively, the CloudStack way, through the socket and the spool, and inside
//! pushes that are rejected (and the password and user data also served to their guest over
//! HTTP and acknowledged), never appears in the agent's log, in any push result, in the
//! output of any subcommand (text and `--json`, the CloudStack front doors and the alerts
//! log among them), in the tech-support bundle, in any file that
//! users other than root can read, or in the argument list of any process while the agent
//! applies them. The one file that must hold them (`state.json`, for replay) is readable by
//! root alone.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use vr_tests::peers::{Charon, Frr, CHARON, OSPFD};
use vr_tests::{require_program, require_root, veth, AgentProc, Netns};

#[path = "secrets_scan/argv.rs"]
mod argv;
#[path = "secrets_scan/payloads.rs"]
mod payloads;

use payloads::*;

/// Every secret found in `bytes`, as "<kind> in <what>".
fn leaks(what: &str, bytes: &[u8], found: &mut Vec<String>) {
    for (s, kind) in SECRETS {
        if bytes.windows(s.len()).any(|w| w == s.as_bytes()) {
            found.push(format!("{kind} ({s}) in {what}"));
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
fn secrets_appear_nowhere_but_the_root_only_state() {
    let name = "secrets_appear_nowhere_but_the_root_only_state";
    if !require_root(name) || !require_program(name, CHARON) || !require_program(name, OSPFD) {
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("vr-scan")
        .tempdir()
        .unwrap();
    let mut vr = Netns::new("scvr");
    let peer = Netns::new("scpeer");
    veth(&vr, "eth2", &peer, "eth0");
    vr.ip(&["addr", "replace", "192.0.2.10/24", "dev", "eth2"]);
    // The VM the password and the user data are for, on the guest network.
    let guest = Netns::new("scg");
    veth(&guest, "eth0", &vr, "eth0");
    guest.ip(&["addr", "add", "10.1.1.23/24", "dev", "eth0"]);
    let charon = Charon::start(&mut vr, &dir.path().join("charon"));
    let frr = Frr::start(&mut vr, &dir.path().join("frr"), "scvr", "");
    // bgpd too: the BGP password reaches FRR (through vtysh's standard input) and its config.
    frr.add_bgpd(&mut vr, "hostname scvr\n");
    let mut agent = AgentProc::new(Some(&vr.name));
    agent.extra_args = vec![
        "--vici-socket".into(),
        charon.vici_socket.display().to_string(),
        "--frr-vty-dir".into(),
        frr.dir.display().to_string(),
        "--frr-config".into(),
        frr.dir.join("frr.conf").display().to_string(),
    ];
    // Every tool the agent (daemon and CLI) runs is recorded with its arguments.
    let tools = argv::ToolRecorder::new(&[
        "vtysh",
        "swanctl",
        "nft",
        "ip",
        "conntrack",
        "journalctl",
        "tar",
        "chown",
    ]);
    agent.env.push(("PATH".into(), tools.path.clone()));
    agent.start();
    let watch = argv::ArgvWatch::start(SECRETS);

    let mut found = Vec::new();
    let mut scanned = 0u64;
    let mut scan = |what: String, bytes: &[u8], found: &mut Vec<String>| {
        scanned += 1;
        leaks(&what, bytes, found);
    };

    // Accepted pushes through the socket, natively and the CloudStack way.
    // The control: after each accepted push, state.json holds its secrets (so the scan can
    // fail), even those a later push replaces.
    let stored = |agent: &AgentProc, secrets: &[&str]| {
        let state = agent.state_json().unwrap();
        for s in secrets {
            assert!(
                state.windows(s.len()).any(|w| w == s.as_bytes()),
                "state.json lacks {s}: the scan proves nothing"
            );
        }
    };
    let accepted = [
        (
            "native.json",
            native(PSK_NATIVE, "203.0.113.5", "aes128-sha1;modp1536"),
            vec![PSK_NATIVE, OSPF_KEY],
        ),
        ("cs.json", site2site(PSK_CS), vec![PSK_CS]),
        ("cmdline.json", cmdline(), vec![CMD_ROUTER_PW, CMD_KEY]),
        (
            "ra.json",
            remote_access(RA_PSK, "10.1.2.1-10.1.2.8"),
            vec![RA_PSK],
        ),
        ("vmdata.json", vm_data(), vec![USER_DATA]),
        ("users.json", vpn_users(), vec![VPN_USER_PW]),
        ("bgp.json", bgp_peers(), vec![BGP_PW]),
        (
            "ra-native.json",
            ra_native(),
            vec![RA_KEY_MARKER, RA_NATIVE_PW],
        ),
        ("lb.json", load_balancer(), vec![TLS_KEY]),
        ("ha.json", ha_push(), vec![HA_PW]),
    ];
    for (file, text, secrets) in &accepted {
        let (code, r) = agent.apply_text(file, text);
        assert_eq!(code, 0, "{file}: {r}");
        stored(&agent, secrets);
        scan(
            format!("result of {file}"),
            r.to_string().as_bytes(),
            &mut found,
        );
    }
    // keepalived got the VRRP password in its config, readable by root alone; the pair is
    // then dissolved (the agent stops keepalived) so the rest runs as a single router.
    let kconf = agent.run_dir.join("ha/keepalived.conf");
    assert!(
        std::fs::read_to_string(&kconf).is_ok_and(|t| t.contains(HA_PW)),
        "keepalived.conf lacks the VRRP password: the scan proves nothing"
    );
    assert!(
        !readable_by_others(&kconf),
        "keepalived.conf is readable by others"
    );
    let (code, r) = agent.apply_text("ha-off.json", r#"{"schema":1,"ha":null}"#);
    assert_eq!(code, 0, "{r}");
    // A field this agent does not know is logged by name and not kept.
    assert!(
        agent.log_text().contains("vm_new_field"),
        "the ignored field is not logged"
    );
    let state = agent.state_json().unwrap();
    assert!(!state
        .windows(UNKNOWN_FIELD.len())
        .any(|w| w == UNKNOWN_FIELD.as_bytes()));
    // The OSPF key reached FRR (through vtysh's standard input, not its arguments).
    let running = frr.vtysh(&["show running-config"]);
    assert!(
        running.contains(&format!("message-digest-key 1 md5 {OSPF_KEY}")),
        "FRR lacks the OSPF key: {running}"
    );
    assert!(
        running.contains(&format!("neighbor 192.0.2.50 password {BGP_PW}")),
        "FRR lacks the BGP password: {running}"
    );
    // The remote-access VPN is applied (issue 18): its PSK and the user's password went to
    // charon over VICI (the argv watch and the tool recorder see no swanctl call with them).
    let (code, r) = agent.apply_text("ra2.json", &remote_access(RA_PSK, "10.1.2.1-10.1.2.9"));
    assert_eq!(code, 0, "{r}");
    assert!(
        !r[0]["message"]
            .as_str()
            .unwrap_or("")
            .contains("NOT applied"),
        "{r}"
    );
    let conns = String::from_utf8_lossy(&charon.swanctl(&["--list-conns"]).stdout).into_owned();
    assert!(
        conns.contains("ra-ikev2") && conns.contains("ra-ikev1"),
        "remote-access connections not loaded: {conns}"
    );

    // Rejected pushes: the error names the field and never quotes the secret.
    let rejected = [
        (
            "bad.json",
            native(PSK_BAD, "203.0.113.7", "rot13-sha1;modp1536"),
            "ike_policy",
        ),
        ("bad-ospf.json", ospf_rejected(), "authentication"),
        ("bad-ra.json", remote_access(RA_BAD, "10.1.2.1"), "ip_range"),
        (
            "VR-bad.cfg",
            aggregate_rejected(),
            "expected the file path line",
        ),
        (
            "bad-vmpw.json",
            vm_password(VM_PW_BAD, "10.1.1.300"),
            "ip_address",
        ),
    ];
    for (file, text, field) in &rejected {
        let (code, r) = agent.apply_text(file, text);
        assert_ne!(code, 0, "{file} must be rejected: {r}");
        assert!(
            r.to_string().contains(field),
            "{file}: the error names {field}: {r}"
        );
        scan(
            format!("result of rejected {file}"),
            r.to_string().as_bytes(),
            &mut found,
        );
        // The text answer the management server reads over SSH.
        let path = agent.dir.path().join(file);
        let out = agent.cli(&["apply", path.to_str().unwrap()]);
        scan(format!("`apply {file}` stdout"), &out.stdout, &mut found);
        scan(format!("`apply {file}` stderr"), &out.stderr, &mut found);
        // The same push through CloudStack's front door (`/opt/cloud/bin/update_config.py`,
        // `vr_cfg.sh` for a container), whose output the management side logs.
        let cs_dir = agent.dir.path().to_str().unwrap();
        let out = if file.ends_with(".cfg") {
            agent.cli(&[
                "--cloudstack-dir",
                cs_dir,
                "cloudstack",
                "vr_cfg.sh",
                "-c",
                file,
            ])
        } else {
            agent.cli(&[
                "--cloudstack-dir",
                cs_dir,
                "cloudstack",
                "update_config.py",
                file,
            ])
        };
        assert_eq!(out.status.code(), Some(1), "{file} through the front door");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(field),
            "{file} through the front door: the error names {field}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        scan(
            format!("`update_config.py {file}` stdout"),
            &out.stdout,
            &mut found,
        );
        scan(
            format!("`update_config.py {file}` stderr"),
            &out.stderr,
            &mut found,
        );
    }

    // Through the spool: a native push and a CloudStack one.
    agent.spool_push(
        "spooled.json",
        &native(PSK_SPOOL, "203.0.113.6", "aes256-sha256;modp2048"),
    );
    let (ok, r) = agent
        .spool_result("spooled.json", Duration::from_secs(30))
        .expect("spool result");
    assert!(ok, "{r}");
    stored(&agent, &[PSK_SPOOL]);
    agent.spool_push("vmpassword.json", &vm_password(VM_PW, "10.1.1.23"));
    let (ok, r) = agent
        .spool_result("vmpassword.json", Duration::from_secs(30))
        .expect("spool result");
    assert!(ok, "{r}");
    stored(&agent, &[VM_PW]);
    assert!(
        !r["message"].as_str().unwrap_or("").contains("NOT applied"),
        "{r}"
    );
    // The guest fetches its password and its user data (the controls: they are served) and
    // acknowledges the password, the way CloudStack's guest script does; the password server
    // and the metadata service log nothing of either.
    let fetch = |args: &[&str]| {
        let out = guest.exec(args[0], &args[1..]);
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let wget = |req: &str| {
        let header = format!("DomU_Request: {req}");
        fetch(&[
            "wget",
            "-q",
            "-t",
            "3",
            "-T",
            "20",
            "-O",
            "-",
            "--header",
            &header,
            "http://10.1.1.1:8080",
        ])
    };
    assert!(
        vr_tests::wait_for(Duration::from_secs(5), || guest
            .exec(
                "curl",
                &[
                    "-sf",
                    "-m",
                    "2",
                    "http://10.1.1.1/latest/meta-data/instance-id"
                ]
            )
            .status
            .success()),
        "metadata service not answering"
    );
    assert_eq!(wget("send_my_password"), VM_PW);
    assert_eq!(
        fetch(&["curl", "-s", "-m", "5", "http://10.1.1.1/latest/user-data"]),
        USER_DATA_DECODED
    );
    assert_eq!(wget("saved_password"), "saved_password");
    assert_eq!(wget("send_my_password"), "saved_password");

    // Every subcommand, as text and as JSON.
    let out_bundle = agent.dir.path().join("support.tar.gz");
    let commands: Vec<Vec<&str>> = vec![
        vec!["status"],
        vec!["show", "state"],
        vec!["show", "pushes"],
        vec!["show", "vpn"],
        vec!["show", "ha"],
        vec!["show", "nat"],
        vec!["show", "firewall"],
        vec!["show", "acl"],
        vec!["show", "interfaces"],
        vec!["show", "routes"],
        vec!["show", "conntrack"],
        vec!["show", "lb"],
        vec!["show", "ospf"],
        vec!["show", "metadata"],
        vec!["diff"],
        vec!["check"],
        vec!["reconcile"],
        vec!["validate", "PATH_NATIVE"],
        vec!["validate", "PATH_BAD_OSPF"],
        vec!["apply", "--dry-run", "PATH_NATIVE"],
        vec!["tech-support", "--output", out_bundle.to_str().unwrap()],
        // The CloudStack front doors: alerts (rejected pushes land there), health checks,
        // VPN state and counters.
        vec!["cloudstack", "router-alerts", "1970-01-01", "00:00:00"],
        vec!["cloudstack", "monitor-results", "true"],
        vec!["cloudstack", "check-s2s-vpn", "192.0.2.20"],
        vec!["cloudstack", "netusage", "-g"],
    ];
    let native_path = agent.dir.path().join("native.json");
    let bad_ospf_path = agent.dir.path().join("bad-ospf.json");
    for cmd in commands {
        for json in [false, true] {
            let mut args: Vec<&str> = cmd
                .iter()
                .map(|a| match *a {
                    "PATH_NATIVE" => native_path.to_str().unwrap(),
                    "PATH_BAD_OSPF" => bad_ospf_path.to_str().unwrap(),
                    a => a,
                })
                .collect();
            if json {
                args.push("--json");
            }
            let out = agent
                .command()
                .args(&args)
                .env("PATH", &tools.path)
                .output()
                .expect("run vr-agent");
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
    let seen = watch.finish();

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

    // The agent's log, then every file it, charon or FRR wrote that others can read (the
    // secrets reach charon over VICI and FRR through vtysh, never as a readable file).
    scan("agent log".into(), agent.log_text().as_bytes(), &mut found);
    let mut files = Vec::new();
    walk(agent.dir.path(), &mut files);
    walk(&dir.path().join("charon"), &mut files);
    walk(&frr.dir, &mut files);
    let mut state_seen = false;
    for f in &files {
        let bytes = std::fs::read(f).unwrap_or_default();
        if f.file_name()
            .is_some_and(|n| n == "state.json" || n == "state.journal")
        {
            state_seen = true;
            assert!(
                !readable_by_others(f),
                "{} is readable by others",
                f.display()
            );
            continue;
        }
        // The pushes this test wrote (as the management server would) carry the secrets by
        // design; what the agent keeps of them (spool `done/`, results) is scanned.
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        if f.parent() == Some(agent.dir.path())
            && (name.ends_with(".json") || name.ends_with(".cfg"))
        {
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

    // Argument lists: of every tool the agent ran, and of every process seen meanwhile.
    let calls = tools.calls();
    for (prog, argv) in &calls {
        scan(format!("argv of {prog}"), argv, &mut found);
    }
    assert!(
        calls.iter().any(|(p, _)| p == "vtysh") && calls.iter().any(|(p, _)| p == "swanctl"),
        "the agent's vtysh and swanctl were not recorded: the argv scan proves nothing"
    );
    found.extend(seen.leaks.iter().cloned());
    vr_tests::summary::record(vr_tests::summary::Row {
        check: "secrets".into(),
        runs: scanned,
        unit: format!(
            "outputs, files and tool argvs scanned ({} secrets)",
            SECRETS.len()
        ),
        failures: found.len() as u64,
        leaked_secrets: Some(found.len() as u64),
        ..Default::default()
    });
    println!(
        "secrets: {scanned} outputs, files and argvs ({} tool runs) scanned for {} secrets, \
         {} passes over /proc, {} leaked",
        calls.len(),
        SECRETS.len(),
        seen.passes,
        found.len()
    );
    assert!(found.is_empty(), "secrets leaked:\n{}", found.join("\n"));
}
