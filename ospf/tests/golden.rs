//! Golden files for every rendered artefact: FRR `frr.conf` and the Quagga dialect
//! (`zebra.conf` + `ospfd.conf`), for a full native section (CloudStack's OSPF push: in
//! `cloudstack/tests/ospf_golden.rs`).
//! Also the operator's Quagga export (`vr-agent show ospf --dialect quagga`) and the printed
//! plan of a push FRR only takes in order (area switch, router-id change, interface removal).
//! Regenerate with `UPDATE_GOLDEN=1 cargo test -p vr-ospf --test golden`.

use std::path::PathBuf;

use vr_ospf::export::quagga_export;
use vr_ospf::render::{frr_conf, quagga_confs};
use vr_ospf::OspfSection;

fn golden(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 creates it)", path.display()));
    assert_eq!(actual, expected, "{name} differs from its golden file");
}

const FULL: &str = r#"{
  "router_id": "192.0.2.10",
  "areas": [ { "id": "0.0.0.0", "authentication": "md5" }, { "id": "0.0.0.1", "kind": "stub" }, { "id": "0.0.0.2", "kind": "nssa" } ],
  "interfaces": [
    { "device": "eth2", "cost": 10, "hello_interval": 1, "dead_interval": 4, "network_type": "point-to-point",
      "authentication": { "type": "md5", "key_id": 1, "password": "golden-md5" } },
    { "device": "eth3", "cost": 20, "retransmit_interval": 7, "transit_delay": 2, "authentication": { "type": "plaintext", "password": "pw8" } },
    { "device": "eth0", "passive": true }
  ],
  "networks": [ { "prefix": "10.1.1.0/24", "area": "0.0.0.1" }, { "prefix": "10.1.2.0/24", "area": "0.0.0.2" }, { "prefix": "172.16.0.0/30", "area": "0.0.0.0" } ],
  "redistribute": { "connected": true, "static": true },
  "timers": { "spf": { "delay_ms": 0, "initial_hold_ms": 50, "max_hold_ms": 1000 }, "lsa_throttle_ms": 0, "lsa_min_arrival_ms": 0 }
}"#;

#[test]
fn full_section_renders_for_frr_and_quagga() {
    let s: OspfSection = serde_json::from_str(FULL).unwrap();
    vr_ospf::validate_ospf(&s).unwrap();
    golden("full.frr.conf", &frr_conf(Some(&s), "vr1"));
    let (zebra, ospfd) = quagga_confs(Some(&s), "vr1");
    golden("full.quagga.zebra.conf", &zebra);
    golden("full.quagga.ospfd.conf", &ospfd);
}

#[test]
fn no_ospf_renders_an_empty_router() {
    golden("none.frr.conf", &frr_conf(None, "vr1"));
}

/// Interface areas (no network statements) and md5 keys: the export turns the areas into
/// networks for the interfaces' addresses and never prints a key.
const AREAS: &str = r#"{
  "router_id": "192.0.2.10",
  "areas": [ { "id": "0.0.0.1" } ],
  "interfaces": [
    { "device": "eth2", "area": "0.0.0.0", "network_type": "point-to-point", "hello_interval": 1, "dead_interval": 4,
      "authentication": { "type": "md5", "key_id": 3, "password": "export-key" } },
    { "device": "eth0", "area": "0.0.0.1", "passive": true },
    { "device": "eth9", "area": "0.0.0.1" }
  ],
  "redistribute": { "connected": true }
}"#;

#[test]
fn quagga_export_for_operators() {
    let s: OspfSection = serde_json::from_str(AREAS).unwrap();
    vr_ospf::validate_ospf(&s).unwrap();
    let addrs = |dev: &str| -> Vec<ipnet::Ipv4Net> {
        match dev {
            "eth2" => vec!["172.16.0.1/30".parse().unwrap()],
            "eth0" => vec![
                "10.1.1.1/24".parse().unwrap(),
                "10.1.2.1/24".parse().unwrap(),
            ],
            _ => Vec::new(),
        }
    };
    let e = quagga_export(Some(&s), "r-7-VM", &addrs);
    let text = e.to_string();
    assert!(!text.contains("export-key"), "{text}");
    golden("areas.quagga.export.txt", &text);
    let full: OspfSection = serde_json::from_str(FULL).unwrap();
    let e = quagga_export(Some(&full), "vr1", &|_| Vec::new());
    assert!(!e.ospfd_conf.contains("golden-md5") && !e.ospfd_conf.contains("pw8"));
    golden("full.quagga.export.txt", &e.to_string());
    golden(
        "none.quagga.export.txt",
        &quagga_export(None, "vr1", &|_| Vec::new()).to_string(),
    );
}

/// FRR as `show running-config` prints it: network statements, md5 on eth2, eth4 in OSPF.
const RUNNING: &str = "Building configuration...\n\nCurrent configuration:\n!\nfrr version 8.4.4\nfrr defaults traditional\nhostname vr1\n!\ninterface eth0\n description guests\n ip ospf passive\nexit\n!\ninterface eth2\n ip ospf authentication message-digest\n ip ospf message-digest-key 1 md5 golden-md5\n ip ospf network point-to-point\nexit\n!\ninterface eth4\n ip ospf cost 30\nexit\n!\nrouter ospf\n ospf router-id 192.0.2.10\n network 10.1.1.0/24 area 0.0.0.0\n network 172.16.0.0/30 area 0.0.0.0\n network 172.16.1.0/30 area 0.0.0.1\nexit\n!\nend\n";

#[test]
fn a_plan_frr_takes_in_order() {
    let desired: OspfSection = serde_json::from_str(
        r#"{"router_id": "192.0.2.11", "areas": [{"id": "0.0.0.2"}],
            "interfaces": [
              {"device": "eth2", "area": "0.0.0.2", "network_type": "point-to-point",
               "authentication": {"type": "md5", "key_id": 2, "password": "new-md5"}},
              {"device": "eth0", "area": "0.0.0.0", "passive": true}]}"#,
    )
    .unwrap();
    vr_ospf::validate_ospf(&desired).unwrap();
    let want = vr_ospf::render::ospf_blocks(&desired, vr_ospf::render::Dialect::Frr);
    let plan = vr_ospf::apply::plan(RUNNING, "192.0.2.10".parse().ok(), &want);
    let text = plan.to_string();
    assert!(
        !text.contains("golden-md5") && !text.contains("new-md5"),
        "{text}"
    );
    golden("plan.area-switch.txt", &text);
}
