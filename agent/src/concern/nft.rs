//! Concern `nftables`: NAT, firewall and ACL rules in the agent's own table (`ip vr`).
//!
//! The concern keeps a mirror of the ruleset it applied. At start `observe` reads the table
//! once (`nft -j list table`); if it is exactly the desired ruleset (structure fingerprint and
//! every element, see [`vr_nat::observe`]) a replay sends nothing, otherwise the first apply
//! is a full atomic replace, which keeps conntrack entries. Plans come from
//! [`vr_nat::plan::plan`]: element changes when only mappings changed, a full replace
//! otherwise.

use std::fmt;
use std::sync::Arc;

use vr_nat::cli::{CliError, Nft};
use vr_nat::observe::matches_listing;
use vr_nat::plan::{plan_opt, NftPlan as Inner};
use vr_nat::{build, GuestNetwork, PublicInterface, RouterContext, Ruleset, VpnPeer};

use super::{Concern, ConcernError, PlanSummary};
use crate::diag::check::{Check, Verdict};
use crate::state::{DesiredState, InterfaceRole};

/// Which executor sends plans. `Cli` (`nft -f -`) until the netlink executor lands; the
/// netlink author plugs it in at [`NftConcern::send`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Backend {
    #[default]
    Cli,
    Netlink,
}

#[derive(Debug, Default)]
pub struct NftConcern {
    pub backend: Backend,
    pub nft: Nft,
    /// What this process applied; `None` until the first apply. Shared with the plan that
    /// produced it, so a one-mapping apply at 10,000 mappings copies nothing.
    mirror: Option<Arc<Ruleset>>,
    /// The table as `observe` read it (`nft -j list table`), until the next apply.
    observed: Option<Observed>,
    /// The model the mirror was built from, for planning a change of a few port forwards
    /// as element operations without rebuilding 10,000 elements.
    model: Option<NftModel>,
    /// The kernel's ruleset generation right after this concern last applied or observed:
    /// while it is unchanged, nobody touched nftables and self-heal need not list the table.
    generation: Option<u32>,
}

/// The inputs of `build` that produced the mirror.
#[derive(Debug, Clone, PartialEq)]
struct NftModel {
    ctx: RouterContext,
    nat: vr_nat::NatSection,
    firewall: vr_nat::FirewallSection,
    acls: Vec<vr_nat::TierAcl>,
    /// The load balancer's listeners open in the input chain: a change of them alone is not
    /// a port-forward change (the fast path would leave the old listeners' rule in place).
    listeners: Vec<(std::net::Ipv4Addr, u16)>,
}

impl NftModel {
    fn of(s: &DesiredState) -> NftModel {
        NftModel {
            ctx: router_context(s),
            nat: s.nat.clone(),
            firewall: s.firewall.clone(),
            acls: s.acls.clone(),
            listeners: lb_listeners(s),
        }
    }
}

/// What the mirror becomes once a plan is applied.
#[derive(Debug)]
pub enum Target {
    /// This ruleset (or none: the table is gone).
    Whole(Option<Arc<Ruleset>>),
    /// The mirror with the plan's element operations applied, and the model's port forwards
    /// with `replaced` swapped for `with`.
    Patch {
        replaced: std::ops::Range<usize>,
        with: Vec<vr_nat::PortForward>,
    },
}

/// What `observe` found.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Observed {
    Absent,
    /// `nft -j list table ip vr` output.
    Present(String),
}

/// The plan of one transition, printable as the nft commands it sends, with the ruleset it
/// leads to (the mirror once it is applied).
#[derive(Debug)]
pub struct NftPlan(pub Inner, Target);

impl fmt::Display for NftPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl PlanSummary for NftPlan {
    fn changes(&self) -> usize {
        self.0.changes()
    }
    fn lines_hint(&self) -> usize {
        match &self.0 {
            Inner::Replace(rs) => rs.sets.iter().map(|s| s.elements.len() + 4).sum::<usize>() + 64,
            other => other.changes(),
        }
    }
}

/// What the rules need to know about the router, from the desired state.
pub fn router_context(s: &DesiredState) -> RouterContext {
    let mut ctx = RouterContext::default();
    for i in &s.interfaces {
        match i.role {
            InterfaceRole::Public => ctx.public.push(PublicInterface {
                device: i.device.clone(),
                addresses: i.addresses.iter().map(|a| a.addr()).collect(),
                mark: s.policy_mark(&i.device),
            }),
            InterfaceRole::Guest => ctx.guests.extend(i.addresses.iter().map(|a| GuestNetwork {
                device: i.device.clone(),
                cidr: a.trunc(),
                router_ip: a.addr(),
            })),
            InterfaceRole::Control if ctx.control_device.is_none() => {
                ctx.control_device = Some(i.device.clone());
            }
            InterfaceRole::PrivateGateway => ctx.routed.push(i.device.clone()),
            InterfaceRole::Control => {}
        }
    }
    ctx.vpn_peers = s
        .vpn
        .site_to_site
        .iter()
        .map(|c| VpnPeer {
            local_public_ip: c.local_public_ip,
            peer_gateway: c.peer_gateway,
            local_cidrs: c.local_cidrs.clone(),
            peer_cidrs: c.peer_cidrs.clone(),
        })
        .collect();
    ctx.remote_access = s
        .vpn
        .remote_access
        .as_ref()
        .map(|r| vr_nat::RemoteAccessVpn {
            server_ip: r.server_ip,
            pool_first: r.pool_first,
            pool_last: r.pool_last,
            local_cidrs: r.local_cidrs.clone(),
        });
    ctx.ospf = s.ospf.is_some();
    ctx.bgp_peers = s
        .bgp
        .iter()
        .flat_map(|b| &b.neighbors)
        .filter_map(|n| match n.address {
            std::net::IpAddr::V4(a) => Some(a),
            std::net::IpAddr::V6(_) => None,
        })
        .collect();
    if let Some(ha) = &s.ha {
        ctx.vrrp = true;
        ctx.ha_sync_devs = ha.sync.iter().map(|l| l.device.clone()).collect();
    }
    ctx
}

/// The ruleset `s` asks for; `None` when there is nothing to enforce (no interfaces and no
/// NAT, firewall, ACL or VPN), so an agent that was never configured leaves nftables alone.
/// Nothing to enforce: no interfaces and no NAT, firewall, ACL or VPN.
fn idle(s: &DesiredState) -> bool {
    s.interfaces.is_empty()
        && s.nat == Default::default()
        && s.firewall == Default::default()
        && s.acls.is_empty()
        && s.vpn.site_to_site.is_empty()
        && s.vpn.remote_access.is_none()
}

/// Port forwards that may differ between two models and still be planned as elements.
const DELTA_LIMIT: usize = 256;

pub fn desired_ruleset(s: &DesiredState) -> Result<Option<Ruleset>, ConcernError> {
    if idle(s) {
        return Ok(None);
    }
    // The engine validates too; checking here keeps unvalidated text out of nft whatever the
    // caller did.
    let mut errs = Vec::new();
    for (section, r) in [
        ("nat", vr_nat::validate::validate_nat(&s.nat)),
        ("firewall", vr_nat::validate::validate_firewall(&s.firewall)),
        ("acls", vr_nat::validate::validate_acls(&s.acls)),
    ] {
        if let Err(e) = r {
            errs.extend(e.into_iter().map(|e| format!("{section}.{e}")));
        }
    }
    if !errs.is_empty() {
        return Err(ConcernError::Failed(errs.join("; ")));
    }
    let mut rs = build(&router_context(s), &s.nat, &s.firewall, &s.acls);
    vr_nat::build::lb::open_listeners(&mut rs, &lb_listeners(s));
    Ok(Some(rs))
}

/// Every address and TCP port haproxy listens on; its stats page only on an address of the
/// control network (CloudStack may put it on a public or guest address: not opened there).
fn lb_listeners(s: &DesiredState) -> Vec<(std::net::Ipv4Addr, u16)> {
    let lb = &s.lb;
    let control = |ip: &std::net::Ipv4Addr| {
        s.interfaces.iter().any(|i| {
            i.role == InterfaceRole::Control && i.addresses.iter().any(|a| a.addr() == *ip)
        })
    };
    let native = lb.listeners.iter().map(|l| (l.public_ip, l.public_port));
    let provided = lb
        .provided
        .iter()
        .flat_map(|p| p.public_ports.iter().map(|pp| (pp.ip, pp.port)));
    let stats = lb
        .stats
        .iter()
        .map(|st| (st.ip, st.port))
        .chain(
            lb.provided
                .iter()
                .flat_map(|p| p.stats_ports.iter().map(|pp| (pp.ip, pp.port))),
        )
        .filter(|(ip, _)| control(ip));
    native.chain(provided).chain(stats).collect()
}

fn cli_error(e: CliError) -> ConcernError {
    match e {
        CliError::Spawn { .. } => ConcernError::Unavailable(e.to_string()),
        CliError::Refused { .. } => ConcernError::Failed(e.to_string()),
    }
}

impl NftConcern {
    /// The ruleset this process applied last, if any.
    pub fn mirror(&self) -> Option<&Ruleset> {
        self.mirror.as_deref()
    }

    /// The ruleset generation of the namespace this concern drives; `None` when it cannot be
    /// read here (an `nft` aimed at another namespace, in tests) or the read failed.
    fn read_generation(&self) -> Option<u32> {
        if self.nft.netns.is_some() {
            return None;
        }
        vr_nat::netlink::ruleset_generation().ok()
    }

    /// Sends one plan through the selected backend.
    async fn send(&self, plan: &Inner) -> Result<(), ConcernError> {
        match self.backend {
            Backend::Cli => {
                let nft = self.nft.clone();
                let plan = plan.clone();
                tokio::task::spawn_blocking(move || nft.apply(&plan))
                    .await
                    .map_err(|e| ConcernError::Failed(format!("nft executor task: {e}")))?
                    .map_err(cli_error)
            }
            // Every plan is one netlink batch: one sendmsg and its ACKs, short enough to run
            // inline. An `nft` aimed at another namespace (tests) keeps the text path.
            Backend::Netlink if self.nft.netns.is_some() => {
                let nft = self.nft.clone();
                let plan = plan.clone();
                tokio::task::spawn_blocking(move || nft.apply(&plan))
                    .await
                    .map_err(|e| ConcernError::Failed(format!("nft executor task: {e}")))?
                    .map_err(cli_error)
            }
            Backend::Netlink => vr_nat::netlink::Executor::default()
                .apply(plan, self.mirror.as_deref())
                .map_err(|e| match e {
                    vr_nat::netlink::NetlinkError::Io(_) => {
                        ConcernError::Unavailable(e.to_string())
                    }
                    _ => ConcernError::Failed(e.to_string()),
                }),
        }
    }
}

/// Sets, maps and chains of `want` that the `nft -j list table` output lacks.
fn missing_objects(want: &Ruleset, json: &str) -> Vec<String> {
    let listed: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
    let mut have = std::collections::BTreeSet::new();
    for obj in listed["nftables"].as_array().into_iter().flatten() {
        for kind in ["set", "map", "chain"] {
            if let Some(name) = obj[kind]["name"].as_str() {
                have.insert(name.to_string());
            }
        }
    }
    want.sets
        .iter()
        .map(|s| &s.name)
        .chain(want.chains.iter().map(|c| &c.name))
        .filter(|n| !have.contains(*n))
        .cloned()
        .collect()
}

impl Concern for NftConcern {
    const NAME: &'static str = "nftables";
    type Plan = NftPlan;
    /// What `desired_ruleset` (through `router_context`, `idle` and `lb_listeners`) and the
    /// mirror's fast-path comparison read.
    const INPUTS: Option<&'static [&'static str]> = Some(&[
        "interfaces",
        "policy_index",
        "vpn.site_to_site",
        "vpn.remote_access",
        "ospf",
        "bgp",
        "ha",
        "nat.source_nat",
        "nat.static_nat",
        "nat.port_forwards",
        "firewall.ingress",
        "firewall.egress",
        "acls",
        "lb.listeners",
        "lb.provided",
        "lb.stats",
    ]);

    fn plan(
        &self,
        applied: &DesiredState,
        desired: &DesiredState,
    ) -> Result<NftPlan, ConcernError> {
        // Fast path: the mirror's model differs from `desired` only in a few port forwards
        // (the common push). Planned from those forwards' groups alone; `desired` was
        // validated by the engine like every state it hands over.
        if let (Some(_), Some(m)) = (&self.mirror, &self.model) {
            let only_forwards = !idle(desired)
                && m.nat.source_nat == desired.nat.source_nat
                && m.nat.static_nat == desired.nat.static_nat
                && m.firewall == desired.firewall
                && m.acls == desired.acls
                && m.ctx == router_context(desired)
                && m.listeners == lb_listeners(desired);
            if only_forwards {
                let delta = vr_nat::build::forwards::delta(
                    &m.nat.port_forwards,
                    &desired.nat.port_forwards,
                    DELTA_LIMIT,
                );
                // The engine validated `desired`, but a plan never trusts that: the changed
                // forwards are checked against the whole list (invalid ones go the full way,
                // where validation names them).
                let delta = delta.filter(|d| {
                    let start = d.replaced.start;
                    vr_nat::validate::forwards_valid(
                        &desired.nat.port_forwards,
                        start..start + d.with.len(),
                    )
                });
                if let Some(vr_nat::build::forwards::Delta {
                    ops,
                    replaced,
                    with,
                }) = delta
                {
                    let inner = if ops.is_empty() {
                        Inner::Empty
                    } else {
                        Inner::Elements {
                            family: vr_nat::ir::Family::Ip,
                            table: vr_nat::build::TABLE.to_string(),
                            ops,
                        }
                    };
                    return Ok(NftPlan(inner, Target::Patch { replaced, with }));
                }
            }
        }
        let want = desired_ruleset(desired)?.map(Arc::new);
        let have: Option<Arc<Ruleset>> = match (&self.mirror, &self.observed, &want) {
            (Some(m), ..) => Some(Arc::clone(m)),
            // Observed at start: the kernel already holds exactly `want` (replay onto a
            // matching system sends nothing).
            (None, Some(Observed::Present(json)), Some(w)) if matches_listing(w, json) => {
                Some(Arc::clone(w))
            }
            (None, Some(Observed::Absent), None) => None,
            // Nothing known: replacing whole is always right (and keeps conntrack).
            (None, _, Some(_)) => None,
            // Nothing to enforce: remove whatever table `applied` or the kernel implies.
            (None, observed, None) => desired_ruleset(applied)
                .ok()
                .flatten()
                .or_else(|| {
                    matches!(observed, Some(Observed::Present(_))).then(|| {
                        build(
                            &RouterContext::default(),
                            &Default::default(),
                            &Default::default(),
                            &[],
                        )
                    })
                })
                .map(Arc::new),
        };
        let inner = plan_opt(have.as_deref(), want.as_deref());
        Ok(NftPlan(inner, Target::Whole(want)))
    }

    async fn health(&mut self, desired: &DesiredState) -> Vec<Check> {
        const NAME: &str = "nftables table ip vr";
        let want = match desired_ruleset(desired) {
            Ok(Some(w)) => w,
            Ok(None) => return vec![Check::ok(NAME, "nothing to enforce")],
            Err(e) => return vec![Check::fail(NAME, e.to_string())],
        };
        let nft = self.nft.clone();
        let (family, table) = (want.family, want.table.clone());
        let listed = tokio::task::spawn_blocking(move || nft.list_table_json(family, &table))
            .await
            .map_err(|e| CliError::Spawn {
                program: "nft".into(),
                reason: e.to_string(),
            })
            .and_then(|r| r);
        vec![match listed {
            Err(e) => Check::new(NAME, Verdict::Warn, format!("cannot read it: {e}")),
            Ok(None) => Check::fail(NAME, "missing: NAT and firewall are not enforced"),
            Ok(Some(json)) => {
                let missing = missing_objects(&want, &json);
                if missing.is_empty() {
                    Check::ok(
                        NAME,
                        format!(
                            "{} sets/maps and {} chains present",
                            want.sets.len(),
                            want.chains.len()
                        ),
                    )
                } else {
                    Check::fail(NAME, format!("missing: {}", missing.join(", ")))
                }
            }
        }]
    }

    async fn execute(
        &mut self,
        plan: &NftPlan,
        desired: &DesiredState,
    ) -> Result<(), ConcernError> {
        if plan.0.changes() > 0 {
            let t = std::time::Instant::now();
            let before = self.read_generation();
            let sent = self.send(&plan.0).await;
            tracing::debug!(micros = t.elapsed().as_micros() as u64, "ruleset sent");
            self.generation = self.read_generation();
            super::nft_script::record_own_writes(before, self.generation, 1);
            if let Err(e) = sent {
                // The kernel may hold either state now (a refused `nft -f` changes nothing,
                // but an executor crash could): forget the mirror so the next plan replaces.
                self.mirror = None;
                self.model = None;
                return Err(e);
            }
        }
        match &plan.1 {
            Target::Whole(want) => {
                self.model = want.as_ref().map(|_| NftModel::of(desired));
                self.mirror = want.clone();
            }
            Target::Patch { replaced, with } => {
                let ops: &[vr_nat::plan::ElementOp] = match &plan.0 {
                    Inner::Elements { ops, .. } => ops,
                    _ => &[],
                };
                // Unique here (plans hold no reference to it), so this patches in place.
                let patched = ops.is_empty()
                    || self
                        .mirror
                        .as_mut()
                        .is_some_and(|m| vr_nat::plan::apply_ops(Arc::make_mut(m), ops));
                let model = self.model.as_mut().filter(|_| patched);
                if let Some(m) = model {
                    // Everything else was equal when this was planned.
                    m.nat
                        .port_forwards
                        .splice(replaced.clone(), with.iter().cloned());
                } else {
                    self.mirror = None;
                    self.model = None;
                }
            }
        }
        self.observed = None;
        Ok(())
    }

    async fn refresh(
        &mut self,
        applied: &DesiredState,
        desired: &DesiredState,
    ) -> Result<(), ConcernError> {
        // A table observed (at start, or by self-heal) that is exactly what one of the two
        // states builds becomes the mirror, with that state as its model. Without this, after
        // an agent restart the replay found a matching table and sent nothing, but no mirror
        // was set: every push until the first change parsed the 10,000-forward listing again
        // (140 ms), and that change replaced the table whole (200 ms, the firewall counters
        // reset) instead of one element operation.
        if self.mirror.is_some() {
            return Ok(());
        }
        let Some(Observed::Present(json)) = &self.observed else {
            return Ok(());
        };
        for s in [desired, applied] {
            if let Ok(Some(want)) = desired_ruleset(s) {
                if matches_listing(&want, json) {
                    self.model = Some(NftModel::of(s));
                    self.mirror = Some(Arc::new(want));
                    self.observed = None;
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    async fn may_have_drifted(&mut self) -> bool {
        // Unknown (never read, or unreadable) counts as changed: observing is always safe.
        // The agent's own later writes (the rule counters', the IPv6 table's) are not drift.
        super::nft_script::changed_by_others(self.generation, self.read_generation())
    }

    async fn observe(&mut self) -> Result<(), ConcernError> {
        // Read before listing: a change made while we list bumps it again and is seen by
        // the next probe instead of being hidden by this observation.
        let generation = self.read_generation();
        // Said at info level: after the start, only a change by somebody else gets here.
        tracing::info!("reading table ip vr back from the kernel");
        let nft = self.nft.clone();
        let listed = tokio::task::spawn_blocking(move || {
            nft.list_table_json(vr_nat::ir::Family::Ip, vr_nat::build::TABLE)
        })
        .await
        .map_err(|e| ConcernError::Failed(format!("nft reader task: {e}")))?;
        // The kernel holds exactly what this concern applied: the mirror and its model stay,
        // so the next push plans from them (a few elements) instead of from the listing (a
        // whole replace, 70 ms at 10,000 forwards). The ruleset generation that sent the
        // self-heal loop here is the kernel's one counter for every table: the rule counters'
        // table, the IPv6 table and the usage counters bump it right after this concern in
        // every push, so without this each push that came after a self-heal pass (every few
        // seconds) replaced the table whole. The same comparison decides a replay onto a
        // matching kernel, below in `plan`.
        if let (Ok(Some(json)), Some(m)) = (&listed, &self.mirror) {
            if matches_listing(m, json) {
                self.generation = generation;
                return Ok(());
            }
        }
        // Whatever was read replaces the mirror: it describes the kernel now.
        self.mirror = None;
        self.model = None;
        self.observed = None;
        match listed {
            Ok(None) => self.observed = Some(Observed::Absent),
            Ok(Some(json)) => self.observed = Some(Observed::Present(json)),
            Err(e) => return Err(cli_error(e)),
        }
        self.generation = generation;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(json: &str) -> DesiredState {
        let mut s: DesiredState = serde_json::from_str(json).unwrap();
        s.allocate_policy_indexes();
        s
    }

    const BASE: &str = r#"{"interfaces":[
        {"device":"eth0","role":"guest","addresses":["10.1.0.1/24"]},
        {"device":"eth1","role":"control","addresses":["169.254.1.5/16"]},
        {"device":"eth2","role":"public","addresses":["192.0.2.10/24"]}]"#;

    #[test]
    fn context_from_state() {
        let s = state(&format!("{BASE}}}"));
        let c = router_context(&s);
        assert_eq!(c.public[0].mark, Some(102));
        assert_eq!(c.guests[0].cidr.to_string(), "10.1.0.0/24");
        assert_eq!(c.guests[0].router_ip.to_string(), "10.1.0.1");
        assert_eq!(c.control_device.as_deref(), Some("eth1"));
    }

    #[test]
    fn idle_state_plans_nothing() {
        let c = NftConcern::default();
        let empty = DesiredState::default();
        assert_eq!(c.plan(&empty, &empty).unwrap().changes(), 0);
        let s = state(&format!("{BASE}}}"));
        let p = c.plan(&empty, &s).unwrap();
        assert!(matches!(p.0, Inner::Replace(_)));
        // Going back to nothing removes the table.
        let back = c.plan(&s, &empty).unwrap();
        assert!(matches!(back.0, Inner::Remove { .. }), "{back}");
    }

    #[test]
    fn invalid_section_fails_to_plan() {
        let s = state(&format!(
            r#"{BASE},"nat":{{"static_nat":[
                {{"public_ip":"192.0.2.11","private_ip":"10.1.0.5"}},
                {{"public_ip":"192.0.2.11","private_ip":"10.1.0.6"}}]}}}}"#
        ));
        let e = NftConcern::default().plan(&s, &s).unwrap_err();
        assert!(e.to_string().contains("nat.static_nat[1].public_ip"), "{e}");
    }

    #[test]
    fn observed_table_steers_the_first_plan() {
        let s = state(&format!("{BASE}}}"));
        let empty = DesiredState::default();
        let mut c = NftConcern {
            observed: Some(Observed::Absent),
            ..Default::default()
        };
        assert_eq!(
            c.plan(&s, &empty).unwrap().changes(),
            0,
            "no table, none wanted"
        );
        c.observed = Some(Observed::Present("{}".into()));
        assert!(matches!(c.plan(&s, &s).unwrap().0, Inner::Replace(_)));
        assert!(matches!(
            c.plan(&empty, &empty).unwrap().0,
            Inner::Remove { .. }
        ));
    }

    #[test]
    fn a_listener_change_alone_is_not_a_forward_change() {
        let lb = |ports: &[u16]| {
            let l: Vec<String> = ports
                .iter()
                .map(|p| format!(r#"{{"public_ip":"192.0.2.10","public_port":{p},"protocol":"http","backends":[{{"ip":"10.1.0.5","port":8080}}]}}"#))
                .collect();
            state(&format!(
                r#"{BASE},"lb":{{"listeners":[{}]}}}}"#,
                l.join(",")
            ))
        };
        let (two, one) = (lb(&[80, 81]), lb(&[80]));
        let c = NftConcern {
            mirror: desired_ruleset(&two).unwrap().map(Arc::new),
            model: Some(NftModel::of(&two)),
            ..Default::default()
        };
        assert!(matches!(c.plan(&two, &one).unwrap().0, Inner::Replace(_)));
        assert_eq!(c.plan(&two, &two).unwrap().changes(), 0);
    }

    #[test]
    fn missing_objects_from_listing() {
        let s = state(&format!("{BASE}}}"));
        let want = desired_ruleset(&s).unwrap().unwrap();
        let json = r#"{"nftables":[{"metainfo":{}},{"table":{"name":"vr"}},
            {"set":{"name":"public_devs"}},{"map":{"name":"pf_addr"}},{"chain":{"name":"input"}}]}"#;
        let missing = missing_objects(&want, json);
        assert!(missing.contains(&"forward".to_string()), "{missing:?}");
        assert!(!missing.contains(&"input".to_string()));
        assert!(!missing.contains(&"pf_addr".to_string()));
    }

    #[tokio::test]
    async fn mirror_makes_the_second_plan_empty() {
        let mut c = NftConcern::default();
        let s = state(&format!("{BASE}}}"));
        // A plan to `s` with nothing to send (as if the kernel held it): needs no nft.
        let to_s = NftPlan(
            Inner::Empty,
            Target::Whole(desired_ruleset(&s).unwrap().map(Arc::new)),
        );
        c.execute(&to_s, &s).await.unwrap();
        assert_eq!(c.plan(&s, &s).unwrap().changes(), 0);
        let more = state(&format!(
            r#"{BASE},"nat":{{"static_nat":[{{"public_ip":"192.0.2.11","private_ip":"10.1.0.5"}}]}}}}"#
        ));
        let p = c.plan(&s, &more).unwrap();
        assert_eq!(p.changes(), 3, "{p}");
        assert!(
            p.to_string().contains("add element ip vr static_dnat"),
            "{p}"
        );
    }

    #[tokio::test]
    async fn a_new_forward_is_planned_as_one_element_matching_a_full_build() {
        let mut c = NftConcern::default();
        let fwd = |p: u16| {
            format!(
                r#"{{"public_ip":"192.0.2.10","protocol":"tcp","public_ports":{p},"private_ip":"10.1.0.5","private_ports":{p}}}"#
            )
        };
        let with = |ports: &[u16]| {
            let list: Vec<String> = ports.iter().map(|p| fwd(*p)).collect();
            state(&format!(
                r#"{BASE},"nat":{{"port_forwards":[{}]}}}}"#,
                list.join(",")
            ))
        };
        let s = with(&[80, 443, 8080]);
        let to_s = NftPlan(
            Inner::Empty,
            Target::Whole(desired_ruleset(&s).unwrap().map(Arc::new)),
        );
        c.execute(&to_s, &s).await.unwrap();
        let more = with(&[80, 443, 2222, 8080]);
        let p = c.plan(&s, &more).unwrap();
        assert!(matches!(p.1, Target::Patch { .. }), "{p}");
        assert_eq!(
            p.to_string(),
            "add element ip vr pf_exact { 192.0.2.10 . tcp . 2222 : 10.1.0.5 . 2222 }\n"
        );
        let Inner::Elements { ops, .. } = &p.0 else {
            panic!("{p}")
        };
        let mut patched = (**c.mirror.as_ref().unwrap()).clone();
        assert!(vr_nat::plan::apply_ops(&mut patched, ops));
        assert_eq!(patched, desired_ruleset(&more).unwrap().unwrap());
        // A forward on a public IP with none yet changes the firewall's guards: rebuilt.
        let other = state(&format!(
            r#"{BASE},"nat":{{"port_forwards":[{},{}]}}}}"#,
            fwd(80),
            fwd(81).replace("192.0.2.10", "192.0.2.99")
        ));
        assert!(matches!(c.plan(&s, &other).unwrap().1, Target::Whole(_)));
    }
}
