//! Reads the kernel's links, IPv4 addresses, routes (every table) and rules into a
//! [`Snapshot`]: `ip -j link`, `ip -j -4 addr`, `ip -j -4 route show table all`, `ip -j -4 rule`.

use std::net::IpAddr;

use futures::TryStreamExt;
use ipnet::Ipv4Net;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteType};
use rtnetlink::packet_route::rule::{RuleAction, RuleAttribute, RuleFlags};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::{Handle, IpVersion, RouteMessageBuilder};

use super::{RuleKey, Snapshot, SysLink, SysRoute};
use crate::state::MacAddr;

/// Why the kernel's state could not be read or changed.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The rtnetlink socket could not be opened.
    #[error("rtnetlink socket: {0}")]
    Socket(std::io::Error),
    /// A dump request failed.
    #[error("rtnetlink dump of {what}: {source}")]
    Dump {
        what: &'static str,
        source: rtnetlink::Error,
    },
    /// The kernel refused one change; the message names it as an `ip` command.
    #[error("{op}: {reason}")]
    Refused { op: String, reason: String },
}

/// Opens an rtnetlink connection in the calling thread's network namespace; its I/O task runs
/// on the current tokio runtime until the handle is dropped.
pub fn connect() -> Result<Handle, NetError> {
    let (conn, handle, _) = rtnetlink::new_connection().map_err(NetError::Socket)?;
    tokio::spawn(conn);
    Ok(handle)
}

/// One full read of what the agent may own.
pub async fn snapshot(h: &Handle) -> Result<Snapshot, NetError> {
    let dump = |what| move |source| NetError::Dump { what, source };
    let mut s = Snapshot::default();
    let mut links = h.link().get().execute();
    while let Some(m) = links.try_next().await.map_err(dump("links"))? {
        let mut l = SysLink {
            index: m.header.index,
            name: String::new(),
            mac: None,
            mtu: 0,
            up: m.header.flags.contains(LinkFlags::Up),
        };
        for a in &m.attributes {
            match a {
                LinkAttribute::IfName(n) => l.name = n.clone(),
                LinkAttribute::Mtu(v) => l.mtu = *v,
                LinkAttribute::Address(b) if b.len() == 6 => {
                    let mut mac = [0u8; 6];
                    mac.copy_from_slice(b);
                    l.mac = Some(MacAddr(mac));
                }
                _ => {}
            }
        }
        s.links.push(l);
    }
    let mut addrs = h.address().get().execute();
    while let Some(m) = addrs.try_next().await.map_err(dump("addresses"))? {
        if m.header.family != AddressFamily::Inet {
            continue;
        }
        // IFA_LOCAL is the interface's own address (IFA_ADDRESS is the peer's on
        // point-to-point links).
        let local = m.attributes.iter().find_map(|a| match a {
            AddressAttribute::Local(IpAddr::V4(v)) => Some(*v),
            _ => None,
        });
        let addr = local.or_else(|| {
            m.attributes.iter().find_map(|a| match a {
                AddressAttribute::Address(IpAddr::V4(v)) => Some(*v),
                _ => None,
            })
        });
        if let Some(net) = addr.and_then(|a| Ipv4Net::new(a, m.header.prefix_len).ok()) {
            s.addresses.insert((m.header.index, net));
        }
    }
    // A dump with table 0 (RT_TABLE_UNSPEC) lists every table.
    let mut query = RouteMessageBuilder::<std::net::Ipv4Addr>::new().build();
    query.header.table = 0;
    let mut routes = h.route().get(query).execute();
    while let Some(m) = routes.try_next().await.map_err(dump("routes"))? {
        if let Some(r) = route(&m) {
            s.routes.push(r);
        }
    }
    let mut rules = h.rule().get(IpVersion::V4).execute();
    while let Some(m) = rules.try_next().await.map_err(dump("rules"))? {
        if m.header.action != RuleAction::ToTable {
            continue;
        }
        let mut k = RuleKey {
            priority: 0,
            fwmark: 0,
            table: u32::from(m.header.table),
        };
        // Only a rule that is exactly `priority P fwmark M lookup T` can be the agent's.
        let mut plain = m.header.src_len == 0
            && m.header.dst_len == 0
            && m.header.tos == 0
            && !m.header.flags.contains(RuleFlags::Invert);
        for a in &m.attributes {
            match a {
                RuleAttribute::Priority(p) => k.priority = *p,
                RuleAttribute::FwMark(v) => k.fwmark = *v,
                RuleAttribute::Table(t) => k.table = *t,
                RuleAttribute::FwMask(mask) if *mask != u32::MAX => plain = false,
                // Suppressors at -1 ("not set") are what the kernel reports for every rule.
                RuleAttribute::SuppressPrefixLen(u32::MAX)
                | RuleAttribute::SuppressIfGroup(u32::MAX)
                | RuleAttribute::FwMask(_)
                | RuleAttribute::Protocol(_) => {}
                _ => plain = false,
            }
        }
        // Only `fwmark M lookup T` rules can be the agent's; others are never compared.
        if plain && k.fwmark != 0 {
            s.rules.insert(k);
        }
    }
    s.links.sort_by_key(|l| l.index);
    s.routes.sort();
    Ok(s)
}

/// An IPv4 unicast route, or `None` for local, broadcast and multicast entries.
fn route(m: &RouteMessage) -> Option<SysRoute> {
    if m.header.address_family != AddressFamily::Inet || m.header.kind != RouteType::Unicast {
        return None;
    }
    let mut dst = std::net::Ipv4Addr::UNSPECIFIED;
    let mut r = SysRoute {
        table: u32::from(m.header.table),
        destination: Ipv4Net::default(),
        gateway: None,
        oif: None,
        metric: 0,
    };
    for a in &m.attributes {
        match a {
            RouteAttribute::Destination(RouteAddress::Inet(v)) => dst = *v,
            RouteAttribute::Gateway(RouteAddress::Inet(v)) => r.gateway = Some(*v),
            RouteAttribute::Oif(i) => r.oif = Some(*i),
            RouteAttribute::Table(t) => r.table = *t,
            RouteAttribute::Priority(p) => r.metric = *p,
            _ => {}
        }
    }
    r.destination = Ipv4Net::new(dst, m.header.destination_prefix_length).ok()?;
    Some(r)
}
