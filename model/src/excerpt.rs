//! The value an error quotes, taken from the push text without building a tree of the
//! document: a 16 MiB array or a 10 MB string must not cost its size again (or ten times its
//! size as a `serde_json::Value`) just to say which value was wrong.
//!
//! One streaming pass walks the path (skipping everything beside it with `IgnoredAny`) and
//! renders the value found there as compact JSON into a string that stops growing at
//! [`MAX_QUOTE`] characters; secret-bearing keys inside the value are rendered `<redacted>`.

use std::fmt::{self, Write as _};

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::parse::{is_secret_name, path_segments, Seg};

/// Longest quoted value, in characters; longer ones end in `...`.
pub const MAX_QUOTE: usize = 120;

/// `value` cut to [`MAX_QUOTE`] characters (the cut marked with `...`).
pub fn truncate(value: &str) -> String {
    truncate_to(value, MAX_QUOTE)
}

/// `value` as displayed, cut to [`MAX_QUOTE`] characters, without ever formatting more than
/// that (`format_args!("{:?}", huge)` costs nothing more).
pub fn display(value: &dyn fmt::Display) -> String {
    let mut out = Bounded::new(MAX_QUOTE);
    let _ = write!(out, "{value}");
    out.finish()
}

/// `value` cut to `limit` characters (at least 4; the cut marked with `...`).
pub fn truncate_to(value: &str, limit: usize) -> String {
    let mut out = Bounded::new(limit.max(4));
    out.push(value);
    out.finish()
}

/// The value at `path` (`a.b[2].c`) in the JSON `text`, compact and cut to [`MAX_QUOTE`]
/// characters; `None` if the text is not JSON or has nothing there.
pub fn value_at(text: &str, path: &str) -> Option<String> {
    let segs = path_segments(path);
    let mut out = Bounded::new(MAX_QUOTE);
    let mut de = serde_json::Deserializer::from_str(text);
    // The rest of the document may be broken (that may be why it was rejected): a value
    // rendered whole before the break still counts.
    let _ = Walk {
        segs: &segs,
        out: &mut out,
    }
    .deserialize(&mut de);
    out.done.then(|| out.finish())
}

/// A string that keeps at most one character more than its limit: enough to know whether
/// the value was longer.
pub(crate) struct Bounded {
    s: String,
    chars: usize,
    limit: usize,
    /// The value at the path was rendered whole.
    done: bool,
}

impl Bounded {
    pub(crate) fn new(limit: usize) -> Bounded {
        Bounded {
            s: String::new(),
            chars: 0,
            limit,
            done: false,
        }
    }

    pub(crate) fn full(&self) -> bool {
        self.chars > self.limit
    }

    pub(crate) fn push(&mut self, piece: &str) {
        for c in piece.chars() {
            if self.full() {
                return;
            }
            self.s.push(c);
            self.chars += 1;
        }
    }

    pub(crate) fn finish(mut self) -> String {
        if self.full() {
            let cut = self
                .s
                .char_indices()
                .nth(self.limit - 3)
                .map_or(self.s.len(), |(i, _)| i);
            self.s.truncate(cut);
            self.s.push_str("...");
        }
        self.s
    }
}

impl fmt::Write for Bounded {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.push(s);
        // Stop the formatter once full: the rest would be dropped anyway.
        if self.full() {
            Err(fmt::Error)
        } else {
            Ok(())
        }
    }
}

/// Walks `segs` down the document; at their end renders the value (and marks it done).
struct Walk<'s, 'p> {
    segs: &'s [Seg<'p>],
    out: &'s mut Bounded,
}

impl<'de> DeserializeSeed<'de> for Walk<'_, '_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        match self.segs.first() {
            None => {
                Render {
                    out: &mut *self.out,
                }
                .deserialize(d)?;
                self.out.done = true;
                Ok(true)
            }
            Some(Seg::Key(_)) => d.deserialize_map(self),
            Some(Seg::Index(_)) => d.deserialize_seq(self),
        }
    }
}

impl<'de> Visitor<'de> for Walk<'_, '_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the container the path names")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let Some(Seg::Key(want)) = self.segs.first() else {
            return Ok(false);
        };
        let mut found = false;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if !found && key == *want {
                found = map.next_value_seed(Walk {
                    segs: &self.segs[1..],
                    out: &mut *self.out,
                })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        let Some(Seg::Index(want)) = self.segs.first() else {
            return Ok(false);
        };
        let mut found = false;
        let mut i = 0;
        loop {
            let more = if i == *want {
                match seq.next_element_seed(Walk {
                    segs: &self.segs[1..],
                    out: &mut *self.out,
                })? {
                    Some(f) => {
                        found = f;
                        true
                    }
                    None => false,
                }
            } else {
                seq.next_element::<IgnoredAny>()?.is_some()
            };
            if !more {
                return Ok(found);
            }
            i += 1;
        }
    }

    // A scalar where the path goes deeper: nothing there.
    fn visit_bool<E>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_i64<E>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_u64<E>(self, _: u64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_f64<E>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_str<E>(self, _: &str) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_unit<E>(self) -> Result<bool, E> {
        Ok(false)
    }
}

/// Renders any value as compact JSON into the bounded string.
struct Render<'s> {
    out: &'s mut Bounded,
}

impl<'de> DeserializeSeed<'de> for Render<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Render<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        self.out.push(if v { "true" } else { "false" });
        Ok(())
    }
    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        let _ = write!(self.out, "{v}");
        Ok(())
    }
    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        let _ = write!(self.out, "{v}");
        Ok(())
    }
    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        let _ = write!(self.out, "{}", serde_json::Value::from(v));
        Ok(())
    }
    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        quote_into(self.out, v);
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        self.out.push("null");
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.out.push("[");
        let mut first = true;
        loop {
            // Once the quote is full the rest is only consumed, never rendered.
            let more = if self.out.full() {
                seq.next_element::<IgnoredAny>()?.is_some()
            } else {
                if !first {
                    self.out.push(",");
                }
                let more = seq
                    .next_element_seed(Render {
                        out: &mut *self.out,
                    })?
                    .is_some();
                if !more && !first {
                    // The comma pushed for an element that was not there.
                    self.out.s.pop();
                    self.out.chars -= 1;
                }
                more
            };
            if !more {
                break;
            }
            first = false;
        }
        self.out.push("]");
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.out.push("{");
        let mut first = true;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if self.out.full() {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            if !first {
                self.out.push(",");
            }
            first = false;
            quote_into(self.out, &key);
            self.out.push(":");
            if is_secret_name(&key) {
                map.next_value::<IgnoredAny>()?;
                self.out.push("\"<redacted>\"");
            } else {
                map.next_value_seed(Render {
                    out: &mut *self.out,
                })?;
            }
        }
        self.out.push("}");
        Ok(())
    }
}

/// `s` as a JSON string, at most as much of it as the quote still has room for.
fn quote_into(out: &mut Bounded, s: &str) {
    out.push("\"");
    for c in s.chars() {
        if out.full() {
            return;
        }
        match c {
            '"' => out.push("\\\""),
            '\\' => out.push("\\\\"),
            '\n' => out.push("\\n"),
            '\r' => out.push("\\r"),
            '\t' => out.push("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let mut b = [0u8; 4];
                out.push(c.encode_utf8(&mut b));
            }
        }
    }
    out.push("\"");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_the_value_at_a_path_compactly() {
        let text = r#"{"a": {"b": [1, {"c": "x\"y", "d": [true, null, 2.5]}]}}"#;
        assert_eq!(value_at(text, "a.b[1].c").as_deref(), Some(r#""x\"y""#));
        assert_eq!(
            value_at(text, "a.b[1]").as_deref(),
            Some(r#"{"c":"x\"y","d":[true,null,2.5]}"#)
        );
        assert_eq!(value_at(text, "a.b[0]").as_deref(), Some("1"));
        assert_eq!(value_at(text, "a.b[5]"), None);
        assert_eq!(value_at(text, "a.z"), None);
        assert_eq!(value_at("{", "a"), None);
    }

    #[test]
    fn long_values_are_cut_and_secrets_inside_are_redacted() {
        let big = format!(
            r#"{{"s":"{}","v":[{{"psk":"hunter2","n":1}}]}}"#,
            "e".repeat(1 << 20)
        );
        let q = value_at(&big, "s").unwrap();
        assert_eq!(q.chars().count(), MAX_QUOTE);
        assert!(q.starts_with("\"eee") && q.ends_with("..."), "{q}");
        assert_eq!(
            value_at(&big, "v").as_deref(),
            Some(r#"[{"psk":"<redacted>","n":1}]"#)
        );
        let ints = format!("[{}]", vec!["7"; 100_000].join(","));
        let q = value_at(&format!(r#"{{"r":{ints}}}"#), "r").unwrap();
        assert_eq!(q.chars().count(), MAX_QUOTE);
        assert!(q.starts_with("[7,7,") && q.ends_with("..."), "{q}");
        let exact = "x".repeat(MAX_QUOTE);
        assert_eq!(truncate(&exact), exact);
        assert_eq!(truncate(&format!("{exact}y")).chars().count(), MAX_QUOTE);
        assert_eq!(
            truncate("\u{e9}".repeat(200).as_str()).chars().count(),
            MAX_QUOTE
        );
    }
}
