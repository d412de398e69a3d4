//! `netusage.sh` / `vpc_netusage.sh`: reads the byte counters of table `inet vr_stats` and
//! answers `-g`. The agent's `usage` concern owns that table (created with the push that brings
//! a public NIC, repaired by self-heal, replayed at boot); these verbs never write it, so `-c`
//! is a no-op that exits 0, and a read never resets a count.

use std::process::ExitCode;

use crate::concern::usage;
use crate::config::Config;
use crate::state::{Interface, UsageSection};
use vr_cloudstack::scripts::netusage::{self as script, Action};

pub async fn netusage(cfg: &Config, args: &[String], vpc: bool) -> ExitCode {
    let a = match script::parse_args(args, vpc) {
        Ok(a) => a,
        Err(_) => return ExitCode::from(2),
    };
    if a.action != Action::Get {
        return ExitCode::SUCCESS;
    }
    let Some(state) = super::facts::committed_state(cfg).await else {
        return ExitCode::from(1);
    };
    let names = spec_of(&state).counters_for(a.public_ip.as_deref());
    if names.is_empty() {
        // No public NIC holds the address: no counters, no output (upstream: no chain).
        return ExitCode::SUCCESS;
    }
    let current = match tokio::task::spawn_blocking(usage::read).await {
        Ok(Ok(Some(c))) => c,
        other => {
            // Nothing on stdout: the MS reads a failed call as 0/0 and skips it, rather than
            // taking zeros for a reset while self-heal puts a deleted table back.
            tracing::debug!("vr_stats not readable: {other:?}");
            return ExitCode::from(1);
        }
    };
    let bytes: Vec<u64> = names
        .iter()
        .map(|n| current.counters.get(n).copied().unwrap_or(0))
        .collect();
    print!("{}", script::render_get(&bytes));
    ExitCode::SUCCESS
}

/// The counting spec of the committed state (its redacted JSON view: the interfaces and the
/// `usage` section are all it needs).
fn spec_of(stored: &serde_json::Value) -> vr_nat::usage::Spec {
    let state = &stored["state"];
    let interfaces: Vec<Interface> =
        serde_json::from_value(state["interfaces"].clone()).unwrap_or_default();
    let usage: UsageSection = serde_json::from_value(state["usage"].clone()).unwrap_or_default();
    usage::spec(&interfaces, usage.guest_cidr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_comes_from_the_committed_json() {
        let stored = serde_json::json!({"generation": 3, "state": {
            "interfaces": [
                {"device": "eth0", "role": "guest", "addresses": ["10.1.1.1/24"]},
                {"device": "eth2", "role": "public", "addresses": ["192.0.2.10/24"]}
            ],
            "usage": {"guest-cidr": "10.0.0.0/16"}}});
        let spec = spec_of(&stored);
        assert_eq!(spec.counters_for(Some("192.0.2.10")).len(), 4);
        assert_eq!(
            spec.guests,
            vr_nat::usage::Guests::Cidr("10.0.0.0/16".into())
        );
        assert!(spec_of(&serde_json::json!({})).public.is_empty());
    }
}
