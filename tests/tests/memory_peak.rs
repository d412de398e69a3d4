//! Issue 12 bounded memory: each large hostile push (16 MiB arrays of integers, 10 MB strings,
//! 100,000 invalid rules, ...) goes to the running agent alone, once through its socket
//! (`vr-agent apply`) and once through its spool; the agent's peak resident set during each
//! (`VmHWM`, reset before every push) stays at or under 64 MiB, also with several clients
//! sending 10 MB pushes at once, and it keeps serving.

use std::time::Duration;

use vr_tests::hostile::{big_cases, peak_rss_kib, reset_peak_rss};
use vr_tests::{require_root, AgentProc, Netns};

const LIMIT_KIB: u64 = 64 * 1024;

/// Socket clients sending a large push at the same time.
const CONCURRENT: usize = 6;

const BASELINE: &str = r#"{"schema":1,
  "interfaces":[{"device":"eth0","role":"guest","addresses":["10.1.1.1/24"]},{"device":"eth2","role":"public","addresses":["192.0.2.10/24","192.0.2.11/24"]}],
  "nat":{"source_nat":[{"device":"eth2","public_ip":"192.0.2.10","source_cidrs":["10.1.1.0/24"]}],
         "port_forwards":[{"public_ip":"192.0.2.11","protocol":"tcp","public_ports":8080,"private_ip":"10.1.1.10","private_ports":80}]}}"#;

/// One `apply` request line carrying the push inline (what the soak test sends).
fn inline_apply(socket: &std::path::Path, name: &str, text: &str) -> serde_json::Value {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(socket).expect("agent socket");
    let req = serde_json::json!({"op": "apply", "dry_run": false, "pushes": [{"name": name, "text": text}]});
    // The agent may refuse (and stop reading) before the line ends: its answer counts.
    let _ = s.write_all(format!("{req}\n").as_bytes());
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    serde_json::from_str(&buf).unwrap_or_default()
}

#[test]
fn peak_rss_stays_under_64_mib_for_every_large_hostile_push() {
    if !require_root("peak_rss_stays_under_64_mib_for_every_large_hostile_push") {
        return;
    }
    let ns = Netns::new("vrmem");
    for (a, b) in [("eth0", "eth0p"), ("eth2", "eth2p")] {
        ns.ip(&["link", "add", a, "type", "veth", "peer", "name", b]);
        ns.ip(&["link", "set", a, "up"]);
    }
    let mut agent = AgentProc::new(Some(&ns.name));
    agent.start();
    let pid = agent.pid().unwrap();
    let (code, r) = agent.apply_text("baseline.json", BASELINE);
    assert_eq!(code, 0, "{r}");
    let state_before = agent.state_json().unwrap();
    let gen_dir = agent.dir.path().join("generated");
    std::fs::create_dir_all(&gen_dir).unwrap();

    let mut rows = Vec::new();
    let mut wrong = Vec::new();
    let mut runs = 0u64;
    for (name, bytes) in big_cases() {
        let file = format!("{name}.json");
        let path = gen_dir.join(&file);
        std::fs::write(&path, &bytes).unwrap();

        assert!(reset_peak_rss(pid), "cannot reset the peak RSS of {pid}");
        let (code, r) = agent.apply(&[path.as_path()]);
        let socket_peak = peak_rss_kib(pid);
        if code != 1 {
            wrong.push(format!("{name} (socket): exit {code}"));
        }
        let _ = r;

        reset_peak_rss(pid);
        agent.spool_push(&file, std::str::from_utf8(&bytes).unwrap_or(""));
        let res = agent.spool_result(&file, Duration::from_secs(60));
        let spool_peak = peak_rss_kib(pid);
        match res {
            Some((false, _)) => {}
            other => wrong.push(format!("{name} (spool): {other:?}")),
        }
        runs += 2;
        rows.push((name, bytes.len(), socket_peak, spool_peak));
        std::fs::remove_file(&path).unwrap();
    }
    // Clients at once: the agent holds one push body at a time, the others wait.
    let (name, bytes) = big_cases()
        .into_iter()
        .find(|(n, _)| n == "string-10mb-device")
        .unwrap();
    let path = gen_dir.join(format!("{name}.json"));
    std::fs::write(&path, &bytes).unwrap();
    reset_peak_rss(pid);
    let codes: Vec<i32> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..CONCURRENT)
            .map(|_| s.spawn(|| agent.apply(&[path.as_path()]).0))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let peak_concurrent = peak_rss_kib(pid);
    if codes.iter().any(|c| *c != 1) {
        wrong.push(format!(
            "{CONCURRENT} concurrent {name}: exit codes {codes:?}"
        ));
    }
    runs += CONCURRENT as u64;
    rows.push((
        format!("{CONCURRENT} x {name} at once"),
        bytes.len(),
        peak_concurrent,
        0,
    ));
    // The older protocol: the push escaped inside one `apply` line (refused over 4 MiB).
    reset_peak_rss(pid);
    let text = String::from_utf8(bytes.clone()).unwrap();
    let r = inline_apply(&agent.socket, &name, &text);
    let peak_inline = peak_rss_kib(pid);
    // Refused whole (over the inline limit) or rejected: either way not applied.
    if r["ok"] != false {
        wrong.push(format!(
            "inline {name}: {}",
            r.to_string().chars().take(300).collect::<String>()
        ));
    }
    runs += 1;
    rows.push((
        format!("{name} inline in an apply line"),
        bytes.len(),
        peak_inline,
        0,
    ));
    assert_eq!(
        agent.state_json().unwrap(),
        state_before,
        "state.json changed"
    );
    println!("| push | bytes | peak RSS via socket (KiB) | peak RSS via spool (KiB) |");
    println!("|---|---:|---:|---:|");
    for (name, len, s, p) in &rows {
        println!("| {name} | {len} | {s} | {p} |");
    }
    let peak = rows.iter().map(|r| r.2.max(r.3)).max().unwrap_or(0);
    let over: Vec<&str> = rows
        .iter()
        .filter(|r| r.2.max(r.3) > LIMIT_KIB)
        .map(|r| r.0.as_str())
        .collect();
    println!(
        "peak RSS over {} large hostile pushes (socket and spool): {} KiB ({} MiB)",
        runs,
        peak,
        peak / 1024
    );
    vr_tests::summary::record(vr_tests::summary::Row {
        check: "peak RSS, large hostile pushes".into(),
        runs,
        unit: "pushes (socket + spool)".into(),
        failures: (wrong.len() + over.len()) as u64,
        rss_end_kib: Some(peak),
        ..Default::default()
    });
    assert!(wrong.is_empty(), "mishandled: {wrong:#?}");
    assert!(
        over.is_empty(),
        "peak RSS over {LIMIT_KIB} KiB for {over:?}"
    );
    let (code, r) = agent.apply_text("after.json", &BASELINE.replace("8080", "8081"));
    assert_eq!(code, 0, "the agent must keep serving: {r}");
}
