//! Concerns `links` and `routes`: the router's addressing through rtnetlink ([`crate::net`]).
//!
//! Both keep a [`Snapshot`] of the kernel, re-read just before each plan (a dump of links,
//! addresses, routes and rules costs about a millisecond), so a plan is always a diff against
//! what the kernel holds now: replaying a state the system already matches sends nothing.

use std::collections::BTreeSet;
use std::fmt;

use super::{Concern, ConcernError, PlanSummary};
use crate::net::{self, NetOp, Snapshot, Wanted};
use crate::state::DesiredState;

/// A list of `ip` commands, plus the NICs the push names that this system lacks.
#[derive(Debug, Default)]
pub struct NetPlan {
    pub ops: Vec<NetOp>,
    pub missing: BTreeSet<String>,
}

impl fmt::Display for NetPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&net::render(&self.ops))?;
        for m in &self.missing {
            writeln!(f, "# waiting for NIC {m}")?;
        }
        Ok(())
    }
}

impl PlanSummary for NetPlan {
    fn changes(&self) -> usize {
        self.ops.len()
    }
}

/// What differs between `links` and `routes`.
trait Part {
    const NAME: &'static str;
    fn ops(old: &Wanted, new: &Wanted, sys: &Snapshot) -> Vec<NetOp>;
    fn missing(w: &Wanted) -> &BTreeSet<String>;
}

/// One of the two addressing concerns.
#[derive(Debug, Default)]
pub struct NetConcern<P> {
    /// What the kernel held at the last refresh; `None` until read once.
    sys: Option<Snapshot>,
    _part: std::marker::PhantomData<P>,
}

#[derive(Debug, Default)]
pub struct LinksPart;
#[derive(Debug, Default)]
pub struct RoutesPart;

impl Part for LinksPart {
    const NAME: &'static str = "links";
    fn ops(old: &Wanted, new: &Wanted, sys: &Snapshot) -> Vec<NetOp> {
        net::plan_links(old, new, sys)
    }
    fn missing(w: &Wanted) -> &BTreeSet<String> {
        &w.missing_nics
    }
}

impl Part for RoutesPart {
    const NAME: &'static str = "routes";
    fn ops(old: &Wanted, new: &Wanted, sys: &Snapshot) -> Vec<NetOp> {
        net::plan_routes(old, new, sys)
    }
    fn missing(w: &Wanted) -> &BTreeSet<String> {
        &w.missing_route_devices
    }
}

/// `ip addr` / `ip link`: addresses, MTUs, links up, gratuitous ARP.
pub type LinksConcern = NetConcern<LinksPart>;
/// `ip route` / `ip rule`: static routes, the default route, policy routing.
pub type RoutesConcern = NetConcern<RoutesPart>;

fn unavailable(e: impl fmt::Display) -> ConcernError {
    ConcernError::Unavailable(e.to_string())
}

impl<P: Part + Send + Sync> Concern for NetConcern<P> {
    const NAME: &'static str = P::NAME;
    type Plan = NetPlan;

    fn plan(
        &self,
        applied: &DesiredState,
        desired: &DesiredState,
    ) -> Result<NetPlan, ConcernError> {
        let sys = self
            .sys
            .as_ref()
            .ok_or_else(|| unavailable("the kernel's addresses and routes were not read"))?;
        let old = net::wanted(applied, sys);
        let new = net::wanted(desired, sys);
        let plan = NetPlan {
            ops: P::ops(&old, &new, sys),
            missing: P::missing(&new).clone(),
        };
        if plan.ops.is_empty() && !plan.missing.is_empty() {
            return Err(waiting(&plan.missing));
        }
        Ok(plan)
    }

    async fn execute(
        &mut self,
        plan: &NetPlan,
        _desired: &DesiredState,
    ) -> Result<(), ConcernError> {
        // The snapshot the plan was made from names the devices; the next plan (or dry run)
        // re-reads the kernel first, whatever this leaves behind.
        let empty = Snapshot::default();
        let sys = self.sys.as_ref().unwrap_or(&empty);
        let h = net::observe::connect().map_err(unavailable)?;
        net::exec::apply(&h, sys, &plan.ops)
            .await
            .map_err(|e| ConcernError::Failed(e.to_string()))?;
        if !plan.missing.is_empty() {
            return Err(waiting(&plan.missing));
        }
        Ok(())
    }

    async fn observe(&mut self) -> Result<(), ConcernError> {
        let h = net::observe::connect().map_err(unavailable)?;
        self.sys = Some(net::observe::snapshot(&h).await.map_err(unavailable)?);
        Ok(())
    }

    async fn refresh(&mut self, _: &DesiredState, _: &DesiredState) -> Result<(), ConcernError> {
        self.observe().await
    }

    /// One line: the kernel holds what the state implies, or the first commands that would
    /// repair it (`vr-agent reconcile` runs them).
    async fn health(&mut self, desired: &DesiredState) -> Vec<crate::diag::check::Check> {
        use crate::diag::check::Check;
        let name = match P::NAME {
            "links" => "addresses and links",
            _ => "routes and policy rules",
        };
        if let Err(e) = self.observe().await {
            return vec![Check::fail(name, e.to_string())];
        }
        match self.plan(desired, desired) {
            Ok(p) if p.ops.is_empty() => vec![Check::ok(name, "as the state implies")],
            Ok(p) => {
                let first: Vec<String> = p.ops.iter().take(3).map(ToString::to_string).collect();
                vec![Check::fail(
                    name,
                    format!("{} missing or stale: {}", p.ops.len(), first.join("; ")),
                )]
            }
            Err(e) => vec![Check::new(
                name,
                crate::diag::check::Verdict::Warn,
                e.to_string(),
            )],
        }
    }
}

/// NICs a push names that are not there (yet): the rest is applied, these are retried.
fn waiting(missing: &BTreeSet<String>) -> ConcernError {
    let names: Vec<&str> = missing.iter().map(String::as_str).collect();
    ConcernError::Unavailable(format!(
        "no NIC named {} on this system yet",
        names.join(", ")
    ))
}
