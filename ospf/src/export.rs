//! `vr-agent show ospf --dialect quagga`: the OSPF state this router holds, as Quagga's
//! `zebra.conf` and `ospfd.conf`. The agent drives FRR only (Quagga is not packaged for
//! Debian 12); this export is for an operator who moves a router's OSPF to Quagga.
//!
//! Quagga has no per-interface `ip ospf area`: an interface configured that way becomes
//! `network` statements for its addresses, so the export runs OSPF on the same interfaces.
//! Keys are printed `<redacted>` (outputs never carry secrets).

use std::fmt::Write as _;

use ipnet::Ipv4Net;

use crate::model::{OspfNetwork, OspfSection};
use crate::render::{quagga_confs, redact};

/// The two files, keys redacted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuaggaExport {
    pub zebra_conf: String,
    pub ospfd_conf: String,
}

/// Renders `section` for Quagga; `addresses_of(device)` gives an interface's addresses (for
/// interfaces that carry their own area).
pub fn quagga_export(
    section: Option<&OspfSection>,
    hostname: &str,
    addresses_of: &dyn Fn(&str) -> Vec<Ipv4Net>,
) -> QuaggaExport {
    let mut notes = String::new();
    let converted = section.map(|s| {
        let mut s = s.clone();
        for i in &mut s.interfaces {
            let Some(area) = i.area.take() else { continue };
            let prefixes = addresses_of(&i.device);
            if prefixes.is_empty() {
                let _ = writeln!(
                    notes,
                    "! interface {} runs in area {area}, but it has no address in the state: add a network statement for it",
                    i.device
                );
            }
            for p in prefixes {
                let prefix = p.trunc();
                if !s.networks.iter().any(|n| n.prefix == prefix) {
                    s.networks.push(OspfNetwork { prefix, area });
                }
            }
        }
        s
    });
    let (zebra, ospfd) = quagga_confs(converted.as_ref(), hostname);
    let ospfd = if notes.is_empty() {
        ospfd
    } else {
        format!("{notes}{ospfd}")
    };
    QuaggaExport {
        zebra_conf: redact(&zebra),
        ospfd_conf: redact(&ospfd),
    }
}

impl std::fmt::Display for QuaggaExport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "! Quagga configuration of this router's OSPF state (vr-agent show ospf --dialect quagga).\n! Authentication keys are shown as <redacted>: put the real ones in before loading.\n!\n! ==== zebra.conf ===="
        )?;
        f.write_str(&self.zebra_conf)?;
        writeln!(f, "! ==== ospfd.conf ====")?;
        f.write_str(&self.ospfd_conf)
    }
}
