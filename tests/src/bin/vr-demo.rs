//! The demo router: vr-agent inside throwaway network namespaces, fed the `examples/demo/`
//! pushes, proven with real traffic through NAT, a load balancer (the agent's haproxy), an
//! IPsec tunnel, a road warrior of the remote-access VPN, OSPF, BGP and IPv6 (SLAAC from the
//! agent's radvd), a Prometheus scrape from the control network, and with the
//! clients real guests use against vr1's guest services (DHCP and DNS from the agent's
//! dnsmasq, metadata, user data and the password server) and the CloudStack front doors.
//!
//! ```text
//!   h1 10.1.1.10/.20 ─┐
//!                    br1 (sw) ─eth0─ vr1 ─eth2─┐            ┌─ ext 192.0.2.100 ("internet")
//!   g1 DHCP: .30 ────┘     10.1.1.1  │ 192.0.2.10-12      br0 (sw)
//!                                    eth3                     └─ vr2 192.0.2.20 ─lan0─ h2 10.2.0.10
//!                                    │ 172.16.0.1/30 (OSPF; BGP AS 65000 <-> AS 65003)
//!                                    vr3 ─lan0─ h3 10.3.0.10
//!
//!   ctl 169.254.0.1 ─c0─eth1─ vr1 169.254.0.5 (control network; metrics on :9100)
//!   IPv6: vr1 eth0 2001:db8:10::1/64 (g1 and h1 by SLAAC), eth2 2001:db8:ff::1, ext ::100
//! ```
//! vr1 and vr2 each run vr-agent and charon (kernel-libipsec); vr1 and vr3 run FRR (ospfd,
//! bgpd); vr1's agent also runs haproxy (backends h1 .10 and .20 on :8081) and radvd. g1 is a
//! guest VM with no address until vr1's dnsmasq leases it one.
//! Every namespace, process and file is removed at the end. Exit 0 only if every check passed.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use vr_tests::guest_client::{curl, dig_a, password_request, udhcpc_once};
use vr_tests::java_answers;
use vr_tests::peers::{Charon, Frr, BGPD, CHARON, OSPFD};
use vr_tests::road_warrior::{warrior, RA_PSK, SERVER};
use vr_tests::traffic::{ping, tcp_probe, tcp_server};
use vr_tests::{require_program, require_root, veth, wait_for, AgentProc, Netns};

/// g1's MAC, address, name and instance id: `examples/demo/vr1.json` (`dhcp`, `metadata`).
const G1_MAC: &str = "02:00:0a:01:01:1e";
const G1_IP: &str = "10.1.1.30";
/// g1's user data in vr1.json (base64 there), decoded.
const G1_USER_DATA: &str = "#cloud-config\nhostname: web1\n# the demo guest's user data\n";

/// vr3's BGP side: AS 65003, vr1 (AS 65000, from the `bgppeers` push) its only neighbour.
const VR3_BGP: &str = "hostname vr3\nrouter bgp 65003\n bgp router-id 172.16.0.2\n no bgp ebgp-requires-policy\n timers bgp 1 3\n neighbor 172.16.0.1 remote-as 65000\n neighbor 172.16.0.1 timers connect 1\n address-family ipv4 unicast\n  neighbor 172.16.0.1 activate\n exit-address-family\n";

/// CloudStack's `bgppeers` push for vr1's guest network: vr3 as its peer.
const BGP_PEERS: &str = r#"{"type":"bgppeers","delete_from_processed_cache":false,"peers":[{"peer_id":1,"peer_as_number":65003,"ip4_address":"172.16.0.2","network_id":204,"network_as_number":65000,"guest_ip4_cidr":"10.1.1.0/24","details":{}}]}"#;

/// The load balancer's backends on h1 (`lb` in vr1.json): an HTTP server naming itself.
const BACKEND: &str = r#"
import http.server, sys
addr, name = sys.argv[1], sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    def do_GET(self):
        body = (name + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer.allow_reuse_address = True
http.server.ThreadingHTTPServer((addr, 8081), H).serve_forever()
"#;

/// vr1's Prometheus endpoint on its control address (`--metrics-listen`), and the series of
/// the port forward 192.0.2.11:8080.
const METRICS_URL: &str = "http://169.254.0.5:9100/metrics";
const FORWARD_BYTES: &str =
    r#"vr_port_forward_bytes_total{public_ip="192.0.2.11",protocol="tcp",ports="8080"}"#;

const VR3_OSPF: &str = "interface eth3\n ip ospf area 0\n ip ospf network point-to-point\n ip ospf hello-interval 1\n ip ospf dead-interval 4\n!\ninterface lan0\n ip ospf area 0\n ip ospf passive\n!\nrouter ospf\n ospf router-id 172.16.0.2\n timers throttle spf 0 50 1000\n timers throttle lsa all 0\n timers lsa min-arrival 0\n!\n";

fn main() -> ExitCode {
    if !require_root("vr-demo")
        || !require_program("vr-demo", CHARON)
        || !require_program("vr-demo", OSPFD)
        || !require_program("vr-demo", BGPD)
        || [
            "/usr/sbin/dnsmasq",
            "/bin/busybox",
            "/usr/bin/dig",
            "/usr/bin/curl",
            "/usr/bin/wget",
            "/usr/sbin/haproxy",
            "/usr/sbin/radvd",
            "/usr/bin/python3",
        ]
        .iter()
        .any(|p| !require_program("vr-demo", p))
    {
        return ExitCode::from(1);
    }
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/demo");
    let dir = tempfile::Builder::new()
        .prefix("vr-demo")
        .tempdir()
        .expect("tempdir");
    let t0 = Instant::now();

    println!("== building the topology (namespaces h1 g1 vr1 sw ext vr2 h2 vr3 h3 ctl)");
    let mut h1 = Netns::new("h1");
    let g1 = Netns::new("g1");
    let ctl = Netns::new("ctl");
    let mut vr1 = Netns::new("vr1");
    let sw = Netns::new("sw");
    let mut ext = Netns::new("ext");
    let mut vr2 = Netns::new("vr2");
    let mut h2 = Netns::new("h2");
    let mut vr3 = Netns::new("vr3");
    let mut h3 = Netns::new("h3");
    // The hosts' IPv6 addresses are unique by construction: no duplicate address detection
    // (the router's own are added `nodad` by the agent).
    for ns in [&h1, &g1, &ext] {
        ns.sysctl("net.ipv6.conf.all.accept_dad=0");
        ns.sysctl("net.ipv6.conf.default.accept_dad=0");
    }
    sw.ip(&["link", "add", "br0", "type", "bridge"]);
    sw.ip(&["link", "set", "br0", "up"]);
    // vr1's guest LAN is a second bridge: h1 with its static addresses, g1 by DHCP.
    sw.ip(&["link", "add", "br1", "type", "bridge"]);
    sw.ip(&["link", "set", "br1", "up"]);
    veth(&h1, "eth0", &sw, "p-h1");
    veth(&g1, "eth0", &sw, "p-g1");
    veth(&vr1, "eth0", &sw, "p-vr1g");
    g1.ip(&["link", "set", "eth0", "address", G1_MAC]);
    // g1 boots (link up) once vr1 is configured: its first router solicitation gets an answer.
    g1.ip(&["link", "set", "eth0", "down"]);
    veth(&ctl, "c0", &vr1, "eth1");
    veth(&vr1, "eth2", &sw, "p-vr1");
    veth(&ext, "eth0", &sw, "p-ext");
    veth(&vr2, "wan0", &sw, "p-vr2");
    veth(&vr2, "lan0", &h2, "eth0");
    veth(&vr1, "eth3", &vr3, "eth3");
    veth(&vr3, "lan0", &h3, "eth0");
    for p in ["p-vr1", "p-ext", "p-vr2"] {
        sw.ip(&["link", "set", p, "master", "br0"]);
    }
    for p in ["p-h1", "p-g1", "p-vr1g"] {
        sw.ip(&["link", "set", p, "master", "br1"]);
    }
    // Hosts and the peers the agent does not manage get their addresses here; vr1's and vr2's
    // addresses, default routes and policy routing come from their pushes.
    h1.ip(&["addr", "add", "10.1.1.10/24", "dev", "eth0"]);
    h1.ip(&["addr", "add", "10.1.1.20/24", "dev", "eth0"]);
    h1.ip(&["route", "add", "default", "via", "10.1.1.1"]);
    ext.ip(&["addr", "add", "192.0.2.100/24", "dev", "eth0"]);
    ext.ip(&[
        "-6",
        "addr",
        "add",
        "2001:db8:ff::100/64",
        "dev",
        "eth0",
        "nodad",
    ]);
    ext.ip(&[
        "-6",
        "route",
        "add",
        "2001:db8:10::/64",
        "via",
        "2001:db8:ff::1",
    ]);
    ctl.ip(&["addr", "add", "169.254.0.1/16", "dev", "c0"]);
    // vr1's control address is there before the agent starts (as on a booted system VM), so
    // `--metrics-listen` binds at once; the push then manages it.
    vr1.ip(&["addr", "add", "169.254.0.5/16", "dev", "eth1"]);
    h2.ip(&["addr", "add", "10.2.0.10/24", "dev", "eth0"]);
    h2.ip(&["route", "add", "default", "via", "10.2.0.1"]);
    vr3.ip(&["addr", "add", "172.16.0.2/30", "dev", "eth3"]);
    vr3.ip(&["addr", "add", "10.3.0.1/24", "dev", "lan0"]);
    h3.ip(&["addr", "add", "10.3.0.10/24", "dev", "eth0"]);
    h3.ip(&["route", "add", "default", "via", "10.3.0.1"]);
    // vr1 and vr2 run vr-agent, which turns on forwarding and sets rp_filter itself; vr3 is a
    // plain FRR peer the harness configures like any neighbour router.
    vr3.sysctl("net.ipv4.ip_forward=1");

    // The load balancer's backends, up before vr1's haproxy starts checking them.
    let backend = dir.path().join("backend.py");
    std::fs::write(&backend, BACKEND).expect("backend.py");
    for (addr, name) in [("10.1.1.10", "h1-a"), ("10.1.1.20", "h1-b")] {
        h1.spawn(
            "python3",
            &[backend.to_str().unwrap(), addr, name],
            std::process::Stdio::null(),
            std::process::Stdio::null(),
        );
    }

    println!("== starting charon in vr1 and vr2, FRR in vr1 and vr3 (ospfd, bgpd)");
    let charon1 = Charon::start(&mut vr1, &dir.path().join("vr1-charon"));
    let charon2 = Charon::start(&mut vr2, &dir.path().join("vr2-charon"));
    let frr1 = Frr::start(&mut vr1, &dir.path().join("vr1-frr"), "vr1", "");
    frr1.add_bgpd(&mut vr1, "hostname vr1\n");
    let frr3 = Frr::start(&mut vr3, &dir.path().join("vr3-frr"), "vr3", VR3_OSPF);
    frr3.add_bgpd(&mut vr3, VR3_BGP);

    println!("== starting vr-agent in vr1 and vr2");
    let mut agent1 = AgentProc::new(Some(&vr1.name));
    agent1.extra_args = vec![
        "--vici-socket".into(),
        charon1.vici_socket.display().to_string(),
        "--frr-vty-dir".into(),
        frr1.dir.display().to_string(),
        "--frr-config".into(),
        frr1.dir.join("frr.conf").display().to_string(),
        "--metrics-listen".into(),
        "169.254.0.5:9100".into(),
    ];
    agent1
        .env
        .push(("VR_AGENT_METRICS_REFRESH_MS".into(), "200".into()));
    agent1.start();
    let mut agent2 = AgentProc::new(Some(&vr2.name));
    agent2.extra_args = vec![
        "--vici-socket".into(),
        charon2.vici_socket.display().to_string(),
    ];
    agent2.start();

    println!("== pushing examples/demo/vr2.json to vr2 and examples/demo/vr1.json to vr1");
    for (agent, file) in [(&agent2, "vr2.json"), (&agent1, "vr1.json")] {
        let out = agent.cli(&["apply", examples.join(file).to_str().unwrap()]);
        print!("{}", String::from_utf8_lossy(&out.stdout));
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
    }
    // vr1's guest network gets vr3 as its BGP peer the CloudStack way; it converges while the
    // other checks run.
    let (code, r) = agent1.apply_text("bgppeers.json", BGP_PEERS);
    println!("bgppeers: exit {code}");
    if code != 0 {
        eprintln!("{r}");
    }
    g1.ip(&["link", "set", "eth0", "up"]);

    // Servers behind the NAT and on the "internet".
    tcp_server(&mut h1, "10.1.1.10", 80);
    tcp_server(&mut h1, "10.1.1.10", 7000);
    tcp_server(&mut h1, "10.1.1.10", 7001);
    tcp_server(&mut h1, "10.1.1.20", 22);
    tcp_server(&mut ext, "192.0.2.100", 9999);
    tcp_server(&mut h2, "10.2.0.10", 5001);
    tcp_server(&mut h3, "10.3.0.10", 5002);

    let short = Duration::from_secs(2);
    let mut checks: Vec<(&str, bool, String)> = Vec::new();
    let mut check = |name: &'static str, ok: bool, detail: String| {
        println!(
            "{:>3}. {:<4} {name}: {detail}",
            checks.len() + 1,
            if ok { "PASS" } else { "FAIL" }
        );
        checks.push((name, ok, detail));
    };
    // `netusage.sh -g` as the management server runs it: the front door in vr1's namespace.
    let netusage = || {
        let out = agent1.cli(&["cloudstack", "netusage", "-g"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let stats = java_answers::network_stats(out.status.success(), &text);
        (stats, text.trim().to_string(), out.stderr.is_empty())
    };
    let (usage0, _, _) = netusage();
    println!("== traffic");
    let r = tcp_probe(&ext, "192.0.2.11", 8080, short);
    check(
        "port forward 192.0.2.11:8080 -> h1:80",
        matches!(&r, Ok(s) if s.contains("local=10.1.1.10:80")),
        format!("{r:?}"),
    );
    let r = tcp_probe(&ext, "192.0.2.11", 9001, short);
    check(
        "port range 192.0.2.11:9001 -> h1:7001",
        matches!(&r, Ok(s) if s.contains("local=10.1.1.10:7001")),
        format!("{r:?}"),
    );
    let r = tcp_probe(&h1, "192.0.2.100", 9999, short);
    check(
        "source NAT h1 -> ext seen as 192.0.2.10",
        matches!(&r, Ok(s) if s.contains("peer=192.0.2.10 ")),
        format!("{r:?}"),
    );
    let r = tcp_probe(&ext, "192.0.2.12", 22, short);
    check(
        "static NAT 192.0.2.12 -> h1 10.1.1.20",
        matches!(&r, Ok(s) if s.contains("local=10.1.1.20:22")),
        format!("{r:?}"),
    );
    let r = tcp_probe(&ext, "192.0.2.11", 22, short);
    check(
        "firewall drops 192.0.2.11:22 (no rule)",
        r.is_err(),
        format!("{r:?}"),
    );

    let (usage1, text, quiet) = netusage();
    check(
        "vr-agent cloudstack netusage -g counted the NAT traffic",
        quiet && usage1.0 > usage0.0 && usage1.1 > usage0.1,
        format!(
            "sent/received {}/{} -> {}/{} bytes (`{text}`)",
            usage0.0, usage0.1, usage1.0, usage1.1
        ),
    );

    // Prometheus, scraped from the control network as a collector would.
    let scrape = || {
        let out = ctl.exec("curl", &["-sS", "--max-time", "2", "-f", METRICS_URL]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let forward_bytes = |t: &str| -> Option<f64> {
        t.lines()
            .find(|l| l.starts_with(FORWARD_BYTES))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    };
    let mut bytes = None;
    wait_for(Duration::from_secs(5), || {
        bytes = scrape().and_then(|t| forward_bytes(&t));
        bytes.is_some_and(|b| b > 0.0)
    });
    check(
        "metrics: ctl scrapes vr1's /metrics on 169.254.0.5:9100, the port forward counted",
        bytes.is_some_and(|b| b > 0.0),
        format!("{FORWARD_BYTES} {bytes:?}"),
    );

    // Load balancing: the agent's haproxy on 192.0.2.11:80, h1's two addresses behind it.
    let lb_url = "http://192.0.2.11/";
    let get = || {
        let r = curl(&ext, &[], lb_url);
        if r.0 == 200 {
            r.1.trim().to_string()
        } else {
            format!("HTTP {}", r.0)
        }
    };
    // haproxy starts with the push; both backends are in rotation once two GETs differ.
    let mut last = String::new();
    wait_for(Duration::from_secs(10), || {
        let r = get();
        let both = r.starts_with("h1-") && last.starts_with("h1-") && r != last;
        last = r;
        both
    });
    let seen: Vec<String> = (0..4).map(|_| get()).collect();
    let alternates =
        seen.iter().all(|s| s == "h1-a" || s == "h1-b") && seen.windows(2).all(|w| w[0] != w[1]);
    check(
        "load balancer: curl ext -> 192.0.2.11:80 (haproxy), round robin over h1's .10 and .20",
        alternates,
        format!("4 GETs -> {seen:?}"),
    );

    let up = wait_for(Duration::from_secs(10), || ping(&h1, "10.2.0.10", 1));
    check(
        "IPsec tunnel: ping h1 -> h2 (10.1.1.0/24 <-> 10.2.0.0/24)",
        up,
        if up {
            "replies".into()
        } else {
            "no reply".into()
        },
    );
    let r = tcp_probe(&h1, "10.2.0.10", 5001, short);
    check(
        "IPsec tunnel: TCP h1 -> h2 keeps h1's address",
        matches!(&r, Ok(s) if s.contains("peer=10.1.1.10 ")),
        format!("{r:?}"),
    );

    // CheckS2SVpnConnectionsCommand: `checkbatchs2svpn.sh 192.0.2.20`, `ip:0:info&` = up.
    let out = agent1.cli(&["cloudstack", "check-s2s-vpn", "192.0.2.20"]);
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let s2s = java_answers::s2s(out.status.success(), &text);
    check(
        "vr-agent cloudstack check-s2s-vpn 192.0.2.20 says connected",
        s2s.get("192.0.2.20") == Some(&true) && text.starts_with("192.0.2.20:0:"),
        format!("`{text}`"),
    );

    // Remote-access VPN, pushed the CloudStack way: a road warrior on the public switch logs
    // in with IKEv2 EAP-MSCHAPv2, gets an address from the pool and reaches h1 unNATed.
    let ra = format!(
        r#"{{"type":"remoteaccessvpn","delete_from_processed_cache":false,"create":true,"ip_range":"10.1.9.1-10.1.9.20",
        "preshared_key":"{RA_PSK}","vpn_server_ip":"{SERVER}","local_ip":"10.1.1.1","local_cidr":"10.1.1.0/24"}}"#
    );
    let users = r#"{"type":"vpnuserlist","delete_from_processed_cache":false,"vpn_users":[{"user":"alice","password":"demo-alice-pw","add":true}]}"#;
    let pushed = [("ravpn.json", ra.as_str()), ("ravpn-users.json", users)]
        .iter()
        .all(|(f, t)| agent1.apply_text(f, t).0 == 0);
    let rw = warrior(&sw, dir.path(), 9);
    rw.configure("alice", "demo-alice-pw");
    let up = pushed && rw.initiate("v2").is_ok();
    let vip = rw.vip().unwrap_or_default();
    let r = tcp_probe(&rw.ns, "10.1.1.10", 7000, short);
    check(
        "remote-access VPN: road warrior (IKEv2 EAP) gets a pool IP and reaches h1",
        up && matches!(&r, Ok(s) if !vip.is_empty() && s.contains(&format!("peer={vip} "))),
        format!("pushed {pushed}, virtual IP {vip:?}, {r:?}"),
    );

    let learned = wait_for(Duration::from_secs(15), || {
        vr1.ip(&["route", "show", "10.3.0.0/24"])
            .contains("proto ospf")
    });
    check(
        "OSPF: vr1 learned 10.3.0.0/24 from vr3",
        learned,
        vr1.ip(&["route", "show", "proto", "ospf"])
            .trim()
            .replace('\n', "; "),
    );
    let r = tcp_probe(&h1, "10.3.0.10", 5002, short);
    check(
        "OSPF: TCP h1 -> h3 over the learned route",
        matches!(&r, Ok(s) if s.contains("peer=10.1.1.10 ")),
        format!("{r:?}"),
    );

    let learned = wait_for(Duration::from_secs(20), || {
        vr3.ip(&["route", "show", "10.1.1.0/24"])
            .contains("proto bgp")
    });
    check(
        "BGP: vr3 learned vr1's guest prefix 10.1.1.0/24 (bgppeers push), in its kernel table",
        learned,
        vr3.ip(&["route", "show", "10.1.1.0/24"])
            .trim()
            .replace('\n', "; "),
    );
    let r = tcp_probe(&h1, "10.3.0.10", 5002, short);
    check(
        "BGP: TCP h1 -> h3, h3's replies over vr3's BGP route",
        learned && matches!(&r, Ok(s) if s.contains("peer=10.1.1.10 ")),
        format!("{r:?}"),
    );

    guest_checks(&g1, &h1, dir.path(), &mut check);

    println!("== IPv6 (g1 by SLAAC from vr1's radvd)");
    let slaac = || -> Option<String> {
        let out = g1.ip(&["-6", "-o", "addr", "show", "dev", "eth0", "scope", "global"]);
        if out.contains("tentative") {
            return None;
        }
        out.split_whitespace()
            .skip_while(|w| *w != "inet6")
            .nth(1)
            .and_then(|a| a.split('/').next())
            .filter(|a| a.starts_with("2001:db8:10:"))
            .map(str::to_string)
    };
    let got = wait_for(Duration::from_secs(15), || {
        slaac().is_some()
            && g1
                .ip(&["-6", "route", "show", "default"])
                .contains("proto ra")
    });
    check(
        "IPv6: g1 configures a SLAAC address and default route from vr1's advertisements",
        got,
        format!(
            "{:?}, {}",
            slaac(),
            g1.ip(&["-6", "route", "show", "default"]).trim()
        ),
    );
    // Neighbour discovery on both links may still settle: the path counts once a ping passes.
    let pinged = got && wait_for(Duration::from_secs(8), || ping(&g1, "2001:db8:ff::100", 1));
    check(
        "IPv6: ping6 g1 -> ext 2001:db8:ff::100 through vr1 (ip6 vr)",
        pinged,
        if pinged {
            "replies".into()
        } else {
            "no reply".into()
        },
    );

    println!("== vr-agent status (vr1)");
    print!(
        "{}",
        String::from_utf8_lossy(&agent1.cli(&["status"]).stdout)
    );
    let failed = checks.iter().filter(|c| !c.1).count();
    println!(
        "{} passed, {} failed ({:.1} s)",
        checks.len() - failed,
        failed,
        t0.elapsed().as_secs_f64()
    );
    drop((agent1, agent2));
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// g1, a guest with no address, gets everything a CloudStack guest asks its router for, with
/// the clients guests use.
fn guest_checks(
    g1: &Netns,
    h1: &Netns,
    dir: &std::path::Path,
    check: &mut impl FnMut(&'static str, bool, String),
) {
    println!("== guest services (g1 on vr1's guest LAN)");
    let g1_dir = dir.join("g1");
    std::fs::create_dir_all(&g1_dir).expect("g1 dir");
    let lease = udhcpc_once(g1, &g1_dir);
    let bound = g1
        .ip(&["-4", "-o", "addr", "show", "dev", "eth0"])
        .contains(&format!(" {G1_IP}/24 "));
    check(
        "DHCP: g1 (udhcpc) gets its pushed address from vr1's dnsmasq",
        bound
            && matches!(&lease, Ok(l) if l.contains(&format!("ip={G1_IP} router=10.1.1.1 dns=10.1.1.1 domain=demo.internal"))),
        format!("{lease:?}"),
    );
    let names = [
        ("web1", G1_IP),
        ("web1.demo.internal", G1_IP),
        ("data-server", "10.1.1.1"),
    ];
    let answers: Vec<String> = names
        .iter()
        .map(|(n, _)| dig_a(g1, "10.1.1.1", n))
        .collect();
    check(
        "DNS: dig @10.1.1.1 resolves the VM's name and data-server",
        names
            .iter()
            .zip(&answers)
            .all(|((_, want), got)| got == want),
        names
            .iter()
            .zip(&answers)
            .map(|((n, _), a)| format!("{n} -> {a:?}"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    // The listeners start with the push; give them the time a guest's boot would.
    let id_url = "http://10.1.1.1/latest/meta-data/instance-id";
    let mut id = (0, String::new());
    wait_for(Duration::from_secs(5), || {
        id = curl(g1, &[], id_url);
        id.0 == 200
    });
    check(
        "metadata: g1 fetches its instance-id over HTTP from the gateway",
        id == (200, "i-2-30-VM".to_string()),
        format!("GET {id_url} -> {} {:?}", id.0, id.1),
    );
    // cloud-init's `http://data-server/latest/user-data`, the name resolved by vr1's DNS above.
    let resolve = format!("data-server:80:{}", answers[2]);
    let ud = curl(
        g1,
        &["--resolve", &resolve],
        "http://data-server/latest/user-data",
    );
    check(
        "user data: g1 fetches its own, decoded, from data-server",
        ud == (200, G1_USER_DATA.to_string()),
        format!(
            "-> {} ({} bytes, as pushed: {})",
            ud.0,
            ud.1.len(),
            ud.1 == G1_USER_DATA
        ),
    );
    // The password is a secret: compared, never printed.
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/demo");
    let pushed: serde_json::Value =
        serde_json::from_slice(&std::fs::read(examples.join("vr1.json")).expect("vr1.json"))
            .expect("vr1.json is JSON");
    let pushed = pushed["passwords"]["pending"][G1_IP]["password"]
        .as_str()
        .unwrap_or("(none pushed)");
    let other = password_request(h1, "10.1.1.1", "send_my_password");
    let mine = password_request(g1, "10.1.1.1", "send_my_password");
    check(
        "password server: g1 gets its password (DomU_Request: send_my_password), h1 does not",
        mine.as_deref() == Some(pushed) && other.as_deref() == Some("saved_password"),
        format!(
            "g1: {}, h1 (10.1.1.10): {other:?}",
            match &mine {
                Some(p) if p == pushed => "the pushed password (not shown)",
                Some(_) => "another answer (not shown)",
                None => "no answer",
            }
        ),
    );
    let ack = password_request(g1, "10.1.1.1", "saved_password");
    let after = password_request(g1, "10.1.1.1", "send_my_password");
    check(
        "password server: g1 acknowledges (saved_password), then gets saved_password",
        ack.as_deref() == Some("saved_password") && after.as_deref() == Some("saved_password"),
        format!("ack -> {ack:?}, send_my_password -> {after:?}"),
    );
}
