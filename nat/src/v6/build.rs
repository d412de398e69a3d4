//! Pure: `firewall6` + what the router is -> the `ip6 vr` table.
//!
//! Input mirrors the IPv4 table's router input: loopback, established/related, the ICMPv6
//! the router needs (neighbour discovery, router solicitations from guests, PMTU and other
//! errors, echo), SSH on 3922 only from the control NIC, DNS and DHCPv6 from guests; all else
//! counted and dropped. Forward: replies, then egress policies by guest source prefix
//! (a verdict map), then new inbound connections to guest prefixes through the ingress rules
//! (per-rule interval sets of CIDRs); all else counted and dropped.

use std::collections::BTreeSet;

use ipnet::Ipv6Net;

use super::model::{Firewall6Rule, Firewall6Section};
use crate::build::{TCP, UDP};
use crate::ir::*;
use crate::model::RuleProtocol;

/// The IPv6 table has the same name as the IPv4 one, in family `ip6`.
pub const TABLE6: &str = "vr";

/// ICMPv6 (IP protocol 58).
pub const ICMPV6: u8 = 58;

/// ICMPv6 types the router accepts for itself: destination unreachable, packet too big, time
/// exceeded, parameter problem (errors; most arrive as `related` anyway), echo request, MLD
/// query/report/v2 report, router solicitation and advertisement, neighbour solicitation
/// and advertisement. Without RS the guests wait for the next periodic RA; without NS/NA
/// nobody resolves the router's address.
pub const INPUT_ICMPV6: [u8; 12] = [1, 2, 3, 4, 128, 130, 131, 133, 134, 135, 136, 143];

/// Guests may reach on the router: DNS (tcp and udp 53) and DHCPv6 (udp 547).
const GUEST_SERVICES6: [(u8, u16); 3] = [(TCP, 53), (UDP, 53), (UDP, 547)];

/// What the rules need to know about the router.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Router6Context {
    /// SSH (3922) is accepted only from this NIC.
    pub control_device: Option<String>,
    pub guests: Vec<Guest6>,
}

/// One guest NIC with its routed IPv6 prefix (`None`: an IPv4-only guest NIC, which still
/// reaches DNS on the router over IPv6 link-local).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guest6 {
    pub device: String,
    pub prefix: Option<Ipv6Net>,
}

fn set(name: &str, key: &[DataType], interval: bool, elements: BTreeSet<Vec<Value>>) -> Set {
    Set {
        name: name.to_string(),
        key: key.to_vec(),
        data: None,
        interval,
        elements: elements
            .into_iter()
            .map(|key| Element { key, data: None })
            .collect(),
        comment: None,
    }
}

fn base(hook: Hook) -> Option<BaseChain> {
    Some(BaseChain {
        kind: ChainType::Filter,
        hook,
        priority: 0,
        policy: Policy::Drop,
    })
}

fn chain(name: &str, base: Option<BaseChain>, rules: Vec<Rule>, comment: Option<String>) -> Chain {
    Chain {
        name: name.to_string(),
        base,
        rules,
        comment,
    }
}

fn accept() -> Statement {
    Statement::Verdict(Verdict::Accept)
}

fn l4(p: u8) -> Match {
    eq(Field::MetaL4proto, Value::Proto(p))
}

/// Interval-set elements of CIDRs, overlapping ones merged (the kernel refuses overlaps).
fn nets(cidrs: &[Ipv6Net]) -> BTreeSet<Vec<Value>> {
    let mut all: Vec<Ipv6Net> = cidrs.iter().map(|c| c.trunc()).collect();
    all.sort_by_key(|c| (c.network(), c.prefix_len()));
    let mut kept: Vec<Ipv6Net> = Vec::new();
    for c in all {
        if !kept.last().is_some_and(|k| k.contains(&c)) {
            kept.push(c);
        }
    }
    kept.into_iter().map(|n| vec![Value::Net6(n)]).collect()
}

/// A named set of `cidrs` and the match on it; empty = anywhere (no match, no set).
fn cidr_match(sets: &mut Vec<Set>, name: String, field: Field, cidrs: &[Ipv6Net]) -> Vec<Match> {
    if cidrs.is_empty() {
        return Vec::new();
    }
    sets.push(set(&name, &[DataType::Ipv6Addr], true, nets(cidrs)));
    vec![in_set(&[field], &name)]
}

/// Protocol, port and ICMPv6 matches, dependencies first.
fn protocol_matches(r: &Firewall6Rule) -> Vec<Match> {
    let mut m = Vec::new();
    match r.protocol {
        RuleProtocol::All => {}
        RuleProtocol::Tcp | RuleProtocol::Udp => {
            m.push(l4(if r.protocol == RuleProtocol::Tcp {
                TCP
            } else {
                UDP
            }));
            if let Some(p) = r.ports {
                let v = if p.is_single() {
                    Value::Port(p.start)
                } else {
                    Value::PortRange(p.start, p.end)
                };
                m.push(eq(Field::ThDport, v));
            }
        }
        RuleProtocol::Icmp => {
            m.push(l4(ICMPV6));
            if let Some(t) = r.icmp_type {
                m.push(eq(Field::Icmpv6Type, Value::Byte(t)));
            }
            if let Some(c) = r.icmp_code {
                m.push(eq(Field::Icmpv6Code, Value::Byte(c)));
            }
        }
        RuleProtocol::Number(n) => m.push(l4(n)),
    }
    m
}

fn input_chain() -> Chain {
    let ifname = |s: &str| Value::IfName(s.to_string());
    let rules = vec![
        Rule::new(vec![eq(Field::Iifname, ifname("lo"))], vec![accept()]).comment("loopback"),
        Rule::new(
            vec![Match::CtState(vec![CtState::Established, CtState::Related])],
            vec![accept()],
        ),
        Rule::new(
            vec![Match::CtState(vec![CtState::Invalid])],
            vec![Statement::Verdict(Verdict::Drop)],
        ),
        Rule::new(
            vec![
                l4(ICMPV6),
                in_anon(
                    &[Field::Icmpv6Type],
                    INPUT_ICMPV6.iter().map(|t| vec![Value::Byte(*t)]).collect(),
                ),
            ],
            vec![accept()],
        )
        .comment("neighbour discovery, router solicitation, errors, echo"),
        Rule::new(
            vec![
                in_set(&[Field::Iifname], "control_devs"),
                l4(TCP),
                eq(Field::ThDport, Value::Port(3922)),
            ],
            vec![accept()],
        )
        .comment("ssh from the control network"),
        Rule::new(
            vec![
                in_set(&[Field::Iifname], "guest_devs"),
                in_anon(
                    &[Field::MetaL4proto],
                    vec![vec![Value::Proto(TCP)], vec![Value::Proto(UDP)]],
                ),
                in_anon(
                    &[Field::MetaL4proto, Field::ThDport],
                    GUEST_SERVICES6
                        .iter()
                        .map(|(p, port)| vec![Value::Proto(*p), Value::Port(*port)])
                        .collect(),
                ),
            ],
            vec![accept()],
        )
        .comment("dns and dhcpv6 from guests"),
        Rule::new(
            vec![],
            vec![Statement::Counter, Statement::Verdict(Verdict::Drop)],
        )
        .comment("input drop"),
    ];
    chain("input", base(Hook::Input), rules, None)
}

fn forward_chain() -> Chain {
    let rules = vec![
        Rule::new(
            vec![Match::CtState(vec![CtState::Established, CtState::Related])],
            vec![accept()],
        ),
        Rule::new(
            vec![Match::CtState(vec![CtState::Invalid])],
            vec![Statement::Verdict(Verdict::Drop)],
        ),
        Rule::new(
            vec![in_set(&[Field::Iifname], "guest_devs")],
            vec![Statement::VerdictMap {
                key: vec![Field::Ip6Saddr],
                map: "egress".into(),
            }],
        )
        .comment("egress policy of the guest prefix"),
        Rule::new(
            vec![
                in_set(&[Field::Iifname], "guest_devs"),
                in_set(&[Field::Ip6Saddr], "guest_nets"),
            ],
            vec![Statement::Counter, accept()],
        )
        .comment("guest prefix without an egress policy"),
        Rule::new(
            vec![in_set(&[Field::Ip6Daddr], "guest_nets")],
            vec![Statement::Verdict(Verdict::Jump("ingress".into()))],
        ),
        Rule::new(
            vec![],
            vec![Statement::Counter, Statement::Verdict(Verdict::Drop)],
        )
        .comment("forward drop"),
    ];
    chain("forward", base(Hook::Forward), rules, None)
}

/// Builds the whole `ip6 vr` table.
pub fn build6(ctx: &Router6Context, fw: &Firewall6Section) -> Ruleset {
    let ifnames = |it: &mut dyn Iterator<Item = &String>| -> BTreeSet<Vec<Value>> {
        it.map(|d| vec![Value::IfName(d.clone())]).collect()
    };
    let mut sets = vec![
        set(
            "control_devs",
            &[DataType::IfName],
            false,
            ifnames(&mut ctx.control_device.iter()),
        ),
        set(
            "guest_devs",
            &[DataType::IfName],
            false,
            ifnames(&mut ctx.guests.iter().map(|g| &g.device)),
        ),
        set(
            "guest_nets",
            &[DataType::Ipv6Addr],
            true,
            nets(
                &ctx.guests
                    .iter()
                    .filter_map(|g| g.prefix)
                    .collect::<Vec<_>>(),
            ),
        ),
    ];
    let mut extra = Vec::new();
    let mut chains = vec![input_chain(), forward_chain()];

    let mut ingress = Vec::new();
    for r in &fw.ingress {
        let mut m = cidr_match(
            &mut extra,
            format!("in_{}_src", r.id),
            Field::Ip6Saddr,
            &r.source_cidrs,
        );
        m.extend(cidr_match(
            &mut extra,
            format!("in_{}_dst", r.id),
            Field::Ip6Daddr,
            &r.destination_cidrs,
        ));
        m.extend(protocol_matches(r));
        ingress.push(
            Rule::new(m, vec![Statement::Counter, accept()]).comment(format!("rule {}", r.id)),
        );
    }
    chains.push(chain(
        "ingress",
        None,
        ingress,
        Some("new inbound to guest prefixes".into()),
    ));

    let mut egress = Vec::new();
    for (i, p) in fw.egress.iter().enumerate() {
        let name = format!("egress_{i}");
        egress.push(Element {
            key: vec![Value::Net6(p.guest_cidr.trunc())],
            data: Some(ElementData::Verdict(Verdict::Jump(name.clone()))),
        });
        let (hit, miss) = if p.default_allow {
            (Verdict::Drop, Verdict::Accept)
        } else {
            (Verdict::Accept, Verdict::Drop)
        };
        let mut body = Vec::new();
        for r in &p.rules {
            let mut m = cidr_match(
                &mut extra,
                format!("out{i}_{}_src", r.id),
                Field::Ip6Saddr,
                &r.source_cidrs,
            );
            m.extend(cidr_match(
                &mut extra,
                format!("out{i}_{}_dst", r.id),
                Field::Ip6Daddr,
                &r.destination_cidrs,
            ));
            m.extend(protocol_matches(r));
            body.push(
                Rule::new(m, vec![Statement::Counter, Statement::Verdict(hit.clone())])
                    .comment(format!("rule {}", r.id)),
            );
        }
        body.push(Rule::new(
            vec![],
            vec![Statement::Counter, Statement::Verdict(miss)],
        ));
        chains.push(chain(
            &name,
            None,
            body,
            Some(format!("egress {}", p.guest_cidr.trunc())),
        ));
    }
    egress.sort();
    sets.push(Set {
        name: "egress".into(),
        key: vec![DataType::Ipv6Addr],
        data: Some(SetData::Verdict),
        interval: true,
        elements: egress,
        comment: None,
    });
    sets.extend(extra);
    let mut rs = Ruleset {
        family: Family::Ip6,
        table: TABLE6.to_string(),
        sets,
        chains,
    };
    // As in the IPv4 table: a restarted agent recognises its own table by this stamp
    // (crate::observe::matches_listing) and sends nothing.
    let stamp = crate::observe::structure_fingerprint(&rs);
    if let Some(first) = rs.chains[0].rules.first_mut() {
        let c = first.comment.take().unwrap_or_default();
        first.comment = Some(format!("{c}, {}{stamp}", crate::observe::STAMP));
    }
    rs
}
