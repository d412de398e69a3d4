//! Checks of the remote-access part of the `vpn` section. Paths are relative to the section;
//! the PSK, the key and the passwords are never quoted.

use std::collections::BTreeSet;

use crate::model::VpnSection;
use crate::remote::valid_user_name;
use crate::validate::{err, FieldError};

/// Longest password accepted (MSCHAPv2 hashes UTF-16 passwords of up to 256 characters).
const MAX_PASSWORD: usize = 256;

fn secret_problem(s: &str) -> Option<&'static str> {
    if s.is_empty() {
        Some("is empty")
    } else if s.chars().any(char::is_control) {
        Some("contains control characters")
    } else {
        None
    }
}

pub(crate) fn validate_remote(v: &VpnSection, errs: &mut Vec<FieldError>) {
    if let Some(ra) = &v.remote_access {
        let p = "remote_access";
        let unicast = |a: std::net::Ipv4Addr| {
            !(a.is_unspecified() || a.is_broadcast() || a.is_multicast() || a.is_loopback())
        };
        if !unicast(ra.server_ip) {
            errs.push(err(
                format!("{p}.server_ip"),
                ra.server_ip,
                "not a unicast address",
            ));
        }
        for (name, a) in [("pool_first", ra.pool_first), ("pool_last", ra.pool_last)] {
            if !unicast(a) {
                errs.push(err(format!("{p}.{name}"), a, "not a unicast address"));
            }
        }
        let (first, last) = (u32::from(ra.pool_first), u32::from(ra.pool_last));
        if first > last {
            errs.push(err(
                format!("{p}.pool_last"),
                ra.pool_last,
                format!("before pool_first {}", ra.pool_first),
            ));
        } else if last - first > 65_535 {
            errs.push(err(
                format!("{p}.pool_last"),
                ra.pool_last,
                "pool larger than 65,536 addresses",
            ));
        }
        if ra.local_cidrs.is_empty() {
            errs.push(err(
                format!("{p}.local_cidrs"),
                "[]",
                "at least one local network",
            ));
        }
        for (i, n) in ra.local_cidrs.iter().enumerate() {
            if n.contains(&ra.pool_first) || n.contains(&ra.pool_last) {
                errs.push(err(
                    format!("{p}.local_cidrs[{i}]"),
                    n,
                    "overlaps the client pool",
                ));
            }
            if n.contains(&ra.server_ip) && n.prefix_len() > 0 {
                errs.push(err(
                    format!("{p}.local_cidrs[{i}]"),
                    n,
                    "holds the server IP (a public address)",
                ));
            }
        }
        if let Some(why) = secret_problem(ra.psk.expose()) {
            errs.push(err(
                format!("{p}.psk"),
                "<redacted>",
                format!("the pre-shared key {why}"),
            ));
        }
        if let Some(c) = &ra.certificate {
            if !c.cert_pem.contains("-----BEGIN CERTIFICATE-----") {
                errs.push(err(
                    format!("{p}.certificate.cert_pem"),
                    format!("{:?}", c.cert_pem.chars().take(40).collect::<String>()),
                    "not a PEM certificate",
                ));
            }
            if !c.key_pem.expose().contains("PRIVATE KEY-----") {
                errs.push(err(
                    format!("{p}.certificate.key_pem"),
                    "<redacted>",
                    "not a PEM private key",
                ));
            }
        }
    }
    let mut names = BTreeSet::new();
    for (i, u) in v.remote_users.iter().enumerate() {
        let p = format!("remote_users[{i}]");
        if !valid_user_name(&u.name) {
            errs.push(err(
                format!("{p}.name"),
                format!("{:?}", u.name),
                "invalid user name (letters, digits, - _ . @; at most 64)",
            ));
        } else if !names.insert(u.name.as_str()) {
            errs.push(err(
                format!("{p}.name"),
                format!("{:?}", u.name),
                "user listed twice",
            ));
        }
        let pw = u.password.expose();
        if let Some(why) = secret_problem(pw) {
            errs.push(err(
                format!("{p}.password"),
                "<redacted>",
                format!("the password {why}"),
            ));
        } else if pw.chars().count() > MAX_PASSWORD {
            errs.push(err(
                format!("{p}.password"),
                "<redacted>",
                format!("longer than {MAX_PASSWORD} characters"),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::validate_vpn;
    use crate::VpnSection;

    fn section(v: serde_json::Value) -> VpnSection {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn errors_name_the_field_and_never_a_secret() {
        let s = section(serde_json::json!({
            "remote_access": {"server_ip":"192.0.2.10","pool_first":"10.1.2.9","pool_last":"10.1.2.1",
                "local_cidrs":["10.1.1.0/24"],"psk":"ps\nk-secret"},
            "remote_users": [{"name":"al ice","password":"pw-secret"},{"name":"bob","password":""},
                {"name":"bob","password":"x"}]
        }));
        let e = validate_vpn(&s).unwrap_err();
        let paths: Vec<&str> = e.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "remote_access.pool_last",
                "remote_access.psk",
                "remote_users[0].name",
                "remote_users[1].password",
                "remote_users[2].name"
            ]
        );
        let all: String = e.iter().map(|e| e.to_string()).collect();
        assert!(!all.contains("secret"), "{all}");
        assert!(all.contains("\"al ice\""), "{all}");
        let ok = section(serde_json::json!({
            "remote_access": {"server_ip":"192.0.2.10","pool_first":"10.1.2.1","pool_last":"10.1.2.9",
                "local_cidrs":["10.1.1.0/24"],"psk":"psk"},
            "remote_users": [{"name":"alice","password":"pw"}]
        }));
        validate_vpn(&ok).unwrap();
        let overlap = section(serde_json::json!({
            "remote_access": {"server_ip":"192.0.2.10","pool_first":"10.1.1.100","pool_last":"10.1.1.109",
                "local_cidrs":["10.1.1.0/24"],"psk":"psk"}
        }));
        assert_eq!(
            validate_vpn(&overlap).unwrap_err()[0].path,
            "remote_access.local_cidrs[0]"
        );
    }
}
