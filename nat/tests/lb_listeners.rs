//! The input rule that opens the load balancer's listeners (`build::lb`): golden file of the
//! router-input case with two listeners on one address and one on another; no listener, no
//! rule (the ruleset is the one without load balancing). Regenerate with
//! `UPDATE_GOLDEN=1 cargo test -p vr-nat --test lb_listeners`.

use std::path::PathBuf;

use vr_nat::build::lb::open_listeners;
use vr_nat::build::{build, GuestNetwork, PublicInterface, RouterContext};
use vr_nat::render;

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
        ..Default::default()
    }
}

#[test]
fn listeners_open_exactly_their_ports() {
    let plain = build(&ctx(), &Default::default(), &Default::default(), &[]);
    let mut rs = plain.clone();
    open_listeners(&mut rs, &[]);
    assert_eq!(rs, plain, "no listener, no rule");
    open_listeners(
        &mut rs,
        &[
            ("192.0.2.10".parse().unwrap(), 443),
            ("192.0.2.10".parse().unwrap(), 80),
            ("192.0.2.11".parse().unwrap(), 8080),
            ("192.0.2.10".parse().unwrap(), 80),
        ],
    );
    let got = render::full(&rs);
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/lb_listeners.nft");
    if std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        got, want,
        "lb_listeners.nft differs (UPDATE_GOLDEN=1 to accept)"
    );
}
