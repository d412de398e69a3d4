//! Concern `rule_stats`: packet and byte counters per port forward and static NAT (table
//! `inet vr_rule_stats`, planned in [`vr_nat::rule_stats`], why counters in set elements: see
//! there), read by the metrics collector. Plans from the table as read back (or as mirrored
//! after the last write); sends the table's declarations, when the plan creates it, as one
//! `nft -f` transaction with a deadline, then the element changes as one libnftnl batch
//! (10,000 elements: `nft -f` spent 120-290 ms parsing its own text, the batch a fraction).
//!
//! Verification is the transactions' own: each applies all of it or nothing and says so.
//! Reading the table back after each push would cost a full listing of every element (0.4 s at
//! 10 000 port forwards) for a one-element change; the mirror is updated from the plan
//! instead, and the self-heal loop reads the table whenever the ruleset generation moved.

use std::fmt;

use vr_nat::ir::Family;
use vr_nat::netlink::Executor;
use vr_nat::rule_stats::{self, Spec, TABLE};
use vr_nat::NftPlan;

use super::nft_script::{self, blocking, generation};
use super::{Concern, ConcernError, PlanSummary};
use crate::state::DesiredState;

#[derive(Debug, Default)]
pub struct RuleStatsConcern {
    /// The elements the table holds (inner `None`: no table of the agent's shape); `None`
    /// until read.
    held: Option<Option<Spec>>,
    /// The kernel's ruleset generation when the table was last read or written.
    generation: Option<u32>,
}

/// The `nft -f` transaction of one transition.
#[derive(Debug)]
pub struct RuleStatsPlan(pub rule_stats::Plan);

impl fmt::Display for RuleStatsPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl PlanSummary for RuleStatsPlan {
    fn changes(&self) -> usize {
        self.0.changes()
    }
}

/// What the kernel holds, counters included (`None`: no table), by netlink dumps
/// (`vr_nat::rule_counts`: `nft -j list table` of 10,000 elements took 0.3-0.4 s of an agent
/// restart's replay).
pub fn read() -> Result<Option<rule_stats::Current>, ConcernError> {
    vr_nat::rule_counts::read()
        .map_err(|e| ConcernError::Failed(format!("reading table inet {TABLE}: {e}")))
}

fn held_of(cur: Option<rule_stats::Current>) -> Option<Spec> {
    cur.filter(|c| c.complete).map(|c| c.spec())
}

impl Concern for RuleStatsConcern {
    const NAME: &'static str = "rule_stats";
    type Plan = RuleStatsPlan;
    /// `Spec::of(&desired.nat)` reads the NAT section and nothing else.
    const INPUTS: Option<&'static [&'static str]> =
        Some(&["nat.source_nat", "nat.static_nat", "nat.port_forwards"]);

    fn plan(
        &self,
        _applied: &DesiredState,
        desired: &DesiredState,
    ) -> Result<RuleStatsPlan, ConcernError> {
        let Some(held) = &self.held else {
            return Err(ConcernError::Unavailable(format!(
                "table inet {TABLE} not read yet"
            )));
        };
        Ok(RuleStatsPlan(rule_stats::plan(
            held.as_ref(),
            &Spec::of(&desired.nat),
        )))
    }

    async fn execute(
        &mut self,
        plan: &RuleStatsPlan,
        _desired: &DesiredState,
    ) -> Result<(), ConcernError> {
        let before = self.held.take().flatten().unwrap_or_default();
        let generation_before = generation();
        let mut batches = 0;
        let skeleton = plan.0.skeleton();
        if skeleton.create {
            batches += 1;
            let text = skeleton.to_string();
            blocking(move || nft_script::send(TABLE, &text)).await?;
            // The table now exists, empty: what the mirror says if the elements fail next.
            self.held = Some(Some(Spec::default()));
        }
        let ops = plan.0.element_ops();
        if !ops.is_empty() {
            batches += 1;
            let elements = NftPlan::Elements {
                family: Family::Inet,
                table: TABLE.to_string(),
                ops,
            };
            blocking(move || {
                Executor::default()
                    .apply(&elements, None)
                    .map_err(|e| ConcernError::Failed(format!("table inet {TABLE}: {e}")))
            })
            .await?;
        }
        let from = if skeleton.create {
            Spec::default()
        } else {
            before
        };
        self.held = Some(Some(plan.0.apply_to(&from)));
        self.generation = generation();
        nft_script::record_own_writes(generation_before, self.generation, batches);
        Ok(())
    }

    async fn refresh(
        &mut self,
        _applied: &DesiredState,
        _desired: &DesiredState,
    ) -> Result<(), ConcernError> {
        // The mirror is what the last write left; only a table never read is read here.
        if self.held.is_some() {
            return Ok(());
        }
        self.observe().await
    }

    async fn observe(&mut self) -> Result<(), ConcernError> {
        let g = generation();
        self.held = Some(held_of(blocking(read).await?));
        self.generation = g;
        Ok(())
    }

    async fn may_have_drifted(&mut self) -> bool {
        nft_script::changed_by_others(self.generation, generation())
    }
}
