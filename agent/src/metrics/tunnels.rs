//! IPsec tunnels as charon reports them over VICI (`list-sas`, through the client and the
//! deadlines of [`vr_vpn::client`]): whether each site-to-site connection of the state is up,
//! and the bytes and packets of its CHILD SAs; each connected remote-access client likewise,
//! labelled with its address.
//!
//! A configured site-to-site connection without an established SA shows up 0; one removed
//! from the state has no series. The byte and packet counts are charon's per CHILD SA, summed
//! over the connection's current SAs: a rekey starts new SAs from 0, which Prometheus treats
//! as a counter reset.

use std::net::Ipv4Addr;
use std::path::Path;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use vr_vpn::client::{IkeSa, Vici};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TunnelLabels {
    /// charon's connection name (`s2s-<peer gateway>`, `ra-ikev2`, `ra-ikev1`).
    pub connection: String,
    /// The peer gateway (site-to-site) or the client's address (remote access).
    pub peer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DirectionLabels {
    pub connection: String,
    pub peer: String,
    /// `in` (decrypted from the peer) or `out` (encrypted to it).
    pub direction: String,
}

/// One tunnel as read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tunnel {
    pub connection: String,
    pub peer: String,
    pub up: bool,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub packets_in: u64,
    pub packets_out: u64,
}

/// At most this many SAs are turned into series (remote-access clients are bounded by the
/// pool, but the listing is charon's).
pub const MAX_TUNNELS: usize = 10_000;

fn num(v: &Option<String>) -> u64 {
    v.as_deref().and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// Adds `sa`'s installed CHILD SAs to `t`; up when the IKE SA is established and carries one.
fn add_sa(t: &mut Tunnel, sa: &IkeSa) {
    let mut installed = false;
    for c in sa.child_sas.values() {
        if c.state != "INSTALLED" {
            continue;
        }
        installed = true;
        t.bytes_in += num(&c.bytes_in);
        t.bytes_out += num(&c.bytes_out);
        t.packets_in += num(&c.packets_in);
        t.packets_out += num(&c.packets_out);
    }
    t.up |= sa.state == "ESTABLISHED" && installed;
}

/// Pure: the tunnels of the state (`site_to_site`: connection name and peer gateway) and the
/// remote-access clients, from charon's SAs.
pub fn tunnels(site_to_site: &[(String, Ipv4Addr)], sas: &[(String, IkeSa)]) -> Vec<Tunnel> {
    let mut out: Vec<Tunnel> = site_to_site
        .iter()
        .map(|(conn, peer)| {
            let mut t = Tunnel {
                connection: conn.clone(),
                peer: peer.to_string(),
                ..Tunnel::default()
            };
            for (_, sa) in sas.iter().filter(|(name, _)| name == conn) {
                add_sa(&mut t, sa);
            }
            t
        })
        .collect();
    for (conn, sa) in sas {
        if out.len() >= MAX_TUNNELS {
            break;
        }
        if !vr_vpn::remote::is_remote_conn(conn) {
            continue;
        }
        let peer = sa.remote_host.clone();
        match out
            .iter_mut()
            .find(|t| t.connection == *conn && t.peer == peer)
        {
            Some(t) => add_sa(t, sa),
            None => {
                let mut t = Tunnel {
                    connection: conn.clone(),
                    peer,
                    ..Tunnel::default()
                };
                add_sa(&mut t, sa);
                out.push(t);
            }
        }
    }
    out
}

/// Reads charon's SAs (connect and `list-sas` each under the client's own deadline).
pub async fn read(
    vici: &Path,
    site_to_site: &[(String, Ipv4Addr)],
) -> Result<Vec<Tunnel>, vr_vpn::client::ViciError> {
    let mut v = Vici::connect(vici).await?;
    let sas = v.list_sas_all().await?;
    Ok(tunnels(site_to_site, &sas))
}

/// Adds the tunnel families to `reg`.
pub fn register(reg: &mut Registry, tunnels: &[Tunnel]) {
    let up = Family::<TunnelLabels, Gauge>::default();
    let bytes = Family::<DirectionLabels, Counter>::default();
    let packets = Family::<DirectionLabels, Counter>::default();
    for t in tunnels {
        let l = TunnelLabels {
            connection: t.connection.clone(),
            peer: t.peer.clone(),
        };
        up.get_or_create(&l).set(i64::from(t.up));
        for (dir, b, p) in [
            ("in", t.bytes_in, t.packets_in),
            ("out", t.bytes_out, t.packets_out),
        ] {
            let d = DirectionLabels {
                connection: t.connection.clone(),
                peer: t.peer.clone(),
                direction: dir.into(),
            };
            bytes.get_or_create(&d).inc_by(b);
            packets.get_or_create(&d).inc_by(p);
        }
    }
    reg.register(
        "tunnel_up",
        "1 when the IPsec tunnel has an established IKE SA with an installed CHILD SA",
        up,
    );
    reg.register(
        "tunnel_bytes",
        "Bytes through the tunnel's current CHILD SAs",
        bytes,
    );
    reg.register(
        "tunnel_packets",
        "Packets through the tunnel's current CHILD SAs",
        packets,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(state: &str, host: &str, child: Option<(&str, &str, &str)>) -> IkeSa {
        let mut s = IkeSa {
            state: state.into(),
            remote_host: host.into(),
            ..IkeSa::default()
        };
        if let Some((cs, bin, bout)) = child {
            s.child_sas.insert(
                "c-1".into(),
                vr_vpn::client::ChildSa {
                    state: cs.into(),
                    bytes_in: Some(bin.into()),
                    bytes_out: Some(bout.into()),
                    packets_in: Some("2".into()),
                    packets_out: Some("3".into()),
                    ..Default::default()
                },
            );
        }
        s
    }

    #[test]
    fn configured_tunnels_up_or_down_and_clients_by_address() {
        let wanted = vec![
            ("s2s-203.0.113.5".to_string(), Ipv4Addr::new(203, 0, 113, 5)),
            ("s2s-203.0.113.6".to_string(), Ipv4Addr::new(203, 0, 113, 6)),
        ];
        let sas = vec![
            (
                "s2s-203.0.113.5".to_string(),
                sa(
                    "ESTABLISHED",
                    "203.0.113.5",
                    Some(("INSTALLED", "840", "420")),
                ),
            ),
            (
                "s2s-203.0.113.6".to_string(),
                sa("CONNECTING", "203.0.113.6", None),
            ),
            // Not in the state any more: no series.
            (
                "s2s-203.0.113.7".to_string(),
                sa("ESTABLISHED", "203.0.113.7", Some(("INSTALLED", "1", "1"))),
            ),
            (
                "ra-ikev2".to_string(),
                sa(
                    "ESTABLISHED",
                    "198.51.100.9",
                    Some(("INSTALLED", "10", "20")),
                ),
            ),
        ];
        let t = tunnels(&wanted, &sas);
        assert_eq!(t.len(), 3);
        assert!(t[0].up);
        assert_eq!(
            (t[0].bytes_in, t[0].bytes_out, t[0].packets_out),
            (840, 420, 3)
        );
        assert!(!t[1].up);
        assert_eq!(
            (t[2].connection.as_str(), t[2].peer.as_str()),
            ("ra-ikev2", "198.51.100.9")
        );
        let mut reg = Registry::with_prefix("vr");
        register(&mut reg, &t);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &reg).unwrap();
        assert!(
            text.contains(r#"vr_tunnel_up{connection="s2s-203.0.113.6",peer="203.0.113.6"} 0"#),
            "{text}"
        );
        assert!(
            text.contains(r#"vr_tunnel_bytes_total{connection="s2s-203.0.113.5",peer="203.0.113.5",direction="in"} 840"#),
            "{text}"
        );
        assert!(!text.contains("203.0.113.7"), "{text}");
    }
}
