//! Concern `vpn`: site-to-site IPsec through strongSwan charon over VICI (`--vici-socket`).
//!
//! Per-connection reconcile: new connections are loaded (PSK, then config) and initiated
//! unless passive; changed ones are terminated, reloaded and initiated; removed ones are
//! terminated and unloaded; unchanged ones are not touched, so their SAs keep running. charon
//! missing is `Unavailable`: the state is kept and the agent retries when it comes back.
//!
//! Deadlines: every VICI request has one (`vr_vpn::client::REQUEST_TIMEOUT`), and a charon
//! that does not answer in time is `Unavailable`, never a hang. Initiating is asynchronous: the
//! push only loads connections; background tasks (at most [`INITIATING_AT_ONCE`] at a time)
//! ask charon to bring the tunnels up and keep charon's reason when one does not come up, so
//! a push of 50 tunnels to unreachable peers returns at once instead of holding the agent.
//!
//! A restarted charon has forgotten every connection: `refresh` (before each plan) and
//! `observe` (each self-heal pass) read which connections charon holds, so the next plan
//! loads again whatever is missing, without a push.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use vr_vpn::client::{IkeSa, Vici, ViciError};
use vr_vpn::plan::{plan, ConnOp, VpnPlan as Inner};
use vr_vpn::vici::{self, child_names, conn_name};
use vr_vpn::VpnSection;

use super::{Concern, ConcernError, PlanSummary};
use crate::diag::check::{Check, Verdict};
use crate::state::DesiredState;

/// How long charon tries one `initiate` before answering (the tunnel may still come up).
const INITIATE_TIMEOUT_MS: u32 = 5000;
/// How many background initiates run at once: each holds one of charon's worker threads for
/// up to [`INITIATE_TIMEOUT_MS`], and charon has few of them.
const INITIATING_AT_ONCE: usize = 4;

/// charon's reason for the last failed initiate, per connection (no secrets in it); written
/// by the background initiate tasks.
type Errors = Arc<Mutex<BTreeMap<String, String>>>;

/// Counts a background initiate from its spawn to its end (even if it panics or is dropped).
struct InFlight(Arc<std::sync::atomic::AtomicUsize>);

impl InFlight {
    fn enter(n: &Arc<std::sync::atomic::AtomicUsize>) -> InFlight {
        n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        InFlight(Arc::clone(n))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[derive(Debug)]
pub struct VpnConcern {
    pub vici_socket: PathBuf,
    /// The section this process loaded into charon; `None` until the first apply.
    applied: Option<VpnSection>,
    last_errors: Errors,
    /// Limits the background initiates.
    initiating: Arc<tokio::sync::Semaphore>,
    /// Background initiates not finished yet.
    in_flight: Arc<std::sync::atomic::AtomicUsize>,
    /// Connection names charon holds, as last observed (`None`: not observed).
    loaded: Option<std::collections::BTreeSet<String>>,
}

impl Default for VpnConcern {
    fn default() -> Self {
        VpnConcern::new(PathBuf::new())
    }
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

/// charon said no: the push fails. charon did not answer: it is unavailable (retried).
fn refused_or_unavailable(e: ViciError) -> ConcernError {
    match e {
        ViciError::Refused(..) => ConcernError::Failed(e.to_string()),
        _ => ConcernError::Unavailable(e.to_string()),
    }
}

/// For removals: charon refusing (the connection is gone already) is fine; no answer is not.
fn gone_ok(r: Result<(), ViciError>) -> Result<(), ConcernError> {
    match r {
        Ok(()) | Err(ViciError::Refused(..)) => Ok(()),
        Err(e) => Err(unavailable(e)),
    }
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
            last_errors: Errors::default(),
            initiating: Arc::new(tokio::sync::Semaphore::new(INITIATING_AT_ONCE)),
            in_flight: Arc::default(),
            loaded: None,
        }
    }

    async fn connect(&self) -> Result<Vici, ConcernError> {
        Vici::connect(&self.vici_socket).await.map_err(unavailable)
    }

    /// charon's reason for connection `name`'s last failed initiate.
    pub fn last_error(&self, name: &str) -> Option<String> {
        self.last_errors.lock().ok()?.get(name).cloned()
    }

    /// Asks charon, in the background, to bring connection `c` up; the push does not wait.
    fn initiate(&self, c: &vr_vpn::SiteToSite) {
        let name = conn_name(c);
        let children = child_names(c);
        let socket = self.vici_socket.clone();
        let errors = Arc::clone(&self.last_errors);
        let slots = Arc::clone(&self.initiating);
        let in_flight = InFlight::enter(&self.in_flight);
        tokio::spawn(async move {
            let _in_flight = in_flight;
            let Ok(_slot) = slots.acquire_owned().await else {
                return;
            };
            let limit =
                Duration::from_millis(u64::from(INITIATE_TIMEOUT_MS)) + Duration::from_secs(2);
            let outcome = match Vici::connect(&socket).await {
                Err(e) => Err(e.to_string()),
                Ok(mut vici) => {
                    let mut r = Ok(());
                    for child in children {
                        let m = vici::initiate(&child, &name, INITIATE_TIMEOUT_MS);
                        if let Err((e, log)) = vici.control(&m, limit).await {
                            // charon's own words: the last lines of its control log.
                            let tail: Vec<String> =
                                log.iter().rev().take(3).rev().cloned().collect();
                            r = Err(format!("{e}; {}", tail.join(" | ")));
                            break;
                        }
                    }
                    r
                }
            };
            let Ok(mut errors) = errors.lock() else {
                return;
            };
            match outcome {
                Ok(()) => {
                    errors.remove(&name);
                }
                Err(why) => {
                    tracing::warn!(connection = %name, "tunnel not up: {why}");
                    errors.insert(name, why);
                }
            }
        });
    }

    /// Waits (at most `limit`) until every background initiate has finished.
    pub async fn settle(&self, limit: Duration) {
        let until = tokio::time::Instant::now() + limit;
        while self.in_flight.load(std::sync::atomic::Ordering::SeqCst) > 0
            && tokio::time::Instant::now() < until
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Reads which connections charon holds. A charon that is not there is not an error
    /// (nothing is loaded); one that does not answer in time is `Unavailable`.
    async fn read_loaded(&mut self) -> Result<(), ConcernError> {
        self.loaded = match self.connect().await {
            Ok(mut v) => Some(
                v.list_conns()
                    .await
                    .map_err(unavailable)?
                    .into_iter()
                    .collect(),
            ),
            Err(e) => {
                tracing::trace!("charon not reachable: {e}");
                None
            }
        };
        tracing::trace!(loaded = ?self.loaded, "connections charon holds");
        Ok(())
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
                    "last_error": self.last_error(&name),
                })
            })
            .collect();
        let all = match self.connect().await {
            Ok(mut v) => v.list_sas_all().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        json!({"charon": sas.as_ref().err(), "connections": conns,
            "remote_access": super::vpn_remote::status(&desired.vpn, &all)})
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
        let mut base = self.applied.clone().unwrap_or_else(|| held(applied));
        // A connection unloaded behind the agent's back (e.g. `swanctl --unload-conn`) is not
        // applied any more: planning adds it again.
        if let Some(loaded) = &self.loaded {
            let before = base.site_to_site.len();
            base.site_to_site.retain(|c| loaded.contains(&conn_name(c)));
            // The remote-access connections gone: charon restarted (or was emptied), and its
            // secrets went with them: the users are loaded again too.
            let ra_gone = base.remote_access.is_some() && !loaded.contains(vr_vpn::remote::CONN_V2);
            if ra_gone || base.site_to_site.len() < before {
                base.remote_access = base
                    .remote_access
                    .filter(|_| loaded.contains(vr_vpn::remote::CONN_V2));
                base.remote_users.clear();
            }
        }
        Ok(VpnPlan(plan(&base, &held(desired))))
    }

    async fn execute(&mut self, p: &VpnPlan, desired: &DesiredState) -> Result<(), ConcernError> {
        let mut vici = self.connect().await?;
        let sas = vici.list_sas().await.map_err(unavailable)?;
        // terminate with `timeout = -1` answers at once; the margin covers a slow charon.
        let terminate_limit = vr_vpn::client::REQUEST_TIMEOUT;
        for op in &p.0.ops {
            match op {
                ConnOp::Remove(name) => {
                    // Gone already is fine: the goal is that nothing of it remains. A charon
                    // that stopped answering is not: the push must say so.
                    gone_ok(
                        vici.control(&vici::terminate(name), terminate_limit)
                            .await
                            .map(drop)
                            .map_err(|(e, _)| e),
                    )?;
                    gone_ok(vici.send(&vici::unload_conn(name)).await)?;
                    gone_ok(vici.send(&vici::unload_shared(name)).await)?;
                    if let Ok(mut e) = self.last_errors.lock() {
                        e.remove(name);
                    }
                }
                ConnOp::Add(c) | ConnOp::Change(c) => {
                    let name = conn_name(c);
                    let changed = matches!(op, ConnOp::Change(_));
                    if changed {
                        gone_ok(
                            vici.control(&vici::terminate(&name), terminate_limit)
                                .await
                                .map(drop)
                                .map_err(|(e, _)| e),
                        )?;
                    }
                    vici.send(&vici::load_shared(c))
                        .await
                        .map_err(refused_or_unavailable)?;
                    vici.send(&vici::load_conn(c))
                        .await
                        .map_err(refused_or_unavailable)?;
                    // A replay reloads identical configs; an SA already up stays as it is.
                    if !c.passive && (changed || !is_up_or_connecting(&sas, &name)) {
                        self.initiate(c);
                    }
                }
            }
        }
        super::vpn_remote::execute(&mut vici, &p.0.remote).await?;
        self.applied = Some(held(desired));
        let mut loaded: std::collections::BTreeSet<String> =
            desired.vpn.site_to_site.iter().map(conn_name).collect();
        if desired.vpn.remote_access.is_some() {
            loaded.insert(vr_vpn::remote::CONN_V2.into());
            loaded.insert(vr_vpn::remote::CONN_V1.into());
        }
        self.loaded = Some(loaded);
        Ok(())
    }

    async fn observe(&mut self) -> Result<(), ConcernError> {
        // What charon holds cannot be compared setting by setting (it never returns the PSK),
        // but which connections are loaded can. No charon is fine while no tunnel is wanted;
        // when one is, `check` says so.
        self.read_loaded().await
    }

    async fn refresh(&mut self, _: &DesiredState, _: &DesiredState) -> Result<(), ConcernError> {
        // A push plans from what charon holds now, not from what it held at the last look: a
        // charon restarted since has lost every connection. Nothing to ask while this process
        // has loaded nothing (the plan then starts from the committed state anyway).
        let loaded_some = self.applied.as_ref().is_some_and(|a| {
            !a.site_to_site.is_empty() || a.remote_access.is_some() || !a.remote_users.is_empty()
        });
        if loaded_some {
            self.read_loaded().await?;
        }
        Ok(())
    }

    async fn health(&mut self, desired: &DesiredState) -> Vec<Check> {
        if desired.vpn.site_to_site.is_empty() {
            return match &desired.vpn.remote_access {
                Some(_) => super::vpn_remote::health(&self.vici_socket).await,
                None => Vec::new(),
            };
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
                    self.last_error(&name)
                        .unwrap_or_else(|| "not established".into()),
                ),
            };
            out.push(check);
        }
        if desired.vpn.remote_access.is_some() {
            out.extend(
                super::vpn_remote::health(&self.vici_socket)
                    .await
                    .into_iter()
                    .filter(|c| c.name != "charon reachable"),
            );
        }
        out
    }
}

/// The tunnels as this router runs them: a redundant pair's backup initiates none (every
/// connection is loaded passive, its SAs terminated); promotion reloads them as pushed and
/// initiates the non-passive ones.
fn held(s: &DesiredState) -> vr_vpn::VpnSection {
    let mut v = s.vpn.clone();
    if !s.ha_active() {
        for c in &mut v.site_to_site {
            c.passive = true;
        }
    }
    v
}
