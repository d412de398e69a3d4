//! The checks of one CloudStack forward rule without the error machinery, for the rule that
//! passes them all: no field path formatted, no value quoted (issue 15). CloudStack re-sends a
//! network's whole list with every change, so at 10,000 rules the five `format!`ed paths and
//! two quoted port ranges per rule of the reporting checks (`check::*`) cost more than the
//! parse. A rule this refuses is checked again by the reporting path, which names what is
//! wrong; so this must accept exactly what that path accepts and build the same forward
//! (`same_as_the_reporting_checks` below holds the two together).

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use vr_nat::{L4Protocol, PortForward, PortRange};

use crate::quick_read::ForwardRuleRef;
use crate::types::ForwardRule;

/// The forward `r` describes, when every check of [`crate::rules::forwards`] but the
/// in-push conflict passes; `None` otherwise (then the reporting path says why).
pub fn quick(r: &ForwardRule) -> Option<PortForward> {
    quick_ref(&r.view())
}

/// [`quick`] of a rule borrowed from the push text.
pub fn quick_ref(r: &ForwardRuleRef<'_>) -> Option<PortForward> {
    let protocol = if r.protocol.eq_ignore_ascii_case("tcp") {
        L4Protocol::Tcp
    } else if r.protocol.eq_ignore_ascii_case("udp") {
        L4Protocol::Udp
    } else {
        return None;
    };
    let public_ip = r.source_ip_address.trim().parse::<Ipv4Addr>().ok()?;
    let private_ip = r.destination_ip_address.trim().parse::<Ipv4Addr>().ok()?;
    let public_ports = range(r.source_port_range)?;
    let private_ports = range(r.destination_port_range)?;
    if public_ports.len() != private_ports.len() {
        return None;
    }
    let source_cidrs = match r.source_cidr_list {
        Some(l) if !l.trim().is_empty() => l
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| p.parse::<Ipv4Net>().ok())
            .collect::<Option<Vec<_>>>()?,
        _ => Vec::new(),
    };
    Some(PortForward {
        public_ip,
        protocol,
        public_ports,
        private_ip,
        private_ports,
        source_cidrs,
        device: None,
    })
}

/// `check::port_range_str` without its errors: `"start:end"` or one port, 1-65535, ordered.
fn range(s: &str) -> Option<PortRange> {
    let (a, b) = s.split_once(':').unwrap_or((s, s));
    let port = |p: &str| {
        p.trim()
            .parse::<i64>()
            .ok()
            .and_then(|n| u16::try_from(n).ok())
            .filter(|n| *n >= 1)
    };
    let (start, end) = (port(a)?, port(b)?);
    (start <= end).then_some(PortRange { start, end })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Errors;

    fn rule(
        proto: &str,
        ip: &str,
        ports: &str,
        to: &str,
        to_ports: &str,
        cidrs: &str,
    ) -> ForwardRule {
        ForwardRule {
            revoke: false,
            protocol: proto.into(),
            source_ip_address: ip.into(),
            source_port_range: ports.into(),
            destination_ip_address: to.into(),
            destination_port_range: to_ports.into(),
            source_cidr_list: (!cidrs.is_empty()).then(|| cidrs.into()),
        }
    }

    /// Every rule, good or bad in each field, gets the same verdict and the same forward from
    /// the quick checks as from the reporting ones.
    #[test]
    fn same_as_the_reporting_checks() {
        let protos = ["tcp", "UDP", "Tcp", "icmp", "", " tcp"];
        let ips = ["192.0.2.11", " 192.0.2.11 ", "192.0.2", "x", ""];
        let ranges = [
            "80:80",
            "80",
            " 22 : 23 ",
            "0:10",
            "10:5",
            "1:65535",
            "65536",
            "-1:3",
            "a:b",
            "",
            "8000:8001",
            "5:",
        ];
        let cidrs = [
            "",
            " ",
            "10.0.0.0/8",
            "10.0.0.0/8, 10.1.0.0/16,",
            "10.0.0.0/33",
            "x",
        ];
        let mut n = 0;
        for p in protos {
            for ip in ips {
                for (a, b) in ranges
                    .iter()
                    .flat_map(|a| ranges.iter().map(move |b| (a, b)))
                {
                    for c in cidrs {
                        let r = rule(p, ip, a, ip, b, c);
                        let mut e = Errors::default();
                        let reporting =
                            crate::rules::forward_checked(&mut e, 0, &r).filter(|_| e.0.is_empty());
                        assert_eq!(quick(&r), reporting, "{r:?}");
                        n += 1;
                    }
                }
            }
        }
        assert!(n > 10_000, "{n}");
    }
}
