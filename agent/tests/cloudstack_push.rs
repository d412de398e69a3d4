//! The push path (format detection, the `vr-cloudstack` adapter's merge, whole-state
//! validation) takes a `VR-<uuid>.cfg` container as one unit: the valid one applies with its
//! later-wave part reported, the invalid one changes nothing. The payloads are the adapter's
//! golden fixtures (`cloudstack/tests/cloudstack/`).

use std::path::{Path, PathBuf};

use vr_agent::push::{prepare, Format, LocalNics};
use vr_agent::state::DesiredState;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../cloudstack/tests/cloudstack")
}

fn read(name: &str) -> String {
    std::fs::read_to_string(dir().join(name)).unwrap()
}

/// NICs of the isolated router (r-4-VM) by MAC, as in the adapter's golden test.
fn nics() -> LocalNics {
    [
        ("02:00:3b:6e:00:05", "eth0"),
        ("0e:00:a9:fe:03:2c", "eth1"),
        ("06:9a:3c:00:00:12", "eth2"),
        ("06:9a:3c:00:00:13", "eth3"),
        ("02:00:3b:6e:01:07", "eth4"),
    ]
    .iter()
    .map(|(m, n)| (m.parse().unwrap(), n.to_string()))
    .collect()
}

#[test]
fn push_path_takes_containers_whole() {
    let nics = nics();
    let base = prepare(
        &DesiredState::default(),
        &read("cmdline_router.json"),
        &nics,
    )
    .unwrap()
    .state;
    let text = read("VR-3c2f7d1e-aggregate.cfg");
    let p = prepare(&base, &text, &nics).unwrap();
    assert_eq!(p.format, Format::CloudstackAggregate);
    // The DHCP entry has its native section now: served, not pending.
    assert!(p.not_yet_applied.is_empty(), "{:?}", p.not_yet_applied);
    assert_eq!(p.state.dhcp.hosts.len(), 1);
    assert_eq!(p.state.nat.port_forwards.len(), 3);
    let err = prepare(&base, &read("VR-invalid-third-part.cfg"), &nics).unwrap_err();
    assert_eq!(
        err.0[0].path,
        "aggregate[2].rules[1].destination_port_range"
    );
    assert_eq!(
        prepare(&base, &read("ips_add.json"), &nics).unwrap().format,
        Format::Cloudstack
    );
}

/// `monitorservice` is applied: its native section, nothing left "stored, not applied".
#[test]
fn monitorservice_becomes_the_monitor_section() {
    let p = prepare(
        &DesiredState::default(),
        r#"{"type":"monitorservice","delete_from_processed_cache":true,"config":"ssh:/usr/sbin/sshd","health_checks_enabled":true}"#,
        &LocalNics::new(),
    )
    .unwrap();
    assert!(p.not_yet_applied.is_empty(), "{:?}", p.not_yet_applied);
    assert_eq!(p.state.monitor.services[0].unit, "ssh");
    assert!(p.state.monitor.health.is_some());
    assert!(p.state.cloudstack.pending.is_empty());
}
