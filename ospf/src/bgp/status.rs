//! BGP status as FRR reports it (`show bgp summary json`: one object per address family, each
//! with its `peers`), typed for `vr-agent show bgp`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One neighbor in one address family.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    /// Filled from the key of FRR's `peers` object.
    #[serde(default)]
    pub address: String,
    /// `ipv4Unicast`, `ipv6Unicast`.
    #[serde(default)]
    pub family: String,
    #[serde(default, rename(deserialize = "remoteAs"))]
    pub remote_as: u32,
    /// `Established`, `Active`, `Connect`, `Idle`, ...
    #[serde(default)]
    pub state: String,
    /// Milliseconds since the session came up (0 when down).
    #[serde(default, rename(deserialize = "peerUptimeMsec"))]
    pub uptime_msec: u64,
    #[serde(default, rename(deserialize = "peerUptime"))]
    pub uptime: String,
    #[serde(default, rename(deserialize = "pfxRcd"))]
    pub prefixes_received: u64,
    #[serde(default, rename(deserialize = "pfxSnt"))]
    pub prefixes_sent: u64,
    /// How many times the session reached Established (a reset adds one).
    #[serde(default, rename(deserialize = "connectionsEstablished"))]
    pub established: u64,
    #[serde(default, rename(deserialize = "connectionsDropped"))]
    pub dropped: u64,
}

/// Parses `show bgp summary json` (`{}` when bgpd has no instance).
pub fn parse_summary(json: &str) -> Result<Vec<Peer>, serde_json::Error> {
    #[derive(Deserialize)]
    struct Family {
        #[serde(default)]
        peers: BTreeMap<String, Peer>,
    }
    let top: BTreeMap<String, serde_json::Value> = serde_json::from_str(json)?;
    let mut out = Vec::new();
    for (family, v) in top {
        // Only the address-family objects carry peers.
        let Ok(f) = serde_json::from_value::<Family>(v) else {
            continue;
        };
        for (address, mut p) in f.peers {
            p.address = address;
            p.family = family.clone();
            out.push(p);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_of_two_families() {
        let j = r#"{"ipv4Unicast":{"routerId":"192.0.2.1","as":65000,"peers":{"192.0.2.2":{"remoteAs":65101,"peerUptime":"00:01:02","peerUptimeMsec":62000,"pfxRcd":1,"pfxSnt":2,"state":"Established","connectionsEstablished":1,"connectionsDropped":0}}},
                   "ipv6Unicast":{"peers":{"2001:db8::2":{"remoteAs":65102,"state":"Active","peerUptimeMsec":0}}}}"#;
        let p = parse_summary(j).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(
            (
                p[0].address.as_str(),
                p[0].family.as_str(),
                p[0].state.as_str()
            ),
            ("192.0.2.2", "ipv4Unicast", "Established")
        );
        assert_eq!(
            (p[0].prefixes_sent, p[0].prefixes_received, p[0].established),
            (2, 1, 1)
        );
        assert_eq!(p[1].remote_as, 65102);
        assert!(parse_summary("{}").unwrap().is_empty());
    }
}
