//! Checks serde cannot express. Every error names the JSON path and the offending value.

use crate::model::{
    AclRule, FirewallSection, NatSection, PortForward, PortRange, RuleProtocol, TierAcl,
};
use crate::shared::ListId;
use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;

/// `{path}: {reason} (value {value})`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// JSON path relative to the section, e.g. `port_forwards[3].private_ports`.
    pub path: String,
    /// The offending value as the operator wrote it.
    pub value: String,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} (value {})", self.path, self.reason, self.value)
    }
}

impl std::error::Error for FieldError {}

/// Upper bound on the per-port map elements that port forwards with a port shift expand to
/// (see [`crate::build::build`]: nft 1.0.6 cannot put a port range in the data of a concatenated
/// map, so a shifted range costs one element per port). 65,536 elements are a few MiB of
/// kernel memory; beyond that a push is more likely a mistake than a need.
pub const MAX_SHIFTED_PORTS: u32 = 65_536;

pub(crate) fn err(path: String, value: impl fmt::Display, reason: &str) -> FieldError {
    FieldError {
        path,
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

/// Interface names that reach nft text: `^[A-Za-z0-9][A-Za-z0-9_.:-]{0,14}$`, so no quote,
/// brace, `;`, `#` or newline can inject syntax.
pub fn valid_device(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 15
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b':' | b'-'))
}

fn check_device(path: impl FnOnce() -> String, name: &str, out: &mut Vec<FieldError>) {
    if name.is_empty() {
        out.push(err(path(), "\"\"", "empty device name"));
    } else if !valid_device(name) {
        out.push(err(
            path(),
            format!("{name:?}"),
            "invalid device name (expected ^[A-Za-z0-9][A-Za-z0-9_.:-]{0,14}$)",
        ));
    }
}

/// Port 0 and inverted ranges. Returns whether the range is usable.
fn check_range(path: impl FnOnce() -> String, r: &PortRange, out: &mut Vec<FieldError>) -> bool {
    if r.start == 0 || r.end == 0 {
        out.push(err(path(), r, "port 0 is not a valid port"));
        false
    } else if r.start > r.end {
        out.push(err(
            path(),
            format!("{}-{}", r.start, r.end),
            "inverted range (start > end)",
        ));
        false
    } else {
        true
    }
}

pub(crate) fn check_rule_shape(
    base: &str,
    protocol: RuleProtocol,
    ports: Option<&PortRange>,
    icmp_type: Option<u8>,
    icmp_code: Option<u8>,
    out: &mut Vec<FieldError>,
) {
    if let Some(p) = ports {
        if !protocol.has_ports() {
            out.push(err(
                format!("{base}.ports"),
                p,
                &format!("ports are only valid for tcp and udp, not {protocol}"),
            ));
        } else {
            check_range(|| format!("{base}.ports"), p, out);
        }
    }
    for (name, v) in [("icmp_type", icmp_type), ("icmp_code", icmp_code)] {
        if let Some(v) = v {
            if protocol != RuleProtocol::Icmp {
                out.push(err(
                    format!("{base}.{name}"),
                    v,
                    &format!("{name} is only valid for icmp, not {protocol}"),
                ));
            }
        }
    }
}

pub(crate) fn finish(out: Vec<FieldError>) -> Result<(), Vec<FieldError>> {
    if out.is_empty() {
        Ok(())
    } else {
        Err(out)
    }
}

/// Whether two forwards of the same public ip and protocol send some port to different
/// places. Identical entries are harmless duplicates.
fn conflicting(a: &PortForward, b: &PortForward) -> bool {
    let overlap =
        a.public_ports.start <= b.public_ports.end && b.public_ports.start <= a.public_ports.end;
    overlap
        && !(a.public_ports == b.public_ports
            && a.private_ip == b.private_ip
            && a.private_ports == b.private_ports)
}

/// Whether the forwards `forwards[window]` pass every check `validate_nat` makes of them,
/// against the whole list: the incremental planner's guard, so a change of a few forwards
/// among 10,000 is checked in proportion to the change (plus one pass of comparisons).
/// `false` sends the caller to the full path, whose `validate_nat` names the error.
pub fn forwards_valid(forwards: &[PortForward], window: std::ops::Range<usize>) -> bool {
    let range_ok = |r: &PortRange| r.start != 0 && r.end != 0 && r.start <= r.end;
    let shifted: u64 = forwards
        .iter()
        .filter(|f| f.public_ports.start != f.private_ports.start)
        .map(|f| u64::from(f.public_ports.len()))
        .sum();
    if shifted > u64::from(MAX_SHIFTED_PORTS) {
        return false;
    }
    forwards[window.clone()].iter().zip(window).all(|(f, i)| {
        f.device.as_deref().is_none_or(valid_device)
            && range_ok(&f.public_ports)
            && range_ok(&f.private_ports)
            && f.public_ports.len() == f.private_ports.len()
            && !forwards.iter().enumerate().any(|(j, g)| {
                j != i
                    && g.public_ip == f.public_ip
                    && g.protocol == f.protocol
                    && conflicting(f, g)
            })
    })
}

/// Accepted forwards of one public ip and protocol by first port (with their index).
/// Accepted forwards sharing a first port are identical copies (anything else would have
/// clashed): the first one stands for all, and is the index a clash reports.
type ByFirstPort<'a> = BTreeMap<u16, (usize, &'a PortForward)>;

/// Checks the `nat` section.
pub fn validate_nat(nat: &NatSection) -> Result<(), Vec<FieldError>> {
    validate_nat_except(nat, None)
}

/// Checks the `nat` section, except its forwards when they are the list `valid` names.
///
/// Every check of a forward reads the forward list and nothing else, so a list that passed
/// once passes again: a push that leaves 10,000 forwards shared with the committed state (a
/// route, a firewall rule) does not check them again (0.2-0.5 ms per push at 10,000,
/// issue 15). The caller names only a list this function accepted.
pub fn validate_nat_except(
    nat: &NatSection,
    valid: Option<&ListId<PortForward>>,
) -> Result<(), Vec<FieldError>> {
    let mut out = Vec::new();
    for (i, s) in nat.source_nat.iter().enumerate() {
        check_device(|| format!("source_nat[{i}].device"), &s.device, &mut out);
    }
    let mut seen: BTreeMap<Ipv4Addr, usize> = BTreeMap::new();
    for (i, s) in nat.static_nat.iter().enumerate() {
        if let Some(d) = &s.device {
            check_device(|| format!("static_nat[{i}].device"), d, &mut out);
        }
        if let Some(first) = seen.insert(s.public_ip, i) {
            out.push(err(
                format!("static_nat[{i}].public_ip"),
                s.public_ip,
                &format!("public ip already mapped by static_nat[{first}]"),
            ));
            seen.insert(s.public_ip, first);
        }
    }
    if !valid.is_some_and(|v| v.is(&nat.port_forwards)) {
        check_forwards(&nat.port_forwards, &mut out);
    }
    finish(out)
}

/// The checks of [`validate_nat`] that read the forwards: each forward's fields, clashes
/// between forwards, the total of shifted ports.
fn check_forwards(forwards: &[PortForward], out: &mut Vec<FieldError>) {
    let mut shifted: u32 = 0;
    // Accepted forwards per (public ip, protocol), by first port. Accepted ranges never
    // overlap unless identical (same start), so sorted by start they are sorted by end too:
    // the ones a new range can touch are found by walking back from its last port, in
    // O(log n) plus the overlaps, instead of comparing with every accepted forward.
    let mut usable: BTreeMap<(Ipv4Addr, u8), ByFirstPort<'_>> = BTreeMap::new();
    // Almost always no two ranges touch: then nothing can clash and the index is not built
    // (it cost a millisecond per push at 10,000 forwards, issue 15).
    let disjoint = ranges_disjoint(forwards);
    for (i, f) in forwards.iter().enumerate() {
        // Paths are formatted only for errors: validating 10,000 forwards allocates nothing.
        let base = || format!("port_forwards[{i}]");
        if let Some(d) = &f.device {
            check_device(|| format!("{}.device", base()), d, out);
        }
        let a = check_range(|| format!("{}.public_ports", base()), &f.public_ports, out);
        let b = check_range(
            || format!("{}.private_ports", base()),
            &f.private_ports,
            out,
        );
        if !(a && b) {
            continue;
        }
        if f.public_ports.len() != f.private_ports.len() {
            out.push(err(
                format!("{}.private_ports", base()),
                f.private_ports,
                &format!(
                    "length {} differs from public_ports {} (length {})",
                    f.private_ports.len(),
                    f.public_ports,
                    f.public_ports.len()
                ),
            ));
            continue;
        }
        if f.public_ports.start != f.private_ports.start {
            shifted += f.public_ports.len();
        }
        if disjoint {
            continue;
        }
        let group = usable
            .entry((f.public_ip, f.protocol.number()))
            .or_default();
        // The earliest accepted forward this one conflicts with (as in index order).
        let clash = group
            .range(..=f.public_ports.end)
            .rev()
            .take_while(|(_, (_, g))| g.public_ports.end >= f.public_ports.start)
            .filter(|(_, (_, g))| conflicting(f, g))
            .map(|(_, (j, _))| *j)
            .min();
        // A rejected entry is not compared with later ones: one mistake, one error.
        if let Some(j) = clash {
            out.push(err(
                format!("{}.public_ports", base()),
                format!("{} {} {}", f.public_ip, f.protocol.name(), f.public_ports),
                &format!("overlaps port_forwards[{j}] with a different target"),
            ));
        } else {
            group.entry(f.public_ports.start).or_insert((i, f));
        }
    }
    if shifted > MAX_SHIFTED_PORTS {
        out.push(err(
            "port_forwards".into(),
            shifted,
            &format!(
                "port forwards that shift ports expand to one map element per port; at most \
                 {MAX_SHIFTED_PORTS} such ports in total"
            ),
        ));
    }
}

/// Whether no two forwards of one public ip and protocol share a public port (identical copies
/// included), among those with a valid public range (the only ones `validate_nat` compares).
/// Sorted by first port, intervals that overlap anywhere overlap in some neighbouring pair.
fn ranges_disjoint(forwards: &[PortForward]) -> bool {
    let mut spans: Vec<(u64, u16, u16)> = forwards
        .iter()
        .filter(|f| f.public_ports.start != 0 && f.public_ports.start <= f.public_ports.end)
        .map(|f| {
            let group = (u64::from(u32::from(f.public_ip)) << 8) | u64::from(f.protocol.number());
            (group, f.public_ports.start, f.public_ports.end)
        })
        .collect();
    spans.sort_unstable();
    spans
        .windows(2)
        .all(|w| w[0].0 != w[1].0 || w[0].2 < w[1].1)
}

/// Checks the `firewall` section.
pub fn validate_firewall(fw: &FirewallSection) -> Result<(), Vec<FieldError>> {
    let mut out = Vec::new();
    for (i, r) in fw.ingress.iter().enumerate() {
        check_rule_shape(
            &format!("ingress[{i}]"),
            r.protocol,
            r.ports.as_ref(),
            r.icmp_type,
            r.icmp_code,
            &mut out,
        );
    }
    let mut seen = BTreeMap::new();
    for (i, p) in fw.egress.iter().enumerate() {
        if let Some(first) = seen.insert(p.guest_cidr, i) {
            out.push(err(
                format!("egress[{i}].guest_cidr"),
                p.guest_cidr,
                &format!("guest network already has a policy at egress[{first}]"),
            ));
            seen.insert(p.guest_cidr, first);
        }
        for (j, r) in p.rules.iter().enumerate() {
            check_rule_shape(
                &format!("egress[{i}].rules[{j}]"),
                r.protocol,
                r.ports.as_ref(),
                r.icmp_type,
                r.icmp_code,
                &mut out,
            );
        }
    }
    finish(out)
}

/// Checks the `acls` section (paths start at the list: `[2].ingress[0].ports`).
pub fn validate_acls(acls: &[TierAcl]) -> Result<(), Vec<FieldError>> {
    let mut out = Vec::new();
    let mut seen = BTreeMap::new();
    for (i, t) in acls.iter().enumerate() {
        check_device(|| format!("[{i}].device"), &t.device, &mut out);
        if let Some(first) = seen.insert(t.device.clone(), i) {
            out.push(err(
                format!("[{i}].device"),
                &t.device,
                &format!("device already has an ACL at [{first}]"),
            ));
            seen.insert(t.device.clone(), first);
        }
        let rules: [(&str, &Vec<AclRule>); 2] = [("ingress", &t.ingress), ("egress", &t.egress)];
        for (dir, list) in rules {
            for (j, r) in list.iter().enumerate() {
                check_rule_shape(
                    &format!("[{i}].{dir}[{j}]"),
                    r.protocol,
                    r.ports.as_ref(),
                    r.icmp_type,
                    r.icmp_code,
                    &mut out,
                );
            }
        }
    }
    finish(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nat(json: &str) -> NatSection {
        serde_json::from_str(json).unwrap()
    }
    fn paths(r: Result<(), Vec<FieldError>>) -> Vec<String> {
        r.err()
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.path)
            .collect()
    }
    fn pf(public: &str, private_ip: &str, private: &str) -> String {
        format!(
            r#"{{"public_ip":"192.0.2.10","protocol":"tcp","public_ports":{public},
               "private_ip":"{private_ip}","private_ports":{private}}}"#
        )
    }

    #[test]
    fn good_nat_passes() {
        let n = nat(&format!(
            r#"{{"source_nat":[{{"device":"eth2","public_ip":"192.0.2.10"}}],
                "static_nat":[{{"public_ip":"192.0.2.11","private_ip":"10.1.0.5"}}],
                "port_forwards":[{},{}]}}"#,
            pf("22", "10.1.0.5", "2222"),
            pf("\"8000-8100\"", "10.1.0.6", "\"9000-9100\"")
        ));
        assert_eq!(validate_nat(&n), Ok(()));
    }

    #[test]
    fn port_zero_inverted_and_length() {
        let n = nat(&format!(
            r#"{{"port_forwards":[{},{},{}]}}"#,
            pf("0", "10.1.0.5", "22"),
            pf("\"90-80\"", "10.1.0.5", "\"80-90\""),
            pf("\"80-90\"", "10.1.0.5", "\"80-85\"")
        ));
        let e = validate_nat(&n).unwrap_err();
        assert_eq!(e[0].path, "port_forwards[0].public_ports");
        assert!(e[0].reason.contains("port 0"), "{}", e[0]);
        assert_eq!(e[1].path, "port_forwards[1].public_ports");
        assert_eq!(e[1].value, "90-80");
        assert!(e[1].reason.contains("inverted"));
        assert_eq!(e[2].path, "port_forwards[2].private_ports");
        assert!(e[2].reason.contains("length 6"), "{}", e[2]);
        assert_eq!(e.len(), 3);
    }

    /// The list named as validated is not checked again; a copy of it (equal elements, another
    /// list), or the list once written to, is. (The invalid list here only shows which list
    /// is checked: callers name lists that passed.)
    #[test]
    fn the_named_list_alone_is_not_checked_again() {
        let mut n = nat(&format!(
            r#"{{"static_nat":[{{"public_ip":"192.0.2.11","private_ip":"10.1.0.5"}},
                              {{"public_ip":"192.0.2.11","private_ip":"10.1.0.6"}}],
                "port_forwards":[{}]}}"#,
            pf("0", "10.1.0.5", "22")
        ));
        let named = n.port_forwards.id();
        // The other sections are checked whatever list is named.
        assert_eq!(
            paths(validate_nat_except(&n, Some(&named))),
            ["static_nat[1].public_ip"]
        );
        let copy = NatSection {
            port_forwards: n.port_forwards.to_vec().into(),
            ..n.clone()
        };
        assert_eq!(
            paths(validate_nat_except(&copy, Some(&named))),
            ["static_nat[1].public_ip", "port_forwards[0].public_ports"]
        );
        // Written while another state holds it (copy on write), and written while only the
        // name refers to it (moved to a new allocation all the same).
        let shared = n.clone();
        n.port_forwards[0].private_ip = "10.1.0.7".parse().unwrap();
        assert_eq!(
            paths(validate_nat_except(&n, Some(&named))),
            ["static_nat[1].public_ip", "port_forwards[0].public_ports"]
        );
        drop(shared);
        let named = n.port_forwards.id();
        n.port_forwards[0].private_ip = "10.1.0.8".parse().unwrap();
        assert_eq!(
            paths(validate_nat_except(&n, Some(&named))),
            ["static_nat[1].public_ip", "port_forwards[0].public_ports"]
        );
    }

    /// The sort-based shortcut against every pair (LCG-generated lists, overlaps and invalid
    /// ranges included).
    #[test]
    fn disjoint_ranges_as_every_pair_says() {
        let mut x: u32 = 7;
        let mut next = |m: u32| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (x >> 16) % m
        };
        for _ in 0..2000 {
            let list: Vec<PortForward> = (0..next(6))
                .map(|_| {
                    let (start, end) = (next(30) as u16, next(30) as u16);
                    let f = format!(
                        r#"{{"public_ip":"192.0.2.{}","protocol":"{}","public_ports":"{start}-{end}","private_ip":"10.0.0.1","private_ports":"{start}-{end}"}}"#,
                        next(2),
                        ["tcp", "udp"][next(2) as usize]
                    );
                    serde_json::from_str(&f).unwrap()
                })
                .collect();
            let ok = |f: &PortForward| {
                f.public_ports.start != 0 && f.public_ports.start <= f.public_ports.end
            };
            let touching = list.iter().enumerate().any(|(i, a)| {
                list[i + 1..].iter().any(|b| {
                    ok(a)
                        && ok(b)
                        && (a.public_ip, a.protocol) == (b.public_ip, b.protocol)
                        && a.public_ports.start <= b.public_ports.end
                        && b.public_ports.start <= a.public_ports.end
                })
            });
            assert_eq!(ranges_disjoint(&list), !touching, "{list:?}");
        }
    }

    #[test]
    fn conflicting_forwards() {
        let n = nat(&format!(
            r#"{{"port_forwards":[{},{},{},{}]}}"#,
            pf("\"8000-8100\"", "10.1.0.5", "\"8000-8100\""),
            pf("8050", "10.1.0.6", "80"),
            pf("\"8000-8100\"", "10.1.0.5", "\"8000-8100\""),
            pf("8101", "10.1.0.6", "80")
        ));
        assert_eq!(paths(validate_nat(&n)), ["port_forwards[1].public_ports"]);
        // The same ports over udp are another mapping.
        let udp = pf("8050", "10.1.0.6", "80").replace("tcp", "udp");
        let n = nat(&format!(
            r#"{{"port_forwards":[{},{udp}]}}"#,
            pf("\"8000-8100\"", "10.1.0.5", "\"8000-8100\"")
        ));
        assert_eq!(validate_nat(&n), Ok(()));
    }

    #[test]
    fn window_check_agrees_with_the_full_one() {
        let ok = nat(&format!(
            r#"{{"port_forwards":[{},{}]}}"#,
            pf("\"8000-8100\"", "10.1.0.5", "\"8000-8100\""),
            pf("8101", "10.1.0.6", "80")
        ));
        assert!(forwards_valid(&ok.port_forwards, 1..2));
        let clash = nat(&format!(
            r#"{{"port_forwards":[{},{}]}}"#,
            pf("\"8000-8100\"", "10.1.0.5", "\"8000-8100\""),
            pf("8050", "10.1.0.6", "80")
        ));
        assert!(!forwards_valid(&clash.port_forwards, 1..2));
        // Checked against forwards on either side of the window.
        assert!(!forwards_valid(&clash.port_forwards, 0..1));
        let lengths = nat(&format!(
            r#"{{"port_forwards":[{}]}}"#,
            pf("\"65000-65010\"", "10.1.0.5", "\"65530-65535\"")
        ));
        assert!(!forwards_valid(&lengths.port_forwards, 0..1));
        assert!(validate_nat(&lengths).is_err());
    }

    #[test]
    fn static_nat_twice_and_devices() {
        let n = nat(r#"{"source_nat":[{"device":"","public_ip":"192.0.2.10"},
                              {"device":"eth2; drop","public_ip":"192.0.2.10"}],
                "static_nat":[{"public_ip":"192.0.2.11","private_ip":"10.1.0.5"},
                              {"public_ip":"192.0.2.11","private_ip":"10.1.0.6","device":"e\"x"}]}"#);
        let e = validate_nat(&n).unwrap_err();
        let p: Vec<_> = e.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            p,
            [
                "source_nat[0].device",
                "source_nat[1].device",
                "static_nat[1].device",
                "static_nat[1].public_ip"
            ]
        );
        assert!(e[0].reason.contains("empty"));
        assert!(e[3].reason.contains("static_nat[0]"));
        assert!(valid_device("eth0:1") && valid_device("br-lan.10"));
        assert!(!valid_device("averyveryverylongname") && !valid_device("-eth0"));
    }

    #[test]
    fn shifted_expansion_is_bounded() {
        let fwd: Vec<String> = (0..2)
            .map(|k| {
                pf("\"1-40000\"", "10.1.0.5", "\"10001-50000\"")
                    .replace("192.0.2.10", &format!("192.0.2.{}", 10 + k))
            })
            .collect();
        let n = nat(&format!(r#"{{"port_forwards":[{}]}}"#, fwd.join(",")));
        assert_eq!(paths(validate_nat(&n)), ["port_forwards"]);
    }

    #[test]
    fn firewall_rule_shapes() {
        let fw: FirewallSection = serde_json::from_str(
            r#"{"ingress":[
                 {"id":1,"public_ip":"192.0.2.10","protocol":"tcp","ports":"22-23"},
                 {"id":2,"public_ip":"192.0.2.10","protocol":"icmp","ports":22},
                 {"id":3,"public_ip":"192.0.2.10","protocol":"tcp","icmp_type":8},
                 {"id":4,"public_ip":"192.0.2.10","protocol":"udp","ports":"30-20"},
                 {"id":5,"public_ip":"192.0.2.10","protocol":"icmp","icmp_type":8,"icmp_code":0}],
               "egress":[
                 {"guest_cidr":"10.1.0.0/24","default_allow":false,"rules":[
                   {"id":6,"protocol":"all","ports":80},
                   {"id":7,"protocol":"udp","icmp_code":1}]},
                 {"guest_cidr":"10.1.0.0/24","default_allow":true}]}"#,
        )
        .unwrap();
        assert_eq!(
            paths(validate_firewall(&fw)),
            [
                "ingress[1].ports",
                "ingress[2].icmp_type",
                "ingress[3].ports",
                "egress[0].rules[0].ports",
                "egress[0].rules[1].icmp_code",
                "egress[1].guest_cidr"
            ]
        );
    }

    #[test]
    fn acl_paths() {
        let acls: Vec<TierAcl> = serde_json::from_str(
            r#"[{"device":"eth3","tier_cidr":"10.3.0.0/24",
                 "ingress":[{"action":"allow","protocol":"tcp","ports":22}]},
                {"device":"eth4","tier_cidr":"10.4.0.0/24",
                 "egress":[{"action":"deny","protocol":"icmp","ports":0}],
                 "ingress":[{"action":"deny","protocol":"tcp","ports":0}]},
                {"device":"eth3","tier_cidr":"10.5.0.0/24"},
                {"device":"","tier_cidr":"10.6.0.0/24"}]"#,
        )
        .unwrap();
        assert_eq!(
            paths(validate_acls(&acls)),
            [
                "[1].ingress[0].ports",
                "[1].egress[0].ports",
                "[2].device",
                "[3].device"
            ]
        );
    }
}
