//! Prometheus metrics (`prometheus-client`), served on the control address by [`http`].
//!
//! Two kinds of series:
//! - live ones the agent counts as things happen (pushes and their duration by concern, the
//!   replay's duration, self-heal repairs, daemon starts): atomics in [`LIVE`], updated by the
//!   main loop for the cost of an atomic add;
//! - read ones (per-rule counters, firewall rule counters, conntrack, DHCP leases; tunnels,
//!   OSPF/BGP neighbours and load-balancer backends from their daemons) gathered by [`collect`] in a task
//!   of their own every refresh interval while somebody scrapes (paused, its snapshot
//!   dropped, after [`collect::IDLE_AFTER`] without a scrape), on a blocking thread with a
//!   deadline, into a [`collect::Snapshot`], encoded there once per read
//!   ([`collect::Encoded`]) and published through a watch channel (a pointer swap).
//!
//! A scrape encodes the live families and the latest snapshot (plus the agent's RSS and open
//! fds, read from `/proc/self` then) on a blocking thread: it never runs on, nor waits for, the
//! loop that applies pushes.

pub mod collect;
pub mod daemons;
pub mod exposition;
pub mod firewall;
pub mod http;
pub mod lb;
pub mod routing;
pub mod tunnels;

pub use daemons::configure;

use std::sync::atomic::AtomicU64;
use std::sync::LazyLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::concern::Status;
use crate::push::PushResult;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConcernLabel {
    pub concern: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DaemonLabel {
    pub daemon: String,
}

type HistogramFamily = Family<ConcernLabel, Histogram, fn() -> Histogram>;

fn push_histogram() -> Histogram {
    // 0.5 ms to ~16 s: a one-element change takes well under a millisecond, a large VPN or
    // DHCP change seconds.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// The series the agent counts as things happen.
#[derive(Debug)]
pub struct Live {
    pub pushes: Family<ResultLabel, Counter>,
    pub concern_seconds: HistogramFamily,
    pub concern_failures: Family<ConcernLabel, Counter>,
    pub replay_seconds: Gauge<f64, AtomicU64>,
    pub repairs: Family<ConcernLabel, Counter>,
    pub daemon_starts: Family<DaemonLabel, Counter>,
    pub service_restarts: Family<ServiceLabel, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServiceLabel {
    pub service: String,
}

/// A supervised service (`monitorservice`) found dead and restarted.
pub fn record_service_restart(service: &str) {
    LIVE.service_restarts
        .get_or_create(&ServiceLabel {
            service: service.into(),
        })
        .inc();
}

pub static LIVE: LazyLock<Live> = LazyLock::new(|| Live {
    pushes: Family::default(),
    concern_seconds: Family::new_with_constructor(push_histogram as fn() -> Histogram),
    concern_failures: Family::default(),
    replay_seconds: Gauge::default(),
    repairs: Family::default(),
    daemon_starts: Family::default(),
    service_restarts: Family::default(),
});

fn concern(c: &str) -> ConcernLabel {
    ConcernLabel {
        concern: c.to_string(),
    }
}

/// One push (not a dry run): its result, and per concern its duration and failure.
pub fn record_push(r: &PushResult) {
    let result = if r.ok { "ok" } else { "failed" };
    LIVE.pushes
        .get_or_create(&ResultLabel {
            result: result.into(),
        })
        .inc();
    for o in &r.outcomes {
        if matches!(o.status, Status::Skipped | Status::NotYetApplied) {
            continue;
        }
        LIVE.concern_seconds
            .get_or_create(&concern(o.concern))
            .observe(o.millis / 1000.0);
        if matches!(o.status, Status::Failed(_)) {
            LIVE.concern_failures
                .get_or_create(&concern(o.concern))
                .inc();
        }
    }
}

pub fn record_replay(millis: u64) {
    LIVE.replay_seconds.set(millis as f64 / 1000.0);
}

/// A repair the self-heal loop made without a push.
pub fn record_repair(c: &str) {
    LIVE.repairs.get_or_create(&concern(c)).inc();
}

/// A daemon the agent owns was started (the first start, or a respawn after it died).
pub fn record_daemon_start(daemon: &str) {
    LIVE.daemon_starts
        .get_or_create(&DaemonLabel {
            daemon: daemon.into(),
        })
        .inc();
}

/// The daemons the agent starts itself (`status` lists their starts).
const DAEMONS: &[&str] = &["dnsmasq", "haproxy", "keepalived", "conntrackd", "radvd"];

/// The starts counted so far per daemon (for `status`).
pub fn daemon_starts() -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for d in DAEMONS {
        let label = DaemonLabel {
            daemon: (*d).into(),
        };
        let n = LIVE.daemon_starts.get(&label).map(|c| c.get()).unwrap_or(0);
        out.insert((*d).into(), n.into());
    }
    serde_json::Value::Object(out)
}

/// `text` without the `# EOF` line that ends an encoding (encodings are concatenated).
pub fn without_eof(mut text: String) -> String {
    if text.ends_with("# EOF\n") {
        text.truncate(text.len() - "# EOF\n".len());
    }
    text
}

/// The live series and the process's own figures, encoded now (without `# EOF`): the part of
/// an exposition that precedes the collector's snapshot ([`exposition`]).
pub fn render_live() -> String {
    let mut reg = Registry::with_prefix("vr");
    let l = &*LIVE;
    reg.register("pushes", "Pushes applied, by result", l.pushes.clone());
    reg.register(
        "concern_apply_seconds",
        "Time one concern took to plan and apply one push",
        l.concern_seconds.clone(),
    );
    reg.register(
        "concern_failures",
        "Pushes a concern failed",
        l.concern_failures.clone(),
    );
    reg.register(
        "replay_seconds",
        "Duration of the boot replay of the stored state",
        l.replay_seconds.clone(),
    );
    reg.register(
        "self_heal_repairs",
        "Repairs made without a push, by concern",
        l.repairs.clone(),
    );
    reg.register(
        "daemon_starts",
        "Starts of a daemon the agent owns (respawns included)",
        l.daemon_starts.clone(),
    );
    reg.register(
        "service_restarts",
        "Supervised services (monitorservice) found dead and restarted",
        l.service_restarts.clone(),
    );
    collect::register_process(&mut reg);
    let mut text = String::new();
    if prometheus_client::encoding::text::encode(&mut text, &reg).is_err() {
        text.clear();
    }
    without_eof(text)
}
