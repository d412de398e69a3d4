//! Checks serde cannot express. Every error names the JSON path (relative to the `ospf`
//! section) and the offending value; passwords are never quoted.
//!
//! Everything that reaches FRR or Quagga config text is either typed (addresses, numbers,
//! enums) or checked here, so no value can start a new line, a comment (`!`) or a command.

use std::collections::BTreeSet;
use std::fmt;

use crate::model::{InterfaceAuth, OspfSection};

/// `{path}: {reason} (value {value})`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// JSON path relative to the section, e.g. `interfaces[0].device`.
    pub path: String,
    /// The offending value as the operator wrote it (`<redacted>` for secrets).
    pub value: String,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} (value {})", self.path, self.reason, self.value)
    }
}

impl std::error::Error for FieldError {}

fn err(path: impl Into<String>, value: impl fmt::Display, reason: &str) -> FieldError {
    FieldError {
        path: path.into(),
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

/// Interface names as the kernel allows them, minus anything that could break a config line.
pub fn valid_device(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 15
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b':' | b'-'))
}

/// Keys FRR and Quagga take as one word: printable ASCII without space, quote, `!` or `#`.
fn valid_key(k: &str, max: usize) -> bool {
    !k.is_empty()
        && k.len() <= max
        && k.bytes().all(|c| {
            c.is_ascii_graphic() && !matches!(c, b'!' | b'#' | b'"' | b'\'' | b'\\' | b'{' | b'}')
        })
}

pub fn validate_ospf(s: &OspfSection) -> Result<(), Vec<FieldError>> {
    let mut errs = Vec::new();
    if s.router_id.is_unspecified() {
        errs.push(err(
            "router_id",
            s.router_id,
            "router id 0.0.0.0 is not allowed",
        ));
    }
    let mut areas = BTreeSet::new();
    for (i, a) in s.areas.iter().enumerate() {
        if !areas.insert(a.id) {
            errs.push(err(format!("areas[{i}].id"), a.id, "area listed twice"));
        }
        if a.id.is_unspecified() && a.kind != crate::model::AreaKind::Normal {
            errs.push(err(
                format!("areas[{i}].kind"),
                format!("{:?}", a.kind).to_lowercase(),
                "the backbone area 0.0.0.0 cannot be stub or nssa",
            ));
        }
    }
    let declared = |a: &std::net::Ipv4Addr| areas.contains(a) || a.is_unspecified();
    let mut devices = BTreeSet::new();
    for (i, ifc) in s.interfaces.iter().enumerate() {
        let p = format!("interfaces[{i}]");
        if !valid_device(&ifc.device) {
            errs.push(err(
                format!("{p}.device"),
                format!("{:?}", ifc.device),
                "invalid interface name",
            ));
        } else if !devices.insert(ifc.device.as_str()) {
            errs.push(err(
                format!("{p}.device"),
                format!("{:?}", ifc.device),
                "interface listed twice",
            ));
        }
        if let Some(a) = &ifc.area {
            if !declared(a) {
                errs.push(err(format!("{p}.area"), a, "area not declared in areas"));
            }
            if !s.networks.is_empty() {
                // FRR refuses `ip ospf area` while `network ... area` statements exist.
                errs.push(err(
                    format!("{p}.area"),
                    a,
                    "interface areas cannot be combined with networks; use one or the other",
                ));
            }
        }
        for (name, v) in [
            ("hello_interval", ifc.hello_interval),
            ("dead_interval", ifc.dead_interval),
            ("retransmit_interval", ifc.retransmit_interval),
            ("transit_delay", ifc.transit_delay),
        ] {
            if v == Some(0) {
                errs.push(err(format!("{p}.{name}"), 0, "must be 1-65535 seconds"));
            }
        }
        let hello = ifc.hello_interval.unwrap_or(10);
        if let Some(dead) = ifc.dead_interval {
            if dead <= hello {
                errs.push(err(
                    format!("{p}.dead_interval"),
                    dead,
                    "must be greater than hello_interval",
                ));
            }
        }
        if ifc.cost == Some(0) {
            errs.push(err(format!("{p}.cost"), 0, "cost must be 1-65535"));
        }
        match &ifc.authentication {
            InterfaceAuth::None => {}
            InterfaceAuth::Plaintext { password } => {
                if !valid_key(password.expose(), 8) {
                    errs.push(err(format!("{p}.authentication.password"), "<redacted>", "plaintext key must be 1-8 printable characters without space, quotes, !, #, braces"));
                }
            }
            InterfaceAuth::Md5 { key_id, password } => {
                if *key_id == 0 {
                    errs.push(err(
                        format!("{p}.authentication.key_id"),
                        key_id,
                        "key id must be 1-255",
                    ));
                }
                if !valid_key(password.expose(), 16) {
                    errs.push(err(format!("{p}.authentication.password"), "<redacted>", "md5 key must be 1-16 printable characters without space, quotes, !, #, braces"));
                }
            }
        }
    }
    let mut nets = BTreeSet::new();
    for (i, n) in s.networks.iter().enumerate() {
        if n.prefix.trunc() != n.prefix {
            errs.push(err(
                format!("networks[{i}].prefix"),
                n.prefix,
                "host bits set in a network prefix",
            ));
        }
        if !nets.insert(n.prefix) {
            errs.push(err(
                format!("networks[{i}].prefix"),
                n.prefix,
                "network listed twice",
            ));
        }
        if !declared(&n.area) {
            errs.push(err(
                format!("networks[{i}].area"),
                n.area,
                "area not declared in areas",
            ));
        }
    }
    if let Some(spf) = &s.timers.spf {
        if spf.initial_hold_ms > spf.max_hold_ms {
            errs.push(err(
                "timers.spf.initial_hold_ms",
                spf.initial_hold_ms,
                "must not exceed max_hold_ms",
            ));
        }
        if spf.delay_ms > 600_000 || spf.max_hold_ms > 600_000 {
            errs.push(err(
                "timers.spf",
                spf.max_hold_ms.max(spf.delay_ms),
                "at most 600000 ms",
            ));
        }
    }
    for (name, v) in [
        ("timers.lsa_throttle_ms", s.timers.lsa_throttle_ms),
        ("timers.lsa_min_arrival_ms", s.timers.lsa_min_arrival_ms),
    ] {
        if v.is_some_and(|v| v > 600_000) {
            errs.push(err(name, v.unwrap_or_default(), "at most 600000 ms"));
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(json: &str) -> OspfSection {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn injection_through_names_and_keys_is_refused() {
        for dev in ["eth0\nrouter bgp 1", "eth0!", "eth 0", "eth0#x", "\"eth0\""] {
            let s = OspfSection {
                interfaces: vec![
                    serde_json::from_value(serde_json::json!({"device": dev})).unwrap()
                ],
                ..section(r#"{"router_id":"1.1.1.1"}"#)
            };
            let e = validate_ospf(&s).unwrap_err();
            assert_eq!(e[0].path, "interfaces[0].device", "{dev:?}");
        }
        let s = section(
            r#"{"router_id":"1.1.1.1","interfaces":[{"device":"eth0","authentication":{"type":"md5","key_id":1,"password":"a b\nc"}}]}"#,
        );
        let e = validate_ospf(&s).unwrap_err();
        assert_eq!(e[0].path, "interfaces[0].authentication.password");
        assert_eq!(e[0].value, "<redacted>");
        let s = section(
            r#"{"router_id":"1.1.1.1","interfaces":[{"device":"eth0","authentication":{"type":"plaintext","password":"123456789"}}]}"#,
        );
        assert!(
            validate_ospf(&s).is_err(),
            "plaintext keys are at most 8 characters"
        );
    }

    #[test]
    fn intervals_areas_and_networks() {
        let s = section(
            r#"{"router_id":"1.1.1.1","interfaces":[{"device":"eth0","hello_interval":10,"dead_interval":10}],
            "networks":[{"prefix":"10.1.1.1/24","area":"0.0.0.1"}]}"#,
        );
        let paths: Vec<String> = validate_ospf(&s)
            .unwrap_err()
            .into_iter()
            .map(|e| e.path)
            .collect();
        assert_eq!(
            paths,
            [
                "interfaces[0].dead_interval",
                "networks[0].prefix",
                "networks[0].area"
            ]
        );
        let ok = section(
            r#"{"router_id":"1.1.1.1","areas":[{"id":"0.0.0.1","kind":"stub"}],"networks":[{"prefix":"10.1.1.0/24","area":"0.0.0.1"}]}"#,
        );
        validate_ospf(&ok).unwrap();
    }
}
