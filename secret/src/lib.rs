//! A string that never shows itself in `Debug` or `Display`: IPsec and remote-access PSKs, OSPF
//! keys, VM passwords, user data, secret boot arguments. Its own crate because the model
//! crates (`vr-vpn`, `vr-ospf`, the agent) must not depend on each other.
//!
//! The type is what marks a value as secret: every view of the state for an operator, a log or
//! a result is serialized inside [`redacting`], where a `Secret` writes `<redacted>`, and the
//! secrets to scrub from free text (daemon output in a support bundle) are gathered by
//! serializing the state inside [`collecting`]. No output depends on guessing from key names.

use std::cell::{Cell, RefCell};
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize, Serializer};

/// What every secret looks like in an output.
pub const REDACTED: &str = "<redacted>";

/// A pre-shared key or password. Serializes in clear (the state file, 0600, and the daemon
/// that needs it are the only places it may live) except inside [`redacting`]; `Debug` and
/// `Display` print `<redacted>`.
#[derive(Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The secret itself: only for the daemon that needs it (charon, FRR), never for logs.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// How a [`Secret`] serializes on this thread right now.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// As itself: the state file, the daemons.
    Clear,
    /// As `<redacted>`: every output.
    Redact,
    /// As `<redacted>`, and its value is recorded in [`COLLECTED`].
    Collect,
}

thread_local! {
    static MODE: Cell<Mode> = const { Cell::new(Mode::Clear) };
    static COLLECTED: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// Restores the previous mode even if the closure panics (nested calls keep working).
struct Restore(Mode);

impl Drop for Restore {
    fn drop(&mut self) {
        MODE.with(|m| m.set(self.0));
    }
}

fn with_mode<R>(mode: Mode, f: impl FnOnce() -> R) -> R {
    let _restore = Restore(MODE.with(|m| m.replace(mode)));
    f()
}

/// Runs `f` (a serialization) with every [`Secret`] written as `<redacted>`.
pub fn redacting<R>(f: impl FnOnce() -> R) -> R {
    // Collecting stays collecting: a nested redacted view must not hide secrets from it.
    if is_collecting() {
        return f();
    }
    with_mode(Mode::Redact, f)
}

/// Runs `f` (a serialization) and returns, with its result, the value of every [`Secret`] it
/// serialized (written as `<redacted>` meanwhile): longest first, without duplicates or
/// empty strings, so that a secret containing another is replaced whole in free text.
pub fn collecting<R>(f: impl FnOnce() -> R) -> (R, Vec<String>) {
    let outer = COLLECTED.with(|c| std::mem::take(&mut *c.borrow_mut()));
    let r = with_mode(Mode::Collect, f);
    let mut found = COLLECTED.with(|c| std::mem::replace(&mut *c.borrow_mut(), outer));
    found.retain(|s| !s.is_empty());
    found.sort_by_key(|s| std::cmp::Reverse(s.len()));
    found.dedup();
    (r, found)
}

/// Whether a `Secret` serialized now is hidden (inside [`redacting`] or [`collecting`]).
pub fn is_redacting() -> bool {
    MODE.with(|m| m.get()) != Mode::Clear
}

fn is_collecting() -> bool {
    MODE.with(|m| m.get()) == Mode::Collect
}

/// Records `value` as a secret when inside [`collecting`]; for secrets kept as plain strings
/// by a model that knows which of its values are secret (e.g. user data inside a triple).
pub fn note(value: &str) {
    if is_collecting() {
        COLLECTED.with(|c| c.borrow_mut().push(value.to_string()));
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match MODE.with(|m| m.get()) {
            Mode::Clear => s.serialize_str(&self.0),
            Mode::Redact => s.serialize_str(REDACTED),
            Mode::Collect => {
                note(&self.0);
                s.serialize_str(REDACTED)
            }
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_itself() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "<redacted> <redacted>");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"hunter2\"");
    }

    #[test]
    fn redacting_and_collecting_follow_the_type() {
        let v = (Secret::new("k1"), "plain", vec![Secret::new("longer-k2")]);
        let red = redacting(|| serde_json::to_string(&v).unwrap());
        assert_eq!(red, r#"["<redacted>","plain",["<redacted>"]]"#);
        let (text, found) = collecting(|| serde_json::to_string(&v).unwrap());
        assert_eq!(text, red);
        assert_eq!(found, ["longer-k2", "k1"]);
        // Back to clear afterwards, and a redacted view nested in a collection still collects.
        assert_eq!(serde_json::to_string(&v.0).unwrap(), "\"k1\"");
        let (_, found) = collecting(|| redacting(|| serde_json::to_string(&v.0).unwrap()));
        assert_eq!(found, ["k1"]);
    }
}
