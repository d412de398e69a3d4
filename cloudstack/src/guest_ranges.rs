//! CloudStack's extra subnets of a shared guest network into the native `dhcp` section:
//! `ipaliases` (the router's address in each further subnet: added to the guest NIC, as
//! CloudStack's `merge.py` adds it to the `ips` data bag, and served as an extra DHCP range
//! with that address as the subnet's router and resolver) and `dhcpconfig` (each subnet's
//! gateway, CloudStack's `DhcpTO`: router address, gateway, netmask, first address; the whole
//! set in every push, so a subnet it no longer lists falls back to the router's own address).
//!
//! Both go to the guest NIC CloudStack picks: the first guest network the router serves.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use vr_guest::model::ExtraRange;

use super::later::{DhcpConfig, IpAliases};
use crate::error::{FieldError, Invalid};
use crate::state::DesiredState;

fn net(ip: Ipv4Addr, mask: &str) -> Option<Ipv4Net> {
    let m: Ipv4Addr = mask.trim().parse().ok()?;
    Ipv4Net::new(ip, u32::from(m).leading_ones() as u8).ok()
}

/// `ipaliases`: per alias, added (or with `revoke`, removed) on the first guest network.
pub fn aliases(next: &mut DesiredState, a: &IpAliases) -> Result<(), Invalid> {
    let mut errs = Vec::new();
    for (i, x) in a.aliases.iter().enumerate() {
        let path = format!("aliases[{i}].ip_address");
        let Some(addr) = x
            .ip_address
            .trim()
            .parse()
            .ok()
            .and_then(|ip| net(ip, &x.netmask))
        else {
            // The adapter's checks ran: unreachable for a validated payload.
            errs.push(FieldError::new(path, &x.ip_address, "not an IPv4 address"));
            continue;
        };
        let Some(dev) = next.dhcp.networks.first().map(|n| n.device.clone()) else {
            if !x.revoke {
                errs.push(FieldError::new(
                    path,
                    &x.ip_address,
                    "no guest network to add the alias to",
                ));
            }
            continue;
        };
        if let Some(iface) = next.interfaces.iter_mut().find(|f| f.device == dev) {
            iface.addresses.retain(|a| a.addr() != addr.addr());
            if !x.revoke {
                iface.addresses.push(addr);
            }
        }
        let n = next
            .dhcp
            .networks
            .iter_mut()
            .find(|n| n.device == dev)
            .expect("network found above");
        if x.revoke {
            n.extra_ranges.retain(|r| r.address.addr() != addr.addr());
            continue;
        }
        if n.address.trunc() == addr.trunc() {
            errs.push(FieldError::new(
                path,
                &x.ip_address,
                "in the guest network's own subnet: not an extra subnet",
            ));
            continue;
        }
        match n
            .extra_ranges
            .iter_mut()
            .find(|r| r.address.trunc() == addr.trunc())
        {
            Some(r) => r.address = addr,
            None => n.extra_ranges.push(ExtraRange {
                address: addr,
                gateway: None,
            }),
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(Invalid(errs))
    }
}

/// `dhcpconfig`: each listed subnet's gateway (the subnet is added to the first guest
/// network if no alias brought it yet); subnets it does not list lose their gateway.
pub fn config(next: &mut DesiredState, c: &DhcpConfig) -> Result<(), Invalid> {
    let mut errs = Vec::new();
    let mut listed = Vec::new();
    for (i, e) in c.entries.iter().enumerate() {
        let p = format!("entries[{i}]");
        let ip = |s: &Option<String>| s.as_deref().and_then(|s| s.trim().parse::<Ipv4Addr>().ok());
        let Some(mask) = e.netmask.as_deref().filter(|m| !m.trim().is_empty()) else {
            errs.push(FieldError::new(format!("{p}.netmask"), "null", "missing"));
            continue;
        };
        let Some(addr) = ip(&e.router_ip_address)
            .or(ip(&e.first_ip_of_subnet))
            .and_then(|a| net(a, mask))
        else {
            errs.push(FieldError::new(
                format!("{p}.router_ip_address"),
                e.router_ip_address.as_deref().unwrap_or("null"),
                "no router address or first address of the subnet",
            ));
            continue;
        };
        let gateway = ip(&e.gateway);
        if let Some(g) = gateway.filter(|g| !addr.trunc().contains(g)) {
            errs.push(FieldError::new(
                format!("{p}.gateway"),
                g,
                "gateway outside its subnet",
            ));
            continue;
        }
        let nets = &mut next.dhcp.networks;
        let Some(pos) = nets
            .iter()
            .position(|n| n.serves(addr.addr()))
            .or((!nets.is_empty()).then_some(0))
        else {
            errs.push(FieldError::new(
                format!("{p}.router_ip_address"),
                addr.addr(),
                "no guest network to serve this subnet on",
            ));
            continue;
        };
        let n = &mut nets[pos];
        listed.push(addr.trunc());
        if n.address.trunc() == addr.trunc() {
            n.gateway = gateway;
            continue;
        }
        // Keep the alias's own address (the router's) when the entry names none.
        let addr = match n
            .extra_ranges
            .iter()
            .find(|r| r.address.trunc() == addr.trunc())
        {
            Some(r) if e.router_ip_address.is_none() => r.address,
            _ => addr,
        };
        n.extra_ranges.retain(|r| r.address.trunc() != addr.trunc());
        n.extra_ranges.push(ExtraRange {
            address: addr,
            gateway,
        });
    }
    if !errs.is_empty() {
        return Err(Invalid(errs));
    }
    for n in &mut next.dhcp.networks {
        for r in &mut n.extra_ranges {
            if !listed.contains(&r.address.trunc()) {
                r.gateway = None;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::state::DesiredState;
    use crate::{merge, parse_payload, LocalNics};

    const GN: &str = r#"{"type":"guestnetwork","delete_from_processed_cache":false,"add":true,"mac_address":"02:00:3b:6e:00:05","device":"eth0","router_guest_ip":"10.1.1.1","router_guest_netmask":"255.255.255.0","router_guest_gateway":"10.1.1.1","cidr":"24","dns":"10.1.1.1","domain_name":"cs1cloud.internal","is_vr_guest_gateway":false,"network_id":204}"#;
    const ALIAS: &str = r#"{"type":"ipaliases","delete_from_processed_cache":false,"aliases":[{"revoke":false,"ip_address":"10.1.2.1","netmask":"255.255.255.0","count":1}]}"#;
    const CONF: &str = r#"{"type":"dhcpconfig","delete_from_processed_cache":false,"entries":[{"router_ip_address":"10.1.2.1","gateway":"10.1.2.254","netmask":"255.255.255.0","first_ip_of_subnet":"10.1.2.2"}]}"#;

    fn apply(s: &DesiredState, text: &str) -> DesiredState {
        let m = merge(s, &parse_payload(text).unwrap(), &LocalNics::new()).unwrap();
        assert!(m.not_yet_applied.is_empty(), "{:?}", m.not_yet_applied);
        m.state
    }

    fn addrs(s: &DesiredState) -> Vec<String> {
        s.interfaces[0]
            .addresses
            .iter()
            .map(|a| a.to_string())
            .collect()
    }

    #[test]
    fn an_alias_is_an_address_and_a_range_and_survives_a_guestnetwork_push() {
        let s = apply(&DesiredState::default(), GN);
        let s = apply(&s, ALIAS);
        assert_eq!(addrs(&s), ["10.1.1.1/24", "10.1.2.1/24"]);
        let r = &s.dhcp.networks[0].extra_ranges;
        assert_eq!(
            (r.len(), r[0].address.to_string(), r[0].gateway),
            (1, "10.1.2.1/24".into(), None)
        );
        let s = apply(&s, GN);
        assert_eq!(addrs(&s), ["10.1.1.1/24", "10.1.2.1/24"]);
        let s = apply(&s, CONF);
        assert_eq!(
            s.dhcp.networks[0].extra_ranges[0].gateway,
            Some("10.1.2.254".parse().unwrap())
        );
        // The whole set: an empty one drops the gateway, not the subnet.
        let s = apply(
            &s,
            r#"{"type":"dhcpconfig","delete_from_processed_cache":false,"entries":[]}"#,
        );
        assert_eq!(s.dhcp.networks[0].extra_ranges[0].gateway, None);
        let s = apply(&s, &ALIAS.replace("\"revoke\":false", "\"revoke\":true"));
        assert_eq!(addrs(&s), ["10.1.1.1/24"]);
        assert!(s.dhcp.networks[0].extra_ranges.is_empty());
    }

    #[test]
    fn errors_name_the_field_and_the_value() {
        let p = parse_payload(ALIAS).unwrap();
        let e = merge(&DesiredState::default(), &p, &LocalNics::new()).unwrap_err();
        assert_eq!(
            (e.0[0].path.as_str(), e.0[0].value.as_str()),
            ("aliases[0].ip_address", "10.1.2.1")
        );
        let s = apply(&DesiredState::default(), GN);
        let p = parse_payload(&CONF.replace("10.1.2.254", "10.9.9.9")).unwrap();
        let e = merge(&s, &p, &LocalNics::new()).unwrap_err();
        assert_eq!(
            (e.0[0].path.as_str(), e.0[0].value.as_str()),
            ("entries[0].gateway", "10.9.9.9")
        );
        let p = parse_payload(&ALIAS.replace("10.1.2.1", "10.1.1.7")).unwrap();
        let e = merge(&s, &p, &LocalNics::new()).unwrap_err();
        assert!(e.0[0].reason.contains("own subnet"), "{e}");
    }
}
