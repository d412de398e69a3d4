//! Netlink executor vs `nft -f`: the same element plan applied through netlink in one fresh
//! namespace and as text in another must leave identical `nft list table ip vr` output; a
//! failing element names its set. Needs root and nft (skipped otherwise, except CI=true).

use std::process::Command;

use vr_nat::cli::Nft;
use vr_nat::ir::{Element, ElementData, Family, Value, Verdict};
use vr_nat::netlink::{Executor, NetlinkError};
use vr_nat::plan::{ElementOp, NftPlan};

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

/// Runs `plan` through netlink from a thread moved into namespace `name`.
fn netlink_in(name: &str, plan: NftPlan) -> Result<(), NetlinkError> {
    let path = format!("/run/netns/{name}");
    std::thread::spawn(move || {
        let f = std::fs::File::open(&path).expect("open netns");
        use std::os::fd::AsRawFd;
        // SAFETY: moves only this thread into the namespace.
        let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "setns");
        Executor::default().apply(&plan, None)
    })
    .join()
    .unwrap()
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
