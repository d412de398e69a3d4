//! The demo router: vr-agent inside throwaway network namespaces, fed the `examples/demo/`
//! pushes, proven with real traffic through NAT, an IPsec tunnel and OSPF.
//!
//! ```text
//!   h1 10.1.1.10/.20 ─eth0─ vr1 ─eth2─┐            ┌─ ext 192.0.2.100 (upstream, "internet")
//!                          │ 192.0.2.10-12      br0 (sw)
//!                          eth3                     └─ vr2 192.0.2.20 ─lan0─ h2 10.2.0.10
//!                          │ 172.16.0.1/30 (OSPF)
//!                          vr3 ─lan0─ h3 10.3.0.10
//! ```
//! vr1 and vr2 each run vr-agent and charon (kernel-libipsec); vr1 and vr3 run FRR.
//! Every namespace, process and file is removed at the end. Exit 0 only if every check passed.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use vr_tests::peers::{Charon, Frr, CHARON, OSPFD};
use vr_tests::traffic::{ping, tcp_probe, tcp_server};
use vr_tests::{require_program, require_root, veth, wait_for, AgentProc, Netns};

const VR3_OSPF: &str = "interface eth3\n ip ospf area 0\n ip ospf network point-to-point\n ip ospf hello-interval 1\n ip ospf dead-interval 4\n!\ninterface lan0\n ip ospf area 0\n ip ospf passive\n!\nrouter ospf\n ospf router-id 172.16.0.2\n timers throttle spf 0 50 1000\n timers throttle lsa all 0\n timers lsa min-arrival 0\n!\n";

fn main() -> ExitCode {
    if !require_root("vr-demo")
        || !require_program("vr-demo", CHARON)
        || !require_program("vr-demo", OSPFD)
    {
        return ExitCode::from(1);
    }
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/demo");
    let dir = tempfile::Builder::new()
        .prefix("vr-demo")
        .tempdir()
        .expect("tempdir");
    let t0 = Instant::now();

    println!("== building the topology (namespaces h1 vr1 sw ext vr2 h2 vr3 h3)");
    let mut h1 = Netns::new("h1");
    let mut vr1 = Netns::new("vr1");
    let sw = Netns::new("sw");
    let mut ext = Netns::new("ext");
    let mut vr2 = Netns::new("vr2");
    let mut h2 = Netns::new("h2");
    let mut vr3 = Netns::new("vr3");
    let mut h3 = Netns::new("h3");
    sw.ip(&["link", "add", "br0", "type", "bridge"]);
    sw.ip(&["link", "set", "br0", "up"]);
    veth(&h1, "eth0", &vr1, "eth0");
    veth(&vr1, "eth2", &sw, "p-vr1");
    veth(&ext, "eth0", &sw, "p-ext");
    veth(&vr2, "wan0", &sw, "p-vr2");
    veth(&vr2, "lan0", &h2, "eth0");
    veth(&vr1, "eth3", &vr3, "eth3");
    veth(&vr3, "lan0", &h3, "eth0");
    for p in ["p-vr1", "p-ext", "p-vr2"] {
        sw.ip(&["link", "set", p, "master", "br0"]);
    }
    // Hosts and the peers the agent does not manage get their addresses here; vr1's and vr2's
    // addresses, default routes and policy routing come from their pushes.
    h1.ip(&["addr", "add", "10.1.1.10/24", "dev", "eth0"]);
    h1.ip(&["addr", "add", "10.1.1.20/24", "dev", "eth0"]);
    h1.ip(&["route", "add", "default", "via", "10.1.1.1"]);
    ext.ip(&["addr", "add", "192.0.2.100/24", "dev", "eth0"]);
    h2.ip(&["addr", "add", "10.2.0.10/24", "dev", "eth0"]);
    h2.ip(&["route", "add", "default", "via", "10.2.0.1"]);
    vr3.ip(&["addr", "add", "172.16.0.2/30", "dev", "eth3"]);
    vr3.ip(&["addr", "add", "10.3.0.1/24", "dev", "lan0"]);
    h3.ip(&["addr", "add", "10.3.0.10/24", "dev", "eth0"]);
    h3.ip(&["route", "add", "default", "via", "10.3.0.1"]);
    // vr1 and vr2 run vr-agent, which turns on forwarding and sets rp_filter itself; vr3 is a
    // plain FRR peer the harness configures like any neighbour router.
    vr3.sysctl("net.ipv4.ip_forward=1");

    println!("== starting charon in vr1 and vr2, FRR in vr1 and vr3");
    let charon1 = Charon::start(&mut vr1, &dir.path().join("vr1-charon"));
    let charon2 = Charon::start(&mut vr2, &dir.path().join("vr2-charon"));
    let frr1 = Frr::start(&mut vr1, &dir.path().join("vr1-frr"), "vr1", "");
    let _frr3 = Frr::start(&mut vr3, &dir.path().join("vr3-frr"), "vr3", VR3_OSPF);

    println!("== starting vr-agent in vr1 and vr2");
    let mut agent1 = AgentProc::new(Some(&vr1.name));
    agent1.extra_args = vec![
        "--vici-socket".into(),
        charon1.vici_socket.display().to_string(),
        "--frr-vty-dir".into(),
        frr1.dir.display().to_string(),
        "--frr-config".into(),
        frr1.dir.join("frr.conf").display().to_string(),
    ];
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
            "   {:<4} {name}: {detail}",
            if ok { "PASS" } else { "FAIL" }
        );
        checks.push((name, ok, detail));
    };
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
