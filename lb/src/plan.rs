//! The plan that brings haproxy to a rendered configuration: pure, printable. The config is
//! checked with `haproxy -c` before anything running is touched; haproxy is reloaded (its
//! master re-executes itself and hands the listening sockets to the new worker) only when the
//! config or a certificate changed; a backend that leaves the config is drained first.

use std::collections::BTreeMap;
use std::fmt;

use vr_secret::Secret;

use crate::render::{servers, Paths, Rendered};

/// What haproxy's files and process hold now (as the agent last wrote or read them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Current {
    pub config: Option<String>,
    pub certs: BTreeMap<String, Secret>,
    pub running: bool,
}

/// What happens to the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Daemon {
    Keep,
    Start,
    /// Seamless: SIGUSR2 to the master, listeners passed to the new worker.
    Reload,
    Stop,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LbPlan {
    pub paths: Paths,
    /// The new config, when it changed.
    pub config: Option<String>,
    /// Certificates written (0600), by name.
    pub certs_write: Vec<(String, Secret)>,
    pub certs_remove: Vec<String>,
    /// `(proxy, server)` drained before the reload that drops them.
    pub drain: Vec<(String, String)>,
    pub daemon: Daemon,
}

impl LbPlan {
    pub fn changes(&self) -> usize {
        usize::from(self.config.is_some())
            + self.certs_write.len()
            + self.certs_remove.len()
            + self.drain.len()
            + usize::from(self.daemon != Daemon::Keep)
    }
}

/// Pure: from what haproxy holds to `want` (`None`: no load balancing, no haproxy).
pub fn plan(want: Option<&Rendered>, current: &Current, paths: &Paths) -> LbPlan {
    let mut p = LbPlan {
        paths: paths.clone(),
        config: None,
        certs_write: Vec::new(),
        certs_remove: Vec::new(),
        drain: Vec::new(),
        daemon: Daemon::Keep,
    };
    let Some(want) = want else {
        if current.running {
            p.daemon = Daemon::Stop;
        }
        p.certs_remove = current.certs.keys().cloned().collect();
        return p;
    };
    if current.config.as_deref() != Some(want.config.as_str()) {
        p.config = Some(want.config.clone());
    }
    for (name, pem) in &want.certs {
        if current.certs.get(name) != Some(pem) {
            p.certs_write.push((name.clone(), pem.clone()));
        }
    }
    p.certs_remove = current
        .certs
        .keys()
        .filter(|n| !want.certs.iter().any(|(w, _)| w == *n))
        .cloned()
        .collect();
    let changed = p.config.is_some() || !p.certs_write.is_empty();
    p.daemon = match (current.running, changed) {
        (false, _) => Daemon::Start,
        (true, true) => Daemon::Reload,
        (true, false) => Daemon::Keep,
    };
    if p.daemon == Daemon::Reload {
        if let Some(old) = &current.config {
            let new = servers(&want.config);
            p.drain = servers(old).difference(&new).cloned().collect();
        }
    }
    p
}

impl fmt::Display for LbPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cfg = self.paths.config();
        if let Some(c) = &self.config {
            // The lines themselves are not printed: a provided config may hold the stats
            // page's password.
            writeln!(
                f,
                "write {} ({} lines)",
                self.paths.candidate().display(),
                c.lines().count()
            )?;
        }
        for (name, _) in &self.certs_write {
            writeln!(f, "write {} (0600)", self.paths.cert(name).display())?;
        }
        if self.config.is_some() || !self.certs_write.is_empty() {
            writeln!(f, "haproxy -c -f {}", self.paths.candidate().display())?;
        }
        for (proxy, server) in &self.drain {
            writeln!(
                f,
                "set server {proxy}/{server} state drain; wait until its sessions end"
            )?;
        }
        if self.config.is_some() {
            writeln!(
                f,
                "mv {} {}",
                self.paths.candidate().display(),
                cfg.display()
            )?;
        }
        for name in &self.certs_remove {
            writeln!(f, "rm {}", self.paths.cert(name).display())?;
        }
        match self.daemon {
            Daemon::Keep => {}
            Daemon::Start => writeln!(
                f,
                "haproxy -W -D -S {} -p {} -f {}",
                self.paths.master_socket().display(),
                self.paths.pid().display(),
                cfg.display()
            )?,
            Daemon::Reload => writeln!(
                f,
                "kill -USR2 <master> (seamless reload: listening sockets passed to the new worker)"
            )?,
            Daemon::Stop => writeln!(f, "stop haproxy")?,
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn rendered(servers: &[&str]) -> Rendered {
        let mut c = String::from("global\nlisten a\n");
        for s in servers {
            c.push_str(&format!("\tserver {s} 10.0.0.1:80 check\n"));
        }
        Rendered {
            config: c,
            certs: vec![],
        }
    }

    #[test]
    fn reload_only_on_change_and_drain_removed() {
        let paths = Paths::new(Path::new("/run/vr-agent"));
        let two = rendered(&["s1", "s2"]);
        let p = plan(Some(&two), &Current::default(), &paths);
        assert_eq!(p.daemon, Daemon::Start);
        let cur = Current {
            config: Some(two.config.clone()),
            certs: Default::default(),
            running: true,
        };
        assert_eq!(plan(Some(&two), &cur, &paths).changes(), 0);
        let p = plan(Some(&rendered(&["s1"])), &cur, &paths);
        assert_eq!(p.daemon, Daemon::Reload);
        assert_eq!(p.drain, [("a".to_string(), "s2".to_string())]);
        assert!(p.to_string().contains("set server a/s2 state drain"));
        assert_eq!(plan(None, &cur, &paths).daemon, Daemon::Stop);
    }
}
