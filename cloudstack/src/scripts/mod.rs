//! The query side of CloudStack's `/opt/cloud/bin` scripts (`cloudstack-contract.md` §5-10):
//! what each prints, byte for byte as the unmodified Java parses it, and how its arguments are
//! read. Pure (std and serde only): the `vr-agent cloudstack <verb>` front doors gather the
//! facts and print what these functions render. Each file's tests port the Java parse rule it
//! answers (the Java class is named there) and parse the rendered text with it.

pub mod alerts;
pub mod diagnostics;
pub mod files;
pub mod monitor;
pub mod netusage;
pub mod s2s_status;

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
