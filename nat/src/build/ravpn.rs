//! Remote-access VPN (road warriors): IKE (UDP 500 and 4500) and ESP accepted on the VPN's
//! public IP only, from anywhere (clients roam); DNS on the router from the client pool;
//! pool <-> guest traffic forwarded and kept out of source NAT (it joins `vpn_traffic`, as
//! site-to-site traffic does). The sets are always there, empty without a VPN, so turning it
//! on or off is an element change, never a structure change.

use std::net::Ipv4Addr;

use ipnet::{Ipv4Net, Ipv4Subnets};

use super::*;

/// The remote-access VPN as the rules see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteAccessVpn {
    pub server_ip: Ipv4Addr,
    pub pool_first: Ipv4Addr,
    pub pool_last: Ipv4Addr,
    /// The guest networks the clients reach.
    pub local_cidrs: Vec<Ipv4Net>,
}

impl RemoteAccessVpn {
    /// The pool as the fewest CIDRs that cover exactly its range.
    pub fn pool_cidrs(&self) -> Vec<Ipv4Net> {
        Ipv4Subnets::new(self.pool_first, self.pool_last, 0).collect()
    }
}

/// `ravpn_servers` and `ravpn_pools`; the pool <-> guest pairs go into `vpn_traffic`.
pub(super) fn sets(ctx: &RouterContext, vpn_traffic: &mut Vec<Element>) -> Vec<Set> {
    use DataType::*;
    let mut servers = Vec::new();
    let mut pools = Vec::new();
    if let Some(ra) = &ctx.remote_access {
        servers.push(el(vec![Value::Addr(ra.server_ip)]));
        let pool = normalize(&ra.pool_cidrs());
        for p in &pool {
            pools.push(el(vec![Value::Net(*p)]));
            for l in normalize(&ra.local_cidrs) {
                vpn_traffic.push(el(vec![Value::Net(*p), Value::Net(l)]));
                vpn_traffic.push(el(vec![Value::Net(l), Value::Net(*p)]));
            }
        }
    }
    vec![
        set("ravpn_servers", &[Ipv4Addr], false, servers),
        set("ravpn_pools", &[Ipv4Addr], true, pools),
    ]
}

/// IKE and ESP to the VPN's public IP: before the ingress firewall (`pre_filter`) and in
/// `input`.
pub(super) fn ike_rules() -> Vec<Rule> {
    vec![
        Rule::new(
            vec![
                l4(UDP),
                in_anon(
                    &[Field::ThDport],
                    vec![vec![Value::Port(500)], vec![Value::Port(4500)]],
                ),
                in_set(&[Field::IpDaddr], "ravpn_servers"),
            ],
            vec![Statement::Verdict(Verdict::Accept)],
        )
        .comment("ike to the remote-access vpn"),
        Rule::new(
            vec![l4(ESP), in_set(&[Field::IpDaddr], "ravpn_servers")],
            vec![Statement::Verdict(Verdict::Accept)],
        )
        .comment("esp to the remote-access vpn"),
    ]
}

/// DNS on the router from the client pool (CloudStack accepts it from its ppp devices).
pub(super) fn dns_rule() -> Rule {
    Rule::new(
        vec![
            in_set(&[Field::IpSaddr], "ravpn_pools"),
            tcp_udp(),
            eq(Field::ThDport, Value::Port(53)),
        ],
        vec![Statement::Verdict(Verdict::Accept)],
    )
    .comment("dns from remote-access clients")
}
