//! `vr-agent tech-support`: one tar.gz with everything an engineer asks for first, with every
//! secret of the desired state (found by type: [`crate::redact::secrets_of`]) replaced by
//! `<redacted>` in every file.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::redact::scrub;

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
    for (name, text) in render(items, secrets) {
        index.push_str(name);
        index.push('\n');
        std::fs::write(root.join(name), text)?;
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

/// Each item's name and content, tools run with their deadline, secrets scrubbed (also the
/// content of the CloudStack diagnostics zip).
pub fn render(items: Vec<Item>, secrets: &[String]) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
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
        out.push((name, scrub(&text, secrets)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_is_scrubbed_of_the_typed_secrets() {
        let out = tempfile::tempdir().unwrap();
        let secrets = ["abc-psk".to_string(), "k2".to_string()];
        let items = vec![
            Item::Text("a.txt", "ip ospf message-digest-key 1 md5 k2\n".into()),
            Item::Run("b.txt", "echo", vec!["secret = abc-psk".into()]),
        ];
        let tgz = bundle(items, &secrets, &out.path().join("b.tar.gz")).unwrap();
        let x = out.path().join("x");
        std::fs::create_dir(&x).unwrap();
        assert!(Command::new("tar")
            .arg("xzf")
            .arg(&tgz)
            .arg("-C")
            .arg(&x)
            .status()
            .unwrap()
            .success());
        let root = x.join("vr-agent-tech-support");
        let a = std::fs::read_to_string(root.join("a.txt")).unwrap();
        let b = std::fs::read_to_string(root.join("b.txt")).unwrap();
        assert_eq!(a, "ip ospf message-digest-key 1 md5 <redacted>\n");
        assert!(
            b.contains("secret = <redacted>") && !b.contains("abc-psk"),
            "{b}"
        );
    }
}
