//! The harness can run real peers: a charon answering on its VICI socket and FRR answering on
//! its vty sockets, each inside a namespace of the test.

use vr_tests::peers::{Charon, Frr, CHARON, OSPFD};
use vr_tests::{require_program, require_root, Netns};

#[test]
fn charon_and_frr_start_in_a_namespace() {
    if !require_root("charon_and_frr_start_in_a_namespace")
        || !require_program("charon_and_frr_start_in_a_namespace", CHARON)
        || !require_program("charon_and_frr_start_in_a_namespace", OSPFD)
    {
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("vr-peers")
        .tempdir()
        .unwrap();
    let mut ns = Netns::new("vrpeer");
    let charon = Charon::start(&mut ns, &dir.path().join("charon"));
    let out = charon.swanctl(&["--stats"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("uptime"));
    let frr = Frr::start(
        &mut ns,
        &dir.path().join("frr"),
        "peer",
        "router ospf\n ospf router-id 192.0.2.99\n!\n",
    );
    let conf = frr.vtysh(&["show running-config"]);
    assert!(conf.contains("ospf router-id 192.0.2.99"), "{conf}");
}
