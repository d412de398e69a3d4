//! IR -> the kernel's view, as plain data: every rule as the expression list nft itself would
//! send (`nft --debug=netlink` prints the same programs), every set as its netlink
//! attributes. Pure; [`super::raw`] turns these into libnftnl objects.
//!
//! Register use follows nft's so listings read back identically: a value that starts on a
//! 16-byte boundary uses the 16-byte register there (1, 2, ...), anything else the 32-bit
//! register `8 + word` (NFT_REG32_00 = 8).

use crate::ir::*;

/// NFT_REG_VERDICT.
pub const REG_VERDICT: u32 = 0;

/// The register holding the concatenation word at `word` (4-byte units from the start).
pub fn reg_at(word: u32) -> u32 {
    if word.is_multiple_of(4) {
        1 + word / 4
    } else {
        8 + word
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Base {
    /// NFT_PAYLOAD_NETWORK_HEADER
    Network = 1,
    /// NFT_PAYLOAD_TRANSPORT_HEADER
    Transport = 2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq = 0,
    Neq = 1,
    Lte = 3,
    Gte = 5,
}

/// enum nft_meta_keys
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaKey {
    Mark = 3,
    Iifname = 6,
    Oifname = 7,
    L4proto = 16,
}

/// enum nft_ct_keys
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CtKey {
    State = 0,
    Status = 2,
    Mark = 3,
}

/// One expression of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// `[ meta load KEY => reg R ]`
    MetaLoad {
        key: MetaKey,
        dreg: u32,
    },
    /// `[ meta set KEY with reg R ]`
    MetaSet {
        key: MetaKey,
        sreg: u32,
    },
    /// `[ payload load LENb @ BASE header + OFF => reg R ]`
    Payload {
        base: Base,
        offset: u32,
        len: u32,
        dreg: u32,
    },
    /// `[ cmp OP reg R DATA ]`
    Cmp {
        op: CmpOp,
        sreg: u32,
        data: Vec<u8>,
    },
    /// `[ bitwise reg R = ( reg R & MASK ) ^ XOR ]`
    Bitwise {
        reg: u32,
        mask: Vec<u8>,
        xor: Vec<u8>,
    },
    /// `[ byteorder reg R = hton(reg R, SIZE, LEN) ]`
    Hton {
        reg: u32,
        size: u32,
        len: u32,
    },
    /// `[ lookup reg R set NAME [dreg D] [0x1] ]`; `set_id` for sets made in the same batch.
    Lookup {
        sreg: u32,
        dreg: Option<u32>,
        set: String,
        set_id: Option<u32>,
        invert: bool,
    },
    /// `[ ct load KEY => reg R ]`
    CtLoad {
        key: CtKey,
        dreg: u32,
    },
    /// `[ ct set KEY with reg R ]`
    CtSet {
        key: CtKey,
        sreg: u32,
    },
    Counter,
    /// `[ immediate reg 0 VERDICT ]`
    Verdict(Verdict),
    /// `[ immediate reg R DATA ]`
    Immediate {
        dreg: u32,
        data: Vec<u8>,
    },
    /// `[ nat snat|dnat ip addr_min reg A [proto_min reg P] ]`
    Nat {
        dnat: bool,
        addr: u32,
        proto: Option<u32>,
    },
    Masq,
}

/// An anonymous set a rule needs, created in the batch before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnonSet {
    pub id: u32,
    pub set: Set,
}

/// A rule ready to send: its anonymous sets and its expressions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    pub anon: Vec<AnonSet>,
    pub exprs: Vec<Expr>,
    pub comment: Option<String>,
}

/// nft datatype ids (`enum datatypes`), the kernel's view of a set's key and data.
pub fn type_id(t: DataType) -> u32 {
    match t {
        DataType::Ipv4Addr => 7,
        DataType::InetProto => 12,
        DataType::InetService => 13,
        DataType::IcmpType => 14,
        DataType::Mark => 19,
        DataType::IcmpCode => 32,
        DataType::IfName => 41,
        DataType::Ipv6Addr => 8,
        DataType::Icmpv6Type => 29,
        DataType::Icmpv6Code => 33,
    }
}

/// Bytes a value of the type takes (unpadded).
pub fn type_len(t: DataType) -> u32 {
    match t {
        DataType::Ipv4Addr | DataType::Mark => 4,
        DataType::InetProto | DataType::IcmpType | DataType::IcmpCode => 1,
        DataType::Icmpv6Type | DataType::Icmpv6Code => 1,
        DataType::Ipv6Addr => 16,
        DataType::InetService => 2,
        DataType::IfName => 16,
    }
}

/// nft's byte order of a type: 1 host, 2 big endian.
pub fn type_byteorder(t: DataType) -> u32 {
    match t {
        DataType::IfName | DataType::Mark | DataType::InetProto => 1,
        _ => 2,
    }
}

/// Concatenated type id: each part shifted in by 6 bits (nft's TYPE_BITS).
pub fn concat_type(ts: &[DataType]) -> u32 {
    ts.iter().fold(0, |acc, t| (acc << 6) | type_id(*t))
}

/// Register-padded length of a concatenation.
pub fn concat_len(ts: &[DataType]) -> u32 {
    if ts.len() == 1 {
        return type_len(ts[0]);
    }
    ts.iter().map(|t| type_len(*t).div_ceil(4) * 4).sum()
}

/// NFT_SET_* flags.
pub const SET_ANONYMOUS: u32 = 0x1;
pub const SET_CONSTANT: u32 = 0x2;
pub const SET_INTERVAL: u32 = 0x4;
pub const SET_MAP: u32 = 0x8;
pub const SET_CONCAT: u32 = 0x80;
/// NFT_DATA_VERDICT.
pub const DATA_VERDICT: u32 = 0xffff_ff00;

/// A set's netlink attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetSpec {
    pub flags: u32,
    pub key_type: u32,
    pub key_len: u32,
    /// (type, len) of map data; len 0 for verdicts.
    pub data: Option<(u32, u32)>,
    /// Field lengths of a concatenated interval key (NFTA_SET_DESC_CONCAT).
    pub concat: Vec<u8>,
    /// NFTNL_UDATA_SET_* TLVs: key and data byte order, as nft writes them.
    pub udata: Vec<u8>,
}

pub fn set_spec(s: &Set, anonymous: bool) -> SetSpec {
    let mut flags = 0;
    if anonymous {
        flags |= SET_ANONYMOUS | SET_CONSTANT;
    }
    if s.interval {
        flags |= SET_INTERVAL;
        if s.key.len() > 1 {
            flags |= SET_CONCAT;
        }
    }
    let data = match &s.data {
        None => None,
        Some(SetData::Verdict) => Some((DATA_VERDICT, 0)),
        Some(SetData::Values(d)) => Some((concat_type(d), concat_len(d))),
    };
    if data.is_some() {
        flags |= SET_MAP;
    }
    let concat = if s.interval && s.key.len() > 1 {
        s.key.iter().map(|t| type_len(*t) as u8).collect()
    } else {
        Vec::new()
    };
    let order = |ts: &[DataType]| {
        if ts.len() == 1 {
            type_byteorder(ts[0])
        } else {
            0
        }
    };
    let mut udata = Vec::new();
    let mut put = |ty: u8, v: u32| {
        udata.extend([ty, 4]);
        udata.extend(v.to_ne_bytes());
    };
    put(0, order(&s.key));
    if let Some(SetData::Values(d)) = &s.data {
        put(1, order(d));
    }
    if let Some(c) = &s.comment {
        let text = crate::render::comment_text(c);
        udata.extend([7, (text.len() + 1) as u8]);
        udata.extend(text.as_bytes());
        udata.push(0);
    }
    SetSpec {
        flags,
        key_type: concat_type(&s.key),
        key_len: concat_len(&s.key),
        data,
        concat,
        udata,
    }
}

/// The type a field's value has.
pub fn field_type(f: Field) -> DataType {
    match f {
        Field::IpSaddr | Field::IpDaddr => DataType::Ipv4Addr,
        Field::MetaL4proto => DataType::InetProto,
        Field::ThDport => DataType::InetService,
        Field::IcmpType => DataType::IcmpType,
        Field::IcmpCode => DataType::IcmpCode,
        Field::Iifname | Field::Oifname => DataType::IfName,
        Field::CtMark => DataType::Mark,
        Field::Ip6Saddr | Field::Ip6Daddr => DataType::Ipv6Addr,
        Field::Icmpv6Type => DataType::Icmpv6Type,
        Field::Icmpv6Code => DataType::Icmpv6Code,
    }
}

/// The expression loading `f` into `dreg`.
fn load(f: Field, dreg: u32) -> Expr {
    let payload = |base, offset, len| Expr::Payload {
        base,
        offset,
        len,
        dreg,
    };
    match f {
        Field::IpSaddr => payload(Base::Network, 12, 4),
        Field::IpDaddr => payload(Base::Network, 16, 4),
        Field::ThDport => payload(Base::Transport, 2, 2),
        Field::IcmpType => payload(Base::Transport, 0, 1),
        Field::IcmpCode => payload(Base::Transport, 1, 1),
        Field::Ip6Saddr => payload(Base::Network, 8, 16),
        Field::Ip6Daddr => payload(Base::Network, 24, 16),
        Field::Icmpv6Type => payload(Base::Transport, 0, 1),
        Field::Icmpv6Code => payload(Base::Transport, 1, 1),
        Field::MetaL4proto => Expr::MetaLoad {
            key: MetaKey::L4proto,
            dreg,
        },
        Field::Iifname => Expr::MetaLoad {
            key: MetaKey::Iifname,
            dreg,
        },
        Field::Oifname => Expr::MetaLoad {
            key: MetaKey::Oifname,
            dreg,
        },
        Field::CtMark => Expr::CtLoad {
            key: CtKey::Mark,
            dreg,
        },
    }
}

/// Loads a concatenation from register 1 on. In a map statement's key nft converts a
/// host-order `meta l4proto` to network order (a no-op on one byte, but it is what nft
/// sends and reads back).
fn load_concat(fields: &[Field], in_map_statement: bool, out: &mut Vec<Expr>) {
    let mut word = 0;
    for f in fields {
        let reg = reg_at(word);
        out.push(load(*f, reg));
        if in_map_statement && fields.len() > 1 && *f == Field::MetaL4proto {
            out.push(Expr::Hton {
                reg,
                size: 2,
                len: 1,
            });
        }
        word += type_len(field_type(*f)).div_ceil(4);
    }
}

/// A value as the kernel compares it; `(start, end)` for ranges.
pub fn value_bytes(v: &Value) -> (Vec<u8>, Option<Vec<u8>>) {
    match v {
        Value::Addr(a) => (a.octets().to_vec(), None),
        Value::Net(n) => (
            n.network().octets().to_vec(),
            Some(n.broadcast().octets().to_vec()),
        ),
        Value::Proto(p) | Value::Byte(p) => (vec![*p], None),
        Value::ByteRange(a, b) => (vec![*a], Some(vec![*b])),
        Value::Port(p) => (p.to_be_bytes().to_vec(), None),
        Value::PortRange(a, b) => (a.to_be_bytes().to_vec(), Some(b.to_be_bytes().to_vec())),
        Value::IfName(n) => {
            let mut b = n.as_bytes().to_vec();
            b.resize(16, 0);
            (b, None)
        }
        Value::Mark(m) => (m.to_ne_bytes().to_vec(), None),
        Value::Addr6(a) => (a.octets().to_vec(), None),
        Value::Net6(n) => (
            n.network().octets().to_vec(),
            Some(n.broadcast().octets().to_vec()),
        ),
    }
}

fn ct_state_bits(states: &[CtState]) -> u32 {
    states
        .iter()
        .map(|s| match s {
            CtState::Invalid => 1,
            CtState::Established => 2,
            CtState::Related => 4,
            CtState::New => 8,
        })
        .fold(0, |a, b| a | b)
}

/// `[ ct load KEY ] [ bitwise & BITS ] [ cmp neq 0 ]`
fn ct_bits(key: CtKey, bits: u32, out: &mut Vec<Expr>) {
    out.push(Expr::CtLoad { key, dreg: 1 });
    out.push(Expr::Bitwise {
        reg: 1,
        mask: bits.to_ne_bytes().to_vec(),
        xor: vec![0; 4],
    });
    out.push(Expr::Cmp {
        op: CmpOp::Neq,
        sreg: 1,
        data: vec![0; 4],
    });
}

fn compare(field: Field, value: &Value, negate: bool, out: &mut Vec<Expr>) -> Result<(), String> {
    out.push(load(field, 1));
    let (start, end) = value_bytes(value);
    let op = if negate { CmpOp::Neq } else { CmpOp::Eq };
    match (value, end) {
        (_, None) => out.push(Expr::Cmp {
            op,
            sreg: 1,
            data: start,
        }),
        (Value::Net(n), Some(_)) => {
            if n.prefix_len() > 0 {
                out.push(Expr::Bitwise {
                    reg: 1,
                    mask: n.netmask().octets().to_vec(),
                    xor: vec![0; 4],
                });
            }
            out.push(Expr::Cmp {
                op,
                sreg: 1,
                data: start,
            });
        }
        (Value::Net6(n), Some(_)) => {
            if n.prefix_len() > 0 {
                out.push(Expr::Bitwise {
                    reg: 1,
                    mask: n.netmask().octets().to_vec(),
                    xor: vec![0; 16],
                });
            }
            out.push(Expr::Cmp {
                op,
                sreg: 1,
                data: start,
            });
        }
        (_, Some(_)) if negate => return Err("negated range comparison".into()),
        (_, Some(end)) => {
            out.push(Expr::Cmp {
                op: CmpOp::Gte,
                sreg: 1,
                data: start,
            });
            out.push(Expr::Cmp {
                op: CmpOp::Lte,
                sreg: 1,
                data: end,
            });
        }
    }
    Ok(())
}

/// Builds one rule's program; `next_id` numbers the anonymous sets of the batch.
pub fn program(rule: &Rule, next_id: &mut u32) -> Result<Program, String> {
    let mut p = Program {
        anon: Vec::new(),
        exprs: Vec::new(),
        comment: rule.comment.as_deref().map(crate::render::comment_text),
    };
    let out = &mut p.exprs;
    for m in &rule.matches {
        match m {
            Match::Cmp {
                field,
                value,
                negate,
            } => compare(*field, value, *negate, out)?,
            Match::InSet {
                fields,
                set,
                negate,
            } => {
                load_concat(fields, false, out);
                let (name, set_id) = match set {
                    SetRef::Named(n) => (n.clone(), None),
                    SetRef::Anonymous(elements) => {
                        let key: Vec<DataType> = fields.iter().map(|f| field_type(*f)).collect();
                        let interval = elements.iter().flatten().any(|v| {
                            matches!(
                                v,
                                Value::Net(_)
                                    | Value::Net6(_)
                                    | Value::PortRange(..)
                                    | Value::ByteRange(..)
                            )
                        });
                        let id = *next_id;
                        *next_id += 1;
                        p.anon.push(AnonSet {
                            id,
                            set: Set {
                                name: "__set%d".into(),
                                key,
                                data: None,
                                interval,
                                elements: elements
                                    .iter()
                                    .map(|k| Element {
                                        key: k.clone(),
                                        data: None,
                                    })
                                    .collect(),
                                comment: None,
                            },
                        });
                        ("__set%d".to_string(), Some(id))
                    }
                };
                out.push(Expr::Lookup {
                    sreg: 1,
                    dreg: None,
                    set: name,
                    set_id,
                    invert: *negate,
                });
            }
            Match::CtState(states) => ct_bits(CtKey::State, ct_state_bits(states), out),
            // IPS_DST_NAT
            Match::CtStatusDnat => ct_bits(CtKey::Status, 1 << 5, out),
        }
    }
    for s in &rule.statements {
        match s {
            Statement::Counter => out.push(Expr::Counter),
            Statement::Verdict(v) => out.push(Expr::Verdict(v.clone())),
            Statement::VerdictMap { key, map } => {
                load_concat(key, true, out);
                out.push(Expr::Lookup {
                    sreg: 1,
                    dreg: Some(REG_VERDICT),
                    set: map.clone(),
                    set_id: None,
                    invert: false,
                });
            }
            Statement::Dnat(t) | Statement::Snat(t) => {
                let dnat = matches!(s, Statement::Dnat(_));
                let proto = match t {
                    NatTarget::Addr(a) => {
                        out.push(Expr::Immediate {
                            dreg: 1,
                            data: a.octets().to_vec(),
                        });
                        None
                    }
                    NatTarget::Map {
                        key,
                        map,
                        with_port,
                    } => {
                        load_concat(key, true, out);
                        out.push(Expr::Lookup {
                            sreg: 1,
                            dreg: Some(1),
                            set: map.clone(),
                            set_id: None,
                            invert: false,
                        });
                        with_port.then_some(reg_at(1))
                    }
                };
                out.push(Expr::Nat {
                    dnat,
                    addr: 1,
                    proto,
                });
            }
            Statement::Masquerade => out.push(Expr::Masq),
            Statement::CtMarkFromMap { key, map } => {
                out.push(load(*key, 1));
                out.push(Expr::Lookup {
                    sreg: 1,
                    dreg: Some(1),
                    set: map.clone(),
                    set_id: None,
                    invert: false,
                });
                out.push(Expr::CtSet {
                    key: CtKey::Mark,
                    sreg: 1,
                });
            }
            Statement::MetaMarkFromCtMark => {
                out.push(Expr::CtLoad {
                    key: CtKey::Mark,
                    dreg: 1,
                });
                out.push(Expr::MetaSet {
                    key: MetaKey::Mark,
                    sreg: 1,
                });
            }
        }
    }
    merge_adjacent_payload_compares(out);
    Ok(p)
}

/// nft merges `icmp type X icmp code Y` into one 2-byte load and compare; do the same so
/// the rule lists back the way nft itself would have sent it.
fn merge_adjacent_payload_compares(exprs: &mut Vec<Expr>) {
    let mut i = 0;
    while i + 3 < exprs.len() {
        let merged = match (&exprs[i], &exprs[i + 1], &exprs[i + 2], &exprs[i + 3]) {
            (
                Expr::Payload {
                    base: b1,
                    offset: o1,
                    len: l1,
                    dreg: 1,
                },
                Expr::Cmp {
                    op: CmpOp::Eq,
                    sreg: 1,
                    data: d1,
                },
                Expr::Payload {
                    base: b2,
                    offset: o2,
                    len: l2,
                    dreg: 1,
                },
                Expr::Cmp {
                    op: CmpOp::Eq,
                    sreg: 1,
                    data: d2,
                },
            ) if b1 == b2 && o1 + l1 == *o2 && l1 + l2 <= 4 => {
                let mut data = d1.clone();
                data.extend(d2);
                Some((
                    Expr::Payload {
                        base: *b1,
                        offset: *o1,
                        len: l1 + l2,
                        dreg: 1,
                    },
                    Expr::Cmp {
                        op: CmpOp::Eq,
                        sreg: 1,
                        data,
                    },
                ))
            }
            _ => None,
        };
        if let Some((load, cmp)) = merged {
            exprs.splice(i..i + 4, [load, cmp]);
        } else {
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_follow_nft() {
        assert_eq!(
            [reg_at(0), reg_at(1), reg_at(2), reg_at(3), reg_at(4)],
            [1, 9, 10, 11, 2]
        );
    }

    #[test]
    fn concat_type_and_len_match_nft() {
        use DataType::*;
        // `ipv4_addr . inet_proto . inet_service . ipv4_addr` as nft sends it.
        let k = [Ipv4Addr, InetProto, InetService, Ipv4Addr];
        assert_eq!(concat_type(&k), 0x001c_c347);
        assert_eq!(concat_len(&k), 16);
    }

    #[test]
    fn icmp_type_and_code_merge_into_one_compare() {
        let r = Rule::new(
            vec![
                eq(Field::IcmpType, Value::Byte(8)),
                eq(Field::IcmpCode, Value::Byte(0)),
            ],
            vec![Statement::Verdict(Verdict::Accept)],
        );
        let p = program(&r, &mut 1).unwrap();
        assert_eq!(
            p.exprs[..2],
            [
                Expr::Payload {
                    base: Base::Transport,
                    offset: 0,
                    len: 2,
                    dreg: 1
                },
                Expr::Cmp {
                    op: CmpOp::Eq,
                    sreg: 1,
                    data: vec![8, 0]
                }
            ]
        );
    }

    #[test]
    fn port_forward_map_key_converts_the_protocol() {
        let r = Rule::new(
            vec![],
            vec![Statement::Dnat(NatTarget::Map {
                key: vec![
                    Field::IpDaddr,
                    Field::MetaL4proto,
                    Field::ThDport,
                    Field::IpSaddr,
                ],
                map: "pf_port".into(),
                with_port: true,
            })],
        );
        let p = program(&r, &mut 1).unwrap();
        assert_eq!(
            p.exprs[2],
            Expr::Hton {
                reg: 9,
                size: 2,
                len: 1
            }
        );
        assert_eq!(
            p.exprs.last(),
            Some(&Expr::Nat {
                dnat: true,
                addr: 1,
                proto: Some(9)
            })
        );
    }
}
