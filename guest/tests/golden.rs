//! Golden files of every rendered dnsmasq case: one network with its options, two networks with
//! upstream resolvers, a non-default NIC, IP-alias ranges and a network without a domain.
//! Regenerate with `UPDATE_GOLDEN=1 cargo test -p vr-guest --test golden`.

use std::path::{Path, PathBuf};

use vr_guest::render::{render, Paths};
use vr_guest::DhcpSection;

fn golden(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 creates it)", path.display()));
    assert_eq!(actual, expected, "{name} differs from its golden file");
}

fn case(name: &str, json: &str) {
    let s: DhcpSection = serde_json::from_str(json).unwrap();
    assert!(vr_guest::model::validate(&s).is_empty(), "{name}");
    let r = render(
        &s,
        &Paths::new(Path::new("/run/vr-agent"), Path::new("/var/lib/vr-agent")),
    );
    let mut text = format!("### dnsmasq.conf\n{}### hosts\n{}", r.conf, r.hosts);
    for (mac, f) in &r.host_files {
        text.push_str(&format!("### dhcp-hosts.d/{mac}\n{}", f.dhcp));
        if let Some(n) = &f.names {
            text.push_str(&format!("### hosts.d/{mac}\n{n}"));
        }
    }
    golden(&format!("{name}.txt"), &text);
}

#[test]
fn one_network() {
    case(
        "one_network",
        r#"{"networks":[{"device":"eth0","address":"10.1.1.1/24","domain":"cs1cloud.internal","mtu":1450}],
            "hosts":[{"mac":"02:00:0a:01:01:0c","ipv4":"10.1.1.12","hostname":"web2"},
                     {"mac":"02:00:0a:01:01:0b","ipv4":"10.1.1.11","hostname":"web1"}],
            "upstream_dns":["192.0.2.53"]}"#,
    );
}

#[test]
fn two_networks_and_a_non_default_nic() {
    case(
        "two_networks",
        r#"{"networks":[{"device":"eth0","address":"10.1.1.1/24","domain":"tier1.internal"},
                        {"device":"eth3","address":"10.2.0.1/16","gateway":"10.2.0.254","dns":["10.2.0.53","10.2.0.54"]}],
            "hosts":[{"mac":"02:00:0a:01:01:0b","ipv4":"10.1.1.11","hostname":"vm1"},
                     {"mac":"02:00:0a:02:00:0b","ipv4":"10.2.0.11","hostname":"vm1","default_nic":false},
                     {"mac":"02:00:0a:02:00:0c","ipv4":"10.2.0.12"}],
            "upstream_dns":["192.0.2.53","192.0.2.54"]}"#,
    );
}

#[test]
fn ip_alias_ranges() {
    case(
        "ip_aliases",
        r#"{"networks":[{"device":"eth0","address":"10.1.1.1/24","domain":"shared.internal",
                         "extra_ranges":["10.1.2.1/24","10.1.3.0/25",
                                         {"address":"10.1.4.1/24","gateway":"10.1.4.254"}]}],
            "hosts":[{"mac":"02:00:0a:01:02:0b","ipv4":"10.1.2.11","hostname":"alias-vm"},
                     {"mac":"02:00:0a:01:04:0b","ipv4":"10.1.4.11","hostname":"gw-vm"}]}"#,
    );
}

#[test]
fn dual_stack_dhcpv6() {
    // A dual-stack network: the IPv4 lease as before, plus a static DHCPv6 range and each
    // pushed host's `id:<duid>,[<ipv6>]` in its own host file; a host without a DUID stays
    // IPv4-only.
    case(
        "dual_stack",
        r#"{"networks":[{"device":"eth0","address":"10.1.0.1/24","domain":"v6.internal",
                         "address6":"2001:db8:10::1/64"}],
            "hosts":[{"mac":"02:00:0a:01:00:0b","ipv4":"10.1.0.11","hostname":"dual",
                      "ipv6":"2001:db8:10::11","duid":"00:03:00:01:02:00:0a:01:00:0b"},
                     {"mac":"02:00:0a:01:00:0c","ipv4":"10.1.0.12","hostname":"v4only"}]}"#,
    );
}
