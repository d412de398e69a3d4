//! CloudStack DHCP payloads into the native `dhcp` section: `dhcpentry` (a static host, by
//! MAC; `remove: true` drops it and its lease), `guestnetwork` (the network served on that
//! NIC: router address, domain, MTU) and `cmdline` (`dns1`/`dns2`: the zone's resolvers the
//! router forwards to). The router serves DNS itself (option 6 is its guest address), as a
//! CloudStack VR with the DNS service does.

use std::net::Ipv4Addr;

use vr_guest::{DhcpHost, DhcpNetwork};

use super::later::DhcpEntry;
use crate::state::DesiredState;

/// A validated `dhcpentry` (the adapter's `later` checks ran): upserts or removes the host.
/// An entry without an IPv4 address (IPv6 only) has nothing to serve yet.
pub fn entry(next: &mut DesiredState, d: &DhcpEntry) {
    let mac = d.mac_address.trim().to_ascii_lowercase();
    let dhcp = &mut next.dhcp;
    if d.remove {
        dhcp.hosts.retain(|h| h.mac != mac);
        return;
    }
    let Some(ipv4) = d
        .ipv4_address
        .as_deref()
        .and_then(|a| a.trim().parse::<Ipv4Addr>().ok())
    else {
        return;
    };
    let hostname = d
        .host_name
        .as_deref()
        .map(str::trim)
        .filter(|h| !h.is_empty())
        // The VM's short name: CloudStack may send it qualified.
        .map(|h| h.split('.').next().unwrap_or(h).to_string());
    dhcp.upsert_host(DhcpHost {
        mac,
        ipv4,
        hostname,
        default_nic: d.default_entry,
    });
}

/// A guest network added on `device` (`address`: the router's, with the prefix).
pub fn network(
    next: &mut DesiredState,
    device: &str,
    address: ipnet::Ipv4Net,
    domain: Option<&str>,
    mtu: Option<u32>,
) {
    let domain = domain
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .or_else(|| next.cloudstack.cmdline.get("domain").map(|d| d.trim()))
        .filter(|d| !d.is_empty())
        .map(String::from);
    let old = next
        .dhcp
        .networks
        .iter()
        .find(|n| n.device == device)
        .cloned();
    next.dhcp.upsert_network(DhcpNetwork {
        device: device.to_string(),
        address,
        gateway: None,
        dns: Vec::new(),
        domain,
        mtu,
        extra_ranges: old.map(|o| o.extra_ranges).unwrap_or_default(),
    });
}

/// The guest network on `device` was removed.
pub fn remove_network(next: &mut DesiredState, device: &str) {
    next.dhcp.networks.retain(|n| n.device != device);
}

/// `dns1`/`dns2` of the boot cmdline.
pub fn upstream(next: &mut DesiredState) {
    let cmd = &next.cloudstack.cmdline;
    next.dhcp.upstream_dns = ["dns1", "dns2"]
        .iter()
        .filter_map(|k| cmd.get(*k))
        .filter_map(|v| v.trim().parse::<Ipv4Addr>().ok())
        .collect();
}
