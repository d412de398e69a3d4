//! Validation and translation of `site2sitevpn`.

use std::net::Ipv4Addr;

use vr_vpn::{Dpd, IkeVersion, SiteToSite};

use super::check::{self, q, Errors};
use super::types::Site2SiteVpn;
use crate::error::Invalid;
fn lifetime(e: &mut Errors, path: &str, v: Option<i64>, default: u32) -> u32 {
    match v {
        None => default,
        Some(n) => match u32::try_from(n) {
            Ok(n) if n > 0 => n,
            _ => {
                e.push(path, n, "lifetime must be a positive number of seconds");
                default
            }
        },
    }
}

/// `(create, connection)`; on `create: false` only the identity is checked and used.
pub fn site2site(p: &Site2SiteVpn) -> Result<(bool, Option<SiteToSite>, Ipv4Addr), Invalid> {
    let mut e = Errors::default();
    let peer = check::ipv4(&mut e, "peer_gateway_ip", &p.peer_gateway_ip);
    if !p.create {
        return match peer {
            Some(peer) => e.into_result((false, None, peer)),
            None => Err(Invalid(e.0)),
        };
    }
    let local = check::ipv4(&mut e, "local_public_ip", &p.local_public_ip);
    let local_cidrs = check::cidr4_list(&mut e, "local_guest_cidr", &p.local_guest_cidr);
    if local_cidrs.is_empty() && !e.0.iter().any(|x| x.path == "local_guest_cidr") {
        e.push("local_guest_cidr", q(&p.local_guest_cidr), "no local CIDR");
    }
    let gw = check::opt_ipv4(
        &mut e,
        "local_public_gateway",
        p.local_public_gateway.as_deref(),
    );
    let peer_list = p.peer_guest_cidr_list.as_deref().unwrap_or("");
    let peer_cidrs = check::cidr4_list(&mut e, "peer_guest_cidr_list", peer_list);
    if peer_cidrs.is_empty() && !e.0.iter().any(|x| x.path == "peer_guest_cidr_list") {
        e.push("peer_guest_cidr_list", q(peer_list), "no peer CIDR");
    }
    let ike_policy = p.ike_policy.clone().unwrap_or_default();
    let esp_policy = p.esp_policy.clone().unwrap_or_default();
    check::policy(&mut e, "ike_policy", &ike_policy);
    check::policy(&mut e, "esp_policy", &esp_policy);
    let psk = p
        .ipsec_psk
        .clone()
        .unwrap_or_else(|| vr_vpn::Secret::new(""));
    if psk.expose().is_empty() {
        e.push("ipsec_psk", "<redacted>", "empty pre-shared key");
    }
    let ike_version = match &p.ike_version {
        None | Some(serde_json::Value::Null) => IkeVersion::Ike,
        Some(v) => match (
            v.as_str().map(str::to_ascii_lowercase).as_deref(),
            v.as_i64(),
        ) {
            (Some("ike") | Some(""), _) | (_, Some(0)) => IkeVersion::Ike,
            (Some("ikev1"), _) | (_, Some(1)) => IkeVersion::Ikev1,
            (Some("ikev2"), _) | (_, Some(2)) => IkeVersion::Ikev2,
            _ => {
                e.push("ike_version", v, "ike_version is ike, ikev1 or ikev2");
                IkeVersion::Ike
            }
        },
    };
    let ike_lifetime = lifetime(&mut e, "ike_lifetime", p.ike_lifetime, 86400);
    let esp_lifetime = lifetime(&mut e, "esp_lifetime", p.esp_lifetime, 3600);
    let dpd = p.dpd.then_some(Dpd {
        delay: 30,
        timeout: 120,
        action: vr_vpn::DpdAction::Restart,
    });
    match (local, peer) {
        (Some(local_public_ip), Some(peer_gateway)) => {
            let c = SiteToSite {
                local_public_ip,
                local_cidrs,
                local_public_gateway: gw,
                peer_gateway,
                peer_cidrs,
                psk,
                ike_policy,
                esp_policy,
                ike_version,
                ike_lifetime,
                esp_lifetime,
                dpd,
                passive: p.passive,
                split_connections: p.split_connections,
                force_encap: p.encap,
            };
            e.into_result((true, Some(c), peer_gateway))
        }
        _ => Err(Invalid(e.0)),
    }
}
