//! `checkrouter.sh`, `get_template_version.sh`, `manage_service.sh` (contract §3, §4, §12).

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha512};

use super::fail;
use crate::config::Config;
use crate::store::Store;
use vr_cloudstack::scripts::{args, role, version};

/// `Status: <ROLE>` from the committed state (no agent round trip: the Java waits 30 s).
pub fn checkrouter(cfg: &Config) -> ExitCode {
    // An unreadable state file still leaves a single router: its role does not depend on it.
    let state = Store::open(&cfg.state_dir)
        .and_then(|s| s.load())
        .map(|s| s.state)
        .unwrap_or_default();
    // A redundant pair answers with the role keepalived last gave it (the agent's HA state);
    // none yet: UNKNOWN.
    let r = match (&state.ha, state.ha_role) {
        (Some(_), Some(vr_ha::HaRole::Primary)) => role::Role::Primary,
        (Some(_), Some(vr_ha::HaRole::Backup)) => role::Role::Backup,
        (Some(_), Some(vr_ha::HaRole::Fault)) => role::Role::Fault,
        (Some(_), None) => role::Role::Unknown,
        (None, _) => role::role(&state.cloudstack.cmdline),
    };
    print!("{}", role::status_line(r));
    ExitCode::SUCCESS
}

/// How long `get_template_version.sh` waits for `boot_up_done` (upstream's 240 s).
const BOOT_WAIT: Duration = Duration::from_secs(240);

/// Waits (bounded) for the agent's `boot_up_done`, then prints the release line. Like
/// upstream, it prints even when the wait ran out: the management server then goes on with a
/// router that will answer its pushes once the agent is up.
pub async fn get_template_version(cfg: &Config) -> ExitCode {
    let flag = cfg.cloudstack_dir.join(super::boot::BOOT_UP_DONE);
    let start = Instant::now();
    while !flag.exists() && start.elapsed() < BOOT_WAIT {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    match signature(&cfg.cloudstack_dir) {
        Ok(sig) => {
            print!(
                "{}",
                version::template_version_line(&cfg.cloudstack_version, &sig)
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

/// The scripts signature: sha512 of the `cloud-scripts.tgz` the management server copied in at
/// this start (what upstream stores in `cloud-scripts-signature`), or, when none was received,
/// of this `vr-agent` binary: the code that stands in for the scripts, stable for a build.
pub fn signature(dir: &Path) -> std::io::Result<String> {
    let received = dir.join("cloud-scripts.tgz");
    let path = if received.is_file() {
        received
    } else {
        std::env::current_exe()?
    };
    let mut f = std::fs::File::open(&path)?;
    let mut h = Sha512::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(version::hex(&h.finalize()))
}

/// keepalived is what the management server starts and stops (redundant VPCs, when a tier is
/// added or removed). This agent has no VRRP yet, so there is no keepalived: start, stop and
/// restart are accepted (exit 0) and say so, as they would on a router whose VRRP the agent
/// will own (it starts keepalived itself when the router is redundant); status answers like
/// `systemctl status` of an inactive unit (exit 3). Any other service is refused.
pub fn manage_service(argv: &[String]) -> ExitCode {
    match args::manage_service(argv) {
        Ok(args::ServiceAction::Status) => {
            println!("keepalived: inactive (this router has no VRRP)");
            ExitCode::from(3)
        }
        Ok(a) => {
            println!("keepalived: {a:?} accepted; this router has no VRRP, so no keepalived runs");
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}
