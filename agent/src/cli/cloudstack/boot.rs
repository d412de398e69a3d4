//! The CloudStack boot steps on KVM (contract §14, §15), done by `vr-agent run` when the
//! CloudStack directory (`--cloudstack-dir`, default `/var/cache/cloud`) exists:
//!
//! 1. before the replay, wait (bounded: `--cmdline-wait`) for the boot cmdline the hypervisor
//!    writes through the QEMU guest agent, `cmdline` in that directory, written since this
//!    boot (the file on disk from the previous start is stale: the hypervisor writes a new one
//!    at every start); install its `authorized_key` for root at once, so that SSH works as soon
//!    as sshd does;
//! 2. after the replay, apply the cmdline as a `cmdline` payload onto an empty state, before any
//!    other push: a new cmdline is CloudStack starting the router, which then sends everything
//!    again (upstream's `init.sh` deletes its stored JSON for the same reason), so what the
//!    previous start applied and the management server no longer sends must not survive. A
//!    boot without a new cmdline (a reboot the hypervisor did not drive) keeps the replayed
//!    state;
//! 3. once the socket and spool are served, write `boot_up_done`, the flag
//!    `get_template_version.sh` waits for before the management server pushes anything, and a
//!    marker under `--run-dir` (a tmpfs: once per boot) so that an agent restarted later in
//!    the same boot neither waits nor applies the cmdline again.
//!
//! `agent.zip`, `cloud-scripts.tgz` and `patch-sysvms.sh`, which the hypervisor copies in at
//! every start, are never read or run (the template version's signature hashes
//! `cloud-scripts.tgz`).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;

use crate::config::Config;
use vr_cloudstack::scripts::cmdline;

/// The flag `get_template_version.sh` waits for.
pub const BOOT_UP_DONE: &str = "boot_up_done";
/// The boot cmdline the hypervisor writes through the guest agent.
pub const CMDLINE: &str = "cmdline";
/// Under `--run-dir`: the boot steps were done in this boot.
const DONE_MARKER: &str = "cloudstack-boot-done";

/// Errors of installing root's key.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// cmd_line.authorized_key: not base64
    #[error("cmd_line.authorized_key: not base64")]
    Base64,
    /// cmd_line.authorized_key: not an OpenSSH public key line
    #[error("cmd_line.authorized_key: not an OpenSSH public key line")]
    NotAKey,
    /// cannot write {0}: {1}
    #[error("cannot write {0}: {1}")]
    Write(std::path::PathBuf, std::io::Error),
}

/// When this boot started (`btime` of /proc/stat); the epoch if unknown (every file is then
/// fresh, as before this check existed).
fn boot_time() -> SystemTime {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("btime "))
                .and_then(|v| v.trim().parse::<u64>().ok())
        })
        .map(|secs| SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

fn written_this_boot(path: &Path, boot: SystemTime) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .map(|t| t >= boot)
        .unwrap_or(false)
}

fn read_cmdline(path: &Path) -> Option<String> {
    let mut text = String::new();
    std::fs::File::open(path)
        .ok()?
        .take(cmdline::MAX_CMDLINE_BYTES)
        .read_to_string(&mut text)
        .ok()?;
    (!text.trim().is_empty()).then_some(text)
}

/// Step 1: the boot cmdline's key/values, or `None` (no CloudStack directory, or no cmdline
/// written this boot within the wait).
pub async fn wait_cmdline(cfg: &Config) -> Option<BTreeMap<String, String>> {
    let dir = &cfg.cloudstack_dir;
    if !dir.is_dir() {
        return None;
    }
    let boot = boot_time();
    if written_this_boot(&cfg.run_dir.join(DONE_MARKER), boot) {
        tracing::info!("CloudStack boot steps already done in this boot");
        return None;
    }
    let flag = dir.join(BOOT_UP_DONE);
    if flag.exists() && !written_this_boot(&flag, boot) {
        // Left by the previous boot: the management server must wait for this one.
        let _ = std::fs::remove_file(&flag);
    }
    let path = dir.join(CMDLINE);
    let deadline = Instant::now() + Duration::from_secs(cfg.cmdline_wait);
    let mut logged = false;
    let text = loop {
        if written_this_boot(&path, boot) {
            if let Some(t) = read_cmdline(&path) {
                // The guest agent opens, writes and closes: give a write in flight a moment and
                // take what is there then.
                tokio::time::sleep(Duration::from_millis(200)).await;
                break read_cmdline(&path).unwrap_or(t);
            }
        }
        if Instant::now() >= deadline {
            tracing::warn!(
                "no boot cmdline in {} after {} s; starting from the stored state",
                path.display(),
                cfg.cmdline_wait
            );
            return None;
        }
        if !logged {
            tracing::info!("waiting for the boot cmdline {}", path.display());
            logged = true;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let map = cmdline::parse(&text);
    tracing::info!(
        keys = map.len(),
        "boot cmdline read from {}",
        path.display()
    );
    if let Some(key) = map.get("authorized_key") {
        match install_authorized_key(&cfg.authorized_keys, key) {
            Ok(()) => tracing::info!(
                "root's authorized key installed in {}",
                cfg.authorized_keys.display()
            ),
            Err(e) => tracing::error!("{e}"),
        }
    }
    Some(map)
}

/// Writes the decoded `authorized_key` (base64 of the management server's public key, padding
/// optional: upstream's parser cut it) as root's only key: 0600, atomically, in a 0700
/// directory. The value is checked to be key lines and never logged.
pub fn install_authorized_key(path: &Path, b64: &str) -> Result<(), KeyError> {
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let bytes = engine.decode(b64.trim()).map_err(|_| KeyError::Base64)?;
    let text = String::from_utf8(bytes).map_err(|_| KeyError::NotAKey)?;
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let key_like = |l: &&str| {
        let mut w = l.split_whitespace();
        matches!(
            (w.next(), w.next()),
            (Some(t), Some(_)) if t.starts_with("ssh-") || t.starts_with("ecdsa-") || t.starts_with("sk-")
        )
    };
    if lines.is_empty() || !lines.iter().all(key_like) {
        return Err(KeyError::NotAKey);
    }
    let write = |e| KeyError::Write(path.to_path_buf(), e);
    if let Some(dir) = path.parent() {
        if !dir.is_dir() {
            std::fs::create_dir_all(dir).map_err(write)?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(write)?;
        }
    }
    let mut out = lines.join("\n");
    out.push('\n');
    crate::store::write_atomic(path, out.as_bytes()).map_err(write)
}

/// Step 3: the management server may query and push now.
pub fn mark_boot_done(cfg: &Config) {
    if !cfg.cloudstack_dir.is_dir() {
        return;
    }
    let flag = cfg.cloudstack_dir.join(BOOT_UP_DONE);
    match crate::store::write_atomic(&flag, b"") {
        Ok(()) => tracing::info!("{} written", flag.display()),
        Err(e) => tracing::error!("cannot write {}: {e}", flag.display()),
    }
    let marker = cfg.run_dir.join(DONE_MARKER);
    let written = std::fs::create_dir_all(&cfg.run_dir)
        .and_then(|()| crate::store::write_atomic(&marker, b""));
    if let Err(e) = written {
        tracing::warn!("cannot write {}: {e}", marker.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_installed_private_and_atomic_padding_optional() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("ssh/authorized_keys");
        let key = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ test@ms\n";
        let b64 = base64::engine::general_purpose::STANDARD.encode(key);
        install_authorized_key(&path, b64.trim_end_matches('=')).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), key);
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        let junk = base64::engine::general_purpose::STANDARD.encode("rm -rf /\n");
        assert!(matches!(
            install_authorized_key(&path, &junk),
            Err(KeyError::NotAKey)
        ));
        assert!(matches!(
            install_authorized_key(&path, "!!"),
            Err(KeyError::Base64)
        ));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), key);
    }
}
