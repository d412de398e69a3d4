//! `apply` and `validate`: push files read with a size limit before they are read whole, sent
//! to the running agent, or applied in this process when no agent answers (under the state
//! directory's lock, after the same recovery as a start).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde_json::json;

use super::commands::pretty;
use crate::config::Config;
use crate::engine::Engine;
use crate::intake::protocol::{PushFile, Response};
use crate::intake::socket;
use crate::parse::MAX_PUSH_BYTES;
use crate::push::{self, PushResult};
use crate::state::DesiredState;
use crate::store::StoreError;

/// Reads a push file (`-` = stdin), refusing oversized input before reading it whole.
fn read_push(path: &Path) -> Result<PushFile, String> {
    let name = if path == Path::new("-") {
        "-".to_string()
    } else {
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string())
    };
    let mut bytes = Vec::new();
    let reader: Box<dyn Read> = if path == Path::new("-") {
        Box::new(std::io::stdin())
    } else {
        let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        // Sized once from the file's length (within the limit): a 2 MB push read into a
        // doubling buffer was copied and faulted in again at every growth.
        let len = file.metadata().map_or(0, |m| m.len());
        bytes.reserve(len.min(MAX_PUSH_BYTES as u64 + 1) as usize);
        Box::new(file)
    };
    reader
        .take(MAX_PUSH_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if bytes.len() > MAX_PUSH_BYTES {
        return Err(format!(
            "{}: (document): push larger than the {MAX_PUSH_BYTES}-byte limit",
            path.display()
        ));
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        format!(
            "{}: (document): not UTF-8 at byte {}",
            path.display(),
            e.utf8_error().valid_up_to()
        )
    })?;
    Ok(PushFile { name, text })
}

pub(super) async fn apply(cfg: &Config, files: &[PathBuf], dry_run: bool, json: bool) -> ExitCode {
    // The common case, a management server's push of one file: the agent reads the file from
    // its descriptor (see `intake::passed_file`), nothing is copied through the socket.
    if let [only] = files {
        if let Some(code) = apply_passed(cfg, only, dry_run, json).await {
            return code;
        }
    }
    // Every file is checked (size, UTF-8) before any is sent, so one unreadable file applies
    // nothing; each is read again when its turn comes, so one push at a time is in memory
    // (standard input, which cannot be read twice, is kept).
    let mut stdin = None;
    // A single file is read once.
    let mut only = None;
    for f in files {
        match read_push(f) {
            Ok(p) if f == Path::new("-") => stdin = Some(p),
            Ok(p) if files.len() == 1 => only = Some(p),
            Ok(_) => {}
            Err(e) => {
                eprintln!("vr-agent: {e}");
                return ExitCode::from(1);
            }
        }
    }
    let mut list = Vec::new();
    for f in files {
        let p = match only.take() {
            Some(p) => p,
            None => match (&stdin, read_push(f)) {
                (Some(p), _) if f == Path::new("-") => p.clone(),
                (_, Ok(p)) => p,
                (_, Err(e)) => {
                    eprintln!("vr-agent: {e}");
                    return ExitCode::from(1);
                }
            },
        };
        let answer = socket::push(&cfg.socket, &p.name, dry_run, &p.text).await;
        if let Err(code) = take_answer(cfg, answer, &mut list, json) {
            return match code {
                Some(code) => code,
                None => apply_in_process(cfg, files, stdin, dry_run, json).await,
            };
        }
    }
    print_results_json(&list, json)
}

/// One regular file sent as its descriptor. `None`: not a regular file (standard input, a
/// pipe), or no agent is running; the caller reads it as before.
async fn apply_passed(cfg: &Config, path: &Path, dry_run: bool, json: bool) -> Option<ExitCode> {
    if path == Path::new("-") {
        return None;
    }
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("vr-agent: {}: {e}", path.display());
            return Some(ExitCode::from(1));
        }
    };
    let len = match file.metadata() {
        Ok(m) if m.is_file() => m.len(),
        _ => return None,
    };
    if len > MAX_PUSH_BYTES as u64 {
        eprintln!(
            "vr-agent: {}: (document): push larger than the {MAX_PUSH_BYTES}-byte limit",
            path.display()
        );
        return Some(ExitCode::from(1));
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    let answer = socket::push_file(&cfg.socket, &name, dry_run, &file, len).await;
    // An agent older than the passed file (the package upgraded, the agent not restarted
    // yet) refuses the request's `file` field: send the bytes, as it expects.
    if let Ok(Some(Response { error: Some(e), .. })) = &answer {
        if e.starts_with("bad request") && e.contains("`file`") {
            return None;
        }
    }
    let mut list = Vec::new();
    match take_answer(cfg, answer, &mut list, json) {
        Ok(()) => Some(print_results_json(&list, json)),
        Err(Some(code)) => Some(code),
        Err(None) => None,
    }
}

/// Adds the agent's results for one push to `list`. `Err(Some(code))`: the CLI ends with
/// `code` (the error said); `Err(None)`: no agent answered before anything was applied.
fn take_answer(
    cfg: &Config,
    answer: std::io::Result<Option<Response>>,
    list: &mut Vec<serde_json::Value>,
    json: bool,
) -> Result<(), Option<ExitCode>> {
    match answer {
        Ok(Some(Response { error: Some(e), .. })) => {
            // What was applied before stays listed.
            if !list.is_empty() {
                print_results_json(list, json);
            }
            eprintln!("vr-agent: {e}");
            Err(Some(ExitCode::from(1)))
        }
        Ok(Some(resp)) => match serde_json::from_value::<Vec<serde_json::Value>>(resp.body) {
            Ok(r) => {
                list.extend(r);
                Ok(())
            }
            Err(e) => {
                eprintln!("vr-agent: bad answer from agent: {e}");
                Err(Some(ExitCode::from(1)))
            }
        },
        Ok(None) if list.is_empty() => Err(None),
        Ok(None) => {
            eprintln!(
                "vr-agent: the agent stopped answering on {}",
                cfg.socket.display()
            );
            Err(Some(ExitCode::from(1)))
        }
        Err(e) => {
            eprintln!("vr-agent: {}: {e}", cfg.socket.display());
            Err(Some(ExitCode::from(1)))
        }
    }
}

/// `apply` without a running agent (`stdin`: standard input, already read).
async fn apply_in_process(
    cfg: &Config,
    files: &[PathBuf],
    stdin: Option<PushFile>,
    dry_run: bool,
    json: bool,
) -> ExitCode {
    let mut pushes = Vec::new();
    for f in files {
        let p = match &stdin {
            Some(p) if f == Path::new("-") => Ok(p.clone()),
            _ => read_push(f),
        };
        match p {
            Ok(p) => pushes.push(p),
            Err(e) => {
                eprintln!("vr-agent: {e}");
                return ExitCode::from(1);
            }
        }
    }
    let results = match in_process(cfg, &pushes, dry_run).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("vr-agent: {e}");
            return ExitCode::from(1);
        }
    };
    let list: Vec<serde_json::Value> = results.iter().map(crate::redact::redacted).collect();
    print_results_json(&list, json)
}

/// No agent is listening: apply here, under the state directory's lock.
async fn in_process(
    cfg: &Config,
    pushes: &[PushFile],
    dry_run: bool,
) -> Result<Vec<PushResult>, StoreError> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut engine = loop {
        match Engine::open(cfg.clone(), false) {
            Ok(e) => break e,
            Err(StoreError::Locked(p)) if Instant::now() < deadline => {
                tracing::info!("waiting for {}", p.display());
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(e),
        }
    };
    // The same recovery as a start: roll back a push a killed agent left half-applied (an
    // intent without its commit in the journal) and bring the system to the committed state,
    // then apply on top of it.
    let replay = engine.replay().await;
    if !replay.ok {
        tracing::warn!(
            "replay before the in-process apply was incomplete: {:?}",
            replay.outcomes
        );
    }
    let nics = push::local_nics();
    let mut out = Vec::new();
    for p in pushes {
        out.push(engine.apply(&p.name, &p.text, dry_run, &nics).await);
    }
    engine.after_answer();
    // This process is about to exit: let the background tunnel initiates at least reach
    // charon (a running agent would simply let them finish).
    engine.reconciler.vpn.settle(Duration::from_secs(10)).await;
    Ok(out)
}

fn print_results_json(list: &[serde_json::Value], json: bool) -> ExitCode {
    let all_ok = !list.is_empty() && list.iter().all(|r| r["ok"].as_bool() == Some(true));
    if json {
        println!("{}", pretty(&serde_json::Value::Array(list.to_vec())));
    } else {
        for r in list {
            let name = r["name"].as_str().unwrap_or("?");
            let verdict = if r["ok"].as_bool() == Some(true) {
                "ok"
            } else {
                "FAILED"
            };
            println!("{name}: {verdict}: {}", r["message"].as_str().unwrap_or(""));
            for e in r["errors"].as_array().into_iter().flatten() {
                let value = e["value"].as_str().unwrap_or("");
                if value.is_empty() {
                    println!(
                        "  {}: {}",
                        e["path"].as_str().unwrap_or(""),
                        e["reason"].as_str().unwrap_or("")
                    );
                } else {
                    println!(
                        "  {}: {} (value {value})",
                        e["path"].as_str().unwrap_or(""),
                        e["reason"].as_str().unwrap_or("")
                    );
                }
            }
            for o in r["outcomes"].as_array().into_iter().flatten() {
                let detail = o["detail"]
                    .as_str()
                    .map(|d| format!(": {d}"))
                    .unwrap_or_default();
                println!(
                    "  {:<10} {}{detail} ({} change(s))",
                    o["concern"].as_str().unwrap_or(""),
                    o["status"].as_str().unwrap_or(""),
                    o["changes"]
                );
            }
            if let Some(plan) = r["plan"].as_str() {
                print!("{plan}");
            }
        }
    }
    if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

pub(super) fn validate(files: &[PathBuf], json: bool) -> ExitCode {
    let nics = push::local_nics();
    let mut all_ok = true;
    let mut out = Vec::new();
    for f in files {
        let result = read_push(f).and_then(|p| {
            push::prepare(&DesiredState::default(), &p.text, &nics)
                .map(|_| ())
                .map_err(|e| e.to_string())
        });
        all_ok &= result.is_ok();
        match (&result, json) {
            (_, true) => {
                out.push(json!({"file": f, "ok": result.is_ok(), "error": result.as_ref().err()}))
            }
            (Ok(()), false) => println!("{}: valid", f.display()),
            (Err(e), false) => println!("{}: invalid: {e}", f.display()),
        }
    }
    if json {
        println!("{}", pretty(&serde_json::Value::Array(out)));
    }
    if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
