//! Self-healing: the running agent looks for drift every observe interval and repairs it
//! without a push (a restarted charon or FRR, a deleted nftables table, an address removed by
//! hand, a sysctl reset).
//!
//! The looking itself is the reconciler's ([`crate::reconcile::Reconciler::heal`]); this file
//! keeps what the engine remembers between passes: when each concern may be looked at again
//! and the recent repairs that `status` and `check` report.
//!
//! Backoff: a concern whose repair failed, or that drifts again right after a successful
//! repair (something keeps undoing it, or the planner and the system disagree forever), is
//! looked at less and less often (doubling up to [`MAX_BACKOFF`]) so it can never turn the
//! agent into a busy loop that rewrites the kernel every few seconds.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::concern::{Outcome, Status};

/// The longest a misbehaving concern waits between repair attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// How many repairs `status` lists.
const RECENT: usize = 20;

/// One repair made without a push.
#[derive(Debug, Clone, Serialize)]
pub struct Repair {
    pub at: u64,
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// What the engine remembers between self-heal passes.
#[derive(Debug, Default)]
pub struct HealState {
    /// Per concern: not looked at before this instant, and the current backoff step.
    backoff: BTreeMap<&'static str, (Instant, Duration)>,
    /// Concerns repaired by the previous pass (a second repair in a row means backoff).
    repaired_last_pass: Vec<&'static str>,
    pub repairs: u64,
    pub recent: VecDeque<Repair>,
}

impl HealState {
    /// Concerns that must not be looked at in this pass.
    pub fn resting(&self, now: Instant) -> Vec<&'static str> {
        self.backoff
            .iter()
            .filter(|(_, (until, _))| *until > now)
            .map(|(c, _)| *c)
            .collect()
    }

    /// Records a pass's repairs and sets the backoffs. `interval` is the observe interval.
    pub fn record(&mut self, outcomes: Vec<Outcome>, interval: Duration, now: Instant, at: u64) {
        let mut repaired = Vec::new();
        for o in outcomes {
            let again = self.repaired_last_pass.contains(&o.concern);
            let bad = !matches!(o.status, Status::Applied | Status::Unchanged);
            if bad || again {
                let step = self
                    .backoff
                    .get(o.concern)
                    .map(|(_, d)| (*d * 2).min(MAX_BACKOFF))
                    .unwrap_or(interval.max(Duration::from_secs(1)) * 2);
                tracing::warn!(
                    concern = o.concern,
                    next_look_secs = step.as_secs(),
                    "self-heal: repair {}; backing off",
                    if bad { "failed" } else { "undone again" }
                );
                self.backoff.insert(o.concern, (now + step, step));
            } else {
                self.backoff.remove(o.concern);
            }
            if matches!(o.status, Status::Applied) {
                self.repairs += 1;
            }
            repaired.push(o.concern);
            self.recent.push_back(Repair { at, outcome: o });
            while self.recent.len() > RECENT {
                self.recent.pop_front();
            }
        }
        // A concern that needed nothing this pass is healthy again: its backoff ends.
        self.backoff
            .retain(|c, (until, _)| repaired.contains(c) || *until > now);
        self.repaired_last_pass = repaired;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(concern: &'static str, status: Status) -> Outcome {
        Outcome {
            concern,
            status,
            changes: 1,
            millis: 0.0,
        }
    }

    #[test]
    fn a_single_repair_does_not_back_off() {
        let mut h = HealState::default();
        let now = Instant::now();
        h.record(
            vec![outcome("nftables", Status::Applied)],
            Duration::from_secs(5),
            now,
            0,
        );
        assert!(h.resting(now).is_empty());
        assert_eq!(h.repairs, 1);
    }

    #[test]
    fn repeated_or_failed_repairs_back_off_doubling_up_to_the_cap() {
        let mut h = HealState::default();
        let i = Duration::from_secs(5);
        let mut now = Instant::now();
        h.record(vec![outcome("vpn", Status::Failed("x".into()))], i, now, 0);
        assert_eq!(h.resting(now), vec!["vpn"]);
        let mut last = Duration::ZERO;
        for _ in 0..12 {
            now += MAX_BACKOFF;
            h.record(vec![outcome("vpn", Status::Failed("x".into()))], i, now, 0);
            let (_, step) = h.backoff["vpn"];
            assert!(step >= last && step <= MAX_BACKOFF);
            last = step;
        }
        assert_eq!(last, MAX_BACKOFF);
        // Undone right after a successful repair: backs off too.
        let mut h = HealState::default();
        h.record(vec![outcome("links", Status::Applied)], i, now, 0);
        h.record(vec![outcome("links", Status::Applied)], i, now, 0);
        assert_eq!(h.resting(now), vec!["links"]);
    }
}
