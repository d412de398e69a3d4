//! `vr-bench`'s metrics section (issue 20): a router holding 10,000 port forwards (each its
//! own counter series), its `/metrics` scraped from the control network by an HTTP client in
//! this process (a thread in the control namespace: no process start in the figure).
//!
//! It measures exactly the two targets:
//! - one scrape, request sent to last byte read: median and max of 20 back-to-back scrapes,
//!   target < 100 ms (judged on the max);
//! - the delay a scrape causes a push made during it: one-forward CloudStack `forwardrules`
//!   pushes (the way the management server adds a rule), timed by the agent (`millis` of the
//!   push result) and around the CLI, alternately with no scrape running and with scrapes
//!   running back to back (so a scrape is in flight for the whole push; each push is checked
//!   to have overlapped one), in interleaved rounds so drift hits both alike; the delay is the
//!   difference of the medians, target < 5 ms.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::{veth, wait_for, AgentProc, Netns};

const ADDR: &str = "169.254.0.5:9100";
const SCRAPE_TARGET_MS: f64 = 100.0;
const DELAY_TARGET_MS: f64 = 5.0;
/// Rounds of (quiet pushes, scraped pushes), and pushes of each kind per round.
const ROUNDS: usize = 4;
const PER_ROUND: usize = 4;

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
    format!(
        r#"{{"schema":1,
    "interfaces":[{{"device":"eth0","role":"guest","addresses":["10.1.0.1/16"]}},
                  {{"device":"eth1","role":"control","addresses":["169.254.0.5/16"]}},
                  {{"device":"eth2","role":"public","addresses":["192.0.2.10/24","192.0.2.11/24"]}}],
    "nat":{{"source_nat":[{{"device":"eth2","public_ip":"192.0.2.10"}}],"port_forwards":[{}]}}}}"#,
        pf.join(",")
    )
}

/// One forward added (`revoke` false) or revoked, as CloudStack pushes a rule change.
fn one_forward(revoke: bool) -> String {
    format!(
        r#"{{"type":"forwardrules","delete_from_processed_cache":false,"rules":[{{"revoke":{revoke},"protocol":"tcp","source_ip_address":"192.0.2.11","source_port_range":"9999:9999","destination_ip_address":"10.1.0.99","destination_port_range":"80:80"}}]}}"#
    )
}

/// Enters `ns` on the calling thread (setns): the scraper thread lives in the control network.
fn enter(ns: &str) {
    let f = std::fs::File::open(format!("/run/netns/{ns}")).expect("netns file");
    // SAFETY: setns on a valid namespace fd, for the calling thread only; CLONE_NEWNET.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns {ns}");
}

/// One scrape: (milliseconds from connect to the last byte, port forward series), or `None`.
fn scrape() -> Option<(f64, usize)> {
    let t = Instant::now();
    let mut s = TcpStream::connect_timeout(&ADDR.parse().ok()?, Duration::from_secs(5)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: vr\r\n\r\n")
        .ok()?;
    let mut body = Vec::new();
    s.read_to_end(&mut body).ok()?;
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    let text = String::from_utf8_lossy(&body);
    if !text.starts_with("HTTP/1.") || !text.contains(" 200 ") {
        return None;
    }
    let series = text
        .lines()
        .filter(|l| l.starts_with("vr_port_forward_bytes_total{"))
        .count();
    Some((ms, series))
}

/// Runs `f` on a thread inside `ns` and returns its result.
fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let ns = ns.to_string();
    std::thread::spawn(move || {
        enter(&ns);
        f()
    })
    .join()
    .expect("scraper thread")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// What the section measured.
#[derive(Debug, Default)]
pub struct Figures {
    pub rules: u32,
    pub scrape_ms_median: f64,
    pub scrape_ms_max: f64,
    /// Agent-measured push time (`millis`), medians.
    pub push_ms_quiet: f64,
    pub push_ms_scraped: f64,
    /// Around the CLI (the management server's view), medians.
    pub wall_ms_quiet: f64,
    pub wall_ms_scraped: f64,
    pub pushes: usize,
    /// Scraped pushes that overlapped a scrape in flight.
    pub overlapped: usize,
    pub scrapes_during: usize,
}

pub fn run(quick: bool) -> Option<Figures> {
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
    // The push brings the control NIC: the endpoint binds there (no restart).
    let (code, r) = agent.apply_text("full.json", &state(n));
    assert_eq!(code, 0, "{r}");
    let ctl_name = ctl.name.clone();
    let ready = wait_for(Duration::from_secs(60), || {
        in_ns(&ctl_name, scrape).is_some_and(|(_, s)| s == n as usize)
    });
    assert!(ready, "no scrape with {n} port forward series");
    let times: Vec<f64> = in_ns(&ctl.name, || {
        (0..20).filter_map(|_| scrape()).map(|(ms, _)| ms).collect()
    });
    assert_eq!(times.len(), 20, "a scrape failed");

    let push = |agent: &AgentProc, k: usize| -> (f64, f64, Instant, Instant) {
        let t0 = Instant::now();
        let (code, r) = agent.apply_text("one.json", &one_forward(k % 2 == 1));
        let t1 = Instant::now();
        assert_eq!(code, 0, "{r}");
        let ms = r[0]["millis"].as_f64().unwrap_or(f64::NAN);
        (ms, (t1 - t0).as_secs_f64() * 1000.0, t0, t1)
    };
    let (mut quiet, mut scraped, mut wall_q, mut wall_s) = (vec![], vec![], vec![], vec![]);
    let (mut overlapped, mut during, mut k) = (0, 0, 0);
    for _ in 0..ROUNDS {
        for _ in 0..PER_ROUND {
            let (ms, wall, _, _) = push(&agent, k);
            k += 1;
            quiet.push(ms);
            wall_q.push(wall);
        }
        // Scrapes back to back: one is in flight whenever a push runs.
        let stop = Arc::new(AtomicBool::new(false));
        let spans = Arc::new(Mutex::new(Vec::<(Instant, Instant)>::new()));
        let scraper = {
            let (stop, spans, ns) = (stop.clone(), spans.clone(), ctl.name.clone());
            std::thread::spawn(move || {
                enter(&ns);
                while !stop.load(Ordering::Relaxed) {
                    let t0 = Instant::now();
                    if scrape().is_some() {
                        spans.lock().unwrap().push((t0, Instant::now()));
                    }
                }
            })
        };
        std::thread::sleep(Duration::from_millis(50));
        let mut runs = Vec::new();
        for _ in 0..PER_ROUND {
            let (ms, wall, t0, t1) = push(&agent, k);
            k += 1;
            scraped.push(ms);
            wall_s.push(wall);
            runs.push((t0, t1));
        }
        stop.store(true, Ordering::Relaxed);
        let _ = scraper.join();
        let spans = spans.lock().unwrap();
        during += spans.len();
        overlapped += runs
            .iter()
            .filter(|(a, b)| spans.iter().any(|(s, e)| s < b && e > a))
            .count();
    }
    agent.stop();
    Some(Figures {
        rules: n,
        scrape_ms_median: median(times.clone()),
        scrape_ms_max: times.iter().copied().fold(0.0, f64::max),
        push_ms_quiet: median(quiet),
        push_ms_scraped: median(scraped),
        wall_ms_quiet: median(wall_q),
        wall_ms_scraped: median(wall_s),
        pushes: ROUNDS * PER_ROUND,
        overlapped,
        scrapes_during: during,
    })
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

pub fn print(f: &Option<Figures>) -> String {
    let mut s = String::new();
    let Some(f) = f else { return s };
    let delay = f.push_ms_scraped - f.push_ms_quiet;
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "| metrics, {} port forwards | measured | target | |\n|---|---:|---:|---|",
        f.rules
    );
    let _ = writeln!(
        s,
        "| one scrape (connect to last byte, from the control network), median / max of 20 | {:.1} / {:.1} ms | < {SCRAPE_TARGET_MS} ms | {} |",
        f.scrape_ms_median,
        f.scrape_ms_max,
        verdict(f.scrape_ms_max < SCRAPE_TARGET_MS)
    );
    let _ = writeln!(
        s,
        "| one-forward `forwardrules` push, no scrape (agent `millis`, median of {}; around the CLI {:.1} ms) | {:.1} ms | | |",
        f.pushes, f.wall_ms_quiet, f.push_ms_quiet
    );
    let _ = writeln!(
        s,
        "| same push during a scrape ({} of {} overlapped one; {} scrapes ran; around the CLI {:.1} ms) | {:.1} ms | | |",
        f.overlapped, f.pushes, f.scrapes_during, f.wall_ms_scraped, f.push_ms_scraped
    );
    let _ = writeln!(
        s,
        "| push delay caused by a scrape (difference of the medians) | {delay:.1} ms | < {DELAY_TARGET_MS} ms | {} |",
        verdict(delay < DELAY_TARGET_MS && f.overlapped == f.pushes)
    );
    s
}
