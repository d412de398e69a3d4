//! The local socket protocol: one JSON request line, one JSON response line. A `push`
//! request line is followed by the push itself, raw, of exactly the length it announces: the
//! agent reads no more than one push's size limit and keeps one copy of it, where a push
//! escaped inside an `apply` line costs the line plus the unescaped copy.

use serde::{Deserialize, Serialize};

/// Largest request line other than an inline `apply`.
pub const MAX_HEADER_BYTES: u64 = 64 * 1024;

/// Largest inline `apply` line. The line and the pushes parsed out of it are both in memory
/// while it is read (a 10 MB push inline peaks at 56 MiB, where a `push` of it stays at 42);
/// larger pushes go as a `push`, as `vr-agent apply` sends them.
pub const MAX_REQUEST_BYTES: u64 = 4 * 1024 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    /// Apply pushes in order, each on its own.
    Apply {
        dry_run: bool,
        pushes: Vec<PushFile>,
    },
    /// Apply one push whose `bytes` bytes follow the request line, raw, or, with `file`, the
    /// regular file whose descriptor came with the line (`SCM_RIGHTS`; what `vr-agent apply
    /// FILE` sends). Answered like an `apply` of that one push.
    Push {
        name: String,
        dry_run: bool,
        bytes: u64,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        file: bool,
    },
    /// A `push` of a passed file, as the socket hands it to the main loop (never on the
    /// wire): its text read in place (`intake::mapped_push`).
    #[serde(skip)]
    ApplyPassed {
        dry_run: bool,
        name: String,
        text: std::sync::Arc<super::passed_file::PushText>,
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
    /// The redundant pair (`vr-agent show ha`).
    ShowHa,
    /// Set the MTU of the NIC holding `address/prefix` in the desired state
    /// (`update_interface_config.sh`). The body names the device; none: no NIC holds it.
    SetMtu {
        address: std::net::Ipv4Addr,
        prefix: u8,
        mtu: u32,
    },
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
