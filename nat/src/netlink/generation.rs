//! The nftables ruleset generation: `NFT_MSG_GETGEN`, the counter the kernel bumps on every
//! committed change to any table of this network namespace (what `nft monitor` keys on).
//!
//! Reading it is one small request, so the agent can ask every few seconds "did anyone touch
//! nftables since I last applied?" and list its table only when the answer is yes.

use std::io;

use super::socket::Socket;

/// `NFNL_SUBSYS_NFTABLES` (linux/netfilter/nfnetlink.h).
const SUBSYS_NFTABLES: u16 = 10;
/// `NFT_MSG_NEWGEN` / `NFT_MSG_GETGEN` (linux/netfilter/nf_tables.h).
const MSG_NEWGEN: u16 = 15;
const MSG_GETGEN: u16 = 16;
/// `NFTA_GEN_ID`: the generation, a big-endian u32.
const NFTA_GEN_ID: u16 = 1;
const NLMSG_HDR: usize = 16;
const NFGENMSG: usize = 4;

/// `GETGEN` request: netlink header + `nfgenmsg` (family unspec, version 0, res_id 0).
fn request(seq: u32) -> Vec<u8> {
    let len = (NLMSG_HDR + NFGENMSG) as u32;
    let mut b = Vec::with_capacity(len as usize);
    b.extend_from_slice(&len.to_ne_bytes());
    b.extend_from_slice(&((SUBSYS_NFTABLES << 8) | MSG_GETGEN).to_ne_bytes());
    b.extend_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
    b.extend_from_slice(&seq.to_ne_bytes());
    b.extend_from_slice(&0u32.to_ne_bytes()); // pid: the kernel fills ours in
    b.extend_from_slice(&[libc::AF_UNSPEC as u8, 0, 0, 0]);
    b
}

/// The generation id in a `NEWGEN` answer (pure, so it is unit-tested on bytes).
fn parse(answer: &[u8]) -> Option<u32> {
    let mut off = 0;
    while off + NLMSG_HDR <= answer.len() {
        let len = u32::from_ne_bytes(answer[off..off + 4].try_into().ok()?) as usize;
        let kind = u16::from_ne_bytes(answer[off + 4..off + 6].try_into().ok()?);
        if len < NLMSG_HDR || off + len > answer.len() {
            return None;
        }
        if kind == (SUBSYS_NFTABLES << 8) | MSG_NEWGEN {
            let mut a = off + NLMSG_HDR + NFGENMSG;
            while a + 4 <= off + len {
                let alen = u16::from_ne_bytes(answer[a..a + 2].try_into().ok()?) as usize;
                let atype = u16::from_ne_bytes(answer[a + 2..a + 4].try_into().ok()?) & 0x3fff;
                if alen < 4 || a + alen > off + len {
                    return None;
                }
                if atype == NFTA_GEN_ID && alen >= 8 {
                    return Some(u32::from_be_bytes(answer[a + 4..a + 8].try_into().ok()?));
                }
                a += (alen + 3) & !3;
            }
        }
        off += (len + 3) & !3;
    }
    None
}

/// The current ruleset generation of the caller's network namespace.
pub fn ruleset_generation() -> io::Result<u32> {
    let sock = Socket::open(64 * 1024)?;
    let mut msg = request(1);
    let mut iov = [libc::iovec {
        iov_base: msg.as_mut_ptr() as *mut libc::c_void,
        iov_len: msg.len(),
    }];
    sock.send(&mut iov)?;
    let answer = sock.recv_once()?;
    parse(&answer).ok_or_else(|| io::Error::other("no generation id in the kernel's answer"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_generation_attribute() {
        let mut a = Vec::new();
        let len = (NLMSG_HDR + NFGENMSG + 8) as u32;
        a.extend_from_slice(&len.to_ne_bytes());
        a.extend_from_slice(&((SUBSYS_NFTABLES << 8) | MSG_NEWGEN).to_ne_bytes());
        a.extend_from_slice(&[0; 10]);
        a.extend_from_slice(&[0; 4]);
        a.extend_from_slice(&8u16.to_ne_bytes());
        a.extend_from_slice(&NFTA_GEN_ID.to_ne_bytes());
        a.extend_from_slice(&4242u32.to_be_bytes());
        assert_eq!(parse(&a), Some(4242));
        assert_eq!(parse(&a[..20]), None);
        assert_eq!(request(7).len(), 20);
    }
}
