//! The local socket protocol: one JSON request line, one JSON response line. A `push`
//! request line is followed by the push itself, raw, of exactly the length it announces: the
//! agent reads no more than one push's size limit and keeps one copy of it, where a push
//! escaped inside an `apply` line costs the line plus the unescaped copy.

use serde::{Deserialize, Serialize};

use crate::parse::MAX_PUSH_BYTES;

/// Largest request line other than an inline `apply`.
pub const MAX_HEADER_BYTES: u64 = 64 * 1024;

/// Largest inline `apply` line: one push at its size limit, with room for the JSON around it.
/// (A push whose escaping doubles it does not fit: send it as a `push`.)
pub const MAX_REQUEST_BYTES: u64 = MAX_PUSH_BYTES as u64 + MAX_HEADER_BYTES;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    /// Apply pushes in order, each on its own.
    Apply {
        dry_run: bool,
        pushes: Vec<PushFile>,
    },
    /// Apply one push whose `bytes` bytes follow the request line, raw (what `vr-agent apply`
    /// sends). Answered like an `apply` of that one push.
    Push {
        name: String,
        dry_run: bool,
        bytes: u64,
    },
    /// Agent status (`vr-agent status`).
    Status,
    /// The committed desired state, secrets redacted.
    ShowState,
    /// Recent push results.
    ShowPushes,
    /// Re-apply the committed state (`vr-agent reconcile`).
    Reconcile,
    /// What `reconcile` would change (`vr-agent diff`).
    Diff,
    /// Health checks (`vr-agent check`).
    Check,
    /// Site-to-site connections with their SAs (`vr-agent show vpn`).
    ShowVpn,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushFile {
    pub name: String,
    pub text: String,
}

/// Any answer: `ok` plus a JSON body that depends on the request.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Response {
    pub ok: bool,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub body: serde_json::Value,
}
