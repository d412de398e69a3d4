//! Netlink dumps of one table's counters, read without `nft`: the metrics collector reads
//! 10,000 set elements and 10,000 rules every few seconds, and `nft -j list` / `nft -t list`
//! of them cost 0.3 and 0.9 s (nft builds its whole cache, then prints and the agent parses
//! text). A dump is the kernel's own answer, a few MB of attributes parsed in place.
//!
//! Sans-IO at the core: [`request`] builds a dump request, [`messages`] and [`Attrs`] walk
//! the answer, and the `*_of` functions read one message; [`dump`] is the only I/O.

use std::collections::HashMap;
use std::io;

use super::socket::Socket;

const NLMSG_HDR: usize = 16;
const NFGENMSG: usize = 4;
const SUBSYS_NFTABLES: u16 = 10;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_DUMP: u16 = 0x300;
/// Attribute type bits (the rest are NLA_F_NESTED and NLA_F_NET_BYTEORDER).
const NLA_TYPE_MASK: u16 = 0x3fff;

const MSG_GETCHAIN: u16 = 4;
const MSG_GETRULE: u16 = 7;
const MSG_GETSETELEM: u16 = 13;

const NFTA_LIST_ELEM: u16 = 1;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_USERDATA: u16 = 12;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_RULE_USERDATA: u16 = 7;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_COUNTER_BYTES: u16 = 1;
const NFTA_COUNTER_PACKETS: u16 = 2;
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_FLAGS: u16 = 3;
const NFTA_SET_ELEM_EXPR: u16 = 7;
const NFTA_SET_ELEM_KEY_END: u16 = 10;
const NFTA_SET_ELEM_EXPRESSIONS: u16 = 11;
const NFTA_DATA_VALUE: u16 = 1;
/// NFT_SET_ELEM_INTERVAL_END: the closing element of a range in a non-concatenated interval set.
const ELEM_INTERVAL_END: u32 = 1;
/// nft's userdata type of a chain's or a rule's comment (NFTNL_UDATA_{CHAIN,RULE}_COMMENT).
const UDATA_COMMENT: u8 = 0;

/// A dump answer is read up to this size (memory stays bounded whatever the kernel holds:
/// 200,000 rules with their expressions fit).
pub const MAX_DUMP: usize = 256 << 20;

/// The attributes of one netlink payload: (type without flags, value).
#[derive(Debug)]
pub struct Attrs<'a>(&'a [u8]);

impl<'a> Iterator for Attrs<'a> {
    type Item = (u16, &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        let b = self.0;
        if b.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
        let kind = u16::from_ne_bytes([b[2], b[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > b.len() {
            self.0 = &[];
            return None;
        }
        self.0 = b.get((len + 3) & !3..).unwrap_or(&[]);
        Some((kind, &b[4..len]))
    }
}

pub fn attrs(b: &[u8]) -> Attrs<'_> {
    Attrs(b)
}

fn find(b: &[u8], kind: u16) -> Option<&[u8]> {
    attrs(b).find(|(k, _)| *k == kind).map(|(_, v)| v)
}

/// A NUL-terminated string attribute.
fn string(v: &[u8]) -> String {
    let end = v.iter().position(|&c| c == 0).unwrap_or(v.len());
    String::from_utf8_lossy(&v[..end]).into_owned()
}

fn be64(v: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(v.get(..8)?.try_into().ok()?))
}

/// A dump request: `msg_type` for `family`, with string attributes (`(type, value)`).
pub fn request(msg_type: u16, family: u8, seq: u32, strings: &[(u16, &str)]) -> Vec<u8> {
    let mut m = vec![0u8; NLMSG_HDR];
    m.extend_from_slice(&[family, 0, 0, 0]);
    for (kind, s) in strings {
        let len = 4 + s.len() + 1;
        m.extend_from_slice(&(len as u16).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(s.as_bytes());
        m.push(0);
        m.resize((m.len() + 3) & !3, 0);
    }
    let len = m.len() as u32;
    m[0..4].copy_from_slice(&len.to_ne_bytes());
    m[4..6].copy_from_slice(&((SUBSYS_NFTABLES << 8) | msg_type).to_ne_bytes());
    m[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    m[8..12].copy_from_slice(&seq.to_ne_bytes());
    m
}

/// What one datagram of a dump answer holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Part<'a> {
    /// A message's attributes (after its nfgenmsg).
    Message(&'a [u8]),
    /// The end of the dump.
    Done,
    /// The kernel refused the dump (errno).
    Error(i32),
}

/// The messages of one datagram.
pub fn messages(buf: &[u8]) -> Vec<Part<'_>> {
    let mut out = Vec::new();
    let mut off = 0;
    while off + NLMSG_HDR <= buf.len() {
        let len = u32::from_ne_bytes(buf[off..off + 4].try_into().unwrap_or_default()) as usize;
        let kind = u16::from_ne_bytes([buf[off + 4], buf[off + 5]]);
        if len < NLMSG_HDR || off + len > buf.len() {
            break;
        }
        let body = &buf[off + NLMSG_HDR..off + len];
        match kind {
            NLMSG_DONE => out.push(Part::Done),
            NLMSG_ERROR => {
                let code = body
                    .get(..4)
                    .map_or(0, |c| i32::from_ne_bytes(c.try_into().unwrap_or_default()));
                out.push(if code == 0 {
                    Part::Done
                } else {
                    Part::Error(-code)
                });
            }
            _ => out.push(Part::Message(body.get(NFGENMSG..).unwrap_or(&[]))),
        }
        off += (len + 3) & !3;
    }
    out
}

/// Runs one dump and hands each message to `each`. `Ok(false)`: the object does not exist
/// (ENOENT).
pub fn dump(req: &[u8], mut each: impl FnMut(&[u8])) -> io::Result<bool> {
    let sock = Socket::open(1 << 20)?;
    let mut req = req.to_vec();
    let mut iov = [libc::iovec {
        iov_base: req.as_mut_ptr() as *mut libc::c_void,
        iov_len: req.len(),
    }];
    sock.send(&mut iov)?;
    let mut read = 0usize;
    loop {
        let buf = sock.recv_once_max(64 * 1024)?;
        read += buf.len();
        if read > MAX_DUMP {
            return Err(io::Error::other(format!(
                "netlink dump larger than {MAX_DUMP} bytes"
            )));
        }
        for part in messages(&buf) {
            match part {
                Part::Message(m) => each(m),
                Part::Done => return Ok(true),
                Part::Error(e) if e == libc::ENOENT => return Ok(false),
                Part::Error(e) => return Err(io::Error::from_raw_os_error(e)),
            }
        }
        if buf.is_empty() {
            return Err(io::Error::other("netlink dump ended without DONE"));
        }
    }
}

/// The packets and bytes of a `counter` expression (`NFTA_EXPR_*` attributes), if it is one.
fn counter_of(expr: &[u8]) -> Option<(u64, u64)> {
    if string(find(expr, NFTA_EXPR_NAME)?) != "counter" {
        return None;
    }
    let data = find(expr, NFTA_EXPR_DATA)?;
    Some((
        be64(find(data, NFTA_COUNTER_PACKETS)?)?,
        be64(find(data, NFTA_COUNTER_BYTES)?)?,
    ))
}

/// The comment in nft's userdata TLVs (`type u8, len u8, value`), NUL excluded.
fn comment_of(udata: &[u8]) -> Option<String> {
    let mut b = udata;
    while b.len() >= 2 {
        let (kind, len) = (b[0], b[1] as usize);
        let value = b.get(2..2 + len)?;
        if kind == UDATA_COMMENT {
            return Some(string(value));
        }
        b = &b[2 + len..];
    }
    None
}

/// One set element as dumped: key, key end (concatenated ranges), counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountedElem {
    pub key: Vec<u8>,
    pub key_end: Option<Vec<u8>>,
    pub packets: u64,
    pub bytes: u64,
}

/// The counted elements of one GETSETELEM message (closing interval elements skipped).
pub fn elements_of(msg: &[u8], out: &mut Vec<CountedElem>) {
    let Some(list) = find(msg, NFTA_SET_ELEM_LIST_ELEMENTS) else {
        return;
    };
    for (_, e) in attrs(list).filter(|(k, _)| *k == NFTA_LIST_ELEM) {
        let flags = find(e, NFTA_SET_ELEM_FLAGS)
            .and_then(|v| Some(u32::from_be_bytes(v.get(..4)?.try_into().ok()?)))
            .unwrap_or(0);
        if flags & ELEM_INTERVAL_END != 0 {
            continue;
        }
        let value = |kind| find(find(e, kind)?, NFTA_DATA_VALUE).map(<[u8]>::to_vec);
        let Some(key) = value(NFTA_SET_ELEM_KEY) else {
            continue;
        };
        // One expression (NFTA_SET_ELEM_EXPR, older kernels) or a list of them.
        let counter = find(e, NFTA_SET_ELEM_EXPR)
            .and_then(counter_of)
            .or_else(|| {
                attrs(find(e, NFTA_SET_ELEM_EXPRESSIONS)?)
                    .filter(|(k, _)| *k == NFTA_LIST_ELEM)
                    .find_map(|(_, x)| counter_of(x))
            })
            .unwrap_or((0, 0));
        out.push(CountedElem {
            key,
            key_end: value(NFTA_SET_ELEM_KEY_END),
            packets: counter.0,
            bytes: counter.1,
        });
    }
}

/// The elements of set `set` in `family` table `table` with their counters (`None`: no
/// such table or set).
pub fn set_elements(family: u8, table: &str, set: &str) -> io::Result<Option<Vec<CountedElem>>> {
    let req = request(
        MSG_GETSETELEM,
        family,
        1,
        &[
            (NFTA_SET_ELEM_LIST_TABLE, table),
            (NFTA_SET_ELEM_LIST_SET, set),
        ],
    );
    let mut out = Vec::new();
    let found = dump(&req, |m| elements_of(m, &mut out))?;
    Ok(found.then_some(out))
}

/// One rule's counter as dumped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountedRule {
    pub chain: String,
    pub comment: Option<String>,
    pub packets: u64,
    pub bytes: u64,
}

/// The rule of one GETRULE message, if it has a counter.
pub fn rule_of(msg: &[u8]) -> Option<CountedRule> {
    let exprs = find(msg, NFTA_RULE_EXPRESSIONS)?;
    let (packets, bytes) = attrs(exprs)
        .filter(|(k, _)| *k == NFTA_LIST_ELEM)
        .find_map(|(_, x)| counter_of(x))?;
    Some(CountedRule {
        chain: string(find(msg, NFTA_RULE_CHAIN)?),
        comment: find(msg, NFTA_RULE_USERDATA).and_then(comment_of),
        packets,
        bytes,
    })
}

/// The rules with a counter of `family` table `table`, in the kernel's order (chain by
/// chain, each in rule order), at most `max`. The kernel filters a rule dump by table, so a
/// table that does not exist gives no rules (not `None`).
pub fn rule_counters(family: u8, table: &str, max: usize) -> io::Result<Option<Vec<CountedRule>>> {
    let req = request(MSG_GETRULE, family, 1, &[(NFTA_RULE_TABLE, table)]);
    let mut out = Vec::new();
    let found = dump(&req, |m| {
        if out.len() < max {
            out.extend(rule_of(m));
        }
    })?;
    Ok(found.then_some(out))
}

/// How many rules chain `chain` of `family` table `table` holds (0 when it does not exist).
pub fn rules_in_chain(family: u8, table: &str, chain: &str) -> io::Result<usize> {
    let req = request(
        MSG_GETRULE,
        family,
        1,
        &[(NFTA_RULE_TABLE, table), (NFTA_RULE_CHAIN, chain)],
    );
    let mut n = 0;
    // The kernel filters by chain too; counted by name all the same.
    dump(&req, |m| {
        n += usize::from(find(m, NFTA_RULE_CHAIN).map(string).as_deref() == Some(chain));
    })?;
    Ok(n)
}

/// The comment of each chain of `family` table `table` that has one (a table that does not
/// exist gives none, as for rules).
pub fn chain_comments(family: u8, table: &str) -> io::Result<Option<HashMap<String, String>>> {
    let req = request(MSG_GETCHAIN, family, 1, &[(NFTA_CHAIN_TABLE, table)]);
    let mut out = HashMap::new();
    let found = dump(&req, |m| {
        let name = find(m, NFTA_CHAIN_NAME).map(string);
        let comment = find(m, NFTA_CHAIN_USERDATA).and_then(comment_of);
        if let (Some(n), Some(c)) = (name, comment) {
            out.insert(n, c);
        }
    })?;
    Ok(found.then_some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(kind: u16, value: &[u8]) -> Vec<u8> {
        let mut a = ((4 + value.len()) as u16).to_ne_bytes().to_vec();
        a.extend_from_slice(&kind.to_ne_bytes());
        a.extend_from_slice(value);
        a.resize((a.len() + 3) & !3, 0);
        a
    }

    fn counter(packets: u64, bytes: u64) -> Vec<u8> {
        let data = [
            attr(NFTA_COUNTER_BYTES, &bytes.to_be_bytes()),
            attr(NFTA_COUNTER_PACKETS, &packets.to_be_bytes()),
        ]
        .concat();
        [
            attr(NFTA_EXPR_NAME, b"counter\0"),
            attr(NFTA_EXPR_DATA, &data),
        ]
        .concat()
    }

    #[test]
    fn a_rule_message_gives_its_chain_comment_and_counter() {
        let exprs = [
            attr(NFTA_LIST_ELEM, &attr(NFTA_EXPR_NAME, b"payload\0")),
            attr(NFTA_LIST_ELEM, &counter(3, 180)),
        ]
        .concat();
        let msg = [
            attr(NFTA_RULE_TABLE, b"vr\0"),
            attr(NFTA_RULE_CHAIN, b"fw_in_0\0"),
            attr(NFTA_RULE_EXPRESSIONS, &exprs),
            attr(
                NFTA_RULE_USERDATA,
                &[0, 7, b'r', b'u', b'l', b'e', b' ', b'7', 0],
            ),
        ]
        .concat();
        assert_eq!(
            rule_of(&msg),
            Some(CountedRule {
                chain: "fw_in_0".into(),
                comment: Some("rule 7".into()),
                packets: 3,
                bytes: 180
            })
        );
        // No counter: not a counted rule.
        let bare = [
            attr(NFTA_RULE_CHAIN, b"x\0"),
            attr(NFTA_RULE_EXPRESSIONS, &[]),
        ]
        .concat();
        assert_eq!(rule_of(&bare), None);
    }

    #[test]
    fn elements_with_keys_ranges_and_counters() {
        let key = |k: &[u8]| attr(NFTA_DATA_VALUE, k);
        let one = [
            attr(NFTA_SET_ELEM_KEY, &key(&[192, 0, 2, 1])),
            attr(NFTA_SET_ELEM_EXPR, &counter(1, 60)),
        ]
        .concat();
        let range = [
            attr(NFTA_SET_ELEM_KEY, &key(&[1])),
            attr(NFTA_SET_ELEM_KEY_END, &key(&[9])),
            attr(
                NFTA_SET_ELEM_EXPRESSIONS,
                &attr(NFTA_LIST_ELEM, &counter(2, 120)),
            ),
        ]
        .concat();
        let end = [
            attr(NFTA_SET_ELEM_KEY, &key(&[10])),
            attr(NFTA_SET_ELEM_FLAGS, &ELEM_INTERVAL_END.to_be_bytes()),
        ]
        .concat();
        let list = [one, range, end]
            .iter()
            .flat_map(|e| attr(NFTA_LIST_ELEM, e))
            .collect::<Vec<u8>>();
        let msg = attr(NFTA_SET_ELEM_LIST_ELEMENTS, &list);
        let mut out = Vec::new();
        elements_of(&msg, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(
            (out[0].key.clone(), out[0].packets, out[0].bytes),
            (vec![192, 0, 2, 1], 1, 60)
        );
        assert_eq!(out[1].key_end, Some(vec![9]));
        assert_eq!(out[1].bytes, 120);
    }

    #[test]
    fn a_request_and_an_answer_frame() {
        let r = request(MSG_GETRULE, 2, 9, &[(NFTA_RULE_TABLE, "vr")]);
        assert_eq!(r.len(), NLMSG_HDR + NFGENMSG + 8);
        assert_eq!(
            u32::from_ne_bytes(r[0..4].try_into().unwrap()) as usize,
            r.len()
        );
        // An answer: one message, then DONE.
        let mut a = Vec::new();
        let body = attr(NFTA_RULE_CHAIN, b"c\0");
        a.extend_from_slice(&((NLMSG_HDR + NFGENMSG + body.len()) as u32).to_ne_bytes());
        a.extend_from_slice(&((SUBSYS_NFTABLES << 8) | 6).to_ne_bytes());
        a.extend_from_slice(&[0; 10]);
        a.extend_from_slice(&[2, 0, 0, 0]);
        a.extend_from_slice(&body);
        a.extend_from_slice(&(NLMSG_HDR as u32 + 4).to_ne_bytes());
        a.extend_from_slice(&NLMSG_DONE.to_ne_bytes());
        a.extend_from_slice(&[0; 14]);
        let parts = messages(&a);
        assert_eq!(parts, vec![Part::Message(&body[..]), Part::Done]);
    }
}
