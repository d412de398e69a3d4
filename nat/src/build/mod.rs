//! Pure: model sections + router context -> [`Ruleset`].
//!
//! Table `ip vr`: every model type is IPv4, and an `inet` table whose input policy is drop
//! would also drop IPv6 (neighbour discovery included) that no section manages yet; `ip`
//! also spares a `meta nfproto ipv4` dependency in front of every address match.
//!
//! Data lives in sets and maps whose names are fixed, so adding or removing a port forward,
//! static NAT, source-NAT binding, CIDR of a rule or public device is an element change and
//! the per-packet cost does not grow with the number of mappings. Rules (firewall rules, ACL
//! items) are structure: order is semantic for ACLs.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

type Addr = Ipv4Addr;

use ipnet::Ipv4Net;

use crate::ir::*;
use crate::model::{AclAction, FirewallSection, NatSection, PortRange, RuleProtocol, TierAcl};

/// The table the agent owns.
pub const TABLE: &str = "vr";

mod chains;
mod ravpn;
pub use ravpn::RemoteAccessVpn;
pub mod forwards;
pub mod lb;
use chains::base_chains;

/// What the rules need to know about the router itself (the agent fills it from its state).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouterContext {
    pub public: Vec<PublicInterface>,
    pub guests: Vec<GuestNetwork>,
    /// The link-local control NIC (SSH on 3922 is accepted only from it).
    pub control_device: Option<String>,
    /// Routed NICs (VPC private gateways, OSPF transit links): guests reach the networks
    /// behind them without NAT, after the tiers' ACLs.
    pub routed: Vec<String>,
    pub vpn_peers: Vec<VpnPeer>,
    /// The remote-access VPN, if on.
    pub remote_access: Option<RemoteAccessVpn>,
    /// OSPF runs on the router: accept its packets (IP protocol 89) from anywhere; OSPF's own
    /// authentication guards adjacencies.
    pub ospf: bool,
    /// BGP neighbors (IPv4): their connections to the router's port 179 are accepted (the
    /// router connects to them too; either side may open the session).
    pub bgp_peers: Vec<Ipv4Addr>,
    /// A redundant pair: accept VRRP adverts (IP protocol 112; keepalived authenticates them)
    /// and conntrackd's state sync (UDP 3780) on these NICs.
    pub ha_sync_devs: Vec<String>,
    pub vrrp: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicInterface {
    pub device: String,
    pub addresses: Vec<Ipv4Addr>,
    /// Connmark given to new connections arriving here (`100 + index`); `None`: not marked.
    pub mark: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestNetwork {
    pub device: String,
    pub cidr: Ipv4Net,
    pub router_ip: Ipv4Addr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VpnPeer {
    pub local_public_ip: Ipv4Addr,
    pub peer_gateway: Ipv4Addr,
    pub local_cidrs: Vec<Ipv4Net>,
    pub peer_cidrs: Vec<Ipv4Net>,
}

pub const TCP: u8 = 6;
pub const UDP: u8 = 17;
pub const ICMP: u8 = 1;
pub const ESP: u8 = 50;
pub const OSPF: u8 = 89;
pub const VRRP: u8 = 112;
/// conntrackd's sync port.
pub const HA_SYNC_PORT: u16 = 3780;

/// Ports guests may reach on the router: DNS, DHCP, and the password/metadata services.
const GUEST_SERVICES: [(u8, u16); 6] = [
    (TCP, 53),
    (UDP, 53),
    (UDP, 67),
    (TCP, 80),
    (TCP, 443),
    (TCP, 8080),
];

/// CIDRs that nest or are disjoint: drop every one inside another, so an interval set never
/// gets overlapping elements (the kernel refuses them).
///
/// Sorted by first address, a container comes before what it holds, and kept CIDRs are
/// disjoint: only the last one kept can contain the next, so one pass after the sort does.
pub fn normalize(cidrs: &[Ipv4Net]) -> Vec<Ipv4Net> {
    let mut all: Vec<Ipv4Net> = cidrs.iter().map(|c| c.trunc()).collect();
    all.sort_by_key(|c| (c.network(), c.prefix_len()));
    let mut kept: Vec<Ipv4Net> = Vec::with_capacity(all.len());
    for c in all {
        if !kept.last().is_some_and(|k| k.contains(&c)) {
            kept.push(c);
        }
    }
    kept
}

fn any_net() -> Ipv4Net {
    Ipv4Net::default()
}

fn set(name: &str, key: &[DataType], interval: bool, mut elements: Vec<Element>) -> Set {
    elements.sort();
    elements.dedup();
    Set {
        name: name.to_string(),
        key: key.to_vec(),
        data: None,
        interval,
        elements,
        comment: None,
    }
}

fn map(name: &str, key: &[DataType], data: SetData, interval: bool, els: Vec<Element>) -> Set {
    Set {
        data: Some(data),
        ..set(name, key, interval, els)
    }
}

fn el(key: Vec<Value>) -> Element {
    Element { key, data: None }
}

fn el_map(key: Vec<Value>, data: Vec<Value>) -> Element {
    Element {
        key,
        data: Some(ElementData::Values(data)),
    }
}

fn el_verdict(key: Vec<Value>, v: Verdict) -> Element {
    Element {
        key,
        data: Some(ElementData::Verdict(v)),
    }
}

fn ports(r: &PortRange) -> Value {
    if r.is_single() {
        Value::Port(r.start)
    } else {
        Value::PortRange(r.start, r.end)
    }
}

fn verdict(v: Verdict) -> Statement {
    Statement::Verdict(v)
}

fn base(kind: ChainType, hook: Hook, priority: i32, policy: Policy) -> Option<BaseChain> {
    Some(BaseChain {
        kind,
        hook,
        priority,
        policy,
    })
}

fn chain(name: &str, b: Option<BaseChain>, rules: Vec<Rule>) -> Chain {
    Chain {
        name: name.to_string(),
        base: b,
        rules,
        comment: None,
    }
}

fn ct(states: &[CtState]) -> Match {
    Match::CtState(states.to_vec())
}

const EST: [CtState; 2] = [CtState::Established, CtState::Related];

fn l4(proto: u8) -> Match {
    eq(Field::MetaL4proto, Value::Proto(proto))
}

fn tcp_udp() -> Match {
    in_anon(
        &[Field::MetaL4proto],
        vec![vec![Value::Proto(TCP)], vec![Value::Proto(UDP)]],
    )
}

/// Protocol, port and icmp matches of a firewall or ACL rule, dependencies first.
pub fn protocol_matches(
    p: RuleProtocol,
    range: Option<&PortRange>,
    icmp_type: Option<u8>,
    icmp_code: Option<u8>,
) -> Vec<Match> {
    let mut m = Vec::new();
    match p {
        RuleProtocol::All => {}
        RuleProtocol::Tcp | RuleProtocol::Udp => {
            m.push(l4(if p == RuleProtocol::Tcp { TCP } else { UDP }));
            if let Some(r) = range {
                m.push(eq(Field::ThDport, ports(r)));
            }
        }
        RuleProtocol::Icmp => {
            m.push(l4(ICMP));
            if let Some(t) = icmp_type {
                m.push(eq(Field::IcmpType, Value::Byte(t)));
            }
            if let Some(c) = icmp_code {
                m.push(eq(Field::IcmpCode, Value::Byte(c)));
            }
        }
        RuleProtocol::Number(n) => m.push(l4(n)),
    }
    m
}

/// A named interval set holding `cidrs` and the match on it; empty `cidrs` = anywhere (no
/// match, no set).
fn cidr_match(sets: &mut Vec<Set>, name: String, field: Field, cidrs: &[Ipv4Net]) -> Vec<Match> {
    if cidrs.is_empty() {
        return Vec::new();
    }
    let els = normalize(cidrs)
        .into_iter()
        .map(|c| el(vec![Value::Net(c)]))
        .collect();
    sets.push(set(&name, &[DataType::Ipv4Addr], true, els));
    vec![in_set(&[field], &name)]
}

/// Builds the whole table.
pub fn build(
    ctx: &RouterContext,
    nat: &NatSection,
    fw: &FirewallSection,
    acls: &[TierAcl],
) -> Ruleset {
    use DataType::*;
    let mut sets = Vec::new();
    let mut extra_sets = Vec::new();
    let mut chains = Vec::new();

    let ifs = |names: Vec<&String>| -> Vec<Element> {
        names
            .into_iter()
            .map(|d| el(vec![Value::IfName(d.clone())]))
            .collect()
    };
    sets.push(set(
        "public_devs",
        &[IfName],
        false,
        ifs(ctx.public.iter().map(|p| &p.device).collect()),
    ));
    sets.push(set(
        "guest_devs",
        &[IfName],
        false,
        ifs(ctx.guests.iter().map(|g| &g.device).collect()),
    ));
    sets.push(set(
        "control_devs",
        &[IfName],
        false,
        ifs(ctx.control_device.iter().collect()),
    ));
    sets.push(set(
        "routed_devs",
        &[IfName],
        false,
        ifs(ctx.routed.iter().collect()),
    ));
    let router_addrs = ctx
        .public
        .iter()
        .flat_map(|p| p.addresses.iter().copied())
        .chain(ctx.guests.iter().map(|g| g.router_ip))
        .map(|a| el(vec![Value::Addr(a)]))
        .collect();
    sets.push(set("router_addrs", &[Ipv4Addr], false, router_addrs));
    let mut protos = Vec::new();
    if ctx.ospf {
        protos.push(el(vec![Value::Proto(OSPF)]));
    }
    if ctx.vrrp {
        protos.push(el(vec![Value::Proto(VRRP)]));
    }
    sets.push(set(
        "ha_sync_devs",
        &[IfName],
        false,
        ifs(ctx.ha_sync_devs.iter().collect()),
    ));
    sets.push(set("input_protos", &[InetProto], false, protos));
    let bgp = ctx
        .bgp_peers
        .iter()
        .map(|a| el(vec![Value::Addr(*a)]))
        .collect();
    sets.push(set("bgp_peers", &[Ipv4Addr], false, bgp));
    let marks = ctx
        .public
        .iter()
        .filter_map(|p| {
            p.mark
                .map(|m| el_map(vec![Value::IfName(p.device.clone())], vec![Value::Mark(m)]))
        })
        .collect();
    sets.push(map(
        "pub_marks",
        &[IfName],
        SetData::Values(vec![Mark]),
        false,
        marks,
    ));

    // VPN: IKE/ESP endpoints (peer . local) and the traffic exempt from source NAT.
    let mut endpoints = Vec::new();
    let mut vpn_traffic = Vec::new();
    for p in &ctx.vpn_peers {
        endpoints.push(el(vec![
            Value::Addr(p.peer_gateway),
            Value::Addr(p.local_public_ip),
        ]));
        for l in normalize(&p.local_cidrs) {
            for r in normalize(&p.peer_cidrs) {
                vpn_traffic.push(el(vec![Value::Net(l), Value::Net(r)]));
                vpn_traffic.push(el(vec![Value::Net(r), Value::Net(l)]));
            }
        }
    }
    sets.push(set(
        "vpn_endpoints",
        &[Ipv4Addr, Ipv4Addr],
        false,
        endpoints,
    ));
    sets.extend(ravpn::sets(ctx, &mut vpn_traffic));
    sets.push(set("vpn_traffic", &[Ipv4Addr, Ipv4Addr], true, vpn_traffic));

    // Port forwards (see `forwards` for the three maps and why).
    let forwards::ForwardElements {
        exact: pf_exact,
        port: pf_port,
        addr: pf_addr,
    } = forwards::all(&nat.port_forwards);
    sets.push(map(
        "pf_exact",
        &[Ipv4Addr, InetProto, InetService],
        SetData::Values(vec![Ipv4Addr, InetService]),
        false,
        pf_exact,
    ));
    let pf_key = [Ipv4Addr, InetProto, InetService, Ipv4Addr];
    sets.push(map(
        "pf_port",
        &pf_key,
        SetData::Values(vec![Ipv4Addr, InetService]),
        true,
        pf_port,
    ));
    sets.push(map(
        "pf_addr",
        &pf_key,
        SetData::Values(vec![Ipv4Addr]),
        true,
        pf_addr,
    ));

    // Static NAT both ways.
    let dn = nat
        .static_nat
        .iter()
        .map(|s| {
            el_map(
                vec![Value::Addr(s.public_ip)],
                vec![Value::Addr(s.private_ip)],
            )
        })
        .collect();
    let sn = nat
        .static_nat
        .iter()
        .map(|s| {
            el_map(
                vec![Value::Addr(s.private_ip)],
                vec![Value::Addr(s.public_ip)],
            )
        })
        .collect();
    sets.push(map(
        "static_dnat",
        &[Ipv4Addr],
        SetData::Values(vec![Ipv4Addr]),
        false,
        dn,
    ));
    sets.push(map(
        "static_snat",
        &[Ipv4Addr],
        SetData::Values(vec![Ipv4Addr]),
        false,
        sn,
    ));

    // Source NAT: outgoing device . source -> public ip.
    let mut src_nat = Vec::new();
    for s in &nat.source_nat {
        let srcs = if s.source_cidrs.is_empty() {
            vec![any_net()]
        } else {
            normalize(&s.source_cidrs)
        };
        for c in srcs {
            src_nat.push(el_map(
                vec![Value::IfName(s.device.clone()), Value::Net(c)],
                vec![Value::Addr(s.public_ip)],
            ));
        }
    }
    sets.push(map(
        "src_nat",
        &[IfName, Ipv4Addr],
        SetData::Values(vec![Ipv4Addr]),
        true,
        src_nat,
    ));

    // Ingress firewall: one chain per public IP that has rules; public IPs with forwards or
    // static NAT but no rule drop everything not established.
    let mut by_ip: BTreeMap<Addr, Vec<&crate::model::IngressRule>> = BTreeMap::new();
    for r in &fw.ingress {
        by_ip.entry(r.public_ip).or_default().push(r);
    }
    let guarded: BTreeSet<Addr> = nat
        .port_forwards
        .iter()
        .map(|f| f.public_ip)
        .chain(nat.static_nat.iter().map(|s| s.public_ip))
        .chain(by_ip.keys().copied())
        .collect();
    let mut fw_in = Vec::new();
    for ip in &guarded {
        match by_ip.get(ip) {
            None => fw_in.push(el_verdict(vec![Value::Addr(*ip)], Verdict::Drop)),
            Some(rules) => {
                let name = format!("fw_in_{}", fw_in.len());
                fw_in.push(el_verdict(
                    vec![Value::Addr(*ip)],
                    Verdict::Jump(name.clone()),
                ));
                let mut body = Vec::new();
                for r in rules {
                    let mut m = cidr_match(
                        &mut extra_sets,
                        format!("fwi_{}_src", r.id),
                        Field::IpSaddr,
                        &r.source_cidrs,
                    );
                    m.extend(protocol_matches(
                        r.protocol,
                        r.ports.as_ref(),
                        r.icmp_type,
                        r.icmp_code,
                    ));
                    body.push(
                        Rule::new(m, vec![Statement::Counter, verdict(Verdict::Accept)])
                            .comment(format!("rule {}", r.id)),
                    );
                }
                body.push(Rule::new(
                    vec![],
                    vec![Statement::Counter, verdict(Verdict::Drop)],
                ));
                let mut c = chain(&name, None, body);
                c.comment = Some(format!("ingress {ip}"));
                chains.push(c);
            }
        }
    }
    sets.push(map("fw_in", &[Ipv4Addr], SetData::Verdict, false, fw_in));

    // Egress per guest network.
    let mut egress = Vec::new();
    for (i, p) in fw.egress.iter().enumerate() {
        let name = format!("egress_{i}");
        egress.push(el_verdict(
            vec![Value::Net(p.guest_cidr.trunc())],
            Verdict::Jump(name.clone()),
        ));
        let (hit, miss) = if p.default_allow {
            (Verdict::Drop, Verdict::Accept)
        } else {
            (Verdict::Accept, Verdict::Drop)
        };
        let mut body = Vec::new();
        for r in &p.rules {
            let mut m = cidr_match(
                &mut extra_sets,
                format!("fwe_{}_src", r.id),
                Field::IpSaddr,
                &r.source_cidrs,
            );
            m.extend(cidr_match(
                &mut extra_sets,
                format!("fwe_{}_dst", r.id),
                Field::IpDaddr,
                &r.destination_cidrs,
            ));
            m.extend(protocol_matches(
                r.protocol,
                r.ports.as_ref(),
                r.icmp_type,
                r.icmp_code,
            ));
            body.push(
                Rule::new(m, vec![Statement::Counter, verdict(hit.clone())])
                    .comment(format!("rule {}", r.id)),
            );
        }
        body.push(Rule::new(vec![], vec![Statement::Counter, verdict(miss)]));
        let mut c = chain(&name, None, body);
        c.comment = Some(format!("egress {}", p.guest_cidr));
        chains.push(c);
    }
    sets.push(map("egress", &[Ipv4Addr], SetData::Verdict, true, egress));

    // VPC ACLs: ingress (traffic leaving the router into the tier) ends in drop; egress
    // (traffic from the tier) returns unless denied, so the destination's ingress still
    // applies.
    let mut acl_in = Vec::new();
    let mut acl_out = Vec::new();
    for (i, t) in acls.iter().enumerate() {
        for (dir, list) in [("in", &t.ingress), ("out", &t.egress)] {
            let name = format!("acl_{dir}_{i}");
            let dev = vec![Value::IfName(t.device.clone())];
            let target = Verdict::Jump(name.clone());
            let mut body = Vec::new();
            for (j, r) in list.iter().enumerate() {
                let field = if dir == "in" {
                    Field::IpSaddr
                } else {
                    Field::IpDaddr
                };
                let mut m =
                    cidr_match(&mut extra_sets, format!("acl{i}_{dir}{j}"), field, &r.cidrs);
                m.extend(protocol_matches(
                    r.protocol,
                    r.ports.as_ref(),
                    r.icmp_type,
                    r.icmp_code,
                ));
                let v = match (r.action, dir) {
                    (AclAction::Deny, _) => Verdict::Drop,
                    (AclAction::Allow, "in") => Verdict::Accept,
                    (AclAction::Allow, _) => Verdict::Return,
                };
                let label = r
                    .number
                    .map_or(format!("item {j}"), |n| format!("number {n}"));
                body.push(Rule::new(m, vec![Statement::Counter, verdict(v)]).comment(label));
            }
            if dir == "in" {
                body.push(Rule::new(
                    vec![],
                    vec![Statement::Counter, verdict(Verdict::Drop)],
                ));
                acl_in.push(el_verdict(dev, target));
            } else {
                acl_out.push(el_verdict(dev, target));
            }
            let mut c = chain(&name, None, body);
            c.comment = Some(format!("acl {dir} {}", t.device));
            chains.push(c);
        }
    }
    sets.push(map("acl_in", &[IfName], SetData::Verdict, false, acl_in));
    sets.push(map("acl_out", &[IfName], SetData::Verdict, false, acl_out));
    sets.extend(extra_sets);

    chains.splice(0..0, base_chains());
    let mut rs = Ruleset {
        family: Family::Ip,
        table: TABLE.to_string(),
        sets,
        chains,
    };
    // The structure fingerprint lets a restarted agent recognise its own table
    // (crate::observe); the comment is the one place nft's JSON listing keeps.
    let stamp = crate::observe::structure_fingerprint(&rs);
    if let Some(first) = rs.chains[0].rules.first_mut() {
        let c = first.comment.take().unwrap_or_default();
        first.comment = Some(format!("{c}, {}{stamp}", crate::observe::STAMP));
    }
    rs
}

#[cfg(test)]
pub(crate) mod tests;
