//! Health checks with CloudStack's names and thresholds and service supervision, configured
//! from the `monitor` section of the committed state (a CloudStack `monitorservice` push
//! converts into it) after the replay and after each push ([`configure`]). The basic and the
//! advanced checks run in tasks of their own on their intervals, each run on a blocking
//! thread with a deadline: never on the loop that applies pushes.
//!
//! The latest result of each check is kept here; `vr-agent check` (and through it the
//! drop-in `getRouterMonitorResults.sh`) lists them with the agent's own checks. A new push
//! that changes the section runs them at once, then on the intervals again.

pub mod advanced;
pub mod checks;
pub mod dns;
pub mod supervise;
pub mod version;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{LazyLock, RwLock};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;
use vr_model::monitor::{HealthChecks, MonitorSection};

use crate::config::Config;
use crate::diag::check::{Check, Verdict};
use crate::state::DesiredState;

/// One run of the basic checks gets this long (gateways: 3 pings of 1 s each, in parallel).
const RUN_LIMIT: Duration = Duration::from_secs(30);
/// One run of the advanced checks gets this long (a DNS question waits 2 s at most, and at
/// most 64 are asked; an nft listing has its own deadline).
const ADVANCED_LIMIT: Duration = Duration::from_secs(60);

/// One check's latest result.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub name: String,
    pub verdict: Verdict,
    pub detail: String,
    pub last_update_ms: u64,
    pub duration_ms: f64,
}

/// A result of `name`, started at `t`.
pub fn outcome(name: &str, t: Instant, verdict: Verdict, detail: String) -> Outcome {
    Outcome {
        name: name.into(),
        verdict,
        detail,
        last_update_ms: crate::alerts::now_millis(),
        duration_ms: t.elapsed().as_secs_f64() * 1000.0,
    }
}

/// What the checks need to know about this agent.
#[derive(Debug, Clone)]
pub struct Env {
    pub state_dir: PathBuf,
    pub run_dir: PathBuf,
    pub cloudstack_dir: PathBuf,
    pub cloudstack_version: String,
}

impl Env {
    fn of(cfg: &Config) -> Env {
        Env {
            state_dir: cfg.state_dir.clone(),
            run_dir: cfg.run_dir.clone(),
            cloudstack_dir: cfg.cloudstack_dir.clone(),
            cloudstack_version: cfg.cloudstack_version.clone(),
        }
    }

    /// The committed state, read from the store (blocking): the advanced checks compare it
    /// with the system, and reading it here costs the push loop nothing.
    pub fn committed(&self) -> Option<DesiredState> {
        let store = crate::store::Store::open(&self.state_dir).ok()?;
        match store.load() {
            Ok(s) => Some(s.state),
            Err(e) => {
                tracing::warn!("health checks: {e}");
                None
            }
        }
    }
}

static CONFIG: LazyLock<watch::Sender<Option<MonitorSection>>> =
    LazyLock::new(|| watch::channel(None).0);
/// Latest results: the basic checks', then the advanced checks'.
static RESULTS: LazyLock<[RwLock<BTreeMap<String, Outcome>>; 2]> = LazyLock::new(Default::default);

/// How long one of CloudStack's minutes lasts: 60 s; `VR_AGENT_HEALTH_MINUTE_SECS` shortens
/// it for tests (every pushed interval is scaled by it/60: CloudStack's are whole minutes).
pub fn minute() -> Duration {
    std::env::var("VR_AGENT_HEALTH_MINUTE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(60))
}

/// `secs` of the section, as this process runs them (see [`minute`]); at least 1 s.
fn scaled(secs: u64) -> Duration {
    Duration::from_secs((secs * minute().as_secs() / 60).max(1))
}

/// Takes the monitoring the committed state asks for (called after the replay and each push).
pub fn configure(state: &DesiredState) {
    let want = (!state.monitor.is_empty()).then(|| state.monitor.clone());
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
        .iter()
        .flat_map(|r| {
            r.read()
                .unwrap_or_else(|p| p.into_inner())
                .values()
                .map(|o| Check::new(o.name.clone(), o.verdict, o.detail.clone()))
                .collect::<Vec<_>>()
        })
        .chain(supervise::checks())
        .collect()
}

/// What `status` and `show monitor` say: the section as configured and the latest results.
pub fn status() -> serde_json::Value {
    let cfg = CONFIG.borrow().clone();
    let results: Vec<Outcome> = RESULTS
        .iter()
        .flat_map(|r| {
            r.read()
                .unwrap_or_else(|p| p.into_inner())
                .values()
                .cloned()
                .collect::<Vec<_>>()
        })
        .collect();
    serde_json::json!({
        "configured": cfg,
        "checks": results,
        "services": supervise::status(),
    })
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

/// One kind of checks: its slot in [`RESULTS`], interval, deadline and body.
#[derive(Clone, Copy)]
struct Kind {
    slot: usize,
    name: &'static str,
    interval: fn(&HealthChecks) -> u64,
    limit: Duration,
    run: fn(&HealthChecks, &Env) -> Vec<Outcome>,
}

const BASIC: Kind = Kind {
    slot: 0,
    name: "basic",
    interval: |h| h.basic_interval_secs,
    limit: RUN_LIMIT,
    run: checks::basic,
};

const ADVANCED: Kind = Kind {
    slot: 1,
    name: "advanced",
    interval: |h| h.advanced_interval_secs,
    limit: ADVANCED_LIMIT,
    run: advanced::run,
};

fn spawn_checks(kind: Kind, env: Env) {
    let mut rx = CONFIG.subscribe();
    tokio::spawn(async move {
        let results = &RESULTS[kind.slot];
        loop {
            let cfg = rx.borrow_and_update().clone();
            let Some(h) = cfg.and_then(|m| m.health) else {
                results.write().unwrap_or_else(|p| p.into_inner()).clear();
                if rx.changed().await.is_err() {
                    return;
                }
                continue;
            };
            let every = scaled((kind.interval)(&h));
            let started = Instant::now();
            let (run, env2) = (h.clone(), env.clone());
            match tokio::time::timeout(
                kind.limit,
                tokio::task::spawn_blocking(move || (kind.run)(&run, &env2)),
            )
            .await
            {
                Ok(Ok(outcomes)) => {
                    tracing::debug!(
                        kind = kind.name,
                        checks = outcomes.len(),
                        "health checks run"
                    );
                    let mut r = results.write().unwrap_or_else(|p| p.into_inner());
                    r.clear();
                    for o in outcomes {
                        if o.verdict != Verdict::Ok {
                            tracing::warn!(check = %o.name, "health check: {}", o.detail);
                        }
                        r.insert(o.name.clone(), o);
                    }
                }
                Ok(Err(e)) => tracing::warn!(kind = kind.name, "health checks: {e}"),
                Err(_) => tracing::warn!(
                    kind = kind.name,
                    "health checks did not finish within {} s",
                    kind.limit.as_secs()
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

/// Starts the tasks that run the checks and supervise the services.
pub fn spawn(cfg: &Config) {
    let env = Env::of(cfg);
    spawn_supervisor();
    spawn_checks(BASIC, env.clone());
    spawn_checks(ADVANCED, env);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_scale_with_the_test_minute() {
        // Without the variable a minute is 60 s: intervals are as pushed.
        if std::env::var_os("VR_AGENT_HEALTH_MINUTE_SECS").is_none() {
            assert_eq!(scaled(120), Duration::from_secs(120));
            assert_eq!(scaled(0), Duration::from_secs(1));
        }
    }
}
