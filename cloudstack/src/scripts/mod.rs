//! The pure halves of CloudStack's `/opt/cloud/bin` scripts (`cloudstack-contract.md`): what
//! each prints, byte for byte as the unmodified Java parses it, and how its arguments are read.
//! Pure (std, serde, thiserror): the `vr-agent cloudstack <verb>` front doors in the agent do
//! the I/O and print what these functions render. The Java merges stderr into the text it
//! parses and trusts only the exit status (contract §0, §18).
//!
//! Apply side (§1-4, 11-15): `args`, `cmdline`, `role`, `version`. Query side (§5-10): the
//! others; each of their files' tests ports the Java parse rule it answers (the Java class is
//! named there) and parses the rendered text with it.

pub mod alerts;
pub mod args;
pub mod cmdline;
pub mod diagnostics;
pub mod files;
pub mod monitor;
pub mod netusage;
pub mod role;
pub mod s2s_status;
pub mod version;

/// Compares `actual` with the golden file `golden/<name>` beside this file
/// (`UPDATE_GOLDEN=1` rewrites it).
#[cfg(test)]
fn golden(name: &str, actual: &str) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(
            std::path::Path::new(file!())
                .parent()
                .unwrap_or(std::path::Path::new(".")),
        )
        .join("golden");
    let path = dir.join(name);
    if std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 creates it)", path.display()));
    assert_eq!(
        actual,
        want,
        "{} differs (UPDATE_GOLDEN=1 rewrites it)",
        path.display()
    );
}
