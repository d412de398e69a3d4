//! The native `dhcp` section: which guest networks the router serves addresses and names on,
//! and the static hosts it serves them to.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// DHCP and DNS for the guest networks (dnsmasq). No network: no dnsmasq.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DhcpSection {
    /// The guest networks served, one per guest NIC.
    #[serde(default)]
    pub networks: Vec<DhcpNetwork>,
    /// Static leases; a host belongs to the network whose prefix holds its address.
    #[serde(default)]
    pub hosts: Vec<DhcpHost>,
    /// Resolvers names outside the guest domains are forwarded to (the zone's DNS).
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub upstream_dns: Vec<Ipv4Addr>,
}

/// One guest network the router is the DHCP server and resolver of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DhcpNetwork {
    /// The guest NIC (DHCP and DNS answer on it only).
    pub device: String,
    /// The router's address on it, with the network's prefix length.
    #[schemars(with = "String")]
    pub address: Ipv4Net,
    /// Option 3; default: the router's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub gateway: Option<Ipv4Addr>,
    /// Option 6; empty: the router itself (it serves DNS).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<String>")]
    pub dns: Vec<Ipv4Addr>,
    /// Option 15, and the domain every host name of the network is also known under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Option 26, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// Further subnets served on the same NIC (IP aliases of a shared network, CloudStack's
    /// `ipaliases` and `dhcpconfig`), each with its own router and DNS options.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_ranges: Vec<ExtraRange>,
    /// The router's IPv6 address on the NIC with the guest prefix length: DHCPv6 (stateful,
    /// static) is served on that prefix to the hosts that have an `ipv6` and a `duid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub address6: Option<Ipv6Net>,
}

/// One more subnet served on a guest NIC. Written either as the router's address on it with
/// the prefix (`"10.1.2.1/24"`) or as an object that also names the subnet's gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(from = "RangeWire")]
pub struct ExtraRange {
    /// The router's address in the subnet, with its prefix length (`10.1.2.1/24`). With the
    /// host part zero (`10.1.3.0/25`) the router has no address there: the subnet is served
    /// and routed through the network's own router address.
    #[schemars(with = "String")]
    pub address: Ipv4Net,
    /// Option 3 for hosts of this subnet; default: the router's address in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub gateway: Option<Ipv4Addr>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(untagged)]
enum RangeWire {
    Cidr(#[schemars(with = "String")] Ipv4Net),
    Full(RangeObject),
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RangeObject {
    #[schemars(with = "String")]
    address: Ipv4Net,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    gateway: Option<Ipv4Addr>,
}

impl From<RangeWire> for ExtraRange {
    fn from(w: RangeWire) -> Self {
        match w {
            RangeWire::Cidr(address) => ExtraRange {
                address,
                gateway: None,
            },
            RangeWire::Full(o) => ExtraRange {
                address: o.address,
                gateway: o.gateway,
            },
        }
    }
}

impl ExtraRange {
    /// The router's own address in this subnet, if it has one.
    pub fn router(&self) -> Option<Ipv4Addr> {
        (self.address.addr() != self.address.network()).then(|| self.address.addr())
    }
}

/// One static lease.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DhcpHost {
    /// `aa:bb:cc:dd:ee:ff`, lowercase.
    pub mac: String,
    #[schemars(with = "String")]
    pub ipv4: Ipv4Addr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// False for a VM's non-default NIC: it gets an address but no router, DNS or domain.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub default_nic: bool,
    /// Its DHCPv6 address (dual-stack guests); served to the client whose DUID is `duid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub ipv6: Option<Ipv6Addr>,
    /// The DHCPv6 client's DUID, hex bytes separated by colons, lowercase
    /// (`00:03:00:01:02:00:0a:01:00:0b`: DUID-LL of that MAC, as CloudStack computes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duid: Option<String>,
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

impl DhcpSection {
    /// Nothing to serve.
    pub fn is_empty(&self) -> bool {
        self.networks.is_empty() && self.hosts.is_empty() && self.upstream_dns.is_empty()
    }

    /// The network whose prefix (or extra range) holds `ip`.
    pub fn network_of(&self, ip: Ipv4Addr) -> Option<&DhcpNetwork> {
        self.networks.iter().find(|n| n.serves(ip))
    }

    /// Adds or replaces the host with this MAC (and drops any other host holding its address).
    pub fn upsert_host(&mut self, host: DhcpHost) {
        self.hosts
            .retain(|h| h.mac != host.mac && h.ipv4 != host.ipv4);
        self.hosts.push(host);
    }

    /// Adds or replaces the network on this device.
    pub fn upsert_network(&mut self, net: DhcpNetwork) {
        match self.networks.iter_mut().find(|n| n.device == net.device) {
            Some(n) => *n = net,
            None => self.networks.push(net),
        }
    }
}

impl DhcpNetwork {
    pub fn serves(&self, ip: Ipv4Addr) -> bool {
        self.address.trunc().contains(&ip)
            || self
                .extra_ranges
                .iter()
                .any(|r| r.address.trunc().contains(&ip))
    }

    /// The dnsmasq tag of this network's range and options.
    pub fn tag(&self) -> String {
        format!("net-{}", self.device)
    }

    /// The dnsmasq tag of this network's DHCPv6 range.
    pub fn tag6(&self) -> String {
        format!("net6-{}", self.device)
    }
}

/// One invalid value of the section: the field path, the value and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub value: String,
    pub reason: &'static str,
}

fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A DNS name (dot-separated labels), nothing dnsmasq's files could read as another field.
pub fn is_dns_name(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_label)
}

fn is_mac(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
        && s == s.to_ascii_lowercase()
}

/// A DUID as dnsmasq's `id:` reads it: 2 to 130 hex bytes, colon-separated, lowercase (RFC
/// 8415: type code plus at most 128 bytes).
pub fn is_duid(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    (2..=130).contains(&parts.len())
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
        && s == s.to_ascii_lowercase()
}

fn is_ifname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 15
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Every value check of the section (the renderer relies on them: no value can break a line).
pub fn validate(s: &DhcpSection) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut bad = |path: String, value: String, reason: &'static str| {
        out.push(Problem {
            path,
            value,
            reason,
        })
    };
    let mut devices = std::collections::BTreeSet::new();
    for (i, n) in s.networks.iter().enumerate() {
        let p = format!("dhcp.networks[{i}]");
        if !is_ifname(&n.device) {
            bad(
                format!("{p}.device"),
                n.device.clone(),
                "invalid interface name",
            );
        } else if !devices.insert(n.device.clone()) {
            bad(
                format!("{p}.device"),
                n.device.clone(),
                "network listed twice",
            );
        }
        if n.address.prefix_len() > 30 {
            bad(
                format!("{p}.address"),
                n.address.to_string(),
                "prefix too long to serve addresses",
            );
        }
        if let Some(d) = &n.domain {
            if !is_dns_name(d) {
                bad(format!("{p}.domain"), d.clone(), "invalid domain name");
            }
        }
        if let Some(m) = n.mtu {
            if !(576..=65535).contains(&m) {
                bad(format!("{p}.mtu"), m.to_string(), "MTU out of 576-65535");
            }
        }
        let mut subnets = vec![n.address.trunc()];
        for (j, r) in n.extra_ranges.iter().enumerate() {
            let rp = format!("{p}.extra_ranges[{j}]");
            if r.address.prefix_len() > 30 {
                bad(
                    format!("{rp}.address"),
                    r.address.to_string(),
                    "prefix too long to serve addresses",
                );
            } else if subnets
                .iter()
                .any(|s| s.contains(&r.address.trunc()) || r.address.trunc().contains(s))
            {
                bad(
                    format!("{rp}.address"),
                    r.address.to_string(),
                    "overlaps another subnet of this network",
                );
            }
            subnets.push(r.address.trunc());
            if let Some(g) = r.gateway {
                if !r.address.trunc().contains(&g) {
                    bad(
                        format!("{rp}.gateway"),
                        g.to_string(),
                        "gateway outside its subnet",
                    );
                }
            }
        }
        if let Some(a6) = n.address6 {
            if a6.prefix_len() > 124 {
                bad(
                    format!("{p}.address6"),
                    a6.to_string(),
                    "prefix too long to serve addresses",
                );
            }
        }
    }
    let mut macs = std::collections::BTreeSet::new();
    let mut ips = std::collections::BTreeSet::new();
    let mut ips6 = std::collections::BTreeSet::new();
    let mut duids = std::collections::BTreeSet::new();
    for (i, h) in s.hosts.iter().enumerate() {
        let p = format!("dhcp.hosts[{i}]");
        if !is_mac(&h.mac) {
            bad(
                format!("{p}.mac"),
                h.mac.clone(),
                "invalid MAC address (aa:bb:cc:dd:ee:ff, lowercase)",
            );
        } else if !macs.insert(h.mac.clone()) {
            bad(format!("{p}.mac"), h.mac.clone(), "MAC listed twice");
        }
        if !ips.insert(h.ipv4) {
            bad(
                format!("{p}.ipv4"),
                h.ipv4.to_string(),
                "address listed twice",
            );
        }
        if let Some(name) = &h.hostname {
            if !is_label(name) {
                bad(
                    format!("{p}.hostname"),
                    name.clone(),
                    "invalid host name (one DNS label)",
                );
            }
        }
        if let Some(d) = &h.duid {
            if !is_duid(d) {
                bad(
                    format!("{p}.duid"),
                    d.clone(),
                    "invalid DUID (2-130 hex bytes aa:bb:..., lowercase)",
                );
            } else if !duids.insert(d.clone()) {
                bad(format!("{p}.duid"), d.clone(), "DUID listed twice");
            }
        }
        if let Some(a) = h.ipv6 {
            if h.duid.is_none() {
                bad(
                    format!("{p}.ipv6"),
                    a.to_string(),
                    "IPv6 address without a duid (DHCPv6 identifies a client by its DUID)",
                );
            }
            if !ips6.insert(a) {
                bad(format!("{p}.ipv6"), a.to_string(), "address listed twice");
            } else if a.is_unspecified()
                || a.is_loopback()
                || a.is_multicast()
                || (a.segments()[0] & 0xffc0) == 0xfe80
            {
                bad(
                    format!("{p}.ipv6"),
                    a.to_string(),
                    "not a global or unique-local unicast address",
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_field_and_value() {
        let s: DhcpSection = serde_json::from_str(
            r#"{"networks":[{"device":"eth0","address":"10.1.1.1/24","domain":"bad domain"}],
               "hosts":[{"mac":"02:00:00:00:00:0A","ipv4":"10.1.1.10","hostname":"a,b"}]}"#,
        )
        .unwrap();
        let p = validate(&s);
        let paths: Vec<&str> = p.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "dhcp.networks[0].domain",
                "dhcp.hosts[0].mac",
                "dhcp.hosts[0].hostname"
            ]
        );
        assert_eq!(p[2].value, "a,b");
    }

    #[test]
    fn no_value_can_add_a_dnsmasq_directive() {
        // Each string field, given a line break, a comma, a `#` or a path separator: every
        // one is rejected with its path and value (the renderer writes values verbatim).
        let hostile = [
            "x\ndhcp-script=/tmp/x",
            "x,set:evil",
            "x#",
            "../x",
            "x y",
            "",
        ];
        for h in hostile {
            let mut s: DhcpSection = serde_json::from_str(
                r#"{"networks":[{"device":"eth0","address":"10.1.1.1/24","domain":"a.test"}],
                   "hosts":[{"mac":"02:00:00:00:00:0a","ipv4":"10.1.1.10","hostname":"vm"}]}"#,
            )
            .unwrap();
            let clean = s.clone();
            s.networks[0].device = h.into();
            s.networks[0].domain = Some(h.into());
            s.hosts[0].hostname = Some(h.into());
            s.hosts[0].mac = h.into();
            let p = validate(&s);
            let paths: Vec<&str> = p.iter().map(|p| p.path.as_str()).collect();
            assert_eq!(
                paths,
                [
                    "dhcp.networks[0].device",
                    "dhcp.networks[0].domain",
                    "dhcp.hosts[0].mac",
                    "dhcp.hosts[0].hostname"
                ],
                "{h:?}"
            );
            assert!(p.iter().all(|p| p.value == h), "{h:?}");
            assert!(validate(&clean).is_empty());
        }
    }

    #[test]
    fn extra_ranges_read_both_forms_and_are_checked() {
        let s: DhcpSection = serde_json::from_str(
            r#"{"networks":[{"device":"eth0","address":"10.1.1.1/24","extra_ranges":
                ["10.1.2.1/24",{"address":"10.1.3.1/24","gateway":"10.1.3.254"},
                 {"address":"10.1.1.128/25"},{"address":"10.1.4.1/24","gateway":"10.9.9.9"}]}]}"#,
        )
        .unwrap();
        let r = &s.networks[0].extra_ranges;
        assert_eq!(r[0].router(), Some(Ipv4Addr::new(10, 1, 2, 1)));
        assert_eq!(r[1].gateway, Some(Ipv4Addr::new(10, 1, 3, 254)));
        assert!(s.network_of(Ipv4Addr::new(10, 1, 3, 7)).is_some());
        let p: Vec<(String, String)> = validate(&s)
            .into_iter()
            .map(|p| (p.path, p.value))
            .collect();
        assert_eq!(
            p,
            [
                (
                    "dhcp.networks[0].extra_ranges[2].address".to_string(),
                    "10.1.1.128/25".to_string()
                ),
                (
                    "dhcp.networks[0].extra_ranges[3].gateway".to_string(),
                    "10.9.9.9".to_string()
                )
            ]
        );
        assert!(serde_json::from_str::<DhcpSection>(
            r#"{"networks":[{"device":"eth0","address":"10.1.1.1/24","extra_ranges":[{"address":"10.1.2.1/24","x":1}]}]}"#
        )
        .is_err());
    }

    #[test]
    fn dhcpv6_fields_are_checked_with_field_and_value() {
        let s: DhcpSection = serde_json::from_str(
            r#"{"networks":[{"device":"eth0","address":"10.1.1.1/24","address6":"2001:db8::1/126"}],
               "hosts":[{"mac":"02:00:00:00:00:0a","ipv4":"10.1.1.10","ipv6":"2001:db8::a"},
                        {"mac":"02:00:00:00:00:0b","ipv4":"10.1.1.11","ipv6":"fe80::b","duid":"00:03:00:01:02:00:00:00:00:0B"},
                        {"mac":"02:00:00:00:00:0c","ipv4":"10.1.1.12","ipv6":"2001:db8::c","duid":"00:03\n"}]}"#,
        )
        .unwrap();
        let p: Vec<(String, String)> = validate(&s)
            .into_iter()
            .map(|p| (p.path, p.value))
            .collect();
        let want = [
            ("dhcp.networks[0].address6", "2001:db8::1/126"),
            ("dhcp.hosts[0].ipv6", "2001:db8::a"),
            ("dhcp.hosts[1].duid", "00:03:00:01:02:00:00:00:00:0B"),
            ("dhcp.hosts[1].ipv6", "fe80::b"),
            ("dhcp.hosts[2].duid", "00:03\n"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(p, want);
        assert!(is_duid("00:03:00:01:02:00:0a:01:00:0b"));
        assert!(!is_duid("00"));
    }

    #[test]
    fn upsert_replaces_by_mac_and_address() {
        let mut s = DhcpSection::default();
        let h = |mac: &str, ip: &str| DhcpHost {
            mac: mac.into(),
            ipv4: ip.parse().unwrap(),
            hostname: None,
            default_nic: true,
            ipv6: None,
            duid: None,
        };
        s.upsert_host(h("02:00:00:00:00:01", "10.0.0.1"));
        s.upsert_host(h("02:00:00:00:00:02", "10.0.0.2"));
        s.upsert_host(h("02:00:00:00:00:01", "10.0.0.3"));
        s.upsert_host(h("02:00:00:00:00:09", "10.0.0.2"));
        let mut got: Vec<String> = s.hosts.iter().map(|h| h.ipv4.to_string()).collect();
        got.sort();
        assert_eq!(got, ["10.0.0.2", "10.0.0.3"]);
    }
}
