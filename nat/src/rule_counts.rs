//! `inet vr_rule_stats` ([`crate::rule_stats`]) read with netlink dumps of its four sets and
//! of its chain's rules, for the metrics collector every few seconds and for the concern at
//! start: `nft -j list table` of 10,000 counted elements cost nft 0.3-0.4 s (its whole cache,
//! then JSON), which an agent restart paid inside its replay; the dumps take a few ms.
//!
//! `complete` means what [`crate::rule_stats::parse_current`] (the same table as `nft -j`
//! lists it) means: the four sets, one rule per set in the chain, and every element of the
//! shape the agent writes. A table altered by hand is replaced whole.

use std::io;
use std::net::Ipv4Addr;

use crate::netlink::dump::rules_in_chain;
use crate::netlink::dump::{set_elements, CountedElem};
use crate::rule_stats::{Count, Current, Forward, CHAIN, SETS, TABLE};

/// `ipv4_addr . inet_proto . inet_service`: each field padded to 4 bytes.
fn forward_key(k: &[u8]) -> Option<(Ipv4Addr, u8, u16)> {
    if k.len() != 12 {
        return None;
    }
    let ip = Ipv4Addr::new(k[0], k[1], k[2], k[3]);
    Some((ip, k[4], u16::from_be_bytes([k[8], k[9]])))
}

fn forward(e: &CountedElem) -> Option<Forward> {
    let (ip, proto, start) = forward_key(&e.key)?;
    let end = match &e.key_end {
        Some(k) => {
            forward_key(k)
                .filter(|(i, p, _)| *i == ip && *p == proto)?
                .2
        }
        None => start,
    };
    Some(Forward {
        ip,
        proto,
        start,
        end,
    })
}

fn address(e: &CountedElem) -> Option<Ipv4Addr> {
    let k: [u8; 4] = e.key.as_slice().try_into().ok()?;
    Some(Ipv4Addr::from(k))
}

fn count(e: &CountedElem) -> Count {
    Count {
        packets: e.packets,
        bytes: e.bytes,
    }
}

/// Builds [`Current`] from the four sets' dumps (`None` where a set is missing) and the
/// number of rules in the chain.
pub fn current_of(sets: [Option<Vec<CountedElem>>; 4], chain_rules: usize) -> Current {
    let complete = sets.iter().all(Option::is_some) && chain_rules == SETS.len();
    let [forwards, ranges, static_in, static_out] = sets.map(Option::unwrap_or_default);
    let mut cur = Current {
        complete,
        ..Current::default()
    };
    for e in forwards.iter().chain(&ranges) {
        match forward(e) {
            Some(f) => cur.forwards.push((f, count(e))),
            None => cur.complete = false,
        }
    }
    for (from, to) in [
        (static_in, &mut cur.static_in),
        (static_out, &mut cur.static_out),
    ] {
        for e in &from {
            match address(e) {
                Some(a) => to.push((a, count(e))),
                None => cur.complete = false,
            }
        }
    }
    cur
}

/// The counters the kernel holds now (`None`: no table).
pub fn read() -> io::Result<Option<Current>> {
    let family = libc::NFPROTO_INET as u8;
    let mut sets: [Option<Vec<CountedElem>>; 4] = Default::default();
    for (slot, name) in sets.iter_mut().zip(SETS) {
        *slot = set_elements(family, TABLE, name)?;
    }
    if sets.iter().all(Option::is_none) {
        return Ok(None);
    }
    let rules = rules_in_chain(family, TABLE, CHAIN)?;
    Ok(Some(current_of(sets, rules)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elem(key: &[u8], end: Option<&[u8]>, packets: u64) -> CountedElem {
        CountedElem {
            key: key.to_vec(),
            key_end: end.map(<[u8]>::to_vec),
            packets,
            bytes: packets * 100,
        }
    }

    #[test]
    fn keys_decode_as_the_agent_encodes_them() {
        let k = |port: u16| {
            let p = port.to_be_bytes();
            [192, 0, 2, 10, 6, 0, 0, 0, p[0], p[1], 0, 0]
        };
        let sets = [
            Some(vec![elem(&k(53), None, 1)]),
            Some(vec![elem(&k(8000), Some(&k(8100)), 2)]),
            Some(vec![elem(&[192, 0, 2, 20], None, 3)]),
            Some(vec![elem(&[10, 1, 1, 7], None, 4)]),
        ];
        let cur = current_of(sets.clone(), 4);
        assert!(cur.complete);
        let f: Vec<String> = cur.forwards.iter().map(|(f, _)| f.to_string()).collect();
        assert_eq!(f, ["192.0.2.10 . tcp . 53", "192.0.2.10 . tcp . 8000-8100"]);
        assert_eq!(cur.forwards[1].1.bytes, 200);
        assert_eq!(cur.static_in[0].0, Ipv4Addr::new(192, 0, 2, 20));
        assert_eq!(cur.static_out[0].1.packets, 4);
        // A lookup missing from the chain: not complete.
        assert!(!current_of(sets, 3).complete);
        // A missing set or a key of another shape: not complete, the rest still read.
        let cur = current_of(
            [
                Some(vec![elem(&[1, 2], None, 1)]),
                None,
                Some(vec![]),
                Some(vec![]),
            ],
            4,
        );
        assert!(!cur.complete && cur.forwards.is_empty());
    }
}
