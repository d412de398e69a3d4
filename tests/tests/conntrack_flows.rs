//! Conntrack guarantees with real flows (issues 3 and 9): N established TCP flows through N
//! port forwards; revoking half of the mappings cuts exactly those flows while the others keep
//! exchanging data; a SIGKILL of the agent and a restart (replay) keep every surviving flow.
//! N = 100 (`VR_CT_FLOWS` to change).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::mpsc;
use std::time::Duration;

use vr_tests::{require_root, veth, AgentProc, Netns};

fn enter(ns: &str) {
    let f = std::fs::File::open(format!("/run/netns/{ns}")).expect("netns");
    // SAFETY: setns(2) on a namespace fd, affecting only the calling thread.
    assert_eq!(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
}

fn push(n: u32, keep: impl Fn(u32) -> bool) -> String {
    let forwards: Vec<String> = (0..n)
        .filter(|i| keep(*i))
        .map(|i| {
            format!(
                r#"{{"public_ip":"192.0.2.11","protocol":"tcp","public_ports":{},"private_ip":"10.1.1.10","private_ports":{}}}"#,
                20000 + i,
                30000 + i
            )
        })
        .collect();
    format!(
        r#"{{"schema":1,"interfaces":[{{"device":"eth0","role":"guest","addresses":["10.1.1.1/24"]}},{{"device":"eth2","role":"public","addresses":["192.0.2.11/24"]}}],
        "nat":{{"port_forwards":[{}]}},"firewall":{{"ingress":[{{"id":1,"public_ip":"192.0.2.11","protocol":"tcp","ports":"20000-29999","source_cidrs":[]}}]}}}}"#,
        forwards.join(",")
    )
}

/// Sends one byte on every flow and reports which got their echo back within the timeout
/// (all flows at once: a dead flow costs one timeout, not one each).
fn alive(flows: &mut [TcpStream]) -> Vec<bool> {
    for f in flows.iter_mut() {
        let _ = f.write_all(b"x");
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = flows
            .iter_mut()
            .map(|f| {
                scope.spawn(move || {
                    let mut b = [0u8; 1];
                    matches!(f.read(&mut b), Ok(1))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(false))
            .collect()
    })
}

#[test]
fn revoking_half_the_forwards_cuts_exactly_their_flows() {
    if !require_root("revoking_half_the_forwards_cuts_exactly_their_flows") {
        return;
    }
    let n: u32 = std::env::var("VR_CT_FLOWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let vr = Netns::new("ctvr");
    let srv = Netns::new("ctsrv");
    let cli = Netns::new("ctcli");
    veth(&vr, "eth0", &srv, "eth0");
    veth(&vr, "eth2", &cli, "eth0");
    vr.ip(&["addr", "replace", "10.1.1.1/24", "dev", "eth0"]);
    vr.ip(&["addr", "replace", "192.0.2.11/24", "dev", "eth2"]);
    srv.ip(&["addr", "add", "10.1.1.10/24", "dev", "eth0"]);
    srv.ip(&["route", "add", "default", "via", "10.1.1.1"]);
    cli.ip(&["addr", "add", "192.0.2.100/24", "dev", "eth0"]);
    let mut agent = AgentProc::new(Some(&vr.name));
    agent.start();
    let (code, r) = agent.apply_text("all.json", &push(n, |_| true));
    assert_eq!(code, 0, "{r}");

    // Echo servers on 30000..30000+n in the server namespace (one thread, nonblocking accept
    // loop per port would be heavy: one listener thread per port, each echoing its one flow).
    let (ready_tx, ready_rx) = mpsc::channel();
    let srv_name = srv.name.clone();
    std::thread::spawn(move || {
        enter(&srv_name);
        let listeners: Vec<TcpListener> = (0..n)
            .map(|i| TcpListener::bind(("10.1.1.10", 30000 + i as u16)).unwrap())
            .collect();
        ready_tx.send(()).unwrap();
        let mut handles = Vec::new();
        for l in listeners {
            handles.push(std::thread::spawn(move || {
                if let Ok((mut s, _)) = l.accept() {
                    let mut b = [0u8; 64];
                    while let Ok(k) = s.read(&mut b) {
                        if k == 0 || s.write_all(&b[..k]).is_err() {
                            break;
                        }
                    }
                }
            }));
        }
        for h in handles {
            let _ = h.join();
        }
    });
    ready_rx.recv().unwrap();
    let cli_name = cli.name.clone();
    let mut flows: Vec<TcpStream> = std::thread::spawn(move || {
        enter(&cli_name);
        (0..n)
            .map(|i| {
                let s = TcpStream::connect_timeout(
                    &format!("192.0.2.11:{}", 20000 + i).parse().unwrap(),
                    Duration::from_secs(3),
                )
                .expect("connect through the forward");
                s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                s
            })
            .collect()
    })
    .join()
    .unwrap();
    assert!(
        alive(&mut flows).iter().all(|a| *a),
        "not every flow works before the revoke"
    );

    // Revoke the odd-numbered forwards.
    let (code, r) = agent.apply_text("half.json", &push(n, |i| i % 2 == 0));
    assert_eq!(code, 0, "{r}");
    let ct = r[0]["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["concern"] == "conntrack")
        .unwrap()
        .clone();
    assert_eq!(
        ct["changes"],
        n / 2,
        "one delete filter per revoked forward: {ct}"
    );
    let after = alive(&mut flows);
    let wrongly_lost: Vec<u32> = (0..n)
        .filter(|i| i % 2 == 0 && !after[*i as usize])
        .collect();
    let wrongly_kept: Vec<u32> = (0..n)
        .filter(|i| i % 2 == 1 && after[*i as usize])
        .collect();
    assert!(
        wrongly_lost.is_empty(),
        "flows of kept forwards died: {wrongly_lost:?}"
    );
    assert!(
        wrongly_kept.is_empty(),
        "flows of revoked forwards still carry traffic: {wrongly_kept:?}"
    );

    // SIGKILL and restart with nothing changed: every surviving flow continues.
    agent.kill9();
    agent.start();
    let replay = alive(&mut flows);
    let lost: Vec<u32> = (0..n)
        .filter(|i| i % 2 == 0 && !replay[*i as usize])
        .collect();
    vr_tests::summary::record(vr_tests::summary::Row {
        check: "conntrack".into(),
        runs: u64::from(n),
        unit: "flows".into(),
        failures: (wrongly_lost.len() + wrongly_kept.len() + lost.len()) as u64,
        flows_lost_wrongly: Some((wrongly_lost.len() + lost.len()) as u64),
        ..Default::default()
    });
    assert!(lost.is_empty(), "flows lost across a restart: {lost:?}");

    // The first change after the restart is one element operation against the table the
    // replay found, not a whole replace: forward 0 goes, its flow with it, the others stay.
    let mark = agent.log_text().len();
    let (code, r) = agent.apply_text("after.json", &push(n, |i| i % 2 == 0 && i != 0));
    assert_eq!(code, 0, "{r}");
    let log = agent.log_text();
    let said = log.get(mark..).unwrap_or("");
    assert!(
        said.contains("delete element ip vr pf_exact { 192.0.2.11 . tcp . 20000 }")
            && !said.contains("plan at debug level"),
        "the first change after a restart was not one element operation:\n{said}"
    );
    let after = alive(&mut flows);
    assert!(!after[0], "the flow of forward 0 survived its revoke");
    let lost: Vec<u32> = (2..n)
        .filter(|i| i % 2 == 0 && !after[*i as usize])
        .collect();
    assert!(
        lost.is_empty(),
        "flows lost by the first change after a restart: {lost:?}"
    );
    println!("conntrack: {n} flows, {} revoked and cut, {} kept alive across revoke and restart, 0 lost wrongly", n / 2, n - n / 2);
}
