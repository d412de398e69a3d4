//! Netlink vs `nft`: the same element plan applied through netlink in one fresh namespace and
//! as text in another must leave identical `nft list table ip vr` output; a failing element
//! names its set; counters read by netlink dumps (`netlink::dump`, `rule_counts`) are what
//! `nft` lists of the same tables. Needs root and nft (skipped otherwise, except CI=true).

use std::process::Command;

use vr_nat::cli::Nft;
use vr_nat::ir::{Element, ElementData, Family, Value, Verdict};
use vr_nat::netlink::dump;
use vr_nat::netlink::{Executor, NetlinkError};
use vr_nat::plan::{ElementOp, NftPlan};
use vr_nat::rule_stats::{parse_current, TABLE};

struct Ns(String);
impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn ns(tag: &str) -> Ns {
    let name = format!("vrnl-{tag}-{}", std::process::id());
    let ok = Command::new("ip")
        .args(["netns", "add", &name])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "ip netns add {name}");
    Ns(name)
}

fn capable() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let nft = Command::new("nft").arg("--version").output().is_ok();
    if root && nft {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true but root/nft missing (root={root}, nft={nft})");
    }
    eprintln!("skipped: needs root and nft");
    false
}

/// Runs `f` on a thread moved into namespace `name`.
fn inside<T: Send + 'static>(name: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{name}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("open netns");
        use std::os::fd::AsRawFd;
        // SAFETY: moves only this thread into the namespace.
        let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "setns");
        f()
    })
    .join()
    .unwrap()
}

/// Runs `plan` through netlink in namespace `name`.
fn netlink_in(name: &str, plan: NftPlan) -> Result<(), NetlinkError> {
    inside(name, move || Executor::default().apply(&plan, None))
}

fn a(s: &str) -> Value {
    Value::Addr(s.parse().unwrap())
}
fn n(s: &str) -> Value {
    Value::Net(s.parse().unwrap())
}

fn ops() -> Vec<ElementOp> {
    let op = |set: &str, add: bool, key: Vec<Value>, data: Option<ElementData>| ElementOp {
        set: set.into(),
        add,
        element: Element { key, data },
    };
    vec![
        op(
            "pf_addr",
            false,
            vec![
                a("192.0.2.10"),
                Value::Proto(6),
                Value::PortRange(8000, 8100),
                n("0.0.0.0/0"),
            ],
            None,
        ),
        op(
            "pf_port",
            true,
            vec![
                a("192.0.2.10"),
                Value::Proto(17),
                Value::Port(9100),
                n("0.0.0.0/0"),
            ],
            Some(ElementData::Values(vec![a("10.1.0.7"), Value::Port(53)])),
        ),
        op(
            "fw_in",
            true,
            vec![a("192.0.2.11")],
            Some(ElementData::Verdict(Verdict::Accept)),
        ),
        op(
            "egress",
            true,
            vec![n("10.1.0.0/25")],
            Some(ElementData::Verdict(Verdict::Drop)),
        ),
        op("router_addrs", true, vec![a("10.9.9.9")], None),
        op(
            "pub_marks",
            true,
            vec![Value::IfName("eth7".into())],
            Some(ElementData::Values(vec![Value::Mark(107)])),
        ),
    ]
}

#[test]
fn element_plans_match_nft() {
    if !capable() {
        return;
    }
    let golden = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/golden/port_forward_range.nft"
    ))
    .unwrap();
    let nl = ns("nl");
    let cli = ns("cli");
    for x in [&nl, &cli] {
        Nft::in_netns(&x.0).apply_text(&golden, "golden").unwrap();
    }
    let plan = NftPlan::Elements {
        family: Family::Ip,
        table: "vr".into(),
        ops: ops(),
    };
    netlink_in(&nl.0, plan.clone()).unwrap();
    Nft::in_netns(&cli.0).apply(&plan).unwrap();
    let l1 = Nft::in_netns(&nl.0).list_table(Family::Ip, "vr").unwrap();
    let l2 = Nft::in_netns(&cli.0).list_table(Family::Ip, "vr").unwrap();
    assert_eq!(l1, l2);
    assert!(l1.unwrap().contains("10.1.0.7 . 53"));

    // Removal through netlink, twice (absent table is fine).
    for _ in 0..2 {
        netlink_in(
            &nl.0,
            NftPlan::Remove {
                family: Family::Ip,
                table: "vr".into(),
            },
        )
        .unwrap();
    }
    assert_eq!(
        Nft::in_netns(&nl.0).list_table(Family::Ip, "vr").unwrap(),
        None
    );
}

#[test]
fn failure_names_the_object() {
    if !capable() {
        return;
    }
    let golden = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/golden/port_forward_range.nft"
    ))
    .unwrap();
    let x = ns("fail");
    Nft::in_netns(&x.0).apply_text(&golden, "golden").unwrap();
    let before = Nft::in_netns(&x.0).list_table(Family::Ip, "vr").unwrap();
    let mut ops = ops();
    ops.insert(
        1,
        ElementOp {
            set: "no_such_set".into(),
            add: true,
            element: Element {
                key: vec![a("192.0.2.99")],
                data: None,
            },
        },
    );
    let err = netlink_in(
        &x.0,
        NftPlan::Elements {
            family: Family::Ip,
            table: "vr".into(),
            ops,
        },
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("no_such_set") && msg.contains("192.0.2.99"),
        "{msg}"
    );
    // Atomic: nothing of the batch applied.
    assert_eq!(
        Nft::in_netns(&x.0).list_table(Family::Ip, "vr").unwrap(),
        before
    );
}

const TABLES: &str = r#"
table inet vr_rule_stats {
    set forwards { type ipv4_addr . inet_proto . inet_service; counter;
        elements = { 192.0.2.10 . tcp . 22 counter packets 5 bytes 300,
                     192.0.2.11 . udp . 53 counter packets 0 bytes 0 } }
    set forward_ranges { type ipv4_addr . inet_proto . inet_service; flags interval; counter;
        elements = { 192.0.2.10 . tcp . 8000-8100 counter packets 7 bytes 4200 } }
    set static_in { type ipv4_addr; counter; elements = { 192.0.2.20 counter packets 9 bytes 900 } }
    set static_out { type ipv4_addr; counter; elements = { 10.1.1.7 counter packets 1 bytes 64 } }
    chain count {
        type filter hook prerouting priority -150; policy accept;
        ip daddr . meta l4proto . th dport @forwards
        ip daddr . meta l4proto . th dport @forward_ranges
        ip daddr @static_in
        ip saddr @static_out
    }
}
table ip vr {
    chain fw_in_0 {
        comment "ingress 192.0.2.10"
        tcp dport 22 counter packets 3 bytes 180 accept comment "rule 11"
        counter packets 2 bytes 120 drop
    }
    chain other {
        tcp dport 1 accept
    }
}
"#;

#[test]
fn dumps_read_what_nft_lists() {
    if !capable() {
        return;
    }
    let ns = ns("dump");
    let nft = Nft::in_netns(&ns.0);
    nft.apply_text(TABLES, "counted tables").unwrap();

    // Element counters: the dump and nft's JSON agree element for element.
    let listing = nft
        .list_table_json(Family::Inet, TABLE)
        .unwrap()
        .expect("listed");
    let listed = parse_current(&listing).unwrap();
    let dumped = inside(&ns.0, || vr_nat::rule_counts::read().unwrap()).expect("table");
    let sorted = |mut c: vr_nat::rule_stats::Current| {
        c.forwards.sort_by_key(|(f, _)| *f);
        c
    };
    assert!(dumped.complete);
    assert_eq!(sorted(dumped.clone()), sorted(listed.clone()));
    assert_eq!(dumped.forwards.len(), 3);
    assert!(dumped
        .forwards
        .iter()
        .any(|(f, c)| f.ports() == "8000-8100" && c.bytes == 4200));

    // Rule counters with the chain's and the rules' comments.
    let (rules, comments) = inside(&ns.0, || {
        let ip = libc::NFPROTO_IPV4 as u8;
        (
            dump::rule_counters(ip, "vr", 100).unwrap().expect("table"),
            dump::chain_comments(ip, "vr").unwrap().expect("table"),
        )
    });
    assert_eq!(
        comments.get("fw_in_0").map(String::as_str),
        Some("ingress 192.0.2.10")
    );
    let got: Vec<(String, Option<String>, u64, u64)> = rules
        .into_iter()
        .map(|r| (r.chain, r.comment, r.packets, r.bytes))
        .collect();
    assert_eq!(
        got,
        [
            ("fw_in_0".to_string(), Some("rule 11".to_string()), 3, 180),
            ("fw_in_0".to_string(), None, 2, 120)
        ]
    );

    // A set that does not exist reads as absent; a table that does not exist has no rules.
    // Neither is an error.
    let absent = inside(&ns.0, || {
        (
            dump::rule_counters(libc::NFPROTO_IPV6 as u8, "vr", 100).unwrap(),
            dump::set_elements(libc::NFPROTO_INET as u8, TABLE, "nope").unwrap(),
        )
    });
    assert_eq!(absent, (Some(vec![]), None));
}
