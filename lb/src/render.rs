//! The haproxy configuration, rendered purely: the agent's `global` section (its admin socket
//! with `expose-fd listeners`, so listening sockets pass to new workers on a reload; user and
//! chroot), then either the native listeners or the provided proxy sections. Certificates
//! are rendered as the PEM files haproxy reads (certificate, chain, key).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use vr_secret::Secret;

use crate::model::{Algorithm, LbSection, Listener, Protocol, StatsPage, Stickiness};

/// Where haproxy's files live: `<run-dir>/haproxy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    pub dir: PathBuf,
}

impl Paths {
    pub fn new(run_dir: &Path) -> Paths {
        Paths {
            dir: run_dir.join("haproxy"),
        }
    }
    pub fn config(&self) -> PathBuf {
        self.dir.join("haproxy.cfg")
    }
    /// The candidate checked with `haproxy -c` before it replaces the config.
    pub fn candidate(&self) -> PathBuf {
        self.dir.join("haproxy.cfg.new")
    }
    pub fn pid(&self) -> PathBuf {
        self.dir.join("haproxy.pid")
    }
    /// The master CLI (`show proc`, `reload`).
    pub fn master_socket(&self) -> PathBuf {
        self.dir.join("master.sock")
    }
    /// The workers' admin socket (`show stat`, `set server`).
    pub fn admin_socket(&self) -> PathBuf {
        self.dir.join("admin.sock")
    }
    pub fn certs_dir(&self) -> PathBuf {
        self.dir.join("certs")
    }
    pub fn cert(&self, name: &str) -> PathBuf {
        self.certs_dir().join(format!("{name}.pem"))
    }
}

/// Who the workers run as: haproxy's own user in its chroot when the system has them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    pub user: String,
    pub group: String,
    pub chroot: String,
}

/// What the renderer produces: the config, and each certificate's PEM file by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub config: String,
    pub certs: Vec<(String, Secret)>,
}

/// The first line of every config the agent writes: how a file of ours is recognised.
pub const HEADER: &str = "# vr-agent: haproxy configuration, rendered by the agent (do not edit)";

/// Renders `s` (validated). Provided lines that fail their checks are left out, so an
/// unvalidated section cannot put a refused line in the file.
pub fn render(s: &LbSection, paths: &Paths, run_as: Option<&RunAs>) -> Rendered {
    let mut c = String::new();
    let certs_dir = paths.certs_dir().display().to_string();
    let provided = s
        .provided
        .as_ref()
        .and_then(|p| crate::provided::split(&p.lines, &certs_dir).ok());
    let _ = writeln!(c, "{HEADER}");
    c.push_str("global\n");
    let _ = writeln!(
        c,
        "\tstats socket {} mode 600 level admin expose-fd listeners",
        paths.admin_socket().display()
    );
    c.push_str("\tstats timeout 30s\n");
    // Old workers finish their connections after a reload, for at most this long.
    c.push_str("\thard-stop-after 30s\n");
    if let Some(r) = run_as {
        let _ = writeln!(c, "\tchroot {}", r.chroot);
        let _ = writeln!(c, "\tuser {}", r.user);
        let _ = writeln!(c, "\tgroup {}", r.group);
    }
    match &provided {
        Some(p) => {
            if !p
                .global
                .iter()
                .any(|l| l.trim_start().starts_with("maxconn"))
            {
                c.push_str("\tmaxconn 4096\n");
            }
            for l in &p.global {
                let _ = writeln!(c, "{l}");
            }
            c.push('\n');
            for l in &p.proxies {
                let _ = writeln!(c, "{l}");
            }
        }
        None => {
            c.push_str("\tmaxconn 4096\n\n");
            c.push_str(DEFAULTS);
            if let Some(st) = &s.stats {
                stats(&mut c, st);
            }
            for l in &s.listeners {
                listener(&mut c, l, paths);
            }
        }
    }
    let certs = s
        .certificates
        .iter()
        .map(|cert| {
            let mut pem = String::new();
            for part in [Some(&cert.cert), cert.chain.as_ref()]
                .into_iter()
                .flatten()
            {
                pem.push_str(part.trim_end());
                pem.push('\n');
            }
            pem.push_str(cert.key.expose().trim_end());
            pem.push('\n');
            (cert.name.clone(), Secret::new(pem))
        })
        .collect();
    Rendered { config: c, certs }
}

const DEFAULTS: &str = "defaults
\tmode tcp
\tlog global
\toption dontlognull
\tretries 3
\toption redispatch
\ttimeout connect 5s
\ttimeout client 50s
\ttimeout server 50s
\ttimeout check 2s
";

fn stats(c: &mut String, st: &StatsPage) {
    let _ = write!(
        c,
        "\nlisten stats\n\tbind {}:{}\n\tmode http\n\tstats enable\n\tstats uri {}\n\tstats refresh 10s\n",
        st.ip, st.port, st.uri
    );
}

fn listener(c: &mut String, l: &Listener, paths: &Paths) {
    let http = l.protocol == Protocol::Http;
    let _ = writeln!(c, "\nlisten {}", l.name());
    let _ = write!(c, "\tbind {}:{}", l.public_ip, l.public_port);
    if let Some(cert) = &l.ssl {
        let _ = write!(c, " ssl crt {}", paths.cert(cert).display());
    }
    c.push('\n');
    let _ = writeln!(c, "\tmode {}", if http { "http" } else { "tcp" });
    if http {
        c.push_str("\toption forwardfor\n");
    }
    if l.ssl.is_some() {
        c.push_str("\thttp-request add-header X-Forwarded-Proto https\n");
    }
    if !l.source_cidrs.is_empty() {
        let list: Vec<String> = l.source_cidrs.iter().map(|n| n.to_string()).collect();
        let _ = writeln!(c, "\tacl allowed_src src {}", list.join(" "));
        c.push_str("\ttcp-request connection reject if !allowed_src\n");
    }
    let alg = match l.algorithm {
        Algorithm::Roundrobin => "roundrobin",
        Algorithm::Leastconn => "leastconn",
        Algorithm::Source => "source",
    };
    let _ = writeln!(c, "\tbalance {alg}");
    let mut cookie = false;
    match &l.stickiness {
        None => {}
        Some(Stickiness::Source { table_size, expire }) => {
            let _ = writeln!(
                c,
                "\tstick-table type ip size {table_size} expire {expire}\n\tstick on src"
            );
        }
        Some(Stickiness::LbCookie {
            cookie_name,
            indirect,
            nocache,
            postonly,
            domain,
        }) => {
            cookie = true;
            let _ = write!(c, "\tcookie {cookie_name} insert");
            for (on, word) in [
                (*indirect, " indirect"),
                (*nocache, " nocache"),
                (*postonly, " postonly"),
            ] {
                if on {
                    c.push_str(word);
                }
            }
            if let Some(d) = domain {
                let _ = write!(c, " domain {d}");
            }
            c.push('\n');
        }
        Some(Stickiness::AppCookie {
            cookie_name,
            length,
            holdtime,
            request_learn,
        }) => {
            // haproxy 1.6 dropped `appsession`; a string stick table does the same: the
            // value the backend sets is stored, and requests carrying it are matched.
            let _ = writeln!(
                c,
                "\tstick-table type string len {length} size 200k expire {holdtime}"
            );
            let _ = writeln!(c, "\tstick store-response res.cook({cookie_name})");
            let verb = if *request_learn { "on" } else { "match" };
            let _ = writeln!(c, "\tstick {verb} req.cook({cookie_name})");
        }
    }
    if let Some(h) = &l.health_check {
        if let Some(path) = &h.http_path {
            let _ = writeln!(c, "\toption httpchk GET {path}");
        }
        let _ = writeln!(c, "\ttimeout check {}ms", h.timeout_ms);
        let _ = writeln!(
            c,
            "\tdefault-server inter {}ms fall {} rise {}",
            h.interval_ms, h.unhealthy_threshold, h.healthy_threshold
        );
    }
    for b in &l.backends {
        let name = b.name();
        let _ = write!(c, "\tserver {name} {}:{} check", b.ip, b.port);
        if cookie {
            let _ = write!(c, " cookie {name}");
        }
        c.push('\n');
    }
}

/// Every `(proxy, server)` a configuration declares (in `listen` and `backend` sections).
pub fn servers(config: &str) -> std::collections::BTreeSet<(String, String)> {
    let mut out = std::collections::BTreeSet::new();
    let mut proxy: Option<String> = None;
    for line in config.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.is_empty() {
            continue;
        }
        if !line.starts_with([' ', '\t']) {
            proxy = matches!(words[0], "listen" | "backend")
                .then(|| words.get(1).map(|s| s.to_string()))
                .flatten();
        } else if words[0] == "server" {
            if let (Some(p), Some(s)) = (&proxy, words.get(1)) {
                out.insert((p.clone(), s.to_string()));
            }
        }
    }
    out
}

/// The section (`listen NAME`, `frontend NAME`, ...) that line `line_no` (1-based) of
/// `config` belongs to: which rule a haproxy message about that line is about.
pub fn section_at(config: &str, line_no: usize) -> Option<String> {
    config
        .lines()
        .take(line_no)
        .filter(|l| !l.starts_with([' ', '\t']) && !l.trim().is_empty() && !l.starts_with('#'))
        .last()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_and_sections() {
        let c = "global\n\tmaxconn 1\nlisten a\n\tbind 1.1.1.1:80\n\tserver s1 1.1.1.2:80\nfrontend f\n\tbind x\nbackend b\n\tserver s2 1.1.1.3:80 check\n";
        let s: Vec<_> = servers(c).into_iter().collect();
        assert_eq!(s, [("a".into(), "s1".into()), ("b".into(), "s2".into())]);
        assert_eq!(section_at(c, 4).as_deref(), Some("listen a"));
        assert_eq!(section_at(c, 2).as_deref(), Some("global"));
    }
}
