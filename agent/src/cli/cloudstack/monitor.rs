//! `getRouterMonitorResults.sh [true|false]` and `filesystem_writable_check.py`.
//!
//! A fresh run is the agent's own `vr-agent check` (daemons reachable, every concern in sync,
//! self-heal, conntrack, disk) plus memory and the reachability of every gateway of the
//! committed state, renamed for operators (`vr_cloudstack::scripts::monitor::check_name`). The
//! last run is kept in `<state-dir>/monitor_results.json`; `false` answers it while it is
//! younger than [`STALE`] (the MS asks every 10 minutes without forcing a run, and nothing
//! else runs the checks here), else runs them again.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::intake::protocol::Request;
use vr_cloudstack::scripts::monitor::{self, CheckResult, Health, Report};

/// Results older than this are run again even when not asked to.
const STALE: Duration = Duration::from_secs(300);
/// The agent's checks (they ask charon, FRR and the kernel, each with its own deadline).
const CHECK_LIMIT: Duration = Duration::from_secs(40);
/// At most this many gateways are pinged (in parallel, 3 echo requests, 1 s apart).
const MAX_GATEWAYS: usize = 16;

fn results_path(state_dir: &Path) -> PathBuf {
    state_dir.join("monitor_results.json")
}

pub async fn monitor_results(cfg: &Config, args: &[String]) -> ExitCode {
    let fresh = args.first().map(String::as_str) == Some("true");
    let dir = super::facts::state_dir(cfg).await;
    let path = results_path(&dir);
    if !fresh {
        let young = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age < STALE);
        let stored = std::fs::read(&path)
            .ok()
            .filter(|b| b.len() < 1 << 20)
            .and_then(|b| serde_json::from_slice::<Report>(&b).ok());
        if let (true, Some(r)) = (young, stored) {
            print!("{}", monitor::render(&r));
            return ExitCode::SUCCESS;
        }
    }
    let report = run_checks(cfg).await;
    if let Ok(bytes) = serde_json::to_vec(&report) {
        // 0600, fsynced, renamed: the store's own atomic write.
        let _ = crate::store::write_atomic(&path, &bytes);
    }
    print!("{}", monitor::render(&report));
    ExitCode::SUCCESS
}

fn stamp(ms: u64) -> String {
    let (d, t) = crate::alerts::date_time(ms / 1000);
    format!("{d} {t}.{:06}", (ms % 1000) * 1000)
}

async fn run_checks(cfg: &Config) -> Report {
    let start_ms = crate::alerts::now_millis();
    let started = Instant::now();
    let mut checks = Vec::new();
    let t = Instant::now();
    let answer = super::facts::ask(cfg, Request::Check, CHECK_LIMIT).await;
    let took = t.elapsed().as_secs_f64() * 1000.0;
    let now = crate::alerts::now_millis();
    match &answer {
        Some(r) => {
            for c in r.body["checks"].as_array().into_iter().flatten() {
                let (name, basic) = monitor::check_name(c["name"].as_str().unwrap_or("?"));
                let health = match c["verdict"].as_str() {
                    Some("ok") => Health::Success,
                    Some("warn") => Health::Warning,
                    Some("fail") => Health::Failed,
                    _ => Health::Unknown,
                };
                push_check(
                    &mut checks,
                    CheckResult {
                        name,
                        basic,
                        health,
                        last_update_ms: now,
                        duration_ms: took,
                        message: c["detail"].as_str().unwrap_or("").to_string(),
                    },
                );
            }
        }
        None => checks.push(CheckResult {
            name: "vr-agent.service".into(),
            basic: true,
            health: Health::Failed,
            last_update_ms: now,
            duration_ms: took,
            message: format!(
                "no answer on {} within {} s",
                cfg.socket.display(),
                CHECK_LIMIT.as_secs()
            ),
        }),
    }
    checks.push(memory());
    if let Some(state) = super::facts::committed_state(cfg).await {
        checks.push(gateways(&state).await);
    }
    let end_ms = crate::alerts::now_millis();
    Report {
        checks,
        start: stamp(start_ms),
        end: stamp(end_ms),
        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
    }
}

/// Two agent checks can map to one name (`disk space for ...`): the worse one stays.
fn push_check(checks: &mut Vec<CheckResult>, c: CheckResult) {
    let rank = |h: Health| match h {
        Health::Success => 0,
        Health::Unknown => 1,
        Health::Warning => 2,
        Health::Failed => 3,
    };
    match checks.iter_mut().find(|x| x.name == c.name) {
        Some(x) if rank(c.health) > rank(x.health) => *x = c,
        Some(x) => {
            if !c.message.is_empty() && x.message.len() < 500 {
                x.message = format!("{}; {}", x.message, c.message);
            }
        }
        None => checks.push(c),
    }
}

/// Available memory from /proc/meminfo: under 5% fails, under 10% warns.
fn memory() -> CheckResult {
    let t = Instant::now();
    let info = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kb = |key: &str| -> Option<u64> {
        info.lines()
            .find(|l| l.starts_with(key))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    let (health, message) = match (kb("MemTotal:"), kb("MemAvailable:")) {
        (Some(total), Some(avail)) if total > 0 => {
            let pct = avail * 100 / total;
            let h = match pct {
                0..5 => Health::Failed,
                5..10 => Health::Warning,
                _ => Health::Success,
            };
            (
                h,
                format!(
                    "{} MiB of {} MiB available ({pct}%)",
                    avail >> 10,
                    total >> 10
                ),
            )
        }
        _ => (Health::Unknown, "cannot read /proc/meminfo".to_string()),
    };
    CheckResult {
        name: "memory_usage_check.py".into(),
        basic: true,
        health,
        last_update_ms: crate::alerts::now_millis(),
        duration_ms: t.elapsed().as_secs_f64() * 1000.0,
        message,
    }
}

/// Every gateway of the committed state answers ping (3 tries, in parallel, bounded).
async fn gateways(state: &serde_json::Value) -> CheckResult {
    let t = Instant::now();
    let mut gws: Vec<String> = state["state"]["interfaces"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["gateway"].as_str().map(str::to_string))
        .filter(|g| g.parse::<std::net::Ipv4Addr>().is_ok())
        .collect();
    gws.sort();
    gws.dedup();
    gws.truncate(MAX_GATEWAYS);
    let pings = gws.iter().map(|g| {
        let g = g.clone();
        tokio::task::spawn_blocking(move || {
            let ok = crate::process::output_within(
                Command::new("ping").args(["-n", "-q", "-c", "3", "-i", "1", "-W", "1", "--", &g]),
                Duration::from_secs(6),
            )
            .is_ok_and(|o| o.status.success());
            (g, ok)
        })
    });
    let results = futures::future::join_all(pings).await;
    let down: Vec<String> = results
        .into_iter()
        .filter_map(|r| r.ok())
        .filter(|(_, ok)| !ok)
        .map(|(g, _)| format!("'{g}'"))
        .collect();
    let (health, message) = if down.is_empty() {
        (
            Health::Success,
            format!("All {} gateways are reachable", gws.len()),
        )
    } else {
        (
            Health::Failed,
            format!("Unreachable gateways found-\n[{}]", down.join(", ")),
        )
    };
    CheckResult {
        name: "gateways_check.py".into(),
        basic: true,
        health,
        last_update_ms: crate::alerts::now_millis(),
        duration_ms: t.elapsed().as_secs_f64() * 1000.0,
        message,
    }
}

/// The paths whose file system must be writable (`VR_AGENT_FS_CHECK_PATHS`, colon-separated,
/// for tests).
fn fs_paths() -> Vec<PathBuf> {
    match std::env::var("VR_AGENT_FS_CHECK_PATHS") {
        Ok(v) if !v.is_empty() => v.split(':').map(PathBuf::from).collect(),
        _ => vec![PathBuf::from("/root"), PathBuf::from("/var/cache/cloud")],
    }
}

/// Whether the file system holding `path` (or its nearest existing ancestor) is read-only.
fn read_only(path: &Path) -> Option<bool> {
    let mut p = path;
    while !p.exists() {
        p = p.parent()?;
    }
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: statvfs writes into the zeroed struct we own; the path is NUL-terminated.
    let (rc, st) = unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        (libc::statvfs(c.as_ptr(), &mut st), st)
    };
    (rc == 0).then_some(st.f_flag & libc::ST_RDONLY != 0)
}

pub fn filesystem_check() -> ExitCode {
    for p in fs_paths() {
        if read_only(&p) == Some(true) {
            println!(
                "Read-only file system : statvfs reports ST_RDONLY ({})",
                p.display()
            );
            return ExitCode::from(1);
        }
    }
    println!("file system is writable");
    ExitCode::SUCCESS
}
