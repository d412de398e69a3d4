//! Issue 20 acceptance (metrics, usage, health checks and supervision), one topology: the
//! agent's Prometheus endpoint on its control address, bound when the push brings the control
//! NIC (no restart) and moved when that address changes, scraped from the control network with
//! curl while real traffic crosses a port forward; a revoked forward's series disappears; the
//! endpoint does not answer from the public or the guest side; guest traffic through the
//! public NIC counted by the usage counters within 1%, across an agent restart; a killed
//! dnsmasq is started again by the agent and counted in the metrics and in `status`; the
//! health checks of a `monitorservice` push (basic and advanced) pass and fail on real faults.
//!
//! ```text
//! h1 10.1.0.10 -lan0/eth0- vr -eth2/wan0- ext 192.0.2.2
//!      ctl 169.254.0.1 -c0/eth1-/   192.0.2.10 (port 8080 -> h1:9000)
//! ```

use std::time::{Duration, Instant};

use vr_tests::traffic::{tcp_probe, tcp_server};
use vr_tests::{require_program, require_root, veth, wait_for, AgentProc, Netns};

/// The state with the control NIC at `ctl` and `hosts` (DHCP host objects, comma-led).
fn push_ctl(with_forward: bool, ctl: &str, hosts: &str) -> String {
    let forward = if with_forward {
        r#"{"public_ip":"192.0.2.10","protocol":"tcp","public_ports":8080,"private_ip":"10.1.0.10","private_ports":9000},"#
    } else {
        ""
    };
    format!(
        r#"{{"schema":1,
 "interfaces":[
   {{"device":"eth0","role":"guest","addresses":["10.1.0.1/24"]}},
   {{"device":"eth1","role":"control","addresses":["{ctl}/16"]}},
   {{"device":"eth2","role":"public","addresses":["192.0.2.10/24"],"gateway":"192.0.2.2"}}],
 "nat":{{"source_nat":[{{"device":"eth2","public_ip":"192.0.2.10"}}],
   "port_forwards":[{forward}
     {{"public_ip":"192.0.2.10","protocol":"tcp","public_ports":8081,"private_ip":"10.1.0.10","private_ports":9001}}]}},
 "firewall":{{"ingress":[
   {{"id":1,"public_ip":"192.0.2.10","protocol":"tcp","ports":"8080-8081"}},
   {{"id":2,"public_ip":"192.0.2.10","protocol":"tcp","ports":"80"}}]}},
 "lb":{{"listeners":[{{"public_ip":"192.0.2.10","public_port":80,
   "backends":[{{"ip":"10.1.0.10","port":9000}}]}}]}},
 "dhcp":{{"networks":[{{"device":"eth0","address":"10.1.0.1/24","domain":"m.test"}}],"hosts":[{hosts}]}}}}"#
    )
}

/// A `monitorservice` push: `vms` is CloudStack's `virtualMachines` text, `version` the
/// release line the management server stored.
fn monitor(vms: &str, version: &str) -> String {
    format!(
        r#"{{"type":"monitorservice","config":"[dnsmasq]:processname=dnsmasq:servicename=dnsmasq:pidfile=:,",
 "disable_monitoring":"false","health_checks_enabled":true,"health_checks_basic_run_interval":1,
 "health_checks_advance_run_interval":1,
 "health_checks_config":{{"gateways":"gatewaysIps=192.0.2.2",
   "systemThresholds":"minDiskNeeded=1,maxMemoryUsage=100,maxCpuUsage=100",
   "virtualMachines":"{vms}","routerVersion":"templateVersion=Cloudstack Release {version} Thu Oct 30 10:00:00 UTC 2025"}}}}"#
    )
}

const URL: &str = "http://169.254.0.5:9100/metrics";

fn scrape(ns: &Netns) -> Result<String, String> {
    scrape_at(ns, URL)
}

fn scrape_at(ns: &Netns, url: &str) -> Result<String, String> {
    let out = ns.exec("curl", &["-sS", "--max-time", "2", "-f", url]);
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// The value of the sample whose name and labels start with `series`.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

const FORWARD_BYTES: &str =
    r#"vr_port_forward_bytes_total{public_ip="192.0.2.10",protocol="tcp",ports="8080"}"#;
const DNSMASQ_STARTS: &str = r#"vr_daemon_starts_total{daemon="dnsmasq"}"#;

/// Sends `n` bytes to `addr:port` from `ns` and reads the echo back.
fn send_bytes(ns: &Netns, addr: &str, port: u16, n: usize) {
    let script = format!(
        "import socket\ns=socket.create_connection(('{addr}',{port}),timeout=5)\ns.recv(200)\n\
         s.sendall(b'x'*{n})\ns.shutdown(socket.SHUT_WR)\ngot=0\n\
         while True:\n    b=s.recv(65536)\n    if not b: break\n    got+=len(b)\nprint(got)\n"
    );
    let out = ns.exec("python3", &["-c", &script]);
    assert!(
        out.status.success(),
        "send through {addr}:{port}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Bytes sent through the public NIC as the management server reads them (`netusage.sh -g`:
/// the sum of the even fields).
fn usage_sent(agent: &AgentProc) -> u64 {
    let out = agent.cli(&["cloudstack", "netusage", "-g"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "netusage -g: {text}");
    text.trim()
        .split(':')
        .filter(|f| !f.is_empty())
        .step_by(2)
        .map(|f| f.parse::<u64>().unwrap_or_else(|_| panic!("{text:?}")))
        .sum()
}

/// Sends `n` UDP datagrams of `size` bytes to `dest` from `ns`, paced so that no queue on the
/// way drops one before the router counts it.
fn send_udp(ns: &Netns, dest: &str, n: u64, size: u64) {
    let script = format!(
        "import socket,time\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
         for i in range({n}):\n    s.sendto(b'u'*{size},('{dest}',9))\n    \
         if i%50==49: time.sleep(0.005)\n"
    );
    let out = ns.exec("python3", &["-c", &script]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `counted` is at least `sent` and at most 1% more.
fn within_one_percent(what: &str, counted: u64, sent: u64) {
    let ratio = counted as f64 / sent as f64;
    println!("{what}: counted {counted} bytes for {sent} sent ({ratio:.5})");
    assert!(
        counted >= sent && counted as f64 <= sent as f64 * 1.01,
        "{what}: counted {counted} for {sent} bytes sent"
    );
}

#[test]
fn metrics_endpoint_counts_rules_and_supervises_dnsmasq() {
    let name = "metrics";
    if !require_root(name)
        || !require_program(name, "/usr/sbin/nft")
        || !require_program(name, "/usr/sbin/dnsmasq")
        || !require_program(name, "/usr/bin/curl")
        || !require_program(name, "/usr/sbin/haproxy")
    {
        return;
    }
    let t0 = Instant::now();
    let mut h1 = Netns::new("mh1");
    let vr = Netns::new("mvr");
    let ext = Netns::new("mext");
    let ctl = Netns::new("mctl");
    veth(&h1, "lan0", &vr, "eth0");
    veth(&ctl, "c0", &vr, "eth1");
    veth(&ext, "wan0", &vr, "eth2");
    h1.ip(&["addr", "add", "10.1.0.10/24", "dev", "lan0"]);
    h1.ip(&["route", "add", "default", "via", "10.1.0.1"]);
    ctl.ip(&["addr", "add", "169.254.0.1/16", "dev", "c0"]);
    ext.ip(&["addr", "add", "192.0.2.2/24", "dev", "wan0"]);
    // The public side knows a way to the control address: only the firewall stops it.
    ext.ip(&["route", "add", "169.254.0.0/16", "via", "192.0.2.10"]);
    tcp_server(&mut h1, "10.1.0.10", 9000);
    tcp_server(&mut h1, "10.1.0.10", 9001);

    let mut agent = AgentProc::new(Some(&vr.name));
    agent
        .env
        .push(("VR_AGENT_METRICS_REFRESH_MS".into(), "200".into()));
    agent
        .env
        .push(("VR_AGENT_OBSERVE_INTERVAL".into(), "1".into()));
    // One of CloudStack's (whole) minutes lasts 2 s here.
    agent
        .env
        .push(("VR_AGENT_HEALTH_MINUTE_SECS".into(), "2".into()));
    agent
        .env
        .push(("VR_AGENT_CLOUDSTACK_VERSION".into(), "4.22.0".into()));
    // Started with no state: no control address yet, nothing served.
    agent.start();
    let h1_mac = h1.exec_ok("cat", &["/sys/class/net/lan0/address"]);
    let h1_mac = h1_mac.trim();
    let host = format!(r#","hosts":[{{"mac":"{h1_mac}","ipv4":"10.1.0.10","hostname":"h1"}}]"#);
    let host = host
        .trim_start_matches(r#","hosts":["#)
        .trim_end_matches(']');
    let state = |forward: bool, ctl: &str| push_ctl(forward, ctl, host);
    let (code, r) = agent.apply_text("m.json", &state(true, "169.254.0.5"));
    assert_eq!(code, 0, "{r}");
    // The push brought the control NIC: the endpoint binds there, without a restart.
    let pushed = Instant::now();
    assert!(
        wait_for(Duration::from_secs(10), || scrape(&ctl)
            .is_ok_and(|t| t.contains(FORWARD_BYTES))),
        "no port forward series from {URL}: {:?}\nlog:\n{}",
        scrape(&ctl),
        agent.log_text()
    );
    println!(
        "metrics served {:.2} s after the push that brought the control NIC (no restart)",
        pushed.elapsed().as_secs_f64()
    );
    let text = scrape(&ctl).unwrap();
    for family in [
        "vr_conntrack_entries",
        "vr_conntrack_max",
        "vr_dhcp_leases",
        "vr_agent_resident_memory_bytes",
        "vr_agent_open_fds",
        "vr_replay_seconds",
        "vr_port_forward_packets_total",
    ] {
        assert!(text.contains(family), "{family} missing:\n{text}");
    }

    // Traffic through the forward: the counter rises by at least the bytes sent.
    let before = value(&text, FORWARD_BYTES).unwrap();
    const SENT: usize = 300_000;
    send_bytes(&ext, "192.0.2.10", 8080, SENT);
    let mut after = before;
    wait_for(Duration::from_secs(5), || {
        after = scrape(&ctl)
            .ok()
            .and_then(|t| value(&t, FORWARD_BYTES))
            .unwrap_or(before);
        after - before >= SENT as f64
    });
    println!("port forward bytes: {before} -> {after} after sending {SENT}");
    assert!(after - before >= SENT as f64, "{before} -> {after}");

    // A client that takes gzip (as Prometheus does) gets one gzip member that curl decodes
    // whole: the same families, the snapshot's series and the closing `# EOF`.
    let gz = ctl.exec(
        "curl",
        &[
            "-sS",
            "--max-time",
            "2",
            "-f",
            "-D",
            "-",
            "--compressed",
            URL,
        ],
    );
    let gz = String::from_utf8_lossy(&gz.stdout).into_owned();
    assert!(
        gz.to_ascii_lowercase().contains("content-encoding: gzip"),
        "not gzip'd:\n{gz}"
    );
    assert!(
        gz.ends_with("# EOF\n") && gz.contains(FORWARD_BYTES) && gz.contains("vr_agent_open_fds"),
        "gzip'd exposition not whole:\n{gz}"
    );

    // A push counts in the push metrics.
    let (code, r) = agent.apply_text("m2.json", &state(false, "169.254.0.5"));
    assert_eq!(code, 0, "{r}");
    // The revoked forward's series disappears; the other stays.
    let mut last = String::new();
    let gone = wait_for(Duration::from_secs(5), || {
        last = scrape(&ctl).unwrap_or_default();
        !last.contains(FORWARD_BYTES) && last.contains(r#"ports="8081""#)
    });
    assert!(gone, "revoked series still there:\n{last}");
    assert!(
        value(&last, r#"vr_pushes_total{result="ok"}"#).is_some_and(|v| v >= 1.0),
        "{last}"
    );
    assert!(
        last.contains(r#"vr_concern_apply_seconds_count{concern="rule_stats"}"#),
        "{last}"
    );

    // Not from the public or the guest side (which can reach the router: icmp answers).
    assert!(vr_tests::traffic::ping(&ext, "169.254.0.5", 1), "no route");
    for (ns, side) in [(&ext, "public"), (&h1, "guest")] {
        assert!(
            tcp_probe(ns, "169.254.0.5", 9100, Duration::from_secs(1)).is_err(),
            "metrics answered from the {side} side"
        );
    }

    // The control address changes: the endpoint moves there, and leaves the old one.
    let (code, r) = agent.apply_text("m3.json", &state(false, "169.254.0.7"));
    assert_eq!(code, 0, "{r}");
    const URL7: &str = "http://169.254.0.7:9100/metrics";
    assert!(
        wait_for(Duration::from_secs(10), || scrape_at(&ctl, URL7).is_ok()
            && scrape(&ctl).is_err()),
        "endpoint did not move to {URL7}: new {:?}, old {:?}",
        scrape_at(&ctl, URL7).map(|t| t.len()),
        scrape(&ctl).map(|t| t.len())
    );
    let (code, r) = agent.apply_text("m4.json", &state(false, "169.254.0.5"));
    assert_eq!(code, 0, "{r}");
    assert!(wait_for(Duration::from_secs(10), || scrape(&ctl).is_ok()));

    // Usage: UDP from the guest through source NAT, counted within 1% (IP headers included,
    // as the kernel's counter counts packets), and still counting after an agent restart.
    const DATAGRAMS: u64 = 2000;
    const PAYLOAD: u64 = 1000;
    let on_wire = DATAGRAMS * (PAYLOAD + 28);
    let before = usage_sent(&agent);
    send_udp(&h1, "192.0.2.2", DATAGRAMS, PAYLOAD);
    let mid = usage_sent(&agent);
    within_one_percent("usage, before the restart", mid - before, on_wire);
    agent.stop();
    agent.start();
    let after_restart = usage_sent(&agent);
    assert!(
        after_restart >= mid,
        "the counter went back across the restart: {mid} -> {after_restart}"
    );
    send_udp(&h1, "192.0.2.2", DATAGRAMS, PAYLOAD);
    let end = usage_sent(&agent);
    within_one_percent("usage, across the restart", end - before, 2 * on_wire);
    assert!(wait_for(Duration::from_secs(10), || scrape(&ctl).is_ok()));

    // dnsmasq killed: started again by the agent, counted in the metrics and in status.
    let pid = agent.dnsmasq_pid().expect("dnsmasq running");
    // Counted since this agent process started (it adopted the running dnsmasq).
    let last = scrape(&ctl).unwrap_or_default();
    let starts = value(&last, DNSMASQ_STARTS).unwrap_or(0.0);
    agent.kill_dnsmasq();
    let killed = Instant::now();
    assert!(
        wait_for(Duration::from_secs(10), || agent
            .dnsmasq_pid()
            .is_some_and(|p| p != pid)),
        "dnsmasq not restarted\nlog:\n{}",
        agent.log_text()
    );
    println!(
        "dnsmasq restarted {:.2} s after the kill",
        killed.elapsed().as_secs_f64()
    );
    assert!(
        wait_for(Duration::from_secs(3), || scrape(&ctl)
            .ok()
            .and_then(|t| value(&t, DNSMASQ_STARTS))
            .is_some_and(|v| v >= starts + 1.0)),
        "restart not counted"
    );
    let status = agent.cli(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert!(
        status["daemon_starts"]["dnsmasq"].as_u64() >= Some(1),
        "{status}"
    );

    // Health checks from a monitorservice push, on its intervals (1 minute = 2 s here),
    // first with a VM dnsmasq does not serve and a version this router is not.
    let ghost = "02:00:00:00:00:99";
    let vms = format!(
        "vmName=h1,macAddress={h1_mac},ip=10.1.0.10;vmName=ghost,macAddress={ghost},ip=10.1.0.99;"
    );
    let (code, r) = agent.apply_text("monitor.json", &monitor(&vms, "4.21.0"));
    assert_eq!(code, 0, "{r}");
    // Applied, not "stored, not applied".
    assert!(
        r[0].get("not_yet_applied")
            .is_none_or(|v| v.as_array().is_some_and(|a| a.is_empty()))
            && !r[0]["message"]
                .as_str()
                .unwrap_or("")
                .contains("NOT applied"),
        "{r}"
    );
    let verdict = |name: &str| -> Option<(String, String)> {
        let out = agent.cli(&["check", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        v["checks"].as_array()?.iter().find_map(|c| {
            (c["name"] == name).then(|| {
                (
                    c["verdict"].as_str().unwrap_or("").to_string(),
                    c["detail"].as_str().unwrap_or("").to_string(),
                )
            })
        })
    };
    let is = |name: &str, want: &str| verdict(name).is_some_and(|(v, _)| v == want);
    for name in ["dhcp_check.py", "dns_check.py", "router_version_check.py"] {
        assert!(
            wait_for(Duration::from_secs(10), || is(name, "fail")),
            "{name} did not fail: {:?}\nlog:\n{}",
            verdict(name),
            agent.log_text()
        );
        println!("{name} (ghost VM, version 4.21.0): {:?}", verdict(name));
    }
    assert!(verdict("dns_check.py").unwrap().1.contains("ghost"));
    assert!(verdict("dhcp_check.py").unwrap().1.contains("ghost"));
    // The management server's view: the drop-in script lists them as failing.
    let out = agent.cli(&["cloudstack", "monitor-results", "true"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let failing = text.split("MONITOR RESULTS:").next().unwrap_or("");
    for name in ["dhcp_check.py", "dns_check.py", "router_version_check.py"] {
        assert!(failing.contains(name), "{name} not failing in:\n{text}");
    }
    // Shown in status.
    let status: serde_json::Value =
        serde_json::from_slice(&agent.cli(&["status", "--json"]).stdout).unwrap();
    assert_eq!(
        status["monitor"]["configured"]["services"][0]["name"], "dnsmasq",
        "{status}"
    );
    // The VMs as dnsmasq serves them and this router's version: everything passes.
    let vms = format!("vmName=h1,macAddress={h1_mac},ip=10.1.0.10;");
    let (code, r) = agent.apply_text("monitor2.json", &monitor(&vms, "4.22.0"));
    assert_eq!(code, 0, "{r}");
    for name in [
        "gateways_check.py",
        "disk_space_check.py",
        "memory_usage_check.py",
        "cpu_usage_check.py",
        "router_version_check.py",
        "iptables_check.py",
        "dhcp_check.py",
        "dns_check.py",
        "haproxy_check.py",
        "dnsmasq.service",
    ] {
        assert!(
            wait_for(Duration::from_secs(10), || is(name, "ok")),
            "{name} not ok: {:?}\nlog:\n{}",
            verdict(name),
            agent.log_text()
        );
        println!("{name}: {:?}", verdict(name));
    }
    // haproxy's config edited behind the agent's back: haproxy_check.py fails naming the line.
    let cfg = agent.run_dir.join("haproxy/haproxy.cfg");
    let original = std::fs::read_to_string(&cfg).expect("haproxy.cfg");
    std::fs::write(&cfg, original.replacen("maxconn", "maxconn 1 #", 1)).unwrap();
    assert!(
        wait_for(Duration::from_secs(10), || is("haproxy_check.py", "fail")),
        "haproxy_check.py did not fail: {:?}",
        verdict("haproxy_check.py")
    );
    println!(
        "haproxy_check.py (edited): {:?}",
        verdict("haproxy_check.py")
    );
    std::fs::write(&cfg, original).unwrap();

    // The gateway goes away: the check fails within one interval (plus its pings).
    ext.ip(&["addr", "del", "192.0.2.2/24", "dev", "wan0"]);
    let gone = Instant::now();
    assert!(
        wait_for(Duration::from_secs(10), || verdict("gateways_check.py")
            .is_some_and(|(v, _)| v == "fail")),
        "gateways check did not fail: {:?}\nlog:\n{}",
        verdict("gateways_check.py"),
        agent.log_text()
    );
    let took = gone.elapsed().as_secs_f64();
    println!(
        "gateways_check.py failed {took:.1} s after the gateway left (interval 2 s): {:?}",
        verdict("gateways_check.py")
    );
    assert!(took < 2.0 + 5.0, "{took} s");
    // The drop-in script the management server reads lists it as failing.
    let out = agent.cli(&["cloudstack", "monitor-results", "true"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let failing = text
        .split("MONITOR RESULTS:")
        .next()
        .unwrap_or("")
        .to_string();
    assert!(failing.contains("gateways_check.py"), "{text}");

    let scrape_ms = {
        let t = Instant::now();
        scrape(&ctl).unwrap();
        t.elapsed().as_secs_f64() * 1000.0
    };
    println!(
        "one scrape (curl included) {scrape_ms:.1} ms; test took {:.1} s",
        t0.elapsed().as_secs_f64()
    );
}
