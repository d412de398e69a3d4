//! `vr-agent run`: replay, then serve the spool and the socket from one loop that owns the
//! engine, so pushes from both are applied strictly one at a time.

use std::time::Duration;

use serde_json::json;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use crate::config::Config;
use crate::engine::Engine;
use crate::intake::protocol::{Request, Response};
use crate::intake::socket;
use crate::intake::spool::{self, Spool};
use crate::push;
use crate::redact::redacted;

/// Errors that stop the agent.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// {0}
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// cannot prepare spool directory {0}: {1}
    #[error("cannot prepare spool directory {0}: {1}")]
    Spool(std::path::PathBuf, std::io::Error),
    /// cannot bind socket {0}: {1}
    #[error("cannot bind socket {0}: {1}")]
    Socket(std::path::PathBuf, std::io::Error),
    /// cannot install signal handler: {0}
    #[error("cannot install signal handler: {0}")]
    Signal(std::io::Error),
}

pub async fn run(cfg: Config) -> Result<(), RunError> {
    let mut engine = open_waiting(&cfg).await?;
    // CloudStack on KVM: the boot cmdline comes before the replay is trusted and any push.
    let boot_cmdline = super::cloudstack::boot::wait_cmdline(&cfg).await;
    // Only the running agent serves metadata and passwords; guests' acknowledgements come
    // back here to be dropped from the committed state.
    let (ack_tx, mut acks) = mpsc::unbounded_channel();
    engine.reconciler.web.serve(ack_tx);
    let spool = Spool::new(cfg.spool_dir.clone());
    spool
        .ensure_dirs()
        .map_err(|e| RunError::Spool(cfg.spool_dir.clone(), e))?;
    tracing::info!(
        generation = engine.stored.generation,
        "replaying the stored state"
    );
    // Replay comes before any push is read: the socket is not bound and the spool not
    // scanned until the system holds the committed state again.
    engine.replay().await;
    if let Some(map) = &boot_cmdline {
        let text = vr_cloudstack::scripts::cmdline::payload(map);
        let r = engine
            .apply_fresh("cmdline", &text, &push::local_nics())
            .await;
        if r.ok {
            tracing::info!("boot cmdline applied: {}", r.message);
        } else {
            tracing::error!("boot cmdline not applied: {}", redacted(&r));
        }
    }

    // The endpoint's default address is the control NIC's, which the replay has just set.
    crate::metrics::http::start(&cfg, &engine.stored.state);
    crate::health::spawn(&cfg);
    let listener =
        socket::bind(&cfg.socket).map_err(|e| RunError::Socket(cfg.socket.clone(), e))?;
    let (job_tx, mut jobs) = mpsc::channel::<socket::Job>(16);
    tokio::spawn(socket::serve(listener, job_tx));
    let (wake_tx, mut wakes) = mpsc::channel::<()>(1);
    let mut watcher = match spool::watch(&spool.dir, wake_tx.clone()) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(
                "cannot watch {}: {e}; scanning every second",
                spool.dir.display()
            );
            None
        }
    };
    let mut term = signal(SignalKind::terminate()).map_err(RunError::Signal)?;
    let mut int = signal(SignalKind::interrupt()).map_err(RunError::Signal)?;
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    tracing::info!(socket = %cfg.socket.display(), spool = %spool.dir.display(), "ready");

    let mut settling = process_spool(&mut engine, &spool).await;
    super::cloudstack::boot::mark_boot_done(&cfg);
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut ticks: u64 = 0;
    // Self-heal every `observe_interval` seconds (4 ticks a second); 0 = off.
    let heal_ticks = cfg.observe_interval.saturating_mul(4);
    loop {
        tokio::select! {
            Some((req, reply)) = jobs.recv() => {
                let resp = handle(&mut engine, req).await;
                let _ = reply.send(resp);
            }
            Some((ip, serial)) = acks.recv() => {
                engine.forget_password(ip, serial).await;
            }
            Some(()) = wakes.recv() => {
                settling = process_spool(&mut engine, &spool).await;
            }
            _ = tick.tick() => {
                ticks += 1;
                crate::watchdog::progress();
                // At most a tick after a push, its answer long out.
                engine.after_answer();
                if !spool.dir.is_dir() {
                    // Someone removed the spool: recreate it and watch the new directory.
                    tracing::warn!("spool directory {} vanished; recreating it", spool.dir.display());
                    if spool.ensure_dirs().is_ok() {
                        watcher = spool::watch(&spool.dir, wake_tx.clone()).ok();
                        settling = true;
                    }
                }
                if settling || watcher.is_none() || ticks.is_multiple_of(8) {
                    settling = process_spool(&mut engine, &spool).await;
                }
                if ticks.is_multiple_of(8) {
                    engine.retry().await;
                }
                if heal_ticks > 0 && ticks.is_multiple_of(heal_ticks) {
                    engine.heal().await;
                }
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    let _ = std::fs::remove_file(&cfg.socket);
    tracing::info!("stopped");
    Ok(())
}

/// Takes the state directory's lock, waiting up to a minute: an in-process `vr-agent apply`
/// run while the agent was down may still hold it. A second agent keeps it longer and this one
/// gives up with the error.
async fn open_waiting(cfg: &Config) -> Result<Engine, RunError> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut logged = false;
    loop {
        match Engine::open(cfg.clone(), false) {
            Err(crate::store::StoreError::Locked(p)) if std::time::Instant::now() < deadline => {
                if !logged {
                    tracing::warn!("{} is held (an in-process apply?); waiting", p.display());
                    logged = true;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return Ok(other?),
        }
    }
}

/// Applies every ready spool file in name order. Returns whether files are still settling.
async fn process_spool(engine: &mut Engine, spool: &Spool) -> bool {
    loop {
        let (ready, settling) = match spool.scan() {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("cannot scan spool {}: {e}", spool.dir.display());
                return true;
            }
        };
        if ready.is_empty() {
            return settling;
        }
        let nics = push::local_nics();
        for path in ready {
            // One push in memory at a time: a socket client holding the permit is answered by
            // this loop first, and the spool is scanned again on the next tick.
            let Some(_permit) = socket::try_push_permit() else {
                return true;
            };
            let taken = spool.take(&path);
            if spool.still_being_written(&taken) {
                // Later files wait too: pushes are applied in name order.
                return true;
            }
            let result = match &taken.text {
                Ok(text) => engine.apply(&taken.name, text, false, &nics).await,
                Err(why) => engine.reject(&taken.name, why),
            };
            if let Err(e) = spool.finish(&taken, &result) {
                tracing::error!(file = %path.display(), "cannot move processed push: {e}");
                // Leave it out of the next scan's way: a push must not be applied twice.
                spool.set_aside(&taken);
            }
        }
    }
}

/// `update_interface_config.sh`: the change is computed from the committed state here, in the
/// loop that owns the engine, so no push can slip in between reading and writing it.
async fn set_mtu(
    engine: &mut Engine,
    address: std::net::Ipv4Addr,
    prefix: u8,
    mtu: u32,
) -> Response {
    use super::cloudstack::interface::{mtu_push, PUSH_NAME};
    let Some((device, doc)) = mtu_push(&engine.stored.state, address, prefix, mtu) else {
        return Response {
            ok: false,
            error: Some(format!("Interface with IP {address} not found")),
            body: Default::default(),
        };
    };
    let text = serde_json::to_string(&doc).unwrap_or_default();
    let r = engine
        .apply(PUSH_NAME, &text, false, &push::local_nics())
        .await;
    Response {
        ok: r.ok,
        error: (!r.ok).then(|| r.message.clone()),
        body: json!({"device": device, "result": redacted(&r)}),
    }
}

/// Applies pushes in order, each on its own; one result each.
async fn apply_all<'a>(
    engine: &mut Engine,
    dry_run: bool,
    pushes: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Response {
    let nics = push::local_nics();
    let mut results = Vec::new();
    let mut all_ok = true;
    for (name, text) in pushes {
        let r = engine.apply(name, text, dry_run, &nics).await;
        all_ok &= r.ok;
        results.push(redacted(&r));
    }
    Response {
        ok: all_ok,
        error: None,
        body: serde_json::Value::Array(results),
    }
}

async fn handle(engine: &mut Engine, req: Request) -> Response {
    let ok = |body| Response {
        ok: true,
        error: None,
        body,
    };
    match req {
        Request::Apply { dry_run, pushes } => {
            let pushes = pushes.iter().map(|p| (p.name.as_str(), p.text.as_str()));
            apply_all(engine, dry_run, pushes).await
        }
        Request::ApplyPassed {
            dry_run,
            name,
            text,
        } => apply_all(engine, dry_run, [(name.as_str(), text.as_str())]).await,
        // The socket turns a `push` and its body into an `apply`.
        Request::Push { name, .. } => Response {
            ok: false,
            error: Some(format!("{name}: push body missing")),
            body: Default::default(),
        },
        Request::Status => ok(engine.status()),
        Request::ShowState => ok(redacted(&engine.stored)),
        Request::ShowPushes => ok(serde_json::Value::Array(
            engine.history.iter().rev().map(redacted).collect(),
        )),
        Request::Reconcile => {
            let outcomes = engine.reconcile().await;
            let failed = outcomes
                .iter()
                .any(|o| matches!(o.status, crate::concern::Status::Failed(_)));
            Response {
                ok: !failed,
                error: None,
                body: json!({"outcomes": outcomes}),
            }
        }
        Request::Diff => {
            let (drift, plan) = engine.diff().await;
            Response {
                ok: drift == 0,
                error: None,
                body: json!({"in_sync": drift == 0, "changes": drift, "plan": plan}),
            }
        }
        Request::SetMtu {
            address,
            prefix,
            mtu,
        } => set_mtu(engine, address, prefix, mtu).await,
        Request::ShowHa => {
            let state = engine.stored.state.clone();
            ok(engine.reconciler.ha.status(&state).await)
        }
        Request::ShowVpn => {
            let state = engine.stored.state.clone();
            ok(engine.reconciler.vpn.status(&state).await)
        }
        Request::Check => {
            let checks = engine.check().await;
            let ok = !checks
                .iter()
                .any(|c| c.verdict == crate::diag::check::Verdict::Fail);
            Response {
                ok,
                error: None,
                body: json!({"ok": ok, "checks": checks}),
            }
        }
    }
}
