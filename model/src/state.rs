//! The native state document (what a push carries) and the desired state (what is stored and
//! applied). A push carries any subset of sections; each section present replaces the previous
//! one whole ([`DesiredState::merge_native`]).

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

use vr_guest::{DhcpSection, MetadataSection, PasswordSection};
use vr_ha::{HaRole, HaSection};
use vr_lb::LbSection;
use vr_nat::v6::Firewall6Section;
use vr_nat::{FirewallSection, NatSection, TierAcl};
use vr_ospf::bgp::BgpSection;
use vr_ospf::OspfSection;
use vr_vpn::VpnSection;

use crate::monitor::MonitorSection;

/// The only schema version this agent reads.
pub const SCHEMA_VERSION: u32 = 1;

/// A native push: `{"schema": 1, ...sections}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "vr-agent native state document")]
pub struct StateDocument {
    /// Must be 1.
    pub schema: u32,
    /// The router's NICs with the addresses the agent owns on them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interfaces: Option<Vec<Interface>>,
    /// Static routes (main table unless `table` says otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routes: Option<Vec<Route>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nat: Option<NatSection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firewall: Option<FirewallSection>,
    /// The IPv6 filter of the routed guest prefixes (table `ip6 vr`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firewall6: Option<Firewall6Section>,
    /// VPC network ACLs, one entry per tier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acls: Option<Vec<TierAcl>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpn: Option<VpnSection>,
    /// `null` removes OSPF; absent leaves it as it is.
    #[serde(
        default,
        deserialize_with = "present_or_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub ospf: Option<Option<OspfSection>>,
    /// `null` removes BGP; absent leaves it as it is.
    #[serde(
        default,
        deserialize_with = "present_or_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub bgp: Option<Option<BgpSection>>,
    /// Kernel sizing the operator wants instead of the agent's defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<KernelSection>,
    /// DHCP and DNS for the guest networks (dnsmasq).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dhcp: Option<DhcpSection>,
    /// User data and metadata served to guests, by VM address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<MetadataSection>,
    /// Passwords for guests to fetch once, by VM address (secrets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passwords: Option<PasswordSection>,
    /// How the usage (billing) counters tell guest traffic apart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<UsageSection>,
    /// Load balancing (haproxy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lb: Option<LbSection>,
    /// The redundant pair (keepalived + conntrackd); `null` makes the router single again.
    #[serde(
        default,
        deserialize_with = "present_or_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub ha: Option<Option<HaSection>>,
    /// The role keepalived gave this router (`vr-agent ha primary|backup|fault` sends it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ha_role: Option<HaRole>,
    /// Service supervision and health checks (CloudStack's `monitorservice`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor: Option<MonitorSection>,
}

/// Conntrack sizing and timeouts; each unset key keeps the config file's value, else the
/// agent's default (table sized from the VM's memory, one-day established TCP timeout).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct KernelSection {
    /// `net.netfilter.nf_conntrack_max` (1,024-16,777,216).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conntrack_max: Option<u64>,
    /// `net.netfilter.nf_conntrack_buckets`, the hash size (1,024-16,777,216).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conntrack_buckets: Option<u64>,
    /// `nf_conntrack_tcp_timeout_established`, seconds (60-2,592,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_established_timeout: Option<u64>,
    /// `nf_conntrack_udp_timeout`, seconds (1-86,400).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udp_timeout: Option<u64>,
    /// `nf_conntrack_udp_timeout_stream`, seconds (1-86,400).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udp_stream_timeout: Option<u64>,
}

/// Distinguishes an absent key (`None`, via `default`) from an explicit `null` (`Some(None)`).
fn present_or_null<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// The role of a NIC, as CloudStack assigns them.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum InterfaceRole {
    /// Link-local control network (CloudStack SSH on 3922 comes in here).
    Control,
    /// A public network (source NAT, port forwards, static NAT, VPN).
    Public,
    /// A guest network or VPC tier the router is the gateway of.
    Guest,
    /// A VPC private gateway.
    PrivateGateway,
}

/// One NIC of the router.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Interface {
    /// Kernel name, e.g. `eth2`. When `mac` is given and a local NIC has it, that NIC wins.
    pub device: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<MacAddr>,
    pub role: InterfaceRole,
    /// Addresses with prefix length, e.g. `192.0.2.10/24`.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub addresses: Vec<Ipv4Net>,
    /// Next hop of this network (public: the default route goes through it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<Ipv4Addr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// IPv6 addresses with prefix length (guest: the gateway of a routed prefix, which
    /// router advertisements announce on this NIC).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<String>")]
    pub addresses6: Vec<Ipv6Net>,
    /// IPv6 next hop (public: the IPv6 default route goes through it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway6: Option<Ipv6Addr>,
}

/// `ip route replace DESTINATION via GATEWAY [dev DEVICE] [table TABLE]`
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Route {
    #[schemars(with = "String")]
    pub destination: Ipv4Net,
    pub gateway: Ipv4Addr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
}

/// An Ethernet address, `aa:bb:cc:dd:ee:ff` (lowercase when printed).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::str::FromStr for MacAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for byte in &mut out {
            let p = parts
                .next()
                .ok_or_else(|| format!("invalid MAC address {s:?}"))?;
            if p.len() != 2 {
                return Err(format!("invalid MAC address {s:?}"));
            }
            *byte = u8::from_str_radix(p, 16).map_err(|_| format!("invalid MAC address {s:?}"))?;
        }
        if parts.next().is_some() {
            return Err(format!("invalid MAC address {s:?}"));
        }
        Ok(MacAddr(out))
    }
}

impl Serialize for MacAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for MacAddr {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "MacAddr".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$"
        })
    }
}

/// What the agent keeps applied: every section, plus CloudStack context that has no native
/// section yet. Stored in `state.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DesiredState {
    #[serde(default)]
    pub interfaces: Vec<Interface>,
    #[serde(default)]
    pub routes: Vec<Route>,
    #[serde(default)]
    pub nat: NatSection,
    #[serde(default)]
    pub firewall: FirewallSection,
    /// Left out of `state.json` while empty, so states written before it existed read the same.
    #[serde(default, skip_serializing_if = "Firewall6Section::is_empty")]
    pub firewall6: Firewall6Section,
    #[serde(default)]
    pub acls: Vec<TierAcl>,
    #[serde(default)]
    pub vpn: VpnSection,
    #[serde(default)]
    pub ospf: Option<OspfSection>,
    /// BGP speaker (FRR bgpd); left out of `state.json` while unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bgp: Option<BgpSection>,
    /// Left out of `state.json` while unset, so states written before it existed read the same.
    #[serde(default, skip_serializing_if = "KernelSection::is_unset")]
    pub kernel: KernelSection,
    /// Guest DHCP and DNS; left out of `state.json` while empty, like `kernel`.
    #[serde(default, skip_serializing_if = "DhcpSection::is_empty")]
    pub dhcp: DhcpSection,
    /// Guest user data and metadata; left out of `state.json` while empty.
    #[serde(default, skip_serializing_if = "MetadataSection::is_empty")]
    pub metadata: MetadataSection,
    /// Guest passwords not yet fetched and acknowledged; left out while empty.
    #[serde(default, skip_serializing_if = "PasswordSection::is_empty")]
    pub passwords: PasswordSection,
    /// How the usage counters tell guest traffic apart; left out while unset.
    #[serde(default, skip_serializing_if = "UsageSection::is_unset")]
    pub usage: UsageSection,
    /// Load balancing; left out of `state.json` while empty.
    #[serde(default, skip_serializing_if = "LbSection::is_empty")]
    pub lb: LbSection,
    /// Service supervision and health checks; left out of `state.json` while empty.
    #[serde(default, skip_serializing_if = "MonitorSection::is_empty")]
    pub monitor: MonitorSection,
    #[serde(default)]
    pub cloudstack: CloudStackContext,
    /// The redundant pair; left out while single.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ha: Option<HaSection>,
    /// This router's role in the pair, as keepalived last reported it (persisted like any
    /// other state, so a restart comes back in the role it had).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ha_role: Option<HaRole>,
    /// Policy-routing index per public device: connmark/fwmark `100 + index` and routing table
    /// `100 + index` (CloudStack: eth2 -> 0x66). Allocated once and never reused, so conntrack
    /// entries marked before a restart keep routing the same way after it.
    #[serde(default)]
    pub policy_index: BTreeMap<String, u32>,
}

/// CloudStack data with no native section: the boot `cmdline`, and payloads of types whose
/// feature has not landed yet (validated and kept, "accepted, not yet applied").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CloudStackContext {
    /// `cmdline` key/values as pushed (all strings). Secret boot arguments (`*key`,
    /// `*password`, `*secret`) serialize as [`vr_secret::Secret`]s.
    #[serde(default, serialize_with = "crate::secrets::serialize_cmdline")]
    pub cmdline: BTreeMap<String, String>,
    /// Later-wave payloads by type, then by the payload's identity within the type. Each entry
    /// is the serialization of its typed struct; in a redacted view it is serialized through
    /// that struct again, so its [`vr_secret::Secret`] fields are hidden.
    #[serde(default, serialize_with = "crate::secrets::serialize_pending")]
    pub pending: BTreeMap<String, BTreeMap<String, serde_json::Value>>,
}

/// The usage counters (bytes in and out through each public NIC, split into guest traffic and
/// the rest, as the management server bills them): what counts as guest traffic.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct UsageSection {
    /// Traffic from or to this block is guest traffic (a VPC's CIDR, which spans every tier
    /// and the private gateways); unset: traffic through the guest NICs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub guest_cidr: Option<Ipv4Net>,
}

impl UsageSection {
    /// Nothing set: guest traffic is the guest NICs'.
    pub fn is_unset(&self) -> bool {
        *self == UsageSection::default()
    }
}

impl KernelSection {
    /// No key set: every value is the config file's or the default.
    pub fn is_unset(&self) -> bool {
        *self == KernelSection::default()
    }
}

impl DesiredState {
    /// Each section present in `doc` replaces the current one whole.
    pub fn merge_native(&self, doc: StateDocument) -> DesiredState {
        let mut next = self.clone();
        if let Some(v) = doc.interfaces {
            next.interfaces = v;
        }
        if let Some(v) = doc.routes {
            next.routes = v;
        }
        if let Some(v) = doc.nat {
            next.nat = v;
        }
        if let Some(v) = doc.firewall {
            next.firewall = v;
        }
        if let Some(v) = doc.firewall6 {
            next.firewall6 = v;
        }
        if let Some(v) = doc.acls {
            next.acls = v;
        }
        if let Some(v) = doc.vpn {
            next.vpn = v;
        }
        if let Some(v) = doc.ospf {
            next.ospf = v;
        }
        if let Some(v) = doc.bgp {
            next.bgp = v;
        }
        if let Some(v) = doc.kernel {
            next.kernel = v;
        }
        if let Some(v) = doc.dhcp {
            next.dhcp = v;
        }
        if let Some(v) = doc.metadata {
            next.metadata = v;
        }
        if let Some(v) = doc.passwords {
            next.passwords = self.passwords.replaced_by(v);
        }
        if let Some(v) = doc.usage {
            next.usage = v;
        }
        if let Some(v) = doc.lb {
            next.lb = v;
        }
        if let Some(v) = doc.ha {
            next.ha = v;
        }
        if let Some(v) = doc.ha_role {
            next.ha_role = Some(v);
        }
        if let Some(v) = doc.monitor {
            next.monitor = v;
        }
        next.allocate_policy_indexes();
        next
    }

    /// Gives every public device an index: `ethN` gets N (CloudStack's numbering), any other
    /// name the lowest index above 200 not yet used. Existing allocations are never changed.
    pub fn allocate_policy_indexes(&mut self) {
        let publics: Vec<String> = self
            .interfaces
            .iter()
            .filter(|i| i.role == InterfaceRole::Public)
            .map(|i| i.device.clone())
            .collect();
        for dev in publics {
            if self.policy_index.contains_key(&dev) {
                continue;
            }
            let used: std::collections::BTreeSet<u32> =
                self.policy_index.values().copied().collect();
            let wanted = dev
                .strip_prefix("eth")
                .and_then(|n| n.parse::<u32>().ok())
                .filter(|n| *n < 100 && !used.contains(n));
            let idx = wanted.unwrap_or_else(|| (200..).find(|n| !used.contains(n)).unwrap_or(200));
            self.policy_index.insert(dev, idx);
        }
    }

    /// The mark and table number of a public device (`100 + index`).
    pub fn policy_mark(&self, device: &str) -> Option<u32> {
        self.policy_index.get(device).map(|i| 100 + i)
    }

    /// Whether what a backup holds (public NICs, guest services, tunnel initiation) runs here:
    /// a single router, or the primary of a pair.
    pub fn ha_active(&self) -> bool {
        vr_ha::model::active(self.ha.as_ref(), self.ha_role)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_section_keeps_null_ospf_removes() {
        let doc: StateDocument = serde_json::from_str(r#"{"schema":1,"ospf":null}"#).unwrap();
        assert_eq!(doc.ospf, Some(None));
        let doc: StateDocument = serde_json::from_str(r#"{"schema":1}"#).unwrap();
        assert_eq!(doc.ospf, None);
    }

    #[test]
    fn section_replaces_whole() {
        let base = DesiredState {
            routes: vec![Route {
                destination: "10.9.0.0/16".parse().unwrap(),
                gateway: "10.1.1.254".parse().unwrap(),
                device: None,
            }],
            ..Default::default()
        };
        let doc: StateDocument = serde_json::from_str(r#"{"schema":1,"routes":[]}"#).unwrap();
        assert!(base.merge_native(doc).routes.is_empty());
        let doc: StateDocument = serde_json::from_str(r#"{"schema":1,"interfaces":[]}"#).unwrap();
        assert_eq!(base.merge_native(doc).routes.len(), 1);
    }

    #[test]
    fn policy_indexes_are_stable() {
        let doc: StateDocument = serde_json::from_str(
            r#"{"schema":1,"interfaces":[{"device":"eth2","role":"public"},{"device":"wan0","role":"public"}]}"#,
        )
        .unwrap();
        let s1 = DesiredState::default().merge_native(doc);
        assert_eq!(s1.policy_mark("eth2"), Some(102));
        assert_eq!(s1.policy_mark("wan0"), Some(300));
        let doc: StateDocument = serde_json::from_str(
            r#"{"schema":1,"interfaces":[{"device":"wan0","role":"public"}]}"#,
        )
        .unwrap();
        let s2 = s1.merge_native(doc);
        assert_eq!(s2.policy_mark("wan0"), Some(300));
        assert_eq!(s2.policy_mark("eth2"), Some(102), "kept: never reused");
    }

    #[test]
    fn mac_parses_strictly() {
        assert_eq!(
            "02:00:0A:01:01:01".parse::<MacAddr>().unwrap().to_string(),
            "02:00:0a:01:01:01"
        );
        for bad in [
            "02:00:0a:01:01",
            "02:00:0a:01:01:01:01",
            "zz:00:0a:01:01:01",
            "2:0:a:1:1:1",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
    }
}
