//! `vr-bench`'s metrics section (issue 20): a router holding 10,000 port forwards (and as
//! many ingress firewall rules, each a series of its own), its
//! `/metrics` scraped from the control network with curl (curl's own `time_total`, so the cost
//! of entering the namespace is not counted); then "+1 forward" pushes timed by the agent
//! (`millis` of the push result) without scrapes and with a scrape loop running against it:
//! the difference is what a scrape costs a push.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::{veth, wait_for, AgentProc, Netns};

const URL: &str = "http://169.254.0.5:9100/metrics";
/// Ingress firewall rules beside the port forwards (at most as many as the forwards).
const FIREWALL_RULES: u32 = 10_000;

fn state(n: u32) -> String {
    let pf: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"public_ip":"192.0.2.11","protocol":"tcp","public_ports":{},"private_ip":"10.1.{}.{}","private_ports":80}}"#,
                10_000 + i,
                10 + i / 250,
                1 + i % 250
            )
        })
        .collect();
    // As many ingress firewall rules (each its own counter, read by the collector too); the
    // "+1 forward" pushes below leave them as they are.
    let fw: Vec<String> = (0..FIREWALL_RULES.min(n))
        .map(|i| {
            format!(
                r#"{{"id":{},"public_ip":"192.0.2.11","protocol":"tcp","ports":"{}"}}"#,
                i + 1,
                10_000 + i
            )
        })
        .collect();
    format!(
        r#"{{"schema":1,
    "interfaces":[{{"device":"eth0","role":"guest","addresses":["10.1.0.1/16"]}},
                  {{"device":"eth1","role":"control","addresses":["169.254.0.5/16"]}},
                  {{"device":"eth2","role":"public","addresses":["192.0.2.10/24","192.0.2.11/24"]}}],
    "nat":{{"source_nat":[{{"device":"eth2","public_ip":"192.0.2.10"}}],"port_forwards":[{}]}},
    "firewall":{{"ingress":[{}]}}}}"#,
        pf.join(","),
        fw.join(",")
    )
}

/// One scrape: (seconds as curl measured it, series of port forwards and of firewall rules in
/// the answer).
fn scrape(ctl: &str) -> Option<(f64, usize, usize)> {
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", ctl, "curl", "-sS", "-f", "--max-time", "5"])
        .args(["-w", "\n%{time_total}\n", URL])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let secs = text.lines().last()?.trim().parse().ok()?;
    let series = text
        .lines()
        .filter(|l| l.starts_with("vr_port_forward_bytes_total{"))
        .count();
    let firewall = text
        .lines()
        .filter(|l| l.starts_with("vr_firewall_rule_bytes_total{"))
        .count();
    Some((secs, series, firewall))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// What the section measured.
#[derive(Debug, Default)]
pub struct Figures {
    pub rules: u32,
    pub firewall_rules: u32,
    pub scrape_ms_median: f64,
    pub scrape_ms_max: f64,
    pub push_ms_quiet: f64,
    pub push_ms_scraped: f64,
}

pub fn run(quick: bool) -> Option<Figures> {
    if !std::path::Path::new("/usr/bin/curl").exists() {
        eprintln!("metrics bench skipped: curl not installed");
        return None;
    }
    let n = if quick { 1000 } else { 10_000 };
    let vr = Netns::new("bmvr");
    let ctl = Netns::new("bmctl");
    let guest = Netns::new("bmg");
    let public = Netns::new("bmp");
    veth(&guest, "lan0", &vr, "eth0");
    veth(&ctl, "c0", &vr, "eth1");
    veth(&public, "wan0", &vr, "eth2");
    ctl.ip(&["addr", "add", "169.254.0.1/16", "dev", "c0"]);
    let mut agent = AgentProc::new(Some(&vr.name));
    agent
        .env
        .push(("VR_AGENT_METRICS_REFRESH_MS".into(), "1000".into()));
    agent
        .env
        .push(("VR_AGENT_OBSERVE_INTERVAL".into(), "0".into()));
    agent.start();
    let (code, r) = agent.apply_text("full.json", &state(n));
    assert_eq!(code, 0, "{r}");
    // The endpoint's default address comes from the replayed state.
    agent.stop();
    agent.start_within(Duration::from_secs(120));
    // The firewall rules and the closing verdict of their chain.
    let fw = FIREWALL_RULES.min(n) as usize + 1;
    let ready = wait_for(Duration::from_secs(60), || {
        scrape(&ctl.name).is_some_and(|(_, s, f)| s == n as usize && f == fw)
    });
    assert!(
        ready,
        "no scrape with {n} port forward and {fw} firewall rule series"
    );
    let times: Vec<f64> = (0..10)
        .filter_map(|_| scrape(&ctl.name))
        .map(|(s, _, _)| s * 1000.0)
        .collect();
    let push_ms = |agent: &AgentProc, k: u32| -> f64 {
        let mut v = Vec::new();
        for i in 0..k {
            let (code, r) = agent.apply_text("plus1.json", &state(n + 1 + (i % 2)));
            assert_eq!(code, 0, "{r}");
            v.push(r[0]["millis"].as_f64().unwrap_or(f64::NAN));
        }
        median(v)
    };
    let quiet = push_ms(&agent, 7);
    let stop = Arc::new(AtomicBool::new(false));
    let scraper = {
        let stop = stop.clone();
        let ctl = ctl.name.clone();
        std::thread::spawn(move || {
            // A scrape every 100 ms: each push below overlaps several (Prometheus itself
            // scrapes every 15 s or so).
            while !stop.load(Ordering::Relaxed) {
                let _ = scrape(&ctl);
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let scraped = push_ms(&agent, 7);
    stop.store(true, Ordering::Relaxed);
    let _ = scraper.join();
    agent.stop();
    Some(Figures {
        rules: n,
        firewall_rules: FIREWALL_RULES.min(n),
        scrape_ms_median: median(times.clone()),
        scrape_ms_max: times.iter().copied().fold(0.0, f64::max),
        push_ms_quiet: quiet,
        push_ms_scraped: scraped,
    })
}

pub fn print(f: &Option<Figures>) -> String {
    let mut s = String::new();
    let Some(f) = f else { return s };
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "| metrics, {} port forwards and {} firewall rules | ms |\n|---|---:|",
        f.rules, f.firewall_rules
    );
    let _ = writeln!(
        s,
        "| one scrape (curl time_total), median / max of 10 | {:.1} / {:.1} |",
        f.scrape_ms_median, f.scrape_ms_max
    );
    let _ = writeln!(
        s,
        "| +1 forward push, no scrape (median of 7) | {:.1} |",
        f.push_ms_quiet
    );
    let _ = writeln!(
        s,
        "| +1 forward push, scrapes running (median of 7) | {:.1} |",
        f.push_ms_scraped
    );
    let _ = writeln!(
        s,
        "| push delay caused by scraping | {:.1} |",
        f.push_ms_scraped - f.push_ms_quiet
    );
    s
}
