//! Service supervision from `monitorservice`: the services listed (systemd units in the image)
//! are looked at every [`LOOK_EVERY`]; one found dead is restarted with `systemctl restart`
//! (deadline [`SYSTEMCTL_LIMIT`]) unless `disable_monitoring` is set, with a backoff per
//! service that doubles after each restart that did not bring it back, up to [`MAX_BACKOFF`].
//! Each restart is logged, counted in the metrics (`vr_service_restarts_total`) and listed in
//! `status`; each service's state is a `<name>.service` check (CloudStack's check names).
//!
//! Daemons the agent owns itself (dnsmasq, haproxy, keepalived, conntrackd, radvd, the
//! password and metadata servers) are not restarted here: their systemd units are not the
//! instances the agent runs, and the agent's self-heal respawns its own (counted as
//! `vr_daemon_starts_total`).
//!
//! Pure part: [`decide`] says, from what was seen and the backoff state, what to do; the loop
//! only looks, runs what was decided and records it.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::{LazyLock, RwLock};
use std::time::{Duration, Instant};

use serde::Serialize;
use vr_model::monitor::{MonitorSection, WatchedService};

use crate::diag::check::{Check, Verdict};

pub const LOOK_EVERY: Duration = Duration::from_secs(10);
const FIRST_BACKOFF: Duration = Duration::from_secs(10);
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
const SYSTEMCTL_LIMIT: Duration = Duration::from_secs(30);

/// Sections whose daemon the agent runs itself (see the module comment).
const AGENT_OWNED: &[&str] = &[
    "dnsmasq",
    "haproxy",
    "keepalived",
    "conntrackd",
    "radvd",
    "apache2",
    "cloud-passwd-srvr",
    "passwd_server",
];

/// What the supervisor remembers of one service.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Watch {
    pub running: bool,
    pub restarts: u64,
    pub last_restart_at: Option<u64>,
    pub last_error: Option<String>,
    #[serde(skip)]
    next_try: Option<Instant>,
    #[serde(skip)]
    backoff: Duration,
}

/// One decision about one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Nothing,
    /// Dead, not restarted: monitoring disabled, agent-owned, or backing off.
    Wait(&'static str),
    Restart,
}

/// Pure: what to do about `svc`, seen `alive`, given what was remembered.
pub fn decide(
    svc: &WatchedService,
    supervise: bool,
    alive: bool,
    w: &Watch,
    now: Instant,
) -> Action {
    if alive {
        return Action::Nothing;
    }
    if !supervise {
        return Action::Wait("monitoring disabled");
    }
    if AGENT_OWNED.contains(&svc.name.as_str()) || AGENT_OWNED.contains(&svc.unit.as_str()) {
        return Action::Wait("run by the agent itself");
    }
    if w.next_try.is_some_and(|t| t > now) {
        return Action::Wait("backing off");
    }
    Action::Restart
}

static WATCHES: LazyLock<RwLock<BTreeMap<String, Watch>>> = LazyLock::new(Default::default);

/// Whether a process of `svc` runs: its pid file names a live process, else a process whose
/// name is `svc.process` exists (a scan of /proc, bounded).
fn alive(svc: &WatchedService) -> bool {
    if let Some(pid) = svc
        .pid_file
        .as_deref()
        .and_then(|f| std::fs::read_to_string(f).ok())
        .and_then(|t| t.trim().parse::<u32>().ok())
    {
        if std::path::Path::new(&format!("/proc/{pid}")).exists() {
            return true;
        }
    }
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return false;
    };
    dir.flatten().take(100_000).any(|e| {
        e.file_name()
            .to_string_lossy()
            .bytes()
            .all(|b| b.is_ascii_digit())
            && std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim() == svc.process)
    })
}

fn restart(unit: &str) -> Result<(), String> {
    let out = crate::process::output_within(
        Command::new("systemctl").args(["restart", "--", unit]),
        SYSTEMCTL_LIMIT,
    )
    .map_err(|e| format!("systemctl restart {unit}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "systemctl restart {unit}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// One pass over the services (blocking: run on a blocking thread).
pub fn pass(m: &MonitorSection) {
    let now = Instant::now();
    let mut watches = WATCHES.write().unwrap_or_else(|p| p.into_inner());
    watches.retain(|name, _| m.services.iter().any(|s| &s.name == name));
    for svc in &m.services {
        let up = alive(svc);
        let w = watches.entry(svc.name.clone()).or_default();
        w.running = up;
        if up {
            w.backoff = Duration::ZERO;
            w.next_try = None;
        }
        if decide(svc, m.supervise, up, w, now) != Action::Restart {
            continue;
        }
        w.backoff = if w.backoff.is_zero() {
            FIRST_BACKOFF
        } else {
            (w.backoff * 2).min(MAX_BACKOFF)
        };
        w.next_try = Some(now + w.backoff);
        w.restarts += 1;
        w.last_restart_at = Some(crate::push::now_secs());
        crate::metrics::record_service_restart(&svc.name);
        match restart(&svc.unit) {
            Ok(()) => {
                tracing::warn!(service = %svc.name, unit = %svc.unit, "service was dead; restarted");
                w.last_error = None;
            }
            Err(e) => {
                tracing::error!(service = %svc.name, "service dead, restart failed: {e}");
                w.last_error = Some(e);
            }
        }
    }
}

/// For `status`.
pub fn status() -> serde_json::Value {
    serde_json::to_value(&*WATCHES.read().unwrap_or_else(|p| p.into_inner())).unwrap_or_default()
}

/// `<name>.service` checks, as `monitorServices.py` names them.
pub fn checks() -> Vec<Check> {
    WATCHES
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|(name, w)| {
            let (v, d) = if w.running {
                (Verdict::Ok, "service is running".to_string())
            } else {
                (
                    Verdict::Fail,
                    w.last_error
                        .clone()
                        .unwrap_or_else(|| "service is not running".into()),
                )
            };
            Check::new(format!("{name}.service"), v, d)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(name: &str) -> WatchedService {
        WatchedService {
            name: name.into(),
            process: name.into(),
            unit: name.into(),
            pid_file: None,
        }
    }

    #[test]
    fn dead_services_are_restarted_unless_disabled_owned_or_backing_off() {
        let now = Instant::now();
        let w = Watch::default();
        assert_eq!(decide(&svc("ssh"), true, true, &w, now), Action::Nothing);
        assert_eq!(decide(&svc("ssh"), true, false, &w, now), Action::Restart);
        assert_eq!(
            decide(&svc("ssh"), false, false, &w, now),
            Action::Wait("monitoring disabled")
        );
        assert_eq!(
            decide(&svc("dnsmasq"), true, false, &w, now),
            Action::Wait("run by the agent itself")
        );
        let resting = Watch {
            next_try: Some(now + Duration::from_secs(5)),
            ..Default::default()
        };
        assert_eq!(
            decide(&svc("ssh"), true, false, &resting, now),
            Action::Wait("backing off")
        );
        assert_eq!(
            decide(
                &svc("ssh"),
                true,
                false,
                &resting,
                now + Duration::from_secs(6)
            ),
            Action::Restart
        );
    }
}
