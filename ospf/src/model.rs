//! The `ospf` section of the native state document.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Secret;

/// `ospf` section: the router's whole OSPF configuration. Replaces the previous one whole;
/// `"ospf": null` in a push removes OSPF.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OspfSection {
    pub router_id: Ipv4Addr,
    #[serde(default)]
    pub areas: Vec<Area>,
    #[serde(default)]
    pub interfaces: Vec<OspfInterface>,
    /// Networks announced, each in an area (VPC tiers, guest networks, transit links).
    #[serde(default)]
    pub networks: Vec<OspfNetwork>,
    #[serde(default)]
    pub redistribute: Redistribute,
    #[serde(default)]
    pub timers: Timers,
}

/// An area id, written dotted (`0.0.0.0`) as FRR shows it.
pub type AreaId = Ipv4Addr;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Area {
    pub id: AreaId,
    #[serde(default)]
    pub kind: AreaKind,
    /// Area-wide authentication; interfaces carry their keys.
    #[serde(default)]
    pub authentication: AuthKind,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AreaKind {
    #[default]
    Normal,
    Stub,
    Nssa,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AuthKind {
    #[default]
    None,
    Plaintext,
    Md5,
}

/// Per-interface OSPF settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OspfInterface {
    /// Interface name, e.g. `eth2`.
    pub device: String,
    /// Runs OSPF on the interface in this area (`ip ospf area A`), announcing its networks
    /// without `network` statements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub area: Option<AreaId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hello_interval: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_interval: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retransmit_interval: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transit_delay: Option<u16>,
    #[serde(default)]
    pub network_type: NetworkType,
    /// Announce the interface's networks but send no hellos on it.
    #[serde(default)]
    pub passive: bool,
    #[serde(default)]
    pub authentication: InterfaceAuth,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum NetworkType {
    #[default]
    Broadcast,
    PointToPoint,
}

/// Interface authentication. Keys are secrets: never printed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum InterfaceAuth {
    #[default]
    None,
    /// Simple password, at most 8 characters.
    Plaintext { password: Secret },
    /// Keyed MD5, key at most 16 characters.
    Md5 { key_id: u8, password: Secret },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OspfNetwork {
    #[schemars(with = "String")]
    pub prefix: Ipv4Net,
    pub area: AreaId,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Redistribute {
    #[serde(default)]
    pub connected: bool,
    #[serde(default, rename = "static")]
    pub static_routes: bool,
}

/// SPF and LSA timers; absent = FRR's defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Timers {
    /// `timers throttle spf DELAY INITIAL_HOLD MAX_HOLD`, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spf: Option<SpfTimers>,
    /// `timers throttle lsa all MS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lsa_throttle_ms: Option<u32>,
    /// `timers lsa min-arrival MS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lsa_min_arrival_ms: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SpfTimers {
    pub delay_ms: u32,
    pub initial_hold_ms: u32,
    pub max_hold_ms: u32,
}
