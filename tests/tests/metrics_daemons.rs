//! Issue 20 acceptance, the metrics read from daemons and per firewall rule, one topology: the
//! agent of vr1 drives a real charon (a site-to-site tunnel to vr2, whose own agent and charon
//! answer), a real FRR (an OSPF adjacency and a BGP session with a peer FRR in o3), its own
//! haproxy (a listener on its public address with one backend on h1), an ingress firewall on
//! the public address, an egress policy and an ACL on its LAN; its metrics endpoint (on
//! loopback here) is scraped with curl.
//!
//! - the tunnel shows up 1 and its bytes rise with a ping through it; a road warrior's SA
//!   (IKEv2 EAP, a real client charon on the switch) shows up 1 under its address;
//! - the OSPF neighbour counts as Full, the BGP neighbour (o3's bgpd) as Established;
//! - the listener shows 1 backend up of 1, then 0 when the backend's server stops;
//! - the firewall rule admitting the listener's port counts the connections it admits; an
//!   egress rule counts the ping it lets out, the egress policy's default the TCP it drops,
//!   the LAN's ACL rule the pings it lets out;
//! - a stopped charon delays no scrape, its families are left out until it answers again;
//! - a revoked firewall rule's series and a removed tunnel's series disappear (the road
//!   warrior's stays).
//!
//! ```text
//!  h1 10.1.1.10 -lan0- vr1 -wan0 192.0.2.10- [br0 192.0.2.1 in sw] -192.0.2.20 wan0- vr2 -lan0- h2 10.2.0.10
//!  (backend :8080)      \eth3 172.16.0.1/30 -- eth3 172.16.0.2/30 o3 (FRR peer)
//! ```

use std::process::Stdio;
use std::time::{Duration, Instant};

use vr_tests::peers::{Frr, BGPD, CHARON, OSPFD};
use vr_tests::road_warrior::{warrior, RA_PSK};
use vr_tests::traffic::ping;
use vr_tests::vpn_sites::{push as site_push, site, topology, tunnel};
use vr_tests::{require_program, require_root, veth, wait_for, Netns};

const PSK: &str = "metrics-daemons-psk-5d1e";
const ALICE_PW: &str = "metrics-daemons-alice-Qe4";
/// A road warrior's IKEv2 SA, by its address on the switch.
const CLIENT: &str = r#"{connection="ra-ikev2",peer="192.0.2.101"}"#;
const URL: &str = "http://127.0.0.1:9100/metrics";
const TUNNEL: &str = r#"{connection="s2s-192.0.2.20",peer="192.0.2.20"}"#;
const LISTENER: &str = r#"{listener="192_0_2_10-80"}"#;
const RULE7: &str =
    r#"vr_firewall_rule_packets_total{family="ip",kind="ingress",scope="192.0.2.10",rule="7"}"#;
const RULE8: &str = r#"kind="ingress",scope="192.0.2.10",rule="8"}"#;

const PEER_OSPF: &str = "interface eth3\n ip ospf area 0\n ip ospf network point-to-point\n ip ospf hello-interval 1\n ip ospf dead-interval 4\n!\nrouter ospf\n ospf router-id 172.16.0.2\n!\n";

/// o3's BGP: it connects to vr1 every second (vr1's session comes up as soon as it knows o3).
const PEER_BGP: &str = "hostname o3\nrouter bgp 65103\n bgp router-id 172.16.0.2\n no bgp ebgp-requires-policy\n timers bgp 1 3\n neighbor 172.16.0.1 remote-as 65000\n neighbor 172.16.0.1 timers connect 1\n!\n";

const BACKEND: &str = r#"
import http.server
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Length", "3"); self.end_headers()
        self.wfile.write(b"h1\n")
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer.allow_reuse_address = True
http.server.ThreadingHTTPServer(("10.1.1.10", 8080), H).serve_forever()
"#;

/// vr1's push: NICs, source NAT, the tunnel (unless `tunnel_to_vr2` is false), OSPF on eth3,
/// the listener, and ingress rules 7 (port 80) and, when `rule8`, 8 (port 81).
fn vr1_push(tunnel_to_vr2: bool, rule8: bool) -> String {
    let t = tunnel(
        "192.0.2.10",
        "10.1.1.0/24",
        "192.0.2.20",
        "10.2.0.0/24",
        PSK,
        false,
        3600,
    );
    let vpn = if tunnel_to_vr2 { t } else { String::new() };
    let r8 = if rule8 {
        r#",{"id":8,"public_ip":"192.0.2.10","protocol":"tcp","ports":"81"}"#
    } else {
        ""
    };
    format!(
        r#"{{"schema":1,
 "interfaces":[{{"device":"lan0","role":"guest","addresses":["10.1.1.1/24"]}},
   {{"device":"wan0","role":"public","addresses":["192.0.2.10/24"]}},
   {{"device":"eth3","role":"private_gateway","addresses":["172.16.0.1/30"]}}],
 "nat":{{"source_nat":[{{"device":"wan0","public_ip":"192.0.2.10","source_cidrs":["10.1.1.0/24"]}}]}},
 "firewall":{{"ingress":[{{"id":7,"public_ip":"192.0.2.10","protocol":"tcp","ports":"80"}}{r8}],
   "egress":[{{"guest_cidr":"10.1.1.0/24","default_allow":false,"rules":[{{"id":31,"protocol":"icmp"}}]}}]}},
 "acls":[{{"device":"lan0","tier_cidr":"10.1.1.0/24","egress":[{{"number":1,"action":"allow","protocol":"icmp"}}]}}],
 "vpn":{{"site_to_site":[{vpn}],
   "remote_access":{{"server_ip":"192.0.2.10","pool_first":"10.1.9.1","pool_last":"10.1.9.20",
     "local_cidrs":["10.1.1.0/24"],"psk":"{RA_PSK}"}},
   "remote_users":[{{"name":"alice","password":"{ALICE_PW}"}}]}},
 "ospf":{{"router_id":"172.16.0.1","areas":[{{"id":"0.0.0.0"}}],
   "interfaces":[{{"device":"eth3","network_type":"point-to-point","hello_interval":1,"dead_interval":4}}],
   "networks":[{{"prefix":"172.16.0.0/30","area":"0.0.0.0"}}]}},
 "bgp":{{"local_as":65000,"router_id":"172.16.0.1","neighbors":[{{"address":"172.16.0.2","remote_as":65103}}]}},
 "lb":{{"listeners":[{{"public_ip":"192.0.2.10","public_port":80,"protocol":"http",
   "health_check":{{"http_path":"/","interval_ms":300,"timeout_ms":500,"unhealthy_threshold":2,"healthy_threshold":2}},
   "backends":[{{"ip":"10.1.1.10","port":8080}}]}}]}}}}"#
    )
}

/// The exposition, or curl's complaint.
fn scrape(ns: &Netns) -> String {
    let out = ns.exec("curl", &["-sS", "--max-time", "2", "-f", URL]);
    if out.status.success() {
        String::from_utf8_lossy(&out.stdout).into_owned()
    } else {
        format!("curl failed: {}", String::from_utf8_lossy(&out.stderr))
    }
}

/// One scrape and the time curl measured for it (`time_total`: without the cost of entering
/// the namespace, which a loaded machine makes noisy).
fn timed_scrape(ns: &Netns) -> (Duration, String) {
    let out = ns.exec(
        "curl",
        &[
            "-sS",
            "--max-time",
            "10",
            "-f",
            "-w",
            "\n%{time_total}\n",
            URL,
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let secs: f64 = text
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(f64::INFINITY);
    (Duration::from_secs_f64(secs.min(1e6)), text)
}

/// The value of the sample whose name and labels are `series`.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// Waits until the scrape satisfies `ok`; the last scrape.
fn scrape_until(ns: &Netns, secs: u64, mut ok: impl FnMut(&str) -> bool) -> (bool, String) {
    let mut last = String::new();
    let hit = wait_for(Duration::from_secs(secs), || {
        last = scrape(ns);
        ok(&last)
    });
    (hit, last)
}

#[test]
fn tunnels_neighbours_backends_and_firewall_rules_are_counted() {
    let name = "metrics_daemons";
    if !require_root(name)
        || !require_program(name, CHARON)
        || !require_program(name, OSPFD)
        || !require_program(name, BGPD)
        || !require_program(name, "/usr/bin/vtysh")
        || !require_program(name, "/usr/sbin/haproxy")
        || !require_program(name, "/usr/bin/curl")
    {
        return;
    }
    let t0 = Instant::now();
    let (dir, sw) = topology("vr-metrics-daemons");
    sw.ip(&["addr", "add", "192.0.2.1/24", "dev", "br0"]);
    let mut s1 = site(&sw, dir.path(), 1, "192.0.2.10", "10.1.1.0/24", true);
    let s2 = site(&sw, dir.path(), 2, "192.0.2.20", "10.2.0.0/24", true);
    let mut o3 = Netns::new("mo3");
    veth(&s1.router, "eth3", &o3, "eth3");
    s1.router
        .ip(&["addr", "replace", "172.16.0.1/30", "dev", "eth3"]);
    o3.ip(&["addr", "add", "172.16.0.2/30", "dev", "eth3"]);
    let frr1 = Frr::start(&mut s1.router, &dir.path().join("frr1"), "vr1", "");
    frr1.add_bgpd(&mut s1.router, "hostname vr1\n");
    let frr3 = Frr::start(&mut o3, &dir.path().join("frr3"), "o3", PEER_OSPF);
    frr3.add_bgpd(&mut o3, PEER_BGP);
    let rw = warrior(&sw, dir.path(), 1);
    rw.configure("alice", ALICE_PW);
    let script = dir.path().join("backend.py");
    std::fs::write(&script, BACKEND).unwrap();
    let mut h1 = s1.host;
    let backend = h1.spawn(
        "python3",
        &[script.to_str().unwrap()],
        Stdio::null(),
        Stdio::null(),
    );

    // vr1's agent again, now with FRR, the endpoint on loopback and a quick refresh.
    s1.agent.stop();
    s1.agent.extra_args.extend([
        "--frr-vty-dir".to_string(),
        frr1.dir.display().to_string(),
        "--frr-config".into(),
        frr1.dir.join("frr.conf").display().to_string(),
        "--metrics-listen".into(),
        "127.0.0.1:9100".into(),
    ]);
    s1.agent
        .env
        .push(("VR_AGENT_METRICS_REFRESH_MS".into(), "200".into()));
    s1.agent.start();

    let back = tunnel(
        "192.0.2.20",
        "10.2.0.0/24",
        "192.0.2.10",
        "10.1.1.0/24",
        PSK,
        true,
        3600,
    );
    let (c, r) = s2.agent.apply_text("vpn.json", &site_push(&s2, &[back]));
    assert_eq!(c, 0, "{r}");
    let (c, r) = s1.agent.apply_text("all.json", &vr1_push(true, true));
    assert_eq!(c, 0, "{r}");
    let vr = &s1.router;

    // Tunnel up, OSPF Full, the backend up.
    let up = format!("vr_tunnel_up{TUNNEL}");
    let (ok, text) = scrape_until(vr, 30, |t| {
        value(t, &up) == Some(1.0)
            && value(t, r#"vr_ospf_neighbors{state="Full"}"#) == Some(1.0)
            && value(t, r#"vr_bgp_neighbors{state="Established"}"#) == Some(1.0)
            && value(t, &format!("vr_lb_backends_up{LISTENER}")) == Some(1.0)
    });
    assert!(
        ok,
        "not all up after 30 s:\n{}\nlog:\n{}",
        text.lines()
            .filter(|l| l.contains("tunnel")
                || l.contains("curl")
                || l.contains("neighbors")
                || l.contains("lb_")
                || l.contains("firewall"))
            .collect::<Vec<_>>()
            .join("\n"),
        s1.agent.log_text()
    );
    println!(
        "tunnel up, OSPF Full, BGP Established, backend up {:.1} s after the start",
        t0.elapsed().as_secs_f64()
    );
    assert_eq!(
        value(&text, &format!("vr_lb_backends{LISTENER}")),
        Some(1.0)
    );
    assert!(text.contains(RULE8), "rule 8 has no series:\n{text}");

    // A road warrior connects: its SA is a tunnel of its own, labelled with its address.
    let secs = rw.initiate("v2").expect("road warrior connects");
    let (ok, text) = scrape_until(vr, 5, |t| {
        value(t, &format!("vr_tunnel_up{CLIENT}")) == Some(1.0)
    });
    assert!(ok, "road warrior not counted up:\n{text}");
    println!("road warrior up in {secs:.2} s and counted");

    // Bytes through the tunnel rise with a ping through it.
    let bytes_out = format!(
        "vr_tunnel_bytes_total{}",
        TUNNEL.replace('}', r#",direction="out"}"#)
    );
    let before = value(&text, &bytes_out).unwrap_or(0.0);
    assert!(
        wait_for(Duration::from_secs(10), || ping(&h1, "10.2.0.10", 1)),
        "no ping through the tunnel"
    );
    let out = h1.exec(
        "ping",
        &[
            "-c",
            "10",
            "-i",
            "0.05",
            "-s",
            "1000",
            "-W",
            "1",
            "10.2.0.10",
        ],
    );
    assert!(out.status.success(), "ping through the tunnel failed");
    let (ok, text) = scrape_until(vr, 5, |t| {
        value(t, &bytes_out).is_some_and(|v| v - before >= 10_000.0)
    });
    println!(
        "tunnel bytes out: {before} -> {:?} after 10 pings of 1028 bytes",
        value(&text, &bytes_out)
    );
    assert!(ok, "tunnel bytes did not rise by 10 000:\n{text}");

    // The firewall rule admitting port 80 counts the connections to the listener.
    let fw_before = value(&text, RULE7).unwrap_or(0.0);
    for _ in 0..3 {
        let out = sw.exec("curl", &["-sS", "-m", "3", "http://192.0.2.10/"]);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "h1",
            "through the listener: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let (ok, text) = scrape_until(vr, 5, |t| {
        value(t, RULE7).is_some_and(|v| v - fw_before >= 3.0)
    });
    let bytes7 = RULE7.replace("_packets_", "_bytes_");
    println!(
        "rule 7: packets {fw_before} -> {:?}, bytes {:?} after 3 connections",
        value(&text, RULE7),
        value(&text, &bytes7)
    );
    assert!(ok, "rule 7 did not count 3 connections:\n{text}");
    assert!(
        value(&text, &bytes7).is_some_and(|b| b >= 3.0 * 40.0),
        "{text}"
    );

    // Egress: rule 31 admits h1's ping out (its first packet: the echoes that follow belong
    // to the flow), the policy's default drops a TCP connection attempt.
    let egress = |rule: &str| {
        format!(
            r#"vr_firewall_rule_packets_total{{family="ip",kind="egress",scope="10.1.1.0/24",rule="{rule}"}}"#
        )
    };
    let (e31, edef) = (
        value(&text, &egress("31")).unwrap_or(0.0),
        value(&text, &egress("default")).unwrap_or(0.0),
    );
    assert!(ping(&h1, "192.0.2.1", 2), "h1 cannot ping out");
    let refused = vr_tests::traffic::tcp_probe(&h1, "192.0.2.1", 9, Duration::from_secs(1));
    assert!(refused.is_err(), "egress default let TCP out: {refused:?}");
    let (ok, text) = scrape_until(vr, 5, |t| {
        value(t, &egress("31")).is_some_and(|v| v > e31)
            && value(t, &egress("default")).is_some_and(|v| v > edef)
    });
    println!(
        "egress rule 31: packets {e31} -> {:?}; default drop: {edef} -> {:?}",
        value(&text, &egress("31")),
        value(&text, &egress("default"))
    );
    assert!(ok, "egress rule or default not counted:\n{text}");
    // The tier's ACL (traffic from lan0) let every ping of h1 out by its rule number 1.
    let acl = r#"vr_firewall_rule_packets_total{family="ip",kind="acl_out",scope="lan0",rule="1"}"#;
    println!("acl out rule 1: packets {:?}", value(&text, acl));
    assert!(value(&text, acl).is_some_and(|v| v >= 2.0), "{text}");

    // The backend's server stops: 0 of 1 up.
    // SAFETY: kill(2) of a process this test spawned.
    unsafe { libc::kill(backend as i32, libc::SIGKILL) };
    let down = Instant::now();
    let (ok, text) = scrape_until(vr, 10, |t| {
        value(t, &format!("vr_lb_backends_up{LISTENER}")) == Some(0.0)
    });
    assert!(ok, "backend still up:\n{text}");
    println!(
        "backend counted down {:.1} s after its server stopped",
        down.elapsed().as_secs_f64()
    );

    // A hung charon (stopped): every scrape still answers at once, from the last snapshot; the
    // read gives up on charon at the VICI deadline and leaves the tunnels out, the rest stays;
    // charon back, the tunnel is counted up again.
    let charon = s1.charon.as_ref().expect("charon of vr1").pid as i32;
    // SAFETY: kill(2) of a process this test's harness spawned.
    unsafe { libc::kill(charon, libc::SIGSTOP) };
    let hung = Instant::now();
    let mut slowest = Duration::ZERO;
    let mut text = String::new();
    let gave_up = wait_for(Duration::from_secs(15), || {
        let (took, t) = timed_scrape(vr);
        text = t;
        slowest = slowest.max(took);
        !text.contains("vr_tunnel_up") && text.contains(&format!("vr_lb_backends{LISTENER}"))
    });
    let gave_up_after = hung.elapsed();
    // SAFETY: as above.
    unsafe { libc::kill(charon, libc::SIGCONT) };
    println!(
        "charon stopped: tunnels left out after {:.1} s, slowest scrape meanwhile {} ms",
        gave_up_after.as_secs_f64(),
        slowest.as_millis()
    );
    assert!(gave_up, "tunnels still listed with charon stopped:\n{text}");
    assert!(
        text.contains(r#"vr_ospf_neighbors{state="Full"} 1"#),
        "OSPF lost with charon stopped:\n{text}"
    );
    // Far below the 5 s charon would have cost a scrape that waited for it.
    assert!(
        slowest < Duration::from_secs(2),
        "a scrape took {slowest:?}"
    );
    let (ok, text) = scrape_until(vr, 10, |t| value(t, &up) == Some(1.0));
    assert!(ok, "tunnel not counted up after charon resumed:\n{text}");

    // Rule 8 revoked and the tunnel removed: their series go; rule 7's stays.
    let (c, r) = s1.agent.apply_text("less.json", &vr1_push(false, false));
    assert_eq!(c, 0, "{r}");
    let (ok, text) = scrape_until(vr, 10, |t| {
        !t.contains(RULE8) && !t.contains(TUNNEL) && t.contains(RULE7) && t.contains(CLIENT)
    });
    assert!(ok, "revoked series still there:\n{text}");
    // Nothing replaced the table behind the pushes (a replace starts every rule's counter
    // again: the listener's rule once made each observation replace it).
    assert!(
        !text.contains(r#"vr_self_heal_repairs_total{concern="nftables"}"#),
        "the firewall table was replaced without a push:\n{text}"
    );
    for secret in [PSK, RA_PSK, ALICE_PW] {
        assert!(!text.contains(secret), "a secret in the metrics");
        assert!(!s1.agent.log_text().contains(secret), "a secret in the log");
    }
    println!(
        "test took {:.1} s; last read of the system {:?} s",
        t0.elapsed().as_secs_f64(),
        value(&text, "vr_metrics_read_seconds")
    );
}
