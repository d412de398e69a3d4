//! Concern `radvd`: router advertisements on the guest NICs that carry an IPv6 prefix,
//! through a radvd the agent owns ([`crate::daemon`], design.md "Daemons the agent owns").
//!
//! The config is rendered purely ([`vr_guest::radvd::render`], golden-tested), checked with
//! `radvd --configtest`, written atomically under `<run-dir>/radvd`; radvd is started when it
//! does not run, SIGHUPed (it re-reads the file and keeps advertising) when the config
//! changed, stopped when no NIC advertises any more. An agent restart adopts the running
//! radvd (its pid file, recognised by its config path). Every call has a deadline.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use vr_guest::radvd::{render, Advertised};

use super::{Concern, ConcernError, PlanSummary};
use crate::daemon::{self, Owned};
use crate::state::{DesiredState, InterfaceRole};

/// Deadline of every call to radvd.
const DEADLINE: Duration = Duration::from_secs(10);

/// What to do to radvd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RadvdPlan {
    Nothing,
    /// Write the config and start radvd.
    Start(String),
    /// Write the config and SIGHUP the running radvd.
    Reload(String),
    Stop,
}

impl fmt::Display for RadvdPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RadvdPlan::Nothing => Ok(()),
            RadvdPlan::Start(c) => writeln!(f, "{c}# radvd -C radvd.conf -p radvd.pid (start)"),
            RadvdPlan::Reload(c) => writeln!(f, "{c}# kill -HUP radvd (reload)"),
            RadvdPlan::Stop => writeln!(f, "# kill radvd (no guest NIC advertises)"),
        }
    }
}

impl PlanSummary for RadvdPlan {
    fn changes(&self) -> usize {
        usize::from(*self != RadvdPlan::Nothing)
    }
}

/// The NICs `s` advertises on.
pub fn advertised(s: &DesiredState) -> Vec<Advertised> {
    s.interfaces
        .iter()
        .filter(|i| i.role == InterfaceRole::Guest && !i.addresses6.is_empty())
        .map(|i| Advertised {
            device: i.device.clone(),
            prefixes: i.addresses6.clone(),
            mtu: i.mtu,
            managed: s
                .dhcp
                .networks
                .iter()
                .any(|n| n.device == i.device && n.address6.is_some()),
        })
        .collect()
}

/// Pure: from what runs (`running` with config `current`) to what `desired` implies.
pub fn plan_radvd(running: bool, current: Option<&str>, desired: &DesiredState) -> RadvdPlan {
    match (render(&advertised(desired)), running) {
        (None, true) => RadvdPlan::Stop,
        (None, false) => RadvdPlan::Nothing,
        (Some(c), false) => RadvdPlan::Start(c),
        (Some(c), true) if current != Some(c.as_str()) => RadvdPlan::Reload(c),
        (Some(_), true) => RadvdPlan::Nothing,
    }
}

#[derive(Debug)]
pub struct RadvdConcern {
    dir: PathBuf,
    /// `Some(running, config)` once looked at.
    seen: Option<(bool, Option<String>)>,
}

impl RadvdConcern {
    pub fn new(run_dir: &Path) -> Self {
        let abs = std::path::absolute(run_dir).unwrap_or_else(|_| run_dir.to_path_buf());
        RadvdConcern {
            dir: abs.join("radvd"),
            seen: None,
        }
    }

    fn conf(&self) -> PathBuf {
        self.dir.join("radvd.conf")
    }

    fn daemon(&self) -> Owned {
        Owned::new(
            "radvd",
            self.dir.join("radvd.pid"),
            self.conf().display().to_string(),
        )
    }

    fn look(&self) -> (bool, Option<String>) {
        let running = self.daemon().live_pid().is_some();
        let conf = std::fs::read_to_string(self.conf()).ok();
        (running, conf)
    }

    /// `radvd --configtest` on the text, then temp file + rename.
    async fn write_checked(&self, conf: &str) -> Result<(), ConcernError> {
        let fail = |e: std::io::Error| ConcernError::Failed(format!("radvd config: {e}"));
        std::fs::create_dir_all(&self.dir).map_err(fail)?;
        let tmp = self.dir.join(".radvd.conf.new");
        std::fs::write(&tmp, conf).map_err(fail)?;
        let out = tokio::process::Command::new(daemon::binary("radvd", "radvd")?)
            .arg("--configtest")
            .arg("-C")
            .arg(&tmp)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(DEADLINE, out)
            .await
            .map_err(|_| ConcernError::Failed("radvd --configtest did not return in 10 s".into()))?
            .map_err(|e| ConcernError::Failed(format!("radvd --configtest: {e}")))?;
        if !out.status.success() {
            let _ = std::fs::remove_file(&tmp);
            return Err(ConcernError::Failed(format!(
                "radvd rejects the rendered config: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        std::fs::rename(&tmp, self.conf()).map_err(fail)
    }
}

impl Concern for RadvdConcern {
    const NAME: &'static str = "radvd";
    type Plan = RadvdPlan;

    fn plan(
        &self,
        applied: &DesiredState,
        desired: &DesiredState,
    ) -> Result<RadvdPlan, ConcernError> {
        let (running, conf) = match &self.seen {
            Some((r, c)) => (*r, c.clone()),
            // Not looked yet: assume `applied` is what runs.
            None => {
                let c = render(&advertised(applied));
                (c.is_some(), c)
            }
        };
        Ok(plan_radvd(running, conf.as_deref(), desired))
    }

    async fn execute(
        &mut self,
        plan: &RadvdPlan,
        _desired: &DesiredState,
    ) -> Result<(), ConcernError> {
        let d = self.daemon();
        match plan {
            RadvdPlan::Nothing => {}
            RadvdPlan::Start(c) => {
                self.write_checked(c).await?;
                d.clear_leftovers(Duration::from_secs(2)).await;
                let mut cmd = tokio::process::Command::new(daemon::binary("radvd", "radvd")?);
                // Forks; logs to syslog (nothing when there is none, e.g. in tests).
                cmd.arg("-C")
                    .arg(&d.marker)
                    .arg("-p")
                    .arg(&d.pid_file)
                    .args(["-m", "syslog"]);
                d.start_forking(cmd, DEADLINE).await?;
            }
            RadvdPlan::Reload(c) => {
                self.write_checked(c).await?;
                if !d.signal(libc::SIGHUP)? {
                    return Err(ConcernError::Failed("radvd is not running".into()));
                }
            }
            RadvdPlan::Stop => {
                d.stop(Duration::from_secs(3)).await?;
                let _ = std::fs::remove_file(self.conf());
            }
        }
        self.seen = Some(self.look());
        Ok(())
    }

    async fn observe(&mut self) -> Result<(), ConcernError> {
        self.seen = Some(self.look());
        Ok(())
    }

    async fn may_have_drifted(&mut self) -> bool {
        // A dead radvd is planned as a start.
        self.seen.as_ref().map(|s| s.0) != Some(self.daemon().live_pid().is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_reload_stop() {
        let s: DesiredState = serde_json::from_str(
            r#"{"interfaces":[{"device":"eth0","role":"guest","addresses6":["2001:db8:10::1/64"]}]}"#,
        )
        .unwrap();
        let conf = render(&advertised(&s)).unwrap();
        assert!(matches!(plan_radvd(false, None, &s), RadvdPlan::Start(_)));
        assert_eq!(plan_radvd(true, Some(&conf), &s), RadvdPlan::Nothing);
        assert!(matches!(
            plan_radvd(true, Some("old"), &s),
            RadvdPlan::Reload(_)
        ));
        let none = DesiredState::default();
        assert_eq!(plan_radvd(true, Some(&conf), &none), RadvdPlan::Stop);
        assert_eq!(plan_radvd(false, None, &none), RadvdPlan::Nothing);
    }
}
