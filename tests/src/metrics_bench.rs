//! `vr-bench`'s metrics section (issue 20): a router holding 10,000 port forwards and as many
//! ingress firewall rules (each its own counter series), its `/metrics` scraped from the control network by an HTTP client in
//! this process (a thread in the control namespace: no process start in the figure).
//!
//! The client asks as Prometheus does (`Accept-Encoding: gzip`) and parses nothing while it
//! is timed: a Prometheus server decodes and parses on its own machine, not on the router's two
//! cores. The size of an answer with and without gzip is printed beside.
//!
//! It measures exactly the two targets:
//! - one scrape, request sent to last byte read: median and max of 20 back-to-back scrapes,
//!   target < 100 ms (judged on the max);
//! - the delay a scrape causes a push made during it: one-forward CloudStack `forwardrules`
//!   pushes (the way the management server adds a rule), timed by the agent (`millis` of the
//!   push result) and around the CLI. Each quiet push is followed by one during which one
//!   scrape runs: it starts at an offset spread over the agent's apply and must end before the
//!   push does (checked); adjacent pushes see the same load from the rest of the machine, and
//!   the delay is the median of the pairs' differences, target < 5 ms. A third kind, pushes under scrapes back to back
//!   (a scrape always in flight, ~80 a second), is printed as the worst case, without target.

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
/// Pairs of (quiet push, push during a scrape): many, because other work on the machine
/// moves a push by tens of ms either way and the target is 5 ms.
const PAIRS: usize = 48;
/// Scrapes whose CPU time is measured.
const CPU_SCRAPES: usize = 200;
/// Pushes under scrapes back to back (the worst case).
const FLOODED: usize = 8;
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
    // one-forward pushes below leave them as they are.
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

/// One forward added (`revoke` false) or revoked, as CloudStack pushes a rule change (push
/// `k` adds when even, revokes when odd, so the state alternates).
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

/// One request as Prometheus makes it (`Accept-Encoding: gzip`): (milliseconds from connect
/// to the last byte, the raw answer), or `None` if it was not a 200. Nothing is parsed: the
/// scraping server parses on its own machine, so that CPU is not the router's.
fn fetch() -> Option<(f64, Vec<u8>)> {
    fetch_as("Accept-Encoding: gzip\r\n")
}

/// The same request with the given extra header lines.
fn fetch_as(headers: &str) -> Option<(f64, Vec<u8>)> {
    let t = Instant::now();
    let mut s = TcpStream::connect_timeout(&ADDR.parse().ok()?, Duration::from_secs(5)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(format!("GET /metrics HTTP/1.0\r\nHost: vr\r\n{headers}\r\n").as_bytes())
        .ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    // `HTTP/1.x 200 `: hyper answers in the request's version.
    (raw.starts_with(b"HTTP/1.") && raw.get(8..13) == Some(b" 200 ")).then_some((ms, raw))
}

/// The text of an answer (its gzip'd body decoded), if whole.
fn text(raw: &[u8]) -> Option<String> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let body = &raw[split + 4..];
    let mut text = String::new();
    if head.contains("content-encoding: gzip") {
        flate2::read::GzDecoder::new(body)
            .read_to_string(&mut text)
            .ok()?;
    } else {
        text = String::from_utf8_lossy(body).into_owned();
    }
    text.ends_with("# EOF\n").then_some(text)
}

/// The port forward and firewall rule series of an answer.
fn series(raw: &[u8]) -> Option<(usize, usize)> {
    let text = text(raw)?;
    let count = |p: &str| text.lines().filter(|l| l.starts_with(p)).count();
    Some((
        count("vr_port_forward_bytes_total{"),
        count("vr_firewall_rule_bytes_total{"),
    ))
}

/// One scrape: (milliseconds from connect to the last byte, port forward series, firewall
/// rule series), or `None`. The series are counted after the timing.
fn scrape() -> Option<(f64, usize, usize)> {
    let (ms, raw) = fetch()?;
    let (forwards, firewall) = series(&raw)?;
    Some((ms, forwards, firewall))
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

/// utime + stime of `pid`, in ms (clock ticks of 10 ms).
fn cpu_ms(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at state, field 3.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    // utime and stime are fields 14 and 15: the numbers after the state letter start at field
    // 4, so indexes 10 and 11.
    (f.get(10).copied().unwrap_or(0.0) + f.get(11).copied().unwrap_or(0.0)) * 10.0
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
    /// Bytes of one answer, gzip'd (as Prometheus asks) and not.
    pub bytes_gzip: usize,
    pub bytes_identity: usize,
    /// The collector's last read of the system (`vr_metrics_read_seconds`).
    pub collector_read_s: f64,
    /// One scrape without gzip, median of 20.
    pub scrape_ms_identity: f64,
    /// Agent-measured push time (`millis`), medians.
    pub push_ms_quiet: f64,
    pub push_ms_scraped: f64,
    /// Around the CLI (the management server's view), medians.
    pub wall_ms_quiet: f64,
    pub wall_ms_scraped: f64,
    pub pushes: usize,
    /// Scraped pushes whose scrape ran inside the agent's apply.
    pub overlapped: usize,
    /// Scrapes back to back during the worst-case pushes.
    pub scrapes_during: usize,
    pub push_ms_flooded: f64,
    pub flooded: usize,
    /// Median of (push during a scrape - the quiet push before it).
    pub delay_ms: f64,
    /// The agent's CPU time per scrape, over idle.
    pub cpu_ms_per_scrape: f64,
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
        .push(("VR_AGENT_METRICS_REFRESH_MS".into(), "5000".into()));
    agent
        .env
        .push(("VR_AGENT_OBSERVE_INTERVAL".into(), "0".into()));
    agent.start();
    // The push brings the control NIC: the endpoint binds there (no restart).
    let (code, r) = agent.apply_text("full.json", &state(n));
    assert_eq!(code, 0, "{r}");
    let ctl_name = ctl.name.clone();
    // The firewall rules and the closing verdict of their chain.
    let fw = FIREWALL_RULES.min(n) as usize + 1;
    let ready = wait_for(Duration::from_secs(60), || {
        in_ns(&ctl_name, scrape).is_some_and(|(_, s, f)| s == n as usize && f == fw)
    });
    assert!(
        ready,
        "no scrape with {n} port forward and {fw} firewall rule series"
    );
    let times: Vec<f64> = in_ns(&ctl.name, || {
        (0..20)
            .filter_map(|_| scrape())
            .map(|(ms, _, _)| ms)
            .collect()
    });
    assert_eq!(times.len(), 20, "a scrape failed");
    let identity: Vec<(f64, usize)> = in_ns(&ctl.name, || {
        (0..20)
            .filter_map(|_| fetch_as(""))
            .map(|(ms, raw)| (ms, raw.len()))
            .collect()
    });
    assert_eq!(identity.len(), 20, "a scrape without gzip failed");
    let (bytes_gzip, collector_read_s) =
        in_ns(&ctl.name, fetch).map_or((0, f64::NAN), |(_, raw)| {
            let read = text(&raw)
                .and_then(|t| {
                    t.lines()
                        .find_map(|l| l.strip_prefix("vr_metrics_read_seconds "))
                        .and_then(|v| v.trim().parse().ok())
                })
                .unwrap_or(f64::NAN);
            (raw.len(), read)
        });
    // The agent's CPU time per scrape (over idle for as long): what a scrape can take from a
    // push at most, since the push loop waits for nothing a scrape holds.
    let pid = agent.pid().expect("agent pid");
    let t = Instant::now();
    let c0 = cpu_ms(pid);
    let ok = in_ns(&ctl.name, || {
        (0..CPU_SCRAPES).filter(|_| fetch().is_some()).count()
    });
    let (busy, took) = (cpu_ms(pid) - c0, t.elapsed());
    let c1 = cpu_ms(pid);
    std::thread::sleep(took);
    let idle = cpu_ms(pid) - c1;
    assert_eq!(ok, CPU_SCRAPES, "a scrape failed");
    let cpu_per_scrape = (busy - idle).max(0.0) / CPU_SCRAPES as f64;

    let push = |agent: &AgentProc, k: usize| -> (f64, f64, Instant, Instant) {
        let t0 = Instant::now();
        let (code, r) = agent.apply_text("one.json", &one_forward(k % 2 == 1));
        let t1 = Instant::now();
        assert_eq!(code, 0, "{r}");
        let ms = r[0]["millis"].as_f64().unwrap_or(f64::NAN);
        (ms, (t1 - t0).as_secs_f64() * 1000.0, t0, t1)
    };
    let (mut quiet, mut scraped, mut wall_q, mut wall_s) = (vec![], vec![], vec![], vec![]);
    let (mut flooded, mut overlapped, mut during, mut k) = (vec![], 0, 0, 0);
    // The CLI's own start before the agent applies (median of a few quiet pushes; an even
    // number, so the forward is revoked again after them).
    let overhead = {
        let v: Vec<f64> = (0..4)
            .map(|_| {
                let (ms, wall, _, _) = push(&agent, k);
                k += 1;
                wall - ms
            })
            .collect();
        median(v)
    };
    let agent = Arc::new(agent);
    // Pairs: a quiet push, then the same push with one scrape inside its apply, started at an
    // offset spread over the apply and required to end before the push does. Adjacent pairs
    // see the same load from the rest of the machine; the delay is the median of the pairs'
    // differences.
    let mut delays = Vec::new();
    // Adding and revoking cost differently: each op is paired with itself (add quiet, revoke
    // quiet, add scraped, revoke scraped).
    for i in 0..PAIRS / 2 {
        let mut q = [0.0; 2];
        for (op, slot) in q.iter_mut().enumerate() {
            let (ms, wall, _, _) = push(&agent, op);
            *slot = ms;
            quiet.push(ms);
            wall_q.push(wall);
        }
        for (op, quiet_ms) in q.into_iter().enumerate() {
            let frac = (2 * i + op) as f64 / PAIRS as f64;
            let offset = overhead + quiet_ms * (0.1 + 0.6 * frac);
            let a = agent.clone();
            let pusher = std::thread::spawn(move || push(&a, op));
            let span = in_ns(&ctl.name, move || {
                std::thread::sleep(Duration::from_secs_f64(offset / 1000.0));
                let t0 = Instant::now();
                fetch().map(|_| (t0, Instant::now()))
            });
            let (sms, swall, t0, t1) = pusher.join().expect("push thread");
            scraped.push(sms);
            wall_s.push(swall);
            // Only pairs whose scrape ran inside the apply count.
            let apply_from = t0 + Duration::from_secs_f64(overhead / 1000.0);
            if span.is_some_and(|(s, e)| s >= apply_from && e <= t1) {
                overlapped += 1;
                delays.push(sms - quiet_ms);
            }
        }
    }
    // Worst case: scrapes back to back during the pushes.
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(Mutex::new(0usize));
    let scraper = {
        let (stop, count, ns) = (stop.clone(), count.clone(), ctl.name.clone());
        std::thread::spawn(move || {
            enter(&ns);
            while !stop.load(Ordering::Relaxed) {
                if fetch().is_some() {
                    *count.lock().unwrap() += 1;
                }
            }
        })
    };
    std::thread::sleep(Duration::from_millis(50));
    for _ in 0..FLOODED {
        let (ms, _, _, _) = push(&agent, k);
        k += 1;
        flooded.push(ms);
    }
    stop.store(true, Ordering::Relaxed);
    let _ = scraper.join();
    during += *count.lock().unwrap();
    let Ok(mut agent) = Arc::try_unwrap(agent) else {
        panic!("agent still shared");
    };
    agent.stop();
    Some(Figures {
        rules: n,
        firewall_rules: FIREWALL_RULES.min(n),
        scrape_ms_median: median(times.clone()),
        scrape_ms_max: times.iter().copied().fold(0.0, f64::max),
        bytes_gzip,
        bytes_identity: identity[0].1,
        collector_read_s,
        scrape_ms_identity: median(identity.iter().map(|x| x.0).collect()),
        push_ms_quiet: median(quiet),
        push_ms_scraped: median(scraped),
        wall_ms_quiet: median(wall_q),
        wall_ms_scraped: median(wall_s),
        pushes: PAIRS,
        delay_ms: median(delays),
        cpu_ms_per_scrape: cpu_per_scrape,
        overlapped,
        scrapes_during: during,
        push_ms_flooded: median(flooded),
        flooded: FLOODED,
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
    let delay = f.delay_ms;
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "| metrics, {} port forwards and {} firewall rules | measured | target | |\n|---|---:|---:|---|",
        f.rules, f.firewall_rules
    );
    let _ = writeln!(
        s,
        "| one scrape (gzip, connect to last byte, from the control network), median / max of 20 | {:.1} / {:.1} ms | < {SCRAPE_TARGET_MS} ms | {} |",
        f.scrape_ms_median,
        f.scrape_ms_max,
        verdict(f.scrape_ms_max < SCRAPE_TARGET_MS)
    );
    let _ = writeln!(
        s,
        "| one answer gzip'd (`Accept-Encoding: gzip`, as Prometheus asks) / not (median of 20 without: {:.1} ms) | {:.0} / {:.0} KiB | | |",
        f.scrape_ms_identity,
        f.bytes_gzip as f64 / 1024.0,
        f.bytes_identity as f64 / 1024.0
    );
    let _ = writeln!(
        s,
        "| the collector's read of the system every 5 s, off the push loop (`vr_metrics_read_seconds`: netlink dumps of the counters, daemons) | {:.1} ms | | |",
        f.collector_read_s * 1000.0
    );
    let _ = writeln!(
        s,
        "| one-forward `forwardrules` push, no scrape (agent `millis`, median of {}; around the CLI {:.1} ms) | {:.1} ms | | |",
        f.pushes, f.wall_ms_quiet, f.push_ms_quiet
    );
    let _ = writeln!(
        s,
        "| same push with one scrape inside its apply ({} of {} checked inside; around the CLI {:.1} ms), median | {:.1} ms | | |",
        f.overlapped, f.pushes, f.wall_ms_scraped, f.push_ms_scraped
    );
    let _ = writeln!(
        s,
        "| agent CPU time per scrape (over idle, {CPU_SCRAPES} scrapes): the most a scrape can take from a push | {:.2} ms | < {DELAY_TARGET_MS} ms | {} |",
        f.cpu_ms_per_scrape,
        verdict(f.cpu_ms_per_scrape < DELAY_TARGET_MS)
    );
    let _ = writeln!(
        s,
        "| worst case, scrapes back to back ({} scrapes over {} pushes), median | {:.1} ms | | |",
        f.scrapes_during, f.flooded, f.push_ms_flooded
    );
    let _ = writeln!(
        s,
        "| push delay caused by a scrape (median of the {} pairs' differences) | {delay:.1} ms | < {DELAY_TARGET_MS} ms | {} |",
        f.overlapped,
        verdict(delay < DELAY_TARGET_MS && f.overlapped * 2 >= f.pushes)
    );
    s
}
