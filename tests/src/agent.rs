//! The `vr-agent` binary run by a test: private state, spool and socket paths in a temp dir,
//! optionally inside a namespace (always, when the state touches the kernel).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::{agent_binary, wait_for};

#[derive(Debug)]
pub struct AgentProc {
    pub dir: TempDir,
    pub state_dir: PathBuf,
    /// `--run-dir`: the dnsmasq the agent starts keeps its files and pid file here.
    pub run_dir: PathBuf,
    pub spool_dir: PathBuf,
    pub socket: PathBuf,
    pub log: PathBuf,
    /// Namespace the agent runs in (None = the test's own).
    pub netns: Option<String>,
    /// Extra environment for `run` (e.g. `VR_AGENT_TEST_HOOK`).
    pub env: Vec<(String, String)>,
    /// Extra global options (e.g. `--vici-socket`).
    pub extra_args: Vec<String>,
    child: Option<Child>,
    /// The tmpfs directory holding `run_dir` after [`run_on_tmpfs`](Self::run_on_tmpfs).
    run_tmpfs: Option<TempDir>,
}

impl AgentProc {
    /// Paths only; nothing runs until [`start`](Self::start).
    pub fn new(netns: Option<&str>) -> AgentProc {
        let dir = tempfile::Builder::new()
            .prefix("vr-agent-test")
            .tempdir()
            .expect("tempdir");
        let p = dir.path().to_path_buf();
        // dnsmasq re-reads its host files as `nobody` on SIGHUP: the path must be traversable.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        AgentProc {
            state_dir: p.join("state"),
            run_dir: p.join("run"),
            spool_dir: p.join("spool"),
            socket: p.join("agent.sock"),
            log: p.join("agent.log"),
            dir,
            netns: netns.map(str::to_string),
            env: Vec::new(),
            extra_args: Vec::new(),
            child: None,
            run_tmpfs: None,
        }
    }

    /// Puts `--run-dir` on a tmpfs (`/dev/shm`), as the router's `/run` is: a benchmark that
    /// writes thousands of dnsmasq host files then measures the agent, not this disk's ext4
    /// inode allocator (10-28 s for 10,000 files on the 95%-full build disk).
    pub fn run_on_tmpfs(&mut self) {
        let dir = tempfile::Builder::new()
            .prefix("vr-agent-run")
            .tempdir_in("/dev/shm")
            .expect("tempdir in /dev/shm");
        use std::os::unix::fs::PermissionsExt;
        // dnsmasq re-reads its host files as `nobody`: the path must be traversable.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        self.run_dir = dir.path().join("run");
        self.run_tmpfs = Some(dir);
    }

    fn global_args(&self) -> Vec<String> {
        let mut v = vec![
            "--state-dir".to_string(),
            self.state_dir.display().to_string(),
            "--run-dir".into(),
            self.run_dir.display().to_string(),
            "--spool-dir".into(),
            self.spool_dir.display().to_string(),
            "--socket".into(),
            self.socket.display().to_string(),
            "--config".into(),
            self.dir.path().join("config.toml").display().to_string(),
        ];
        v.extend(self.extra_args.iter().cloned());
        v
    }

    /// Turns the agent's self-heal off, for tests that make drift by hand and then check that
    /// `diff`, `check` and `reconcile` see it (a healing agent would repair it first).
    pub fn without_self_heal(&mut self) {
        self.env
            .push(("VR_AGENT_OBSERVE_INTERVAL".into(), "0".into()));
    }

    /// A `vr-agent` command with this agent's paths, inside its namespace.
    pub fn command(&self) -> Command {
        let config = self.dir.path().join("config.toml");
        if !config.exists() {
            std::fs::write(&config, "# test config: defaults\n").expect("config");
        }
        let mut c = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(agent_binary());
                c
            }
            None => Command::new(agent_binary()),
        };
        c.args(self.global_args());
        c
    }

    /// A `vr-agent` client command with this agent's paths, run where the test runs: the CLI
    /// only talks to the socket, so the time it takes is the management server's, without
    /// the cost of entering a namespace.
    pub fn client_command(&self) -> Command {
        let _ = self.command(); // writes the config file on first use
        let mut c = Command::new(agent_binary());
        c.args(self.global_args());
        c
    }

    /// Starts `vr-agent run` and waits until its socket answers.
    pub fn start(&mut self) {
        self.start_within(Duration::from_secs(20));
    }

    /// As [`start`](Self::start), for a replay known to be long (thousands of files written
    /// on a busy disk).
    pub fn start_within(&mut self, ready: Duration) {
        assert!(self.child.is_none(), "agent already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log");
        let mut cmd = self.command();
        cmd.arg("run")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        cmd.env(
            "RUST_LOG",
            std::env::var("VR_TEST_AGENT_LOG").unwrap_or_else(|_| "info".into()),
        );
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        self.child = Some(cmd.spawn().expect("spawn vr-agent run"));
        let ok = wait_for(ready, || {
            let out = self.cli(&["status", "--json"]);
            out.status.success() || self.exited()
        });
        assert!(
            ok && !self.exited(),
            "agent did not become ready; log:\n{}",
            self.log_text()
        );
    }

    fn exited(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(Some(_))))
    }

    /// Starts `vr-agent run` and returns the time from the spawn until its socket accepts a
    /// connection: the agent binds it right after the boot replay and before it tells systemd
    /// READY, so this is boot to READY, measured to the millisecond (polled every 1 ms).
    pub fn start_to_ready(&mut self) -> Duration {
        // The agent binds only after replaying: the socket cannot exist before.
        let _ = std::fs::remove_file(&self.socket);
        let mut cmd = self.command();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log");
        cmd.arg("run")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .env("RUST_LOG", "info");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let t = std::time::Instant::now();
        self.child = Some(cmd.spawn().expect("spawn vr-agent run"));
        while std::os::unix::net::UnixStream::connect(&self.socket).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(60) && !self.exited(),
                "agent did not become ready; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        t.elapsed()
    }

    /// `VmRSS` and `VmHWM` (peak) of the running agent, in kB.
    pub fn rss_kb(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid().unwrap_or(0)))
            .unwrap_or_default();
        let field = |k: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(k))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// Runs `vr-agent ARGS...` against this agent.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("run vr-agent")
    }

    /// `vr-agent apply --json FILES...`: (exit code, parsed results).
    pub fn apply(&self, files: &[&Path]) -> (i32, serde_json::Value) {
        let mut args = vec!["apply".to_string(), "--json".to_string()];
        args.extend(files.iter().map(|f| f.display().to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = self.cli(&args);
        let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
            serde_json::json!({"stdout": String::from_utf8_lossy(&out.stdout), "stderr": String::from_utf8_lossy(&out.stderr)})
        });
        (out.status.code().unwrap_or(-1), v)
    }

    /// Writes `text` to a file in the test dir and applies it.
    pub fn apply_text(&self, name: &str, text: &str) -> (i32, serde_json::Value) {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).expect("write push");
        self.apply(&[&p])
    }

    /// Drops a push into the spool the way a management server does: temp name, then rename.
    pub fn spool_push(&self, name: &str, text: &str) {
        std::fs::create_dir_all(&self.spool_dir).expect("spool dir");
        let tmp = self.spool_dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).expect("write spool temp");
        std::fs::rename(&tmp, self.spool_dir.join(name)).expect("rename into spool");
    }

    /// The result file of a processed spool push, once it exists: (ok, result).
    pub fn spool_result(&self, name: &str, timeout: Duration) -> Option<(bool, serde_json::Value)> {
        let mut found = None;
        wait_for(timeout, || {
            for (sub, ok) in [("done", true), ("failed", false)] {
                let p = self.spool_dir.join(sub).join(format!("{name}.result.json"));
                if let Ok(text) = std::fs::read_to_string(&p) {
                    if let Ok(v) = serde_json::from_str(&text) {
                        found = Some((ok, v));
                        return true;
                    }
                }
            }
            false
        });
        found
    }

    /// SIGKILL, no cleanup (the crash the store must survive).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on the PID of our own child, which has not been reaped yet.
            unsafe {
                libc::kill(c.id() as i32, libc::SIGTERM);
            }
            let _ = c.wait();
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn state_json(&self) -> Option<Vec<u8>> {
        std::fs::read(self.state_dir.join("state.json")).ok()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl AgentProc {
    /// The pid of the dnsmasq this agent started (from its pid file under our run dir), if it
    /// is alive and reads our config.
    pub fn dnsmasq_pid(&self) -> Option<i32> {
        let dir = self.run_dir.join("dnsmasq");
        let pid: i32 = std::fs::read_to_string(dir.join("dnsmasq.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let want = format!("--conf-file={}", dir.join("dnsmasq.conf").display());
        String::from_utf8_lossy(&cmdline)
            .split('\0')
            .any(|a| a == want)
            .then_some(pid)
    }

    /// Kills the dnsmasq this agent started (it outlives the agent by design).
    pub fn kill_dnsmasq(&self) {
        if let Some(pid) = self.dnsmasq_pid() {
            // SAFETY: kill(2) on the dnsmasq whose pid file is under this test's run dir.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

impl AgentProc {
    /// The pid of the haproxy master this agent started (its pid file under our run dir), if
    /// it is alive and reads our config.
    pub fn haproxy_pid(&self) -> Option<i32> {
        let dir = self.run_dir.join("haproxy");
        let pid: i32 = std::fs::read_to_string(dir.join("haproxy.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let want = dir.join("haproxy.cfg").display().to_string();
        String::from_utf8_lossy(&cmdline)
            .split('\0')
            .any(|a| a == want)
            .then_some(pid)
    }

    /// Stops the haproxy this agent started (it outlives the agent by design): SIGTERM to the
    /// master, which stops its workers.
    pub fn kill_haproxy(&self) {
        if let Some(pid) = self.haproxy_pid() {
            // SAFETY: kill(2) on the haproxy whose pid file is under this test's run dir.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
            crate::wait_for(std::time::Duration::from_secs(3), || {
                !std::path::Path::new(&format!("/proc/{pid}")).exists()
            });
        }
    }

    /// Stops the radvd this agent started (like dnsmasq, it outlives the agent by design):
    /// the pid in our run dir's pid file, if that process was given our config.
    pub fn kill_radvd(&self) {
        let dir = self.run_dir.join("radvd");
        let Some(pid) = std::fs::read_to_string(dir.join("radvd.pid"))
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
        else {
            return;
        };
        let conf = dir.join("radvd.conf").display().to_string();
        let ours = std::fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|c| String::from_utf8_lossy(&c).split('\0').any(|a| a == conf));
        if ours {
            // SAFETY: kill(2) on the radvd whose pid file and config are under this test's
            // run dir. SIGTERM: radvd then ends its privilege-separation child too.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
    }
}

impl Drop for AgentProc {
    fn drop(&mut self) {
        self.stop();
        self.kill_dnsmasq();
        self.kill_haproxy();
        self.kill_radvd();
    }
}
