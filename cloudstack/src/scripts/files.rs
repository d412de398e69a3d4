//! `get_diagnostics_files.py <file…>` and `cleanup.sh <zip>` (contract §9): which names may go
//! into the diagnostics zip, its name, its `fileinfo.txt`, and which files `cleanup.sh` may
//! delete. The zip holds only regular files under an allow-list of directories, never one of
//! the denied secrets, whatever the MS (or a user of the `getDiagnosticsData` API) asks for.

use std::path::{Component, Path, PathBuf};

/// The MS's pseudo-names: command output instead of a file.
pub const PSEUDO: [&str; 4] = ["iptables", "ipaddr", "iprule", "iproute"];

/// Directories whose files may be collected (besides the agent's own, added by the caller).
/// Not `/var/cache/cloud`: the management server's pushes land there (`*.json.<uuid>`,
/// `VR-<uuid>.cfg`, `processed/*.gz`) and they carry PSKs, user data and passwords.
pub const ALLOWED_DIRS: [&str; 2] = ["/var/log", "/etc"];

/// Compressed or archived files are never collected: they would go into the zip byte for
/// byte, past the scrubber that removes known secrets from text.
const PACKED: [&str; 8] = [".gz", ".xz", ".bz2", ".zst", ".zip", ".tgz", ".tar", ".lz4"];

/// Most bytes one collected file contributes (its tail is dropped).
pub const MAX_FILE_BYTES: u64 = 4 << 20;
/// Most bytes all collected files contribute together: they are held in memory until the zip
/// is written, on a router with 1 GiB or less.
pub const MAX_TOTAL_BYTES: u64 = 24 << 20;
/// Most files one zip holds.
pub const MAX_FILES: usize = 100;

/// One requested name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A pseudo-name (`iptables`, ...).
    Pseudo(&'static str),
    /// A file path that may be collected if it exists.
    File(PathBuf),
    /// Refused, with why (listed in `fileinfo.txt`).
    Refused(String, &'static str),
}

/// Whether `name` (a file name, not a path) is a secret that never leaves the router.
fn secret_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [
        "shadow",
        "gshadow",
        "shadow-",
        "gshadow-",
        "ipsec.secrets",
        "cmdline",
        "authorized_keys",
    ]
    .contains(&n.as_str())
        || n.starts_with("ssh_host_")
        || n.starts_with("id_")
        || n.ends_with(".key")
        || n.ends_with(".pem")
        || n.ends_with(".p12")
        || n.contains("password")
        || n.contains("passwd")
        || n.starts_with("state.")
        || n.contains("secret")
}

/// Classifies one argument. `allowed` are the directories files may come from; `denied`
/// directories (the agent's state dir: secrets) never contribute, even under an allowed one.
/// The path should already be resolved (symlinks) by the caller; `..` is refused here anyway.
pub fn classify(arg: &str, allowed: &[PathBuf], denied: &[PathBuf]) -> Entry {
    if let Some(p) = PSEUDO.iter().find(|p| **p == arg) {
        return Entry::Pseudo(p);
    }
    let path = Path::new(arg);
    if !path.is_absolute() {
        return Entry::Refused(arg.into(), "not an absolute path");
    }
    if path.components().any(|c| matches!(c, Component::ParentDir)) {
        return Entry::Refused(arg.into(), "'..' is not allowed");
    }
    if path
        .file_name()
        .is_some_and(|n| secret_name(&n.to_string_lossy()))
    {
        return Entry::Refused(arg.into(), "holds secrets");
    }
    if path.file_name().is_some_and(|n| {
        let n = n.to_string_lossy().to_ascii_lowercase();
        PACKED.iter().any(|ext| n.ends_with(ext))
    }) {
        return Entry::Refused(arg.into(), "compressed: its secrets could not be scrubbed");
    }
    if path.components().any(|c| {
        matches!(c, Component::Normal(n) if {
            let n = n.to_string_lossy();
            n == "ssh" || n == "swanctl" || n == "ipsec.d" || n == "ssl" || n == "private"
        })
    }) {
        return Entry::Refused(arg.into(), "holds keys");
    }
    if denied.iter().any(|d| path.starts_with(d)) {
        return Entry::Refused(arg.into(), "holds secrets");
    }
    if !allowed.iter().any(|d| path.starts_with(d)) {
        return Entry::Refused(arg.into(), "outside the directories diagnostics may read");
    }
    Entry::File(path.to_path_buf())
}

/// `diagnostics_files_<YYYYmmdd-HHMMSS>.zip` from `YYYY-MM-DD` and `HH:MM:SS`.
pub fn zip_name(date: &str, time: &str) -> String {
    format!(
        "diagnostics_files_{}-{}.zip",
        date.replace('-', ""),
        time.replace(':', "")
    )
}

/// Whether `name` is one of our zips' file names (what `cleanup.sh` may delete).
pub fn is_zip_name(name: &str) -> bool {
    let Some(stamp) = name
        .strip_prefix("diagnostics_files_")
        .and_then(|s| s.strip_suffix(".zip"))
    else {
        return false;
    };
    stamp.len() == 15
        && stamp.bytes().enumerate().all(|(i, b)| {
            if i == 8 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        })
}

/// `fileinfo.txt`: what was found and what not (upstream's `File Not Found!!`).
pub fn fileinfo(found: &[String], missing: &[(String, String)]) -> String {
    let mut s = String::from("Files found:\n");
    for f in found {
        s.push_str(&format!("{f}\n"));
    }
    for (f, why) in missing {
        s.push_str(&format!("{f}: File Not Found!! ({why})\n"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed() -> Vec<PathBuf> {
        ALLOWED_DIRS.iter().map(PathBuf::from).collect()
    }

    #[test]
    fn secrets_and_paths_outside_the_allow_list_are_refused() {
        let denied = [PathBuf::from("/var/lib/vr-agent")];
        for bad in [
            "/etc/shadow",
            "/etc/gshadow",
            "/etc/ssh/ssh_host_rsa_key",
            "/etc/ssh/sshd_config",
            "/root/.ssh/id_rsa",
            "/etc/ipsec.secrets",
            "/etc/swanctl/conf.d/x.conf",
            "/var/cache/cloud/cmdline",
            "/var/cache/cloud/VR-0b7e.cfg",
            "/var/cache/cloud/processed/site_2_site_vpn.json.1.gz",
            "/var/log/syslog.2.gz",
            "/var/log/charon.log.1.XZ",
            "/var/log/../../etc/shadow",
            "/var/lib/vr-agent/state.json",
            "/proc/self/environ",
            "relative/file",
            "/root/x",
        ] {
            assert!(
                matches!(classify(bad, &allowed(), &denied), Entry::Refused(..)),
                "{bad}"
            );
        }
        assert_eq!(
            classify("iptables", &allowed(), &denied),
            Entry::Pseudo("iptables")
        );
        assert_eq!(
            classify("/var/log/syslog", &allowed(), &denied),
            Entry::File("/var/log/syslog".into())
        );
        assert!(matches!(
            classify("/etc/hosts", &allowed(), &denied),
            Entry::File(_)
        ));
    }

    #[test]
    fn zip_names_and_what_cleanup_may_delete() {
        let n = zip_name("2024-11-30", "08:00:00");
        assert_eq!(n, "diagnostics_files_20241130-080000.zip");
        assert!(is_zip_name(&n));
        for bad in [
            "diagnostics_files_.zip",
            "x.zip",
            "diagnostics_files_20241130-080000.zip.txt",
            "diagnostics_files_2024113a-080000.zip",
        ] {
            assert!(!is_zip_name(bad), "{bad}");
        }
        let info = fileinfo(
            &["/var/log/syslog".into()],
            &[("/nope".into(), "missing".into())],
        );
        assert!(info.contains("/nope: File Not Found!!"));
    }
}
