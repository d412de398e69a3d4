//! Concern `ha`: the redundant pair through a keepalived and a conntrackd the agent owns
//! (design.md, "Daemons the agent owns"). `vr_ha` renders and plans; this executor writes the
//! configs (0600: keepalived.conf holds the VRRP password) under `<run-dir>/ha`, checks
//! keepalived's with `keepalived -t`, starts both daemons in the agent's network namespace,
//! reloads keepalived with SIGHUP and restarts conntrackd only when its config changed, adopts
//! running ones after an agent restart, and carries out role transitions (conntrackd commit
//! and resync). Public NICs, guest services and tunnels follow the role through their own
//! concerns, which read `DesiredState::ha_active`.
//!
//! Self-heal: a daemon that died is started again on the next pass (`may_have_drifted`).

use std::collections::VecDeque;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use vr_ha::plan::{plan, Current, Daemon, HaPlan, SyncCmd};
use vr_ha::render::{Hooks, Paths};
use vr_ha::HaRole;

use super::{Concern, ConcernError, PlanSummary};
use crate::daemon::{self, Owned};
use crate::state::DesiredState;

/// Every call to keepalived or conntrackd has this deadline.
const DEADLINE: Duration = Duration::from_secs(5);
/// Transitions `show ha` keeps.
const KEPT: usize = 20;

/// One role change carried out.
#[derive(Debug, Clone, Serialize)]
pub struct Transition {
    /// Unix time, seconds with milliseconds.
    pub at: f64,
    pub from: Option<HaRole>,
    pub to: HaRole,
}

#[derive(Debug)]
pub struct HaConcern {
    paths: Paths,
    hooks: Hooks,
    current: Option<Current>,
    pub transitions: VecDeque<Transition>,
}

#[derive(Debug)]
pub struct Plan(pub HaPlan);

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl PlanSummary for Plan {
    fn changes(&self) -> usize {
        self.0.changes()
    }
}

impl HaConcern {
    /// `socket`: the agent's socket, which the notify hooks (`vr-agent ha ROLE`) talk to.
    pub fn new(run_dir: &Path, socket: &Path) -> Self {
        let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        let exe = std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "/usr/bin/vr-agent".into());
        HaConcern {
            paths: Paths::new(&abs(run_dir)),
            hooks: Hooks {
                command: format!("{exe} --socket {} ha", abs(socket).display()),
            },
            current: None,
            transitions: VecDeque::new(),
        }
    }

    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    /// Our keepalived runs (an agent restart adopts it, and the role it gave stays valid).
    pub fn keepalived_running(&self) -> bool {
        self.keepalived().live_pid().is_some()
    }

    fn keepalived(&self) -> Owned {
        Owned::new(
            "keepalived",
            self.paths.keepalived_pid(),
            format!("--use-file={}", self.paths.keepalived_conf().display()),
        )
    }

    fn conntrackd(&self) -> Owned {
        Owned::new(
            "conntrackd",
            self.paths.conntrackd_pid(),
            self.paths.conntrackd_conf().display().to_string(),
        )
    }

    async fn start_keepalived(&self) -> Result<(), ConcernError> {
        let d = self.keepalived();
        // A keepalived that was killed leaves its pid files, and a new one refuses to start
        // ("daemon is already running") while they name any live process.
        for f in [
            self.paths.keepalived_pid(),
            self.paths.keepalived_vrrp_pid(),
            self.paths.dir.join("keepalived_check.pid"),
            self.paths.dir.join("keepalived_bfd.pid"),
        ] {
            let _ = std::fs::remove_file(f);
        }
        let log = log_file(&self.paths.keepalived_log())?;
        let mut cmd = tokio::process::Command::new(daemon::binary("keepalived", "keepalived")?);
        cmd.arg(&d.marker)
            .arg(format!("--pid={}", self.paths.keepalived_pid().display()))
            .arg(format!(
                "--vrrp_pid={}",
                self.paths.keepalived_vrrp_pid().display()
            ))
            .arg(format!(
                "--checkers_pid={}",
                self.paths.dir.join("keepalived_check.pid").display()
            ))
            .arg(format!(
                "--bfd_pid={}",
                self.paths.dir.join("keepalived_bfd.pid").display()
            ))
            // VRRP only, log to the console (our log file) in detail, not to the host's syslog.
            .args(["--vrrp", "--log-console", "--log-detail", "--no-syslog"]);
        spawn_forking(&d, cmd, log).await
    }

    async fn start_conntrackd(&self) -> Result<(), ConcernError> {
        let d = self.conntrackd();
        // Left by a conntrackd that was killed: a new one refuses to start while the lock exists.
        let _ = std::fs::remove_file(self.paths.conntrackd_lock());
        let _ = std::fs::remove_file(self.paths.conntrackd_ctl());
        let log = log_file(&self.paths.dir.join("conntrackd.stderr"))?;
        let mut cmd = tokio::process::Command::new(daemon::binary("conntrackd", "conntrackd")?);
        // conntrackd sets itself up (sockets, caches, netlink) before it forks: exit 0 means
        // it runs. It writes no pid file: the agent finds its process and writes one.
        cmd.arg("-d").arg("-C").arg(&d.marker);
        run_to_exit("conntrackd", cmd, log).await?;
        let until = std::time::Instant::now() + Duration::from_secs(2);
        loop {
            if let Some(pid) = find_process(&d) {
                crate::store::write_atomic(&d.pid_file, pid.to_string().as_bytes()).map_err(
                    |e| ConcernError::Failed(format!("write {}: {e}", d.pid_file.display())),
                )?;
                tracing::info!(pid, daemon = "conntrackd", "started");
                return Ok(());
            }
            if std::time::Instant::now() >= until {
                return Err(ConcernError::Failed(
                    "conntrackd started but no conntrackd with our config runs".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `conntrackd -C CONF <flag>` (a client of the running daemon), with its output.
    pub async fn conntrackd_cmd(&self, flag: &str) -> Result<String, ConcernError> {
        let bin = daemon::binary("conntrackd", "conntrackd")?;
        let run = tokio::process::Command::new(bin)
            .arg("-C")
            .arg(self.paths.conntrackd_conf())
            .arg(flag)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(DEADLINE, run)
            .await
            .map_err(|_| ConcernError::Failed(format!("conntrackd {flag}: no answer within 5 s")))?
            .map_err(|e| ConcernError::Failed(format!("conntrackd {flag}: {e}")))?;
        if !out.status.success() {
            return Err(ConcernError::Failed(format!(
                "conntrackd {flag}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// What `show ha` prints: role, settings (never the password), transitions, conntrackd's
    /// cache and sync counters.
    pub async fn status(&self, s: &DesiredState) -> serde_json::Value {
        let Some(ha) = &s.ha else {
            return serde_json::json!({"redundant": false, "role": null});
        };
        let running = |d: Owned| d.live_pid();
        let mut stats = serde_json::Map::new();
        if ha.sync.is_some() {
            for (key, flag) in [("general", "-s"), ("cache", "-s cache")] {
                let mut args = flag.split(' ');
                let first = args.next().unwrap_or("-s");
                let text = match args.next() {
                    Some(sub) => self.conntrackd_cmd2(first, sub).await,
                    None => self.conntrackd_cmd(first).await,
                };
                stats.insert(
                    key.into(),
                    match text {
                        Ok(t) => counters(&t),
                        Err(e) => serde_json::json!({"error": e.to_string()}),
                    },
                );
            }
        }
        serde_json::json!({
            "redundant": true,
            "role": s.ha_role,
            "router_id": ha.router_id,
            "priority": ha.priority,
            "advert_int_ms": ha.advert_int_ms,
            "vrrp_version": ha.vrrp_version(),
            "instances": ha.instances,
            "peer": ha.sync.as_ref().and_then(|l| l.peer).map(|p| p.to_string())
                .or(ha.sync.as_ref().map(|_| "multicast 225.0.0.50".to_string())),
            "keepalived_pid": running(self.keepalived()),
            "conntrackd_pid": running(self.conntrackd()),
            "transitions": self.transitions,
            "conntrackd": stats,
        })
    }

    async fn conntrackd_cmd2(&self, flag: &str, sub: &str) -> Result<String, ConcernError> {
        let bin = daemon::binary("conntrackd", "conntrackd")?;
        let run = tokio::process::Command::new(bin)
            .arg("-C")
            .arg(self.paths.conntrackd_conf())
            .args([flag, sub])
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(DEADLINE, run)
            .await
            .map_err(|_| {
                ConcernError::Failed(format!("conntrackd {flag} {sub}: no answer within 5 s"))
            })?
            .map_err(|e| ConcernError::Failed(format!("conntrackd {flag} {sub}: {e}")))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn record(&mut self, from: Option<HaRole>, to: HaRole) {
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| (d.as_secs_f64() * 1000.0).round() / 1000.0)
            .unwrap_or(0.0);
        tracing::info!(from = ?from, to = %to, "ha transition");
        self.transitions.push_back(Transition { at, from, to });
        while self.transitions.len() > KEPT {
            self.transitions.pop_front();
        }
    }
}

/// conntrackd's `-s` / `-s cache` output as `{"section": {"counter": "value"}}`, bounded. Its
/// lines are `name:   value` pairs (several per line, a second `failed:` belonging to the
/// first name), `N Unit` pairs, and section headers (`cache internal:`; `cache:internal` as a
/// line's first field).
fn counters(text: &str) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    let mut section = String::from("general");
    for line in text.lines().take(200) {
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        if !line.starts_with(char::is_whitespace) && t.ends_with(':') {
            section = t.trim_end_matches(':').trim().to_string();
            continue;
        }
        // Fields are separated by tabs or runs of spaces; words inside a field by one space.
        let fields: Vec<String> = t
            .replace('\t', "  ")
            .split("  ")
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .map(str::to_string)
            .collect();
        let mut i = 0;
        if fields
            .first()
            .is_some_and(|f| f.contains(':') && !f.ends_with(':'))
        {
            section = fields[0].clone();
            i = 1;
        }
        let entry = out
            .entry(section.clone())
            .or_insert_with(|| serde_json::Value::Object(Default::default()));
        let Some(map) = entry.as_object_mut() else {
            continue;
        };
        let mut last = String::new();
        while i < fields.len() {
            let f = &fields[i];
            i += 1;
            if let Some(k) = f.strip_suffix(':') {
                let mut value = String::new();
                while i < fields.len() && !fields[i].ends_with(':') {
                    value.push_str(&fields[i]);
                    i += 1;
                    if !value.ends_with('/') {
                        break;
                    }
                }
                let key = if k == "failed" && !last.is_empty() {
                    format!("{last} failed")
                } else {
                    k.to_string()
                };
                map.insert(key.clone(), serde_json::json!(value));
                last = key;
            } else if let Some((n, unit)) = f.split_once(' ') {
                if n.chars().all(|c| c.is_ascii_digit()) {
                    map.insert(unit.to_string(), serde_json::json!(n));
                }
            }
        }
    }
    serde_json::Value::Object(out)
}

fn log_file(path: &Path) -> Result<std::fs::File, ConcernError> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| ConcernError::Failed(format!("open {}: {e}", path.display())))
}

/// Runs a daemon's launcher (which forks and exits) with its output going to `log`, and
/// waits (bounded) for its exit status.
async fn run_to_exit(
    name: &str,
    mut cmd: tokio::process::Command,
    log: std::fs::File,
) -> Result<(), ConcernError> {
    let err = log
        .try_clone()
        .map_err(|e| ConcernError::Failed(format!("{name}: {e}")))?;
    cmd.stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(err)
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| ConcernError::Failed(format!("cannot start {name}: {e}")))?;
    let status = tokio::time::timeout(daemon::START_DEADLINE, child.wait())
        .await
        .map_err(|_| ConcernError::Failed(format!("{name} did not start within 10 s")))?
        .map_err(|e| ConcernError::Failed(format!("{name}: {e}")))?;
    if !status.success() {
        return Err(ConcernError::Failed(format!(
            "{name} refused to start ({status}); see its log under the run directory"
        )));
    }
    Ok(())
}

/// keepalived forks and writes its pid file; the launcher's exit status says whether it read
/// its config.
async fn spawn_forking(
    d: &Owned,
    cmd: tokio::process::Command,
    log: std::fs::File,
) -> Result<(), ConcernError> {
    run_to_exit(d.name, cmd, log).await?;
    let until = std::time::Instant::now() + Duration::from_secs(2);
    loop {
        if let Some(pid) = d.live_pid() {
            tracing::info!(pid, daemon = d.name, "started");
            return Ok(());
        }
        if std::time::Instant::now() >= until {
            return Err(ConcernError::Failed(format!(
                "{} started but {} names no live {}",
                d.name,
                d.pid_file.display(),
                d.name
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The process running `d` with our marker (for a daemon that writes no pid file).
fn find_process(d: &Owned) -> Option<i32> {
    std::fs::read_dir("/proc")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .find(|pid| d.is_ours(*pid))
}

/// keepalived's own checker on a config before it replaces the running one.
async fn check_keepalived(conf: &str, dir: &Path) -> Result<(), ConcernError> {
    let tmp = dir.join("keepalived.conf.check");
    crate::store::write_atomic(&tmp, conf.as_bytes())
        .map_err(|e| ConcernError::Failed(format!("write {}: {e}", tmp.display())))?;
    let run = tokio::process::Command::new(daemon::binary("keepalived", "keepalived")?)
        .arg("--config-test")
        .arg(format!("--use-file={}", tmp.display()))
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(DEADLINE, run).await;
    let _ = std::fs::remove_file(&tmp);
    let out = out
        .map_err(|_| ConcernError::Failed("keepalived --config-test: no answer within 5 s".into()))?
        .map_err(|e| ConcernError::Failed(format!("keepalived --config-test: {e}")))?;
    if !out.status.success() {
        // Its complaints name lines and interfaces, never the password's value.
        let why = String::from_utf8_lossy(&out.stderr);
        let why: Vec<&str> = why
            .lines()
            .filter(|l| !l.contains("auth_pass"))
            .take(5)
            .collect();
        return Err(ConcernError::Failed(format!(
            "keepalived rejects the rendered config: {}",
            why.join("; ")
        )));
    }
    Ok(())
}

impl Concern for HaConcern {
    const NAME: &'static str = "ha";
    type Plan = Plan;

    fn plan(&self, applied: &DesiredState, desired: &DesiredState) -> Result<Plan, ConcernError> {
        let assumed;
        let current = match &self.current {
            Some(c) => c,
            None => {
                assumed = match &applied.ha {
                    None => Current::default(),
                    Some(ha) => Current {
                        keepalived_conf: Some(vr_ha::render::keepalived(
                            ha,
                            &self.hooks,
                            &self.paths,
                        )),
                        conntrackd_conf: vr_ha::render::conntrackd(ha, &self.paths),
                        keepalived_running: true,
                        conntrackd_running: ha.sync.is_some(),
                        role: applied.ha_role,
                    },
                };
                &assumed
            }
        };
        Ok(Plan(plan(
            desired.ha.as_ref(),
            desired.ha_role,
            current,
            &self.hooks,
            &self.paths,
        )))
    }

    async fn execute(&mut self, plan: &Plan, desired: &DesiredState) -> Result<(), ConcernError> {
        let p = &plan.0;
        if !p.writes.is_empty() {
            std::fs::create_dir_all(&self.paths.dir).map_err(|e| {
                ConcernError::Failed(format!("mkdir {}: {e}", self.paths.dir.display()))
            })?;
            use std::os::unix::fs::PermissionsExt;
            let _ =
                std::fs::set_permissions(&self.paths.dir, std::fs::Permissions::from_mode(0o700));
        }
        let kconf = self.paths.keepalived_conf();
        for w in &p.writes {
            if w.path == kconf {
                check_keepalived(&w.content, &self.paths.dir).await?;
            }
        }
        let mut current = self.current.clone().unwrap_or_default();
        for w in &p.writes {
            crate::store::write_atomic(&w.path, w.content.as_bytes())
                .map_err(|e| ConcernError::Failed(format!("write {}: {e}", w.path.display())))?;
        }
        if p.keepalived == Daemon::Stop {
            self.keepalived().stop(Duration::from_secs(3)).await?;
            current.keepalived_running = false;
        }
        if p.conntrackd == Daemon::Stop || p.conntrackd == Daemon::Restart {
            self.conntrackd().stop(Duration::from_secs(3)).await?;
            current.conntrackd_running = false;
        }
        for r in &p.removes {
            let _ = std::fs::remove_file(r);
        }
        // conntrackd first: a new primary elected right after keepalived starts commits from it.
        if matches!(p.conntrackd, Daemon::Start | Daemon::Restart) {
            self.start_conntrackd().await?;
            current.conntrackd_running = true;
        }
        match p.keepalived {
            Daemon::Start => self.start_keepalived().await?,
            Daemon::Reload | Daemon::Restart => {
                if !self.keepalived().signal(libc::SIGHUP)? {
                    self.start_keepalived().await?;
                }
            }
            Daemon::Keep | Daemon::Stop => {}
        }
        current.keepalived_running = desired.ha.is_some();
        current.keepalived_conf = desired
            .ha
            .as_ref()
            .map(|ha| vr_ha::render::keepalived(ha, &self.hooks, &self.paths));
        current.conntrackd_conf = desired
            .ha
            .as_ref()
            .and_then(|ha| vr_ha::render::conntrackd(ha, &self.paths));
        // A transition is carried out whatever conntrackd answers: a primary without the
        // peer's flows still forwards (new flows, and TCP picked up mid-stream), and undoing the
        // promotion would leave the pair with no primary at all.
        for c in &p.sync_cmds {
            if let Err(e) = self.conntrackd_cmd(c.flag()).await {
                tracing::warn!("{e}");
            }
            if *c == SyncCmd::Commit {
                tracing::info!("conntrackd: external cache committed into the kernel");
            }
        }
        if let Some((from, to)) = p.transition {
            self.record(from, to);
            current.role = Some(to);
        }
        if desired.ha.is_none() {
            current.role = None;
        }
        self.current = Some(current);
        Ok(())
    }

    async fn observe(&mut self) -> Result<(), ConcernError> {
        let read = |p: std::path::PathBuf| std::fs::read_to_string(p).ok();
        let role = self.current.as_ref().and_then(|c| c.role);
        self.current = Some(Current {
            keepalived_conf: read(self.paths.keepalived_conf()),
            conntrackd_conf: read(self.paths.conntrackd_conf()),
            keepalived_running: self.keepalived().live_pid().is_some(),
            conntrackd_running: self.conntrackd().live_pid().is_some(),
            role,
        });
        Ok(())
    }

    async fn may_have_drifted(&mut self) -> bool {
        let Some(c) = &self.current else {
            return false;
        };
        (c.keepalived_running && self.keepalived().live_pid().is_none())
            || (c.conntrackd_running && self.conntrackd().live_pid().is_none())
    }
}

#[cfg(test)]
mod tests {
    use super::counters;

    #[test]
    fn conntrackd_statistics_as_counters() {
        let general = "cache internal:\ncurrent active connections:\t       4\n\
            connections created:\t\t       2\tfailed:\t       0\n\n\
            traffic processed:\n                   0 Bytes                         0 Pckts\n";
        let v = counters(general);
        assert_eq!(v["cache internal"]["current active connections"], "4");
        assert_eq!(v["cache internal"]["connections created"], "2");
        assert_eq!(v["cache internal"]["connections created failed"], "0");
        assert_eq!(v["traffic processed"]["Pckts"], "0");
        let cache = "cache:internal\tactive objects:\t\t       4\n\
            \tactive/total entries:\t       4/\t       4\n";
        let v = counters(cache);
        assert_eq!(v["cache:internal"]["active objects"], "4");
        assert_eq!(v["cache:internal"]["active/total entries"], "4/4");
    }
}
