//! Which values of the CloudStack context are secret, by type: the stored later-wave payloads
//! are serialized through their typed structs (whose [`Secret`] fields hide themselves inside
//! [`vr_secret::redacting`]) and secret boot arguments as [`Secret`]s. Outside a redacted view
//! (the state file) everything serializes as stored.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::Value;
use vr_secret::Secret;

use crate::later_types::*;
use crate::stored_types::{FirewallRule, GuestNetwork};

/// Boot arguments that carry secrets: `router_password` (VRRP), and any `*key`, `*password`,
/// `*secret` or `*psk` argument (e.g. `baremetalnotificationsecuritykey`).
pub fn is_secret_cmdline_key(k: &str) -> bool {
    let l = k.to_ascii_lowercase();
    l.contains("password") || l.contains("secret") || l.ends_with("key") || l.ends_with("psk")
}

/// `serialize_with` of `CloudStackContext::cmdline`.
pub fn serialize_cmdline<S: Serializer>(
    map: &BTreeMap<String, String>,
    s: S,
) -> Result<S::Ok, S::Error> {
    if !vr_secret::is_redacting() {
        return map.serialize(s);
    }
    let mut m = s.serialize_map(Some(map.len()))?;
    for (k, v) in map {
        if is_secret_cmdline_key(k) {
            m.serialize_entry(k, &Secret::new(v.clone()))?;
        } else {
            m.serialize_entry(k, v)?;
        }
    }
    m.end()
}

/// `serialize_with` of `CloudStackContext::pending`.
pub fn serialize_pending<S: Serializer>(
    pending: &BTreeMap<String, BTreeMap<String, Value>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    if !vr_secret::is_redacting() {
        return pending.serialize(s);
    }
    let view: BTreeMap<&str, BTreeMap<&str, Value>> = pending
        .iter()
        .map(|(kind, by_id)| {
            let entries = by_id
                .iter()
                .map(|(id, v)| (id.as_str(), typed_view(kind, v)))
                .collect();
            (kind.as_str(), entries)
        })
        .collect();
    view.serialize(s)
}

/// One stored entry of `pending[kind]` serialized through its typed struct (the element type
/// for the kinds stored per element: `ipaliases`, `vpnuserlist`, `ipv6firewallrules`).
pub fn typed_view(kind: &str, v: &Value) -> Value {
    match kind {
        "dhcpentry" => via::<DhcpEntry>(v),
        "dhcpconfig" => via::<DhcpConfig>(v),
        "vmdata" => via::<VmData>(v),
        "vmpassword" => via::<VmPassword>(v),
        "ipaliases" => via::<IpAlias>(v),
        "loadbalancer" => via::<LoadBalancerRules>(v),
        "remoteaccessvpn" => via::<RemoteAccessVpn>(v),
        "vpnuserlist" => via::<VpnUser>(v),
        "monitorservice" => via::<MonitorService>(v),
        "bgppeers" => via::<BgpPeers>(v),
        "ipv6firewallrules" => via::<FirewallRule>(v),
        "guestnetwork" => via::<GuestNetwork>(v),
        _ => opaque(v),
    }
}

fn via<T: DeserializeOwned + Serialize>(v: &Value) -> Value {
    match serde_json::from_value::<T>(v.clone()) {
        Ok(t) => serde_json::to_value(&t).unwrap_or_else(|_| opaque(v)),
        Err(_) => opaque(v),
    }
}

/// An entry no typed struct reads (a state file written by another version): nothing of it
/// is shown, and every string in it counts as a secret for scrubbing free text.
fn opaque(v: &Value) -> Value {
    fn note_all(v: &Value) {
        match v {
            Value::String(s) => vr_secret::note(s),
            Value::Array(a) => a.iter().for_each(note_all),
            Value::Object(m) => m.values().for_each(note_all),
            _ => {}
        }
    }
    note_all(v);
    Value::String(vr_secret::REDACTED.into())
}
