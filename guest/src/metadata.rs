//! The native `metadata` section: per VM (by its guest address) the user data and metadata
//! keys the router serves it over HTTP (CloudStack's `vmdata`, section 17 of the contract).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use base64::Engine as _;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use vr_secret::Secret;

use crate::model::Problem;

/// User data and metadata by VM address. A VM absent here gets 404 for everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MetadataSection {
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, VmMetadata>")]
    pub vms: BTreeMap<Ipv4Addr, VmMetadata>,
}

/// What one VM is served.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VmMetadata {
    /// Base64 as CloudStack sends it (decoded when served); `""` is an empty user data
    /// (CloudStack sent `null`); absent: no user data (404).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_data: Option<Secret>,
    /// Metadata keys in the order they were first pushed (the `meta-data/` listing order).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<MetaKey>,
}

/// One `/latest/meta-data/<name>` file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MetaKey {
    pub name: String,
    /// Served raw, as pushed (no newline added).
    pub value: String,
}

impl MetadataSection {
    pub fn is_empty(&self) -> bool {
        self.vms.is_empty()
    }
}

impl VmMetadata {
    pub fn is_empty(&self) -> bool {
        self.user_data.is_none() && self.keys.is_empty()
    }

    /// CloudStack's `null` content: an empty file; `""`: the file is deleted.
    pub fn set_user_data(&mut self, content: Option<&str>) {
        self.user_data = match content {
            None => Some(Secret::new("")),
            Some("") => None,
            Some(b64) => Some(Secret::new(b64)),
        };
    }

    /// Same semantics for a metadata key; a new key goes to the end of the listing, a
    /// changed one keeps its place.
    pub fn set_key(&mut self, name: &str, content: Option<&str>) {
        match content {
            Some("") => self.keys.retain(|k| k.name != name),
            other => {
                let value = other.unwrap_or("").to_string();
                match self.keys.iter_mut().find(|k| k.name == name) {
                    Some(k) => k.value = value,
                    None => self.keys.push(MetaKey {
                        name: name.to_string(),
                        value,
                    }),
                }
            }
        }
    }

    pub fn key(&self, name: &str) -> Option<&str> {
        self.keys
            .iter()
            .find(|k| k.name == name)
            .map(|k| k.value.as_str())
    }
}

/// User data as the guest gets it: base64-decoded after padding to a multiple of 4, as
/// CloudStack's `CsVmMetadata` does. Characters outside the base64 alphabet (line breaks of a
/// wrapped encoding) are skipped, as Python's `b64decode` skips them.
pub fn decode_user_data(b64: &str) -> Result<Vec<u8>, String> {
    let mut clean: String = b64
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '='))
        .collect();
    let trimmed = clean.trim_end_matches('=').len();
    clean.truncate(trimmed);
    while !clean.len().is_multiple_of(4) {
        clean.push('=');
    }
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    engine.decode(clean.as_bytes()).map_err(|e| e.to_string())
}

/// A metadata key name: one or more path segments of `[A-Za-z0-9._-]`, never `.` or `..`.
pub fn is_key_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        })
}

/// Every value check of the section (the value of user data is never quoted).
pub fn validate(s: &MetadataSection) -> Vec<Problem> {
    let mut out = Vec::new();
    for (ip, vm) in &s.vms {
        let p = format!("metadata.vms[\"{ip}\"]");
        if let Some(u) = &vm.user_data {
            // Neither the value nor the decoder's message (it quotes a byte) is given.
            if decode_user_data(u.expose()).is_err() {
                out.push(Problem {
                    path: format!("{p}.user_data"),
                    value: vr_secret::REDACTED.into(),
                    reason: "user data is not base64",
                });
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, k) in vm.keys.iter().enumerate() {
            if !is_key_name(&k.name) {
                out.push(Problem {
                    path: format!("{p}.keys[{i}].name"),
                    value: k.name.clone(),
                    reason: "invalid metadata key name",
                });
            } else if !seen.insert(k.name.as_str()) {
                out.push(Problem {
                    path: format!("{p}.keys[{i}].name"),
                    value: k.name.clone(),
                    reason: "metadata key listed twice",
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_like_cloudstack() {
        // Unpadded, as CloudStack may send it; padded; wrapped.
        assert_eq!(decode_user_data("aGVsbG8").unwrap(), b"hello");
        assert_eq!(decode_user_data("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(decode_user_data("aGVs\nbG8=\n").unwrap(), b"hello");
        assert_eq!(decode_user_data("").unwrap(), b"");
        assert!(decode_user_data("a").is_err());
    }

    #[test]
    fn null_empty_and_accumulation() {
        let mut vm = VmMetadata::default();
        vm.set_user_data(Some("aGk="));
        vm.set_key("instance-id", Some("i-1"));
        vm.set_key("vm-id", Some("u-1"));
        vm.set_key("availability-zone", None);
        vm.set_key("instance-id", Some("i-2"));
        let names: Vec<&str> = vm.keys.iter().map(|k| k.name.as_str()).collect();
        assert_eq!(names, ["instance-id", "vm-id", "availability-zone"]);
        assert_eq!(vm.key("instance-id"), Some("i-2"));
        assert_eq!(vm.key("availability-zone"), Some(""));
        vm.set_key("vm-id", Some(""));
        assert_eq!(vm.key("vm-id"), None);
        vm.set_user_data(None);
        assert_eq!(vm.user_data.as_ref().map(Secret::expose), Some(""));
        vm.set_user_data(Some(""));
        assert!(vm.user_data.is_none());
    }

    #[test]
    fn key_names_cannot_escape() {
        for ok in ["instance-id", "public-keys", "public-keys/0/openssh-key"] {
            assert!(is_key_name(ok), "{ok}");
        }
        for bad in ["", "..", "a/../b", "/x", "x/", "a b", "a\nb"] {
            assert!(!is_key_name(bad), "{bad:?}");
        }
    }
}
