//! Golden files for the VICI messages (PSK shown as `<redacted>`): an IKEv2 connection, an
//! IKEv1 one with DPD, and split connections (one CHILD SA per peer CIDR), passive, with forced
//! UDP encapsulation. Regenerate with `UPDATE_GOLDEN=1 cargo test -p vr-vpn --test golden`.

use std::path::PathBuf;

use vr_vpn::vici::{initiate, load_conn, load_shared, terminate, unload_conn, unload_shared};
use vr_vpn::SiteToSite;

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

fn render(c: &SiteToSite) -> String {
    let name = vr_vpn::vici::conn_name(c);
    let mut out = String::new();
    for m in [
        load_shared(c),
        load_conn(c),
        initiate(&format!("{name}-0"), &name, 5000),
        terminate(&name),
        unload_conn(&name),
        unload_shared(&name),
    ] {
        out.push_str(&m.to_string());
    }
    assert!(!out.contains(c.psk.expose()), "PSK in the rendering");
    out
}

fn conn(json: &str) -> SiteToSite {
    let c: SiteToSite = serde_json::from_str(json).unwrap();
    vr_vpn::validate_vpn(&vr_vpn::VpnSection {
        site_to_site: vec![c.clone()],
        ..Default::default()
    })
    .unwrap();
    c
}

#[test]
fn ikev2() {
    golden(
        "ikev2.vici",
        &render(&conn(
            r#"{"local_public_ip":"192.0.2.10","local_cidrs":["10.1.1.0/24"],"peer_gateway":"203.0.113.5",
        "peer_cidrs":["10.2.0.0/24","10.3.0.0/24"],"psk":"golden-psk-1","ike_policy":"aes256-sha256;modp2048,aes128-sha1;modp1536",
        "esp_policy":"aes256-sha256;modp2048","ike_version":"ikev2","ike_lifetime":28800,"esp_lifetime":3600,
        "dpd":{"delay":30,"timeout":120,"action":"restart"}}"#,
        )),
    );
}

#[test]
fn ikev1_with_dpd() {
    golden(
        "ikev1.vici",
        &render(&conn(
            r#"{"local_public_ip":"192.0.2.10","local_cidrs":["10.1.1.0/24"],"peer_gateway":"198.51.100.7",
        "peer_cidrs":["172.20.0.0/16"],"psk":"golden-psk-2","ike_policy":"3des-md5;modp1024","esp_policy":"3des-md5",
        "ike_version":"ikev1","ike_lifetime":86400,"esp_lifetime":3600,"dpd":{"delay":10,"timeout":60,"action":"clear"}}"#,
        )),
    );
}

#[test]
fn split_passive_encap() {
    golden(
        "split.vici",
        &render(&conn(
            r#"{"local_public_ip":"192.0.2.10","local_cidrs":["10.1.1.0/24","10.1.2.0/24"],
        "peer_gateway":"203.0.113.9","peer_cidrs":["10.8.0.0/24","10.9.0.0/24"],"psk":"golden-psk-3","ike_policy":"aes128-sha1;modp1536",
        "esp_policy":"aes128gcm16","split_connections":true,"passive":true,"force_encap":true}"#,
        )),
    );
}
