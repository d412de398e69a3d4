//! The robustness summary (issue 9): each long-running check records one row as it ends;
//! `vr-summary` (run by `scripts/test.sh` after the tests) prints them as one table.
//!
//! Rows live in `target/tmp/robustness/<check>.json`, so a row always belongs to the latest
//! run of its check; the table says how old each row is.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// One check's figures; `None` where the figure does not apply to the check.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Row {
    pub check: String,
    pub runs: u64,
    pub failures: u64,
    pub mixed_states: Option<u64>,
    pub leaked_secrets: Option<u64>,
    pub flows_lost_wrongly: Option<u64>,
    pub rss_start_kib: Option<u64>,
    pub rss_end_kib: Option<u64>,
    /// Free text: what a run is for this check.
    pub unit: String,
    /// Seconds since the epoch when recorded.
    #[serde(default)]
    pub at: u64,
}

/// Where rows are kept.
pub fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/tmp/robustness")
}

/// Records `row` (replacing the check's previous one). Never fails a test: the row is a report.
pub fn record(mut row: Row) {
    row.at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let d = dir();
    let _ = std::fs::create_dir_all(&d);
    if let Ok(text) = serde_json::to_string_pretty(&row) {
        let _ = std::fs::write(d.join(format!("{}.json", row.check)), text);
    }
}

/// Every recorded row, by check name.
pub fn load() -> Vec<Row> {
    let mut rows: Vec<Row> = std::fs::read_dir(dir())
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .filter_map(|t| serde_json::from_str(&t).ok())
        .collect();
    rows.sort_by(|a, b| a.check.cmp(&b.check));
    rows
}

/// The table, in Markdown.
pub fn table(rows: &[Row], now: u64) -> String {
    let opt = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_else(|| "-".into());
    let mut out = String::from(
        "| check | runs | failures | mixed states | leaked secrets | flows lost wrongly | RSS start (KiB) | RSS end (KiB) | recorded |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        out.push_str(&format!(
            "| {} | {} {} | {} | {} | {} | {} | {} | {} | {} s ago |\n",
            r.check,
            r.runs,
            r.unit,
            r.failures,
            opt(r.mixed_states),
            opt(r.leaked_secrets),
            opt(r.flows_lost_wrongly),
            opt(r.rss_start_kib),
            opt(r.rss_end_kib),
            now.saturating_sub(r.at)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_shows_missing_figures_as_dashes() {
        let t = table(
            &[Row {
                check: "crash loop".into(),
                runs: 500,
                unit: "kills".into(),
                mixed_states: Some(0),
                at: 90,
                ..Default::default()
            }],
            100,
        );
        assert!(
            t.contains("| crash loop | 500 kills | 0 | 0 | - | - | - | - | 10 s ago |"),
            "{t}"
        );
    }
}
