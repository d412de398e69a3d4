//! The `bgp` section: the router's BGP speaker (FRR bgpd), rendered as one `router bgp` block
//! and applied line by line ([`plan`]) so that adding, changing or removing one neighbor touches
//! only that neighbor's session and announcing a new prefix resets none.
//!
//! FRR runs one BGP instance per VRF: the router has one local AS. Prefixes are announced to
//! every neighbor of their address family (`network` statements; FRR's import check announces
//! a prefix only while the router has a route to it, i.e. while the guest network is up).

use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Secret;

pub mod plan;
pub mod status;

/// `bgp` section: replaces the previous one whole; `"bgp": null` removes BGP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BgpSection {
    /// The router's AS (`router bgp AS`).
    pub local_as: u32,
    pub router_id: Ipv4Addr,
    #[serde(default)]
    pub neighbors: Vec<BgpNeighbor>,
    /// Prefixes announced (the guest networks), IPv4 and IPv6.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub networks: Vec<IpNet>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BgpNeighbor {
    pub address: IpAddr,
    pub remote_as: u32,
    /// TCP MD5 password (a secret: never printed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// eBGP multihop TTL (1-255); absent = directly connected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ebgp_multihop: Option<u8>,
}

/// Seconds between connection attempts to a neighbor whose session is down. FRR's default is
/// 120 s: a session dropped because one end changed its password first would stay down two
/// minutes after the other end caught up.
pub const CONNECT_RETRY: u16 = 5;

/// One error in a `bgp` section: the field and the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
/// bgp.{path}: {value}: {reason}
#[error("bgp.{path}: {value}: {reason}")]
pub struct BgpFieldError {
    pub path: String,
    pub value: String,
    pub reason: String,
}

/// Checks what FRR would refuse or what would break the config text (the password is the one
/// free-form string: no whitespace or control characters, FRR takes one word; never echoed).
pub fn validate_bgp(b: &BgpSection) -> Result<(), Vec<BgpFieldError>> {
    let mut errs = Vec::new();
    let mut err = |path: String, value: String, why: &str| {
        errs.push(BgpFieldError {
            path,
            value,
            reason: why.into(),
        })
    };
    if b.local_as == 0 {
        err("local_as".into(), "0".into(), "AS number 0 is reserved");
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, n) in b.neighbors.iter().enumerate() {
        if n.remote_as == 0 {
            err(
                format!("neighbors[{i}].remote_as"),
                "0".into(),
                "AS number 0 is reserved",
            );
        }
        if !seen.insert(n.address) {
            err(
                format!("neighbors[{i}].address"),
                n.address.to_string(),
                "duplicate neighbor",
            );
        }
        if n.ebgp_multihop == Some(0) {
            err(
                format!("neighbors[{i}].ebgp_multihop"),
                "0".into(),
                "must be 1-255",
            );
        }
        if let Some(p) = &n.password {
            let s = p.expose();
            if s.is_empty()
                || s.len() > 80
                || s.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                err(
                    format!("neighbors[{i}].password"),
                    "<redacted>".into(),
                    "must be 1-80 characters without spaces or control characters",
                );
            }
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs)
    }
}

/// The `router bgp` block FRR prints for `b` (`show running-config`), which the plan diffs
/// against. Holds passwords: redact before printing.
pub fn bgp_block(b: &BgpSection) -> String {
    let mut out = format!(
        "router bgp {}\n bgp router-id {}\n",
        b.local_as, b.router_id
    );
    // FRR >= 7.4 (RFC 8212) sends nothing to an eBGP peer without an outbound policy.
    out.push_str(" no bgp ebgp-requires-policy\n");
    // Each neighbor is activated in its own address family only.
    out.push_str(" no bgp default ipv4-unicast\n");
    for n in &b.neighbors {
        let a = n.address;
        out.push_str(&format!(" neighbor {a} remote-as {}\n", n.remote_as));
        if let Some(p) = &n.password {
            out.push_str(&format!(" neighbor {a} password {}\n", p.expose()));
        }
        if let Some(h) = n.ebgp_multihop {
            out.push_str(&format!(" neighbor {a} ebgp-multihop {h}\n"));
        }
        out.push_str(&format!(" neighbor {a} timers connect {CONNECT_RETRY}\n"));
    }
    for (af, v4) in [("ipv4", true), ("ipv6", false)] {
        let nets: Vec<IpNet> = b
            .networks
            .iter()
            .filter(|n| matches!(n, IpNet::V4(_)) == v4)
            .map(|n| n.trunc())
            .collect();
        let nbrs: Vec<IpAddr> = b
            .neighbors
            .iter()
            .map(|n| n.address)
            .filter(|a| a.is_ipv4() == v4)
            .collect();
        if nets.is_empty() && nbrs.is_empty() {
            continue;
        }
        out.push_str(&format!(" !\n address-family {af} unicast\n"));
        let mut sorted = nets;
        sorted.sort();
        sorted.dedup();
        for n in sorted {
            out.push_str(&format!("  network {n}\n"));
        }
        for a in nbrs {
            out.push_str(&format!("  neighbor {a} activate\n"));
        }
        out.push_str(" exit-address-family\n");
    }
    out.push_str("exit\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> BgpSection {
        serde_json::from_str(
            r#"{"local_as":65000,"router_id":"192.0.2.1",
            "neighbors":[{"address":"192.0.2.2","remote_as":65101,"password":"s3cret","ebgp_multihop":2},
                         {"address":"2001:db8::2","remote_as":65102}],
            "networks":["10.1.1.0/24","2001:db8:1::1/64"]}"#,
        )
        .unwrap()
    }

    #[test]
    fn block_matches_the_golden_file() {
        let text = bgp_block(&sample());
        let golden = include_str!("../../tests/golden/bgp_block.conf");
        assert_eq!(text, golden, "{text}");
        validate_bgp(&sample()).unwrap();
    }

    #[test]
    fn validation_names_field_and_value_never_the_password() {
        let mut b = sample();
        b.local_as = 0;
        b.neighbors[1].address = b.neighbors[0].address;
        b.neighbors[0].password = Some(Secret::new("two words"));
        let e = validate_bgp(&b).unwrap_err();
        let text: Vec<String> = e.iter().map(|e| e.to_string()).collect();
        assert_eq!(text[0], "bgp.local_as: 0: AS number 0 is reserved");
        assert!(text
            .iter()
            .any(|t| t.starts_with("bgp.neighbors[0].password: <redacted>")));
        assert!(text
            .iter()
            .any(|t| t == "bgp.neighbors[1].address: 192.0.2.2: duplicate neighbor"));
        assert!(!text.concat().contains("two words"));
    }
}
