//! The `vpn` section of the native state document: site-to-site connections.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Secret;

/// `vpn` section. Replaces the previous one whole.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VpnSection {
    #[serde(default)]
    pub site_to_site: Vec<SiteToSite>,
    /// Road warriors; absent = no remote-access VPN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_access: Option<crate::remote::RemoteAccess>,
    /// Remote-access users (loaded whether or not the VPN is on, as CloudStack keeps them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remote_users: Vec<crate::remote::RemoteUser>,
}

/// One site-to-site connection. Identity: `peer_gateway`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SiteToSite {
    /// Local public IP the tunnel is bound to.
    pub local_public_ip: Ipv4Addr,
    /// Local networks (guest CIDRs) reachable through the tunnel.
    #[schemars(with = "Vec<String>")]
    pub local_cidrs: Vec<Ipv4Net>,
    /// Gateway of the local public network (informational; routes come from `routes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_public_gateway: Option<Ipv4Addr>,
    /// The remote gateway: the identity of the connection.
    pub peer_gateway: Ipv4Addr,
    /// Remote networks.
    #[schemars(with = "Vec<String>")]
    pub peer_cidrs: Vec<Ipv4Net>,
    /// Pre-shared key. Never logged or printed.
    pub psk: Secret,
    /// CloudStack policy string, e.g. `aes128-sha1;modp1536` (several proposals comma-separated).
    pub ike_policy: String,
    /// CloudStack policy string, e.g. `aes128-sha1;modp1536` or `aes256-sha256`.
    pub esp_policy: String,
    #[serde(default)]
    pub ike_version: IkeVersion,
    /// IKE SA lifetime in seconds.
    #[serde(default = "default_ike_lifetime")]
    pub ike_lifetime: u32,
    /// CHILD SA lifetime in seconds.
    #[serde(default = "default_esp_lifetime")]
    pub esp_lifetime: u32,
    /// Dead-peer detection; absent = off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpd: Option<Dpd>,
    /// Never initiate; wait for the peer.
    #[serde(default)]
    pub passive: bool,
    /// One CHILD SA per peer CIDR instead of one with all of them.
    #[serde(default)]
    pub split_connections: bool,
    /// Force UDP encapsulation of ESP (NAT traversal even without NAT).
    #[serde(default)]
    pub force_encap: bool,
}

fn default_ike_lifetime() -> u32 {
    86400
}
fn default_esp_lifetime() -> u32 {
    3600
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum IkeVersion {
    /// Either version, as the peer proposes.
    #[default]
    Ike,
    Ikev1,
    Ikev2,
}

/// Dead-peer detection timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Dpd {
    /// Seconds between liveness checks (CloudStack: 30).
    #[serde(default = "default_dpd_delay")]
    pub delay: u32,
    /// Seconds without answer before the peer is declared dead (IKEv1; CloudStack: 120).
    #[serde(default = "default_dpd_timeout")]
    pub timeout: u32,
    /// What to do with a dead peer.
    #[serde(default)]
    pub action: DpdAction,
}

fn default_dpd_delay() -> u32 {
    30
}
fn default_dpd_timeout() -> u32 {
    120
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DpdAction {
    #[default]
    Restart,
    Clear,
    Trap,
}
