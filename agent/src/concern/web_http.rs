//! The HTTP edge of the metadata service and the password server: hyper listeners on the
//! agent's own runtime. Answers come from the pure cores in `vr_guest::web`; this file only
//! accepts, bounds and times out connections, and reads the tables through a snapshot (the
//! metadata table is an `Arc` swapped under a lock held for a pointer copy), so serving never
//! waits for a push and a push never waits for a slow client.
//!
//! Bounds: at most [`MAX_CONNECTIONS`] connections at once over all listeners and
//! [`MAX_PER_SOURCE`] from one address (more are closed at once: one guest cannot starve the
//! others), request heads of at most 8 KiB (hyper's smallest buffer), 10 s to send
//! the head, 30 s per connection in all. Request bodies are never read.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Semaphore};
use vr_guest::web::{metadata_answer, password_answer, Answer, MetaTable, PasswordRequest};
use vr_guest::web_plan::{Listener, Service};

use super::web_book::PasswordBook;

/// Connections served at once, over every listener.
pub const MAX_CONNECTIONS: usize = 256;
/// Connections served at once from one source address.
pub const MAX_PER_SOURCE: usize = 16;
/// Time a client has to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a connection may last in all.
const CONN_TIMEOUT: Duration = Duration::from_secs(30);

/// What the listeners share with the concern that feeds them.
#[derive(Debug)]
pub struct Shared {
    pub meta: RwLock<Arc<MetaTable>>,
    pub book: Mutex<PasswordBook>,
    /// Acknowledgements (address, serial) for the run loop, which drops them from the state.
    pub acks: Mutex<Option<mpsc::UnboundedSender<(Ipv4Addr, u64)>>>,
    conns: Arc<Semaphore>,
    per_source: Arc<Mutex<HashMap<Ipv4Addr, usize>>>,
}

/// One connection's place under both limits; given back when dropped.
struct Slot {
    _global: tokio::sync::OwnedSemaphorePermit,
    src: Ipv4Addr,
    per_source: Arc<Mutex<HashMap<Ipv4Addr, usize>>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut m = self.per_source.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.src) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.src);
            }
        }
    }
}

impl Shared {
    pub fn new(book: PasswordBook) -> Shared {
        Shared {
            meta: RwLock::new(Arc::new(MetaTable::default())),
            book: Mutex::new(book),
            acks: Mutex::new(None),
            conns: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
            per_source: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// A place for a connection from `src`, if both limits allow one.
    fn slot(&self, src: Ipv4Addr) -> Option<Slot> {
        let global = self.conns.clone().try_acquire_owned().ok()?;
        let mut m = self.per_source.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(src).or_insert(0);
        if *n >= MAX_PER_SOURCE {
            return None;
        }
        *n += 1;
        Some(Slot {
            _global: global,
            src,
            per_source: self.per_source.clone(),
        })
    }

    fn meta(&self) -> Arc<MetaTable> {
        self.meta.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Binds the listener's socket (`SO_REUSEADDR`: a restarted agent binds again at once).
pub async fn bind(l: &Listener) -> std::io::Result<TcpListener> {
    TcpListener::bind(SocketAddr::new(IpAddr::V4(l.address), l.service.port())).await
}

/// Serves `socket` until the returned task is aborted.
pub fn spawn(
    socket: TcpListener,
    service: Service,
    shared: Arc<Shared>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let (stream, peer) = match socket.accept().await {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: wait instead of spinning.
                    tracing::warn!("{} listener: accept: {e}", service.name());
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let src = match peer.ip() {
                IpAddr::V4(a) => a,
                IpAddr::V6(a) => match a.to_ipv4_mapped() {
                    Some(a) => a,
                    None => continue,
                },
            };
            let Some(slot) = shared.slot(src) else {
                tracing::debug!(
                    "{} listener: connection limit reached ({src})",
                    service.name()
                );
                continue;
            };
            let shared = shared.clone();
            tokio::spawn(async move {
                let _slot = slot;
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let resp = respond(&shared, service, src, &req);
                    async move { Ok::<_, Infallible>(resp) }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEAD_TIMEOUT)
                    .max_buf_size(8192)
                    // CloudStack's password server speaks HTTP/1.0 and closes after each answer.
                    .keep_alive(service == Service::Metadata)
                    .serve_connection(TokioIo::new(stream), svc);
                match tokio::time::timeout(CONN_TIMEOUT, conn).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::debug!("{} from {src}: {e}", service.name()),
                    Err(_) => {
                        tracing::debug!("{} from {src}: connection timed out", service.name())
                    }
                }
            });
        }
    })
}

fn respond(
    shared: &Shared,
    service: Service,
    src: Ipv4Addr,
    req: &Request<Incoming>,
) -> Response<Full<Bytes>> {
    let method = req.method().as_str();
    match service {
        Service::Metadata => {
            let table = shared.meta();
            let a = metadata_answer(&table, src, method, req.uri().path());
            tracing::debug!(
                status = a.status,
                "metadata: {method} {} from {src}",
                req.uri().path()
            );
            build(a, None)
        }
        Service::Password => {
            let kind =
                PasswordRequest::parse(req.headers().get("domu_request").map(|v| v.as_bytes()));
            let mut book = shared.book.lock().unwrap_or_else(|p| p.into_inner());
            let (a, ack) = password_answer(book.pending(src), src, method, kind);
            if let Some((ip, serial)) = ack {
                match book.acknowledge(ip, serial) {
                    Ok(()) => {
                        tracing::info!("password of {ip} acknowledged by the guest; forgotten");
                        if let Some(tx) = shared
                            .acks
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .as_ref()
                        {
                            let _ = tx.send((ip, serial));
                        }
                    }
                    Err(e) => {
                        tracing::error!("password of {ip} acknowledged but not recorded: {e}")
                    }
                }
            }
            drop(book);
            // The kind of request only: the body may be a password.
            tracing::debug!("password server: {kind:?} from {src}");
            build(a, Some("CloudStack Password Server"))
        }
    }
}

fn build(a: Answer, server: Option<&'static str>) -> Response<Full<Bytes>> {
    let mut b = Response::builder()
        .status(a.status)
        .header("content-type", "text/plain");
    if let Some(s) = server {
        b = b.header("server", s);
    }
    b.body(Full::new(Bytes::from(a.body)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}
