//! The state directory: `state.json` (the last desired state applied successfully, with its
//! generation), `state.next` (the state being applied), and `lock` (one applier at a time).
//!
//! Crash safety: a push is applied as write `state.next` -> execute -> rename it over
//! `state.json`. Both writes are temp file + fsync + rename + fsync of the directory, so a
//! crash at any instant leaves `state.json` either old or new, never torn. A `state.next` found
//! at start belongs to a push that never reported success: it is discarded and `state.json`
//! (the old state) is replayed, which converges the kernel back to it.
//!
//! Survival: after every commit `state.json` is copied to `state.good`, the last-known-good
//! copy. A `state.json` that cannot be read (truncated, corrupt, written by a newer version)
//! is then not a permanent outage: [`Store::load_recovering`] starts from `state.good` and
//! says why, loudly; the next commit writes a good `state.json` again. The copy is only ever
//! read when `state.json` is unreadable, so it changes nothing in the old-or-new guarantee.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::state::DesiredState;

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
    /// `stored` is the last-known-good copy (false with a problem: the empty state).
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
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn current_path(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    pub fn next_path(&self) -> PathBuf {
        self.dir.join("state.next")
    }

    /// The last-known-good copy of `state.json`.
    pub fn good_path(&self) -> PathBuf {
        self.dir.join("state.good")
    }

    /// Where an unreadable `state.json` is copied for a post-mortem before anything replaces
    /// it.
    pub fn corrupt_path(&self) -> PathBuf {
        self.dir.join("state.json.corrupt")
    }

    /// The state to run from: `state.json`, or when it cannot be read, the last-known-good
    /// copy (or, without one, the empty state), with the reason in [`Loaded::problem`].
    pub fn load_recovering(&self) -> Result<Loaded, StoreError> {
        let why = match self.load() {
            Ok(stored) => {
                if !self.good_path().exists() && self.current_path().exists() {
                    // First start of a version that keeps the copy.
                    self.keep_good();
                }
                return Ok(Loaded {
                    stored,
                    problem: None,
                    from_good: false,
                });
            }
            Err(e @ (StoreError::Corrupt(..) | StoreError::Read(..))) => explain(&e),
            Err(e) => return Err(e),
        };
        if fs::copy(self.current_path(), self.corrupt_path()).is_ok() {
            // It may hold secrets whatever mode it had.
            let _ = fs::set_permissions(self.corrupt_path(), fs::Permissions::from_mode(0o600));
        }
        let good = self.good_path();
        let read_good = fs::read(&good)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<Stored>(&b).map_err(|e| e.to_string()));
        Ok(match read_good {
            Ok(stored) => Loaded {
                problem: Some(format!(
                    "{why}; running from the last-known-good copy {} (generation {}); the next push rewrites state.json (the unreadable file is kept as {})",
                    good.display(),
                    stored.generation,
                    self.corrupt_path().display()
                )),
                stored,
                from_good: true,
            },
            Err(e) => Loaded {
                stored: Stored::default(),
                problem: Some(format!(
                    "{why}; no usable last-known-good copy ({}: {}): running from the empty state without replaying it (the kernel keeps what it has until the next push)",
                    good.display(),
                    crate::excerpt::truncate_to(&e, 400)
                )),
                from_good: false,
            },
        })
    }

    /// Copies the committed `state.json` to `state.good` (temp, fsync, rename). A failure
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

    /// The committed state, or the empty generation 0 if none was ever committed.
    pub fn load(&self) -> Result<Stored, StoreError> {
        let path = self.current_path();
        match fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt(path, e.to_string()))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Stored::default()),
            Err(e) => Err(StoreError::Read(path, e)),
        }
    }

    /// Whether a push was interrupted (a `state.next` exists).
    pub fn has_next(&self) -> bool {
        self.next_path().exists()
    }

    /// Drops an interrupted push's `state.next`.
    pub fn discard_next(&self) -> Result<(), StoreError> {
        match fs::remove_file(self.next_path()) {
            Ok(()) => sync_dir(&self.dir).map_err(|e| StoreError::Write(self.dir.clone(), e)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::Write(self.next_path(), e)),
        }
    }

    /// Writes `state.next` durably (0600). Compact JSON: at 10,000 forwards the indented form
    /// was 2.2 MB, and every byte is written, fsynced and copied to `state.good` per push
    /// (`vr-agent show` prints the state for people).
    pub fn write_next(&self, stored: &Stored) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(stored)
            .map_err(|e| StoreError::Corrupt(self.next_path(), e.to_string()))?;
        write_atomic(&self.next_path(), &bytes).map_err(|e| StoreError::Write(self.next_path(), e))
    }

    /// Makes `state.next` the committed state (rename + fsync of the directory).
    pub fn commit_next(&self) -> Result<(), StoreError> {
        crate::testhook::point("before-commit");
        fs::rename(self.next_path(), self.current_path())
            .map_err(|e| StoreError::Write(self.current_path(), e))?;
        sync_dir(&self.dir).map_err(|e| StoreError::Write(self.dir.clone(), e))?;
        self.keep_good();
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_dir_loads_generation_zero_and_modes_are_private() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("state");
        let store = Store::open(&dir).unwrap();
        assert_eq!(store.load().unwrap().generation, 0);
        assert_eq!(
            fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        store
            .write_next(&Stored {
                generation: 1,
                ..Default::default()
            })
            .unwrap();
        assert!(store.has_next());
        store.commit_next().unwrap();
        assert!(!store.has_next());
        assert_eq!(store.load().unwrap().generation, 1);
        let mode = fs::metadata(store.current_path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn discarded_next_leaves_old_state() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        store
            .write_next(&Stored {
                generation: 1,
                ..Default::default()
            })
            .unwrap();
        store.commit_next().unwrap();
        store
            .write_next(&Stored {
                generation: 2,
                ..Default::default()
            })
            .unwrap();
        store.discard_next().unwrap();
        assert_eq!(store.load().unwrap().generation, 1);
    }

    #[test]
    fn lock_is_exclusive() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let held = store.lock(false).unwrap();
        assert!(matches!(store.lock(false), Err(StoreError::Locked(_))));
        drop(held);
        store.lock(false).unwrap();
    }

    fn commit(store: &Store, generation: u64) {
        store
            .write_next(&Stored {
                generation,
                ..Default::default()
            })
            .unwrap();
        store.commit_next().unwrap();
    }

    #[test]
    fn unreadable_state_falls_back_to_the_last_known_good_copy() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        commit(&store, 1);
        commit(&store, 2);
        let ok = store.load_recovering().unwrap();
        assert_eq!((ok.stored.generation, ok.problem), (2, None));
        let full = fs::read(store.current_path()).unwrap();
        // Truncated, garbage, and written by a newer version.
        for bad in [
            full[..full.len() / 2].to_vec(),
            Vec::new(),
            b"\x00\xff garbage".to_vec(),
            br#"{"generation":3,"format":2,"state":{}}"#.to_vec(),
        ] {
            fs::write(store.current_path(), &bad).unwrap();
            let l = store.load_recovering().unwrap();
            assert!(l.from_good);
            assert_eq!(l.stored.generation, 2);
            let p = l.problem.unwrap();
            assert!(p.contains("state.json") && p.contains("state.good"), "{p}");
            assert_eq!(fs::read(store.corrupt_path()).unwrap(), bad);
        }
        assert!(store
            .load_recovering()
            .unwrap()
            .problem
            .unwrap()
            .contains("newer vr-agent"));
        // The next commit writes a readable state.json again.
        commit(&store, 3);
        let l = store.load_recovering().unwrap();
        assert_eq!((l.stored.generation, l.problem), (3, None));
        // Without a usable copy: the empty state, said so.
        fs::write(store.current_path(), b"{").unwrap();
        fs::write(store.good_path(), b"{").unwrap();
        let l = store.load_recovering().unwrap();
        assert!(!l.from_good);
        assert_eq!(l.stored.generation, 0);
        assert!(l.problem.unwrap().contains("empty state"));
    }

    #[test]
    fn a_missing_copy_is_made_at_load() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        commit(&store, 1);
        fs::remove_file(store.good_path()).unwrap();
        store.load_recovering().unwrap();
        assert_eq!(
            fs::read(store.good_path()).unwrap(),
            fs::read(store.current_path()).unwrap()
        );
        let mode = fs::metadata(store.good_path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn corrupt_state_is_an_error_not_a_reset() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        fs::write(store.current_path(), b"{not json").unwrap();
        assert!(matches!(store.load(), Err(StoreError::Corrupt(..))));
    }
}
