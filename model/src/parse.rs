//! Strict JSON parsing with errors that name the JSON path and the offending value.
//!
//! The typed parse runs straight on the text (so duplicate keys and unknown fields are caught
//! by serde); only when it fails is the text parsed again, loosely, to quote the value found at
//! the failing path.

use serde::de::DeserializeOwned;

use crate::error::{FieldError, Invalid};

/// Largest push accepted, checked before any parsing so hostile input cannot exhaust memory.
pub const MAX_PUSH_BYTES: usize = 16 * 1024 * 1024;

/// Whether a field of this name holds a secret, for quoting values of a push that failed to
/// parse (there is no typed value then to ask). The names are those of every
/// [`vr_secret::Secret`] field of the models, which a test derives from the models themselves
/// (`redact::tests::every_typed_secret_is_a_secret_name`), and `vm_metadata`, whose triples
/// carry user data.
pub fn is_secret_name(k: &str) -> bool {
    let k = k.to_ascii_lowercase();
    k.contains("password")
        || k.contains("secret")
        || k.ends_with("psk")
        || k.ends_with("key")
        || k == "vm_metadata"
        || k == "user_data"
}

/// Whether a JSON path (`a.b[2].psk`) is at or under a secret-bearing key.
pub fn is_secret_path(path: &str) -> bool {
    path_segments(path).iter().any(|s| match s {
        Seg::Key(k) => is_secret_name(k),
        Seg::Index(_) => false,
    })
}

/// Replaces, inside a quoted object or array, every value under a secret-bearing key: an
/// error about an OSPF `authentication` object quotes its type and key id, not its password.
pub fn hide_secrets(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, val) in m.iter_mut() {
                if is_secret_name(k) {
                    *val = serde_json::Value::String(vr_secret::REDACTED.into());
                } else {
                    hide_secrets(val);
                }
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(hide_secrets),
        _ => {}
    }
}

/// Parses `text` into `T`, or says which path and value are wrong.
pub fn parse_strict<T: DeserializeOwned>(text: &str) -> Result<T, Invalid> {
    parse_reporting(text, &mut |_| {})
}

/// Like [`parse_strict`], and also returns the JSON path of every field `T` does not know and
/// therefore ignored (only for types without `deny_unknown_fields`: CloudStack payloads).
pub fn parse_lenient<T: DeserializeOwned>(text: &str) -> Result<(T, Vec<String>), Invalid> {
    let mut ignored = Vec::new();
    let v = parse_reporting(text, &mut |p| ignored.push(ignored_path(&p)))?;
    Ok((v, ignored))
}

/// `rules[0].new_field`, the path notation of the errors.
fn ignored_path(p: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match p {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", ignored_path(parent)),
        Path::Map { parent, key } => match ignored_path(parent) {
            s if s.is_empty() => key.clone(),
            s => format!("{s}.{key}"),
        },
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => ignored_path(parent),
    }
}

fn parse_reporting<T: DeserializeOwned, F: FnMut(serde_ignored::Path<'_>)>(
    text: &str,
    ignored: &mut F,
) -> Result<T, Invalid> {
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
    let err = match serde_path_to_error::deserialize::<_, T>(serde_ignored::Deserializer::new(
        &mut de, ignored,
    )) {
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
        // serde's reason may quote the value too (`invalid type: integer `1234``).
        if let Some(v) = value_at(text, &path) {
            let v = v.trim_matches('"');
            if !v.is_empty() {
                reason = reason.replace(v, vr_secret::REDACTED);
            }
        }
        vr_secret::REDACTED.to_string()
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

pub(crate) enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

pub(crate) fn path_segments(path: &str) -> Vec<Seg<'_>> {
    let mut out = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let mut rest = part;
        if let Some(i) = rest.find('[') {
            if i > 0 {
                out.push(Seg::Key(&rest[..i]));
            }
            rest = &rest[i..];
            while let Some(stripped) = rest.strip_prefix('[') {
                let end = stripped.find(']').unwrap_or(stripped.len());
                if let Ok(n) = stripped[..end].parse() {
                    out.push(Seg::Index(n));
                }
                rest = stripped.get(end + 1..).unwrap_or("");
            }
        } else {
            out.push(Seg::Key(rest));
        }
    }
    out
}

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
        assert!(is_secret_path("preshared_key"));
        assert!(is_secret_path("vm_metadata[0][2]"));
        assert!(is_secret_path("ospf.interfaces[0].authentication.password"));
        assert!(!is_secret_path("nat.port_forwards[0].public_ip"));
        assert!(!is_secret_path("ospf.interfaces[0].authentication.key_id"));
    }

    #[test]
    fn a_secret_of_the_wrong_type_is_not_quoted_in_the_reason() {
        let text = r#"{"schema":1,"vpn":{"site_to_site":[{"psk":987654321}]}}"#;
        let err = parse_strict::<StateDocument>(text).unwrap_err();
        assert_eq!(err.0[0].path, "vpn.site_to_site[0].psk");
        assert_eq!(err.0[0].value, "<redacted>");
        assert!(!err.to_string().contains("987654321"), "{err}");
    }

    #[test]
    fn a_quoted_object_never_quotes_its_secrets() {
        // Issue 12: a rejected `authentication` object was quoted whole, password included.
        let text = r#"{"schema":1,"ospf":{"router_id":"10.0.0.1","interfaces":[{"device":"eth1",
            "authentication":{"type":"md5","password":"ospf-md5-Zq81"}}]}}"#;
        let err = parse_strict::<StateDocument>(text).unwrap_err();
        let shown = err.to_string();
        assert!(!shown.contains("ospf-md5-Zq81"), "{shown}");
        assert!(shown.contains("authentication"), "{shown}");
        assert!(
            shown.contains("<redacted>"),
            "the field is named, its value hidden: {shown}"
        );
    }

    #[test]
    fn oversized_push_is_refused_before_parsing() {
        let big = " ".repeat(MAX_PUSH_BYTES + 1);
        let err = parse_strict::<StateDocument>(&big).unwrap_err();
        assert!(err.to_string().contains("limit"));
    }
}
