//! Secrets never leave the state file and the daemons that need them: every view of the state
//! for an operator, a log or a result goes through [`redacted`], and free text (daemon output)
//! is scrubbed of the values [`secrets_of`] finds. Both are driven by the typed model: a value
//! is secret because its type is [`vr_secret::Secret`] (or a model type that serializes its
//! secret parts as one), never because of its key's name.

use serde_json::Value;

pub use vr_secret::REDACTED;

/// `value` as JSON with every secret replaced by `<redacted>`.
pub fn redacted<T: serde::Serialize + ?Sized>(value: &T) -> Value {
    vr_secret::redacting(|| serde_json::to_value(value).unwrap_or(Value::Null))
}

/// Every secret value inside `value`, longest first (so a secret containing another is
/// replaced whole), without duplicates.
pub fn secrets_of<T: serde::Serialize + ?Sized>(value: &T) -> Vec<String> {
    vr_secret::collecting(|| serde_json::to_value(value).map(drop)).1
}

/// `text` with every occurrence of every secret replaced.
pub fn scrub(text: &str, secrets: &[String]) -> String {
    let mut t = text.to_string();
    for s in secrets {
        if s.len() >= 2 {
            t = t.replace(s.as_str(), REDACTED);
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::push::{prepare, LocalNics};
    use crate::state::DesiredState;

    /// One secret of every kind, each pushed the way it arrives: the native router example
    /// (site-to-site PSK, OSPF md5 key) and every CloudStack payload that carries one.
    const MARKERS: &[&str] = &[
        "example-psk-change-me",
        "ospf-key",
        "cs-s2s-psk-Wq41",
        "ra-psk-Ty72",
        "vm-pass-Lk09",
        "dXNlci1kYXRhLVBxNTU=",
        "vpn-user-pw-Bn36",
        "bgp-pw-Ce88",
        "tls-key-Rr14",
        "vrrp-pw-Xs61",
        "boot-key-Jd30",
    ];

    fn loaded() -> DesiredState {
        let nics = LocalNics::new();
        let pushes = [
            include_str!("../../examples/native/router.json").to_string(),
            r#"{"type":"site2sitevpn","delete_from_processed_cache":false,"local_public_ip":"192.0.2.10","local_guest_cidr":"10.1.1.0/24","local_public_gateway":"192.0.2.1","peer_gateway_ip":"203.0.113.9","peer_guest_cidr_list":"10.9.0.0/16","esp_policy":"aes128-sha1;modp1536","ike_policy":"aes128-sha1;modp1536","ipsec_psk":"cs-s2s-psk-Wq41","ike_lifetime":86400,"esp_lifetime":3600,"create":true}"#.into(),
            r#"{"type":"remoteaccessvpn","delete_from_processed_cache":false,"create":true,"ip_range":"10.1.2.1-10.1.2.8","preshared_key":"ra-psk-Ty72","vpn_server_ip":"192.0.2.10","local_ip":"10.1.1.1","local_cidr":"10.1.1.0/24","public_interface":"eth2"}"#.into(),
            r#"{"type":"vmpassword","delete_from_processed_cache":true,"ip_address":"10.1.1.23","password":"vm-pass-Lk09"}"#.into(),
            r#"{"type":"vmdata","delete_from_processed_cache":false,"vm_ip_address":"10.1.1.23","vm_metadata":[["userdata","user-data","dXNlci1kYXRhLVBxNTU="],["metadata","vm-id","vm-id-not-secret"]]}"#.into(),
            r#"{"type":"vpnuserlist","delete_from_processed_cache":false,"vpn_users":[{"user":"alice","password":"vpn-user-pw-Bn36","add":true}]}"#.into(),
            r#"{"type":"bgppeers","delete_from_processed_cache":false,"peers":[{"peer_id":1,"peer_as_number":65001,"ip4_address":"192.0.2.50","peer_password":"bgp-pw-Ce88","network_as_number":65000}]}"#.into(),
            r#"{"type":"loadbalancer","delete_from_processed_cache":false,"rules":[{"configuration":["global"],"add_rules":[],"remove_rules":[],"stat_rules":[],"ssl_certs":[{"name":"web","cert":"CERT","key":"tls-key-Rr14"}]}]}"#.into(),
            r#"{"type":"cmdline","delete_from_processed_cache":false,"cmd_line":{"type":"router","eth0ip":"10.1.1.1","eth0mask":"255.255.255.0","eth2ip":"192.0.2.10","eth2mask":"255.255.255.0","gateway":"192.0.2.1","router_password":"vrrp-pw-Xs61","baremetalnotificationsecuritykey":"boot-key-Jd30"}}"#.into(),
        ];
        let mut state = DesiredState::default();
        for p in pushes {
            state = prepare(&state, &p, &nics)
                .unwrap_or_else(|e| panic!("{e}: {p}"))
                .state;
        }
        state
    }

    /// Paths (in the error notation) where `clear` and `red` differ.
    fn differing(clear: &Value, red: &Value, path: &str, out: &mut Vec<String>) {
        match (clear, red) {
            (Value::Object(a), Value::Object(b)) => {
                for (k, v) in a {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    differing(v, &b[k], &p, out);
                }
            }
            (Value::Array(a), Value::Array(b)) => {
                for (i, v) in a.iter().enumerate() {
                    differing(v, &b[i], &format!("{path}[{i}]"), out);
                }
            }
            (a, b) if a != b => out.push(path.to_string()),
            _ => {}
        }
    }

    #[test]
    fn every_secret_kind_is_hidden_and_found_by_type() {
        let state = loaded();
        let clear = serde_json::to_string(&state).unwrap();
        let red = redacted(&state).to_string();
        let found = secrets_of(&state);
        for m in MARKERS {
            assert!(clear.contains(m), "{m} is kept in the state file");
            assert!(!red.contains(m), "{m} shows in a redacted view");
            assert!(found.iter().any(|f| f == m), "{m} not found by type");
        }
        assert_eq!(
            found.len(),
            MARKERS.len(),
            "only secrets are secrets: {found:?}"
        );
        assert!(red.contains("vm-id-not-secret") && red.contains("alice"));
        assert!(!scrub(&format!("x {clear} y"), &found).contains("ospf-key"));
    }

    /// The names the error quoting treats as secret (`parse::is_secret_name`) cover every
    /// field the typed model hides: derived from the model, so a new `Secret` field with an
    /// unusual name fails here instead of leaking through a rejected push.
    #[test]
    fn every_typed_secret_is_a_secret_name() {
        let state = loaded();
        let clear = serde_json::to_value(&state).unwrap();
        let mut paths = Vec::new();
        differing(&clear, &redacted(&state), "", &mut paths);
        assert_eq!(paths.len(), MARKERS.len(), "{paths:?}");
        for p in &paths {
            assert!(crate::parse::is_secret_path(p), "{p} is not a secret path");
        }
        // The CloudStack wire structs too (their names differ from the native ones).
        let s2s = vr_cloudstack::parse_payload(&format!(
            r#"{{"type":"site2sitevpn","local_public_ip":"192.0.2.10","local_guest_cidr":"10.1.1.0/24","peer_gateway_ip":"203.0.113.9","peer_guest_cidr_list":"10.9.0.0/16","esp_policy":"aes128-sha1","ike_policy":"aes128-sha1;modp1536","ipsec_psk":"{}","create":true}}"#,
            MARKERS[2]
        ))
        .unwrap();
        let vr_cloudstack::Payload::Site2SiteVpn(s2s) = s2s else {
            panic!("type")
        };
        let mut paths = Vec::new();
        differing(
            &serde_json::to_value(&s2s).unwrap(),
            &redacted(&s2s),
            "",
            &mut paths,
        );
        assert_eq!(paths, ["ipsec_psk"]);
        assert!(paths.iter().all(|p| crate::parse::is_secret_path(p)));
    }
}
