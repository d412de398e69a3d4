//! The agent's committed state, read from its state directory the way the agent reads it:
//! the snapshot `state.json`, then every committed record of `state.journal` after the
//! snapshot's generation (see `agent/src/store.rs`). Decoded here on `serde_json::Value`,
//! independently of the agent's typed reader, so a test that compares the two checks both.

use std::path::Path;

use serde_json::Value;

const MAGIC: &[u8] = b"vr-agent journal 1\n";

/// One good frame: its header and the values after the header line.
struct Frame {
    header: Value,
    values: Vec<u8>,
}

/// The good frames of a journal (stops at the first torn or corrupt one).
fn frames(bytes: &[u8]) -> Vec<Frame> {
    let mut out = Vec::new();
    if !bytes.starts_with(MAGIC) {
        return out;
    }
    let mut at = MAGIC.len();
    while bytes.len() >= at + 8 {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let crc = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap());
        let Some(payload) = bytes.get(at + 8..at + 8 + len) else {
            break;
        };
        if crc32fast::hash(payload) != crc {
            break;
        }
        let Some(nl) = payload.iter().position(|b| *b == b'\n') else {
            break;
        };
        let Ok(header) = serde_json::from_slice(&payload[..nl]) else {
            break;
        };
        out.push(Frame {
            header,
            values: payload[nl + 1..].to_vec(),
        });
        at += 8 + len;
    }
    out
}

/// The slot at a dotted path, created (as null) if missing.
fn slot<'a>(state: &'a mut Value, path: &str) -> &'a mut Value {
    let mut v = state;
    for part in path.split('.') {
        if !v.is_object() {
            *v = Value::Object(Default::default());
        }
        v = v
            .as_object_mut()
            .unwrap()
            .entry(part)
            .or_insert(Value::Null);
    }
    v
}

fn apply(state: &mut Value, frame: &Frame) {
    let mut at = 0usize;
    for edit in frame.header["edits"].as_array().into_iter().flatten() {
        let len = edit["len"].as_u64().unwrap() as usize;
        let value: Value = serde_json::from_slice(&frame.values[at..at + len]).unwrap();
        at += len;
        let slot = slot(state, edit["path"].as_str().unwrap());
        match edit["op"].as_str().unwrap() {
            "set" => *slot = value,
            "splice" => {
                if !slot.is_array() {
                    *slot = Value::Array(Vec::new());
                }
                let list = slot.as_array_mut().unwrap();
                let from = edit["at"].as_u64().unwrap_or(0) as usize;
                let remove = edit["remove"].as_u64().unwrap_or(0) as usize;
                list.splice(from..from + remove, value.as_array().unwrap().clone());
            }
            "map" => {
                if !slot.is_object() {
                    *slot = Value::Object(Default::default());
                }
                let map = slot.as_object_mut().unwrap();
                for k in value[0].as_array().unwrap() {
                    map.remove(k.as_str().unwrap());
                }
                for (k, v) in value[1].as_object().unwrap() {
                    map.insert(k.clone(), v.clone());
                }
            }
            op => panic!("unknown journal op {op}"),
        }
    }
}

/// What the state directory holds.
#[derive(Debug)]
pub struct Committed {
    /// `{"generation": N, "committed_at": T, "state": {...}}`, or None if nothing was ever
    /// committed.
    pub stored: Option<Value>,
    /// The journal ends with an intent without its commit (an interrupted push).
    pub pending_intent: bool,
    /// Committed records in the journal.
    pub records: usize,
}

/// Reads the committed state of the state directory `dir`.
pub fn read(dir: &Path) -> Committed {
    let snapshot = std::fs::read(dir.join("state.json")).ok();
    let mut stored: Option<Value> = snapshot.map(|b| serde_json::from_slice(&b).unwrap());
    let journal = std::fs::read(dir.join("state.journal")).unwrap_or_default();
    let mut pending: Option<Frame> = None;
    let mut records = 0;
    for f in frames(&journal) {
        if f.header["kind"] == "intent" {
            pending = Some(f);
            continue;
        }
        let Some(intent) = pending.take() else {
            break;
        };
        records += 1;
        let generation = intent.header["generation"].as_u64().unwrap();
        let s = stored.get_or_insert_with(
            || serde_json::json!({"generation": 0, "committed_at": 0, "state": {}}),
        );
        if generation <= s["generation"].as_u64().unwrap_or(0) {
            continue;
        }
        apply(&mut s["state"], &intent);
        s["generation"] = generation.into();
        s["committed_at"] = intent.header["committed_at"].as_u64().unwrap_or(0).into();
    }
    Committed {
        stored,
        pending_intent: pending.is_some(),
        records,
    }
}
