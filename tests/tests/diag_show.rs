//! `show nat|firewall|acl|interfaces|routes|conntrack` against a running agent with a port
//! forward carrying a real flow: the `--json` output holds that forward and that flow.

use std::time::Duration;

use vr_tests::traffic::{tcp_probe, tcp_server};
use vr_tests::{require_program, require_root, veth, AgentProc, Netns};

const PUSH: &str = r#"{"schema":1,
  "interfaces":[{"device":"eth0","role":"guest","addresses":["10.1.1.1/24"]},
                {"device":"eth2","role":"public","addresses":["192.0.2.11/24"]}],
  "nat":{"port_forwards":[{"public_ip":"192.0.2.11","protocol":"tcp","public_ports":8080,"private_ip":"10.1.1.10","private_ports":80}]},
  "firewall":{"ingress":[{"id":7,"public_ip":"192.0.2.11","protocol":"tcp","ports":8080,"source_cidrs":[]}]},
  "acls":[{"device":"eth0","tier_cidr":"10.1.1.0/24","ingress":[{"action":"allow","protocol":"tcp","ports":80,"cidrs":["192.0.2.0/24"]}]}]}"#;

fn json(agent: &AgentProc, args: &[&str]) -> serde_json::Value {
    let mut a = args.to_vec();
    a.push("--json");
    let out = agent.cli(&a);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn show_views_hold_the_forward_and_its_flow() {
    if !require_root("show_views_hold_the_forward_and_its_flow")
        || !require_program(
            "show_views_hold_the_forward_and_its_flow",
            "/usr/sbin/conntrack",
        )
    {
        return;
    }
    let vr = Netns::new("vrsh");
    let mut host = Netns::new("hsh");
    let ext = Netns::new("esh");
    veth(&vr, "eth0", &host, "eth0");
    veth(&vr, "eth2", &ext, "eth0");
    // Boot-time addresses (the push owns them from now on).
    vr.ip(&["addr", "replace", "10.1.1.1/24", "dev", "eth0"]);
    vr.ip(&["addr", "replace", "192.0.2.11/24", "dev", "eth2"]);
    host.ip(&["addr", "add", "10.1.1.10/24", "dev", "eth0"]);
    host.ip(&["route", "add", "default", "via", "10.1.1.1"]);
    ext.ip(&["addr", "add", "192.0.2.100/24", "dev", "eth0"]);
    let mut agent = AgentProc::new(Some(&vr.name));
    agent.start();
    let (code, r) = agent.apply_text("p.json", PUSH);
    assert_eq!(code, 0, "{r}");
    tcp_server(&mut host, "10.1.1.10", 80);
    let got = tcp_probe(&ext, "192.0.2.11", 8080, Duration::from_secs(3));
    assert!(
        matches!(&got, Ok(s) if s.contains("local=10.1.1.10:80")),
        "{got:?}"
    );

    let nat = json(&agent, &["show", "nat"]).to_string();
    assert!(
        nat.contains("192.0.2.11") && nat.contains("10.1.1.10") && nat.contains("8080"),
        "{nat}"
    );
    assert!(
        nat.contains("counter"),
        "no packet counters in show nat: {nat}"
    );
    let fw = json(&agent, &["show", "firewall"]).to_string();
    assert!(fw.contains("fw_in") && fw.contains("8080"), "{fw}");
    let acl = json(&agent, &["show", "acl"]).to_string();
    assert!(acl.contains("acl_in") && acl.contains("192.0.2.0"), "{acl}");
    let ifs = json(&agent, &["show", "interfaces"]);
    let eth2 = ifs["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "eth2")
        .expect("eth2");
    let a11 = eth2["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["address"] == "192.0.2.11/24")
        .unwrap_or_else(|| panic!("no 192.0.2.11/24 on eth2: {eth2}"));
    assert_eq!(a11["owner"], "agent", "{eth2}");
    let routes = json(&agent, &["show", "routes"]);
    assert!(
        routes["routes"].to_string().contains("192.0.2.0/24"),
        "{routes}"
    );
    assert!(routes["rules"].is_array());

    // The probe's connection is closed; hold one open for the conntrack view.
    let mut flow = ext.command("python3");
    flow.args(["-c", "import socket,time; s=socket.create_connection(('192.0.2.11',8080),3); s.recv(100); time.sleep(5)"]);
    let mut child = flow.spawn().unwrap();
    // python3 may take a while to start on a loaded machine: wait for the flow itself (the
    // earlier probe's closed connection is in the table too, in TIME_WAIT).
    let until = std::time::Instant::now() + Duration::from_secs(4);
    let ct = loop {
        let ct = json(
            &agent,
            &["show", "conntrack", "--port", "8080", "--protocol", "tcp"],
        );
        if ct["by_state"]["ESTABLISHED"].as_u64().unwrap_or(0) >= 1
            || std::time::Instant::now() >= until
        {
            break ct;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(ct["count"].as_u64().unwrap_or(0) >= 1, "{ct}");
    assert!(
        ct["by_state"]["ESTABLISHED"].as_u64().unwrap_or(0) >= 1,
        "{ct}"
    );
    let e = &ct["entries"][0];
    assert_eq!(e["original"]["dst"], "192.0.2.11", "{e}");
    let none = json(&agent, &["show", "conntrack", "--address", "203.0.113.99"]);
    assert_eq!(none["count"], 0);
}
