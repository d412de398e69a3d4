//! CloudStack's per-type merge semantics on top of the native state (see `cloudstack-format.md`).
//!
//! Every payload is a keyed upsert: entries not mentioned are kept, removal flags
//! (`revoke`, `revoked`, `add: false`, `create: false`) delete by identity, and a changed entry
//! with the same identity replaces the old one in place (list order is kept stable so plans
//! stay small). `networkacl` is the exception: it replaces the tier's ACL whole.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use vr_nat::SourceNat;

use super::convert::{self, FwRule, RouterType};
use super::later;
use super::types::*;
use super::Payload;
use crate::error::{FieldError, Invalid};
use crate::state::{DesiredState, Interface, InterfaceRole, MacAddr};
use vr_model::LocalNics;

/// The NIC of a payload entry: the local NIC with that MAC first, else the fallback name
/// (`eth<nic_dev_id>` or the payload's `device`).
pub fn resolve_nic(
    nics: &LocalNics,
    mac: Option<MacAddr>,
    fallback: Option<String>,
) -> Option<String> {
    mac.and_then(|m| nics.get(&m).cloned()).or(fallback)
}

/// The device currently holding `ip`.
fn device_of(s: &DesiredState, ip: Ipv4Addr) -> Option<String> {
    s.interfaces
        .iter()
        .find(|i| i.addresses.iter().any(|a| a.addr() == ip))
        .map(|i| i.device.clone())
}

fn router_type(s: &DesiredState) -> Option<RouterType> {
    s.cloudstack
        .cmdline
        .get("type")
        .and_then(|t| RouterType::parse(t))
}

fn upsert_iface<'a>(s: &'a mut DesiredState, dev: &str, role: InterfaceRole) -> &'a mut Interface {
    let pos = match s.interfaces.iter().position(|i| i.device == dev) {
        Some(p) => p,
        None => {
            s.interfaces.push(Interface {
                device: dev.to_string(),
                mac: None,
                role,
                addresses: Vec::new(),
                gateway: None,
                mtu: None,
                addresses6: Vec::new(),
                gateway6: None,
            });
            s.interfaces.len() - 1
        }
    };
    let iface = &mut s.interfaces[pos];
    iface.role = role;
    iface
}

/// Adds `addr` (replacing the same IP with another prefix).
fn put_address(iface: &mut Interface, addr: Ipv4Net) {
    match iface.addresses.iter().position(|a| a.addr() == addr.addr()) {
        Some(p) => iface.addresses[p] = addr,
        None => iface.addresses.push(addr),
    }
}

fn guest_networks(s: &DesiredState) -> Vec<Ipv4Net> {
    s.interfaces
        .iter()
        .filter(|i| i.role == InterfaceRole::Guest)
        .flat_map(|i| i.addresses.iter().map(|a| a.trunc()))
        .collect()
}

fn upsert_by<T>(list: &mut Vec<T>, item: T, same: impl Fn(&T) -> bool) {
    match list.iter().position(same) {
        Some(p) => list[p] = item,
        None => list.push(item),
    }
}

/// Merges one payload into `next`, recording concerns stored but not applied.
pub fn merge_into(
    next: &mut DesiredState,
    payload: &Payload,
    nics: &LocalNics,
    nya: &mut Vec<&'static str>,
) -> Result<(), Invalid> {
    match payload {
        Payload::Ips(p) => ips(next, p, nics),
        Payload::Cmdline(p) => cmdline(next, p),
        Payload::GuestNetwork(p) => guest(next, p, nics),
        Payload::ForwardRules(p) => {
            let mut entries = convert::forwards(p)?;
            for (revoke, pf) in &mut entries {
                if !*revoke {
                    pf.device = device_of(next, pf.public_ip);
                }
            }
            crate::forward_index::upsert_all(&mut next.nat.port_forwards, entries);
            Ok(())
        }
        Payload::StaticNatRules(p) => {
            let mut entries = convert::static_nats(p)?;
            for (revoke, sn) in &mut entries {
                if !*revoke {
                    sn.device = device_of(next, sn.public_ip);
                }
            }
            // By public IP through a hash index: the whole list is re-sent with every change.
            crate::forward_index::upsert_keyed(&mut next.nat.static_nat, entries, |s| s.public_ip);
            Ok(())
        }
        Payload::FirewallRules(p) => firewall(next, p),
        Payload::Ipv6FirewallRules(p) => {
            let checked = convert::firewall6(p)?;
            let prefixes: Vec<ipnet::Ipv6Net> = next
                .interfaces
                .iter()
                .filter(|i| i.role == InterfaceRole::Guest)
                .flat_map(|i| i.addresses6.iter().map(|a| a.trunc()))
                .collect();
            // Rules stored by an agent that did not apply them yet are superseded.
            next.cloudstack.pending.remove("ipv6firewallrules");
            crate::ipv6::merge_firewall6(&mut next.firewall6, checked, &prefixes)
        }
        Payload::NetworkAcl(p) => {
            let (mac, mut acl) = convert::acl(p)?;
            acl.device = resolve_nic(nics, mac, Some(acl.device.clone())).unwrap_or(acl.device);
            let dev = acl.device.clone();
            upsert_by(&mut next.acls, acl, |a| a.device == dev);
            Ok(())
        }
        Payload::Site2SiteVpn(p) => {
            let (create, conn, peer) = convert::site2site(p)?;
            let list = &mut next.vpn.site_to_site;
            match conn {
                Some(c) if create => upsert_by(list, c, |o| o.peer_gateway == peer),
                _ => list.retain(|o| o.peer_gateway != peer),
            }
            Ok(())
        }
        Payload::StaticRoutes(p) => {
            for (revoke, net, gateway, ip) in convert::static_routes(p)? {
                if revoke {
                    next.routes.retain(|r| r.destination != net);
                } else {
                    let device = ip.and_then(|ip| device_of(next, ip));
                    let r = crate::state::Route {
                        destination: net,
                        gateway,
                        device,
                    };
                    upsert_by(&mut next.routes, r, |o| o.destination == net);
                }
            }
            Ok(())
        }
        Payload::Ospf(raw) => {
            // CloudStack's OSPF push carries the router's whole OSPF configuration.
            next.ospf = super::ospf_section(raw, next)?;
            Ok(())
        }
        // DHCP entries have their native section: served, not pending.
        Payload::Later(later::LaterPayload {
            typed: later::Later::DhcpEntry(d),
            ..
        }) => {
            super::dhcp::entry(next, d);
            Ok(())
        }
        // Extra subnets of a shared network: served (see `guest_ranges`), not pending.
        Payload::Later(later::LaterPayload {
            typed: later::Later::IpAliases(a),
            ..
        }) => super::guest_ranges::aliases(next, a),
        Payload::Later(later::LaterPayload {
            typed: later::Later::DhcpConfig(c),
            ..
        }) => super::guest_ranges::config(next, c),
        // User data, metadata and passwords are served by the metadata concern.
        Payload::Later(later::LaterPayload {
            typed: later::Later::VmData(d),
            ..
        }) => super::vmdata::vm_data(next, d),
        Payload::Later(later::LaterPayload {
            typed: later::Later::VmPassword(p),
            ..
        }) => {
            super::vmdata::vm_password(next, p);
            Ok(())
        }
        // Remote-access VPN: the native `vpn` section's remote-access part.
        Payload::Later(later::LaterPayload {
            typed: later::Later::RemoteAccessVpn(v),
            ..
        }) => super::ravpn::server(next, v),
        Payload::Later(later::LaterPayload {
            typed: later::Later::VpnUserList(l),
            ..
        }) => {
            super::ravpn::users(next, l);
            Ok(())
        }
        // Load balancing: CloudStack's haproxy lines become the native `lb` section.
        Payload::Later(later::LaterPayload {
            typed: later::Later::LoadBalancer(lb),
            ..
        }) => super::lb::merge(next, lb),
        // BGP peers become the native `bgp` section (see `bgp`).
        Payload::Later(later::LaterPayload {
            typed: later::Later::BgpPeers(b),
            ..
        }) => super::bgp::peers(next, b),
        // Supervision and health checks: the native `monitor` section.
        Payload::Later(later::LaterPayload {
            typed: later::Later::MonitorService(m),
            ..
        }) => {
            super::monitor::merge(next, m);
            // Every later-wave type is applied now; `nya` stays for types still to come.
            let _ = nya;
            Ok(())
        }
    }
}

fn ips(next: &mut DesiredState, p: &IpAssociation, nics: &LocalNics) -> Result<(), Invalid> {
    let entries = convert::ips(p)?;
    let mut errs = Vec::new();
    for (i, ent) in entries.iter().enumerate() {
        let ip = ent.address.addr();
        let found = resolve_nic(nics, ent.mac, ent.nic_dev_id.map(|n| format!("eth{n}")));
        // A removal needs no NIC: the address is wherever it is now (or already gone).
        let found = found.or_else(|| (!ent.add).then(|| device_of(next, ip)).flatten());
        if found.is_none() && !ent.add {
            next.nat.source_nat.retain(|s| s.public_ip != ip);
            continue;
        }
        let Some(dev) = found else {
            let mac = ent.mac.map_or("null".to_string(), |m| format!("\"{m}\""));
            errs.push(FieldError::new(
                format!("ip_address[{i}].vif_mac_address"),
                mac,
                "no local NIC has this MAC and nic_dev_id is absent",
            ));
            continue;
        };
        if ent.add {
            // An address lives on one NIC: a re-association moves it.
            for iface in next.interfaces.iter_mut().filter(|f| f.device != dev) {
                iface.addresses.retain(|a| a.addr() != ip);
            }
            let iface = upsert_iface(next, &dev, ent.role);
            put_address(iface, ent.address);
            if ent.mac.is_some() {
                iface.mac = ent.mac;
            }
            if matches!(
                ent.role,
                InterfaceRole::Public | InterfaceRole::PrivateGateway
            ) && ent.gateway.is_some()
            {
                iface.gateway = ent.gateway;
            }
            if ent.mtu.is_some() {
                iface.mtu = ent.mtu;
            }
            if ent.source_nat {
                let cidrs = if router_type(next) == Some(RouterType::Router) {
                    guest_networks(next)
                } else {
                    Vec::new()
                };
                match next.nat.source_nat.iter_mut().find(|s| s.device == dev) {
                    Some(s) => s.public_ip = ip,
                    None => next.nat.source_nat.push(SourceNat {
                        device: dev.clone(),
                        public_ip: ip,
                        source_cidrs: cidrs,
                    }),
                }
            } else {
                next.nat.source_nat.retain(|s| s.public_ip != ip);
            }
        } else {
            if let Some(iface) = next.interfaces.iter_mut().find(|f| f.device == dev) {
                iface.addresses.retain(|a| a.addr() != ip);
            }
            next.nat.source_nat.retain(|s| s.public_ip != ip);
        }
    }
    // A public NIC whose last address went away is released (CloudStack downs it).
    next.interfaces.retain(|f| {
        !(f.addresses.is_empty()
            && matches!(
                f.role,
                InterfaceRole::Public | InterfaceRole::PrivateGateway
            ))
    });
    if errs.is_empty() {
        Ok(())
    } else {
        Err(Invalid(errs))
    }
}

fn cmdline(next: &mut DesiredState, p: &CmdLine) -> Result<(), Invalid> {
    let new = convert::cmdline(p)?;
    // Addresses the previous cmdline defined and this one does not are withdrawn.
    if let Ok(prev) = convert::cmdline_map(&next.cloudstack.cmdline, "cmd_line") {
        for (n, addr, _) in prev.nics {
            if !new.nics.iter().any(|(m, a, _)| *m == n && *a == addr) {
                if let Some(f) = next
                    .interfaces
                    .iter_mut()
                    .find(|f| f.device == format!("eth{n}"))
                {
                    f.addresses.retain(|a| *a != addr);
                }
            }
        }
    }
    next.cloudstack.cmdline = p.cmd_line.clone();
    // A VPC router counts usage by the VPC's CIDR (upstream's `NETWORK_STATS_<dev>` rules);
    // validated by `convert::cmdline` above.
    next.usage.guest_cidr = match (p.cmd_line.get("type"), p.cmd_line.get("vpccidr")) {
        (Some(t), Some(c)) if t == "vpcrouter" => c.parse().ok(),
        _ => None,
    };
    super::dhcp::upstream(next);
    super::ha::from_cmdline(next, &p.cmd_line, &new)?;
    for (n, addr, role) in &new.nics {
        let iface = upsert_iface(next, &format!("eth{n}"), *role);
        put_address(iface, *addr);
        match role {
            InterfaceRole::Public => {
                if new.gateway.is_some() {
                    iface.gateway = new.gateway;
                }
                iface.mtu = new.public_mtu.or(iface.mtu);
            }
            InterfaceRole::Guest => {
                // A basic-zone DHCP server routes through the guest network's gateway.
                if new.router_type == RouterType::DhcpSrvr && new.gateway.is_some() {
                    iface.gateway = new.gateway;
                }
                iface.mtu = new.private_mtu.or(iface.mtu);
            }
            _ => {}
        }
    }
    crate::ipv6::cmdline6(next, &p.cmd_line)
}

fn guest(next: &mut DesiredState, p: &GuestNetwork, nics: &LocalNics) -> Result<(), Invalid> {
    let g = convert::guest(p)?;
    let dev = resolve_nic(nics, g.mac, Some(g.device.clone())).unwrap_or(g.device.clone());
    let isolated = router_type(next) == Some(RouterType::Router);
    if g.add {
        // The router's IP-alias addresses on this NIC stay (`ipaliases`).
        let aliases: Vec<Ipv4Net> = next
            .dhcp
            .networks
            .iter()
            .filter(|n| n.device == dev)
            .flat_map(|n| n.extra_ranges.iter().filter(|r| r.router().is_some()))
            .map(|r| r.address)
            .collect();
        let iface = upsert_iface(next, &dev, InterfaceRole::Guest);
        iface.addresses = vec![g.address];
        iface.addresses.extend(aliases);
        iface.gateway = None;
        iface.mac = g.mac.or(iface.mac);
        iface.mtu = g.mtu.or(iface.mtu);
        let mtu = iface.mtu;
        super::dhcp::network(next, &dev, g.address, p.domain_name.as_deref(), mtu);
        if isolated {
            let net = g.address.trunc();
            if let Some(sn) = next.nat.source_nat.first_mut() {
                if !sn.source_cidrs.contains(&net) {
                    sn.source_cidrs.push(net);
                }
            }
        }
        if g.has_ipv6 {
            guest_ipv6(next, &dev, p)?;
        }
    } else {
        let nets: Vec<Ipv4Net> = match next.interfaces.iter().find(|f| f.device == dev) {
            Some(f) => f.addresses.iter().map(|a| a.trunc()).collect(),
            None => vec![g.address.trunc()],
        };
        next.interfaces.retain(|f| f.device != dev);
        next.acls.retain(|a| a.device != dev);
        super::dhcp::remove_network(next, &dev);
        for sn in &mut next.nat.source_nat {
            sn.source_cidrs.retain(|c| !nets.contains(c));
        }
        if let Some(slot) = next.cloudstack.pending.get_mut("guestnetwork") {
            slot.remove(&dev);
            if slot.is_empty() {
                next.cloudstack.pending.remove("guestnetwork");
            }
        }
    }
    Ok(())
}

/// The IPv6 fields of a `guestnetwork`: the guest prefix's gateway address on the guest NIC,
/// the router's public IPv6 address and default-route gateway on the first public NIC.
fn guest_ipv6(next: &mut DesiredState, dev: &str, p: &GuestNetwork) -> Result<(), Invalid> {
    let g6 = convert::guest6(p)?;
    if let Some(iface) = next.interfaces.iter_mut().find(|i| i.device == dev) {
        iface.addresses6 = g6.guest_address.into_iter().collect();
    }
    // DHCPv6 for the dual-stack hosts of this network (`dhcpentry` `ipv6_address`).
    if let Some(n) = next.dhcp.networks.iter_mut().find(|n| n.device == dev) {
        n.address6 = g6.guest_address;
    }
    if g6.public_address.is_some() || g6.public_gateway.is_some() {
        let public = next
            .interfaces
            .iter_mut()
            .find(|i| i.role == InterfaceRole::Public);
        match public {
            Some(iface) => {
                iface.addresses6 = g6.public_address.into_iter().collect();
                iface.gateway6 = g6.public_gateway;
            }
            None => {
                let mut e = crate::check::Errors::default();
                e.push(
                    "router_ip6",
                    crate::check::q(p.router_ip6.as_deref().unwrap_or("")),
                    "the router has no public NIC to hold it (push ips first)",
                );
                return e.finish();
            }
        }
    }
    // Left pending by an agent that did not apply IPv6 yet.
    if let Some(slot) = next.cloudstack.pending.get_mut("guestnetwork") {
        slot.remove(dev);
        if slot.is_empty() {
            next.cloudstack.pending.remove("guestnetwork");
        }
    }
    Ok(())
}

fn firewall(next: &mut DesiredState, p: &FirewallRules) -> Result<(), Invalid> {
    let fw = &mut next.firewall;
    for (revoked, rule) in convert::firewall(p)? {
        match rule {
            FwRule::Revoked { id } => {
                fw.ingress.retain(|x| x.id != id);
                for pol in &mut fw.egress {
                    pol.rules.retain(|x| x.id != id);
                }
            }
            FwRule::Ingress(r) => {
                let id = r.id;
                for pol in &mut fw.egress {
                    pol.rules.retain(|x| x.id != id);
                }
                if revoked {
                    fw.ingress.retain(|x| x.id != id);
                } else {
                    // CloudStack ignores a changed rule that keeps its id; it is updated here.
                    upsert_by(&mut fw.ingress, r, |x| x.id == id);
                }
            }
            FwRule::EgressDefault {
                guest_cidr,
                default_allow,
                id,
            } => {
                fw.ingress.retain(|x| x.id != id);
                for pol in fw.egress.iter_mut() {
                    pol.rules.retain(|x| x.id != id);
                }
                match fw.egress.iter_mut().find(|p| p.guest_cidr == guest_cidr) {
                    Some(pol) => pol.default_allow = default_allow,
                    None => fw.egress.push(vr_nat::EgressPolicy {
                        guest_cidr,
                        default_allow,
                        rules: Vec::new(),
                    }),
                }
            }
            FwRule::Egress {
                guest_cidr,
                default_allow,
                rule,
            } => {
                let id = rule.id;
                fw.ingress.retain(|x| x.id != id);
                for pol in fw.egress.iter_mut().filter(|p| p.guest_cidr != guest_cidr) {
                    pol.rules.retain(|x| x.id != id);
                }
                let pos = match fw.egress.iter().position(|p| p.guest_cidr == guest_cidr) {
                    Some(p) => p,
                    None if revoked => continue,
                    None => {
                        fw.egress.push(vr_nat::EgressPolicy {
                            guest_cidr,
                            default_allow,
                            rules: Vec::new(),
                        });
                        fw.egress.len() - 1
                    }
                };
                let pol = &mut fw.egress[pos];
                pol.default_allow = default_allow;
                if revoked {
                    pol.rules.retain(|x| x.id != id);
                } else {
                    upsert_by(&mut pol.rules, rule, |x| x.id == id);
                }
            }
        }
    }
    Ok(())
}
