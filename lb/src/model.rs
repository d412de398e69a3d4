//! The native `lb` section: load balancers as data (public address and port, protocol,
//! algorithm, stickiness, health check, backends, TLS offload, source allow list), or the
//! haproxy lines a CloudStack management server rendered, taken as the configuration.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use vr_secret::Secret;

/// Load balancing (haproxy). Nothing in it: no haproxy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LbSection {
    /// One entry per public address and port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listeners: Vec<Listener>,
    /// haproxy configuration lines rendered elsewhere (CloudStack's `loadbalancer` push). Its
    /// proxy sections are used as they are; its `global` section is replaced by the agent's
    /// own (sockets, user, chroot), and whatever would move haproxy off them is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provided: Option<ProvidedConfig>,
    /// Certificates for TLS offload, by name (`ssl` of a listener, or the file name a
    /// provided config refers to).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<Certificate>,
    /// The statistics page (HTTP), served on one address of the control network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<StatsPage>,
}

impl LbSection {
    pub fn is_empty(&self) -> bool {
        self.listeners.is_empty() && self.provided.is_none() && self.stats.is_none()
    }
}

/// Pre-rendered haproxy configuration lines, and the public ports they listen on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProvidedConfig {
    /// The lines as sent; an entry may hold several lines (`\n`), and lines start with tabs.
    pub lines: Vec<String>,
    /// Public address and TCP port of each listener, for the firewall.
    #[serde(default)]
    pub public_ports: Vec<PublicPort>,
    /// Address and port of the statistics page; the firewall opens it only on an address of
    /// the control network.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stats_ports: Vec<PublicPort>,
}

/// One TCP port the firewall opens on a public address.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct PublicPort {
    #[schemars(with = "String")]
    pub ip: Ipv4Addr,
    pub port: u16,
}

/// One load balancer: a public address and port, spread over backends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    #[schemars(with = "String")]
    pub public_ip: Ipv4Addr,
    pub public_port: u16,
    #[serde(default)]
    pub protocol: Protocol,
    #[serde(default)]
    pub algorithm: Algorithm,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stickiness: Option<Stickiness>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    pub backends: Vec<Backend>,
    /// TLS is terminated here with this certificate (by name); the backends get plain HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl: Option<String>,
    /// Only these sources may connect; empty: everyone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<String>")]
    pub source_cidrs: Vec<Ipv4Net>,
}

impl Listener {
    /// The proxy's name, CloudStack's pool name: `198_51_100_1-80`.
    pub fn name(&self) -> String {
        format!(
            "{}-{}",
            self.public_ip.to_string().replace('.', "_"),
            self.public_port
        )
    }
}

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema, PartialOrd, Ord,
)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    Tcp,
    Http,
}

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema, PartialOrd, Ord,
)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    #[default]
    Roundrobin,
    Leastconn,
    Source,
}

/// The stickiness policies CloudStack offers, with their parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case", tag = "method")]
pub enum Stickiness {
    /// A client address stays on its backend (a stick table of source addresses).
    Source {
        /// Entries kept (haproxy size, e.g. `200k`).
        #[serde(default = "default_table_size")]
        table_size: String,
        /// How long an idle entry is kept (haproxy time, e.g. `30m`).
        #[serde(default = "default_expire")]
        expire: String,
    },
    /// haproxy inserts its own cookie naming the backend.
    LbCookie {
        #[serde(default = "default_cookie")]
        cookie_name: String,
        /// `indirect`: the cookie is removed before the request reaches the backend.
        #[serde(default = "yes")]
        indirect: bool,
        /// `nocache`: responses with the cookie are marked uncacheable.
        #[serde(default = "yes")]
        nocache: bool,
        #[serde(default)]
        postonly: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        domain: Option<String>,
    },
    /// The application's own cookie (e.g. `JSESSIONID`) is learnt and kept per backend.
    AppCookie {
        cookie_name: String,
        /// Characters of the cookie value remembered.
        #[serde(default = "default_length")]
        length: u32,
        /// How long an unused value is remembered (haproxy time).
        #[serde(default = "default_holdtime")]
        holdtime: String,
        /// Also learn the cookie from requests (the client's own first cookie).
        #[serde(default)]
        request_learn: bool,
    },
}

fn default_table_size() -> String {
    "200k".into()
}
fn default_expire() -> String {
    "30m".into()
}
fn default_cookie() -> String {
    "SRVID".into()
}
fn yes() -> bool {
    true
}
fn default_length() -> u32 {
    52
}
fn default_holdtime() -> String {
    "3h".into()
}

/// How haproxy decides that a backend is up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    /// HTTP path asked with GET (HTTP listeners); absent: a TCP connect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_path: Option<String>,
    /// Milliseconds between checks.
    #[serde(default = "default_interval")]
    pub interval_ms: u32,
    /// Milliseconds a check may take.
    #[serde(default = "default_timeout")]
    pub timeout_ms: u32,
    /// Failed checks in a row that take a backend out.
    #[serde(default = "default_fall")]
    pub unhealthy_threshold: u32,
    /// Passed checks in a row that put it back.
    #[serde(default = "default_rise")]
    pub healthy_threshold: u32,
}

fn default_interval() -> u32 {
    2000
}
fn default_timeout() -> u32 {
    2000
}
fn default_fall() -> u32 {
    3
}
fn default_rise() -> u32 {
    2
}

/// One backend server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Backend {
    #[schemars(with = "String")]
    pub ip: Ipv4Addr,
    pub port: u16,
}

impl Backend {
    /// The server's name in haproxy (and its stickiness cookie value): stable across pushes,
    /// so removing one backend never renames another.
    pub fn name(&self) -> String {
        format!("{}-{}", self.ip.to_string().replace('.', "_"), self.port)
    }
}

/// A certificate with its private key (a secret: written 0600, never printed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Certificate {
    /// File name stem: letters, digits, `_`, `-`, `.`.
    pub name: String,
    /// PEM certificate.
    pub cert: String,
    /// PEM private key (unencrypted).
    pub key: Secret,
    /// PEM intermediate certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<String>,
}

/// The statistics page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StatsPage {
    /// An address of the control network.
    #[schemars(with = "String")]
    pub ip: Ipv4Addr,
    #[serde(default = "default_stats_port")]
    pub port: u16,
    #[serde(default = "default_stats_uri")]
    pub uri: String,
}

fn default_stats_port() -> u16 {
    8081
}
fn default_stats_uri() -> String {
    "/admin?stats".into()
}

/// One invalid field: its path, value and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub value: String,
    pub reason: String,
}

fn problem(out: &mut Vec<Problem>, path: String, value: impl ToString, reason: &str) {
    out.push(Problem {
        path,
        value: value.to_string(),
        reason: reason.into(),
    });
}

/// A haproxy word: no blank, no control character, no `#` (it would start a comment).
pub fn is_word(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_graphic() && c != '#' && c != '"')
}

/// Every problem of `s` (paths relative to the section).
pub fn validate(s: &LbSection) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (i, l) in s.listeners.iter().enumerate() {
        let p = format!("listeners[{i}]");
        if l.public_port == 0 {
            problem(&mut out, format!("{p}.public_port"), 0, "port 0");
        }
        if !seen.insert((l.public_ip, l.public_port)) {
            problem(
                &mut out,
                format!("{p}.public_port"),
                l.public_port,
                "a second listener on the same address and port",
            );
        }
        if l.backends.is_empty() {
            problem(&mut out, format!("{p}.backends"), "[]", "no backend");
        }
        for (j, b) in l.backends.iter().enumerate() {
            if b.port == 0 {
                problem(&mut out, format!("{p}.backends[{j}].port"), 0, "port 0");
            }
        }
        let http = l.protocol == Protocol::Http;
        if let Some(name) = &l.ssl {
            if !http {
                problem(
                    &mut out,
                    format!("{p}.ssl"),
                    format!("{name:?}"),
                    "TLS offload needs protocol http",
                );
            }
            if !s.certificates.iter().any(|c| &c.name == name) {
                problem(
                    &mut out,
                    format!("{p}.ssl"),
                    format!("{name:?}"),
                    "no certificate of that name",
                );
            }
        }
        match &l.stickiness {
            Some(Stickiness::LbCookie {
                cookie_name,
                domain,
                ..
            }) => {
                if !http {
                    problem(
                        &mut out,
                        format!("{p}.stickiness"),
                        "lb_cookie",
                        "cookie stickiness needs protocol http",
                    );
                }
                if !is_word(cookie_name) {
                    problem(
                        &mut out,
                        format!("{p}.stickiness.cookie_name"),
                        format!("{cookie_name:?}"),
                        "not a cookie name",
                    );
                }
                if let Some(d) = domain.as_ref().filter(|d| !is_word(d)) {
                    problem(
                        &mut out,
                        format!("{p}.stickiness.domain"),
                        format!("{d:?}"),
                        "not a domain",
                    );
                }
            }
            Some(Stickiness::AppCookie {
                cookie_name,
                holdtime,
                ..
            }) => {
                if !http {
                    problem(
                        &mut out,
                        format!("{p}.stickiness"),
                        "app_cookie",
                        "cookie stickiness needs protocol http",
                    );
                }
                for (f, v) in [("cookie_name", cookie_name), ("holdtime", holdtime)] {
                    if !is_word(v) {
                        problem(
                            &mut out,
                            format!("{p}.stickiness.{f}"),
                            format!("{v:?}"),
                            "not a haproxy word",
                        );
                    }
                }
            }
            Some(Stickiness::Source { table_size, expire }) => {
                for (f, v) in [("table_size", table_size), ("expire", expire)] {
                    if !is_word(v) {
                        problem(
                            &mut out,
                            format!("{p}.stickiness.{f}"),
                            format!("{v:?}"),
                            "not a haproxy word",
                        );
                    }
                }
            }
            None => {}
        }
        if let Some(h) = &l.health_check {
            if let Some(path) = &h.http_path {
                if !http || !path.starts_with('/') || !is_word(path) {
                    problem(
                        &mut out,
                        format!("{p}.health_check.http_path"),
                        format!("{path:?}"),
                        "an HTTP path (/...) on an http listener",
                    );
                }
            }
            for (f, v) in [
                ("interval_ms", h.interval_ms),
                ("timeout_ms", h.timeout_ms),
                ("unhealthy_threshold", h.unhealthy_threshold),
                ("healthy_threshold", h.healthy_threshold),
            ] {
                if v == 0 {
                    problem(&mut out, format!("{p}.health_check.{f}"), 0, "must be > 0");
                }
            }
        }
    }
    for (i, c) in s.certificates.iter().enumerate() {
        let ok = !c.name.is_empty()
            && c.name != "."
            && c.name != ".."
            && c.name
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '_' | '-' | '.'));
        if !ok {
            problem(
                &mut out,
                format!("certificates[{i}].name"),
                format!("{:?}", c.name),
                "invalid file name",
            );
        }
        // Whether the PEM reads is haproxy's to say (`haproxy -c` loads every certificate
        // before anything running is touched); an encrypted key it could never read.
        let key = c.key.expose();
        if key.contains("ENCRYPTED") {
            problem(
                &mut out,
                format!("certificates[{i}].key"),
                vr_secret::REDACTED,
                "an encrypted key (haproxy cannot ask for its password)",
            );
        }
    }
    if let Some(st) = &s.stats {
        if !st.uri.starts_with('/') || !is_word(&st.uri) {
            problem(
                &mut out,
                "stats.uri".into(),
                format!("{:?}", st.uri),
                "an HTTP path",
            );
        }
    }
    if let Some(p) = &s.provided {
        out.extend(crate::provided::check(&p.lines));
    }
    out
}
