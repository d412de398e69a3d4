//! The journal file `state.journal`: a magic line, then frames, appended one at a time.
//!
//! A frame is `length (u32 LE) | crc32 of the payload (u32 LE) | payload`. The payload is a
//! header line of compact JSON ([`Header`]) and, for an intent, the values of its edits
//! (see [`super::delta`]). A push appends an intent (generation N+1 and the delta from
//! generation N), fdatasync, executes, then appends a commit (generation N+1), fdatasync.
//!
//! Reading stops at the first frame that is incomplete or whose checksum does not match:
//! that is where a crash cut an append (or the disk corrupted it); what follows is never
//! applied, and the writer cuts it off before appending again.

use std::fs::File;
use std::io::{self, Read};

use serde::{Deserialize, Serialize};

use super::delta::EditHead;

/// The first bytes of every journal.
pub const MAGIC: &[u8] = b"vr-agent journal 1\n";

/// A frame longer than this is corrupt, not allocated: a record holds at most one push's
/// change (or, once after a start that adjusted the loaded state, the whole state).
pub const MAX_FRAME: u32 = 256 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A push about to be executed: the delta to its state.
    Intent,
    /// The intent of the same generation was executed and is the committed state.
    Commit,
}

/// A frame's header line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    pub kind: Kind,
    pub generation: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub committed_at: u64,
    /// The edits set every field: the record applies onto any state.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub full: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub edits: Vec<EditHead>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A frame's first bytes: length, checksum (over the header line and `values`), header line.
/// The values follow as they are: a large record is not copied a second time.
pub fn frame_head(header: &Header, values: &[u8]) -> Result<Vec<u8>, serde_json::Error> {
    let mut line = serde_json::to_vec(header)?;
    line.push(b'\n');
    let len = (line.len() + values.len()) as u32;
    let mut crc = crc32fast::Hasher::new();
    crc.update(&line);
    crc.update(values);
    let mut out = Vec::with_capacity(8 + line.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.extend_from_slice(&line);
    Ok(out)
}

/// One frame read back.
#[derive(Debug)]
pub struct Frame {
    /// Where the frame starts in the file.
    pub offset: u64,
    pub header: Header,
    /// The payload after the header line.
    pub values: Vec<u8>,
}

/// Why reading stopped before the end of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// The end: every byte belonged to a good frame.
    End,
    /// A frame cut short at the end of the file: an append a crash interrupted.
    Torn { offset: u64 },
    /// A frame that is whole but wrong (checksum, length, header): corruption.
    Corrupt { offset: u64, why: String },
}

/// Reads frames one at a time (memory: one frame).
#[derive(Debug)]
pub struct Reader {
    file: io::BufReader<File>,
    size: u64,
    pos: u64,
    pub stop: Option<Stop>,
}

impl Reader {
    /// Opens the journal; `Ok(None)` if there is none (or only a torn magic line).
    pub fn open(file: File) -> io::Result<Result<Reader, Stop>> {
        let size = file.metadata()?.len();
        let mut file = io::BufReader::with_capacity(64 << 10, file);
        let mut magic = vec![0u8; MAGIC.len().min(size as usize)];
        file.read_exact(&mut magic)?;
        if (size as usize) < MAGIC.len() {
            return Ok(Err(if MAGIC.starts_with(&magic) {
                Stop::Torn { offset: 0 }
            } else {
                Stop::Corrupt {
                    offset: 0,
                    why: "not a vr-agent journal".into(),
                }
            }));
        }
        if magic != MAGIC {
            return Ok(Err(Stop::Corrupt {
                offset: 0,
                why: "not a vr-agent journal (or written by a newer vr-agent)".into(),
            }));
        }
        Ok(Ok(Reader {
            file,
            size,
            pos: MAGIC.len() as u64,
            stop: None,
        }))
    }

    /// Where the good frames end (what a writer keeps).
    pub fn good_end(&self) -> u64 {
        self.pos
    }

    /// The next good frame, or None (then [`Reader::stop`] says why).
    pub fn next_frame(&mut self) -> io::Result<Option<Frame>> {
        if self.stop.is_some() {
            return Ok(None);
        }
        let offset = self.pos;
        let left = self.size - offset;
        if left == 0 {
            self.stop = Some(Stop::End);
            return Ok(None);
        }
        if left < 8 {
            self.stop = Some(Stop::Torn { offset });
            return Ok(None);
        }
        let mut head = [0u8; 8];
        self.file.read_exact(&mut head)?;
        let len = u32::from_le_bytes(head[..4].try_into().unwrap_or_default());
        let crc = u32::from_le_bytes(head[4..].try_into().unwrap_or_default());
        if len > MAX_FRAME {
            self.stop = Some(Stop::Corrupt {
                offset,
                why: format!("frame length {len} over the {MAX_FRAME}-byte limit"),
            });
            return Ok(None);
        }
        if u64::from(len) > left - 8 {
            self.stop = Some(Stop::Torn { offset });
            return Ok(None);
        }
        let mut payload = vec![0u8; len as usize];
        self.file.read_exact(&mut payload)?;
        let last = u64::from(len) == left - 8;
        let bad = |why: String| {
            // The last frame of the file, whole in length but wrong in content, is what a
            // crash during its append leaves (the size reached the disk, the data not all):
            // torn, not corrupt.
            if last {
                Stop::Torn { offset }
            } else {
                Stop::Corrupt { offset, why }
            }
        };
        if crc32fast::hash(&payload) != crc {
            self.stop = Some(bad("checksum mismatch".into()));
            return Ok(None);
        }
        let Some(nl) = payload.iter().position(|b| *b == b'\n') else {
            self.stop = Some(bad("no header line".into()));
            return Ok(None);
        };
        let header: Header = match serde_json::from_slice(&payload[..nl]) {
            Ok(h) => h,
            Err(e) => {
                // A good checksum over a header this version cannot read: a newer writer.
                self.stop = Some(Stop::Corrupt {
                    offset,
                    why: format!("header: {e} (written by a newer vr-agent?)"),
                });
                return Ok(None);
            }
        };
        payload.drain(..=nl);
        self.pos = offset + 8 + u64::from(len);
        Ok(Some(Frame {
            offset,
            header,
            values: payload,
        }))
    }
}
