//! Load-balancer backends up, per listener, from the agent's haproxy (`show stat` on its admin
//! socket, parsed by [`vr_lb::stats`]), under a deadline of its own: a scrape's read must not
//! wait the 10 s the load-balancer concern allows a reload.
//!
//! A server counts as up when haproxy would send it traffic: `UP` (also `UP 1/3`, going down
//! but not yet down) or `no check` (no health check configured, so never taken out).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use vr_lb::stats::{Kind, Row};

use crate::concern::ConcernError;

/// haproxy answers `show stat` in milliseconds.
pub const DEADLINE: Duration = Duration::from_secs(2);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerLabel {
    /// haproxy's proxy name (the listener's `listen` section).
    pub listener: String,
}

/// Per listener: (servers up, servers).
pub type Backends = BTreeMap<String, (u64, u64)>;

fn is_up(status: &str) -> bool {
    status.starts_with("UP") || status == "no check"
}

/// Pure: servers up and in total per proxy.
pub fn backends(rows: &[Row]) -> Backends {
    let mut out = Backends::new();
    for r in rows.iter().filter(|r| r.kind == Kind::Server) {
        let e = out.entry(r.proxy.clone()).or_default();
        e.0 += u64::from(is_up(&r.status));
        e.1 += 1;
    }
    out
}

pub async fn read(admin_socket: &Path) -> Result<Backends, ConcernError> {
    let csv = tokio::time::timeout(DEADLINE, crate::concern::lb::cli(admin_socket, "show stat"))
        .await
        .map_err(|_| {
            ConcernError::Unavailable(format!(
                "{}: no answer to show stat within {} s",
                admin_socket.display(),
                DEADLINE.as_secs()
            ))
        })??;
    Ok(backends(&vr_lb::stats::parse(&csv)))
}

pub fn register(reg: &mut Registry, b: &Backends) {
    let up = Family::<ListenerLabel, Gauge>::default();
    let total = Family::<ListenerLabel, Gauge>::default();
    for (listener, (u, t)) in b {
        let l = ListenerLabel {
            listener: listener.clone(),
        };
        up.get_or_create(&l).set(*u as i64);
        total.get_or_create(&l).set(*t as i64);
    }
    reg.register(
        "lb_backends_up",
        "Servers of a load-balancer listener haproxy sends traffic to",
        up,
    );
    reg.register("lb_backends", "Servers of a load-balancer listener", total);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_up_per_listener() {
        let row = |proxy: &str, kind, status: &str| Row {
            proxy: proxy.into(),
            name: "s".into(),
            kind,
            status: status.into(),
            sessions: 0,
            total_sessions: 0,
            check: String::new(),
            address: String::new(),
        };
        let rows = vec![
            row("lb-a", Kind::Frontend, "OPEN"),
            row("lb-a", Kind::Server, "UP"),
            row("lb-a", Kind::Server, "DOWN"),
            row("lb-a", Kind::Server, "UP 1/3"),
            row("lb-a", Kind::Backend, "UP"),
            row("lb-b", Kind::Server, "no check"),
            row("lb-b", Kind::Server, "MAINT"),
        ];
        let b = backends(&rows);
        assert_eq!(b.get("lb-a"), Some(&(2, 3)));
        assert_eq!(b.get("lb-b"), Some(&(1, 2)));
    }
}
