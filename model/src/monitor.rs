//! Health checks and service supervision, as the agent runs them (CloudStack's `monitorservice`
//! push converts into this in `vr-cloudstack`).

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

/// What to watch and check.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorSection {
    /// Services to keep running (restarted with backoff when they die).
    #[serde(default)]
    pub services: Vec<WatchedService>,
    /// False: the services are listed but not restarted (`disable_monitoring`).
    #[serde(default)]
    pub supervise: bool,
    /// Absent: no health checks run.
    #[serde(default)]
    pub health: Option<HealthChecks>,
}

/// One supervised service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchedService {
    /// The section name (`ssh`, `dnsmasq`, ...): checks are named `<name>.service`.
    pub name: String,
    /// The process to look for.
    pub process: String,
    /// The systemd unit that runs it.
    pub unit: String,
    #[serde(default)]
    pub pid_file: Option<String>,
}

/// Health checks with CloudStack's names and thresholds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthChecks {
    /// Seconds between runs of the basic checks (gateways, disk, memory, CPU, version).
    pub basic_interval_secs: u64,
    /// Seconds between runs of the advanced checks.
    pub advanced_interval_secs: u64,
    /// Check names not run (`gateways_check.py`, ...).
    #[serde(default)]
    pub excluded: Vec<String>,
    /// Gateways that must answer ping (`gateways_check.py`).
    #[serde(default)]
    pub gateways: Vec<Ipv4Addr>,
    /// Free space needed on `/`, MiB (`disk_space_check.py`).
    #[serde(default)]
    pub min_disk_mb: Option<f64>,
    /// Memory use above this percentage fails (`memory_usage_check.py`).
    #[serde(default)]
    pub max_memory_pct: Option<f64>,
    /// CPU use above this percentage fails (`cpu_usage_check.py`).
    #[serde(default)]
    pub max_cpu_pct: Option<f64>,
}
