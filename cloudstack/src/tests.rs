//! Unit tests of the adapter: one per validation rule (the error names the JSON path and the
//! offending value) and the merge semantics the goldens do not show.

use super::*;
use crate::state::MacAddr;

/// What a newer CloudStack sends: unknown fields, revokes by id alone.
mod lenient;

fn err(text: &str) -> FieldError {
    let e = parse_payload(text).expect_err("must be rejected");
    e.0.into_iter().next().unwrap()
}

fn expect(text: &str, path: &str, value: &str, reason_part: &str) {
    let e = err(text);
    assert_eq!(e.path, path, "{e}");
    assert_eq!(e.value, value, "{e}");
    assert!(e.reason.contains(reason_part), "{e}");
}

const IPS: &str = r#"{"type":"ips","delete_from_processed_cache":false,"ip_address":[{"public_ip":"192.0.2.10","source_nat":true,"add":true,"one_to_one_nat":false,"first_i_p":true,"gateway":"192.0.2.1","netmask":"255.255.255.0","vif_mac_address":"06:9a:3c:00:00:12","nic_dev_id":2,"new_nic":false,"nw_type":"public"}]}"#;
const FWD: &str = r#"{"type":"forwardrules","delete_from_processed_cache":false,"rules":[{"revoke":false,"protocol":"tcp","source_ip_address":"192.0.2.11","source_port_range":"8080:8090","destination_ip_address":"10.1.1.24","destination_port_range":"80:90"}]}"#;
const FW: &str = r#"{"type":"firewallrules","delete_from_processed_cache":false,"rules":[{"id":14,"src_ip":"192.0.2.11","protocol":"tcp","src_port_range":[22,22],"revoked":false,"already_added":false,"source_cidr_list":["0.0.0.0/0"],"dest_cidr_list":[],"purpose":"Firewall","traffic_type":"Ingress","guest_cidr":"10.1.1.0/24","default_egress_policy":false}]}"#;
const ACL: &str = r#"{"type":"networkacl","delete_from_processed_cache":false,"device":"eth2","mac_address":"02:00:56:36:00:02","private_gateway_acl":false,"nic_ip":"10.0.1.1","nic_netmask":"24","ingress_rules":[{"type":"tcp","cidr":"0.0.0.0/0","allowed":true,"first_port":22,"last_port":22}],"egress_rules":[]}"#;
const S2S: &str = r#"{"type":"site2sitevpn","delete_from_processed_cache":false,"local_public_ip":"192.0.2.20","local_guest_cidr":"10.0.0.0/16","local_public_gateway":"192.0.2.1","peer_gateway_ip":"203.0.113.5","peer_guest_cidr_list":"172.16.0.0/16","esp_policy":"aes128-sha1;modp1536","ike_policy":"aes128-sha1;modp1536","ipsec_psk":"Xk2nR7test-psk-Lq9","ike_lifetime":86400,"esp_lifetime":3600,"create":true,"dpd":false,"passive":false,"encap":false}"#;
const GN: &str = r#"{"type":"guestnetwork","delete_from_processed_cache":false,"add":true,"mac_address":"02:00:3b:6e:00:05","device":"eth0","router_guest_ip":"10.1.1.1","router_guest_netmask":"255.255.255.0","router_guest_gateway":"10.1.1.1","cidr":"24","dns":"10.1.1.1","domain_name":"cs1cloud.internal","is_vr_guest_gateway":false,"network_id":204}"#;
const CMD: &str = r#"{"type":"cmdline","delete_from_processed_cache":false,"cmd_line":{"type":"router","eth0ip":"10.1.1.1","eth0mask":"255.255.255.0","eth2ip":"192.0.2.10","eth2mask":"255.255.255.0","gateway":"192.0.2.1"}}"#;
const ROUTES: &str = r#"{"type":"staticroutes","delete_from_processed_cache":false,"routes":[{"revoke":false,"ip_address":"10.10.0.2","gateway":"10.10.0.1","network":"172.16.0.0/16"}]}"#;

#[test]
fn type_is_required_and_known() {
    expect(
        r#"{"type":"routerz","x":1}"#,
        "type",
        "\"routerz\"",
        "unknown CloudStack payload type",
    );
    expect(r#"{"type":7}"#, "type", "7", "string");
    expect(r#"{"ip_address":[]}"#, "type", "", "missing");
    let e = err("{\"type\":\"ips\",");
    assert!(e.reason.contains("line 1"), "{e}");
}

#[test]
fn ips_rules() {
    expect(
        &IPS.replace("255.255.255.0", "255.0.255.0"),
        "ip_address[0].netmask",
        "\"255.0.255.0\"",
        "contiguous",
    );
    expect(
        &IPS.replace("\"192.0.2.10\"", "\"192.0.2.300\""),
        "ip_address[0].public_ip",
        "\"192.0.2.300\"",
        "IPv4",
    );
    expect(
        &IPS.replace("06:9a:3c:00:00:12", "06:9a:3c:00:12"),
        "ip_address[0].vif_mac_address",
        "\"06:9a:3c:00:12\"",
        "MAC",
    );
    expect(
        &IPS.replace("\"public\"", "\"Storage\""),
        "ip_address[0].nw_type",
        "\"Storage\"",
        "network type",
    );
    expect(
        &IPS.replace("\"nw_type\"", "\"mtu\":40,\"nw_type\""),
        "ip_address[0].mtu",
        "40",
        "MTU",
    );
    // Case-insensitive network type.
    parse_payload(&IPS.replace("\"public\"", "\"PUBLIC\"")).unwrap();
}

#[test]
fn nic_is_found_by_mac_first_then_dev_id() {
    let p = parse_payload(IPS).unwrap();
    let mut nics = LocalNics::new();
    let m = merge(&DesiredState::default(), &p, &nics).unwrap();
    assert_eq!(m.state.interfaces[0].device, "eth2");
    nics.insert(
        "06:9a:3c:00:00:12".parse::<MacAddr>().unwrap(),
        "ens5".into(),
    );
    let m = merge(&DesiredState::default(), &p, &nics).unwrap();
    assert_eq!(m.state.interfaces[0].device, "ens5");
    assert_eq!(m.state.nat.source_nat[0].device, "ens5");
    assert_eq!(m.state.policy_mark("ens5"), Some(300));

    let p = parse_payload(&IPS.replace(",\"nic_dev_id\":2", "")).unwrap();
    let e = merge(&DesiredState::default(), &p, &LocalNics::new()).unwrap_err();
    assert_eq!(e.0[0].path, "ip_address[0].vif_mac_address");
    assert_eq!(e.0[0].value, "\"06:9a:3c:00:00:12\"");

    // Removal finds the address wherever it is, and is idempotent.
    let s1 = merge(
        &DesiredState::default(),
        &parse_payload(IPS).unwrap(),
        &nics,
    )
    .unwrap()
    .state;
    let rm = IPS
        .replace(",\"nic_dev_id\":2", "")
        .replace("\"add\":true", "\"add\":false")
        .replace("06:9a:3c:00:00:12", "06:9a:3c:00:00:99");
    let s2 = merge(&s1, &parse_payload(&rm).unwrap(), &LocalNics::new())
        .unwrap()
        .state;
    assert!(s2.interfaces.is_empty());
    assert!(s2.nat.source_nat.is_empty());
    let s3 = merge(&s2, &parse_payload(&rm).unwrap(), &LocalNics::new())
        .unwrap()
        .state;
    assert_eq!(s3, s2);
}

#[test]
fn forward_rules() {
    let f = |from: &str, to: &str| FWD.replace(from, to);
    expect(
        &f("\"8080:8090\"", "\"0:10\""),
        "rules[0].source_port_range",
        "\"0:10\"",
        "1-65535",
    );
    expect(
        &f("\"80:90\"", "\"80:65536\""),
        "rules[0].destination_port_range",
        "\"80:65536\"",
        "1-65535",
    );
    expect(
        &f("\"8080:8090\"", "\"8090:8080\""),
        "rules[0].source_port_range",
        "\"8090:8080\"",
        "inverted",
    );
    expect(
        &f("\"80:90\"", "\"80:95\""),
        "rules[0].destination_port_range",
        "\"80:95\"",
        "length differs",
    );
    expect(
        &f("\"tcp\"", "\"gre\""),
        "rules[0].protocol",
        "\"gre\"",
        "tcp or udp",
    );
    expect(
        &f(
            "\"destination_port_range\"",
            "\"source_cidr_list\":\"10.0.0.0/8,x\",\"destination_port_range\"",
        ),
        "rules[0].source_cidr_list",
        "\"10.0.0.0/8,x\"",
        "CIDR",
    );
    let twice = FWD.replace(
        "}]}",
        r#"},{"revoke":false,"protocol":"tcp","source_ip_address":"192.0.2.11","source_port_range":"8080:8090","destination_ip_address":"10.1.1.99","destination_port_range":"80:90"}]}"#,
    );
    expect(
        &twice,
        "rules[1].source_port_range",
        "\"8080:8090\"",
        "already forwarded",
    );
}

#[test]
fn firewall_rules() {
    let f = |from: &str, to: &str| FW.replace(from, to);
    expect(
        &f("[22,22]", "[0,22]"),
        "rules[0].src_port_range",
        "[0, 22]",
        "1-65535",
    );
    expect(
        &f(
            "\"tcp\",\"src_port_range\":[22,22]",
            "\"icmp\",\"icmp_type\":256,\"icmp_code\":-1",
        ),
        "rules[0].icmp_type",
        "256",
        "0-255",
    );
    expect(
        &f(
            "\"tcp\",\"src_port_range\":[22,22]",
            "\"icmp\",\"icmp_type\":8,\"icmp_code\":-5",
        ),
        "rules[0].icmp_code",
        "-5",
        "0-255",
    );
    expect(
        &f("\"tcp\"", "\"sctpx\""),
        "rules[0].protocol",
        "\"sctpx\"",
        "unknown protocol",
    );
    expect(
        &f("\"Ingress\"", "\"Sideways\""),
        "rules[0].traffic_type",
        "\"Sideways\"",
        "Ingress or Egress",
    );
    expect(
        &f("\"0.0.0.0/0\"", "\"0.0.0.0/40\""),
        "rules[0].source_cidr_list[0]",
        "\"0.0.0.0/40\"",
        "CIDR",
    );
    expect(
        &f("\"src_ip\":\"192.0.2.11\"", "\"src_ip\":\"\""),
        "rules[0].src_ip",
        "\"\"",
        "IPv4",
    );
    expect(&f("\"id\":14", "\"id\":-1"), "rules[0].id", "-1", "");
    // A protocol number and icmp "any" are fine; ports are ignored for icmp/all.
    parse_payload(&f("\"tcp\"", "\"47\"")).unwrap();
}

#[test]
fn changed_firewall_rule_with_same_id_is_updated() {
    let s0 = DesiredState::default();
    let a = merge(&s0, &parse_payload(FW).unwrap(), &LocalNics::new())
        .unwrap()
        .state;
    let b = merge(
        &a,
        &parse_payload(&FW.replace("[22,22]", "[2222,2222]")).unwrap(),
        &LocalNics::new(),
    )
    .unwrap()
    .state;
    assert_eq!(b.firewall.ingress.len(), 1);
    assert_eq!(
        b.firewall.ingress[0].ports,
        Some(vr_nat::PortRange::single(2222))
    );
}

#[test]
fn network_acl_rules() {
    let f = |from: &str, to: &str| ACL.replace(from, to);
    expect(
        &f("\"tcp\"", "\"gre\""),
        "ingress_rules[0].type",
        "\"gre\"",
        "unknown rule type",
    );
    expect(
        &f("\"type\":\"tcp\"", "\"type\":\"protocol\""),
        "ingress_rules[0].protocol",
        "null",
        "protocol number",
    );
    expect(
        &f("\"type\":\"tcp\"", "\"type\":\"protocol\",\"protocol\":300"),
        "ingress_rules[0].protocol",
        "300",
        "0-255",
    );
    // An unknown field is ignored (logged): the rule is still checked.
    expect(
        &f("\"first_port\":22", "\"first_port\":23,\"x\":1"),
        "ingress_rules[0].first_port",
        "[23, 22]",
        "inverted",
    );
    expect(
        &f("\"24\"", "\"255.255.255.0\""),
        "nic_netmask",
        "\"255.255.255.0\"",
        "prefix length",
    );
    expect(
        &f("\"eth2\"", "\"eth2\\n\""),
        "device",
        "\"eth2\\n\"",
        "interface name",
    );
    expect(
        &f("\"last_port\":22", "\"last_port\":21"),
        "ingress_rules[0].first_port",
        "[22, 21]",
        "inverted",
    );
}

#[test]
fn site_to_site_rules() {
    let f = |from: &str, to: &str| S2S.replace(from, to);
    expect(
        &f("\"Xk2nR7test-psk-Lq9\"", "\"\""),
        "ipsec_psk",
        "<redacted>",
        "empty",
    );
    expect(
        &f("\"Xk2nR7test-psk-Lq9\"", "17"),
        "ipsec_psk",
        "<redacted>",
        "string",
    );
    expect(&f("86400", "-5"), "ike_lifetime", "-5", "positive");
    expect(
        &f(
            "\"ike_policy\":\"aes128-sha1;modp1536\"",
            "\"ike_policy\":\"blowfish-sha1;modp1536\"",
        ),
        "ike_policy",
        "\"blowfish-sha1;modp1536\"",
        "cipher",
    );
    expect(
        &f(
            "\"esp_policy\":\"aes128-sha1;modp1536\"",
            "\"esp_policy\":\"aes128-sha1;modp17\"",
        ),
        "esp_policy",
        "\"aes128-sha1;modp17\"",
        "DH group",
    );
    expect(
        &f("\"create\"", "\"ike_version\":\"ikev3\",\"create\""),
        "ike_version",
        "\"ikev3\"",
        "ikev1",
    );
    expect(
        &f("\"172.16.0.0/16\"", "\"172.16.0.0/16,bad\""),
        "peer_guest_cidr_list",
        "\"172.16.0.0/16,bad\"",
        "bad",
    );
    let p = parse_payload(S2S).unwrap();
    assert!(!format!("{p:?}").contains("Xk2nR7"), "PSK in Debug");
    // Removal needs only the identity.
    let rm = f("\"create\":true", "\"create\":false").replace("\"Xk2nR7test-psk-Lq9\"", "\"\"");
    parse_payload(&rm).unwrap();
    // Integer ike_version from older senders.
    let p = parse_payload(&f("\"create\"", "\"ike_version\":2,\"create\"")).unwrap();
    let m = merge(&DesiredState::default(), &p, &LocalNics::new()).unwrap();
    assert_eq!(
        m.state.vpn.site_to_site[0].ike_version,
        vr_vpn::IkeVersion::Ikev2
    );
}

#[test]
fn guest_network_rules() {
    let f = |from: &str, to: &str| GN.replace(from, to);
    expect(
        &f("\"eth0\"", "\"eth0;reboot\""),
        "device",
        "\"eth0;reboot\"",
        "interface name",
    );
    expect(
        &f("\"cidr\":\"24\"", "\"cidr\":\"16\""),
        "cidr",
        "\"16\"",
        "disagrees",
    );
    expect(
        &f("\"cs1cloud.internal\"", "\"cs1 cloud\""),
        "domain_name",
        "\"cs1 cloud\"",
        "DNS name",
    );
    expect(
        &f("\"network_id\":204", "\"network_id\":\"204\""),
        "network_id",
        "\"204\"",
        "",
    );
    expect(
        &f("\"add\"", "\"cidr6\":\"10.0.0.0/8\",\"add\""),
        "cidr6",
        "\"10.0.0.0/8\"",
        "IPv6",
    );
    // Older senders omit mtu.
    assert!(!GN.contains("mtu"));
    parse_payload(GN).unwrap();
}

#[test]
fn cmdline_rules() {
    let f = |from: &str, to: &str| CMD.replace(from, to);
    expect(
        &f("\"router\"", "\"switch\""),
        "cmd_line.type",
        "\"switch\"",
        "router type",
    );
    expect(
        &f(
            "\"eth0mask\":\"255.255.255.0\"",
            "\"eth0mask\":\"255.255.0.255\"",
        ),
        "cmd_line.eth0mask",
        "\"255.255.0.255\"",
        "contiguous",
    );
    expect(
        &f(
            "\"gateway\":\"192.0.2.1\"",
            "\"gateway\":\"192.0.2.1\",\"name\":\"r-4\\nVM\"",
        ),
        "cmd_line.name",
        "\"r-4\\nVM\"",
        "forbidden",
    );
    expect(
        &f(
            "\"gateway\":\"192.0.2.1\"",
            "\"gateway\":\"192.0.2.1\",\"name\":\"r-4;VM\"",
        ),
        "cmd_line.name",
        "\"r-4;VM\"",
        "DNS name",
    );
    parse_payload(&f(
        "\"gateway\":\"192.0.2.1\"",
        "\"gateway\":\"192.0.2.1\",\"authorized_keys\":\"ssh-rsa AAAA+/x= root@m!\"",
    ))
    .unwrap();
    let e = parse_payload(&f(",\"eth2mask\":\"255.255.255.0\"", "")).unwrap_err();
    assert_eq!(e.0[0].path, "cmd_line.eth2mask");
}

#[test]
fn cmdline_readdress_withdraws_the_old_address() {
    let s1 = merge(
        &DesiredState::default(),
        &parse_payload(CMD).unwrap(),
        &LocalNics::new(),
    )
    .unwrap()
    .state;
    let p = parse_payload(&CMD.replace("192.0.2.10", "192.0.2.50")).unwrap();
    let s2 = merge(&s1, &p, &LocalNics::new()).unwrap().state;
    let eth2 = s2.interfaces.iter().find(|i| i.device == "eth2").unwrap();
    assert_eq!(eth2.addresses, vec!["192.0.2.50/24".parse().unwrap()]);
}

#[test]
fn static_route_rules() {
    expect(
        &ROUTES.replace("172.16.0.0/16", "172.16.0.1/16"),
        "routes[0].network",
        "\"172.16.0.1/16\"",
        "host bits",
    );
    expect(
        &ROUTES.replace("\"10.10.0.1\"", "\"10.10.0\""),
        "routes[0].gateway",
        "\"10.10.0\"",
        "IPv4",
    );
}

#[test]
fn later_types_are_pending_and_ospf_is_applied() {
    let ospf = r#"{"type":"ospf","delete_from_processed_cache":false,"enabled":true,"router_id":"192.0.2.10","area":"0.0.0.0","hello_interval":10,"dead_interval":40,"retransmit_interval":5,"transit_delay":1,"authentication":"md5","password":"ospf-secret","super_cidrs":["10.0.0.0/8"],"transit_interfaces":[{"device":"eth2","cost":10,"network_type":"point-to-point"}],"tier_cidrs":["10.1.1.0/24"],"redistribute_connected":true}"#;
    let p = parse_payload(ospf).unwrap();
    assert_eq!(p.kind(), "ospf");
    // The transit NIC's network comes from the state (FRR cannot mix interface areas with
    // the tiers' network statements).
    let base: DesiredState = serde_json::from_str(
        r#"{"interfaces":[{"device":"eth2","role":"public","addresses":["192.0.2.10/24"]}]}"#,
    )
    .unwrap();
    let m = merge(&base, &p, &LocalNics::new()).unwrap();
    assert!(m.not_yet_applied.is_empty());
    let nets = &m.state.ospf.as_ref().unwrap().networks;
    assert!(
        nets.iter().any(|n| n.prefix.to_string() == "192.0.2.0/24"),
        "{nets:?}"
    );
    let err = merge(&DesiredState::default(), &p, &LocalNics::new()).unwrap_err();
    assert_eq!(err.0[0].path, "transit_interfaces[0].device");
    let section = m.state.ospf.as_ref().expect("ospf section");
    assert_eq!(section.router_id.to_string(), "192.0.2.10");
    assert!(
        !format!("{p:?} {section:?}").contains("ospf-secret"),
        "secret in Debug"
    );
    let off = parse_payload(&ospf.replace("\"enabled\":true", "\"enabled\":false")).unwrap();
    let m2 = merge(&m.state, &off, &LocalNics::new()).unwrap();
    assert_eq!(m2.state.ospf, None, "enabled:false removes OSPF");
    let bad =
        parse_payload(&ospf.replace("\"device\":\"eth2\"", "\"device\":\"eth2\\nrouter bgp 1\""))
            .unwrap();
    let bad = merge(&base, &bad, &LocalNics::new()).unwrap_err();
    assert_eq!(bad.0[0].path, "transit_interfaces[0].device", "{bad}");

    let p = parse_payload(r#"{"type":"monitorservice","delete_from_processed_cache":true,"config":"ssh:/usr/sbin/sshd","health_checks_enabled":true}"#).unwrap();
    let m = merge(&DesiredState::default(), &p, &LocalNics::new()).unwrap();
    assert!(m.not_yet_applied.is_empty(), "{:?}", m.not_yet_applied);
    assert_eq!(m.state.monitor.services[0].process, "ssh");
}

#[test]
fn redaction_of_cmdline_secrets() {
    let mut ctx = crate::state::CloudStackContext::default();
    ctx.cmdline
        .insert("baremetalnotificationsecuritykey".into(), "abc".into());
    ctx.cmdline.insert("name".into(), "r-4-VM".into());
    let r = crate::redact::redacted(&ctx);
    let p = parse_payload(&CMD.replace(
        "\"gateway\"",
        "\"baremetalnotificationsecuritykey\":\"abc123\",\"gateway\"",
    ))
    .unwrap();
    assert!(!format!("{p:?}").contains("abc123"));
    let p = parse_payload(r#"{"type":"vmdata","delete_from_processed_cache":false,"vm_ip_address":"10.1.1.23","vm_metadata":[["userdata","user-data","c2VjcmV0LXVzZXJkYXRh"]]}"#).unwrap();
    assert!(!format!("{p:?}").contains("c2VjcmV0"));
    assert_eq!(
        r["cmdline"]["baremetalnotificationsecuritykey"],
        "<redacted>"
    );
    assert_eq!(r["cmdline"]["name"], "r-4-VM");
    assert_eq!(crate::redact::secrets_of(&ctx), ["abc"]);
}

#[test]
fn aggregate_merges_as_one_unit() {
    let text = format!(
        "#Apache CloudStack Virtual Router Config File\n<version>\n1.0\n</version>\n<file>\n/var/cache/cloud/ip_associations.json.a1\n{IPS}\n</file>\n<file>\n/var/cache/cloud/forwarding_rules.json.a2\n{FWD}\n</file>\n<script>\n/opt/cloud/bin/update_config.py forwarding_rules.json.a2\n</script>\n"
    );
    let entries = parse_aggregate(&text).unwrap();
    let m = merge_aggregate(&DesiredState::default(), &entries, &LocalNics::new()).unwrap();
    assert_eq!(m.state.nat.port_forwards.len(), 1);
    // A merge-time failure of a later part fails the whole container.
    let bad = text.replace(",\"nic_dev_id\":2", "");
    let entries = parse_aggregate(&bad).unwrap();
    let e = merge_aggregate(&DesiredState::default(), &entries, &LocalNics::new()).unwrap_err();
    assert_eq!(e.0[0].path, "aggregate[0].ip_address[0].vif_mac_address");
}

#[test]
fn egress_default_rule_sets_the_policy_only() {
    let marker = r#"{"type":"firewallrules","delete_from_processed_cache":false,"rules":[{"id":19,"src_ip":"","protocol":"all","revoked":false,"already_added":false,"source_cidr_list":[],"dest_cidr_list":[],"purpose":"Firewall","traffic_type":"Egress","guest_cidr":"10.1.1.0/24","default_egress_policy":true}]}"#;
    let m = merge(
        &DesiredState::default(),
        &parse_payload(marker).unwrap(),
        &LocalNics::new(),
    )
    .unwrap();
    let pol = &m.state.firewall.egress[0];
    assert!(pol.default_allow);
    assert!(pol.rules.is_empty(), "the default marker is not a rule");
    let deny = marker.replace(
        "\"default_egress_policy\":true",
        "\"default_egress_policy\":false",
    );
    let m = merge(&m.state, &parse_payload(&deny).unwrap(), &LocalNics::new()).unwrap();
    assert!(!m.state.firewall.egress[0].default_allow);
    assert_eq!(m.state.firewall.egress.len(), 1);
}

#[test]
fn fields_of_newer_senders_are_known() {
    parse_payload(&FW.replace("\"purpose\"", "\"type\":\"Ingress\",\"purpose\"")).unwrap();
    let e = err(&FW.replace("\"purpose\"", "\"type\":\"a\\nb\",\"purpose\""));
    assert_eq!(e.path, "rules[0].type");
    parse_payload(r#"{"type":"staticnatrules","delete_from_processed_cache":false,"rules":[{"revoke":false,"protocol":null,"source_ip_address":"192.0.2.12","source_port_range":"0:0","destination_ip_address":"10.1.1.30","should_apply_cross_network_snat":true}]}"#).unwrap();
}
