//! Issue 14 acceptance (user data, metadata, passwords): the agent's own HTTP listeners on the
//! guest gateways answer real clients the way cloud-init and CloudStack's guest scripts ask.
//!
//! - From guest A: `curl` of `/latest/meta-data/instance-id` (cloud-init's poll),
//!   `curl http://data-server/latest/user-data` resolving `data-server` through the router's
//!   dnsmasq (A's user data, decoded, byte for byte), `/latest/meta-data/` (A's keys), the
//!   legacy `/latest/public-keys`.
//! - From guest B (another guest network): A's data never (404), its own instance id only.
//! - Passwords: A fetches its password with the exact `wget` calls of
//!   `cloud-set-guest-password` and with Python `urllib` as cloud-init does; B asks with the
//!   same calls and never gets it; the password survives an agent restart until A
//!   acknowledges it; then `saved_password`, also after another restart and a replay, and the
//!   password is gone from `state.json`.
//!
//! ```text
//! ga 10.1.1.23 -- eth0 10.1.1.1/24 \
//!                                    vr (agent: :80 metadata, :8080 passwords, dnsmasq :53)
//! gb 10.1.2.24 -- eth1 10.1.2.1/24 /
//! ```

use std::time::{Duration, Instant};

use serde_json::Value;
use vr_tests::{require_program, require_root, veth, wait_for, AgentProc, Netns};

const PASSWORD: &str = "web-e2e-Pw=7&x";
/// "#cloud-config\nhostname: guest-a\n# web-e2e-ud-Qz41\n", base64 without its padding as
/// CloudStack may send it.
const USER_DATA_B64: &str = "I2Nsb3VkLWNvbmZpZwpob3N0bmFtZTogZ3Vlc3QtYQojIHdlYi1lMmUtdWQtUXo0MQo";
const USER_DATA: &str = "#cloud-config\nhostname: guest-a\n# web-e2e-ud-Qz41\n";

fn network() -> String {
    r#"{"schema":1,
 "interfaces":[
   {"device":"eth0","role":"guest","addresses":["10.1.1.1/24"]},
   {"device":"eth1","role":"guest","addresses":["10.1.2.1/24"]}],
 "dhcp":{"networks":[
   {"device":"eth0","address":"10.1.1.1/24","domain":"web.test"},
   {"device":"eth1","address":"10.1.2.1/24","domain":"web.test"}]}}"#
        .to_string()
}

fn vmdata(ip: &str, instance: &str, user_data: Option<&str>) -> String {
    let ud = user_data.map_or("null".to_string(), |u| format!("\"{u}\""));
    format!(
        r#"{{"type":"vmdata","delete_from_processed_cache":false,"vm_ip_address":"{ip}",
        "vm_metadata":[["userdata","user-data",{ud}],
          ["metadata","service-offering","Small Instance"],
          ["metadata","availability-zone","zone1"],
          ["metadata","local-ipv4","{ip}"],
          ["metadata","local-hostname","{instance}-host"],
          ["metadata","instance-id","{instance}"],
          ["metadata","vm-id","{instance}-uuid"],
          ["metadata","public-keys","ssh-ed25519 AAAAC3Nz {instance}@example"],
          ["metadata","cloud-identifier","CloudStack-{{test}}"]]}}"#
    )
}

/// `curl` from `ns`: (status, body bytes).
fn curl(ns: &Netns, url: &str) -> (u16, Vec<u8>) {
    let out = ns.exec(
        "curl",
        &["-s", "-m", "5", "-o", "-", "-w", "\n%{http_code}", url],
    );
    let mut body = out.stdout;
    let pos = body.iter().rposition(|b| *b == b'\n').unwrap_or(0);
    let code = String::from_utf8_lossy(&body[pos + 1..])
        .trim()
        .parse()
        .unwrap_or(0);
    body.truncate(pos);
    (code, body)
}

/// CloudStack's `cloud-set-guest-password` request (`vr_tests::guest_client`); wget must work.
fn wget(ns: &Netns, server: &str, request: &str) -> String {
    vr_tests::guest_client::password_request(ns, server, request).expect("wget failed")
}

/// cloud-init's `CloudStackPasswordServerClient`: `readurl("http://<vr>:8080",
/// headers={"DomU_Request": ...}, timeout=20)`, `.decode().strip()`, an ok status required.
fn urllib(ns: &Netns, server: &str, request: &str) -> String {
    let code = format!(
        "import urllib.request\n\
         r = urllib.request.urlopen(urllib.request.Request('http://{server}:8080', headers={{'DomU_Request': '{request}'}}), timeout=20)\n\
         assert r.status == 200, r.status\n\
         print(r.read().decode().strip(), end='')\n"
    );
    let out = ns.exec("python3", &["-c", &code]);
    assert!(out.status.success(), "urllib: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn apply_ok(agent: &AgentProc, name: &str, text: &str) -> Value {
    let (code, res) = agent.apply_text(name, text);
    assert_eq!(code, 0, "{name}: {res:#}\n{}", agent.log_text());
    res
}

fn state_has(agent: &AgentProc, s: &str) -> bool {
    agent
        .state_json()
        .is_some_and(|b| b.windows(s.len()).any(|w| w == s.as_bytes()))
}

#[test]
fn guests_get_their_own_metadata_and_password() {
    let name = "guest_web";
    if !require_root(name) {
        return;
    }
    for p in [
        "/usr/sbin/dnsmasq",
        "/usr/bin/curl",
        "/usr/bin/wget",
        "/usr/bin/dig",
    ] {
        if !require_program(name, p) {
            return;
        }
    }
    let started = Instant::now();
    let vr = Netns::new("gwvr");
    let ga = Netns::new("gwa");
    let gb = Netns::new("gwb");
    veth(&ga, "eth0", &vr, "eth0");
    veth(&gb, "eth0", &vr, "eth1");
    ga.ip(&["addr", "add", "10.1.1.23/24", "dev", "eth0"]);
    ga.ip(&["route", "add", "default", "via", "10.1.1.1"]);
    gb.ip(&["addr", "add", "10.1.2.24/24", "dev", "eth0"]);
    gb.ip(&["route", "add", "default", "via", "10.1.2.1"]);

    let mut agent = AgentProc::new(Some(&vr.name));
    agent.start();
    apply_ok(&agent, "network.json", &network());
    let r = apply_ok(
        &agent,
        "vmdata-a.json",
        &vmdata("10.1.1.23", "i-2-23-VM", Some(USER_DATA_B64)),
    );
    // Applied, not "stored, not applied".
    assert!(
        r[0]["not_yet_applied"]
            .as_array()
            .is_none_or(|a| a.is_empty()),
        "{r}"
    );
    assert!(
        r[0]["outcomes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["concern"] == "metadata" && o["status"] == "applied"),
        "{r}"
    );
    apply_ok(
        &agent,
        "vmdata-b.json",
        &vmdata("10.1.2.24", "i-2-24-VM", None),
    );
    apply_ok(
        &agent,
        "vmpassword.json",
        &format!(
            r#"{{"type":"vmpassword","delete_from_processed_cache":true,"ip_address":"10.1.1.23","password":"{PASSWORD}"}}"#
        ),
    );
    // cloud-init's poll.
    assert!(
        wait_for(Duration::from_secs(5), || curl(
            &ga,
            "http://10.1.1.1/latest/meta-data/instance-id"
        )
        .0 == 200),
        "metadata service not answering:\n{}",
        agent.log_text()
    );
    assert_eq!(
        curl(&ga, "http://10.1.1.1/latest/meta-data/instance-id"),
        (200, b"i-2-23-VM".to_vec())
    );
    // `data-server` through the router's DNS, then the guest's own resolver (glibc, reading
    // a resolv.conf naming the router) inside a private mount namespace.
    let dir = tempfile::tempdir().unwrap();
    let resolv = dir.path().join("resolv.conf");
    std::fs::write(&resolv, "nameserver 10.1.1.1\nsearch web.test\n").unwrap();
    let dig = ga.exec_ok(
        "dig",
        &[
            "+short",
            "+time=1",
            "+tries=3",
            "@10.1.1.1",
            "data-server",
            "A",
        ],
    );
    assert_eq!(
        dig.trim(),
        "10.1.1.1",
        "data-server through the router's DNS"
    );
    let out = ga.exec(
        "unshare",
        &[
            "-m",
            "sh",
            "-c",
            &format!(
                "mount --bind {} /etc/resolv.conf && curl -s -m 5 -w '\\n%{{http_code}}' http://data-server/latest/user-data",
                resolv.display()
            ),
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (body, code) = text.rsplit_once('\n').unwrap();
    assert_eq!(
        (code, body),
        ("200", USER_DATA),
        "user data through data-server"
    );
    println!(
        "guest A: instance-id, data-server ({}) and its user data decoded, byte for byte",
        dig.trim()
    );
    let (code, listing) = curl(&ga, "http://10.1.1.1/latest/meta-data/");
    assert_eq!(code, 200);
    assert_eq!(
        String::from_utf8_lossy(&listing),
        "service-offering\navailability-zone\nlocal-ipv4\nlocal-hostname\ninstance-id\nvm-id\npublic-keys\ncloud-identifier\n"
    );
    assert_eq!(
        curl(&ga, "http://10.1.1.1/latest/public-keys"),
        (200, b"ssh-ed25519 AAAAC3Nz i-2-23-VM@example".to_vec())
    );
    assert_eq!(
        curl(&ga, "http://10.1.1.1/latest/meta-data/no-such-key").0,
        404
    );
    // Bounded request heads: a 64 KiB header is refused, and the service goes on.
    let big = format!("X-Big: {}", "a".repeat(64 * 1024));
    let out = ga.exec(
        "curl",
        &[
            "-s",
            "-m",
            "5",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-H",
            &big,
            "http://10.1.1.1/latest/user-data",
        ],
    );
    let code = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        code == "431" || code == "000",
        "oversized head answered {code}"
    );
    assert_eq!(
        curl(&ga, "http://10.1.1.1/latest/meta-data/instance-id").0,
        200
    );
    println!("a 64 KiB request head: {code}; the service answers on");
    // Connection limits: 16 idle connections from A take all of A's places; A's next one is
    // closed at once while B is served; once A lets go, A is served again.
    let mut hold = ga
        .command("python3")
        .args([
            "-c",
            "import socket,sys\nss=[socket.create_connection(('10.1.1.1',80),5) for _ in range(16)]\nprint('ready',flush=True)\nsys.stdin.read()\n",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(hold.stdout.take().unwrap()),
        &mut ready,
    )
    .unwrap();
    assert_eq!(ready.trim(), "ready");
    assert!(
        wait_for(Duration::from_secs(5), || curl(
            &ga,
            "http://10.1.1.1/latest/meta-data/instance-id"
        )
        .0 == 0),
        "a 17th connection from A was served"
    );
    assert_eq!(
        curl(&gb, "http://10.1.2.1/latest/meta-data/instance-id").0,
        200
    );
    drop(hold.stdin.take());
    hold.wait().unwrap();
    assert!(
        wait_for(Duration::from_secs(5), || curl(
            &ga,
            "http://10.1.1.1/latest/meta-data/instance-id"
        )
        .0 == 200),
        "A not served again after closing its connections"
    );
    println!("16 connections per source: A's 17th closed, B served, A served again after");

    // A dry run prints the plan as data (names, never values) and changes nothing.
    let dry = agent.dir.path().join("dry.json");
    std::fs::write(
        &dry,
        vmdata("10.1.1.23", "i-2-23-VM-new", Some(USER_DATA_B64)),
    )
    .unwrap();
    let out = agent.cli(&["apply", "--dry-run", "--json", dry.to_str().unwrap()]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let plan = v[0]["plan"].as_str().unwrap_or("");
    assert!(
        plan.contains("# metadata: 1 change(s)")
            && plan.contains("metadata 10.1.1.23: user-data, 8 key(s)"),
        "{plan}"
    );
    assert!(
        !plan.contains("web-e2e") && !plan.contains(USER_DATA_B64),
        "{plan}"
    );
    assert_eq!(
        curl(&ga, "http://10.1.1.1/latest/meta-data/instance-id"),
        (200, b"i-2-23-VM".to_vec())
    );

    // Guest B: its own data, never A's, on either gateway.
    for gw in ["10.1.2.1", "10.1.1.1"] {
        assert_eq!(
            curl(&gb, &format!("http://{gw}/latest/meta-data/instance-id")),
            (200, b"i-2-24-VM".to_vec())
        );
        // B's user data was `null`: an empty file.
        assert_eq!(
            curl(&gb, &format!("http://{gw}/latest/user-data")),
            (200, Vec::new())
        );
    }
    // A VM without data (B, once its data is removed) gets 404 for everything.
    let removal = r#"{"type":"vmdata","delete_from_processed_cache":false,"vm_ip_address":"10.1.2.24",
        "vm_metadata":[["userdata","user-data",""],["metadata","service-offering",""],
        ["metadata","availability-zone",""],["metadata","local-ipv4",""],["metadata","local-hostname",""],
        ["metadata","instance-id",""],["metadata","vm-id",""],["metadata","public-keys",""],
        ["metadata","cloud-identifier",""]]}"#;
    apply_ok(&agent, "vmdata-b-removed.json", removal);
    for path in [
        "user-data",
        "meta-data/",
        "meta-data/instance-id",
        "public-keys",
    ] {
        let (code, body) = curl(&gb, &format!("http://10.1.1.1/latest/{path}"));
        assert_eq!(code, 404, "{path}: {}", String::from_utf8_lossy(&body));
        assert!(!String::from_utf8_lossy(&body).contains("i-2-23"));
    }
    println!("guest B: its own instance id only, then 404 once its data was removed; never A's");

    // Passwords. B asks first, with both clients: never A's.
    assert_eq!(wget(&gb, "10.1.1.1", "send_my_password"), "saved_password");
    assert_eq!(
        urllib(&gb, "10.1.2.1", "send_my_password"),
        "saved_password"
    );
    assert_eq!(wget(&gb, "10.1.1.1", "saved_password"), "saved_password");
    assert_eq!(wget(&ga, "10.1.1.1", "bogus"), "bad_request");
    assert_eq!(wget(&ga, "10.1.1.1", "send_my_password"), PASSWORD);
    assert_eq!(urllib(&ga, "10.1.1.1", "send_my_password"), PASSWORD);
    println!("password: served to A (wget, urllib), again until acknowledged; B: saved_password");

    // An agent restart keeps the unacknowledged password.
    agent.kill9();
    agent.start();
    assert!(
        wait_for(Duration::from_secs(5), || urllib(
            &ga,
            "10.1.1.1",
            "send_my_password"
        ) == PASSWORD),
        "pending password lost across a restart"
    );
    let out = agent.cli(&["show", "metadata", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let row = |v: &Value, ip: &str| {
        v["vms"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["ip"] == ip)
            .cloned()
    };
    let a = row(&v, "10.1.1.23").expect("A in show metadata");
    assert_eq!(
        (&a["user_data"], &a["password"]),
        (&Value::from("yes"), &Value::from("pending")),
        "{v}"
    );
    assert_eq!(a["keys"].as_array().unwrap().len(), 8);
    assert!(row(&v, "10.1.2.24").is_none(), "B's data was removed: {v}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains(PASSWORD));

    // A acknowledges the way the guest script does, and the agent is killed right before it
    // commits the state without the password: the ledger alone keeps the password forgotten,
    // and the restarted agent drops it from state.json.
    agent.kill9();
    let marker = agent.dir.path().join("at-commit");
    agent.env.push((
        "VR_AGENT_TEST_HOOK".into(),
        format!("before-commit:{}", marker.display()),
    ));
    agent.start();
    assert!(
        wait_for(Duration::from_secs(5), || wget(
            &ga,
            "10.1.1.1",
            "send_my_password"
        ) == PASSWORD),
        "not served after the restart"
    );
    assert_eq!(wget(&ga, "10.1.1.1", "saved_password"), "saved_password");
    assert!(
        wait_for(Duration::from_secs(20), || marker.exists()),
        "the acknowledgement's commit never reached the hook"
    );
    assert!(state_has(&agent, PASSWORD), "committed before the hook");
    agent.kill9();
    agent.env.retain(|(k, _)| k != "VR_AGENT_TEST_HOOK");
    agent.start();
    assert!(
        wait_for(Duration::from_secs(5), || wget(
            &ga,
            "10.1.1.1",
            "send_my_password"
        ) == "saved_password"),
        "the acknowledged password was served again after a crash before its commit"
    );
    assert_eq!(
        urllib(&ga, "10.1.1.1", "send_my_password"),
        "saved_password"
    );
    assert!(
        wait_for(Duration::from_secs(5), || !state_has(&agent, PASSWORD)),
        "the acknowledged password is still in state.json"
    );
    let text = String::from_utf8_lossy(&agent.cli(&["show", "metadata"]).stdout).into_owned();
    assert!(
        text.contains("10.1.1.23") && !text.contains("pending"),
        "{text}"
    );
    println!("acknowledged: saved_password from then on; dropped from state.json");

    // Another restart and a replay: the acknowledged password stays forgotten.
    agent.kill9();
    agent.start();
    assert_eq!(
        urllib(&ga, "10.1.1.1", "send_my_password"),
        "saved_password"
    );
    let out = agent.cli(&["reconcile"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(wget(&ga, "10.1.1.1", "send_my_password"), "saved_password");
    assert_eq!(
        curl(&ga, "http://10.1.1.1/latest/meta-data/instance-id"),
        (200, b"i-2-23-VM".to_vec())
    );
    let out = agent.cli(&["diff"]);
    assert!(
        out.status.success(),
        "diff after restart: {}",
        String::from_utf8_lossy(&out.stdout)
    );

    // A password pushed again later is served again.
    apply_ok(
        &agent,
        "vmpassword2.json",
        r#"{"type":"vmpassword","delete_from_processed_cache":true,"ip_address":"10.1.1.23","password":"web-e2e-second-Pw"}"#,
    );
    assert_eq!(
        wget(&ga, "10.1.1.1", "send_my_password"),
        "web-e2e-second-Pw"
    );
    println!("after restart and replay: still saved_password; a new password is served");

    // Nothing of the secrets in the log.
    let log = agent.log_text();
    for s in [
        PASSWORD,
        "web-e2e-second-Pw",
        USER_DATA_B64,
        "web-e2e-ud-Qz41",
    ] {
        assert!(!log.contains(s), "{s} in the agent log");
    }
    println!("guest_web: {:.1} s", started.elapsed().as_secs_f64());
}
