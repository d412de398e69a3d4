//! Planner cases: a host added is a SIGHUP, a host removed is a SIGHUP and a release, a
//! structural change is a restart, a dead daemon is started, no network stops it.

use std::path::Path;

use vr_guest::plan::{plan, Current, Daemon};
use vr_guest::render::{render, Paths};
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
    }
}

fn serving(s: &DhcpSection) -> Current {
    Current::serving(&render(s, &paths()))
}

#[test]
fn adding_a_host_is_a_reload() {
    let old = section(5000);
    let mut new = old.clone();
    new.upsert_host(host(5000));
    let p = plan(&old, &new, &serving(&old), &paths());
    assert_eq!(p.daemon, Daemon::Reload);
    assert!(p.releases.is_empty());
    assert_eq!(p.writes.len(), 2, "{p}");
    assert_eq!(p.changes(), 3);
    let text = p.to_string();
    assert!(
        text.contains("+ 02:00:00:00:13:88,10.1.21.2,vm5000,infinite"),
        "{text}"
    );
    assert!(text.contains("kill -HUP dnsmasq"), "{text}");
}

#[test]
fn removing_a_host_reloads_and_releases() {
    let old = section(3);
    let mut new = old.clone();
    new.hosts.remove(1);
    let p = plan(&old, &new, &serving(&old), &paths());
    assert_eq!(p.daemon, Daemon::Reload);
    assert_eq!(
        p.to_string().lines().last().unwrap(),
        "dhcp_release eth0 10.1.1.3 02:00:00:00:00:01"
    );
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
    assert_eq!((p.daemon, p.writes.len()), (Daemon::Start, 0));
    assert_eq!(plan(&old, &old, &serving(&old), &paths()).changes(), 0);
    let p = plan(&old, &DhcpSection::default(), &serving(&old), &paths());
    assert_eq!(p.daemon, Daemon::Stop);
}

#[test]
fn a_non_default_nic_is_structural_other_hosts_stay_a_reload() {
    let old = section(3);
    let mut new = old.clone();
    new.hosts[0].default_nic = false;
    let p = plan(&old, &new, &serving(&old), &paths());
    assert_eq!(p.daemon, Daemon::Restart, "{p}");
    let mut more = new.clone();
    more.upsert_host(host(3));
    let p = plan(&new, &more, &serving(&new), &paths());
    assert_eq!(p.daemon, Daemon::Reload, "{p}");
}
