//! VICI messages of the remote-access VPN, built purely from the model (see [`crate::vici`]
//! for the message type; secrets print as `<redacted>`).
//!
//! Two connections share one pool: `ra-ikev2` (EAP-MSCHAPv2 users; the gateway proves itself
//! with its certificate, else the group PSK) and `ra-ikev1` (main mode group PSK, then XAuth).
//! Each user has two shared secrets, `ra-eap-<name>` and `ra-xauth-<name>`, loaded and
//! unloaded one at a time, so a change to one user never reloads another user's secret nor
//! any connection: established SAs are untouched.

use crate::remote::{user_secret_ids, RemoteAccess, RemoteUser, CONN_V1, CONN_V2, POOL, PSK_ID};
use crate::vici::{Item, Message, Section};

/// IKE proposals: strongSwan's defaults first, then what Windows' and Apple's native clients
/// propose by default (AES-256/SHA-1/MODP-1024 and AES-256/SHA-256/MODP-2048).
const IKE_PROPOSALS: &[&str] = &[
    "aes128-sha256-x25519",
    "aes256-sha256-modp2048",
    "aes128-sha256-modp2048",
    "aes256-sha1-modp1024",
];
const ESP_PROPOSALS: &[&str] = &["aes128gcm16", "aes256gcm16", "aes128-sha256", "aes256-sha1"];
/// IKEv1 clients (Android "IPSec Xauth PSK", macOS "Cisco IPSec", strongSwan).
const IKEV1_PROPOSALS: &[&str] = &[
    "aes128-sha256-modp2048",
    "aes256-sha256-modp2048",
    "aes256-sha1-modp1024",
];
const IKEV1_ESP_PROPOSALS: &[&str] = &["aes128-sha256", "aes256-sha1", "aes128-sha1"];

fn strings(l: &[&str]) -> Vec<String> {
    l.iter().map(|s| s.to_string()).collect()
}

fn secret(mut s: Section, k: &str, v: &crate::Secret) -> Section {
    s.0.push((k.to_string(), Item::Secret(v.clone())));
    s
}

/// `load-shared` of the group PSK, owned by the server's identity and by any client: a
/// site-to-site secret naming a peer's own address still matches that peer better.
pub fn load_psk(ra: &RemoteAccess) -> Message {
    let body = Section::default().kv("id", PSK_ID).kv("type", "IKE");
    let body = secret(body, "data", &ra.psk)
        .list("owners", vec![ra.server_ip.to_string(), "%any".to_string()]);
    Message {
        command: "load-shared",
        body,
    }
}

/// `load-key` of the certificate's private key.
pub fn load_key(ra: &RemoteAccess) -> Option<Message> {
    let c = ra.certificate.as_ref()?;
    let body = Section::default().kv("type", "any");
    Some(Message {
        command: "load-key",
        body: secret(body, "data", &c.key_pem),
    })
}

/// `load-pool`: the client addresses (and the DNS server they are given).
pub fn load_pool(ra: &RemoteAccess) -> Message {
    let mut pool = Section::default().kv("addrs", format!("{}-{}", ra.pool_first, ra.pool_last));
    if let Some(dns) = ra.dns {
        pool = pool.list("dns", vec![dns.to_string()]);
    }
    Message {
        command: "load-pool",
        body: Section::default().sub(POOL, pool),
    }
}

fn child(ra: &RemoteAccess, esp: &[&str]) -> Section {
    Section::default()
        .list(
            "local_ts",
            ra.local_cidrs.iter().map(|n| n.to_string()).collect(),
        )
        .list("esp_proposals", strings(esp))
        .kv("dpd_action", "clear")
}

fn common(ra: &RemoteAccess, version: &str, proposals: &[&str]) -> Section {
    Section::default()
        .kv("version", version)
        .list("local_addrs", vec![ra.server_ip.to_string()])
        .list("pools", vec![POOL.to_string()])
        .list("proposals", strings(proposals))
        // A client gone without a word (laptop lid closed) frees its address within 2 min.
        .kv("dpd_delay", "30s")
}

/// `load-conn ra-ikev2`: EAP-MSCHAPv2 users (EAP identity asked for), gateway by certificate
/// or PSK, identified by its server IP.
pub fn load_conn_v2(ra: &RemoteAccess) -> Message {
    let mut local = Section::default();
    match &ra.certificate {
        Some(c) => {
            local = local
                .kv("auth", "pubkey")
                .list("certs", vec![c.cert_pem.clone()])
        }
        None => local = local.kv("auth", "psk"),
    }
    local = local.kv("id", ra.server_ip.to_string());
    let mut conn = common(ra, "2", IKE_PROPOSALS);
    if ra.certificate.is_some() {
        // Clients do not send CERTREQs for our CA reliably; send the certificate anyway.
        conn = conn.kv("send_cert", "always");
    }
    let conn = conn
        .sub("local", local)
        .sub(
            "remote",
            Section::default()
                .kv("auth", "eap-mschapv2")
                .kv("eap_id", "%any"),
        )
        .sub(
            "children",
            Section::default().sub(CONN_V2, child(ra, ESP_PROPOSALS)),
        );
    Message {
        command: "load-conn",
        body: Section::default().sub(CONN_V2, conn),
    }
}

/// `load-conn ra-ikev1`: main mode with the group PSK (keyed on the server IP), then XAuth.
pub fn load_conn_v1(ra: &RemoteAccess) -> Message {
    let conn = common(ra, "1", IKEV1_PROPOSALS)
        .sub(
            "local",
            Section::default()
                .kv("auth", "psk")
                .kv("id", ra.server_ip.to_string()),
        )
        .sub("remote", Section::default().kv("auth", "psk"))
        .sub("remote-xauth", Section::default().kv("auth", "xauth"))
        .sub(
            "children",
            Section::default().sub(CONN_V1, child(ra, IKEV1_ESP_PROPOSALS)),
        );
    Message {
        command: "load-conn",
        body: Section::default().sub(CONN_V1, conn),
    }
}

pub fn unload_pool() -> Message {
    Message {
        command: "unload-pool",
        body: Section::default().kv("name", POOL),
    }
}

/// `unload-shared` of the group PSK.
pub fn unload_psk() -> Message {
    crate::vici::unload_shared(PSK_ID)
}

/// The two `load-shared` of one user: EAP (IKEv2) and XAuth (IKEv1), owned by its name.
pub fn load_user(u: &RemoteUser) -> [Message; 2] {
    let [eap, xauth] = user_secret_ids(&u.name);
    let one = |id: String, kind: &str| {
        let body = Section::default().kv("id", id).kv("type", kind);
        Message {
            command: "load-shared",
            body: secret(body, "data", &u.password).list("owners", vec![u.name.clone()]),
        }
    };
    [one(eap, "EAP"), one(xauth, "XAUTH")]
}

/// The two `unload-shared` of one user.
pub fn unload_user(name: &str) -> [Message; 2] {
    let [eap, xauth] = user_secret_ids(name);
    [
        crate::vici::unload_shared(&eap),
        crate::vici::unload_shared(&xauth),
    ]
}

/// `terminate` of one IKE SA by its unique id, without waiting for the client.
pub fn terminate_ike_id(id: &str) -> Message {
    Message {
        command: "terminate",
        body: Section::default()
            .kv("ike-id", id)
            .kv("force", "yes")
            .kv("timeout", "-1"),
    }
}
