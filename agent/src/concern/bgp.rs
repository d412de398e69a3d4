//! Concern `bgp`: BGP through the running FRR's bgpd, driven with `vtysh` like OSPF (the same
//! [`super::ospf::vtysh`] wrapper: deadlines, configuration on standard input, so passwords
//! never appear on a command line).
//!
//! The plan ([`vr_ospf::bgp::plan::plan`]) diffs FRR's `router bgp` block against the desired
//! one line by line: adding, changing or removing one neighbor touches only that neighbor's
//! session; a new guest network is one `network` line (no reset); FRR is never restarted. It
//! reads and writes only `router bgp`, so OSPF's lines in the same FRR config are never
//! removed, and the OSPF concern (which reads only `router ospf` and `ip ospf` lines) never
//! removes BGP's. The executor sends exactly the plan, reads FRR back (a second plan must be
//! empty) and saves the running config to `--frr-config` (mode 0640: it holds passwords).

use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use vr_ospf::bgp::plan::{plan, BgpCommands};
use vr_ospf::bgp::{bgp_block, status::Peer};

use super::ospf::vtysh::{self, Vtysh};
use super::{Concern, ConcernError, PlanSummary};
use crate::diag::check::{Check, Verdict};
use crate::state::DesiredState;

/// FRR daemons the concern needs connected (`show daemons`).
const NEEDED: &[&str] = &["zebra", "bgpd"];

/// A read this recent is what FRR holds now (see the OSPF concern).
const FRESH: Duration = Duration::from_millis(500);

/// The vtysh commands of one transition.
#[derive(Debug, Default)]
pub struct BgpPlan(pub BgpCommands);

impl fmt::Display for BgpPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl PlanSummary for BgpPlan {
    fn changes(&self) -> usize {
        self.0.len()
    }
}

/// FRR's running config as last read. Holds passwords: `Debug` redacts.
#[derive(Clone, PartialEq, Eq)]
struct Running(String);

impl fmt::Debug for Running {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&vr_ospf::render::redact(&self.0))
    }
}

#[derive(Debug)]
pub struct BgpConcern {
    pub vtysh: Vtysh,
    /// FRR's integrated config file, rewritten after each change.
    pub config_file: PathBuf,
    frr: Result<Running, String>,
    read_at: Option<Instant>,
}

impl Default for BgpConcern {
    fn default() -> Self {
        BgpConcern::new(None, PathBuf::from(crate::config::DEFAULT_FRR_CONFIG))
    }
}

fn desired_text(s: &DesiredState) -> String {
    s.bgp.as_ref().map(bgp_block).unwrap_or_default()
}

impl BgpConcern {
    pub fn new(vty_dir: Option<PathBuf>, config_file: PathBuf) -> Self {
        BgpConcern {
            vtysh: Vtysh::new(vty_dir),
            config_file,
            frr: Err("FRR not read yet".into()),
            read_at: None,
        }
    }

    /// `show daemons` + `show running-config` in one vtysh call, [`vtysh::READ_DEADLINE`].
    /// Err((hung, why)).
    async fn read(&self) -> Result<Running, (bool, String)> {
        let out = self
            .vtysh
            .raw(
                &["-c", "show daemons", "-c", "show running-config"],
                None,
                vtysh::READ_DEADLINE,
            )
            .await
            .map_err(|e| (matches!(e, vtysh::VtyshError::Deadline(_)), e.to_string()))?;
        if let Some(why) = vtysh::unreachable(&out) {
            return Err((false, why));
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        let (daemons, view) = super::ospf::parse_view(&stdout).map_err(|e| (false, e))?;
        if let Some(missing) = NEEDED.iter().find(|d| !daemons.iter().any(|x| x == *d)) {
            return Err((
                false,
                format!(
                    "{missing} is not running (FRR daemons connected: {})",
                    daemons.join(" ")
                ),
            ));
        }
        Ok(Running(view.config))
    }

    async fn reread(&mut self, hung_is_error: bool) -> Result<(), ConcernError> {
        let r = self.read().await;
        self.read_at = Some(Instant::now());
        match r {
            Ok(v) => {
                self.frr = Ok(v);
                Ok(())
            }
            Err((hung, why)) => {
                self.frr = Err(why.clone());
                if hung && hung_is_error {
                    Err(ConcernError::Unavailable(why))
                } else {
                    Ok(())
                }
            }
        }
    }

    /// `show bgp summary json`, typed (every address family).
    pub async fn peers(&self) -> Result<Vec<Peer>, ConcernError> {
        let out = self.vtysh.show(&["show bgp summary json"]).await?;
        vr_ospf::bgp::status::parse_summary(&out)
            .map_err(|e| ConcernError::Failed(format!("show bgp summary json: {e}")))
    }
}

impl Concern for BgpConcern {
    const NAME: &'static str = "bgp";
    type Plan = BgpPlan;

    fn plan(
        &self,
        applied: &DesiredState,
        desired: &DesiredState,
    ) -> Result<BgpPlan, ConcernError> {
        match &self.frr {
            Ok(r) => Ok(BgpPlan(plan(&r.0, &desired_text(desired)))),
            // No FRR (or no bgpd) is fine while no BGP is or was wanted.
            Err(_) if applied.bgp.is_none() && desired.bgp.is_none() => Ok(BgpPlan::default()),
            Err(why) => Err(ConcernError::Unavailable(why.clone())),
        }
    }

    async fn execute(
        &mut self,
        plan: &BgpPlan,
        desired: &DesiredState,
    ) -> Result<(), ConcernError> {
        self.frr = Err("FRR changed since it was read".into());
        self.read_at = None;
        let script = plan.0.script();
        if !script.is_empty() {
            self.vtysh.configure(&script).await?;
        }
        let after = self
            .read()
            .await
            .map_err(|(_, why)| ConcernError::Unavailable(why))?;
        self.frr = Ok(after.clone());
        self.read_at = Some(Instant::now());
        let left = plan_left(&after.0, desired);
        if !left.is_empty() {
            return Err(ConcernError::Failed(format!("FRR did not take:\n{left}")));
        }
        super::ospf::save_running(&self.config_file, &after.0)
    }

    async fn observe(&mut self) -> Result<(), ConcernError> {
        self.reread(true).await
    }

    async fn refresh(
        &mut self,
        applied: &DesiredState,
        desired: &DesiredState,
    ) -> Result<(), ConcernError> {
        // As for OSPF: a push that leaves BGP as it was does not pay for a vtysh process.
        if applied.bgp == desired.bgp || self.read_at.is_some_and(|t| t.elapsed() < FRESH) {
            return Ok(());
        }
        self.reread(false).await
    }

    async fn health(&mut self, desired: &DesiredState) -> Vec<Check> {
        let Some(bgp) = &desired.bgp else {
            return Vec::new();
        };
        match self.peers().await {
            Err(e) => vec![Check::fail("FRR bgpd reachable", e.to_string())],
            Ok(ps) => bgp
                .neighbors
                .iter()
                .map(|n| {
                    let a = n.address.to_string();
                    let p = ps.iter().find(|p| p.address == a);
                    let up = p.is_some_and(|p| p.state == "Established");
                    Check::new(
                        format!("bgp neighbor {a}"),
                        if up { Verdict::Ok } else { Verdict::Fail },
                        p.map(|p| p.state.clone())
                            .unwrap_or_else(|| "not configured".into()),
                    )
                })
                .collect(),
        }
    }
}

fn plan_left(running: &str, desired: &DesiredState) -> BgpCommands {
    plan(running, &desired_text(desired))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreachable_frr_plans_nothing_without_bgp_and_is_unavailable_with_it() {
        let c = BgpConcern::default();
        let none = DesiredState::default();
        assert!(c.plan(&none, &none).unwrap().is_empty());
        let with: DesiredState = serde_json::from_value(serde_json::json!({
            "bgp": {"local_as": 65000, "router_id": "192.0.2.1"}
        }))
        .unwrap();
        assert!(matches!(
            c.plan(&none, &with),
            Err(ConcernError::Unavailable(_))
        ));
        let c = BgpConcern {
            frr: Ok(Running(
                "router bgp 65000\n neighbor 192.0.2.2 password s3cret\nexit\n".into(),
            )),
            ..BgpConcern::default()
        };
        assert!(!format!("{c:?}").contains("s3cret"), "{c:?}");
    }
}
