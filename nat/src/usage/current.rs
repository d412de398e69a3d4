//! What the kernel holds of the counting table, read back from `nft -j list table inet
//! vr_stats` (counters and hooks) and `nft list chain inet vr_stats count` (the rules, as
//! `nft` prints them, which is how [`super::rules`] writes them).

use std::collections::BTreeMap;

use super::{CHAIN, HOOKS};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Current {
    /// Counter name -> bytes.
    pub counters: BTreeMap<String, u64>,
    /// The rules of chain `count`, as `nft` prints them.
    pub rules: Vec<String>,
    /// Whether every hook chain jumps to `count`.
    pub hooked: bool,
}

/// Reads the JSON listing of the table and the text listing of chain `count` (empty when the
/// chain is missing).
pub fn parse_current(json: &str, count_chain: &str) -> Result<Current, String> {
    let v: serde_json::Value = serde_json::from_str(json).map_err(|e| format!("nft -j: {e}"))?;
    let mut cur = Current::default();
    let mut hooked = std::collections::BTreeSet::new();
    for item in v["nftables"].as_array().into_iter().flatten() {
        if let Some(c) = item.get("counter") {
            if let (Some(n), Some(b)) = (c["name"].as_str(), c["bytes"].as_u64()) {
                cur.counters.insert(n.to_string(), b);
            }
        }
        if let Some(r) = item.get("rule") {
            let jump = r["expr"].as_array().is_some_and(|e| {
                e.iter()
                    .any(|x| x["jump"]["target"].as_str() == Some(CHAIN))
            });
            let chain = r["chain"].as_str().unwrap_or("");
            if jump && HOOKS.contains(&chain) {
                hooked.insert(chain.to_string());
            }
        }
    }
    cur.hooked = hooked.len() == HOOKS.len();
    cur.rules = count_chain
        .lines()
        .map(str::trim)
        .filter(|l| l.contains("counter name"))
        .map(str::to_string)
        .collect();
    Ok(cur)
}
