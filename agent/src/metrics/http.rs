//! The metrics endpoint: `GET /metrics` on the control address (port 9100 by default,
//! `--metrics-listen ADDR:PORT`, `off`), a hyper listener on the agent's runtime. The
//! listener follows the committed state: it binds when a push brings the control NIC and
//! moves when its address changes, without a restart.
//!
//! The nftables input chain accepts the port from the control NIC only (rule "metrics from the
//! control network only"); from public and guest NICs it meets the final drop, so binding the
//! control address and the firewall both keep the endpoint off those networks.
//!
//! Bounds: [`MAX_CONNECTIONS`] connections at once, 8 KiB request heads read within 10 s,
//! 30 s per connection; the live part of each exposition is encoded on a blocking thread within
//! [`ENCODE_LIMIT`], the rest is the collector's, sent as is or gzip'd once per read
//! ([`exposition`]).

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::StreamBody;
use hyper::body::Frame;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use super::{collect, exposition};
use crate::config::{Config, MetricsListen};
use crate::state::{DesiredState, InterfaceRole};

pub const MAX_CONNECTIONS: usize = 16;
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
const CONN_TIMEOUT: Duration = Duration::from_secs(30);
/// An exposition not read (a paused collector's first read) or encoded within this time is
/// answered 503.
const ENCODE_LIMIT: Duration = Duration::from_secs(5);
/// A bind that fails (the control address not there yet) is tried again after this.
const BIND_RETRY: Duration = Duration::from_secs(5);
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Where to listen: the configured address, or the first address of the control NIC of the
/// committed state at the default port (`None`: off, no control NIC, or a configured address
/// that the state puts on a public or guest NIC: metrics are never served there).
pub fn address(cfg: &Config, state: &DesiredState) -> Option<SocketAddr> {
    match cfg.metrics_listen {
        MetricsListen::Off => None,
        MetricsListen::At(a) => {
            let exposed = state
                .interfaces
                .iter()
                .filter(|i| matches!(i.role, InterfaceRole::Public | InterfaceRole::Guest))
                .flat_map(|i| i.addresses.iter())
                .any(|n| IpAddr::V4(n.addr()) == a.ip());
            if exposed {
                tracing::error!(
                    %a,
                    "metrics-listen is an address of a public or guest NIC; not serving there"
                );
                return None;
            }
            Some(a)
        }
        MetricsListen::Control(port) => state
            .interfaces
            .iter()
            .filter(|i| i.role == InterfaceRole::Control)
            .flat_map(|i| i.addresses.iter())
            .map(|a| SocketAddr::new(IpAddr::V4(a.addr()), port))
            .next(),
    }
}

/// The address the listener should hold now (see [`follow`]).
static WANTED: LazyLock<watch::Sender<Option<SocketAddr>>> =
    LazyLock::new(|| watch::channel(None).0);

/// Points the listener at the address `state` calls for (after the replay and each push): a
/// control NIC pushed after start, or a changed control address, moves the endpoint there
/// without a restart. Costs the push loop one comparison.
pub fn follow(cfg: &Config, state: &DesiredState) {
    let want = address(cfg, state);
    WANTED.send_if_modified(|cur| {
        if *cur == want {
            return false;
        }
        *cur = want;
        true
    });
}

/// Starts the collector and the listener task, which binds wherever [`follow`] points it
/// (nothing while there is no address) and moves when that changes.
pub fn start(cfg: &Config, state: &DesiredState) {
    if cfg.metrics_listen == MetricsListen::Off {
        return;
    }
    follow(cfg, state);
    if WANTED.borrow().is_none() {
        tracing::warn!(
            "metrics: no control address in the state and no metrics-listen set; serving once a push brings one"
        );
    }
    let leases = crate::concern::dhcp::paths(&cfg.run_dir, &cfg.state_dir).leases;
    let sources = super::daemons::Sources {
        vici_socket: cfg.vici_socket.clone(),
        vty: crate::concern::ospf::vtysh::Vtysh::new(cfg.frr_vty_dir.clone()),
        haproxy_admin: crate::concern::lb::paths(&cfg.run_dir).admin_socket(),
    };
    let snap = collect::spawn(leases, sources);
    let mut rx = WANTED.subscribe();
    tokio::spawn(async move {
        loop {
            let Some(addr) = *rx.borrow_and_update() else {
                if rx.changed().await.is_err() {
                    return;
                }
                continue;
            };
            let socket = match TcpListener::bind(addr).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("metrics: cannot bind {addr}: {e}; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(BIND_RETRY) => {}
                        r = rx.changed() => if r.is_err() { return },
                    }
                    continue;
                }
            };
            tracing::info!(%addr, "metrics served");
            // Serving stops (and the socket closes) when the wanted address changes.
            tokio::select! {
                _ = serve(socket, snap.clone()) => {}
                r = rx.changed() => {
                    if r.is_err() {
                        return;
                    }
                    tracing::info!(from = %addr, "metrics: the control address changed; moving");
                }
            }
        }
    });
}

async fn serve(socket: TcpListener, snap: collect::Shared) {
    let conns = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, peer) = match socket.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!("metrics listener: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = conns.clone().try_acquire_owned() else {
            tracing::debug!("metrics: connection limit reached ({peer})");
            continue;
        };
        let snap = snap.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let snap = snap.clone();
                async move { Ok::<_, Infallible>(respond(&snap, &req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEAD_TIMEOUT)
                .max_buf_size(8192)
                .serve_connection(TokioIo::new(stream), svc);
            if let Ok(Err(e)) = tokio::time::timeout(CONN_TIMEOUT, conn).await {
                tracing::debug!("metrics from {peer}: {e}");
            }
        });
    }
}

/// A response body: parts sent one after the other, each a `Bytes` (the snapshot's is shared
/// with the collector, never copied).
type Body = StreamBody<futures::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>;

fn body(parts: Vec<Bytes>) -> Body {
    let frames: Vec<_> = parts.into_iter().map(|b| Ok(Frame::data(b))).collect();
    StreamBody::new(futures::stream::iter(frames))
}

fn answer(status: u16, content_type: &str, text: &'static str) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(body(vec![Bytes::from_static(text.as_bytes())]))
        .unwrap_or_else(|_| Response::new(body(vec![])))
}

async fn respond(snap: &collect::Shared, req: &Request<Incoming>) -> Response<Body> {
    if req.uri().path() != "/metrics" {
        return answer(404, "text/plain", "try /metrics\n");
    }
    if req.method() != hyper::Method::GET && req.method() != hyper::Method::HEAD {
        return answer(405, "text/plain", "GET only\n");
    }
    let gzip = req
        .headers()
        .get_all(hyper::header::ACCEPT_ENCODING)
        .iter()
        .any(|v| v.to_str().is_ok_and(exposition::takes_gzip));
    // A paused collector (nobody scraped for a while) reads now: this scrape waits for it.
    let Some(s) = snap.for_scrape(ENCODE_LIMIT).await else {
        return answer(503, "text/plain", "metrics not ready\n");
    };
    // The live series are a few KiB; the snapshot's parts are referenced, not copied.
    let parts = tokio::time::timeout(
        ENCODE_LIMIT,
        tokio::task::spawn_blocking(move || {
            let live = super::render_live();
            if gzip {
                exposition::gzip(live.as_bytes(), &s.deflated)
            } else {
                vec![
                    Bytes::from(live),
                    s.text.clone(),
                    Bytes::from_static(exposition::EOF),
                ]
            }
        }),
    )
    .await;
    let Ok(Ok(parts)) = parts else {
        return answer(503, "text/plain", "metrics not ready\n");
    };
    let length: usize = parts.iter().map(Bytes::len).sum();
    let mut r = Response::builder()
        .status(200)
        .header("content-type", CONTENT_TYPE)
        .header("content-length", length)
        .header("vary", "accept-encoding");
    if gzip {
        r = r.header("content-encoding", "gzip");
    }
    r.body(body(parts))
        .unwrap_or_else(|_| Response::new(body(vec![])))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Overrides;

    #[test]
    fn the_control_address_and_never_a_public_or_guest_one() {
        let mut cfg = Config::resolve(Overrides {
            config: Some("/dev/null".into()),
            ..Default::default()
        })
        .unwrap();
        let state: DesiredState = serde_json::from_value(serde_json::json!({"interfaces": [
            {"device": "eth0", "role": "guest", "addresses": ["10.1.0.1/24"]},
            {"device": "eth1", "role": "control", "addresses": ["169.254.0.5/16"]},
            {"device": "eth2", "role": "public", "addresses": ["192.0.2.10/24"]}]}))
        .unwrap();
        cfg.metrics_listen = MetricsListen::Control(9100);
        assert_eq!(
            address(&cfg, &state),
            Some("169.254.0.5:9100".parse().unwrap())
        );
        assert_eq!(address(&cfg, &DesiredState::default()), None);
        for exposed in ["192.0.2.10:9100", "10.1.0.1:9100"] {
            cfg.metrics_listen = MetricsListen::At(exposed.parse().unwrap());
            assert_eq!(address(&cfg, &state), None, "{exposed}");
        }
        cfg.metrics_listen = MetricsListen::At("127.0.0.1:9100".parse().unwrap());
        assert!(address(&cfg, &state).is_some());
        cfg.metrics_listen = MetricsListen::Off;
        assert_eq!(address(&cfg, &state), None);
    }
}
