//! What a scrape reads from the system, gathered by a task of its own every refresh interval
//! (netlink dumps of 10,000 element counters and 10,000 rules, then encoding 20,000 series: a
//! scrape must not pay that, and Prometheus scrapes every 15 s or so), on a blocking thread
//! with a deadline.

use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::{watch, Notify};
use vr_nat::rule_stats::{Count, Current};

use super::exposition::Deflated;

/// Default time between two reads (`VR_AGENT_METRICS_REFRESH_MS` overrides it).
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(5);
/// One read gets this long; a slower one is dropped (the last snapshot stays) and logged.
const READ_LIMIT: Duration = Duration::from_secs(20);
/// Lease files larger than this are not counted (memory is bounded on every input path).
const MAX_LEASE_FILE: u64 = 16 << 20;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ForwardLabels {
    pub public_ip: String,
    pub protocol: String,
    pub ports: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StaticLabels {
    /// `in`: to the public address; `out`: from the private one.
    pub direction: String,
    pub address: String,
}

/// The system as last read.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub rules: Option<Current>,
    pub conntrack: Option<(u64, u64)>,
    pub leases: Option<u64>,
    /// Per firewall rule counters ([`super::firewall`]).
    pub firewall: Option<Vec<super::firewall::RuleCount>>,
    /// Tunnels, routing neighbours, load-balancer backends ([`super::daemons`]).
    pub daemons: super::daemons::Daemons,
    pub read_seconds: f64,
}

/// The snapshot's series already in the text format (without the final `# EOF`), encoded once
/// per read by the collector, and deflated once for gzip scrapes ([`super::exposition`]): a
/// scrape references these instead of encoding 20 000 series again or copying megabytes.
#[derive(Debug, Default)]
pub struct Encoded {
    pub text: Bytes,
    pub deflated: Deflated,
}

impl Encoded {
    pub fn of(s: &Snapshot) -> Encoded {
        let mut reg = Registry::with_prefix("vr");
        s.register(&mut reg);
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &reg).is_err() {
            text.clear();
        }
        let text = super::without_eof(text);
        Encoded {
            deflated: Deflated::of(text.as_bytes(), false),
            text: Bytes::from(text),
        }
    }
}

fn counters<L: Clone + std::hash::Hash + Eq>(
    items: impl Iterator<Item = (L, Count)>,
) -> (Family<L, Counter>, Family<L, Counter>) {
    let (packets, bytes) = (Family::default(), Family::default());
    for (l, c) in items {
        Family::<L, Counter>::get_or_create(&packets, &l).inc_by(c.packets);
        Family::<L, Counter>::get_or_create(&bytes, &l).inc_by(c.bytes);
    }
    (packets, bytes)
}

impl Snapshot {
    /// Adds this snapshot's series to `reg`. Families are built afresh from the snapshot, so
    /// a revoked rule's series is simply absent.
    pub fn register(&self, reg: &mut Registry) {
        if let Some(r) = &self.rules {
            let (p, b) = counters(r.forwards.iter().map(|(f, c)| {
                (
                    ForwardLabels {
                        public_ip: f.ip.to_string(),
                        protocol: f.proto_name().into(),
                        ports: f.ports(),
                    },
                    *c,
                )
            }));
            reg.register(
                "port_forward_packets",
                "Packets to a port forward's public address and ports",
                p,
            );
            reg.register(
                "port_forward_bytes",
                "Bytes to a port forward's public address and ports",
                b,
            );
            let dir = |d: &str, v: &Vec<(std::net::Ipv4Addr, Count)>| {
                v.iter()
                    .map(|(a, c)| {
                        (
                            StaticLabels {
                                direction: d.into(),
                                address: a.to_string(),
                            },
                            *c,
                        )
                    })
                    .collect::<Vec<_>>()
            };
            let all = dir("in", &r.static_in)
                .into_iter()
                .chain(dir("out", &r.static_out));
            let (p, b) = counters(all);
            reg.register(
                "static_nat_packets",
                "Packets of a static NAT (in: to its public address, out: from its VM)",
                p,
            );
            reg.register(
                "static_nat_bytes",
                "Bytes of a static NAT (in: to its public address, out: from its VM)",
                b,
            );
        }
        if let Some((count, max)) = self.conntrack {
            gauge(reg, "conntrack_entries", "Conntrack entries", count as i64);
            gauge(reg, "conntrack_max", "nf_conntrack_max", max as i64);
        }
        if let Some(n) = self.leases {
            gauge(reg, "dhcp_leases", "DHCP leases dnsmasq holds", n as i64);
        }
        if let Some(f) = &self.firewall {
            super::firewall::register(reg, f);
        }
        self.daemons.register(reg);
        let g: Gauge<f64, AtomicU64> = Gauge::default();
        g.set(self.read_seconds);
        reg.register(
            "metrics_read_seconds",
            "Time the last read of the system for metrics took",
            g,
        );
    }
}

fn gauge(reg: &mut Registry, name: &str, help: &str, v: i64) {
    let g: Gauge = Gauge::default();
    g.set(v);
    reg.register(name, help, g);
}

fn proc_u64(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The agent's resident memory and open file descriptors, read at scrape time.
pub fn register_process(reg: &mut Registry) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let rss_kb: Option<i64> = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok());
    if let Some(kb) = rss_kb {
        gauge(
            reg,
            "agent_resident_memory_bytes",
            "The agent's resident set size",
            kb * 1024,
        );
    }
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        gauge(
            reg,
            "agent_open_fds",
            "File descriptors the agent has open",
            dir.count() as i64,
        );
    }
}

/// Counts the lease lines of dnsmasq's lease file (`None`: no file).
fn leases(path: &std::path::Path) -> Option<u64> {
    let meta = std::fs::metadata(path).ok()?;
    if meta.len() > MAX_LEASE_FILE {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    // A line per lease; `duid ...` is dnsmasq's own identity, not a lease.
    Some(
        text.lines()
            .filter(|l| !l.is_empty() && !l.starts_with("duid "))
            .count() as u64,
    )
}

/// One read of everything a scrape shows from the system.
pub fn read(lease_file: &std::path::Path) -> Snapshot {
    let t = Instant::now();
    // Netlink dumps of the counting sets, not `nft -j` (0.3 s of nft at 10,000 elements).
    let rules = match vr_nat::rule_counts::read() {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!("metrics: rule counters: {e}");
            None
        }
    };
    let conntrack = proc_u64("/proc/sys/net/netfilter/nf_conntrack_count")
        .zip(proc_u64("/proc/sys/net/netfilter/nf_conntrack_max"));
    Snapshot {
        rules,
        conntrack,
        leases: leases(lease_file),
        firewall: super::firewall::read(),
        daemons: Default::default(),
        read_seconds: t.elapsed().as_secs_f64(),
    }
}

/// How often the collector reads.
pub fn refresh_interval() -> Duration {
    std::env::var("VR_AGENT_METRICS_REFRESH_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis)
        .unwrap_or(DEFAULT_REFRESH)
}

/// The collector pauses when nobody has scraped for this long, and drops its snapshot: most
/// routers are never scraped, and a snapshot at 10,000 rules is 3-4 MB the agent would hold
/// and re-read every few seconds for nobody.
pub const IDLE_AFTER: Duration = Duration::from_secs(600);

/// The collector and the HTTP edge's meeting point: the latest snapshot (encoded), when a
/// scrape last came, and the bell a scrape rings to wake a paused collector.
#[derive(Debug)]
pub struct Collector {
    snapshot: watch::Sender<Option<Arc<Encoded>>>,
    last_scrape: Mutex<Option<Instant>>,
    wake: Notify,
}

/// Shared by the collector task and every connection.
pub type Shared = Arc<Collector>;

impl Collector {
    fn scraped_within(&self, d: Duration) -> bool {
        let last = *self.last_scrape.lock().unwrap_or_else(|p| p.into_inner());
        last.is_some_and(|t| t.elapsed() < d)
    }

    /// The latest snapshot for a scrape. A paused collector is woken and its first read waited
    /// for (within `limit`); `None`: nothing read in time.
    pub async fn for_scrape(&self, limit: Duration) -> Option<Arc<Encoded>> {
        *self.last_scrape.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        let mut rx = self.snapshot.subscribe();
        if let Some(s) = rx.borrow_and_update().clone() {
            return Some(s);
        }
        self.wake.notify_one();
        let fresh = match tokio::time::timeout(limit, rx.wait_for(Option::is_some)).await {
            Ok(Ok(fresh)) => fresh.clone(),
            _ => None,
        };
        fresh
    }
}

/// Spawns the collector. It sleeps until a scrape comes, then reads at once and every refresh
/// interval while scrapes keep coming; after [`IDLE_AFTER`] without one it drops its snapshot
/// and sleeps again. The kernel and files are read on a blocking thread, the daemons
/// ([`super::daemons`]) concurrently on the runtime, each under its own deadline; the snapshot
/// is then encoded on a blocking thread.
pub fn spawn(lease_file: PathBuf, sources: super::daemons::Sources) -> Shared {
    let shared = Arc::new(Collector {
        snapshot: watch::channel(None).0,
        last_scrape: Mutex::new(None),
        wake: Notify::new(),
    });
    let c = shared.clone();
    let every = refresh_interval();
    tokio::spawn(async move {
        loop {
            if !c.scraped_within(IDLE_AFTER) {
                if c.snapshot.send_replace(None).is_some() {
                    tracing::info!(
                        "metrics: not scraped for {} s; reading paused until the next scrape",
                        IDLE_AFTER.as_secs()
                    );
                    crate::memory::release_free();
                }
                c.wake.notified().await;
                continue;
            }
            let file = lease_file.clone();
            let t = Instant::now();
            let (kernel, daemons) = tokio::join!(
                tokio::time::timeout(READ_LIMIT, tokio::task::spawn_blocking(move || read(&file))),
                super::daemons::read(&sources)
            );
            let read = match kernel {
                Ok(Ok(mut snap)) => {
                    snap.daemons = daemons;
                    snap.read_seconds = t.elapsed().as_secs_f64();
                    Ok(tokio::task::spawn_blocking(move || Encoded::of(&snap)).await)
                }
                Ok(Err(e)) => Ok(Err(e)),
                Err(e) => Err(e),
            };
            match read {
                Ok(Ok(s)) => {
                    c.snapshot.send_replace(Some(Arc::new(s)));
                }
                Ok(Err(e)) => tracing::warn!("metrics read: {e}"),
                Err(_) => tracing::warn!(
                    "metrics read took over {} s; serving the previous one",
                    READ_LIMIT.as_secs()
                ),
            }
            tokio::time::sleep(every).await;
        }
    });
    shared
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The collector reads nothing until a scrape comes; that scrape wakes it and is answered
    /// with its first read. (The system read here is the test host's: no agent table, no
    /// daemon sockets, which reads as absent.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_only_once_somebody_scrapes() {
        let dir = tempfile::tempdir().unwrap();
        let sources = super::super::daemons::Sources {
            vici_socket: dir.path().join("vici"),
            vty: crate::concern::ospf::vtysh::Vtysh::new(Some(dir.path().to_path_buf())),
            haproxy_admin: dir.path().join("haproxy.sock"),
        };
        let c = spawn(dir.path().join("leases"), sources);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(c.snapshot.borrow().is_none(), "read before any scrape");
        let snap = c.for_scrape(Duration::from_secs(10)).await;
        let text = String::from_utf8_lossy(&snap.expect("a first read").text).into_owned();
        assert!(text.contains("vr_metrics_read_seconds"), "{text}");
        // Scraped just now: the next scrape is served the same snapshot without waiting.
        assert!(c.scraped_within(Duration::from_secs(5)));
        assert!(c.for_scrape(Duration::from_millis(1)).await.is_some());
    }
}
