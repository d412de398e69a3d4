//! Later-wave payload types: parsed, validated and kept in `state.cloudstack.pending` until
//! their feature lands; the push is answered "accepted, not yet applied" for that concern.
//!
//! Unknown fields are logged and ignored, as in every CloudStack payload (see
//! [`super::parse_payload`]). What is stored is the serialization of the typed struct, so every
//! stored secret is a [`vr_secret::Secret`] that a redacted view hides (see [`super::secrets`]).
//! Every field this agent knows is typed and validated.
//!
//! Identities in `pending[type]`: `dhcpentry` by MAC (`remove: true` deletes), `vmdata` by VM
//! IP, `vmpassword` by VM IP, `ipaliases` per alias IP (`revoke` deletes), `remoteaccessvpn`
//! by server IP (`create: false` deletes), `vpnuserlist` per user (`add: false` deletes);
//! `dhcpconfig`, `loadbalancer`, `monitorservice` and `bgppeers` carry their whole
//! configuration, stored under `"all"`.

use std::fmt;

use serde_json::Value;

use super::check::{self, q, Errors};
use crate::error::Invalid;
use crate::parse::parse_lenient;
use crate::state::CloudStackContext;
pub use vr_model::later_types::*;

/// One typed later-wave payload.
#[derive(Debug, Clone)]
pub enum Later {
    DhcpEntry(DhcpEntry),
    DhcpConfig(DhcpConfig),
    VmData(VmData),
    VmPassword(VmPassword),
    IpAliases(IpAliases),
    LoadBalancer(LoadBalancerRules),
    RemoteAccessVpn(RemoteAccessVpn),
    VpnUserList(VpnUserList),
    MonitorService(MonitorService),
    BgpPeers(BgpPeers),
}

/// The raw JSON object as sent; `Debug` never shows it (it may hold passwords).
#[derive(Clone, PartialEq)]
pub struct RawJson(pub Value);

impl fmt::Debug for RawJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<raw json>")
    }
}

/// A validated later-wave payload and the object to store.
#[derive(Debug, Clone)]
pub struct LaterPayload {
    /// The CloudStack type, e.g. `dhcpentry`.
    pub kind: &'static str,
    pub typed: Later,
    /// The typed struct serialized in clear (secrets included): what `pending` stores.
    pub raw: RawJson,
}

pub const LATER_TYPES: &[&str] = &[
    "dhcpentry",
    "dhcpconfig",
    "vmdata",
    "vmpassword",
    "ipaliases",
    "loadbalancer",
    "remoteaccessvpn",
    "vpnuserlist",
    "monitorservice",
    "bgppeers",
];

/// `None` when `kind` is not a later-wave type. The second value of `Ok` lists the fields
/// ignored because this agent does not know them.
pub fn parse(kind: &str, text: &str) -> Option<Result<(LaterPayload, Vec<String>), Invalid>> {
    let kind: &'static str = LATER_TYPES.iter().find(|k| **k == kind)?;
    Some(parse_known(kind, text))
}

fn typed<T: serde::de::DeserializeOwned + serde::Serialize>(
    text: &str,
    ignored: &mut Vec<String>,
    wrap: fn(T) -> Later,
) -> Result<(Later, Value), Invalid> {
    let (t, ign): (T, _) = parse_lenient(text)?;
    ignored.extend(ign);
    let v = serde_json::to_value(&t).unwrap_or(Value::Null);
    Ok((wrap(t), v))
}

fn parse_known(kind: &'static str, text: &str) -> Result<(LaterPayload, Vec<String>), Invalid> {
    let mut ign = Vec::new();
    let i = &mut ign;
    let (typed, stored) = match kind {
        "dhcpentry" => typed(text, i, Later::DhcpEntry)?,
        "dhcpconfig" => typed(text, i, Later::DhcpConfig)?,
        "vmdata" => typed(text, i, Later::VmData)?,
        "vmpassword" => typed(text, i, Later::VmPassword)?,
        "ipaliases" => typed(text, i, Later::IpAliases)?,
        "loadbalancer" => typed(text, i, Later::LoadBalancer)?,
        "remoteaccessvpn" => typed(text, i, Later::RemoteAccessVpn)?,
        "vpnuserlist" => typed(text, i, Later::VpnUserList)?,
        "monitorservice" => typed(text, i, Later::MonitorService)?,
        _ => typed(text, i, Later::BgpPeers)?,
    };
    validate(&typed)?;
    Ok((
        LaterPayload {
            kind,
            typed,
            raw: RawJson(stored),
        },
        ign,
    ))
}

fn opt_str(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.trim().is_empty())
}

fn validate(p: &Later) -> Result<(), Invalid> {
    let mut e = Errors::default();
    match p {
        Later::DhcpEntry(d) => {
            check::mac(&mut e, "mac_address", &d.mac_address);
            check::opt_ipv4(&mut e, "ipv4_address", d.ipv4_address.as_deref());
            check::opt_ipv4(&mut e, "default_gateway", d.default_gateway.as_deref());
            if let Some(h) = opt_str(&d.host_name) {
                check::dns_name(&mut e, "host_name", h);
            }
            if let Some(v6) = opt_str(&d.ipv6_address) {
                if v6.trim().parse::<std::net::Ipv6Addr>().is_err() {
                    e.push("ipv6_address", q(v6), "not an IPv6 address");
                } else if opt_str(&d.ipv6_duid).is_none() {
                    e.push(
                        "ipv6_duid",
                        q(d.ipv6_duid.as_deref().unwrap_or("")),
                        "missing: DHCPv6 serves ipv6_address to this DUID",
                    );
                }
            }
            if let Some(duid) = opt_str(&d.ipv6_duid) {
                if !vr_guest::model::is_duid(&duid.trim().to_ascii_lowercase()) {
                    e.push(
                        "ipv6_duid",
                        q(duid),
                        "invalid DUID (hex bytes separated by colons)",
                    );
                }
            }
            if let Some(dns) = opt_str(&d.dns_addresses) {
                for a in dns.split(',').map(str::trim).filter(|a| !a.is_empty()) {
                    check::ip_any(&mut e, "dns_addresses", a);
                }
            }
            for (path, s) in [("static_routes", &d.static_routes)] {
                if let Some(s) = opt_str(s) {
                    check::plain(&mut e, path, s);
                }
            }
            if let Some(t) = d.lease_time {
                if t < -1 {
                    e.push("lease_time", t, "negative lease time (-1 = infinite)");
                }
            }
        }
        Later::DhcpConfig(c) => {
            for (i, x) in c.entries.iter().enumerate() {
                let p = format!("entries[{i}]");
                check::opt_ipv4(
                    &mut e,
                    &format!("{p}.router_ip_address"),
                    x.router_ip_address.as_deref(),
                );
                check::opt_ipv4(&mut e, &format!("{p}.gateway"), x.gateway.as_deref());
                check::opt_ipv4(
                    &mut e,
                    &format!("{p}.first_ip_of_subnet"),
                    x.first_ip_of_subnet.as_deref(),
                );
                if let Some(m) = opt_str(&x.netmask) {
                    check::netmask(&mut e, &format!("{p}.netmask"), m);
                }
            }
        }
        Later::VmData(d) => {
            check::ipv4(&mut e, "vm_ip_address", &d.vm_ip_address);
            for (i, t) in d.vm_metadata.iter().enumerate() {
                let t = &t.0;
                if t.len() != 3 {
                    e.push(
                        format!("vm_metadata[{i}]"),
                        t.len(),
                        "expected [folder, file, content]",
                    );
                    continue;
                }
                // Folder and file become path components of the metadata service.
                for (j, name) in ["folder", "file"].iter().enumerate() {
                    let s = t[j].as_deref().unwrap_or("");
                    let ok = !s.is_empty()
                        && s.chars()
                            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                        && s != "."
                        && s != "..";
                    if !ok {
                        e.push(
                            format!("vm_metadata[{i}][{j}]"),
                            q(s),
                            &format!("invalid {name} name"),
                        );
                    }
                }
            }
        }
        Later::VmPassword(v) => {
            check::ipv4(&mut e, "ip_address", &v.ip_address);
        }
        Later::IpAliases(a) => {
            for (i, x) in a.aliases.iter().enumerate() {
                check::ipv4(&mut e, &format!("aliases[{i}].ip_address"), &x.ip_address);
                check::netmask(&mut e, &format!("aliases[{i}].netmask"), &x.netmask);
            }
        }
        Later::LoadBalancer(lb) => {
            for (i, r) in lb.rules.iter().enumerate() {
                let lists = [
                    ("configuration", &r.configuration),
                    ("add_rules", &r.add_rules),
                    ("remove_rules", &r.remove_rules),
                    ("stat_rules", &r.stat_rules),
                ];
                for (name, list) in lists {
                    for (j, line) in list.iter().enumerate() {
                        // CloudStack's lines start with a tab, and some entries hold several
                        // lines (`\n`): both are what it really sends.
                        let stray = |c: char| c.is_control() && c != '\t' && c != '\n';
                        if line.chars().any(stray) {
                            e.push(
                                format!("rules[{i}].{name}[{j}]"),
                                q(line),
                                "control character in a config line",
                            );
                        }
                    }
                }
                check::opt_ipv4(
                    &mut e,
                    &format!("rules[{i}].router_ip"),
                    r.router_ip.as_deref(),
                );
            }
        }
        Later::RemoteAccessVpn(v) => {
            check::ipv4(&mut e, "vpn_server_ip", &v.vpn_server_ip);
            check::opt_ipv4(&mut e, "local_ip", v.local_ip.as_deref());
            if let Some(c) = opt_str(&v.local_cidr) {
                check::cidr4(&mut e, "local_cidr", c);
            }
            if let Some(r) = opt_str(&v.ip_range) {
                match r.split_once('-') {
                    Some((a, b)) => {
                        check::ipv4(&mut e, "ip_range", a);
                        check::ipv4(&mut e, "ip_range", b);
                    }
                    None => e.push("ip_range", q(r), "not a range first-last"),
                }
            }
            if let Some(d) = opt_str(&v.public_interface) {
                check::ifname(&mut e, "public_interface", d);
            }
            if v.create
                && v.preshared_key
                    .as_ref()
                    .is_none_or(|k| k.expose().is_empty())
            {
                e.push("preshared_key", "<redacted>", "empty pre-shared key");
            }
        }
        Later::VpnUserList(l) => {
            for (i, u) in l.vpn_users.iter().enumerate() {
                let ok = !u.user.is_empty()
                    && u.user
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'));
                if !ok {
                    e.push(
                        format!("vpn_users[{i}].user"),
                        q(&u.user),
                        "invalid user name",
                    );
                }
                if u.add && u.password.as_ref().is_none_or(|p| p.expose().is_empty()) {
                    e.push(
                        format!("vpn_users[{i}].password"),
                        "<redacted>",
                        "empty password",
                    );
                }
            }
        }
        Later::MonitorService(m) => {
            for (path, s) in [
                ("config", &m.config),
                ("disable_monitoring", &m.disable_monitoring),
                ("excluded_health_checks", &m.excluded_health_checks),
            ] {
                if let Some(s) = opt_str(s) {
                    if s.chars().any(char::is_control) {
                        e.push(path, q(s), "control character");
                    }
                }
            }
        }
        Later::BgpPeers(b) => {
            for (i, p) in b.peers.iter().enumerate() {
                let pre = format!("peers[{i}]");
                check::opt_ipv4(
                    &mut e,
                    &format!("{pre}.ip4_address"),
                    p.ip4_address.as_deref(),
                );
                if let Some(a) = opt_str(&p.ip6_address) {
                    check::ip_any(&mut e, &format!("{pre}.ip6_address"), a);
                }
                if let Some(c) = opt_str(&p.guest_ip4_cidr) {
                    check::cidr4(&mut e, &format!("{pre}.guest_ip4_cidr"), c);
                }
                if let Some(c) = opt_str(&p.guest_ip6_cidr) {
                    check::cidr6(&mut e, &format!("{pre}.guest_ip6_cidr"), c);
                }
                if p.peer_as_number == Some(0) {
                    e.push(
                        format!("{pre}.peer_as_number"),
                        0,
                        "AS number 0 is reserved",
                    );
                }
                if p.network_as_number == Some(0) {
                    e.push(
                        format!("{pre}.network_as_number"),
                        0,
                        "AS number 0 is reserved",
                    );
                }
            }
        }
    }
    e.finish()
}

/// Stores the payload in `ctx.pending[kind]` under its identity (see the module doc).
pub fn store(p: &LaterPayload, ctx: &mut CloudStackContext) {
    let raw = &p.raw.0;
    let slot = ctx.pending.entry(p.kind.to_string()).or_default();
    let elem = |key: &str, i: usize| {
        raw.get(key)
            .and_then(|l| l.get(i))
            .cloned()
            .unwrap_or(Value::Null)
    };
    match &p.typed {
        Later::DhcpEntry(d) => {
            let id = d.mac_address.trim().to_ascii_lowercase();
            if d.remove {
                slot.remove(&id);
            } else {
                slot.insert(id, raw.clone());
            }
        }
        Later::VmData(d) => {
            slot.insert(d.vm_ip_address.trim().to_string(), raw.clone());
        }
        Later::VmPassword(v) => {
            slot.insert(v.ip_address.trim().to_string(), raw.clone());
        }
        Later::IpAliases(a) => {
            for (i, x) in a.aliases.iter().enumerate() {
                let id = x.ip_address.trim().to_string();
                if x.revoke {
                    slot.remove(&id);
                } else {
                    slot.insert(id, elem("aliases", i));
                }
            }
        }
        Later::RemoteAccessVpn(v) => {
            let id = v.vpn_server_ip.trim().to_string();
            if v.create {
                slot.insert(id, raw.clone());
            } else {
                slot.remove(&id);
            }
        }
        Later::VpnUserList(l) => {
            for (i, u) in l.vpn_users.iter().enumerate() {
                if u.add {
                    slot.insert(u.user.clone(), elem("vpn_users", i));
                } else {
                    slot.remove(&u.user);
                }
            }
        }
        Later::DhcpConfig(_)
        | Later::LoadBalancer(_)
        | Later::MonitorService(_)
        | Later::BgpPeers(_) => {
            slot.insert("all".to_string(), raw.clone());
        }
    }
    if slot.is_empty() {
        ctx.pending.remove(p.kind);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(kind: &str, text: &str) -> Result<LaterPayload, Invalid> {
        parse(kind, text).expect("later type").map(|(p, _)| p)
    }

    #[test]
    fn dhcpentry_is_validated_and_keyed_by_mac() {
        let text = r#"{"type":"dhcpentry","delete_from_processed_cache":false,"host_name":"vm-1","mac_address":"02:00:4C:5A:00:01","ipv4_address":"10.1.1.23","default_gateway":"10.1.1.1","default_entry":true,"remove":false,"new_field_from_a_later_version":1}"#;
        let p = parsed("dhcpentry", text).unwrap();
        let mut ctx = CloudStackContext::default();
        store(&p, &mut ctx);
        assert!(ctx.pending["dhcpentry"].contains_key("02:00:4c:5a:00:01"));
        let rm = text.replace("\"remove\":false", "\"remove\":true");
        store(&parsed("dhcpentry", &rm).unwrap(), &mut ctx);
        assert!(!ctx.pending.contains_key("dhcpentry"));

        let bad = text.replace("10.1.1.23", "10.1.1.256");
        let err = parsed("dhcpentry", &bad).unwrap_err();
        assert_eq!(err.0[0].path, "ipv4_address");
        assert_eq!(err.0[0].value, "\"10.1.1.256\"");
    }

    #[test]
    fn dhcpentry_ipv6_fields_name_field_and_value() {
        let ok = r#"{"type":"dhcpentry","host_name":"vm-1","mac_address":"02:00:4c:5a:00:01","ipv4_address":"10.1.1.23","ipv6_address":"2001:db8:10::23","ipv6_duid":"00:03:00:01:02:00:4C:5A:00:01","default_entry":true,"remove":false}"#;
        parsed("dhcpentry", ok).unwrap();
        let cases = [
            (
                "2001:db8:10::23",
                "10.9.9.9",
                "ipv6_address",
                "\"10.9.9.9\"",
            ),
            ("00:03:00:01:02:00:4C:5A:00:01", "", "ipv6_duid", "\"\""),
            (
                "00:03:00:01:02:00:4C:5A:00:01",
                "00:03,x",
                "ipv6_duid",
                "\"00:03,x\"",
            ),
        ];
        for (from, to, path, value) in cases {
            let err = parsed("dhcpentry", &ok.replace(from, to)).unwrap_err();
            assert_eq!(err.0.len(), 1, "{to}: {err:?}");
            assert_eq!(
                (err.0[0].path.as_str(), err.0[0].value.as_str()),
                (path, value)
            );
        }
    }

    #[test]
    fn passwords_are_kept_but_redacted_for_display() {
        let text = r#"{"type":"vmpassword","delete_from_processed_cache":true,"ip_address":"10.1.1.23","password":"s3cret-pw"}"#;
        let p = parsed("vmpassword", text).unwrap();
        assert!(!format!("{p:?}").contains("s3cret"));
        let mut ctx = CloudStackContext::default();
        store(&p, &mut ctx);
        assert_eq!(
            ctx.pending["vmpassword"]["10.1.1.23"]["password"],
            "s3cret-pw"
        );
        let v = crate::redact::redacted(&ctx);
        assert_eq!(
            v["pending"]["vmpassword"]["10.1.1.23"]["password"],
            "<redacted>"
        );
        assert_eq!(crate::redact::secrets_of(&ctx), ["s3cret-pw"]);
    }

    #[test]
    fn vpn_users_per_user_and_empty_psk() {
        let text = r#"{"type":"vpnuserlist","delete_from_processed_cache":false,"vpn_users":[{"user":"alice","password":"pw1","add":true},{"user":"bob","password":"pw2","add":true}]}"#;
        let mut ctx = CloudStackContext::default();
        store(&parsed("vpnuserlist", text).unwrap(), &mut ctx);
        let rm = r#"{"type":"vpnuserlist","delete_from_processed_cache":false,"vpn_users":[{"user":"bob","password":"pw2","add":false}]}"#;
        store(&parsed("vpnuserlist", rm).unwrap(), &mut ctx);
        assert_eq!(
            ctx.pending["vpnuserlist"].keys().collect::<Vec<_>>(),
            ["alice"]
        );
        let bad = r#"{"type":"vpnuserlist","delete_from_processed_cache":false,"vpn_users":[{"user":"al\nice","password":"","add":true}]}"#;
        let err = parsed("vpnuserlist", bad).unwrap_err();
        assert_eq!(err.0.len(), 2);
        assert_eq!(err.0[1].value, "<redacted>");

        let ra = r#"{"type":"remoteaccessvpn","delete_from_processed_cache":false,"create":true,"ip_range":"10.1.2.1-10.1.2.8","preshared_key":"","vpn_server_ip":"192.0.2.20","local_ip":"10.1.1.1","local_cidr":"10.1.1.0/24","public_interface":"eth2"}"#;
        let err = parsed("remoteaccessvpn", ra).unwrap_err();
        assert_eq!(err.0[0].path, "preshared_key");
    }

    #[test]
    fn wrong_json_type_names_the_path() {
        let err = parsed(
            "bgppeers",
            r#"{"type":"bgppeers","delete_from_processed_cache":false,"peers":[{"peer_as_number":"x"}]}"#,
        )
        .unwrap_err();
        assert_eq!(err.0[0].path, "peers[0].peer_as_number");
    }

    #[test]
    fn metadata_names_cannot_escape() {
        let text = r#"{"type":"vmdata","delete_from_processed_cache":false,"vm_ip_address":"10.1.1.23","vm_metadata":[["userdata","user-data","c2VjcmV0"],["meta-data","../x","a"]]}"#;
        let err = parsed("vmdata", text).unwrap_err();
        assert_eq!(err.0[0].path, "vm_metadata[1][1]");
        let ok = text.replace("../x", "vm-id");
        let mut ctx = CloudStackContext::default();
        store(&parsed("vmdata", &ok).unwrap(), &mut ctx);
        let v = &crate::redact::redacted(&ctx)["pending"]["vmdata"]["10.1.1.23"];
        assert_eq!(v["vm_metadata"][0][2], "<redacted>");
        assert_eq!(v["vm_metadata"][1][2], "a");
        assert_eq!(crate::redact::secrets_of(&ctx), ["c2VjcmV0"]);
    }
}
