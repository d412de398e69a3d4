//! The spool directory (`--spool-dir`): the management server drops a push as a file (written
//! under a temp name, then renamed). The agent processes files in name order, one at a time,
//! and moves each to `done/` or `failed/` with `<name>.result.json` beside it.
//!
//! Every notification just triggers a full scan of the directory: a scan is cheap, it makes
//! the order independent of event order, and it covers inotify queue overflows (the rescan
//! flag) and files that were there before the watch started.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use notify::RecursiveMode;
use notify_debouncer_full::{new_debouncer, DebounceEventResult, Debouncer, RecommendedCache};
use tokio::sync::mpsc;

use super::retention::{self, Kept};
use crate::parse::MAX_PUSH_BYTES;
use crate::push::PushResult;

/// A file modified more recently than this may still be being written in place: wait.
pub const SETTLE: Duration = Duration::from_millis(300);

/// A file whose JSON ends early is given this long since its last change to be completed by a
/// slow writer before it is rejected as truncated.
pub const INCOMPLETE_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct Spool {
    pub dir: PathBuf,
}

/// A file taken from the spool.
#[derive(Debug)]
pub struct Taken {
    pub path: PathBuf,
    pub name: String,
    /// The text, or why it could not be read as a push.
    pub text: Result<String, String>,
}

impl Spool {
    pub fn new(dir: PathBuf) -> Spool {
        Spool { dir }
    }

    /// Creates the spool, `done/` and `failed/` (also after someone deleted them).
    pub fn ensure_dirs(&self) -> io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        // Processed pushes keep their secrets (PSKs): only root reads what lands here.
        for sub in ["done", "failed"] {
            let d = self.dir.join(sub);
            std::fs::create_dir_all(&d)?;
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(())
    }

    /// Files ready for processing, in name order, and whether some are still settling.
    pub fn scan(&self) -> io::Result<(Vec<PathBuf>, bool)> {
        let mut ready = Vec::new();
        let mut settling = false;
        let mut first_settling: Option<PathBuf> = None;
        let now = SystemTime::now();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            // Names that are not UTF-8 are taken too: they are rejected with a result instead
            // of sitting in the spool unseen.
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if is_writer_temp(&name) {
                continue;
            }
            let meta = match entry.metadata() {
                Ok(m) => m,
                Err(_) => continue, // renamed away meanwhile
            };
            if !meta.is_file() {
                continue;
            }
            let age = meta
                .modified()
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .unwrap_or(SETTLE);
            if age < SETTLE {
                settling = true;
                let path = entry.path();
                first_settling = Some(match first_settling {
                    Some(f) if f < path => f,
                    _ => path,
                });
                continue;
            }
            ready.push(entry.path());
        }
        ready.sort();
        // Name order holds across settling files too: a ready file waits for a settling one
        // whose name comes first.
        if let Some(first) = first_settling {
            ready.retain(|p| *p < first);
        }
        Ok((ready, settling))
    }

    /// Reads a file, refusing oversized ones before reading them, and ones whose name cannot
    /// carry a result (not UTF-8, too long) without reading them.
    pub fn take(&self, path: &Path) -> Taken {
        let os_name = path.file_name().unwrap_or_default();
        let name = os_name.to_string_lossy().into_owned();
        if let Some(why) = name_problem(os_name) {
            return Taken {
                path: path.to_path_buf(),
                name,
                text: Err(why),
            };
        }
        let text = (|| {
            let f = std::fs::File::open(path).map_err(|e| format!("cannot read: {e}"))?;
            let len = f.metadata().map_err(|e| format!("cannot read: {e}"))?.len();
            if len > MAX_PUSH_BYTES as u64 {
                return Err(format!("(document): push of {len} bytes is larger than the {MAX_PUSH_BYTES}-byte limit"));
            }
            let mut bytes = Vec::with_capacity(len as usize);
            f.take(MAX_PUSH_BYTES as u64 + 1)
                .read_to_end(&mut bytes)
                .map_err(|e| format!("cannot read: {e}"))?;
            String::from_utf8(bytes).map_err(|e| {
                format!(
                    "(document): not UTF-8 at byte {}",
                    e.utf8_error().valid_up_to()
                )
            })
        })();
        Taken {
            path: path.to_path_buf(),
            name,
            text,
        }
    }

    /// Whether a taken file looks cut short (JSON ending early, a `.cfg` container not ending
    /// with a `</script>`) and is young enough that its writer may still be appending to it in
    /// place.
    pub fn still_being_written(&self, taken: &Taken) -> bool {
        let Ok(text) = &taken.text else { return false };
        let truncated = if vr_cloudstack::is_aggregate(text) {
            vr_cloudstack::aggregate::cut_short(text)
        } else if text.trim_start().starts_with('{') {
            matches!(
                serde_json::from_str::<serde::de::IgnoredAny>(text),
                Err(e) if e.is_eof()
            )
        } else {
            false
        };
        let age = std::fs::metadata(&taken.path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|m| SystemTime::now().duration_since(m).ok())
            .unwrap_or(INCOMPLETE_GRACE);
        truncated && age < INCOMPLETE_GRACE
    }

    /// Moves the file to `done/` or `failed/` (under [`stored_name`], secrets redacted, see
    /// [`retention`]) and writes its result beside it; then prunes that directory.
    pub fn finish(&self, taken: &Taken, result: &PushResult) -> io::Result<()> {
        let sub = if result.ok { "done" } else { "failed" };
        let dest_dir = self.dir.join(sub);
        self.ensure_dirs()?;
        let stored = stored_name(taken.path.file_name().unwrap_or_default());
        // Through the one redaction every output takes.
        let mut json = serde_json::to_vec_pretty(&crate::redact::redacted(result))
            .map_err(io::Error::other)?;
        json.push(b'\n');
        let kept = match &taken.text {
            Ok(text) => retention::keep(text),
            // Never read (too large, not UTF-8, bad name): only its result stays.
            Err(_) => Kept::Dropped,
        };
        // The push leaves the spool before its result appears: a writer that sees the result
        // then finds the push where the result says (a test that did not raced the rename).
        let moved = (|| match kept {
            Kept::Original => {
                // The push was written with its writer's umask: root only, before it moves (a
                // missing file is the rename's error to report).
                use std::os::unix::fs::PermissionsExt;
                let _ =
                    std::fs::set_permissions(&taken.path, std::fs::Permissions::from_mode(0o600));
                std::fs::rename(&taken.path, dest_dir.join(&stored))
            }
            Kept::Redacted(text) => {
                crate::store::write_atomic(&dest_dir.join(&stored), text.as_bytes())?;
                std::fs::remove_file(&taken.path)
            }
            Kept::Dropped => std::fs::remove_file(&taken.path),
        })();
        // The result is written even when the push could not be moved (the caller sets it
        // aside): the writer learns what happened either way.
        crate::store::write_atomic(&dest_dir.join(format!("{stored}.result.json")), &json)?;
        moved?;
        retention::prune(&dest_dir, SystemTime::now());
        Ok(())
    }

    /// Last resort for a push that could not be finished: out of the next scan's way under a
    /// dot name (a push must not be applied twice), or, failing that, removed.
    pub fn set_aside(&self, taken: &Taken) {
        let stored = stored_name(taken.path.file_name().unwrap_or_default());
        let aside = self.dir.join(format!(".unmovable.{stored}"));
        if std::fs::rename(&taken.path, &aside).is_err() {
            if let Err(e) = std::fs::remove_file(&taken.path) {
                tracing::error!(file = %taken.path.display(), "cannot set aside: {e}");
            }
        }
    }
}

/// Longest spool name kept as it is: the result (`<name>.result.json`) and the temp file it is
/// written through (`.<name>.result.json.tmp.<pid>`) must fit in the 255 bytes of a name.
pub const MAX_NAME_BYTES: usize = 200;

/// Why a push's file name cannot be used (None: it can).
fn name_problem(name: &std::ffi::OsStr) -> Option<String> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = name.as_bytes();
    if std::str::from_utf8(bytes).is_err() {
        return Some(format!(
            "(document): file name is not UTF-8; kept as {}",
            stored_name(name)
        ));
    }
    if bytes.len() > MAX_NAME_BYTES {
        return Some(format!(
            "(document): file name of {} bytes is longer than {MAX_NAME_BYTES} (its result name would not fit); kept as {}",
            bytes.len(),
            stored_name(name)
        ));
    }
    None
}

/// The name a processed push and its result are kept under: the file's own name, or for a
/// name that is not UTF-8 or too long, a short one: its start, `~`, and a hash of all of it.
pub fn stored_name(name: &std::ffi::OsStr) -> String {
    use std::os::unix::ffi::OsStrExt;
    let bytes = name.as_bytes();
    match std::str::from_utf8(bytes) {
        Ok(s) if s.len() <= MAX_NAME_BYTES => s.to_string(),
        _ => {
            // FNV-1a: stable across builds, so the same name always maps to the same file.
            let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
            });
            let lossy = String::from_utf8_lossy(bytes);
            let mut cut = 120.min(lossy.len());
            while !lossy.is_char_boundary(cut) {
                cut -= 1;
            }
            let head: String = lossy[..cut]
                .chars()
                .map(|c| {
                    if c == char::REPLACEMENT_CHARACTER {
                        '_'
                    } else {
                        c
                    }
                })
                .collect();
            format!("{head}~{hash:016x}")
        }
    }
}

/// Writers' temporary names: dot-files and `*.tmp`.
pub fn is_writer_temp(name: &str) -> bool {
    name.starts_with('.') || name.ends_with(".tmp") || name.ends_with(".result.json")
}

/// Watches the spool directory; every debounced batch of events sends one wake-up.
pub fn watch(
    dir: &Path,
    wake: mpsc::Sender<()>,
) -> notify::Result<Debouncer<notify::RecommendedWatcher, RecommendedCache>> {
    let mut debouncer = new_debouncer(
        Duration::from_millis(50),
        None,
        move |res: DebounceEventResult| {
            if let Err(errors) = &res {
                tracing::warn!("spool watch: {errors:?}");
            }
            // Full scan on any event, error or rescan flag alike; a full channel means a scan is
            // already queued.
            let _ = wake.try_send(());
        },
    )?;
    debouncer.watch(dir, RecursiveMode::NonRecursive)?;
    Ok(debouncer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_orders_by_name_and_skips_temp_files() {
        let tmp = tempfile::tempdir().unwrap();
        let spool = Spool::new(tmp.path().to_path_buf());
        spool.ensure_dirs().unwrap();
        for n in ["b.json", "a.json", ".c.json", "d.json.tmp"] {
            std::fs::write(tmp.path().join(n), "{}").unwrap();
        }
        std::thread::sleep(SETTLE);
        let (ready, settling) = spool.scan().unwrap();
        let names: Vec<_> = ready
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap().to_string())
            .collect();
        assert_eq!(names, ["a.json", "b.json"]);
        assert!(!settling);
        std::fs::write(tmp.path().join("e.json"), "{").unwrap();
        let (_, settling) = spool.scan().unwrap();
        assert!(settling, "a file just written is left to settle");
        std::fs::write(tmp.path().join("0.json"), "{").unwrap();
        let (ready, _) = spool.scan().unwrap();
        assert!(
            ready.is_empty(),
            "a settling file named first holds back the later names: {ready:?}"
        );
    }

    #[test]
    fn invalid_utf8_and_oversize_are_reported_not_read() {
        let tmp = tempfile::tempdir().unwrap();
        let spool = Spool::new(tmp.path().to_path_buf());
        let p = tmp.path().join("x.json");
        std::fs::write(&p, b"{\"schema\":1,\xff}").unwrap();
        assert!(spool
            .take(&p)
            .text
            .unwrap_err()
            .contains("not UTF-8 at byte 12"));
        let f = std::fs::File::create(&p).unwrap();
        f.set_len(MAX_PUSH_BYTES as u64 + 1).unwrap();
        assert!(spool.take(&p).text.unwrap_err().contains("limit"));
    }
}
