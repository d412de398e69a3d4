//! Golden files of the rendered keepalived.conf and conntrackd.conf, and of plans (regenerate
//! with `UPDATE_GOLDEN=1 cargo test -p vr-ha --test golden`).

use std::path::Path;

use vr_ha::plan::{plan, Current, Daemon};
use vr_ha::render::{conntrackd, keepalived, Hooks, Paths};
use vr_ha::{HaRole, HaSection};

fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1") {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 creates it)", path.display()));
    assert_eq!(actual, want, "{} differs", path.display());
}

fn section(json: &str) -> HaSection {
    let s: HaSection = serde_json::from_str(json).unwrap();
    s.validate().unwrap();
    s
}

fn hooks() -> Hooks {
    Hooks {
        command: "/usr/bin/vr-agent --socket /run/vr-agent.sock ha".into(),
    }
}

const ISOLATED: &str = r#"{"router-id": 17, "priority": 150, "password": "s3cr3tpassword",
  "instances": [{"device": "eth0", "vips": ["10.1.1.1/24"]}],
  "sync": {"device": "eth0", "local": "10.1.1.2"}, "no-sync": ["169.254.0.0/16"]}"#;

const VPC: &str = r#"{"router-id": 5, "advert-int-ms": 200, "password": "pw",
  "instances": [{"device": "eth2", "vips": ["10.1.1.1/24"]}, {"device": "eth3", "vips": ["10.1.2.1/24", "10.1.2.250/24"]}],
  "sync": {"device": "sync0", "local": "198.51.100.1", "peer": "198.51.100.2"}}"#;

#[test]
fn isolated_router_v2_with_auth_and_multicast_sync() {
    let ha = section(ISOLATED);
    let paths = Paths::new(Path::new("/run/vr-agent"));
    golden(
        "isolated.keepalived.conf",
        &keepalived(&ha, &hooks(), &paths),
    );
    golden(
        "isolated.conntrackd.conf",
        &conntrackd(&ha, &paths).unwrap(),
    );
}

#[test]
fn vpc_two_tiers_v3_sync_group_unicast_sync() {
    let ha = section(VPC);
    let paths = Paths::new(Path::new("/run/vr-agent"));
    let k = keepalived(&ha, &hooks(), &paths);
    assert!(!k.contains("auth_pass"), "VRRPv3 has no authentication");
    golden("vpc.keepalived.conf", &k);
    golden("vpc.conntrackd.conf", &conntrackd(&ha, &paths).unwrap());
}

#[test]
fn plans_reload_only_on_change_and_transitions_once() {
    let ha = section(ISOLATED);
    let paths = Paths::new(Path::new("/run/vr-agent"));
    let first = plan(
        Some(&ha),
        Some(HaRole::Backup),
        &Current::default(),
        &hooks(),
        &paths,
    );
    assert_eq!(first.keepalived, Daemon::Start);
    assert_eq!(first.conntrackd, Daemon::Start);
    let text = first.to_string();
    assert!(
        !text.contains("s3cr3t"),
        "the plan never shows the password"
    );
    golden("plan.first.txt", &text);
    let running = Current {
        keepalived_conf: Some(keepalived(&ha, &hooks(), &paths)),
        conntrackd_conf: conntrackd(&ha, &paths),
        keepalived_running: true,
        conntrackd_running: true,
        role: Some(HaRole::Backup),
    };
    let same = plan(Some(&ha), Some(HaRole::Backup), &running, &hooks(), &paths);
    assert_eq!(same.changes(), 0, "{same}");
    let promoted = plan(Some(&ha), Some(HaRole::Primary), &running, &hooks(), &paths);
    golden("plan.promote.txt", &promoted.to_string());
    let mut changed = ha.clone();
    changed.priority = 120;
    let p = plan(
        Some(&changed),
        Some(HaRole::Backup),
        &running,
        &hooks(),
        &paths,
    );
    assert_eq!((p.keepalived, p.conntrackd), (Daemon::Reload, Daemon::Keep));
    changed.no_sync.push("10.9.0.0/16".parse().unwrap());
    let p = plan(
        Some(&changed),
        Some(HaRole::Backup),
        &running,
        &hooks(),
        &paths,
    );
    assert_eq!(p.conntrackd, Daemon::Restart);
    let gone = plan(None, None, &running, &hooks(), &paths);
    assert_eq!(
        (gone.keepalived, gone.conntrackd),
        (Daemon::Stop, Daemon::Stop)
    );
}

#[test]
fn invalid_fields_are_named_and_the_password_never_quoted() {
    let mut ha = section(ISOLATED);
    ha.priority = 255;
    assert_eq!(
        ha.validate().unwrap_err().to_string(),
        "ha.priority: \"255\" must be 1-254"
    );
    let mut ha = section(ISOLATED);
    ha.password = Some(vr_secret::Secret::new("has space"));
    let e = ha.validate().unwrap_err().to_string();
    assert!(
        !e.contains("has space") && e.starts_with("ha.password"),
        "{e}"
    );
    let mut ha = section(ISOLATED);
    ha.advert_int_ms = 50;
    assert!(ha
        .validate()
        .unwrap_err()
        .to_string()
        .starts_with("ha.advert-int-ms"));
}
