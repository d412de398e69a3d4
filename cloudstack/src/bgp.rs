//! `bgppeers` -> the native `bgp` section. The push carries every peer of the router: it
//! replaces the section whole; a list with no real peer (CloudStack sends `[{"network_id":N}]`
//! for a network whose peers were all deleted) removes BGP.
//!
//! As CloudStack's router does: the local AS is the networks' `network_as_number`, the router
//! id the source-NAT public IP (else the first public address), each peer speaks the family of
//! its address (a peer with both addresses is two neighbors), and the guest CIDRs of the peers'
//! networks are announced. `details.EBGP_MultiHop` becomes the neighbor's multihop TTL.
//! FRR runs one BGP instance, so all peers must share one `network_as_number`: a push mixing
//! two is refused, naming the entry, rather than half applied.

use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;
use vr_ospf::bgp::{BgpNeighbor, BgpSection};

use crate::check::{self, q, Errors};
use crate::error::Invalid;
use crate::later::BgpPeers;
use crate::state::{DesiredState, InterfaceRole};

/// The router's BGP identifier: its source-NAT address, else its first public address, else
/// the `cmdline` public address.
fn router_id(s: &DesiredState) -> Option<Ipv4Addr> {
    s.nat
        .source_nat
        .first()
        .map(|n| n.public_ip)
        .or_else(|| {
            s.interfaces
                .iter()
                .filter(|i| i.role == InterfaceRole::Public)
                .flat_map(|i| i.addresses.first())
                .map(|a| a.addr())
                .next()
        })
        .or_else(|| {
            ["source_nat_ip", "eth2ip"]
                .iter()
                .find_map(|k| s.cloudstack.cmdline.get(*k)?.parse().ok())
        })
}

/// Replaces `next.bgp` with the section the push describes.
pub fn peers(next: &mut DesiredState, b: &BgpPeers) -> Result<(), Invalid> {
    let mut e = Errors::default();
    let mut local_as: Option<(u32, usize)> = None;
    let mut neighbors: Vec<BgpNeighbor> = Vec::new();
    let mut networks: Vec<IpNet> = Vec::new();
    for (i, p) in b.peers.iter().enumerate() {
        let pre = format!("peers[{i}]");
        let addrs: Vec<(&str, IpAddr)> = [
            ("ip4_address", &p.ip4_address),
            ("ip6_address", &p.ip6_address),
        ]
        .into_iter()
        .filter_map(|(f, a)| Some((f, a.as_deref().map(str::trim).filter(|a| !a.is_empty())?)))
        .filter_map(|(f, a)| Some((f, check::ip_any(&mut e, &format!("{pre}.{f}"), a)?)))
        .collect();
        if addrs.is_empty() {
            // A network without peers (only `network_id`): nothing to configure.
            continue;
        }
        let Some(remote_as) = p.peer_as_number else {
            e.push(
                format!("{pre}.peer_as_number"),
                "null",
                "missing for a peer with an address",
            );
            continue;
        };
        match (p.network_as_number, local_as) {
            (None, _) => e.push(
                format!("{pre}.network_as_number"),
                "null",
                "missing: the router's AS is its network's",
            ),
            (Some(a), None) => local_as = Some((a, i)),
            (Some(a), Some((first, j))) if a != first => e.push(
                format!("{pre}.network_as_number"),
                a,
                &format!("differs from peers[{j}]'s {first}: FRR runs one BGP instance per router"),
            ),
            _ => {}
        }
        let multihop = match p.details.as_ref().and_then(|d| d.get("EBGP_MultiHop")) {
            None => None,
            Some(v) => match v.trim().parse::<u8>() {
                Ok(h) if h > 0 => Some(h),
                _ => {
                    e.push(
                        format!("{pre}.details.EBGP_MultiHop"),
                        q(v),
                        "must be 1-255",
                    );
                    None
                }
            },
        };
        for (field, address) in addrs {
            let n = BgpNeighbor {
                address,
                remote_as,
                password: p.peer_password.clone().filter(|s| !s.expose().is_empty()),
                ebgp_multihop: multihop,
            };
            // A VPC lists its peers once per tier: the same peer again is one neighbor.
            match neighbors.iter().find(|o| o.address == address) {
                None => neighbors.push(n),
                Some(o) if *o == n => {}
                Some(_) => e.push(
                    format!("{pre}.{field}"),
                    address,
                    "listed again with another AS, password or multihop",
                ),
            }
        }
        for (field, cidr) in [
            ("guest_ip4_cidr", &p.guest_ip4_cidr),
            ("guest_ip6_cidr", &p.guest_ip6_cidr),
        ] {
            if let Some(c) = cidr.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
                if let Some(n) = check::cidr_any(&mut e, &format!("{pre}.{field}"), c) {
                    let n = n.trunc();
                    if !networks.contains(&n) {
                        networks.push(n);
                    }
                }
            }
        }
    }
    let section = match local_as {
        None => None,
        Some((local_as, _)) => {
            let Some(router_id) = router_id(next) else {
                e.push(
                    "peers",
                    format!("{} peer(s)", neighbors.len()),
                    "the router has no public address yet to be its BGP router id (push ips first)",
                );
                return Err(e.finish().unwrap_err());
            };
            Some(BgpSection {
                local_as,
                router_id,
                neighbors,
                networks,
            })
        }
    };
    e.finish()?;
    next.bgp = section;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{merge, parse_payload, LocalNics};

    fn push(peers: &str) -> Result<DesiredState, Invalid> {
        let mut base = DesiredState::default();
        base.cloudstack
            .cmdline
            .insert("eth2ip".into(), "192.0.2.10".into());
        let text = format!(
            r#"{{"type":"bgppeers","delete_from_processed_cache":false,"peers":[{peers}]}}"#
        );
        let p = parse_payload(&text)?;
        merge(&base, &p, &LocalNics::default()).map(|m| m.state)
    }

    const P: &str = r#"{"peer_id":1,"peer_as_number":65101,"ip4_address":"192.0.2.50","network_id":204,"network_as_number":65000,"guest_ip4_cidr":"10.1.1.0/24"}"#;

    #[test]
    fn router_id_from_cmdline_and_placeholder_removes() {
        let s = push(P).unwrap();
        let b = s.bgp.unwrap();
        assert_eq!(b.router_id.to_string(), "192.0.2.10");
        assert_eq!((b.local_as, b.neighbors.len()), (65000, 1));
        assert_eq!(push(r#"{"network_id":204}"#).unwrap().bgp, None);
        assert_eq!(push("").unwrap().bgp, None);
    }

    #[test]
    fn errors_name_the_entry_and_the_value() {
        let other_as = P
            .replace("65000", "65009")
            .replace("192.0.2.50", "192.0.2.51");
        let e = push(&format!("{P},{other_as}")).unwrap_err();
        assert_eq!(e.0[0].path, "peers[1].network_as_number");
        assert_eq!(e.0[0].value, "65009");
        let e = push(&P.replace(r#""peer_as_number":65101,"#, "")).unwrap_err();
        assert_eq!(e.0[0].path, "peers[0].peer_as_number");
        let e = push(&P.replace(
            r#""guest_ip4_cidr""#,
            r#""details":{"EBGP_MultiHop":"300"},"guest_ip4_cidr""#,
        ))
        .unwrap_err();
        assert_eq!(e.0[0].path, "peers[0].details.EBGP_MultiHop");
        assert_eq!(e.0[0].value, "\"300\"");
        let again = P.replace("65101", "65102");
        let e = push(&format!("{P},{again}")).unwrap_err();
        assert_eq!(e.0[0].path, "peers[1].ip4_address");
        // The same peer for a second network (a VPC tier): one neighbor, two prefixes.
        let tier = P
            .replace("10.1.1.0/24", "10.1.2.0/24")
            .replace("204", "205");
        let b = push(&format!("{P},{tier}")).unwrap().bgp.unwrap();
        assert_eq!((b.neighbors.len(), b.networks.len()), (1, 2));
    }
}
