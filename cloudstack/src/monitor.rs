//! `monitorservice` -> [`MonitorSection`]: the services CloudStack's `monitorServices.py` would
//! watch and the health checks its cron would run, with CloudStack's names and thresholds.
//!
//! - `config`: `"ssh:processname=sshd:servicename=ssh:pidfile=/var/run/sshd.pid:,..."`;
//! - `disable_monitoring`: `"true"` lists the services without restarting them;
//! - `health_checks_basic_run_interval` / `..._advance_run_interval`: minutes;
//! - `health_checks_config`: per kind, `k=v,k=v;k=v,...` records (`gateways`: `gatewaysIps`
//!   space-separated; `systemThresholds`: `minDiskNeeded` MiB, `maxMemoryUsage` and
//!   `maxCpuUsage` percent).
//!
//! Pure. A value that does not parse leaves its check out (as CloudStack's scripts skip a
//! check whose data is missing) rather than rejecting the push.

use std::collections::BTreeMap;
use std::time::Duration;

use vr_model::later_types::MonitorService;
use vr_model::monitor::{HealthChecks, MonitorSection, WatchedService};
use vr_model::state::DesiredState;

/// CloudStack's default run interval of both check kinds (minutes).
const DEFAULT_INTERVAL_MIN: u32 = 1;

/// The records of one `health_checks_config` entry: `k=v,k=v;k=v`.
fn records(text: &str) -> Vec<BTreeMap<String, String>> {
    text.split(';')
        .filter(|r| !r.trim().is_empty())
        .map(|r| {
            r.split(',')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .collect()
        })
        .collect()
}

fn services(config: &str) -> Vec<WatchedService> {
    config
        .split(',')
        .filter_map(|entry| {
            let mut parts = entry.split(':');
            let name = parts.next()?.trim().trim_matches(['[', ']']).to_string();
            if name.is_empty() {
                return None;
            }
            let kv: BTreeMap<&str, &str> = parts.filter_map(|p| p.split_once('=')).collect();
            Some(WatchedService {
                process: kv.get("processname").unwrap_or(&name.as_str()).to_string(),
                unit: kv.get("servicename").unwrap_or(&name.as_str()).to_string(),
                pid_file: kv
                    .get("pidfile")
                    .filter(|p| !p.is_empty())
                    .map(|p| p.to_string()),
                name,
            })
        })
        .collect()
}

/// The section a `monitorservice` payload asks for. `minute` is how long a CloudStack minute
/// lasts (60 s; tests shorten it).
pub fn section(m: &MonitorService, minute: Duration) -> MonitorSection {
    let flag = |s: &Option<String>| s.as_deref().is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let cfg = m.health_checks_config.clone().unwrap_or_default();
    let first = |kind: &str| {
        cfg.get(kind)
            .map(|t| records(t))
            .and_then(|r| r.into_iter().next())
            .unwrap_or_default()
    };
    let thresholds = first("systemThresholds");
    let num = |k: &str| thresholds.get(k).and_then(|v| v.parse::<f64>().ok());
    let gateways = first("gateways")
        .get("gatewaysIps")
        .map(|v| {
            v.split([' ', ','])
                .filter_map(|g| g.trim().parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let secs = |min: Option<u32>| {
        let min = min.filter(|m| *m > 0).unwrap_or(DEFAULT_INTERVAL_MIN);
        (minute * min).as_secs().max(1)
    };
    let health = (m.health_checks_enabled != Some(false)).then(|| HealthChecks {
        basic_interval_secs: secs(m.health_checks_basic_run_interval),
        advanced_interval_secs: secs(m.health_checks_advance_run_interval),
        excluded: m
            .excluded_health_checks
            .as_deref()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        gateways,
        min_disk_mb: num("minDiskNeeded"),
        max_memory_pct: num("maxMemoryUsage"),
        max_cpu_pct: num("maxCpuUsage"),
    });
    MonitorSection {
        services: services(m.config.as_deref().unwrap_or("")),
        supervise: !flag(&m.disable_monitoring),
        health,
    }
}

/// The monitoring the committed state asks for: its stored `monitorservice` payload, if any.
pub fn of_state(state: &DesiredState, minute: Duration) -> Option<MonitorSection> {
    let raw = state.cloudstack.pending.get("monitorservice")?.get("all")?;
    let m: MonitorService = serde_json::from_value(raw.clone()).ok()?;
    Some(section(&m, minute))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_monitorservice_push_becomes_services_and_checks() {
        let m: MonitorService = serde_json::from_value(serde_json::json!({
            "config": "ssh:processname=sshd:servicename=ssh:pidfile=/var/run/sshd.pid:,dnsmasq:processname=dnsmasq:servicename=dnsmasq:pidfile=:,",
            "disable_monitoring": "false",
            "health_checks_enabled": true,
            "health_checks_basic_run_interval": 3,
            "excluded_health_checks": "router_version_check.py, dns_check.py",
            "health_checks_config": {
                "gateways": "gatewaysIps=192.0.2.1 10.1.1.1",
                "systemThresholds": "minDiskNeeded=100.0,maxCpuUsage=95.0,maxMemoryUsage=90"
            }
        }))
        .unwrap();
        let s = section(&m, Duration::from_secs(60));
        assert!(s.supervise);
        assert_eq!(s.services.len(), 2);
        assert_eq!(s.services[0].unit, "ssh");
        assert_eq!(s.services[0].process, "sshd");
        assert_eq!(s.services[0].pid_file.as_deref(), Some("/var/run/sshd.pid"));
        assert_eq!(s.services[1].pid_file, None);
        let h = s.health.unwrap();
        assert_eq!(h.basic_interval_secs, 180);
        assert_eq!(h.advanced_interval_secs, 60);
        assert_eq!(h.excluded, ["router_version_check.py", "dns_check.py"]);
        assert_eq!(h.gateways.len(), 2);
        assert_eq!(h.min_disk_mb, Some(100.0));
        assert_eq!(h.max_memory_pct, Some(90.0));
        // Monitoring disabled: listed, not restarted; checks off: none.
        let m: MonitorService = serde_json::from_value(serde_json::json!({
            "config": "ssh:processname=sshd:servicename=ssh:",
            "disable_monitoring": "true", "health_checks_enabled": false
        }))
        .unwrap();
        let s = section(&m, Duration::from_secs(60));
        assert!(!s.supervise && s.health.is_none() && s.services.len() == 1);
    }
}
