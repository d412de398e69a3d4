//! Value checks shared by every CloudStack payload type. Each check records a
//! [`FieldError`] naming the JSON path and the offending value and returns `None`, so one pass
//! reports every bad value of a payload instead of the first only.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::{IpNet, Ipv4Net};
use vr_nat::PortRange;

use crate::error::{FieldError, Invalid};
use crate::state::MacAddr;

/// Collects the errors of one payload.
#[derive(Debug, Default)]
pub struct Errors(pub Vec<FieldError>);

impl Errors {
    /// Records an error; past [`MAX_ERRORS`](crate::error::MAX_ERRORS) only counts it.
    pub fn push(&mut self, path: impl Into<String>, value: impl fmt::Display, reason: &str) {
        Invalid::push_capped(&mut self.0, || FieldError::new(path, value, reason));
    }

    pub fn finish(self) -> Result<(), Invalid> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Invalid(self.0))
        }
    }

    /// Ok(v) when nothing was recorded.
    pub fn into_result<T>(self, v: T) -> Result<T, Invalid> {
        self.finish().map(|()| v)
    }
}

/// How a string value is quoted in errors (JSON-like, as `parse_strict` quotes values).
/// Only as much of `s` is quoted as an error shows (a 10 MB value is not copied to be cut).
pub fn q(s: &str) -> String {
    let head = match s.char_indices().nth(crate::excerpt::MAX_QUOTE) {
        Some((i, _)) => &s[..i],
        None => s,
    };
    crate::excerpt::truncate(&serde_json::Value::String(head.to_string()).to_string())
}

pub fn ipv4(e: &mut Errors, path: &str, s: &str) -> Option<Ipv4Addr> {
    match s.trim().parse::<Ipv4Addr>() {
        Ok(a) => Some(a),
        Err(_) => {
            e.push(path, q(s), "not an IPv4 address");
            None
        }
    }
}

/// Absent or empty means "not given" (CloudStack sends `""` for unset strings).
pub fn opt_ipv4(e: &mut Errors, path: &str, s: Option<&str>) -> Option<Ipv4Addr> {
    match s {
        Some(s) if !s.trim().is_empty() => ipv4(e, path, s),
        _ => None,
    }
}

pub fn ip_any(e: &mut Errors, path: &str, s: &str) -> Option<IpAddr> {
    match s.trim().parse::<IpAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            e.push(path, q(s), "not an IP address");
            None
        }
    }
}

/// A dotted netmask (`255.255.255.0`); only contiguous masks are netmasks.
pub fn netmask(e: &mut Errors, path: &str, s: &str) -> Option<u8> {
    let Ok(m) = s.trim().parse::<Ipv4Addr>() else {
        e.push(path, q(s), "not a dotted netmask");
        return None;
    };
    let bits = u32::from(m);
    let len = bits.leading_ones();
    if bits.checked_shl(len).unwrap_or(0) != 0 {
        e.push(path, q(s), "netmask is not contiguous");
        return None;
    }
    Some(len as u8)
}

/// A prefix length written as a string (`"24"`), as `guestnetwork.cidr` and
/// `networkacl.nic_netmask` carry it.
pub fn prefix_len(e: &mut Errors, path: &str, s: &str) -> Option<u8> {
    match s.trim().parse::<u8>() {
        Ok(n) if n <= 32 => Some(n),
        _ => {
            e.push(path, q(s), "not a prefix length 0-32");
            None
        }
    }
}

pub fn cidr4(e: &mut Errors, path: &str, s: &str) -> Option<Ipv4Net> {
    match s.trim().parse::<Ipv4Net>() {
        Ok(n) => Some(n),
        Err(_) => {
            e.push(path, q(s), "not an IPv4 CIDR (a.b.c.d/len)");
            None
        }
    }
}

/// An IPv4 or IPv6 CIDR (IPv6 firewall rules and IPv6 guest fields).
pub fn cidr_any(e: &mut Errors, path: &str, s: &str) -> Option<IpNet> {
    match s.trim().parse::<IpNet>() {
        Ok(n) => Some(n),
        Err(_) => {
            e.push(path, q(s), "not a CIDR");
            None
        }
    }
}

pub fn cidr6(e: &mut Errors, path: &str, s: &str) -> Option<IpNet> {
    match s.trim().parse::<IpNet>() {
        Ok(n @ IpNet::V6(_)) => Some(n),
        _ => {
            e.push(path, q(s), "not an IPv6 CIDR");
            None
        }
    }
}

/// A comma-joined CIDR list; empty entries are skipped (CloudStack joins with a trailing comma
/// sometimes).
pub fn cidr4_list(e: &mut Errors, path: &str, s: &str) -> Vec<Ipv4Net> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.parse::<Ipv4Net>() {
            Ok(n) => out.push(n),
            Err(_) => e.push(path, q(s), &format!("{part:?} is not an IPv4 CIDR")),
        }
    }
    out
}

pub fn mac(e: &mut Errors, path: &str, s: &str) -> Option<MacAddr> {
    match s.trim().parse::<MacAddr>() {
        Ok(m) => Some(m),
        Err(_) => {
            e.push(path, q(s), "not a MAC address (aa:bb:cc:dd:ee:ff)");
            None
        }
    }
}

pub fn opt_mac(e: &mut Errors, path: &str, s: Option<&str>) -> Option<MacAddr> {
    match s {
        Some(s) if !s.trim().is_empty() => mac(e, path, s),
        _ => None,
    }
}

fn port(e: &mut Errors, path: &str, whole: &str, n: i64) -> Option<u16> {
    match u16::try_from(n) {
        Ok(p) if p >= 1 => Some(p),
        _ => {
            e.push(path, whole, "port out of range 1-65535");
            None
        }
    }
}

/// `"start:end"` (CloudStack's forward ranges), also a single port.
pub fn port_range_str(e: &mut Errors, path: &str, s: &str) -> Option<PortRange> {
    let (a, b) = s.split_once(':').unwrap_or((s, s));
    let (Ok(a), Ok(b)) = (a.trim().parse::<i64>(), b.trim().parse::<i64>()) else {
        e.push(path, q(s), "not a port range start:end");
        return None;
    };
    range(e, path, &q(s), a, b)
}

/// `[start, end]` (firewall rules).
pub fn port_pair(e: &mut Errors, path: &str, pair: &[i64]) -> Option<PortRange> {
    let whole = format!("{pair:?}");
    match pair {
        [a, b] => range(e, path, &whole, *a, *b),
        _ => {
            e.push(path, whole, "not a port range [start, end]");
            None
        }
    }
}

fn range(e: &mut Errors, path: &str, whole: &str, a: i64, b: i64) -> Option<PortRange> {
    let (a, b) = (port(e, path, whole, a)?, port(e, path, whole, b)?);
    if a > b {
        e.push(path, whole, "inverted port range (start > end)");
        return None;
    }
    Some(PortRange { start: a, end: b })
}

/// ICMP type or code: -1 = any (`None`), else 0-255.
pub fn icmp(e: &mut Errors, path: &str, v: Option<i64>) -> Option<u8> {
    match v {
        None | Some(-1) => None,
        Some(n) => match u8::try_from(n) {
            Ok(n) => Some(n),
            Err(_) => {
                e.push(path, n, "ICMP type/code out of range 0-255 (-1 = any)");
                None
            }
        },
    }
}

/// Interface names (`ethN` and the like): `^[A-Za-z0-9][A-Za-z0-9_.:-]{0,14}$`.
pub fn ifname(e: &mut Errors, path: &str, s: &str) -> bool {
    let ok = crate::validate::is_valid_ifname(s);
    if !ok {
        e.push(path, q(s), "invalid interface name");
    }
    ok
}

/// Free text that may end up in a config file (domain names, host names, cmdline values):
/// no control characters and none of the characters that end or open a config statement.
pub fn plain(e: &mut Errors, path: &str, s: &str) -> bool {
    let bad = s.chars().find(|c| {
        c.is_control()
            || matches!(
                c,
                '"' | '\'' | '{' | '}' | '!' | '#' | ';' | '\\' | '`' | '$'
            )
    });
    if let Some(c) = bad {
        e.push(path, q(s), &format!("forbidden character {c:?}"));
        return false;
    }
    true
}

/// A DNS-style name (domain, host name): letters, digits, `-`, `.`, `_`.
pub fn dns_name(e: &mut Errors, path: &str, s: &str) -> bool {
    let ok = s.len() <= 253
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
    if !ok {
        e.push(path, q(s), "not a DNS name");
    }
    ok
}

const CIPHERS: &[&str] = &[
    "3des",
    "aes128",
    "aes192",
    "aes256",
    "aes128ctr",
    "aes192ctr",
    "aes256ctr",
    "aes128gcm8",
    "aes128gcm12",
    "aes128gcm16",
    "aes192gcm16",
    "aes256gcm8",
    "aes256gcm12",
    "aes256gcm16",
    "aes128ccm16",
    "aes256ccm16",
    "chacha20poly1305",
    "camellia128",
    "camellia256",
];
const HASHES: &[&str] = &[
    "md5", "sha1", "sha256", "sha384", "sha512", "sha2_256", "sha2_384", "sha2_512", "aesxcbc",
];
const GROUPS: &[&str] = &[
    "modp1024",
    "modp1536",
    "modp2048",
    "modp3072",
    "modp4096",
    "modp6144",
    "modp8192",
    "ecp256",
    "ecp384",
    "ecp521",
    "curve25519",
    "x25519",
    "curve448",
    "x448",
];

/// Syntax check of a CloudStack IKE/ESP policy: proposals separated by `,`, each
/// `cipher-hash[;group]` (AEAD ciphers may omit the hash). vr-vpn owns the authoritative
/// check when it renders the proposal; this one keeps unknown algorithms and config
/// metacharacters out of the stored state.
pub fn policy(e: &mut Errors, path: &str, s: &str) {
    if s.trim().is_empty() {
        e.push(path, q(s), "empty policy");
        return;
    }
    for prop in s.split(',') {
        let prop = prop.trim().to_ascii_lowercase();
        let (algs, group) = match prop.split_once(';') {
            Some((a, g)) => (a.to_string(), Some(g.to_string())),
            None => (prop.clone(), None),
        };
        let mut parts = algs.split('-');
        let cipher = parts.next().unwrap_or("");
        if !CIPHERS.contains(&cipher) {
            e.push(path, q(s), &format!("unknown cipher {cipher:?}"));
            continue;
        }
        let aead = cipher.contains("gcm") || cipher.contains("ccm") || cipher.contains("poly");
        let mut saw_hash = false;
        let mut group = group;
        for p in parts {
            if HASHES.contains(&p) {
                saw_hash = true;
            } else if GROUPS.contains(&p) && group.is_none() {
                // strongSwan spelling `aes128-sha1-modp1536` is accepted too.
                group = Some(p.to_string());
            } else {
                e.push(path, q(s), &format!("unknown hash {p:?}"));
            }
        }
        if !saw_hash && !aead {
            e.push(path, q(s), &format!("proposal {prop:?} has no hash"));
        }
        if let Some(g) = group {
            if !GROUPS.contains(&g.as_str()) {
                e.push(path, q(s), &format!("unknown DH group {g:?}"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one<T>(f: impl FnOnce(&mut Errors) -> T) -> (T, Vec<FieldError>) {
        let mut e = Errors::default();
        let v = f(&mut e);
        (v, e.0)
    }

    #[test]
    fn netmasks_must_be_contiguous() {
        assert_eq!(one(|e| netmask(e, "m", "255.255.255.0")).0, Some(24));
        assert_eq!(one(|e| netmask(e, "m", "0.0.0.0")).0, Some(0));
        assert_eq!(one(|e| netmask(e, "m", "255.255.255.255")).0, Some(32));
        let (v, errs) = one(|e| netmask(e, "x.netmask", "255.0.255.0"));
        assert_eq!(v, None);
        assert_eq!(errs[0].path, "x.netmask");
        assert_eq!(errs[0].value, "\"255.0.255.0\"");
        assert!(errs[0].reason.contains("contiguous"));
        assert!(one(|e| netmask(e, "m", "24")).0.is_none());
    }

    #[test]
    fn addresses_cidrs_macs() {
        assert!(one(|e| ipv4(e, "a", "10.1.1.300")).0.is_none());
        assert!(one(|e| cidr4(e, "a", "10.1.1.0/33")).0.is_none());
        assert!(one(|e| cidr4(e, "a", "10.1.1.0")).0.is_none());
        assert!(one(|e| mac(e, "a", "02:00:0a:01:01")).0.is_none());
        assert!(one(|e| prefix_len(e, "a", "33")).0.is_none());
        let (v, errs) = one(|e| cidr4_list(e, "l", "10.0.0.0/8, ,192.168.0.0/16,"));
        assert_eq!(v.len(), 2);
        assert!(errs.is_empty());
        let (_, errs) = one(|e| cidr4_list(e, "l", "10.0.0.0/8,nope"));
        assert!(errs[0].reason.contains("nope"));
    }

    #[test]
    fn port_ranges() {
        let r = one(|e| port_range_str(e, "p", "8000:8100")).0.unwrap();
        assert_eq!((r.start, r.end), (8000, 8100));
        assert_eq!(one(|e| port_range_str(e, "p", "22")).0.unwrap().start, 22);
        for bad in ["0:10", "1:65536", "90:80", "a:b", "-1:5"] {
            let (v, errs) = one(|e| port_range_str(e, "p", bad));
            assert!(v.is_none(), "{bad}");
            assert_eq!(errs[0].value, q(bad));
        }
        assert!(one(|e| port_pair(e, "p", &[80, 79])).0.is_none());
        assert!(one(|e| port_pair(e, "p", &[80])).0.is_none());
        assert!(one(|e| port_pair(e, "p", &[1, 65535])).0.is_some());
    }

    #[test]
    fn icmp_any_and_range() {
        assert_eq!(one(|e| icmp(e, "t", Some(-1))).0, None);
        assert_eq!(one(|e| icmp(e, "t", Some(8))).0, Some(8));
        assert_eq!(one(|e| icmp(e, "t", Some(256))).1[0].value, "256");
        assert_eq!(one(|e| icmp(e, "t", Some(-2))).1.len(), 1);
    }

    #[test]
    fn names_and_text() {
        assert!(one(|e| ifname(e, "d", "eth2")).0);
        assert!(!one(|e| ifname(e, "d", "eth2; rm")).0);
        assert!(!one(|e| ifname(e, "d", "")).0);
        assert!(!one(|e| plain(e, "d", "a\nb")).0);
        assert!(!one(|e| plain(e, "d", "a}b")).0);
        assert!(one(|e| dns_name(e, "d", "cs1cloud.internal")).0);
        assert!(!one(|e| dns_name(e, "d", "a b")).0);
    }

    #[test]
    fn policies() {
        for ok in [
            "aes128-sha1;modp1536",
            "aes256-sha256",
            "3des-md5;modp1024,aes128-sha1;modp1536",
            "aes256gcm16;ecp384",
            "aes128-sha1-modp2048",
        ] {
            assert!(one(|e| policy(e, "p", ok)).1.is_empty(), "{ok}");
        }
        for (bad, word) in [
            ("des-sha1;modp1536", "cipher"),
            ("aes128-sha3;modp1536", "hash"),
            ("aes128-sha1;modp999", "DH group"),
            ("aes128", "no hash"),
            ("", "empty"),
        ] {
            let errs = one(|e| policy(e, "ike_policy", bad)).1;
            assert!(errs[0].reason.contains(word), "{bad}: {errs:?}");
        }
    }
}
