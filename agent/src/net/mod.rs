//! The router's addressing: links, addresses, routes and policy-routing rules.
//!
//! Sans-IO core: [`Snapshot`] is what the kernel holds (read by [`observe`]), [`Wanted`] is what
//! a [`DesiredState`] implies on that system, and [`plan`] is a pure diff of the two into
//! [`NetOp`]s, each printed as the `ip` command it mirrors. [`exec`] sends them over rtnetlink.
//!
//! Ownership: the agent deletes only objects the previously applied state implied (kept in
//! `state.json`) that the new one no longer does. An address or route added by hand is never
//! in an applied state, so no push and no replay touches it.

pub mod exec;
pub mod garp;
pub mod observe;
pub mod v6;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::state::{DesiredState, InterfaceRole, MacAddr};

/// The main routing table (`ip route` without `table`).
pub const MAIN_TABLE: u32 = 254;

/// One NIC as the kernel reports it (`ip -j link`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysLink {
    pub index: u32,
    pub name: String,
    pub mac: Option<MacAddr>,
    pub mtu: u32,
    pub up: bool,
}

/// A route as the kernel reports it (`ip -j route show table all`), IPv4 unicast only.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SysRoute {
    pub table: u32,
    pub destination: Ipv4Net,
    pub gateway: Option<Ipv4Addr>,
    pub oif: Option<u32>,
    /// `metric`; the agent's routes have 0, so a hand-made `metric 100` twin is never its.
    pub metric: u32,
}

/// A policy rule (`ip -j rule`): `priority P: from all fwmark M lookup T`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct RuleKey {
    pub priority: u32,
    pub fwmark: u32,
    pub table: u32,
}

/// What the kernel holds, IPv4 only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub links: Vec<SysLink>,
    /// (interface index, address with prefix).
    pub addresses: BTreeSet<(u32, Ipv4Net)>,
    pub routes: Vec<SysRoute>,
    pub rules: BTreeSet<RuleKey>,
}

impl Snapshot {
    pub fn link(&self, name: &str) -> Option<&SysLink> {
        self.links.iter().find(|l| l.name == name)
    }

    fn index(&self, name: &str) -> Option<u32> {
        self.link(name).map(|l| l.index)
    }

    fn has_address(&self, dev: &str, net: Ipv4Net) -> bool {
        self.index(dev)
            .is_some_and(|i| self.addresses.contains(&(i, net)))
    }

    /// The metric-0 route to `dst` in `table`: the one an agent route would be or replace.
    fn route(&self, table: u32, dst: Ipv4Net) -> Option<&SysRoute> {
        self.routes
            .iter()
            .find(|r| r.table == table && r.destination == dst && r.metric == 0)
    }

    /// The NIC a pushed interface means: the one with its MAC, else the one with its name.
    pub fn resolve(&self, device: &str, mac: Option<MacAddr>) -> Option<String> {
        mac.and_then(|m| self.links.iter().find(|l| l.mac == Some(m)))
            .or_else(|| self.link(device))
            .map(|l| l.name.clone())
    }
}

/// A route the agent wants: `ip route replace DST [via GW] dev DEV table T`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct WantRoute {
    pub gateway: Option<Ipv4Addr>,
    pub device: Option<String>,
}

/// Everything a desired state implies on one system.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Wanted {
    /// Device -> MTU to set (links are brought up either way).
    pub links: BTreeMap<String, Option<u32>>,
    /// (device, address) -> announce with gratuitous ARP when added (public addresses).
    pub addresses: BTreeMap<(String, Ipv4Net), bool>,
    pub routes: BTreeMap<(u32, Ipv4Net), WantRoute>,
    pub rules: BTreeSet<RuleKey>,
    /// Pushed interfaces with no such NIC on this system (yet).
    pub missing_nics: BTreeSet<String>,
    /// Devices of static routes with no such NIC on this system (yet).
    pub missing_route_devices: BTreeSet<String>,
    /// Links held administratively down: the public NICs of a redundant pair's backup (both
    /// routers share the public MAC and addresses; only the primary's are up).
    pub down: BTreeSet<String>,
}

/// What `s` implies on the system `sys` (devices resolved by MAC first, then by name).
pub fn wanted(s: &DesiredState, sys: &Snapshot) -> Wanted {
    let mut w = Wanted::default();
    let mut default_route: Option<(u32, Ipv4Addr, String)> = None;
    for i in &s.interfaces {
        let Some(dev) = sys.resolve(&i.device, i.mac) else {
            w.missing_nics.insert(i.device.clone());
            continue;
        };
        let public = i.role == InterfaceRole::Public;
        w.links.insert(dev.clone(), i.mtu);
        for a in &i.addresses {
            w.addresses.insert((dev.clone(), *a), public);
        }
        if public && !s.ha_active() {
            // No routes through a NIC that is down (the kernel refuses them); promotion brings
            // the NIC up and these routes with it.
            w.down.insert(dev.clone());
            continue;
        }
        let (Some(gw), true) = (i.gateway, public) else {
            continue;
        };
        let Some(mark) = s.policy_mark(&i.device) else {
            continue;
        };
        // The main table's default goes through the public NIC with the lowest index
        // (CloudStack: eth2, the source-NAT NIC).
        if default_route.as_ref().is_none_or(|(m, _, _)| mark < *m) {
            default_route = Some((mark, gw, dev.clone()));
        }
        // Replies of connections that came in on this NIC carry its mark (nftables
        // `pre_mark`), look up this table and leave through the same NIC.
        w.routes.insert(
            (mark, Ipv4Net::default()),
            WantRoute {
                gateway: Some(gw),
                device: Some(dev.clone()),
            },
        );
        for a in &i.addresses {
            w.routes.insert(
                (mark, a.trunc()),
                WantRoute {
                    gateway: None,
                    device: Some(dev.clone()),
                },
            );
        }
        w.rules.insert(RuleKey {
            priority: mark,
            fwmark: mark,
            table: mark,
        });
    }
    if let Some((_, gw, dev)) = default_route {
        w.routes.insert(
            (MAIN_TABLE, Ipv4Net::default()),
            WantRoute {
                gateway: Some(gw),
                device: Some(dev),
            },
        );
    }
    for r in &s.routes {
        let device = match &r.device {
            None => None,
            Some(d) => match sys.resolve(d, None) {
                Some(d) => Some(d),
                None => {
                    w.missing_route_devices.insert(d.clone());
                    continue;
                }
            },
        };
        w.routes.insert(
            (MAIN_TABLE, r.destination.trunc()),
            WantRoute {
                gateway: Some(r.gateway),
                device,
            },
        );
    }
    w
}

/// One change, printed as the `ip` command it mirrors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetOp {
    /// `ip link set dev DEV up`
    LinkUp { device: String },
    /// `ip link set dev DEV down` (a redundant pair's backup holds its public NICs down)
    LinkDown { device: String },
    /// `ip link set dev DEV mtu MTU`
    LinkMtu { device: String, mtu: u32 },
    /// `ip addr replace ADDR brd + dev DEV`
    AddressAdd { device: String, address: Ipv4Net },
    /// `ip addr del ADDR dev DEV`
    AddressDel { device: String, address: Ipv4Net },
    /// `arping -U -c 1 -I DEV IP` (tells upstream ARP caches where the address now lives)
    Announce { device: String, ip: Ipv4Addr },
    /// `ip route replace DST [via GW] [dev DEV] table T`
    RouteReplace {
        table: u32,
        destination: Ipv4Net,
        route: WantRoute,
    },
    /// `ip route del DST [via GW] [dev DEV] proto static table T`: only the agent's own
    /// route matches (same next hop, protocol static, metric 0).
    RouteDel {
        table: u32,
        destination: Ipv4Net,
        route: WantRoute,
    },
    /// `ip rule add priority P fwmark M lookup T`
    RuleAdd(RuleKey),
    /// `ip rule del priority P fwmark M lookup T`
    RuleDel(RuleKey),
}

impl fmt::Display for NetOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetOp::LinkUp { device } => write!(f, "ip link set dev {device} up"),
            NetOp::LinkDown { device } => write!(f, "ip link set dev {device} down"),
            NetOp::LinkMtu { device, mtu } => write!(f, "ip link set dev {device} mtu {mtu}"),
            NetOp::AddressAdd { device, address } => {
                write!(f, "ip addr replace {address} brd + dev {device}")
            }
            NetOp::AddressDel { device, address } => {
                write!(f, "ip addr del {address} dev {device}")
            }
            NetOp::Announce { device, ip } => write!(f, "arping -U -c 1 -I {device} {ip}"),
            NetOp::RouteReplace {
                table,
                destination,
                route,
            } => {
                write!(f, "ip route replace {}", dst_text(*destination))?;
                if let Some(gw) = route.gateway {
                    write!(f, " via {gw}")?;
                }
                if let Some(d) = &route.device {
                    write!(f, " dev {d}")?;
                }
                write!(f, "{}", table_text(*table))
            }
            NetOp::RouteDel {
                table,
                destination,
                route,
            } => {
                write!(f, "ip route del {}", dst_text(*destination))?;
                if let Some(gw) = route.gateway {
                    write!(f, " via {gw}")?;
                }
                if let Some(d) = &route.device {
                    write!(f, " dev {d}")?;
                }
                write!(f, " proto static{}", table_text(*table))
            }
            NetOp::RuleAdd(r) => write!(
                f,
                "ip rule add priority {} fwmark {:#x} lookup {}",
                r.priority, r.fwmark, r.table
            ),
            NetOp::RuleDel(r) => write!(
                f,
                "ip rule del priority {} fwmark {:#x} lookup {}",
                r.priority, r.fwmark, r.table
            ),
        }
    }
}

fn dst_text(d: Ipv4Net) -> String {
    if d.prefix_len() == 0 {
        "default".into()
    } else {
        d.to_string()
    }
}

fn table_text(t: u32) -> String {
    if t == MAIN_TABLE {
        String::new()
    } else {
        format!(" table {t}")
    }
}

/// Link and address changes (concern `links`), in the order they must run: links up, new
/// addresses on, old ones off (a renumbered NIC is never without an address, which would
/// make the kernel flush its routes), then the announcements.
pub fn plan_links(old: &Wanted, new: &Wanted, sys: &Snapshot) -> Vec<NetOp> {
    let mut ops = Vec::new();
    let mut up_announce = Vec::new();
    for (dev, mtu) in &new.links {
        let Some(l) = sys.link(dev) else { continue };
        if let Some(m) = mtu.filter(|m| *m != l.mtu) {
            ops.push(NetOp::LinkMtu {
                device: dev.clone(),
                mtu: m,
            });
        }
        if new.down.contains(dev) {
            if l.up {
                ops.push(NetOp::LinkDown {
                    device: dev.clone(),
                });
            }
        } else if !l.up {
            ops.push(NetOp::LinkUp {
                device: dev.clone(),
            });
            // A NIC coming up with public addresses it already holds (a backup promoted):
            // upstream must learn at once that they live behind this router now.
            for ((d, address), public) in &new.addresses {
                if d == dev && *public && sys.has_address(dev, *address) {
                    up_announce.push(NetOp::Announce {
                        device: dev.clone(),
                        ip: address.addr(),
                    });
                }
            }
        }
    }
    let mut announce = up_announce;
    for ((dev, address), public) in &new.addresses {
        if !sys.has_address(dev, *address) {
            ops.push(NetOp::AddressAdd {
                device: dev.clone(),
                address: *address,
            });
            if *public && !new.down.contains(dev) {
                announce.push(NetOp::Announce {
                    device: dev.clone(),
                    ip: address.addr(),
                });
            }
        }
    }
    for (dev, address) in old.addresses.keys() {
        if !new.addresses.contains_key(&(dev.clone(), *address)) && sys.has_address(dev, *address) {
            ops.push(NetOp::AddressDel {
                device: dev.clone(),
                address: *address,
            });
        }
    }
    ops.extend(announce);
    ops
}

/// Route and rule changes (concern `routes`): stale ones removed first, so a replaced default
/// never coexists with the old one in another table.
pub fn plan_routes(old: &Wanted, new: &Wanted, sys: &Snapshot) -> Vec<NetOp> {
    let mut ops = Vec::new();
    for r in old.rules.difference(&new.rules) {
        if sys.rules.contains(r) {
            ops.push(NetOp::RuleDel(*r));
        }
    }
    for ((table, dst), was) in &old.routes {
        let ours = sys
            .route(*table, *dst)
            .is_some_and(|r| r.gateway == was.gateway);
        if !new.routes.contains_key(&(*table, *dst)) && ours {
            ops.push(NetOp::RouteDel {
                table: *table,
                destination: *dst,
                route: was.clone(),
            });
        }
    }
    for ((table, dst), want) in &new.routes {
        let holds = sys.route(*table, *dst).is_some_and(|r| {
            r.gateway == want.gateway
                && want
                    .device
                    .as_deref()
                    .is_none_or(|d| sys.index(d).is_some() && r.oif == sys.index(d))
        });
        if !holds {
            ops.push(NetOp::RouteReplace {
                table: *table,
                destination: *dst,
                route: want.clone(),
            });
        }
    }
    for r in new.rules.difference(&sys.rules) {
        ops.push(NetOp::RuleAdd(*r));
    }
    ops
}

/// A plan printed one `ip` command per line.
pub fn render(ops: &[NetOp]) -> String {
    ops.iter().map(|o| format!("{o}\n")).collect()
}

#[cfg(test)]
mod tests;
