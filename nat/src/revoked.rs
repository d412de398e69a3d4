//! Pure: which NAT mappings a transition takes away, so the conntrack concern can delete
//! exactly the flows created through them (a revoked mapping must stop carrying traffic;
//! conntrack would otherwise keep NATing established flows without any rule).

use std::collections::HashSet;
use std::net::Ipv4Addr;

use crate::model::{L4Protocol, NatSection, PortForward, PortRange};

/// A mapping present before and gone (or changed) after.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Revoked {
    /// Flows whose original destination is `public_ip`, `protocol`, a port in `public_ports`.
    PortForward {
        public_ip: Ipv4Addr,
        protocol: L4Protocol,
        public_ports: PortRange,
    },
    /// Flows whose original destination is `public_ip` (inbound), and flows from
    /// `private_ip` source-NATed to `public_ip` (outbound).
    StaticNat {
        public_ip: Ipv4Addr,
        private_ip: Ipv4Addr,
    },
}

/// Mappings of `old` that `new` removes or changes (any change of target or allowed sources
/// counts: flows admitted under the old terms must not outlive them).
pub fn revoked(old: &NatSection, new: &NatSection) -> Vec<Revoked> {
    // Hash lookups: a transition between two 10,000-forward states stays linear.
    let kept: HashSet<&PortForward> = new.port_forwards.iter().collect();
    let kept_static: HashSet<(Ipv4Addr, Ipv4Addr)> = new
        .static_nat
        .iter()
        .map(|n| (n.public_ip, n.private_ip))
        .collect();
    let mut out: Vec<Revoked> = old
        .port_forwards
        .iter()
        .filter(|f| !kept.contains(f))
        .map(|f| Revoked::PortForward {
            public_ip: f.public_ip,
            protocol: f.protocol,
            public_ports: f.public_ports,
        })
        .collect();
    out.extend(
        old.static_nat
            .iter()
            .filter(|s| !kept_static.contains(&(s.public_ip, s.private_ip)))
            .map(|s| Revoked::StaticNat {
                public_ip: s.public_ip,
                private_ip: s.private_ip,
            }),
    );
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nat(json: &str) -> NatSection {
        serde_json::from_str(json).unwrap()
    }

    const OLD: &str = r#"{"port_forwards":[
        {"public_ip":"192.0.2.10","protocol":"tcp","public_ports":2222,"private_ip":"10.1.0.5","private_ports":22},
        {"public_ip":"192.0.2.10","protocol":"tcp","public_ports":80,"private_ip":"10.1.0.5","private_ports":80}],
      "static_nat":[{"public_ip":"192.0.2.11","private_ip":"10.1.0.6"},
                    {"public_ip":"192.0.2.12","private_ip":"10.1.0.7"}]}"#;

    #[test]
    fn unchanged_revokes_nothing() {
        assert!(revoked(&nat(OLD), &nat(OLD)).is_empty());
    }

    #[test]
    fn removed_and_changed_mappings_are_revoked() {
        let new = nat(r#"{"port_forwards":[
            {"public_ip":"192.0.2.10","protocol":"tcp","public_ports":80,"private_ip":"10.1.0.9","private_ports":80}],
          "static_nat":[{"public_ip":"192.0.2.11","private_ip":"10.1.0.6","device":"eth2"}]}"#);
        let got = revoked(&nat(OLD), &new);
        assert_eq!(
            got,
            [
                Revoked::PortForward {
                    public_ip: "192.0.2.10".parse().unwrap(),
                    protocol: L4Protocol::Tcp,
                    public_ports: PortRange::single(80),
                },
                Revoked::PortForward {
                    public_ip: "192.0.2.10".parse().unwrap(),
                    protocol: L4Protocol::Tcp,
                    public_ports: PortRange::single(2222),
                },
                Revoked::StaticNat {
                    public_ip: "192.0.2.12".parse().unwrap(),
                    private_ip: "10.1.0.7".parse().unwrap(),
                },
            ]
        );
    }
}
