//! Any OSPF section that validates renders to FRR and Quagga text in which no value started a
//! line of its own: exactly one `interface` line per interface and one `router ospf`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vr_ospf::render::{frr_conf, quagga_confs};
use vr_ospf::OspfSection;

fuzz_target!(|data: &[u8]| {
    let Ok(section) = serde_json::from_slice::<OspfSection>(data) else { return };
    if vr_ospf::validate_ospf(&section).is_err() {
        return;
    }
    let frr = frr_conf(Some(&section), "vr");
    let (_, ospfd) = quagga_confs(Some(&section), "vr");
    for text in [&frr, &ospfd] {
        assert_eq!(text.lines().filter(|l| l.starts_with("interface ")).count(), section.interfaces.len());
        assert_eq!(text.lines().filter(|l| l.starts_with("router ")).count(), 1);
    }
});
