//! One pass over a push for the common large case (issue 15): a CloudStack `forwardrules`
//! payload, whose rules are read as borrowed slices of the push text (no `String` per field),
//! while the same walk tells a native document (no top-level `"type"`) from a CloudStack one.
//! Before this, a 10,000-rule push was read four times (the format probe, the adapter's type
//! probe, the oversize scan, the typed parse with a `String` per field) before any rule was
//! looked at.
//!
//! The reader only recognises; it never reports. Whatever it does not know exactly (another
//! payload type, an unknown or duplicate field, an escaped string, a value of another type, a
//! list over [`MAX_ITEMS`], invalid JSON) makes it answer [`Read::Undecided`], and the caller
//! takes the reporting path (`parse_payload`), which names the field and the value, logs the
//! fields it ignores and applies the size limits exactly as before. So what this accepts, the
//! reporting path accepts with the same values (`same_rules_as_the_reporting_parse` below).

use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use crate::types::ForwardRule;
use vr_model::oversize::MAX_ITEMS;

/// A `forwardrules` entry as slices of the push text (see [`ForwardRule`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForwardRuleRef<'a> {
    pub revoke: bool,
    pub protocol: &'a str,
    pub source_ip_address: &'a str,
    pub source_port_range: &'a str,
    pub destination_ip_address: &'a str,
    pub destination_port_range: &'a str,
    pub source_cidr_list: Option<&'a str>,
}

impl ForwardRule {
    /// This rule's fields, borrowed.
    pub fn view(&self) -> ForwardRuleRef<'_> {
        ForwardRuleRef {
            revoke: self.revoke,
            protocol: &self.protocol,
            source_ip_address: &self.source_ip_address,
            source_port_range: &self.source_port_range,
            destination_ip_address: &self.destination_ip_address,
            destination_port_range: &self.destination_port_range,
            source_cidr_list: self.source_cidr_list.as_deref(),
        }
    }
}

/// What [`read`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Read<'a> {
    /// A JSON object without a top-level `"type"`: the native format.
    Native,
    /// A `forwardrules` payload of exactly the known fields, its rules in push order.
    Forwards(Vec<ForwardRuleRef<'a>>),
    /// Anything else: the caller's probe and reporting parse decide.
    Undecided,
}

/// Reads `text` once (see the module documentation).
pub fn read(text: &str) -> Read<'_> {
    let mut de = serde_json::Deserializer::from_str(text);
    let found = match de.deserialize_map(Top) {
        Ok(f) => f,
        Err(_) => return Read::Undecided,
    };
    if de.end().is_err() {
        return Read::Undecided;
    }
    match found {
        Found::Native => Read::Native,
        Found::Forwards(rules) => Read::Forwards(rules),
    }
}

/// A rule list of at most [`MAX_ITEMS`] entries: the reader stops at the next one, before a
/// hostile 16 MiB list of short rules is built (the reporting path then names the list).
struct Rules<'a>(Vec<ForwardRuleRef<'a>>);

impl<'de> Deserialize<'de> for Rules<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Rules<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a rule list")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Rules<'de>, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
                while let Some(r) = seq.next_element()? {
                    if out.len() == MAX_ITEMS {
                        return Err(stop());
                    }
                    out.push(r);
                }
                Ok(Rules(out))
            }
        }
        d.deserialize_seq(V)
    }
}

enum Found<'a> {
    Native,
    Forwards(Vec<ForwardRuleRef<'a>>),
}

/// Any reason to stop reading; its text is never shown (the reporting path says why).
fn stop<E: de::Error>() -> E {
    E::custom("not for the quick reader")
}

/// The top-level object: `type`, `delete_from_processed_cache`, `rules`; every other key is
/// skipped when no `type` comes (a native document), refused otherwise.
struct Top;

impl<'de> Visitor<'de> for Top {
    type Value = Found<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a push object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Found<'de>, A::Error> {
        let mut kind: Option<&'de str> = None;
        let mut delete_flag = false;
        let mut rules: Option<Vec<ForwardRuleRef<'de>>> = None;
        let mut other_keys = false;
        while let Some(key) = map.next_key::<&'de str>()? {
            match key {
                "type" => {
                    if kind.is_some() || other_keys {
                        return Err(stop());
                    }
                    let k: &'de str = map.next_value()?;
                    if k != "forwardrules" {
                        return Err(stop());
                    }
                    kind = Some(k);
                }
                "delete_from_processed_cache" if !delete_flag => {
                    let _: bool = map.next_value()?;
                    delete_flag = true;
                }
                // Before `type` too: CloudStack's Gson may write a subclass's fields first.
                "rules" if rules.is_none() => rules = Some(map.next_value::<Rules<'de>>()?.0),
                _ if kind.is_none() && rules.is_none() && !delete_flag => {
                    // A native document's sections (or fields a CloudStack sender added):
                    // skipped until a `type` says which.
                    map.next_value::<IgnoredAny>()?;
                    other_keys = true;
                }
                _ => return Err(stop()),
            }
        }
        match (kind, rules) {
            (Some(_), Some(rules)) => Ok(Found::Forwards(rules)),
            (None, _) => Ok(Found::Native),
            (Some(_), None) => Err(stop()),
        }
    }
}

/// The fields of a rule, in one place for the visitor and its duplicate check.
const FIELDS: [&str; 7] = [
    "revoke",
    "protocol",
    "source_ip_address",
    "source_port_range",
    "destination_ip_address",
    "destination_port_range",
    "source_cidr_list",
];

impl<'de> Deserialize<'de> for ForwardRuleRef<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(RuleVisitor)
    }
}

struct RuleVisitor;

impl<'de> Visitor<'de> for RuleVisitor {
    type Value = ForwardRuleRef<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a forward rule")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ForwardRuleRef<'de>, A::Error> {
        let mut seen = [false; FIELDS.len()];
        let mut revoke = false;
        let mut text: [&'de str; 5] = [""; 5];
        let mut cidrs: Option<&'de str> = None;
        while let Some(key) = map.next_key::<&'de str>()? {
            let i = FIELDS.iter().position(|f| *f == key).ok_or_else(stop)?;
            if std::mem::replace(&mut seen[i], true) {
                return Err(stop());
            }
            match i {
                0 => revoke = map.next_value()?,
                6 => cidrs = map.next_value()?,
                _ => text[i - 1] = map.next_value()?,
            }
        }
        // Every field but `revoke` and `source_cidr_list` is required.
        if !seen[1..6].iter().all(|s| *s) {
            return Err(stop());
        }
        let [protocol, source_ip_address, source_port_range, destination_ip_address, destination_port_range] =
            text;
        Ok(ForwardRuleRef {
            revoke,
            protocol,
            source_ip_address,
            source_port_range,
            destination_ip_address,
            destination_port_range,
            source_cidr_list: cidrs,
        })
    }

    // A JSON array is a valid struct for serde's derive: left to the reporting path.
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<ForwardRuleRef<'de>, A::Error> {
        Err(stop())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{parse_payload, Payload};

    const RULE: &str = r#"{"revoke":false,"protocol":"tcp","source_ip_address":"192.0.2.11","source_port_range":"22:22","destination_ip_address":"10.1.1.5","destination_port_range":"22:22"}"#;

    fn push(rules: &str) -> String {
        format!(
            r#"{{"type":"forwardrules","delete_from_processed_cache":false,"rules":[{rules}]}}"#
        )
    }

    fn reporting(text: &str) -> Vec<ForwardRule> {
        match parse_payload(text) {
            Ok(Payload::ForwardRules(p)) => p.rules,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn same_rules_as_the_reporting_parse() {
        let with_cidrs = RULE.replace(
            r#""revoke":false,"#,
            r#""revoke":true,"source_cidr_list":"10.0.0.0/8","#,
        );
        let null_cidrs = RULE.replace("}", r#","source_cidr_list":null}"#);
        let no_revoke = RULE.replace(r#""revoke":false,"#, "");
        for text in [
            push(RULE),
            push(&format!("{RULE},{with_cidrs},{null_cidrs},{no_revoke}")),
            // Gson may write the subclass's fields before `type`.
            format!(r#"{{"rules":[{RULE}],"type":"forwardrules"}}"#),
            format!(r#" {{"type":"forwardrules","rules":[{RULE}]}} "#),
            push(""),
        ] {
            let Read::Forwards(quick) = read(&text) else {
                panic!("not read: {text}");
            };
            let slow = reporting(&text);
            let slow: Vec<ForwardRuleRef<'_>> = slow.iter().map(ForwardRule::view).collect();
            assert_eq!(quick, slow, "{text}");
        }
    }

    #[test]
    fn native_documents_are_told_apart() {
        assert_eq!(read(r#"{"schema":1}"#), Read::Native);
        assert_eq!(
            read(r#"{"schema":1,"nat":{"port_forwards":[{"type":"x"}]}}"#),
            Read::Native
        );
        assert_eq!(read("{}"), Read::Native);
    }

    /// Everything the reporting path must see: it names the field, logs an unknown one, or
    /// knows the type.
    #[test]
    fn anything_unusual_is_left_to_the_reporting_path() {
        for text in [
            push(&RULE.replace("\"tcp\"", "\"t\\u0063p\"")),
            push(&RULE.replace("\"revoke\":false", "\"revoke\":false,\"new_field\":1")),
            push(&RULE.replace("\"revoke\":false", "\"revoke\":false,\"revoke\":true")),
            push(&RULE.replace("\"protocol\":\"tcp\",", "")),
            push(&RULE.replace("\"tcp\"", "6")),
            push(&RULE.replace("\"revoke\":false", "\"revoke\":null")),
            push(r#"[false,"tcp","192.0.2.11","22","10.1.1.5","22",null]"#),
            push(RULE).replace("\"delete_from", "\"extra\":1,\"delete_from"),
            push(RULE).replace("forwardrules", "staticnatrules"),
            format!(r#"{{"schema":1,"type":"forwardrules","rules":[{RULE}]}}"#),
            r#"{"type":"forwardrules","type":"forwardrules","rules":[]}"#.to_string(),
            r#"{"type":"forwardrules"}"#.to_string(),
            push(RULE) + "x",
            push(RULE).replace("]}", "]"),
            "[]".to_string(),
            format!(r#"{{"type":null,"rules":[{RULE}]}}"#),
        ] {
            assert_eq!(read(&text), Read::Undecided, "{text}");
        }
    }

    #[test]
    fn a_list_over_the_limit_is_left_to_the_reporting_path() {
        let rules = vec![RULE; MAX_ITEMS + 1].join(",");
        assert_eq!(read(&push(&rules)), Read::Undecided);
    }
}
