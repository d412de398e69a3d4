//! CloudStack `remoteaccessvpn` and `vpnuserlist` into the native `vpn` section's
//! `remote_access` and `remote_users` (CloudStack's `CsRemoteAccessVpn` / `CsVpnUser`):
//! `create: false` removes the VPN (its users stay, as CloudStack keeps them); each user of
//! `vpnuserlist` is added or replaced (`add: true`) or removed (`add: false`) by name. The
//! later-wave checks ran already; the range and networks are checked again here, naming the
//! field. The PSK and passwords are never quoted.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use vr_secret::Secret;
use vr_vpn::{RemoteAccess, RemoteUser};

use super::later::{RemoteAccessVpn, VpnUserList};
use crate::error::{FieldError, Invalid};
use crate::state::{DesiredState, InterfaceRole};

fn addr(field: &str, s: &str) -> Result<Ipv4Addr, FieldError> {
    s.trim()
        .parse()
        .map_err(|_| FieldError::new(field, format!("{s:?}"), "not an IPv4 address"))
}

/// A validated `remoteaccessvpn`.
pub fn server(next: &mut DesiredState, v: &RemoteAccessVpn) -> Result<(), Invalid> {
    if !v.create {
        next.vpn.remote_access = None;
        return Ok(());
    }
    let server_ip = addr("vpn_server_ip", &v.vpn_server_ip)?;
    let range = v.ip_range.as_deref().unwrap_or("").trim();
    let Some((a, b)) = range.split_once('-') else {
        return Err(
            FieldError::new("ip_range", format!("{range:?}"), "not a range first-last").into(),
        );
    };
    let (pool_first, pool_last) = (addr("ip_range", a)?, addr("ip_range", b)?);
    // CloudStack names the guest network; without it, every guest network of the router.
    let local_cidrs: Vec<Ipv4Net> = match v.local_cidr.as_deref().map(str::trim) {
        Some(c) if !c.is_empty() => vec![c
            .parse::<Ipv4Net>()
            .map_err(|_| FieldError::new("local_cidr", format!("{c:?}"), "not an IPv4 CIDR"))?
            .trunc()],
        _ => next
            .interfaces
            .iter()
            .filter(|i| i.role == InterfaceRole::Guest)
            .flat_map(|i| i.addresses.iter().map(|a| a.trunc()))
            .collect(),
    };
    let dns = match v.local_ip.as_deref().map(str::trim) {
        Some(s) if !s.is_empty() => Some(addr("local_ip", s)?),
        _ => None,
    };
    let psk = v
        .preshared_key
        .as_ref()
        .map(|k| Secret::new(k.expose().to_string()))
        .ok_or_else(|| FieldError::new("preshared_key", "<redacted>", "empty pre-shared key"))?;
    // A certificate set through the native format survives CloudStack's re-pushes.
    let certificate = next
        .vpn
        .remote_access
        .as_ref()
        .and_then(|r| r.certificate.clone());
    next.vpn.remote_access = Some(RemoteAccess {
        server_ip,
        pool_first,
        pool_last,
        local_cidrs,
        dns,
        psk,
        certificate,
    });
    Ok(())
}

/// A validated `vpnuserlist`.
pub fn users(next: &mut DesiredState, l: &VpnUserList) {
    let list = &mut next.vpn.remote_users;
    for u in &l.vpn_users {
        let name = u.user.trim();
        match (&u.password, u.add) {
            (Some(pw), true) => {
                let user = RemoteUser {
                    name: name.to_string(),
                    password: Secret::new(pw.expose().to_string()),
                };
                match list.iter().position(|x| x.name == name) {
                    Some(p) => list[p] = user,
                    None => list.push(user),
                }
            }
            _ => list.retain(|x| x.name != name),
        }
    }
}

/// A state written by an agent version that stored these pushes as pending ("accepted, not
/// yet applied"): they move into the native section, so the upgraded agent serves them
/// from its first replay. Entries that do not read stay where they are.
pub fn adopt_pending(state: &mut DesiredState) {
    if let Some(entries) = state.cloudstack.pending.remove("remoteaccessvpn") {
        let mut kept = std::collections::BTreeMap::new();
        for (id, v) in entries {
            let ok = serde_json::from_value::<RemoteAccessVpn>(v.clone())
                .ok()
                .is_some_and(|r| server(state, &r).is_ok());
            if !ok {
                kept.insert(id, v);
            }
        }
        if !kept.is_empty() {
            state
                .cloudstack
                .pending
                .insert("remoteaccessvpn".into(), kept);
        }
    }
    if let Some(entries) = state.cloudstack.pending.remove("vpnuserlist") {
        let mut kept = std::collections::BTreeMap::new();
        for (id, v) in entries {
            match serde_json::from_value::<super::later::VpnUser>(v.clone()) {
                Ok(u) => users(state, &VpnUserList { vpn_users: vec![u] }),
                Err(_) => {
                    kept.insert(id, v);
                }
            }
        }
        if !kept.is_empty() {
            state.cloudstack.pending.insert("vpnuserlist".into(), kept);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::state::DesiredState;
    use crate::{merge, parse_payload, LocalNics};

    fn push(state: &DesiredState, text: &str) -> DesiredState {
        let p = parse_payload(text).unwrap();
        let m = merge(state, &p, &LocalNics::new()).unwrap();
        assert!(m.not_yet_applied.is_empty(), "{:?}", m.not_yet_applied);
        m.state
    }

    const RA: &str = r#"{"type":"remoteaccessvpn","delete_from_processed_cache":false,"create":true,"ip_range":"10.1.2.1-10.1.2.8","preshared_key":"ra-psk-secret","vpn_server_ip":"192.0.2.20","local_ip":"10.1.1.1","local_cidr":"10.1.1.0/24","public_interface":"eth2"}"#;

    #[test]
    fn server_and_users_become_the_native_section() {
        let s = push(&DesiredState::default(), RA);
        let ra = s.vpn.remote_access.clone().unwrap();
        assert_eq!(ra.server_ip.to_string(), "192.0.2.20");
        assert_eq!(
            (ra.pool_first.to_string(), ra.pool_last.to_string()),
            ("10.1.2.1".into(), "10.1.2.8".into())
        );
        assert_eq!(ra.local_cidrs[0].to_string(), "10.1.1.0/24");
        assert_eq!(ra.dns.unwrap().to_string(), "10.1.1.1");
        assert_eq!(ra.psk.expose(), "ra-psk-secret");
        vr_vpn::validate_vpn(&s.vpn).unwrap();

        let s = push(
            &s,
            r#"{"type":"vpnuserlist","delete_from_processed_cache":false,"vpn_users":[{"user":"alice","password":"pw1","add":true},{"user":"bob","password":"pw2","add":true}]}"#,
        );
        let s = push(
            &s,
            r#"{"type":"vpnuserlist","delete_from_processed_cache":false,"vpn_users":[{"user":"bob","password":"pw2","add":false},{"user":"alice","password":"pw1b","add":true}]}"#,
        );
        assert_eq!(s.vpn.remote_users.len(), 1);
        assert_eq!(s.vpn.remote_users[0].password.expose(), "pw1b");
        let redacted = vr_secret::redacting(|| serde_json::to_string(&s.vpn).unwrap());
        assert!(
            !redacted.contains("pw1b") && !redacted.contains("ra-psk-secret"),
            "{redacted}"
        );

        // Disabling removes the server, not the users.
        let off = RA.replace("\"create\":true", "\"create\":false");
        let s = push(&s, &off);
        assert!(s.vpn.remote_access.is_none());
        assert_eq!(s.vpn.remote_users.len(), 1);
    }

    #[test]
    fn a_bad_range_names_the_field() {
        let bad = RA.replace("10.1.2.1-10.1.2.8", "10.1.2.1-10.1.2.x");
        let e = parse_payload(&bad).unwrap_err();
        assert_eq!(e.0[0].path, "ip_range");
        assert!(!format!("{e:?}").contains("ra-psk-secret"));
    }

    #[test]
    fn pending_entries_of_an_older_agent_are_adopted() {
        let mut s = DesiredState::default();
        s.cloudstack.pending.insert(
            "remoteaccessvpn".into(),
            [(
                "192.0.2.20".to_string(),
                serde_json::from_str::<serde_json::Value>(RA).unwrap(),
            )]
            .into(),
        );
        s.cloudstack.pending.insert(
            "vpnuserlist".into(),
            [(
                "alice".to_string(),
                serde_json::json!({"user":"alice","password":"pw1","add":true}),
            )]
            .into(),
        );
        super::adopt_pending(&mut s);
        assert!(s.cloudstack.pending.is_empty());
        assert!(s.vpn.remote_access.is_some());
        assert_eq!(s.vpn.remote_users[0].name, "alice");
    }
}
