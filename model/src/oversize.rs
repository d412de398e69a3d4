//! Limits on the shape of a push checked before it is parsed into types: keys of a few bytes
//! and lists of bounded length. One streaming pass builds nothing; what it refuses would
//! otherwise cost many times its text once typed (or copied into serde's errors).

use std::fmt::{self, Write as _};

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::excerpt::{Bounded, MAX_QUOTE};

/// Longest object key a push may use. serde copies a key it reports (an unknown field, the
/// path of an error) two or three times: a 10 MB key must be refused before that.
pub const MAX_KEY: usize = 1024;

/// Most entries of one JSON array. Typed, an entry of a rule list costs about 300 bytes
/// however short its text: 100,000 of them would be 30 MiB before a single one is validated.
/// (CloudStack sends a network's rules in one list; the benchmark's largest is 10,000.)
pub const MAX_ITEMS: usize = 50_000;

/// What [`oversized`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Oversized {
    /// A key of this many bytes.
    Key(usize),
    /// An array of more than [`MAX_ITEMS`] entries.
    List,
}

/// The path of the first key longer than [`MAX_KEY`] bytes or array longer than
/// [`MAX_ITEMS`], found in one pass that builds nothing. `None` also when the text is no
/// valid JSON (the typed parse says why).
pub fn oversized(text: &str) -> Option<(String, Oversized)> {
    let mut found = None;
    let mut path = Vec::new();
    let mut de = serde_json::Deserializer::from_str(text);
    let _ = Keys {
        path: &mut path,
        found: &mut found,
    }
    .deserialize(&mut de);
    found
}

/// Path elements of the walk: a key, or an index.
enum Step {
    Key(String),
    Index(usize),
}

struct Keys<'s> {
    path: &'s mut Vec<Step>,
    found: &'s mut Option<(String, Oversized)>,
}

impl Keys<'_> {
    fn path_text(&self) -> String {
        let mut out = Bounded::new(MAX_QUOTE);
        for (i, s) in self.path.iter().enumerate() {
            match s {
                Step::Key(k) if i == 0 => out.push(k),
                Step::Key(k) => {
                    out.push(".");
                    out.push(k);
                }
                Step::Index(n) => {
                    let _ = write!(out, "[{n}]");
                }
            }
        }
        out.finish()
    }
}

/// Stops the walk at the first long key.
#[derive(Debug)]
struct Stop;

impl<'de> DeserializeSeed<'de> for Keys<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Keys<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0;
        loop {
            self.path.push(Step::Index(i));
            let more = seq
                .next_element_seed(Keys {
                    path: &mut *self.path,
                    found: &mut *self.found,
                })?
                .is_some();
            self.path.pop();
            if self.found.is_some() {
                return Err(serde::de::Error::custom(format_args!("{Stop:?}")));
            }
            if !more {
                return Ok(());
            }
            if i == MAX_ITEMS {
                // Entry MAX_ITEMS + 1 was there.
                *self.found = Some((self.path_text(), Oversized::List));
                return Err(serde::de::Error::custom(format_args!("{Stop:?}")));
            }
            i += 1;
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(KeyLen(key)) = map.next_key::<KeyLen>()? {
            match key {
                Err(len) => {
                    *self.found = Some((self.path_text(), Oversized::Key(len)));
                    return Err(serde::de::Error::custom(format_args!("{Stop:?}")));
                }
                Ok(k) => {
                    self.path.push(Step::Key(k));
                    map.next_value_seed(Keys {
                        path: &mut *self.path,
                        found: &mut *self.found,
                    })?;
                    self.path.pop();
                }
            }
        }
        Ok(())
    }
}

/// A key: its text if short, else its length.
struct KeyLen(Result<String, usize>);

impl<'de> serde::Deserialize<'de> for KeyLen {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = KeyLen;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E>(self, v: &str) -> Result<KeyLen, E> {
                Ok(KeyLen(if v.len() > MAX_KEY {
                    Err(v.len())
                } else {
                    Ok(v.to_string())
                }))
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_keys_and_lists_are_found_with_their_path() {
        let key = format!(r#"{{"a":[1,{{"b":{{"{}":1}}}}]}}"#, "k".repeat(MAX_KEY + 1));
        assert_eq!(
            oversized(&key),
            Some(("a[1].b".to_string(), Oversized::Key(MAX_KEY + 1)))
        );
        assert_eq!(oversized(r#"{"a":[1,{"b":{"c":1}}]}"#), None);
        let list = format!(r#"{{"r":[{}]}}"#, vec!["1"; MAX_ITEMS + 1].join(","));
        assert_eq!(oversized(&list), Some(("r".to_string(), Oversized::List)));
        let list = format!(r#"{{"r":[{}]}}"#, vec!["1"; MAX_ITEMS].join(","));
        assert_eq!(oversized(&list), None);
    }
}
