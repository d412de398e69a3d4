//! Golden files for the remote-access VICI messages (secrets shown as `<redacted>`): the
//! server with a PSK, the server with a certificate, one user's secrets loaded and unloaded.
//! Regenerate with `UPDATE_GOLDEN=1 cargo test -p vr-vpn --test remote_golden`.

use std::path::PathBuf;

use vr_vpn::remote_vici::*;
use vr_vpn::{RemoteAccess, RemoteUser};

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

fn server(cert: bool) -> RemoteAccess {
    let mut v = serde_json::json!({"server_ip":"192.0.2.10","pool_first":"10.1.2.1","pool_last":"10.1.2.8",
        "local_cidrs":["10.1.1.0/24"],"dns":"10.1.1.1","psk":"golden-ra-psk"});
    if cert {
        v["certificate"] = serde_json::json!({
            "cert_pem": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
            "key_pem": "-----BEGIN PRIVATE KEY-----\ngolden-key\n-----END PRIVATE KEY-----\n"});
    }
    let ra: RemoteAccess = serde_json::from_value(v).unwrap();
    vr_vpn::validate_vpn(&vr_vpn::VpnSection {
        remote_access: Some(ra.clone()),
        ..Default::default()
    })
    .unwrap();
    ra
}

fn render(ra: &RemoteAccess) -> String {
    let mut out = String::new();
    let ms = [
        Some(load_psk(ra)),
        load_key(ra),
        Some(load_pool(ra)),
        Some(load_conn_v2(ra)),
        Some(load_conn_v1(ra)),
        Some(unload_pool()),
        Some(unload_psk()),
    ];
    for m in ms.into_iter().flatten() {
        out.push_str(&m.to_string());
    }
    assert!(!out.contains("golden-ra-psk") && !out.contains("golden-key"));
    out
}

#[test]
fn server_with_psk() {
    golden("ra-psk.vici", &render(&server(false)));
}

#[test]
fn server_with_certificate() {
    golden("ra-cert.vici", &render(&server(true)));
}

#[test]
fn one_user() {
    let u: RemoteUser =
        serde_json::from_value(serde_json::json!({"name":"alice","password":"golden-pw"})).unwrap();
    let mut out = String::new();
    for m in load_user(&u).iter().chain(&unload_user("alice")) {
        out.push_str(&m.to_string());
    }
    out.push_str(&terminate_ike_id("7").to_string());
    assert!(!out.contains("golden-pw"));
    golden("ra-user.vici", &out);
}
