//! CloudStack adds fields between releases and may send a revoked rule as its id alone: both
//! are accepted (unknown fields logged by path and ignored), while the native format stays
//! strict.

use super::*;

#[test]
fn unknown_fields_are_ignored_by_path_cmdline_keeps_them() {
    // CloudStack adds fields between releases: a newer management server's push still applies.
    let newer = IPS.replace("\"new_nic\"", "\"new_nick\":{\"x\":\"s3cr3t\"},\"new_nic\"");
    let p = parse_payload(&newer).unwrap();
    let m = merge(&DesiredState::default(), &p, &LocalNics::new()).unwrap();
    let plain = parse_payload(IPS).unwrap();
    let plain = merge(&DesiredState::default(), &plain, &LocalNics::new()).unwrap();
    assert_eq!(m.state, plain.state, "the unknown field changes nothing");
    // What is logged: the path, never the value.
    let (_, ignored): (IpAssociation, _) = crate::parse::parse_lenient(&newer).unwrap();
    assert_eq!(ignored, ["ip_address[0].new_nick"]);
    // Known fields stay strictly typed.
    expect(
        &IPS.replace("\"nic_dev_id\":2", "\"nic_dev_id\":\"two\""),
        "ip_address[0].nic_dev_id",
        "\"two\"",
        "invalid type",
    );
    let p =
        parse_payload(&CMD.replace("\"gateway\"", "\"my_boot_arg\":\"x\",\"gateway\"")).unwrap();
    let m = merge(&DesiredState::default(), &p, &LocalNics::new()).unwrap();
    assert_eq!(m.state.cloudstack.cmdline["my_boot_arg"], "x");
    expect(
        &CMD.replace("\"eth0ip\":\"10.1.1.1\"", "\"eth0ip\":10"),
        "cmd_line.eth0ip",
        "10",
        "string",
    );
    // The native format stays strict.
    let e = crate::parse::parse_strict::<crate::state::StateDocument>(r#"{"schema":1,"natt":{}}"#)
        .unwrap_err();
    assert!(e.to_string().contains("natt"), "{e}");
}

#[test]
fn a_revoked_firewall_rule_needs_only_its_id() {
    let base = merge(
        &DesiredState::default(),
        &parse_payload(FW).unwrap(),
        &LocalNics::new(),
    )
    .unwrap();
    assert_eq!(base.state.firewall.ingress.len(), 1);
    let egress = r#"{"type":"firewallrules","delete_from_processed_cache":false,"rules":[{"id":31,"src_ip":"","protocol":"tcp","src_port_range":[80,80],"revoked":false,"source_cidr_list":["10.1.1.0/24"],"dest_cidr_list":["198.51.100.0/24"],"traffic_type":"Egress","guest_cidr":"10.1.1.0/24","default_egress_policy":false}]}"#;
    let m = merge(
        &base.state,
        &parse_payload(egress).unwrap(),
        &LocalNics::new(),
    )
    .unwrap();
    assert_eq!(m.state.firewall.egress[0].rules.len(), 1);
    // A revoked egress rule without guest_cidr (nor protocol, nor traffic_type).
    let revoke = r#"{"type":"firewallrules","delete_from_processed_cache":false,"rules":[{"id":31,"revoked":true},{"id":14,"revoked":true}]}"#;
    let m = merge(&m.state, &parse_payload(revoke).unwrap(), &LocalNics::new()).unwrap();
    assert!(m.state.firewall.egress[0].rules.is_empty());
    assert!(m.state.firewall.ingress.is_empty());
    // IPv6 likewise; a rule that is not revoked still needs its fields.
    let v6 = r#"{"type":"ipv6firewallrules","delete_from_processed_cache":false,"rules":[{"id":9,"revoked":true}]}"#;
    merge(&m.state, &parse_payload(v6).unwrap(), &LocalNics::new()).unwrap();
    expect(
        r#"{"type":"firewallrules","delete_from_processed_cache":false,"rules":[{"id":31,"revoked":false}]}"#,
        "rules[0].protocol",
        "\"\"",
        "",
    );
}
