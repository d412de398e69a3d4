//! Issue 12 spool faults: a file name too long for its result (or not UTF-8) is rejected with
//! a result under a short name and never wedges the loop; a CloudStack `.cfg` container cut
//! after a `</file>` is rejected, not applied as the shorter container it looks like; a push
//! holding a PSK is not kept in clear in `done/`.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

use vr_tests::{lan_router, require_root, wait_for, AgentProc, Netns};

fn router(tag: &str) -> Netns {
    lan_router(tag)
}

fn push(i: u32) -> String {
    format!(
        r#"{{"schema":1,"routes":[{{"destination":"10.230.{i}.0/24","gateway":"10.99.0.2","device":"lan0"}}]}}"#
    )
}

/// The one `*.result.json` in `dir` whose name contains `~` (a shortened name), once there.
fn shortened_result(dir: &Path) -> Option<serde_json::Value> {
    let mut found = None;
    wait_for(Duration::from_secs(15), || {
        found = std::fs::read_dir(dir).ok().and_then(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .find(|n| n.contains('~') && n.ends_with(".result.json"))
                .and_then(|n| std::fs::read_to_string(dir.join(n)).ok())
                .and_then(|t| serde_json::from_str(&t).ok())
        });
        found.is_some()
    });
    found
}

#[test]
fn names_that_cannot_carry_a_result_are_rejected_and_the_agent_serves() {
    if !require_root("names_that_cannot_carry_a_result_are_rejected_and_the_agent_serves") {
        return;
    }
    let ns = router("vrname");
    let mut agent = AgentProc::new(Some(&ns.name));
    agent.start();
    let failed = agent.spool_dir.join("failed");
    let mut failures = Vec::new();

    // 300 bytes is more than any Linux file system allows in one name (NAME_MAX = 255): the
    // writer cannot even create it. 255 bytes can exist, and leaves no room for the result.
    let tmp = agent.dir.path().join("x.tmp");
    std::fs::write(&tmp, push(1)).unwrap();
    let long300 = agent.spool_dir.join(format!("{}.json", "n".repeat(295)));
    assert!(
        std::fs::rename(&tmp, &long300).is_err(),
        "a 300-byte name was created"
    );
    let names: [(&str, Vec<u8>); 2] = [
        (
            "255-byte name",
            format!("{}.json", "n".repeat(250)).into_bytes(),
        ),
        ("not UTF-8", b"push-\xff\xfe.json".to_vec()),
    ];
    for (i, (kind, name)) in names.iter().enumerate() {
        for e in std::fs::read_dir(&failed).unwrap().flatten() {
            std::fs::remove_file(e.path()).unwrap();
        }
        let path = agent.spool_dir.join(std::ffi::OsStr::from_bytes(name));
        std::fs::write(&tmp, push(i as u32 + 1)).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        match shortened_result(&failed) {
            Some(r) if r["ok"] == false && r["message"].as_str().unwrap_or("").contains("name") => {
            }
            other => failures.push(format!(
                "{kind}: no rejection under a short name: {other:?}"
            )),
        }
        if path.exists() {
            failures.push(format!(
                "{kind}: still in the spool (the loop would take it again)"
            ));
        }
        // The loop goes on: the next push is applied.
        let next = format!("after-{i}.json");
        agent.spool_push(&next, &push(100 + i as u32));
        match agent.spool_result(&next, Duration::from_secs(15)) {
            Some((true, _)) => {}
            other => failures.push(format!("{kind}: the next push was not applied: {other:?}")),
        }
    }
    let routes = ns.ip(&["route", "show"]);
    if routes.contains("10.230.1.0") || routes.contains("10.230.2.0") {
        failures.push(format!("a rejected push reached the kernel: {routes}"));
    }
    println!("spool names: 2 kinds, {} failures", failures.len());
    vr_tests::summary::record(vr_tests::summary::Row {
        check: "spool name too long".into(),
        runs: 2,
        unit: "names (255 bytes, not UTF-8)".into(),
        failures: failures.len() as u64,
        ..Default::default()
    });
    assert!(failures.is_empty(), "{failures:#?}");
}

const PSK: &str = "spool-faults-psk-Qw81Zr";

fn container(parts: &[&str]) -> String {
    let mut s =
        String::from("#Apache CloudStack Virtual Router Config File\n<version>\n1.0\n</version>\n");
    for (i, json) in parts.iter().enumerate() {
        let f = format!("static_routes.json.9d0e-{i}");
        s += &format!("<file>\n/var/cache/cloud/{f}\n{json}\n</file>\n<script>\n/opt/cloud/bin/update_config.py {f}\n</script>\n");
    }
    s
}

fn static_routes(nets: &[&str]) -> String {
    let routes: Vec<String> = nets
        .iter()
        .map(|n| {
            format!(
                r#"{{"revoke":false,"ip_address":"10.99.0.1","gateway":"10.99.0.2","network":"{n}"}}"#
            )
        })
        .collect();
    format!(
        r#"{{"type":"staticroutes","delete_from_processed_cache":false,"routes":[{}]}}"#,
        routes.join(",")
    )
}

#[test]
fn a_cfg_cut_after_a_file_is_rejected_and_secrets_are_not_kept_in_clear() {
    if !require_root("a_cfg_cut_after_a_file_is_rejected_and_secrets_are_not_kept_in_clear") {
        return;
    }
    let ns = router("vrcfg");
    let mut agent = AgentProc::new(Some(&ns.name));
    agent.start();
    let mut failures = Vec::new();
    let whole = container(&[
        &static_routes(&["172.16.0.0/16"]),
        &static_routes(&["172.16.0.0/16", "172.17.0.0/16"]),
    ]);
    // Cut right after the second `</file>`: the first part alone is a valid container.
    let cut = &whole[..whole.rfind("<script>").unwrap()];
    agent.spool_push("VR-cut.cfg", cut);
    match agent.spool_result("VR-cut.cfg", Duration::from_secs(30)) {
        Some((false, r)) if r.to_string().contains("cut short") => {}
        other => failures.push(format!("the cut container was not rejected: {other:?}")),
    }
    let routes = ns.ip(&["route", "show"]);
    if routes.contains("172.16.0.0") {
        failures.push(format!("part of the cut container was applied: {routes}"));
    }
    if agent.state_json().is_some() {
        failures.push("state.json written for a rejected container".into());
    }
    agent.spool_push("VR-whole.cfg", &whole);
    match agent.spool_result("VR-whole.cfg", Duration::from_secs(30)) {
        Some((true, _)) => {}
        other => failures.push(format!("the whole container was not applied: {other:?}")),
    }
    let routes = ns.ip(&["route", "show"]);
    if !routes.contains("172.17.0.0/16") {
        failures.push(format!(
            "the whole container is not in the kernel: {routes}"
        ));
    }
    println!("truncated .cfg: {} failures", failures.len());
    vr_tests::summary::record(vr_tests::summary::Row {
        check: "truncated .cfg".into(),
        runs: 1,
        unit: "container cut after </file>".into(),
        failures: failures.len() as u64,
        ..Default::default()
    });

    // A processed push that held a PSK is kept redacted, never as sent.
    let vpn = format!(
        r#"{{"schema":1,"vpn":{{"site_to_site":[{{"name":"s1","local_public_ip":"10.99.0.1","peer_gateway":"10.99.0.9","psk":"{PSK}","local_subnets":["10.1.1.0/24"],"remote_subnets":["10.2.2.0/24"]}}]}}}}"#
    );
    agent.spool_push("vpn.json", &vpn);
    let res = agent.spool_result("vpn.json", Duration::from_secs(30));
    assert!(res.is_some(), "vpn.json not processed");
    let mut kept = 0;
    for sub in ["done", "failed"] {
        let p = agent.spool_dir.join(sub).join("vpn.json");
        if let Ok(text) = std::fs::read_to_string(&p) {
            kept += 1;
            assert!(
                !text.contains(PSK) && text.contains("<redacted>"),
                "{} keeps the PSK in clear: {text}",
                p.display()
            );
        }
    }
    assert_eq!(kept, 1, "the redacted push is kept for the operator");
    assert!(wait_for(Duration::from_secs(1), || !agent
        .spool_dir
        .join("vpn.json")
        .exists()));
    assert!(failures.is_empty(), "{failures:#?}");
}
