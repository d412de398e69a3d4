//! The plan from what the system holds to a desired (section, role): files to write, what each
//! daemon must do, and the role transition with its conntrackd commands. Pure; `Display` is
//! what an operator would type (the password never appears: files are named, not shown).

use std::fmt;
use std::path::PathBuf;

use crate::model::{HaRole, HaSection};
use crate::render::{self, Hooks, Paths};

/// What the system holds (read back from the files and pid files, or left by the last execute).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Current {
    pub keepalived_conf: Option<String>,
    pub conntrackd_conf: Option<String>,
    pub keepalived_running: bool,
    pub conntrackd_running: bool,
    /// The role whose transition was last carried out (`None`: none since the agent started).
    pub role: Option<HaRole>,
}

/// What one daemon must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Daemon {
    Keep,
    Start,
    /// keepalived: SIGHUP (it re-reads its config keeping the VRRP state it can).
    Reload,
    /// conntrackd has no reload: stop and start (its caches are refilled by a resync).
    Restart,
    Stop,
}

/// A conntrackd client command of a transition (`conntrackd -C CONF <flag>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncCmd {
    /// `-c`: commit the external cache (the peer's flows) into the kernel table.
    Commit,
    /// `-f`: flush the internal and external caches.
    Flush,
    /// `-R`: resync the internal cache with the kernel table.
    ResyncKernel,
    /// `-B`: bulk-send the internal cache to the peer.
    BulkSend,
    /// `-n`: ask the peer for a full resync.
    RequestResync,
}

impl SyncCmd {
    pub fn flag(self) -> &'static str {
        match self {
            SyncCmd::Commit => "-c",
            SyncCmd::Flush => "-f",
            SyncCmd::ResyncKernel => "-R",
            SyncCmd::BulkSend => "-B",
            SyncCmd::RequestResync => "-n",
        }
    }
}

/// One file to write (0600: keepalived.conf holds the VRRP password).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub path: PathBuf,
    pub content: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaPlan {
    pub writes: Vec<Write>,
    pub removes: Vec<PathBuf>,
    pub keepalived: Daemon,
    pub conntrackd: Daemon,
    /// `(from, to)` when the role changes.
    pub transition: Option<(Option<HaRole>, HaRole)>,
    pub sync_cmds: Vec<SyncCmd>,
}

impl HaPlan {
    pub fn changes(&self) -> usize {
        self.writes.len()
            + self.removes.len()
            + usize::from(self.keepalived != Daemon::Keep)
            + usize::from(self.conntrackd != Daemon::Keep)
            + usize::from(self.transition.is_some())
            + self.sync_cmds.len()
    }
}

/// The conntrackd commands of a transition to `to` (with state sync configured): a new primary
/// takes the peer's flows into its kernel, then starts over from what it now holds and sends
/// that to the peer; a backup asks the primary for everything it has.
pub fn sync_cmds(to: HaRole) -> Vec<SyncCmd> {
    match to {
        HaRole::Primary => vec![
            SyncCmd::Commit,
            SyncCmd::Flush,
            SyncCmd::ResyncKernel,
            SyncCmd::BulkSend,
        ],
        HaRole::Backup | HaRole::Fault => vec![SyncCmd::RequestResync],
    }
}

pub fn plan(
    desired: Option<&HaSection>,
    role: Option<HaRole>,
    current: &Current,
    hooks: &Hooks,
    paths: &Paths,
) -> HaPlan {
    let mut p = HaPlan {
        writes: Vec::new(),
        removes: Vec::new(),
        keepalived: Daemon::Keep,
        conntrackd: Daemon::Keep,
        transition: None,
        sync_cmds: Vec::new(),
    };
    let Some(ha) = desired else {
        if current.keepalived_running {
            p.keepalived = Daemon::Stop;
        }
        if current.conntrackd_running {
            p.conntrackd = Daemon::Stop;
        }
        if current.keepalived_conf.is_some() {
            p.removes.push(paths.keepalived_conf());
        }
        if current.conntrackd_conf.is_some() {
            p.removes.push(paths.conntrackd_conf());
        }
        return p;
    };
    let k = render::keepalived(ha, hooks, paths);
    let k_changed = current.keepalived_conf.as_deref() != Some(k.as_str());
    if k_changed {
        p.writes.push(Write {
            path: paths.keepalived_conf(),
            content: k,
        });
    }
    p.keepalived = match (current.keepalived_running, k_changed) {
        (false, _) => Daemon::Start,
        (true, true) => Daemon::Reload,
        (true, false) => Daemon::Keep,
    };
    match render::conntrackd(ha, paths) {
        Some(c) => {
            let c_changed = current.conntrackd_conf.as_deref() != Some(c.as_str());
            if c_changed {
                p.writes.push(Write {
                    path: paths.conntrackd_conf(),
                    content: c,
                });
            }
            p.conntrackd = match (current.conntrackd_running, c_changed) {
                (false, _) => Daemon::Start,
                (true, true) => Daemon::Restart,
                (true, false) => Daemon::Keep,
            };
        }
        None => {
            if current.conntrackd_running {
                p.conntrackd = Daemon::Stop;
            }
            if current.conntrackd_conf.is_some() {
                p.removes.push(paths.conntrackd_conf());
            }
        }
    }
    if let Some(to) = role {
        if current.role != Some(to) {
            p.transition = Some((current.role, to));
            if ha.sync.is_some() {
                p.sync_cmds = sync_cmds(to);
            }
        }
    }
    p
}

impl fmt::Display for HaPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for w in &self.writes {
            writeln!(f, "write {} (0600)", w.path.display())?;
        }
        for r in &self.removes {
            writeln!(f, "rm {}", r.display())?;
        }
        let word = |d: Daemon, reload: &'static str| match d {
            Daemon::Keep => None,
            Daemon::Start => Some("start"),
            Daemon::Reload => Some(reload),
            Daemon::Restart => Some("restart"),
            Daemon::Stop => Some("stop"),
        };
        if let Some(w) = word(self.keepalived, "reload (SIGHUP)") {
            writeln!(f, "keepalived: {w}")?;
        }
        if let Some(w) = word(self.conntrackd, "restart") {
            writeln!(f, "conntrackd: {w}")?;
        }
        if let Some((from, to)) = self.transition {
            match from {
                Some(from) => writeln!(f, "ha role: {from} -> {to}")?,
                None => writeln!(f, "ha role: {to}")?,
            }
        }
        for c in &self.sync_cmds {
            writeln!(f, "conntrackd {}", c.flag())?;
        }
        Ok(())
    }
}
