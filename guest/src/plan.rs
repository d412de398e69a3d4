//! What must change for dnsmasq to serve the desired section (pure).
//!
//! Each host is two small files (see [`crate::render`]): a host added is two files written and
//! nothing else (dnsmasq reads them by inotify), a host removed or changed is its files
//! removed or rewritten plus a SIGHUP (dnsmasq keeps a `dhcp-hostsdir` record it read until
//! then), and a removed host's lease is released with `dhcp_release` (SIGHUP alone keeps it,
//! and with it the name, until it expires: never, for infinite static leases). dnsmasq is
//! restarted only when `dnsmasq.conf` changes.
//!
//! The hosts compared are the ones that differ between `applied` and `desired` (found without
//! rendering or hashing the unchanged ones), so the plan of one host added to 5,000 costs about
//! what it costs at 50. After an `observe`, every host is compared with the files on disk.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::Ipv4Addr;

use crate::model::{DhcpHost, DhcpSection};
use crate::render::{conf, host_files, hosts, render, HostDir, HostFiles, Paths, Rendered};

/// What the system holds now (read by the executor's `observe`, or what it last wrote).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Current {
    /// The files as they are on disk (`None`: absent).
    pub conf: Option<String>,
    pub hosts: Option<String>,
    /// The per-host files on disk, by MAC (a host with only one of its two files has the
    /// other as `""` / `None`).
    pub host_files: BTreeMap<String, HostFiles>,
    /// Our dnsmasq runs (its pid file names a live dnsmasq reading our config).
    pub running: bool,
    /// The host files were read from disk (or never known): compare every host with them,
    /// not only those that changed between `applied` and `desired`.
    pub observed: bool,
}

impl Current {
    /// What the system holds after `r` was written and dnsmasq (re)started or reloaded.
    pub fn serving(r: &Rendered) -> Current {
        Current {
            conf: Some(r.conf.clone()),
            hosts: Some(r.hosts.clone()),
            host_files: r.host_files.clone(),
            running: true,
            observed: false,
        }
    }

    /// The mirror after `plan` ran.
    pub fn apply(&mut self, plan: &DhcpPlan, paths: &Paths) {
        for w in &plan.writes {
            if w.path == paths.conf() {
                self.conf = Some(w.content.clone());
            } else {
                self.hosts = Some(w.content.clone());
            }
        }
        for op in &plan.host_ops {
            let e = self.host_files.entry(op.mac.clone()).or_default();
            match op.kind {
                HostDir::Dhcp => e.dhcp = op.content.clone().unwrap_or_default(),
                HostDir::Names => e.names = op.content.clone(),
            }
            if e.dhcp.is_empty() && e.names.is_none() {
                self.host_files.remove(&op.mac);
            }
        }
        match plan.daemon {
            Daemon::Stop => *self = Current::default(),
            Daemon::Keep if !self.running => {}
            _ => self.running = true,
        }
        self.observed = false;
    }
}

/// What happens to the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Daemon {
    /// Nothing (new host files are read by inotify).
    Keep,
    /// Not running: start it (it reads its leases back from the lease file).
    Start,
    /// The structure changed: stop and start.
    Restart,
    /// A lease file went or changed: SIGHUP.
    Reload,
    /// No guest network left.
    Stop,
}

/// One whole file to (re)write (`dnsmasq.conf`, `hosts`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileWrite {
    pub path: std::path::PathBuf,
    pub content: String,
}

/// One per-host file written (`Some`) or removed (`None`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct HostOp {
    pub mac: String,
    pub kind: HostDir,
    pub content: Option<String>,
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
    pub host_ops: Vec<HostOp>,
    pub daemon: Daemon,
    pub releases: Vec<Release>,
    /// For `Display`: where the host files live.
    pub paths: Paths,
}

/// The hosts that differ between `old` and `new`, by MAC: `(old, new)`, sorted by MAC.
/// Pushes keep the order of the hosts they do not touch (an upsert appends), so the common
/// prefix and suffix are skipped with plain compares and only the middle is matched by MAC.
pub fn changed_hosts<'a>(
    old: &'a [DhcpHost],
    new: &'a [DhcpHost],
) -> Vec<(Option<&'a DhcpHost>, Option<&'a DhcpHost>)> {
    let p = old.iter().zip(new).take_while(|(a, b)| a == b).count();
    let (old, new) = (&old[p..], &new[p..]);
    let q = old
        .iter()
        .rev()
        .zip(new.iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    let (old, new) = (&old[..old.len() - q], &new[..new.len() - q]);
    let olds: HashMap<&str, &DhcpHost> = old.iter().map(|h| (h.mac.as_str(), h)).collect();
    let news: HashMap<&str, &DhcpHost> = new.iter().map(|h| (h.mac.as_str(), h)).collect();
    let mut out: Vec<_> = new
        .iter()
        .filter(|h| olds.get(h.mac.as_str()) != Some(h))
        .map(|h| (olds.get(h.mac.as_str()).copied(), Some(h)))
        .chain(
            old.iter()
                .filter(|h| !news.contains_key(h.mac.as_str()))
                .map(|h| (Some(h), None)),
        )
        .collect();
    out.sort_by(|a, b| mac_of(a).cmp(mac_of(b)));
    out
}

fn mac_of<'a>(c: &(Option<&'a DhcpHost>, Option<&'a DhcpHost>)) -> &'a str {
    c.1.or(c.0).map_or("", |h| h.mac.as_str())
}

/// The ops that bring `mac`'s files from `have` to `want`.
fn host_ops(mac: &str, have: Option<&HostFiles>, want: Option<&HostFiles>, out: &mut Vec<HostOp>) {
    for kind in [HostDir::Names, HostDir::Dhcp] {
        let h = have.and_then(|f| f.get(kind)).filter(|s| !s.is_empty());
        let w = want.and_then(|f| f.get(kind));
        if h != w {
            out.push(HostOp {
                mac: mac.to_string(),
                kind,
                content: w.map(String::from),
            });
        }
    }
}

/// Plans from `current` (the system) to `desired`; `applied` is what was last committed, whose
/// hosts missing from `desired` have their leases released.
pub fn plan(
    applied: &DhcpSection,
    desired: &DhcpSection,
    current: &Current,
    paths: &Paths,
) -> DhcpPlan {
    let mut p = DhcpPlan {
        writes: Vec::new(),
        host_ops: Vec::new(),
        daemon: Daemon::Keep,
        releases: Vec::new(),
        paths: paths.clone(),
    };
    if desired.networks.is_empty() {
        if current.running {
            p.daemon = Daemon::Stop;
        }
        return p;
    }
    let (conf, names) = (conf(desired, paths), hosts(desired));
    let conf_changed = current.conf.as_deref() != Some(conf.as_str());
    for (path, old, new) in [
        (paths.conf(), &current.conf, conf),
        (paths.hosts(), &current.hosts, names),
    ] {
        if old.as_deref() != Some(new.as_str()) {
            p.writes.push(FileWrite { path, content: new });
        }
    }
    let delta = changed_hosts(&applied.hosts, &desired.hosts);
    // A host's names depend on its network's domain: a change of networks compares every host.
    if current.observed || applied.networks != desired.networks {
        let want = render(desired, paths).host_files;
        for (mac, w) in &want {
            host_ops(mac, current.host_files.get(mac), Some(w), &mut p.host_ops);
        }
        for (mac, h) in current
            .host_files
            .iter()
            .filter(|(m, _)| !want.contains_key(*m))
        {
            host_ops(mac, Some(h), None, &mut p.host_ops);
        }
    } else {
        for c in &delta {
            let mac = mac_of(c);
            let want = c.1.map(|h| host_files(desired, h));
            host_ops(
                mac,
                current.host_files.get(mac),
                want.as_ref(),
                &mut p.host_ops,
            );
        }
    }
    p.host_ops.sort();
    // dnsmasq adds a new lease file's record by itself, but keeps a removed or changed one's.
    let lease_file_gone = p.host_ops.iter().any(|op| {
        op.kind == HostDir::Dhcp
            && current
                .host_files
                .get(&op.mac)
                .is_some_and(|f| !f.dhcp.is_empty())
    });
    p.daemon = if !current.running {
        Daemon::Start
    } else if conf_changed {
        Daemon::Restart
    } else if lease_file_gone || p.writes.iter().any(|w| w.path == paths.hosts()) {
        Daemon::Reload
    } else {
        Daemon::Keep
    };
    p.releases = delta
        .iter()
        .filter_map(|(old, new)| {
            let old = (*old)?;
            if new.is_some_and(|n| n.ipv4 == old.ipv4) {
                return None;
            }
            // The NIC the lease was served on: the desired network if it is still there.
            let net = desired
                .network_of(old.ipv4)
                .or_else(|| applied.network_of(old.ipv4))?;
            Some(Release {
                device: net.device.clone(),
                ip: old.ipv4,
                mac: old.mac.clone(),
            })
        })
        .collect();
    p.releases.sort();
    p
}

impl DhcpPlan {
    /// Elementary changes: one per file written or removed, daemon action and release.
    pub fn changes(&self) -> usize {
        self.writes.len()
            + self.host_ops.len()
            + usize::from(self.daemon != Daemon::Keep)
            + self.releases.len()
    }
}

impl fmt::Display for DhcpPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for w in &self.writes {
            writeln!(
                f,
                "write {} ({} lines)",
                w.path.display(),
                w.content.lines().count()
            )?;
        }
        for op in &self.host_ops {
            let path = self.paths.host_file(op.kind, &op.mac);
            match &op.content {
                Some(c) => writeln!(f, "write {}: {}", path.display(), c.trim_end())?,
                None => writeln!(f, "remove {}", path.display())?,
            }
        }
        match self.daemon {
            Daemon::Keep if !self.host_ops.is_empty() => writeln!(
                f,
                "(dnsmasq reads the new host files by inotify: no signal)"
            )?,
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
    use super::changed_hosts;
    use crate::DhcpHost;

    fn h(mac: u8, ip: u8) -> DhcpHost {
        DhcpHost {
            mac: format!("02:00:00:00:00:{mac:02x}"),
            ipv4: std::net::Ipv4Addr::new(10, 0, 0, ip),
            hostname: None,
            default_nic: true,
            ipv6: None,
            duid: None,
        }
    }

    #[test]
    fn changed_hosts_finds_changes_anywhere() {
        let macs = |o: &[DhcpHost], n: &[DhcpHost]| -> Vec<(Option<u8>, Option<u8>)> {
            changed_hosts(o, n)
                .iter()
                .map(|(a, b)| (a.map(|h| h.ipv4.octets()[3]), b.map(|h| h.ipv4.octets()[3])))
                .collect()
        };
        let base = [h(1, 1), h(2, 2), h(3, 3)];
        assert!(macs(&base, &base).is_empty());
        assert_eq!(macs(&base, &[h(1, 1), h(3, 3)]), [(Some(2), None)]);
        assert_eq!(macs(&base[..2], &base), [(None, Some(3))]);
        assert_eq!(macs(&base[1..], &base), [(None, Some(1))]);
        // An upsert moves the host to the end.
        assert_eq!(
            macs(&base, &[h(1, 1), h(3, 3), h(2, 9)]),
            [(Some(2), Some(9))]
        );
        assert_eq!(
            macs(&base, &[]),
            [(Some(1), None), (Some(2), None), (Some(3), None)]
        );
    }
}
