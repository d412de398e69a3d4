//! `monitorservice` -> the native `monitor` section: the services CloudStack's
//! `monitorServices.py` would watch and the health checks its cron would run, with
//! CloudStack's names and thresholds.
//!
//! - `config`: `"[ssh]:processname=sshd:servicename=ssh:pidfile=/var/run/sshd.pid:,..."`;
//! - `disable_monitoring`: `"true"` lists the services without restarting them;
//! - `health_checks_basic_run_interval` / `..._advance_run_interval`: minutes (seconds in the
//!   native section);
//! - `health_checks_config`: per kind, `k=v,k=v;k=v,...` records: `gateways` (`gatewaysIps`,
//!   space-separated), `systemThresholds` (`minDiskNeeded` MiB, `maxMemoryUsage` and
//!   `maxCpuUsage` percent), `virtualMachines` (`vmName`, `macAddress`, `ip` per VM: the
//!   DHCP and DNS checks), `routerVersion` (`templateVersion`, `scriptsVersion`).
//!   `portForwarding` and `haproxyData` are not carried over: the port-forward and haproxy
//!   checks compare the committed state (what the management server pushed, whole) with the
//!   kernel and the running haproxy, which is what those lists restate.
//!
//! Pure. A record value that does not parse leaves its part of the check out (as CloudStack's
//! scripts skip a check whose data is missing) rather than rejecting the push; a service entry
//! the supervisor could not name safely is refused by the section's validation.

use std::collections::BTreeMap;

use vr_model::later_types::MonitorService;
use vr_model::monitor::{
    ExpectedVersion, HealthChecks, Limit, MonitorSection, WatchedService, WatchedVm,
    MAX_INTERVAL_SECS,
};
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

fn vms(recs: &[BTreeMap<String, String>]) -> Vec<WatchedVm> {
    let get = |r: &BTreeMap<String, String>, keys: &[&str]| {
        keys.iter()
            .find_map(|k| r.get(*k))
            .filter(|v| !v.is_empty())
            .cloned()
    };
    recs.iter()
        .filter_map(|r| {
            let name = get(r, &["vmName", "name"])?;
            let ok = name.len() <= 253
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
            Some(WatchedVm {
                ip: get(r, &["ip", "ipAddress"])?.parse().ok()?,
                mac: get(r, &["macAddress", "mac"]).and_then(|m| m.parse().ok()),
                name: ok.then_some(name)?,
            })
        })
        .take(vr_model::monitor::MAX_ITEMS)
        .collect()
}

/// The section a `monitorservice` payload asks for.
pub fn section(m: &MonitorService) -> MonitorSection {
    let flag = |s: &Option<String>| s.as_deref().is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let cfg = m.health_checks_config.clone().unwrap_or_default();
    let all = |kind: &str| cfg.get(kind).map(|t| records(t)).unwrap_or_default();
    let first = |kind: &str| all(kind).into_iter().next().unwrap_or_default();
    let thresholds = first("systemThresholds");
    let num = |k: &str| {
        thresholds
            .get(k)
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|x| x.is_finite() && *x >= 0.0)
            .map(Limit)
    };
    let gateways = first("gateways")
        .get("gatewaysIps")
        .map(|v| {
            v.split([' ', ','])
                .filter_map(|g| g.trim().parse().ok())
                .take(vr_model::monitor::MAX_ITEMS)
                .collect()
        })
        .unwrap_or_default();
    let version = first("routerVersion");
    let version = version
        .get("templateVersion")
        .filter(|t| !t.is_empty())
        .map(|t| ExpectedVersion {
            template: t.clone(),
            scripts: version
                .get("scriptsVersion")
                .filter(|s| !s.is_empty())
                .cloned(),
        });
    let secs = |min: Option<u32>| {
        let min = min.filter(|m| *m > 0).unwrap_or(DEFAULT_INTERVAL_MIN);
        (u64::from(min) * 60).min(MAX_INTERVAL_SECS)
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
        vms: vms(&all("virtualMachines")),
        version,
    });
    MonitorSection {
        services: services(m.config.as_deref().unwrap_or("")),
        supervise: !flag(&m.disable_monitoring),
        health,
    }
}

/// Merges a validated push: the section is replaced whole (each push carries all of it).
pub fn merge(next: &mut DesiredState, m: &MonitorService) {
    next.monitor = section(m);
    // Stored by an agent that did not apply it yet: superseded.
    next.cloudstack.pending.remove("monitorservice");
}

/// A state written by an agent version that stored `monitorservice` as pending: applied now.
/// An entry that no longer reads is left where it was.
pub fn adopt_pending(state: &mut DesiredState) {
    let Some(v) = state
        .cloudstack
        .pending
        .get("monitorservice")
        .and_then(|e| e.get("all"))
    else {
        return;
    };
    if let Ok(m) = serde_json::from_value::<MonitorService>(v.clone()) {
        state.monitor = section(&m);
        state.cloudstack.pending.remove("monitorservice");
    }
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
                "systemThresholds": "minDiskNeeded=100.0,maxCpuUsage=95.0,maxMemoryUsage=90",
                "virtualMachines": "vmName=i-2-10-VM,macAddress=02:00:4c:5a:00:01,ip=10.1.1.23;vmName=bad name,ip=10.1.1.24;",
                "routerVersion": "templateVersion=Cloudstack Release 4.22.0 Thu Oct 30 10:00:00 UTC 2025,scriptsVersion=ab12"
            }
        }))
        .unwrap();
        let s = section(&m);
        assert!(s.supervise);
        assert_eq!(s.services.len(), 2);
        assert_eq!(s.services[0].unit, "ssh");
        assert_eq!(s.services[0].process, "sshd");
        assert_eq!(s.services[0].pid_file.as_deref(), Some("/var/run/sshd.pid"));
        assert_eq!(s.services[1].pid_file, None);
        let h = s.health.clone().unwrap();
        assert_eq!(h.basic_interval_secs, 180);
        assert_eq!(h.advanced_interval_secs, 60);
        assert_eq!(h.excluded, ["router_version_check.py", "dns_check.py"]);
        assert_eq!(h.gateways.len(), 2);
        assert_eq!(h.min_disk_mb, Some(Limit(100.0)));
        assert_eq!(h.max_memory_pct, Some(Limit(90.0)));
        assert_eq!(h.vms.len(), 1, "a name DNS cannot answer is left out");
        assert_eq!(h.vms[0].name, "i-2-10-VM");
        let v = h.version.as_ref().unwrap();
        assert!(v.template.contains(" 4.22.0 ") && v.scripts.as_deref() == Some("ab12"));
        assert!(vr_model::monitor::validate(&s).is_empty());
        // Monitoring disabled: listed, not restarted; checks off: none.
        let m: MonitorService = serde_json::from_value(serde_json::json!({
            "config": "ssh:processname=sshd:servicename=ssh:",
            "disable_monitoring": "true", "health_checks_enabled": false
        }))
        .unwrap();
        let s = section(&m);
        assert!(!s.supervise && s.health.is_none() && s.services.len() == 1);
    }

    #[test]
    fn a_payload_an_older_agent_stored_is_adopted() {
        let raw = serde_json::json!({"config": "[ssh]:processname=sshd:servicename=ssh:pidfile=:,",
            "health_checks_enabled": true, "health_checks_basic_run_interval": 2});
        let mut s = DesiredState::default();
        s.cloudstack
            .pending
            .entry("monitorservice".into())
            .or_default()
            .insert("all".into(), raw);
        adopt_pending(&mut s);
        assert!(s.cloudstack.pending.is_empty());
        assert_eq!(s.monitor.services[0].name, "ssh");
        assert_eq!(s.monitor.health.unwrap().basic_interval_secs, 120);
    }
}
