//! Secrets never leave the state file and charon: every view of the state for an operator, a
//! log or a result goes through [`redact_json`].

use serde_json::Value;

use crate::parse::is_secret_path;

/// Replaces the value of every secret-bearing key (psk, password, ...) with `<redacted>`.
pub fn redact_json(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                if is_secret_path(k) && !val.is_null() {
                    *val = Value::String("<redacted>".into());
                } else {
                    redact_json(val);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_json),
        _ => {}
    }
}

/// `value` as JSON with secrets redacted.
pub fn redacted<T: serde::Serialize>(value: &T) -> Value {
    let mut v = serde_json::to_value(value).unwrap_or(Value::Null);
    redact_json(&mut v);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_secrets_are_replaced() {
        let mut v = serde_json::json!({"vpn":{"site_to_site":[{"psk":"s3cret","peer_gateway":"203.0.113.5"}]},
            "ospf":{"interfaces":[{"authentication":{"type":"md5","key_id":1,"password":"k"}}]}});
        redact_json(&mut v);
        let text = v.to_string();
        assert!(
            !text.contains("s3cret") && !text.contains("\"k\""),
            "{text}"
        );
        assert!(text.contains("203.0.113.5"));
    }
}
