//! Conntrack over ctnetlink (`netlink-packet-netfilter`): targeted deletes of the flows of
//! removed or changed DNAT mappings. Never a flush: unrelated flows survive every apply.
//!
//! `conntrack -L` is a dump (`IPCTNL_MSG_CT_GET` with `NLM_F_DUMP`); each matching entry is
//! deleted by its original tuple (`IPCTNL_MSG_CT_DELETE`), and ENOENT (already gone) counts as
//! success.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_netfilter::conntrack::{
    ConntrackAttribute, ConntrackMessage, IPTuple, ProtoTuple, Protocol, Tuple,
};
use netlink_packet_netfilter::{NetfilterHeader, NetfilterMessage, NetfilterProtoFamily};
use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};
use vr_nat::revoked::Revoked;
use vr_nat::{NatSection, PortRange};

/// Flows to delete: original destination `dst` (and protocol / port range when given), or
/// original source `src` (outbound flows of a static NAT).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowFilter {
    pub proto: Option<u8>,
    pub dst: Option<Ipv4Addr>,
    pub src: Option<Ipv4Addr>,
    pub dports: Option<PortRange>,
}

impl FlowFilter {
    pub fn matches(&self, e: &Entry) -> bool {
        self.proto.is_none_or(|p| p == e.proto)
            && self.dst.is_none_or(|d| d == e.dst)
            && self.src.is_none_or(|s| s == e.src)
            && self
                .dports
                .is_none_or(|r| e.dport.is_some_and(|p| (r.start..=r.end).contains(&p)))
    }
}

/// As the `conntrack` command an operator would type.
impl fmt::Display for FlowFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("conntrack -D")?;
        if let Some(p) = self.proto {
            write!(
                f,
                " -p {}",
                match p {
                    6 => "tcp".to_string(),
                    17 => "udp".to_string(),
                    n => n.to_string(),
                }
            )?;
        }
        if let Some(s) = self.src {
            write!(f, " --orig-src {s}")?;
        }
        if let Some(d) = self.dst {
            write!(f, " --orig-dst {d}")?;
        }
        if let Some(r) = self.dports {
            write!(f, " --dport {r}")?;
        }
        Ok(())
    }
}

/// The flows a transition of the `nat` section revokes (pure).
pub fn revoked_flows(old: &NatSection, new: &NatSection) -> Vec<FlowFilter> {
    vr_nat::revoked::revoked(old, new)
        .into_iter()
        .flat_map(|r| match r {
            Revoked::PortForward {
                public_ip,
                protocol,
                public_ports,
            } => vec![FlowFilter {
                proto: Some(protocol.number()),
                dst: Some(public_ip),
                src: None,
                dports: Some(public_ports),
            }],
            Revoked::StaticNat {
                public_ip,
                private_ip,
            } => vec![
                FlowFilter {
                    proto: None,
                    dst: Some(public_ip),
                    src: None,
                    dports: None,
                },
                FlowFilter {
                    proto: None,
                    dst: None,
                    src: Some(private_ip),
                    dports: None,
                },
            ],
        })
        .collect()
}

/// One IPv4 conntrack entry's original tuple.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub proto: u8,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
    /// The original tuple as the kernel sent it (used verbatim to delete).
    tuple: Vec<Tuple>,
}

/// Errors of ctnetlink.
#[derive(Debug, thiserror::Error)]
pub enum ConntrackError {
    /// ctnetlink socket: {0}
    #[error("ctnetlink socket: {0}")]
    Socket(std::io::Error),
    /// ctnetlink refused {0}: errno {1}
    #[error("ctnetlink refused {0}: errno {1}")]
    Refused(String, i32),
    /// ctnetlink message: {0}
    #[error("ctnetlink message: {0}")]
    Decode(String),
}

fn proto_number(p: &Protocol) -> u8 {
    match p {
        Protocol::Icmp => 1,
        Protocol::Igmp => 2,
        Protocol::Tcp => 6,
        Protocol::Udp => 17,
        Protocol::Gre => 47,
        Protocol::Sctp => 132,
        Protocol::Other(n) => *n,
        _ => 0,
    }
}

fn entry_of(attrs: &[ConntrackAttribute]) -> Option<Entry> {
    let tuple = attrs.iter().find_map(|a| match a {
        ConntrackAttribute::CtaTupleOrig(t) => Some(t.clone()),
        _ => None,
    })?;
    let (mut src, mut dst, mut proto, mut sport, mut dport) = (None, None, 0, None, None);
    for t in &tuple {
        match t {
            Tuple::Ip(ips) => {
                for ip in ips {
                    match ip {
                        IPTuple::SourceAddress(IpAddr::V4(a)) => src = Some(*a),
                        IPTuple::DestinationAddress(IpAddr::V4(a)) => dst = Some(*a),
                        _ => {}
                    }
                }
            }
            Tuple::Proto(ps) => {
                for p in ps {
                    match p {
                        ProtoTuple::Protocol(pr) => proto = proto_number(pr),
                        ProtoTuple::SourcePort(s) => sport = Some(*s),
                        ProtoTuple::DestinationPort(d) => dport = Some(*d),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Some(Entry {
        proto,
        src: src?,
        dst: dst?,
        sport,
        dport,
        tuple,
    })
}

fn socket() -> Result<Socket, ConntrackError> {
    let mut s = Socket::new(NETLINK_NETFILTER).map_err(ConntrackError::Socket)?;
    s.bind_auto().map_err(ConntrackError::Socket)?;
    s.connect(&SocketAddr::new(0, 0))
        .map_err(ConntrackError::Socket)?;
    Ok(s)
}

fn send(s: &Socket, msg: ConntrackMessage, flags: u16, seq: u32) -> Result<(), ConntrackError> {
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    header.sequence_number = seq;
    let mut nl = NetlinkMessage::new(
        header,
        NetlinkPayload::from(NetfilterMessage::new(
            NetfilterHeader::new(NetfilterProtoFamily::IPv4, 0, 0),
            msg,
        )),
    );
    nl.finalize();
    let mut buf = vec![0; nl.buffer_len()];
    nl.serialize(&mut buf);
    s.send(&buf, 0).map_err(ConntrackError::Socket)?;
    Ok(())
}

/// Reads answers until `Done` (dump) or the ACK (single request), collecting entries.
fn receive(s: &Socket, what: &str) -> Result<Vec<Entry>, ConntrackError> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = s
            .recv(&mut &mut buf[..], 0)
            .map_err(ConntrackError::Socket)?;
        let mut offset = 0;
        while offset < n {
            let msg = NetlinkMessage::<NetfilterMessage>::deserialize(&buf[offset..n])
                .map_err(|e| ConntrackError::Decode(e.to_string()))?;
            let len = msg.header.length as usize;
            match msg.payload {
                NetlinkPayload::Done(_) => return Ok(out),
                NetlinkPayload::Error(e) => {
                    return match e.code {
                        None => Ok(out),
                        // ENOENT: the flow is gone already, which is what a delete wants.
                        Some(c) if c.get() == -libc::ENOENT => Ok(out),
                        Some(c) => Err(ConntrackError::Refused(what.to_string(), -c.get())),
                    };
                }
                NetlinkPayload::InnerMessage(m) => {
                    if let netlink_packet_netfilter::NetfilterMessageInner::Conntrack(
                        ConntrackMessage::New(attrs) | ConntrackMessage::Get(attrs),
                    ) = m.inner
                    {
                        out.extend(entry_of(&attrs));
                    }
                }
                _ => {}
            }
            if len == 0 {
                break;
            }
            offset += len;
        }
    }
}

/// `conntrack -L` (IPv4): every entry's original tuple.
pub fn dump() -> Result<Vec<Entry>, ConntrackError> {
    let s = socket()?;
    send(
        &s,
        ConntrackMessage::Get(Vec::new()),
        NLM_F_REQUEST | NLM_F_DUMP,
        1,
    )?;
    receive(&s, "dump")
}

/// Deletes every entry matching one of `filters`; returns how many were deleted.
pub fn delete_matching(filters: &[FlowFilter]) -> Result<usize, ConntrackError> {
    if filters.is_empty() {
        return Ok(0);
    }
    let victims: Vec<Entry> = dump()?
        .into_iter()
        .filter(|e| filters.iter().any(|f| f.matches(e)))
        .collect();
    let s = socket()?;
    for (i, e) in victims.iter().enumerate() {
        send(
            &s,
            ConntrackMessage::Delete(vec![ConntrackAttribute::CtaTupleOrig(e.tuple.clone())]),
            NLM_F_REQUEST | NLM_F_ACK,
            i as u32 + 2,
        )?;
        receive(
            &s,
            &format!(
                "delete of {} {}:{:?} -> {}:{:?}",
                e.proto, e.src, e.sport, e.dst, e.dport
            ),
        )?;
    }
    Ok(victims.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(proto: u8, src: &str, dst: &str, dport: u16) -> Entry {
        Entry {
            proto,
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            sport: Some(40000),
            dport: Some(dport),
            tuple: Vec::new(),
        }
    }

    #[test]
    fn revoked_forward_matches_exactly_its_flows() {
        let old: NatSection = serde_json::from_str(r#"{"port_forwards":[
            {"public_ip":"192.0.2.11","protocol":"tcp","public_ports":"8000-8001","private_ip":"10.1.1.10","private_ports":"80-81"},
            {"public_ip":"192.0.2.11","protocol":"tcp","public_ports":22,"private_ip":"10.1.1.10","private_ports":22}]}"#).unwrap();
        let new: NatSection = serde_json::from_str(r#"{"port_forwards":[
            {"public_ip":"192.0.2.11","protocol":"tcp","public_ports":22,"private_ip":"10.1.1.10","private_ports":22}]}"#).unwrap();
        let f = revoked_flows(&old, &new);
        assert_eq!(f.len(), 1);
        assert_eq!(
            f[0].to_string(),
            "conntrack -D -p tcp --orig-dst 192.0.2.11 --dport 8000-8001"
        );
        assert!(f[0].matches(&entry(6, "198.51.100.1", "192.0.2.11", 8001)));
        assert!(!f[0].matches(&entry(6, "198.51.100.1", "192.0.2.11", 22)));
        assert!(!f[0].matches(&entry(17, "198.51.100.1", "192.0.2.11", 8000)));
        assert!(revoked_flows(&new, &new).is_empty());
    }

    #[test]
    fn delete_message_round_trips() {
        let tuple = vec![
            Tuple::Ip(vec![
                IPTuple::SourceAddress("198.51.100.1".parse().unwrap()),
                IPTuple::DestinationAddress("192.0.2.11".parse().unwrap()),
            ]),
            Tuple::Proto(vec![
                ProtoTuple::Protocol(Protocol::Tcp),
                ProtoTuple::SourcePort(40000),
                ProtoTuple::DestinationPort(8080),
            ]),
        ];
        let m = NetfilterMessage::new(
            NetfilterHeader::new(NetfilterProtoFamily::IPv4, 0, 0),
            ConntrackMessage::Delete(vec![ConntrackAttribute::CtaTupleOrig(tuple.clone())]),
        );
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_ACK;
        let mut nl = NetlinkMessage::new(header, NetlinkPayload::from(m));
        nl.finalize();
        let mut buf = vec![0; nl.buffer_len()];
        nl.serialize(&mut buf);
        let back = NetlinkMessage::<NetfilterMessage>::deserialize(&buf).unwrap();
        match back.payload {
            NetlinkPayload::InnerMessage(m) => match m.inner {
                netlink_packet_netfilter::NetfilterMessageInner::Conntrack(
                    ConntrackMessage::Delete(attrs),
                ) => {
                    let e = entry_of(&attrs).unwrap();
                    assert_eq!(
                        (e.proto, e.dport, e.dst.to_string()),
                        (6, Some(8080), "192.0.2.11".to_string())
                    );
                }
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
    }
}
