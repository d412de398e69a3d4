//! The fixed skeleton of the table: every base chain, its rules referring to the named sets
//! and maps that [`super::build`] fills. Fixed, so data changes never change structure.

use super::*;

fn dnat_rules() -> Vec<Rule> {
    let pf_key = vec![
        Field::IpDaddr,
        Field::MetaL4proto,
        Field::ThDport,
        Field::IpSaddr,
    ];
    vec![
        Rule::new(
            vec![tcp_udp()],
            vec![
                Statement::Counter,
                Statement::Dnat(NatTarget::Map {
                    key: vec![Field::IpDaddr, Field::MetaL4proto, Field::ThDport],
                    map: "pf_exact".into(),
                    with_port: true,
                }),
            ],
        )
        .comment("port forwards open to all, one hash lookup"),
        Rule::new(
            vec![tcp_udp()],
            vec![
                Statement::Counter,
                Statement::Dnat(NatTarget::Map {
                    key: pf_key.clone(),
                    map: "pf_port".into(),
                    with_port: true,
                }),
            ],
        )
        .comment("port forwards, shifted ports, by source"),
        Rule::new(
            vec![tcp_udp()],
            vec![
                Statement::Counter,
                Statement::Dnat(NatTarget::Map {
                    key: pf_key,
                    map: "pf_addr".into(),
                    with_port: false,
                }),
            ],
        )
        .comment("port forwards, port ranges and by source"),
        Rule::new(
            vec![],
            vec![
                Statement::Counter,
                Statement::Dnat(NatTarget::Map {
                    key: vec![Field::IpDaddr],
                    map: "static_dnat".into(),
                    with_port: false,
                }),
            ],
        )
        .comment("static nat"),
    ]
}

/// The fixed skeleton: every base chain, its rules referring to the named sets and maps.
pub(super) fn base_chains() -> Vec<Chain> {
    use Statement as S;
    let accept = || S::Verdict(Verdict::Accept);
    let drop = || S::Verdict(Verdict::Drop);
    let restore = Rule::new(
        vec![
            ct(&EST),
            Match::Cmp {
                field: Field::CtMark,
                value: Value::Mark(0),
                negate: true,
            },
        ],
        vec![S::MetaMarkFromCtMark],
    )
    .comment("replies follow the connection's public device");
    vec![
        chain(
            "pre_mark",
            base(ChainType::Filter, Hook::Prerouting, -150, Policy::Accept),
            vec![
                Rule::new(
                    vec![ct(&[CtState::New])],
                    vec![S::CtMarkFromMap {
                        key: Field::Iifname,
                        map: "pub_marks".into(),
                    }],
                )
                .comment("new inbound connection: mark of its public device"),
                // Only packets from the inside: the public side of a marked flow is routed
                // by the main table toward the guest, which the per-device tables need not
                // know.
                {
                    let mut r = restore.clone();
                    r.matches.insert(
                        0,
                        Match::InSet {
                            fields: vec![Field::Iifname],
                            set: SetRef::Named("public_devs".into()),
                            negate: true,
                        },
                    );
                    r
                },
            ],
        ),
        // Before DNAT (-100) so rules see the public address and port.
        chain(
            "pre_filter",
            base(ChainType::Filter, Hook::Prerouting, -110, Policy::Accept),
            vec![
                Rule::new(vec![ct(&EST)], vec![accept()]),
                Rule::new(
                    vec![in_set(&[Field::IpSaddr, Field::IpDaddr], "vpn_endpoints")],
                    vec![accept()],
                )
                .comment("vpn peers"),
                super::ravpn::ike_rules()[0].clone(),
                super::ravpn::ike_rules()[1].clone(),
                Rule::new(
                    vec![],
                    vec![S::VerdictMap {
                        key: vec![Field::IpDaddr],
                        map: "fw_in".into(),
                    }],
                )
                .comment("ingress firewall per public ip"),
            ],
        ),
        chain(
            "pre_nat",
            base(ChainType::Nat, Hook::Prerouting, -100, Policy::Accept),
            dnat_rules(),
        ),
        chain(
            "input",
            base(ChainType::Filter, Hook::Input, 0, Policy::Drop),
            vec![
                Rule::new(
                    vec![eq(Field::Iifname, Value::IfName("lo".into()))],
                    vec![accept()],
                ),
                Rule::new(vec![ct(&EST)], vec![accept()]),
                Rule::new(vec![ct(&[CtState::Invalid])], vec![drop()]),
                // CloudStack's VR accepts icmp to itself; traffic to public IPs has already
                // passed the ingress firewall.
                Rule::new(vec![l4(ICMP)], vec![accept()]),
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
                        tcp_udp(),
                        in_anon(
                            &[Field::MetaL4proto, Field::ThDport],
                            GUEST_SERVICES
                                .iter()
                                .map(|(p, port)| vec![Value::Proto(*p), Value::Port(*port)])
                                .collect(),
                        ),
                    ],
                    vec![accept()],
                )
                .comment("dns, dhcp, password and metadata from guests"),
                Rule::new(
                    vec![
                        l4(UDP),
                        in_anon(
                            &[Field::ThDport],
                            vec![vec![Value::Port(500)], vec![Value::Port(4500)]],
                        ),
                        in_set(&[Field::IpSaddr, Field::IpDaddr], "vpn_endpoints"),
                    ],
                    vec![accept()],
                )
                .comment("ike from vpn peers"),
                Rule::new(
                    vec![
                        l4(ESP),
                        in_set(&[Field::IpSaddr, Field::IpDaddr], "vpn_endpoints"),
                    ],
                    vec![accept()],
                )
                .comment("esp from vpn peers"),
                super::ravpn::ike_rules()[0].clone(),
                super::ravpn::ike_rules()[1].clone(),
                super::ravpn::dns_rule(),
                Rule::new(
                    vec![in_set(&[Field::MetaL4proto], "input_protos")],
                    vec![accept()],
                )
                .comment("routing protocols"),
                Rule::new(
                    vec![
                        in_set(&[Field::IpSaddr], "bgp_peers"),
                        l4(TCP),
                        eq(Field::ThDport, Value::Port(179)),
                    ],
                    vec![accept()],
                )
                .comment("bgp from its neighbors"),
                Rule::new(
                    vec![
                        in_set(&[Field::Iifname], "ha_sync_devs"),
                        l4(UDP),
                        eq(Field::ThDport, Value::Port(super::HA_SYNC_PORT)),
                    ],
                    vec![accept()],
                )
                .comment("conntrackd state sync"),
                Rule::new(vec![], vec![S::Counter, drop()]),
            ],
        ),
        chain(
            "forward",
            base(ChainType::Filter, Hook::Forward, 0, Policy::Drop),
            vec![
                Rule::new(vec![ct(&EST)], vec![accept()]),
                Rule::new(vec![ct(&[CtState::Invalid])], vec![drop()]),
                Rule::new(
                    vec![],
                    vec![S::VerdictMap {
                        key: vec![Field::Iifname],
                        map: "acl_out".into(),
                    }],
                ),
                Rule::new(
                    vec![],
                    vec![S::VerdictMap {
                        key: vec![Field::Oifname],
                        map: "acl_in".into(),
                    }],
                ),
                Rule::new(vec![Match::CtStatusDnat], vec![S::Counter, accept()])
                    .comment("port forwards and static nat"),
                Rule::new(
                    vec![in_set(&[Field::IpSaddr, Field::IpDaddr], "vpn_traffic")],
                    vec![accept()],
                ),
                Rule::new(
                    vec![
                        in_set(&[Field::Iifname], "guest_devs"),
                        in_set(&[Field::Oifname], "public_devs"),
                    ],
                    vec![S::VerdictMap {
                        key: vec![Field::IpSaddr],
                        map: "egress".into(),
                    }],
                ),
                Rule::new(
                    vec![
                        in_set(&[Field::Iifname], "guest_devs"),
                        in_set(&[Field::Oifname], "public_devs"),
                    ],
                    vec![accept()],
                ),
                // Routed traffic (tiers <-> tiers, tiers <-> private gateways and OSPF transit
                // links) passed the ACL vmaps above; it keeps its addresses.
                Rule::new(
                    vec![
                        in_set(&[Field::Iifname], "guest_devs"),
                        in_set(&[Field::Oifname], "guest_devs"),
                    ],
                    vec![accept()],
                ),
                Rule::new(
                    vec![
                        in_set(&[Field::Iifname], "guest_devs"),
                        in_set(&[Field::Oifname], "routed_devs"),
                    ],
                    vec![accept()],
                ),
                Rule::new(
                    vec![
                        in_set(&[Field::Iifname], "routed_devs"),
                        in_set(&[Field::Oifname], "guest_devs"),
                    ],
                    vec![accept()],
                ),
            ],
        ),
        chain(
            "out_mark",
            base(ChainType::Route, Hook::Output, -150, Policy::Accept),
            vec![restore],
        ),
        chain(
            "out_nat",
            base(ChainType::Nat, Hook::Output, -100, Policy::Accept),
            dnat_rules(),
        ),
        chain(
            "post_nat",
            base(ChainType::Nat, Hook::Postrouting, 100, Policy::Accept),
            vec![
                Rule::new(
                    vec![
                        Match::CtStatusDnat,
                        in_set(&[Field::Iifname], "guest_devs"),
                        in_set(&[Field::Oifname], "guest_devs"),
                    ],
                    vec![S::Counter, S::Masquerade],
                )
                .comment("hairpin: replies come back through the router"),
                Rule::new(
                    vec![in_set(&[Field::IpSaddr, Field::IpDaddr], "vpn_traffic")],
                    vec![accept()],
                )
                .comment("site-to-site traffic keeps its addresses"),
                Rule::new(
                    vec![in_set(&[Field::Oifname], "public_devs")],
                    vec![
                        S::Counter,
                        S::Snat(NatTarget::Map {
                            key: vec![Field::IpSaddr],
                            map: "static_snat".into(),
                            with_port: false,
                        }),
                    ],
                )
                .comment("static nat"),
                Rule::new(
                    vec![in_set(&[Field::IpSaddr], "router_addrs")],
                    vec![accept()],
                ),
                Rule::new(
                    vec![],
                    vec![
                        S::Counter,
                        S::Snat(NatTarget::Map {
                            key: vec![Field::Oifname, Field::IpSaddr],
                            map: "src_nat".into(),
                            with_port: false,
                        }),
                    ],
                )
                .comment("source nat"),
            ],
        ),
    ]
}
