//! Issue 2 acceptance: one push of every invalid kind is rejected whole, the error names the
//! field and the value (secrets excepted), `state.json` stays byte-for-byte the same, and the
//! next valid push still applies.

use vr_tests::{require_root, AgentProc, Netns};

/// (kind, push, expected path, expected text in the quoted value). The VPN rows' pushes are
/// built by [`cases`] from [`vpn_push`].
const CASES: &[(&str, &str, &str, &str)] = &[
    (
        "malformed IP",
        r#"{"schema":1,"nat":{"static_nat":[{"public_ip":"192.0.2.300","private_ip":"10.1.1.5"}]}}"#,
        "nat.static_nat[0].public_ip",
        "192.0.2.300",
    ),
    (
        "malformed CIDR",
        r#"{"schema":1,"routes":[{"destination":"10.9.0.0/33","gateway":"10.99.0.2"}]}"#,
        "routes[0].destination",
        "10.9.0.0/33",
    ),
    (
        "malformed MAC",
        r#"{"schema":1,"interfaces":[{"device":"eth0","role":"guest","mac":"02:00:0a:01:01:zz"}]}"#,
        "interfaces[0].mac",
        "02:00:0a:01:01:zz",
    ),
    (
        "non-contiguous netmask",
        r#"{"type":"ips","delete_from_processed_cache":false,"ip_address":[{"public_ip":"192.0.2.20","source_nat":false,"add":true,"one_to_one_nat":false,"first_i_p":false,"gateway":"192.0.2.1","netmask":"255.0.255.0","vif_mac_address":"1e:00:c0:00:02:14","nic_dev_id":2,"new_nic":false,"nw_type":"public"}]}"#,
        "netmask",
        "255.0.255.0",
    ),
    (
        "port 0",
        r#"{"schema":1,"nat":{"port_forwards":[{"public_ip":"192.0.2.11","protocol":"tcp","public_ports":0,"private_ip":"10.1.1.10","private_ports":80}]}}"#,
        "nat.port_forwards[0].public_ports",
        "0",
    ),
    (
        "port above 65535",
        r#"{"schema":1,"nat":{"port_forwards":[{"public_ip":"192.0.2.11","protocol":"tcp","public_ports":70000,"private_ip":"10.1.1.10","private_ports":80}]}}"#,
        "nat.port_forwards[0].public_ports",
        "70000",
    ),
    (
        "inverted range",
        r#"{"schema":1,"nat":{"port_forwards":[{"public_ip":"192.0.2.11","protocol":"tcp","public_ports":"9000-8000","private_ip":"10.1.1.10","private_ports":"9000-8000"}]}}"#,
        "nat.port_forwards[0].public_ports",
        "9000-8000",
    ),
    (
        "unequal range lengths",
        r#"{"schema":1,"nat":{"port_forwards":[{"public_ip":"192.0.2.11","protocol":"udp","public_ports":"5000-5009","private_ip":"10.1.1.10","private_ports":"6000-6019"}]}}"#,
        "nat.port_forwards[0].private_ports",
        "6000-6019",
    ),
    (
        "unknown protocol",
        r#"{"schema":1,"firewall":{"ingress":[{"id":1,"public_ip":"192.0.2.11","protocol":"sctpx","source_cidrs":[]}]}}"#,
        "firewall.ingress[0].protocol",
        "sctpx",
    ),
    (
        "ICMP type out of range",
        r#"{"schema":1,"firewall":{"ingress":[{"id":1,"public_ip":"192.0.2.11","protocol":"icmp","icmp_type":256,"source_cidrs":[]}]}}"#,
        "firewall.ingress[0].icmp_type",
        "256",
    ),
    (
        "ICMP code out of range",
        r#"{"schema":1,"firewall":{"ingress":[{"id":1,"public_ip":"192.0.2.11","protocol":"icmp","icmp_type":3,"icmp_code":300,"source_cidrs":[]}]}}"#,
        "firewall.ingress[0].icmp_code",
        "300",
    ),
    (
        "public ip:port mapped twice",
        r#"{"schema":1,"nat":{"port_forwards":[
        {"public_ip":"192.0.2.11","protocol":"tcp","public_ports":8080,"private_ip":"10.1.1.10","private_ports":80},
        {"public_ip":"192.0.2.11","protocol":"tcp","public_ports":8080,"private_ip":"10.1.1.11","private_ports":80}]}}"#,
        "nat.port_forwards[1]",
        "8080",
    ),
    (
        "unknown cipher",
        "",
        "vpn.site_to_site[0].ike_policy",
        "blowfish",
    ),
    ("unknown hash", "", "vpn.site_to_site[0].ike_policy", "sha7"),
    (
        "unknown DH group",
        "",
        "vpn.site_to_site[0].ike_policy",
        "modp999",
    ),
    (
        "negative lifetime",
        "",
        "vpn.site_to_site[0].ike_lifetime",
        "-1",
    ),
    ("empty PSK", "", "vpn.site_to_site[0].psk", "redacted"),
    (
        "control character in a name",
        r#"{"schema":1,"interfaces":[{"device":"eth0\nrouter ospf","role":"guest"}]}"#,
        "interfaces[0].device",
        "eth0",
    ),
    (
        "config metacharacter in a name",
        r#"{"schema":1,"ospf":{"router_id":"192.0.2.10","interfaces":[{"device":"eth0!"}]}}"#,
        "ospf.interfaces[0].device",
        "eth0!",
    ),
    (
        "wrong JSON type",
        r#"{"schema":1,"routes":{"destination":"10.9.0.0/16"}}"#,
        "routes",
        "10.9.0.0/16",
    ),
    (
        "unknown field",
        r#"{"schema":1,"nat":{"port_forward":[]}}"#,
        "nat",
        "port_forward",
    ),
];

fn vpn_push(ike: &str, esp: &str, psk: &str, lifetime: &str) -> String {
    format!(
        r#"{{"schema":1,"vpn":{{"site_to_site":[{{"local_public_ip":"192.0.2.10","local_cidrs":["10.1.1.0/24"],
        "peer_gateway":"203.0.113.5","peer_cidrs":["10.2.0.0/24"],{psk},"ike_policy":"{ike}","esp_policy":"{esp}",
        "ike_lifetime":{lifetime}}}]}}}}"#
    )
}

fn cases() -> Vec<(&'static str, String, &'static str, &'static str)> {
    CASES
        .iter()
        .map(|(kind, push, path, value)| {
            let text = match *kind {
                "unknown cipher" => vpn_push(
                    "blowfish-sha1;modp1536",
                    "aes128-sha1",
                    "\"psk\":\"k3y-for-test\"",
                    "86400",
                ),
                "unknown hash" => vpn_push(
                    "aes128-sha7;modp1536",
                    "aes128-sha1",
                    "\"psk\":\"k3y-for-test\"",
                    "86400",
                ),
                "unknown DH group" => vpn_push(
                    "aes128-sha1;modp999",
                    "aes128-sha1",
                    "\"psk\":\"k3y-for-test\"",
                    "86400",
                ),
                "negative lifetime" => vpn_push(
                    "aes128-sha1;modp1536",
                    "aes128-sha1",
                    "\"psk\":\"k3y-for-test\"",
                    "-1",
                ),
                "empty PSK" => vpn_push(
                    "aes128-sha1;modp1536",
                    "aes128-sha1",
                    "\"psk\":\"\"",
                    "86400",
                ),
                _ => push.to_string(),
            };
            (*kind, text, *path, *value)
        })
        .collect()
}

#[test]
fn every_invalid_kind_is_rejected_whole_and_changes_nothing() {
    if !require_root("every_invalid_kind_is_rejected_whole_and_changes_nothing") {
        return;
    }
    let ns = Netns::new("vrinv");
    ns.ip(&[
        "link", "add", "lan0", "type", "veth", "peer", "name", "lan0p",
    ]);
    ns.ip(&["addr", "add", "10.99.0.1/24", "dev", "lan0"]);
    ns.ip(&["link", "set", "lan0", "up"]);
    ns.ip(&["link", "set", "lan0p", "up"]);
    let mut agent = AgentProc::new(Some(&ns.name));
    agent.start();
    let baseline = r#"{"schema":1,"routes":[{"destination":"10.201.0.0/24","gateway":"10.99.0.2","device":"lan0"}]}"#;
    let (code, r) = agent.apply_text("baseline.json", baseline);
    assert_eq!(code, 0, "{r}");
    let before = agent.state_json().unwrap();
    let mut failures = Vec::new();
    for (i, (kind, text, path, value)) in cases().into_iter().enumerate() {
        let (code, r) = agent.apply_text(&format!("bad-{i}.json"), &text);
        let errors = r[0]["errors"].as_array().cloned().unwrap_or_default();
        let named = errors.iter().any(|e| {
            e["path"].as_str().unwrap_or("").contains(path)
                && (e["value"].as_str().unwrap_or("").contains(value)
                    || e["reason"].as_str().unwrap_or("").contains(value))
        });
        if code != 1 || r[0]["ok"] != false || !named {
            failures.push(format!(
                "{kind}: exit {code}, expected path {path:?} with value {value:?}, got {r}"
            ));
        }
        if agent.state_json().unwrap() != before {
            failures.push(format!("{kind}: state.json changed"));
        }
        assert!(
            !r.to_string().contains("k3y-for-test"),
            "{kind}: PSK leaked in the result: {r}"
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {} invalid kinds mishandled:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
    let (code, r) = agent.apply_text("good.json", &baseline.replace("10.201.0.0", "10.202.0.0"));
    assert_eq!(code, 0, "the agent must keep serving: {r}");
    assert_eq!(r[0]["generation"], 2);
    assert!(
        !agent.log_text().contains("k3y-for-test"),
        "PSK leaked into the log"
    );
}
