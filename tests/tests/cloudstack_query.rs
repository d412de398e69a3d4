//! The query side of the CloudStack command surface, end to end: the `/opt/cloud/bin` front
//! doors (the wrappers the package installs, generated from the same list, calling the test
//! binary) run inside a router namespace against its running agent, with real charons and
//! real traffic. Every answer is parsed with the Java rule that reads it on the management
//! server side (the class is named at each parser) and asserted.
//!
//! One topology (two site-to-site routers on a switch, a host behind each) serves every
//! assertion: netusage -g counting from the push (and across an agent restart, a forward push
//! and a self-heal that re-creates a deleted counting table), checkbatchs2svpn with one peer
//! up and one down, diagnostics ping, monitor results, an alert after a self-heal, a
//! diagnostics zip and its cleanup.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use vr_tests::java_answers;
use vr_tests::vpn_sites::{push, site, topology, tunnel, Site};
use vr_tests::{agent_binary, require_program, require_root, wait_for};

const PSK: &str = "query-test-psk-7f3a";

/// Generates the front doors with `image/cloudstack-wrappers.sh`, pointing at the test binary.
fn front_doors(dir: &Path) -> PathBuf {
    let bin = dir.join("opt-cloud-bin");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let st = std::process::Command::new("bash")
        .arg(repo.join("image/cloudstack-wrappers.sh"))
        .arg(&bin)
        .arg(agent_binary())
        .status()
        .unwrap();
    assert!(st.success());
    bin
}

/// Runs `/opt/cloud/bin/<script> <args>` in the site's router namespace. Only the socket, the
/// config and charon's socket are given: the state directory is the agent's to tell.
fn run(bin: &Path, s: &Site, script: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = std::process::Command::new("ip");
    c.args(["netns", "exec", &s.router.name])
        .arg(bin.join(script))
        .args(args)
        .env("VR_AGENT_SOCKET", &s.agent.socket)
        .env("VR_AGENT_CONFIG", s.agent.dir.path().join("config.toml"))
        .env("VR_AGENT_STATE_DIR", "/nonexistent/ask-the-agent")
        .env(
            "VR_AGENT_VICI_SOCKET",
            s.agent.extra_args.get(1).map(String::as_str).unwrap_or(""),
        );
    for (k, v) in env {
        c.env(k, v);
    }
    let t = Instant::now();
    let out = c.output().unwrap();
    println!(
        "{script} {}: exit {:?} in {} ms",
        args.join(" "),
        out.status.code(),
        t.elapsed().as_millis()
    );
    assert!(
        out.stderr.is_empty(),
        "{script} wrote on stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn network_stats(o: &Output) -> (u64, u64) {
    java_answers::network_stats(o.status.success(), &text(o))
}

fn s2s(o: &Output) -> BTreeMap<String, bool> {
    java_answers::s2s(o.status.success(), &text(o))
}

fn diagnostics(o: &Output) -> (String, String, String) {
    java_answers::diagnostics(&text(o))
}

fn monitor(o: &Output) -> (Vec<String>, serde_json::Value) {
    java_answers::monitor(&text(o))
}

fn alerts(o: &Output) -> (Vec<String>, Option<String>) {
    java_answers::alerts(&text(o))
}

/// Pings from the guest host through the router to the other router's public address:
/// `count` echo requests of `size` bytes of payload each way.
fn traffic(a: &Site, to: &str, count: u32, size: u32) {
    let out = a.host.exec(
        "ping",
        &[
            "-q",
            "-c",
            &count.to_string(),
            "-i",
            "0.05",
            "-s",
            &size.to_string(),
            "-W",
            "1",
            to,
        ],
    );
    let t = String::from_utf8_lossy(&out.stdout);
    assert!(
        t.contains(&format!("{count} received")),
        "guest traffic lost: {t}"
    );
}

#[test]
fn front_doors_answer_as_the_java_parses_from_the_agents_own_state() {
    if !require_root("front_doors_answer_as_the_java_parses_from_the_agents_own_state")
        || !require_program(
            "front_doors_answer_as_the_java_parses_from_the_agents_own_state",
            vr_tests::peers::CHARON,
        )
    {
        return;
    }
    let started = Instant::now();
    let (dir, sw) = topology("vr-cs-query");
    let bin = front_doors(dir.path());
    let mut a = site(&sw, dir.path(), 1, "192.0.2.10", "10.1.0.0/24", true);
    let b = site(&sw, dir.path(), 2, "192.0.2.20", "10.2.0.0/24", true);
    // B waits for A; A initiates to B and to 192.0.2.99, where nobody answers.
    let tb = tunnel(b.public, b.lan, a.public, a.lan, PSK, true, 3600);
    assert_eq!(b.agent.apply_text("b.json", &push(&b, &[tb])).0, 0);
    let ta = tunnel(a.public, a.lan, b.public, b.lan, PSK, false, 3600);
    let silent = tunnel(
        a.public,
        a.lan,
        "192.0.2.99",
        "10.9.0.0/24",
        PSK,
        false,
        3600,
    );
    let a_push = push(&a, &[ta, silent]);
    let (code, res) = a.agent.apply_text("a.json", &a_push);
    assert_eq!(code, 0, "{res}");

    // netusage: the push started counting, so traffic before any call is counted; `-c` is a
    // no-op (the agent owns the table) and `-g` only reads.
    let (count, size) = (20u32, 1000u32);
    // Each echo is size + 8 (ICMP) + 20 (IP) bytes, both ways.
    let least = u64::from(count * (size + 28));
    traffic(&a, b.public, count, size);
    let c = run(&bin, &a, "netusage.sh", &["-c"], &[]);
    assert!(c.status.success() && text(&c).is_empty(), "{}", text(&c));
    let o = run(&bin, &a, "netusage.sh", &["-g"], &[]);
    assert!(
        o.status.success() && !text(&o).contains('\n'),
        "{}",
        text(&o)
    );
    let g1 = network_stats(&o);
    println!("netusage -g: {g1:?} after {least} bytes each way, before any earlier call");
    assert!(g1.0 >= least && g1.1 >= least, "{g1:?}");
    let again = network_stats(&run(&bin, &a, "netusage.sh", &["-g"], &[]));
    assert!(
        again.0 >= g1.0 && again.1 >= g1.1,
        "reset on read: {g1:?} -> {again:?}"
    );
    let per_nic = network_stats(&run(&bin, &a, "netusage.sh", &["-g", "-l", a.public], &[]));
    assert!(per_nic.0 >= g1.0, "-g -l {}: {per_nic:?}", a.public);
    let elsewhere = run(&bin, &a, "netusage.sh", &["-g", "-l", "192.0.2.77"], &[]);
    assert_eq!(network_stats(&elsewhere), (0, 0));
    // The VPC form of the table (golden file) is one the kernel accepts too.
    let vpc_golden =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../nat/src/usage/golden/vr_stats_vpc.nft");
    let check = b
        .router
        .exec("nft", &["-c", "-f", vpc_golden.to_str().unwrap()]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    for noop in [&["-a", "eth9"][..], &["-d", "eth9"], &["-r"]] {
        assert!(run(&bin, &a, "netusage.sh", noop, &[]).status.success());
    }

    // checkbatchs2svpn: B connected, the silent peer not, an IPv6 argument dropped.
    let peers = ["192.0.2.20", "192.0.2.99", "2001:db8::1"];
    let mut last = BTreeMap::new();
    let up = wait_for(Duration::from_secs(20), || {
        last = s2s(&run(&bin, &a, "checkbatchs2svpn.sh", &peers, &[]));
        last.get("192.0.2.20") == Some(&true)
    });
    assert!(up, "B never reported connected: {last:?}");
    assert_eq!(last.get("192.0.2.99"), Some(&false), "{last:?}");
    assert_eq!(last.len(), 2, "{last:?}");
    let t = Instant::now();
    run(&bin, &a, "checkbatchs2svpn.sh", &peers, &[]);
    assert!(t.elapsed() < Duration::from_secs(30));

    // The counters survive an agent restart and a push that changes the NAT table.
    a.agent.stop();
    a.agent.start();
    let after_restart = network_stats(&run(&bin, &a, "netusage.sh", &["-g"], &[]));
    assert!(
        after_restart.0 >= again.0 && after_restart.1 >= again.1,
        "restart: {again:?} -> {after_restart:?}"
    );
    let mut forward: serde_json::Value = serde_json::from_str(&a_push).unwrap();
    forward["nat"]["port_forwards"] = serde_json::json!([{"public_ip": a.public, "protocol": "tcp",
        "public_ports": 2222, "private_ip": "10.1.0.10", "private_ports": 22}]);
    let (code, res) = a.agent.apply_text("forward.json", &forward.to_string());
    assert_eq!(code, 0, "{res}");
    traffic(&a, b.public, count, size);
    let after_push = network_stats(&run(&bin, &a, "netusage.sh", &["-g"], &[]));
    println!("netusage -g: restart {after_restart:?}, push + traffic {after_push:?}");
    assert!(
        after_push.0 >= after_restart.0 + least && after_push.1 >= after_restart.1 + least,
        "push: {after_restart:?} -> {after_push:?}"
    );

    // diagnostics ping: `-c 4` added, the answer split as the Java does.
    let (out, err, rc) = diagnostics(&run(&bin, &a, "diagnostics.py", &["ping", b.public], &[]));
    assert_eq!(rc, "0", "{out} / {err}");
    assert!(out.contains("4 packets transmitted, 4 received"), "{out}");
    let (_, err, rc) = diagnostics(&run(
        &bin,
        &a,
        "diagnostics.py",
        &["ping", b.public, "-c", "1;reboot"],
        &[],
    ));
    assert!(rc == "2" && err.contains("parameter"), "{err}");

    // Monitor results: a fresh run, then the stored one.
    let (failing, results) = monitor(&run(&bin, &a, "getRouterMonitorResults.sh", &["true"], &[]));
    println!("failing checks: {failing:?}");
    let basic = &results["basic"];
    assert_eq!(basic["vr-agent.service"]["success"], "SUCCESS", "{results}");
    assert_eq!(
        basic["strongswan.service"]["success"], "SUCCESS",
        "{results}"
    );
    assert_eq!(
        results["advanced"]["iptables_check.py"]["success"], "SUCCESS",
        "{results}"
    );
    for section in ["basic", "advanced"] {
        for (name, c) in results[section].as_object().unwrap() {
            if name == "lastRun" {
                continue;
            }
            c["lastUpdate"].as_str().unwrap().parse::<i64>().unwrap();
            c["lastRunDuration"]
                .as_str()
                .unwrap()
                .parse::<f64>()
                .unwrap();
            assert!(c["message"].is_string());
        }
    }
    let (_, stored) = monitor(&run(
        &bin,
        &a,
        "getRouterMonitorResults.sh",
        &["false"],
        &[],
    ));
    assert_eq!(stored["basic"]["lastRun"], results["basic"]["lastRun"]);
    let fs = run(&bin, &a, "filesystem_writable_check.py", &[], &[]);
    assert!(fs.status.success(), "{}", text(&fs));
    // A read-only file system (a read-only bind mount in a private mount namespace) fails it.
    let ro = dir.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    let ro_s = ro.to_str().unwrap();
    let fs = std::process::Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c"])
        .arg(format!(
            "mount --bind {ro_s} {ro_s} && mount -o remount,bind,ro {ro_s} && exec {}",
            bin.join("filesystem_writable_check.py").display()
        ))
        .env(
            "VR_AGENT_FS_CHECK_PATHS",
            format!("/nonexistent-root:{ro_s}"),
        )
        .output()
        .unwrap();
    assert_eq!(fs.status.code(), Some(1), "{}", text(&fs));
    assert!(text(&fs).contains("Read-only file system"), "{}", text(&fs));

    // An alert after a self-heal: the NAT table deleted by hand comes back and is reported.
    let before = alerts(&run(
        &bin,
        &a,
        "getRouterAlerts.sh",
        &["1970-01-01", "00:00:00"],
        &[],
    ));
    a.router.exec_ok("nft", &["delete", "table", "ip", "vr"]);
    let mut got = (Vec::new(), None);
    let healed = wait_for(Duration::from_secs(20), || {
        got = alerts(&run(
            &bin,
            &a,
            "getRouterAlerts.sh",
            &["1970-01-01", "00:00:00"],
            &[],
        ));
        got.0.iter().any(|l| l.contains("[nftables]"))
    });
    assert!(healed, "no self-heal alert: {got:?} (before {before:?})");
    let ts = got.1.clone().unwrap();
    assert_eq!(ts.len(), 19, "SimpleDateFormat yyyy-MM-dd HH:mm:ss: {ts}");
    let newer = run(
        &bin,
        &a,
        "getRouterAlerts.sh",
        &ts.split(' ').collect::<Vec<_>>(),
        &[],
    );
    assert_eq!(text(&newer).trim(), "No Alerts");
    let healed_counts = network_stats(&run(&bin, &a, "netusage.sh", &["-g"], &[]));
    assert!(
        healed_counts.0 >= after_push.0,
        "self-heal reset the counters"
    );
    // A deleted vr_stats table is put back by self-heal, without a push, and reported; its
    // counters restart from 0 (the MS takes the lower reading as a reset).
    a.router
        .exec_ok("nft", &["delete", "table", "inet", "vr_stats"]);
    let back = wait_for(Duration::from_secs(20), || {
        got = alerts(&run(
            &bin,
            &a,
            "getRouterAlerts.sh",
            &["1970-01-01", "00:00:00"],
            &[],
        ));
        got.0.iter().any(|l| l.contains("[usage]"))
    });
    assert!(back, "no self-heal alert for vr_stats: {got:?}");
    traffic(&a, b.public, count, size);
    let restarted = network_stats(&run(&bin, &a, "netusage.sh", &["-g"], &[]));
    println!("netusage -g: {healed_counts:?}, vr_stats deleted, healed, traffic: {restarted:?}");
    assert!(
        restarted.0 >= least && restarted.1 >= least && restarted.0 < healed_counts.0,
        "{healed_counts:?} -> {restarted:?}"
    );

    // The diagnostics zip: exactly its path, 0600, the asked files that may leave, no secret.
    let zdir = dir.path().join("root");
    std::fs::create_dir(&zdir).unwrap();
    let zenv = [("VR_AGENT_DIAGNOSTICS_DIR", zdir.to_str().unwrap())];
    let o = run(
        &bin,
        &a,
        "get_diagnostics_files.py",
        &[
            "iptables",
            "ipaddr",
            "/etc/hosts",
            "/etc/shadow",
            "/var/log/nonexistent.log",
        ],
        &zenv,
    );
    assert!(o.status.success());
    let path = text(&o).replace('\n', "");
    let name = Path::new(&path)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(
        path.starts_with(zdir.to_str().unwrap()) && name.starts_with("diagnostics_files_"),
        "{path}"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let listing = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys,zipfile\nz=zipfile.ZipFile(sys.argv[1])\nprint('\\n'.join(z.namelist()))\nprint(z.read('fileinfo.txt').decode())\nsys.stdout.write(str(any(sys.argv[2].encode() in z.read(n) for n in z.namelist())))",
            &path,
            PSK,
        ])
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout).into_owned();
    println!("zip listing:\n{listing}");
    for entry in [
        "iptables",
        "ipaddr",
        "files/etc/hosts",
        "fileinfo.txt",
        "show-state.json",
    ] {
        assert!(
            listing.lines().any(|l| l == entry),
            "{entry} missing: {listing}"
        );
    }
    assert!(
        listing.contains("/etc/shadow: File Not Found!!"),
        "{listing}"
    );
    assert!(listing.contains("/var/log/nonexistent.log: File Not Found!!"));
    assert!(!listing
        .lines()
        .any(|l| l.contains("shadow") && !l.contains("Not Found")));
    assert!(listing.ends_with("False"), "the PSK is in the zip");
    let o = run(&bin, &a, "cleanup.sh", &[&path], &zenv);
    assert!(
        o.status.success() && !Path::new(&path).exists(),
        "{}",
        text(&o)
    );
    let o = run(&bin, &a, "cleanup.sh", &["/etc/hosts"], &zenv);
    assert!(o.status.success() && Path::new("/etc/hosts").exists());

    println!(
        "cloudstack_query: every front door answered in {} s",
        started.elapsed().as_secs()
    );
}
