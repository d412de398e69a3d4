//! What the query verbs ask the running agent: one request with a deadline, where it keeps
//! its state, and the committed state itself (with the state file as the fallback).

use std::path::PathBuf;
use std::time::Duration;

use crate::config::Config;
use crate::intake::protocol::{Request, Response};
use crate::intake::socket;

/// One request to the running agent within `limit`. `None`: no agent, no answer in time, or
/// an unreadable answer (the verbs then answer as their script did when it could not tell).
pub(crate) async fn ask(cfg: &Config, req: Request, limit: Duration) -> Option<Response> {
    match tokio::time::timeout(limit, socket::call(&cfg.socket, &req)).await {
        Ok(Ok(Some(r))) => Some(r),
        _ => None,
    }
}

/// Where the agent keeps its state: the running agent says (it may run with another
/// `--state-dir` than this command line got); without an answer, the configured one.
pub(crate) async fn state_dir(cfg: &Config) -> PathBuf {
    ask(cfg, Request::Status, Duration::from_secs(5))
        .await
        .and_then(|r| r.body["state_dir"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| cfg.state_dir.clone())
}

/// The committed state (secrets redacted): from the agent, else from the state file.
pub(crate) async fn committed_state(cfg: &Config) -> Option<serde_json::Value> {
    if let Some(r) = ask(cfg, Request::ShowState, Duration::from_secs(10)).await {
        if r.ok {
            return Some(r.body);
        }
    }
    let stored = crate::store::Store::open(&cfg.state_dir)
        .and_then(|s| s.load())
        .ok()?;
    Some(crate::redact::redacted(&stored))
}
