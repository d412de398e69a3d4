//! What the collector reads from the daemons (charon, FRR, haproxy) at each refresh: which of
//! them the committed state asks for ([`Wants`], set by the engine after each replay and push
//! through [`configure`], a lock held for a copy), where they answer ([`Sources`]), and one
//! concurrent read of them all ([`read`]), each call under its own deadline and the whole
//! under [`READ_LIMIT`]. A daemon that does not answer leaves its families out of this
//! snapshot (logged at debug level); the rest is served.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{LazyLock, RwLock};
use std::time::Duration;

use prometheus_client::registry::Registry;

use super::{lb, routing, tunnels};
use crate::concern::ospf::vtysh::Vtysh;
use crate::state::DesiredState;

/// The whole daemon read gets this long (each call has a shorter deadline of its own).
pub const READ_LIMIT: Duration = Duration::from_secs(10);

/// What the committed state asks to be read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Wants {
    /// Site-to-site connections: charon's name and the peer gateway.
    pub site_to_site: Vec<(String, Ipv4Addr)>,
    pub remote_access: bool,
    pub ospf: bool,
    pub bgp: bool,
    pub lb: bool,
}

impl Wants {
    pub fn of(s: &DesiredState) -> Wants {
        Wants {
            site_to_site: s
                .vpn
                .site_to_site
                .iter()
                .map(|c| (vr_vpn::vici::conn_name(c), c.peer_gateway))
                .collect(),
            remote_access: s.vpn.remote_access.is_some(),
            ospf: s.ospf.is_some(),
            bgp: s.bgp.is_some(),
            lb: !s.lb.listeners.is_empty(),
        }
    }

    fn vpn(&self) -> bool {
        !self.site_to_site.is_empty() || self.remote_access
    }
}

static WANTS: LazyLock<RwLock<Wants>> = LazyLock::new(RwLock::default);

/// Records what the committed state asks the collector to read (after a replay or a push).
pub fn configure(state: &DesiredState) {
    let w = Wants::of(state);
    let mut cur = WANTS.write().unwrap_or_else(|p| p.into_inner());
    if *cur != w {
        *cur = w;
    }
}

fn wants() -> Wants {
    WANTS.read().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Where the daemons answer.
#[derive(Debug, Clone)]
pub struct Sources {
    pub vici_socket: PathBuf,
    pub vty: Vtysh,
    pub haproxy_admin: PathBuf,
}

/// The daemons as last read; `None`: not asked for by the state, or no answer.
#[derive(Debug, Default)]
pub struct Daemons {
    pub tunnels: Option<Vec<tunnels::Tunnel>>,
    pub ospf: Option<routing::ByState>,
    pub bgp: Option<routing::ByState>,
    pub lb: Option<lb::Backends>,
}

fn kept<T, E: std::fmt::Display>(what: &str, r: Option<Result<T, E>>) -> Option<T> {
    match r? {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::debug!("metrics: {what}: {e}");
            None
        }
    }
}

/// Reads what the state asks for, concurrently.
pub async fn read(src: &Sources) -> Daemons {
    let w = wants();
    let vpn = async {
        if w.vpn() {
            Some(tunnels::read(&src.vici_socket, &w.site_to_site).await)
        } else {
            None
        }
    };
    let ospf = async {
        if w.ospf {
            Some(routing::read_ospf(&src.vty).await)
        } else {
            None
        }
    };
    let bgp = async {
        if w.bgp {
            Some(routing::read_bgp(&src.vty).await)
        } else {
            None
        }
    };
    let lb = async {
        if w.lb {
            Some(lb::read(&src.haproxy_admin).await)
        } else {
            None
        }
    };
    let all = async {
        let (t, o, b, l) = tokio::join!(vpn, ospf, bgp, lb);
        Daemons {
            tunnels: kept("tunnels", t),
            ospf: kept("ospf neighbours", o),
            bgp: kept("bgp neighbours", b),
            lb: kept("load balancer", l),
        }
    };
    match tokio::time::timeout(READ_LIMIT, all).await {
        Ok(d) => d,
        Err(_) => {
            tracing::warn!(
                "metrics: the daemons did not answer within {} s",
                READ_LIMIT.as_secs()
            );
            Daemons::default()
        }
    }
}

impl Daemons {
    pub fn register(&self, reg: &mut Registry) {
        if let Some(t) = &self.tunnels {
            tunnels::register(reg, t);
        }
        if let Some(s) = &self.ospf {
            routing::register(reg, "ospf_neighbors", "OSPF neighbours by state", s);
        }
        if let Some(s) = &self.bgp {
            routing::register(reg, "bgp_neighbors", "BGP neighbours by state", s);
        }
        if let Some(b) = &self.lb {
            lb::register(reg, b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_says_what_to_read() {
        assert_eq!(Wants::of(&DesiredState::default()), Wants::default());
        let s: DesiredState = serde_json::from_value(serde_json::json!({
            "vpn": {"site_to_site": [{"local_public_ip": "192.0.2.10", "local_cidrs": ["10.1.1.0/24"],
                "peer_gateway": "203.0.113.5", "peer_cidrs": ["10.2.0.0/24"], "psk": "k",
                "ike_policy": "aes128-sha1;modp1536", "esp_policy": "aes128-sha1"}]},
            "ospf": {"router_id": "172.16.0.1", "areas": [{"id": "0.0.0.0"}]},
            "lb": {"listeners": [{"public_ip": "192.0.2.10", "public_port": 80, "protocol": "http",
                "backends": [{"ip": "10.1.1.10", "port": 8080}]}]}
        }))
        .unwrap();
        let w = Wants::of(&s);
        assert_eq!(
            w.site_to_site,
            vec![("s2s-203.0.113.5".to_string(), Ipv4Addr::new(203, 0, 113, 5))]
        );
        assert!(w.vpn() && w.ospf && w.lb && !w.bgp && !w.remote_access);
    }
}
