//! Validation of wave-1 payloads and their translation into native values. Pure: no state is
//! needed, so `parse_payload` (and `vr-agent validate`) reports every bad value without one.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

pub use super::ipv6::{firewall6, guest6, Fw6Rule, Guest6};
pub use super::rules::*;
pub use super::s2s::*;

use super::check::{self, q, Errors};
use super::types::*;
use crate::error::Invalid;
use crate::state::{InterfaceRole, MacAddr};

pub(super) fn nonempty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.trim().is_empty())
}

/// One checked `ips` entry.
#[derive(Debug, Clone)]
pub struct IpEntry {
    pub add: bool,
    pub source_nat: bool,
    pub address: Ipv4Net,
    pub gateway: Option<Ipv4Addr>,
    pub mac: Option<MacAddr>,
    pub nic_dev_id: Option<u32>,
    pub role: InterfaceRole,
    pub mtu: Option<u32>,
}

pub fn ips(p: &IpAssociation) -> Result<Vec<IpEntry>, Invalid> {
    let mut e = Errors::default();
    let mut out = Vec::new();
    for (i, x) in p.ip_address.iter().enumerate() {
        let pre = format!("ip_address[{i}]");
        let ip = check::ipv4(&mut e, &format!("{pre}.public_ip"), &x.public_ip);
        let len = check::netmask(&mut e, &format!("{pre}.netmask"), &x.netmask);
        let gateway = check::opt_ipv4(&mut e, &format!("{pre}.gateway"), x.gateway.as_deref());
        let mac = check::opt_mac(
            &mut e,
            &format!("{pre}.vif_mac_address"),
            x.vif_mac_address.as_deref(),
        );
        if mac.is_none() && x.nic_dev_id.is_none() {
            e.push(
                format!("{pre}.vif_mac_address"),
                "null",
                "neither vif_mac_address nor nic_dev_id: the NIC cannot be found",
            );
        }
        let role = match x.nw_type.as_deref().map(str::to_ascii_lowercase).as_deref() {
            None | Some("") | Some("public") if x.is_private_gateway => {
                Some(InterfaceRole::PrivateGateway)
            }
            None | Some("") | Some("public") => Some(InterfaceRole::Public),
            Some("guest") => Some(InterfaceRole::Guest),
            Some("control") => Some(InterfaceRole::Control),
            Some(_) => {
                e.push(
                    format!("{pre}.nw_type"),
                    q(x.nw_type.as_deref().unwrap_or("")),
                    "unknown network type (Public, Guest, Control)",
                );
                None
            }
        };
        if let Some(m) = x.mtu {
            if !(68..=65535).contains(&m) {
                e.push(format!("{pre}.mtu"), m, "MTU out of range 68-65535");
            }
        }
        if let (Some(ip), Some(len), Some(role)) = (ip, len, role) {
            let address = Ipv4Net::new(ip, len).expect("prefix checked");
            out.push(IpEntry {
                add: x.add,
                source_nat: x.source_nat,
                address,
                gateway,
                mac,
                nic_dev_id: x.nic_dev_id,
                role,
                mtu: x.mtu,
            });
        }
    }
    e.into_result(out)
}

/// Router types, from `cmdline` `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouterType {
    Router,
    VpcRouter,
    DhcpSrvr,
}

impl RouterType {
    pub fn parse(s: &str) -> Option<RouterType> {
        match s {
            "router" => Some(RouterType::Router),
            "vpcrouter" => Some(RouterType::VpcRouter),
            "dhcpsrvr" => Some(RouterType::DhcpSrvr),
            _ => None,
        }
    }

    /// The role CloudStack gives `eth<n>` on this router type; `None`: not defined by the
    /// cmdline (VPC tiers and extra NICs arrive as `guestnetwork`/`ips`).
    pub fn role_of(self, n: u32) -> Option<InterfaceRole> {
        use InterfaceRole::*;
        match (self, n) {
            (RouterType::Router, 0) | (RouterType::DhcpSrvr, 0) => Some(Guest),
            (RouterType::Router, 1) | (RouterType::DhcpSrvr, 1) | (RouterType::VpcRouter, 0) => {
                Some(Control)
            }
            (RouterType::Router, 2) | (RouterType::VpcRouter, 1) => Some(Public),
            _ => None,
        }
    }
}

/// The NIC addresses a cmdline defines.
#[derive(Debug, Clone)]
pub struct CmdlineNics {
    pub router_type: RouterType,
    /// `(n, ethNip/ethNmask, role)`
    pub nics: Vec<(u32, Ipv4Net, InterfaceRole)>,
    pub gateway: Option<Ipv4Addr>,
    pub public_mtu: Option<u32>,
    pub private_mtu: Option<u32>,
}

pub fn cmdline(p: &CmdLine) -> Result<CmdlineNics, Invalid> {
    cmdline_map(&p.cmd_line, "cmd_line")
}

pub fn cmdline_map(
    m: &std::collections::BTreeMap<String, String>,
    pre: &str,
) -> Result<CmdlineNics, Invalid> {
    let mut e = Errors::default();
    for (k, v) in m {
        let key_ok = !k.is_empty()
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !key_ok {
            e.push(pre.to_string(), q(k), "invalid cmdline key");
        }
        // Boot arguments this agent does not use are kept as they are (keys and tokens may hold
        // any printable character); none may hold a control character.
        if let Some(c) = v.chars().find(|c| c.is_control()) {
            e.push(
                format!("{pre}.{k}"),
                q(v),
                &format!("forbidden character {c:?}"),
            );
        }
    }
    if let Some(name) = m.get("name") {
        check::dns_name(&mut e, &format!("{pre}.name"), name);
    }
    let get = |k: &str| {
        m.get(k)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    };
    let router_type = match get("type") {
        Some(t) => RouterType::parse(t).or_else(|| {
            e.push(
                format!("{pre}.type"),
                q(t),
                "unknown router type (router, vpcrouter, dhcpsrvr)",
            );
            None
        }),
        None => {
            e.push(format!("{pre}.type"), "null", "missing router type");
            None
        }
    };
    for k in [
        "localgw",
        "dns1",
        "dns2",
        "guestgw",
        "guestbrd",
        "source_nat_ip",
    ] {
        check::opt_ipv4(&mut e, &format!("{pre}.{k}"), get(k));
    }
    if let Some(c) = get("vpccidr") {
        check::cidr4(&mut e, &format!("{pre}.vpccidr"), c);
    }
    for k in ["cidrsize", "guestcidrsize"] {
        if let Some(v) = get(k) {
            check::prefix_len(&mut e, &format!("{pre}.{k}"), v);
        }
    }
    if let Some(d) = get("domain") {
        check::dns_name(&mut e, &format!("{pre}.domain"), d);
    }
    let mut mtu = |k: &str| -> Option<u32> {
        let v = get(k)?;
        match v.parse::<u32>() {
            Ok(n) if (68..=65535).contains(&n) => Some(n),
            _ => {
                e.push(format!("{pre}.{k}"), q(v), "MTU out of range 68-65535");
                None
            }
        }
    };
    let public_mtu = mtu("publicMtu");
    let private_mtu = mtu("privateMtu");
    let mut nics = Vec::new();
    for (k, v) in m {
        let Some(n) = k
            .strip_prefix("eth")
            .and_then(|r| r.strip_suffix("ip"))
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if v.trim().is_empty() {
            continue;
        }
        let ip = check::ipv4(&mut e, &format!("{pre}.{k}"), v);
        let mk = format!("eth{n}mask");
        let len = match get(&mk) {
            Some(mask) => check::netmask(&mut e, &format!("{pre}.{mk}"), mask),
            None => {
                e.push(format!("{pre}.{mk}"), "null", "address without a netmask");
                None
            }
        };
        if let (Some(ip), Some(len), Some(rt)) = (ip, len, router_type) {
            let role = rt.role_of(n).or(if rt == RouterType::Router && n > 2 {
                Some(InterfaceRole::Public)
            } else {
                None
            });
            if let Some(role) = role {
                nics.push((n, Ipv4Net::new(ip, len).expect("prefix checked"), role));
            }
        }
    }
    let gateway = check::opt_ipv4(&mut e, &format!("{pre}.gateway"), get("gateway"));
    match router_type {
        Some(router_type) => e.into_result(CmdlineNics {
            router_type,
            nics,
            gateway,
            public_mtu,
            private_mtu,
        }),
        None => Err(Invalid(e.0)),
    }
}

/// A checked `guestnetwork`.
#[derive(Debug, Clone)]
pub struct Guest {
    pub add: bool,
    pub mac: Option<MacAddr>,
    pub device: String,
    pub address: Ipv4Net,
    pub mtu: Option<u32>,
    /// IPv6 fields were given (kept as pending until IPv6 lands).
    pub has_ipv6: bool,
}

pub fn guest(p: &GuestNetwork) -> Result<Guest, Invalid> {
    let mut e = Errors::default();
    check::ifname(&mut e, "device", &p.device);
    let mac = check::opt_mac(&mut e, "mac_address", p.mac_address.as_deref());
    let ip = check::ipv4(&mut e, "router_guest_ip", &p.router_guest_ip);
    let len = check::netmask(&mut e, "router_guest_netmask", &p.router_guest_netmask);
    check::opt_ipv4(
        &mut e,
        "router_guest_gateway",
        p.router_guest_gateway.as_deref(),
    );
    if let (Some(c), Some(len)) = (nonempty(&p.cidr), len) {
        // The prefix length as a string; a full CIDR is accepted too.
        let n = match c.split_once('/') {
            Some(_) => check::cidr4(&mut e, "cidr", c).map(|n| n.prefix_len()),
            None => check::prefix_len(&mut e, "cidr", c),
        };
        if n.is_some_and(|n| n != len) {
            e.push("cidr", q(c), "disagrees with router_guest_netmask");
        }
    }
    if let Some(dns) = nonempty(&p.dns) {
        for a in dns.split(',').map(str::trim).filter(|a| !a.is_empty()) {
            check::ip_any(&mut e, "dns", a);
        }
    }
    if let Some(d) = nonempty(&p.domain_name) {
        check::dns_name(&mut e, "domain_name", d);
    }
    if let Some(m) = p.mtu {
        if !(68..=65535).contains(&m) {
            e.push("mtu", m, "MTU out of range 68-65535");
        }
    }
    let v6 = [
        ("cidr6", &p.cidr6, true),
        ("router_guest_ip6", &p.router_guest_ip6, false),
        (
            "router_guest_ip6_gateway",
            &p.router_guest_ip6_gateway,
            false,
        ),
        ("router_guest_ip6_cidr", &p.router_guest_ip6_cidr, true),
        ("router_ip6", &p.router_ip6, false),
        ("router_ip6_gateway", &p.router_ip6_gateway, false),
        ("router_ip6_cidr", &p.router_ip6_cidr, true),
    ];
    let mut has_ipv6 = false;
    for (name, v, is_cidr) in v6 {
        if let Some(s) = nonempty(v) {
            has_ipv6 = true;
            if is_cidr {
                check::cidr6(&mut e, name, s);
            } else if !matches!(s.parse::<std::net::IpAddr>(), Ok(std::net::IpAddr::V6(_))) {
                e.push(name, q(s), "not an IPv6 address");
            }
        }
    }
    if let Some(dns6) = nonempty(&p.dns6) {
        has_ipv6 = true;
        for a in dns6.split(',').map(str::trim).filter(|a| !a.is_empty()) {
            check::ip_any(&mut e, "dns6", a);
        }
    }
    match (ip, len) {
        (Some(ip), Some(len)) => e.into_result(Guest {
            add: p.add,
            mac,
            device: p.device.clone(),
            address: Ipv4Net::new(ip, len).expect("prefix checked"),
            mtu: p.mtu,
            has_ipv6,
        }),
        _ => Err(Invalid(e.0)),
    }
}

/// `(revoke, network, gateway, private gateway ip)`
pub type RouteEntry = (bool, Ipv4Net, Ipv4Addr, Option<Ipv4Addr>);

pub fn static_routes(p: &StaticRoutes) -> Result<Vec<RouteEntry>, Invalid> {
    let mut e = Errors::default();
    let mut out = Vec::new();
    for (i, r) in p.routes.iter().enumerate() {
        let pre = format!("routes[{i}]");
        let net = check::cidr4(&mut e, &format!("{pre}.network"), &r.network);
        if let Some(n) = net {
            if n.trunc() != n {
                e.push(
                    format!("{pre}.network"),
                    q(&r.network),
                    "host bits set in a route destination",
                );
            }
        }
        let gw = check::ipv4(&mut e, &format!("{pre}.gateway"), &r.gateway);
        let ip = check::opt_ipv4(
            &mut e,
            &format!("{pre}.ip_address"),
            r.ip_address.as_deref(),
        );
        if let (Some(n), Some(gw)) = (net, gw) {
            out.push((r.revoke, n, gw, ip));
        }
    }
    e.into_result(out)
}
