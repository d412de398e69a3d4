//! Router advertisements on the guest NICs: the radvd config, rendered purely (golden-tested)
//! and run by the agent's `radvd` concern.
//!
//! radvd rather than dnsmasq's `enable-ra`: dnsmasq restarts (dropping DNS for a moment) on
//! any structural config change, while radvd reloads on SIGHUP without restarting and keeps
//! advertising; RAs are then independent of the DHCP/DNS daemon and of its owner's changes.
//!
//! Each guest prefix is advertised on-link and autonomous (SLAAC), with the router as default
//! router. Intervals follow RFC 4861's floors (radvd refuses less): a guest that solicits gets
//! an answer at once anyway.
//!
//! A NIC whose guest network also serves DHCPv6 (a `dhcp` network with `address6`) advertises
//! `AdvManagedFlag` and `AdvOtherConfigFlag`: that is what makes a stock guest (NetworkManager,
//! systemd-networkd, Windows) start its DHCPv6 client and take its pushed address and DNS.
//! The prefix stays autonomous, so guests the push has no DUID for keep their SLAAC address
//! and nothing that worked before changes; without DHCPv6 the flags are off (as before), so a
//! guest does not wait on a DHCPv6 server that is not there.

use std::fmt::Write;

use ipnet::Ipv6Net;

/// The first line of every rendered file: how a config of ours is told from any other.
pub const MARKER: &str = "# vr-agent radvd config: rendered by the agent, edits are lost";

/// One guest NIC that advertises.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Advertised {
    pub device: String,
    /// Routed prefixes of the NIC (SLAAC).
    pub prefixes: Vec<Ipv6Net>,
    /// `AdvLinkMTU` (the NIC's MTU when the state sets one).
    pub mtu: Option<u32>,
    /// The NIC's network serves DHCPv6: managed and other-config flags on.
    pub managed: bool,
}

/// The whole `radvd.conf`; `None` when no NIC advertises (radvd is then not run).
pub fn render(nics: &[Advertised]) -> Option<String> {
    let mut nics: Vec<&Advertised> = nics.iter().filter(|n| !n.prefixes.is_empty()).collect();
    if nics.is_empty() {
        return None;
    }
    nics.sort();
    let mut out = format!("{MARKER}\n");
    for n in nics {
        let _ = writeln!(out, "interface {} {{", n.device);
        out.push_str("  AdvSendAdvert on;\n");
        // radvd waits for a NIC that is not there yet instead of refusing to start.
        out.push_str("  IgnoreIfMissing on;\n");
        out.push_str("  MinRtrAdvInterval 3;\n");
        out.push_str("  MaxRtrAdvInterval 10;\n");
        out.push_str("  AdvDefaultLifetime 1800;\n");
        if n.managed {
            out.push_str("  AdvManagedFlag on;\n");
            out.push_str("  AdvOtherConfigFlag on;\n");
        }
        if let Some(m) = n.mtu {
            let _ = writeln!(out, "  AdvLinkMTU {m};");
        }
        let mut prefixes: Vec<Ipv6Net> = n.prefixes.iter().map(|p| p.trunc()).collect();
        prefixes.sort();
        prefixes.dedup();
        for p in prefixes {
            let _ = writeln!(out, "  prefix {p} {{");
            out.push_str("    AdvOnLink on;\n");
            out.push_str("    AdvAutonomous on;\n");
            out.push_str("    AdvValidLifetime 3600;\n");
            out.push_str("    AdvPreferredLifetime 1800;\n");
            out.push_str("  };\n");
        }
        out.push_str("};\n");
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_radvd_conf() {
        let got = render(&[
            Advertised {
                device: "eth3".into(),
                prefixes: vec!["2001:db8:11::/64".parse().unwrap()],
                mtu: None,
                managed: false,
            },
            Advertised {
                device: "eth0".into(),
                prefixes: vec![
                    "2001:db8:10::1/64".parse().unwrap(),
                    "2001:db8:10::/64".parse().unwrap(),
                ],
                mtu: Some(1450),
                managed: false,
            },
            Advertised {
                device: "eth4".into(),
                prefixes: vec![],
                mtu: None,
                managed: false,
            },
        ])
        .unwrap();
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/radvd.conf");
        if std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1") {
            std::fs::write(path, &got).unwrap();
        }
        assert_eq!(got, std::fs::read_to_string(path).unwrap());
        assert_eq!(render(&[]), None);
        let managed = render(&[Advertised {
            device: "eth0".into(),
            prefixes: vec!["2001:db8:10::1/64".parse().unwrap()],
            mtu: None,
            managed: true,
        }])
        .unwrap();
        assert!(managed.contains("  AdvDefaultLifetime 1800;\n  AdvManagedFlag on;\n  AdvOtherConfigFlag on;\n  prefix 2001:db8:10::/64 {\n    AdvOnLink on;\n    AdvAutonomous on;"), "{managed}");
    }
}
