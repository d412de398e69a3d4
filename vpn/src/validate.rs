//! Checks serde cannot express. Every error names the JSON path (relative to the `vpn`
//! section) and the offending value; the PSK is never quoted.

use std::collections::BTreeSet;
use std::fmt;

use crate::model::VpnSection;
use crate::policy::proposals;

/// `{path}: {reason} (value {value})`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// JSON path relative to the section, e.g. `site_to_site[1].ike_policy`.
    pub path: String,
    /// The offending value as the operator wrote it (`<redacted>` for the PSK).
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

pub(crate) fn err(path: String, value: impl fmt::Display, reason: impl Into<String>) -> FieldError {
    FieldError {
        path,
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// Longest lifetime accepted (seconds): a week.
pub const MAX_LIFETIME: u32 = 7 * 86_400;

pub fn validate_vpn(v: &VpnSection) -> Result<(), Vec<FieldError>> {
    let mut errs = Vec::new();
    let mut peers = BTreeSet::new();
    for (i, c) in v.site_to_site.iter().enumerate() {
        let p = format!("site_to_site[{i}]");
        if !peers.insert(c.peer_gateway) {
            errs.push(err(
                format!("{p}.peer_gateway"),
                c.peer_gateway,
                "peer gateway listed twice",
            ));
        }
        if c.peer_gateway.is_unspecified()
            || c.peer_gateway.is_broadcast()
            || c.peer_gateway.is_multicast()
        {
            errs.push(err(
                format!("{p}.peer_gateway"),
                c.peer_gateway,
                "not a unicast address",
            ));
        }
        let psk = c.psk.expose();
        if psk.is_empty() {
            errs.push(err(
                format!("{p}.psk"),
                "<redacted>",
                "the pre-shared key is empty",
            ));
        } else if psk.chars().any(char::is_control) {
            errs.push(err(
                format!("{p}.psk"),
                "<redacted>",
                "the pre-shared key contains control characters",
            ));
        }
        for (name, policy) in [("ike_policy", &c.ike_policy), ("esp_policy", &c.esp_policy)] {
            if let Err(e) = proposals(policy) {
                errs.push(err(
                    format!("{p}.{name}"),
                    format!("{policy:?}"),
                    e.to_string(),
                ));
            }
        }
        for (name, life) in [
            ("ike_lifetime", c.ike_lifetime),
            ("esp_lifetime", c.esp_lifetime),
        ] {
            if !(60..=MAX_LIFETIME).contains(&life) {
                errs.push(err(
                    format!("{p}.{name}"),
                    life,
                    format!("lifetime must be 60-{MAX_LIFETIME} seconds"),
                ));
            }
        }
        if c.local_cidrs.is_empty() {
            errs.push(err(
                format!("{p}.local_cidrs"),
                "[]",
                "at least one local network",
            ));
        }
        if c.peer_cidrs.is_empty() {
            errs.push(err(
                format!("{p}.peer_cidrs"),
                "[]",
                "at least one peer network",
            ));
        }
        if let Some(d) = &c.dpd {
            if d.delay == 0 {
                errs.push(err(
                    format!("{p}.dpd.delay"),
                    0,
                    "must be at least 1 second",
                ));
            }
            if d.timeout <= d.delay {
                errs.push(err(
                    format!("{p}.dpd.timeout"),
                    d.timeout,
                    "must be greater than dpd.delay",
                ));
            }
        }
    }
    crate::remote_validate::validate_remote(v, &mut errs);
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(psk: &str, ike: &str, life: u32) -> VpnSection {
        serde_json::from_value(serde_json::json!({"site_to_site":[{"local_public_ip":"192.0.2.10","local_cidrs":["10.1.1.0/24"],
            "peer_gateway":"203.0.113.5","peer_cidrs":["10.2.0.0/24"],"psk":psk,"ike_policy":ike,"esp_policy":"aes128-sha1",
            "ike_lifetime":life}]}))
        .unwrap()
    }

    #[test]
    fn errors_name_path_and_never_the_psk() {
        let e = validate_vpn(&section("", "aes128-sha1;modp1536", 86400)).unwrap_err();
        assert_eq!(
            (e[0].path.as_str(), e[0].value.as_str()),
            ("site_to_site[0].psk", "<redacted>")
        );
        let e = validate_vpn(&section("k\ney", "aes128-sha1", 86400)).unwrap_err();
        assert!(!e[0].to_string().contains("k\ney"));
        let e = validate_vpn(&section("key", "aes128-sha1;modp999", 86400)).unwrap_err();
        assert_eq!(e[0].path, "site_to_site[0].ike_policy");
        assert!(e[0].reason.contains("modp999"));
        let e = validate_vpn(&section("key", "aes128-sha1", 10)).unwrap_err();
        assert_eq!(e[0].path, "site_to_site[0].ike_lifetime");
        validate_vpn(&section("key", "aes128-sha1;modp1536", 86400)).unwrap();
    }
}
