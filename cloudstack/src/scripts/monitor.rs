//! `getRouterMonitorResults.sh [true|false]` (contract §6): `FAILING CHECKS:` (comma-separated
//! names), then `MONITOR RESULTS:` and one JSON object
//! `{"basic": {<name>: {success, lastUpdate, lastRunDuration, message}, "lastRun": {...}},
//! "advanced": {...}}`, as `VRR.parseLinesForHealthChecks` and the MS's Gson read it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `RouterHealthStatus` on the MS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Health {
    Success,
    Failed,
    Warning,
    Unknown,
}

/// One check as the MS stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// An operator-facing name: `<daemon>.service` for a service, else a check name.
    pub name: String,
    /// `basic` (services, resources, gateways) or `advanced` (the agent's own consistency).
    pub basic: bool,
    pub health: Health,
    /// When the check finished, Unix milliseconds.
    pub last_update_ms: u64,
    pub duration_ms: f64,
    pub message: String,
}

/// One run of every check (what is kept in the state directory between fresh runs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub checks: Vec<CheckResult>,
    /// `lastRun` start and end as `YYYY-MM-DD HH:MM:SS.ffffff` (UTC), and its length in ms.
    pub start: String,
    pub end: String,
    pub duration_ms: f64,
}

/// The name CloudStack operators know for one of `vr-agent check`'s lines, and whether it is a
/// basic check. Services are `<name>.service` (the MS lists them as such from `monitor.conf`);
/// resource and gateway checks keep upstream's script names so the MS setting
/// `router.health.checks.failures.to.recreate.vr` keeps working with the names it knows.
pub fn check_name(agent_name: &str) -> (String, bool) {
    let fixed = match agent_name {
        "agent running" => Some(("vr-agent.service", true)),
        "charon reachable" | "vpn reachable" => Some(("strongswan.service", true)),
        "FRR reachable" | "ospf reachable" => Some(("frr.service", true)),
        "dhcp reachable" | "dnsmasq" => Some(("dnsmasq.service", true)),
        "memory" => Some(("memory_usage_check.py", true)),
        "cpu" => Some(("cpu_usage_check.py", true)),
        "gateways" => Some(("gateways_check.py", true)),
        "nftables in sync" => Some(("iptables_check.py", false)),
        "dhcp in sync" => Some(("dhcp_check.py", false)),
        _ => None,
    };
    if let Some((n, b)) = fixed {
        return (n.to_string(), b);
    }
    // The agent's own runs of CloudStack's checks carry their script names already.
    if agent_name.ends_with(".py") || agent_name.ends_with(".service") {
        let basic = !matches!(
            agent_name,
            "dhcp_check.py" | "dns_check.py" | "haproxy_check.py" | "iptables_check.py"
        );
        return (agent_name.to_string(), basic);
    }
    if agent_name.starts_with("disk space") {
        return ("disk_space_check.py".to_string(), true);
    }
    let mut n: String = agent_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    n.push_str("_check");
    (n, false)
}

/// The whole answer, newline-terminated lines.
pub fn render(r: &Report) -> String {
    let failing: Vec<&str> = r
        .checks
        .iter()
        .filter(|c| c.health == Health::Failed)
        .map(|c| c.name.as_str())
        .collect();
    let section = |basic: bool| {
        let mut m = serde_json::Map::new();
        for c in r.checks.iter().filter(|c| c.basic == basic) {
            m.insert(
                c.name.clone(),
                serde_json::json!({
                    "success": c.health,
                    "lastUpdate": c.last_update_ms.to_string(),
                    "lastRunDuration": format!("{:.1}", c.duration_ms),
                    "message": c.message,
                }),
            );
        }
        m.insert(
            "lastRun".into(),
            serde_json::json!({
                "start": r.start,
                "end": r.end,
                "duration": format!("{:.1}", r.duration_ms / 1000.0),
            }),
        );
        serde_json::Value::Object(m)
    };
    let all = serde_json::json!({"basic": section(true), "advanced": section(false)});
    format!(
        "FAILING CHECKS:\n{}\nMONITOR RESULTS:\n{}\n",
        failing.join(","),
        serde_json::to_string(&all).unwrap_or_default()
    )
}

/// The results the MS keeps: check type -> check name -> field -> value (its Gson type
/// `Map<String, Map<String, Map<String,String>>>`).
pub type Parsed = BTreeMap<String, BTreeMap<String, BTreeMap<String, String>>>;

#[cfg(test)]
mod tests {
    use super::*;

    /// Port of `VRR.parseLinesForHealthChecks`: (failing checks, monitor results text).
    fn java_parse(result: &str) -> (Vec<String>, String) {
        let (mut failing, mut results) = (Vec::new(), String::new());
        let (mut reading_failed, mut reading_results) = (false, false);
        for line in result.trim().split('\n') {
            let line = line.trim();
            if line.contains("FAILING CHECKS") {
                (reading_failed, reading_results) = (true, false);
            } else if line.contains("MONITOR RESULTS") {
                (reading_failed, reading_results) = (false, true);
            } else if reading_failed {
                failing.extend(
                    line.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_string),
                );
            } else if reading_results {
                results.push_str(line);
            } else {
                panic!("unexpected line {line:?}");
            }
        }
        (failing, results)
    }

    fn report() -> Report {
        let check = |name: &str, basic, health, message: &str| CheckResult {
            name: name.into(),
            basic,
            health,
            last_update_ms: 1_732_953_600_123,
            duration_ms: 12.5,
            message: message.into(),
        };
        Report {
            checks: vec![
                check("vr-agent.service", true, Health::Success, "pid 7, up 60 s"),
                check(
                    "gateways_check.py",
                    true,
                    Health::Failed,
                    "Unreachable gateways found-\n['10.1.1.254']",
                ),
                check(
                    "iptables_check.py",
                    false,
                    Health::Success,
                    "matches the desired state",
                ),
                check("conntrack_table_usage_check", false, Health::Warning, "80%"),
            ],
            start: "2024-11-30 08:00:00.100000".into(),
            end: "2024-11-30 08:00:52.400000".into(),
            duration_ms: 52_300.0,
        }
    }

    #[test]
    fn golden_and_through_the_java_parse_and_the_ms_gson_shape() {
        let out = render(&report());
        super::super::golden("monitor_results.txt", &out);
        let (failing, json) = java_parse(&out);
        assert_eq!(failing, ["gateways_check.py"]);
        let parsed: Parsed = serde_json::from_str(&json).unwrap();
        let basic = &parsed["basic"];
        for (name, c) in basic.iter().chain(parsed["advanced"].iter()) {
            if name == "lastRun" {
                assert!(c.contains_key("start") && c.contains_key("end"));
                c["duration"].parse::<f64>().unwrap();
                continue;
            }
            // VNAMI.parseHealthCheckResults: valueOf, Long.parseLong, Double.parseDouble.
            assert!(["SUCCESS", "FAILED", "WARNING", "UNKNOWN"].contains(&c["success"].as_str()));
            c["lastUpdate"].parse::<i64>().unwrap();
            c["lastRunDuration"].parse::<f64>().unwrap();
            assert!(c.contains_key("message"));
        }
        assert_eq!(basic["gateways_check.py"]["success"], "FAILED");
        assert_eq!(
            parsed["advanced"]["conntrack_table_usage_check"]["success"],
            "WARNING"
        );
    }

    #[test]
    fn names_operators_know_and_never_a_comma() {
        assert_eq!(
            check_name("agent running"),
            ("vr-agent.service".into(), true)
        );
        assert_eq!(check_name("charon reachable").0, "strongswan.service");
        assert_eq!(
            check_name("disk space for /var/lib/vr-agent").0,
            "disk_space_check.py"
        );
        assert_eq!(
            check_name("nftables in sync"),
            ("iptables_check.py".into(), false)
        );
        let (n, basic) = check_name("site-to-site 10.0.0.1, peer");
        assert!(!basic && !n.contains(',') && !n.contains(' '), "{n}");
        let empty = Report {
            checks: vec![],
            start: "a".into(),
            end: "b".into(),
            duration_ms: 0.0,
        };
        let (failing, json) = java_parse(&render(&empty));
        assert!(failing.is_empty());
        let parsed: Parsed = serde_json::from_str(&json).unwrap();
        assert_eq!(parsed["basic"].len(), 1);
    }
}
