//! Concern `nftables6`: the IPv6 filter in the agent's table `ip6 vr` ([`vr_nat::v6`]).
//!
//! Installed whenever the IPv4 table is (the router is configured), IPv6 configured or not: a
//! NIC that gains a global IPv6 address (from a push, SLAAC upstream or by hand) must not
//! expose SSH and every other service over IPv6. Same discipline as `nftables`: a mirror of
//! what was applied; `observe` reads the table once (`nft -j list table ip6 vr`) and a replay
//! onto a matching kernel sends nothing; plans are element changes when only set contents
//! changed, else one atomic replace (conntrack untouched); the netlink executor sends each
//! plan as one batch (`--nft-backend cli`: `nft -f -`).

use std::fmt;

use vr_nat::cli::{CliError, Nft};
use vr_nat::ir::Family;
use vr_nat::observe::matches_listing;
use vr_nat::plan::{plan_opt, NftPlan};
use vr_nat::v6::{build6, validate_firewall6, Guest6, Router6Context, TABLE6};
use vr_nat::Ruleset;

use super::nft::Backend;
use super::{Concern, ConcernError, PlanSummary};
use crate::state::{DesiredState, InterfaceRole};

/// The plan, and the ruleset the mirror becomes once it is applied.
#[derive(Debug)]
pub struct Nft6Plan(pub NftPlan, Option<Ruleset>);

impl fmt::Display for Nft6Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl PlanSummary for Nft6Plan {
    fn changes(&self) -> usize {
        self.0.changes()
    }
}

#[derive(Debug, Default)]
pub struct Nft6Concern {
    pub backend: Backend,
    pub nft: Nft,
    mirror: Option<Ruleset>,
    /// `nft -j list table ip6 vr` as `observe` read it (`Some(None)`: no table).
    observed: Option<Option<String>>,
    /// The kernel's ruleset generation after this concern last applied or observed: while it
    /// is unchanged nobody touched nftables and self-heal need not list the table.
    generation: Option<u32>,
}

/// What the IPv6 rules need to know about the router.
pub fn router_context6(s: &DesiredState) -> Router6Context {
    let mut ctx = Router6Context::default();
    for i in &s.interfaces {
        match i.role {
            InterfaceRole::Control if ctx.control_device.is_none() => {
                ctx.control_device = Some(i.device.clone());
            }
            InterfaceRole::Guest if i.addresses6.is_empty() => ctx.guests.push(Guest6 {
                device: i.device.clone(),
                prefix: None,
            }),
            InterfaceRole::Guest => ctx.guests.extend(i.addresses6.iter().map(|a| Guest6 {
                device: i.device.clone(),
                prefix: Some(a.trunc()),
            })),
            _ => {}
        }
    }
    ctx
}

/// Nothing to enforce: the same rule as the IPv4 table (an agent never configured leaves
/// nftables alone).
fn idle(s: &DesiredState) -> bool {
    s.interfaces.is_empty()
        && s.nat == Default::default()
        && s.firewall == Default::default()
        && s.firewall6.is_empty()
        && s.acls.is_empty()
        && s.vpn.site_to_site.is_empty()
}

/// The `ip6 vr` table `s` asks for; `None` when there is nothing to enforce.
pub fn desired_ruleset6(s: &DesiredState) -> Result<Option<Ruleset>, ConcernError> {
    if idle(s) {
        return Ok(None);
    }
    validate_firewall6(&s.firewall6).map_err(|e| {
        let all: Vec<String> = e.iter().map(|e| format!("firewall6.{e}")).collect();
        ConcernError::Failed(all.join("; "))
    })?;
    Ok(Some(build6(&router_context6(s), &s.firewall6)))
}

fn cli_error(e: CliError) -> ConcernError {
    match e {
        CliError::Spawn { .. } => ConcernError::Unavailable(e.to_string()),
        CliError::Refused { .. } => ConcernError::Failed(e.to_string()),
    }
}

impl Nft6Concern {
    /// The IPv6 ruleset this process applied last, if any.
    pub fn mirror(&self) -> Option<&Ruleset> {
        self.mirror.as_ref()
    }

    /// The ruleset generation, where this concern's `nft` runs in the agent's own namespace.
    fn read_generation(&self) -> Option<u32> {
        if self.nft.netns.is_some() {
            return None;
        }
        vr_nat::netlink::ruleset_generation().ok()
    }

    async fn send(&self, plan: &NftPlan) -> Result<(), ConcernError> {
        if self.backend == Backend::Cli || self.nft.netns.is_some() {
            let nft = self.nft.clone();
            let plan = plan.clone();
            return tokio::task::spawn_blocking(move || nft.apply(&plan))
                .await
                .map_err(|e| ConcernError::Failed(format!("nft executor task: {e}")))?
                .map_err(cli_error);
        }
        vr_nat::netlink::Executor::default()
            .apply(plan, self.mirror.as_ref())
            .map_err(|e| match e {
                vr_nat::netlink::NetlinkError::Io(_) => ConcernError::Unavailable(e.to_string()),
                _ => ConcernError::Failed(e.to_string()),
            })
    }
}

impl Concern for Nft6Concern {
    const NAME: &'static str = "nftables6";
    type Plan = Nft6Plan;

    fn plan(
        &self,
        applied: &DesiredState,
        desired: &DesiredState,
    ) -> Result<Nft6Plan, ConcernError> {
        let want = desired_ruleset6(desired)?;
        let have = match (&self.mirror, &self.observed, &want) {
            (Some(m), ..) => Some(m.clone()),
            (None, Some(Some(json)), Some(w)) if matches_listing(w, json) => Some(w.clone()),
            (None, _, Some(_)) => None,
            // Nothing to enforce: remove the table `applied` or the kernel holds.
            (None, observed, None) => desired_ruleset6(applied).ok().flatten().or_else(|| {
                matches!(observed, Some(Some(_)))
                    .then(|| build6(&Router6Context::default(), &Default::default()))
            }),
        };
        Ok(Nft6Plan(plan_opt(have.as_ref(), want.as_ref()), want))
    }

    async fn execute(
        &mut self,
        plan: &Nft6Plan,
        _desired: &DesiredState,
    ) -> Result<(), ConcernError> {
        if plan.0.changes() > 0 {
            let before = self.read_generation();
            let sent = self.send(&plan.0).await;
            self.generation = self.read_generation();
            super::nft_script::record_own_writes(before, self.generation, 1);
            if let Err(e) = sent {
                // The kernel may hold either state: the next plan replaces whole.
                self.mirror = None;
                return Err(e);
            }
        }
        self.mirror = plan.1.clone();
        self.observed = None;
        Ok(())
    }

    async fn observe(&mut self) -> Result<(), ConcernError> {
        // Read before listing: a change made meanwhile is seen by the next probe.
        let generation = self.read_generation();
        let nft = self.nft.clone();
        let listed = tokio::task::spawn_blocking(move || nft.list_table_json(Family::Ip6, TABLE6))
            .await
            .map_err(|e| ConcernError::Failed(format!("nft reader task: {e}")))?
            .map_err(cli_error)?;
        self.mirror = None;
        self.observed = Some(listed);
        self.generation = generation;
        Ok(())
    }

    async fn may_have_drifted(&mut self) -> bool {
        // Unknown counts as changed: observing is always safe. The agent's own later writes
        // to other tables are not drift.
        super::nft_script::changed_by_others(self.generation, self.read_generation())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(json: &str) -> DesiredState {
        serde_json::from_str(json).unwrap()
    }

    #[tokio::test]
    async fn configured_router_gets_the_table_and_a_second_plan_is_empty() {
        let s = state(
            r#"{"interfaces":[
                {"device":"eth1","role":"control","addresses":["169.254.0.5/16"]},
                {"device":"eth0","role":"guest","addresses":["10.1.0.1/24"],"addresses6":["2001:db8:10::1/64"]}],
              "firewall6":{"ingress":[{"id":1,"protocol":"tcp","ports":80}]}}"#,
        );
        let mut c = Nft6Concern {
            backend: Backend::Cli,
            nft: Nft {
                program: "/bin/true".into(),
                netns: None,
            },
            ..Default::default()
        };
        let p = c.plan(&DesiredState::default(), &s).unwrap();
        assert!(matches!(p.0, NftPlan::Replace(_)), "{p}");
        let text = p.to_string();
        assert!(text.contains("table ip6 vr"), "{text}");
        assert!(text.contains("2001:db8:10::/64"), "{text}");
        c.execute(&p, &s).await.unwrap();
        assert_eq!(c.plan(&s, &s).unwrap().changes(), 0);
        // Unconfigured: the table goes.
        let gone = c.plan(&s, &DesiredState::default()).unwrap();
        assert!(matches!(gone.0, NftPlan::Remove { .. }), "{gone}");
        assert!(desired_ruleset6(&DesiredState::default())
            .unwrap()
            .is_none());
    }
}
