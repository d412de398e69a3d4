//! Concern `routes`: static routes and policy routing through rtnetlink.
//!
//! Not built yet: plans nothing, so a push stores this section and reports it
//! "accepted, not yet applied" when the section is non-empty.

use std::fmt;

use super::{Concern, ConcernError, PlanSummary};
use crate::state::DesiredState;

#[derive(Debug, Default)]
pub struct RoutesConcern;

/// Nothing to do (the concern is not built yet).
#[derive(Debug, Default)]
pub struct RoutesPlan;

impl fmt::Display for RoutesPlan {
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        Ok(())
    }
}

impl PlanSummary for RoutesPlan {
    fn changes(&self) -> usize {
        0
    }
}

impl Concern for RoutesConcern {
    const NAME: &'static str = "routes";
    type Plan = RoutesPlan;

    fn plan(
        &self,
        _applied: &DesiredState,
        _desired: &DesiredState,
    ) -> Result<RoutesPlan, ConcernError> {
        Ok(RoutesPlan)
    }

    async fn execute(
        &mut self,
        _plan: &RoutesPlan,
        _desired: &DesiredState,
    ) -> Result<(), ConcernError> {
        Ok(())
    }
}
