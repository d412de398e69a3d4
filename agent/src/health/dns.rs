//! One DNS question over UDP, for `dns_check.py`: an A query sent to dnsmasq on a guest
//! gateway, its answer's addresses read back. A hand-made packet (RFC 1035 §4) because the
//! check needs nothing more, and no resolver library would let it choose the server, the
//! deadline and the source all at once.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

/// What the server said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// RCODE: 0 NOERROR, 3 NXDOMAIN, ...
    pub rcode: u8,
    pub addresses: Vec<Ipv4Addr>,
}

/// The query packet for `name`, type A, class IN, recursion desired.
pub fn query(id: u16, name: &str) -> Option<Vec<u8>> {
    let mut p = Vec::with_capacity(32 + name.len());
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            return None;
        }
        p.push(label.len() as u8);
        p.extend_from_slice(label.as_bytes());
    }
    p.extend_from_slice(&[0, 0, 1, 0, 1]);
    Some(p)
}

/// Skips a (possibly compressed) name starting at `i`; the index after it.
fn skip_name(p: &[u8], mut i: usize) -> Option<usize> {
    loop {
        let len = *p.get(i)?;
        match len {
            0 => return Some(i + 1),
            l if l & 0xC0 == 0xC0 => return Some(i + 2),
            l => i += 1 + usize::from(l),
        }
    }
}

/// Reads the answer to query `id`. `None`: not a well-formed answer to it.
pub fn parse(id: u16, p: &[u8]) -> Option<Answer> {
    if p.len() < 12 || u16::from_be_bytes([p[0], p[1]]) != id || p[2] & 0x80 == 0 {
        return None;
    }
    let rcode = p[3] & 0x0F;
    let qd = u16::from_be_bytes([p[4], p[5]]);
    let an = u16::from_be_bytes([p[6], p[7]]);
    let mut i = 12;
    for _ in 0..qd {
        i = skip_name(p, i)? + 4;
    }
    let mut addresses = Vec::new();
    for _ in 0..an {
        i = skip_name(p, i)?;
        let head = p.get(i..i + 10)?;
        let (rtype, class) = (
            u16::from_be_bytes([head[0], head[1]]),
            u16::from_be_bytes([head[2], head[3]]),
        );
        let len = usize::from(u16::from_be_bytes([head[8], head[9]]));
        let data = p.get(i + 10..i + 10 + len)?;
        if rtype == 1 && class == 1 && len == 4 {
            addresses.push(Ipv4Addr::new(data[0], data[1], data[2], data[3]));
        }
        i += 10 + len;
    }
    Some(Answer { rcode, addresses })
}

/// Asks `server:53` for `name` (A), from `source` (the gateway itself: dnsmasq answers on
/// the guest NIC's addresses only), within `limit`. Blocking.
pub fn ask(server: Ipv4Addr, name: &str, limit: Duration) -> Result<Answer, String> {
    let id = (std::process::id() as u16) ^ (crate::alerts::now_millis() as u16);
    let q = query(id, name).ok_or_else(|| format!("{name:?} is not a DNS name"))?;
    let sock = UdpSocket::bind(SocketAddr::from((server, 0)))
        .or_else(|_| UdpSocket::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))))
        .map_err(|e| format!("udp socket: {e}"))?;
    sock.set_read_timeout(Some(limit))
        .map_err(|e| format!("udp socket: {e}"))?;
    sock.send_to(&q, SocketAddr::from((server, 53)))
        .map_err(|e| format!("query to {server}: {e}"))?;
    let mut buf = [0u8; 1500];
    let deadline = std::time::Instant::now() + limit;
    loop {
        let (n, from) = sock
            .recv_from(&mut buf)
            .map_err(|e| format!("no answer from {server}:53 within {limit:?} ({e})"))?;
        if from.ip() == server {
            if let Some(a) = parse(id, &buf[..n]) {
                return Ok(a);
            }
        }
        if std::time::Instant::now() >= deadline {
            return Err(format!("no answer from {server}:53 within {limit:?}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_and_a_compressed_answer() {
        let q = query(0x1234, "vm-1.m.test").unwrap();
        assert_eq!(&q[12..17], b"\x04vm-1");
        assert!(query(1, "a..b").is_none());
        // The answer dnsmasq sends: the question, then one A record pointing at it (0xC00C).
        let mut a = q.clone();
        a[2] = 0x85;
        a[3] = 0x80;
        a[7] = 1;
        a.extend_from_slice(&[0xC0, 0x0C, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 10, 1, 0, 23]);
        let got = parse(0x1234, &a).unwrap();
        assert_eq!(got.rcode, 0);
        assert_eq!(got.addresses, [Ipv4Addr::new(10, 1, 0, 23)]);
        assert!(parse(0x9999, &a).is_none(), "another query's answer");
        assert!(parse(0x1234, &a[..a.len() - 2]).is_none(), "truncated");
    }
}
