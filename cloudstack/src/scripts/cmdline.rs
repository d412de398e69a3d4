//! The boot command line on KVM (contract §15): `/var/cache/cloud/cmdline`, written through the
//! QEMU guest agent, whitespace-separated `key=value` tokens. Unlike upstream (`cut -d= -f2`,
//! which cuts a value at its second `=` and so drops base64 padding), a value is everything
//! after the first `=`.

use std::collections::BTreeMap;

/// Largest cmdline file read (CloudStack's are a few KiB; a kernel command line is 4 KiB).
pub const MAX_CMDLINE_BYTES: u64 = 64 * 1024;

/// The key/values of a cmdline text. Tokens without `=` or with an empty key are skipped; a
/// repeated key keeps its last value (as upstream's file of `KEY=VALUE` lines would).
pub fn parse(text: &str) -> BTreeMap<String, String> {
    text.split_whitespace()
        .filter_map(|t| t.split_once('='))
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The `cmdline` payload the agent applies for it (what upstream writes to `cmd_line.json`).
pub fn payload(map: &BTreeMap<String, String>) -> String {
    serde_json::json!({
        "type": "cmdline",
        "delete_from_processed_cache": false,
        "cmd_line": map,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_keep_their_equals_signs() {
        let m = parse(" template=domP name=r-4-VM authorized_key=c3NoLXJzYSBBQUFB== eth1ip=169.254.3.7 junk =x logrotatefrequency=*:00:00\n");
        assert_eq!(m["authorized_key"], "c3NoLXJzYSBBQUFB==");
        assert_eq!(m["name"], "r-4-VM");
        assert_eq!(m["logrotatefrequency"], "*:00:00");
        assert!(!m.contains_key("junk") && !m.contains_key(""));
        let p: serde_json::Value = serde_json::from_str(&payload(&m)).unwrap();
        assert_eq!(p["type"], "cmdline");
        assert_eq!(p["cmd_line"]["eth1ip"], "169.254.3.7");
    }
}
