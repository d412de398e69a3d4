//! CloudStack wire structs whose serializations the state file keeps under
//! `cloudstack.pending` although they are current-wave payloads (`guestnetwork` IPv6 data,
//! `ipv6firewallrules`): [`crate::secrets`] shows a stored entry through its typed struct, so
//! they live in the model beside the later-wave ones ([`crate::later_types`]). The adapter
//! (`vr-cloudstack`) re-exports them from its `types`.

use serde::{Deserialize, Serialize};

/// `guestnetwork` (guest_network.json).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GuestNetwork {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub delete_from_processed_cache: bool,
    #[serde(default)]
    pub add: bool,
    #[serde(default)]
    pub mac_address: Option<String>,
    pub device: String,
    pub router_guest_ip: String,
    pub router_guest_netmask: String,
    #[serde(default)]
    pub router_guest_gateway: Option<String>,
    /// A prefix length as a string, e.g. `"24"`.
    #[serde(default)]
    pub cidr: Option<String>,
    #[serde(default)]
    pub dns: Option<String>,
    #[serde(default)]
    pub domain_name: Option<String>,
    #[serde(default)]
    pub is_vr_guest_gateway: bool,
    #[serde(default)]
    pub network_id: Option<u64>,
    /// Older senders omit it.
    #[serde(default)]
    pub mtu: Option<u32>,
    #[serde(default)]
    pub cidr6: Option<String>,
    #[serde(default)]
    pub router_guest_ip6: Option<String>,
    #[serde(default)]
    pub router_guest_ip6_gateway: Option<String>,
    #[serde(default)]
    pub router_guest_ip6_cidr: Option<String>,
    #[serde(default)]
    pub router_ip6: Option<String>,
    #[serde(default)]
    pub router_ip6_gateway: Option<String>,
    #[serde(default)]
    pub router_ip6_cidr: Option<String>,
    #[serde(default)]
    pub dns6: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
/// A revoked rule needs only its `id` (CloudStack may send nothing else for it): the other
/// fields default and are not checked.
pub struct FirewallRule {
    pub id: u64,
    #[serde(default)]
    pub src_vlan_tag: Option<String>,
    /// The public IP for ingress, `""` for egress.
    #[serde(default)]
    pub src_ip: Option<String>,
    #[serde(default)]
    pub protocol: String,
    #[serde(default)]
    pub src_port_range: Option<Vec<i64>>,
    #[serde(default)]
    pub revoked: bool,
    #[serde(default)]
    pub already_added: bool,
    #[serde(default)]
    pub source_cidr_list: Option<Vec<String>>,
    #[serde(default)]
    pub dest_cidr_list: Option<Vec<String>>,
    #[serde(default)]
    pub purpose: Option<String>,
    #[serde(default)]
    pub icmp_type: Option<i64>,
    #[serde(default)]
    pub icmp_code: Option<i64>,
    #[serde(default)]
    pub traffic_type: String,
    #[serde(default)]
    pub guest_cidr: Option<String>,
    #[serde(default)]
    pub default_egress_policy: bool,
    /// Informational rule type sent by newer CloudStack versions.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// `ipv6firewallrules` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest_ip6_cidr: Option<String>,
}
