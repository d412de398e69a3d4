//! OSPF section -> config text: FRR's integrated `frr.conf` and the Quagga dialect
//! (`zebra.conf` + `ospfd.conf`). Deterministic: the same section renders the same bytes.
//! Only typed or validated values are written (see [`crate::validate`]).

use std::fmt::Write as _;

use crate::model::{AreaKind, AuthKind, InterfaceAuth, NetworkType, OspfSection};

/// Which daemon family reads the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Frr,
    Quagga,
}

/// The `interface` blocks (OSPF lines only) and the `router ospf` block, in FRR syntax. This
/// is also the unit the incremental apply compares against the running config.
pub fn ospf_blocks(s: &OspfSection, dialect: Dialect) -> String {
    let mut out = String::new();
    for i in &s.interfaces {
        let _ = writeln!(out, "interface {}", i.device);
        if let (Some(area), Dialect::Frr) = (i.area, dialect) {
            let _ = writeln!(out, " ip ospf area {area}");
        }
        if let Some(v) = i.cost {
            let _ = writeln!(out, " ip ospf cost {v}");
        }
        // Values equal to the protocol defaults are left out: FRR does not print them back,
        // and the incremental apply compares against what it prints.
        if let Some(v) = i.dead_interval.filter(|v| *v != 40) {
            let _ = writeln!(out, " ip ospf dead-interval {v}");
        }
        if let Some(v) = i.hello_interval.filter(|v| *v != 10) {
            let _ = writeln!(out, " ip ospf hello-interval {v}");
        }
        if i.network_type == NetworkType::PointToPoint {
            let _ = writeln!(out, " ip ospf network point-to-point");
        }
        if i.passive && dialect == Dialect::Frr {
            let _ = writeln!(out, " ip ospf passive");
        }
        if let Some(v) = i.retransmit_interval.filter(|v| *v != 5) {
            let _ = writeln!(out, " ip ospf retransmit-interval {v}");
        }
        if let Some(v) = i.transit_delay.filter(|v| *v != 1) {
            let _ = writeln!(out, " ip ospf transmit-delay {v}");
        }
        match &i.authentication {
            InterfaceAuth::None => {}
            InterfaceAuth::Plaintext { password } => {
                let _ = writeln!(out, " ip ospf authentication");
                let _ = writeln!(out, " ip ospf authentication-key {}", password.expose());
            }
            InterfaceAuth::Md5 { key_id, password } => {
                let _ = writeln!(out, " ip ospf authentication message-digest");
                let _ = writeln!(
                    out,
                    " ip ospf message-digest-key {key_id} md5 {}",
                    password.expose()
                );
            }
        }
        out.push_str("exit\n!\n");
    }
    out.push_str("router ospf\n");
    let _ = writeln!(out, " ospf router-id {}", s.router_id);
    if s.redistribute.connected {
        out.push_str(" redistribute connected\n");
    }
    if s.redistribute.static_routes {
        out.push_str(" redistribute static\n");
    }
    if dialect == Dialect::Quagga {
        // Quagga has no per-interface `ip ospf passive` / `ip ospf area`.
        for i in s.interfaces.iter().filter(|i| i.passive) {
            let _ = writeln!(out, " passive-interface {}", i.device);
        }
    }
    // Quagga has no `ip ospf area`: there the section's `networks` must cover the interfaces.
    let mut networks: Vec<_> = s.networks.iter().collect();
    networks.sort_by_key(|n| (n.prefix, n.area));
    for n in networks {
        let _ = writeln!(out, " network {} area {}", n.prefix, n.area);
    }
    let mut areas: Vec<_> = s.areas.iter().collect();
    areas.sort_by_key(|a| a.id);
    for a in areas {
        match a.authentication {
            AuthKind::None => {}
            AuthKind::Plaintext => {
                let _ = writeln!(out, " area {} authentication", a.id);
            }
            AuthKind::Md5 => {
                let _ = writeln!(out, " area {} authentication message-digest", a.id);
            }
        }
        match a.kind {
            AreaKind::Normal => {}
            AreaKind::Stub => {
                let _ = writeln!(out, " area {} stub", a.id);
            }
            AreaKind::Nssa => {
                let _ = writeln!(out, " area {} nssa", a.id);
            }
        }
    }
    if let Some(spf) = &s.timers.spf {
        let _ = writeln!(
            out,
            " timers throttle spf {} {} {}",
            spf.delay_ms, spf.initial_hold_ms, spf.max_hold_ms
        );
    }
    if let Some(v) = s.timers.lsa_throttle_ms {
        if dialect == Dialect::Frr {
            let _ = writeln!(out, " timers throttle lsa all {v}");
        }
    }
    if let Some(v) = s.timers.lsa_min_arrival_ms {
        let _ = writeln!(out, " timers lsa min-arrival {v}");
    }
    out.push_str("exit\n!\n");
    out
}

/// FRR's integrated config (`/etc/frr/frr.conf`) for the OSPF part of the router.
pub fn frr_conf(s: Option<&OspfSection>, hostname: &str) -> String {
    let mut out = format!("! Generated by vr-agent. Changes are applied with vtysh and overwritten.\nfrr defaults traditional\nhostname {hostname}\nlog syslog informational\nservice integrated-vtysh-config\n!\n");
    if let Some(s) = s {
        out.push_str(&ospf_blocks(s, Dialect::Frr));
    }
    out.push_str("end\n");
    out
}

/// Quagga: `zebra.conf` and `ospfd.conf`.
pub fn quagga_confs(s: Option<&OspfSection>, hostname: &str) -> (String, String) {
    let zebra = format!("! Generated by vr-agent.\nhostname {hostname}\n!\nline vty\n!\n");
    let mut ospfd = format!("! Generated by vr-agent.\nhostname {hostname}\nlog stdout\n!\n");
    if let Some(s) = s {
        // Quagga closes blocks with `!` only.
        ospfd.push_str(&ospf_blocks(s, Dialect::Quagga).replace("exit\n", ""));
    }
    ospfd.push_str("line vty\n!\n");
    (zebra, ospfd)
}

/// `text` with every authentication key replaced (for plans, logs, diagnostics and vtysh's
/// error messages, which quote the refused line after a prefix of their own).
pub fn redact(text: &str) -> String {
    text.lines().map(redact_line).collect::<Vec<_>>().join("\n")
        + if text.ends_with('\n') { "\n" } else { "" }
}

fn redact_line(l: &str) -> String {
    // `neighbor ADDR password PW` (BGP, in the same FRR config): the rest of the line.
    if let Some(i) = l.find(" password ") {
        if l.trim_start().starts_with("neighbor ") {
            return format!("{} password <redacted>", &l[..i]);
        }
    }
    if let Some(i) = l.find("ip ospf authentication-key ") {
        let start = i + "ip ospf authentication-key ".len();
        return format!("{}<redacted>", &l[..start]);
    }
    if let Some(i) = l.find("ip ospf message-digest-key ") {
        // `ip ospf message-digest-key ID md5 KEY`: everything after the id is secret.
        let start = i + "ip ospf message-digest-key ".len();
        let id_end = l[start..].find(' ').map(|j| start + j).unwrap_or(l.len());
        if id_end < l.len() {
            return format!("{} md5 <redacted>", &l[..id_end]);
        }
    }
    l.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_hides_both_key_kinds() {
        let t = " ip ospf authentication-key s3cr3t\n ip ospf message-digest-key 1 md5 k3y!\n ip ospf cost 5\n";
        let r = redact(t);
        assert!(!r.contains("s3cr3t") && !r.contains("k3y"), "{r}");
        assert!(r.contains("ip ospf cost 5") && r.contains("message-digest-key 1 md5 <redacted>"));
        // vtysh quotes a refused line after its own prefix.
        let e = "line 3: Failure to communicate[13] to ospfd, line:  ip ospf message-digest-key 1 md5 k3y!\nline 4: x ip ospf authentication-key s3cr3t";
        let r = redact(e);
        assert!(!r.contains("k3y") && !r.contains("s3cr3t"), "{r}");
        assert!(
            r.contains("line:  ip ospf message-digest-key 1 md5 <redacted>"),
            "{r}"
        );
        assert_eq!(
            redact("no ip ospf message-digest-key 1"),
            "no ip ospf message-digest-key 1"
        );
    }
}
