//! Planner cases: a host added is two files and no signal (inotify), a host removed is its
//! files removed, a SIGHUP and a release, a changed host is a SIGHUP, a structural change is a
//! restart, a dead daemon is started, no network stops it, drift found by `observe` is
//! repaired file by file. The plans of the host cases are golden files.
//! Regenerate with `UPDATE_GOLDEN=1 cargo test -p vr-guest --test plan`.

use std::path::{Path, PathBuf};

use vr_guest::plan::{plan, Current, Daemon, DhcpPlan};
use vr_guest::render::{render, HostDir, Paths};
use vr_guest::{DhcpHost, DhcpSection};

fn paths() -> Paths {
    Paths::new(Path::new("/run/vr-agent"), Path::new("/var/lib/vr-agent"))
}

fn section(hosts: usize) -> DhcpSection {
    let mut s: DhcpSection = serde_json::from_str(
        r#"{"networks":[{"device":"eth0","address":"10.1.0.1/16","domain":"t.internal"}]}"#,
    )
    .unwrap();
    for i in 0..hosts {
        s.hosts.push(host(i));
    }
    s
}

fn host(i: usize) -> DhcpHost {
    DhcpHost {
        mac: format!("02:00:00:00:{:02x}:{:02x}", i / 256, i % 256),
        ipv4: format!("10.1.{}.{}", 1 + i / 250, 2 + i % 250)
            .parse()
            .unwrap(),
        hostname: Some(format!("vm{i}")),
        default_nic: true,
        ipv6: None,
        duid: None,
    }
}

fn serving(s: &DhcpSection) -> Current {
    Current::serving(&render(s, &paths()))
}

fn golden(name: &str, p: &DhcpPlan) {
    let actual = p.to_string();
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 creates it)", path.display()));
    assert_eq!(actual, expected, "{name} differs from its golden file");
}

#[test]
fn adding_a_host_is_two_files_and_no_signal() {
    let old = section(5000);
    let mut new = old.clone();
    new.upsert_host(host(5000));
    let p = plan(&old, &new, &serving(&old), &paths());
    assert_eq!(p.daemon, Daemon::Keep);
    assert!(p.releases.is_empty() && p.writes.is_empty());
    assert_eq!(p.host_ops.len(), 2, "{p}");
    assert_eq!(p.changes(), 2);
    golden("plan_add_host.txt", &p);
}

#[test]
fn removing_a_host_reloads_and_releases() {
    let old = section(3);
    let mut new = old.clone();
    new.hosts.remove(1);
    let p = plan(&old, &new, &serving(&old), &paths());
    assert_eq!(p.daemon, Daemon::Reload);
    assert!(p.host_ops.iter().all(|o| o.content.is_none()));
    golden("plan_remove_host.txt", &p);
}

#[test]
fn a_host_moved_to_another_address_reloads_and_releases_the_old_one() {
    let old = section(3);
    let mut new = old.clone();
    let mut h = host(1);
    h.ipv4 = "10.1.9.9".parse().unwrap();
    new.upsert_host(h);
    let p = plan(&old, &new, &serving(&old), &paths());
    assert_eq!(p.daemon, Daemon::Reload);
    golden("plan_move_host.txt", &p);
}

#[test]
fn structure_restarts_a_dead_daemon_starts_nothing_to_do_is_empty() {
    let old = section(2);
    let mut new = old.clone();
    new.networks[0].mtu = Some(1400);
    assert_eq!(
        plan(&old, &new, &serving(&old), &paths()).daemon,
        Daemon::Restart
    );
    let mut dead = serving(&old);
    dead.running = false;
    let p = plan(&old, &old, &dead, &paths());
    assert_eq!((p.daemon, p.changes()), (Daemon::Start, 1));
    assert_eq!(plan(&old, &old, &serving(&old), &paths()).changes(), 0);
    let p = plan(&old, &DhcpSection::default(), &serving(&old), &paths());
    assert_eq!(p.daemon, Daemon::Stop);
}

#[test]
fn a_non_default_nic_is_structural_other_hosts_stay_files() {
    let old = section(3);
    let mut new = old.clone();
    new.hosts[0].default_nic = false;
    let p = plan(&old, &new, &serving(&old), &paths());
    assert_eq!(p.daemon, Daemon::Restart, "{p}");
    let mut more = new.clone();
    more.upsert_host(host(3));
    let p = plan(&new, &more, &serving(&new), &paths());
    assert_eq!(p.daemon, Daemon::Keep, "{p}");
}

#[test]
fn observed_drift_is_repaired_file_by_file() {
    let s = section(4);
    let mut cur = serving(&s);
    cur.observed = true;
    // One lease file lost, one names file edited by hand, one stray host left behind.
    cur.host_files.get_mut(&host(0).mac).unwrap().dhcp.clear();
    cur.host_files.get_mut(&host(2).mac).unwrap().names = Some("10.9.9.9 evil\n".into());
    let stray = host(7);
    cur.host_files
        .insert(stray.mac.clone(), vr_guest::render::host_files(&s, &stray));
    let p = plan(&s, &s, &cur, &paths());
    let ops: Vec<(String, HostDir, bool)> = p
        .host_ops
        .iter()
        .map(|o| (o.mac.clone(), o.kind, o.content.is_some()))
        .collect();
    assert_eq!(
        ops,
        [
            (host(0).mac, HostDir::Dhcp, true),
            (host(2).mac, HostDir::Names, true),
            (stray.mac.clone(), HostDir::Names, false),
            (stray.mac, HostDir::Dhcp, false),
        ]
    );
    assert_eq!(p.daemon, Daemon::Reload, "{p}");
    // After the repair the mirror matches: nothing left to do.
    cur.apply(&p, &paths());
    assert_eq!(plan(&s, &s, &cur, &paths()).changes(), 0);
}

#[test]
fn the_plan_of_one_host_does_not_grow_with_the_network() {
    // Same plan text at 50 and at 5,000 hosts (only the host's own files).
    let at = |n: usize| {
        let old = section(n);
        let mut new = old.clone();
        let mut h = host(9999);
        h.ipv4 = "10.1.250.250".parse().unwrap();
        new.upsert_host(h);
        plan(&old, &new, &serving(&old), &paths()).to_string()
    };
    assert_eq!(at(50), at(5000));
}
