//! Issue 19 (BGP half) acceptance, one topology, real FRR everywhere:
//!
//! ```text
//!  h1 -eth0- [vr1: vr-agent + zebra/ospfd/bgpd, AS 65000] -eth3- vr3 (OSPF peer, area 0)
//!   10.1.1.10        |eth1 192.0.2.1/30, 2001:db8:ff::1/64    |eth2 192.0.2.5/30
//!                    p1 (AS 65101, password)                  p2 (AS 65102)
//! ```
//! BGP comes from real CloudStack `bgppeers` pushes. p1 learns the guest prefixes (IPv4 and
//! IPv6) and h1 pings p1 over them; a push changing p2 (password, then multihop, then its
//! removal) and a push adding a guest network leave p1's session up (its established count
//! and uptime go on) and OSPF's adjacency with vr3 Full all along. No password on any vtysh
//! command line.

use std::time::{Duration, Instant};

use vr_tests::peers::{Frr, BGPD, OSPFD};
use vr_tests::traffic::ping;
use vr_tests::{require_program, require_root, veth, wait_for, AgentProc, Netns};

const P1_PW: &str = "bgp-pw-p1-Xq7";
const P2_PW: &str = "bgp-pw-p2-Lm3";

const VR3: &str = "interface eth3\n ip ospf area 0\n ip ospf network point-to-point\n ip ospf hello-interval 1\n ip ospf dead-interval 4\n!\nrouter ospf\n ospf router-id 172.16.0.2\n!\n";

fn peer_conf(asn: u32, rid: &str, nbrs: &[(&str, Option<&str>, bool)]) -> String {
    let mut c = format!("router bgp {asn}\n bgp router-id {rid}\n no bgp ebgp-requires-policy\n no bgp default ipv4-unicast\n timers bgp 1 3\n");
    for (a, pw, _) in nbrs {
        c.push_str(&format!(
            " neighbor {a} remote-as 65000\n neighbor {a} timers connect 1\n"
        ));
        if let Some(pw) = pw {
            c.push_str(&format!(" neighbor {a} password {pw}\n"));
        }
    }
    for (af, v6) in [("ipv4", false), ("ipv6", true)] {
        c.push_str(&format!(" address-family {af} unicast\n"));
        for (a, _, is6) in nbrs {
            if *is6 == v6 {
                c.push_str(&format!("  neighbor {a} activate\n"));
            }
        }
        c.push_str(" exit-address-family\n");
    }
    c
}

fn interfaces(second_guest: bool) -> String {
    let extra = if second_guest {
        r#",{"device":"eth5","role":"guest","addresses":["10.1.2.1/24"]}"#
    } else {
        ""
    };
    format!(
        r#"{{"schema":1,
        "interfaces":[{{"device":"eth0","role":"guest","addresses":["10.1.1.1/24"]}},
                      {{"device":"eth1","role":"public","addresses":["192.0.2.1/30"]}},
                      {{"device":"eth2","role":"private_gateway","addresses":["192.0.2.5/30"]}},
                      {{"device":"eth3","role":"private_gateway","addresses":["172.16.0.1/30"]}}{extra}],
        "ospf":{{"router_id":"172.16.0.1","areas":[{{"id":"0.0.0.0"}}],
          "interfaces":[{{"device":"eth3","network_type":"point-to-point","hello_interval":1,"dead_interval":4}}],
          "networks":[{{"prefix":"172.16.0.0/30","area":"0.0.0.0"}},{{"prefix":"10.1.1.0/24","area":"0.0.0.0"}}]}}}}"#
    )
}

/// A CloudStack `bgppeers` push: p1 always; p2 with `p2` = Some((password, multihop)).
fn bgppeers(p2: Option<(Option<&str>, Option<u8>)>, second_network: bool) -> String {
    let p1 = |net: u32, cidr: &str, cidr6: &str| {
        format!(
            r#"{{"peer_id":1,"peer_as_number":65101,"ip4_address":"192.0.2.2","ip6_address":"2001:db8:ff::2","peer_password":"{P1_PW}","network_id":{net},"network_as_number":65000,"guest_ip4_cidr":"{cidr}","guest_ip6_cidr":"{cidr6}","details":{{}}}}"#
        )
    };
    let mut peers = vec![p1(204, "10.1.1.0/24", "2001:db8:1::1/64")];
    if second_network {
        peers.push(p1(205, "10.1.2.0/24", "2001:db8:2::/64"));
    }
    if let Some((pw, hop)) = p2 {
        let pw = pw
            .map(|p| format!(r#","peer_password":"{p}""#))
            .unwrap_or_default();
        let hop = hop
            .map(|h| format!(r#""EBGP_MultiHop":"{h}""#))
            .unwrap_or_default();
        peers.push(format!(
            r#"{{"peer_id":2,"peer_as_number":65102,"ip4_address":"192.0.2.6"{pw},"network_id":204,"network_as_number":65000,"guest_ip4_cidr":"10.1.1.0/24","details":{{{hop}}}}}"#
        ));
    }
    if peers.is_empty() {
        peers.push(r#"{"network_id":204}"#.into());
    }
    format!(
        r#"{{"type":"bgppeers","delete_from_processed_cache":false,"peers":[{}]}}"#,
        peers.join(",")
    )
}

/// (state, connectionsEstablished, uptime ms) of `peer` as `frr` sees it.
fn session(frr: &Frr, peer: &str) -> (String, u64, u64) {
    let j = frr.vtysh(&["show bgp summary json"]);
    let v: serde_json::Value = serde_json::from_str(&j).unwrap_or_default();
    for af in ["ipv4Unicast", "ipv6Unicast"] {
        let p = &v[af]["peers"][peer];
        if p.is_object() {
            return (
                p["state"].as_str().unwrap_or("").to_string(),
                p["connectionsEstablished"].as_u64().unwrap_or(0),
                p["peerUptimeMsec"].as_u64().unwrap_or(0),
            );
        }
    }
    (String::new(), 0, 0)
}

fn established(frr: &Frr, peer: &str, secs: u64) -> bool {
    wait_for(Duration::from_secs(secs), || {
        session(frr, peer).0 == "Established"
    })
}

fn bgp_route(ns: &Netns, prefix: &str, v6: bool) -> bool {
    let fam = if v6 { "-6" } else { "-4" };
    ns.ip(&[fam, "route", "show", prefix]).contains("proto bgp")
}

fn ospf_uptime(frr: &Frr) -> Option<u64> {
    let j = frr.vtysh(&["show ip ospf neighbor json"]);
    let v: serde_json::Value = serde_json::from_str(&j).ok()?;
    let n = v["neighbors"].as_object()?.values().next()?.get(0)?.clone();
    n["nbrState"]
        .as_str()?
        .starts_with("Full")
        .then(|| n["upTimeInMsec"].as_u64())?
}

fn apply(agent: &AgentProc, name: &str, text: &str) -> serde_json::Value {
    let (code, r) = agent.apply_text(name, text);
    assert_eq!(code, 0, "{name}: {r}");
    r
}

fn bgp_outcome(r: &serde_json::Value) -> (String, u64) {
    let o = r[0]["outcomes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|o| o["concern"] == "bgp")
        .cloned()
        .unwrap_or_default();
    (
        o["status"].as_str().unwrap_or("").into(),
        o["changes"].as_u64().unwrap_or(0),
    )
}

#[test]
fn peers_learn_guest_prefixes_and_changes_touch_one_session() {
    let t = "peers_learn_guest_prefixes_and_changes_touch_one_session";
    if !require_root(t) || !require_program(t, OSPFD) || !require_program(t, BGPD) {
        return;
    }
    let started = Instant::now();
    let dir = tempfile::Builder::new().prefix("vr-bgp").tempdir().unwrap();
    let h1 = Netns::new("bh1");
    let mut vr1 = Netns::new("bvr1");
    let mut vr3 = Netns::new("bvr3");
    let mut p1 = Netns::new("bp1");
    let mut p2 = Netns::new("bp2");
    veth(&h1, "eth0", &vr1, "eth0");
    veth(&vr1, "eth1", &p1, "eth1");
    veth(&vr1, "eth2", &p2, "eth1");
    veth(&vr1, "eth3", &vr3, "eth3");
    // A second guest NIC (its far end stays in vr1) and an IPv6 guest prefix on a NIC the
    // agent does not manage (the IPv6 guest addressing is another concern's).
    for (a, b) in [("eth5", "eth5p"), ("lan6", "lan6p")] {
        vr1.ip(&["link", "add", a, "type", "veth", "peer", "name", b]);
        vr1.ip(&["link", "set", a, "up"]);
        vr1.ip(&["link", "set", b, "up"]);
    }
    vr1.ip(&[
        "-6",
        "addr",
        "add",
        "2001:db8:1::1/64",
        "dev",
        "lan6",
        "nodad",
    ]);
    vr1.ip(&[
        "-6",
        "addr",
        "add",
        "2001:db8:ff::1/64",
        "dev",
        "eth1",
        "nodad",
    ]);
    p1.ip(&[
        "-6",
        "addr",
        "add",
        "2001:db8:ff::2/64",
        "dev",
        "eth1",
        "nodad",
    ]);
    p1.ip(&["addr", "add", "192.0.2.2/30", "dev", "eth1"]);
    p2.ip(&["addr", "add", "192.0.2.6/30", "dev", "eth1"]);
    vr3.ip(&["addr", "add", "172.16.0.2/30", "dev", "eth3"]);
    h1.ip(&["addr", "add", "10.1.1.10/24", "dev", "eth0"]);
    h1.ip(&["route", "add", "default", "via", "10.1.1.1"]);

    let frr1 = Frr::start(&mut vr1, &dir.path().join("vr1"), "vr1", "");
    frr1.add_bgpd(&mut vr1, "hostname vr1\n");
    let frr3 = Frr::start(&mut vr3, &dir.path().join("vr3"), "vr3", VR3);
    let frr_p1 = Frr::start(&mut p1, &dir.path().join("p1"), "p1", "");
    frr_p1.add_bgpd(
        &mut p1,
        &peer_conf(
            65101,
            "2.2.2.2",
            &[
                ("192.0.2.1", Some(P1_PW), false),
                ("2001:db8:ff::1", Some(P1_PW), true),
            ],
        ),
    );
    let frr_p2 = Frr::start(&mut p2, &dir.path().join("p2"), "p2", "");
    frr_p2.add_bgpd(
        &mut p2,
        &peer_conf(65102, "3.3.3.3", &[("192.0.2.5", None, false)]),
    );

    // The agent, with a vtysh wrapper on its PATH that logs every argv.
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let argv_log = dir.path().join("vtysh-argv.log");
    std::fs::write(
        bin.join("vtysh"),
        format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\nexec /usr/bin/vtysh \"$@\"\n",
            argv_log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        bin.join("vtysh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let mut agent = AgentProc::new(Some(&vr1.name));
    let frr_conf = frr1.dir.join("frr.conf");
    agent.extra_args = vec![
        "--frr-vty-dir".into(),
        frr1.dir.display().to_string(),
        "--frr-config".into(),
        frr_conf.display().to_string(),
    ];
    let path = std::env::var("PATH").unwrap_or_default();
    agent
        .env
        .push(("PATH".into(), format!("{}:{path}", bin.display())));
    agent.start();

    apply(&agent, "base.json", &interfaces(false));
    let ospf_up = ospf_uptime(&frr3);
    assert!(
        wait_for(Duration::from_secs(20), || ospf_uptime(&frr3).is_some()) || ospf_up.is_some(),
        "no OSPF adjacency: {}",
        frr3.vtysh(&["show ip ospf neighbor"])
    );
    let ospf_since = Instant::now();

    // 1. Both peers from one real CloudStack push; p1 learns both guest prefixes.
    let r = apply(
        &agent,
        "bgp_peers.json.1",
        &bgppeers(Some((None, None)), false),
    );
    assert_eq!(bgp_outcome(&r).0, "applied", "{r}");
    assert!(
        established(&frr_p1, "192.0.2.1", 30),
        "p1 v4: {}",
        frr_p1.vtysh(&["show bgp summary"])
    );
    assert!(
        established(&frr_p1, "2001:db8:ff::1", 30),
        "p1 v6: {}",
        frr_p1.vtysh(&["show bgp summary"])
    );
    assert!(
        established(&frr_p2, "192.0.2.5", 30),
        "p2: {}",
        frr_p2.vtysh(&["show bgp summary"])
    );
    assert!(
        wait_for(Duration::from_secs(15), || bgp_route(
            &p1,
            "10.1.1.0/24",
            false
        ) && bgp_route(
            &p1,
            "2001:db8:1::/64",
            true
        ) && bgp_route(
            &p2,
            "10.1.1.0/24",
            false
        )),
        "guest prefixes not learned: p1 {} / {}",
        p1.ip(&["route"]),
        p1.ip(&["-6", "route"])
    );
    // Real traffic over the learned route: h1 (no source NAT) reaches p1, whose way back is BGP.
    assert!(
        ping(&h1, "192.0.2.2", 2),
        "h1 cannot reach p1 over the BGP route"
    );
    // Routed (no source NAT), yet the firewall applies: p1 opens nothing towards h1.
    assert!(
        !ping(&p1, "10.1.1.10", 1),
        "a new inbound flow to a guest passed the firewall"
    );
    println!(
        "bgp: sessions up and prefixes learned {:.1} s after start",
        started.elapsed().as_secs_f64()
    );

    // p1's session as it must stay: one establishment, uptime growing.
    std::thread::sleep(Duration::from_millis(1200));
    let (_, est0, up0) = session(&frr1, "192.0.2.2");
    let (_, est0v6, _) = session(&frr1, "2001:db8:ff::2");
    let t0 = Instant::now();
    let p2_est = |frr: &Frr| session(frr, "192.0.2.6").1;
    let e_p2 = p2_est(&frr1);

    // 2. p2's password (both ends change; the router's side through the push).
    frr_p2.vtysh(&[
        "configure terminal",
        "router bgp 65102",
        &format!("neighbor 192.0.2.5 password {P2_PW}"),
    ]);
    let r = apply(
        &agent,
        "bgp_peers.json.2",
        &bgppeers(Some((Some(P2_PW), None)), false),
    );
    let (st, n) = bgp_outcome(&r);
    assert_eq!(
        (st.as_str(), n),
        ("applied", 1),
        "one line for p2's password: {r}"
    );
    assert!(
        wait_for(Duration::from_secs(20), || p2_est(&frr1) > e_p2
            && session(&frr1, "192.0.2.6").0 == "Established"),
        "p2 did not come back with its new password: {}",
        frr1.vtysh(&["show bgp summary"])
    );
    // 3. p2's multihop.
    let r = apply(
        &agent,
        "bgp_peers.json.3",
        &bgppeers(Some((Some(P2_PW), Some(2))), false),
    );
    assert_eq!(bgp_outcome(&r), ("applied".into(), 1), "{r}");
    assert!(established(&frr1, "192.0.2.6", 20), "p2 after multihop");
    // 4. A new guest network: its prefix is announced, no session resets.
    let e_p2 = p2_est(&frr1);
    apply(&agent, "base2.json", &interfaces(true));
    let r = apply(
        &agent,
        "bgp_peers.json.4",
        &bgppeers(Some((Some(P2_PW), Some(2))), true),
    );
    assert_eq!(
        bgp_outcome(&r),
        ("applied".into(), 2),
        "two network lines: {r}"
    );
    assert!(
        wait_for(Duration::from_secs(10), || bgp_route(
            &p1,
            "10.1.2.0/24",
            false
        ) && bgp_route(
            &p2,
            "10.1.2.0/24",
            false
        )),
        "10.1.2.0/24 not announced: {}",
        frr1.vtysh(&["show bgp ipv4 unicast"])
    );
    assert_eq!(p2_est(&frr1), e_p2, "a new network reset p2's session");
    // 5. p2 removed.
    let r = apply(&agent, "bgp_peers.json.5", &bgppeers(None, true));
    assert_eq!(
        bgp_outcome(&r),
        ("applied".into(), 1),
        "one `no neighbor`: {r}"
    );
    assert!(
        !frr1.vtysh(&["show running-config"]).contains("192.0.2.6"),
        "p2 still configured"
    );
    // The router's input accepts BGP from its neighbors only (p2's address left the set).
    let out = vr1.exec("nft", &["list", "set", "ip", "vr", "bgp_peers"]);
    let set = String::from_utf8_lossy(&out.stdout);
    assert!(
        set.contains("192.0.2.2") && !set.contains("192.0.2.6"),
        "{set} {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // p1's sessions never reset; OSPF stayed Full through all of it.
    let (st, est1, up1) = session(&frr1, "192.0.2.2");
    let (_, est1v6, _) = session(&frr1, "2001:db8:ff::2");
    let elapsed = t0.elapsed().as_millis() as u64;
    println!("bgp: p1 established {est0}->{est1} (v6 {est0v6}->{est1v6}), uptime {up0}->{up1} ms over {elapsed} ms of changes");
    assert_eq!(st, "Established");
    assert_eq!((est1, est1v6), (est0, est0v6), "p1's session was reset");
    assert!(
        up1 + 1500 >= up0 + elapsed,
        "p1's uptime restarted: {up0} -> {up1} over {elapsed} ms"
    );
    let ospf = ospf_uptime(&frr3).expect("OSPF adjacency lost");
    println!(
        "bgp: OSPF neighbour uptime {ospf} ms, {} ms since it came up",
        ospf_since.elapsed().as_millis()
    );
    assert!(
        ospf + 1500 >= ospf_since.elapsed().as_millis() as u64,
        "OSPF adjacency reset: uptime {ospf} ms"
    );
    let running = frr1.vtysh(&["show running-config"]);
    assert!(
        running.contains("router ospf") && running.contains("router bgp 65000"),
        "{running}"
    );

    // BGP removed behind the agent's back (as after an FRR restart that lost its config): the
    // self-heal loop puts the block back without a push, OSPF's lines untouched.
    let t = Instant::now();
    frr1.vtysh(&["configure terminal", "no router bgp 65000"]);
    assert!(
        wait_for(Duration::from_secs(30), || session(&frr_p1, "192.0.2.1").0
            == "Established"
            && bgp_route(&p1, "10.1.2.0/24", false)),
        "BGP not healed: {}",
        frr1.vtysh(&["show running-config"])
    );
    println!(
        "bgp: healed without a push {:.1} s after `no router bgp`",
        t.elapsed().as_secs_f64()
    );
    assert!(ospf_uptime(&frr3).is_some(), "OSPF lost while BGP healed");

    // `show bgp --json`: peers with state and prefixes.
    let out = agent.cli(&["show", "bgp", "--json"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "show bgp: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(&text).expect("show bgp --json");
    let p = v["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["address"] == "192.0.2.2")
        .cloned()
        .unwrap();
    assert_eq!(p["state"], "Established", "{v}");
    assert!(p["prefixes_sent"].as_u64().unwrap() >= 2, "{v}");

    // Passwords: never on a vtysh command line, not in the agent's log, config not world-readable.
    let argv = std::fs::read_to_string(&argv_log).unwrap_or_default();
    let log = agent.log_text();
    for pw in [P1_PW, P2_PW] {
        assert!(!argv.contains(pw), "password on vtysh's argv");
        assert!(!log.contains(pw), "password in the agent's log");
        assert!(!text.contains(pw), "password in show bgp");
    }
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&frr_conf).unwrap().permissions(),
    );
    assert_eq!(mode & 0o007, 0, "frr.conf is world-accessible: {mode:o}");
    println!("bgp: whole test {:.1} s", started.elapsed().as_secs_f64());
}
