//! The `VR-<uuid>.cfg` container CloudStack sends on router start:
//!
//! ```text
//! #Apache CloudStack Virtual Router Config File
//! <version>
//! 1.0
//! </version>
//! <file>
//! /var/cache/cloud/ip_associations.json.<uuid>
//! {...one-line JSON...}
//! </file>
//! <script>
//! /opt/cloud/bin/update_config.py ip_associations.json.<uuid>
//! </script>
//! ```
//!
//! Every part is parsed and validated before anything is merged; one bad part rejects the
//! whole container (CloudStack's own script reports success after a failure). A `<script>`
//! must run `update_config.py` on the file right before it (optionally with the keep-in-cache
//! flag `true`/`false`), or `configure.py NAME.json`, which re-runs what the merge already did.
//! This agent runs no scripts, so any other script is refused rather than silently skipped.
//!
//! CloudStack writes every `<file>` with the `<script>` that applies it, so a container always
//! ends with `</script>`. A `<file>` without its script is a container cut short (a copy
//! interrupted after a `</file>`): it is refused, never applied as the shorter container it
//! happens to look like.

use super::{parse_payload, Payload};
use crate::error::{FieldError, Invalid};

/// One `<file>` of a container, with the `<script>` that followed it.
#[derive(Debug, Clone)]
pub struct AggregateEntry {
    /// The path as written, e.g. `/var/cache/cloud/ip_associations.json.<uuid>`.
    pub file: String,
    /// 1-based line of the JSON text in the container.
    pub line: usize,
    /// The script line, if one followed.
    pub script: Option<String>,
    pub payload: Payload,
}

/// Whether `text` is a container rather than one JSON payload.
pub fn is_aggregate(text: &str) -> bool {
    let head = text.trim_start();
    head.starts_with("#Apache CloudStack")
        || head.starts_with("<version>")
        || head.starts_with("<file>")
}

/// Whether a container looks cut short: it does not end with a `</script>` line.
pub fn cut_short(text: &str) -> bool {
    text.trim_end().lines().last().map(str::trim) != Some("</script>")
}

fn at(line: usize, value: &str, reason: &str) -> FieldError {
    FieldError::new(format!("line {line}"), quote_line(value), reason)
}

/// A misplaced line may be a payload (a `<file>` without its path line, a JSON line outside
/// `<file>`) and carry secrets: JSON is quoted with its secrets hidden, and a line that looks
/// like JSON but does not parse is not quoted at all.
fn quote_line(v: &str) -> String {
    let t = v.trim();
    if !(t.starts_with('{') || t.starts_with('[') || t.contains('"')) {
        return super::check::q(v);
    }
    match serde_json::from_str::<serde_json::Value>(t) {
        Ok(mut j) => {
            crate::parse::hide_secrets(&mut j);
            j.to_string()
        }
        Err(_) => "<not quoted: a JSON-like line may hold secrets>".into(),
    }
}

/// Re-roots a payload error under its container part.
pub fn in_part(k: usize, file: &str, line: usize, e: FieldError) -> FieldError {
    let path = if e.path.is_empty() || e.path == "(document)" {
        format!("aggregate[{k}]")
    } else {
        format!("aggregate[{k}].{}", e.path)
    };
    // A "file name" that is really a payload (its path line missing) is quoted like one.
    let file = match file.trim_start().starts_with(['{', '[']) {
        true => quote_line(file),
        false => file.to_string(),
    };
    FieldError {
        path,
        value: e.value,
        reason: format!("{} (in {file}, container line {line})", e.reason),
    }
}

struct Part {
    file: String,
    line: usize,
    json: String,
}

/// Parses the container; every part must be a valid payload.
pub fn parse_aggregate(text: &str) -> Result<Vec<AggregateEntry>, Invalid> {
    let lines: Vec<&str> = text.lines().collect();
    let mut errs = Vec::new();
    let mut out: Vec<(Part, Option<String>)> = Vec::new();
    let mut i = 0;
    // The block starting at line index `start` ends at its closing tag; returns the lines in
    // between and the index after the tag.
    let block = |start: usize, close: &str| -> Option<(usize, usize)> {
        (start + 1..lines.len())
            .find(|&j| lines[j].trim() == close)
            .map(|j| (start + 1, j))
    };
    while i < lines.len() {
        let l = lines[i].trim();
        let n = i + 1;
        match l {
            "" => i += 1,
            _ if l.starts_with('#') && out.is_empty() => i += 1,
            "<version>" => {
                let Some((a, b)) = block(i, "</version>") else {
                    errs.push(at(n, l, "unterminated <version>"));
                    break;
                };
                let v: Vec<&str> = lines[a..b]
                    .iter()
                    .map(|s| s.trim())
                    .filter(|s| !s.is_empty())
                    .collect();
                if v != ["1.0"] {
                    errs.push(at(
                        a + 1,
                        &v.join(" "),
                        "unsupported container version (expected 1.0)",
                    ));
                }
                i = b + 1;
            }
            "<file>" => {
                let Some((a, b)) = block(i, "</file>") else {
                    errs.push(at(n, l, "unterminated <file>"));
                    break;
                };
                let body: Vec<(usize, &str)> = (a..b)
                    .map(|j| (j, lines[j]))
                    .filter(|(_, s)| !s.trim().is_empty())
                    .collect();
                match body.split_first() {
                    Some(((_, path), rest)) if !rest.is_empty() => {
                        let path = path.trim();
                        if path.chars().any(|c| c.is_control() || c.is_whitespace())
                            || path.starts_with('{')
                        {
                            errs.push(at(
                                a + 1,
                                path,
                                "expected the file path line before the JSON",
                            ));
                        }
                        let json = rest.iter().map(|(_, s)| *s).collect::<Vec<_>>().join("\n");
                        out.push((
                            Part {
                                file: path.to_string(),
                                line: rest[0].0 + 1,
                                json,
                            },
                            None,
                        ));
                    }
                    _ => errs.push(at(n, l, "<file> needs a path line and a JSON line")),
                }
                i = b + 1;
            }
            "<script>" => {
                let Some((a, b)) = block(i, "</script>") else {
                    errs.push(at(n, l, "unterminated <script>"));
                    break;
                };
                let cmd = lines[a..b]
                    .iter()
                    .map(|s| s.trim())
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join(" ");
                match (script_kind(&cmd), out.last_mut()) {
                    (Script::UpdateConfig(f), Some((part, script @ None))) if f == base(&part.file) => {
                        *script = Some(cmd)
                    }
                    // `configure.py monitor_service.json` re-runs what the part before it set;
                    // the merge already did that.
                    (Script::Configure, Some(_)) => {}
                    _ => errs.push(at(a + 1, &cmd, "unsupported script: only update_config.py on the file just before it (or configure.py after it) is accepted")),
                }
                i = b + 1;
            }
            _ => {
                errs.push(at(
                    n,
                    l,
                    "unexpected line outside <version>, <file> and <script>",
                ));
                i += 1;
            }
        }
    }
    if let Some((part, None)) = out.last() {
        // The last file has no script: the copy stopped after its `</file>`.
        errs.push(at(
            part.line,
            &part.file,
            "<file> without its <script>: the container is cut short (CloudStack writes a script after every file)",
        ));
    }
    if out.is_empty() && errs.is_empty() {
        errs.push(FieldError::new(
            "(document)",
            "",
            "container holds no <file>",
        ));
    }
    let mut entries = Vec::new();
    for (k, (part, script)) in out.into_iter().enumerate() {
        match parse_payload(&part.json) {
            Ok(payload) => entries.push(AggregateEntry {
                file: part.file,
                line: part.line,
                script,
                payload,
            }),
            Err(Invalid(es)) => {
                errs.extend(es.into_iter().map(|e| in_part(k, &part.file, part.line, e)))
            }
        }
    }
    if errs.is_empty() {
        Ok(entries)
    } else {
        Err(Invalid(errs))
    }
}

fn base(file: &str) -> &str {
    file.rsplit('/').next().unwrap_or(file)
}

enum Script<'a> {
    /// `[python3] .../update_config.py FILE [true|false]` (the flag: keep in processed cache)
    UpdateConfig(&'a str),
    /// `.../configure.py NAME.json`
    Configure,
    Other,
}

fn script_kind(cmd: &str) -> Script<'_> {
    let words: Vec<&str> = cmd.split_whitespace().collect();
    let words = match words.first() {
        Some(w) if w.starts_with("python") => &words[1..],
        _ => &words[..],
    };
    let plain_name = |a: &str| {
        !a.is_empty()
            && a.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    };
    match words {
        [s, f] | [s, f, "true" | "false"]
            if s.ends_with("/update_config.py") || *s == "update_config.py" =>
        {
            Script::UpdateConfig(f)
        }
        [s, f] if (s.ends_with("/configure.py") || *s == "configure.py") && plain_name(f) => {
            Script::Configure
        }
        _ => Script::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IPS: &str = r#"{"type":"ips","delete_from_processed_cache":false,"ip_address":[{"public_ip":"192.0.2.10","source_nat":true,"add":true,"one_to_one_nat":false,"first_i_p":true,"gateway":"192.0.2.1","netmask":"255.255.255.0","vif_mac_address":"06:9a:3c:00:00:12","nic_dev_id":2,"new_nic":false,"nw_type":"public"}]}"#;
    const ROUTES: &str = r#"{"type":"staticroutes","delete_from_processed_cache":false,"routes":[{"revoke":false,"ip_address":"10.10.0.2","gateway":"10.10.0.1","network":"172.16.0.0/16"}]}"#;

    fn container(parts: &[(&str, &str)]) -> String {
        let mut s = String::from(
            "#Apache CloudStack Virtual Router Config File\n<version>\n1.0\n</version>\n",
        );
        for (name, json) in parts {
            let f = format!("{name}.4f1e2c");
            s += &format!("<file>\n/var/cache/cloud/{f}\n{json}\n</file>\n<script>\n/opt/cloud/bin/update_config.py {f}\n</script>\n");
        }
        s
    }

    #[test]
    fn parses_parts_in_order() {
        let text = container(&[
            ("ip_associations.json", IPS),
            ("static_routes.json", ROUTES),
        ]);
        assert!(is_aggregate(&text));
        let e = parse_aggregate(&text).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].payload.kind(), "ips");
        assert_eq!(e[1].payload.kind(), "staticroutes");
        assert_eq!(e[0].line, 7);
        assert_eq!(e[1].line, 14);
        assert_eq!(
            e[1].script.as_deref(),
            Some("/opt/cloud/bin/update_config.py static_routes.json.4f1e2c")
        );
    }

    #[test]
    fn invalid_second_part_rejects_the_whole_container() {
        let bad = ROUTES.replace("172.16.0.0/16", "172.16.0.0/33");
        let text = container(&[("ip_associations.json", IPS), ("static_routes.json", &bad)]);
        let err = parse_aggregate(&text).unwrap_err();
        assert_eq!(err.0.len(), 1);
        assert_eq!(err.0[0].path, "aggregate[1].routes[0].network");
        assert_eq!(err.0[0].value, "\"172.16.0.0/33\"");
        assert!(err.0[0].reason.contains("line 14"), "{}", err.0[0].reason);
    }

    #[test]
    fn structure_errors_name_the_line() {
        let text = "<version>\n2.0\n</version>\n<file>\n/var/cache/cloud/x.json\n";
        let err = parse_aggregate(text).unwrap_err();
        assert_eq!(err.0[0].path, "line 2");
        assert_eq!(err.0[1].path, "line 4");
        assert!(err.0[1].reason.contains("unterminated"));

        let text = container(&[("ip_associations.json", IPS)])
            .replace("update_config.py ip_associations", "rm -rf ip_associations");
        let err = parse_aggregate(&text).unwrap_err();
        assert!(err.0[0].reason.contains("unsupported script"), "{err}");

        let ok = container(&[("ip_associations.json", IPS)]).replace(
            "update_config.py ip_associations.json.4f1e2c\n",
            "update_config.py ip_associations.json.4f1e2c false\n</script>\n<script>\n/opt/cloud/bin/configure.py monitor_service.json\n",
        );
        assert!(parse_aggregate(&ok).is_ok(), "{ok}");
        let wrong = container(&[("ip_associations.json", IPS)]).replace(
            "update_config.py ip_associations.json.4f1e2c",
            "update_config.py guest_network.json.4f1e2c",
        );
        assert!(parse_aggregate(&wrong).is_err());

        let text = format!("{}garbage\n", container(&[("ip_associations.json", IPS)]));
        let err = parse_aggregate(&text).unwrap_err();
        assert_eq!(err.0[0].path, "line 12");

        let err = parse_aggregate("#Apache CloudStack Virtual Router Config File\n").unwrap_err();
        assert!(err.to_string().contains("no <file>"));
    }

    #[test]
    fn a_misplaced_payload_line_is_quoted_without_its_secrets() {
        let s2s =
            r#"{"type":"site2sitevpn","peer_gateway_ip":"203.0.113.5","ipsec_psk":"agg-psk-Vn20"}"#;
        // A <file> whose path line is missing: the JSON is taken for the path.
        let text = format!("<file>\n{s2s}\n{s2s}\n</file>\n");
        let err = parse_aggregate(&text).unwrap_err().to_string();
        assert!(
            err.contains("file path line") && err.contains("203.0.113.5"),
            "{err}"
        );
        assert!(!err.contains("agg-psk-Vn20"), "{err}");
        // A payload line outside <file>, whole or cut.
        for line in [s2s, &s2s[..60]] {
            let text = format!("{}{line}\n", container(&[("ip_associations.json", IPS)]));
            let err = parse_aggregate(&text).unwrap_err().to_string();
            assert!(err.contains("unexpected line"), "{err}");
            assert!(!err.contains("agg-psk"), "{err}");
        }
    }

    #[test]
    fn a_container_cut_after_a_file_is_refused() {
        let whole = container(&[
            ("ip_associations.json", IPS),
            ("static_routes.json", ROUTES),
        ]);
        assert!(!cut_short(&whole));
        let cut = &whole[..whole.rfind("<script>").unwrap()];
        assert!(cut.trim_end().ends_with("</file>"));
        assert!(cut_short(cut));
        let err = parse_aggregate(cut).unwrap_err();
        assert_eq!(err.0.len(), 1, "{err}");
        assert_eq!(err.0[0].path, "line 14");
        assert!(err.0[0].reason.contains("cut short"), "{err}");
        // Cut inside the JSON line or a tag: an unterminated block.
        for n in [whole.len() / 2, whole.rfind("</file>").unwrap() + 3] {
            assert!(cut_short(&whole[..n]));
            assert!(parse_aggregate(&whole[..n]).is_err());
        }
    }

    #[test]
    fn json_syntax_error_in_a_part() {
        let text = container(&[("ip_associations.json", "{\"type\":\"ips\",")]);
        let err = parse_aggregate(&text).unwrap_err();
        assert!(err.0[0].path.starts_with("aggregate[0]"), "{err}");
    }
}
