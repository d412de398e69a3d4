//! Issue 9 spool robustness: a file written slowly in place, the spool directory deleted and
//! recreated, a full disk for the state directory. Each ends with a clear result and no lost or
//! half-applied push.

use std::io::Write;
use std::process::Command;
use std::time::Duration;

use vr_tests::{lan_router, require_root, AgentProc, Netns};

fn push(i: u32) -> String {
    format!(
        r#"{{"schema":1,"routes":[{{"destination":"10.210.{i}.0/24","gateway":"10.99.0.2","device":"lan0"}}]}}"#
    )
}

fn router(tag: &str) -> Netns {
    lan_router(tag)
}

#[test]
fn a_file_written_slowly_in_place_is_applied_once_complete() {
    if !require_root("a_file_written_slowly_in_place_is_applied_once_complete") {
        return;
    }
    let ns = router("vrslow");
    let mut agent = AgentProc::new(Some(&ns.name));
    agent.start();
    // No temp name: the writer appends to the final name in pieces, 700 ms apart (longer than
    // the settle time, so the agent sees the truncated file several times).
    let text = push(1);
    let path = agent.spool_dir.join("slow.json");
    let mut f = std::fs::File::create(&path).unwrap();
    for chunk in text.as_bytes().chunks(text.len() / 4 + 1) {
        f.write_all(chunk).unwrap();
        f.flush().unwrap();
        std::thread::sleep(Duration::from_millis(700));
    }
    drop(f);
    let (ok, result) = agent
        .spool_result("slow.json", Duration::from_secs(10))
        .expect("slow.json processed");
    assert!(
        ok,
        "a slowly written push must be applied whole, not rejected half-written: {result}"
    );
    assert_eq!(result["generation"], 1);
}

#[test]
fn a_deleted_and_recreated_spool_keeps_working() {
    if !require_root("a_deleted_and_recreated_spool_keeps_working") {
        return;
    }
    let ns = router("vrdel");
    let mut agent = AgentProc::new(Some(&ns.name));
    agent.start();
    agent.spool_push("a.json", &push(1));
    assert!(
        agent
            .spool_result("a.json", Duration::from_secs(10))
            .expect("a.json")
            .0
    );
    std::fs::remove_dir_all(&agent.spool_dir).unwrap();
    std::thread::sleep(Duration::from_millis(600));
    // The operator (or the management server) recreates it, or the agent does: either way a
    // new push is picked up.
    std::fs::create_dir_all(&agent.spool_dir).unwrap();
    agent.spool_push("b.json", &push(2));
    let (ok, result) = agent
        .spool_result("b.json", Duration::from_secs(10))
        .expect("b.json processed after the spool came back");
    assert!(ok, "{result}");
    assert_eq!(result["generation"], 2);
}

#[test]
fn a_full_state_disk_fails_the_push_cleanly() {
    if !require_root("a_full_state_disk_fails_the_push_cleanly") {
        return;
    }
    let ns = router("vrfull");
    let mut agent = AgentProc::new(Some(&ns.name));
    std::fs::create_dir_all(&agent.state_dir).unwrap();
    // A 64 KiB tmpfs as the state directory, mounted in the test's mount namespace only for
    // the test's lifetime.
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k,mode=0700", "vr-agent-test"])
        .arg(&agent.state_dir)
        .status()
        .unwrap()
        .success();
    assert!(mounted, "cannot mount a tmpfs");
    struct Umount(std::path::PathBuf);
    impl Drop for Umount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _umount = Umount(agent.state_dir.clone());
    agent.start();
    let (code, r) = agent.apply_text("first.json", &push(1));
    assert_eq!(code, 0, "{r}");
    let before = agent.state_json().unwrap();
    // Fill the disk.
    let filler = agent.state_dir.join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let block = vec![0u8; 4096];
    while f.write_all(&block).is_ok() {}
    drop(f);
    // Large enough not to fit the journal's last block: a small record may, and a push whose
    // record is written whole applies even on a full disk.
    let routes: Vec<String> = (0..400)
        .map(|i| {
            format!(
                r#"{{"destination":"10.211.{}.{}/32","gateway":"10.99.0.2","device":"lan0"}}"#,
                i / 200,
                i % 200
            )
        })
        .collect();
    let second = push(2).replace("]}", &format!(",{}]}}", routes.join(",")));
    let (code, r) = agent.apply_text("second.json", &second);
    assert_eq!(code, 1, "{r}");
    let msg = r[0]["message"].as_str().unwrap_or("");
    assert!(
        msg.contains("No space left") || msg.contains("space"),
        "unclear error: {msg}"
    );
    assert_eq!(
        agent.state_json().unwrap(),
        before,
        "state.json changed on a full disk"
    );
    assert!(
        !agent.pending_intent(),
        "a torn intent was left in the journal"
    );
    let routes = ns.ip(&["route", "show", "table", "all"]);
    assert!(
        !routes.contains("10.210.2.0"),
        "the failed push reached the kernel: {routes}"
    );
    std::fs::remove_file(&filler).unwrap();
    let (code, r) = agent.apply_text("third.json", &push(2));
    assert_eq!(code, 0, "the agent must keep serving: {r}");
}
