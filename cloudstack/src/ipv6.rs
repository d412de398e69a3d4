//! IPv6 of CloudStack's routed networks: the IPv6 fields of `guestnetwork` (the guest
//! prefix's gateway address on the guest NIC, the router's public IPv6 address and upstream
//! gateway) and `ipv6firewallrules`, checked and converted into the native model
//! (`Interface::addresses6`/`gateway6`, the `firewall6` section).

use std::net::Ipv6Addr;

use ipnet::{IpNet, Ipv6Net};
use vr_nat::v6::{Egress6Policy, Firewall6Rule, Firewall6Section};
use vr_nat::RuleProtocol;

use super::check::{self, q, Errors};
use super::convert::nonempty;
use super::rules::{matchers, rule_protocol};
use super::types::*;
use crate::error::Invalid;

/// One checked `ipv6firewallrules` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fw6Rule {
    Revoked {
        id: u64,
    },
    Ingress(Firewall6Rule),
    /// An egress rule of the guest prefix `guest_cidr` (`None`: the push did not say; the
    /// merge takes the router's only guest prefix).
    Egress {
        guest_cidr: Option<Ipv6Net>,
        default_allow: bool,
        rule: Firewall6Rule,
    },
    /// CloudStack's default-policy pseudo-rule (protocol all, no source): sets the policy only.
    EgressDefault {
        guest_cidr: Option<Ipv6Net>,
        default_allow: bool,
        id: u64,
    },
}

fn cidr6(e: &mut Errors, path: &str, s: &str) -> Option<Ipv6Net> {
    match check::cidr6(e, path, s) {
        Some(IpNet::V6(n)) => Some(n),
        _ => None,
    }
}

fn addr6(e: &mut Errors, path: &str, s: &str) -> Option<Ipv6Addr> {
    match s.trim().parse::<Ipv6Addr>() {
        Ok(a) => Some(a),
        Err(_) => {
            e.push(path, q(s), "not an IPv6 address");
            None
        }
    }
}

/// `ipv6firewallrules`: every rule checked (IPv6 CIDRs only), `(revoked, rule)` per rule.
pub fn firewall6(p: &FirewallRules) -> Result<Vec<(bool, Fw6Rule)>, Invalid> {
    let mut e = Errors::default();
    let mut out = Vec::new();
    for (i, r) in p.rules.iter().enumerate() {
        let pre = format!("rules[{i}]");
        for (name, v) in [("purpose", &r.purpose), ("src_vlan_tag", &r.src_vlan_tag)] {
            if let Some(v) = v {
                check::plain(&mut e, &format!("{pre}.{name}"), v);
            }
        }
        if r.revoked {
            out.push((true, Fw6Rule::Revoked { id: r.id }));
            continue;
        }
        let guest_cidr = r
            .guest_ip6_cidr
            .as_deref()
            .filter(|s| !s.is_empty())
            .and_then(|c| cidr6(&mut e, &format!("{pre}.guest_ip6_cidr"), c))
            .map(|c| c.trunc());
        let Some(protocol) = rule_protocol(&mut e, &format!("{pre}.protocol"), &r.protocol) else {
            continue;
        };
        let (ports, icmp_type, icmp_code) = matchers(
            &mut e,
            &pre,
            protocol,
            r.src_port_range.as_deref(),
            r.icmp_type,
            r.icmp_code,
        );
        let cidrs = |e: &mut Errors, name: &str, l: &Option<Vec<String>>| -> Vec<Ipv6Net> {
            l.iter()
                .flatten()
                .enumerate()
                .filter(|(_, c)| !c.trim().is_empty())
                .filter_map(|(j, c)| cidr6(e, &format!("{pre}.{name}[{j}]"), c))
                .collect()
        };
        let source_cidrs = cidrs(&mut e, "source_cidr_list", &r.source_cidr_list);
        let destination_cidrs = cidrs(&mut e, "dest_cidr_list", &r.dest_cidr_list);
        let rule = Firewall6Rule {
            id: r.id,
            protocol,
            ports,
            icmp_type,
            icmp_code,
            source_cidrs,
            destination_cidrs,
        };
        match r.traffic_type.to_ascii_lowercase().as_str() {
            "ingress" => {
                // A rule without destinations opens its own guest prefix, not every tier's.
                let mut rule = rule;
                if rule.destination_cidrs.is_empty() {
                    rule.destination_cidrs.extend(guest_cidr);
                }
                out.push((false, Fw6Rule::Ingress(rule)))
            }
            "egress" if protocol == RuleProtocol::All && rule.source_cidrs.is_empty() => {
                out.push((
                    false,
                    Fw6Rule::EgressDefault {
                        guest_cidr,
                        default_allow: r.default_egress_policy,
                        id: r.id,
                    },
                ))
            }
            "egress" => out.push((
                false,
                Fw6Rule::Egress {
                    guest_cidr,
                    default_allow: r.default_egress_policy,
                    rule,
                },
            )),
            _ => e.push(
                format!("{pre}.traffic_type"),
                q(&r.traffic_type),
                "traffic_type is Ingress or Egress",
            ),
        }
    }
    e.into_result(out)
}

/// Merges checked rules into `fw`. `guest_prefixes` are the router's guest IPv6 prefixes:
/// an egress rule that names none belongs to the only one (more than one is an error).
pub fn merge_firewall6(
    fw: &mut Firewall6Section,
    rules: Vec<(bool, Fw6Rule)>,
    guest_prefixes: &[Ipv6Net],
) -> Result<(), Invalid> {
    let mut e = Errors::default();
    let remove = |fw: &mut Firewall6Section, id: u64| {
        fw.ingress.retain(|x| x.id != id);
        for pol in &mut fw.egress {
            pol.rules.retain(|x| x.id != id);
        }
    };
    let policy = |fw: &mut Firewall6Section,
                  e: &mut Errors,
                  i: usize,
                  cidr: Option<Ipv6Net>,
                  default_allow: bool|
     -> Option<usize> {
        let cidr = match (cidr, guest_prefixes) {
            (Some(c), _) => c,
            (None, [only]) => only.trunc(),
            (None, _) => {
                e.push(
                    format!("rules[{i}].guest_ip6_cidr"),
                    q(""),
                    "an egress rule needs the guest prefix when the router has not exactly one",
                );
                return None;
            }
        };
        Some(match fw.egress.iter().position(|p| p.guest_cidr == cidr) {
            Some(p) => {
                fw.egress[p].default_allow = default_allow;
                p
            }
            None => {
                fw.egress.push(Egress6Policy {
                    guest_cidr: cidr,
                    default_allow,
                    rules: Vec::new(),
                });
                fw.egress.len() - 1
            }
        })
    };
    for (i, (_, r)) in rules.into_iter().enumerate() {
        match r {
            Fw6Rule::Revoked { id } => remove(fw, id),
            Fw6Rule::Ingress(rule) => {
                remove(fw, rule.id);
                fw.ingress.push(rule);
            }
            Fw6Rule::EgressDefault {
                guest_cidr,
                default_allow,
                id,
            } => {
                remove(fw, id);
                policy(fw, &mut e, i, guest_cidr, default_allow);
            }
            Fw6Rule::Egress {
                guest_cidr,
                default_allow,
                rule,
            } => {
                remove(fw, rule.id);
                if let Some(p) = policy(fw, &mut e, i, guest_cidr, default_allow) {
                    fw.egress[p].rules.push(rule);
                }
            }
        }
    }
    fw.ingress.sort_by_key(|r| r.id);
    for p in &mut fw.egress {
        p.rules.sort_by_key(|r| r.id);
    }
    e.into_result(())
}

/// The IPv6 side of a checked `guestnetwork`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Guest6 {
    /// The gateway address of the guest prefix, held by the router on the guest NIC.
    pub guest_address: Option<Ipv6Net>,
    /// The router's own public IPv6 address with the public prefix length.
    pub public_address: Option<Ipv6Net>,
    /// The upstream IPv6 gateway (the default route).
    pub public_gateway: Option<Ipv6Addr>,
}

/// Reads the IPv6 fields: the guest NIC gets `router_guest_ip6_gateway` (else
/// `router_guest_ip6`) with the length of `router_guest_ip6_cidr` (else `cidr6`, else 64);
/// the public NIC gets `router_ip6` with the length of `router_ip6_cidr` (else 64) and
/// `router_ip6_gateway` as its next hop.
pub fn guest6(p: &GuestNetwork) -> Result<Guest6, Invalid> {
    let mut e = Errors::default();
    let len = |e: &mut Errors, fields: &[(&str, &Option<String>)]| -> u8 {
        fields
            .iter()
            .find_map(|(name, v)| nonempty(v).and_then(|s| cidr6(e, name, s)))
            .map_or(64, |n| n.prefix_len())
    };
    let guest_ip = [
        ("router_guest_ip6_gateway", &p.router_guest_ip6_gateway),
        ("router_guest_ip6", &p.router_guest_ip6),
    ]
    .iter()
    .find_map(|(name, v)| nonempty(v).map(|s| addr6(&mut e, name, s)))
    .flatten();
    let guest_len = len(
        &mut e,
        &[
            ("router_guest_ip6_cidr", &p.router_guest_ip6_cidr),
            ("cidr6", &p.cidr6),
        ],
    );
    let public_ip = nonempty(&p.router_ip6).and_then(|s| addr6(&mut e, "router_ip6", s));
    let public_len = len(&mut e, &[("router_ip6_cidr", &p.router_ip6_cidr)]);
    let public_gateway =
        nonempty(&p.router_ip6_gateway).and_then(|s| addr6(&mut e, "router_ip6_gateway", s));
    let net = |a: Option<Ipv6Addr>, l: u8| a.and_then(|a| Ipv6Net::new(a, l).ok());
    e.into_result(Guest6 {
        guest_address: net(guest_ip, guest_len),
        public_address: net(public_ip, public_len),
        public_gateway,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(json: &str) -> FirewallRules {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn ipv6_rules_become_the_firewall6_section() {
        let p = rules(
            r#"{"type":"ipv6firewallrules","delete_from_processed_cache":false,"rules":[
              {"id":7,"src_ip":"","protocol":"tcp","src_port_range":[80,80],"revoked":false,
               "already_added":false,"source_cidr_list":["::/0"],"dest_cidr_list":["2001:db8:10::/64"],
               "purpose":"Ipv6Firewall","traffic_type":"Ingress","default_egress_policy":false,
               "guest_ip6_cidr":"2001:db8:10::/64"},
              {"id":8,"protocol":"all","revoked":false,"already_added":false,"purpose":"Ipv6Firewall",
               "traffic_type":"Egress","default_egress_policy":false,"guest_ip6_cidr":"2001:db8:10::/64"},
              {"id":9,"protocol":"udp","src_port_range":[53,53],"revoked":false,"already_added":false,
               "dest_cidr_list":["2001:db8:ff::/64"],"purpose":"Ipv6Firewall","traffic_type":"Egress",
               "default_egress_policy":false}]}"#,
        );
        let checked = firewall6(&p).unwrap();
        let mut fw = Firewall6Section::default();
        let prefix: Ipv6Net = "2001:db8:10::/64".parse().unwrap();
        merge_firewall6(&mut fw, checked, &[prefix]).unwrap();
        vr_nat::v6::validate_firewall6(&fw).unwrap();
        assert_eq!(fw.ingress.len(), 1);
        assert_eq!(fw.ingress[0].ports, Some(vr_nat::PortRange::single(80)));
        assert_eq!(fw.egress.len(), 1);
        assert!(!fw.egress[0].default_allow);
        assert_eq!(fw.egress[0].rules.len(), 1);
        // Revoking removes it.
        let p = rules(
            r#"{"type":"ipv6firewallrules","delete_from_processed_cache":false,"rules":[
              {"id":7,"protocol":"tcp","revoked":true,"already_added":true,"traffic_type":"Ingress",
               "default_egress_policy":false}]}"#,
        );
        merge_firewall6(&mut fw, firewall6(&p).unwrap(), &[prefix]).unwrap();
        assert!(fw.ingress.is_empty());
    }

    #[test]
    fn ipv4_cidr_in_an_ipv6_rule_names_the_field() {
        let p = rules(
            r#"{"type":"ipv6firewallrules","delete_from_processed_cache":false,"rules":[
              {"id":7,"protocol":"tcp","revoked":false,"already_added":false,
               "source_cidr_list":["10.0.0.0/8"],"traffic_type":"Ingress","default_egress_policy":false}]}"#,
        );
        let err = firewall6(&p).unwrap_err().to_string();
        assert!(err.contains("rules[0].source_cidr_list[0]"), "{err}");
        assert!(err.contains("10.0.0.0/8"), "{err}");
    }
}

/// The IPv6 keys of the boot `cmdline`: `eth<N>ip6` with `eth<N>ip6prelen` (else 64) on NIC
/// `eth<N>`, and `ip6gateway` as the IPv6 default route's next hop on the first public NIC.
/// NICs the cmdline does not give an IPv6 address keep theirs (from `guestnetwork`).
pub fn cmdline6(
    next: &mut crate::state::DesiredState,
    cmd: &std::collections::BTreeMap<String, String>,
) -> Result<(), Invalid> {
    use crate::state::InterfaceRole;
    let mut e = Errors::default();
    for iface in &mut next.interfaces {
        let key = format!("{}ip6", iface.device);
        let Some(a) = cmd.get(&key).map(String::as_str).filter(|s| !s.is_empty()) else {
            continue;
        };
        let Some(addr) = addr6(&mut e, &key, a) else {
            continue;
        };
        let len_key = format!("{}ip6prelen", iface.device);
        let len = match cmd.get(&len_key).filter(|s| !s.is_empty()) {
            None => 64,
            Some(l) => match l.parse::<u8>().ok().filter(|l| (1..=128).contains(l)) {
                Some(l) => l,
                None => {
                    e.push(len_key, q(l), "not an IPv6 prefix length 1-128");
                    continue;
                }
            },
        };
        iface.addresses6 = Ipv6Net::new(addr, len).into_iter().collect();
    }
    if let Some(gw) = cmd.get("ip6gateway").filter(|s| !s.is_empty()) {
        if let Some(gw) = addr6(&mut e, "ip6gateway", gw) {
            if let Some(p) = next
                .interfaces
                .iter_mut()
                .find(|i| i.role == InterfaceRole::Public)
            {
                p.gateway6 = Some(gw);
            }
        }
    }
    e.into_result(())
}

#[cfg(test)]
mod cmdline_tests {
    use super::*;
    use crate::state::{DesiredState, InterfaceRole};

    #[test]
    fn cmdline_ipv6_keys() {
        let mut s: DesiredState = serde_json::from_str(
            r#"{"interfaces":[{"device":"eth0","role":"guest","addresses":["10.1.1.1/24"]},
                {"device":"eth2","role":"public","addresses":["203.0.113.10/24"]}]}"#,
        )
        .unwrap();
        let cmd = [
            ("eth2ip6", "2001:db8:ff::10"),
            ("eth2ip6prelen", "64"),
            ("ip6gateway", "2001:db8:ff::1"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        cmdline6(&mut s, &cmd).unwrap();
        let eth2 = &s.interfaces[1];
        assert_eq!(eth2.role, InterfaceRole::Public);
        assert_eq!(eth2.addresses6, vec!["2001:db8:ff::10/64".parse().unwrap()]);
        assert_eq!(eth2.gateway6, Some("2001:db8:ff::1".parse().unwrap()));
        assert!(s.interfaces[0].addresses6.is_empty());
        let bad = [("eth0ip6", "10.0.0.1")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let err = cmdline6(&mut s, &bad).unwrap_err().to_string();
        assert!(err.contains("eth0ip6"), "{err}");
    }
}
