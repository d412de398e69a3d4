//! Issue 17 acceptance (load balancing): the agent's own haproxy (master-worker) between a
//! client and two backend hosts running small HTTP servers. Round robin and source balancing
//! are observed at the client; a stopped backend is taken out by its health check and put back
//! when it returns; lb-cookie stickiness keeps a client on one backend; TLS is offloaded with
//! the pushed certificate (`curl --cacert`); `vr-agent show lb --json` reports it all; a config
//! haproxy rejects (native, and CloudStack's lines) is refused naming the rule while the
//! running haproxy keeps serving; under continuous load (>= 2,000 short connections) 20 pushes
//! that each change the config fail 0 connections (printed with the reload times), beside a
//! plain restart baseline; removing a backend drains it first; a killed haproxy is respawned.
//!
//! ```text
//! cl eth0 198.51.100.10-13/24 -- pub0 198.51.100.1/24  vr  b1 10.1.1.1/24 -- eth0 10.1.1.11 be1
//!                                                          b2 10.1.2.1/24 -- eth0 10.1.2.12 be2
//! ```

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use vr_tests::{require_program, require_root, veth, wait_for, AgentProc, Netns};

const PY: &str = "/usr/bin/python3";
const VIP: &str = "198.51.100.1";

const BACKEND: &str = r#"
import http.server, sys
name = sys.argv[1]
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    def do_GET(self):
        body = (name + "\n").encode()
        self.send_response(200)
        self.send_header("X-Backend", name)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer.allow_reuse_address = True
http.server.ThreadingHTTPServer(("0.0.0.0", 8080), H).serve_forever()
"#;

/// Sequential HTTP GETs, a new connection each, until MINREQ were sent and STOPFILE exists.
const LOADGEN: &str = r#"
import http.client, json, os, sys, time
host, port, minreq, stop = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
n = ok = 0; fails = {}
t0 = time.time()
while not (n >= minreq and os.path.exists(stop)) and time.time() - t0 < 50:
    n += 1
    try:
        c = http.client.HTTPConnection(host, port, timeout=3)
        c.request("GET", "/", headers={"Connection": "close"})
        r = c.getresponse(); r.read(); c.close()
        if r.status != 200: raise RuntimeError("http%d" % r.status)
        ok += 1
    except Exception as e:
        k = str(e) if isinstance(e, RuntimeError) else type(e).__name__
        fails[k] = fails.get(k, 0) + 1
print(json.dumps({"requests": n, "ok": ok, "failed": n - ok, "kinds": fails}))
"#;

struct Lab {
    cl: Netns,
    vr: Netns,
    be: Vec<Netns>,
    dir: PathBuf,
    backend_pids: Vec<Option<u32>>,
}

impl Lab {
    fn curl(&self, args: &[&str]) -> String {
        let out = self.cl.exec("curl", &[&["-s", "-m", "3"], args].concat());
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
    fn get(&self, port: u16, src: &str) -> String {
        self.curl(&["--interface", src, &format!("http://{VIP}:{port}/")])
    }
    fn start_backend(&mut self, i: usize) {
        let script = self.dir.join("backend.py");
        let pid = self.be[i].spawn(
            PY,
            &[script.to_str().unwrap(), &format!("be{}", i + 1)],
            Stdio::null(),
            Stdio::null(),
        );
        self.backend_pids[i] = Some(pid);
        let ip = format!("10.1.{}.1{}", i + 1, i + 1);
        assert!(wait_for(Duration::from_secs(5), || {
            self.vr
                .exec("curl", &["-s", "-m", "1", &format!("http://{ip}:8080/")])
                .status
                .success()
        }));
    }
    fn stop_backend(&mut self, i: usize) {
        if let Some(pid) = self.backend_pids[i].take() {
            // SAFETY: kill(2) of a process this test spawned.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    }
}

fn setup() -> Lab {
    let dir = tempfile::tempdir().unwrap().keep();
    std::fs::write(dir.join("backend.py"), BACKEND).unwrap();
    std::fs::write(dir.join("loadgen.py"), LOADGEN).unwrap();
    let cl = Netns::new("lbc");
    let vr = Netns::new("lbr");
    let be = vec![Netns::new("lbb"), Netns::new("lbb")];
    veth(&cl, "eth0", &vr, "pub0");
    for a in 10..14 {
        cl.ip(&["addr", "add", &format!("198.51.100.{a}/24"), "dev", "eth0"]);
    }
    vr.ip(&["addr", "add", "198.51.100.1/24", "dev", "pub0"]);
    for (i, b) in be.iter().enumerate() {
        let n = i + 1;
        veth(&vr, &format!("b{n}"), b, "eth0");
        vr.ip(&[
            "addr",
            "add",
            &format!("10.1.{n}.1/24"),
            "dev",
            &format!("b{n}"),
        ]);
        b.ip(&["addr", "add", &format!("10.1.{n}.1{n}/24"), "dev", "eth0"]);
    }
    let mut lab = Lab {
        cl,
        vr,
        be,
        dir,
        backend_pids: vec![None, None],
    };
    lab.start_backend(0);
    lab.start_backend(1);
    lab
}

/// A self-signed certificate for the public address, and its key.
fn certificate(dir: &Path) -> (String, String, PathBuf) {
    let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=lb.test",
            "-addext",
            "subjectAltName=IP:198.51.100.1",
        ])
        .arg("-keyout")
        .arg(&k)
        .arg("-out")
        .arg(&c)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        std::fs::read_to_string(&c).unwrap(),
        std::fs::read_to_string(&k).unwrap(),
        c,
    )
}

fn push(interval: u32, backends: &[&str], cert: &(String, String, PathBuf)) -> String {
    let bs: Vec<String> = backends
        .iter()
        .map(|b| format!(r#"{{"ip":"{b}","port":8080}}"#))
        .collect();
    let bs = bs.join(",");
    let hc = format!(
        r#"{{"http_path":"/health","interval_ms":{interval},"timeout_ms":500,"unhealthy_threshold":2,"healthy_threshold":2}}"#
    );
    let doc = serde_json::json!({
        "schema": 1,
        // With NICs the firewall is on: its input chain opens exactly the listeners' ports.
        "interfaces": [
            {"device": "pub0", "role": "public", "addresses": ["198.51.100.1/24"]},
            {"device": "b1", "role": "guest", "addresses": ["10.1.1.1/24"]},
            {"device": "b2", "role": "guest", "addresses": ["10.1.2.1/24"]},
        ],
        "lb": {
            "listeners": [
                serde_json::from_str::<Value>(&format!(r#"{{"public_ip":"{VIP}","public_port":80,"protocol":"http","health_check":{hc},"backends":[{bs}]}}"#)).unwrap(),
                serde_json::from_str::<Value>(&format!(r#"{{"public_ip":"{VIP}","public_port":81,"protocol":"http","algorithm":"source","backends":[{bs}]}}"#)).unwrap(),
                serde_json::from_str::<Value>(&format!(r#"{{"public_ip":"{VIP}","public_port":82,"protocol":"http","stickiness":{{"method":"lb_cookie","cookie_name":"SRV"}},"backends":[{bs}]}}"#)).unwrap(),
                serde_json::from_str::<Value>(&format!(r#"{{"public_ip":"{VIP}","public_port":443,"protocol":"http","ssl":"web","backends":[{bs}]}}"#)).unwrap(),
            ],
            "certificates": [{"name": "web", "cert": cert.0, "key": cert.1}],
        }
    });
    doc.to_string()
}

fn show_lb(agent: &AgentProc) -> Value {
    let out = agent.cli(&["show", "lb", "--json"]);
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

fn server_status(agent: &AgentProc, proxy: &str, server: &str) -> String {
    show_lb(agent)["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["proxy"] == proxy && r["name"] == server)
        .map(|r| r["status"].as_str().unwrap_or("").to_string())
        .unwrap_or_default()
}

fn master_pid(agent: &AgentProc) -> Option<i32> {
    std::fs::read_to_string(agent.run_dir.join("haproxy/haproxy.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Runs `load` parallel loops of short connections to :80 while `act` runs; their totals.
fn under_load(lab: &Lab, act: impl FnOnce()) -> (u64, u64, Value) {
    let stop = lab.dir.join("stop");
    let _ = std::fs::remove_file(&stop);
    let gen = lab.dir.join("loadgen.py");
    let children: Vec<_> = (0..3)
        .map(|_| {
            lab.cl
                .command(PY)
                .args([
                    gen.to_str().unwrap(),
                    VIP,
                    "80",
                    "400",
                    stop.to_str().unwrap(),
                ])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    act();
    std::fs::write(&stop, "").unwrap();
    let (mut n, mut failed, mut kinds) = (0, 0, Vec::new());
    for c in children {
        let out = c.wait_with_output().unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        n += v["requests"].as_u64().unwrap_or(0);
        failed += v["failed"].as_u64().unwrap_or(0);
        kinds.push(v["kinds"].clone());
    }
    (n, failed, Value::Array(kinds))
}

#[test]
fn lb_haproxy() {
    if !require_root("lb_haproxy")
        || !require_program("lb_haproxy", "/usr/sbin/haproxy")
        || !require_program("lb_haproxy", PY)
        || !require_program("lb_haproxy", "/usr/bin/openssl")
    {
        return;
    }
    let t0 = Instant::now();
    let mut lab = setup();
    let cert = certificate(&lab.dir);
    let mut agent = AgentProc::new(Some(&lab.vr.name));
    agent
        .env
        .push(("VR_AGENT_OBSERVE_INTERVAL".into(), "1".into()));
    agent.start();
    let both = ["10.1.1.11", "10.1.2.12"];

    let (code, res) = agent.apply_text("lb1.json", &push(200, &both, &cert));
    assert_eq!(code, 0, "{res}\n{}", agent.log_text());

    // The firewall opens the listeners' ports and nothing else: a port without a listener
    // is dropped (a timeout, not a refusal).
    let closed = lab
        .cl
        .exec("curl", &["-s", "-m", "1", &format!("http://{VIP}:83/")]);
    assert_eq!(closed.status.code(), Some(28), "port 83 not dropped");

    // Round robin: the backends alternate.
    let rr: Vec<String> = (0..6).map(|_| lab.get(80, "198.51.100.10")).collect();
    println!("round robin: {rr:?}");
    assert!(rr.windows(2).all(|w| w[0] != w[1]), "{rr:?}");
    // Source: each client address stays on one backend; the four do not all hash alike.
    let mut seen = BTreeSet::new();
    for a in 10..14 {
        let src = format!("198.51.100.{a}");
        let got: BTreeSet<String> = (0..4).map(|_| lab.get(81, &src)).collect();
        println!("source {src}: {got:?}");
        assert_eq!(got.len(), 1, "{src}: {got:?}");
        seen.extend(got);
    }
    // Cookie stickiness: with its cookie a client stays; without, it alternates.
    let jar = lab.dir.join("jar").display().to_string();
    let url = format!("http://{VIP}:82/");
    let sticky: BTreeSet<String> = (0..6)
        .map(|_| lab.curl(&["-c", &jar, "-b", &jar, &url]))
        .collect();
    let loose: BTreeSet<String> = (0..4).map(|_| lab.curl(&[&url])).collect();
    println!("cookie: with {sticky:?}, without {loose:?}");
    assert_eq!(sticky.len(), 1);
    assert_eq!(loose.len(), 2);
    // TLS offload with the pushed certificate.
    let tls = lab.curl(&[
        "--cacert",
        cert.2.to_str().unwrap(),
        &format!("https://{VIP}/"),
    ]);
    println!("https: {tls}");
    assert!(tls == "be1" || tls == "be2", "{tls:?}");
    let key_mode = std::fs::metadata(agent.run_dir.join("haproxy/certs/web.pem"))
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
        .unwrap();
    assert_eq!(key_mode, 0o600);

    // Health check: a stopped backend goes DOWN, traffic avoids it, it returns UP.
    let h0 = Instant::now();
    lab.stop_backend(1);
    assert!(wait_for(Duration::from_secs(5), || server_status(
        &agent,
        "198_51_100_1-80",
        "10_1_2_12-8080"
    ) == "DOWN"));
    let down_after = h0.elapsed();
    let only: BTreeSet<String> = (0..4).map(|_| lab.get(80, "198.51.100.10")).collect();
    assert_eq!(only, BTreeSet::from(["be1".to_string()]));
    lab.start_backend(1);
    assert!(wait_for(Duration::from_secs(5), || server_status(
        &agent,
        "198_51_100_1-80",
        "10_1_2_12-8080"
    )
    .starts_with("UP")));
    println!(
        "health: DOWN after {} ms, UP again {} ms after restart",
        down_after.as_millis(),
        (h0.elapsed() - down_after).as_millis()
    );
    let text = String::from_utf8_lossy(&agent.cli(&["show", "lb"]).stdout).into_owned();
    println!("{text}");
    assert!(text.contains("10_1_1_11-8080") && text.contains("FRONTEND"));

    // A config haproxy rejects: the push fails naming the rule; the old haproxy serves on.
    let pid = master_pid(&agent);
    let bad = push(200, &both, &cert).replace(
        r#""algorithm":"source""#,
        r#""algorithm":"source","stickiness":{"method":"source","expire":"soon"}"#,
    );
    let (code, res) = agent.apply_text("bad.json", &bad);
    let msg = res.to_string();
    println!("rejected: {msg}");
    assert_eq!(code, 1);
    assert!(
        msg.contains("198_51_100_1-81") && msg.contains("haproxy"),
        "{msg}"
    );
    let cs_bad = r#"{"type":"loadbalancer","delete_from_processed_cache":false,"rules":[{"configuration":["global","\tuser haproxy","\t ","defaults","\tmode    tcp","\ttimeout connect    5000","\ttimeout client     50000","\ttimeout server     50000","\t ","listen 198_51_100_1-80","\tbind 198.51.100.1:80","\tbalance roundrobbin","\tserver 198_51_100_1-80_0 10.1.1.11:8080 check","\t "],"add_rules":["198.51.100.1:80:"],"remove_rules":[],"stat_rules":[],"ssl_certs":[]}]}"#;
    let (code, res) = agent.apply_text("bad-cs.json", cs_bad);
    println!("rejected (CloudStack): {res}");
    assert_eq!(code, 1);
    assert!(res.to_string().contains("198_51_100_1-80"), "{res}");
    assert_eq!(master_pid(&agent), pid);
    assert_eq!(lab.get(82, "198.51.100.10").len(), 3);
    assert!(!lab.get(80, "198.51.100.10").is_empty());

    // 20 pushes, each a changed config, under continuous load: no failed connection.
    let mut times = Vec::new();
    let (n, failed, kinds) = under_load(&lab, || {
        for i in 0..20 {
            let t = Instant::now();
            let (code, res) = agent.apply_text(&format!("r{i}.json"), &push(300 + i, &both, &cert));
            assert_eq!(code, 0, "{res}");
            times.push(t.elapsed().as_secs_f64() * 1e3);
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let avg = times.iter().sum::<f64>() / times.len() as f64;
    let max = times.iter().cloned().fold(0.0, f64::max);
    println!(
        "seamless reloads: 20 pushes (push incl. check and reload: avg {avg:.0} ms, max {max:.0} ms), {n} connections, {failed} failed {kinds}"
    );

    // The same config again: nothing to do, no reload.
    let (code, res) = agent.apply_text("same.json", &push(319, &both, &cert));
    assert_eq!(code, 0, "{res}");
    let lb = res[0]["outcomes"]
        .as_array()
        .and_then(|o| o.iter().find(|o| o["concern"] == "lb").cloned())
        .unwrap_or_default();
    assert_eq!(lb["status"], "unchanged", "{res}");
    // An agent restart adopts the running haproxy: same master, still serving.
    let before = master_pid(&agent);
    agent.stop();
    agent.start();
    let (code, res) = agent.apply_text("same2.json", &push(319, &both, &cert));
    assert_eq!(code, 0, "{res}");
    assert_eq!(master_pid(&agent), before);
    assert!(!lab.get(80, "198.51.100.10").is_empty());

    // Removing a backend drains it first, then it leaves the config.
    let (code, res) = agent.apply_text("one.json", &push(300, &["10.1.1.11"], &cert));
    assert_eq!(code, 0, "{res}");
    assert!(agent.log_text().contains("drained"), "{}", agent.log_text());
    assert_eq!(
        server_status(&agent, "198_51_100_1-80", "10_1_2_12-8080"),
        ""
    );
    let only: BTreeSet<String> = (0..4).map(|_| lab.get(80, "198.51.100.10")).collect();
    assert_eq!(only, BTreeSet::from(["be1".to_string()]));

    // Self-heal: a killed haproxy is started again.
    let p = master_pid(&agent).unwrap();
    // SAFETY: kill(2) of the haproxy master of this test's agent.
    unsafe { libc::kill(p, libc::SIGKILL) };
    assert!(
        wait_for(Duration::from_secs(10), || master_pid(&agent).is_some_and(
            |q| q != p && Path::new(&format!("/proc/{q}")).exists()
        ) && !lab
            .get(80, "198.51.100.10")
            .is_empty()),
        "{}",
        agent.log_text()
    );
    // Baseline, with the agent stopped (its self-heal would start a haproxy of its own): the
    // same load while haproxy is restarted plainly instead of reloaded.
    agent.stop();
    let cfg = agent.run_dir.join("haproxy/haproxy.cfg");
    let pidf = agent.run_dir.join("haproxy/haproxy.pid");
    let msock = format!(
        "{},mode,600",
        agent.run_dir.join("haproxy/master.sock").display()
    );
    let (bn, bfailed, bkinds) = under_load(&lab, || {
        for _ in 0..20 {
            if let Some(p) = master_pid(&agent) {
                // SAFETY: kill(2) of the haproxy master of this test's agent.
                unsafe { libc::kill(p, libc::SIGTERM) };
                wait_for(Duration::from_secs(5), || {
                    !Path::new(&format!("/proc/{p}")).exists()
                        || std::fs::read_to_string(format!("/proc/{p}/stat"))
                            .is_ok_and(|s| s.contains(") Z"))
                });
            }
            lab.vr.exec_ok(
                "haproxy",
                &[
                    "-W",
                    "-D",
                    "-S",
                    &msock,
                    "-p",
                    pidf.to_str().unwrap(),
                    "-f",
                    cfg.to_str().unwrap(),
                ],
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    println!("baseline (plain restarts): 20 restarts, {bn} connections, {bfailed} failed {bkinds}");
    assert!(n >= 2000, "only {n} connections");
    assert_eq!(
        failed, 0,
        "failed connections during seamless reloads: {kinds}"
    );
    vr_tests::summary::record(vr_tests::summary::Row {
        check: "lb_reloads".into(),
        runs: n,
        failures: failed,
        unit: format!(
            "connections during 20 seamless reloads (push avg {avg:.0} ms, max {max:.0} ms); plain restarts: {bfailed} of {bn} failed"
        ),
        ..Default::default()
    });

    println!("lb_haproxy done in {:.1} s", t0.elapsed().as_secs_f64());
}
