//! Concern `tunables`: the kernel settings a router needs ([`crate::tunables`] says which and
//! why), written under `/proc/sys` and read back.
//!
//! `/proc/sys` is cheap to read, so the concern re-reads what it plans from just before each
//! plan (`refresh`), like the addressing concerns: a hand-reset `ip_forward=0` is planned back
//! by the next push, shown by `diff`, and repaired by `reconcile` or the self-heal loop.

use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::{Concern, ConcernError, PlanSummary};
use crate::state::{DesiredState, KernelSection};
use crate::tunables::{self, Facts, Snapshot, TunablesPlan};

/// `/proc/sys`.
const PROC_SYS: &str = "/proc/sys";

#[derive(Debug)]
pub struct TunablesConcern {
    /// The operator's sizing from the config file.
    pub config: KernelSection,
    /// Where the sysctl tree is (`/proc/sys`; a directory in unit tests).
    root: PathBuf,
    /// What `/proc/sys` held at the last refresh.
    now: Option<Snapshot>,
}

impl Default for TunablesConcern {
    fn default() -> Self {
        TunablesConcern::new(KernelSection::default())
    }
}

#[derive(Debug, Default)]
pub struct Plan(pub TunablesPlan);

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl PlanSummary for Plan {
    fn changes(&self) -> usize {
        self.0.writes.len()
    }
}

/// `MemTotal` in bytes (0 if unreadable: the size then falls back to the minimum).
fn mem_total() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map(|kib| kib * 1024)
        .unwrap_or(0)
}

impl TunablesConcern {
    pub fn new(config: KernelSection) -> Self {
        TunablesConcern {
            config,
            root: PathBuf::from(PROC_SYS),
            now: None,
        }
    }

    /// A concern reading and writing a copy of the tree at `root` (tests).
    pub fn at(root: &Path, config: KernelSection) -> Self {
        TunablesConcern {
            config,
            root: root.to_path_buf(),
            now: None,
        }
    }

    fn facts(&self) -> Facts {
        let max = self.root.join("net/netfilter/nf_conntrack_max");
        let meta = std::fs::metadata(&max).ok();
        Facts {
            mem_total_bytes: mem_total(),
            // In a child network namespace the kernel shows the global conntrack sizes
            // read-only (0444); in the initial one they are writable. That is exactly the
            // question "are they ours to own here?", without needing to inspect PID 1.
            init_netns: meta
                .as_ref()
                .is_some_and(|m| m.permissions().mode() & 0o200 != 0),
            conntrack_loaded: meta.is_some(),
        }
    }

    /// Reads every path the concern may plan for: the fixed ones, and the per-NIC ones of
    /// every NIC the kernel has now.
    fn read(&self) -> Snapshot {
        let facts = self.facts();
        let mut paths: Vec<String> = [
            "net/ipv4/ip_forward",
            "net/ipv6/conf/all/forwarding",
            "net/netfilter/nf_conntrack_tcp_timeout_established",
            "net/netfilter/nf_conntrack_udp_timeout",
            "net/netfilter/nf_conntrack_udp_timeout_stream",
            "net/netfilter/nf_conntrack_max",
            "net/netfilter/nf_conntrack_buckets",
        ]
        .map(String::from)
        .to_vec();
        for (dir, key) in [
            ("net/ipv4/conf", "rp_filter"),
            ("net/ipv6/conf", "accept_ra"),
            ("net/ipv6/conf", "accept_dad"),
        ] {
            let Ok(list) = std::fs::read_dir(self.root.join(dir)) else {
                continue;
            };
            for e in list.flatten() {
                paths.push(format!("{dir}/{}/{key}", e.file_name().to_string_lossy()));
            }
        }
        let values = paths
            .into_iter()
            .filter_map(|p| {
                let v = std::fs::read_to_string(self.root.join(&p)).ok()?;
                Some((p, v.trim().to_string()))
            })
            .collect();
        Snapshot { facts, values }
    }
}

impl Concern for TunablesConcern {
    const NAME: &'static str = "tunables";
    type Plan = Plan;

    fn plan(&self, _applied: &DesiredState, desired: &DesiredState) -> Result<Plan, ConcernError> {
        // `refresh` runs before every plan; without a reading there is nothing to plan from.
        let now = self
            .now
            .as_ref()
            .ok_or_else(|| ConcernError::Unavailable("/proc/sys not read yet".into()))?;
        Ok(Plan(tunables::plan(desired, &self.config, now)))
    }

    async fn execute(&mut self, plan: &Plan, desired: &DesiredState) -> Result<(), ConcernError> {
        for w in &plan.0.writes {
            let path = self.root.join(&w.path);
            std::fs::write(&path, format!("{}\n", w.to)).map_err(|e| {
                ConcernError::Failed(format!(
                    "cannot set {}={}: {e}",
                    tunables::sysctl_name(&w.path),
                    w.to
                ))
            })?;
        }
        // Verify: the kernel holds what was written (it may refuse a value silently, e.g.
        // clamp it); a difference is an error, not a log line.
        let now = self.read();
        let left = tunables::plan(desired, &self.config, &now);
        self.now = Some(now);
        if !left.writes.is_empty() {
            return Err(ConcernError::Failed(format!(
                "the kernel did not take:\n{left}"
            )));
        }
        Ok(())
    }

    async fn observe(&mut self) -> Result<(), ConcernError> {
        self.now = Some(self.read());
        Ok(())
    }

    async fn refresh(&mut self, _: &DesiredState, _: &DesiredState) -> Result<(), ConcernError> {
        self.observe().await
    }
}
