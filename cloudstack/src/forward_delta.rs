//! A `forwardrules` push merged as a delta (issue 15): CloudStack re-sends a network's whole
//! list with every change, so almost every rule of a push equals the stored forward of its
//! identity. Each rule is checked with the allocation-free quick checks, looked up by identity
//! in a hash index of the stored forwards, and only a new or changed rule builds a forward
//! (and its device name) in the next state; an unchanged one leaves the stored forward where
//! it is. In-push conflicts are found through the same index.
//!
//! The result must equal the reporting path's (`convert::forwards`, then
//! [`crate::forward_index::upsert_all`]) for every push it accepts; anything it is not sure of
//! (a rule failing a quick check, a conflict, a key stored twice) answers `None` and the
//! reporting path merges and names what is wrong (`same_state_as_the_reporting_merge` below).

use std::collections::HashMap;
use std::net::Ipv4Addr;

use vr_nat::{PortForward, PortRange};

use crate::quick_read::ForwardRuleRef;
use crate::state::DesiredState;
use crate::Merged;

/// What a delta merge did to the stored forwards (for tests and the debug log).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Delta {
    /// Rules equal to the stored forward of their identity: nothing built.
    pub unchanged: usize,
    /// Stored forwards replaced by a changed rule of the same identity.
    pub replaced: usize,
    /// New forwards appended.
    pub added: usize,
    /// Forwards removed by a revoked rule.
    pub removed: usize,
}

/// A forward's identity (public IP, public ports, protocol) in one integer: hashed once.
pub(crate) fn key(pf: &PortForward) -> u128 {
    (u128::from(u32::from(pf.public_ip)) << 40)
        | (u128::from(pf.public_ports.start) << 24)
        | (u128::from(pf.public_ports.end) << 8)
        | u128::from(pf.protocol.number())
}

/// Where a forward leads (private IP and ports): two rules of one identity in a push must
/// agree on it.
type Target = (Ipv4Addr, PortRange);

/// Per identity: its position in the next list (`None`: not there) and the target of its
/// first non-revoked rule in this push.
struct Slot {
    pos: Option<usize>,
    pushed: Option<Target>,
    /// A rule of this push had this identity (revoked or not).
    in_push: bool,
}

/// Merges the rules of a `forwardrules` push into `state` (see the module documentation).
pub fn merge(state: &DesiredState, rules: &[ForwardRuleRef<'_>]) -> Option<(Merged, Delta)> {
    merge_keyed(state, rules).map(|(m, d, _)| (m, d))
}

/// [`merge`], with the identities of the push's rules in push order when no two are the same
/// (what [`crate::forward_memo`] keeps to merge the next push from).
pub fn merge_keyed(
    state: &DesiredState,
    rules: &[ForwardRuleRef<'_>],
) -> Option<(Merged, Delta, Option<Vec<u128>>)> {
    let mut next = state.clone();
    let (delta, keys) = merge_list(state, &mut next.nat.port_forwards, rules)?;
    Some((finish(next), delta, keys))
}

/// What every merge of forwards does last: the derived sections of the next state.
pub(crate) fn finish(mut next: DesiredState) -> Merged {
    crate::routed::apply(&mut next);
    next.allocate_policy_indexes();
    Merged {
        state: next,
        not_yet_applied: Vec::new(),
    }
}

fn merge_list(
    state: &DesiredState,
    list: &mut Vec<PortForward>,
    rules: &[ForwardRuleRef<'_>],
) -> Option<(Delta, Option<Vec<u128>>)> {
    let mut index: HashMap<u128, Slot> = HashMap::with_capacity(list.len() + 16);
    for (i, pf) in list.iter().enumerate() {
        let slot = Slot {
            pos: Some(i),
            pushed: None,
            in_push: false,
        };
        // A key stored twice (identical copies from a native push): the general merge.
        if index.insert(key(pf), slot).is_some() {
            return None;
        }
    }
    let mut removed = vec![false; list.len()];
    let mut devices = Devices::default();
    let mut delta = Delta::default();
    let mut keys = Some(Vec::with_capacity(rules.len()));
    for r in rules {
        let mut pf = crate::forward_fast::quick_ref(r)?;
        let k = key(&pf);
        let slot = index.entry(k).or_insert(Slot {
            pos: None,
            pushed: None,
            in_push: false,
        });
        if std::mem::replace(&mut slot.in_push, true) {
            keys = None;
        }
        if let Some(keys) = &mut keys {
            keys.push(k);
        }
        if r.revoke {
            if let Some(pos) = slot.pos.take() {
                removed[pos] = true;
                delta.removed += 1;
            }
            continue;
        }
        let own = (pf.private_ip, pf.private_ports);
        match slot.pushed {
            // A public ip:port mapped twice to different targets: the reporting path says so.
            Some(first) if first != own => return None,
            Some(_) => {}
            None => slot.pushed = Some(own),
        }
        let device = devices.of(state, pf.public_ip);
        match slot.pos {
            Some(pos) => {
                if same(&mut list[pos], &pf, device) {
                    delta.unchanged += 1;
                } else {
                    pf.device = device.map(str::to_string);
                    list[pos] = pf;
                    delta.replaced += 1;
                }
            }
            None => {
                pf.device = device.map(str::to_string);
                slot.pos = Some(list.len());
                list.push(pf);
                removed.push(false);
                delta.added += 1;
            }
        }
    }
    if delta.removed > 0 {
        let mut gone = removed.into_iter();
        list.retain(|_| !gone.next().unwrap_or(false));
    }
    Some((delta, keys))
}

/// Whether `stored` is `pf` on `device`, without copying either (`pf` has no device yet).
fn same(stored: &mut PortForward, pf: &PortForward, device: Option<&str>) -> bool {
    let stored_device = stored.device.take();
    let same = *stored == *pf && stored_device.as_deref() == device;
    stored.device = stored_device;
    same
}

/// The NIC holding each public IP (as the reporting merge's `device_of`), remembered: a
/// push's rules share a few public IPs, usually one after another.
#[derive(Default)]
pub(crate) struct Devices<'s> {
    last: Option<(Ipv4Addr, Option<&'s str>)>,
    seen: HashMap<Ipv4Addr, Option<&'s str>>,
}

impl<'s> Devices<'s> {
    pub(crate) fn of(&mut self, state: &'s DesiredState, ip: Ipv4Addr) -> Option<&'s str> {
        if let Some((last, d)) = self.last {
            if last == ip {
                return d;
            }
        }
        let d = *self.seen.entry(ip).or_insert_with(|| {
            state
                .interfaces
                .iter()
                .find(|i| i.addresses.iter().any(|a| a.addr() == ip))
                .map(|i| i.device.as_str())
        });
        self.last = Some((ip, d));
        d
    }
}

#[cfg(test)]
#[path = "forward_delta_tests.rs"]
mod tests;
