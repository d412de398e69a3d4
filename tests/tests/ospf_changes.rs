//! Issue 12: OSPF changes FRR used to refuse, each with the adjacency checked against a real
//! FRR peer. Switching from `network` statements to per-interface areas and back, changing
//! the area of an interface, changing the router id (which takes `clear ip ospf process`),
//! and taking an interface out of OSPF: every push is applied (not refused and rolled back),
//! the neighbors come back Full, and an unrelated adjacency is not reset. The md5 key goes to
//! vtysh on standard input: it is never on a vtysh command line and never in the agent's log.
//! `show ospf --dialect quagga` exports the committed state for Quagga, keys redacted.

mod ospf_common;

use std::net::Ipv4Addr;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use ospf_common::{full_on, ospf_route, wait_full, Lab, Push, Style, MD5_KEY};
use vr_tests::peers::OSPFD;
use vr_tests::{require_program, require_root, wait_for};

const RID: &str = "172.16.0.1";

#[test]
fn area_switch_router_id_and_interface_removal_keep_adjacencies() {
    let name = "area_switch_router_id_and_interface_removal_keep_adjacencies";
    if !require_root(name) || !require_program(name, OSPFD) {
        return;
    }
    let lab = Lab::new("och");
    let mut p = Push::default();

    // 1. Network statements; md5 on eth3.
    let (status, _) = lab.apply("p1.json", &p);
    assert_eq!(status, "applied");
    for ifc in ["eth3", "eth4"] {
        assert!(
            wait_full(&lab.frr3, ifc, RID, 20).is_some(),
            "no Full adjacency on {ifc}: {}",
            lab.frr3.vtysh(&["show ip ospf neighbor"])
        );
    }
    assert!(wait_for(Duration::from_secs(10), || ospf_route(
        &lab.vr3,
        "10.1.1.0/24"
    )));
    assert!(wait_for(Duration::from_secs(10), || ospf_route(
        &lab.vr1,
        "10.3.0.0/24"
    )));
    assert!(
        lab.running()
            .contains(&format!("message-digest-key 1 md5 {MD5_KEY}")),
        "the key reached FRR"
    );
    let conf = std::fs::metadata(lab.frr1.dir.join("frr.conf")).expect("frr.conf saved");
    assert_eq!(conf.mode() & 0o777, 0o640);
    assert_eq!(
        conf.uid(),
        std::fs::metadata(&lab.frr1.dir).unwrap().uid(),
        "frr.conf belongs to the directory's owner (frr)"
    );
    println!("1. networks: Full on eth3 and eth4, routes learned both ways");

    // The operator's Quagga export of the committed state.
    let out = lab.agent.cli(&["show", "ospf", "--dialect", "quagga"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        text.contains("! ==== ospfd.conf ====")
            && text.contains(" network 172.16.1.0/30 area 0.0.0.1\n")
            && text.contains(" passive-interface eth0\n")
            && text.contains("message-digest-key 1 md5 <redacted>"),
        "{text}"
    );
    assert!(!text.contains(MD5_KEY), "key in the export");
    let out = lab
        .agent
        .cli(&["show", "ospf", "--dialect", "quagga", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        v["zebra.conf"].as_str().unwrap().contains("hostname"),
        "{v}"
    );

    // 2. Per-interface areas instead of network statements.
    p.style = Style::InterfaceAreas;
    let (status, changes) = lab.apply("p2.json", &p);
    assert_eq!(status, "applied", "switch to interface areas");
    let run = lab.running();
    assert!(
        !run.lines().any(|l| l.starts_with(" network ")) && run.contains(" ip ospf area 0.0.0.1"),
        "{run}"
    );
    for ifc in ["eth3", "eth4"] {
        assert!(
            wait_full(&lab.frr3, ifc, RID, 20).is_some(),
            "no Full on {ifc} after the switch"
        );
    }
    assert_eq!(lab.agent.cli(&["diff"]).status.code(), Some(0));
    println!("2. networks -> interface areas: {changes} change(s), Full again on both links");

    // 3. eth4 moves from area 0.0.0.1 to 0.0.0.2 (the peer first); eth3 is not reset.
    lab.frr3.vtysh(&[
        "configure terminal",
        "interface eth4",
        "no ip ospf area 0.0.0.1",
        "ip ospf area 0.0.0.2",
    ]);
    let (_, up3) = full_on(&lab.frr3, "eth3").expect("eth3 Full before the area change");
    let t = Instant::now();
    p.eth4_area = Some(Ipv4Addr::new(0, 0, 0, 2));
    let (status, changes) = lab.apply("p3.json", &p);
    assert_eq!(status, "applied", "area change");
    assert_eq!(changes, 2, "no ip ospf area 0.0.0.1, ip ospf area 0.0.0.2");
    assert!(
        wait_full(&lab.frr3, "eth4", RID, 20).is_some(),
        "no Full on eth4 in area 0.0.0.2: {}",
        lab.frr3.vtysh(&["show ip ospf neighbor"])
    );
    let (_, up3_after) = full_on(&lab.frr3, "eth3").expect("eth3 still Full");
    let elapsed = t.elapsed().as_millis() as u64;
    assert!(
        up3_after + 1000 >= up3 + elapsed,
        "eth3 adjacency was reset by eth4's area change: {up3} ms -> {up3_after} ms after {elapsed} ms"
    );
    assert!(lab
        .frr1
        .vtysh(&["show ip ospf interface eth4 json"])
        .contains("0.0.0.2"));
    println!("3. area change on eth4: {changes} change(s), Full in 0.0.0.2, eth3 not reset");

    // 4. A new router id: the peer sees the new id Full on both links.
    p.router_id = Ipv4Addr::new(172, 16, 0, 11);
    let (status, changes) = lab.apply("p4.json", &p);
    assert_eq!(status, "applied", "router-id change");
    assert_eq!(changes, 2, "the router-id line and clear ip ospf process");
    let j: serde_json::Value =
        serde_json::from_str(&lab.frr1.vtysh(&["show ip ospf json"])).unwrap();
    assert_eq!(j["routerId"], "172.16.0.11", "new id in effect");
    for ifc in ["eth3", "eth4"] {
        assert!(
            wait_full(&lab.frr3, ifc, "172.16.0.11", 20).is_some(),
            "peer sees no Full 172.16.0.11 on {ifc}: {}",
            lab.frr3.vtysh(&["show ip ospf neighbor"])
        );
    }
    assert_eq!(lab.agent.cli(&["diff"]).status.code(), Some(0));
    println!("4. router-id change: {changes} change(s), peer sees 172.16.0.11 Full on both links");

    // 5. eth4 leaves OSPF; eth3 is not reset, the peer drops eth4's neighbor.
    let (_, up3) = full_on(&lab.frr3, "eth3").expect("eth3 Full");
    let t = Instant::now();
    p.eth4_area = None;
    let (status, changes) = lab.apply("p5.json", &p);
    assert_eq!(status, "applied", "interface removal");
    let run = lab.running();
    assert!(
        !run.contains("interface eth4\n ip ospf"),
        "eth4 still has OSPF lines: {run}"
    );
    assert!(
        wait_for(Duration::from_secs(10), || full_on(&lab.frr3, "eth4")
            .is_none()),
        "peer keeps a Full neighbor on eth4"
    );
    let (rid, up3_after) = full_on(&lab.frr3, "eth3").expect("eth3 still Full");
    assert_eq!(rid, "172.16.0.11");
    let elapsed = t.elapsed().as_millis() as u64;
    assert!(
        up3_after + 1000 >= up3 + elapsed,
        "eth3 adjacency was reset by eth4's removal: {up3} ms -> {up3_after} ms after {elapsed} ms"
    );
    assert!(ospf_route(&lab.vr3, "10.1.1.0/24"));
    println!("5. eth4 removed: {changes} change(s), eth4 neighbor gone, eth3 not reset");

    // 6. Back to network statements.
    p.style = Style::Networks;
    let (status, changes) = lab.apply("p6.json", &p);
    assert_eq!(status, "applied", "switch back to networks");
    assert!(
        wait_full(&lab.frr3, "eth3", "172.16.0.11", 20).is_some(),
        "no Full on eth3 after switching back"
    );
    assert!(wait_for(Duration::from_secs(10), || ospf_route(
        &lab.vr3,
        "10.1.1.0/24"
    )));
    assert_eq!(lab.agent.cli(&["diff"]).status.code(), Some(0));
    println!("6. interface areas -> networks: {changes} change(s), Full on eth3");

    // The key never went on vtysh's command line nor into the log.
    let argv = std::fs::read_to_string(&lab.argv_log).expect("vtysh wrapper log");
    assert!(
        argv.lines().any(|l| l.contains("-f /dev/stdin")),
        "config goes through stdin: {argv}"
    );
    assert!(!argv.contains(MD5_KEY), "key on a vtysh command line");
    assert!(!lab.agent.log_text().contains(MD5_KEY), "key in the log");
    println!(
        "vtysh started {} times; key on no command line, not in the log",
        argv.lines().count()
    );
}
