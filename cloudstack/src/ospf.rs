//! The CloudStack-style `{"type": "ospf", ...}` push (CloudStack never merged OSPF; this mirrors
//! its unmerged dynamically-routed-VPC design: one area per zone, transit interfaces, tier CIDRs
//! carved from the zone's super CIDRs, `redistribute connected`).

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::Deserialize;

use vr_ospf::model::{
    Area, AreaKind, AuthKind, InterfaceAuth, NetworkType, OspfInterface, OspfNetwork, OspfSection,
    Redistribute, Timers,
};
use vr_ospf::validate::{validate_ospf, FieldError};
use vr_ospf::Secret;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudStackOspf {
    #[serde(rename = "type")]
    pub kind: String,
    pub delete_from_processed_cache: bool,
    pub enabled: bool,
    #[serde(default)]
    pub router_id: Option<Ipv4Addr>,
    #[serde(default)]
    pub area: Option<Ipv4Addr>,
    #[serde(default)]
    pub hello_interval: Option<u16>,
    #[serde(default)]
    pub dead_interval: Option<u16>,
    #[serde(default)]
    pub retransmit_interval: Option<u16>,
    #[serde(default)]
    pub transit_delay: Option<u16>,
    #[serde(default)]
    pub authentication: CsAuth,
    #[serde(default)]
    pub password: Option<Secret>,
    #[serde(default)]
    pub super_cidrs: Vec<Ipv4Net>,
    #[serde(default)]
    pub transit_interfaces: Vec<TransitInterface>,
    #[serde(default)]
    pub tier_cidrs: Vec<Ipv4Net>,
    #[serde(default)]
    pub redistribute_connected: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CsAuth {
    #[default]
    None,
    Plaintext,
    Md5,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransitInterface {
    pub device: String,
    #[serde(default)]
    pub cost: Option<u16>,
    #[serde(default)]
    pub network_type: NetworkType,
}

fn err(path: &str, value: impl std::fmt::Display, reason: &str) -> FieldError {
    FieldError {
        path: path.into(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// The native section for a CloudStack OSPF push; `Ok(None)` when `enabled` is false.
///
/// `prefixes_of(device)` gives the networks configured on a router NIC. FRR cannot mix
/// interface areas with `network` statements: without tier CIDRs the transit interfaces carry
/// the area (`ip ospf area`); with them, the transit interfaces' own networks become `network`
/// statements next to the tiers'.
pub fn from_cloudstack(
    p: &CloudStackOspf,
    prefixes_of: &dyn Fn(&str) -> Vec<Ipv4Net>,
) -> Result<Option<OspfSection>, Vec<FieldError>> {
    if p.kind != "ospf" {
        return Err(vec![err(
            "type",
            format!("{:?}", p.kind),
            "expected \"ospf\"",
        )]);
    }
    if !p.enabled {
        return Ok(None);
    }
    let mut errs = Vec::new();
    let router_id = p.router_id.unwrap_or_else(|| {
        errs.push(err("router_id", "null", "required when enabled"));
        Ipv4Addr::UNSPECIFIED
    });
    let area = p.area.unwrap_or(Ipv4Addr::UNSPECIFIED);
    let auth = match (p.authentication, &p.password) {
        (CsAuth::None, _) => InterfaceAuth::None,
        (_, None) => {
            errs.push(err("password", "null", "required with authentication"));
            InterfaceAuth::None
        }
        (CsAuth::Plaintext, Some(pw)) => InterfaceAuth::Plaintext {
            password: pw.clone(),
        },
        (CsAuth::Md5, Some(pw)) => InterfaceAuth::Md5 {
            key_id: 1,
            password: pw.clone(),
        },
    };
    for (i, t) in p.tier_cidrs.iter().enumerate() {
        if !p.super_cidrs.is_empty() && !p.super_cidrs.iter().any(|s| s.contains(t)) {
            errs.push(err(
                &format!("tier_cidrs[{i}]"),
                t,
                "not inside any of super_cidrs",
            ));
        }
    }
    let by_network = !p.tier_cidrs.is_empty();
    let mut networks: Vec<OspfNetwork> = p
        .tier_cidrs
        .iter()
        .map(|c| OspfNetwork {
            prefix: c.trunc(),
            area,
        })
        .collect();
    if by_network {
        for (i, t) in p.transit_interfaces.iter().enumerate() {
            let prefixes = prefixes_of(&t.device);
            if prefixes.is_empty() {
                errs.push(err(
                    &format!("transit_interfaces[{i}].device"),
                    format!("{:?}", t.device),
                    "no address known on this NIC (push its ips first)",
                ));
            }
            for prefix in prefixes {
                if !networks.iter().any(|n| n.prefix == prefix.trunc()) {
                    networks.push(OspfNetwork {
                        prefix: prefix.trunc(),
                        area,
                    });
                }
            }
        }
    }
    let interfaces = p
        .transit_interfaces
        .iter()
        .map(|t| OspfInterface {
            device: t.device.clone(),
            area: (!by_network).then_some(area),
            cost: t.cost,
            hello_interval: p.hello_interval,
            dead_interval: p.dead_interval,
            retransmit_interval: p.retransmit_interval,
            transit_delay: p.transit_delay,
            network_type: t.network_type,
            passive: false,
            authentication: auth.clone(),
        })
        .collect();
    let section = OspfSection {
        router_id,
        areas: vec![Area {
            id: area,
            kind: AreaKind::Normal,
            authentication: match p.authentication {
                CsAuth::None => AuthKind::None,
                CsAuth::Plaintext => AuthKind::Plaintext,
                CsAuth::Md5 => AuthKind::Md5,
            },
        }],
        interfaces,
        networks,
        redistribute: Redistribute {
            connected: p.redistribute_connected,
            static_routes: false,
        },
        timers: Timers::default(),
    };
    if let Err(e) = validate_ospf(&section) {
        // Native paths -> the push's own field names where they differ.
        errs.extend(e.into_iter().map(|mut e| {
            if let Some(rest) = e.path.strip_prefix("interfaces[") {
                let (i, field) = rest.split_once("].").unwrap_or((rest, ""));
                e.path = match field {
                    "device" | "cost" | "network_type" => {
                        format!("transit_interfaces[{i}].{field}")
                    }
                    "authentication.password" => "password".into(),
                    other => other.to_string(),
                };
            } else if let Some(rest) = e.path.strip_prefix("networks[") {
                e.path = format!("tier_cidrs[{}", rest.replace("].prefix", "]"));
            }
            e
        }));
    }
    if errs.is_empty() {
        Ok(Some(section))
    } else {
        errs.dedup();
        Err(errs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(extra: &str) -> CloudStackOspf {
        serde_json::from_str(&format!(
            r#"{{"type":"ospf","delete_from_processed_cache":false,"enabled":true,"router_id":"192.0.2.10","area":"0.0.0.0",
            "hello_interval":10,"dead_interval":40,"retransmit_interval":5,"transit_delay":1,"authentication":"md5","password":"zonekey",
            "super_cidrs":["10.0.0.0/8"],"transit_interfaces":[{{"device":"eth2","cost":10,"network_type":"point-to-point"}}],
            "tier_cidrs":["10.1.1.0/24"],"redistribute_connected":true{extra}}}"#
        ))
        .unwrap()
    }

    fn eth2(dev: &str) -> Vec<Ipv4Net> {
        if dev == "eth2" {
            vec!["192.0.2.10/24".parse().unwrap()]
        } else {
            Vec::new()
        }
    }

    #[test]
    fn the_design_push_translates() {
        let s = from_cloudstack(&push(""), &eth2).unwrap().unwrap();
        assert_eq!(s.interfaces[0].device, "eth2");
        assert_eq!(
            s.interfaces[0].area, None,
            "tiers present: network statements only"
        );
        assert_eq!(s.networks[1].prefix.to_string(), "192.0.2.0/24");
        assert!(matches!(
            s.interfaces[0].authentication,
            InterfaceAuth::Md5 { key_id: 1, .. }
        ));
        assert_eq!(s.networks[0].prefix.to_string(), "10.1.1.0/24");
        assert!(s.redistribute.connected);
        let text = vr_ospf::render::ospf_blocks(&s, vr_ospf::render::Dialect::Frr);
        assert!(text.contains("ip ospf message-digest-key 1 md5 zonekey"));
        assert!(
            !text.contains("hello-interval"),
            "defaults are not rendered: {text}"
        );
    }

    #[test]
    fn disabled_removes_and_injection_is_refused() {
        let mut p = push("");
        p.enabled = false;
        assert_eq!(from_cloudstack(&p, &eth2).unwrap(), None);
        let mut p = push("");
        p.transit_interfaces[0].device = "eth2\n!".into();
        let e = from_cloudstack(&p, &eth2).unwrap_err();
        assert_eq!(e[0].path, "transit_interfaces[0].device");
        let mut p = push("");
        p.tier_cidrs = vec!["192.168.0.0/24".parse().unwrap()];
        assert_eq!(
            from_cloudstack(&p, &eth2).unwrap_err()[0].path,
            "tier_cidrs[0]"
        );
        let mut p = push("");
        p.tier_cidrs.clear();
        let s = from_cloudstack(&p, &|_| Vec::new()).unwrap().unwrap();
        assert_eq!(
            s.interfaces[0].area,
            Some(Ipv4Addr::UNSPECIFIED),
            "no tiers: the transit NIC carries the area"
        );
    }
}
