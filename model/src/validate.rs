//! Whole-state validation: runs after the merge, so conflicts between pushes (a public ip:port
//! forwarded twice by two pushes) are caught too. Section validators live in their crates.

use std::collections::BTreeSet;

use vr_nat::model::PortForward;
use vr_nat::shared::ListId;

use crate::error::{FieldError, Invalid};
use crate::state::DesiredState;

/// Interface names as the kernel allows them, minus everything that could break out of a
/// config file line or a command argument.
pub fn is_valid_ifname(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 15
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b':' | b'-'))
}

/// Every error of the state, or Ok.
pub fn validate_state(s: &DesiredState) -> Result<(), Invalid> {
    validate_state_except(s, None)
}

/// [`validate_state`], not checking the port forwards again when they are the list `valid`
/// names: one that passed it before (see [`vr_nat::validate::validate_nat_except`]).
pub fn validate_state_except(
    s: &DesiredState,
    valid: Option<&ListId<PortForward>>,
) -> Result<(), Invalid> {
    let mut errs = Vec::new();
    let mut devices = BTreeSet::new();
    for (i, iface) in s.interfaces.iter().enumerate() {
        let p = format!("interfaces[{i}]");
        if !is_valid_ifname(&iface.device) {
            Invalid::push_capped(&mut errs, || {
                FieldError::new(
                    format!("{p}.device"),
                    format_args!("{:?}", iface.device),
                    "invalid interface name",
                )
            });
        }
        if !devices.insert(iface.device.as_str()) {
            Invalid::push_capped(&mut errs, || {
                FieldError::new(
                    format!("{p}.device"),
                    format_args!("{:?}", iface.device),
                    "interface listed twice",
                )
            });
        }
        if let Some(mtu) = iface.mtu {
            if !(68..=65535).contains(&mtu) {
                Invalid::push_capped(&mut errs, || {
                    FieldError::new(format!("{p}.mtu"), mtu, "MTU out of range 68-65535")
                });
            }
        }
        for (j, a) in iface.addresses.iter().enumerate() {
            if a.addr().is_unspecified() || a.addr().is_broadcast() || a.addr().is_multicast() {
                Invalid::push_capped(&mut errs, || {
                    FieldError::new(format!("{p}.addresses[{j}]"), a, "not a host address")
                });
            }
        }
    }
    validate_kernel(&s.kernel, &mut errs);
    if let Some(ha) = &s.ha {
        if let Err(vr_ha::model::Invalid::Field(path, value, reason)) = ha.validate() {
            errs.push(FieldError::new(format!("ha.{path}"), value, reason));
        }
    }
    for e in vr_guest::model::validate(&s.dhcp) {
        errs.push(FieldError::new(e.path, format!("{:?}", e.value), e.reason));
    }
    for e in vr_guest::metadata::validate(&s.metadata) {
        errs.push(FieldError::new(e.path, format!("{:?}", e.value), e.reason));
    }
    errs.extend(crate::monitor::validate(&s.monitor));
    for e in vr_lb::model::validate(&s.lb) {
        errs.push(FieldError::new(format!("lb.{}", e.path), e.value, e.reason));
    }
    let mut dests = BTreeSet::new();
    for (i, r) in s.routes.iter().enumerate() {
        let p = format!("routes[{i}]");
        if r.destination.trunc() != r.destination {
            Invalid::push_capped(&mut errs, || {
                FieldError::new(
                    format!("{p}.destination"),
                    r.destination,
                    "host bits set in a route destination",
                )
            });
        }
        if !dests.insert(r.destination) {
            Invalid::push_capped(&mut errs, || {
                FieldError::new(
                    format!("{p}.destination"),
                    r.destination,
                    "route listed twice",
                )
            });
        }
        if let Some(d) = &r.device {
            if !is_valid_ifname(d) {
                Invalid::push_capped(&mut errs, || {
                    FieldError::new(
                        format!("{p}.device"),
                        format_args!("{d:?}"),
                        "invalid interface name",
                    )
                });
            }
        }
    }
    if let Err(e) = vr_nat::validate::validate_nat_except(&s.nat, valid) {
        errs.extend(crate::lift_errors!("nat", e));
    }
    if let Err(e) = vr_nat::validate::validate_firewall(&s.firewall) {
        errs.extend(crate::lift_errors!("firewall", e));
    }
    if let Err(e) = vr_nat::validate::validate_acls(&s.acls) {
        errs.extend(crate::lift_errors!("acls", e));
    }
    if let Err(e) = vr_vpn::validate_vpn(&s.vpn) {
        errs.extend(crate::lift_errors!("vpn", e));
    }
    if let Some(ospf) = &s.ospf {
        if let Err(e) = vr_ospf::validate_ospf(ospf) {
            errs.extend(crate::lift_errors!("ospf", e));
        }
    }
    if let Some(bgp) = &s.bgp {
        if let Err(e) = vr_ospf::bgp::validate_bgp(bgp) {
            errs.extend(crate::lift_errors!("bgp", e));
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(Invalid::capped(errs))
    }
}

/// Ranges of the `kernel` section: wide enough for any real router, narrow enough that a typo
/// cannot exhaust the VM's memory (a 100-million-entry table) or disable tracking (0).
pub fn validate_kernel(k: &crate::state::KernelSection, errs: &mut Vec<FieldError>) {
    let checks = [
        ("conntrack-max", k.conntrack_max, 1_024, 16_777_216),
        ("conntrack-buckets", k.conntrack_buckets, 1_024, 16_777_216),
        (
            "tcp-established-timeout",
            k.tcp_established_timeout,
            60,
            2_592_000,
        ),
        ("udp-timeout", k.udp_timeout, 1, 86_400),
        ("udp-stream-timeout", k.udp_stream_timeout, 1, 86_400),
    ];
    for (name, value, lo, hi) in checks {
        if let Some(v) = value {
            if !(lo..=hi).contains(&v) {
                errs.push(FieldError::new(
                    format!("kernel.{name}"),
                    v,
                    format!("out of range {lo}-{hi}"),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names() {
        for ok in ["eth0", "wan0", "veth-a.1", "lan0:1"] {
            assert!(is_valid_ifname(ok), "{ok}");
        }
        for bad in [
            "",
            "-eth0",
            "eth0\n",
            "eth 0",
            "eth0!",
            "a\"b",
            "abcdefghijklmnop",
            "eth{0}",
        ] {
            assert!(!is_valid_ifname(bad), "{bad:?}");
        }
    }

    #[test]
    fn duplicate_route_and_bad_mtu_are_named() {
        let s: DesiredState = serde_json::from_str(
            r#"{"interfaces":[{"device":"eth0","role":"guest","mtu":20}],
                "routes":[{"destination":"10.9.0.0/16","gateway":"10.1.1.1"},{"destination":"10.9.0.0/16","gateway":"10.1.1.2"}]}"#,
        )
        .unwrap();
        let err = validate_state(&s).unwrap_err().to_string();
        assert!(err.contains("interfaces[0].mtu"), "{err}");
        assert!(err.contains("routes[1].destination"), "{err}");
    }
}
