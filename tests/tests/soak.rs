//! Issue 9 soak: pushes alternating between two states through the agent's socket; RSS and
//! open file descriptors sampled along the way must stay flat. 1,000 pushes by default (each
//! push is two fsyncs and an nft batch: about 40 ms here), 10,000 with `VR_SOAK_FULL=1`.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

use vr_tests::{require_root, AgentProc, Netns};

fn state(port: u16) -> String {
    format!(
        r#"{{"schema":1,"interfaces":[{{"device":"eth0","role":"guest","addresses":["10.1.1.1/24"]}},{{"device":"eth2","role":"public","addresses":["192.0.2.11/24"]}}],
        "nat":{{"port_forwards":[{{"public_ip":"192.0.2.11","protocol":"tcp","public_ports":{port},"private_ip":"10.1.1.10","private_ports":80}}]}}}}"#
    )
}

/// One `apply` over the socket protocol (one JSON line each way).
fn apply(socket: &std::path::Path, name: &str, text: &str) -> serde_json::Value {
    let mut s = UnixStream::connect(socket).expect("agent socket");
    let req = serde_json::json!({"op": "apply", "dry_run": false, "pushes": [{"name": name, "text": text}]});
    s.write_all(format!("{req}\n").as_bytes()).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).unwrap();
    serde_json::from_str(&buf).unwrap()
}

fn sample(pid: u32) -> (u64, usize) {
    let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0);
    (rss, fds)
}

#[test]
fn rss_and_fds_stay_flat_over_thousands_of_pushes() {
    if !require_root("rss_and_fds_stay_flat_over_thousands_of_pushes") {
        return;
    }
    let total: u32 = if std::env::var("VR_SOAK_FULL").is_ok() {
        10_000
    } else {
        2_000
    };
    let every = total / 10;
    let ns = Netns::new("soak");
    for (a, b) in [("eth0", "eth0p"), ("eth2", "eth2p")] {
        ns.ip(&["link", "add", a, "type", "veth", "peer", "name", b]);
        ns.ip(&["link", "set", a, "up"]);
    }
    let mut agent = AgentProc::new(Some(&ns.name));
    agent.start();
    let pid = agent.pid().unwrap();
    let (a, b) = (state(8080), state(8081));
    let t0 = std::time::Instant::now();
    let mut rows = Vec::new();
    for i in 0..total {
        let r = apply(
            &agent.socket,
            &format!("soak-{i}"),
            if i % 2 == 0 { &a } else { &b },
        );
        assert_eq!(r["ok"], true, "push {i}: {r}");
        if (i + 1) % every == 0 {
            let (rss, fds) = sample(pid);
            rows.push((i + 1, rss, fds));
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "soak: {total} pushes in {secs:.1} s ({:.1} ms each)",
        secs * 1000.0 / f64::from(total)
    );
    println!("| pushes | RSS (KiB) | open fds |");
    println!("|---:|---:|---:|");
    for (n, rss, fds) in &rows {
        println!("| {n} | {rss} | {fds} |");
    }
    // After warm-up (the first sample), growth must stay within 8 MiB and fds must not grow.
    let (_, rss_warm, fds_warm) = rows[0];
    let (_, rss_end, fds_end) = *rows.last().unwrap();
    vr_tests::summary::record(vr_tests::summary::Row {
        check: "soak".into(),
        runs: u64::from(total),
        unit: "pushes".into(),
        failures: 0,
        rss_start_kib: Some(rss_warm),
        rss_end_kib: Some(rss_end),
        ..Default::default()
    });
    assert!(
        rss_end <= rss_warm + 8 * 1024,
        "RSS grew from {rss_warm} KiB to {rss_end} KiB"
    );
    // A sample may catch the pipe of an `nft` child or a socket client in flight: +2 at most.
    assert!(
        fds_end <= fds_warm + 2,
        "fds grew from {fds_warm} to {fds_end}"
    );
}
