//! Packet and byte counters per port forward and per static NAT, for the metrics endpoint, in
//! a small table of their own, `inet vr_rule_stats`, that no rule push replaces.
//!
//! Counters live in the elements of four sets declared with `counter` (one counter per
//! element), matched by one lookup each in one prerouting chain (priority -150: after conntrack,
//! before DNAT, so the public address and port are still in the packet):
//!
//! - `forwards`: `public ip . l4proto . public port` of every single-port forward (a hash);
//! - `forward_ranges`: `public ip . l4proto . public port range` of every port-range forward
//!   (an interval concatenation: a range is one element);
//! - `static_in`: the public address of every static NAT (traffic arriving for it);
//! - `static_out`: the private address of every static NAT (traffic its VM sends).
//!
//! Why counters in set elements rather than named counters: a named counter per rule needs one
//! rule per mapping (`... dport 80 counter name "pf_17"`), so the packet path would grow with
//! the number of port forwards; a set lookup costs the same at 10 and 10 000 mappings, and
//! adding or revoking a mapping is one element change (a revoked mapping's counter goes with
//! its element, so its series disappears from the scrape). The cost: a re-added mapping starts
//! again from 0, which Prometheus counters handle as a reset.
//!
//! Why two sets for the forwards: an interval set of concatenations is the kernel's `pipapo`
//! backend, whose insert cost grows with the elements already held: loading 10 000 single
//! ports of one public address into it took 2.1 s of kernel time on this machine against
//! 0.12 s into a hash (`vr-bench --e2e-only` showed it as a 10k apply, and `nft -f` of the
//! same ruleset, of 2.5 s). Single ports (nearly every CloudStack forward) go to the hash;
//! only real ranges, few, pay pipapo. The packet path stays one lookup per set.
//!
//! Pure: [`plan`] goes from what the kernel holds ([`Current`], read back with
//! [`parse_current`]) to the [`Spec`], and its `Display` is the `nft -f` transaction. The
//! executor sends the same transaction in two forms: the table's declarations (rare: a first
//! start, or a table altered by hand) as `nft -f` text of [`Plan::skeleton`], and the element
//! changes as one libnftnl batch of [`Plan::element_ops`] (an `nft -f` of 10,000 elements
//! spends most of its time parsing its own text).

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;

use crate::ir::{Element, Value};
use crate::model::NatSection;
use crate::plan::ElementOp;

pub const TABLE: &str = "vr_rule_stats";
/// The chain holding the lookups, one per set.
pub const CHAIN: &str = "count";
/// Sets, in declaration order.
pub const SETS: [&str; 4] = ["forwards", "forward_ranges", "static_in", "static_out"];
/// Lookups in [`CHAIN`], one per set.
const LOOKUPS: usize = SETS.len();

/// One port forward as counted: public address, protocol number, public port range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Forward {
    pub ip: Ipv4Addr,
    pub proto: u8,
    pub start: u16,
    pub end: u16,
}

impl Forward {
    /// The set that counts it: single ports in the hash, ranges in the interval set.
    pub fn set(&self) -> &'static str {
        if self.start == self.end {
            "forwards"
        } else {
            "forward_ranges"
        }
    }

    pub fn proto_name(&self) -> &'static str {
        match self.proto {
            6 => "tcp",
            17 => "udp",
            _ => "?",
        }
    }
    /// `80` or `8000-8100`, as labels and `nft` show it.
    pub fn ports(&self) -> String {
        if self.start == self.end {
            self.start.to_string()
        } else {
            format!("{}-{}", self.start, self.end)
        }
    }
}

impl fmt::Display for Forward {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} . {} . {}", self.ip, self.proto_name(), self.ports())
    }
}

/// The elements wanted (or held).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Spec {
    pub forwards: BTreeSet<Forward>,
    pub static_in: BTreeSet<Ipv4Addr>,
    pub static_out: BTreeSet<Ipv4Addr>,
}

impl Spec {
    /// The counting wanted for a `nat` section.
    pub fn of(nat: &NatSection) -> Spec {
        Spec {
            forwards: nat
                .port_forwards
                .iter()
                .map(|p| Forward {
                    ip: p.public_ip,
                    proto: p.protocol.number(),
                    start: p.public_ports.start,
                    end: p.public_ports.end,
                })
                .collect(),
            static_in: nat.static_nat.iter().map(|s| s.public_ip).collect(),
            static_out: nat.static_nat.iter().map(|s| s.private_ip).collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.forwards.len() + self.static_in.len() + self.static_out.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One element's counter as read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    pub packets: u64,
    pub bytes: u64,
}

/// What the kernel holds: the elements with their counters, and whether the table has the
/// agent's shape (its sets and the chain's lookups, one per set). A table altered by hand is
/// replaced whole.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Current {
    pub forwards: Vec<(Forward, Count)>,
    pub static_in: Vec<(Ipv4Addr, Count)>,
    pub static_out: Vec<(Ipv4Addr, Count)>,
    pub complete: bool,
}

impl Current {
    pub fn spec(&self) -> Spec {
        Spec {
            forwards: self.forwards.iter().map(|(f, _)| *f).collect(),
            static_in: self.static_in.iter().map(|(a, _)| *a).collect(),
            static_out: self.static_out.iter().map(|(a, _)| *a).collect(),
        }
    }
}

/// The transition from what the kernel holds to the spec.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Create (or replace, when altered) the whole table with `add` as its elements.
    pub create: bool,
    pub add: Spec,
    pub delete: Spec,
}

impl Plan {
    pub fn changes(&self) -> usize {
        usize::from(self.create) + self.add.len() + self.delete.len()
    }

    /// The mirror after this plan is sent.
    pub fn apply_to(&self, before: &Spec) -> Spec {
        if self.create {
            return self.add.clone();
        }
        let mut s = before.clone();
        s.forwards.retain(|f| !self.delete.forwards.contains(f));
        s.static_in.retain(|a| !self.delete.static_in.contains(a));
        s.static_out.retain(|a| !self.delete.static_out.contains(a));
        s.forwards.extend(self.add.forwards.iter().copied());
        s.static_in.extend(self.add.static_in.iter().copied());
        s.static_out.extend(self.add.static_out.iter().copied());
        s
    }
}

impl Plan {
    /// The declarations part of the transaction: with `create`, the table, its sets, chain and
    /// lookups without elements; otherwise empty.
    pub fn skeleton(&self) -> Plan {
        Plan {
            create: self.create,
            add: Spec::default(),
            delete: Spec::default(),
        }
    }

    /// The element part of the transaction, deletes first, as netlink element ops on
    /// `inet vr_rule_stats`.
    pub fn element_ops(&self) -> Vec<ElementOp> {
        let mut ops = Vec::with_capacity(self.add.len() + self.delete.len());
        for (spec, add) in [(&self.delete, false), (&self.add, true)] {
            // One set after the other, so the executor's runs of one set stay long.
            let (one, range) = split(&spec.forwards);
            for f in one.into_iter().chain(range) {
                let port = if f.start == f.end {
                    Value::Port(f.start)
                } else {
                    Value::PortRange(f.start, f.end)
                };
                ops.push(op(
                    f.set(),
                    add,
                    vec![Value::Addr(f.ip), Value::Proto(f.proto), port],
                ));
            }
            for a in &spec.static_in {
                ops.push(op("static_in", add, vec![Value::Addr(*a)]));
            }
            for a in &spec.static_out {
                ops.push(op("static_out", add, vec![Value::Addr(*a)]));
            }
        }
        ops
    }
}

fn op(set: &str, add: bool, key: Vec<Value>) -> ElementOp {
    ElementOp {
        set: set.to_string(),
        add,
        element: Element { key, data: None },
    }
}

/// `held`: the elements the kernel holds (`None`: no table, or one not of the agent's shape).
pub fn plan(held: Option<&Spec>, want: &Spec) -> Plan {
    let Some(held) = held else {
        return Plan {
            create: true,
            add: want.clone(),
            delete: Spec::default(),
        };
    };
    Plan {
        create: false,
        add: Spec {
            forwards: want.forwards.difference(&held.forwards).copied().collect(),
            static_in: want
                .static_in
                .difference(&held.static_in)
                .copied()
                .collect(),
            static_out: want
                .static_out
                .difference(&held.static_out)
                .copied()
                .collect(),
        },
        delete: Spec {
            forwards: held.forwards.difference(&want.forwards).copied().collect(),
            static_in: held
                .static_in
                .difference(&want.static_in)
                .copied()
                .collect(),
            static_out: held
                .static_out
                .difference(&want.static_out)
                .copied()
                .collect(),
        },
    }
}

fn elements<T: fmt::Display>(
    f: &mut fmt::Formatter<'_>,
    verb: &str,
    set: &str,
    items: impl IntoIterator<Item = T>,
) -> fmt::Result {
    let items: Vec<String> = items.into_iter().map(|i| i.to_string()).collect();
    if items.is_empty() {
        return Ok(());
    }
    writeln!(
        f,
        "{verb} element inet {TABLE} {set} {{ {} }}",
        items.join(", ")
    )
}

/// Single ports and ranges, each in the set that counts it.
fn split(forwards: &BTreeSet<Forward>) -> (Vec<&Forward>, Vec<&Forward>) {
    forwards.iter().partition(|f| f.set() == "forwards")
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.create {
            // add + delete + add: replaces an altered table in the same transaction.
            writeln!(f, "add table inet {TABLE}")?;
            writeln!(f, "delete table inet {TABLE}")?;
            writeln!(f, "add table inet {TABLE}")?;
            writeln!(f, "add set inet {TABLE} forwards {{ type ipv4_addr . inet_proto . inet_service; counter; }}")?;
            writeln!(f, "add set inet {TABLE} forward_ranges {{ type ipv4_addr . inet_proto . inet_service; flags interval; counter; }}")?;
            writeln!(
                f,
                "add set inet {TABLE} static_in {{ type ipv4_addr; counter; }}"
            )?;
            writeln!(
                f,
                "add set inet {TABLE} static_out {{ type ipv4_addr; counter; }}"
            )?;
            writeln!(f, "add chain inet {TABLE} {CHAIN} {{ type filter hook prerouting priority -150; policy accept; }}")?;
            writeln!(
                f,
                "add rule inet {TABLE} {CHAIN} ip daddr . meta l4proto . th dport @forwards"
            )?;
            writeln!(
                f,
                "add rule inet {TABLE} {CHAIN} ip daddr . meta l4proto . th dport @forward_ranges"
            )?;
            writeln!(f, "add rule inet {TABLE} {CHAIN} ip daddr @static_in")?;
            writeln!(f, "add rule inet {TABLE} {CHAIN} ip saddr @static_out")?;
        }
        let (one, range) = split(&self.delete.forwards);
        elements(f, "delete", "forwards", one)?;
        elements(f, "delete", "forward_ranges", range)?;
        elements(f, "delete", "static_in", &self.delete.static_in)?;
        elements(f, "delete", "static_out", &self.delete.static_out)?;
        let (one, range) = split(&self.add.forwards);
        elements(f, "add", "forwards", one)?;
        elements(f, "add", "forward_ranges", range)?;
        elements(f, "add", "static_in", &self.add.static_in)?;
        elements(f, "add", "static_out", &self.add.static_out)
    }
}

fn count(elem: &serde_json::Value) -> Count {
    let c = &elem["counter"];
    Count {
        packets: c["packets"].as_u64().unwrap_or(0),
        bytes: c["bytes"].as_u64().unwrap_or(0),
    }
}

fn port_range(v: &serde_json::Value) -> Option<(u16, u16)> {
    if let Some(p) = v.as_u64() {
        let p = u16::try_from(p).ok()?;
        return Some((p, p));
    }
    let r = v["range"].as_array()?;
    let a = u16::try_from(r.first()?.as_u64()?).ok()?;
    let b = u16::try_from(r.get(1)?.as_u64()?).ok()?;
    Some((a, b))
}

fn forward(val: &serde_json::Value) -> Option<Forward> {
    let c = val["concat"].as_array()?;
    let ip = c.first()?.as_str()?.parse().ok()?;
    let proto = match c.get(1)? {
        serde_json::Value::String(s) if s == "tcp" => 6,
        serde_json::Value::String(s) if s == "udp" => 17,
        v => u8::try_from(v.as_u64()?).ok()?,
    };
    let (start, end) = port_range(c.get(2)?)?;
    Some(Forward {
        ip,
        proto,
        start,
        end,
    })
}

/// Parses `nft -j list table inet vr_rule_stats`. An element of an unexpected form makes the
/// table incomplete (it is then replaced) rather than failing the read.
pub fn parse_current(json: &str) -> Result<Current, String> {
    let v: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("nft -j list table inet {TABLE}: {e}"))?;
    let mut cur = Current::default();
    let mut sets = 0;
    let mut rules = 0;
    let mut odd = false;
    for item in v["nftables"].as_array().into_iter().flatten() {
        if let Some(r) = item.get("rule") {
            rules += usize::from(r["chain"] == CHAIN);
            continue;
        }
        let Some(set) = item.get("set") else { continue };
        let name = set["name"].as_str().unwrap_or("");
        sets += usize::from(SETS.contains(&name));
        for e in set["elem"].as_array().into_iter().flatten() {
            // With counters, each element is `{"elem": {"val": ..., "counter": ...}}`.
            let inner = e.get("elem").unwrap_or(e);
            let val = inner.get("val").unwrap_or(inner);
            match name {
                "forwards" | "forward_ranges" => match forward(val) {
                    // An element in the other set than its shape says is not ours.
                    Some(f) if f.set() == name => cur.forwards.push((f, count(inner))),
                    _ => odd = true,
                },
                "static_in" | "static_out" => match val.as_str().and_then(|s| s.parse().ok()) {
                    Some(a) if name == "static_in" => cur.static_in.push((a, count(inner))),
                    Some(a) => cur.static_out.push((a, count(inner))),
                    None => odd = true,
                },
                _ => {}
            }
        }
    }
    cur.complete = sets == SETS.len() && rules == LOOKUPS && !odd;
    Ok(cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nat(json: serde_json::Value) -> NatSection {
        serde_json::from_value(json).unwrap()
    }

    fn golden(name: &str, text: &str) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden")
            .join(name);
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&path, text).unwrap();
        }
        let want = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(text, want, "golden {name} (UPDATE_GOLDEN=1 to rewrite)");
    }

    fn two() -> Spec {
        Spec::of(&nat(serde_json::json!({
            "port_forwards": [
                {"public_ip": "192.0.2.10", "protocol": "tcp", "public_ports": "8000-8100",
                 "private_ip": "10.1.1.5", "private_ports": "8000-8100"},
                {"public_ip": "192.0.2.10", "protocol": "udp", "public_ports": 53,
                 "private_ip": "10.1.1.6", "private_ports": 53}
            ],
            "static_nat": [{"public_ip": "192.0.2.20", "private_ip": "10.1.1.7"}]
        })))
    }

    #[test]
    fn a_fresh_table_is_created_whole_with_its_elements() {
        let p = plan(None, &two());
        golden("rule_stats_create.nft", &p.to_string());
        assert_eq!(p.changes(), 5);
    }

    #[test]
    fn one_revoked_forward_is_one_element_deleted() {
        let mut want = two();
        let gone = *want.forwards.iter().next().unwrap();
        want.forwards.remove(&gone);
        let p = plan(Some(&two()), &want);
        golden("rule_stats_revoke.nft", &p.to_string());
        assert_eq!(p.changes(), 1);
        assert_eq!(p.apply_to(&two()), want);
        assert_eq!(plan(Some(&want), &want).changes(), 0);
    }

    #[test]
    fn element_ops_are_the_transaction_without_its_declarations() {
        let p = plan(None, &two());
        assert!(p.skeleton().to_string().ends_with("@static_out\n"));
        assert_eq!(p.skeleton().changes(), 1);
        let ops = p.element_ops();
        let sets: Vec<(&str, bool)> = ops.iter().map(|o| (o.set.as_str(), o.add)).collect();
        assert_eq!(
            sets,
            [
                ("forwards", true),
                ("forward_ranges", true),
                ("static_in", true),
                ("static_out", true)
            ]
        );
        assert_eq!(ops[1].element.key[2], Value::PortRange(8000, 8100));
        let mut want = two();
        let gone = *want.forwards.iter().next().unwrap();
        want.forwards.remove(&gone);
        let revoke = plan(Some(&two()), &want);
        assert!(revoke.skeleton().to_string().is_empty());
        assert_eq!(revoke.element_ops().len(), 1);
        assert!(!revoke.element_ops()[0].add);
    }

    #[test]
    fn read_back_gives_elements_and_counters() {
        let json = r#"{"nftables": [{"metainfo": {}},
          {"set": {"family": "inet", "name": "forwards", "table": "vr_rule_stats", "elem": [
            {"elem": {"val": {"concat": ["192.0.2.10", "udp", 53]}, "counter": {"packets": 1, "bytes": 60}}}]}},
          {"set": {"family": "inet", "name": "forward_ranges", "table": "vr_rule_stats", "elem": [
            {"elem": {"val": {"concat": ["192.0.2.10", "tcp", {"range": [8000, 8100]}]}, "counter": {"packets": 3, "bytes": 180}}}]}},
          {"set": {"family": "inet", "name": "static_in", "table": "vr_rule_stats", "elem": [
            {"elem": {"val": "192.0.2.20", "counter": {"packets": 0, "bytes": 0}}}]}},
          {"set": {"family": "inet", "name": "static_out", "table": "vr_rule_stats", "elem": [
            {"elem": {"val": "10.1.1.7", "counter": {"packets": 2, "bytes": 100}}}]}},
          {"rule": {"chain": "count"}}, {"rule": {"chain": "count"}},
          {"rule": {"chain": "count"}}, {"rule": {"chain": "count"}}]}"#;
        let c = parse_current(json).unwrap();
        assert!(c.complete);
        assert_eq!(c.spec(), two());
        assert_eq!(c.forwards[1].1.bytes, 180);
        assert_eq!(c.static_out[0].1.packets, 2);
        // A chain missing a lookup is not the agent's table.
        let cut = json.replace(r#", {"rule": {"chain": "count"}}]"#, "]");
        assert!(!parse_current(&cut).unwrap().complete);
        // A range in the single-port set is not the agent's table either.
        let misfiled = json.replace(r#""forward_ranges""#, r#""forwards""#);
        assert!(!parse_current(&misfiled).unwrap().complete);
    }
}
