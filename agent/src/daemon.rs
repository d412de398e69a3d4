//! Daemons the agent owns (design.md, "Daemons the agent owns"): dnsmasq today; haproxy,
//! keepalived, conntrackd and radvd the same way. What they share lives here: the agent starts
//! each in its own network namespace with a pid file under `--run-dir`, recognises its own
//! instance after a restart (adoption: leases, sessions and flows continue), signals it, and
//! stops it waiting until it has really gone. The concern that owns a daemon keeps the rest
//! (its config, when to reload, how to verify) next to its domain.
//!
//! "Ours" means: the pid file names a live process whose program is the daemon and whose
//! argument list holds the marker the agent started it with (its config path). A recycled pid,
//! or the same daemon run by someone else with another config, is never signalled.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::concern::ConcernError;

/// How long a forking daemon may take to start (its first process exits once it serves).
pub const START_DEADLINE: Duration = Duration::from_secs(10);

/// One daemon instance the agent owns.
#[derive(Debug, Clone)]
pub struct Owned {
    /// Program name, as `argv[0]` ends (`dnsmasq`, `haproxy`, `keepalived`).
    pub name: &'static str,
    /// Where the daemon writes its pid (absolute: daemons change to `/`).
    pub pid_file: PathBuf,
    /// One argument the agent always passes, unique to this instance (the config path, as the
    /// daemon sees it): how our instance is told from any other.
    pub marker: String,
}

impl Owned {
    pub fn new(name: &'static str, pid_file: PathBuf, marker: impl Into<String>) -> Self {
        Owned {
            name,
            pid_file,
            marker: marker.into(),
        }
    }

    /// The pid in the pid file, if it names a live instance of ours.
    pub fn live_pid(&self) -> Option<i32> {
        let pid: i32 = std::fs::read_to_string(&self.pid_file)
            .ok()?
            .trim()
            .parse()
            .ok()?;
        self.is_ours(pid).then_some(pid)
    }

    /// `pid` is alive, runs this daemon, and was given our marker (a recycled pid is not ours).
    pub fn is_ours(&self, pid: i32) -> bool {
        if pid <= 0 || exited(pid) {
            return false;
        }
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            return false;
        };
        let mut args = cmdline.split(|b| *b == 0).map(String::from_utf8_lossy);
        args.next().is_some_and(|a| a.ends_with(self.name)) && args.any(|a| a == self.marker)
    }

    /// Starts a daemon that forks: its first process exits once the daemon has bound its
    /// sockets and read its files, so exit 0 means it serves and anything else carries why
    /// not (stderr, quoted). Returns the daemon's pid from its pid file.
    pub async fn start_forking(
        &self,
        mut cmd: tokio::process::Command,
        deadline: Duration,
    ) -> Result<i32, ConcernError> {
        let name = self.name;
        cmd.stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let child = cmd
            .spawn()
            .map_err(|e| ConcernError::Failed(format!("cannot start {name}: {e}")))?;
        let out = tokio::time::timeout(deadline, child.wait_with_output())
            .await
            .map_err(|_| {
                ConcernError::Failed(format!(
                    "{name} did not start within {} s",
                    deadline.as_secs()
                ))
            })?
            .map_err(|e| ConcernError::Failed(format!("{name}: {e}")))?;
        if !out.status.success() {
            return Err(ConcernError::Failed(format!(
                "{name} refused to start ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        // Some daemons write the pid file a moment after the parent returns.
        let until = Instant::now() + Duration::from_secs(2);
        loop {
            if let Some(pid) = self.live_pid() {
                tracing::info!(pid, daemon = name, "started");
                crate::metrics::record_daemon_start(name);
                return Ok(pid);
            }
            if Instant::now() >= until {
                return Err(ConcernError::Failed(format!(
                    "{name} started but {} names no live {name}",
                    self.pid_file.display()
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends `sig` to our instance; `Ok(false)` when none runs.
    pub fn signal(&self, sig: libc::c_int) -> Result<bool, ConcernError> {
        match self.live_pid() {
            Some(pid) => signal(self.name, pid, sig).map(|()| true),
            None => Ok(false),
        }
    }

    /// Stops our instance (SIGTERM, then SIGKILL after `grace`) and returns once it has
    /// finished exiting. Waiting for the exit to finish, not only to start, matters: the kernel
    /// drops a process's memory (its /proc cmdline reads empty) before it closes its files, and
    /// a new instance started in between finds its ports still bound ("Address already in use").
    pub async fn stop(&self, grace: Duration) -> Result<(), ConcernError> {
        let Some(pid) = self.live_pid() else {
            return Ok(());
        };
        signal(self.name, pid, libc::SIGTERM)?;
        let until = Instant::now() + grace;
        while !exited(pid) && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if self.is_ours(pid) {
            signal(self.name, pid, libc::SIGKILL)?;
            let until = Instant::now() + Duration::from_secs(1);
            while !exited(pid) && Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let _ = std::fs::remove_file(&self.pid_file);
        Ok(())
    }

    /// Waits, up to `grace`, until nothing of a previous instance remains, then kills what
    /// still does. Called before starting a daemon whose pid file names no live instance: a
    /// SIGKILLed radvd leaves its privileged child holding the pid file's lock until that
    /// child reads EOF from its dead parent, and a dying process keeps its files until it has
    /// finished exiting; a new instance started in between refuses to start ("unable to lock
    /// pid file") and self-heal would back off for two intervals. A leftover still there
    /// after `grace` serves nothing (its instance is gone), so killing it is safe.
    pub async fn clear_leftovers(&self, grace: Duration) {
        let until = Instant::now() + grace;
        let mut left = self.leftovers();
        while !left.is_empty() && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(20)).await;
            left = self.leftovers();
        }
        if left.is_empty() {
            return;
        }
        for pid in &left {
            if self.is_ours(*pid) {
                tracing::warn!(
                    pid,
                    daemon = self.name,
                    "killing a leftover of a dead instance"
                );
                let _ = signal(self.name, *pid, libc::SIGKILL);
            }
        }
        let until = Instant::now() + Duration::from_secs(1);
        while left.iter().any(|p| !exited(*p)) && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Processes of ours still around: the pid file's process until it has finished exiting
    /// (while it closes its files its cmdline reads empty and its command name stays; a live
    /// process that took over the pid has a cmdline and is not waited for), and every live
    /// process started with our marker (a bounded scan of /proc).
    fn leftovers(&self) -> Vec<i32> {
        let dying = |p: &i32| {
            *p > 0
                && !exited(*p)
                && std::fs::read(format!("/proc/{p}/cmdline")).is_ok_and(|c| c.is_empty())
                && std::fs::read_to_string(format!("/proc/{p}/comm"))
                    .is_ok_and(|c| !c.trim().is_empty() && self.name.starts_with(c.trim()))
        };
        let mut out: Vec<i32> = std::fs::read_to_string(&self.pid_file)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .filter(dying)
            .into_iter()
            .collect();
        if let Ok(dir) = std::fs::read_dir("/proc") {
            for e in dir.flatten().take(100_000) {
                let pid = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok());
                if let Some(pid) = pid.filter(|p| !out.contains(p) && self.is_ours(*p)) {
                    out.push(pid);
                }
            }
        }
        out
    }
}

/// The daemon's binary in the usual system directories, or `Unavailable` naming the Debian
/// package that provides it.
pub fn binary(name: &str, package: &str) -> Result<PathBuf, ConcernError> {
    for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/usr/local/sbin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return Ok(p);
        }
    }
    Err(ConcernError::Unavailable(format!(
        "{name} is not installed (package {package})"
    )))
}

/// `pid` has finished exiting: gone, or a zombie (whose files are closed).
pub fn exited(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return true;
    };
    // The state follows the parenthesised command name, which may itself hold ") ".
    stat.rsplit_once(") ")
        .and_then(|(_, rest)| rest.chars().next())
        .is_none_or(|s| s == 'Z' || s == 'X')
}

fn signal(name: &str, pid: i32, sig: libc::c_int) -> Result<(), ConcernError> {
    // SAFETY: kill(2) with a pid read from our own pid file and checked to be our instance.
    if unsafe { libc::kill(pid, sig) } != 0 {
        let e = std::io::Error::last_os_error();
        return Err(ConcernError::Failed(format!(
            "signal {sig} to {name} {pid}: {e}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_process_is_recognised_only_with_its_marker() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let me = std::process::id() as i32;
        std::fs::write(&pid_file, me.to_string()).unwrap();
        let exe = std::env::current_exe().unwrap();
        let name: &'static str = Box::leak(
            exe.file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
                .into_boxed_str(),
        );
        // The test binary is run with no argument equal to this marker.
        let other = Owned::new(name, pid_file.clone(), "--conf-file=/nowhere");
        assert_eq!(other.live_pid(), None);
        assert!(!Owned::new("dnsmasq", pid_file, "x").is_ours(me));
    }

    #[tokio::test]
    async fn a_leftover_of_ours_is_waited_for_then_killed_and_others_are_left() {
        let dir = tempfile::tempdir().unwrap();
        let marker = format!("{}/leftover.conf", dir.path().display());
        // `sh -c 'read x' MARKER`: argv is sh, -c, the script, MARKER; sh waits on the pipe
        // this test holds, with no child of its own that a kill would leave behind.
        let spawn = |m: &str| {
            std::process::Command::new("sh")
                .args(["-c", "read x", m])
                .stdin(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        };
        let mut ours = spawn(&marker);
        let mut other = spawn("someone-else.conf");
        let d = Owned::new("sh", dir.path().join("none.pid"), marker);
        let wait_seen = std::time::Instant::now() + Duration::from_secs(5);
        while !d.leftovers().contains(&(ours.id() as i32)) && Instant::now() < wait_seen {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(d.leftovers(), vec![ours.id() as i32]);
        let t = Instant::now();
        d.clear_leftovers(Duration::from_millis(200)).await;
        // Killed after the grace, not waited for until it ends on its own.
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        // clear_leftovers returns once it has exited (a zombie until reaped here).
        let status = ours.try_wait().unwrap();
        assert!(
            status.is_some_and(|s| s.code().is_none()),
            "not killed: {status:?}"
        );
        assert!(
            other.try_wait().unwrap().is_none(),
            "someone else's is left alone"
        );
        other.kill().unwrap();
        other.wait().unwrap();
    }

    #[test]
    fn a_pid_that_does_not_exist_has_exited() {
        assert!(exited(i32::MAX));
        assert!(!exited(std::process::id() as i32));
    }
}
