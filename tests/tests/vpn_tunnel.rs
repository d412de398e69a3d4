//! Issue 5 acceptance with a real charon (kernel-libipsec) per router, each driven by its own
//! agent: the tunnel comes up and carries a ping; adding a second tunnel and then changing only
//! it leaves the first one's IKE SA untouched; removing a tunnel tears it down; a wrong PSK is
//! reported down with charon's reason and no secret anywhere; with charon away the other
//! concerns still apply and the VPN catches up when charon comes back.

use std::time::Duration;

use vr_tests::peers::{Charon, CHARON};
use vr_tests::traffic::ping;
use vr_tests::vpn_sites::{conn, push, show_vpn, site, topology, tunnel};
use vr_tests::{require_program, require_root, wait_for};

const PSK_A: &str = "vpn-test-psk-A-7f3a";
const PSK_B: &str = "vpn-test-psk-B-91c2";

#[test]
fn tunnels_come_up_stay_untouched_and_go_away() {
    if !require_root("tunnels_come_up_stay_untouched_and_go_away")
        || !require_program("tunnels_come_up_stay_untouched_and_go_away", CHARON)
    {
        return;
    }
    let (dir, sw) = topology("vr-vpn");
    let s1 = site(&sw, dir.path(), 1, "192.0.2.10", "10.1.1.0/24", true);
    let s2 = site(&sw, dir.path(), 2, "192.0.2.20", "10.2.0.0/24", true);
    let s3 = site(&sw, dir.path(), 3, "192.0.2.30", "10.3.0.0/24", true);
    // Responders first (passive), then the initiator.
    let (c, r) = s2.agent.apply_text(
        "vpn.json",
        &push(
            &s2,
            &[tunnel(
                s2.public, s2.lan, s1.public, s1.lan, PSK_A, true, 3600,
            )],
        ),
    );
    assert_eq!(c, 0, "{r}");
    let (c, r) = s3.agent.apply_text(
        "vpn.json",
        &push(
            &s3,
            &[tunnel(
                s3.public, s3.lan, s1.public, s1.lan, PSK_B, true, 3600,
            )],
        ),
    );
    assert_eq!(c, 0, "{r}");
    let a = tunnel(s1.public, s1.lan, s2.public, s2.lan, PSK_A, false, 3600);
    let (c, r) = s1
        .agent
        .apply_text("a.json", &push(&s1, std::slice::from_ref(&a)));
    assert_eq!(c, 0, "{r}");
    assert!(
        wait_for(Duration::from_secs(15), || ping(&s1.host, "10.2.0.10", 1)),
        "no ping through tunnel A: {}",
        show_vpn(&s1.agent)
    );
    let v = show_vpn(&s1.agent);
    let a1 = conn(&v, "s2s-192.0.2.20")
        .cloned()
        .expect("tunnel A listed");
    assert_eq!(a1["ike_state"], "ESTABLISHED", "{v}");
    assert!(
        a1["children"][0]["bytes-in"].as_str().unwrap_or("0") != "0",
        "no bytes counted: {a1}"
    );
    let id_a = a1["ike_uniqueid"].clone();

    // Add tunnel B: A is not touched.
    let b = tunnel(s1.public, s1.lan, s3.public, s3.lan, PSK_B, false, 3600);
    let (c, r) = s1
        .agent
        .apply_text("ab.json", &push(&s1, &[a.clone(), b.clone()]));
    assert_eq!(c, 0, "{r}");
    assert!(
        wait_for(Duration::from_secs(15), || ping(&s1.host, "10.3.0.10", 1)),
        "no ping through tunnel B"
    );
    let v = show_vpn(&s1.agent);
    assert_eq!(
        conn(&v, "s2s-192.0.2.20").unwrap()["ike_uniqueid"],
        id_a,
        "adding B touched A: {v}"
    );
    let est_before = conn(&v, "s2s-192.0.2.20").unwrap()["established_secs"]
        .as_u64()
        .unwrap();
    let id_b = conn(&v, "s2s-192.0.2.30").unwrap()["ike_uniqueid"].clone();

    // Change only B: A keeps its IKE SA (same unique id, established time still counting).
    std::thread::sleep(Duration::from_millis(1100));
    let b2 = tunnel(s1.public, s1.lan, s3.public, s3.lan, PSK_B, false, 1800);
    let (c, r) = s1
        .agent
        .apply_text("ab2.json", &push(&s1, &[a.clone(), b2.clone()]));
    assert_eq!(c, 0, "{r}");
    let vpn = r[0]["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["concern"] == "vpn")
        .unwrap()
        .clone();
    assert_eq!(vpn["changes"], 1, "only B changes: {vpn}");
    assert!(
        wait_for(Duration::from_secs(15), || ping(&s1.host, "10.3.0.10", 1)),
        "B did not come back"
    );
    let v = show_vpn(&s1.agent);
    let a2 = conn(&v, "s2s-192.0.2.20").unwrap();
    assert_eq!(a2["ike_uniqueid"], id_a, "changing B touched A: {v}");
    assert!(
        a2["established_secs"].as_u64().unwrap() > est_before,
        "A was re-established: {v}"
    );
    assert_ne!(
        conn(&v, "s2s-192.0.2.30").unwrap()["ike_uniqueid"],
        id_b,
        "B was not re-established after its change"
    );
    assert!(ping(&s1.host, "10.2.0.10", 1), "A stopped carrying traffic");

    // Remove B: its SAs are gone and traffic stops; A still up.
    let (c, r) = s1
        .agent
        .apply_text("a2.json", &push(&s1, std::slice::from_ref(&a)));
    assert_eq!(c, 0, "{r}");
    let sas = String::from_utf8_lossy(&s1.charon.as_ref().unwrap().swanctl(&["--list-sas"]).stdout)
        .into_owned();
    assert!(
        !sas.contains("s2s-192.0.2.30"),
        "B's SAs still there: {sas}"
    );
    let conns = String::from_utf8_lossy(
        &s1.charon
            .as_ref()
            .unwrap()
            .swanctl(&["--list-conns"])
            .stdout,
    )
    .into_owned();
    assert!(!conns.contains("s2s-192.0.2.30"), "B still loaded: {conns}");
    assert!(
        !ping(&s1.host, "10.3.0.10", 2),
        "traffic to B's network still flows"
    );
    assert!(ping(&s1.host, "10.2.0.10", 1), "A went down with B");
    assert_eq!(
        s1.agent.cli(&["check"]).status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&s1.agent.cli(&["check"]).stdout)
    );

    for s in [&s1, &s2, &s3] {
        let log = s.agent.log_text();
        assert!(
            !log.contains(PSK_A) && !log.contains(PSK_B),
            "PSK in an agent log"
        );
    }
    drop((s3, s2, s1, sw, dir));
}

#[test]
fn wrong_psk_is_reported_down_with_charons_reason() {
    if !require_root("wrong_psk_is_reported_down_with_charons_reason")
        || !require_program("wrong_psk_is_reported_down_with_charons_reason", CHARON)
    {
        return;
    }
    let (dir, sw) = topology("vr-vpnpsk");
    let s1 = site(&sw, dir.path(), 1, "192.0.2.10", "10.1.1.0/24", true);
    let s2 = site(&sw, dir.path(), 2, "192.0.2.20", "10.2.0.0/24", true);
    let (c, r) = s2.agent.apply_text(
        "vpn.json",
        &push(
            &s2,
            &[tunnel(
                s2.public, s2.lan, s1.public, s1.lan, PSK_A, true, 3600,
            )],
        ),
    );
    assert_eq!(c, 0, "{r}");
    let wrong = "vpn-test-psk-WRONG-0000";
    let (c, r) = s1.agent.apply_text(
        "bad.json",
        &push(
            &s1,
            &[tunnel(
                s1.public, s1.lan, s2.public, s2.lan, wrong, false, 3600,
            )],
        ),
    );
    assert_eq!(c, 0, "the push itself is valid: {r}");
    // Tunnels are initiated in the background (a push never waits for IKE): charon's reason
    // appears once that initiate has been answered.
    let mut v = show_vpn(&s1.agent);
    wait_for(Duration::from_secs(15), || {
        v = show_vpn(&s1.agent);
        conn(&v, "s2s-192.0.2.20").is_some_and(|a| a["last_error"].is_string())
    });
    let a = conn(&v, "s2s-192.0.2.20").expect("listed");
    assert_ne!(a["ike_state"], "ESTABLISHED", "{v}");
    let why = a["last_error"].as_str().unwrap_or("");
    assert!(!why.is_empty(), "no reason given: {v}");
    let out = s1.agent.cli(&["check"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("tunnel s2s-192.0.2.20"), "{text}");
    for (what, text) in [
        ("show vpn", v.to_string()),
        ("check", text),
        ("result", r.to_string()),
        (
            "show state",
            String::from_utf8_lossy(&s1.agent.cli(&["show", "state"]).stdout).into_owned(),
        ),
        ("log", s1.agent.log_text()),
    ] {
        assert!(
            !text.contains(wrong) && !text.contains(PSK_A),
            "a PSK in {what}"
        );
    }
    drop((s2, s1, sw, dir));
}

#[test]
fn charon_away_keeps_other_concerns_and_the_vpn_catches_up() {
    if !require_root("charon_away_keeps_other_concerns_and_the_vpn_catches_up")
        || !require_program(
            "charon_away_keeps_other_concerns_and_the_vpn_catches_up",
            CHARON,
        )
    {
        return;
    }
    let (dir, sw) = topology("vr-vpnaway");
    let mut s1 = site(&sw, dir.path(), 1, "192.0.2.10", "10.1.1.0/24", false);
    let s2 = site(&sw, dir.path(), 2, "192.0.2.20", "10.2.0.0/24", true);
    let (c, r) = s2.agent.apply_text(
        "vpn.json",
        &push(
            &s2,
            &[tunnel(
                s2.public, s2.lan, s1.public, s1.lan, PSK_A, true, 3600,
            )],
        ),
    );
    assert_eq!(c, 0, "{r}");
    let (c, r) = s1.agent.apply_text(
        "a.json",
        &push(
            &s1,
            &[tunnel(
                s1.public, s1.lan, s2.public, s2.lan, PSK_A, false, 3600,
            )],
        ),
    );
    assert_eq!(c, 0, "charon away is not a failed push: {r}");
    let outcome = |name: &str| {
        r[0]["outcomes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["concern"] == name)
            .unwrap()["status"]
            .clone()
    };
    assert_eq!(outcome("vpn"), "unavailable", "{r}");
    assert_eq!(outcome("nftables"), "applied", "{r}");
    assert!(
        r[0]["message"].as_str().unwrap().contains("retrying"),
        "{r}"
    );
    // charon comes back: the agent retries by itself.
    s1.charon = Some(Charon::start(&mut s1.router, &dir.path().join("charon1")));
    assert!(
        wait_for(Duration::from_secs(20), || ping(&s1.host, "10.2.0.10", 1)),
        "the VPN did not catch up: {}",
        show_vpn(&s1.agent)
    );
    drop((s2, s1, sw, dir));
}
