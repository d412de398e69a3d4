//! haproxy lines rendered by someone else (CloudStack's management server), taken as the
//! configuration: their proxy sections (`defaults`, `listen`, `frontend`, `backend`) are used
//! as sent; their `global` section gives way to the agent's own, which holds the sockets the
//! agent drives haproxy through, the user and the chroot. Lines CloudStack always sends there
//! (its own socket, user, chroot, `daemon`) are accepted and superseded; a line that would move
//! haproxy off the agent's sockets, user or chroot, run a program or read a file the agent did
//! not write is refused, naming the entry.
//!
//! CloudStack's lines start with a tab, a blank line is `"\t "`, and some entries hold several
//! lines joined by `\n` (its source allow list, its stats listener): all accepted. Any other
//! control character is refused.

use crate::model::Problem;

/// Where CloudStack's configuration expects the certificates; rewritten to the agent's.
pub const CLOUDSTACK_CERT_DIR: &str = "/etc/ssl/cloudstack/";

/// Global lines CloudStack sends that the agent's own global section supersedes.
const SUPERSEDED: &[&str] = &[
    "daemon",
    "chroot /var/lib/haproxy",
    "user haproxy",
    "group haproxy",
    "stats socket /run/haproxy/admin.sock",
    "stats socket /var/run/haproxy.socket",
];

/// Global keywords kept from the provided lines (sizing and logging).
const GLOBAL_KEPT: &[&str] = &["log", "maxconn", "maxpipes", "ulimit-n"];

/// Keywords refused in any proxy section: they run programs, read files the agent does not
/// own, or need privileges the workers do not have.
const REFUSED_KEYWORDS: &[&str] = &[
    "external-check",
    "errorfile",
    "errorfiles",
    "lua-load",
    "usesrc",
    "ca-file",
    "crl-file",
    "crt-list",
    "unix-bind",
    "file",
    "lf-file",
    "program",
];

/// The proxy sections haproxy knows; only these may follow the global section.
const SECTIONS: &[&str] = &["global", "defaults", "listen", "frontend", "backend"];

/// The provided lines, split: global lines kept, then the proxy sections.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Split {
    pub global: Vec<String>,
    pub proxies: Vec<String>,
}

fn refuse(out: &mut Vec<Problem>, entry: usize, line: &str, reason: &str) {
    out.push(Problem {
        path: format!("configuration[{entry}]"),
        value: format!("{:?}", line.trim()),
        reason: reason.into(),
    });
}

/// Every line, with the index of the entry it came from.
fn lines(entries: &[String]) -> impl Iterator<Item = (usize, &str)> {
    entries
        .iter()
        .enumerate()
        .flat_map(|(i, e)| e.split('\n').map(move |l| (i, l)))
}

/// Every problem of the provided lines (empty: they can be used).
pub fn check(entries: &[String]) -> Vec<Problem> {
    split(entries, "/").err().unwrap_or_default()
}

/// Splits and checks the lines; `cert_dir` replaces [`CLOUDSTACK_CERT_DIR`] in `crt` paths.
pub fn split(entries: &[String], cert_dir: &str) -> Result<Split, Vec<Problem>> {
    let mut out = Split::default();
    let mut errs = Vec::new();
    let mut section: Option<&str> = None;
    for (i, raw) in lines(entries) {
        if raw.chars().any(|c| c.is_control() && c != '\t') {
            refuse(&mut errs, i, raw, "control character in a config line");
            continue;
        }
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let starts_section = !raw.starts_with([' ', '\t']);
        if starts_section {
            if !SECTIONS.contains(&words[0]) {
                refuse(
                    &mut errs,
                    i,
                    raw,
                    "section not allowed (global, defaults, listen, frontend, backend)",
                );
                section = Some("refused");
                continue;
            }
            section = Some(if words[0] == "global" {
                "global"
            } else {
                "proxy"
            });
            if words[0] != "global" {
                if let Some(addr) = words.get(2) {
                    check_bind_address(&mut errs, i, raw, addr);
                }
                out.proxies.push(raw.to_string());
            }
            continue;
        }
        match section {
            None => refuse(&mut errs, i, raw, "a setting outside any section"),
            Some("refused") => {}
            Some("global") => {
                let joined = words.join(" ");
                if SUPERSEDED.contains(&joined.as_str()) {
                    continue;
                }
                if GLOBAL_KEPT.contains(&words[0]) || words[0].starts_with("tune.") {
                    out.global.push(format!("\t{line}"));
                } else {
                    refuse(
                        &mut errs,
                        i,
                        raw,
                        "global setting the agent owns (sockets, user, chroot, processes)",
                    );
                }
            }
            _ => match proxy_line(raw, &words, cert_dir) {
                Ok(l) => out.proxies.push(l),
                Err(why) => refuse(&mut errs, i, raw, why),
            },
        }
    }
    if errs.is_empty() {
        Ok(out)
    } else {
        Err(errs)
    }
}

fn check_bind_address(errs: &mut Vec<Problem>, i: usize, raw: &str, addr: &str) {
    if addr.starts_with('/') || addr.contains('@') {
        refuse(errs, i, raw, "only IP addresses may be bound");
    }
}

/// One line of a proxy section, as written (certificate paths rewritten), or why not.
fn proxy_line(raw: &str, words: &[&str], cert_dir: &str) -> Result<String, &'static str> {
    if let Some(k) = words.iter().find(|w| REFUSED_KEYWORDS.contains(w)) {
        let _ = k;
        return Err("keyword refused (runs a program, reads a file or needs root)");
    }
    if words.iter().any(|w| w.starts_with("lua")) {
        return Err("keyword refused (lua)");
    }
    if words[0] == "stats" && words.get(1) == Some(&"socket") {
        return Err("the agent owns haproxy's sockets");
    }
    if words[0] == "bind" {
        let addr = words.get(1).copied().unwrap_or("");
        if addr.starts_with('/') || addr.contains('@') {
            return Err("only IP addresses may be bound");
        }
    }
    let mut line = raw.to_string();
    let mut k = 0;
    while k < words.len() {
        if words[k] == "crt" {
            let path = words.get(k + 1).copied().unwrap_or("");
            let Some(name) = path.strip_prefix(CLOUDSTACK_CERT_DIR) else {
                return Err("certificates come from the push (/etc/ssl/cloudstack/NAME.pem)");
            };
            if name.contains('/') || name.starts_with('.') {
                return Err("certificates come from the push (/etc/ssl/cloudstack/NAME.pem)");
            }
            line = line.replace(path, &format!("{cert_dir}/{name}"));
            k += 1;
        }
        k += 1;
    }
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(lines: &[&str]) -> Vec<String> {
        lines.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn cloudstack_globals_are_superseded_and_tabs_accepted() {
        let s = split(
            &v(&[
                "global",
                "\tlog 127.0.0.1:3914   local0 warning",
                "\tmaxconn 4096",
                "\tchroot /var/lib/haproxy",
                "\tuser haproxy",
                "\tstats socket /run/haproxy/admin.sock",
                "\tdaemon",
                "\t ",
                "listen x",
                "\tbind 1.2.3.4:443 ssl crt /etc/ssl/cloudstack/x.pem\n\thttp-request add-header X-Forwarded-Proto https",
            ]),
            "/run/c",
        )
        .unwrap();
        assert_eq!(
            s.global,
            ["\tlog 127.0.0.1:3914   local0 warning", "\tmaxconn 4096"]
        );
        assert_eq!(s.proxies[1], "\tbind 1.2.3.4:443 ssl crt /run/c/x.pem");
        assert_eq!(s.proxies.len(), 3);
    }

    #[test]
    fn what_moves_haproxy_is_refused() {
        for (line, what) in [
            ("\tuser root", "global"),
            ("\tchroot /", "global"),
            ("\tstats socket /tmp/x level admin", "global"),
            ("\tmaster-worker", "global"),
            ("\terrorfile 503 /etc/shadow", "proxy"),
            ("\tbind /tmp/sock", "proxy"),
            ("\tbind 1.2.3.4:443 ssl crt /etc/shadow", "proxy"),
            ("\tsource 0.0.0.0 usesrc clientip", "proxy"),
            ("\tserver a 1.1.1.1:1\r", "proxy"),
        ] {
            let head = if what == "global" {
                "global"
            } else {
                "listen a"
            };
            let e = split(&v(&[head, line]), "/c").unwrap_err();
            assert_eq!(e[0].path, "configuration[1]", "{line}");
        }
        let e = split(&v(&["program x", "\tcommand /bin/sh"]), "/c").unwrap_err();
        assert_eq!(e.len(), 1);
    }
}
