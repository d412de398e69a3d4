//! The native `monitor` section: services to supervise and health checks to run, with
//! CloudStack's check names and thresholds (a CloudStack `monitorservice` push converts into
//! it in `vr-cloudstack`). The agent configures supervision and the checks from it after the
//! replay and after each push; it programs nothing in the kernel.

use std::net::Ipv4Addr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::FieldError;
use crate::state::MacAddr;

/// Longest interval between two runs of a kind of checks (a day).
pub const MAX_INTERVAL_SECS: u64 = 86_400;
/// At most this many services, gateways, VMs or excluded names: a check run stays bounded.
pub const MAX_ITEMS: usize = 256;

/// What to watch and check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MonitorSection {
    /// Services to keep running (restarted with backoff when they die).
    #[serde(default)]
    pub services: Vec<WatchedService>,
    /// False: the services are looked at and reported, not restarted (CloudStack's
    /// `disable_monitoring`).
    #[serde(default = "yes")]
    pub supervise: bool,
    /// Absent: no health checks run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthChecks>,
}

fn yes() -> bool {
    true
}

impl Default for MonitorSection {
    fn default() -> Self {
        MonitorSection {
            services: Vec::new(),
            supervise: true,
            health: None,
        }
    }
}

impl MonitorSection {
    /// Nothing watched, nothing checked.
    pub fn is_empty(&self) -> bool {
        self.services.is_empty() && self.health.is_none()
    }
}

/// One supervised service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WatchedService {
    /// The section name (`ssh`, `dnsmasq`, ...): checks are named `<name>.service`.
    pub name: String,
    /// The process to look for.
    pub process: String,
    /// The systemd unit that runs it.
    pub unit: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_file: Option<String>,
}

/// A threshold (MiB or percent): finite and not negative (validated), so equality is total.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct Limit(pub f64);

// Validation refuses NaN, so `==` is reflexive on every stored value.
impl Eq for Limit {}

/// A VM the router serves (CloudStack's `virtualMachines`): DHCP must hold its address and
/// DNS must answer its name (`dhcp_check.py`, `dns_check.py`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WatchedVm {
    pub name: String,
    pub ip: Ipv4Addr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<MacAddr>,
}

/// The versions the management server expects (CloudStack's `routerVersion`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectedVersion {
    /// The release line the router reported (`Cloudstack Release 4.22.0 ...`) or just the
    /// version (`4.22.0`): the version word must equal this agent's.
    pub template: String,
    /// The scripts signature the router reported; absent: not compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scripts: Option<String>,
}

/// Health checks with CloudStack's names and thresholds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthChecks {
    /// Seconds between runs of the basic checks (gateways, disk, memory, CPU, version).
    pub basic_interval_secs: u64,
    /// Seconds between runs of the advanced checks (port forwards, haproxy, DHCP, DNS).
    pub advanced_interval_secs: u64,
    /// Check names not run (`gateways_check.py`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excluded: Vec<String>,
    /// Gateways that must answer ping (`gateways_check.py`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<Ipv4Addr>,
    /// Free space needed on `/`, MiB (`disk_space_check.py`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_disk_mb: Option<Limit>,
    /// Memory use above this percentage fails (`memory_usage_check.py`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_memory_pct: Option<Limit>,
    /// CPU use above this percentage fails (`cpu_usage_check.py`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cpu_pct: Option<Limit>,
    /// VMs whose DHCP entry and DNS name are checked (`dhcp_check.py`, `dns_check.py`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vms: Vec<WatchedVm>,
    /// The version the management server expects (`router_version_check.py`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<ExpectedVersion>,
}

/// Every invalid value of `m`, paths under `monitor`.
pub fn validate(m: &MonitorSection) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let plain = |s: &str| {
        !s.is_empty()
            && s.len() <= 128
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@' | '/'))
    };
    if m.services.len() > MAX_ITEMS {
        errs.push(FieldError::new(
            "monitor.services",
            m.services.len(),
            format!("more than {MAX_ITEMS} services"),
        ));
    }
    for (i, s) in m.services.iter().enumerate().take(MAX_ITEMS) {
        for (f, v) in [
            ("name", &s.name),
            ("process", &s.process),
            ("unit", &s.unit),
        ] {
            if !plain(v) || v.contains('/') {
                errs.push(FieldError::new(
                    format!("monitor.services[{i}].{f}"),
                    format!("{v:?}"),
                    "not a plain name (letters, digits, - _ . @)",
                ));
            }
        }
        if let Some(p) = &s.pid_file {
            if !p.starts_with('/') || !plain(p) || p.contains("..") {
                errs.push(FieldError::new(
                    format!("monitor.services[{i}].pid_file"),
                    format!("{p:?}"),
                    "not an absolute plain path",
                ));
            }
        }
    }
    let Some(h) = &m.health else {
        return errs;
    };
    for (f, v) in [
        ("basic_interval_secs", h.basic_interval_secs),
        ("advanced_interval_secs", h.advanced_interval_secs),
    ] {
        if !(1..=MAX_INTERVAL_SECS).contains(&v) {
            errs.push(FieldError::new(
                format!("monitor.health.{f}"),
                v,
                format!("out of range 1-{MAX_INTERVAL_SECS}"),
            ));
        }
    }
    for (f, v) in [
        ("min_disk_mb", h.min_disk_mb),
        ("max_memory_pct", h.max_memory_pct),
        ("max_cpu_pct", h.max_cpu_pct),
    ] {
        if let Some(Limit(x)) = v {
            if !x.is_finite() || x < 0.0 {
                errs.push(FieldError::new(
                    format!("monitor.health.{f}"),
                    x,
                    "not a finite number >= 0",
                ));
            }
        }
    }
    for (f, n) in [
        ("excluded", h.excluded.len()),
        ("gateways", h.gateways.len()),
        ("vms", h.vms.len()),
    ] {
        if n > MAX_ITEMS {
            errs.push(FieldError::new(
                format!("monitor.health.{f}"),
                n,
                format!("more than {MAX_ITEMS} entries"),
            ));
        }
    }
    for (i, e) in h.excluded.iter().enumerate() {
        if !plain(e) || e.contains('/') {
            errs.push(FieldError::new(
                format!("monitor.health.excluded[{i}]"),
                format!("{e:?}"),
                "not a check name",
            ));
        }
    }
    for (i, vm) in h.vms.iter().enumerate() {
        let dns_label = |s: &str| {
            !s.is_empty()
                && s.len() <= 253
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        };
        if !dns_label(&vm.name) {
            errs.push(FieldError::new(
                format!("monitor.health.vms[{i}].name"),
                format!("{:?}", vm.name),
                "not a host name",
            ));
        }
    }
    if let Some(v) = &h.version {
        for (f, s) in [
            ("template", Some(&v.template)),
            ("scripts", v.scripts.as_ref()),
        ] {
            if let Some(s) = s {
                if s.len() > 512 || s.chars().any(char::is_control) {
                    errs.push(FieldError::new(
                        format!("monitor.health.version.{f}"),
                        format!("{:?}", s.chars().take(64).collect::<String>()),
                        "control character or longer than 512 bytes",
                    ));
                }
            }
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_and_validated() {
        let m: MonitorSection = serde_json::from_str(
            r#"{"services":[{"name":"ssh","process":"sshd","unit":"ssh","pid_file":"/run/sshd.pid"}],
                "health":{"basic_interval_secs":60,"advanced_interval_secs":300,
                  "gateways":["192.0.2.1"],"max_cpu_pct":95.5,
                  "vms":[{"name":"vm-1","ip":"10.1.1.23","mac":"02:00:00:00:00:01"}],
                  "version":{"template":"4.22.0"}}}"#,
        )
        .unwrap();
        assert!(m.supervise, "supervised unless said otherwise");
        assert!(validate(&m).is_empty(), "{:?}", validate(&m));
        assert!(serde_json::from_str::<MonitorSection>(r#"{"servics":[]}"#).is_err());
        let mut bad = m.clone();
        bad.services[0].unit = "ssh;reboot".into();
        let h = bad.health.as_mut().unwrap();
        h.basic_interval_secs = 0;
        h.max_cpu_pct = Some(Limit(f64::NAN));
        let e = validate(&bad);
        let paths: Vec<&str> = e.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "monitor.services[0].unit",
                "monitor.health.basic_interval_secs",
                "monitor.health.max_cpu_pct"
            ]
        );
        assert_eq!(e[0].value, "\"ssh;reboot\"");
    }
}
