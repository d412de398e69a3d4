//! Concern `links`: addresses, links and MTUs through rtnetlink.
//!
//! Not built yet: plans nothing, so a push stores this section and reports it
//! "accepted, not yet applied" when the section is non-empty.

use std::fmt;

use super::{Concern, ConcernError, PlanSummary};
use crate::state::DesiredState;

#[derive(Debug, Default)]
pub struct LinksConcern;

/// Nothing to do (the concern is not built yet).
#[derive(Debug, Default)]
pub struct LinksPlan;

impl fmt::Display for LinksPlan {
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        Ok(())
    }
}

impl PlanSummary for LinksPlan {
    fn changes(&self) -> usize {
        0
    }
}

impl Concern for LinksConcern {
    const NAME: &'static str = "links";
    type Plan = LinksPlan;

    fn plan(
        &self,
        _applied: &DesiredState,
        _desired: &DesiredState,
    ) -> Result<LinksPlan, ConcernError> {
        Ok(LinksPlan)
    }

    async fn execute(
        &mut self,
        _plan: &LinksPlan,
        _desired: &DesiredState,
    ) -> Result<(), ConcernError> {
        Ok(())
    }
}
