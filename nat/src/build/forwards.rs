//! Port forwards -> elements of `pf_exact`, `pf_port` and `pf_addr`, whole or as a delta.
//!
//! Forwards with the same public side and target form a group whose allowed sources are the
//! union of theirs; a group's elements depend on that group alone. So a push that adds,
//! removes or changes a few forwards among 10,000 is planned from those groups only
//! ([`delta`]) instead of rebuilding every element.

use std::collections::{BTreeSet, HashSet};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::{any_net, el_map, normalize, ports};
use crate::ir::{Element, Value};
use crate::model::{PortForward, PortRange};
use crate::plan::ElementOp;

/// Public ip, protocol number, public ports, private ip, private ports.
pub type GroupKey = (Ipv4Addr, u8, PortRange, Ipv4Addr, PortRange);

pub fn group_key(f: &PortForward) -> GroupKey {
    (
        f.public_ip,
        f.protocol.number(),
        f.public_ports,
        f.private_ip,
        f.private_ports,
    )
}

fn sources(f: &PortForward) -> impl Iterator<Item = Ipv4Net> + '_ {
    let any = f.source_cidrs.is_empty().then(any_net);
    f.source_cidrs.iter().copied().chain(any)
}

/// The three maps' elements (unsorted).
#[derive(Debug, Default)]
pub struct ForwardElements {
    pub exact: Vec<Element>,
    pub port: Vec<Element>,
    pub addr: Vec<Element>,
}

impl ForwardElements {
    fn by_set(self) -> [(&'static str, Vec<Element>); 3] {
        [
            ("pf_exact", self.exact),
            ("pf_port", self.port),
            ("pf_addr", self.addr),
        ]
    }
}

/// The elements of one group. A forward whose public and private ranges start at the same
/// port keeps the port: one `pf_addr` element (DNAT to the address only). A shifted range
/// cannot be one element (nft 1.0.6 refuses a port range in concatenated map data: "Value
/// must be a singleton"), so it expands to one element per port, bounded by
/// `validate::MAX_SHIFTED_PORTS`.
pub fn group_elements(k: &GroupKey, srcs: &[Ipv4Net], out: &mut ForwardElements) {
    let &(pub_ip, proto, pub_ports, priv_ip, priv_ports) = k;
    let srcs = normalize(srcs);
    // Open to every source, one port at a time: an exact key in a hash map, so the lookup
    // costs the same at 10 forwards and at 10,000. (Validation guarantees one target per
    // public ip, protocol and port, so no other element can compete.)
    if srcs == [any_net()] && (pub_ports.len() == 1 || pub_ports.start != priv_ports.start) {
        for k in 0..pub_ports.len() as u16 {
            out.exact.push(el_map(
                vec![
                    Value::Addr(pub_ip),
                    Value::Proto(proto),
                    Value::Port(pub_ports.start + k),
                ],
                vec![Value::Addr(priv_ip), Value::Port(priv_ports.start + k)],
            ));
        }
        return;
    }
    for src in srcs {
        if pub_ports.start == priv_ports.start {
            out.addr.push(el_map(
                vec![
                    Value::Addr(pub_ip),
                    Value::Proto(proto),
                    ports(&pub_ports),
                    Value::Net(src),
                ],
                vec![Value::Addr(priv_ip)],
            ));
        } else {
            for k in 0..pub_ports.len() as u16 {
                out.port.push(el_map(
                    vec![
                        Value::Addr(pub_ip),
                        Value::Proto(proto),
                        Value::Port(pub_ports.start + k),
                        Value::Net(src),
                    ],
                    vec![Value::Addr(priv_ip), Value::Port(priv_ports.start + k)],
                ));
            }
        }
    }
}

/// Every forward's elements.
pub fn all(forwards: &[PortForward]) -> ForwardElements {
    let mut grouped: std::collections::BTreeMap<GroupKey, Vec<Ipv4Net>> = Default::default();
    for f in forwards {
        grouped.entry(group_key(f)).or_default().extend(sources(f));
    }
    let mut out = ForwardElements::default();
    for (k, srcs) in &grouped {
        group_elements(k, srcs, &mut out);
    }
    out
}

/// Element operations that turn the maps built from `old` into those built from `new`, or
/// `None` when more than `limit` forwards differ (a full rebuild is as cheap then) or the
/// change is structural (a public IP gains its first forward or loses its last).
///
/// Lists that differ by an insertion, a removal or an edit share a prefix and a suffix;
/// only the window between them is hashed, then the groups it touches are rebuilt from a
/// scan of both lists (comparisons only, no allocation).
pub fn delta(old: &[PortForward], new: &[PortForward], limit: usize) -> Option<Delta> {
    let prefix = old.iter().zip(new).take_while(|(a, b)| a == b).count();
    let suffix = old[prefix..]
        .iter()
        .rev()
        .zip(new[prefix..].iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    let (ow, nw) = (
        &old[prefix..old.len() - suffix],
        &new[prefix..new.len() - suffix],
    );
    if ow.len() + nw.len() > limit {
        return None;
    }
    let delta = |ops| Delta {
        ops,
        replaced: prefix..old.len() - suffix,
        with: nw.to_vec(),
    };
    let mut touched: Vec<GroupKey> = ow.iter().chain(nw).map(group_key).collect();
    touched.sort();
    touched.dedup();
    if touched.is_empty() {
        return Some(delta(Vec::new()));
    }
    // Every forward of both lists is tested for membership: a handful of keys are compared
    // directly (a hash would cost more than the comparisons), more go through a set.
    let touched_set: HashSet<GroupKey> = if touched.len() > 8 {
        touched.iter().copied().collect()
    } else {
        HashSet::new()
    };
    let is_touched = |k: &GroupKey| {
        if touched_set.is_empty() {
            touched.contains(k)
        } else {
            touched_set.contains(k)
        }
    };
    // Outside the window both lists are the same forwards: scanned once, for the touched
    // groups' other members and for the public IPs the window adds or drops.
    let outside = || old[..prefix].iter().chain(&old[old.len() - suffix..]);
    // The ingress firewall guards every public IP that has a forward: a first forward on an
    // IP, or the last one leaving it, changes that structure, which only a rebuild plans.
    let in_window = |w: &[PortForward], ip: Ipv4Addr| w.iter().any(|f| f.public_ip == ip);
    let ips: BTreeSet<Ipv4Addr> = ow.iter().chain(nw).map(|f| f.public_ip).collect();
    for ip in ips {
        if in_window(ow, ip) != in_window(nw, ip) && !outside().any(|f| f.public_ip == ip) {
            return None;
        }
    }
    let mut shared: std::collections::BTreeMap<GroupKey, Vec<Ipv4Net>> = Default::default();
    for f in outside() {
        let k = group_key(f);
        if is_touched(&k) {
            shared.entry(k).or_default().extend(sources(f));
        }
    }
    let elements = |window: &[PortForward]| {
        let mut grouped = shared.clone();
        for f in window {
            grouped.entry(group_key(f)).or_default().extend(sources(f));
        }
        let mut out = ForwardElements::default();
        for (k, srcs) in &grouped {
            group_elements(k, srcs, &mut out);
        }
        out.by_set()
    };
    let mut ops = Vec::new();
    let mut adds = Vec::new();
    for ((set, before), (_, after)) in elements(ow).into_iter().zip(elements(nw)) {
        let before: BTreeSet<Element> = before.into_iter().collect();
        let after: BTreeSet<Element> = after.into_iter().collect();
        ops.extend(before.difference(&after).map(|e| ElementOp {
            set: set.to_string(),
            add: false,
            element: e.clone(),
        }));
        adds.extend(after.difference(&before).map(|e| ElementOp {
            set: set.to_string(),
            add: true,
            element: e.clone(),
        }));
    }
    // Deletes first: a changed target is the old element out, then the new one in.
    ops.extend(adds);
    Some(delta(ops))
}

/// Element operations for a change of a few forwards, and the change itself:
/// `old.splice(replaced, with)` is the new list (so a caller keeping `old` can update it
/// without copying the other 10,000).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delta {
    pub ops: Vec<ElementOp>,
    pub replaced: std::ops::Range<usize>,
    pub with: Vec<PortForward>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::L4Protocol;

    fn fwd(port: u16, to: &str, srcs: &[&str]) -> PortForward {
        PortForward {
            public_ip: "192.0.2.10".parse().unwrap(),
            protocol: L4Protocol::Tcp,
            public_ports: PortRange::single(port),
            private_ip: to.parse().unwrap(),
            private_ports: PortRange::single(port),
            source_cidrs: srcs.iter().map(|s| s.parse().unwrap()).collect(),
            device: None,
        }
    }

    /// The maps after applying `ops` to those of `old` equal the maps of `new`.
    fn check(old: &[PortForward], new: &[PortForward]) {
        let d = delta(old, new, 64).expect("small change");
        let mut spliced = old.to_vec();
        spliced.splice(d.replaced.clone(), d.with.clone());
        assert_eq!(spliced, new, "the splice rebuilds the new list");
        let ops = d.ops;
        let mut sets: Vec<(&str, BTreeSet<Element>)> = all(old)
            .by_set()
            .into_iter()
            .map(|(n, e)| (n, e.into_iter().collect()))
            .collect();
        for op in &ops {
            let s = &mut sets.iter_mut().find(|(n, _)| *n == op.set).unwrap().1;
            if op.add {
                assert!(
                    s.insert(op.element.clone()),
                    "adds an element present: {op:?}"
                );
            } else {
                assert!(s.remove(&op.element), "deletes an element absent: {op:?}");
            }
        }
        let want: Vec<(&str, BTreeSet<Element>)> = all(new)
            .by_set()
            .into_iter()
            .map(|(n, e)| (n, e.into_iter().collect()))
            .collect();
        assert_eq!(sets, want);
    }

    #[test]
    fn delta_matches_a_full_build() {
        let base: Vec<PortForward> = (1..=50).map(|p| fwd(1000 + p, "10.1.0.5", &[])).collect();
        // One added in the middle, one removed, one retargeted.
        let mut added = base.clone();
        added.insert(20, fwd(3000, "10.1.0.6", &[]));
        check(&base, &added);
        let mut removed = base.clone();
        removed.remove(7);
        check(&base, &removed);
        let mut changed = base.clone();
        changed[30] = fwd(1031, "10.1.0.9", &[]);
        check(&base, &changed);
        // A duplicate with a source list joins its group: the group moves from the exact map
        // to per-source elements and back.
        let mut dup = base.clone();
        dup.push(fwd(1001, "10.1.0.5", &["198.51.100.0/24"]));
        check(&base, &dup);
        let mut restricted = base.clone();
        restricted[0] = fwd(1001, "10.1.0.5", &["198.51.100.0/24", "203.0.113.0/24"]);
        check(&base, &restricted);
        check(&restricted, &base);
        assert_eq!(delta(&base, &base, 64).map(|d| d.ops), Some(Vec::new()));
    }

    #[test]
    fn a_new_public_ip_is_structural() {
        let a = vec![fwd(80, "10.1.0.5", &[])];
        let mut other = fwd(80, "10.1.0.5", &[]);
        other.public_ip = "192.0.2.99".parse().unwrap();
        assert_eq!(delta(&a, &[a[0].clone(), other.clone()], 64), None);
        assert_eq!(delta(&[a[0].clone(), other], &a, 64), None);
    }

    #[test]
    fn large_changes_fall_back_to_a_full_build() {
        let a: Vec<PortForward> = (1..=100).map(|p| fwd(p, "10.1.0.5", &[])).collect();
        let b: Vec<PortForward> = (1..=100).map(|p| fwd(p, "10.1.0.6", &[])).collect();
        assert_eq!(delta(&a, &b, 64), None);
    }
}
