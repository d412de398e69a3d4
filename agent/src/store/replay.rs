//! Reading the committed state back: a snapshot (`state.json`, or `state.good`), then every
//! committed journal record after its generation, in order.

use std::fs::{self, File};
use std::io;
use std::path::Path;

use super::journal::{Frame, Kind, Reader, Stop};
use super::{delta, Store, StoreError, Stored};

/// What the journal held beyond the committed records applied.
#[derive(Debug, Default)]
pub(super) struct Scan {
    /// A last intent with no commit after it: a push that never reported success.
    pub intent: Option<Frame>,
    /// Where the good frames end (0: no journal, or not even its magic line).
    pub good_end: u64,
    /// The file's length.
    pub len: u64,
    /// Committed records in the file (applied or skipped as older than the snapshot).
    pub records: usize,
    /// Something in the journal could not be used (corrupt frame, a gap in generations):
    /// the next write starts a new journal, and the reason is said.
    pub problem: Option<String>,
}

impl Scan {
    /// The journal continues the loaded state exactly: deltas can be appended to it.
    pub fn clean(&self) -> bool {
        self.problem.is_none()
    }
}

/// Reads a snapshot file; a missing one is the empty generation 0.
pub(super) fn read_snapshot(path: &Path) -> Result<Stored, StoreError> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| StoreError::Corrupt(path.into(), e.to_string())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Stored::default()),
        Err(e) => Err(StoreError::Read(path.into(), e)),
    }
}

/// Why a committed record was not applied.
enum NotApplied {
    /// It does not follow the state read so far: the journal belongs to another snapshot.
    Gap(String),
    /// Checksummed, yet its edits do not apply: the state may be half-changed.
    Bad(String),
}

/// Applies one committed record onto `stored` if it follows it. `Ok(false)`: older than
/// `stored` (left in the journal by a compaction a crash cut short), skipped.
fn apply_record(stored: &mut Stored, intent: &Frame) -> Result<bool, NotApplied> {
    let h = &intent.header;
    if h.generation <= stored.generation {
        return Ok(false);
    }
    if !h.full && h.generation != stored.generation + 1 {
        return Err(NotApplied::Gap(format!(
            "record of generation {} does not follow generation {}",
            h.generation, stored.generation
        )));
    }
    delta::apply(&mut stored.state, &h.edits, &intent.values).map_err(NotApplied::Bad)?;
    stored.generation = h.generation;
    stored.committed_at = h.committed_at;
    Ok(true)
}

impl Store {
    /// Applies the journal's committed records onto `stored` (which came from a snapshot).
    /// A record that is checksummed but cannot be applied is an error (`stored` may then be
    /// half-changed: the caller drops it); corrupt framing and gaps stop the reading and are
    /// said in [`Scan::problem`].
    pub(super) fn read_journal(&self, stored: &mut Stored) -> Result<Scan, StoreError> {
        let path = self.journal_path();
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Scan::default()),
            Err(e) => return Err(StoreError::Read(path, e)),
        };
        let read_err = |e| StoreError::Read(path.clone(), e);
        let len = file.metadata().map_err(read_err)?.len();
        let mut scan = Scan {
            len,
            ..Default::default()
        };
        let mut reader = match Reader::open(file).map_err(read_err)? {
            Ok(r) => r,
            Err(Stop::Corrupt { why, .. }) => {
                scan.problem = Some(format!("{}: {why}", path.display()));
                return Ok(scan);
            }
            Err(_) => return Ok(scan),
        };
        let mut pending: Option<Frame> = None;
        while let Some(frame) = reader.next_frame().map_err(read_err)? {
            match frame.header.kind {
                // An intent right after another: the first never committed (its push failed
                // and cutting it off failed too); it is superseded.
                Kind::Intent => pending = Some(frame),
                Kind::Commit => {
                    let intent = pending
                        .take()
                        .filter(|i| i.header.generation == frame.header.generation);
                    let Some(intent) = intent else {
                        scan.problem = Some(format!(
                            "{}: commit of generation {} at offset {} without its intent",
                            path.display(),
                            frame.header.generation,
                            frame.offset
                        ));
                        break;
                    };
                    scan.records += 1;
                    match apply_record(stored, &intent) {
                        Ok(_) => {}
                        Err(NotApplied::Gap(why)) => {
                            scan.problem = Some(format!(
                                "{} at offset {}: {why}",
                                path.display(),
                                intent.offset
                            ));
                            break;
                        }
                        Err(NotApplied::Bad(why)) => {
                            return Err(StoreError::Corrupt(
                                path,
                                format!("record at offset {}: {why}", intent.offset),
                            ))
                        }
                    }
                }
            }
        }
        scan.good_end = reader.good_end();
        if let Some(Stop::Corrupt { offset, why }) = &reader.stop {
            scan.problem = Some(format!(
                "{} is corrupt at offset {offset} ({why}); the {} byte(s) from there are not applied",
                path.display(),
                len - offset
            ));
        }
        if scan.problem.is_none() {
            scan.intent = pending.filter(|i| {
                i.header.generation == stored.generation + 1
                    || (i.header.full && i.header.generation > stored.generation)
            });
        }
        Ok(scan)
    }

    /// The committed state from the snapshot at `snapshot` and the journal.
    pub(super) fn read_from(&self, snapshot: &Path) -> Result<(Stored, Scan), StoreError> {
        let mut stored = read_snapshot(snapshot)?;
        let scan = self.read_journal(&mut stored)?;
        Ok((stored, scan))
    }

    /// The identity of the snapshot file, to notice a compaction that replaced it while an
    /// offline reader was between the snapshot and the journal.
    pub(super) fn snapshot_id(&self) -> Option<(u64, u64)> {
        use std::os::unix::fs::MetadataExt;
        fs::metadata(self.current_path())
            .ok()
            .map(|m| (m.dev(), m.ino()))
    }
}
