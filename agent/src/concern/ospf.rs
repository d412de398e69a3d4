//! Concern `ospf`: OSPF through a running FRR, driven with `vtysh` (run without a shell).
//!
//! The plan is the list of configure commands that turn FRR's running config into the desired
//! OSPF blocks, line by line ([`vr_ospf::apply::diff`]), so unrelated changes never reset an
//! adjacency. After sending, the running config is read back and must match (verification);
//! then it is written atomically to `--frr-config` so a daemon restart finds the same state.
//! The agent never restarts FRR.

use std::fmt;
use std::path::PathBuf;
use std::process::Command;

use vr_ospf::apply::{diff, OspfCommands};
use vr_ospf::render::{ospf_blocks, Dialect};

use super::{Concern, ConcernError, PlanSummary};
use crate::diag::check::{Check, Verdict};
use crate::state::DesiredState;

#[derive(Debug, Default)]
pub struct OspfConcern {
    /// `vtysh --vty_socket DIR`; None = FRR's default.
    pub vty_dir: Option<PathBuf>,
    /// FRR's integrated config file, rewritten after each change.
    pub config_file: PathBuf,
    /// FRR's running config as last read (`show running-config`).
    running: Option<String>,
}

/// The vtysh commands of one transition.
#[derive(Debug, Default)]
pub struct OspfPlan(pub OspfCommands);

impl fmt::Display for OspfPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl PlanSummary for OspfPlan {
    fn changes(&self) -> usize {
        self.0.len()
    }
}

fn desired_text(s: &DesiredState) -> String {
    s.ospf
        .as_ref()
        .map(|o| ospf_blocks(o, Dialect::Frr))
        .unwrap_or_default()
}

impl OspfConcern {
    pub fn new(vty_dir: Option<PathBuf>, config_file: PathBuf) -> Self {
        OspfConcern {
            vty_dir,
            config_file,
            running: None,
        }
    }

    /// `vtysh [--vty_socket DIR] -c CMD...` -> stdout; a daemon that cannot be reached is
    /// `Unavailable`, a refused command `Failed`.
    fn vtysh(&self, args: &[String]) -> Result<String, ConcernError> {
        self.vtysh_with(args, None)
    }

    /// `vtysh` with `script` (one command a line) on its standard input: configuration lines
    /// carry OSPF keys, and an argument list is readable by every user (`/proc/PID/cmdline`).
    fn vtysh_with(&self, args: &[String], script: Option<&str>) -> Result<String, ConcernError> {
        let mut c = Command::new("vtysh");
        if let Some(d) = &self.vty_dir {
            c.arg("--vty_socket").arg(d);
        }
        c.args(args);
        c.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let unavailable = |e: std::io::Error| ConcernError::Unavailable(format!("vtysh: {e}"));
        let mut child = c.spawn().map_err(unavailable)?;
        if let (Some(script), Some(mut stdin)) = (script, child.stdin.take()) {
            use std::io::Write;
            // A vtysh that exits early (no FRR) closes the pipe: its output says why.
            let _ = stdin.write_all(script.as_bytes());
        }
        let out = child.wait_with_output().map_err(unavailable)?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if stderr.contains("failed to connect") || stdout.contains("failed to connect") {
            return Err(ConcernError::Unavailable(format!(
                "FRR not reachable: {}",
                stderr.trim()
            )));
        }
        // vtysh reports refused lines with a leading `%`.
        let refused: Vec<&str> = stdout
            .lines()
            .chain(stderr.lines())
            .filter(|l| l.trim_start().starts_with('%'))
            .collect();
        if !out.status.success() || !refused.is_empty() {
            let why = if refused.is_empty() {
                format!("{} {}", stdout.trim(), stderr.trim())
            } else {
                refused.join("; ")
            };
            return Err(ConcernError::Failed(format!(
                "vtysh refused ({}): {}",
                out.status,
                vr_ospf::render::redact(why.trim())
            )));
        }
        Ok(stdout)
    }

    fn read_running(&mut self) -> Result<String, ConcernError> {
        let text = self.vtysh(&["-c".into(), "show running-config".into()])?;
        self.running = Some(text.clone());
        Ok(text)
    }

    /// Writes FRR's running config to the config file (temp + fsync + rename; 0640 frr:frr).
    fn save(&self, running: &str) -> Result<(), ConcernError> {
        let body: String = running
            .lines()
            .skip_while(|l| !l.starts_with('!') && !l.starts_with("frr "))
            .map(|l| format!("{l}\n"))
            .collect();
        let path = &self.config_file;
        if let Some(dir) = path.parent() {
            if !dir.is_dir() {
                return Err(ConcernError::Failed(format!(
                    "{} does not exist",
                    dir.display()
                )));
            }
        }
        crate::store::write_atomic(path, body.as_bytes())
            .map_err(|e| ConcernError::Failed(format!("cannot write {}: {e}", path.display())))?;
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o640));
        // FRR reads it as user frr (keys are in it: never world-readable).
        let _ = Command::new("chown").arg("frr:frr").arg(path).output();
        Ok(())
    }

    /// `show ip ospf neighbor json`, typed.
    pub fn neighbors(&self) -> Result<Vec<vr_ospf::status::Neighbor>, ConcernError> {
        let out = self.vtysh(&["-c".into(), "show ip ospf neighbor json".into()])?;
        vr_ospf::status::parse_neighbors(&out)
            .map_err(|e| ConcernError::Failed(format!("neighbor json: {e}")))
    }
}

impl Concern for OspfConcern {
    const NAME: &'static str = "ospf";
    type Plan = OspfPlan;

    fn plan(
        &self,
        applied: &DesiredState,
        desired: &DesiredState,
    ) -> Result<OspfPlan, ConcernError> {
        match &self.running {
            Some(running) => Ok(OspfPlan(diff(running, &desired_text(desired)))),
            // Not read yet (FRR absent at start): nothing to do unless OSPF is or was wanted.
            None if applied.ospf.is_none() && desired.ospf.is_none() => Ok(OspfPlan::default()),
            None => Ok(OspfPlan(diff("", &desired_text(desired)))),
        }
    }

    async fn execute(
        &mut self,
        _plan: &OspfPlan,
        desired: &DesiredState,
    ) -> Result<(), ConcernError> {
        // The fresh running config is authoritative: recompute against it.
        let want = desired_text(desired);
        let running = self.read_running()?;
        let cmds = diff(&running, &want);
        if !cmds.is_empty() {
            // The same commands as `vtysh -c ...`, one a line on standard input.
            let script: String = cmds
                .vtysh_args()
                .chunks(2)
                .filter_map(|pair| pair.get(1))
                .map(|line| format!("{line}\n"))
                .collect();
            self.vtysh_with(&[], Some(&script))?;
        }
        let after = self.read_running()?;
        let left = diff(&after, &want);
        if !left.is_empty() {
            return Err(ConcernError::Failed(format!("FRR did not take:\n{left}")));
        }
        self.save(&after)
    }

    async fn observe(&mut self) -> Result<(), ConcernError> {
        match self.read_running() {
            Ok(_) => Ok(()),
            // No FRR is fine while no OSPF is wanted; when it is, plans and `check` say so.
            Err(ConcernError::Unavailable(_)) => {
                self.running = None;
                Ok(())
            }
            Err(e) => {
                self.running = None;
                Err(e)
            }
        }
    }

    async fn health(&mut self, desired: &DesiredState) -> Vec<Check> {
        let Some(ospf) = &desired.ospf else {
            return Vec::new();
        };
        let active: Vec<&str> = ospf
            .interfaces
            .iter()
            .filter(|i| !i.passive)
            .map(|i| i.device.as_str())
            .collect();
        match self.neighbors() {
            Err(e) => vec![Check::fail("FRR reachable", e.to_string())],
            Ok(ns) => {
                let mut out = vec![Check::ok(
                    "FRR reachable",
                    format!("{} neighbor(s)", ns.len()),
                )];
                for n in &ns {
                    let v = if n.is_full() {
                        Verdict::Ok
                    } else {
                        Verdict::Fail
                    };
                    out.push(Check::new(
                        format!("ospf neighbor {}", n.router_id),
                        v,
                        format!("{} on {}", n.state, n.interface),
                    ));
                }
                if !active.is_empty() && !ns.iter().any(|n| n.is_full()) {
                    out.push(Check::fail(
                        "ospf adjacency",
                        format!("no Full neighbor on {}", active.join(", ")),
                    ));
                }
                out
            }
        }
    }
}
