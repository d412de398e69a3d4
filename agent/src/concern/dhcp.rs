//! Concern `dhcp`: guest DHCP and DNS through a dnsmasq the agent owns (design.md, "Daemons
//! the agent owns"). The files are rendered and planned by `vr_guest`; this executor writes
//! them atomically under `<run-dir>/dnsmasq` (one small file per host in the directories
//! dnsmasq watches: a new host is read by inotify, no signal), starts dnsmasq in the agent's
//! own network namespace, SIGHUPs it when a host went or changed, restarts it only when its
//! structure changed,
//! releases removed hosts' leases with `dhcp_release`, and adopts a running dnsmasq (its pid
//! file) after an agent restart instead of restarting it: leases and names continue.
//!
//! Self-heal: `may_have_drifted` checks that the dnsmasq we started is alive (a `kill(pid, 0)`
//! and a read of its `/proc` cmdline); a dead one is planned as "start dnsmasq" and started
//! again, with the self-heal loop's backoff when it keeps dying.

use std::fmt;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use vr_guest::plan::{plan, Current, Daemon, DhcpPlan};
use vr_guest::render::{render, HostDir, HostFiles, Paths};

use super::{Concern, ConcernError, PlanSummary};
use crate::daemon::{self, Owned};
use crate::state::DesiredState;

/// Every call to dnsmasq or `dhcp_release` has this deadline.
const DEADLINE: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct DhcpConcern {
    paths: Paths,
    /// What the system held at the last observe or execute (`None`: not looked yet).
    current: Option<Current>,
    /// The pid of our dnsmasq, when it runs.
    pid: Option<i32>,
}

#[derive(Debug)]
pub struct Plan(pub DhcpPlan);

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl PlanSummary for Plan {
    fn changes(&self) -> usize {
        self.0.changes()
    }
    fn lines_hint(&self) -> usize {
        self.0.changes() + 1
    }
}

impl DhcpConcern {
    pub fn new(run_dir: &Path, state_dir: &Path) -> Self {
        DhcpConcern {
            paths: paths(run_dir, state_dir),
            current: None,
            pid: None,
        }
    }

    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    /// Our dnsmasq: its pid file, recognised by the config file it was started with.
    fn daemon(&self) -> Owned {
        Owned::new(
            "dnsmasq",
            self.paths.pid(),
            format!("--conf-file={}", self.paths.conf().display()),
        )
    }

    /// The pid in our pid file, if it names a live dnsmasq reading our config.
    fn live_pid(&self) -> Option<i32> {
        self.daemon().live_pid()
    }

    async fn start(&mut self) -> Result<(), ConcernError> {
        let daemon = self.daemon();
        let mut cmd = tokio::process::Command::new(daemon::binary("dnsmasq", "dnsmasq-base")?);
        cmd.arg(&daemon.marker);
        // dnsmasq forks, and its first process exits only once the daemon has bound its
        // sockets and read its files.
        self.pid = Some(daemon.start_forking(cmd, DEADLINE).await?);
        Ok(())
    }

    async fn stop(&mut self) -> Result<(), ConcernError> {
        self.daemon().stop(Duration::from_secs(3)).await?;
        self.pid = None;
        Ok(())
    }

    async fn release(&self, device: &str, ip: &str, mac: &str) -> Result<(), ConcernError> {
        let run = tokio::process::Command::new("dhcp_release")
            .args([device, ip, mac])
            .stdin(std::process::Stdio::null())
            .output();
        let out = tokio::time::timeout(DEADLINE, run)
            .await
            .map_err(|_| ConcernError::Failed("dhcp_release did not return within 10 s".into()))?
            .map_err(|e| ConcernError::Unavailable(format!("dhcp_release: {e}")))?;
        if !out.status.success() {
            return Err(ConcernError::Failed(format!(
                "dhcp_release {device} {ip} {mac}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(())
    }
}

/// The files' paths, absolute: dnsmasq changes to `/` when it daemonizes.
pub fn paths(run_dir: &Path, state_dir: &Path) -> Paths {
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    Paths::new(&abs(run_dir), &abs(state_dir))
}

/// Temp file + rename: dnsmasq never reads half a file. The temp name starts with a dot,
/// which dnsmasq's inotify and directory reads skip, so only the renamed file is read. No
/// fsync: these files live under the run directory (tmpfs), are rendered again from
/// `state.json` at every boot, and an fsync per host change would cost more than the change.
/// World-readable: dnsmasq reads the host files as `nobody`, and they hold no secret.
fn write_atomic(path: &Path, content: &str) -> Result<(), ConcernError> {
    let fail = |e: std::io::Error| ConcernError::Failed(format!("write {}: {e}", path.display()));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".tmp-{name}"));
    let mut f = std::fs::File::create(&tmp).map_err(fail)?;
    f.write_all(content.as_bytes()).map_err(fail)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o644))
        .map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)
}

/// One host file written or removed (a file already gone is removed).
fn host_op(paths: &Paths, op: &vr_guest::plan::HostOp) -> Result<(), ConcernError> {
    let path = paths.host_file(op.kind, &op.mac);
    match &op.content {
        Some(c) => write_atomic(&path, c),
        None => match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(ConcernError::Failed(format!(
                "remove {}: {e}",
                path.display()
            ))),
        },
    }
}

/// The host files of a plan. A handful (a host added or removed) are written in place; the
/// thousands of a first start or a replay after a reboot are spread over a few threads, since
/// each file is a create and a rename that wait on the file system, not on the CPU.
fn write_host_files(paths: &Paths, ops: &[vr_guest::plan::HostOp]) -> Result<(), ConcernError> {
    const THREADS: usize = 4;
    if ops.len() < 256 {
        return ops.iter().try_for_each(|op| host_op(paths, op));
    }
    let chunk = ops.len().div_ceil(THREADS);
    std::thread::scope(|s| {
        let workers: Vec<_> = ops
            .chunks(chunk)
            .map(|part| s.spawn(move || part.iter().try_for_each(|op| host_op(paths, op))))
            .collect();
        workers.into_iter().try_for_each(|w| {
            w.join()
                .unwrap_or_else(|_| Err(ConcernError::Failed("host file writer panicked".into())))
        })
    })
}

/// Every file of `dir` but the dot files (our temp files, which dnsmasq skips too), by name.
fn read_dir_files(dir: &Path) -> Vec<(String, String)> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                return None;
            }
            let text = std::fs::read_to_string(e.path()).ok()?;
            Some((name, text))
        })
        .collect()
}

/// dnsmasq's own checker on a config before it replaces the running one.
async fn check_conf(conf: &str, dir: &Path) -> Result<(), ConcernError> {
    let tmp = dir.join("dnsmasq.conf.check");
    write_atomic(&tmp, conf)?;
    let run = tokio::process::Command::new(daemon::binary("dnsmasq", "dnsmasq-base")?)
        .arg("--test")
        .arg(format!("--conf-file={}", tmp.display()))
        .stdin(std::process::Stdio::null())
        .output();
    let out = tokio::time::timeout(DEADLINE, run)
        .await
        .map_err(|_| ConcernError::Failed("dnsmasq --test did not return within 10 s".into()))?
        .map_err(|e| ConcernError::Failed(format!("dnsmasq --test: {e}")))?;
    let _ = std::fs::remove_file(&tmp);
    if !out.status.success() {
        return Err(ConcernError::Failed(format!(
            "dnsmasq rejects the rendered config: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

impl Concern for DhcpConcern {
    const NAME: &'static str = "dhcp";
    type Plan = Plan;

    fn plan(&self, applied: &DesiredState, desired: &DesiredState) -> Result<Plan, ConcernError> {
        // Not observed yet: the system is taken to hold what was applied. Borrowed, never
        // cloned: the mirror holds every host's files.
        let assumed;
        let current = match &self.current {
            Some(c) => c,
            None => {
                assumed = if held(applied).networks.is_empty() {
                    Current::default()
                } else {
                    Current::serving(&render(held(applied), &self.paths))
                };
                &assumed
            }
        };
        Ok(Plan(plan(
            held(applied),
            held(desired),
            current,
            &self.paths,
        )))
    }

    async fn execute(&mut self, plan: &Plan, desired: &DesiredState) -> Result<(), ConcernError> {
        let p = &plan.0;
        if p.daemon == Daemon::Stop {
            self.stop().await?;
            // A later start must not read the hosts of an old network set.
            for dir in [self.paths.dhcp_hosts_dir(), self.paths.names_dir()] {
                let _ = std::fs::remove_dir_all(dir);
            }
            self.current = Some(Current::default());
            return Ok(());
        }
        if !p.writes.is_empty() || !p.host_ops.is_empty() || p.daemon == Daemon::Start {
            for dir in [
                self.paths.dir.clone(),
                self.paths.dhcp_hosts_dir(),
                self.paths.names_dir(),
            ] {
                std::fs::create_dir_all(&dir)
                    .map_err(|e| ConcernError::Failed(format!("mkdir {}: {e}", dir.display())))?;
                let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755));
            }
            if let Some(parent) = self.paths.leases.parent() {
                let _ = std::fs::create_dir_all(parent);
            }
        }
        let conf = self.paths.conf();
        for w in &p.writes {
            if w.path == conf {
                check_conf(&w.content, &self.paths.dir).await?;
            }
        }
        for w in &p.writes {
            write_atomic(&w.path, &w.content)?;
        }
        write_host_files(&self.paths, &p.host_ops)?;
        match p.daemon {
            Daemon::Keep | Daemon::Stop => {}
            Daemon::Start => self.start().await?,
            Daemon::Restart => {
                self.stop().await?;
                self.start().await?;
            }
            Daemon::Reload => {
                if !self.daemon().signal(libc::SIGHUP)? {
                    self.start().await?;
                }
            }
        }
        // What the system now holds: the files just written over what it held before (no
        // second rendering of 5,000 hosts).
        match self.current.as_mut() {
            Some(c) => c.apply(p, &self.paths),
            None => self.current = Some(Current::serving(&render(held(desired), &self.paths))),
        }
        for r in &p.releases {
            self.release(&r.device, &r.ip.to_string(), &r.mac).await?;
        }
        Ok(())
    }

    async fn observe(&mut self) -> Result<(), ConcernError> {
        let read = |p: PathBuf| std::fs::read_to_string(p).ok();
        self.pid = self.live_pid();
        let mut host_files: std::collections::BTreeMap<String, HostFiles> = Default::default();
        for kind in [HostDir::Dhcp, HostDir::Names] {
            for (mac, text) in read_dir_files(&self.paths.host_file(kind, "")) {
                let e = host_files.entry(mac).or_default();
                match kind {
                    HostDir::Dhcp => e.dhcp = text,
                    HostDir::Names => e.names = Some(text),
                }
            }
        }
        self.current = Some(Current {
            conf: read(self.paths.conf()),
            hosts: read(self.paths.hosts()),
            host_files,
            running: self.pid.is_some(),
            observed: true,
        });
        Ok(())
    }

    async fn may_have_drifted(&mut self) -> bool {
        let should_run = self.current.as_ref().is_some_and(|c| c.running);
        should_run
            && (self.pid.is_none_or(|pid| !self.daemon().is_ours(pid))
                || !self.paths.conf().exists())
    }
}

/// Served nothing while a redundant pair's backup: the guest networks stay in the state (held,
/// not dropped) and dnsmasq starts with them on promotion.
fn held(s: &DesiredState) -> &vr_guest::DhcpSection {
    static NONE: std::sync::OnceLock<vr_guest::DhcpSection> = std::sync::OnceLock::new();
    if s.ha_active() {
        &s.dhcp
    } else {
        NONE.get_or_init(Default::default)
    }
}
