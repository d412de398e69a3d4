//! Concern `vpn`: site-to-site IPsec through strongSwan charon over VICI (`--vici-socket`).
//!
//! Per-connection reconcile: new connections are loaded (PSK, then config) and initiated
//! unless passive; changed ones are terminated, reloaded and initiated; removed ones are
//! terminated and unloaded; unchanged ones are not touched, so their SAs keep running. charon
//! missing is `Unavailable`: the state is kept and the agent retries when it comes back.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde_json::json;
use vr_vpn::client::{IkeSa, Vici, ViciError};
use vr_vpn::plan::{plan, ConnOp, VpnPlan as Inner};
use vr_vpn::vici::{self, child_names, conn_name};
use vr_vpn::VpnSection;

use super::{Concern, ConcernError, PlanSummary};
use crate::diag::check::{Check, Verdict};
use crate::state::DesiredState;

/// How long one `initiate` may take before the push moves on (the tunnel may still come up).
const INITIATE_TIMEOUT_MS: u32 = 5000;

#[derive(Debug, Default)]
pub struct VpnConcern {
    pub vici_socket: PathBuf,
    /// The section this process loaded into charon; `None` until the first apply.
    applied: Option<VpnSection>,
    /// charon's reason for the last failed initiate, per connection (no secrets in it).
    pub last_errors: BTreeMap<String, String>,
    /// Connection names charon holds, as last observed (`None`: not observed).
    loaded: Option<std::collections::BTreeSet<String>>,
}

#[derive(Debug, Default)]
pub struct VpnPlan(pub Inner);

impl fmt::Display for VpnPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl PlanSummary for VpnPlan {
    fn changes(&self) -> usize {
        self.0.len()
    }
}

fn unavailable(e: ViciError) -> ConcernError {
    ConcernError::Unavailable(e.to_string())
}

/// Whether a connection has an IKE SA that is up or on its way up.
fn is_up_or_connecting(sas: &BTreeMap<String, IkeSa>, name: &str) -> bool {
    sas.get(name)
        .is_some_and(|s| matches!(s.state.as_str(), "ESTABLISHED" | "CONNECTING"))
}

impl VpnConcern {
    pub fn new(vici_socket: PathBuf) -> Self {
        VpnConcern {
            vici_socket,
            applied: None,
            last_errors: BTreeMap::new(),
            loaded: None,
        }
    }

    async fn connect(&self) -> Result<Vici, ConcernError> {
        Vici::connect(&self.vici_socket).await.map_err(unavailable)
    }

    async fn initiate(&mut self, vici: &mut Vici, c: &vr_vpn::SiteToSite) {
        let name = conn_name(c);
        for child in child_names(c) {
            match vici
                .control(&vici::initiate(&child, &name, INITIATE_TIMEOUT_MS))
                .await
            {
                Ok(_) => {
                    self.last_errors.remove(&name);
                }
                Err((e, log)) => {
                    // charon's own words: the last lines of its control log.
                    let tail: Vec<String> = log.iter().rev().take(3).rev().cloned().collect();
                    let why = format!("{e}; {}", tail.join(" | "));
                    tracing::warn!(connection = %name, "tunnel not up: {why}");
                    self.last_errors.insert(name.clone(), why);
                    break;
                }
            }
        }
    }

    /// `show vpn`: every configured connection with its SAs.
    pub async fn status(&self, desired: &DesiredState) -> serde_json::Value {
        let sas = match self.connect().await {
            Ok(mut v) => v.list_sas().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let conns: Vec<serde_json::Value> = desired
            .vpn
            .site_to_site
            .iter()
            .map(|c| {
                let name = conn_name(c);
                let sa = sas.as_ref().ok().and_then(|s| s.get(&name));
                json!({
                    "name": name,
                    "local": c.local_public_ip,
                    "peer": c.peer_gateway,
                    "local_cidrs": c.local_cidrs,
                    "peer_cidrs": c.peer_cidrs,
                    "passive": c.passive,
                    "ike_state": sa.map(|s| s.state.clone()).unwrap_or_else(|| "DOWN".into()),
                    "ike_uniqueid": sa.map(|s| s.uniqueid.clone()),
                    "established_secs": sa.and_then(|s| s.established.as_ref()).and_then(|e| e.parse::<u64>().ok()),
                    "children": sa.map(|s| s.child_sas.values().collect::<Vec<_>>()).unwrap_or_default(),
                    "last_error": self.last_errors.get(&name),
                })
            })
            .collect();
        json!({"charon": sas.as_ref().err(), "connections": conns})
    }
}

impl Concern for VpnConcern {
    const NAME: &'static str = "vpn";
    type Plan = VpnPlan;

    fn plan(
        &self,
        applied: &DesiredState,
        desired: &DesiredState,
    ) -> Result<VpnPlan, ConcernError> {
        let mut base = self.applied.clone().unwrap_or_else(|| applied.vpn.clone());
        // A connection unloaded behind the agent's back (e.g. `swanctl --unload-conn`) is not
        // applied any more: planning adds it again.
        if let Some(loaded) = &self.loaded {
            base.site_to_site.retain(|c| loaded.contains(&conn_name(c)));
        }
        Ok(VpnPlan(plan(&base, &desired.vpn)))
    }

    async fn execute(&mut self, p: &VpnPlan, desired: &DesiredState) -> Result<(), ConcernError> {
        let mut vici = self.connect().await?;
        let sas = vici.list_sas().await.map_err(unavailable)?;
        for op in &p.0.ops {
            match op {
                ConnOp::Remove(name) => {
                    // Gone already is fine: the goal is that nothing of it remains.
                    let _ = vici.control(&vici::terminate(name)).await;
                    let _ = vici.send(&vici::unload_conn(name)).await;
                    let _ = vici.send(&vici::unload_shared(name)).await;
                    self.last_errors.remove(name);
                }
                ConnOp::Add(c) | ConnOp::Change(c) => {
                    let name = conn_name(c);
                    let changed = matches!(op, ConnOp::Change(_));
                    if changed {
                        let _ = vici.control(&vici::terminate(&name)).await;
                    }
                    vici.send(&vici::load_shared(c))
                        .await
                        .map_err(|e| ConcernError::Failed(e.to_string()))?;
                    vici.send(&vici::load_conn(c))
                        .await
                        .map_err(|e| ConcernError::Failed(e.to_string()))?;
                    // A replay reloads identical configs; an SA already up stays as it is.
                    if !c.passive && (changed || !is_up_or_connecting(&sas, &name)) {
                        self.initiate(&mut vici, c).await;
                    }
                }
            }
        }
        self.applied = Some(desired.vpn.clone());
        self.loaded = Some(desired.vpn.site_to_site.iter().map(conn_name).collect());
        Ok(())
    }

    async fn observe(&mut self) -> Result<(), ConcernError> {
        // What charon holds cannot be compared setting by setting (it never returns the PSK),
        // but which connections are loaded can. No charon is fine while no tunnel is wanted;
        // when one is, `check` says so.
        self.loaded = match self.connect().await {
            Ok(mut v) => v.list_conns().await.ok().map(|l| l.into_iter().collect()),
            Err(_) => None,
        };
        Ok(())
    }

    async fn health(&mut self, desired: &DesiredState) -> Vec<Check> {
        if desired.vpn.site_to_site.is_empty() {
            return Vec::new();
        }
        let sas = match self.connect().await {
            Ok(mut v) => match v.list_sas().await {
                Ok(s) => s,
                Err(e) => return vec![Check::fail("charon reachable", e.to_string())],
            },
            Err(e) => return vec![Check::fail("charon reachable", e.to_string())],
        };
        let mut out = vec![Check::ok(
            "charon reachable",
            format!("{} IKE SA(s)", sas.len()),
        )];
        for c in &desired.vpn.site_to_site {
            let name = conn_name(c);
            let up = sas
                .get(&name)
                .filter(|s| s.state == "ESTABLISHED")
                .filter(|s| s.child_sas.values().any(|ch| ch.state == "INSTALLED"));
            let check = match (up, c.passive) {
                (Some(s), _) => Check::ok(
                    format!("tunnel {name}"),
                    format!("up {} s", s.established.clone().unwrap_or_default()),
                ),
                (None, true) => Check::new(
                    format!("tunnel {name}"),
                    Verdict::Warn,
                    "passive, waiting for the peer",
                ),
                (None, false) => Check::fail(
                    format!("tunnel {name}"),
                    self.last_errors
                        .get(&name)
                        .cloned()
                        .unwrap_or_else(|| "not established".into()),
                ),
            };
            out.push(check);
        }
        out
    }
}
