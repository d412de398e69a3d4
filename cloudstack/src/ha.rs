//! The redundant-router keys of the boot `cmdline` (contract §15) -> the native `ha` section.
//!
//! CloudStack sends `redundant_router=1`, `advert_int` (seconds), `router_id`, `router_password`
//! (a secret), `redundant_state=PRIMARY|BACKUP` (the initial role), `guestgw` (the gateway the
//! pair shares) and `guestcidrsize`. The isolated router's guest NIC (eth0) carries one VRRP
//! instance with the gateway as its VIP, and conntrackd syncs over that NIC by multicast (as
//! upstream does). The router told PRIMARY gets the higher priority, so it wins the first
//! election; `nopreempt` keeps whoever is primary afterwards. The flows of the control network
//! are not synced.
//!
//! A VPC router's tiers arrive as `guestnetwork` payloads, not in the cmdline: their gateways
//! are not converted here (yet), so a redundant VPC router stays single.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use vr_ha::{HaRole, HaSection, SyncLink, VrrpInstance};
use vr_model::error::Invalid;
use vr_model::state::{DesiredState, InterfaceRole};
use vr_secret::Secret;

use crate::check::{q, Errors};
use crate::convert::{CmdlineNics, RouterType};

/// Priorities of the router CloudStack starts as PRIMARY and of the other one.
pub const PRIMARY_PRIORITY: u8 = 150;
pub const BACKUP_PRIORITY: u8 = 100;

/// Sets `next.ha` (and the initial role, once) from the cmdline `m`, already validated for
/// addresses and prefix lengths by `convert::cmdline_map`.
pub fn from_cmdline(
    next: &mut DesiredState,
    m: &BTreeMap<String, String>,
    nics: &CmdlineNics,
) -> Result<(), Invalid> {
    let get = |k: &str| m.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let on = matches!(get("redundant_router"), Some("1") | Some("true"));
    if !on || nics.router_type == RouterType::VpcRouter {
        next.ha = None;
        next.ha_role = None;
        return Ok(());
    }
    let mut e = Errors::default();
    let guest = nics
        .nics
        .iter()
        .find(|(_, _, r)| *r == InterfaceRole::Guest)
        .map(|(n, a, _)| (format!("eth{n}"), *a));
    let control: Vec<Ipv4Net> = nics
        .nics
        .iter()
        .filter(|(_, _, r)| *r == InterfaceRole::Control)
        .map(|(_, a, _)| a.trunc())
        .collect();
    let gw = get("guestgw").and_then(|v| v.parse::<Ipv4Addr>().ok());
    if gw.is_none() {
        e.push(
            "cmd_line.guestgw",
            q(get("guestgw").unwrap_or("")),
            "a redundant router needs the guest gateway it shares",
        );
    }
    let Some((device, own)) = guest else {
        e.push(
            "cmd_line.eth0ip",
            "null",
            "a redundant router needs its guest address",
        );
        return Err(Invalid(e.0));
    };
    let len = match get("guestcidrsize") {
        Some(v) => v.parse::<u8>().unwrap_or(own.prefix_len()),
        None => own.prefix_len(),
    };
    let advert_int_ms = match get("advert_int") {
        None => vr_ha::model::DEFAULT_ADVERT_MS,
        Some(v) => match v.parse::<u32>() {
            Ok(s) if (1..=255).contains(&s) => s * 1000,
            _ => {
                e.push("cmd_line.advert_int", q(v), "must be whole seconds 1-255");
                vr_ha::model::DEFAULT_ADVERT_MS
            }
        },
    };
    let initial = match get("redundant_state") {
        None => None,
        Some(v) => match HaRole::parse(v) {
            Some(r) if r != HaRole::Fault => Some(r),
            _ => {
                e.push(
                    "cmd_line.redundant_state",
                    q(v),
                    "must be PRIMARY or BACKUP",
                );
                None
            }
        },
    };
    // Both routers of a pair get the same cmdline values: any function of them names the
    // same virtual router on both. Without a router_id (isolated networks), the gateway's
    // last octet does.
    let router_id = match get("router_id").map(|v| v.parse::<u64>()) {
        Some(Ok(n)) => (n % 255) as u8 + 1,
        Some(Err(_)) => {
            e.push(
                "cmd_line.router_id",
                q(get("router_id").unwrap_or("")),
                "not a number",
            );
            1
        }
        None => gw.map(|g| g.octets()[3].max(1)).unwrap_or(1),
    };
    let Some(gw) = gw else {
        return Err(Invalid(e.0));
    };
    let vip = match Ipv4Net::new(gw, len) {
        Ok(v) => v,
        Err(_) => {
            e.push("cmd_line.guestcidrsize", len, "not a prefix length");
            return Err(Invalid(e.0));
        }
    };
    let ha = HaSection {
        router_id,
        priority: if initial == Some(HaRole::Primary) {
            PRIMARY_PRIORITY
        } else {
            BACKUP_PRIORITY
        },
        advert_int_ms,
        password: get("router_password").map(Secret::new),
        instances: vec![VrrpInstance {
            device: device.clone(),
            vips: vec![vip],
        }],
        sync: Some(SyncLink {
            device,
            local: own.addr(),
            peer: None,
        }),
        no_sync: control,
    };
    if let Err(vr_ha::model::Invalid::Field(path, value, reason)) = ha.validate() {
        // The password is the only field a cmdline value can make invalid unseen.
        e.push(format!("cmd_line.router_{path}"), value, reason);
    }
    e.finish()?;
    next.ha = Some(ha);
    if next.ha_role.is_none() {
        next.ha_role = initial;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(extra: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut m: BTreeMap<String, String> = [
            ("type", "router"),
            ("eth0ip", "10.1.1.2"),
            ("eth0mask", "255.255.255.0"),
            ("eth1ip", "169.254.3.7"),
            ("eth1mask", "255.255.0.0"),
            ("eth2ip", "192.0.2.10"),
            ("eth2mask", "255.255.255.0"),
            ("redundant_router", "1"),
            ("guestgw", "10.1.1.1"),
            ("guestcidrsize", "24"),
            ("router_password", "0123456789abcdef"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in extra {
            m.insert(k.to_string(), v.to_string());
        }
        m
    }

    fn convert(m: &BTreeMap<String, String>) -> Result<DesiredState, Invalid> {
        let nics = crate::convert::cmdline_map(m, "cmd_line")?;
        let mut s = DesiredState::default();
        from_cmdline(&mut s, m, &nics).map(|()| s)
    }

    #[test]
    fn redundant_isolated_router() {
        let s = convert(&cmd(&[("redundant_state", "PRIMARY"), ("advert_int", "1")])).unwrap();
        let ha = s.ha.unwrap();
        assert_eq!(s.ha_role, Some(HaRole::Primary));
        assert_eq!(ha.priority, PRIMARY_PRIORITY);
        assert_eq!(ha.router_id, 1, "from the gateway's last octet");
        assert_eq!(ha.instances[0].device, "eth0");
        assert_eq!(ha.instances[0].vips, vec!["10.1.1.1/24".parse().unwrap()]);
        let sync = ha.sync.unwrap();
        assert_eq!(
            (sync.device.as_str(), sync.local, sync.peer),
            ("eth0", "10.1.1.2".parse().unwrap(), None)
        );
        assert_eq!(ha.no_sync, vec!["169.254.0.0/16".parse().unwrap()]);
        assert_eq!(ha.password.unwrap().expose(), "0123456789abcdef");
        let s = convert(&cmd(&[("redundant_state", "BACKUP"), ("router_id", "7")])).unwrap();
        assert_eq!(s.ha_role, Some(HaRole::Backup));
        assert_eq!(s.ha.unwrap().router_id, 8);
    }

    #[test]
    fn single_router_and_bad_keys() {
        let mut m = cmd(&[]);
        m.remove("redundant_router");
        assert_eq!(convert(&m).unwrap().ha, None);
        let e = convert(&cmd(&[("advert_int", "0.5")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("cmd_line.advert_int"), "{e}");
        let e = convert(&cmd(&[("redundant_state", "MAYBE")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("cmd_line.redundant_state"), "{e}");
        let mut m = cmd(&[]);
        m.remove("guestgw");
        let e = convert(&m).unwrap_err().to_string();
        assert!(e.contains("cmd_line.guestgw"), "{e}");
        let e = convert(&cmd(&[("router_password", "a b")]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("cmd_line.router_password") && !e.contains("a b"),
            "{e}"
        );
    }
}
