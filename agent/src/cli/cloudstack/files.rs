//! `get_diagnostics_files.py <file…>` and `cleanup.sh <zip>`: the zip the MS fetches with
//! `scp -f`, directly under `/root` (`VR_AGENT_DIAGNOSTICS_DIR` for tests), mode 0600.
//! It holds the tech-support content (the agent's views and the system's dumps, secrets
//! scrubbed), the pseudo-names, the requested files that may leave the router, and
//! `fileinfo.txt`. stdout is exactly the zip's path.

use std::io::{Read as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use crate::config::Config;
use crate::diag::support::Item;
use vr_cloudstack::scripts::files::{self, Entry};

/// Gathering the tech-support content (agent answers and tools, each with its own deadline).
const GATHER_LIMIT: Duration = Duration::from_secs(120);

fn zip_dir() -> PathBuf {
    std::env::var_os("VR_AGENT_DIAGNOSTICS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"))
}

fn pseudo(name: &'static str) -> Item {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    match name {
        "iptables" => Item::Run("iptables", "nft", s(&["list", "ruleset"])),
        "ipaddr" => Item::Run("ipaddr", "ip", s(&["addr", "show"])),
        "iprule" => Item::Run("iprule", "ip", s(&["rule", "show"])),
        _ => Item::Run("iproute", "ip", s(&["route", "show", "table", "all"])),
    }
}

/// A regular file's first `limit` bytes, or why not.
fn read_file(path: &Path, limit: u64) -> Result<String, String> {
    let meta = std::fs::symlink_metadata(path).map_err(|_| "missing".to_string())?;
    if !meta.file_type().is_file() {
        return Err("not a regular file".into());
    }
    let f = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    f.take(limit)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

pub async fn diagnostics_files(cfg: &Config, args: &[String]) -> ExitCode {
    let state_dir = super::facts::state_dir(cfg).await;
    let mut allowed: Vec<PathBuf> = files::ALLOWED_DIRS.iter().map(PathBuf::from).collect();
    allowed.push(cfg.run_dir.clone());
    let denied = vec![
        state_dir.clone(),
        cfg.state_dir.clone(),
        cfg.spool_dir.clone(),
    ];
    // The secrets to scrub are read from the state file where the running agent keeps it.
    let mut at_agent = cfg.clone();
    at_agent.state_dir = state_dir.clone();
    let (mut items, secrets) =
        tokio::time::timeout(GATHER_LIMIT, super::super::support::items(&at_agent))
            .await
            .unwrap_or_default();
    let (mut found, mut missing) = (Vec::new(), Vec::new());
    let mut budget = files::MAX_TOTAL_BYTES;
    let mut extra: Vec<(String, String)> = Vec::new();
    let names: Vec<&str> = args.iter().flat_map(|a| a.split_whitespace()).collect();
    for arg in names.into_iter().take(files::MAX_FILES) {
        // Resolve symlinks first: the resolved path is what must be allowed.
        let resolved = std::fs::canonicalize(arg)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|_| arg.to_string());
        match files::classify(&resolved, &allowed, &denied) {
            Entry::Pseudo(p) => {
                items.push(pseudo(p));
                found.push(arg.to_string());
            }
            Entry::File(_) if budget == 0 => {
                missing.push((arg.to_string(), "size limit of the zip reached".into()))
            }
            Entry::File(p) => match read_file(&p, budget.min(files::MAX_FILE_BYTES)) {
                Ok(text) => {
                    budget = budget.saturating_sub(text.len() as u64);
                    extra.push((format!("files{}", p.display()), text));
                    found.push(arg.to_string());
                }
                Err(why) => missing.push((arg.to_string(), why)),
            },
            Entry::Refused(_, why) => missing.push((arg.to_string(), why.to_string())),
        }
    }
    let scrub_with = secrets.clone();
    let mut contents = tokio::task::spawn_blocking(move || {
        crate::diag::support::render(items, &scrub_with)
            .into_iter()
            .map(|(n, t)| (n.to_string(), t))
            .collect::<Vec<_>>()
    })
    .await
    .unwrap_or_default();
    for (name, text) in extra {
        contents.push((name, crate::redact::scrub(&text, &secrets)));
    }
    contents.push(("fileinfo.txt".into(), files::fileinfo(&found, &missing)));
    let (date, time) = crate::alerts::date_time(crate::alerts::now_millis() / 1000);
    let path = zip_dir().join(files::zip_name(&date, &time));
    match write_zip(&path, &contents) {
        Ok(()) => {
            print!("{}", path.display());
            ExitCode::SUCCESS
        }
        Err(_) => {
            let _ = std::fs::remove_file(&path);
            ExitCode::from(1)
        }
    }
}

fn write_zip(path: &Path, contents: &[(String, String)]) -> zip::result::ZipResult<()> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    let mut zip = zip::ZipWriter::new(file);
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(0o600);
    for (name, text) in contents {
        zip.start_file(name.as_str(), opts)?;
        zip.write_all(text.as_bytes())?;
    }
    zip.finish()?.sync_all()?;
    Ok(())
}

pub fn cleanup(args: &[String]) -> ExitCode {
    let dir = zip_dir();
    for arg in args.iter().flat_map(|a| a.split_whitespace()) {
        let p = Path::new(arg);
        let ours = p.parent() == Some(dir.as_path())
            && p.file_name()
                .is_some_and(|n| files::is_zip_name(&n.to_string_lossy()));
        let regular = std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_file());
        if ours && regular && std::fs::remove_file(p).is_ok() {
            println!("Deleting diagnostics zip file {arg}");
        } else {
            println!("File {arg} not found in vm ");
        }
    }
    ExitCode::SUCCESS
}
