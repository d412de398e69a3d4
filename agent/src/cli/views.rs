//! Views this process reads itself (nftables, rtnetlink, FRR, dnsmasq files) and the
//! validated diagnostics tools (`ping`, `traceroute`, `arping`).

use std::process::ExitCode;

use super::commands::pretty;
use crate::config::Config;

/// Runs a validated diagnostics tool with the terminal attached (`--json`: captured, and
/// answered as one JSON object); refused arguments run nothing.
pub(super) fn run_tool(
    tool: &str,
    inv: Result<crate::diag::tools::Invocation, crate::diag::tools::ToolError>,
    json: bool,
) -> ExitCode {
    let inv = match inv {
        Ok(i) => i,
        Err(e) => {
            if json {
                println!("{}", pretty(&crate::diag::tools::refused_json(tool, &e)));
            }
            eprintln!("vr-agent: refused: {e}");
            return ExitCode::from(2);
        }
    };
    if json {
        let v = inv.run_json();
        println!("{}", pretty(&v));
        return if v["ok"] == true {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        };
    }
    match inv.command().status() {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(e) => {
            eprintln!("vr-agent: cannot run {}: {e}", inv.program);
            ExitCode::from(1)
        }
    }
}

/// The kernel's addressing read over rtnetlink, marked against the committed state.
pub(super) async fn addressing_view(
    cfg: &Config,
    view: fn(&crate::state::DesiredState, &crate::net::Snapshot) -> (String, serde_json::Value),
) -> (String, serde_json::Value) {
    let stored = crate::store::Store::open(&cfg.state_dir).and_then(|s| s.load());
    let sys = crate::net::exec::snapshot_now().await;
    match (stored, sys) {
        (Ok(stored), Ok(sys)) => view(&stored.state, &sys),
        (Err(e), _) => (
            format!("{e}\n"),
            serde_json::json!({"error": e.to_string()}),
        ),
        (_, Err(e)) => (
            format!("{e}\n"),
            serde_json::json!({"error": e.to_string()}),
        ),
    }
}

pub(super) fn print_view((text, body): (String, serde_json::Value), json: bool) -> ExitCode {
    if json {
        println!("{}", pretty(&body));
    } else {
        print!("{text}");
    }
    if body.get("error").is_some() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
