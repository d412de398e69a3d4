//! Health checks with CloudStack's names and thresholds (from the `monitorservice` push,
//! converted by `vr_cloudstack::monitor`), run by a task of their own on the pushed interval,
//! each run on a blocking thread with a deadline: never on the loop that applies pushes.
//!
//! The latest result of each check is kept here; `vr-agent check` (and through it the
//! drop-in `getRouterMonitorResults.sh`) lists them with the agent's own checks. A new push
//! that changes the checks runs them at once, then on the interval again.

pub mod checks;
pub mod supervise;

use std::collections::BTreeMap;
use std::sync::{LazyLock, RwLock};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;
use vr_model::monitor::MonitorSection;

use crate::diag::check::{Check, Verdict};
use crate::state::DesiredState;

/// One run of all checks gets this long (gateways: 3 pings of 1 s each, in parallel).
const RUN_LIMIT: Duration = Duration::from_secs(30);

/// One check's latest result.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub name: String,
    pub verdict: Verdict,
    pub detail: String,
    pub last_update_ms: u64,
    pub duration_ms: f64,
}

static CONFIG: LazyLock<watch::Sender<Option<MonitorSection>>> =
    LazyLock::new(|| watch::channel(None).0);
static RESULTS: LazyLock<RwLock<BTreeMap<String, Outcome>>> = LazyLock::new(Default::default);

/// How long one of CloudStack's minutes lasts: 60 s; `VR_AGENT_HEALTH_MINUTE_SECS` shortens
/// it for tests (CloudStack's intervals are whole minutes).
pub fn minute() -> Duration {
    std::env::var("VR_AGENT_HEALTH_MINUTE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(60))
}

/// Takes the checks the committed state asks for (called after the replay and each push).
pub fn configure(state: &DesiredState) {
    let want = vr_cloudstack::monitor::of_state(state, minute());
    CONFIG.send_if_modified(|cur| {
        if *cur == want {
            return false;
        }
        *cur = want;
        true
    });
}

/// The latest results, as `vr-agent check` lists them.
pub fn results() -> Vec<Check> {
    RESULTS
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .values()
        .map(|o| Check::new(o.name.clone(), o.verdict, o.detail.clone()))
        .chain(supervise::checks())
        .collect()
}

/// Starts the supervisor of the listed services: a pass every [`supervise::LOOK_EVERY`] on a
/// blocking thread, with a deadline.
fn spawn_supervisor() {
    let mut rx = CONFIG.subscribe();
    tokio::spawn(async move {
        loop {
            let cfg = rx.borrow_and_update().clone();
            if let Some(m) = cfg.filter(|m| !m.services.is_empty()) {
                let run = tokio::task::spawn_blocking(move || supervise::pass(&m));
                if tokio::time::timeout(RUN_LIMIT * 3, run).await.is_err() {
                    tracing::warn!(
                        "service supervision pass took over {} s",
                        RUN_LIMIT.as_secs() * 3
                    );
                }
            } else {
                supervise::pass(&MonitorSection::default());
            }
            tokio::select! {
                _ = tokio::time::sleep(supervise::LOOK_EVERY) => {}
                r = rx.changed() => if r.is_err() { return },
            }
        }
    });
}

/// Starts the tasks that run the checks and supervise the services.
pub fn spawn() {
    spawn_supervisor();
    let mut rx = CONFIG.subscribe();
    tokio::spawn(async move {
        loop {
            let cfg = rx.borrow_and_update().clone();
            let Some(h) = cfg.and_then(|m| m.health) else {
                RESULTS.write().unwrap_or_else(|p| p.into_inner()).clear();
                if rx.changed().await.is_err() {
                    return;
                }
                continue;
            };
            let every = Duration::from_secs(h.basic_interval_secs.max(1));
            let started = Instant::now();
            let run = h.clone();
            match tokio::time::timeout(
                RUN_LIMIT,
                tokio::task::spawn_blocking(move || checks::basic(&run)),
            )
            .await
            {
                Ok(Ok(outcomes)) => {
                    tracing::debug!(checks = outcomes.len(), "health checks run");
                    let mut r = RESULTS.write().unwrap_or_else(|p| p.into_inner());
                    r.clear();
                    for o in outcomes {
                        if o.verdict != Verdict::Ok {
                            tracing::warn!(check = %o.name, "health check: {}", o.detail);
                        }
                        r.insert(o.name.clone(), o);
                    }
                }
                Ok(Err(e)) => tracing::warn!("health checks: {e}"),
                Err(_) => tracing::warn!(
                    "health checks did not finish within {} s",
                    RUN_LIMIT.as_secs()
                ),
            }
            let wait = every.saturating_sub(started.elapsed());
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                r = rx.changed() => if r.is_err() { return },
            }
        }
    });
}
