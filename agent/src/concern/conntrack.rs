//! Concern `conntrack`: after the nftables concern removed or changed DNAT / static-NAT
//! mappings, delete exactly the conntrack entries created through the old mappings, so revoked
//! mappings stop carrying traffic. Nothing is ever flushed: other flows survive.

use std::fmt;

use super::{Concern, ConcernError, PlanSummary};
use crate::conntrack::{delete_matching, revoked_flows, FlowFilter};
use crate::state::DesiredState;

#[derive(Debug, Default)]
pub struct ConntrackConcern;

/// The flows to delete, as `conntrack -D` commands.
#[derive(Debug, Default)]
pub struct ConntrackPlan(pub Vec<FlowFilter>);

impl fmt::Display for ConntrackPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for flt in &self.0 {
            writeln!(f, "{flt}")?;
        }
        Ok(())
    }
}

impl PlanSummary for ConntrackPlan {
    fn changes(&self) -> usize {
        self.0.len()
    }
}

impl Concern for ConntrackConcern {
    const NAME: &'static str = "conntrack";
    type Plan = ConntrackPlan;
    /// `revoked_flows` compares these two lists and nothing else.
    const INPUTS: Option<&'static [&'static str]> = Some(&["nat.port_forwards", "nat.static_nat"]);

    fn plan(
        &self,
        applied: &DesiredState,
        desired: &DesiredState,
    ) -> Result<ConntrackPlan, ConcernError> {
        Ok(ConntrackPlan(revoked_flows(&applied.nat, &desired.nat)))
    }

    async fn execute(
        &mut self,
        plan: &ConntrackPlan,
        _desired: &DesiredState,
    ) -> Result<(), ConcernError> {
        let n = delete_matching(&plan.0).map_err(|e| ConcernError::Failed(e.to_string()))?;
        tracing::info!(deleted = n, "conntrack entries of revoked mappings deleted");
        Ok(())
    }
}
