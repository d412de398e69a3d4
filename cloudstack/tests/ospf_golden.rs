//! Golden files of CloudStack's OSPF push (`{"type": "ospf", ...}`) mapped by the adapter
//! onto the native `ospf` section, rendered for FRR (`frr.conf`) and Quagga (`ospfd.conf`).
//! Regenerate with `UPDATE_GOLDEN=1 cargo test -p vr-cloudstack --test ospf_golden`.

use std::path::PathBuf;

use vr_cloudstack::ospf::{from_cloudstack, CloudStackOspf};
use vr_ospf::render::{frr_conf, quagga_confs};

fn golden(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/ospf_golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 creates it)", path.display()));
    assert_eq!(actual, expected, "{name} differs from its golden file");
}

const CLOUDSTACK: &str = r#"{"type": "ospf", "delete_from_processed_cache": false, "enabled": true, "router_id": "192.0.2.10", "area": "0.0.0.0",
  "hello_interval": 10, "dead_interval": 40, "retransmit_interval": 5, "transit_delay": 1, "authentication": "plaintext", "password": "zone-pw",
  "super_cidrs": ["10.0.0.0/8"], "transit_interfaces": [{"device": "eth2", "cost": 10, "network_type": "broadcast"}],
  "tier_cidrs": ["10.1.1.0/24", "10.1.2.0/24"], "redistribute_connected": true}"#;

#[test]
fn cloudstack_push_renders_for_frr_and_quagga() {
    let p: CloudStackOspf = serde_json::from_str(CLOUDSTACK).unwrap();
    let s = from_cloudstack(&p, &|_| vec!["192.0.2.10/24".parse().unwrap()])
        .unwrap()
        .unwrap();
    golden("cloudstack.frr.conf", &frr_conf(Some(&s), "r-7-VM"));
    golden(
        "cloudstack.quagga.ospfd.conf",
        &quagga_confs(Some(&s), "r-7-VM").1,
    );
}
