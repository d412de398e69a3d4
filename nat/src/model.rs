//! The NAT, firewall and VPC ACL sections of the native state document.
//!
//! Plain data, deserialized strictly (`deny_unknown_fields`). Field-level checks that serde
//! cannot express (inverted ranges, unequal range lengths, conflicting mappings) live in
//! [`crate::validate`].

use std::fmt;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::shared::Shared;

/// `nat` section: source NAT, static 1:1 NAT and port forwards. Replaces the previous one whole.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NatSection {
    /// Guest traffic leaving `device` is source-NATed to `public_ip`.
    #[serde(default)]
    pub source_nat: Vec<SourceNat>,
    /// 1:1 NAT: `public_ip` <-> `private_ip`, both directions, hairpin included.
    #[serde(default)]
    pub static_nat: Vec<StaticNat>,
    /// DNAT of `public_ip:public_ports/protocol` to `private_ip:private_ports`. Shared
    /// between the committed and the next state until a push changes it.
    #[serde(default)]
    #[schemars(with = "Vec<PortForward>")]
    pub port_forwards: Shared<PortForward>,
}

/// One source-NAT binding (CloudStack: the public IP with `source_nat: true`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceNat {
    /// Public NIC the traffic leaves through, e.g. `eth2`.
    pub device: String,
    /// Address the guest sources are rewritten to.
    pub public_ip: Ipv4Addr,
    /// Guest networks NATed; empty means every source leaving `device` that is not the router.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub source_cidrs: Vec<Ipv4Net>,
}

/// One static (1:1) NAT mapping. Identity: `public_ip`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StaticNat {
    pub public_ip: Ipv4Addr,
    pub private_ip: Ipv4Addr,
    /// Public NIC holding `public_ip`; absent = any interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
}

/// One port forward. Identity: `public_ip` + `protocol` + `public_ports`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PortForward {
    pub public_ip: Ipv4Addr,
    pub protocol: L4Protocol,
    pub public_ports: PortRange,
    pub private_ip: Ipv4Addr,
    /// Must have the same length as `public_ports`: port `public_ports.start + k` maps to
    /// `private_ports.start + k`.
    pub private_ports: PortRange,
    /// Only these sources may use the forward (VPC `source_cidr_list`); empty = anyone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<String>")]
    pub source_cidrs: Vec<Ipv4Net>,
    /// Public NIC holding `public_ip`; absent = any interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
}

/// Transport protocol of a port forward.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum L4Protocol {
    Tcp,
    Udp,
}

impl L4Protocol {
    /// IANA protocol number, as `meta l4proto` compares it.
    pub fn number(self) -> u8 {
        match self {
            L4Protocol::Tcp => 6,
            L4Protocol::Udp => 17,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            L4Protocol::Tcp => "tcp",
            L4Protocol::Udp => "udp",
        }
    }
}

/// An inclusive port range. JSON: `80` or `"8000-8100"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortRange {
    pub start: u16,
    pub end: u16,
}

impl PortRange {
    pub fn single(port: u16) -> Self {
        PortRange {
            start: port,
            end: port,
        }
    }
    /// Number of ports in the range (`end` >= `start` is checked by validation). A range
    /// always holds at least one port, so there is no `is_empty`.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u32 {
        u32::from(self.end).saturating_sub(u32::from(self.start)) + 1
    }
    pub fn is_single(&self) -> bool {
        self.start == self.end
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_single() {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}-{}", self.start, self.end)
        }
    }
}

impl std::str::FromStr for PortRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let parse = |p: &str| -> Result<u16, String> {
            let n: u32 = p
                .trim()
                .parse()
                .map_err(|_| format!("invalid port range {s:?}"))?;
            u16::try_from(n).map_err(|_| format!("port {n} out of range 1-65535"))
        };
        let (a, b) = match s.split_once(['-', ':']) {
            Some((a, b)) => (parse(a)?, parse(b)?),
            None => {
                let p = parse(s)?;
                (p, p)
            }
        };
        Ok(PortRange { start: a, end: b })
    }
}

impl Serialize for PortRange {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.is_single() {
            s.serialize_u16(self.start)
        } else {
            s.collect_str(self)
        }
    }
}

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = PortRange;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a port (1-65535) or a range \"start-end\"")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<PortRange, E> {
                u16::try_from(v)
                    .map(PortRange::single)
                    .map_err(|_| E::custom(format!("port {v} out of range 1-65535")))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<PortRange, E> {
                u64::try_from(v)
                    .map_err(|_| E::custom(format!("port {v} out of range 1-65535")))
                    .and_then(|v| self.visit_u64(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<PortRange, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for PortRange {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "PortRange".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A port (1-65535) or an inclusive range \"start-end\".",
            "oneOf": [
                {"type": "integer", "minimum": 1, "maximum": 65535},
                {"type": "string", "pattern": "^[0-9]{1,5}-[0-9]{1,5}$"}
            ]
        })
    }
}

/// `firewall` section: ingress per public IP and egress per guest network.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FirewallSection {
    /// Allow rules for traffic to public IPs. Anything else to a public IP that has rules,
    /// forwards or static NAT is dropped; established/related traffic is accepted.
    #[serde(default)]
    pub ingress: Vec<IngressRule>,
    /// Egress policy per guest network.
    #[serde(default)]
    pub egress: Vec<EgressPolicy>,
}

/// Protocol selector of firewall and ACL rules. JSON: `"tcp"`, `"udp"`, `"icmp"`, `"all"`, or
/// an IP protocol number 0-255.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RuleProtocol {
    All,
    Tcp,
    Udp,
    Icmp,
    Number(u8),
}

impl RuleProtocol {
    /// Whether `ports` may be given for this protocol.
    pub fn has_ports(self) -> bool {
        matches!(self, RuleProtocol::Tcp | RuleProtocol::Udp)
    }
}

impl fmt::Display for RuleProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleProtocol::All => f.write_str("all"),
            RuleProtocol::Tcp => f.write_str("tcp"),
            RuleProtocol::Udp => f.write_str("udp"),
            RuleProtocol::Icmp => f.write_str("icmp"),
            RuleProtocol::Number(n) => write!(f, "{n}"),
        }
    }
}

impl Serialize for RuleProtocol {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            RuleProtocol::Number(n) => s.serialize_u8(*n),
            other => s.collect_str(other),
        }
    }
}

impl<'de> Deserialize<'de> for RuleProtocol {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = RuleProtocol;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"tcp\", \"udp\", \"icmp\", \"all\" or a protocol number 0-255")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<RuleProtocol, E> {
                u8::try_from(v)
                    .map(RuleProtocol::Number)
                    .map_err(|_| E::custom(format!("protocol number {v} out of range 0-255")))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<RuleProtocol, E> {
                u64::try_from(v)
                    .map_err(|_| E::custom(format!("protocol number {v} out of range 0-255")))
                    .and_then(|v| self.visit_u64(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RuleProtocol, E> {
                match v.to_ascii_lowercase().as_str() {
                    "all" => Ok(RuleProtocol::All),
                    "tcp" => Ok(RuleProtocol::Tcp),
                    "udp" => Ok(RuleProtocol::Udp),
                    "icmp" => Ok(RuleProtocol::Icmp),
                    _ => Err(E::custom(format!(
                        "unknown protocol {v:?} (expected tcp, udp, icmp, all or a number)"
                    ))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for RuleProtocol {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "RuleProtocol".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "oneOf": [
                {"type": "string", "enum": ["tcp", "udp", "icmp", "all"]},
                {"type": "integer", "minimum": 0, "maximum": 255}
            ]
        })
    }
}

/// Traffic to a public IP that is allowed. Identity: `id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IngressRule {
    pub id: u64,
    pub public_ip: Ipv4Addr,
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
    /// Allowed sources; empty = anywhere.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub source_cidrs: Vec<Ipv4Net>,
}

/// Egress policy of one guest network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EgressPolicy {
    #[schemars(with = "String")]
    pub guest_cidr: Ipv4Net,
    /// true: everything is allowed and `rules` deny; false: everything is denied and `rules` allow.
    pub default_allow: bool,
    #[serde(default)]
    pub rules: Vec<EgressRule>,
}

/// One egress rule: its verdict is the opposite of the policy default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EgressRule {
    pub id: u64,
    pub protocol: RuleProtocol,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<PortRange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmp_type: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmp_code: Option<u8>,
    /// Sources inside the guest network; empty = the whole guest network.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub source_cidrs: Vec<Ipv4Net>,
    /// Destinations; empty = anywhere.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub destination_cidrs: Vec<Ipv4Net>,
}

/// The network ACL of one VPC tier. The list replaces the tier's ACL whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TierAcl {
    /// The tier's NIC on the router, e.g. `eth3`.
    pub device: String,
    /// The tier's network.
    #[schemars(with = "String")]
    pub tier_cidr: Ipv4Net,
    /// Private-gateway ACL (applies to the private gateway NIC instead of a tier).
    #[serde(default)]
    pub private_gateway: bool,
    /// Traffic entering the tier, in rule-number order; unmatched traffic is denied.
    #[serde(default)]
    pub ingress: Vec<AclRule>,
    /// Traffic leaving the tier, in rule-number order; unmatched traffic is allowed.
    #[serde(default)]
    pub egress: Vec<AclRule>,
}

/// One ACL item. Order within the list is evaluation order (first match wins).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AclRule {
    /// The ACL item number (informational; the list is already in order).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<u32>,
    pub action: AclAction,
    pub protocol: RuleProtocol,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<PortRange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmp_type: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmp_code: Option<u8>,
    /// The remote side: the source for ingress, the destination for egress; empty = anywhere.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub cidrs: Vec<Ipv4Net>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AclAction {
    Allow,
    Deny,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_range_accepts_number_and_string() {
        let r: PortRange = serde_json::from_str("80").unwrap();
        assert_eq!(r, PortRange::single(80));
        let r: PortRange = serde_json::from_str("\"8000-8100\"").unwrap();
        assert_eq!((r.start, r.end, r.len()), (8000, 8100, 101));
        assert_eq!(serde_json::to_string(&r).unwrap(), "\"8000-8100\"");
        assert!(serde_json::from_str::<PortRange>("70000").is_err());
        assert!(serde_json::from_str::<PortRange>("\"a-b\"").is_err());
    }

    #[test]
    fn rule_protocol_round_trips() {
        for (json, p) in [
            ("\"tcp\"", RuleProtocol::Tcp),
            ("\"all\"", RuleProtocol::All),
            ("47", RuleProtocol::Number(47)),
        ] {
            let got: RuleProtocol = serde_json::from_str(json).unwrap();
            assert_eq!(got, p);
            assert_eq!(serde_json::to_string(&got).unwrap(), json);
        }
        let err = serde_json::from_str::<RuleProtocol>("\"sctpx\"").unwrap_err();
        assert!(err.to_string().contains("sctpx"), "{err}");
    }
}
