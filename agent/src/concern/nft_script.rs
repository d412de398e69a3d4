//! The `nft` command, for the side tables planned as nft text (`inet vr_stats` for usage,
//! `inet vr_rule_stats` for the metrics' rule counters): their plans are small, rare and read
//! back as JSON, where the main table (`ip vr`) goes through libnftnl batches.

use std::io::Write as _;
use std::process::{Command, Output};
use std::time::Duration;

use super::ConcernError;

/// Every `nft` run has this deadline.
const NFT_LIMIT: Duration = Duration::from_secs(10);

/// Runs `nft ARGS` with the deadline; a missing or hung `nft` is `Unavailable`.
pub fn nft(args: &[&str]) -> Result<Output, ConcernError> {
    crate::process::output_within(Command::new("nft").args(args), NFT_LIMIT)
        .map_err(|e| ConcernError::Unavailable(format!("nft {}: {e}", args.join(" "))))
}

/// Sends one plan for `table` with `nft -f` (one transaction: all of it or nothing).
pub fn send(table: &str, text: &str) -> Result<(), ConcernError> {
    let failed = |e: std::io::Error| ConcernError::Failed(format!("nft script: {e}"));
    let mut script = tempfile::NamedTempFile::new().map_err(failed)?;
    script.write_all(text.as_bytes()).map_err(failed)?;
    let path = script.path().to_string_lossy().into_owned();
    let out = nft(&["-f", &path])?;
    if !out.status.success() {
        return Err(ConcernError::Failed(format!(
            "nft refused the {table} plan: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Runs `f` (which calls `nft`) off the async loop.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ConcernError> + Send + 'static,
) -> Result<T, ConcernError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ConcernError::Failed(format!("nft task: {e}")))?
}

/// The ruleset generation (any change to any table moves it): the cheap drift probe.
pub fn generation() -> Option<u32> {
    vr_nat::netlink::ruleset_generation().ok()
}

/// The generations the agent's own batches made, when nobody else wrote in between: every
/// batch from `since` up to `latest` was the agent's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct OwnWrites {
    since: u32,
    latest: u32,
}

static OWN: std::sync::Mutex<Option<OwnWrites>> = std::sync::Mutex::new(None);

/// Records `batches` batches of the agent's own, sent between two reads of the generation.
/// They count as the agent's only if the generation moved by exactly that many (a batch the
/// kernel refused does not move it; a write by anybody else in between moves it further):
/// otherwise nothing is recorded and the next drift probe sees a change.
pub fn record_own_writes(before: Option<u32>, after: Option<u32>, batches: u32) {
    let (Some(b), Some(a)) = (before, after) else {
        return;
    };
    if batches == 0 || a != b.wrapping_add(batches) {
        return;
    }
    let mut own = OWN.lock().unwrap_or_else(|p| p.into_inner());
    *own = Some(match *own {
        // The chain of the agent's own writes goes on.
        Some(o) if o.latest == b => OwnWrites {
            since: o.since,
            latest: a,
        },
        // Somebody else wrote before `b`: a new chain starts there.
        _ => OwnWrites {
            since: b,
            latest: a,
        },
    });
}

/// Whether anybody but the agent changed nftables since a concern last saw generation `seen`
/// (unknown counts as changed: observing is always safe). Every nftables concern bumps the one
/// ruleset generation; without this, the rule counters' write after the nftables concern's in
/// every push sent the next self-heal pass to list and compare the 10,000-forward table
/// (140 ms of CPU and 20 MB of parsed listing, every few seconds after each push).
pub fn changed_by_others(seen: Option<u32>, now: Option<u32>) -> bool {
    let (Some(seen), Some(now)) = (seen, now) else {
        return true;
    };
    if seen == now {
        return false;
    }
    let own = *OWN.lock().unwrap_or_else(|p| p.into_inner());
    !own.is_some_and(|o| o.latest == now && o.since <= seen && seen <= now)
}

#[cfg(test)]
mod own_writes_tests {
    use super::*;

    #[test]
    fn only_a_chain_of_the_agents_own_batches_is_not_drift() {
        // One test: OWN is process-wide.
        assert!(changed_by_others(None, Some(3)));
        assert!(!changed_by_others(Some(3), Some(3)));
        // nftables writes 10 -> 11, then rule_stats 11 -> 13 (skeleton and elements).
        record_own_writes(Some(10), Some(11), 1);
        record_own_writes(Some(11), Some(13), 2);
        assert!(
            !changed_by_others(Some(11), Some(13)),
            "nftables after rule_stats"
        );
        assert!(!changed_by_others(Some(10), Some(13)));
        assert!(
            changed_by_others(Some(9), Some(13)),
            "seen before the chain"
        );
        assert!(
            changed_by_others(Some(11), Some(14)),
            "a write after the chain"
        );
        // Somebody wrote in between (13 -> 14), then the agent 14 -> 15: a new chain.
        record_own_writes(Some(14), Some(15), 1);
        assert!(
            changed_by_others(Some(13), Some(15)),
            "the foreign write is drift"
        );
        assert!(!changed_by_others(Some(14), Some(15)));
        // A batch that moved the generation by more than it sent is not recorded as own.
        record_own_writes(Some(15), Some(17), 1);
        assert!(changed_by_others(Some(15), Some(17)));
        // Nor one the kernel refused (no move).
        record_own_writes(Some(17), Some(17), 1);
        assert!(changed_by_others(Some(15), Some(17)));
    }
}
