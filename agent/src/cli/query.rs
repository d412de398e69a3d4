//! Read-only requests to the running agent (`status`, `show state|pushes|vpn`, `check`, ...)
//! and their text renderings; without an agent, what the state directory tells.

use std::process::ExitCode;

use serde_json::json;

use super::commands::pretty;
use crate::config::Config;
use crate::intake::protocol::Request;
use crate::intake::socket;
use crate::store::Store;

/// Sends a read-only request; without an agent, answers what the state directory tells.
pub(super) async fn query(
    cfg: &Config,
    req: Request,
    json: bool,
    text: impl Fn(&serde_json::Value),
) -> ExitCode {
    match socket::call(&cfg.socket, &req).await {
        Ok(Some(resp)) => {
            if let Some(e) = &resp.error {
                eprintln!("vr-agent: {e}");
            }
            if json {
                println!("{}", pretty(&resp.body));
            } else {
                text(&resp.body);
            }
            if resp.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Ok(None) => {
            let stored = Store::open(&cfg.state_dir).and_then(|s| s.load());
            match (req, stored) {
                (Request::ShowState, Ok(s)) => {
                    println!("{}", pretty(&crate::redact::redacted(&s)));
                    ExitCode::SUCCESS
                }
                (_, stored) => {
                    let generation = stored.map(|s| s.generation).ok();
                    if json {
                        println!(
                            "{}",
                            pretty(
                                &json!({"running": false, "socket": cfg.socket, "generation": generation})
                            )
                        );
                    } else {
                        println!("agent not running (no answer on {})", cfg.socket.display());
                        if let Some(g) = generation {
                            println!("stored generation: {g}");
                        }
                    }
                    ExitCode::from(1)
                }
            }
        }
        Err(e) => {
            eprintln!("vr-agent: {}: {e}", cfg.socket.display());
            ExitCode::from(1)
        }
    }
}

pub(super) fn print_status(b: &serde_json::Value) {
    println!(
        "vr-agent {}  up {}s  generation {}",
        b["version"].as_str().unwrap_or("?"),
        b["uptime_secs"],
        b["generation"]
    );
    if let Some(p) = b["state_file"]["problem"].as_str() {
        println!("STATE FILE UNREADABLE: {p}");
    }
    if let Some(r) = b.get("replay").filter(|r| !r.is_null()) {
        println!(
            "replay: {} in {} ms",
            if r["ok"].as_bool() == Some(true) {
                "ok"
            } else {
                "FAILED"
            },
            r["millis"]
        );
    }
    if let Some(p) = b.get("last_push").filter(|p| !p.is_null()) {
        println!(
            "last push: {} {}",
            p["name"].as_str().unwrap_or(""),
            p["message"].as_str().unwrap_or("")
        );
    }
    for c in b["concerns"].as_array().into_iter().flatten() {
        println!(
            "  {:<10} {}",
            c["concern"].as_str().unwrap_or(""),
            c["status"].as_str().unwrap_or("")
        );
    }
}

pub(super) fn print_pushes(b: &serde_json::Value) {
    for p in b.as_array().into_iter().flatten() {
        println!(
            "{:>10}  {:<40} {:<6} {}",
            p["received_at"],
            p["name"].as_str().unwrap_or(""),
            if p["ok"].as_bool() == Some(true) {
                "ok"
            } else {
                "FAILED"
            },
            p["message"].as_str().unwrap_or("")
        );
    }
}

pub(super) fn print_checks(b: &serde_json::Value) {
    let color = std::io::IsTerminal::is_terminal(&std::io::stdout());
    for c in b["checks"].as_array().into_iter().flatten() {
        let v = c["verdict"].as_str().unwrap_or("?");
        let tag = match (v, color) {
            ("ok", true) => "\x1b[32mOK  \x1b[0m",
            ("warn", true) => "\x1b[33mWARN\x1b[0m",
            ("fail", true) => "\x1b[31mFAIL\x1b[0m",
            ("ok", false) => "OK  ",
            ("warn", false) => "WARN",
            _ => "FAIL",
        };
        println!(
            "{tag} {:<28} {}",
            c["name"].as_str().unwrap_or(""),
            c["detail"].as_str().unwrap_or("")
        );
    }
}

pub(super) fn print_vpn(b: &serde_json::Value) {
    if let Some(e) = b["charon"].as_str() {
        println!("charon: {e}");
    }
    println!(
        "{:<22} {:<16} {:<12} {:>8} {:>12} {:>12}",
        "CONNECTION", "PEER", "IKE", "UP (s)", "BYTES IN", "BYTES OUT"
    );
    for c in b["connections"].as_array().into_iter().flatten() {
        let sum = |k: &str| -> u64 {
            c["children"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|ch| ch[k].as_str()?.parse::<u64>().ok())
                .sum()
        };
        println!(
            "{:<22} {:<16} {:<12} {:>8} {:>12} {:>12}",
            c["name"].as_str().unwrap_or(""),
            c["peer"].as_str().unwrap_or(""),
            c["ike_state"].as_str().unwrap_or(""),
            c["established_secs"]
                .as_u64()
                .map(|s| s.to_string())
                .unwrap_or_else(|| "-".into()),
            sum("bytes-in"),
            sum("bytes-out")
        );
        for ch in c["children"].as_array().into_iter().flatten() {
            println!(
                "  child {:<18} {}",
                ch["name"].as_str().unwrap_or(""),
                ch["state"].as_str().unwrap_or("")
            );
        }
        if let Some(e) = c["last_error"].as_str() {
            println!("  last error: {e}");
        }
    }
    super::query_ravpn::print(&b["remote_access"]);
}
