//! One DNS question over UDP, for `dns_check.py`: an A query sent to dnsmasq on a guest
//! gateway, its answer's addresses read back. The packets are written and read by
//! `simple-dns` (a codec with no dependency but `bitflags`; a resolver would choose its own
//! servers, source address and retries, where the check needs this server, from the gateway,
//! within one deadline).

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use simple_dns::rdata::RData;
use simple_dns::{Name, Packet, PacketFlag, Question, CLASS, TYPE};

/// What the server said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// RCODE: 0 NOERROR, 3 NXDOMAIN, ...
    pub rcode: u8,
    pub addresses: Vec<Ipv4Addr>,
}

/// The query packet for `name`, type A, class IN, recursion desired. `None`: not a DNS name
/// (an empty or over-long label; the codec accepts some of those).
pub fn query(id: u16, name: &str) -> Option<Vec<u8>> {
    let bare = name.trim_end_matches('.');
    if bare.split('.').any(|l| l.is_empty() || l.len() > 63) {
        return None;
    }
    let mut p = Packet::new_query(id);
    p.set_flags(PacketFlag::RECURSION_DESIRED);
    p.questions.push(Question::new(
        Name::new(bare).ok()?,
        TYPE::A.into(),
        CLASS::IN.into(),
        false,
    ));
    p.build_bytes_vec().ok()
}

/// Reads the answer to query `id`. `None`: not a well-formed answer to it.
pub fn parse(id: u16, p: &[u8]) -> Option<Answer> {
    let m = Packet::parse(p).ok()?;
    if m.id() != id || !m.has_flags(PacketFlag::RESPONSE) {
        return None;
    }
    let addresses = m
        .answers
        .iter()
        .filter(|r| r.class == CLASS::IN)
        .filter_map(|r| match &r.rdata {
            RData::A(a) => Some(Ipv4Addr::from(a.address)),
            _ => None,
        })
        .collect();
    Some(Answer {
        rcode: m.rcode() as u8,
        addresses,
    })
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
