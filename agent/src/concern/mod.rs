//! The reconciler: one concern per backend, run in a fixed order.
//!
//! Every concern follows the house rule: `plan(applied, desired)` is pure and returns an owned,
//! printable plan (rendered as the commands an operator would recognise); `execute` is a thin
//! executor that sends the plan and checks every acknowledgement. A concern keeps whatever
//! mirror of the system it needs (e.g. the applied nftables IR) inside itself; `observe`
//! refreshes that mirror from the system once at start, so a replay onto a matching system
//! plans nothing.

use std::fmt;
use std::future::Future;

use serde::Serialize;

use crate::state::DesiredState;

pub mod addr6;
pub mod bgp;
pub mod conntrack;
pub mod dhcp;
pub mod ha;
pub mod lb;
pub mod links;
pub mod nft;
pub mod nft6;
pub mod nft_script;
pub mod ospf;
pub mod radvd;
pub mod rule_stats;
pub mod tunables;
pub mod usage;
pub mod vpn;
pub mod vpn_remote;
pub mod web;
pub mod web_book;
pub mod web_http;

/// Why a concern did not reach the desired state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConcernError {
    /// The daemon or kernel facility this concern drives is not there ({0}); the desired state
    /// is kept and the concern is retried when it comes back.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The backend refused or failed the change.
    #[error("{0}")]
    Failed(String),
}

/// A plan as the reconciler handles it: printable, countable.
pub trait PlanSummary: fmt::Display {
    /// Number of elementary changes (0 = nothing to do).
    fn changes(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.changes() == 0
    }
    /// Roughly how many lines the plan prints (what logging it whole would cost).
    fn lines_hint(&self) -> usize {
        self.changes()
    }
}

/// One backend of the agent.
pub trait Concern {
    /// Short name used in results and logs (`links`, `routes`, `nftables`, ...).
    const NAME: &'static str;
    type Plan: PlanSummary + Send;

    /// The fields of the state (journal paths, `crate::store::delta::PATHS`) this concern's
    /// plan reads, when they are few; `None`: not declared. A push that changes none of them
    /// does not plan this concern at all (see `Reconciler::execute`): `plan(applied, desired)`
    /// would compare equal inputs and find nothing to do from the mirror of what the last push
    /// applied. Drift behind the agent's back is left to the self-heal loop and `reconcile`,
    /// as for a costly `refresh`. Declare only what [`plan`](Self::plan) and the helpers it
    /// calls read, whole: a field left out is a change this concern would miss.
    const INPUTS: Option<&'static [&'static str]> = None;

    /// Pure: what must change so that the system holds `desired`, given that it holds
    /// `applied` (and the concern's own mirror).
    fn plan(
        &self,
        applied: &DesiredState,
        desired: &DesiredState,
    ) -> Result<Self::Plan, ConcernError>;

    /// Sends `plan`. On success the concern's mirror describes `desired`.
    fn execute(
        &mut self,
        plan: &Self::Plan,
        desired: &DesiredState,
    ) -> impl Future<Output = Result<(), ConcernError>> + Send;

    /// Refreshes the concern's mirror from the system (at start, and before `diff` and
    /// `check`). Contract: after a successful `observe`, `plan(desired, desired)` lists exactly
    /// what the system lacks or holds beyond `desired` (drift), and `plan(applied, desired)`
    /// plans from what was observed rather than from `applied` where they differ.
    fn observe(&mut self) -> impl Future<Output = Result<(), ConcernError>> + Send {
        async { Ok(()) }
    }

    /// Re-reads the part of the system the next plan from `applied` to `desired` depends on,
    /// just before planning, for concerns whose mirror is cheap to read in full (rtnetlink
    /// dumps). A concern whose own input is the same in both states may skip a costly read
    /// (a daemon's config through its CLI): the push then changes nothing of it, and drift
    /// behind the agent's back is what the self-heal loop and `reconcile` are for (they
    /// `observe`). That keeps a push of one port forward from paying for a vtysh process.
    fn refresh(
        &mut self,
        applied: &DesiredState,
        desired: &DesiredState,
    ) -> impl Future<Output = Result<(), ConcernError>> + Send {
        let _ = (applied, desired);
        async { Ok(()) }
    }

    /// Cheap probe run by the self-heal loop every observe interval: could the system have
    /// changed behind the agent's back since this concern last applied or observed? Only then
    /// does the loop pay for `observe` and a plan. The default says yes: for most concerns
    /// observing is one cheap request.
    fn may_have_drifted(&mut self) -> impl Future<Output = bool> + Send {
        async { true }
    }

    /// Concern-specific health checks for `vr-agent check` (tunnels up, neighbors Full, ...).
    fn health(
        &mut self,
        desired: &DesiredState,
    ) -> impl Future<Output = Vec<crate::diag::check::Check>> + Send {
        let _ = desired;
        async { Vec::new() }
    }
}

/// How one concern fared in one apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "status", content = "detail")]
pub enum Status {
    /// The system already matched.
    Unchanged,
    /// Changes were sent and acknowledged.
    Applied,
    /// The section was stored; this agent version does not apply it yet.
    NotYetApplied,
    /// The backend is unavailable; the state is kept and retried when it comes back.
    Unavailable(String),
    /// The backend failed; the push is not committed.
    Failed(String),
    /// Not attempted because an earlier concern failed.
    Skipped,
}

/// Per-concern line of a push result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    pub concern: &'static str,
    #[serde(flatten)]
    pub status: Status,
    pub changes: usize,
    /// Wall time of plan and execute, to the microsecond (a one-element change takes well
    /// under a millisecond).
    pub millis: f64,
}

#[cfg(test)]
mod inputs_tests {
    use super::*;
    use crate::store::delta::PATHS;

    fn known<C: Concern>() {
        for p in C::INPUTS.unwrap_or(&[]) {
            assert!(PATHS.contains(p), "{}: {p} is no journal path", C::NAME);
        }
    }

    /// A misspelt input would never be "changed": the concern would never be planned.
    #[test]
    fn declared_inputs_are_journal_paths() {
        known::<conntrack::ConntrackConcern>();
        known::<rule_stats::RuleStatsConcern>();
        known::<nft::NftConcern>();
    }
}
