//! Golden tests: model -> nft text, one file per feature under `tests/golden/`
//! (regenerate with `UPDATE_GOLDEN=1 cargo test -p vr-nat --test golden`), and a test that
//! loads every golden into the kernel in a namespace of its own.

use std::path::PathBuf;
use std::process::Command;

use vr_nat::{
    build, render, FirewallSection, GuestNetwork, NatSection, PublicInterface, RouterContext,
    TierAcl, VpnPeer,
};

fn ctx() -> RouterContext {
    RouterContext {
        public: vec![PublicInterface {
            device: "eth2".into(),
            addresses: vec!["192.0.2.10".parse().unwrap()],
            mark: Some(102),
        }],
        guests: vec![GuestNetwork {
            device: "eth0".into(),
            cidr: "10.1.0.0/24".parse().unwrap(),
            router_ip: "10.1.0.1".parse().unwrap(),
        }],
        control_device: Some("eth1".into()),
        routed: Vec::new(),
        vpn_peers: vec![],
        remote_access: None,
        ospf: false,
        bgp_peers: Vec::new(),
        ha_sync_devs: vec![],
        vrrp: false,
    }
}

/// (name, context, nat, firewall, acls) of every feature.
fn cases() -> Vec<(
    &'static str,
    RouterContext,
    &'static str,
    &'static str,
    &'static str,
)> {
    let mut vpn = ctx();
    vpn.vpn_peers.push(VpnPeer {
        local_public_ip: "192.0.2.10".parse().unwrap(),
        peer_gateway: "198.51.100.1".parse().unwrap(),
        local_cidrs: vec!["10.1.0.0/24".parse().unwrap()],
        peer_cidrs: vec![
            "10.2.0.0/24".parse().unwrap(),
            "10.2.0.0/16".parse().unwrap(),
        ],
    });
    let mut ospf = ctx();
    ospf.ospf = true;
    let mut ravpn = ctx();
    ravpn.remote_access = Some(vr_nat::RemoteAccessVpn {
        server_ip: "192.0.2.10".parse().unwrap(),
        pool_first: "10.1.2.1".parse().unwrap(),
        pool_last: "10.1.2.10".parse().unwrap(),
        local_cidrs: vec!["10.1.0.0/24".parse().unwrap()],
    });
    let mut bgp = ctx();
    bgp.bgp_peers = vec![
        "192.0.2.50".parse().unwrap(),
        "198.51.100.7".parse().unwrap(),
    ];
    let mut ha = ctx();
    ha.vrrp = true;
    ha.ha_sync_devs = vec!["eth0".into()];
    let mut two_publics = ctx();
    two_publics.public.push(PublicInterface {
        device: "eth3".into(),
        addresses: vec!["203.0.113.5".parse().unwrap()],
        mark: Some(103),
    });
    vec![
        ("router_input", ctx(), "{}", "{}", "[]"),
        ("router_input_ospf", ospf, "{}", "{}", "[]"),
        ("remote_access_vpn", ravpn, "{}", "{}", "[]"),
        ("router_input_bgp", bgp, "{}", "{}", "[]"),
        ("router_input_ha", ha, "{}", "{}", "[]"),
        (
            "source_nat",
            two_publics,
            r#"{"source_nat":[{"device":"eth2","public_ip":"192.0.2.10"},
                {"device":"eth3","public_ip":"203.0.113.5","source_cidrs":["10.1.0.0/25","10.1.0.128/25"]}]}"#,
            "{}",
            "[]",
        ),
        (
            "static_nat",
            ctx(),
            r#"{"static_nat":[{"public_ip":"192.0.2.11","private_ip":"10.1.0.5"},
                {"public_ip":"192.0.2.12","private_ip":"10.1.0.6","device":"eth2"}]}"#,
            "{}",
            "[]",
        ),
        (
            "port_forward_single",
            ctx(),
            r#"{"port_forwards":[
                {"public_ip":"192.0.2.10","protocol":"tcp","public_ports":2222,"private_ip":"10.1.0.5","private_ports":22},
                {"public_ip":"192.0.2.10","protocol":"udp","public_ports":53,"private_ip":"10.1.0.5","private_ports":53,
                 "source_cidrs":["198.51.100.0/24","198.51.100.7/32"]}]}"#,
            "{}",
            "[]",
        ),
        (
            "port_forward_range",
            ctx(),
            r#"{"port_forwards":[
                {"public_ip":"192.0.2.10","protocol":"tcp","public_ports":"8000-8100","private_ip":"10.1.0.5","private_ports":"8000-8100"},
                {"public_ip":"192.0.2.10","protocol":"tcp","public_ports":"9000-9003","private_ip":"10.1.0.6","private_ports":"7000-7003"}]}"#,
            "{}",
            "[]",
        ),
        (
            "ingress_firewall",
            ctx(),
            r#"{"port_forwards":[
                {"public_ip":"192.0.2.11","protocol":"tcp","public_ports":80,"private_ip":"10.1.0.5","private_ports":80}]}"#,
            r#"{"ingress":[
                {"id":11,"public_ip":"192.0.2.10","protocol":"tcp","ports":"20-22","source_cidrs":["198.51.100.0/24","10.0.0.0/8"]},
                {"id":12,"public_ip":"192.0.2.10","protocol":"icmp","icmp_type":8,"icmp_code":0},
                {"id":13,"public_ip":"192.0.2.10","protocol":"all","source_cidrs":["203.0.113.0/24"]},
                {"id":14,"public_ip":"192.0.2.10","protocol":47}]}"#,
            "[]",
        ),
        (
            "egress_default_allow",
            ctx(),
            "{}",
            r#"{"egress":[{"guest_cidr":"10.1.0.0/24","default_allow":true,"rules":[
                {"id":21,"protocol":"tcp","ports":25,"destination_cidrs":["0.0.0.0/0"]},
                {"id":22,"protocol":"udp","source_cidrs":["10.1.0.128/25"]}]}]}"#,
            "[]",
        ),
        (
            "egress_default_deny",
            ctx(),
            "{}",
            r#"{"egress":[{"guest_cidr":"10.1.0.0/24","default_allow":false,"rules":[
                {"id":31,"protocol":"tcp","ports":"80"},
                {"id":32,"protocol":"tcp","ports":"443"},
                {"id":33,"protocol":"icmp","icmp_type":8}]}]}"#,
            "[]",
        ),
        (
            "acl",
            ctx(),
            "{}",
            "{}",
            r#"[{"device":"eth3","tier_cidr":"10.3.0.0/24","ingress":[
                 {"number":1,"action":"deny","protocol":"tcp","ports":22,"cidrs":["10.4.0.0/24"]},
                 {"number":2,"action":"allow","protocol":"tcp","ports":"22-23"},
                 {"number":3,"action":"allow","protocol":"icmp"}],
               "egress":[{"number":1,"action":"deny","protocol":"udp","ports":53,"cidrs":["8.8.8.8/32"]},
                 {"number":2,"action":"allow","protocol":"all"}]},
               {"device":"eth4","tier_cidr":"10.4.0.0/24","private_gateway":true}]"#,
        ),
        (
            "vpn",
            vpn,
            r#"{"source_nat":[{"device":"eth2","public_ip":"192.0.2.10"}]}"#,
            "{}",
            "[]",
        ),
    ]
}

fn render_case(c: &RouterContext, nat: &str, fw: &str, acls: &str) -> String {
    let nat: NatSection = serde_json::from_str(nat).unwrap();
    let fw: FirewallSection = serde_json::from_str(fw).unwrap();
    let acls: Vec<TierAcl> = serde_json::from_str(acls).unwrap();
    vr_nat::validate::validate_nat(&nat).unwrap();
    vr_nat::validate::validate_firewall(&fw).unwrap();
    vr_nat::validate::validate_acls(&acls).unwrap();
    render::full(&build(c, &nat, &fw, &acls))
}

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

#[test]
fn goldens_match() {
    let update = std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1");
    let mut failed = Vec::new();
    for (name, c, nat, fw, acls) in cases() {
        let got = render_case(&c, nat, fw, acls);
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
    assert!(
        failed.is_empty(),
        "goldens differ: {failed:?} (UPDATE_GOLDEN=1 to accept)"
    );
}

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

fn can_load() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("not root".into());
    }
    match Command::new("nft").arg("--version").output() {
        Ok(o) if o.status.success() => Ok(()),
        _ => Err("no nft binary".into()),
    }
}

/// A namespace created by this test, deleted on drop (also on panic).
struct Netns(String);

impl Netns {
    fn new(tag: &str) -> Netns {
        let name = format!("vrnat-{tag}-{}", std::process::id());
        let st = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .unwrap();
        assert!(st.success(), "ip netns add {name}");
        Netns(name)
    }
    fn nft(&self, args: &[&str], stdin: Option<&str>) -> std::process::Output {
        use std::io::Write;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.0, "nft"]).args(args);
        cmd.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let mut inp = child.stdin.take().unwrap();
        inp.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
        drop(inp);
        child.wait_with_output().unwrap()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[test]
fn goldens_load_into_the_kernel() {
    if let Err(why) = can_load() {
        assert!(!ci(), "CI=true but cannot load rulesets: {why}");
        eprintln!("skipped: {why}");
        return;
    }
    let ns = Netns::new("golden");
    for (name, ..) in cases() {
        let path = golden_dir().join(format!("{name}.nft"));
        let text = std::fs::read_to_string(&path).unwrap();
        // Twice: the second load replaces the table the first one created.
        for round in 0..2 {
            let out = ns.nft(&["-f", "-"], Some(&text));
            assert!(
                out.status.success(),
                "{name} (load {round}): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let out = ns.nft(&["list", "table", "ip", "vr"], None);
        assert!(out.status.success(), "{name}: list");
    }
}

/// The plans the agent sends, applied in order through the CLI executor: full replace, one
/// element added, the target of a mapping changed, a structural change, and removal.
#[test]
fn cli_executor_applies_plans() {
    use vr_nat::cli::Nft;
    use vr_nat::plan::plan_opt;
    if let Err(why) = can_load() {
        assert!(!ci(), "CI=true but cannot load rulesets: {why}");
        eprintln!("skipped: {why}");
        return;
    }
    let ns = Netns::new("cli");
    let nft = Nft::in_netns(&ns.0);
    let pf = |port: u16, target: &str| {
        format!(
            r#"{{"public_ip":"192.0.2.10","protocol":"tcp","public_ports":{port},
                "private_ip":"{target}","private_ports":{port}}}"#
        )
    };
    let rs = |nat: String, fw: &str| {
        let nat: NatSection = serde_json::from_str(&nat).unwrap();
        let fw: FirewallSection = serde_json::from_str(fw).unwrap();
        build(&ctx(), &nat, &fw, &[])
    };
    let steps = [
        rs(
            format!(r#"{{"port_forwards":[{}]}}"#, pf(80, "10.1.0.5")),
            "{}",
        ),
        rs(
            format!(
                r#"{{"port_forwards":[{},{}]}}"#,
                pf(80, "10.1.0.5"),
                pf(443, "10.1.0.5")
            ),
            "{}",
        ),
        rs(
            format!(
                r#"{{"port_forwards":[{},{}]}}"#,
                pf(80, "10.1.0.6"),
                pf(443, "10.1.0.5")
            ),
            "{}",
        ),
        rs(
            format!(r#"{{"port_forwards":[{}]}}"#, pf(80, "10.1.0.6")),
            r#"{"ingress":[{"id":1,"public_ip":"192.0.2.10","protocol":"tcp","ports":80}]}"#,
        ),
    ];
    assert_eq!(nft.list_table(vr_nat::ir::Family::Ip, "vr").unwrap(), None);
    let mut applied: Option<vr_nat::Ruleset> = None;
    for (i, d) in steps.iter().enumerate() {
        let p = plan_opt(applied.as_ref(), Some(d));
        nft.apply(&p)
            .unwrap_or_else(|e| panic!("step {i}: {e}\n{p}"));
        let listed = nft
            .list_table(vr_nat::ir::Family::Ip, "vr")
            .unwrap()
            .unwrap();
        // What the kernel holds is what a full load of the desired ruleset gives.
        let fresh = Netns::new(&format!("cli{i}"));
        let fresh_nft = vr_nat::cli::Nft::in_netns(&fresh.0);
        fresh_nft.apply_text(&render::full(d), "reference").unwrap();
        let want = fresh_nft
            .list_table(vr_nat::ir::Family::Ip, "vr")
            .unwrap()
            .unwrap();
        assert_eq!(
            sorted_elements(&listed),
            sorted_elements(&want),
            "step {i} after plan:\n{p}"
        );
        applied = Some(d.clone());
    }
    let again = plan_opt(applied.as_ref(), applied.as_ref());
    assert_eq!(again.changes(), 0);
    nft.apply(&again).unwrap();
    nft.apply(&plan_opt(applied.as_ref(), None)).unwrap();
    assert_eq!(nft.list_table(vr_nat::ir::Family::Ip, "vr").unwrap(), None);
    // An error names what failed.
    let err = nft
        .apply_text("add element ip vr nope { 1 }\n", "test op")
        .unwrap_err();
    assert!(err.to_string().contains("test op"), "{err}");
}

/// `nft list` prints interval-set elements in insertion order: sort them so two tables with
/// the same content compare equal.
fn sorted_elements(listing: &str) -> String {
    let mut out = String::new();
    let mut rest = listing;
    while let Some(start) = rest.find("elements = {") {
        let open = start + "elements = {".len();
        let close = open + rest[open..].find('}').expect("closing brace");
        out.push_str(&rest[..open]);
        let mut items: Vec<&str> = rest[open..close].split(',').map(str::trim).collect();
        items.sort();
        out.push_str(&items.join(", "));
        rest = &rest[close..];
    }
    out.push_str(rest);
    out
}

/// A restarted agent recognises its own table from `nft -j list table`: every golden ruleset
/// matches its own listing, and an extra element or a missing one makes it differ.
#[test]
fn listings_match_their_ruleset() {
    use vr_nat::cli::Nft;
    use vr_nat::ir::Family;
    use vr_nat::observe::matches_listing;
    if let Err(why) = can_load() {
        assert!(!ci(), "CI=true but cannot load rulesets: {why}");
        eprintln!("skipped: {why}");
        return;
    }
    let ns = Netns::new("obs");
    let nft = Nft::in_netns(&ns.0);
    for (name, c, nat, fw, acls) in cases() {
        let want = build(
            &c,
            &serde_json::from_str(nat).unwrap(),
            &serde_json::from_str(fw).unwrap(),
            &serde_json::from_str::<Vec<TierAcl>>(acls).unwrap(),
        );
        nft.apply_text(&render::full(&want), name).unwrap();
        let json = nft.list_table_json(Family::Ip, "vr").unwrap().unwrap();
        assert!(
            matches_listing(&want, &json),
            "{name}: own listing does not match\n{json}"
        );
        nft.apply_text("add element ip vr router_addrs { 203.0.113.99 }\n", "extra")
            .unwrap();
        let json = nft.list_table_json(Family::Ip, "vr").unwrap().unwrap();
        assert!(
            !matches_listing(&want, &json),
            "{name}: extra element not seen"
        );
    }
    // A rule added by hand is seen too.
    let (_, c, nat, fw, acls) = cases().remove(0);
    let want = build(
        &c,
        &serde_json::from_str(nat).unwrap(),
        &serde_json::from_str(fw).unwrap(),
        &serde_json::from_str::<Vec<TierAcl>>(acls).unwrap(),
    );
    nft.apply_text(&render::full(&want), "reload").unwrap();
    nft.apply_text("add rule ip vr input tcp dport 22 accept\n", "extra rule")
        .unwrap();
    let json = nft.list_table_json(Family::Ip, "vr").unwrap().unwrap();
    assert!(!matches_listing(&want, &json), "extra rule not seen");
}

/// Runs the netlink executor from a thread moved into namespace `ns`.
fn netlink_in(ns: &str, plan: vr_nat::plan::NftPlan) -> Result<(), vr_nat::netlink::NetlinkError> {
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

/// Issue 3 acceptance: for every golden ruleset, the table sent as one netlink batch and the
/// same ruleset loaded as text with `nft -f` list identically with `nft list table`.
#[test]
fn every_golden_through_netlink_lists_like_nft_f() {
    if let Err(why) = can_load() {
        assert!(!ci(), "CI=true but cannot load rulesets: {why}");
        eprintln!("skipped: {why}");
        return;
    }
    let text_ns = Netns::new("eqtext");
    let nl_ns = Netns::new("eqnl");
    let mut differ = Vec::new();
    for (name, c, nat, fw, acls) in cases() {
        let nat_s: NatSection = serde_json::from_str(nat).unwrap();
        let fw_s: FirewallSection = serde_json::from_str(fw).unwrap();
        let acls_s: Vec<TierAcl> = serde_json::from_str(acls).unwrap();
        let rs = build(&c, &nat_s, &fw_s, &acls_s);
        let out = text_ns.nft(&["-f", "-"], Some(&render::full(&rs)));
        assert!(
            out.status.success(),
            "{name}: nft -f: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Twice: the second batch replaces the table the first one made.
        for round in 0..2 {
            if let Err(e) = netlink_in(
                &nl_ns.0,
                vr_nat::plan::NftPlan::Replace(Box::new(rs.clone())),
            ) {
                panic!("{name} (netlink round {round}): {e}");
            }
        }
        let list = |ns: &Netns| {
            let o = ns.nft(&["list", "table", "ip", "vr"], None);
            assert!(o.status.success(), "{name}: list in {}", ns.0);
            String::from_utf8_lossy(&o.stdout).into_owned()
        };
        let (want, got) = (list(&text_ns), list(&nl_ns));
        if want != got {
            eprintln!("--- {name}: nft -f lists\n{want}\n--- netlink lists\n{got}");
            differ.push(name);
        }
    }
    assert!(
        differ.is_empty(),
        "netlink and nft -f differ for {differ:?}"
    );
}
