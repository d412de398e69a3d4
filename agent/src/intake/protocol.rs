//! The local socket protocol: one JSON request line, one JSON response line.

use serde::{Deserialize, Serialize};

/// Largest request line: a few pushes at their size limit.
pub const MAX_REQUEST_BYTES: u64 = 4 * crate::parse::MAX_PUSH_BYTES as u64;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    /// Apply pushes in order, each on its own.
    Apply {
        dry_run: bool,
        pushes: Vec<PushFile>,
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
