//! Issue 6 acceptance, with real FRR on both sides: the agent's router and a peer reach Full on
//! a point-to-point link and learn each other's networks (a ping between hosts passes); an
//! unrelated change (a new network, another interface's cost) keeps the neighbor Full without
//! a reset; removing OSPF withdraws the routes at the peer; an injection attempt is refused.
//! Also: the full golden configuration (authentication, stub/nssa areas, timers) is accepted by
//! FRR and reads back identically (the apply's verification would fail otherwise).

use std::time::Duration;

use vr_tests::peers::{Frr, OSPFD};
use vr_tests::traffic::ping;
use vr_tests::{require_program, require_root, veth, wait_for, AgentProc, Netns};

const PEER: &str = "interface eth3\n ip ospf area 0\n ip ospf network point-to-point\n ip ospf hello-interval 1\n ip ospf dead-interval 4\n!\ninterface lan0\n ip ospf area 0\n ip ospf passive\n!\nrouter ospf\n ospf router-id 172.16.0.2\n timers throttle spf 0 50 1000\n timers throttle lsa all 0\n timers lsa min-arrival 0\n!\n";

fn push(cost_eth0: u16, extra_network: bool) -> String {
    let extra = if extra_network {
        r#",{"prefix":"10.9.9.0/24","area":"0.0.0.0"}"#
    } else {
        ""
    };
    format!(
        r#"{{"schema":1,
        "interfaces":[{{"device":"eth0","role":"guest","addresses":["10.1.1.1/24"]}},
                      {{"device":"eth3","role":"private_gateway","addresses":["172.16.0.1/30"]}}],
        "ospf":{{"router_id":"172.16.0.1","areas":[{{"id":"0.0.0.0"}}],
          "interfaces":[{{"device":"eth3","network_type":"point-to-point","hello_interval":1,"dead_interval":4,"cost":10}},
                        {{"device":"eth0","passive":true,"cost":{cost_eth0}}}],
          "networks":[{{"prefix":"172.16.0.0/30","area":"0.0.0.0"}},{{"prefix":"10.1.1.0/24","area":"0.0.0.0"}}{extra}],
          "timers":{{"spf":{{"delay_ms":0,"initial_hold_ms":50,"max_hold_ms":1000}},"lsa_throttle_ms":0,"lsa_min_arrival_ms":0}}}}}}"#
    )
}

fn uptime_ms(frr: &Frr) -> Option<u64> {
    let j = frr.vtysh(&["show ip ospf neighbor json"]);
    let v: serde_json::Value = serde_json::from_str(&j).ok()?;
    let n = v["neighbors"].as_object()?.values().next()?.get(0)?.clone();
    if n["nbrState"].as_str()?.starts_with("Full") {
        n["upTimeInMsec"].as_u64()
    } else {
        None
    }
}

#[test]
fn adjacency_routes_no_flap_and_withdrawal() {
    if !require_root("adjacency_routes_no_flap_and_withdrawal")
        || !require_program("adjacency_routes_no_flap_and_withdrawal", OSPFD)
    {
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("vr-ospf")
        .tempdir()
        .unwrap();
    let h1 = Netns::new("oh1");
    let mut vr1 = Netns::new("ovr1");
    let mut vr3 = Netns::new("ovr3");
    let h3 = Netns::new("oh3");
    veth(&h1, "eth0", &vr1, "eth0");
    veth(&vr1, "eth3", &vr3, "eth3");
    veth(&vr3, "lan0", &h3, "eth0");
    vr1.ip(&["addr", "replace", "10.1.1.1/24", "dev", "eth0"]);
    vr1.ip(&["addr", "replace", "172.16.0.1/30", "dev", "eth3"]);
    vr3.ip(&["addr", "add", "172.16.0.2/30", "dev", "eth3"]);
    vr3.ip(&["addr", "add", "10.3.0.1/24", "dev", "lan0"]);
    h1.ip(&["addr", "add", "10.1.1.10/24", "dev", "eth0"]);
    h1.ip(&["route", "add", "default", "via", "10.1.1.1"]);
    h3.ip(&["addr", "add", "10.3.0.10/24", "dev", "eth0"]);
    h3.ip(&["route", "add", "default", "via", "10.3.0.1"]);
    // vr1 runs vr-agent (it turns on forwarding itself); vr3 is a plain FRR peer.
    vr3.sysctl("net.ipv4.ip_forward=1");
    let frr1 = Frr::start(&mut vr1, &dir.path().join("vr1"), "vr1", "");
    let frr3 = Frr::start(&mut vr3, &dir.path().join("vr3"), "vr3", PEER);
    let mut agent = AgentProc::new(Some(&vr1.name));
    agent.extra_args = vec![
        "--frr-vty-dir".into(),
        frr1.dir.display().to_string(),
        "--frr-config".into(),
        frr1.dir.join("frr.conf").display().to_string(),
    ];
    agent.start();
    let (code, r) = agent.apply_text("p1.json", &push(5, false));
    assert_eq!(code, 0, "{r}");

    assert!(
        wait_for(Duration::from_secs(20), || uptime_ms(&frr3).is_some()),
        "no Full adjacency: {}",
        frr3.vtysh(&["show ip ospf neighbor"])
    );
    assert!(
        wait_for(Duration::from_secs(10), || vr1
            .ip(&["route", "show", "10.3.0.0/24"])
            .contains("proto ospf")),
        "vr1 did not learn 10.3.0.0/24"
    );
    assert!(
        wait_for(Duration::from_secs(10), || vr3
            .ip(&["route", "show", "10.1.1.0/24"])
            .contains("proto ospf")),
        "vr3 did not learn 10.1.1.0/24"
    );
    assert!(
        ping(&h1, "10.3.0.10", 2),
        "h1 cannot reach h3 over the learned routes"
    );
    let saved = std::fs::read_to_string(frr1.dir.join("frr.conf")).expect("frr.conf written");
    assert!(saved.contains("ospf router-id 172.16.0.1"), "{saved}");

    // Unrelated changes: another interface's cost, a new network. The neighbor stays Full and
    // its uptime keeps growing.
    std::thread::sleep(Duration::from_millis(1500));
    let before = uptime_ms(&frr3).expect("Full before the change");
    let (code, r) = agent.apply_text("p2.json", &push(30, true));
    assert_eq!(code, 0, "{r}");
    let ospf = r[0]["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["concern"] == "ospf")
        .unwrap()
        .clone();
    assert_eq!(ospf["status"], "applied", "{ospf}");
    assert_eq!(
        ospf["changes"], 2,
        "only the cost line and the network line: {ospf}"
    );
    std::thread::sleep(Duration::from_millis(2500));
    let after = uptime_ms(&frr3).expect("Full after the change");
    assert!(
        after >= before + 2000,
        "adjacency reset: uptime {before} ms -> {after} ms"
    );
    assert!(frr1
        .vtysh(&["show running-config"])
        .contains("ip ospf cost 30"));

    // Diagnostics see the neighbor.
    let out = agent.cli(&["check", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let n = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "ospf neighbor 172.16.0.2")
        .cloned();
    assert_eq!(
        n.as_ref().map(|c| c["verdict"].clone()),
        Some("ok".into()),
        "{v}"
    );
    assert_eq!(
        agent.cli(&["diff"]).status.code(),
        Some(0),
        "diff after apply"
    );
    let out = agent.cli(&["show", "ospf", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["neighbors"][0]["router_id"], "172.16.0.2", "{v}");
    assert!(
        v["neighbors"][0]["state"]
            .as_str()
            .unwrap_or("")
            .starts_with("Full"),
        "{v}"
    );
    assert!(
        v["routes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["prefix"] == "10.3.0.0/24"),
        "{v}"
    );
    let out = agent.cli(&["status", "--json"]);
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(st["generation"], 2, "{st}");
    assert!(
        st["concerns"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["concern"] == "ospf" && c["status"] == "applied"),
        "{st}"
    );

    // An injection attempt is refused and changes nothing.
    let bad = push(30, true).replace(
        r#""device":"eth0","passive""#,
        r#""device":"eth0\n!\nrouter bgp 1","passive""#,
    );
    let (code, r) = agent.apply_text("bad.json", &bad);
    assert_eq!(code, 1, "{r}");
    assert_eq!(
        r[0]["errors"][0]["path"], "ospf.interfaces[1].device",
        "{r}"
    );
    assert!(!frr1.vtysh(&["show running-config"]).contains("router bgp"));

    // Removing OSPF withdraws the routes at the peer.
    let (code, r) = agent.apply_text("off.json", r#"{"schema":1,"ospf":null}"#);
    assert_eq!(code, 0, "{r}");
    assert!(!frr1.vtysh(&["show running-config"]).contains("router ospf"));
    assert!(
        wait_for(Duration::from_secs(10), || !vr3
            .ip(&["route", "show", "10.1.1.0/24"])
            .contains("proto ospf")),
        "peer kept the route after OSPF was removed"
    );
}

#[test]
fn the_full_golden_configuration_reads_back_identically() {
    if !require_root("the_full_golden_configuration_reads_back_identically")
        || !require_program(
            "the_full_golden_configuration_reads_back_identically",
            OSPFD,
        )
    {
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("vr-ospf")
        .tempdir()
        .unwrap();
    let mut vr = Netns::new("ogld");
    for (a, b) in [("eth0", "eth0p"), ("eth2", "eth2p"), ("eth3", "eth3p")] {
        vr.ip(&["link", "add", a, "type", "veth", "peer", "name", b]);
        vr.ip(&["link", "set", a, "up"]);
    }
    let frr = Frr::start(&mut vr, &dir.path().join("frr"), "vr", "");
    let mut agent = AgentProc::new(Some(&vr.name));
    agent.extra_args = vec![
        "--frr-vty-dir".into(),
        frr.dir.display().to_string(),
        "--frr-config".into(),
        frr.dir.join("frr.conf").display().to_string(),
    ];
    agent.start();
    let full = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/native/router.json"
    ))
    .unwrap();
    let doc: serde_json::Value = serde_json::from_str(&full).unwrap();
    let push = serde_json::json!({"schema": 1, "ospf": doc["ospf"]}).to_string();
    let (code, r) = agent.apply_text("full.json", &push);
    assert_eq!(
        code, 0,
        "FRR must take the whole configuration and read it back identically: {r}"
    );
    let (code, r) = agent.apply_text("again.json", &push);
    assert_eq!(code, 0, "{r}");
    assert_eq!(agent.cli(&["diff"]).status.code(), Some(0));
    let log = agent.log_text();
    assert!(!log.contains("ospf-key"), "OSPF key in the log");
}
