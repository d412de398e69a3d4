//! Runs the concerns in their fixed order: links/addresses, routes, nftables, usage counters,
//! tunables, conntrack, VPN, OSPF, DHCP/DNS, metadata/passwords, load balancing. Each is planned just before it executes, so its plan sees what earlier concerns did.
//!
//! A `Failed` concern stops the run and the concerns already executed are driven back to the
//! old state, so a refused push leaves the system as it was. An `Unavailable` concern (its
//! daemon is down) does not fail the push: the state is committed and that concern is retried.

use std::fmt;
use std::time::Instant;

use crate::concern::addr6::Addr6Concern;
use crate::concern::bgp::BgpConcern;
use crate::concern::conntrack::ConntrackConcern;
use crate::concern::dhcp::DhcpConcern;
use crate::concern::ha::HaConcern;
use crate::concern::lb::LbConcern;
use crate::concern::links::{LinksConcern, RoutesConcern};
use crate::concern::nft::NftConcern;
use crate::concern::nft6::Nft6Concern;
use crate::concern::ospf::OspfConcern;
use crate::concern::radvd::RadvdConcern;
use crate::concern::rule_stats::RuleStatsConcern;
use crate::concern::tunables::TunablesConcern;
use crate::concern::usage::UsageConcern;
use crate::concern::vpn::VpnConcern;
use crate::concern::web::WebConcern;
use crate::concern::{Concern, ConcernError, Outcome, PlanSummary, Status};
use crate::config::Config;
use crate::state::DesiredState;
use crate::store::delta::Changed;

/// Every backend of the agent, in execution order.
#[derive(Debug)]
pub struct Reconciler {
    pub links: LinksConcern,
    pub routes: RoutesConcern,
    /// IPv6 addresses and the IPv6 default route.
    pub addr6: Addr6Concern,
    pub nft: NftConcern,
    /// The IPv6 filter (`ip6 vr`), before tunables turn IPv6 forwarding on.
    pub nft6: Nft6Concern,
    /// Byte counters per public NIC (`inet vr_stats`): counting starts with the push that
    /// brings the NIC.
    pub usage: UsageConcern,
    pub rule_stats: RuleStatsConcern,
    /// After nftables: forwarding starts once the firewall is in place, and the ruleset has
    /// loaded `nf_conntrack`, whose sysctls this concern sets.
    pub tunables: TunablesConcern,
    pub conntrack: ConntrackConcern,
    pub vpn: VpnConcern,
    pub ospf: OspfConcern,
    /// After OSPF, in the same FRR: each reads and writes only its own lines.
    pub bgp: BgpConcern,
    /// Guest DHCP and DNS (dnsmasq): last, once addresses and the firewall are in place.
    pub dhcp: DhcpConcern,
    /// Router advertisements on guest NICs with an IPv6 prefix.
    pub radvd: RadvdConcern,
    /// Metadata, user data and passwords over HTTP on the guest gateways.
    pub web: WebConcern,
    /// Load balancing (haproxy), once addresses and the firewall are in place.
    pub lb: LbConcern,
    /// The redundant pair (keepalived, conntrackd): last, once the NICs it watches are
    /// configured; a promotion's public NICs came up in `links` just before.
    pub ha: HaConcern,
}

/// The plan of every concern for one transition (pure; `Display` is the operator's view).
#[derive(Debug, Default)]
pub struct FullPlan {
    /// (concern, rendered plan or planning error, number of changes)
    pub parts: Vec<(&'static str, Result<String, String>, usize)>,
}

impl FullPlan {
    pub fn changes(&self) -> usize {
        self.parts.iter().map(|p| p.2).sum()
    }
}

impl fmt::Display for FullPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, plan, changes) in &self.parts {
            match plan {
                Ok(text) if *changes == 0 => writeln!(f, "# {name}: no change")?,
                Ok(text) => {
                    writeln!(f, "# {name}: {changes} change(s)")?;
                    for line in text.lines() {
                        writeln!(f, "{line}")?;
                    }
                }
                Err(e) => writeln!(f, "# {name}: cannot plan: {e}")?,
            }
        }
        Ok(())
    }
}

/// Result of executing all concerns.
#[derive(Debug, Default)]
pub struct Report {
    pub outcomes: Vec<Outcome>,
    /// A concern failed; the earlier ones were rolled back.
    pub failed: bool,
    /// Concerns whose rollback did not complete, with why: the system may hold part of the
    /// refused push there until a retry brings it back to the committed state.
    pub rollback_incomplete: Vec<(&'static str, String)>,
}

impl Report {
    /// Concerns whose backend was unavailable (to retry).
    pub fn unavailable(&self) -> Vec<&'static str> {
        self.outcomes
            .iter()
            .filter(|o| matches!(o.status, Status::Unavailable(_)))
            .map(|o| o.concern)
            .collect()
    }
}

fn plan_part<C: Concern>(
    c: &C,
    applied: &DesiredState,
    desired: &DesiredState,
) -> (&'static str, Result<String, String>, usize) {
    match c.plan(applied, desired) {
        Ok(p) => (C::NAME, Ok(p.to_string()), p.changes()),
        Err(e) => (C::NAME, Err(e.to_string()), 0),
    }
}

/// Plans and executes one concern, recording its outcome. Returns false if it failed.
async fn run<C: Concern>(
    c: &mut C,
    applied: &DesiredState,
    desired: &DesiredState,
    out: &mut Vec<Outcome>,
) -> bool {
    let start = Instant::now();
    let planning = crate::timing::concern_phase("plan", C::NAME);
    let planned = match c.refresh(applied, desired).await {
        Ok(()) => c.plan(applied, desired),
        Err(e) => Err(e),
    };
    drop(planning);
    let (status, changes) = match planned {
        Err(e) => (status_of(e), 0),
        Ok(plan) if plan.is_empty() => (Status::Unchanged, 0),
        Ok(plan) => {
            let n = plan.changes();
            // A full replace at 10,000 mappings is a megabyte of text: log short plans whole,
            // long ones at debug level only (never rendered unless that level is on).
            if plan.lines_hint() <= 64 {
                tracing::info!(concern = C::NAME, changes = n, "applying:\n{plan}");
            } else {
                tracing::info!(
                    concern = C::NAME,
                    changes = n,
                    "applying (plan at debug level)"
                );
                tracing::debug!(concern = C::NAME, "plan:\n{plan}");
            }
            let _executing = crate::timing::concern_phase("execute", C::NAME);
            match c.execute(&plan, desired).await {
                Ok(()) => (Status::Applied, n),
                Err(e) => (status_of(e), 0),
            }
        }
    };
    // Each concern that finishes is progress: tell systemd's watchdog from here, the task that
    // is doing the work, never from a side thread that would keep pinging a wedged loop.
    crate::watchdog::progress();
    let ok = !matches!(status, Status::Failed(_));
    if let Status::Failed(e) | Status::Unavailable(e) = &status {
        tracing::warn!(concern = C::NAME, "{e}");
    }
    out.push(Outcome {
        concern: C::NAME,
        status,
        changes,
        millis: (start.elapsed().as_secs_f64() * 1e6).round() / 1e3,
    });
    ok
}

fn status_of(e: ConcernError) -> Status {
    match e {
        ConcernError::Unavailable(r) => Status::Unavailable(r),
        ConcernError::Failed(r) => Status::Failed(r),
    }
}

/// Expands `$body` once per concern field, in execution order.
macro_rules! each_concern {
    ($self:ident, $c:ident => $body:expr) => {{
        {
            let $c = &mut $self.links;
            $body
        }
        {
            let $c = &mut $self.routes;
            $body
        }
        {
            let $c = &mut $self.addr6;
            $body
        }
        {
            let $c = &mut $self.nft;
            $body
        }
        {
            let $c = &mut $self.nft6;
            $body
        }
        {
            let $c = &mut $self.usage;
            $body
        }
        {
            let $c = &mut $self.rule_stats;
            $body
        }
        {
            let $c = &mut $self.tunables;
            $body
        }
        {
            let $c = &mut $self.conntrack;
            $body
        }
        {
            let $c = &mut $self.vpn;
            $body
        }
        {
            let $c = &mut $self.ospf;
            $body
        }
        {
            let $c = &mut $self.bgp;
            $body
        }
        {
            let $c = &mut $self.dhcp;
            $body
        }
        {
            let $c = &mut $self.radvd;
            $body
        }
        {
            let $c = &mut $self.web;
            $body
        }
        {
            let $c = &mut $self.lb;
            $body
        }
        {
            let $c = &mut $self.ha;
            $body
        }
    }};
}

impl Reconciler {
    // Concerns not built yet are unit structs.
    #[allow(clippy::default_constructed_unit_structs)]
    pub fn new(cfg: &Config) -> Reconciler {
        Reconciler {
            links: LinksConcern::default(),
            routes: RoutesConcern::default(),
            nft: {
                let mut nft = NftConcern::default();
                nft.backend = if cfg.nft_backend == "cli" {
                    crate::concern::nft::Backend::Cli
                } else {
                    crate::concern::nft::Backend::Netlink
                };
                nft
            },
            addr6: Addr6Concern::default(),
            nft6: {
                let mut nft6 = Nft6Concern::default();
                if cfg.nft_backend == "cli" {
                    nft6.backend = crate::concern::nft::Backend::Cli;
                } else {
                    nft6.backend = crate::concern::nft::Backend::Netlink;
                }
                nft6
            },
            usage: UsageConcern::default(),
            rule_stats: RuleStatsConcern::default(),
            tunables: TunablesConcern::new(cfg.kernel.clone()),
            conntrack: ConntrackConcern::default(),
            vpn: VpnConcern::new(cfg.vici_socket.clone()),
            ospf: OspfConcern::new(cfg.frr_vty_dir.clone(), cfg.frr_config.clone()),
            bgp: BgpConcern::new(cfg.frr_vty_dir.clone(), cfg.frr_config.clone()),
            dhcp: DhcpConcern::new(&cfg.run_dir, &cfg.state_dir),
            radvd: RadvdConcern::new(&cfg.run_dir),
            web: WebConcern::new(&cfg.state_dir),
            lb: LbConcern::new(&cfg.run_dir),
            ha: HaConcern::new(&cfg.run_dir, &cfg.socket),
        }
    }

    /// Pure: what every concern would do to go from `applied` to `desired`.
    pub fn plan(&mut self, applied: &DesiredState, desired: &DesiredState) -> FullPlan {
        let mut plan = FullPlan::default();
        each_concern!(self, c => plan.parts.push(plan_part(&*c, applied, desired)));
        plan
    }

    /// Re-reads what the cheap-to-read concerns plan from (as `run` does before each plan),
    /// so a dry run plans from the kernel as it is now. Failures surface in the plan.
    pub async fn refresh(&mut self, applied: &DesiredState, desired: &DesiredState) {
        each_concern!(self, c => {
            if let Err(e) = c.refresh(applied, desired).await {
                tracing::warn!(concern = name_of(&*c), "cannot read current state: {e}");
            }
        });
    }

    /// Refreshes every concern's mirror from the system. Returns (concern, error) for failures.
    pub async fn observe(&mut self) -> Vec<(&'static str, String)> {
        let mut errors = Vec::new();
        each_concern!(self, c => {
            if let Err(e) = observe_one(c).await {
                errors.push(e);
            }
        });
        errors
    }

    /// Drives every concern from `applied` to `desired`; on a failure, drives every concern
    /// that sent changes (the failed one too: it may have stopped half-way) back to `applied`.
    /// `changed` names the fields that differ between the two (the journal's delta): a
    /// concern that declares its inputs and reads none of them is not planned, its outcome
    /// is `Unchanged` (see [`Concern::INPUTS`]). A push's cost then follows what it changed,
    /// not the size of the sections it left alone.
    pub async fn execute(
        &mut self,
        applied: &DesiredState,
        desired: &DesiredState,
        changed: &Changed,
    ) -> Report {
        self.execute_with(applied, desired, Some(changed)).await
    }

    /// Brings the system to `desired` from whatever it holds, without a rollback: for the
    /// boot replay and `reconcile`, where there is no older state to go back to (driving
    /// "back" to an empty state would take the router down). Each concern observes the
    /// system just before it runs, not all of them first: a hung charon or FRR (each call has
    /// a deadline) then delays only the concerns after nftables and addresses, never those.
    pub async fn converge(&mut self, desired: &DesiredState) -> Report {
        self.converge_from(&DesiredState::default(), desired).await
    }

    /// Like [`converge`](Self::converge), planning from `applied` (an interrupted push being
    /// undone: there is nothing sensible to roll "back" to if that fails).
    pub async fn converge_from(
        &mut self,
        applied: &DesiredState,
        desired: &DesiredState,
    ) -> Report {
        self.execute_with(applied, desired, None).await
    }

    /// `changed`: a push (rolled back on a failure), planned only where it changed inputs;
    /// `None`: a convergence, every concern planned, observing first, no rollback.
    async fn execute_with(
        &mut self,
        applied: &DesiredState,
        desired: &DesiredState,
        changed: Option<&Changed>,
    ) -> Report {
        let rollback = changed.is_some();
        let mut report = Report::default();
        let mut failed = false;
        each_concern!(self, c => {
            if failed {
                report.outcomes.push(Outcome { concern: name_of(&*c), status: Status::Skipped, changes: 0, millis: 0.0 });
            } else if untouched(&*c, changed) {
                report.outcomes.push(Outcome { concern: name_of(&*c), status: Status::Unchanged, changes: 0, millis: 0.0 });
            } else {
                if !rollback {
                    if let Err((concern, e)) = observe_one(c).await {
                        tracing::warn!(concern, "cannot read current state: {e}");
                    }
                }
                if !run(c, applied, desired, &mut report.outcomes).await {
                    failed = true;
                }
            }
        });
        report.failed = failed;
        if failed && rollback {
            let mut undo = Vec::new();
            let executed: Vec<&'static str> = report
                .outcomes
                .iter()
                .filter(|o| {
                    matches!(
                        o.status,
                        Status::Applied | Status::Failed(_) | Status::Unavailable(_)
                    )
                })
                .map(|o| o.concern)
                .collect();
            each_concern!(self, c => {
                if executed.contains(&name_of(&*c)) {
                    run(c, desired, applied, &mut undo).await;
                }
            });
            for u in undo {
                let why = match u.status {
                    Status::Applied | Status::Unchanged => continue,
                    Status::Failed(e) | Status::Unavailable(e) => e,
                    other => format!("{other:?}"),
                };
                tracing::error!(concern = u.concern, "rollback incomplete: {why}");
                report.rollback_incomplete.push((u.concern, why));
            }
        }
        report
    }

    /// One self-heal pass: every concern not in `skip` whose cheap probe says the system may
    /// have changed is observed, then planned from `committed` to itself; a plan that is not
    /// empty is drift, and it is executed. Returns the outcome of every repair attempted.
    pub async fn heal(&mut self, committed: &DesiredState, skip: &[&'static str]) -> Vec<Outcome> {
        let mut out = Vec::new();
        each_concern!(self, c => {
            if !skip.contains(&name_of(&*c)) {
                heal_one(c, committed, &mut out).await;
            }
        });
        out
    }

    /// Every concern's own health checks.
    pub async fn health(&mut self, desired: &DesiredState) -> Vec<crate::diag::check::Check> {
        let mut out = Vec::new();
        each_concern!(self, c => out.extend(c.health(desired).await));
        out
    }

    /// Re-runs only the named concerns (e.g. those whose daemon was unavailable).
    pub async fn retry(
        &mut self,
        names: &[&'static str],
        applied: &DesiredState,
        desired: &DesiredState,
    ) -> Vec<Outcome> {
        let mut out = Vec::new();
        each_concern!(self, c => {
            if names.contains(&name_of(&*c)) {
                run(c, applied, desired, &mut out).await;
            }
        });
        out
    }
}

async fn heal_one<C: Concern>(c: &mut C, committed: &DesiredState, out: &mut Vec<Outcome>) {
    if !c.may_have_drifted().await {
        tracing::trace!(concern = C::NAME, "self-heal: unchanged since last look");
        return;
    }
    tracing::trace!(concern = C::NAME, "self-heal: observing");
    let start = Instant::now();
    if let Err(e) = c.observe().await {
        // Reported like a failed repair: the engine backs off (and a daemon that does not
        // answer goes to the retry list), so a hung daemon is not asked again every pass.
        tracing::warn!(
            concern = C::NAME,
            "self-heal: cannot read current state: {e}"
        );
        out.push(Outcome {
            concern: C::NAME,
            status: status_of(e),
            changes: 0,
            millis: (start.elapsed().as_secs_f64() * 1e6).round() / 1e3,
        });
        return;
    }
    match c.plan(committed, committed) {
        Ok(p) if p.is_empty() => {}
        Ok(p) => {
            tracing::warn!(
                concern = C::NAME,
                changes = p.changes(),
                "drift from the committed state found; repairing without a push"
            );
            run(c, committed, committed, out).await;
        }
        Err(e) => tracing::debug!(concern = C::NAME, "self-heal: cannot plan: {e}"),
    }
}

/// Whether the push changed none of the fields `c` declares as its inputs.
fn untouched<C: Concern>(_: &C, changed: Option<&Changed>) -> bool {
    match (C::INPUTS, changed) {
        (Some(inputs), Some(changed)) => !changed.any(inputs),
        _ => false,
    }
}

fn name_of<C: Concern>(_: &C) -> &'static str {
    C::NAME
}

async fn observe_one<C: Concern>(c: &mut C) -> Result<(), (&'static str, String)> {
    c.observe().await.map_err(|e| (C::NAME, e.to_string()))
}
