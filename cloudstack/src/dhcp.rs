//! CloudStack DHCP payloads into the native `dhcp` section: `dhcpentry` (a static host, by
//! MAC, with its DHCPv6 address and DUID when the push carries them; `remove: true` drops it and its lease), `guestnetwork` (the network served on that
//! NIC: router address, domain, MTU) and `cmdline` (`dns1`/`dns2`: the zone's resolvers the
//! router forwards to). The router serves DNS itself (option 6 is its guest address), as a
//! CloudStack VR with the DNS service does.

use std::net::{Ipv4Addr, Ipv6Addr};

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
    let ipv6 = d
        .ipv6_address
        .as_deref()
        .and_then(|a| a.trim().parse::<Ipv6Addr>().ok());
    let duid = ipv6.and_then(|_| {
        d.ipv6_duid
            .as_deref()
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| !s.is_empty())
    });
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
        // Checked by the adapter: an address comes with its DUID.
        ipv6,
        duid,
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
        extra_ranges: old
            .as_ref()
            .map(|o| o.extra_ranges.clone())
            .unwrap_or_default(),
        // Set again by the push's IPv6 fields (`guest_ipv6`) when it has them.
        address6: None,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dhcpentry_carries_its_dhcpv6_address_and_duid() {
        let d: DhcpEntry = serde_json::from_str(
            r#"{"host_name":"dual.cs.internal","mac_address":"02:00:0A:01:00:0B",
                "ipv4_address":"10.1.0.11","ipv6_address":"2001:db8:10::11",
                "ipv6_duid":"00:03:00:01:02:00:0A:01:00:0B","default_entry":true}"#,
        )
        .unwrap();
        let mut next = DesiredState::default();
        entry(&mut next, &d);
        let h = &next.dhcp.hosts[0];
        assert_eq!(h.mac, "02:00:0a:01:00:0b");
        assert_eq!(h.ipv6, Some("2001:db8:10::11".parse().unwrap()));
        assert_eq!(h.duid.as_deref(), Some("00:03:00:01:02:00:0a:01:00:0b"));
        assert!(vr_guest::model::validate(&next.dhcp).is_empty());
        // IPv4 only: no DHCPv6 line, as before.
        let v4: DhcpEntry = serde_json::from_str(
            r#"{"mac_address":"02:00:0a:01:00:0c","ipv4_address":"10.1.0.12","ipv6_duid":"00:03:00:01:02:00:0a:01:00:0c"}"#,
        )
        .unwrap();
        entry(&mut next, &v4);
        assert_eq!(
            (next.dhcp.hosts[1].ipv6, next.dhcp.hosts[1].duid.as_deref()),
            (None, None)
        );
    }
}
