//! Wire structs of the later-wave CloudStack types (field names from CloudStack's
//! `core/.../virtualnetwork/model/*.java`, snake_case as Gson writes them). Unknown fields are
//! logged and ignored: see the adapter's `later` module. Every secret is typed: [`Secret`] fields, and the
//! user data inside a [`MetaEntry`].

use std::collections::BTreeMap;

use serde::ser::SerializeSeq;
use serde::{Deserialize, Serialize, Serializer};
use vr_secret::Secret;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DhcpEntry {
    #[serde(default)]
    pub host_name: Option<String>,
    pub mac_address: String,
    #[serde(default)]
    pub ipv4_address: Option<String>,
    #[serde(default)]
    pub ipv6_address: Option<String>,
    #[serde(default)]
    pub ipv6_duid: Option<String>,
    #[serde(default)]
    pub dns_addresses: Option<String>,
    #[serde(default)]
    pub default_gateway: Option<String>,
    #[serde(default)]
    pub static_routes: Option<String>,
    #[serde(default)]
    pub default_entry: bool,
    #[serde(default)]
    pub lease_time: Option<i64>,
    #[serde(default)]
    pub remove: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DhcpConfig {
    #[serde(default)]
    pub entries: Vec<DhcpConfigEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DhcpConfigEntry {
    #[serde(default)]
    pub router_ip_address: Option<String>,
    #[serde(default)]
    pub gateway: Option<String>,
    #[serde(default)]
    pub netmask: Option<String>,
    #[serde(default)]
    pub first_ip_of_subnet: Option<String>,
}

/// `Debug` shows the metadata file names only: user data may carry secrets.
#[derive(Clone, Serialize, Deserialize)]
pub struct VmData {
    pub vm_ip_address: String,
    /// `[folder, file, content]` triples.
    #[serde(default)]
    pub vm_metadata: Vec<MetaEntry>,
}

/// One `[folder, file, content]` triple of `vmdata`. The content of user data (folder
/// `userdata`, file `user-data`) and of any password file is a secret: it serializes as a
/// [`Secret`] (hidden in every output, kept in the state file).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct MetaEntry(pub Vec<Option<String>>);

impl MetaEntry {
    fn part(&self, i: usize) -> &str {
        self.0.get(i).and_then(|s| s.as_deref()).unwrap_or("")
    }
    /// Whether the content is secret: user data, or a file whose name says password.
    pub fn is_secret(&self) -> bool {
        self.part(0) == "userdata"
            || self.part(1) == "user-data"
            || self.part(1).contains("password")
    }
}

impl std::fmt::Debug for MetaEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.part(0), self.part(1))
    }
}

impl Serialize for MetaEntry {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let secret = self.is_secret();
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for (i, part) in self.0.iter().enumerate() {
            match part {
                Some(c) if i >= 2 && secret => seq.serialize_element(&Secret::new(c.clone()))?,
                other => seq.serialize_element(other)?,
            }
        }
        seq.end()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VmPassword {
    pub ip_address: String,
    pub password: Secret,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IpAliases {
    #[serde(default)]
    pub aliases: Vec<IpAlias>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IpAlias {
    #[serde(default)]
    pub revoke: bool,
    pub ip_address: String,
    pub netmask: String,
    #[serde(default)]
    pub count: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadBalancerRules {
    #[serde(default)]
    pub rules: Vec<LoadBalancerRule>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadBalancerRule {
    #[serde(default)]
    pub configuration: Vec<String>,
    #[serde(default)]
    pub tmp_cfg_file_path: Option<String>,
    #[serde(default)]
    pub tmp_cfg_file_name: Option<String>,
    #[serde(default)]
    pub is_transparent: Option<bool>,
    #[serde(default)]
    pub add_rules: Vec<String>,
    #[serde(default)]
    pub remove_rules: Vec<String>,
    #[serde(default)]
    pub stat_rules: Vec<String>,
    #[serde(default)]
    pub router_ip: Option<String>,
    #[serde(default)]
    pub ssl_certs: Vec<SslCert>,
}

/// A certificate for an HTTPS listener; its key and the key's password are secrets.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SslCert {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub cert: Option<String>,
    #[serde(default)]
    pub key: Option<Secret>,
    #[serde(default)]
    pub chain: Option<String>,
    #[serde(default)]
    pub password: Option<Secret>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemoteAccessVpn {
    #[serde(default)]
    pub create: bool,
    #[serde(default)]
    pub ip_range: Option<String>,
    #[serde(default)]
    pub preshared_key: Option<Secret>,
    pub vpn_server_ip: String,
    #[serde(default)]
    pub local_ip: Option<String>,
    #[serde(default)]
    pub local_cidr: Option<String>,
    #[serde(default)]
    pub public_interface: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VpnUserList {
    #[serde(default)]
    pub vpn_users: Vec<VpnUser>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VpnUser {
    pub user: String,
    #[serde(default)]
    pub password: Option<Secret>,
    #[serde(default)]
    pub add: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MonitorService {
    #[serde(default)]
    pub config: Option<String>,
    #[serde(default)]
    pub disable_monitoring: Option<String>,
    #[serde(default)]
    pub health_checks_enabled: Option<bool>,
    #[serde(default)]
    pub health_checks_basic_run_interval: Option<u32>,
    #[serde(default)]
    pub health_checks_advance_run_interval: Option<u32>,
    #[serde(default)]
    pub excluded_health_checks: Option<String>,
    #[serde(default)]
    pub health_checks_config: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BgpPeers {
    #[serde(default)]
    pub peers: Vec<BgpPeer>,
}

/// One BGP peer (`BgpPeerTO`). Older agents of this project read `as_number`, `password`,
/// `ip4_cidr`, `ip6_cidr`: accepted as aliases. CloudStack sends a network without peers as
/// one entry holding only `network_id` (`new BgpPeerTO(networkId)`): every other field may be
/// absent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BgpPeer {
    #[serde(default)]
    pub peer_id: Option<u64>,
    #[serde(default)]
    pub ip4_address: Option<String>,
    #[serde(default)]
    pub ip6_address: Option<String>,
    #[serde(default, alias = "as_number")]
    pub peer_as_number: Option<u32>,
    #[serde(default, alias = "password")]
    pub peer_password: Option<Secret>,
    #[serde(default)]
    pub network_id: Option<u64>,
    #[serde(default)]
    pub network_as_number: Option<u32>,
    #[serde(default, alias = "ip4_cidr")]
    pub guest_ip4_cidr: Option<String>,
    #[serde(default, alias = "ip6_cidr")]
    pub guest_ip6_cidr: Option<String>,
    /// e.g. `{"EBGP_MultiHop": "2"}`.
    #[serde(default)]
    pub details: Option<BTreeMap<String, String>>,
}

impl std::fmt::Debug for VmData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let files: Vec<String> = self
            .vm_metadata
            .iter()
            .map(|t| {
                t.0.iter()
                    .take(2)
                    .flatten()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("/")
            })
            .collect();
        f.debug_struct("VmData")
            .field("vm_ip_address", &self.vm_ip_address)
            .field("vm_metadata", &files)
            .finish()
    }
}
