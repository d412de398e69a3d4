//! The state directory: `state.json` (a snapshot of the desired state applied successfully,
//! with its generation), `state.journal` (the pushes committed since that snapshot, as
//! deltas), `state.good` (the last-known-good copy of the snapshot) and `lock` (one applier
//! at a time).
//!
//! The committed state is the snapshot plus every committed journal record after its
//! generation, in order. A push appends an intent record (generation N+1 and the delta from
//! generation N, see [`delta`]) with fdatasync, executes, then appends a commit record
//! (fdatasync). The cost of persisting a push follows its change, not the size of the state:
//! a one-rule change of a 10,000-rule list writes a record of one rule.
//!
//! Crash safety: records carry a length and a crc32 ([`journal`]); a torn or corrupt tail is
//! cut off, never applied. An intent without its commit at the end of the journal belongs to
//! a push that never reported success: [`Store::has_next`] says so, the engine converges the
//! system back to the committed state and [`Store::discard_next`] cuts the intent off. So a
//! crash at any instant leaves the old or the new state to replay, never a mix.
//!
//! Compaction: past a bound (more journal bytes than the snapshot holds, or 1,024 records),
//! the engine, once the push is answered ([`Store::compact_if_due`]), writes the committed
//! state as a new snapshot (temp + fsync + rename + fsync of the directory), copies it to
//! `state.good`, then empties the journal. The commit itself compacts only when asked to
//! (an unreadable snapshot; a forgotten password, which must leave the journal now) or at
//! four times the bounds. The snapshot names
//! its generation and records at or below it are skipped, so every instant in between reads
//! old-or-new.
//!
//! Survival: `state.good` is refreshed at every compaction, and the journal continues it as
//! it continues the snapshot. A `state.json` that cannot be read (truncated, corrupt, written
//! by a newer version) is then not a permanent outage: [`Store::load_recovering`] starts from
//! `state.good` plus the journal and says why, loudly; the next commit writes a good
//! `state.json` again. A journal corrupt in its middle (not a torn tail) is applied up to the
//! corruption, said the same way, and the next push starts a new journal.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};

use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::state::DesiredState;

mod append;
pub mod delta;
pub mod journal;
mod replay;
#[cfg(test)]
mod tests;

/// Errors of the state directory.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// cannot use state directory {0}: {1}
    #[error("cannot use state directory {0}: {1}")]
    Dir(PathBuf, io::Error),
    /// cannot write {0}: {1}
    #[error("cannot write {0}: {1}")]
    Write(PathBuf, io::Error),
    /// cannot read {0}: {1}
    #[error("cannot read {0}: {1}")]
    Read(PathBuf, io::Error),
    /// {0} is corrupt: {1}
    #[error("{0} is corrupt: {1}")]
    Corrupt(PathBuf, String),
    /// another vr-agent holds {0}
    #[error("another vr-agent holds {0}")]
    Locked(PathBuf),
}

/// What `state.json` holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stored {
    /// Increases by one with every committed push (0 = nothing applied yet).
    pub generation: u64,
    /// Seconds since the epoch of the commit.
    #[serde(default)]
    pub committed_at: u64,
    pub state: DesiredState,
}

/// What [`Store::load_recovering`] found.
#[derive(Debug)]
pub struct Loaded {
    pub stored: Stored,
    /// Why the agent does not run from `state.json` (None: it does).
    pub problem: Option<String>,
    /// `stored` is a readable earlier state: the last-known-good copy and the journal, or the
    /// journal up to a corrupt record (false with a problem: the empty state).
    pub from_good: bool,
}

/// Why `state.json` is unusable, in words an operator acts on.
fn explain(e: &StoreError) -> String {
    let text = crate::excerpt::truncate_to(&e.to_string(), 400);
    if text.contains("unknown field") || text.contains("unknown variant") {
        format!("{text} (written by a newer vr-agent?)")
    } else {
        text
    }
}

#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    /// The journal's writer state (set up by [`Store::load_recovering`]).
    w: append::Writer,
}

/// Holds the state directory's lock until dropped.
#[derive(Debug)]
pub struct StoreLock {
    _file: File,
}

impl Store {
    /// Opens (creating, mode 0700) the state directory.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        fs::create_dir_all(dir).map_err(|e| StoreError::Dir(dir.into(), e))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| StoreError::Dir(dir.into(), e))?;
        Ok(Store {
            dir: dir.to_path_buf(),
            w: append::Writer::new(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The snapshot.
    pub fn current_path(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    /// The deltas committed since the snapshot.
    pub fn journal_path(&self) -> PathBuf {
        self.dir.join("state.journal")
    }

    /// The last-known-good copy of the snapshot.
    pub fn good_path(&self) -> PathBuf {
        self.dir.join("state.good")
    }

    /// Where an unreadable `state.json` is copied for a post-mortem before anything replaces
    /// it.
    pub fn corrupt_path(&self) -> PathBuf {
        self.dir.join("state.json.corrupt")
    }

    /// Where a journal corrupt in its middle is copied before a new one replaces it.
    pub fn journal_corrupt_path(&self) -> PathBuf {
        self.dir.join("state.journal.corrupt")
    }

    /// The state to run from: `state.json` and the journal, or when the snapshot cannot be
    /// read, the last-known-good copy and the journal (or, without a copy, the empty state),
    /// with the reason in [`Loaded::problem`]. Sets up the writer: a torn tail is cut off, a
    /// pending intent is noted for [`Store::has_next`]. For the lock holder only.
    pub fn load_recovering(&mut self) -> Result<Loaded, StoreError> {
        let (loaded, scan) = self.recover()?;
        self.w.end = scan.good_end;
        self.w.records = scan.records;
        self.w.intent_at = scan.intent.as_ref().map(|i| i.offset);
        self.w.clean = scan.clean() && loaded.problem.is_none();
        // No snapshot yet (a new state directory): the first commit writes one, so
        // `state.json` and its copy exist from the first push on.
        self.w.compact_soon = loaded.problem.is_some() || !self.current_path().exists();
        self.w.snapshot_len = fs::metadata(self.current_path()).map_or(0, |m| m.len());
        if let Some(why) = &scan.problem {
            if fs::copy(self.journal_path(), self.journal_corrupt_path()).is_ok() {
                let _ = fs::set_permissions(
                    self.journal_corrupt_path(),
                    fs::Permissions::from_mode(0o600),
                );
            }
            tracing::error!("{why}");
        } else if scan.len > scan.good_end && scan.good_end > 0 {
            // A torn append: cut it off before anything is appended after it.
            let cut = OpenOptions::new()
                .write(true)
                .open(self.journal_path())
                .and_then(|f| f.set_len(scan.good_end).and_then(|()| f.sync_data()));
            if let Err(e) = cut {
                return Err(StoreError::Write(self.journal_path(), e));
            }
            tracing::warn!(
                bytes = scan.len - scan.good_end,
                "cut off a torn record at the end of {}",
                self.journal_path().display()
            );
        }
        Ok(loaded)
    }

    fn recover(&self) -> Result<(Loaded, replay::Scan), StoreError> {
        let why = match self.read_from(&self.current_path()) {
            Ok((stored, scan)) => {
                if !self.good_path().exists() && self.current_path().exists() {
                    // First start of a version that keeps the copy.
                    self.keep_good();
                }
                let problem = scan.problem.as_ref().map(|p| {
                    format!("{p}; running from generation {} (the state up to there); the next push starts a new journal (the old one is kept as {})",
                        stored.generation, self.journal_corrupt_path().display())
                });
                return Ok((
                    Loaded {
                        from_good: problem.is_some(),
                        problem,
                        stored,
                    },
                    scan,
                ));
            }
            Err(e @ (StoreError::Corrupt(..) | StoreError::Read(..))) => explain(&e),
            Err(e) => return Err(e),
        };
        if fs::copy(self.current_path(), self.corrupt_path()).is_ok() {
            // It may hold secrets whatever mode it had.
            let _ = fs::set_permissions(self.corrupt_path(), fs::Permissions::from_mode(0o600));
        }
        let good = self.good_path();
        let read_good = match self.read_from(&good) {
            Ok(found) => Ok(found),
            // The journal does not apply onto the copy: the copy alone.
            Err(StoreError::Corrupt(p, e)) if p == self.journal_path() => {
                tracing::error!(
                    "{}: {e}; running from {} alone",
                    p.display(),
                    good.display()
                );
                replay::read_snapshot(&good).map(|s| {
                    (
                        s,
                        replay::Scan {
                            problem: Some(e),
                            ..Default::default()
                        },
                    )
                })
            }
            Err(e) => Err(e),
        };
        Ok(match read_good {
            Ok((stored, scan)) if good.exists() => (
                Loaded {
                    problem: Some(format!(
                        "{why}; running from the last-known-good copy {} and the journal (generation {}); the next push rewrites state.json (the unreadable file is kept as {})",
                        good.display(),
                        stored.generation,
                        self.corrupt_path().display()
                    )),
                    stored,
                    from_good: true,
                },
                scan,
            ),
            other => {
                let e = match other {
                    Err(e) => crate::excerpt::truncate_to(&e.to_string(), 400),
                    Ok(_) => "missing".into(),
                };
                (
                    Loaded {
                        stored: Stored::default(),
                        problem: Some(format!(
                            "{why}; no usable last-known-good copy ({}: {e}): running from the empty state without replaying it (the kernel keeps what it has until the next push)",
                            good.display(),
                        )),
                        from_good: false,
                    },
                    replay::Scan {
                        problem: Some("not applied".into()),
                        ..Default::default()
                    },
                )
            }
        })
    }

    /// The state of the interrupted push (the committed state and the pending intent), for
    /// rolling back from it; None if there is none or it cannot be read.
    pub fn load_next(&self) -> Option<Stored> {
        let (mut stored, scan) = self
            .read_from(&self.current_path())
            .or_else(|_| self.read_from(&self.good_path()))
            .ok()?;
        let intent = scan.intent?;
        delta::apply(&mut stored.state, &intent.header.edits, &intent.values).ok()?;
        stored.generation = intent.header.generation;
        stored.committed_at = intent.header.committed_at;
        Some(stored)
    }

    /// Copies the snapshot `state.json` to `state.good` (temp, fsync, rename). A failure
    /// costs only the copy's freshness: it is logged, never fatal.
    pub fn keep_good(&self) {
        let tmp = self.dir.join(".state.good.tmp");
        let result = (|| {
            fs::copy(self.current_path(), &tmp)?;
            File::open(&tmp)?.sync_all()?;
            fs::rename(&tmp, self.good_path())
        })();
        if let Err(e) = result {
            let _ = fs::remove_file(&tmp);
            tracing::warn!("cannot keep {}: {e}", self.good_path().display());
        }
    }

    /// Takes the exclusive apply lock, waiting for it if `wait`.
    pub fn lock(&self, wait: bool) -> Result<StoreLock, StoreError> {
        let path = self.dir.join("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| StoreError::Write(path.clone(), e))?;
        if wait {
            file.lock()
                .map_err(|e| StoreError::Write(path.clone(), e))?;
        } else {
            match file.try_lock() {
                Ok(()) => {}
                Err(fs::TryLockError::WouldBlock) => return Err(StoreError::Locked(path)),
                Err(fs::TryLockError::Error(e)) => return Err(StoreError::Write(path, e)),
            }
        }
        Ok(StoreLock { _file: file })
    }

    /// The committed state (snapshot and journal), or the empty generation 0 if none was
    /// ever committed. Safe without the lock while an agent writes: a torn or pending record
    /// is not applied, and a compaction that replaced the snapshot meanwhile is noticed and
    /// the reading repeated.
    pub fn load(&self) -> Result<Stored, StoreError> {
        let mut tries = 0;
        loop {
            let before = self.snapshot_id();
            let (stored, _) = self.read_from(&self.current_path())?;
            tries += 1;
            if before == self.snapshot_id() || tries == 5 {
                return Ok(stored);
            }
        }
    }
}

/// temp file (0600) + fsync + rename + fsync of the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
