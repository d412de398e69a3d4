//! Pure: which NAT mappings a transition takes away, so the conntrack concern can delete
//! exactly the flows created through them (a revoked mapping must stop carrying traffic;
//! conntrack would otherwise keep NATing established flows without any rule).

use std::collections::HashSet;
use std::net::Ipv4Addr;

use crate::model::{L4Protocol, NatSection, PortForward, PortRange, StaticNat};

/// A mapping present before and gone (or changed) after.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Revoked {
    /// Flows whose original destination is `public_ip`, `protocol`, a port in `public_ports`.
    PortForward {
        public_ip: Ipv4Addr,
        protocol: L4Protocol,
        public_ports: PortRange,
    },
    /// Flows whose original destination is `public_ip` (inbound), and flows from
    /// `private_ip` source-NATed to `public_ip` (outbound).
    StaticNat {
        public_ip: Ipv4Addr,
        private_ip: Ipv4Addr,
    },
}

/// Mappings of `old` that `new` removes or changes (any change of target or allowed sources
/// counts: flows admitted under the old terms must not outlive them).
pub fn revoked(old: &NatSection, new: &NatSection) -> Vec<Revoked> {
    let forwards = middle(&old.port_forwards, &new.port_forwards);
    let mut out: Vec<Revoked> = if forwards.len() <= SCAN {
        forwards
            .iter()
            .filter(|f| !new.port_forwards.contains(f))
            .collect::<Vec<_>>()
    } else {
        // Hash lookups: a transition between two 10,000-forward states stays linear.
        let kept: HashSet<&PortForward> = new.port_forwards.iter().collect();
        forwards.iter().filter(|f| !kept.contains(f)).collect()
    }
    .into_iter()
    .map(|f| Revoked::PortForward {
        public_ip: f.public_ip,
        protocol: f.protocol,
        public_ports: f.public_ports,
    })
    .collect();
    let key = |s: &StaticNat| (s.public_ip, s.private_ip);
    let statics = middle(&old.static_nat, &new.static_nat);
    let gone: Vec<&StaticNat> = if statics.len() <= SCAN {
        statics
            .iter()
            .filter(|s| !new.static_nat.iter().any(|n| key(n) == key(s)))
            .collect()
    } else {
        let kept: HashSet<(Ipv4Addr, Ipv4Addr)> = new.static_nat.iter().map(key).collect();
        statics.iter().filter(|s| !kept.contains(&key(s))).collect()
    };
    out.extend(gone.into_iter().map(|s| Revoked::StaticNat {
        public_ip: s.public_ip,
        private_ip: s.private_ip,
    }));
    out.sort();
    out.dedup();
    out
}

/// Middles up to this long are looked up in the new list by a scan (a comparison is cheaper
/// than hashing an element; past a few elements the hash set wins).
const SCAN: usize = 8;

/// The elements of `old` that may be gone from `new`: all but the prefix and the suffix the
/// two lists share.
///
/// A push changes a few elements of a list that CloudStack re-sends whole and in its order,
/// so the two lists share a prefix and a suffix, and an element there is in `new` by
/// definition (equal elements have equal keys). Only the few between them are looked up: a
/// one-forward change at 10,000 costs one pass of comparisons instead of hashing both lists,
/// while a long middle (a reordered or replaced list) is looked up through a hash set of `new`
/// as before. The result is the same either way.
fn middle<'a, T: PartialEq>(old: &'a [T], new: &[T]) -> &'a [T] {
    let (prefix, suffix) = crate::list_ends::common_ends(old, new);
    &old[prefix..old.len() - suffix]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nat(json: &str) -> NatSection {
        serde_json::from_str(json).unwrap()
    }

    const OLD: &str = r#"{"port_forwards":[
        {"public_ip":"192.0.2.10","protocol":"tcp","public_ports":2222,"private_ip":"10.1.0.5","private_ports":22},
        {"public_ip":"192.0.2.10","protocol":"tcp","public_ports":80,"private_ip":"10.1.0.5","private_ports":80}],
      "static_nat":[{"public_ip":"192.0.2.11","private_ip":"10.1.0.6"},
                    {"public_ip":"192.0.2.12","private_ip":"10.1.0.7"}]}"#;

    #[test]
    fn unchanged_revokes_nothing() {
        assert!(revoked(&nat(OLD), &nat(OLD)).is_empty());
    }

    #[test]
    fn removed_and_changed_mappings_are_revoked() {
        let new = nat(r#"{"port_forwards":[
            {"public_ip":"192.0.2.10","protocol":"tcp","public_ports":80,"private_ip":"10.1.0.9","private_ports":80}],
          "static_nat":[{"public_ip":"192.0.2.11","private_ip":"10.1.0.6","device":"eth2"}]}"#);
        let got = revoked(&nat(OLD), &new);
        assert_eq!(
            got,
            [
                Revoked::PortForward {
                    public_ip: "192.0.2.10".parse().unwrap(),
                    protocol: L4Protocol::Tcp,
                    public_ports: PortRange::single(80),
                },
                Revoked::PortForward {
                    public_ip: "192.0.2.10".parse().unwrap(),
                    protocol: L4Protocol::Tcp,
                    public_ports: PortRange::single(2222),
                },
                Revoked::StaticNat {
                    public_ip: "192.0.2.12".parse().unwrap(),
                    private_ip: "10.1.0.7".parse().unwrap(),
                },
            ]
        );
    }

    /// The old way: hash sets of the whole lists.
    fn by_hashing(old: &NatSection, new: &NatSection) -> Vec<Revoked> {
        let kept: HashSet<&PortForward> = new.port_forwards.iter().collect();
        let kept_static: HashSet<(Ipv4Addr, Ipv4Addr)> = new
            .static_nat
            .iter()
            .map(|n| (n.public_ip, n.private_ip))
            .collect();
        let mut out: Vec<Revoked> = old
            .port_forwards
            .iter()
            .filter(|f| !kept.contains(f))
            .map(|f| Revoked::PortForward {
                public_ip: f.public_ip,
                protocol: f.protocol,
                public_ports: f.public_ports,
            })
            .collect();
        out.extend(
            old.static_nat
                .iter()
                .filter(|s| !kept_static.contains(&(s.public_ip, s.private_ip)))
                .map(|s| Revoked::StaticNat {
                    public_ip: s.public_ip,
                    private_ip: s.private_ip,
                }),
        );
        out.sort();
        out.dedup();
        out
    }

    fn forward(port: u16, to: u8) -> PortForward {
        PortForward {
            public_ip: "192.0.2.10".parse().unwrap(),
            protocol: L4Protocol::Tcp,
            public_ports: PortRange::single(port),
            private_ip: Ipv4Addr::new(10, 1, 0, to),
            private_ports: PortRange::single(80),
            source_cidrs: Vec::new(),
            device: None,
        }
    }

    fn statics(n: u8, to: u8) -> StaticNat {
        StaticNat {
            public_ip: Ipv4Addr::new(203, 0, 113, n),
            private_ip: Ipv4Addr::new(10, 2, 0, to),
            device: None,
        }
    }

    /// Trimming the shared prefix and suffix gives what hashing the whole lists gave, for
    /// short and long middles, moves, duplicates and elements that only changed place.
    #[test]
    fn trimmed_lookup_equals_hashing_the_lists() {
        let base: Vec<PortForward> = (0..40).map(|i| forward(1000 + i, i as u8)).collect();
        let sbase: Vec<StaticNat> = (0..20).map(|i| statics(i, i)).collect();
        let mut cases: Vec<(Vec<PortForward>, Vec<StaticNat>)> = Vec::new();
        let mut v = base.clone();
        v.push(forward(2000, 1));
        cases.push((v, sbase.clone()));
        let mut v = base.clone();
        v.remove(17);
        cases.push((v, sbase[1..].to_vec()));
        let mut v = base.clone();
        v[5] = forward(1005, 99);
        cases.push((v, sbase.clone()));
        // Moved, not removed: the moved element is in the new list elsewhere.
        let mut v = base.clone();
        let moved = v.remove(3);
        v.insert(30, moved);
        cases.push((v, sbase.iter().rev().cloned().collect()));
        // A long middle: every other element changed.
        let v: Vec<PortForward> = base
            .iter()
            .enumerate()
            .map(|(i, f)| {
                if i % 2 == 0 {
                    forward(1000 + i as u16, 200)
                } else {
                    f.clone()
                }
            })
            .collect();
        let s: Vec<StaticNat> = (0..20).map(|i| statics(i, i + 1)).collect();
        cases.push((v, s));
        // Duplicates on both sides, and empty lists.
        let mut v = base.clone();
        v.insert(10, base[10].clone());
        cases.push((v, vec![sbase[0].clone(), sbase[0].clone()]));
        cases.push((Vec::new(), Vec::new()));
        cases.push((base.clone(), sbase.clone()));
        for (forwards, statics) in &cases {
            let a = NatSection {
                port_forwards: base.clone().into(),
                static_nat: sbase.clone(),
                ..Default::default()
            };
            let b = NatSection {
                port_forwards: forwards.clone().into(),
                static_nat: statics.clone(),
                ..Default::default()
            };
            assert_eq!(revoked(&a, &b), by_hashing(&a, &b));
            assert_eq!(revoked(&b, &a), by_hashing(&b, &a));
        }
    }
}
