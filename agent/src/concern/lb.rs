//! Concern `lb`: load balancing through a haproxy the agent owns (design.md, "Daemons the agent
//! owns"), in master-worker mode. The config and certificates are rendered and planned by
//! `vr_lb`; this executor writes the candidate config (0600, certificates 0600 in a 0700
//! directory), checks it with `haproxy -c` before anything running is touched (a rejected
//! config fails the push with haproxy's message and the rule it is about, and the files are
//! put back), drains the servers that leave the config (`set server ... state drain` on the
//! admin socket, then waits, with a deadline, until their sessions end), then installs the
//! config and reloads: SIGUSR2 to the master, which re-executes itself and hands the listening
//! sockets to the new worker, so no connection is refused; the old worker finishes its own.
//! Reloads happen only when the rendered config or a certificate changed.
//!
//! Self-heal: `may_have_drifted` checks that our master is alive; a dead one is planned as
//! "start haproxy" and started again by the self-heal loop.

use std::fmt;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use vr_lb::plan::{plan, Current, Daemon, LbPlan};
use vr_lb::render::{render, section_at, Paths, RunAs};
use vr_secret::Secret;

use super::{Concern, ConcernError, PlanSummary};
use crate::daemon::{self, Owned};
use crate::state::DesiredState;

/// Every call to haproxy (start, check, a socket command, a reload) has this deadline.
const DEADLINE: Duration = Duration::from_secs(10);
/// How long a removed server may keep its sessions before it leaves the config anyway.
const DRAIN_DEADLINE: Duration = Duration::from_secs(15);

#[derive(Debug)]
pub struct LbConcern {
    paths: Paths,
    run_as: Option<RunAs>,
    current: Option<Current>,
}

#[derive(Debug)]
pub struct Plan(pub LbPlan);

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

/// haproxy's files under `<run-dir>/haproxy`, absolute (the master re-executes itself).
pub fn paths(run_dir: &Path) -> Paths {
    Paths::new(&std::path::absolute(run_dir).unwrap_or_else(|_| run_dir.to_path_buf()))
}

/// The workers drop to haproxy's user in its chroot when the system has both (Debian's
/// package creates them).
pub fn run_as() -> Option<RunAs> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    let group = std::fs::read_to_string("/etc/group").ok()?;
    let has = |db: &str| db.lines().any(|l| l.starts_with("haproxy:"));
    (has(&passwd) && has(&group) && Path::new("/var/lib/haproxy").is_dir()).then(|| RunAs {
        user: "haproxy".into(),
        group: "haproxy".into(),
        chroot: "/var/lib/haproxy".into(),
    })
}

fn fail(what: &Path, e: std::io::Error) -> ConcernError {
    ConcernError::Failed(format!("{}: {e}", what.display()))
}

/// Temp file (mode `mode`, created so) + rename.
fn write_private(path: &Path, content: &str, mode: u32) -> Result<(), ConcernError> {
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|e| fail(&tmp, e))?;
    f.write_all(content.as_bytes()).map_err(|e| fail(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| fail(path, e))
}

fn mkdir_private(dir: &Path) -> Result<(), ConcernError> {
    std::fs::create_dir_all(dir).map_err(|e| fail(dir, e))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(|e| fail(dir, e))
}

/// One command on a haproxy CLI socket (master or admin), its whole answer (at most 4 MiB).
pub async fn cli(socket: &Path, command: &str) -> Result<String, ConcernError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let talk = async {
        let mut s = tokio::net::UnixStream::connect(socket).await?;
        s.write_all(format!("{command}\n").as_bytes()).await?;
        // The master CLI answers once it sees the end of the input.
        s.shutdown().await?;
        let mut out = Vec::new();
        s.take(4 << 20).read_to_end(&mut out).await?;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&out).into_owned())
    };
    tokio::time::timeout(DEADLINE, talk)
        .await
        .map_err(|_| {
            ConcernError::Failed(format!(
                "{}: no answer to {command:?} within {} s",
                socket.display(),
                DEADLINE.as_secs()
            ))
        })?
        .map_err(|e| ConcernError::Failed(format!("{}: {e}", socket.display())))
}

/// The master's reload count and the pid of its current worker, from `show proc`:
/// `<pid> master <reloads> [failed: n] <uptime> <version>`, then `# workers` (the current
/// one) and `# old workers` (finishing their connections).
async fn master_state(paths: &Paths) -> Option<(u64, Option<i32>)> {
    let out = cli(&paths.master_socket(), "show proc").await.ok()?;
    let mut reloads = None;
    let mut worker = None;
    let mut section = "";
    for l in out.lines() {
        if let Some(h) = l.strip_prefix('#') {
            section = if h.trim() == "workers" { "workers" } else { "" };
            continue;
        }
        let w: Vec<&str> = l.split_whitespace().collect();
        match w.get(1) {
            Some(&"master") => reloads = w.get(2).and_then(|r| r.parse().ok()),
            Some(&"worker") if section == "workers" && worker.is_none() => {
                worker = w.first().and_then(|p| p.parse().ok())
            }
            _ => {}
        }
    }
    Some((reloads?, worker))
}

/// The pid of the worker answering on the admin socket (`show info`).
async fn admin_pid(paths: &Paths) -> Option<i32> {
    let out = cli(&paths.admin_socket(), "show info").await.ok()?;
    out.lines()
        .find_map(|l| l.strip_prefix("Pid: ").and_then(|p| p.trim().parse().ok()))
}

/// haproxy's verdict on a config, with the rule each message is about.
async fn check(config_file: &Path, config: &str) -> Result<(), ConcernError> {
    let run = tokio::process::Command::new(daemon::binary("haproxy", "haproxy")?)
        .arg("-c")
        .arg("-f")
        .arg(config_file)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(DEADLINE, run)
        .await
        .map_err(|_| ConcernError::Failed("haproxy -c did not return within 10 s".into()))?
        .map_err(|e| ConcernError::Failed(format!("haproxy -c: {e}")))?;
    if out.status.success() {
        return Ok(());
    }
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Err(ConcernError::Failed(rejection(config_file, config, &text)))
}

/// "haproxy rejects the load-balancer configuration: rule `listen X`: <alert>; ...".
pub fn rejection(config_file: &Path, config: &str, output: &str) -> String {
    let marker = format!("[{}:", config_file.display());
    let mut parts = Vec::new();
    for line in output.lines().filter(|l| l.contains("ALERT")).take(5) {
        let rule = line
            .find(&marker)
            .and_then(|i| {
                let rest = &line[i + marker.len()..];
                rest[..rest.find(']')?].parse::<usize>().ok()
            })
            .and_then(|n| section_at(config, n));
        // The file name is the agent's business; the message and the rule are the operator's.
        let msg = line.replace(&config_file.display().to_string(), "haproxy.cfg");
        let msg = msg.trim();
        parts.push(match rule {
            Some(r) => format!("rule `{r}`: {msg}"),
            None => msg.to_string(),
        });
    }
    if parts.is_empty() {
        parts.push(output.trim().chars().take(500).collect());
    }
    format!(
        "haproxy rejects the load-balancer configuration: {}",
        parts.join("; ")
    )
}

impl LbConcern {
    pub fn new(run_dir: &Path) -> Self {
        LbConcern {
            paths: paths(run_dir),
            run_as: run_as(),
            current: None,
        }
    }

    fn daemon(&self) -> Owned {
        Owned::new(
            "haproxy",
            self.paths.pid(),
            self.paths.config().display().to_string(),
        )
    }

    fn assumed(&self, applied: &DesiredState) -> Current {
        if applied.lb.is_empty() {
            return Current::default();
        }
        let r = render(&applied.lb, &self.paths, self.run_as.as_ref());
        Current {
            config: Some(r.config),
            certs: r.certs.into_iter().collect(),
            running: true,
        }
    }

    async fn start(&self) -> Result<(), ConcernError> {
        let d = self.daemon();
        let mut cmd = tokio::process::Command::new(daemon::binary("haproxy", "haproxy")?);
        let master = format!("{},mode,600", self.paths.master_socket().display());
        cmd.args(["-W", "-D", "-S", &master, "-p"])
            .arg(self.paths.pid())
            .arg("-f")
            .arg(&d.marker);
        let _ = std::fs::remove_file(self.paths.master_socket());
        d.start_forking(cmd, DEADLINE).await.map(drop)
    }

    /// SIGUSR2 to the master, then waits until it counts one more reload and its new
    /// worker answers on the admin socket (the old one has stopped listening).
    async fn reload(&self) -> Result<(), ConcernError> {
        let before = master_state(&self.paths).await.map(|s| s.0);
        let t0 = Instant::now();
        if !self.daemon().signal(libc::SIGUSR2)? {
            return self.start().await;
        }
        while t0.elapsed() < DEADLINE {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let Some((n, Some(worker))) = master_state(&self.paths).await else {
                continue;
            };
            if before.is_some_and(|b| n <= b) {
                continue;
            }
            if admin_pid(&self.paths).await == Some(worker) {
                tracing::info!(
                    millis = t0.elapsed().as_millis() as u64,
                    worker,
                    "haproxy reloaded"
                );
                return Ok(());
            }
        }
        Err(ConcernError::Failed(format!(
            "haproxy did not complete its reload within {} s",
            DEADLINE.as_secs()
        )))
    }

    /// Stops new sessions to `proxy/server`, waits (bounded) until its sessions end.
    async fn drain(&self, proxy: &str, server: &str) -> Result<(), ConcernError> {
        let sock = self.paths.admin_socket();
        let out = cli(&sock, &format!("set server {proxy}/{server} state drain")).await?;
        if !out.trim().is_empty() {
            tracing::warn!(proxy, server, "drain: {}", out.trim());
            return Ok(());
        }
        let t0 = Instant::now();
        while t0.elapsed() < DRAIN_DEADLINE {
            let rows = vr_lb::stats::parse(&cli(&sock, "show stat").await?);
            let busy = rows
                .iter()
                .find(|r| r.proxy == proxy && r.name == server)
                .is_some_and(|r| r.sessions > 0);
            if !busy {
                tracing::info!(
                    proxy,
                    server,
                    millis = t0.elapsed().as_millis() as u64,
                    "drained"
                );
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tracing::warn!(
            proxy,
            server,
            "still has sessions after the drain deadline; removed"
        );
        Ok(())
    }

    fn put_back_certs(&self, p: &LbPlan, before: &Current) {
        for (name, _) in &p.certs_write {
            let path = self.paths.cert(name);
            match before.certs.get(name) {
                Some(old) => {
                    let _ = write_private(&path, old.expose(), 0o600);
                }
                None => {
                    let _ = std::fs::remove_file(path);
                }
            }
        }
    }
}

impl Concern for LbConcern {
    const NAME: &'static str = "lb";
    type Plan = Plan;

    fn plan(&self, applied: &DesiredState, desired: &DesiredState) -> Result<Plan, ConcernError> {
        let want = (!desired.lb.is_empty())
            .then(|| render(&desired.lb, &self.paths, self.run_as.as_ref()));
        let assumed;
        let current = match &self.current {
            Some(c) => c,
            None => {
                assumed = self.assumed(applied);
                &assumed
            }
        };
        Ok(Plan(plan(want.as_ref(), current, &self.paths)))
    }

    async fn execute(&mut self, plan: &Plan, desired: &DesiredState) -> Result<(), ConcernError> {
        let p = &plan.0;
        let before = match &self.current {
            Some(c) => c.clone(),
            None => self.assumed(&DesiredState::default()),
        };
        if p.daemon == Daemon::Stop {
            self.daemon().stop(Duration::from_secs(5)).await?;
        }
        if p.config.is_some() || !p.certs_write.is_empty() {
            mkdir_private(&self.paths.dir)?;
            mkdir_private(&self.paths.certs_dir())?;
            for (name, pem) in &p.certs_write {
                write_private(&self.paths.cert(name), pem.expose(), 0o600)?;
            }
            let config = match &p.config {
                Some(c) => c.clone(),
                None => std::fs::read_to_string(self.paths.config())
                    .map_err(|e| fail(&self.paths.config(), e))?,
            };
            let candidate = self.paths.candidate();
            write_private(&candidate, &config, 0o600)?;
            if let Err(e) = check(&candidate, &config).await {
                let _ = std::fs::remove_file(&candidate);
                self.put_back_certs(p, &before);
                return Err(e);
            }
            if p.daemon == Daemon::Reload {
                for (proxy, server) in &p.drain {
                    self.drain(proxy, server).await?;
                }
            }
            std::fs::rename(&candidate, self.paths.config())
                .map_err(|e| fail(&self.paths.config(), e))?;
        }
        for name in &p.certs_remove {
            let _ = std::fs::remove_file(self.paths.cert(name));
        }
        match p.daemon {
            Daemon::Keep | Daemon::Stop => {}
            Daemon::Start => self.start().await?,
            Daemon::Reload => self.reload().await?,
        }
        if p.daemon == Daemon::Stop {
            let _ = std::fs::remove_file(self.paths.config());
            self.current = Some(Current::default());
        } else {
            let r = render(&desired.lb, &self.paths, self.run_as.as_ref());
            self.current = Some(Current {
                config: Some(r.config),
                certs: r.certs.into_iter().collect(),
                running: true,
            });
        }
        Ok(())
    }

    async fn observe(&mut self) -> Result<(), ConcernError> {
        let config = std::fs::read_to_string(self.paths.config()).ok();
        let mut certs = std::collections::BTreeMap::new();
        if let Ok(rd) = std::fs::read_dir(self.paths.certs_dir()) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let (Some(stem), Ok(text)) =
                    (name.strip_suffix(".pem"), std::fs::read_to_string(e.path()))
                {
                    certs.insert(stem.to_string(), Secret::new(text));
                }
            }
        }
        self.current = Some(Current {
            config,
            certs,
            running: self.daemon().live_pid().is_some(),
        });
        Ok(())
    }

    async fn may_have_drifted(&mut self) -> bool {
        let should_run = self.current.as_ref().is_some_and(|c| c.running);
        should_run && (self.daemon().live_pid().is_none() || !self.paths.config().exists())
    }
}

/// `vr-agent show lb`: frontends, backends and servers from haproxy's admin socket.
pub async fn view(run_dir: &Path) -> (String, serde_json::Value) {
    let p = paths(run_dir);
    match cli(&p.admin_socket(), "show stat").await {
        Ok(csv) => {
            let rows = vr_lb::stats::parse(&csv);
            let pid = Owned::new("haproxy", p.pid(), p.config().display().to_string()).live_pid();
            let text = format!(
                "haproxy: {}\n{}",
                pid.map_or("not running".to_string(), |p| format!(
                    "running (master pid {p})"
                )),
                vr_lb::stats::Table(&rows)
            );
            (text, serde_json::json!({ "master_pid": pid, "rows": rows }))
        }
        Err(_) if !p.config().exists() => (
            "no load balancer configured\n".into(),
            serde_json::json!({ "master_pid": null, "rows": [] }),
        ),
        Err(e) => (
            format!("{e}\n"),
            serde_json::json!({ "error": e.to_string() }),
        ),
    }
}
