//! Concern `ospf`: OSPF through a running FRR, driven with `vtysh` ([`vtysh`]: deadlines,
//! configuration on standard input).
//!
//! The plan ([`vr_ospf::apply::plan`]) is the configuration that turns FRR's running config
//! into the desired OSPF blocks, line by line and in an order FRR accepts, so unrelated
//! changes never reset an adjacency. It is made from what FRR holds *now*: `refresh` re-reads
//! the running config (and the router id ospfd uses) before every plan, so neither a push nor
//! the periodic self-heal ever plans against a picture of an FRR that has since restarted.
//! The executor sends exactly the plan, reads FRR back (verification: a second plan must be
//! empty), then writes the config atomically to `--frr-config`, so a restart of FRR finds the
//! same state. The agent never restarts FRR.
//!
//! FRR restarted with its OSPF config lost or different: `observe` sees it and
//! `plan(committed, committed)` lists the repair. FRR down or hung: the concern is
//! `Unavailable` (within [`vtysh::READ_DEADLINE`]) and plans nothing until it answers again.
//! A hung FRR (the deadline passed) is also an `observe` error, so the self-heal loop backs
//! off instead of paying the deadline on every pass; an absent one costs a refused connect.

use std::fmt;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use vr_ospf::apply::{plan, OspfCommands};
use vr_ospf::render::{ospf_blocks, Dialect};

use super::{Concern, ConcernError, PlanSummary};
use crate::diag::check::{Check, Verdict};
use crate::state::DesiredState;

pub mod save;
pub mod vtysh;

use vtysh::Vtysh;

/// FRR daemons the concern needs connected (`show daemons`).
const NEEDED: &[&str] = &["zebra", "ospfd"];

/// Why FRR could not be read.
#[derive(Debug)]
enum Unreadable {
    /// The deadline passed: a daemon is hung (asking again costs the deadline again).
    Hung(String),
    /// Not installed, not running, or a daemon missing: asking again is cheap.
    Away(String),
}

/// FRR as last read. Its config holds keys: `Debug` prints it redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct FrrView {
    /// `show running-config`.
    pub config: String,
    /// The router id ospfd uses (`show ip ospf json`), None without an instance.
    pub router_id: Option<Ipv4Addr>,
}

#[derive(Debug)]
pub struct OspfConcern {
    pub vtysh: Vtysh,
    /// FRR's integrated config file, rewritten after each change.
    pub config_file: PathBuf,
    /// FRR as last read, or why it could not be read.
    frr: Result<FrrView, String>,
    /// When `frr` was read (None once the agent changed FRR since).
    read_at: Option<Instant>,
}

/// A read this recent is what FRR holds now: `refresh` right after `observe` (replay and
/// `reconcile` do both) does not ask a second time, nor wait a second deadline on a hung FRR.
const FRESH: Duration = Duration::from_millis(500);

impl Default for OspfConcern {
    fn default() -> Self {
        OspfConcern::new(None, PathBuf::from(crate::config::DEFAULT_FRR_CONFIG))
    }
}

/// The vtysh commands of one transition.
#[derive(Debug, Default)]
pub struct OspfPlan(pub OspfCommands);

impl fmt::Display for OspfPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl PlanSummary for OspfPlan {
    fn changes(&self) -> usize {
        self.0.len()
    }
}

fn desired_text(s: &DesiredState) -> String {
    s.ospf
        .as_ref()
        .map(|o| ospf_blocks(o, Dialect::Frr))
        .unwrap_or_default()
}

/// Splits the output of `show daemons`, `show running-config`, `show ip ospf json` (one vtysh
/// call) into the connected daemons and the view.
pub fn parse_view(stdout: &str) -> Result<(Vec<String>, FrrView), String> {
    let (daemons, rest) = stdout.split_once('\n').unwrap_or((stdout, ""));
    let daemons: Vec<String> = daemons.split_whitespace().map(str::to_string).collect();
    let start = rest
        .find("Building configuration")
        .or_else(|| rest.find("Current configuration"))
        .ok_or_else(|| "show running-config printed no configuration".to_string())?;
    let rest = &rest[start..];
    let (config, json) = match rest.find("\nend\n") {
        Some(i) => (&rest[..i + 5], &rest[i + 5..]),
        None => (rest, ""),
    };
    let router_id = serde_json::from_str::<serde_json::Value>(json.trim())
        .ok()
        .and_then(|v| v["routerId"].as_str()?.parse().ok());
    Ok((
        daemons,
        FrrView {
            config: config.to_string(),
            router_id,
        },
    ))
}

impl fmt::Debug for FrrView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrrView")
            .field("config", &vr_ospf::render::redact(&self.config))
            .field("router_id", &self.router_id)
            .finish()
    }
}

impl OspfConcern {
    pub fn new(vty_dir: Option<PathBuf>, config_file: PathBuf) -> Self {
        OspfConcern {
            vtysh: Vtysh::new(vty_dir),
            config_file,
            frr: Err("FRR not read yet".into()),
            read_at: None,
        }
    }

    /// Reads FRR now (one vtysh call, [`vtysh::READ_DEADLINE`]).
    async fn read(&self) -> Result<FrrView, Unreadable> {
        let out = self
            .vtysh
            .raw(
                &[
                    "-c",
                    "show daemons",
                    "-c",
                    "show running-config",
                    "-c",
                    "show ip ospf json",
                ],
                None,
                vtysh::READ_DEADLINE,
            )
            .await
            .map_err(|e| match e {
                vtysh::VtyshError::Deadline(_) => Unreadable::Hung(e.to_string()),
                vtysh::VtyshError::Run(_) => Unreadable::Away(e.to_string()),
            })?;
        if let Some(why) = vtysh::unreachable(&out) {
            return Err(Unreadable::Away(why));
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        let (daemons, view) = parse_view(&stdout).map_err(Unreadable::Away)?;
        // vtysh sends ospfd's commands nowhere (and exits 0) while ospfd is down.
        if let Some(missing) = NEEDED.iter().find(|d| !daemons.iter().any(|x| x == *d)) {
            return Err(Unreadable::Away(format!(
                "{missing} is not running (FRR daemons connected: {})",
                if daemons.is_empty() {
                    "none".to_string()
                } else {
                    daemons.join(" ")
                }
            )));
        }
        Ok(view)
    }

    /// Re-reads FRR into the mirror. FRR absent or not answering is remembered (plans then
    /// say so); it is an error only when `hung_is_error` and FRR let the deadline pass, so
    /// the self-heal loop backs off from a hung daemon instead of paying the deadline on
    /// every pass.
    async fn reread(&mut self, hung_is_error: bool) -> Result<(), ConcernError> {
        let read = self.read().await;
        self.read_at = Some(Instant::now());
        match read {
            Ok(v) => {
                self.frr = Ok(v);
                Ok(())
            }
            Err(Unreadable::Hung(why)) if hung_is_error => {
                self.frr = Err(why.clone());
                Err(ConcernError::Unavailable(why))
            }
            Err(Unreadable::Hung(why) | Unreadable::Away(why)) => {
                self.frr = Err(why);
                Ok(())
            }
        }
    }

    /// Writes FRR's running config to the config file ([`save_running`]).
    fn save(&self, running: &str) -> Result<(), ConcernError> {
        save_running(&self.config_file, running)
    }

    /// `show ip ospf neighbor json`, typed.
    pub async fn neighbors(&self) -> Result<Vec<vr_ospf::status::Neighbor>, ConcernError> {
        let out = self.vtysh.show(&["show ip ospf neighbor json"]).await?;
        vr_ospf::status::parse_neighbors(&out)
            .map_err(|e| ConcernError::Failed(format!("neighbor json: {e}")))
    }
}

/// Writes FRR's running config (`show running-config`, its banner cut) to `path`
/// ([`save::write_config`]); the BGP concern saves the same way.
pub fn save_running(path: &std::path::Path, running: &str) -> Result<(), ConcernError> {
    let body: String = running
        .lines()
        .skip_while(|l| !l.starts_with('!') && !l.starts_with("frr "))
        .map(|l| format!("{l}\n"))
        .collect();
    save::write_config(path, body.as_bytes())
        .map_err(|e| ConcernError::Failed(format!("cannot write {}: {e}", path.display())))
}

impl Concern for OspfConcern {
    const NAME: &'static str = "ospf";
    type Plan = OspfPlan;

    fn plan(
        &self,
        applied: &DesiredState,
        desired: &DesiredState,
    ) -> Result<OspfPlan, ConcernError> {
        match &self.frr {
            Ok(v) => Ok(OspfPlan(plan(
                &v.config,
                v.router_id,
                &desired_text(desired),
            ))),
            // No FRR is fine while no OSPF is or was wanted.
            Err(_) if applied.ospf.is_none() && desired.ospf.is_none() => Ok(OspfPlan::default()),
            Err(why) => Err(ConcernError::Unavailable(why.clone())),
        }
    }

    async fn execute(
        &mut self,
        plan: &OspfPlan,
        desired: &DesiredState,
    ) -> Result<(), ConcernError> {
        // Whatever happens next, the mirror no longer describes FRR until re-read.
        self.frr = Err("FRR changed since it was read".into());
        self.read_at = None;
        let script = plan.0.script();
        if !script.is_empty() {
            self.vtysh.configure(&script).await?;
        }
        for cmd in plan.0.exec_after() {
            self.vtysh.exec(&[cmd]).await?;
        }
        let after = match self.read().await {
            Ok(v) => v,
            Err(Unreadable::Hung(why) | Unreadable::Away(why)) => {
                return Err(ConcernError::Unavailable(why))
            }
        };
        self.frr = Ok(after.clone());
        self.read_at = Some(Instant::now());
        let left = vr_ospf::apply::plan(&after.config, after.router_id, &desired_text(desired));
        if !left.is_empty() {
            return Err(ConcernError::Failed(format!("FRR did not take:\n{left}")));
        }
        self.save(&after.config)
    }

    async fn observe(&mut self) -> Result<(), ConcernError> {
        self.reread(true).await
    }

    async fn refresh(
        &mut self,
        applied: &DesiredState,
        desired: &DesiredState,
    ) -> Result<(), ConcernError> {
        // Reading FRR is a vtysh process (100-200 ms): not for a push that leaves OSPF as it
        // was. Its plan then comes from the last read; FRR changed by hand or restarted is
        // the self-heal loop's to see (`may_have_drifted`, `observe`).
        if applied.ospf == desired.ospf {
            return Ok(());
        }
        if self.read_at.is_some_and(|t| t.elapsed() < FRESH) {
            return Ok(());
        }
        self.reread(false).await
    }

    async fn health(&mut self, desired: &DesiredState) -> Vec<Check> {
        let Some(ospf) = &desired.ospf else {
            return Vec::new();
        };
        let active: Vec<&str> = ospf
            .interfaces
            .iter()
            .filter(|i| !i.passive)
            .map(|i| i.device.as_str())
            .collect();
        match self.neighbors().await {
            Err(e) => vec![Check::fail("FRR reachable", e.to_string())],
            Ok(ns) => {
                let mut out = vec![Check::ok(
                    "FRR reachable",
                    format!("{} neighbor(s)", ns.len()),
                )];
                for n in &ns {
                    let v = if n.is_full() {
                        Verdict::Ok
                    } else {
                        Verdict::Fail
                    };
                    out.push(Check::new(
                        format!("ospf neighbor {}", n.router_id),
                        v,
                        format!("{} on {}", n.state, n.interface),
                    ));
                }
                if !active.is_empty() && !ns.iter().any(|n| n.is_full()) {
                    out.push(Check::fail(
                        "ospf adjacency",
                        format!("no Full neighbor on {}", active.join(", ")),
                    ));
                }
                out
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUT: &str = " zebra ospfd\nBuilding configuration...\n\nCurrent configuration:\n!\nfrr version 8.4.4\nhostname A\n!\nrouter ospf\n ospf router-id 1.1.1.9\nexit\n!\nend\n{\n  \"routerId\":\"1.1.1.1\",\n  \"areas\":{}\n}\n";

    #[test]
    fn one_vtysh_answer_splits_into_daemons_config_and_router_id() {
        let (d, v) = parse_view(OUT).unwrap();
        assert_eq!(d, ["zebra", "ospfd"]);
        assert!(v.config.starts_with("Building") && v.config.ends_with("\nend\n"));
        assert!(v.config.contains("ospf router-id 1.1.1.9"));
        assert_eq!(v.router_id, Some(Ipv4Addr::new(1, 1, 1, 1)));
        // No instance: no json.
        let (_, v) = parse_view(" zebra ospfd\nBuilding configuration...\n!\nend\n").unwrap();
        assert_eq!(v.router_id, None);
        assert!(parse_view(" zebra\n").is_err());
        let (_, v) = parse_view(
            " zebra ospfd\nBuilding configuration...\ninterface e0\n ip ospf message-digest-key 1 md5 s3cret\nexit\nend\n",
        )
        .unwrap();
        let c = OspfConcern {
            frr: Ok(v),
            ..OspfConcern::default()
        };
        assert!(!format!("{c:?}").contains("s3cret"), "{c:?}");
    }

    #[test]
    fn unreachable_frr_plans_nothing_without_ospf_and_is_unavailable_with_it() {
        let c = OspfConcern::default();
        let none = DesiredState::default();
        assert!(c.plan(&none, &none).unwrap().is_empty());
        let with: DesiredState = serde_json::from_value(serde_json::json!({
            "ospf": {"router_id": "1.1.1.1"}
        }))
        .unwrap();
        assert!(matches!(
            c.plan(&none, &with),
            Err(ConcernError::Unavailable(_))
        ));
    }
}
