//! Strict JSON parsing with errors that name the JSON path and the offending value.
//!
//! The typed parse runs straight on the text (so duplicate keys and unknown fields are caught
//! by serde); only when it fails is the text parsed again, loosely, to quote the value found at
//! the failing path.

use serde::de::DeserializeOwned;

use crate::error::{FieldError, Invalid};

/// Largest push accepted, checked before any parsing so hostile input cannot exhaust memory.
pub const MAX_PUSH_BYTES: usize = 16 * 1024 * 1024;

/// Keys whose values are never quoted in errors.
const SECRET_KEYS: &[&str] = &[
    "psk",
    "ipsec_psk",
    "password",
    "secret",
    "vm_password",
    "key",
];

/// Whether a JSON path (`a.b[2].psk`) ends in a secret-bearing key.
pub fn is_secret_path(path: &str) -> bool {
    let last = path.rsplit('.').next().unwrap_or(path);
    let last = last.split('[').next().unwrap_or(last);
    SECRET_KEYS.contains(&last) || last.contains("password") || last.ends_with("_psk")
}

/// Parses `text` into `T`, or says which path and value are wrong.
pub fn parse_strict<T: DeserializeOwned>(text: &str) -> Result<T, Invalid> {
    if text.len() > MAX_PUSH_BYTES {
        return Err(FieldError::new(
            "",
            format!("{} bytes", text.len()),
            format!("push larger than the {MAX_PUSH_BYTES}-byte limit"),
        )
        .into());
    }
    // Only large texts can hide a huge key or list; small ones skip the extra pass.
    if text.len() > OVERSIZE_SCAN_FROM {
        use crate::oversize::{oversized, Oversized, MAX_ITEMS, MAX_KEY};
        if let Some((path, what)) = oversized(text) {
            let path = if path.is_empty() {
                "(document)".to_string()
            } else {
                path
            };
            return Err(match what {
                Oversized::Key(len) => FieldError::new(
                    path,
                    format!("key of {len} bytes"),
                    format!("object key longer than {MAX_KEY} bytes"),
                ),
                Oversized::List => {
                    FieldError::new(path, "", format!("list of more than {MAX_ITEMS} entries"))
                }
            }
            .into());
        }
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let err = match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Ok(v) => match de.end() {
            Ok(()) => return Ok(v),
            Err(e) => {
                let msg = e.to_string();
                let reason = crate::excerpt::truncate_to(strip_position(&msg), MAX_REASON);
                return Err(FieldError {
                    path: "(document)".into(),
                    value: String::new(),
                    reason: format!("{reason} at line {} column {}", e.line(), e.column()),
                }
                .into());
            }
        },
        Err(err) => err,
    };
    // A path or message naming a 10 MB key is cut, not copied whole.
    let path = crate::excerpt::display(err.path());
    let path = if path == "." || path.is_empty() {
        "(document)".to_string()
    } else {
        path
    };
    let inner = err.into_inner();
    let msg = inner.to_string();
    let mut reason = crate::excerpt::truncate_to(strip_position(&msg), MAX_REASON);
    drop(msg);
    if inner.is_syntax() || inner.is_eof() {
        reason = format!(
            "{reason} at line {} column {}",
            inner.line(),
            inner.column()
        );
    }
    let value = if is_secret_path(&path) {
        "<redacted>".to_string()
    } else {
        value_at(text, &path).unwrap_or_default()
    };
    Err(FieldError {
        path,
        value,
        reason,
    }
    .into())
}

/// Texts from this size on are checked for huge keys and lists before the typed parse.
const OVERSIZE_SCAN_FROM: usize = 64 * 1024;

/// Longest reason quoted from the parser (an unknown field's message names the field).
const MAX_REASON: usize = 400;

/// serde_json appends " at line L column C"; the path already says where.
fn strip_position(msg: &str) -> &str {
    match msg.rfind(" at line ") {
        Some(i) => &msg[..i],
        None => msg,
    }
}

pub use crate::excerpt::value_at;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::StateDocument;

    #[test]
    fn names_path_and_value_of_a_bad_address() {
        let text = r#"{"schema":1,"nat":{"static_nat":[{"public_ip":"192.0.2.300","private_ip":"10.1.1.5"}]}}"#;
        let err = parse_strict::<StateDocument>(text).unwrap_err();
        let e = &err.0[0];
        assert_eq!(e.path, "nat.static_nat[0].public_ip");
        assert_eq!(e.value, "\"192.0.2.300\"");
    }

    #[test]
    fn rejects_unknown_and_duplicate_fields() {
        let err = parse_strict::<StateDocument>(r#"{"schema":1,"natt":{}}"#).unwrap_err();
        assert!(err.to_string().contains("natt"), "{err}");
        let err = parse_strict::<StateDocument>(r#"{"schema":1,"schema":1}"#).unwrap_err();
        assert!(err.to_string().contains("duplicate field"), "{err}");
    }

    #[test]
    fn syntax_error_gives_position() {
        let err = parse_strict::<StateDocument>("{\"schema\":1,").unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
    }

    #[test]
    fn secrets_are_not_quoted() {
        assert!(is_secret_path("vpn.site_to_site[0].psk"));
        assert!(is_secret_path("ipsec_psk"));
        assert!(!is_secret_path("nat.port_forwards[0].public_ip"));
    }

    #[test]
    fn oversized_push_is_refused_before_parsing() {
        let big = " ".repeat(MAX_PUSH_BYTES + 1);
        let err = parse_strict::<StateDocument>(&big).unwrap_err();
        assert!(err.to_string().contains("limit"));
    }
}
