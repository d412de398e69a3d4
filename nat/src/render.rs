//! IR -> the text `nft -f` loads. [`full`] is atomic: `table ip vr {}` creates the table if it
//! is missing, `delete table` removes it whole, the definition recreates it, and `nft -f`
//! commits the three as one transaction, so there is no moment without NAT or firewall and it
//! works whether or not the table exists. Conntrack entries are not touched.

use std::fmt::Write;

use crate::ir::*;

pub fn family(f: Family) -> &'static str {
    match f {
        Family::Ip => "ip",
        Family::Inet => "inet",
        Family::Ip6 => "ip6",
    }
}

fn data_type(t: DataType) -> &'static str {
    match t {
        DataType::Ipv4Addr => "ipv4_addr",
        DataType::InetProto => "inet_proto",
        DataType::InetService => "inet_service",
        DataType::IfName => "ifname",
        DataType::Mark => "mark",
        DataType::IcmpType => "icmp_type",
        DataType::IcmpCode => "icmp_code",
        DataType::Ipv6Addr => "ipv6_addr",
        DataType::Icmpv6Type => "icmpv6_type",
        DataType::Icmpv6Code => "icmpv6_code",
    }
}

fn types(ts: &[DataType]) -> String {
    ts.iter()
        .map(|t| data_type(*t))
        .collect::<Vec<_>>()
        .join(" . ")
}

pub fn value(v: &Value) -> String {
    match v {
        Value::Addr(a) => a.to_string(),
        Value::Net(n) => n.to_string(),
        Value::Proto(1) => "icmp".into(),
        Value::Proto(6) => "tcp".into(),
        Value::Proto(17) => "udp".into(),
        Value::Proto(50) => "esp".into(),
        Value::Proto(58) => "ipv6-icmp".into(),
        Value::Proto(n) => n.to_string(),
        Value::Port(p) => p.to_string(),
        Value::PortRange(a, b) => format!("{a}-{b}"),
        // Names are validated against the device regex; quote them so digits-only names
        // stay strings.
        Value::IfName(n) => format!("\"{n}\""),
        Value::Mark(m) => format!("0x{m:08x}"),
        Value::Byte(b) => b.to_string(),
        Value::ByteRange(a, b) => format!("{a}-{b}"),
        Value::Addr6(a) => a.to_string(),
        Value::Net6(n) => n.to_string(),
    }
}

fn values(vs: &[Value]) -> String {
    vs.iter().map(value).collect::<Vec<_>>().join(" . ")
}

pub fn verdict(v: &Verdict) -> String {
    match v {
        Verdict::Accept => "accept".into(),
        Verdict::Drop => "drop".into(),
        Verdict::Return => "return".into(),
        Verdict::Jump(c) => format!("jump {c}"),
    }
}

/// One element as it appears inside `{ ... }`.
pub fn element(e: &Element) -> String {
    match &e.data {
        None => values(&e.key),
        Some(ElementData::Values(d)) => format!("{} : {}", values(&e.key), values(d)),
        Some(ElementData::Verdict(v)) => format!("{} : {}", values(&e.key), verdict(v)),
    }
}

fn field(f: Field) -> &'static str {
    match f {
        Field::IpSaddr => "ip saddr",
        Field::IpDaddr => "ip daddr",
        Field::MetaL4proto => "meta l4proto",
        Field::ThDport => "th dport",
        Field::IcmpType => "icmp type",
        Field::IcmpCode => "icmp code",
        Field::Iifname => "iifname",
        Field::Oifname => "oifname",
        Field::CtMark => "ct mark",
        Field::Ip6Saddr => "ip6 saddr",
        Field::Ip6Daddr => "ip6 daddr",
        Field::Icmpv6Type => "icmpv6 type",
        Field::Icmpv6Code => "icmpv6 code",
    }
}

fn fields(fs: &[Field]) -> String {
    fs.iter().map(|f| field(*f)).collect::<Vec<_>>().join(" . ")
}

/// Comments are built from safe words, but never let one close its quotes: the text a
/// comment carries (also what the netlink executor stores as the rule's userdata).
pub fn comment_text(c: &str) -> String {
    c.chars()
        .map(|ch| {
            if ch.is_ascii_alphanumeric() || " ._:/-,'()".contains(ch) {
                ch
            } else {
                '_'
            }
        })
        .collect()
}

fn comment(c: &str) -> String {
    format!("comment \"{}\"", comment_text(c))
}

fn render_match(m: &Match) -> String {
    match m {
        Match::Cmp {
            field: f,
            value: v,
            negate,
        } => format!(
            "{} {}{}",
            field(*f),
            if *negate { "!= " } else { "" },
            value(v)
        ),
        Match::InSet {
            fields: fs,
            set,
            negate,
        } => {
            let neg = if *negate { "!= " } else { "" };
            let target = match set {
                SetRef::Named(n) => format!("@{n}"),
                SetRef::Anonymous(els) => format!(
                    "{{ {} }}",
                    els.iter().map(|e| values(e)).collect::<Vec<_>>().join(", ")
                ),
            };
            format!("{} {neg}{target}", fields(fs))
        }
        Match::CtState(states) => {
            let s: Vec<&str> = states
                .iter()
                .map(|s| match s {
                    CtState::Invalid => "invalid",
                    CtState::Established => "established",
                    CtState::Related => "related",
                    CtState::New => "new",
                })
                .collect();
            format!("ct state {}", s.join(","))
        }
        Match::CtStatusDnat => "ct status dnat".into(),
    }
}

fn nat_target(t: &NatTarget) -> String {
    match t {
        NatTarget::Addr(a) => format!("to {a}"),
        // `ip` is required before a concatenated map; harmless otherwise.
        NatTarget::Map { key, map, .. } => format!("ip to {} map @{map}", fields(key)),
    }
}

fn statement(s: &Statement) -> String {
    match s {
        Statement::Counter => "counter".into(),
        Statement::Verdict(v) => verdict(v),
        Statement::VerdictMap { key, map } => format!("{} vmap @{map}", fields(key)),
        Statement::Dnat(t) => format!("dnat {}", nat_target(t)),
        Statement::Snat(t) => format!("snat {}", nat_target(t)),
        Statement::Masquerade => "masquerade".into(),
        Statement::CtMarkFromMap { key, map } => {
            format!("ct mark set {} map @{map}", field(*key))
        }
        Statement::MetaMarkFromCtMark => "meta mark set ct mark".into(),
    }
}

pub fn rule(r: &Rule) -> String {
    let mut parts: Vec<String> = r.matches.iter().map(render_match).collect();
    parts.extend(r.statements.iter().map(statement));
    if let Some(c) = &r.comment {
        parts.push(comment(c));
    }
    parts.join(" ")
}

fn set_block(out: &mut String, s: &Set) {
    let kind = if s.data.is_some() { "map" } else { "set" };
    let _ = writeln!(out, "\t{kind} {} {{", s.name);
    let data = match &s.data {
        None => String::new(),
        Some(SetData::Values(d)) => format!(" : {}", types(d)),
        Some(SetData::Verdict) => " : verdict".into(),
    };
    let _ = writeln!(out, "\t\ttype {}{data}", types(&s.key));
    if s.interval {
        out.push_str("\t\tflags interval\n");
    }
    if let Some(c) = &s.comment {
        let _ = writeln!(out, "\t\t{}", comment(c));
    }
    if !s.elements.is_empty() {
        out.push_str("\t\telements = {\n");
        for e in &s.elements {
            let _ = writeln!(out, "\t\t\t{},", element(e));
        }
        out.push_str("\t\t}\n");
    }
    out.push_str("\t}\n");
}

fn chain_block(out: &mut String, c: &Chain) {
    let _ = writeln!(out, "\tchain {} {{", c.name);
    if let Some(cm) = &c.comment {
        let _ = writeln!(out, "\t\t{}", comment(cm));
    }
    if let Some(b) = &c.base {
        let kind = match b.kind {
            ChainType::Filter => "filter",
            ChainType::Nat => "nat",
            ChainType::Route => "route",
        };
        let hook = match b.hook {
            Hook::Prerouting => "prerouting",
            Hook::Input => "input",
            Hook::Forward => "forward",
            Hook::Output => "output",
            Hook::Postrouting => "postrouting",
        };
        let policy = match b.policy {
            Policy::Accept => "accept",
            Policy::Drop => "drop",
        };
        let _ = writeln!(
            out,
            "\t\ttype {kind} hook {hook} priority {}; policy {policy};",
            b.priority
        );
    }
    for r in &c.rules {
        let _ = writeln!(out, "\t\t{}", rule(r));
    }
    out.push_str("\t}\n");
}

/// `table ip vr { ... }`: the definition alone.
pub fn table(rs: &Ruleset) -> String {
    let mut out = format!("table {} {} {{\n", family(rs.family), rs.table);
    for s in &rs.sets {
        set_block(&mut out, s);
    }
    for c in &rs.chains {
        chain_block(&mut out, c);
    }
    out.push_str("}\n");
    out
}

/// The atomic full replace (see the module comment).
pub fn full(rs: &Ruleset) -> String {
    let f = family(rs.family);
    format!(
        "table {f} {t} {{}}\ndelete table {f} {t}\n{}",
        table(rs),
        t = rs.table
    )
}

/// Removes the table if it exists (the desired state holds nothing for nftables).
pub fn remove(family_: Family, name: &str) -> String {
    let f = family(family_);
    format!("table {f} {name} {{}}\ndelete table {f} {name}\n")
}
