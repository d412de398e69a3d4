//! `checkbatchs2svpn.sh`, `getRouterAlerts.sh`, `diagnostics.py`.

use std::io::{Read as _, Seek as _, SeekFrom};
use std::net::Ipv4Addr;
use std::process::{Command, ExitCode};
use std::time::Duration;

use crate::config::Config;
use crate::intake::protocol::Request;
use vr_cloudstack::scripts::{alerts, diagnostics, s2s_status};

/// The MS waits 30 s for the answer (`setWait(30)`): the agent gets 25 of them.
const S2S_LIMIT: Duration = Duration::from_secs(25);
/// The MS gives diagnostics 60 s; the tool is killed before that.
const DIAG_LIMIT: Duration = Duration::from_secs(50);

/// Connected: charon holds an established IKE SA with an installed CHILD SA for the peer
/// (upstream grepped `ipsec status` for ESTABLISHED).
fn connected(vpn: &serde_json::Value, peer: Ipv4Addr) -> bool {
    vpn["connections"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| {
            c["peer"].as_str() == Some(&peer.to_string())
                && c["ike_state"].as_str() == Some("ESTABLISHED")
                && c["children"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|ch| ch["state"].as_str() == Some("INSTALLED"))
        })
}

pub async fn check_s2s(cfg: &Config, args: &[String]) -> ExitCode {
    let peers = s2s_status::peers(args);
    // Without the agent (or charon) the state is unknown: a failed answer leaves every
    // connection's state as the MS has it, where "not connected" would raise alerts.
    let Some(resp) = super::facts::ask(cfg, Request::ShowVpn, S2S_LIMIT).await else {
        return ExitCode::from(1);
    };
    if !resp.ok || resp.body["charon"].is_string() {
        return ExitCode::from(1);
    }
    let status: Vec<(Ipv4Addr, bool)> = peers
        .iter()
        .map(|p| (*p, connected(&resp.body, *p)))
        .collect();
    print!("{}", s2s_status::render(&status));
    ExitCode::SUCCESS
}

/// Reads at most the last `MAX_BYTES` of the alerts log (it is bounded, but a file put there
/// by hand must not be read whole).
fn read_tail(path: &std::path::Path) -> String {
    let Ok(mut f) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let max = crate::alerts::MAX_BYTES * 2;
    if len > max {
        let _ = f.seek(SeekFrom::Start(len - max));
    }
    let mut bytes = Vec::new();
    let _ = f.take(max).read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes).into_owned();
    if len > max {
        // Drop the partial first line.
        return text
            .split_once('\n')
            .map(|(_, r)| r.to_string())
            .unwrap_or_default();
    }
    text
}

pub async fn router_alerts(cfg: &Config, args: &[String]) -> ExitCode {
    let dir = super::facts::state_dir(cfg).await;
    let log = read_tail(&crate::alerts::path(&dir));
    println!("{}", alerts::render(&log, alerts::since(args).as_deref()));
    ExitCode::SUCCESS
}

/// The interface the kernel would use towards `dest` (arping needs one).
fn route_dev(dest: &std::net::IpAddr) -> Option<String> {
    let out = crate::process::output_within(
        Command::new("ip").args(["-o", "route", "get", &dest.to_string()]),
        Duration::from_secs(5),
    )
    .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut words = text.split_whitespace();
    while let Some(w) = words.next() {
        if w == "dev" {
            return words.next().map(str::to_string);
        }
    }
    None
}

pub fn diagnostics(args: &[String]) -> ExitCode {
    use crate::diag::tools;
    use diagnostics::Tool;
    let req = match diagnostics::parse(args) {
        Ok(r) => r,
        // Upstream printed nothing for an unknown type; a refusal says why in the answer's
        // stderr field (the MS shows it), with the exit code ping uses for bad usage.
        Err(diagnostics::Refused::Type(_)) => return ExitCode::SUCCESS,
        Err(e) => {
            print!("{}", diagnostics::render("", &e.to_string(), 2));
            return ExitCode::SUCCESS;
        }
    };
    let dest = req.destination.to_string();
    let iface = req.interface.clone();
    let inv = match req.tool {
        Tool::Ping | Tool::Ping6 => tools::ping(&dest, req.count, iface.as_deref()),
        Tool::Traceroute | Tool::Traceroute6 => {
            tools::traceroute(&dest, req.count, iface.as_deref())
        }
        Tool::Arping => match iface.or_else(|| route_dev(&req.destination)) {
            Some(i) => tools::arping(&dest, req.count, &i),
            None => {
                print!(
                    "{}",
                    diagnostics::render("", &format!("no route to {dest}"), 2)
                );
                return ExitCode::SUCCESS;
            }
        },
    };
    let inv = match inv {
        Ok(i) => i,
        Err(e) => {
            print!("{}", diagnostics::render("", &e.to_string(), 2));
            return ExitCode::SUCCESS;
        }
    };
    let text = match crate::process::output_within(&mut inv.command(), DIAG_LIMIT) {
        Ok(o) => diagnostics::render(
            &String::from_utf8_lossy(&o.stdout),
            &String::from_utf8_lossy(&o.stderr),
            o.status.code().unwrap_or(-1),
        ),
        Err(e) => diagnostics::render("", &format!("{}: {e}", inv.program), 124),
    };
    print!("{text}");
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connected_needs_an_established_ike_sa_with_an_installed_child() {
        let vpn = serde_json::json!({"connections": [
            {"peer": "192.0.2.20", "ike_state": "ESTABLISHED", "children": [{"state": "INSTALLED"}]},
            {"peer": "192.0.2.30", "ike_state": "ESTABLISHED", "children": [{"state": "REKEYING"}]},
            {"peer": "192.0.2.40", "ike_state": "CONNECTING", "children": []}
        ]});
        let up = |ip: &str| connected(&vpn, ip.parse().unwrap());
        assert!(up("192.0.2.20"));
        assert!(!up("192.0.2.30") && !up("192.0.2.40") && !up("192.0.2.50"));
    }
}
