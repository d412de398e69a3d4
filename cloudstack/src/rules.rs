//! Validation and translation of the rule payloads: port forwards, static NAT, firewall
//! rules (IPv4 and IPv6) and VPC network ACLs.

use vr_nat::{
    AclAction, AclRule, EgressRule, IngressRule, L4Protocol, PortForward, RuleProtocol, StaticNat,
    TierAcl,
};

use ipnet::Ipv4Net;

use super::check::{self, q, Errors};
use super::convert::nonempty;
use super::types::*;
use crate::error::Invalid;
use crate::state::MacAddr;
pub fn forwards(p: &ForwardRules) -> Result<Vec<(bool, PortForward)>, Invalid> {
    let mut e = Errors::default();
    let mut out: Vec<(bool, PortForward)> = Vec::with_capacity(p.rules.len());
    let mut targets = crate::forward_index::Targets::default();
    for (i, r) in p.rules.iter().enumerate() {
        // The quick checks for a good rule; the reporting ones say what is wrong with a bad one.
        let Some(pf) = crate::forward_fast::quick(r).or_else(|| forward_checked(&mut e, i, r))
        else {
            continue;
        };
        // A public ip:port mapped twice to different targets in one push.
        if !r.revoke {
            if let Some((other_ip, other_ports)) = targets.conflict(&pf) {
                e.push(
                    format!("rules[{i}].source_port_range"),
                    q(&r.source_port_range),
                    &format!(
                        "{}:{} already forwarded to {}:{}",
                        pf.public_ip, pf.public_ports, other_ip, other_ports
                    ),
                );
            }
        }
        out.push((r.revoke, pf));
    }
    e.into_result(out)
}

/// The checks of rule `i`, each failure recorded in `e` with its path and value.
pub(crate) fn forward_checked(e: &mut Errors, i: usize, r: &ForwardRule) -> Option<PortForward> {
    let pre = format!("rules[{i}]");
    let proto = match r.protocol.to_ascii_lowercase().as_str() {
        "tcp" => Some(L4Protocol::Tcp),
        "udp" => Some(L4Protocol::Udp),
        _ => {
            e.push(
                format!("{pre}.protocol"),
                q(&r.protocol),
                "port forwards are tcp or udp",
            );
            None
        }
    };
    let public_ip = check::ipv4(e, &format!("{pre}.source_ip_address"), &r.source_ip_address);
    let private_ip = check::ipv4(
        e,
        &format!("{pre}.destination_ip_address"),
        &r.destination_ip_address,
    );
    let pub_ports =
        check::port_range_str(e, &format!("{pre}.source_port_range"), &r.source_port_range);
    let priv_ports = check::port_range_str(
        e,
        &format!("{pre}.destination_port_range"),
        &r.destination_port_range,
    );
    if let (Some(a), Some(b)) = (pub_ports, priv_ports) {
        if a.len() != b.len() {
            e.push(
                format!("{pre}.destination_port_range"),
                q(&r.destination_port_range),
                &format!(
                    "length differs from source_port_range {:?}",
                    r.source_port_range
                ),
            );
        }
    }
    let source_cidrs = match nonempty(&r.source_cidr_list) {
        Some(l) => check::cidr4_list(e, &format!("{pre}.source_cidr_list"), l),
        None => Vec::new(),
    };
    if let (
        Some(protocol),
        Some(public_ip),
        Some(private_ip),
        Some(public_ports),
        Some(private_ports),
    ) = (proto, public_ip, private_ip, pub_ports, priv_ports)
    {
        let pf = PortForward {
            public_ip,
            protocol,
            public_ports,
            private_ip,
            private_ports,
            source_cidrs,
            device: None,
        };
        return Some(pf);
    }
    None
}

/// Forward identity: public IP + public ports + protocol.
pub fn same_forward(a: &PortForward, b: &PortForward) -> bool {
    (a.public_ip, a.public_ports, a.protocol) == (b.public_ip, b.public_ports, b.protocol)
}

pub fn static_nats(p: &StaticNatRules) -> Result<Vec<(bool, StaticNat)>, Invalid> {
    let mut e = Errors::default();
    let mut out = Vec::new();
    for (i, r) in p.rules.iter().enumerate() {
        let pre = format!("rules[{i}]");
        if let Some(proto) = nonempty(&r.protocol) {
            if !matches!(
                proto.to_ascii_lowercase().as_str(),
                "tcp" | "udp" | "icmp" | "all"
            ) {
                e.push(format!("{pre}.protocol"), q(proto), "unknown protocol");
            }
        }
        if let Some(pr) = nonempty(&r.source_port_range) {
            if pr != "0:0" {
                check::port_range_str(&mut e, &format!("{pre}.source_port_range"), pr);
            }
        }
        let public_ip = check::ipv4(
            &mut e,
            &format!("{pre}.source_ip_address"),
            &r.source_ip_address,
        );
        let private_ip = check::ipv4(
            &mut e,
            &format!("{pre}.destination_ip_address"),
            &r.destination_ip_address,
        );
        if let (Some(public_ip), Some(private_ip)) = (public_ip, private_ip) {
            out.push((
                r.revoke,
                StaticNat {
                    public_ip,
                    private_ip,
                    device: None,
                },
            ));
        }
    }
    e.into_result(out)
}

/// A checked firewall rule.
#[derive(Debug, Clone)]
pub enum FwRule {
    Ingress(IngressRule),
    Egress {
        guest_cidr: Ipv4Net,
        default_allow: bool,
        rule: EgressRule,
    },
    /// CloudStack's system rule carrying the network's default egress policy (protocol `all`,
    /// no source CIDR): its own verdict is the default, not the inverse, so it only sets
    /// `default_allow` and never becomes a rule.
    EgressDefault {
        guest_cidr: Ipv4Net,
        default_allow: bool,
        id: u64,
    },
    /// A revoked rule: its id is all that is needed (and all CloudStack may send) to remove
    /// it, wherever it is.
    Revoked {
        id: u64,
    },
}

pub(crate) fn rule_protocol(e: &mut Errors, path: &str, s: &str) -> Option<RuleProtocol> {
    match s.to_ascii_lowercase().as_str() {
        "all" => Some(RuleProtocol::All),
        "tcp" => Some(RuleProtocol::Tcp),
        "udp" => Some(RuleProtocol::Udp),
        "icmp" => Some(RuleProtocol::Icmp),
        n => match n.parse::<u8>() {
            Ok(n) => Some(RuleProtocol::Number(n)),
            Err(_) => {
                e.push(
                    path,
                    q(s),
                    "unknown protocol (tcp, udp, icmp, all or a number 0-255)",
                );
                None
            }
        },
    }
}

/// Ports and ICMP fields of a rule, checked only where the protocol uses them.
type Matchers = (Option<vr_nat::PortRange>, Option<u8>, Option<u8>);

pub(crate) fn matchers(
    e: &mut Errors,
    pre: &str,
    proto: RuleProtocol,
    ports: Option<&[i64]>,
    it: Option<i64>,
    ic: Option<i64>,
) -> Matchers {
    match proto {
        RuleProtocol::Tcp | RuleProtocol::Udp => (
            ports.and_then(|p| check::port_pair(e, &format!("{pre}.src_port_range"), p)),
            None,
            None,
        ),
        RuleProtocol::Icmp => (
            None,
            check::icmp(e, &format!("{pre}.icmp_type"), it),
            check::icmp(e, &format!("{pre}.icmp_code"), ic),
        ),
        _ => (None, None, None),
    }
}

pub fn firewall(p: &FirewallRules) -> Result<Vec<(bool, FwRule)>, Invalid> {
    let mut e = Errors::default();
    let mut out = Vec::new();
    for (i, r) in p.rules.iter().enumerate() {
        let pre = format!("rules[{i}]");
        if let Some(k) = &r.kind {
            check::plain(&mut e, &format!("{pre}.type"), k);
        }
        // Informational fields are not used, but a push carrying config metacharacters in
        // them is not a push from a CloudStack management server: refuse it whole.
        for (name, v) in [("purpose", &r.purpose), ("src_vlan_tag", &r.src_vlan_tag)] {
            if let Some(v) = v {
                check::plain(&mut e, &format!("{pre}.{name}"), v);
            }
        }
        if r.revoked {
            out.push((true, FwRule::Revoked { id: r.id }));
            continue;
        }
        if let Some(g) = r.guest_cidr.as_deref().filter(|g| !g.is_empty()) {
            check::cidr_any(&mut e, &format!("{pre}.guest_cidr"), g);
        }
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
        let cidrs = |e: &mut Errors, name: &str, l: &Option<Vec<String>>| -> Vec<Ipv4Net> {
            l.iter()
                .flatten()
                .enumerate()
                .filter_map(|(j, c)| check::cidr4(e, &format!("{pre}.{name}[{j}]"), c))
                .collect()
        };
        let source_cidrs = cidrs(&mut e, "source_cidr_list", &r.source_cidr_list);
        let destination_cidrs = cidrs(&mut e, "dest_cidr_list", &r.dest_cidr_list);
        match r.traffic_type.to_ascii_lowercase().as_str() {
            "ingress" => {
                let ip = check::ipv4(
                    &mut e,
                    &format!("{pre}.src_ip"),
                    r.src_ip.as_deref().unwrap_or(""),
                );
                if let Some(public_ip) = ip {
                    out.push((
                        r.revoked,
                        FwRule::Ingress(IngressRule {
                            id: r.id,
                            public_ip,
                            protocol,
                            ports,
                            icmp_type,
                            icmp_code,
                            source_cidrs,
                        }),
                    ));
                }
            }
            "egress" => {
                let cidr = check::cidr4(
                    &mut e,
                    &format!("{pre}.guest_cidr"),
                    r.guest_cidr.as_deref().unwrap_or(""),
                );
                if let Some(guest_cidr) = cidr.map(|c| c.trunc()) {
                    if protocol == RuleProtocol::All && source_cidrs.is_empty() {
                        let default_allow = r.default_egress_policy;
                        let marker = FwRule::EgressDefault {
                            guest_cidr,
                            default_allow,
                            id: r.id,
                        };
                        out.push((r.revoked, marker));
                        continue;
                    }
                    let rule = EgressRule {
                        id: r.id,
                        protocol,
                        ports,
                        icmp_type,
                        icmp_code,
                        source_cidrs,
                        destination_cidrs,
                    };
                    out.push((
                        r.revoked,
                        FwRule::Egress {
                            guest_cidr,
                            default_allow: r.default_egress_policy,
                            rule,
                        },
                    ));
                }
            }
            _ => e.push(
                format!("{pre}.traffic_type"),
                q(&r.traffic_type),
                "traffic_type is Ingress or Egress",
            ),
        }
    }
    e.into_result(out)
}

pub fn acl(p: &NetworkAcl) -> Result<(Option<MacAddr>, TierAcl), Invalid> {
    let mut e = Errors::default();
    check::ifname(&mut e, "device", &p.device);
    let mac = check::opt_mac(&mut e, "mac_address", p.mac_address.as_deref());
    let ip = check::ipv4(&mut e, "nic_ip", &p.nic_ip);
    let len = check::prefix_len(&mut e, "nic_netmask", &p.nic_netmask);
    if let Some(c) = nonempty(&p.nic_ip6_cidr) {
        check::cidr6(&mut e, "nic_ip6_cidr", c);
    }
    let mut lists = [Vec::new(), Vec::new()];
    for (k, (name, items)) in [
        ("ingress_rules", &p.ingress_rules),
        ("egress_rules", &p.egress_rules),
    ]
    .into_iter()
    .enumerate()
    {
        for (i, it) in items.iter().enumerate() {
            let pre = format!("{name}[{i}]");
            let protocol = match it.kind.to_ascii_lowercase().as_str() {
                "tcp" => Some(RuleProtocol::Tcp),
                "udp" => Some(RuleProtocol::Udp),
                "icmp" => Some(RuleProtocol::Icmp),
                "all" => Some(RuleProtocol::All),
                "protocol" => match it.protocol.map(u8::try_from) {
                    Some(Ok(n)) => Some(RuleProtocol::Number(n)),
                    _ => {
                        e.push(
                            format!("{pre}.protocol"),
                            it.protocol.map_or("null".into(), |n| n.to_string()),
                            "protocol number 0-255 required for type protocol",
                        );
                        None
                    }
                },
                _ => {
                    e.push(
                        format!("{pre}.type"),
                        q(&it.kind),
                        "unknown rule type (tcp, udp, icmp, all, protocol)",
                    );
                    None
                }
            };
            let Some(protocol) = protocol else { continue };
            let ports = match (protocol.has_ports(), it.first_port, it.last_port) {
                (true, Some(a), b) => {
                    check::port_pair(&mut e, &format!("{pre}.first_port"), &[a, b.unwrap_or(a)])
                }
                _ => None,
            };
            let (icmp_type, icmp_code) = if protocol == RuleProtocol::Icmp {
                (
                    check::icmp(&mut e, &format!("{pre}.icmp_type"), it.icmp_type),
                    check::icmp(&mut e, &format!("{pre}.icmp_code"), it.icmp_code),
                )
            } else {
                (None, None)
            };
            let cidrs = match nonempty(&it.cidr) {
                Some(c) => check::cidr4_list(&mut e, &format!("{pre}.cidr"), c),
                None => Vec::new(),
            };
            let action = if it.allowed {
                AclAction::Allow
            } else {
                AclAction::Deny
            };
            lists[k].push(AclRule {
                number: None,
                action,
                protocol,
                ports,
                icmp_type,
                icmp_code,
                cidrs,
            });
        }
    }
    let [ingress, egress] = lists;
    match (ip, len) {
        (Some(ip), Some(len)) => e.into_result((
            mac,
            TierAcl {
                device: p.device.clone(),
                tier_cidr: Ipv4Net::new(ip, len).expect("prefix checked").trunc(),
                private_gateway: p.private_gateway_acl,
                ingress,
                egress,
            },
        )),
        _ => Err(Invalid(e.0)),
    }
}
