//! The ruleset IR: owned plain data describing one nftables table. Built by [`crate::build::build`],
//! rendered to `nft -f` text by [`crate::render`], diffed by [`crate::plan::plan`] and sent over
//! netlink by [`crate::netlink`]. No nft syntax lives here except in comments, so every
//! backend interprets the same typed values.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

/// Address family of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    Ip,
    Inet,
    /// The IPv6 filter table (`ip6 vr`, see [`crate::v6`]).
    Ip6,
}

/// One table with everything in it. Sets come before chains so rules can refer to them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ruleset {
    pub family: Family,
    pub table: String,
    pub sets: Vec<Set>,
    pub chains: Vec<Chain>,
}

impl Ruleset {
    pub fn set(&self, name: &str) -> Option<&Set> {
        self.sets.iter().find(|s| s.name == name)
    }
}

/// Data types of set keys and map data (nft `type` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DataType {
    Ipv4Addr,
    InetProto,
    InetService,
    IfName,
    Mark,
    IcmpType,
    IcmpCode,
    Ipv6Addr,
    Icmpv6Type,
    Icmpv6Code,
}

/// What a map maps to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SetData {
    /// A (possibly concatenated) value, e.g. NAT targets.
    Values(Vec<DataType>),
    /// A verdict (verdict map).
    Verdict,
}

/// A named set or map. `key` of more than one type is a concatenation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Set {
    pub name: String,
    pub key: Vec<DataType>,
    /// `None`: a set; `Some`: a map.
    pub data: Option<SetData>,
    /// `flags interval`: keys may be prefixes or ranges.
    pub interval: bool,
    /// Sorted, without duplicates (the builder guarantees it, so plans can diff them).
    pub elements: Vec<Element>,
    pub comment: Option<String>,
}

impl Set {
    /// The definition without the elements (a copy that does not copy 10,000 of them).
    pub fn shape(&self) -> Set {
        Set {
            name: self.name.clone(),
            key: self.key.clone(),
            data: self.data.clone(),
            interval: self.interval,
            elements: Vec::new(),
            comment: self.comment.clone(),
        }
    }

    /// Same definition (everything but the elements).
    pub fn same_shape(&self, other: &Set) -> bool {
        self.name == other.name
            && self.key == other.key
            && self.data == other.data
            && self.interval == other.interval
            && self.comment == other.comment
    }
}

/// One typed value of a key, map data or comparison.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Value {
    Addr(Ipv4Addr),
    Net(Ipv4Net),
    /// IP protocol number (`meta l4proto`).
    Proto(u8),
    Port(u16),
    /// Inclusive port range.
    PortRange(u16, u16),
    IfName(String),
    Mark(u32),
    /// An 8-bit integer (icmp type or code).
    Byte(u8),
    /// Inclusive 8-bit range.
    ByteRange(u8, u8),
    Addr6(Ipv6Addr),
    Net6(Ipv6Net),
}

/// One element: key, and for maps the data.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Element {
    pub key: Vec<Value>,
    pub data: Option<ElementData>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ElementData {
    Values(Vec<Value>),
    Verdict(Verdict),
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verdict {
    Accept,
    Drop,
    Return,
    Jump(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainType {
    Filter,
    Nat,
    Route,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    Prerouting,
    Input,
    Forward,
    Output,
    Postrouting,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Accept,
    Drop,
}

/// What makes a chain a base chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BaseChain {
    pub kind: ChainType,
    pub hook: Hook,
    pub priority: i32,
    pub policy: Policy,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    pub name: String,
    /// `None`: a regular chain (target of jumps).
    pub base: Option<BaseChain>,
    pub rules: Vec<Rule>,
    pub comment: Option<String>,
}

/// Packet fields the rules look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Field {
    IpSaddr,
    IpDaddr,
    MetaL4proto,
    /// Transport header destination port; only meaningful after a `meta l4proto` tcp/udp match.
    ThDport,
    IcmpType,
    IcmpCode,
    Iifname,
    Oifname,
    CtMark,
    Ip6Saddr,
    Ip6Daddr,
    /// Only meaningful after a `meta l4proto ipv6-icmp` match.
    Icmpv6Type,
    Icmpv6Code,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CtState {
    Invalid,
    Established,
    Related,
    New,
}

/// A set a rule looks up: named (elements change without touching the rule) or inline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetRef {
    Named(String),
    /// Inline elements (each a key tuple matching the looked-up fields).
    Anonymous(Vec<Vec<Value>>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    /// `field == value` (or `!=` when `negate`).
    Cmp {
        field: Field,
        value: Value,
        negate: bool,
    },
    /// `f1 . f2 ... in set` (or not in).
    InSet {
        fields: Vec<Field>,
        set: SetRef,
        negate: bool,
    },
    CtState(Vec<CtState>),
    /// The connection was destination-NATed (`ct status dnat`).
    CtStatusDnat,
}

/// Where a NAT statement takes its target from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NatTarget {
    Addr(Ipv4Addr),
    /// A map lookup keyed by `key`; the data is an address, or address . port when
    /// `with_port`.
    Map {
        key: Vec<Field>,
        map: String,
        with_port: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Statement {
    Counter,
    Verdict(Verdict),
    /// `vmap` lookup: the verdict of the element matching `key`; no match falls through.
    VerdictMap {
        key: Vec<Field>,
        map: String,
    },
    Dnat(NatTarget),
    Snat(NatTarget),
    /// Source NAT to the primary address of the outgoing interface.
    Masquerade,
    /// `ct mark set <key> map @map`
    CtMarkFromMap {
        key: Field,
        map: String,
    },
    /// `meta mark set ct mark`: replies follow the connection's mark.
    MetaMarkFromCtMark,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub matches: Vec<Match>,
    pub statements: Vec<Statement>,
    /// Free text for operators (built only from numbers, names validated against the device
    /// regex, and fixed words).
    pub comment: Option<String>,
}

impl Rule {
    pub fn new(matches: Vec<Match>, statements: Vec<Statement>) -> Rule {
        Rule {
            matches,
            statements,
            comment: None,
        }
    }
    pub fn comment(mut self, c: impl Into<String>) -> Rule {
        self.comment = Some(c.into());
        self
    }
}

/// Shorthands used by the builder and the tests.
pub fn eq(field: Field, value: Value) -> Match {
    Match::Cmp {
        field,
        value,
        negate: false,
    }
}
pub fn in_set(fields: &[Field], name: &str) -> Match {
    Match::InSet {
        fields: fields.to_vec(),
        set: SetRef::Named(name.to_string()),
        negate: false,
    }
}
pub fn in_anon(fields: &[Field], elements: Vec<Vec<Value>>) -> Match {
    Match::InSet {
        fields: fields.to_vec(),
        set: SetRef::Anonymous(elements),
        negate: false,
    }
}
