//! Reading the agent's table back (`nft -j list table ip vr`, once at start) to tell whether
//! the kernel already holds a desired ruleset, so a replay onto a matching system sends
//! nothing. Rules cannot be compared cheaply from JSON, so [`crate::build::build`] stamps a
//! fingerprint of the structure (chains, rules, set definitions) into a rule comment; the
//! elements are compared one by one. Anything unexpected reads as "does not match", which only
//! costs a full (atomic, conntrack-preserving) replace.

use std::collections::BTreeMap;

use serde_json::Value as Json;

use crate::ir::*;

/// Prefix of the fingerprint inside the comment of the first `pre_mark` rule.
pub const STAMP: &str = "structure ";

/// FNV-1a 64 of the table text with every element left out.
pub fn structure_fingerprint(rs: &Ruleset) -> String {
    // Built without the elements, not cloned and cleared: the build of 10,000 forwards
    // copied them for nothing, twice with the load balancer's restamp.
    let mut bare = Ruleset {
        family: rs.family,
        table: rs.table.clone(),
        sets: rs.sets.iter().map(Set::shape).collect(),
        chains: rs.chains.clone(),
    };
    // The stamp itself is not part of what it fingerprints.
    if let Some(r) = bare.chains.first_mut().and_then(|c| c.rules.first_mut()) {
        if let Some(c) = &mut r.comment {
            if let Some(i) = c.find(&format!(", {STAMP}")) {
                c.truncate(i);
            }
        }
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in crate::render::table(&bare).bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Stamps the fingerprint of `rs` as it is now into the comment of its first rule (replacing
/// any earlier stamp): a builder step that changes the structure after
/// [`crate::build::build`] (the load-balancer listeners' rule) must restamp, or the table
/// never matches its own listing and every observation replaces it (resetting its counters).
pub fn restamp(rs: &mut Ruleset) {
    let stamp = structure_fingerprint(rs);
    if let Some(first) = rs.chains.first_mut().and_then(|c| c.rules.first_mut()) {
        let mut c = first.comment.take().unwrap_or_default();
        if let Some(i) = c.find(&format!(", {STAMP}")) {
            c.truncate(i);
        }
        first.comment = Some(format!("{c}, {STAMP}{stamp}"));
    }
}

fn norm(v: Value) -> Value {
    match v {
        Value::Net(n) if n.prefix_len() == 32 => Value::Addr(n.addr()),
        Value::Net6(n) if n.prefix_len() == 128 => Value::Addr6(n.addr()),
        Value::PortRange(a, b) if a == b => Value::Port(a),
        Value::ByteRange(a, b) if a == b => Value::Byte(a),
        other => other,
    }
}

pub(crate) fn norm_el(e: &Element) -> Element {
    Element {
        key: e.key.iter().cloned().map(norm).collect(),
        data: match &e.data {
            Some(ElementData::Values(d)) => {
                Some(ElementData::Values(d.iter().cloned().map(norm).collect()))
            }
            other => other.clone(),
        },
    }
}

fn num<T: TryFrom<u64>>(v: &Json) -> Option<T> {
    v.as_u64().and_then(|n| T::try_from(n).ok())
}

fn value(v: &Json, t: DataType) -> Option<Value> {
    if let Some(p) = v.get("prefix") {
        let len = num::<u8>(&p["len"])?;
        if t == DataType::Ipv6Addr {
            let addr: std::net::Ipv6Addr = p["addr"].as_str()?.parse().ok()?;
            return ipnet::Ipv6Net::new(addr, len).ok().map(Value::Net6);
        }
        let addr: std::net::Ipv4Addr = p["addr"].as_str()?.parse().ok()?;
        return ipnet::Ipv4Net::new(addr, len).ok().map(Value::Net);
    }
    if let Some(r) = v.get("range") {
        let (a, b) = (&r[0], &r[1]);
        return match t {
            DataType::InetService => Some(Value::PortRange(num(a)?, num(b)?)),
            DataType::IcmpType
            | DataType::IcmpCode
            | DataType::Icmpv6Type
            | DataType::Icmpv6Code => Some(Value::ByteRange(num(a)?, num(b)?)),
            _ => None,
        };
    }
    match t {
        DataType::Ipv4Addr => v.as_str()?.parse().ok().map(Value::Addr),
        DataType::IfName => v.as_str().map(|s| Value::IfName(s.to_string())),
        DataType::InetProto => match v.as_str() {
            Some("tcp") => Some(Value::Proto(6)),
            Some("udp") => Some(Value::Proto(17)),
            Some("icmp") => Some(Value::Proto(1)),
            Some("esp") => Some(Value::Proto(50)),
            Some("ospf") => Some(Value::Proto(89)),
            Some("vrrp") => Some(Value::Proto(112)),
            Some(_) => None,
            None => num(v).map(Value::Proto),
        },
        DataType::InetService => num(v).map(Value::Port),
        DataType::Mark => num(v).map(Value::Mark),
        DataType::IcmpType | DataType::IcmpCode => num(v).map(Value::Byte),
        DataType::Ipv6Addr => v.as_str()?.parse().ok().map(Value::Addr6),
        DataType::Icmpv6Type | DataType::Icmpv6Code => num(v).map(Value::Byte),
    }
}

fn tuple(v: &Json, types: &[DataType]) -> Option<Vec<Value>> {
    if types.len() == 1 {
        return value(v, types[0]).map(|x| vec![x]);
    }
    let parts = v.get("concat")?.as_array()?;
    if parts.len() != types.len() {
        return None;
    }
    parts.iter().zip(types).map(|(p, t)| value(p, *t)).collect()
}

fn verdict(v: &Json) -> Option<Verdict> {
    let o = v.as_object()?;
    let (k, body) = o.iter().next()?;
    match k.as_str() {
        "accept" => Some(Verdict::Accept),
        "drop" => Some(Verdict::Drop),
        "return" => Some(Verdict::Return),
        "jump" => Some(Verdict::Jump(body["target"].as_str()?.to_string())),
        _ => None,
    }
}

pub(crate) fn element(v: &Json, set: &Set) -> Option<Element> {
    // Elements with options (counters, comments) are wrapped: {"elem": {"val": ...}}.
    let unwrap = |v: &Json| v.get("elem").map_or(v, |e| &e["val"]).clone();
    match &set.data {
        None => Some(Element {
            key: tuple(&unwrap(v), &set.key)?,
            data: None,
        }),
        Some(d) => {
            let pair = v.as_array()?;
            let key = tuple(&unwrap(pair.first()?), &set.key)?;
            let data = match d {
                SetData::Verdict => ElementData::Verdict(verdict(pair.get(1)?)?),
                SetData::Values(types) => ElementData::Values(tuple(pair.get(1)?, types)?),
            };
            Some(Element {
                key,
                data: Some(data),
            })
        }
    }
}

/// Whether the `nft -j list table` output `json` holds exactly `want`: same structure
/// fingerprint, same chains with as many rules, same sets, same elements.
pub fn matches_listing(want: &Ruleset, json: &str) -> bool {
    let Ok(doc) = serde_json::from_str::<Json>(json) else {
        return false;
    };
    let Some(objs) = doc["nftables"].as_array() else {
        return false;
    };
    let mut sets: BTreeMap<&str, &Json> = BTreeMap::new();
    let mut rules: BTreeMap<&str, Vec<&Json>> = BTreeMap::new();
    let mut chains = 0;
    for o in objs {
        if let Some(s) = o.get("set").or_else(|| o.get("map")) {
            sets.insert(s["name"].as_str().unwrap_or(""), s);
        } else if let Some(c) = o.get("chain") {
            chains += 1;
            rules.entry(c["name"].as_str().unwrap_or("")).or_default();
        } else if let Some(r) = o.get("rule") {
            rules
                .entry(r["chain"].as_str().unwrap_or(""))
                .or_default()
                .push(r);
        }
    }
    let stamp = format!("{STAMP}{}", structure_fingerprint(want));
    let stamped = rules
        .get(want.chains.first().map_or("", |c| c.name.as_str()))
        .and_then(|r| r.first())
        .and_then(|r| r["comment"].as_str())
        .is_some_and(|c| c.ends_with(&stamp));
    if !stamped || chains != want.chains.len() || sets.len() != want.sets.len() {
        return false;
    }
    let same_rules = want
        .chains
        .iter()
        .all(|c| rules.get(c.name.as_str()).map(Vec::len) == Some(c.rules.len()));
    same_rules
        && want.sets.iter().all(|s| {
            let Some(listed) = sets.get(s.name.as_str()) else {
                return false;
            };
            let empty = Vec::new();
            let raw = listed["elem"].as_array().unwrap_or(&empty);
            let got: Option<Vec<Element>> = raw.iter().map(|e| element(e, s)).collect();
            let Some(mut got) = got.map(|g| g.iter().map(norm_el).collect::<Vec<_>>()) else {
                return false;
            };
            let mut wanted: Vec<Element> = s.elements.iter().map(norm_el).collect();
            got.sort();
            wanted.sort();
            got == wanted
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::{build, GuestNetwork, PublicInterface, RouterContext};
    use crate::model::*;

    fn rs(nat: &str) -> Ruleset {
        let ctx = RouterContext {
            public: vec![PublicInterface {
                device: "eth2".into(),
                addresses: vec!["192.0.2.10".parse().unwrap()],
                mark: Some(102),
            }],
            guests: vec![GuestNetwork {
                device: "eth0".into(),
                cidr: "10.1.0.0/24".parse().unwrap(),
                router_ip: "10.1.0.1".parse().unwrap(),
            }],
            control_device: None,
            routed: Vec::new(),
            vpn_peers: vec![],
            remote_access: None,
            ospf: false,
            bgp_peers: Vec::new(),
            ha_sync_devs: vec![],
            vrrp: false,
        };
        let nat: NatSection = serde_json::from_str(nat).unwrap();
        build(&ctx, &nat, &FirewallSection::default(), &[])
    }

    #[test]
    fn fingerprint_ignores_elements_and_stamp() {
        let a = rs("{}");
        let b = rs(r#"{"static_nat":[{"public_ip":"192.0.2.11","private_ip":"10.1.0.5"}]}"#);
        assert_eq!(structure_fingerprint(&a), structure_fingerprint(&b));
        let c = a.chains[0].rules[0].comment.clone().unwrap();
        assert!(c.ends_with(&structure_fingerprint(&a)), "{c}");
    }

    #[test]
    fn listeners_added_after_the_build_are_in_the_stamp() {
        let mut a = rs("{}");
        crate::build::lb::open_listeners(&mut a, &[("192.0.2.10".parse().unwrap(), 80)]);
        let c = a.chains[0].rules[0].comment.clone().unwrap();
        assert!(c.ends_with(&structure_fingerprint(&a)), "{c}");
        assert_eq!(c.matches(STAMP).count(), 1, "{c}");
        assert_ne!(structure_fingerprint(&a), structure_fingerprint(&rs("{}")));
    }

    #[test]
    fn garbage_never_matches() {
        let a = rs("{}");
        assert!(!matches_listing(&a, "not json"));
        assert!(!matches_listing(&a, r#"{"nftables":[]}"#));
    }
}
