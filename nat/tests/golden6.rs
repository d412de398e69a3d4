//! The IPv6 table `ip6 vr`: golden files (regenerate with
//! `UPDATE_GOLDEN=1 cargo test -p vr-nat --test golden6`), every golden loaded by `nft -f`,
//! and every golden sent as one netlink batch listing exactly like its `nft -f` load.
//! Needs root and nft for the kernel parts (skipped otherwise, except under CI=true).

use std::path::PathBuf;
use std::process::Command;

use vr_nat::plan::NftPlan;
use vr_nat::v6::{build6, validate_firewall6, Firewall6Section, Guest6, Router6Context};
use vr_nat::{render, Ruleset};

fn ctx() -> Router6Context {
    Router6Context {
        control_device: Some("eth1".into()),
        guests: vec![
            Guest6 {
                device: "eth0".into(),
                prefix: Some("2001:db8:10::/64".parse().unwrap()),
            },
            Guest6 {
                device: "eth3".into(),
                prefix: Some("2001:db8:11::/64".parse().unwrap()),
            },
        ],
    }
}

/// (name, context, firewall6) of every feature.
fn cases() -> Vec<(&'static str, Router6Context, &'static str)> {
    vec![
        ("v6_router_input", ctx(), "{}"),
        ("v6_no_guests", Router6Context::default(), "{}"),
        (
            "v6_ingress",
            ctx(),
            r#"{"ingress":[
                {"id":31,"protocol":"tcp","ports":80,"destination_cidrs":["2001:db8:10::/64"]},
                {"id":32,"protocol":"udp","ports":"5000-5010","source_cidrs":["2001:db8:ff::/48","2001:db8:ff:1::/64"]},
                {"id":33,"protocol":"icmp","icmp_type":128,"icmp_code":0},
                {"id":34,"protocol":"all","source_cidrs":["2001:db8:aa::/48"],"destination_cidrs":["2001:db8:11::5/128"]}]}"#,
        ),
        (
            "v6_egress",
            ctx(),
            r#"{"egress":[
                {"guest_cidr":"2001:db8:10::/64","default_allow":true,"rules":[
                    {"id":41,"protocol":"tcp","ports":25,"destination_cidrs":["::/0"]}]},
                {"guest_cidr":"2001:db8:11::/64","default_allow":false,"rules":[
                    {"id":42,"protocol":"tcp","ports":"80-443"},
                    {"id":43,"protocol":"icmp","source_cidrs":["2001:db8:11::/65"]}]}]}"#,
        ),
    ]
}

fn ruleset(c: &Router6Context, fw: &str) -> Ruleset {
    let fw: Firewall6Section = serde_json::from_str(fw).unwrap();
    validate_firewall6(&fw).unwrap();
    build6(c, &fw)
}

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

#[test]
fn goldens6_match() {
    let update = std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1");
    let mut failed = Vec::new();
    for (name, c, fw) in cases() {
        let got = render::full(&ruleset(&c, fw));
        let path = golden_dir().join(format!("{name}.nft"));
        if update {
            std::fs::write(&path, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 creates it)", path.display()));
        if got != want {
            eprintln!("--- {name}: got\n{got}");
            failed.push(name);
        }
    }
    assert!(failed.is_empty(), "goldens differ: {failed:?}");
}

fn can_load() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let nft = Command::new("nft").arg("--version").output().is_ok();
    if root && nft {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true but root/nft missing (root={root}, nft={nft})"
    );
    eprintln!("skipped: needs root and nft");
    false
}

struct Netns(String);
impl Netns {
    fn new(tag: &str) -> Netns {
        let name = format!("vrnat6-{tag}-{}", std::process::id());
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "ip netns add {name}");
        Netns(name)
    }
    fn nft(&self, args: &[&str], stdin: &str) -> std::process::Output {
        use std::io::Write;
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.0, "nft"])
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut inp = child.stdin.take().unwrap();
        inp.write_all(stdin.as_bytes()).unwrap();
        drop(inp);
        child.wait_with_output().unwrap()
    }
    fn list(&self) -> String {
        let o = self.nft(&["list", "table", "ip6", "vr"], "");
        assert!(o.status.success(), "list in {}", self.0);
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
}
impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn netlink_in(ns: &str, plan: NftPlan) -> Result<(), vr_nat::netlink::NetlinkError> {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        use std::os::fd::AsRawFd;
        let f = std::fs::File::open(&path).expect("open netns");
        // SAFETY: moves only this short-lived thread into the namespace.
        let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "setns {path}");
        vr_nat::netlink::Executor::default().apply(&plan, None)
    })
    .join()
    .expect("netlink thread")
}

/// Every golden file loads with `nft -f` (twice: the second replaces the first), and the same
/// ruleset sent as one netlink batch lists identically.
#[test]
fn every_golden6_through_netlink_lists_like_nft_f() {
    if !can_load() {
        return;
    }
    let text_ns = Netns::new("text");
    let nl_ns = Netns::new("nl");
    let mut differ = Vec::new();
    for (name, c, fw) in cases() {
        let text = std::fs::read_to_string(golden_dir().join(format!("{name}.nft"))).unwrap();
        for round in 0..2 {
            let out = text_ns.nft(&["-f", "-"], &text);
            assert!(
                out.status.success(),
                "{name} (nft -f round {round}): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let rs = ruleset(&c, fw);
        for round in 0..2 {
            if let Err(e) = netlink_in(&nl_ns.0, NftPlan::Replace(Box::new(rs.clone()))) {
                panic!("{name} (netlink round {round}): {e}");
            }
        }
        let (want, got) = (text_ns.list(), nl_ns.list());
        if want != got {
            eprintln!("--- {name}: nft -f lists\n{want}\n--- netlink lists\n{got}");
            differ.push(name);
        }
    }
    eprintln!("{} IPv6 goldens compared", cases().len());
    assert!(
        differ.is_empty(),
        "netlink and nft -f differ for {differ:?}"
    );
}

/// A CIDR added to one rule is one element change, through netlink and through the text
/// executor alike, and both list like a fresh load of the new ruleset.
#[test]
fn cidr_change6_is_an_element_op() {
    if !can_load() {
        return;
    }
    let a = ruleset(
        &ctx(),
        r#"{"ingress":[{"id":1,"protocol":"tcp","ports":22,"source_cidrs":["2001:db8:ff::/64"]}]}"#,
    );
    let b = ruleset(
        &ctx(),
        r#"{"ingress":[{"id":1,"protocol":"tcp","ports":22,"source_cidrs":["2001:db8:ff::/64","2001:db8:fe::/64"]}]}"#,
    );
    let p = vr_nat::plan::plan(Some(&a), &b);
    assert!(matches!(p, NftPlan::Elements { .. }), "{p}");
    assert_eq!(p.changes(), 1);
    let nl = Netns::new("elnl");
    netlink_in(&nl.0, NftPlan::Replace(Box::new(a.clone()))).unwrap();
    netlink_in(&nl.0, p.clone()).unwrap();
    let fresh = Netns::new("elref");
    let out = fresh.nft(&["-f", "-"], &render::full(&b));
    assert!(out.status.success());
    assert_eq!(nl.list(), fresh.list());
}

/// A restarted agent recognises its own IPv6 table from `nft -j list table ip6 vr`, and an
/// extra element makes it differ.
#[test]
fn listings6_match_their_ruleset() {
    use vr_nat::cli::Nft;
    use vr_nat::ir::Family;
    use vr_nat::observe::matches_listing;
    if !can_load() {
        return;
    }
    let ns = Netns::new("obs");
    let nft = Nft::in_netns(&ns.0);
    for (name, c, fw) in cases() {
        let want = ruleset(&c, fw);
        nft.apply_text(&render::full(&want), name).unwrap();
        let json = nft.list_table_json(Family::Ip6, "vr").unwrap().unwrap();
        assert!(
            matches_listing(&want, &json),
            "{name}: own listing differs\n{json}"
        );
        nft.apply_text(
            "add element ip6 vr guest_nets { 2001:db8:99::/64 }\n",
            "extra",
        )
        .unwrap();
        let json = nft.list_table_json(Family::Ip6, "vr").unwrap().unwrap();
        assert!(
            !matches_listing(&want, &json),
            "{name}: extra element not seen"
        );
    }
}
