//! `vr-agent ha primary|backup|fault` (keepalived's notify hooks) and `vr-agent show ha`.
//!
//! A transition is an ordinary push, `{"schema": 1, "ha_role": ROLE}`, sent to the running
//! agent: it is validated, logged, planned (public NICs, guest services, tunnels, conntrackd
//! commit), persisted with the rest of the state and shown in `show pushes`. keepalived runs
//! the hooks in its own processes, so a hook that waits for a push in progress delays nothing.

use std::process::ExitCode;

use super::commands::pretty;
use super::query::query;
use crate::config::Config;
use crate::intake::protocol::Request;
use crate::intake::socket;

/// How long a notify hook waits for an agent that does not answer yet.
const NOTIFY_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

pub(super) async fn transition(cfg: &Config, role: &str) -> ExitCode {
    let Some(role) = vr_ha::HaRole::parse(role) else {
        eprintln!("vr-agent: ha: unknown role {role:?} (primary, backup, fault)");
        return ExitCode::from(2);
    };
    let text = serde_json::json!({"schema": 1, "ha_role": role}).to_string();
    let name = format!("ha-{role}");
    // keepalived runs this hook once per transition and never again: an agent that is still
    // replaying at its start (the socket is bound after the replay, and the replay starts
    // keepalived) or restarting must not lose it. The hook waits for the agent, within a
    // deadline; a role pushed twice is the same state.
    let deadline = std::time::Instant::now() + NOTIFY_WAIT;
    let answer = loop {
        match socket::push(&cfg.socket, &name, false, &text).await {
            Ok(None) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            other => break other,
        }
    };
    match answer {
        Ok(Some(resp)) if resp.ok && resp.error.is_none() => {
            let all_ok = resp
                .body
                .as_array()
                .is_some_and(|a| a.iter().all(|r| r["ok"].as_bool() == Some(true)));
            if all_ok {
                println!("ha: {role}");
                ExitCode::SUCCESS
            } else {
                eprintln!("vr-agent: ha {role}: {}", pretty(&resp.body));
                ExitCode::from(1)
            }
        }
        Ok(Some(resp)) => {
            eprintln!(
                "vr-agent: ha {role}: {}",
                resp.error.unwrap_or_else(|| pretty(&resp.body))
            );
            ExitCode::from(1)
        }
        Ok(None) => {
            eprintln!(
                "vr-agent: ha {role}: no agent answers on {}",
                cfg.socket.display()
            );
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("vr-agent: ha {role}: {}: {e}", cfg.socket.display());
            ExitCode::from(1)
        }
    }
}

pub(super) async fn show(cfg: &Config, json: bool) -> ExitCode {
    query(cfg, Request::ShowHa, json, print).await
}

fn print(b: &serde_json::Value) {
    if b["redundant"].as_bool() != Some(true) {
        println!("single router (not part of a redundant pair)");
        return;
    }
    let s = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "-".into(),
        other => other.to_string(),
    };
    println!("role:       {}", s(&b["role"]));
    println!(
        "vrrp:       router id {}, priority {}, advert {} ms, VRRPv{}",
        s(&b["router_id"]),
        s(&b["priority"]),
        s(&b["advert_int_ms"]),
        s(&b["vrrp_version"])
    );
    println!("peer:       {}", s(&b["peer"]));
    println!(
        "daemons:    keepalived {}, conntrackd {}",
        s(&b["keepalived_pid"]),
        s(&b["conntrackd_pid"])
    );
    if let Some(ts) = b["transitions"].as_array() {
        println!("transitions:");
        for t in ts {
            println!("  {} {} -> {}", s(&t["at"]), s(&t["from"]), s(&t["to"]));
        }
    }
    if let Some(m) = b["conntrackd"].as_object() {
        for (k, v) in m {
            println!("conntrackd {k}: {}", v);
        }
    }
}
