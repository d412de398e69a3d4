//! `update_config.py`, `vr_cfg.sh`, `configure.py` (contract §1, §2): the pushed file goes to
//! the running agent over its socket and is applied there atomically (an aggregate as one unit
//! that fails whole, naming the failing item), then CloudStack's processed-file bookkeeping:
//! the applied file moves to `processed/<file>.gz` (or is deleted for `false`), and a retry for
//! a file already processed answers success, as the Java's retries expect. Conntrack is never
//! flushed (the agent deletes only the flows of removed mappings).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use super::fail;
use crate::config::Config;
use crate::intake::protocol::Response;
use crate::intake::socket;
use crate::parse::MAX_PUSH_BYTES;
use vr_cloudstack::scripts::args;

/// How long a front door waits for the agent's answer. The Java waits 10 minutes for a config
/// item and at least 60 s plus 60 ms per item for an aggregate (after a diagnostics call has
/// shrunk its timeout, contract §0.6), and never kills a late script, which then counts as a
/// success with its output replaced: answer well within the shortest of those. A push the
/// agent has not answered by then is reported failed (the MS retries; a retry of a push that
/// did apply changes nothing).
pub const APPLY_DEADLINE: Duration = Duration::from_secs(50);

pub async fn update_config(cfg: &Config, argv: &[String]) -> ExitCode {
    let dir = cfg.cloudstack_dir.display().to_string();
    let a = match args::update_config(argv, &dir) {
        Ok(a) => a,
        Err(e) => return fail(e),
    };
    apply_file(cfg, &a.file, a.keep).await
}

pub async fn vr_cfg(cfg: &Config, argv: &[String]) -> ExitCode {
    let dir = cfg.cloudstack_dir.display().to_string();
    match args::vr_cfg(argv, &dir) {
        Ok(file) => apply_file(cfg, &file, true).await,
        Err(e) => fail(e),
    }
}

/// `configure.py <file>` runs after `update_config.py` applied that file (monitor service): the
/// agent applied it then, so there is nothing left to do.
pub fn configure(argv: &[String]) -> ExitCode {
    match argv {
        [_] | [_, _] => ExitCode::SUCCESS,
        _ => fail("usage: configure.py <file>"),
    }
}

fn processed(cfg: &Config, file: &str) -> PathBuf {
    cfg.cloudstack_dir
        .join("processed")
        .join(format!("{file}.gz"))
}

async fn apply_file(cfg: &Config, file: &str, keep: bool) -> ExitCode {
    let path = cfg.cloudstack_dir.join(file);
    let text = match read_bounded(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // A retry of a file that was applied and put away: done already.
            return if processed(cfg, file).exists() {
                ExitCode::SUCCESS
            } else {
                fail(format!("{}: no such file", path.display()))
            };
        }
        Err(e) => return fail(format!("{}: {e}", path.display())),
    };
    let answer = tokio::time::timeout(
        APPLY_DEADLINE,
        socket::push(&cfg.socket, file, false, &text),
    )
    .await;
    let resp = match answer {
        Err(_) => {
            return fail(format!(
                "{file}: the agent did not answer within {}s",
                APPLY_DEADLINE.as_secs()
            ))
        }
        Ok(Ok(None)) => {
            return fail(format!(
                "{file}: the agent is not running (no answer on {})",
                cfg.socket.display()
            ))
        }
        Ok(Err(e)) => return fail(format!("{file}: {}: {e}", cfg.socket.display())),
        Ok(Ok(Some(r))) => r,
    };
    if !report(&resp) {
        return ExitCode::from(1);
    }
    if let Err(e) = put_away(&path, &processed(cfg, file), keep) {
        // Applied: the answer is success; a retry applies the same file again (no change).
        println!(
            "{}: applied, but cannot move it to processed/: {e}",
            path.display()
        );
    }
    ExitCode::SUCCESS
}

/// Prints the agent's verdict on stdout (the Java only logs it) and says whether it applied.
fn report(resp: &Response) -> bool {
    if let Some(e) = &resp.error {
        println!("{e}");
        return false;
    }
    let mut ok = resp.ok;
    let results = resp.body.as_array().cloned().unwrap_or_default();
    ok &= !results.is_empty();
    for r in &results {
        let good = r["ok"].as_bool() == Some(true);
        ok &= good;
        println!(
            "{}: {}: {}",
            r["name"].as_str().unwrap_or("?"),
            if good { "ok" } else { "FAILED" },
            r["message"].as_str().unwrap_or("")
        );
        for e in r["errors"].as_array().into_iter().flatten() {
            println!(
                "  {}: {} (value {})",
                e["path"].as_str().unwrap_or(""),
                e["reason"].as_str().unwrap_or(""),
                e["value"].as_str().unwrap_or("")
            );
        }
    }
    ok
}

fn read_bounded(path: &Path) -> std::io::Result<String> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_PUSH_BYTES as u64 + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() > MAX_PUSH_BYTES {
        return Err(std::io::Error::other(format!(
            "larger than the {MAX_PUSH_BYTES}-byte push limit"
        )));
    }
    String::from_utf8(bytes).map_err(|e| {
        std::io::Error::other(format!(
            "not UTF-8 at byte {}",
            e.utf8_error().valid_up_to()
        ))
    })
}

/// `keep`: gzip into `processed/` (0600: payloads hold secrets), atomically; then the original
/// goes either way.
fn put_away(path: &Path, gz: &Path, keep: bool) -> std::io::Result<()> {
    if keep {
        let dir = gz.parent().expect("processed/ has a parent");
        std::fs::create_dir_all(dir)?;
        let mut tmp = tempfile::Builder::new().prefix(".gz").tempfile_in(dir)?;
        {
            let mut enc = flate2::write::GzEncoder::new(&mut tmp, flate2::Compression::default());
            std::io::copy(&mut std::fs::File::open(path)?, &mut enc)?;
            enc.finish()?.flush()?;
        }
        tmp.as_file().sync_all()?;
        tmp.persist(gz).map_err(|e| e.error)?;
    }
    std::fs::remove_file(path)
}
