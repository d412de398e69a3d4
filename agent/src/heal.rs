//! Self-healing: the running agent looks for drift every observe interval and repairs it
//! without a push (a restarted charon or FRR, a deleted nftables table, an address removed by
//! hand, a sysctl reset).
//!
//! The looking itself is the reconciler's ([`crate::reconcile::Reconciler::heal`]); this file
//! keeps what the engine remembers between passes: when each concern may be looked at again
//! and the recent repairs that `status` and `check` report.
//!
//! Backoff: a concern whose repair failed, or that needed a repair in [`STREAK`] passes in a
//! row (something keeps undoing it, or the planner and the system disagree forever), is
//! looked at less and less often (doubling up to [`MAX_BACKOFF`]) so it can never turn the
//! agent into a busy loop that rewrites the kernel every few seconds.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::concern::{Outcome, Status};

/// The longest a misbehaving concern waits between repair attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Repairs in consecutive passes before a concern backs off. Two in a row can be an operator
/// trying something twice; three mean a fight with something that undoes the agent's work.
pub const STREAK: u32 = 3;
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
    /// Per concern: how many passes in a row ended with a repair.
    streak: BTreeMap<&'static str, u32>,
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
            let streak = self.streak.get(o.concern).copied().unwrap_or(0) + 1;
            let again = streak >= STREAK;
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
                crate::metrics::record_repair(o.concern);
            }
            repaired.push(o.concern);
            self.streak.insert(o.concern, streak);
            self.recent.push_back(Repair { at, outcome: o });
            while self.recent.len() > RECENT {
                self.recent.pop_front();
            }
        }
        // A concern looked at that needed nothing is healthy again: its backoff and streak
        // end. One still resting keeps both, so a fight that resumes after the rest backs off
        // twice as long.
        self.backoff
            .retain(|c, (until, _)| repaired.contains(c) || *until > now);
        let resting = &self.backoff;
        self.streak
            .retain(|c, _| repaired.contains(c) || resting.contains_key(c));
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
        // Undone again and again right after successful repairs: backs off too.
        let mut h = HealState::default();
        for _ in 1..STREAK {
            h.record(vec![outcome("links", Status::Applied)], i, now, 0);
            assert!(h.resting(now).is_empty());
        }
        h.record(vec![outcome("links", Status::Applied)], i, now, 0);
        assert_eq!(h.resting(now), vec!["links"]);
        // A pass without a repair ends the streak.
        h.record(Vec::new(), i, now + MAX_BACKOFF, 0);
        h.record(
            vec![outcome("links", Status::Applied)],
            i,
            now + MAX_BACKOFF,
            0,
        );
        assert!(h.resting(now + MAX_BACKOFF).is_empty());
    }
}
