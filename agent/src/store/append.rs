//! The write side of the store: a push's intent, its commit or its discard, and compaction.
//! Only the holder of the state directory's lock writes (the engine).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};

use super::journal::{self, Header, Kind, MAGIC, MAX_FRAME};
use super::{delta, sync_dir, write_atomic, Store, StoreError, Stored};

/// Compaction when the journal holds this many committed records...
const MAX_RECORDS: usize = 1024;
/// ... or more bytes than the snapshot (and at least this many: a small state is not
/// rewritten every few pushes).
const MIN_COMPACT_BYTES: u64 = 1 << 20;
/// Past this many times those bounds, a commit compacts at once: pushes that came back to
/// back (a spool of many files) left no moment after an answer.
const OVERDUE: u64 = 4;

/// The writer's view of the journal, set up by [`Store::load_recovering`].
#[derive(Debug, Default)]
pub(super) struct Writer {
    file: Option<File>,
    /// Where the next frame goes (the end of the good frames).
    pub end: u64,
    /// Where the pending intent starts.
    pub intent_at: Option<u64>,
    /// Committed records in the journal.
    pub records: usize,
    /// The journal continues the loaded state: deltas may follow. Otherwise the next intent
    /// starts a new journal with a full record.
    pub clean: bool,
    /// The engine's base is the state this store wrote or read (not adjusted since): deltas
    /// from it are exact. Otherwise the next intent records every field.
    pub trusted: bool,
    /// The snapshot is unreadable or older than what runs: the next commit compacts.
    pub compact_soon: bool,
    pub snapshot_len: u64,
    /// Compaction bound on records (tests lower it to make crashes land in compactions).
    pub max_records: usize,
}

impl Writer {
    pub fn new() -> Writer {
        Writer {
            clean: true,
            trusted: true,
            max_records: std::env::var("VR_AGENT_JOURNAL_RECORDS")
                .ok()
                .and_then(|v| v.parse().ok())
                .filter(|n| *n > 0)
                .unwrap_or(MAX_RECORDS),
            ..Default::default()
        }
    }
}

impl Store {
    fn journal_file(&mut self) -> io::Result<&File> {
        if self.w.file.is_none() {
            let f = OpenOptions::new()
                .create(true)
                .truncate(false)
                .read(true)
                .write(true)
                .mode(0o600)
                .open(self.journal_path())?;
            if f.metadata()?.len() < MAGIC.len() as u64 || self.w.end < MAGIC.len() as u64 {
                f.set_len(0)?;
                f.write_all_at(MAGIC, 0)?;
                f.sync_data()?;
                sync_dir(&self.dir)?;
                self.w.end = MAGIC.len() as u64;
            }
            self.w.file = Some(f);
        }
        Ok(self.w.file.as_ref().expect("just opened"))
    }

    /// Appends a frame (`head`, then `values`) at the end of the good frames, durably; a
    /// failed append is cut off.
    fn append(&mut self, head: &[u8], values: &[u8]) -> Result<u64, StoreError> {
        let path = self.journal_path();
        self.journal_file()
            .map_err(|e| StoreError::Write(path.clone(), e))?;
        // After opening: a new journal starts after its magic line.
        let at = self.w.end;
        let file = self.w.file.as_ref().expect("opened above");
        let written = file
            .write_all_at(head, at)
            .and_then(|()| file.write_all_at(values, at + head.len() as u64))
            .and_then(|()| file.sync_data());
        if let Err(e) = written {
            let _ = file.set_len(at).and_then(|()| file.sync_data());
            return Err(StoreError::Write(path, e));
        }
        self.w.end = at + (head.len() + values.len()) as u64;
        Ok(at)
    }

    /// Whether a push was interrupted (its intent is the journal's last record).
    pub fn has_next(&self) -> bool {
        self.w.intent_at.is_some()
    }

    /// Records the push about to be executed: the delta from `base` (the committed state the
    /// engine holds) to `next`, appended and fdatasynced. Every field is recorded whole when
    /// `base` may differ from what is on disk (see [`Store::rebase`]) or the journal could
    /// not be continued. Returns the fields the record changes.
    pub fn write_next(
        &mut self,
        base: &Stored,
        next: &Stored,
    ) -> Result<delta::Changed, StoreError> {
        let path = self.journal_path();
        let full = !self.w.trusted || !self.w.clean;
        let enc = delta::diff(&base.state, &next.state, full)
            .map_err(|e| StoreError::Corrupt(path.clone(), e.to_string()))?;
        let changed = enc.changed();
        let header = Header {
            kind: Kind::Intent,
            generation: next.generation,
            committed_at: next.committed_at,
            full,
            edits: enc.edits,
        };
        let head = journal::frame_head(&header, &enc.values)
            .map_err(|e| StoreError::Corrupt(path.clone(), e.to_string()))?;
        let size = head.len() + enc.values.len();
        if size > MAX_FRAME as usize {
            return Err(StoreError::Write(
                path,
                io::Error::other(format!(
                    "a record of {size} bytes is over the {MAX_FRAME}-byte limit"
                )),
            ));
        }
        if !self.w.clean {
            // What the journal holds does not continue the loaded state: start over, with
            // this full record as its first.
            self.w.end = 0;
            self.w.records = 0;
            if let Some(f) = self.w.file.take() {
                drop(f);
            }
            self.w.compact_soon = true;
        }
        let at = self.append(&head, &enc.values)?;
        self.w.clean = true;
        self.w.intent_at = Some(at);
        crate::testhook::point("after-intent");
        Ok(changed)
    }

    /// Drops an interrupted or failed push's intent (cuts the journal back to before it).
    pub fn discard_next(&mut self) -> Result<(), StoreError> {
        let Some(at) = self.w.intent_at else {
            return Ok(());
        };
        let path = self.journal_path();
        let file = self
            .journal_file()
            .map_err(|e| StoreError::Write(path.clone(), e))?;
        file.set_len(at)
            .and_then(|()| file.sync_data())
            .map_err(|e| StoreError::Write(path, e))?;
        self.w.end = at;
        self.w.intent_at = None;
        Ok(())
    }

    /// Makes the pending intent the committed state (`committed` is that state): a commit
    /// record, fdatasynced. The compaction the journal may now be due is left to the caller,
    /// once the push is answered ([`Store::compact_if_due`]: rewriting a 10,000-forward
    /// snapshot took 7 ms of the push that crossed the bound); compacted here only when asked
    /// for ([`Store::compact_at_next_commit`]) or four times past the bounds (no caller
    /// compacted it: pushes back to back).
    pub fn commit_next(&mut self, committed: &Stored) -> Result<(), StoreError> {
        crate::testhook::point("before-commit");
        let path = self.journal_path();
        let header = Header {
            kind: Kind::Commit,
            generation: committed.generation,
            committed_at: 0,
            full: false,
            edits: Vec::new(),
        };
        let head = journal::frame_head(&header, &[])
            .map_err(|e| StoreError::Corrupt(path, e.to_string()))?;
        self.append(&head, &[])?;
        self.w.intent_at = None;
        self.w.records += 1;
        self.w.trusted = true;
        // Asked for (`compact_soon`): now, so a forgotten password leaves the journal with
        // this commit.
        if self.w.compact_soon || self.past_bounds(OVERDUE) {
            self.compact_logged(committed);
        }
        Ok(())
    }

    /// Compacts the journal if it is past its bounds. `committed` is the state of the last
    /// commit; not if the engine changed its copy since ([`Store::rebase`]: the snapshot
    /// would hold what no push committed) or a push is under way.
    pub fn compact_if_due(&mut self, committed: &Stored) {
        if self.w.trusted
            && self.w.intent_at.is_none()
            && (self.w.compact_soon || self.past_bounds(1))
        {
            self.compact_logged(committed);
        }
    }

    /// Whether the journal is past `factor` times its bounds.
    fn past_bounds(&self, factor: u64) -> bool {
        self.w.records as u64 >= self.w.max_records as u64 * factor
            || self.w.end > self.w.snapshot_len.max(MIN_COMPACT_BYTES) * factor
    }

    fn compact_logged(&mut self, committed: &Stored) {
        let _compacting = crate::timing::phase("compact");
        if let Err(e) = self.compact(committed) {
            // The commit stands (the journal holds it); the next try comes after the next
            // push.
            tracing::warn!("journal compaction: {e}");
        }
    }

    /// Writes `stored` (the committed state) as the new snapshot and its last-known-good copy,
    /// then empties the journal. Every instant leaves a readable old-or-new state: until the
    /// snapshot's rename the old snapshot and the whole journal hold it; after it, the new
    /// snapshot names its generation and the records at or below it are skipped.
    pub fn compact(&mut self, stored: &Stored) -> Result<(), StoreError> {
        tracing::info!(
            generation = stored.generation,
            records = self.w.records,
            bytes = self.w.end,
            "compacting the journal"
        );
        let path = self.current_path();
        let bytes = serde_json::to_vec(stored)
            .map_err(|e| StoreError::Corrupt(path.clone(), e.to_string()))?;
        write_atomic(&path, &bytes).map_err(|e| StoreError::Write(path, e))?;
        self.w.snapshot_len = bytes.len() as u64;
        self.w.compact_soon = false;
        crate::testhook::point("compact-snapshot");
        let good = self.good_path();
        if let Err(e) = write_atomic(&good, &bytes) {
            tracing::warn!("cannot keep {}: {e}", good.display());
        }
        drop(bytes);
        crate::testhook::point("compact-good");
        if self.w.file.is_some() || self.journal_path().exists() {
            let jpath = self.journal_path();
            self.w.end = 0;
            self.w.file = None;
            self.journal_file()
                .map_err(|e| StoreError::Write(jpath, e))?;
        }
        self.w.records = 0;
        self.w.intent_at = None;
        tracing::info!(generation = stored.generation, "journal compacted");
        Ok(())
    }

    /// The next commit compacts whatever the bounds (a secret dropped from the state leaves
    /// the disk with it, not at a later compaction).
    pub fn compact_at_next_commit(&mut self) {
        self.w.compact_soon = true;
    }

    /// The engine changed its copy of the committed state without a push (an upgrade of
    /// older data at start, the HA role held back until keepalived elects): deltas from it
    /// would not apply to what is on disk, so the next intent records every field.
    pub fn rebase(&mut self) {
        self.w.trusted = false;
    }
}
