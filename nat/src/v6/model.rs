//! The `firewall6` section: CloudStack's `ipv6firewallrules` as plain data. Guests' IPv6
//! prefixes are routed (no NAT), so ingress rules name the guest addresses they open
//! (`destination_cidrs`) rather than a public IP.

use std::collections::BTreeMap;
use std::net::Ipv6Addr;

use ipnet::Ipv6Net;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::model::{PortRange, RuleProtocol};
use crate::validate::{check_rule_shape, err, finish, FieldError};

/// `firewall6` section. Replaces the previous one whole.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Firewall6Section {
    /// New inbound connections to guest prefixes that are allowed; everything else inbound
    /// is dropped (established/related replies pass).
    #[serde(default)]
    pub ingress: Vec<Firewall6Rule>,
    /// Egress policy per guest IPv6 prefix; a prefix without one may reach anywhere.
    #[serde(default)]
    pub egress: Vec<Egress6Policy>,
}

impl Firewall6Section {
    /// No rule and no policy.
    pub fn is_empty(&self) -> bool {
        self.ingress.is_empty() && self.egress.is_empty()
    }
}

/// One IPv6 rule. `protocol` `icmp` means ICMPv6 (as in CloudStack's IPv6 rules).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Firewall6Rule {
    pub id: u64,
    pub protocol: RuleProtocol,
    /// tcp/udp only; absent = all ports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<PortRange>,
    /// icmp only; absent = any type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmp_type: Option<u8>,
    /// icmp only; absent = any code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmp_code: Option<u8>,
    /// Sources; empty = anywhere (egress: the policy's guest prefix).
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub source_cidrs: Vec<Ipv6Net>,
    /// Destinations; empty = anywhere (ingress: every guest prefix).
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub destination_cidrs: Vec<Ipv6Net>,
}

/// Egress policy of one guest IPv6 prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Egress6Policy {
    #[schemars(with = "String")]
    pub guest_cidr: Ipv6Net,
    /// true: everything is allowed and `rules` deny; false: everything is denied and `rules` allow.
    pub default_allow: bool,
    #[serde(default)]
    pub rules: Vec<Firewall6Rule>,
}

/// Field checks serde cannot express (paths relative to the section).
pub fn validate_firewall6(fw: &Firewall6Section) -> Result<(), Vec<FieldError>> {
    let mut out = Vec::new();
    let mut ids = BTreeMap::new();
    for (i, r) in fw.ingress.iter().enumerate() {
        let path = format!("ingress[{i}]");
        if let Some(first) = ids.insert(r.id, i) {
            out.push(err(
                format!("{path}.id"),
                r.id,
                &format!("duplicate of ingress[{first}].id"),
            ));
        }
        shape(&path, r, &mut out);
    }
    let mut seen = BTreeMap::new();
    for (i, p) in fw.egress.iter().enumerate() {
        if p.guest_cidr.addr() == Ipv6Addr::UNSPECIFIED && p.guest_cidr.prefix_len() == 0 {
            out.push(err(
                format!("egress[{i}].guest_cidr"),
                p.guest_cidr,
                "must be a guest prefix, not ::/0",
            ));
        }
        if let Some(first) = seen.insert(p.guest_cidr.trunc(), i) {
            out.push(err(
                format!("egress[{i}].guest_cidr"),
                p.guest_cidr,
                &format!("guest network already has a policy at egress[{first}]"),
            ));
        }
        for (j, r) in p.rules.iter().enumerate() {
            shape(&format!("egress[{i}].rules[{j}]"), r, &mut out);
        }
    }
    finish(out)
}

fn shape(path: &str, r: &Firewall6Rule, out: &mut Vec<FieldError>) {
    check_rule_shape(
        path,
        r.protocol,
        r.ports.as_ref(),
        r.icmp_type,
        r.icmp_code,
        out,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_and_checked() {
        let s: Firewall6Section = serde_json::from_str(
            r#"{"ingress":[{"id":1,"protocol":"tcp","ports":"80-79","destination_cidrs":["2001:db8::/64"]}],
                "egress":[{"guest_cidr":"2001:db8::/64","default_allow":true},
                          {"guest_cidr":"2001:db8::1/64","default_allow":false}]}"#,
        )
        .unwrap();
        let e = validate_firewall6(&s).unwrap_err();
        let text: Vec<String> = e.iter().map(|e| e.to_string()).collect();
        assert!(
            text.iter().any(|t| t.starts_with("ingress[0].ports")),
            "{text:?}"
        );
        assert!(
            text.iter().any(|t| t.starts_with("egress[1].guest_cidr")),
            "{text:?}"
        );
        assert!(serde_json::from_str::<Firewall6Section>(r#"{"ingres":[]}"#).is_err());
    }
}
