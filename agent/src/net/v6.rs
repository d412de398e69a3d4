//! The router's IPv6 addressing: global addresses on its NICs (the guest prefixes' gateway
//! addresses, the public address) and the IPv6 default route, over the same rtnetlink
//! connection as IPv4. Same discipline as [`super`]: [`Snapshot6`] is what the kernel holds,
//! [`Wanted6`] what a state implies, [`plan6`] a pure diff printed as `ip -6` commands, and
//! the agent removes only what the previously applied state implied.
//!
//! Addresses are added with `nodad`: the router is the one owner of its gateway address, and
//! duplicate address detection would keep it tentative (unusable, no RAs from it) for a
//! second or more after every boot (CloudStack's router turns `accept_dad` off for the same
//! reason).

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

use futures::TryStreamExt;
use ipnet::Ipv6Net;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags, AddressScope};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteProtocol, RouteScope, RouteType,
};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::{AddressMessageBuilder, Handle, RouteMessageBuilder};

use super::observe::NetError;
use super::{Snapshot, MAIN_TABLE};
use crate::state::{DesiredState, InterfaceRole};

/// Whether the state holds any IPv6 (an address, a gateway or IPv6 firewall rules).
pub fn has_ipv6(s: &DesiredState) -> bool {
    s.interfaces
        .iter()
        .any(|i| !i.addresses6.is_empty() || i.gateway6.is_some())
        || !s.firewall6.is_empty()
}

/// The IPv6 default route of the main table the agent may own (protocol static).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SysDefault6 {
    pub gateway: Option<Ipv6Addr>,
    pub oif: Option<u32>,
}

/// What the kernel holds: global IPv6 addresses by interface index, and the static IPv6
/// default routes of the main table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot6 {
    pub addresses: BTreeSet<(u32, Ipv6Net)>,
    pub defaults: Vec<SysDefault6>,
}

/// What a desired state implies (devices resolved on the system).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Wanted6 {
    pub addresses: BTreeSet<(String, Ipv6Net)>,
    /// `(gateway, device)` of the default route.
    pub default: Option<(Ipv6Addr, String)>,
}

/// What `s` implies on `sys`. The default route goes through the first public NIC that has
/// an IPv6 gateway (CloudStack sends one).
pub fn wanted6(s: &DesiredState, sys: &Snapshot) -> Wanted6 {
    let mut w = Wanted6::default();
    for i in &s.interfaces {
        let Some(dev) = sys.resolve(&i.device, i.mac) else {
            continue;
        };
        for a in &i.addresses6 {
            w.addresses.insert((dev.clone(), *a));
        }
        if let (Some(gw), InterfaceRole::Public, None) = (i.gateway6, i.role, &w.default) {
            w.default = Some((gw, dev.clone()));
        }
    }
    w
}

/// One change, printed as the `ip -6` command it mirrors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Net6Op {
    /// `ip -6 addr replace ADDR dev DEV nodad`
    AddressAdd { device: String, address: Ipv6Net },
    /// `ip -6 addr del ADDR dev DEV`
    AddressDel { device: String, address: Ipv6Net },
    /// `ip -6 route replace default via GW dev DEV proto static`
    DefaultReplace { gateway: Ipv6Addr, device: String },
    /// `ip -6 route del default via GW dev DEV proto static`
    DefaultDel { gateway: Ipv6Addr, device: String },
}

impl fmt::Display for Net6Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Net6Op::AddressAdd { device, address } => {
                write!(f, "ip -6 addr replace {address} dev {device} nodad")
            }
            Net6Op::AddressDel { device, address } => {
                write!(f, "ip -6 addr del {address} dev {device}")
            }
            Net6Op::DefaultReplace { gateway, device } => write!(
                f,
                "ip -6 route replace default via {gateway} dev {device} proto static"
            ),
            Net6Op::DefaultDel { gateway, device } => write!(
                f,
                "ip -6 route del default via {gateway} dev {device} proto static"
            ),
        }
    }
}

/// Pure: new addresses first, then stale ones off, then the default route.
pub fn plan6(old: &Wanted6, new: &Wanted6, sys: &Snapshot, sys6: &Snapshot6) -> Vec<Net6Op> {
    let has = |dev: &str, a: &Ipv6Net| {
        sys.link(dev)
            .is_some_and(|l| sys6.addresses.contains(&(l.index, *a)))
    };
    let mut ops = Vec::new();
    for (dev, a) in &new.addresses {
        if !has(dev, a) {
            ops.push(Net6Op::AddressAdd {
                device: dev.clone(),
                address: *a,
            });
        }
    }
    for (dev, a) in old.addresses.difference(&new.addresses) {
        if has(dev, a) {
            ops.push(Net6Op::AddressDel {
                device: dev.clone(),
                address: *a,
            });
        }
    }
    let holds = |gw: &Ipv6Addr, dev: &str| {
        let oif = sys.link(dev).map(|l| l.index);
        sys6.defaults
            .iter()
            .any(|d| d.gateway == Some(*gw) && d.oif == oif)
    };
    if let Some((gw, dev)) = &old.default {
        if new.default.as_ref() != Some(&(*gw, dev.clone())) && holds(gw, dev) {
            ops.push(Net6Op::DefaultDel {
                gateway: *gw,
                device: dev.clone(),
            });
        }
    }
    if let Some((gw, dev)) = &new.default {
        if !holds(gw, dev) {
            ops.push(Net6Op::DefaultReplace {
                gateway: *gw,
                device: dev.clone(),
            });
        }
    }
    ops
}

/// Reads the global IPv6 addresses and the static IPv6 default routes of the main table.
pub async fn snapshot6(h: &Handle) -> Result<Snapshot6, NetError> {
    let dump = |what| move |source| NetError::Dump { what, source };
    let mut s = Snapshot6::default();
    let mut addrs = h.address().get().execute();
    while let Some(m) = addrs.try_next().await.map_err(dump("IPv6 addresses"))? {
        if m.header.family != AddressFamily::Inet6 || m.header.scope != AddressScope::Universe {
            continue;
        }
        let addr = m.attributes.iter().find_map(|a| match a {
            AddressAttribute::Address(IpAddr::V6(v)) => Some(*v),
            _ => None,
        });
        if let Some(net) = addr.and_then(|a| Ipv6Net::new(a, m.header.prefix_len).ok()) {
            s.addresses.insert((m.header.index, net));
        }
    }
    let query = RouteMessageBuilder::<Ipv6Addr>::new().build();
    let mut routes = h.route().get(query).execute();
    while let Some(m) = routes.try_next().await.map_err(dump("IPv6 routes"))? {
        if m.header.address_family != AddressFamily::Inet6
            || m.header.kind != RouteType::Unicast
            || m.header.destination_prefix_length != 0
            || m.header.protocol != RouteProtocol::Static
        {
            continue;
        }
        let mut table = u32::from(m.header.table);
        let mut d = SysDefault6 {
            gateway: None,
            oif: None,
        };
        for a in &m.attributes {
            match a {
                RouteAttribute::Gateway(RouteAddress::Inet6(v)) => d.gateway = Some(*v),
                RouteAttribute::Oif(i) => d.oif = Some(*i),
                RouteAttribute::Table(t) => table = *t,
                _ => {}
            }
        }
        if table == MAIN_TABLE {
            s.defaults.push(d);
        }
    }
    s.defaults.sort();
    Ok(s)
}

/// Sends `ops` in order, one acknowledged request each; deleting what is gone succeeds.
pub async fn apply6(h: &Handle, sys: &Snapshot, ops: &[Net6Op]) -> Result<usize, NetError> {
    let mut sent = 0;
    for op in ops {
        let refused = |reason: String| NetError::Refused {
            op: op.to_string(),
            reason,
        };
        let index = |dev: &str| {
            sys.link(dev)
                .map(|l| l.index)
                .ok_or_else(|| refused(format!("no NIC named {dev}")))
        };
        let deleting = matches!(op, Net6Op::AddressDel { .. } | Net6Op::DefaultDel { .. });
        let result = match op {
            Net6Op::AddressAdd { device, address } => {
                let mut req = h
                    .address()
                    .add(
                        index(device)?,
                        IpAddr::V6(address.addr()),
                        address.prefix_len(),
                    )
                    .replace();
                req.message_mut()
                    .attributes
                    .push(AddressAttribute::Flags(AddressFlags::Nodad));
                req.execute().await
            }
            Net6Op::AddressDel { device, address } => {
                let m = AddressMessageBuilder::<Ipv6Addr>::new()
                    .index(index(device)?)
                    .address(address.addr(), address.prefix_len())
                    .build();
                h.address().del(m).execute().await
            }
            Net6Op::DefaultReplace { gateway, device } => {
                let m = RouteMessageBuilder::<Ipv6Addr>::new()
                    .gateway(*gateway)
                    .output_interface(index(device)?)
                    .table_id(MAIN_TABLE)
                    .scope(RouteScope::Universe)
                    .protocol(RouteProtocol::Static)
                    .build();
                h.route().add(m).replace().execute().await
            }
            Net6Op::DefaultDel { gateway, device } => {
                let mut b = RouteMessageBuilder::<Ipv6Addr>::new()
                    .gateway(*gateway)
                    .table_id(MAIN_TABLE)
                    .protocol(RouteProtocol::Static);
                if let Some(l) = sys.link(device) {
                    b = b.output_interface(l.index);
                }
                h.route().del(b.build()).execute().await
            }
        };
        match result {
            Ok(()) => sent += 1,
            Err(rtnetlink::Error::NetlinkError(e))
                if deleting
                    && [libc::ENOENT, libc::ESRCH, libc::EADDRNOTAVAIL]
                        .contains(&-e.raw_code()) => {}
            Err(e) => return Err(refused(e.to_string())),
        }
    }
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::SysLink;
    use crate::state::Interface;

    fn iface(dev: &str, role: InterfaceRole, a6: &str, gw6: Option<&str>) -> Interface {
        Interface {
            device: dev.into(),
            mac: None,
            role,
            addresses: Vec::new(),
            gateway: None,
            mtu: None,
            addresses6: vec![a6.parse().unwrap()],
            gateway6: gw6.map(|g| g.parse().unwrap()),
        }
    }

    #[test]
    fn addresses_and_default_route_planned_and_removed() {
        let sys = Snapshot {
            links: ["eth0", "eth2"]
                .iter()
                .enumerate()
                .map(|(i, n)| SysLink {
                    index: i as u32 + 2,
                    name: n.to_string(),
                    mac: None,
                    mtu: 1500,
                    up: true,
                })
                .collect(),
            ..Default::default()
        };
        let s = DesiredState {
            interfaces: vec![
                iface("eth0", InterfaceRole::Guest, "2001:db8:10::1/64", None),
                iface(
                    "eth2",
                    InterfaceRole::Public,
                    "2001:db8:ff::1/64",
                    Some("2001:db8:ff::2"),
                ),
            ],
            ..Default::default()
        };
        assert!(has_ipv6(&s));
        let w = wanted6(&s, &sys);
        let ops = plan6(&Wanted6::default(), &w, &sys, &Snapshot6::default());
        let text: Vec<String> = ops.iter().map(|o| o.to_string()).collect();
        assert_eq!(
            text,
            [
                "ip -6 addr replace 2001:db8:10::1/64 dev eth0 nodad",
                "ip -6 addr replace 2001:db8:ff::1/64 dev eth2 nodad",
                "ip -6 route replace default via 2001:db8:ff::2 dev eth2 proto static",
            ]
        );
        // Applied: nothing to do; removed: both off and the route gone.
        let sys6 = Snapshot6 {
            addresses: [
                (2, "2001:db8:10::1/64".parse().unwrap()),
                (3, "2001:db8:ff::1/64".parse().unwrap()),
            ]
            .into(),
            defaults: vec![SysDefault6 {
                gateway: Some("2001:db8:ff::2".parse().unwrap()),
                oif: Some(3),
            }],
        };
        assert!(plan6(&w, &w, &sys, &sys6).is_empty());
        let gone = plan6(&w, &Wanted6::default(), &sys, &sys6);
        assert_eq!(gone.len(), 3, "{gone:?}");
        assert!(matches!(gone[2], Net6Op::DefaultDel { .. }));
    }
}
