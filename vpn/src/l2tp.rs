//! L2TP/IPsec as CloudStack's router serves it (`CsRemoteAccessVpn`): xl2tpd's config, pppd's
//! options and CHAP secrets, and the IPsec transport-mode connection (IKEv1, group PSK, UDP
//! 1701). Rendered purely and golden-tested everywhere; run only where the kernel has PPP and
//! L2TP (`ppp_generic`, `l2tp_ppp`), which many cloud kernels, this project's CI among them,
//! lack: there the IKEv2/XAuth connections serve the same users.
//!
//! xl2tpd hands out addresses itself (`ip range`), so it takes the upper half of the pushed
//! range and charon's pool the lower half ([`split_pool`]): one address is never given twice.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use crate::remote::{RemoteAccess, RemoteUser};
use crate::vici::{Message, Section};
use crate::Secret;

pub const CONN_L2TP: &str = "ra-l2tp";

/// (charon's range, xl2tpd's range) out of the pushed pool; xl2tpd's first address is its own
/// end of every PPP link (`local ip`), as CloudStack's is.
pub fn split_pool(ra: &RemoteAccess) -> ((Ipv4Addr, Ipv4Addr), (Ipv4Addr, Ipv4Addr)) {
    let (a, b) = (u32::from(ra.pool_first), u32::from(ra.pool_last));
    let mid = a + (b - a) / 2;
    (
        (ra.pool_first, Ipv4Addr::from(mid)),
        (Ipv4Addr::from(mid + 1), ra.pool_last),
    )
}

/// `/etc/xl2tpd/xl2tpd.conf`.
pub fn xl2tpd_conf(ra: &RemoteAccess, options_path: &str) -> String {
    let (_, (first, last)) = split_pool(ra);
    let local = first;
    let range_first = Ipv4Addr::from(u32::from(first).saturating_add(1).min(u32::from(last)));
    let mut s = String::new();
    let _ = writeln!(s, "[global]");
    let _ = writeln!(s, "listen-addr = {}", ra.server_ip);
    let _ = writeln!(s, "port = 1701");
    let _ = writeln!(s);
    let _ = writeln!(s, "[lns default]");
    let _ = writeln!(s, "ip range = {range_first}-{last}");
    let _ = writeln!(s, "local ip = {local}");
    let _ = writeln!(s, "require chap = yes");
    let _ = writeln!(s, "refuse pap = yes");
    let _ = writeln!(s, "require authentication = yes");
    let _ = writeln!(s, "name = l2tpd");
    let _ = writeln!(s, "ppp debug = no");
    let _ = writeln!(s, "pppoptfile = {options_path}");
    let _ = writeln!(s, "length bit = yes");
    s
}

/// pppd options for xl2tpd's links (CloudStack's `options.xl2tpd`).
pub fn ppp_options(ra: &RemoteAccess) -> String {
    let mut s = String::new();
    for l in [
        "ipcp-accept-local",
        "ipcp-accept-remote",
        "noccp",
        "auth",
        "require-mschap-v2",
        "idle 1800",
        "mtu 1410",
        "mru 1410",
        "nodefaultroute",
        "lock",
        "proxyarp",
        "connect-delay 5000",
    ] {
        let _ = writeln!(s, "{l}");
    }
    if let Some(dns) = ra.dns {
        let _ = writeln!(s, "ms-dns {dns}");
    }
    s
}

/// `/etc/ppp/chap-secrets`: one line per user. A secret: written 0600 only, never printed;
/// user names are validated (no spaces or quotes) and passwords are quoted.
pub fn chap_secrets(users: &[RemoteUser]) -> Secret {
    let mut s = String::from("# client server secret addresses\n");
    for u in users {
        let pw = u
            .password
            .expose()
            .replace('\\', "\\\\")
            .replace('"', "\\\"");
        let _ = writeln!(s, "{} l2tpd \"{pw}\" *", u.name);
    }
    Secret::new(s)
}

/// `load-conn ra-l2tp`: IKEv1 main mode with the group PSK, transport mode for UDP 1701.
pub fn load_conn(ra: &RemoteAccess) -> Message {
    let child = Section::default()
        .kv("mode", "transport")
        .list("local_ts", vec!["dynamic[udp/1701]".into()])
        .list("remote_ts", vec!["dynamic[udp/%any]".into()])
        .list(
            "esp_proposals",
            vec![
                "aes128-sha1".into(),
                "aes256-sha1".into(),
                "3des-sha1".into(),
            ],
        );
    let conn = Section::default()
        .kv("version", "1")
        .list("local_addrs", vec![ra.server_ip.to_string()])
        .list(
            "proposals",
            vec![
                "aes128-sha1-modp2048".into(),
                "aes256-sha1-modp1024".into(),
                "3des-sha1-modp1024".into(),
            ],
        )
        .kv("dpd_delay", "30s")
        .sub(
            "local",
            Section::default()
                .kv("auth", "psk")
                .kv("id", ra.server_ip.to_string()),
        )
        .sub("remote", Section::default().kv("auth", "psk"))
        .sub("children", Section::default().sub(CONN_L2TP, child));
    Message {
        command: "load-conn",
        body: Section::default().sub(CONN_L2TP, conn),
    }
}

/// Whether this kernel can run L2TP/IPsec: PPP and L2TP-over-PPP loaded or loadable.
/// `Err` says what is missing.
pub fn kernel_supports_l2tp() -> Result<(), String> {
    let have = |m: &str| {
        std::path::Path::new("/sys/module").join(m).exists()
            || std::process::Command::new("modprobe")
                .args(["--dry-run", "--quiet", m])
                .status()
                .is_ok_and(|s| s.success())
    };
    let missing: Vec<&str> = ["ppp_generic", "l2tp_core", "l2tp_ppp"]
        .into_iter()
        .filter(|m| !have(m))
        .collect();
    if missing.is_empty() && std::path::Path::new("/dev/ppp").exists() {
        Ok(())
    } else if missing.is_empty() {
        Err("no /dev/ppp".into())
    } else {
        Err(format!("kernel modules missing: {}", missing.join(", ")))
    }
}
