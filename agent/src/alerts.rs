//! The agent's alerts log: what it did on its own that an operator (or CloudStack's
//! `getRouterAlerts.sh`, which reads it) must hear about: self-heal repairs (a deleted nftables
//! table put back, a dead dnsmasq started again), repairs that failed, and pushes that were
//! rejected or rolled back.
//!
//! One line per alert in `<state-dir>/alerts.log` (0600), in the format of Python logging's
//! `asctime` that CloudStack's monitor wrote: `YYYY-MM-DD HH:MM:SS,mmm [ALERT] [<concern>]
//! <text>` (UTC). The text never carries a secret: callers pass concern names, counts and push
//! names only, never daemon output or pushed values. Control characters and backslashes are
//! replaced, so an alert is one line and never contains the `\n` that separates alerts on the
//! wire. The file is bounded: past [`MAX_BYTES`] its older half is dropped.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use crate::concern::{Outcome, Status};

/// Largest alerts log kept; the older half goes when an append would pass it.
pub const MAX_BYTES: u64 = 256 * 1024;
/// Longest alert text kept (characters).
const MAX_TEXT: usize = 300;

pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("alerts.log")
}

/// Appends one alert; a failure to write is logged, never fatal (the alert is also in the log).
pub fn record(state_dir: &Path, concern: &str, text: &str) {
    let line = line(now_millis(), concern, text);
    if let Err(e) = append(&path(state_dir), &line) {
        tracing::warn!(
            "cannot write the alerts log in {}: {e}",
            state_dir.display()
        );
    }
}

/// A push rejected as invalid: the count, never the values (an invalid value may be a
/// mistyped secret).
pub fn push_rejected(state_dir: &Path, push: &str, invalid: usize) {
    record(
        state_dir,
        "push",
        &format!("push {push} rejected: {invalid} invalid value(s)"),
    );
}

/// A push that failed: the failed concerns' names only (their error text may quote daemon
/// output).
pub fn push_failed(state_dir: &Path, push: &str, outcomes: &[Outcome], rolled_back: bool) {
    let failed: Vec<&str> = outcomes
        .iter()
        .filter(|o| matches!(o.status, Status::Failed(_)))
        .map(|o| o.concern)
        .collect();
    record(
        state_dir,
        "push",
        &format!(
            "push {push} failed in {}; {}",
            failed.join(", "),
            if rolled_back {
                "rolled back"
            } else {
                "rollback incomplete, retrying"
            }
        ),
    );
}

/// A self-heal repair (or a failed one) of one concern.
pub fn healed(state_dir: &Path, o: &Outcome) {
    let text = match (&o.status, o.concern) {
        (Status::Failed(_), _) => "self-heal: repair failed; see vr-agent status".to_string(),
        (_, "dhcp") => "self-heal: dnsmasq was down or its files changed; started/rewritten".into(),
        (_, "nftables") => format!(
            "self-heal: nftables ruleset deleted or changed by hand; restored ({} change(s))",
            o.changes
        ),
        // A re-created counter starts from 0; the MS takes the lower reading as a reset.
        (_, "usage") => format!(
            "self-heal: vr_stats counting table deleted or changed by hand; restored ({} change(s)); re-created counters restart from 0",
            o.changes
        ),
        (_, c) => format!(
            "self-heal: {c} drifted from the desired state; repaired ({} change(s))",
            o.changes
        ),
    };
    record(state_dir, o.concern, &text);
}

fn append(file: &Path, line: &str) -> std::io::Result<()> {
    let len = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    if len + line.len() as u64 > MAX_BYTES {
        // Keep the newer half, from a line start, and replace the file atomically.
        let text = std::fs::read_to_string(file).unwrap_or_default();
        // Search the bytes: the middle may fall inside a multi-byte character (push names
        // are not ASCII-only), and slicing the string there would panic the engine.
        let cut = text.len() / 2;
        let keep = match text.as_bytes()[cut..].iter().position(|b| *b == b'\n') {
            Some(i) => &text[cut + i + 1..],
            None => "",
        };
        crate::store::write_atomic(file, keep.as_bytes())?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(file)?;
    f.write_all(line.as_bytes())
}

/// One alert line, newline included.
pub fn line(epoch_ms: u64, concern: &str, text: &str) -> String {
    let clean = |s: &str, max: usize| -> String {
        s.chars()
            .map(|c| if c.is_control() || c == '\\' { ' ' } else { c })
            .take(max)
            .collect()
    };
    format!(
        "{} [ALERT] [{}] {}\n",
        timestamp(epoch_ms),
        clean(concern, 40).replace(['[', ']'], ""),
        clean(text, MAX_TEXT).trim()
    )
}

pub fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `YYYY-MM-DD HH:MM:SS,mmm` in UTC.
pub fn timestamp(epoch_ms: u64) -> String {
    let (date, secs) = date_time(epoch_ms / 1000);
    format!("{date} {secs},{:03}", epoch_ms % 1000)
}

/// (`YYYY-MM-DD`, `HH:MM:SS`) of a Unix time, UTC.
pub fn date_time(epoch_secs: u64) -> (String, String) {
    let days = (epoch_secs / 86_400) as i64;
    let rem = epoch_secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    (
        format!("{y:04}-{m:02}-{d:02}"),
        format!("{:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60),
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_in_python_logging_format() {
        assert_eq!(timestamp(0), "1970-01-01 00:00:00,000");
        // 2024-11-30 08:00:00.123 UTC, the contract's example.
        assert_eq!(timestamp(1_732_953_600_123), "2024-11-30 08:00:00,123");
        // A leap day and the end of a leap year.
        assert_eq!(date_time(951_782_400).0, "2000-02-29");
        assert_eq!(date_time(1_735_689_599).1, "23:59:59");
        assert_eq!(date_time(1_735_689_599).0, "2024-12-31");
    }

    #[test]
    fn a_line_is_one_line_without_backslashes_or_brackets_in_the_concern() {
        let l = line(0, "nft[ables]", "table vr\nwas \\n deleted\r");
        assert_eq!(
            l,
            "1970-01-01 00:00:00,000 [ALERT] [nftables] table vr was  n deleted\n"
        );
    }

    #[test]
    fn the_log_is_halved_at_a_line_even_when_its_middle_splits_a_character() {
        let dir = tempfile::tempdir().unwrap();
        let file = path(dir.path());
        // "x", then an odd number of two-byte characters, then a newline: the byte in the
        // middle is the second byte of an "é".
        let pairs = (MAX_BYTES as usize / 2) | 1;
        let big = format!("x{}\n", "é".repeat(pairs));
        assert!(!big.is_char_boundary(big.len() / 2));
        std::fs::write(&file, &big).unwrap();
        record(dir.path(), "push", "push é rejected: 1 invalid value(s)");
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.len() < big.len(), "halved: {} bytes", text.len());
        assert_eq!(text.lines().count(), 1, "only the new line is left");
        assert!(text.ends_with("[ALERT] [push] push é rejected: 1 invalid value(s)\n"));
    }

    #[test]
    fn push_and_heal_alerts_name_concerns_never_their_error_text() {
        let dir = tempfile::tempdir().unwrap();
        let failed = |c: &'static str| Outcome {
            concern: c,
            status: Status::Failed("charon said: secret = hunter2".into()),
            changes: 1,
            millis: 0.0,
        };
        push_failed(dir.path(), "vpn.json", &[failed("vpn")], true);
        push_rejected(dir.path(), "bad.json", 2);
        healed(dir.path(), &failed("vpn"));
        healed(
            dir.path(),
            &Outcome {
                concern: "nftables",
                status: Status::Applied,
                changes: 3,
                millis: 0.0,
            },
        );
        healed(
            dir.path(),
            &Outcome {
                concern: "usage",
                status: Status::Applied,
                changes: 6,
                millis: 0.0,
            },
        );
        let text = std::fs::read_to_string(path(dir.path())).unwrap();
        assert!(!text.contains("hunter2"), "{text}");
        let lines: Vec<&str> = text.lines().map(|l| &l[24..]).collect();
        assert_eq!(
            lines,
            [
                "[ALERT] [push] push vpn.json failed in vpn; rolled back",
                "[ALERT] [push] push bad.json rejected: 2 invalid value(s)",
                "[ALERT] [vpn] self-heal: repair failed; see vr-agent status",
                "[ALERT] [nftables] self-heal: nftables ruleset deleted or changed by hand; restored (3 change(s))",
                "[ALERT] [usage] self-heal: vr_stats counting table deleted or changed by hand; restored (6 change(s)); re-created counters restart from 0",
            ]
        );
    }

    #[test]
    fn the_log_stays_bounded_and_keeps_the_newest_alerts() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..5000 {
            record(dir.path(), "test", &format!("alert number {i}"));
        }
        let text = std::fs::read_to_string(path(dir.path())).unwrap();
        assert!(text.len() as u64 <= MAX_BYTES, "{}", text.len());
        assert!(text.ends_with("alert number 4999\n"));
        assert!(text
            .lines()
            .all(|l| l.contains("[ALERT] [test] alert number")));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
