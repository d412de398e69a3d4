//! Whether the kernel holds every port forward of a NAT section (CloudStack's
//! `iptables_check.py`): the elements of the port-forward maps (`pf_exact`, `pf_port`,
//! `pf_addr`) the section needs, compared one by one with a `nft -j list table ip vr`
//! listing. Extra elements in the kernel are not this check's business (the `nat in sync`
//! check of `vr-agent check` reports any drift); a missing one means a forward does not work.
//!
//! Pure: the caller runs `nft` (with its deadline) and hands the listing in.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value as Json;

use crate::build::{build, RouterContext};
use crate::ir::{Element, Set};
use crate::model::{FirewallSection, NatSection};
use crate::observe::{element, norm_el};

/// Names of the maps holding port forwards.
pub const FORWARD_MAPS: [&str; 3] = ["pf_exact", "pf_port", "pf_addr"];

/// What [`missing_forwards`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presence {
    /// Elements the section needs, over all forward maps.
    pub wanted: usize,
    /// `map: element` (nft text) of each one the kernel lacks, at most `limit` of them.
    pub missing: Vec<String>,
    /// How many are missing in all (`missing` may be cut short).
    pub missing_total: usize,
}

/// The forward maps `nat` asks for, with their elements (their shape is the builder's own).
pub fn forward_maps(nat: &NatSection) -> Vec<Set> {
    let only_forwards = NatSection {
        port_forwards: nat.port_forwards.clone(),
        ..Default::default()
    };
    build(
        &RouterContext::default(),
        &only_forwards,
        &FirewallSection::default(),
        &[],
    )
    .sets
    .into_iter()
    .filter(|s| FORWARD_MAPS.contains(&s.name.as_str()))
    .collect()
}

/// Compares the forward maps of `nat` with `listing` (`nft -j list table ip vr`). `Err`: the
/// listing does not read as nft JSON. A map absent from the listing lacks all its elements.
pub fn missing_forwards(nat: &NatSection, listing: &str, limit: usize) -> Result<Presence, String> {
    let doc: Json = serde_json::from_str(listing).map_err(|e| format!("nft -j output: {e}"))?;
    let objs = doc["nftables"]
        .as_array()
        .ok_or("nft -j output: no \"nftables\" array")?;
    let listed: BTreeMap<&str, &Json> = objs
        .iter()
        .filter_map(|o| o.get("map").or_else(|| o.get("set")))
        .filter_map(|s| Some((s["name"].as_str()?, s)))
        .collect();
    let mut out = Presence {
        wanted: 0,
        missing: Vec::new(),
        missing_total: 0,
    };
    for want in forward_maps(nat) {
        out.wanted += want.elements.len();
        let empty = Vec::new();
        let have: BTreeSet<Element> = listed
            .get(want.name.as_str())
            .and_then(|s| s["elem"].as_array())
            .unwrap_or(&empty)
            .iter()
            .filter_map(|e| element(e, &want))
            .map(|e| norm_el(&e))
            .collect();
        for e in &want.elements {
            if !have.contains(&norm_el(e)) {
                out.missing_total += 1;
                if out.missing.len() < limit {
                    out.missing
                        .push(format!("{}: {}", want.name, crate::render::element(e)));
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nat(n: u16) -> NatSection {
        let pf: Vec<String> = (0..n)
            .map(|i| {
                format!(
                    r#"{{"public_ip":"192.0.2.10","protocol":"tcp","public_ports":{},"private_ip":"10.1.1.{}","private_ports":80}}"#,
                    8000 + i,
                    10 + i
                )
            })
            .collect();
        serde_json::from_str(&format!(r#"{{"port_forwards":[{}]}}"#, pf.join(","))).unwrap()
    }

    /// A listing in the shape `nft -j` prints, of the maps `nat` asks for.
    fn listing(nat: &NatSection, drop_one: bool) -> String {
        let mut maps = Vec::new();
        for s in forward_maps(nat) {
            let mut elems = Vec::new();
            for (i, e) in s.elements.iter().enumerate() {
                if drop_one && i == 0 && s.name == "pf_exact" {
                    continue;
                }
                let v = |v: &crate::ir::Value| match v {
                    crate::ir::Value::Addr(a) => serde_json::json!(a.to_string()),
                    crate::ir::Value::Port(p) => serde_json::json!(p),
                    crate::ir::Value::Proto(6) => serde_json::json!("tcp"),
                    other => panic!("{other:?}"),
                };
                let key: Vec<Json> = e.key.iter().map(v).collect();
                let data: Vec<Json> = match &e.data {
                    Some(crate::ir::ElementData::Values(d)) => d.iter().map(v).collect(),
                    _ => panic!(),
                };
                elems.push(serde_json::json!([{"concat": key}, {"concat": data}]));
            }
            maps.push(serde_json::json!({"map": {"name": s.name, "elem": elems}}));
        }
        serde_json::json!({ "nftables": maps }).to_string()
    }

    #[test]
    fn every_forward_present_or_the_missing_one_named() {
        let n = nat(3);
        let all = missing_forwards(&n, &listing(&n, false), 10).unwrap();
        assert_eq!((all.wanted, all.missing_total), (3, 0), "{all:?}");
        let one = missing_forwards(&n, &listing(&n, true), 10).unwrap();
        assert_eq!(one.missing_total, 1);
        assert_eq!(
            one.missing,
            ["pf_exact: 192.0.2.10 . tcp . 8000 : 10.1.1.10 . 80"]
        );
        let none = missing_forwards(&n, r#"{"nftables":[]}"#, 1).unwrap();
        assert_eq!((none.missing_total, none.missing.len()), (3, 1));
        assert!(missing_forwards(&n, "not json", 1).is_err());
    }
}
