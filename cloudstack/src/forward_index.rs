//! Port forwards keyed by identity (public IP, public ports, protocol) through a hash index,
//! so that a `forwardrules` push costs time in proportion to its rules, not to its rules times
//! the rules stored: CloudStack re-sends a network's whole list with every change, and a
//! linear search per rule made a 10,000-rule push 10^8 comparisons (issue 15).

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::net::Ipv4Addr;

use vr_nat::{L4Protocol, PortForward, PortRange};

/// What identifies a forward (see [`crate::rules::same_forward`]).
pub type Key = (Ipv4Addr, PortRange, L4Protocol);

pub fn key(pf: &PortForward) -> Key {
    (pf.public_ip, pf.public_ports, pf.protocol)
}

/// Applies `(revoke, forward)` entries in order to `list`, exactly as a linear
/// "revoke removes every forward with the key; otherwise replace the first with the key in
/// place, or append" would: positions of kept forwards do not move, appended ones keep their
/// order, so plans stay small.
pub fn upsert_all(
    list: &mut Vec<PortForward>,
    entries: impl IntoIterator<Item = (bool, PortForward)>,
) {
    upsert_keyed(list, entries, key);
}

/// [`upsert_all`] for any list keyed by `key` (static NAT by public IP: a `staticnatrules`
/// push re-sends the whole list too).
pub fn upsert_keyed<T, K: std::hash::Hash + Eq>(
    list: &mut Vec<T>,
    entries: impl IntoIterator<Item = (bool, T)>,
    key: impl Fn(&T) -> K,
) {
    // Slots: None = removed by a revoke (compacted at the end, keeping order).
    let mut slots: Vec<Option<T>> = std::mem::take(list).into_iter().map(Some).collect();
    // Every live slot per key, in list order (a native push may have stored a key twice).
    let mut index: HashMap<K, Vec<usize>> = HashMap::with_capacity(slots.len());
    for (i, pf) in slots.iter().enumerate() {
        if let Some(pf) = pf {
            index.entry(key(pf)).or_default().push(i);
        }
    }
    for (revoke, pf) in entries {
        let k = key(&pf);
        if revoke {
            for i in index.remove(&k).unwrap_or_default() {
                slots[i] = None;
            }
        } else {
            match index.get(&k).and_then(|v| v.first()) {
                Some(&i) => slots[i] = Some(pf),
                None => {
                    index.insert(k, vec![slots.len()]);
                    slots.push(Some(pf));
                }
            }
        }
    }
    *list = slots.into_iter().flatten().collect();
}

/// Per key, the distinct targets (private IP and ports) seen so far in one push, in order of
/// first appearance: finds "a public ip:port mapped twice to different targets" in one pass.
/// The first target is kept inline: almost every key has one, and a `Vec` per key was an
/// allocation per rule of a 10,000-rule push.
#[derive(Debug, Default)]
pub struct Targets(HashMap<Key, (Target, Vec<Target>)>);

/// Where a forward leads: private IP and ports.
type Target = (Ipv4Addr, PortRange);

impl Targets {
    /// The first earlier target of `pf`'s key that differs from `pf`'s own, recording `pf`'s.
    pub fn conflict(&mut self, pf: &PortForward) -> Option<Target> {
        let own = (pf.private_ip, pf.private_ports);
        match self.0.entry(key(pf)) {
            Entry::Vacant(v) => {
                v.insert((own, Vec::new()));
                None
            }
            Entry::Occupied(mut o) => {
                let (first, rest) = o.get_mut();
                let other = std::iter::once(&*first)
                    .chain(rest.iter())
                    .find(|t| **t != own)
                    .copied();
                if *first != own && !rest.contains(&own) {
                    rest.push(own);
                }
                other
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pf(port: u16, to: u8) -> PortForward {
        PortForward {
            public_ip: Ipv4Addr::new(192, 0, 2, 11),
            protocol: L4Protocol::Tcp,
            public_ports: PortRange::single(port),
            private_ip: Ipv4Addr::new(10, 1, 1, to),
            private_ports: PortRange::single(80),
            source_cidrs: Vec::new(),
            device: None,
        }
    }

    /// The linear definition the index replaces.
    fn linear(list: &mut Vec<PortForward>, entries: &[(bool, PortForward)]) {
        for (revoke, p) in entries {
            if *revoke {
                list.retain(|o| key(o) != key(p));
            } else {
                match list.iter().position(|o| key(o) == key(p)) {
                    Some(i) => list[i] = p.clone(),
                    None => list.push(p.clone()),
                }
            }
        }
    }

    #[test]
    fn same_result_as_the_linear_merge() {
        let stored = vec![pf(1, 1), pf(2, 2), pf(3, 3), pf(2, 9), pf(4, 4)];
        let entries = vec![
            (false, pf(3, 7)),
            (true, pf(2, 0)),
            (false, pf(5, 5)),
            (false, pf(2, 6)),
            (true, pf(1, 0)),
            (false, pf(5, 8)),
            (true, pf(6, 0)),
        ];
        let mut a = stored.clone();
        linear(&mut a, &entries);
        let mut b = stored;
        upsert_all(&mut b, entries);
        assert_eq!(a, b);
    }

    /// Static NAT's former merge: revoke removes every entry with the key, anything else
    /// replaces the first in place or appends.
    #[test]
    fn keyed_by_anything_as_the_linear_merge() {
        let stored = vec![(1, 1), (2, 2), (1, 9), (3, 3)];
        let entries = [
            (false, (2, 7)),
            (true, (1, 0)),
            (false, (4, 4)),
            (false, (1, 5)),
            (true, (9, 0)),
            (false, (4, 6)),
        ];
        let mut a = stored.clone();
        for (revoke, e) in entries {
            if revoke {
                a.retain(|o: &(u8, u8)| o.0 != e.0);
            } else {
                match a.iter().position(|o| o.0 == e.0) {
                    Some(i) => a[i] = e,
                    None => a.push(e),
                }
            }
        }
        let mut b = stored;
        upsert_keyed(&mut b, entries, |e| e.0);
        assert_eq!(a, b);
        assert_eq!(b, [(2, 7), (3, 3), (4, 6), (1, 5)]);
    }

    #[test]
    fn conflicts_name_the_first_differing_target() {
        let mut t = Targets::default();
        assert_eq!(t.conflict(&pf(1, 1)), None);
        assert_eq!(t.conflict(&pf(1, 1)), None);
        assert_eq!(t.conflict(&pf(1, 2)).map(|c| c.0.octets()[3]), Some(1));
        assert_eq!(t.conflict(&pf(1, 1)).map(|c| c.0.octets()[3]), Some(2));
        assert_eq!(t.conflict(&pf(2, 2)), None);
    }
}
