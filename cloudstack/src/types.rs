//! Wire structs of the wave-1 CloudStack payload types, field names exactly as CloudStack's
//! Gson writes them (snake_case of the Java fields, odd spellings included).
//!
//! Unknown fields: ignored and logged by [`super::parse_payload`] (CloudStack adds fields
//! between releases; a management-server upgrade must not make every push fail); `cmdline`
//! keeps every key, since its keys come from boot arguments. Values that carry
//! addresses stay strings here and are checked by [`super::convert`], so an error can quote the
//! value exactly as sent.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use vr_secret::Secret;

/// Stored as pending entries too, so the model (which redacts the state file) holds them.
pub use vr_model::stored_types::{FirewallRule, GuestNetwork};

/// `ips` (ip_associations.json).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IpAssociation {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub delete_from_processed_cache: bool,
    pub ip_address: Vec<IpAddress>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IpAddress {
    pub public_ip: String,
    #[serde(default)]
    pub source_nat: bool,
    #[serde(default)]
    pub add: bool,
    #[serde(default)]
    pub one_to_one_nat: bool,
    #[serde(default)]
    pub first_i_p: bool,
    #[serde(default)]
    pub gateway: Option<String>,
    pub netmask: String,
    #[serde(default)]
    pub vif_mac_address: Option<String>,
    #[serde(default)]
    pub nic_dev_id: Option<u32>,
    #[serde(default)]
    pub new_nic: bool,
    #[serde(default)]
    pub nw_type: Option<String>,
    #[serde(default)]
    pub is_private_gateway: bool,
    #[serde(default)]
    pub mtu: Option<u32>,
}

/// `cmdline`: boot arguments, all strings; unknown keys are kept. `Debug` hides the values of
/// secret-looking keys.
#[derive(Clone, Serialize, Deserialize)]
pub struct CmdLine {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub delete_from_processed_cache: bool,
    pub cmd_line: BTreeMap<String, String>,
}

/// `forwardrules` (forwarding_rules.json).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ForwardRules {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub delete_from_processed_cache: bool,
    pub rules: Vec<ForwardRule>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ForwardRule {
    #[serde(default)]
    pub revoke: bool,
    pub protocol: String,
    pub source_ip_address: String,
    pub source_port_range: String,
    pub destination_ip_address: String,
    pub destination_port_range: String,
    /// Comma-joined; VPC only.
    #[serde(default)]
    pub source_cidr_list: Option<String>,
}

/// `staticnatrules` (staticnat_rules.json).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StaticNatRules {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub delete_from_processed_cache: bool,
    pub rules: Vec<StaticNatRule>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StaticNatRule {
    #[serde(default)]
    pub revoke: bool,
    #[serde(default)]
    pub protocol: Option<String>,
    pub source_ip_address: String,
    /// `"0:0"` when none.
    #[serde(default)]
    pub source_port_range: Option<String>,
    pub destination_ip_address: String,
    /// Newer senders: SNAT the VM's traffic to other guest networks too. The native static NAT
    /// already rewrites every outbound flow of the private IP, so this is covered either way.
    #[serde(default)]
    pub should_apply_cross_network_snat: bool,
}

/// `firewallrules` and `ipv6firewallrules` (the latter adds `guest_ip6_cidr`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FirewallRules {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub delete_from_processed_cache: bool,
    pub rules: Vec<FirewallRule>,
}

/// `networkacl` (network_acl.json): one tier's whole ACL.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetworkAcl {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub delete_from_processed_cache: bool,
    pub device: String,
    #[serde(default)]
    pub mac_address: Option<String>,
    #[serde(default)]
    pub private_gateway_acl: bool,
    pub nic_ip: String,
    /// A prefix length as a string.
    pub nic_netmask: String,
    #[serde(default)]
    pub nic_ip6_cidr: Option<String>,
    #[serde(default)]
    pub ingress_rules: Vec<AclItem>,
    #[serde(default)]
    pub egress_rules: Vec<AclItem>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AclItem {
    /// tcp|udp|icmp|all|protocol
    #[serde(rename = "type")]
    pub kind: String,
    /// Comma-joined.
    #[serde(default)]
    pub cidr: Option<String>,
    #[serde(default)]
    pub allowed: bool,
    #[serde(default)]
    pub first_port: Option<i64>,
    #[serde(default)]
    pub last_port: Option<i64>,
    #[serde(default)]
    pub icmp_type: Option<i64>,
    #[serde(default)]
    pub icmp_code: Option<i64>,
    /// For `type: protocol`.
    #[serde(default)]
    pub protocol: Option<i64>,
}

/// `site2sitevpn` (site_2_site_vpn.json). The PSK is a [`Secret`]: never printed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Site2SiteVpn {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub delete_from_processed_cache: bool,
    pub local_public_ip: String,
    pub local_guest_cidr: String,
    #[serde(default)]
    pub local_public_gateway: Option<String>,
    pub peer_gateway_ip: String,
    #[serde(default)]
    pub peer_guest_cidr_list: Option<String>,
    #[serde(default)]
    pub esp_policy: Option<String>,
    #[serde(default)]
    pub ike_policy: Option<String>,
    #[serde(default)]
    pub ipsec_psk: Option<Secret>,
    /// `"ike"|"ikev1"|"ikev2"`; older senders write an integer (1, 2). Absent = `ike`.
    #[serde(default)]
    pub ike_version: Option<serde_json::Value>,
    #[serde(default)]
    pub ike_lifetime: Option<i64>,
    #[serde(default)]
    pub esp_lifetime: Option<i64>,
    #[serde(default)]
    pub create: bool,
    #[serde(default)]
    pub dpd: bool,
    #[serde(default)]
    pub passive: bool,
    #[serde(default)]
    pub encap: bool,
    #[serde(default)]
    pub split_connections: bool,
}

/// `staticroutes` (static_routes.json).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StaticRoutes {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub delete_from_processed_cache: bool,
    pub routes: Vec<StaticRoute>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StaticRoute {
    #[serde(default)]
    pub revoke: bool,
    /// The private gateway IP of the router.
    #[serde(default)]
    pub ip_address: Option<String>,
    pub gateway: String,
    pub network: String,
}

impl std::fmt::Debug for CmdLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown: BTreeMap<&str, &str> = self
            .cmd_line
            .iter()
            .map(|(k, v)| {
                let v = if super::is_secret_cmdline_key(k) {
                    "<redacted>"
                } else {
                    v.as_str()
                };
                (k.as_str(), v)
            })
            .collect();
        f.debug_struct("CmdLine")
            .field("kind", &self.kind)
            .field("cmd_line", &shown)
            .finish()
    }
}
