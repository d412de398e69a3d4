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
