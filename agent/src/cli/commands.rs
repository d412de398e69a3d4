//! Subcommands other than `run`: thin clients of the running agent's socket, with an
//! in-process fallback where the design asks for one (`apply`).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde_json::json;

use super::{Cli, Command, Show};
use crate::config::Config;
use crate::engine::Engine;
use crate::intake::protocol::{PushFile, Request, Response};
use crate::intake::socket;
use crate::parse::MAX_PUSH_BYTES;
use crate::push::{self, PushResult};
use crate::state::{DesiredState, StateDocument};
use crate::store::{Store, StoreError};

pub async fn dispatch(cli: Cli, cfg: Config) -> ExitCode {
    let json = cli.global.json;
    match cli.command {
        Command::Run => match super::run::run(cfg).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!("{e}");
                eprintln!("vr-agent: {e}");
                ExitCode::from(1)
            }
        },
        Command::Apply { dry_run, files } => apply(&cfg, &files, dry_run, json).await,
        Command::Validate { files } => validate(&files, json),
        Command::Schema => {
            let schema = schemars::schema_for!(StateDocument);
            println!(
                "{}",
                serde_json::to_string_pretty(&schema).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Command::Status => query(&cfg, Request::Status, json, print_status).await,
        Command::Show { what: Show::State } => {
            query(&cfg, Request::ShowState, json, |b| {
                println!("{}", pretty(b))
            })
            .await
        }
        Command::Show { what: Show::Pushes } => {
            query(&cfg, Request::ShowPushes, json, print_pushes).await
        }
        Command::Diff => {
            query(&cfg, Request::Diff, json, |b| {
                print!("{}", b["plan"].as_str().unwrap_or(""))
            })
            .await
        }
        Command::Reconcile => {
            query(&cfg, Request::Reconcile, json, |b| {
                println!("{}", pretty(b))
            })
            .await
        }
        Command::Generate { what } => generate(what),
        Command::Show { what: Show::Nat } => print_view(crate::diag::show::nft_view("nat"), json),
        Command::Show {
            what: Show::Firewall,
        } => print_view(crate::diag::show::nft_view("firewall"), json),
        Command::Show { what: Show::Acl } => print_view(crate::diag::show::nft_view("acl"), json),
        Command::Show { what: Show::Vpn } => query(&cfg, Request::ShowVpn, json, print_vpn).await,
        Command::Show {
            what: Show::Ospf { dialect: None },
        } => print_view(
            crate::diag::ospf::live_view(cfg.frr_vty_dir.as_deref()).await,
            json,
        ),
        Command::Show { what: Show::Dhcp } => print_view(
            crate::diag::guest::dhcp_view(&crate::concern::dhcp::paths(
                &cfg.run_dir,
                &cfg.state_dir,
            )),
            json,
        ),
        Command::Show { what: Show::Dns } => print_view(
            crate::diag::guest::dns_view(&crate::concern::dhcp::paths(
                &cfg.run_dir,
                &cfg.state_dir,
            )),
            json,
        ),
        Command::Show {
            what: Show::Ospf {
                dialect: Some(dialect),
            },
        } => match Store::open(&cfg.state_dir).and_then(|s| s.load()) {
            Ok(stored) => print_view(
                crate::diag::ospf::export(&stored.state, &dialect, &crate::diag::ospf::hostname()),
                json,
            ),
            Err(e) => {
                eprintln!("vr-agent: {e}");
                ExitCode::from(1)
            }
        },
        Command::Show {
            what: Show::Interfaces,
        } => print_view(
            addressing_view(&cfg, crate::diag::addressing::interfaces).await,
            json,
        ),
        Command::Show { what: Show::Routes } => print_view(
            addressing_view(&cfg, crate::diag::addressing::routes).await,
            json,
        ),
        Command::Show {
            what:
                Show::Conntrack {
                    address,
                    port,
                    protocol,
                },
        } => {
            let address = address.map(|a| a.to_string());
            print_view(
                crate::diag::show::conntrack_view(address.as_deref(), port, protocol.as_deref()),
                json,
            )
        }
        Command::Check => query(&cfg, Request::Check, json, print_checks).await,
        Command::Ping {
            destination,
            count,
            interface,
        } => run_tool(
            "ping",
            crate::diag::tools::ping(&destination, count, interface.as_deref()),
            json,
        ),
        Command::Traceroute {
            destination,
            max_hops,
            interface,
        } => run_tool(
            "traceroute",
            crate::diag::tools::traceroute(&destination, max_hops, interface.as_deref()),
            json,
        ),
        Command::Arping {
            destination,
            interface,
            count,
        } => run_tool(
            "arping",
            crate::diag::tools::arping(&destination, count, &interface),
            json,
        ),
        Command::TechSupport { output } => super::support::tech_support(&cfg, output, json).await,
        Command::Cloudstack { verb } => super::cloudstack::dispatch(verb, &cfg).await,
    }
}

/// Runs a validated diagnostics tool with the terminal attached (`--json`: captured, and
/// answered as one JSON object); refused arguments run nothing.
fn run_tool(
    tool: &str,
    inv: Result<crate::diag::tools::Invocation, crate::diag::tools::ToolError>,
    json: bool,
) -> ExitCode {
    let inv = match inv {
        Ok(i) => i,
        Err(e) => {
            if json {
                println!("{}", pretty(&crate::diag::tools::refused_json(tool, &e)));
            }
            eprintln!("vr-agent: refused: {e}");
            return ExitCode::from(2);
        }
    };
    if json {
        let v = inv.run_json();
        println!("{}", pretty(&v));
        return if v["ok"] == true {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        };
    }
    match inv.command().status() {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(e) => {
            eprintln!("vr-agent: cannot run {}: {e}", inv.program);
            ExitCode::from(1)
        }
    }
}

fn print_checks(b: &serde_json::Value) {
    let color = std::io::IsTerminal::is_terminal(&std::io::stdout());
    for c in b["checks"].as_array().into_iter().flatten() {
        let v = c["verdict"].as_str().unwrap_or("?");
        let tag = match (v, color) {
            ("ok", true) => "\x1b[32mOK  \x1b[0m",
            ("warn", true) => "\x1b[33mWARN\x1b[0m",
            ("fail", true) => "\x1b[31mFAIL\x1b[0m",
            ("ok", false) => "OK  ",
            ("warn", false) => "WARN",
            _ => "FAIL",
        };
        println!(
            "{tag} {:<28} {}",
            c["name"].as_str().unwrap_or(""),
            c["detail"].as_str().unwrap_or("")
        );
    }
}

fn print_vpn(b: &serde_json::Value) {
    if let Some(e) = b["charon"].as_str() {
        println!("charon: {e}");
    }
    println!(
        "{:<22} {:<16} {:<12} {:>8} {:>12} {:>12}",
        "CONNECTION", "PEER", "IKE", "UP (s)", "BYTES IN", "BYTES OUT"
    );
    for c in b["connections"].as_array().into_iter().flatten() {
        let sum = |k: &str| -> u64 {
            c["children"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|ch| ch[k].as_str()?.parse::<u64>().ok())
                .sum()
        };
        println!(
            "{:<22} {:<16} {:<12} {:>8} {:>12} {:>12}",
            c["name"].as_str().unwrap_or(""),
            c["peer"].as_str().unwrap_or(""),
            c["ike_state"].as_str().unwrap_or(""),
            c["established_secs"]
                .as_u64()
                .map(|s| s.to_string())
                .unwrap_or_else(|| "-".into()),
            sum("bytes-in"),
            sum("bytes-out")
        );
        for ch in c["children"].as_array().into_iter().flatten() {
            println!(
                "  child {:<18} {}",
                ch["name"].as_str().unwrap_or(""),
                ch["state"].as_str().unwrap_or("")
            );
        }
        if let Some(e) = c["last_error"].as_str() {
            println!("  last error: {e}");
        }
    }
}

/// The kernel's addressing read over rtnetlink, marked against the committed state.
async fn addressing_view(
    cfg: &Config,
    view: fn(&crate::state::DesiredState, &crate::net::Snapshot) -> (String, serde_json::Value),
) -> (String, serde_json::Value) {
    let stored = crate::store::Store::open(&cfg.state_dir).and_then(|s| s.load());
    let sys = crate::net::exec::snapshot_now().await;
    match (stored, sys) {
        (Ok(stored), Ok(sys)) => view(&stored.state, &sys),
        (Err(e), _) => (
            format!("{e}\n"),
            serde_json::json!({"error": e.to_string()}),
        ),
        (_, Err(e)) => (
            format!("{e}\n"),
            serde_json::json!({"error": e.to_string()}),
        ),
    }
}

fn print_view((text, body): (String, serde_json::Value), json: bool) -> ExitCode {
    if json {
        println!("{}", pretty(&body));
    } else {
        print!("{text}");
    }
    if body.get("error").is_some() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn generate(what: super::Generated) -> ExitCode {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    let mut out = std::io::stdout();
    let result = match what {
        super::Generated::Man => clap_mangen::Man::new(cmd.clone().name("vr-agent"))
            .section("8")
            .render(&mut out),
        super::Generated::Bash => {
            clap_complete::generate(clap_complete::Shell::Bash, &mut cmd, "vr-agent", &mut out);
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vr-agent: {e}");
            ExitCode::from(1)
        }
    }
}

fn pretty(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

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
        Box::new(std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?)
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

async fn apply(cfg: &Config, files: &[PathBuf], dry_run: bool, json: bool) -> ExitCode {
    // Every file is checked (size, UTF-8) before any is sent, so one unreadable file applies
    // nothing; each is read again when its turn comes, so one push at a time is in memory
    // (standard input, which cannot be read twice, is kept).
    let mut stdin = None;
    for f in files {
        match read_push(f) {
            Ok(p) if f == Path::new("-") => stdin = Some(p),
            Ok(_) => {}
            Err(e) => {
                eprintln!("vr-agent: {e}");
                return ExitCode::from(1);
            }
        }
    }
    let mut list = Vec::new();
    for f in files {
        let p = match (&stdin, read_push(f)) {
            (Some(p), _) if f == Path::new("-") => p.clone(),
            (_, Ok(p)) => p,
            (_, Err(e)) => {
                eprintln!("vr-agent: {e}");
                return ExitCode::from(1);
            }
        };
        match socket::push(&cfg.socket, &p.name, dry_run, &p.text).await {
            Ok(Some(Response { error: Some(e), .. })) => {
                // What was applied before stays listed.
                if !list.is_empty() {
                    print_results_json(&list, json);
                }
                eprintln!("vr-agent: {e}");
                return ExitCode::from(1);
            }
            Ok(Some(resp)) => match serde_json::from_value::<Vec<serde_json::Value>>(resp.body) {
                Ok(r) => list.extend(r),
                Err(e) => {
                    eprintln!("vr-agent: bad answer from agent: {e}");
                    return ExitCode::from(1);
                }
            },
            Ok(None) if list.is_empty() => {
                return apply_in_process(cfg, files, stdin, dry_run, json).await
            }
            Ok(None) => {
                eprintln!(
                    "vr-agent: the agent stopped answering on {}",
                    cfg.socket.display()
                );
                return ExitCode::from(1);
            }
            Err(e) => {
                eprintln!("vr-agent: {}: {e}", cfg.socket.display());
                return ExitCode::from(1);
            }
        }
    }
    print_results_json(&list, json)
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
    // The same recovery as a start: roll back a push a killed agent left half-applied
    // (state.next) and bring the system to the committed state, then apply on top of it.
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

fn validate(files: &[PathBuf], json: bool) -> ExitCode {
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

/// Sends a read-only request; without an agent, answers what the state directory tells.
async fn query(
    cfg: &Config,
    req: Request,
    json: bool,
    text: impl Fn(&serde_json::Value),
) -> ExitCode {
    match socket::call(&cfg.socket, &req).await {
        Ok(Some(resp)) => {
            if let Some(e) = &resp.error {
                eprintln!("vr-agent: {e}");
            }
            if json {
                println!("{}", pretty(&resp.body));
            } else {
                text(&resp.body);
            }
            if resp.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Ok(None) => {
            let stored = Store::open(&cfg.state_dir).and_then(|s| s.load());
            match (req, stored) {
                (Request::ShowState, Ok(s)) => {
                    println!("{}", pretty(&crate::redact::redacted(&s)));
                    ExitCode::SUCCESS
                }
                (_, stored) => {
                    let generation = stored.map(|s| s.generation).ok();
                    if json {
                        println!(
                            "{}",
                            pretty(
                                &json!({"running": false, "socket": cfg.socket, "generation": generation})
                            )
                        );
                    } else {
                        println!("agent not running (no answer on {})", cfg.socket.display());
                        if let Some(g) = generation {
                            println!("stored generation: {g}");
                        }
                    }
                    ExitCode::from(1)
                }
            }
        }
        Err(e) => {
            eprintln!("vr-agent: {}: {e}", cfg.socket.display());
            ExitCode::from(1)
        }
    }
}

fn print_status(b: &serde_json::Value) {
    println!(
        "vr-agent {}  up {}s  generation {}",
        b["version"].as_str().unwrap_or("?"),
        b["uptime_secs"],
        b["generation"]
    );
    if let Some(p) = b["state_file"]["problem"].as_str() {
        println!("STATE FILE UNREADABLE: {p}");
    }
    if let Some(r) = b.get("replay").filter(|r| !r.is_null()) {
        println!(
            "replay: {} in {} ms",
            if r["ok"].as_bool() == Some(true) {
                "ok"
            } else {
                "FAILED"
            },
            r["millis"]
        );
    }
    if let Some(p) = b.get("last_push").filter(|p| !p.is_null()) {
        println!(
            "last push: {} {}",
            p["name"].as_str().unwrap_or(""),
            p["message"].as_str().unwrap_or("")
        );
    }
    for c in b["concerns"].as_array().into_iter().flatten() {
        println!(
            "  {:<10} {}",
            c["concern"].as_str().unwrap_or(""),
            c["status"].as_str().unwrap_or("")
        );
    }
}

fn print_pushes(b: &serde_json::Value) {
    for p in b.as_array().into_iter().flatten() {
        println!(
            "{:>10}  {:<40} {:<6} {}",
            p["received_at"],
            p["name"].as_str().unwrap_or(""),
            if p["ok"].as_bool() == Some(true) {
                "ok"
            } else {
                "FAILED"
            },
            p["message"].as_str().unwrap_or("")
        );
    }
}
