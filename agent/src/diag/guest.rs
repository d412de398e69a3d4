//! `vr-agent show dhcp|dns`: what the agent's dnsmasq serves, read from its files (the host
//! files it was given, its lease file, its pid file), so it answers without the running agent.

use std::fmt::Write as _;

use serde_json::{json, Value};
use vr_guest::render::Paths;

fn read(p: std::path::PathBuf) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

/// The lines of every file of a per-host directory (dot files are temp files).
fn dir_lines(dir: std::path::PathBuf) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .flat_map(|e| read(e.path()).lines().map(String::from).collect::<Vec<_>>())
        .collect();
    out.sort();
    out
}

fn daemon(paths: &Paths) -> Value {
    let pid: Option<i32> = read(paths.pid()).trim().parse().ok();
    let alive = pid.is_some_and(|p| std::path::Path::new(&format!("/proc/{p}")).exists());
    json!({"pid": pid, "running": alive, "config": paths.conf()})
}

/// Every static host with its lease: `leased` (with expiry; 0 = infinite) or `no lease`.
pub fn dhcp_view(paths: &Paths) -> (String, Value) {
    let leases = vr_guest::leases::parse(&read(paths.leases.clone()));
    let mut hosts = Vec::new();
    let mut text = String::new();
    let d = daemon(paths);
    let _ = writeln!(
        text,
        "dnsmasq: {}",
        if d["running"] == true {
            format!("running (pid {})", d["pid"])
        } else {
            "not running".into()
        }
    );
    let _ = writeln!(
        text,
        "{:<18} {:<16} {:<24} {:<10} lease",
        "mac", "ip", "name", "nic"
    );
    let conf = read(paths.conf());
    let extra_nics: Vec<&str> = conf
        .lines()
        .filter_map(|l| l.strip_prefix("dhcp-mac=set:nodefault,"))
        .collect();
    let mut lines = dir_lines(paths.dhcp_hosts_dir());
    // By address, as an operator reads them.
    lines.sort_by_key(|l| {
        l.split(',')
            .nth(1)
            .and_then(|ip| ip.parse::<std::net::Ipv4Addr>().ok())
    });
    for line in &lines {
        let f: Vec<&str> = line.split(',').collect();
        let Some(mac) = f.first() else { continue };
        let nodefault = extra_nics.contains(mac);
        let rest: Vec<&str> = f[1..]
            .iter()
            .copied()
            .filter(|x| !x.starts_with("set:") && *x != "infinite")
            .collect();
        let ip = rest.first().copied().unwrap_or("");
        let name = rest.get(1).copied().unwrap_or("");
        let lease = leases.iter().find(|l| l.mac == *mac);
        let state = match lease {
            Some(l) if l.ip.to_string() == ip => "leased",
            Some(_) => "leased other address",
            None => "no lease",
        };
        let _ = writeln!(
            text,
            "{mac:<18} {ip:<16} {name:<24} {:<10} {state}",
            if nodefault { "extra" } else { "default" }
        );
        hosts.push(json!({
            "mac": mac, "ip": ip, "name": name, "default_nic": !nodefault,
            "state": state, "expiry": lease.map(|l| l.expiry),
        }));
    }
    let stray: Vec<Value> = leases
        .iter()
        .filter(|l| !hosts.iter().any(|h| h["mac"] == l.mac.as_str()))
        .map(|l| json!({"mac": l.mac, "ip": l.ip.to_string(), "name": l.name}))
        .collect();
    (
        text,
        json!({"dnsmasq": d, "hosts": hosts, "leases_without_host": stray}),
    )
}

/// Every name the router answers for guests, and the resolvers it forwards the rest to.
pub fn dns_view(paths: &Paths) -> (String, Value) {
    let mut names = Vec::new();
    let mut text = String::new();
    let lines: Vec<String> = read(paths.hosts())
        .lines()
        .map(String::from)
        .chain(dir_lines(paths.names_dir()))
        .collect();
    for line in &lines {
        let mut f = line.split_whitespace();
        let Some(ip) = f.next() else { continue };
        for n in f {
            let _ = writeln!(text, "{n:<40} A {ip}");
            names.push(json!({"name": n, "type": "A", "address": ip}));
        }
    }
    let upstream: Vec<String> = read(paths.conf())
        .lines()
        .filter_map(|l| l.strip_prefix("server="))
        .map(String::from)
        .collect();
    let _ = writeln!(text, "forwarded to: {}", upstream.join(", "));
    (
        text,
        json!({"dnsmasq": daemon(paths), "names": names, "upstream": upstream}),
    )
}
