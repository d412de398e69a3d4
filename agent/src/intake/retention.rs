//! What the spool keeps of processed pushes, and for how long. `done/` and `failed/` are for
//! an operator looking back at recent pushes; unbounded they fill the router's small disk, and
//! kept as sent they hold PSKs, passwords and user data in clear.
//!
//! - A push whose text names nothing secret is kept as it came.
//! - One that does is kept with its secrets replaced by `<redacted>` (parsed for that only
//!   when small; CloudStack's own pushes are a few KiB), or, when it is too large or not JSON,
//!   only its result is kept.
//! - A push the agent never read (oversized, not UTF-8, a name too long) keeps only its result.
//! - Each directory keeps the newest [`KEEP_COUNT`] pushes, none older than [`KEEP_AGE`], and
//!   at most [`KEEP_BYTES`] in all.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

use serde_json::Value;

/// Pushes kept per directory.
pub const KEEP_COUNT: usize = 500;

/// Age after which a processed push is removed.
pub const KEEP_AGE: Duration = Duration::from_secs(30 * 24 * 3600);

/// Bytes kept per directory (pushes and results together).
pub const KEEP_BYTES: u64 = 64 * 1024 * 1024;

/// Largest text parsed to redact it (a `serde_json::Value` costs several times its text).
const MAX_REDACT_BYTES: usize = 256 * 1024;

/// Words that may name a secret, matched case-insensitively on the raw text. A false match
/// only costs a redaction pass.
const MARKERS: &[&str] = &[
    "psk",
    "password",
    "secret",
    "key",
    "vm_metadata",
    "user-data",
    "userdata",
];

/// What to keep of a push's text.
#[derive(Debug, PartialEq, Eq)]
pub enum Kept {
    /// The text as sent (nothing secret in it).
    Original,
    /// The text with its secrets redacted.
    Redacted(String),
    /// Nothing: only the result is kept.
    Dropped,
}

/// Decides what of `text` may stay on disk.
pub fn keep(text: &str) -> Kept {
    // No lowercase copy: the text may be 16 MiB.
    let b = text.as_bytes();
    if !MARKERS.iter().any(|m| {
        b.windows(m.len())
            .any(|w| w.eq_ignore_ascii_case(m.as_bytes()))
    }) {
        return Kept::Original;
    }
    if text.len() > MAX_REDACT_BYTES {
        return Kept::Dropped;
    }
    if vr_cloudstack::is_aggregate(text) {
        let mut out = String::with_capacity(text.len());
        for line in text.lines() {
            if line.trim_start().starts_with('{') {
                match redact_doc(line) {
                    Some(l) => out.push_str(&l),
                    None => return Kept::Dropped,
                }
            } else {
                out.push_str(line);
            }
            out.push('\n');
        }
        return Kept::Redacted(out);
    }
    match redact_doc(text) {
        Some(t) => Kept::Redacted(t),
        None => Kept::Dropped,
    }
}

/// One JSON document with every value under a secret-bearing key redacted (the raw-text rule
/// of [`crate::parse::hide_secrets`]: there is no typed value of a stored push to ask).
fn redact_doc(text: &str) -> Option<String> {
    let mut v: Value = serde_json::from_str(text).ok()?;
    crate::parse::hide_secrets(&mut v);
    serde_json::to_string(&v).ok()
}

/// Removes the oldest processed pushes of `dir` beyond the count, age and size limits (a
/// push and its `.result.json` go together).
pub fn prune(dir: &Path, now: SystemTime) {
    // push name -> (newest mtime, bytes, files)
    let mut pushes: BTreeMap<String, (SystemTime, u64, Vec<std::path::PathBuf>)> = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let Ok(meta) = e.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        let name = e.file_name().to_string_lossy().into_owned();
        let key = name
            .strip_suffix(".result.json")
            .unwrap_or(&name)
            .to_string();
        let mtime = meta.modified().unwrap_or(now);
        let p = pushes.entry(key).or_insert((mtime, 0, Vec::new()));
        p.0 = p.0.max(mtime);
        p.1 += meta.len();
        p.2.push(e.path());
    }
    let mut list: Vec<_> = pushes.into_values().collect();
    // Newest first.
    list.sort_by_key(|p| std::cmp::Reverse(p.0));
    let mut bytes = 0u64;
    for (i, (mtime, size, files)) in list.into_iter().enumerate() {
        bytes += size;
        let old = now.duration_since(mtime).unwrap_or_default() > KEEP_AGE;
        if i >= KEEP_COUNT || old || bytes > KEEP_BYTES {
            for f in files {
                let _ = std::fs::remove_file(f);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_not_kept_in_clear() {
        assert_eq!(keep(r#"{"schema":1,"routes":[]}"#), Kept::Original);
        let native = r#"{"schema":1,"vpn":{"site_to_site":[{"name":"a","psk":"hunter2"}]}}"#;
        match keep(native) {
            Kept::Redacted(t) => {
                assert!(!t.contains("hunter2") && t.contains("<redacted>"), "{t}")
            }
            k => panic!("{k:?}"),
        }
        let vmdata = r#"{"type":"vmdata","delete_from_processed_cache":false,"vm_ip_address":"10.1.1.23","vm_metadata":[["userdata","user-data","c2VjcmV0"]]}"#;
        let cfg = format!("#Apache CloudStack Virtual Router Config File\n<version>\n1.0\n</version>\n<file>\n/var/cache/cloud/vm_metadata.json.a\n{vmdata}\n</file>\n");
        match keep(&cfg) {
            Kept::Redacted(t) => {
                assert!(!t.contains("c2VjcmV0") && t.contains("<file>"), "{t}")
            }
            k => panic!("{k:?}"),
        }
        assert_eq!(keep(r#"{"psk":"x", broken"#), Kept::Dropped);
        let big = format!(
            r#"{{"schema":1,"psk":"x","pad":"{}"}}"#,
            " ".repeat(MAX_REDACT_BYTES)
        );
        assert_eq!(keep(&big), Kept::Dropped);
    }

    #[test]
    fn prune_keeps_the_newest_within_count_and_age() {
        let tmp = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        for i in 0..(KEEP_COUNT + 5) {
            let p = tmp.path().join(format!("p{i:04}.json"));
            std::fs::write(&p, "{}").unwrap();
            std::fs::write(tmp.path().join(format!("p{i:04}.json.result.json")), "{}").unwrap();
            // p0000 is the oldest.
            let t = now - Duration::from_secs((KEEP_COUNT + 5 - i) as u64);
            for f in [p.clone(), p.with_extension("json.result.json")] {
                std::fs::File::options()
                    .write(true)
                    .open(&f)
                    .unwrap()
                    .set_modified(t)
                    .unwrap();
            }
        }
        let old = tmp.path().join("ancient.json");
        std::fs::write(&old, "{}").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&old)
            .unwrap()
            .set_modified(now - KEEP_AGE - Duration::from_secs(60))
            .unwrap();
        prune(tmp.path(), now);
        let left = std::fs::read_dir(tmp.path()).unwrap().count();
        assert_eq!(left, 2 * KEEP_COUNT);
        assert!(!old.exists());
        assert!(!tmp.path().join("p0004.json").exists());
        assert!(tmp.path().join("p0005.json.result.json").exists());
    }
}
