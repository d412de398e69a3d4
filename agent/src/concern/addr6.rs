//! Concern `ipv6`: the router's IPv6 addresses and IPv6 default route ([`crate::net::v6`]),
//! re-read from the kernel just before each plan like `links` and `routes`. NICs the state
//! names that are not there yet are left to the `links` concern to report.

use std::fmt;

use super::{Concern, ConcernError, PlanSummary};
use crate::net::v6::{self, Net6Op, Snapshot6};
use crate::net::{self, Snapshot};
use crate::state::DesiredState;

/// `ip -6` commands, one per line.
#[derive(Debug, Default)]
pub struct Net6Plan {
    pub ops: Vec<Net6Op>,
}

impl fmt::Display for Net6Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for o in &self.ops {
            writeln!(f, "{o}")?;
        }
        Ok(())
    }
}

impl PlanSummary for Net6Plan {
    fn changes(&self) -> usize {
        self.ops.len()
    }
}

#[derive(Debug, Default)]
pub struct Addr6Concern {
    sys: Option<(Snapshot, Snapshot6)>,
}

fn unavailable(e: impl fmt::Display) -> ConcernError {
    ConcernError::Unavailable(e.to_string())
}

impl Concern for Addr6Concern {
    const NAME: &'static str = "ipv6";
    type Plan = Net6Plan;

    fn plan(
        &self,
        applied: &DesiredState,
        desired: &DesiredState,
    ) -> Result<Net6Plan, ConcernError> {
        if !v6::has_ipv6(applied) && !v6::has_ipv6(desired) {
            return Ok(Net6Plan::default());
        }
        let (sys, sys6) = self
            .sys
            .as_ref()
            .ok_or_else(|| unavailable("the kernel's IPv6 addresses and routes were not read"))?;
        let old = v6::wanted6(applied, sys);
        let new = v6::wanted6(desired, sys);
        Ok(Net6Plan {
            ops: v6::plan6(&old, &new, sys, sys6),
        })
    }

    async fn execute(
        &mut self,
        plan: &Net6Plan,
        _desired: &DesiredState,
    ) -> Result<(), ConcernError> {
        if plan.ops.is_empty() {
            return Ok(());
        }
        let empty = Snapshot::default();
        let sys = self.sys.as_ref().map_or(&empty, |(s, _)| s);
        let h = net::observe::connect().map_err(unavailable)?;
        v6::apply6(&h, sys, &plan.ops)
            .await
            .map_err(|e| ConcernError::Failed(e.to_string()))?;
        Ok(())
    }

    async fn observe(&mut self) -> Result<(), ConcernError> {
        let h = net::observe::connect().map_err(unavailable)?;
        let sys = net::observe::snapshot(&h).await.map_err(unavailable)?;
        let sys6 = v6::snapshot6(&h).await.map_err(unavailable)?;
        self.sys = Some((sys, sys6));
        Ok(())
    }

    async fn refresh(
        &mut self,
        applied: &DesiredState,
        desired: &DesiredState,
    ) -> Result<(), ConcernError> {
        // An IPv4-only router pays nothing for this concern.
        if !v6::has_ipv6(applied) && !v6::has_ipv6(desired) {
            return Ok(());
        }
        self.observe().await
    }
}
