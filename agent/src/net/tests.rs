use super::*;
use crate::state::{Interface, Route};

fn link(index: u32, name: &str, up: bool) -> SysLink {
    SysLink {
        index,
        name: name.into(),
        mac: Some(MacAddr([2, 0, 0, 0, 0, index as u8])),
        mtu: 1500,
        up,
    }
}

fn sys() -> Snapshot {
    Snapshot {
        links: vec![
            link(1, "lo", true),
            link(2, "eth2", false),
            link(3, "eth3", true),
        ],
        ..Default::default()
    }
}

fn public(dev: &str, addr: &str, gw: &str) -> Interface {
    Interface {
        device: dev.into(),
        mac: None,
        role: InterfaceRole::Public,
        addresses: vec![addr.parse().unwrap()],
        gateway: Some(gw.parse().unwrap()),
        mtu: None,
        addresses6: Vec::new(),
        gateway6: None,
    }
}

fn state(ifaces: Vec<Interface>, routes: Vec<Route>) -> DesiredState {
    let mut s = DesiredState {
        interfaces: ifaces,
        routes,
        ..Default::default()
    };
    s.allocate_policy_indexes();
    s
}

fn lines(ops: &[NetOp]) -> Vec<String> {
    ops.iter().map(ToString::to_string).collect()
}

#[test]
fn two_public_nics_get_addresses_a_default_and_one_table_each() {
    let s = state(
        vec![
            public("eth2", "198.51.100.1/24", "198.51.100.254"),
            public("eth3", "203.0.113.1/24", "203.0.113.254"),
        ],
        vec![],
    );
    let sys = sys();
    let (old, new) = (wanted(&DesiredState::default(), &sys), wanted(&s, &sys));
    assert_eq!(
        lines(&plan_links(&old, &new, &sys)),
        [
            "ip link set dev eth2 up",
            "ip addr replace 198.51.100.1/24 brd + dev eth2",
            "ip addr replace 203.0.113.1/24 brd + dev eth3",
            "arping -U -c 1 -I eth2 198.51.100.1",
            "arping -U -c 1 -I eth3 203.0.113.1",
        ]
    );
    assert_eq!(
        lines(&plan_routes(&old, &new, &sys)),
        [
            "ip route replace default via 198.51.100.254 dev eth2 table 102",
            "ip route replace 198.51.100.0/24 dev eth2 table 102",
            "ip route replace default via 203.0.113.254 dev eth3 table 103",
            "ip route replace 203.0.113.0/24 dev eth3 table 103",
            "ip route replace default via 198.51.100.254 dev eth2",
            "ip rule add priority 102 fwmark 0x66 lookup 102",
            "ip rule add priority 103 fwmark 0x67 lookup 103",
        ]
    );
}

/// The kernel after `new` was applied to `sys` (what the executor's adds create).
fn after(sys: &Snapshot, new: &Wanted) -> Snapshot {
    let mut s = sys.clone();
    for l in &mut s.links {
        if new.links.contains_key(&l.name) {
            l.up = true;
        }
    }
    for (dev, a) in new.addresses.keys() {
        s.addresses.insert((s.index(dev).unwrap(), *a));
    }
    for ((table, dst), r) in &new.routes {
        s.routes.push(SysRoute {
            table: *table,
            destination: *dst,
            gateway: r.gateway,
            oif: r.device.as_deref().and_then(|d| s.index(d)),
            metric: 0,
        });
    }
    s.rules.extend(new.rules.iter().copied());
    s
}

#[test]
fn a_system_that_matches_plans_nothing() {
    let s = state(
        vec![public("eth2", "198.51.100.1/24", "198.51.100.254")],
        vec![Route {
            destination: "10.9.0.0/16".parse().unwrap(),
            gateway: "198.51.100.7".parse().unwrap(),
            device: None,
        }],
    );
    let sys0 = sys();
    let new = wanted(&s, &sys0);
    let sys1 = after(&sys0, &new);
    let again = wanted(&s, &sys1);
    assert!(plan_links(&again, &again, &sys1).is_empty());
    assert!(plan_routes(&again, &again, &sys1).is_empty());
}

#[test]
fn revoking_removes_exactly_what_the_old_state_implied() {
    let both = state(
        vec![
            public("eth2", "198.51.100.1/24", "198.51.100.254"),
            public("eth3", "203.0.113.1/24", "203.0.113.254"),
        ],
        vec![],
    );
    let sys0 = sys();
    let mut sys1 = after(&sys0, &wanted(&both, &sys0));
    // Added by hand: never touched.
    sys1.addresses
        .insert((3, "203.0.113.99/24".parse().unwrap()));
    let mut one = both.clone();
    one.interfaces.truncate(1);
    let (old, new) = (wanted(&both, &sys1), wanted(&one, &sys1));
    assert_eq!(
        lines(&plan_links(&old, &new, &sys1)),
        ["ip addr del 203.0.113.1/24 dev eth3"]
    );
    assert_eq!(
        lines(&plan_routes(&old, &new, &sys1)),
        [
            "ip rule del priority 103 fwmark 0x67 lookup 103",
            "ip route del default via 203.0.113.254 dev eth3 proto static table 103",
            "ip route del 203.0.113.0/24 dev eth3 proto static table 103",
        ]
    );
}

#[test]
fn nic_found_by_mac_before_name_and_missing_ones_listed() {
    let mut i = public("eth9", "198.51.100.1/24", "198.51.100.254");
    i.mac = Some(MacAddr([2, 0, 0, 0, 0, 3]));
    let mut gone = public("eth7", "192.0.2.1/24", "192.0.2.254");
    gone.role = InterfaceRole::Guest;
    let s = state(vec![i, gone], vec![]);
    let w = wanted(&s, &sys());
    assert!(w
        .addresses
        .contains_key(&("eth3".into(), "198.51.100.1/24".parse().unwrap())));
    assert_eq!(w.missing_nics.iter().collect::<Vec<_>>(), ["eth7"]);
}

#[test]
fn changed_gateway_is_a_replace_and_mtu_is_set() {
    let mut a = public("eth3", "203.0.113.1/24", "203.0.113.254");
    let s1 = state(vec![a.clone()], vec![]);
    let sys0 = sys();
    let sys1 = after(&sys0, &wanted(&s1, &sys0));
    a.gateway = Some("203.0.113.253".parse().unwrap());
    a.mtu = Some(1400);
    let s2 = state(vec![a], vec![]);
    let (old, new) = (wanted(&s1, &sys1), wanted(&s2, &sys1));
    assert_eq!(
        lines(&plan_links(&old, &new, &sys1)),
        ["ip link set dev eth3 mtu 1400"]
    );
    assert_eq!(
        lines(&plan_routes(&old, &new, &sys1)),
        [
            "ip route replace default via 203.0.113.253 dev eth3 table 103",
            "ip route replace default via 203.0.113.253 dev eth3",
        ]
    );
}

#[test]
fn a_hand_made_twin_with_another_metric_is_never_the_agents() {
    let s = state(
        vec![public("eth2", "198.51.100.1/24", "198.51.100.254")],
        vec![],
    );
    let sys0 = sys();
    let mut sys1 = after(&sys0, &wanted(&s, &sys0));
    // Someone's own default at metric 100, and the agent's one gone (flushed, say).
    sys1.routes
        .retain(|r| !(r.table == MAIN_TABLE && r.destination == Ipv4Net::default()));
    sys1.routes.push(SysRoute {
        table: MAIN_TABLE,
        destination: Ipv4Net::default(),
        gateway: Some("198.51.100.253".parse().unwrap()),
        oif: Some(2),
        metric: 100,
    });
    let w = wanted(&s, &sys1);
    // The agent restores its own default and leaves the twin alone...
    assert_eq!(
        lines(&plan_routes(&w, &w, &sys1)),
        ["ip route replace default via 198.51.100.254 dev eth2"]
    );
    // ...and revoking its default does not delete the twin.
    let none = wanted(&DesiredState::default(), &sys1);
    assert!(!lines(&plan_routes(&w, &none, &sys1))
        .iter()
        .any(|l| l.starts_with("ip route del default") && !l.contains(" table ")));
}

#[test]
fn new_addresses_go_on_before_old_ones_come_off() {
    let a = state(
        vec![public("eth3", "203.0.113.1/24", "203.0.113.254")],
        vec![],
    );
    let b = state(
        vec![public("eth3", "203.0.113.2/24", "203.0.113.254")],
        vec![],
    );
    let sys0 = sys();
    let sys1 = after(&sys0, &wanted(&a, &sys0));
    assert_eq!(
        lines(&plan_links(&wanted(&a, &sys1), &wanted(&b, &sys1), &sys1)),
        [
            "ip addr replace 203.0.113.2/24 brd + dev eth3",
            "ip addr del 203.0.113.1/24 dev eth3",
            "arping -U -c 1 -I eth3 203.0.113.2",
        ]
    );
}

#[test]
fn a_backup_holds_its_public_nics_down_and_promotion_announces_them() {
    let mut s = state(
        vec![public("eth3", "203.0.113.1/24", "203.0.113.254")],
        vec![],
    );
    s.ha = Some(
        serde_json::from_str(
            r#"{"router-id":1,"instances":[{"device":"eth0","vips":["10.1.1.1/24"]}]}"#,
        )
        .unwrap(),
    );
    s.ha_role = Some(vr_ha::HaRole::Backup);
    let sys = sys();
    let old = wanted(&DesiredState::default(), &sys);
    let backup = wanted(&s, &sys);
    assert_eq!(
        lines(&plan_links(&old, &backup, &sys)),
        [
            "ip link set dev eth3 down",
            "ip addr replace 203.0.113.1/24 brd + dev eth3",
        ],
        "down, addressed, not announced"
    );
    assert!(
        plan_routes(&old, &backup, &sys).is_empty(),
        "no routes through a NIC held down"
    );
    // The kernel as the backup left it, then the promotion.
    let mut held = sys.clone();
    for l in &mut held.links {
        if l.name == "eth3" {
            l.up = false;
        }
    }
    held.addresses
        .insert((3, "203.0.113.1/24".parse().unwrap()));
    s.ha_role = Some(vr_ha::HaRole::Primary);
    let primary = wanted(&s, &held);
    assert_eq!(
        lines(&plan_links(&backup, &primary, &held)),
        [
            "ip link set dev eth3 up",
            "arping -U -c 1 -I eth3 203.0.113.1"
        ]
    );
    assert!(lines(&plan_routes(&backup, &primary, &held))
        .contains(&"ip route replace default via 203.0.113.254 dev eth3".to_string()));
}
