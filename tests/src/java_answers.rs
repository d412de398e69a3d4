//! The management server's parsers of the router scripts' answers, ported from the Java that
//! reads them (each names its class; rules quoted in `cloudstack-contract.md`), shared by the
//! drop-in tests so that every answer is read the way an unmodified CloudStack reads it.

use std::collections::BTreeMap;

/// `LCR.getNetworkStats`: (bytes sent, bytes received); a failed call is 0/0.
pub fn network_stats(success: bool, result: &str) -> (u64, u64) {
    if !success {
        return (0, 0);
    }
    let line = result.lines().next().unwrap_or("");
    let mut split: Vec<&str> = line.split(':').collect();
    while split.len() > 1 && split.last() == Some(&"") {
        split.pop();
    }
    let (mut sent, mut recv) = (0, 0);
    let mut i = 0;
    while i + 1 < split.len() {
        sent += split[i].parse::<u64>().expect("Long.parseLong");
        recv += split[i + 1].parse::<u64>().expect("Long.parseLong");
        i += 2;
    }
    (sent, recv)
}

/// `CheckS2SVpnConnectionsAnswer.parseDetails`: ip -> connected.
pub fn s2s(success: bool, details: &str) -> BTreeMap<String, bool> {
    let mut m = BTreeMap::new();
    if !success {
        return m;
    }
    for line in format!("{details}\n").split('&') {
        let w: Vec<&str> = line.split(':').collect();
        if w.len() != 3 {
            break;
        }
        m.insert(w[0].to_string(), w[1] == "0");
    }
    m
}

/// `DiagnosticsAnswer.getExecutionDetails`: (stdout, stderr, exit code).
pub fn diagnostics(d: &str) -> (String, String, String) {
    let p: Vec<&str> = d.split("&&").collect();
    assert!(
        p.len() >= 3,
        "Unsupported diagnostics command type supplied: {d}"
    );
    (p[0].trim().into(), p[1].trim().into(), p[2].trim().into())
}

/// `VRR.parseLinesForHealthChecks` then the MS's Gson map: (failing, results).
pub fn monitor(details: &str) -> (Vec<String>, serde_json::Value) {
    let (mut failing, mut results) = (Vec::new(), String::new());
    let (mut rf, mut rr) = (false, false);
    for line in details.trim().split('\n') {
        let line = line.trim();
        if line.contains("FAILING CHECKS") {
            (rf, rr) = (true, false);
        } else if line.contains("MONITOR RESULTS") {
            (rf, rr) = (false, true);
        } else if rf {
            failing.extend(
                line.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from),
            );
        } else if rr {
            results.push_str(line);
        }
    }
    (failing, serde_json::from_str(&results).expect("Gson parse"))
}

/// `VRR.execute(GetRouterAlertsCommand)`: (alerts, last timestamp).
pub fn alerts(details: &str) -> (Vec<String>, Option<String>) {
    let d = format!("{details}\n");
    if d.trim() == "No Alerts" {
        return (Vec::new(), None);
    }
    let a: Vec<String> = d
        .trim()
        .split("\\n")
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    let last = a.last().map(|l| l.split(',').next().unwrap().to_string());
    (a, last)
}
