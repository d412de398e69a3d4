//! `vr-bench`'s end-to-end section (issue 15): the push measured the way the management
//! server sees it, not the nftables concern's own time. A running agent; a CloudStack
//! `forwardrules` push file applied by a `vr-agent apply` process, timed around that process
//! (the CLI runs outside the router's namespace, as the management server's SSH command runs
//! outside the agent); the same push dropped in the spool, timed from write+rename to its
//! result file; `nft -f` of the same ruleset in the same run; boot replay to READY; RSS.
//! The agent logs its push phases (`vr_agent::timing`) at debug level; the section sums them
//! for the 10k "+1 forward" push to show where the time goes.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::{AgentProc, Netns};

/// The interfaces and the source NAT every router of this section starts from (native push).
const BASE: &str = r#"{"schema":1,
    "interfaces":[{"device":"eth0","role":"guest","addresses":["10.1.0.1/16"]},
                  {"device":"eth2","role":"public","addresses":["192.0.2.10/24","192.0.2.11/24"]}],
    "nat":{"source_nat":[{"device":"eth2","public_ip":"192.0.2.10","source_cidrs":["10.1.0.0/16"]}]}}"#;

/// One CloudStack forward rule, numbered.
fn cs_rule(i: u32) -> String {
    format!(
        r#"{{"revoke":false,"protocol":"tcp","source_ip_address":"192.0.2.11","source_port_range":"{p}:{p}","destination_ip_address":"10.1.{}.{}","destination_port_range":"80:80"}}"#,
        10 + i / 250,
        1 + i % 250,
        p = 10_000 + i
    )
}

/// A CloudStack `forwardrules` payload carrying rules `from..to` (CloudStack re-sends the
/// whole list of a network's rules with every change).
pub fn forwardrules(from: u32, to: u32) -> String {
    let rules: Vec<String> = (from..to).map(cs_rule).collect();
    format!(
        r#"{{"type":"forwardrules","delete_from_processed_cache":false,"rules":[{}]}}"#,
        rules.join(",")
    )
}

/// The boot-replay load of issue 15 in the native format: 10,000 port forwards, 1,000 static
/// NATs, 1,000 firewall source CIDRs, `tunnels` passive site-to-site tunnels and `hosts` DHCP
/// hosts.
pub fn boot_state(tunnels: u32, hosts: u32) -> String {
    let pf: Vec<String> = (0..10_000u32)
        .map(|i| {
            format!(
                r#"{{"public_ip":"192.0.2.11","protocol":"tcp","public_ports":{},"private_ip":"10.1.{}.{}","private_ports":80}}"#,
                10_000 + i,
                10 + i / 250,
                1 + i % 250
            )
        })
        .collect();
    let snat: Vec<String> = (0..1000u32)
        .map(|i| {
            format!(
                r#"{{"public_ip":"203.0.{}.{}","private_ip":"10.2.{}.{}"}}"#,
                i / 250,
                1 + i % 250,
                i / 250,
                1 + i % 250
            )
        })
        .collect();
    let cidrs: Vec<String> = (0..1000u32)
        .map(|i| format!(r#""198.{}.{}.0/24""#, 18 + i / 256, i % 256))
        .collect();
    let s2s: Vec<String> = (0..tunnels)
        .map(|i| {
            format!(
                r#"{{"local_public_ip":"192.0.2.10","local_cidrs":["10.1.0.0/16"],"peer_gateway":"198.51.{}.{}","peer_cidrs":["10.{}.{}.0/24"],
                "psk":"bench-psk-{i}","ike_policy":"aes128-sha256;modp2048","esp_policy":"aes128-sha256","passive":true}}"#,
                i / 250,
                1 + i % 250,
                100 + i / 250,
                i % 250
            )
        })
        .collect();
    let dhcp_hosts: Vec<String> = (0..hosts)
        .map(|i| {
            format!(
                r#"{{"mac":"02:00:00:bb:{:02x}:{:02x}","ipv4":"10.1.{}.{}","hostname":"vm{i}"}}"#,
                i / 256,
                i % 256,
                10 + i / 250,
                1 + i % 250
            )
        })
        .collect();
    let dhcp = if hosts > 0 {
        format!(
            r#","dhcp":{{"networks":[{{"device":"eth0","address":"10.1.0.1/16","domain":"bench.test"}}],"hosts":[{}]}}"#,
            dhcp_hosts.join(",")
        )
    } else {
        String::new()
    };
    format!(
        r#"{{"schema":1,
        "interfaces":[{{"device":"eth0","role":"guest","addresses":["10.1.0.1/16"]}},
                      {{"device":"eth2","role":"public","addresses":["192.0.2.10/24","192.0.2.11/24"]}}],
        "nat":{{"source_nat":[{{"device":"eth2","public_ip":"192.0.2.10","source_cidrs":["10.1.0.0/16"]}}],
               "static_nat":[{}],"port_forwards":[{}]}},
        "firewall":{{"ingress":[{{"id":1,"public_ip":"192.0.2.11","protocol":"tcp","ports":"10000-60000","source_cidrs":[{}]}}]}},
        "vpn":{{"site_to_site":[{}]}}{dhcp}}}"#,
        snat.join(","),
        pf.join(","),
        cidrs.join(","),
        s2s.join(",")
    )
}

/// A namespace with the router's two veth NICs, and an agent (not started) that logs its
/// push phases.
fn router(tag: &str) -> (Netns, AgentProc) {
    let ns = Netns::new(tag);
    for (a, b) in [("eth0", "eth0p"), ("eth2", "eth2p")] {
        ns.ip(&["link", "add", a, "type", "veth", "peer", "name", b]);
        ns.ip(&["link", "set", a, "up"]);
        ns.ip(&["link", "set", b, "up"]);
    }
    let mut agent = AgentProc::new(Some(&ns.name));
    agent.run_on_tmpfs();
    agent
        .env
        .push(("RUST_LOG".into(), "info,vr_agent::timing=debug".into()));
    (ns, agent)
}

/// `vr-agent apply --json FILE` of `text` through the running agent, timed around the CLI
/// process (the file is written first, outside the timing). Panics when the push fails.
fn cli_apply(agent: &AgentProc, name: &str, text: &str) -> f64 {
    let file = agent.dir.path().join(name);
    std::fs::write(&file, text).expect("write push");
    let mut cmd: Command = agent.client_command();
    cmd.args(["apply", "--json"]).arg(&file);
    let t = Instant::now();
    let out = cmd.output().expect("run vr-agent apply");
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    assert!(
        out.status.success(),
        "{name}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    ms
}

/// The same push as a spool drop: from write + rename to its result file.
fn spool_apply(agent: &AgentProc, name: &str, text: &str) -> f64 {
    let t = Instant::now();
    agent.spool_push(name, text);
    let (ok, res) = agent
        .spool_result(name, Duration::from_secs(60))
        .expect("spool result");
    assert!(ok, "{name}: {res}");
    t.elapsed().as_secs_f64() * 1000.0
}

fn nft_f(ruleset: &str, file: &Path) -> f64 {
    std::fs::write(file, ruleset).expect("ruleset file");
    let fresh = Netns::new("be2enft");
    let f = file.display().to_string();
    let t = Instant::now();
    fresh.exec_ok("nft", &["-f", &f]);
    t.elapsed().as_secs_f64() * 1000.0
}

/// The phases the agent logged after byte `from` of its log: (phase, concern) -> ms, summed.
fn phases(agent: &AgentProc, from: usize) -> Vec<(String, f64)> {
    let log = agent.log_text();
    let mut out: Vec<(String, f64)> = Vec::new();
    for line in log.get(from..).unwrap_or("").lines() {
        if !line.contains("push phase") {
            continue;
        }
        let field = |k: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(k))
                .unwrap_or("")
                .to_string()
        };
        let (phase, concern) = (field("phase="), field("concern="));
        let ms: f64 = field("ms=").parse().unwrap_or(0.0);
        let key = if concern.is_empty() {
            phase
        } else {
            format!("{phase} {concern}")
        };
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => *v += ms,
            None => out.push((key, ms)),
        }
    }
    out
}

/// Pushes of one kind in a series: the CLI-timed figure of each, and the agent's phases
/// summed over the series. One sample is noise on a shared machine; a row's figure is the
/// median, printed with the range.
#[derive(Default)]
struct Series {
    ms: Vec<f64>,
    phases: Vec<(String, f64)>,
}

impl Series {
    fn median(&self) -> f64 {
        median(&self.ms)
    }

    /// `median (min-max)`, in tenths of a millisecond.
    fn cell(&self) -> String {
        spread(&self.ms, 1)
    }

    /// Mean ms per push of `phase` (0 when not logged).
    fn phase(&self, phase: &str) -> f64 {
        let n = self.ms.len().max(1) as f64;
        self.phases
            .iter()
            .find(|(k, _)| k == phase)
            .map_or(0.0, |(_, ms)| ms / n)
    }

    /// Mean ms per push of all the phases.
    fn phases_total(&self) -> f64 {
        self.phases.iter().map(|(_, ms)| ms).sum::<f64>() / self.ms.len().max(1) as f64
    }
}

/// Pushes per series (each +1 push adds a further forward, each native delta changes the
/// route).
const SAMPLES: u32 = 15;

/// Pushes of the series that waits for the self-heal loop first.
const IDLE_SAMPLES: u32 = 3;

/// Full applies per size (each on a fresh router), and `nft -f` runs of the same ruleset.
const FULL_SAMPLES: usize = 3;

struct Row {
    n: u32,
    /// +1 re-sent, each push 6 s after the previous one.
    idle_plus1: Series,
    full: Vec<f64>,
    nft: Vec<f64>,
    plus1: Series,
    spool_plus1: f64,
    cs_delta: Series,
    native_delta: Series,
}

/// A native push of the routes section alone; `i` picks the gateway, so each one changes it.
fn native_route(i: u32) -> String {
    format!(
        r#"{{"schema":1,"routes":[{{"destination":"10.9.0.0/16","gateway":"10.1.0.{}"}}]}}"#,
        254 - i % 200
    )
}

/// One router per size, all running at once, so that every series goes round the sizes push
/// by push: a ratio between sizes then compares pushes made within milliseconds of each
/// other, not minutes apart on a machine whose speed drifts (a series of one size after the
/// other put one size's pushes in a slow minute: 1.5x for pushes that cost the same).
struct Live {
    n: u32,
    /// Dropped after the agent (fields drop in order): the namespace outlives its agent.
    agent: AgentProc,
    _ns: Netns,
    /// Forwards `0..next` are in the agent's state.
    next: u32,
}

/// Runs `push(router, i)` for `i` in `0..n` round the routers, one [`Series`] per router.
fn series(
    routers: &mut [Live],
    n: u32,
    mut push: impl FnMut(&mut Live, u32) -> f64,
) -> Vec<Series> {
    let marks: Vec<usize> = routers.iter().map(|r| r.agent.log_text().len()).collect();
    let mut ms = vec![Vec::new(); routers.len()];
    for i in 0..n {
        for (k, r) in routers.iter_mut().enumerate() {
            ms[k].push(push(r, i));
        }
    }
    // The last push's "answer" phase is logged after the CLI has its answer, and what it
    // left for after the answer (compaction, release) within the main loop's next tick
    // (250 ms): read now, those phases count in this series, not in the next.
    std::thread::sleep(Duration::from_millis(300));
    routers
        .iter()
        .zip(marks)
        .zip(ms)
        .map(|((r, mark), ms)| Series {
            ms,
            phases: phases(&r.agent, mark),
        })
        .collect()
}

/// `median (min-max)` with `decimals` digits after the point; `-` for no samples.
fn spread(v: &[f64], decimals: usize) -> String {
    if v.is_empty() {
        return "-".into();
    }
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{:.d$} ({lo:.d$}-{hi:.d$})", median(v), d = decimals)
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Measures the end-to-end section and returns its tables as text.
pub fn run(quick: bool) -> String {
    let sizes: &[u32] = if quick {
        &[100, 1000]
    } else {
        &[100, 1000, 10_000]
    };
    // Full applies: each size in turn on a fresh router (an agent holding the base state
    // only), then `nft -f` of the ruleset it made into a fresh namespace; the last round's
    // routers stay up for the series.
    let mut full = vec![Vec::new(); sizes.len()];
    let mut nft = vec![Vec::new(); sizes.len()];
    let mut routers: Vec<Live> = Vec::new();
    for round in 0..FULL_SAMPLES {
        for (k, &n) in sizes.iter().enumerate() {
            let (ns, mut agent) = router("be2e");
            agent.start();
            cli_apply(&agent, "base.json", BASE);
            full[k].push(cli_apply(&agent, "full.json", &forwardrules(0, n)));
            let listing = ns.exec_ok("nft", &["list", "ruleset"]);
            nft[k].push(nft_f(&listing, &agent.dir.path().join("ruleset.nft")));
            if round + 1 == FULL_SAMPLES {
                routers.push(Live {
                    n,
                    agent,
                    _ns: ns,
                    next: n,
                });
            } else {
                agent.stop();
            }
        }
    }
    let plus1 = series(&mut routers, SAMPLES, |r, _| {
        r.next += 1;
        cli_apply(&r.agent, "plus1.json", &forwardrules(0, r.next))
    });
    let spool_plus1: Vec<f64> = routers
        .iter_mut()
        .map(|r| {
            r.next += 1;
            spool_apply(&r.agent, "plus2.json", &forwardrules(0, r.next))
        })
        .collect();
    // Only the change: one new rule each (CloudStack's adapter upserts by rule).
    let cs_delta = series(&mut routers, SAMPLES, |r, _| {
        r.next += 1;
        cli_apply(&r.agent, "delta.json", &forwardrules(r.next - 1, r.next))
    });
    // A native push of one section that does not hold the forwards.
    let native_delta = series(&mut routers, SAMPLES, |r, i| {
        cli_apply(&r.agent, "native.json", &native_route(i))
    });
    std::thread::sleep(Duration::from_millis(500));
    let largest = routers.last().expect("one size at least");
    let rss = largest.agent.rss_kb();
    // The +1 push again, each after the self-heal loop has had its look (every 5 s by
    // default): how a management server, whose pushes come seconds or minutes apart, finds
    // the agent. The series above come back to back, before any such look.
    let idle_plus1 = series(&mut routers, IDLE_SAMPLES, |r, _| {
        if r.n == sizes[0] {
            std::thread::sleep(Duration::from_secs(6));
        }
        r.next += 1;
        cli_apply(&r.agent, "idle.json", &forwardrules(0, r.next))
    });
    // The self-heal pass lists the 10k table (`nft -j`) and reads the listing.
    let idle_peak = routers.last().expect("one size at least").agent.rss_kb().1;
    let mut rows = Vec::new();
    let columns = plus1
        .into_iter()
        .zip(cs_delta)
        .zip(native_delta)
        .zip(idle_plus1)
        .zip(spool_plus1);
    for (k, ((((plus1, cs_delta), native_delta), idle_plus1), spool_plus1)) in columns.enumerate() {
        rows.push(Row {
            n: sizes[k],
            idle_plus1,
            full: std::mem::take(&mut full[k]),
            nft: std::mem::take(&mut nft[k]),
            plus1,
            spool_plus1,
            cs_delta,
            native_delta,
        });
    }
    for r in &mut routers {
        r.agent.stop();
    }
    drop(routers);
    let boot = boot_replay(quick);

    let mut t = String::new();
    let _ = writeln!(t, "\nEnd to end (issue 15): `vr-agent apply` of a CloudStack forwardrules push, timed around the CLI process; series of {SAMPLES} pushes as median (min-max), the sizes' pushes taken in turn; full apply and `nft -f`: median (min-max) of {FULL_SAMPLES}, each on a fresh router or namespace");
    let _ = writeln!(t, "| forwards | full apply (ms) | nft -f same ruleset (ms) | full / nft -f | +1 forward, list re-sent (ms) | same, spool drop to result (ms) | CloudStack push of only the new rule (ms) | native push of one other section (ms) |");
    let _ = writeln!(t, "|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        let _ = writeln!(
            t,
            "| {} | {} | {} | {:.2} | {} | {:.1} | {} | {} |",
            r.n,
            spread(&r.full, 0),
            spread(&r.nft, 0),
            median(&r.full) / median(&r.nft),
            r.plus1.cell(),
            r.spool_plus1,
            r.cs_delta.cell(),
            r.native_delta.cell()
        );
    }
    if let (Some(lo), Some(hi)) = (rows.first(), rows.last()) {
        let _ = writeln!(
            t,
            "\nat {}: full / nft -f = {:.2} (target <= 0.5); +1 re-sent = {:.2}x the time at {} (target <= 2); native delta = {:.2}x (target <= 1.2)",
            hi.n,
            median(&hi.full) / median(&hi.nft),
            hi.plus1.median() / lo.plus1.median(),
            lo.n,
            hi.native_delta.median() / lo.native_delta.median()
        );
        let _ = writeln!(
            t,
            "+1 forward, list re-sent, each 6 s after the previous push (after a self-heal pass), median (min-max) of {IDLE_SAMPLES}: {}",
            rows.iter()
                .map(|r| format!("{}: {} ms", r.n, r.idle_plus1.cell()))
                .collect::<Vec<_>>()
                .join("; ")
        );
        t.push_str(&breakdown(lo, hi));
    }
    let _ = writeln!(
        t,
        "agent RSS at {} forwards, idle: {:.1} MB (target <= 20); peak: {:.1} MB (target <= 40); peak once the pushes 6 s apart and the self-heal passes between them are done: {:.1} MB",
        sizes.last().unwrap(),
        rss.0 as f64 / 1024.0,
        rss.1 as f64 / 1024.0,
        idle_peak as f64 / 1024.0
    );
    t.push_str(&boot);
    t
}

/// Where the time of the two delta targets goes, at the smallest and the largest size: the
/// agent's phases (mean per push), their sum, and the CLI-timed median (the difference is the
/// CLI process, the socket and the push text's way through it).
fn breakdown(lo: &Row, hi: &Row) -> String {
    let cols = [
        (&lo.plus1, format!("+1 re-sent, {}", lo.n)),
        (&hi.plus1, format!("+1 re-sent, {}", hi.n)),
        (&lo.native_delta, format!("native delta, {}", lo.n)),
        (&hi.native_delta, format!("native delta, {}", hi.n)),
    ];
    let mut keys: Vec<&str> = Vec::new();
    for (s, _) in &cols {
        for (k, _) in &s.phases {
            if !keys.contains(&k.as_str()) {
                keys.push(k);
            }
        }
    }
    let mut t = String::new();
    let _ = writeln!(
        t,
        "\nWhere the time goes (vr_agent::timing at debug; ms per push, mean of {SAMPLES}; phases under 0.05 ms everywhere left out)"
    );
    let _ = writeln!(
        t,
        "| phase | {} |",
        cols.iter()
            .map(|(_, h)| h.as_str())
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let _ = writeln!(t, "|---|---:|---:|---:|---:|");
    let row = |t: &mut String, name: &str, f: &dyn Fn(&Series) -> f64| {
        let cells: Vec<String> = cols.iter().map(|(s, _)| format!("{:.2}", f(s))).collect();
        let _ = writeln!(t, "| {name} | {} |", cells.join(" | "));
    };
    for k in keys {
        if cols.iter().all(|(s, _)| s.phase(k) < 0.05) {
            continue;
        }
        row(&mut t, k, &|s| s.phase(k));
    }
    row(&mut t, "**agent phases, sum**", &|s| s.phases_total());
    row(&mut t, "**CLI-timed, median**", &|s| s.median());
    t
}

/// Boot replay to READY: the issue's load is committed by one agent, then a fresh agent in a
/// fresh namespace (an empty kernel, as after a reboot) starts from a copy of that state
/// directory; timed from the spawn of `vr-agent run` until its socket accepts.
fn boot_replay(quick: bool) -> String {
    let charon = Path::new(crate::peers::CHARON).exists();
    let dnsmasq = Path::new("/usr/sbin/dnsmasq").exists();
    let hosts = if dnsmasq && !quick { 5000 } else { 0 };
    let tunnels = if charon { 50 } else { 0 };
    let text = boot_state(tunnels, hosts);
    let keep = tempfile::tempdir().expect("tempdir");
    let start_in = |ns: &mut Netns, agent: &mut AgentProc| -> Option<crate::peers::Charon> {
        let c = charon.then(|| crate::peers::Charon::start(ns, &agent.dir.path().join("charon")));
        if let Some(c) = &c {
            agent.extra_args = vec!["--vici-socket".into(), c.vici_socket.display().to_string()];
        }
        c
    };
    {
        let (mut ns, mut agent) = router("be2eload");
        let _charon = start_in(&mut ns, &mut agent);
        agent.start();
        cli_apply(&agent, "boot.json", &text);
        agent.stop();
        agent.kill_dnsmasq();
        for f in ["state.json", "state.journal", "state.good"] {
            let _ = std::fs::copy(agent.state_dir.join(f), keep.path().join(f));
        }
    }
    let (mut ns, mut agent) = router("be2eboot");
    let _charon = start_in(&mut ns, &mut agent);
    std::fs::create_dir_all(&agent.state_dir).expect("state dir");
    for f in ["state.json", "state.journal", "state.good"] {
        let _ = std::fs::copy(keep.path().join(f), agent.state_dir.join(f));
    }
    let ready = agent.start_to_ready().as_secs_f64() * 1000.0;
    std::thread::sleep(Duration::from_millis(500));
    let (idle, peak) = agent.rss_kb();
    let status = agent.cli(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap_or_default();
    let replay_ok = status["replay"]["ok"].as_bool() == Some(true);
    agent.stop();
    agent.kill_dnsmasq();
    format!(
        "\nBoot replay to READY (10,000 forwards, 1,000 static NATs, 1,000 firewall CIDRs, {tunnels} site-to-site tunnels without IKE{}, {hosts} DHCP hosts{}): {ready:.0} ms (target <= 1000), replay {}; agent RSS after boot, idle {:.1} MB, peak {:.1} MB\n",
        if charon { "" } else { " (charon not installed)" },
        if dnsmasq { "" } else { " (dnsmasq not installed)" },
        if replay_ok { "ok" } else { "NOT ok" },
        idle as f64 / 1024.0,
        peak as f64 / 1024.0,
    )
}
