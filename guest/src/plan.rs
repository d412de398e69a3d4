//! What must change for dnsmasq to serve the desired section (pure).
//!
//! A host added or removed is a rewrite of the two host files plus SIGHUP; dnsmasq is
//! restarted only when `dnsmasq.conf` changes; a removed host's lease is released with
//! `dhcp_release` (SIGHUP alone keeps it, and with it the name, until it expires: never, for
//! infinite static leases).

use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::net::Ipv4Addr;

use crate::model::DhcpSection;
use crate::render::{render, Paths, Rendered};

/// What the system holds now (read by the executor's `observe`, or what it last wrote).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Current {
    /// The files as they are on disk (`None`: absent).
    pub conf: Option<String>,
    pub dhcphosts: Option<String>,
    pub hosts: Option<String>,
    /// Our dnsmasq runs (its pid file names a live dnsmasq reading our config).
    pub running: bool,
}

impl Current {
    /// What the system holds after `r` was written and dnsmasq (re)started or reloaded.
    pub fn serving(r: &Rendered) -> Current {
        Current {
            conf: Some(r.conf.clone()),
            dhcphosts: Some(r.dhcphosts.clone()),
            hosts: Some(r.hosts.clone()),
            running: true,
        }
    }
}

/// What happens to the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Daemon {
    Keep,
    /// Not running: start it (it reads its leases back from the lease file).
    Start,
    /// The structure changed: stop and start.
    Restart,
    /// Only host files changed: SIGHUP.
    Reload,
    /// No guest network left.
    Stop,
}

/// One file to (re)write, with its line changes for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileWrite {
    pub path: std::path::PathBuf,
    pub content: String,
    pub added: Vec<String>,
    pub removed: Vec<String>,
}

/// A lease to drop: `dhcp_release DEVICE IP MAC`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Release {
    pub device: String,
    pub ip: Ipv4Addr,
    pub mac: String,
}

/// The plan: files first, then the daemon, then the releases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpPlan {
    pub writes: Vec<FileWrite>,
    pub daemon: Daemon,
    pub releases: Vec<Release>,
}

/// The lines only in `old` and only in `new`. Both are rendered in the same order, so a change
/// of a few hosts touches a few lines in the middle: the common prefix and suffix (whole lines)
/// are skipped with byte compares, and only the rest is diffed by hashing; hashing all 10,000
/// lines of a 5,000-host file would cost more than the change itself.
fn line_diff(old: Option<&str>, new: &str) -> (Vec<String>, Vec<String>) {
    let old = old.unwrap_or("");
    let (ob, nb) = (old.as_bytes(), new.as_bytes());
    let mut p = ob.iter().zip(nb).take_while(|(a, b)| a == b).count();
    while p > 0 && ob[p - 1] != b'\n' {
        p -= 1;
    }
    let room = (ob.len() - p).min(nb.len() - p);
    let mut q = ob
        .iter()
        .rev()
        .zip(nb.iter().rev())
        .take(room)
        .take_while(|(a, b)| a == b)
        .count();
    let line_start = |b: &[u8], q: usize| q == b.len() || b[b.len() - q - 1] == b'\n';
    while q > 0 && !(line_start(ob, q) && line_start(nb, q)) {
        q -= 1;
    }
    let (old_mid, new_mid) = (&old[p..old.len() - q], &new[p..new.len() - q]);
    let old_set: HashSet<&str> = old_mid.lines().collect();
    let new_set: HashSet<&str> = new_mid.lines().collect();
    let added = new_mid
        .lines()
        .filter(|l| !old_set.contains(l))
        .map(String::from)
        .collect();
    let removed = old_mid
        .lines()
        .filter(|l| !new_set.contains(l))
        .map(String::from)
        .collect();
    (added, removed)
}

/// Plans from `current` (the system) to `desired`; `applied` is what was last committed, whose
/// hosts missing from `desired` have their leases released.
pub fn plan(
    applied: &DhcpSection,
    desired: &DhcpSection,
    current: &Current,
    paths: &Paths,
) -> DhcpPlan {
    if desired.networks.is_empty() {
        return DhcpPlan {
            writes: Vec::new(),
            daemon: if current.running {
                Daemon::Stop
            } else {
                Daemon::Keep
            },
            releases: Vec::new(),
        };
    }
    let r = render(desired, paths);
    let mut writes = Vec::new();
    let files = [
        (paths.conf(), &current.conf, &r.conf),
        (paths.dhcphosts(), &current.dhcphosts, &r.dhcphosts),
        (paths.hosts(), &current.hosts, &r.hosts),
    ];
    let mut structural = false;
    for (k, (path, old, new)) in files.into_iter().enumerate() {
        if old.as_deref() != Some(new.as_str()) {
            structural |= k == 0;
            let (added, removed) = line_diff(old.as_deref(), new);
            writes.push(FileWrite {
                path,
                content: new.clone(),
                added,
                removed,
            });
        }
    }
    let daemon = if !current.running {
        Daemon::Start
    } else if structural {
        Daemon::Restart
    } else if !writes.is_empty() {
        Daemon::Reload
    } else {
        Daemon::Keep
    };
    let kept: BTreeSet<(&str, Ipv4Addr)> = desired
        .hosts
        .iter()
        .map(|h| (h.mac.as_str(), h.ipv4))
        .collect();
    let mut releases: Vec<Release> = applied
        .hosts
        .iter()
        .filter(|h| !kept.contains(&(h.mac.as_str(), h.ipv4)))
        .filter_map(|h| {
            // The NIC the lease was served on: the desired network if it is still there.
            let net = desired
                .network_of(h.ipv4)
                .or_else(|| applied.network_of(h.ipv4))?;
            Some(Release {
                device: net.device.clone(),
                ip: h.ipv4,
                mac: h.mac.clone(),
            })
        })
        .collect();
    releases.sort();
    DhcpPlan {
        writes,
        daemon,
        releases,
    }
}

impl DhcpPlan {
    /// Elementary changes: one per host-file line, conf rewrite, daemon action and release.
    pub fn changes(&self) -> usize {
        let lines: usize = self
            .writes
            .iter()
            .map(|w| (w.added.len() + w.removed.len()).max(1))
            .sum();
        lines + usize::from(self.daemon != Daemon::Keep) + self.releases.len()
    }
}

impl fmt::Display for DhcpPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for w in &self.writes {
            writeln!(
                f,
                "write {} (+{} -{})",
                w.path.display(),
                w.added.len(),
                w.removed.len()
            )?;
            for l in &w.removed {
                writeln!(f, "  - {l}")?;
            }
            for l in &w.added {
                writeln!(f, "  + {l}")?;
            }
        }
        match self.daemon {
            Daemon::Keep => {}
            Daemon::Start => writeln!(f, "start dnsmasq")?,
            Daemon::Restart => writeln!(f, "restart dnsmasq (structural change)")?,
            Daemon::Reload => writeln!(f, "kill -HUP dnsmasq (host files re-read, leases kept)")?,
            Daemon::Stop => writeln!(f, "stop dnsmasq (no guest network left)")?,
        }
        for r in &self.releases {
            writeln!(f, "dhcp_release {} {} {}", r.device, r.ip, r.mac)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::line_diff;

    #[test]
    fn line_diff_finds_changes_anywhere() {
        let d = |o: &str, n: &str| line_diff(Some(o), n);
        assert_eq!(d("a\nb\nc\n", "a\nb\nc\n"), (vec![], vec![]));
        assert_eq!(d("a\nc\n", "a\nb\nc\n"), (vec!["b".into()], vec![]));
        assert_eq!(d("a\nb\nc\n", "a\nc\n"), (vec![], vec!["b".into()]));
        assert_eq!(d("a\nb\n", "a\nb\nc\n"), (vec!["c".into()], vec![]));
        assert_eq!(d("b\nc\n", "a\nb\nc\n"), (vec!["a".into()], vec![]));
        assert_eq!(
            d("x1\nab\nz\n", "x1\nac\nz\n"),
            (vec!["ac".into()], vec!["ab".into()])
        );
        assert_eq!(d("ab\n", "abc\n"), (vec!["abc".into()], vec!["ab".into()]));
        assert_eq!(line_diff(None, "a\n"), (vec!["a".into()], vec![]));
        assert_eq!(d("a\nb\n", ""), (vec![], vec!["a".into(), "b".into()]));
    }
}
