//! `vr-agent tech-support`: one tar.gz with everything an engineer asks for first, with every
//! secret of the desired state replaced by `<redacted>` in every file.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::parse::is_secret_path;

/// Every secret value in a JSON tree (values of psk/password/... keys), longest first so that
/// a secret containing another is replaced whole.
pub fn secrets_in(v: &serde_json::Value) -> Vec<String> {
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, val) in m {
                    match val {
                        serde_json::Value::String(s) if is_secret_path(k) && !s.is_empty() => {
                            out.push(s.clone())
                        }
                        _ => walk(val, out),
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(v, &mut out);
    out.sort_by_key(|s| std::cmp::Reverse(s.len()));
    out.dedup();
    out
}

/// `text` with every occurrence of every secret replaced.
pub fn redact_text(text: &str, secrets: &[String]) -> String {
    let mut t = text.to_string();
    for s in secrets {
        if s.len() >= 2 {
            t = t.replace(s.as_str(), "<redacted>");
        }
    }
    t
}

/// One file of the bundle: a name and how to produce its content.
#[derive(Debug)]
pub enum Item {
    Text(&'static str, String),
    Run(&'static str, &'static str, Vec<String>),
}

/// Writes the items into a directory, redacts them, and packs `out` (mode 0600).
pub fn bundle(items: Vec<Item>, secrets: &[String], out: &Path) -> std::io::Result<PathBuf> {
    let dir = tempfile::Builder::new()
        .prefix("vr-agent-tech-support")
        .tempdir()?;
    let root = dir.path().join("vr-agent-tech-support");
    std::fs::create_dir(&root)?;
    let mut index = String::new();
    for item in items {
        let (name, text) = match item {
            Item::Text(name, text) => (name, text),
            Item::Run(name, program, args) => {
                let text = match crate::process::output_within(
                    Command::new(program).args(&args),
                    crate::process::TOOL_DEADLINE,
                ) {
                    Ok(o) => format!(
                        "$ {program} {}\n{}{}",
                        args.join(" "),
                        String::from_utf8_lossy(&o.stdout),
                        String::from_utf8_lossy(&o.stderr)
                    ),
                    Err(e) => format!("$ {program} {}\n(not run: {e})\n", args.join(" ")),
                };
                (name, text)
            }
        };
        index.push_str(name);
        index.push('\n');
        std::fs::write(root.join(name), redact_text(&text, secrets))?;
    }
    std::fs::write(root.join("INDEX"), index)?;
    let status = Command::new("tar")
        .arg("czf")
        .arg(out)
        .arg("-C")
        .arg(dir.path())
        .arg("vr-agent-tech-support")
        .status()?;
    if !status.success() {
        return Err(std::io::Error::other(format!("tar exited with {status}")));
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(out, std::fs::Permissions::from_mode(0o600))?;
    Ok(out.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_found_and_replaced_everywhere() {
        let v = serde_json::json!({"vpn":{"site_to_site":[{"psk":"abc-psk"}]},"ospf":{"interfaces":[{"authentication":{"password":"k2"}}]}});
        let s = secrets_in(&v);
        assert_eq!(s, ["abc-psk", "k2"]);
        let text = "ip ospf message-digest-key 1 md5 k2\nsecret = abc-psk\n";
        let red = redact_text(text, &s);
        assert!(!red.contains("abc-psk") && !red.contains(" k2"), "{red}");
    }
}
