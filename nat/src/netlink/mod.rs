//! Netlink executor: an [`NftPlan`] as ONE nftnl batch sent with ONE `sendmsg`, every
//! message acknowledged and checked; an error names the object whose message failed.
//!
//! Every plan kind is encoded: element changes (the one-mapping hot path), table removal,
//! and the full replace (table, chains, sets with their elements, rules with their
//! anonymous sets), built from [`program`]'s plain-data view of the IR. Raw libnftnl calls
//! live in [`raw`] only.

pub mod dump;
mod generation;
pub mod program;
mod raw;
mod socket;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use crate::ir::{
    BaseChain, ChainType, Element, ElementData, Family, Hook, Policy, Ruleset, Set, Value, Verdict,
};
use crate::plan::{ElementOp, NftPlan};
use crate::render;
pub use generation::ruleset_generation;
use raw::{BaseSpec, Batch, ChainSpec, ElemTarget, RawData, RawElem};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetlinkError {
    /// The netlink socket could not be opened, or sending or reading failed.
    #[error("nftables netlink: {0}")]
    Io(String),
    /// The kernel refused one message of the batch (nothing was applied).
    #[error("kernel refused {object}: {reason}")]
    Refused { object: String, reason: String },
}

fn family_code(f: Family) -> u16 {
    match f {
        Family::Ip => libc::NFPROTO_IPV4 as u16,
        Family::Inet => libc::NFPROTO_INET as u16,
        Family::Ip6 => libc::NFPROTO_IPV6 as u16,
    }
}

/// NFT_SET_ELEM_INTERVAL_END.
const INTERVAL_END: u32 = 1;

/// Key bytes of one value, its inclusive end for ranges, as nft encodes them (network byte
/// order, except `mark`, which nft keeps in host order; names padded to IFNAMSIZ).
fn encode(v: &Value) -> (Vec<u8>, Vec<u8>) {
    match v {
        Value::Addr(a) => (a.octets().to_vec(), a.octets().to_vec()),
        Value::Net(n) => (
            n.network().octets().to_vec(),
            n.broadcast().octets().to_vec(),
        ),
        Value::Proto(p) | Value::Byte(p) => (vec![*p], vec![*p]),
        Value::ByteRange(a, b) => (vec![*a], vec![*b]),
        Value::Port(p) => (p.to_be_bytes().to_vec(), p.to_be_bytes().to_vec()),
        Value::PortRange(a, b) => (a.to_be_bytes().to_vec(), b.to_be_bytes().to_vec()),
        Value::IfName(n) => {
            let mut b = n.as_bytes().to_vec();
            b.resize(16, 0);
            (b.clone(), b)
        }
        Value::Mark(m) => (m.to_ne_bytes().to_vec(), m.to_ne_bytes().to_vec()),
        Value::Addr6(a) => (a.octets().to_vec(), a.octets().to_vec()),
        Value::Net6(n) => (
            n.network().octets().to_vec(),
            n.broadcast().octets().to_vec(),
        ),
    }
}

/// Concatenation: every field padded to a multiple of 4 bytes (nft's register layout).
fn concat(vs: &[Value]) -> (Vec<u8>, Vec<u8>) {
    let (mut s, mut e) = (Vec::new(), Vec::new());
    for v in vs {
        let (a, b) = encode(v);
        let pad = a.len().div_ceil(4) * 4;
        let (mut a, mut b) = (a, b);
        a.resize(pad, 0);
        b.resize(pad, 0);
        s.extend(a);
        e.extend(b);
    }
    (s, e)
}

/// Big-endian increment; `None` on overflow (the range runs to the end of the key space).
fn plus_one(b: &[u8]) -> Option<Vec<u8>> {
    let mut out = b.to_vec();
    for i in (0..out.len()).rev() {
        if out[i] == 0xff {
            out[i] = 0;
        } else {
            out[i] += 1;
            return Some(out);
        }
    }
    None
}

fn verdict(v: &Verdict) -> RawData {
    match v {
        Verdict::Accept => RawData::Verdict(libc::NF_ACCEPT, None),
        Verdict::Drop => RawData::Verdict(libc::NF_DROP, None),
        Verdict::Return => RawData::Verdict(libc::NFT_RETURN, None),
        Verdict::Jump(c) => RawData::Verdict(libc::NFT_JUMP, Some(c.clone())),
    }
}

/// Whether a set is an interval set: from its definition when known, else from the key
/// (ranges and prefixes exist only in interval sets).
fn is_interval(set: Option<&Set>, e: &Element) -> bool {
    match set {
        Some(s) => s.interval,
        None => e.key.iter().any(|v| {
            matches!(
                v,
                Value::Net(_) | Value::Net6(_) | Value::PortRange(..) | Value::ByteRange(..)
            )
        }),
    }
}

/// The kernel elements of one IR element: concatenated intervals carry KEY_END; a plain
/// interval is a start element and (unless it runs to the end) an INTERVAL_END element.
fn raw_elements(interval: bool, e: &Element, with_data: bool) -> Vec<RawElem> {
    let data = if with_data {
        match &e.data {
            None => None,
            Some(ElementData::Values(d)) => Some(RawData::Value(concat(d).0)),
            Some(ElementData::Verdict(v)) => Some(verdict(v)),
        }
    } else {
        None
    };
    let (start, end) = if e.key.len() > 1 {
        concat(&e.key)
    } else {
        let v = e
            .key
            .first()
            .cloned()
            .unwrap_or(Value::Addr(Ipv4Addr::UNSPECIFIED));
        encode(&v)
    };
    if !interval {
        return vec![RawElem {
            key: start,
            key_end: None,
            flags: 0,
            data,
        }];
    }
    if e.key.len() > 1 {
        return vec![RawElem {
            key: start,
            key_end: Some(end),
            flags: 0,
            data,
        }];
    }
    let mut out = vec![RawElem {
        key: start,
        key_end: None,
        flags: 0,
        data,
    }];
    if let Some(after) = plus_one(&end) {
        out.push(RawElem {
            key: after,
            key_end: None,
            flags: INTERVAL_END,
            data: None,
        });
    }
    out
}

/// Sends plans over netlink in the calling thread's network namespace.
#[derive(Debug, Clone, Default)]
pub struct Executor {}

impl Executor {
    /// Applies `plan` atomically. `applied` (the mirror) tells set shapes for element ops.
    pub fn apply(&self, plan: &NftPlan, applied: Option<&Ruleset>) -> Result<(), NetlinkError> {
        let mut batch = Batch::new(seq_base());
        // seq -> what that message does, for error messages.
        let mut objects: Vec<(u32, String)> = Vec::new();
        match plan {
            NftPlan::Empty => return Ok(()),
            NftPlan::Replace(rs) => replace(&mut batch, &mut objects, rs)?,
            NftPlan::Remove { family, table } => {
                let fam = family_code(*family);
                let what = format!("table {} {table}", render::family(*family));
                let s = batch.table(
                    libc::NFT_MSG_NEWTABLE as u16,
                    fam,
                    table,
                    libc::NLM_F_CREATE as u16,
                );
                objects.push((s, format!("add {what}")));
                let s = batch.table(libc::NFT_MSG_DELTABLE as u16, fam, table, 0);
                objects.push((s, format!("delete {what}")));
            }
            NftPlan::Elements { family, table, ops } => {
                let fam = family_code(*family);
                // Consecutive ops on one set in one direction share a message (up to
                // ELEMENTS_PER_MESSAGE elements): one message and one ACK per element made a
                // 10,000-forward apply overflow the socket's receive buffer with ACKs
                // (ENOBUFS) and cost a netlink header, an ACK and a parse each. Order is kept:
                // runs are cut where the set or the direction changes.
                let mut i = 0;
                while i < ops.len() {
                    let first = &ops[i];
                    let mut j = i + 1;
                    while j < ops.len()
                        && j - i < ELEMENTS_PER_MESSAGE
                        && ops[j].set == first.set
                        && ops[j].add == first.add
                    {
                        j += 1;
                    }
                    let run = &ops[i..j];
                    let shape = applied.and_then(|r| r.set(&first.set));
                    let els: Vec<RawElem> = run
                        .iter()
                        .flat_map(|op| {
                            raw_elements(is_interval(shape, &op.element), &op.element, op.add)
                        })
                        .collect();
                    let (ty, flags, verb) = if first.add {
                        (libc::NFT_MSG_NEWSETELEM, libc::NLM_F_CREATE, "add")
                    } else {
                        (libc::NFT_MSG_DELSETELEM, 0, "delete")
                    };
                    let target = ElemTarget {
                        table,
                        set: &first.set,
                        set_id: None,
                    };
                    let s = batch.elements((ty as u16, fam, flags as u16), target, &els);
                    let shown = |op: &ElementOp| {
                        if op.add {
                            render::element(&op.element)
                        } else {
                            render::element(&Element {
                                key: op.element.key.clone(),
                                data: None,
                            })
                        }
                    };
                    // A refused message names its first element, and how many it carried.
                    let more = match run.len() {
                        1 => String::new(),
                        n => format!(" (and {} more in the same message)", n - 1),
                    };
                    objects.push((
                        s,
                        format!(
                            "{verb} element {} {table} {} {{ {} }}{more}",
                            render::family(*family),
                            first.set,
                            shown(first)
                        ),
                    ));
                    i = j;
                }
            }
        }
        batch.end();
        send(&batch, &objects)
    }
}

/// Elements per NEWSETELEM message: keeps every message well inside a batch page.
const ELEMENTS_PER_MESSAGE: usize = 256;

fn add_elements(
    batch: &mut Batch,
    objects: &mut Vec<(u32, String)>,
    fam: u16,
    table: &str,
    set: &Set,
    set_id: Option<u32>,
) {
    let els: Vec<RawElem> = set
        .elements
        .iter()
        .flat_map(|e| raw_elements(set.interval, e, true))
        .collect();
    for chunk in els.chunks(ELEMENTS_PER_MESSAGE) {
        let target = ElemTarget {
            table,
            set: &set.name,
            set_id,
        };
        let s = batch.elements(
            (
                libc::NFT_MSG_NEWSETELEM as u16,
                fam,
                libc::NLM_F_CREATE as u16,
            ),
            target,
            chunk,
        );
        objects.push((s, format!("add elements to set {}", set.name)));
    }
}

fn chain_spec(name: &str, base: Option<BaseChain>, comment: Option<&str>) -> ChainSpec {
    let mut udata = Vec::new();
    if let Some(c) = comment {
        let text = render::comment_text(c);
        // NFTNL_UDATA_CHAIN_COMMENT, NUL-terminated.
        udata.extend([0, (text.len() + 1) as u8]);
        udata.extend(text.as_bytes());
        udata.push(0);
    }
    ChainSpec {
        name: name.to_string(),
        base: base.map(|b| BaseSpec {
            kind: match b.kind {
                ChainType::Filter => "filter",
                ChainType::Nat => "nat",
                ChainType::Route => "route",
            },
            hook: match b.hook {
                Hook::Prerouting => libc::NF_INET_PRE_ROUTING,
                Hook::Input => libc::NF_INET_LOCAL_IN,
                Hook::Forward => libc::NF_INET_FORWARD,
                Hook::Output => libc::NF_INET_LOCAL_OUT,
                Hook::Postrouting => libc::NF_INET_POST_ROUTING,
            } as u32,
            priority: b.priority,
            policy: match b.policy {
                Policy::Accept => libc::NF_ACCEPT,
                Policy::Drop => libc::NF_DROP,
            } as u32,
        }),
        udata,
    }
}

/// The table replaced whole, in nft's order: make sure it exists, delete it, recreate it,
/// its chains (so verdict-map elements can jump to them), its sets and their elements,
/// then the rules, each after the anonymous sets it uses.
fn replace(
    batch: &mut Batch,
    objects: &mut Vec<(u32, String)>,
    rs: &Ruleset,
) -> Result<(), NetlinkError> {
    let fam = family_code(rs.family);
    let what = format!("table {} {}", render::family(rs.family), rs.table);
    let mut table = |msg: u32, flags: u32, verb: &str| {
        let s = batch.table(msg as u16, fam, &rs.table, flags as u16);
        objects.push((s, format!("{verb} {what}")));
    };
    table(
        libc::NFT_MSG_NEWTABLE as u32,
        libc::NLM_F_CREATE as u32,
        "add",
    );
    table(libc::NFT_MSG_DELTABLE as u32, 0, "delete");
    table(
        libc::NFT_MSG_NEWTABLE as u32,
        libc::NLM_F_CREATE as u32,
        "add",
    );
    for c in &rs.chains {
        let s = batch.chain(
            fam,
            &rs.table,
            &chain_spec(&c.name, c.base, c.comment.as_deref()),
        );
        objects.push((s, format!("add chain {}", c.name)));
    }
    let mut next_id = 1;
    for set in &rs.sets {
        let s = batch.set(
            fam,
            &rs.table,
            &set.name,
            next_id,
            &program::set_spec(set, false),
            None,
        );
        objects.push((s, format!("add set {}", set.name)));
        next_id += 1;
        if !set.elements.is_empty() {
            add_elements(batch, objects, fam, &rs.table, set, None);
        }
    }
    for c in &rs.chains {
        for r in &c.rules {
            let p = program::program(r, &mut next_id).map_err(|reason| NetlinkError::Refused {
                object: format!("rule in chain {}: {}", c.name, render::rule(r)),
                reason,
            })?;
            for a in &p.anon {
                let spec = program::set_spec(&a.set, true);
                let n = a.set.elements.len() as u32;
                let s = batch.set(fam, &rs.table, &a.set.name, a.id, &spec, Some(n));
                objects.push((s, format!("add anonymous set of rule {}", render::rule(r))));
                add_elements(batch, objects, fam, &rs.table, &a.set, Some(a.id));
            }
            let s = batch.rule(fam, &rs.table, &c.name, &p);
            objects.push((
                s,
                format!("add rule to chain {}: {}", c.name, render::rule(r)),
            ));
        }
    }
    Ok(())
}

/// Sequence numbers start from the clock so answers to an earlier, abandoned batch on a
/// reused socket could never be mistaken for ours (each batch has its own socket anyway).
fn seq_base() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(1)
}

fn send(batch: &Batch, objects: &[(u32, String)]) -> Result<(), NetlinkError> {
    let io = |e: std::io::Error| NetlinkError::Io(e.to_string());
    let mut iov = batch.iovecs();
    let total: usize = iov.iter().map(|v| v.iov_len).sum();
    // Room for the batch and for one ACK (an nlmsgerr with the echoed header) per message.
    let sock = socket::Socket::open((total + objects.len() * 64) * 2 + (1 << 20)).map_err(io)?;
    let sent = sock.send(&mut iov).map_err(io)?;
    if sent != total {
        return Err(NetlinkError::Io(format!("sent {sent} of {total} bytes")));
    }
    let pending: BTreeSet<u32> = objects.iter().map(|(s, _)| *s).collect();
    let errors = sock.acks(pending).map_err(io)?;
    if let Some((seq, errno)) = errors.iter().next() {
        let object = objects
            .iter()
            .find(|(s, _)| s == seq)
            .map(|(_, o)| o.clone())
            .unwrap_or_else(|| "the batch".to_string());
        return Err(NetlinkError::Refused {
            object,
            reason: std::io::Error::from_raw_os_error(*errno).to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_prefix_is_start_and_end() {
        let e = Element {
            key: vec![Value::Net("10.4.0.0/24".parse().unwrap())],
            data: Some(ElementData::Verdict(Verdict::Drop)),
        };
        let r = raw_elements(true, &e, true);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].key, vec![10, 4, 0, 0]);
        assert_eq!(r[1].key, vec![10, 4, 1, 0]);
        assert_eq!(r[1].flags, INTERVAL_END);
        assert!(r[1].data.is_none());
    }

    #[test]
    fn concat_interval_pads_and_has_key_end() {
        let e = Element {
            key: vec![
                Value::Addr("192.0.2.10".parse().unwrap()),
                Value::Proto(6),
                Value::Port(9000),
                Value::Net("0.0.0.0/0".parse().unwrap()),
            ],
            data: Some(ElementData::Values(vec![
                Value::Addr("10.1.0.6".parse().unwrap()),
                Value::Port(7000),
            ])),
        };
        let r = raw_elements(true, &e, true);
        assert_eq!(r.len(), 1);
        assert_eq!(
            r[0].key,
            vec![192, 0, 2, 10, 6, 0, 0, 0, 0x23, 0x28, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(r[0].key_end.as_deref().unwrap()[12..], [255, 255, 255, 255]);
        assert_eq!(
            r[0].data,
            Some(RawData::Value(vec![10, 1, 0, 6, 0x1b, 0x58, 0, 0]))
        );
    }

    #[test]
    fn range_to_the_end_has_no_end_element() {
        let e = Element {
            key: vec![Value::Net("0.0.0.0/0".parse().unwrap())],
            data: None,
        };
        assert_eq!(raw_elements(true, &e, false).len(), 1);
    }
}
