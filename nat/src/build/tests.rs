//! Unit tests of the builder (the goldens in `tests/golden/` show whole tables).

use super::*;
use crate::model::*;

/// The router most unit tests use (also the planner's tests).
pub(crate) fn ctx() -> RouterContext {
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

fn rs(nat: &str, fw: &str, acls: &str) -> Ruleset {
    build(
        &ctx(),
        &serde_json::from_str(nat).unwrap(),
        &serde_json::from_str(fw).unwrap(),
        &serde_json::from_str::<Vec<TierAcl>>(acls).unwrap(),
    )
}

fn net(s: &str) -> Ipv4Net {
    s.parse().unwrap()
}

fn pf(public: &str, private: &str, src: &str) -> String {
    format!(
        r#"{{"public_ip":"192.0.2.10","protocol":"tcp","public_ports":{public},
            "private_ip":"10.1.0.5","private_ports":{private},"source_cidrs":[{src}]}}"#
    )
}

#[test]
fn normalize_drops_nested_and_host_bits() {
    let got = normalize(&[
        net("10.1.2.3/16"),
        net("10.1.5.0/24"),
        net("192.168.0.0/24"),
        net("10.1.0.0/16"),
    ]);
    assert_eq!(got, [net("10.1.0.0/16"), net("192.168.0.0/24")]);
    assert_eq!(
        normalize(&[net("0.0.0.0/0"), net("10.0.0.0/8")]),
        [net("0.0.0.0/0")]
    );
}

#[test]
fn shifted_range_expands_same_port_range_does_not() {
    let r = rs(
        &format!(
            r#"{{"port_forwards":[{},{}]}}"#,
            pf("\"9000-9002\"", "\"7000-7002\"", ""),
            pf("\"8000-8100\"", "\"8000-8100\"", "")
        ),
        "{}",
        "[]",
    );
    // Open to every source: one exact hash element per port.
    assert!(r.set("pf_port").unwrap().elements.is_empty());
    let exact = r.set("pf_exact").unwrap();
    assert_eq!(exact.elements.len(), 3);
    assert!(!exact.interval, "exact forwards live in a hash map");
    assert_eq!(
        exact.elements[2].data,
        Some(ElementData::Values(vec![
            Value::Addr("10.1.0.5".parse().unwrap()),
            Value::Port(7002)
        ]))
    );
    assert_eq!(exact.elements[2].key[2], Value::Port(9002));
    let addr = r.set("pf_addr").unwrap();
    assert_eq!(addr.elements.len(), 1);
    assert_eq!(addr.elements[0].key[2], Value::PortRange(8000, 8100));
}

#[test]
fn duplicate_forwards_merge_sources() {
    let r = rs(
        &format!(
            r#"{{"port_forwards":[{},{},{}]}}"#,
            pf("80", "80", r#""10.0.0.0/8""#),
            pf("80", "80", r#""10.2.0.0/16","198.51.100.0/24""#),
            pf("443", "443", "")
        ),
        "{}",
        "[]",
    );
    let keys: Vec<Value> = r
        .set("pf_addr")
        .unwrap()
        .elements
        .iter()
        .map(|e| e.key[3].clone())
        .collect();
    assert_eq!(
        keys,
        [
            Value::Net(net("10.0.0.0/8")),
            Value::Net(net("198.51.100.0/24")),
        ]
    );
}

#[test]
fn mappings_do_not_change_structure() {
    let empty = rs("{}", "{}", "[]");
    let full = rs(
        &format!(
            r#"{{"port_forwards":[{}],"static_nat":[{{"public_ip":"192.0.2.11","private_ip":"10.1.0.6"}}],
                "source_nat":[{{"device":"eth2","public_ip":"192.0.2.10"}}]}}"#,
            pf("80", "81", "")
        ),
        "{}",
        "[]",
    );
    assert_eq!(empty.chains, full.chains);
    assert!(empty
        .sets
        .iter()
        .zip(&full.sets)
        .all(|(a, b)| a.same_shape(b)));
    let dn = &full.set("static_dnat").unwrap().elements[0];
    let sn = &full.set("static_snat").unwrap().elements[0];
    assert_eq!(dn.key, [Value::Addr("192.0.2.11".parse().unwrap())]);
    assert_eq!(sn.key, [Value::Addr("10.1.0.6".parse().unwrap())]);
    // A public IP with a forward but no rule: everything not established is dropped.
    assert_eq!(
        full.set("fw_in").unwrap().elements[0].data,
        Some(ElementData::Verdict(Verdict::Drop))
    );
}

#[test]
fn acl_keeps_order_and_verdicts() {
    let r = rs(
        "{}",
        "{}",
        r#"[{"device":"eth3","tier_cidr":"10.3.0.0/24",
            "ingress":[{"action":"deny","protocol":"tcp","ports":22,"cidrs":["10.4.0.0/24"]},
                       {"action":"allow","protocol":"tcp","ports":22}],
            "egress":[{"action":"allow","protocol":"udp"},{"action":"deny","protocol":"all"}]}]"#,
    );
    let verdicts = |name: &str| -> Vec<Statement> {
        let c = r.chains.iter().find(|c| c.name == name).unwrap();
        c.rules
            .iter()
            .map(|r| r.statements.last().unwrap().clone())
            .collect()
    };
    use Statement::Verdict as V;
    assert_eq!(
        verdicts("acl_in_0"),
        [V(Verdict::Drop), V(Verdict::Accept), V(Verdict::Drop)]
    );
    assert_eq!(
        verdicts("acl_out_0"),
        [V(Verdict::Return), V(Verdict::Drop)]
    );
    let first = &r
        .chains
        .iter()
        .find(|c| c.name == "acl_in_0")
        .unwrap()
        .rules[0];
    assert_eq!(first.matches[0], in_set(&[Field::IpSaddr], "acl0_in0"));
    assert_eq!(
        r.set("acl_in").unwrap().elements[0].data,
        Some(ElementData::Verdict(Verdict::Jump("acl_in_0".into())))
    );
}

#[test]
fn protocol_dependencies_come_first() {
    let m = protocol_matches(RuleProtocol::Udp, Some(&PortRange::single(53)), None, None);
    assert_eq!(
        m,
        [
            eq(Field::MetaL4proto, Value::Proto(UDP)),
            eq(Field::ThDport, Value::Port(53))
        ]
    );
    let m = protocol_matches(RuleProtocol::Icmp, None, Some(8), Some(0));
    assert_eq!(m[0], eq(Field::MetaL4proto, Value::Proto(ICMP)));
    assert_eq!(m.len(), 3);
    assert!(protocol_matches(RuleProtocol::All, None, None, None).is_empty());
}
