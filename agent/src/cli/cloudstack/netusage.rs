//! `netusage.sh` / `vpc_netusage.sh`: converges the `inet vr_stats` counting table to the
//! committed state's public and guest NICs (planned in `vr_cloudstack::scripts::netusage`,
//! applied as one `nft -f` transaction, read back and verified), then answers `-g`.
//! The table is converged on `-c` (router start, NIC plugged) and before every `-g`, so a NIC
//! added by a push is counted from the next call; counters are never reset.

use std::io::Write as _;
use std::process::{Command, ExitCode};
use std::time::Duration;

use crate::config::Config;
use vr_cloudstack::scripts::netusage::{self, Action, Current, Nic, Spec, TABLE};

/// Every `nft` call has this deadline.
const NFT_LIMIT: Duration = Duration::from_secs(10);

pub async fn netusage(cfg: &Config, args: &[String], vpc: bool) -> ExitCode {
    let a = match netusage::parse_args(args, vpc) {
        Ok(a) => a,
        Err(_) => return ExitCode::from(2),
    };
    if matches!(a.action, Action::Nothing | Action::Reset) {
        return ExitCode::SUCCESS;
    }
    let Some(state) = super::facts::committed_state(cfg).await else {
        return ExitCode::from(1);
    };
    let spec = spec_of(&state);
    let current = match converge(&spec) {
        Ok(c) => c,
        Err(e) => {
            // Nothing on stdout: the MS reads a failed call as 0/0 and skips it.
            tracing::debug!("vr_stats: {e}");
            return ExitCode::from(1);
        }
    };
    if a.action == Action::Get {
        let bytes: Vec<u64> = spec
            .counters_for(a.public_ip.as_deref())
            .iter()
            .map(|n| current.counters.get(n).copied().unwrap_or(0))
            .collect();
        print!("{}", netusage::render_get(&bytes));
    }
    ExitCode::SUCCESS
}

/// Converges the counters to the committed state's NICs without answering anything: for the
/// apply verbs (`update_config.py`, `vr_cfg.sh`) to call after a push that may have added a
/// public or guest NIC, so its traffic is counted from then on rather than from the next `-g`.
pub async fn ensure_counters(cfg: &Config) -> Result<(), String> {
    let state = super::facts::committed_state(cfg)
        .await
        .ok_or_else(|| "no committed state (agent not answering)".to_string())?;
    let spec = spec_of(&state);
    tokio::task::spawn_blocking(move || converge(&spec).map(|_| ()))
        .await
        .map_err(|e| e.to_string())?
}

/// The NICs of the committed state; a VPC router (`cmdline` type `vpcrouter` with a
/// `vpccidr`) counts by the VPC's CIDR.
fn spec_of(stored: &serde_json::Value) -> Spec {
    let state = &stored["state"];
    let nics: Vec<Nic> = state["interfaces"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| Nic {
            device: i["device"].as_str().unwrap_or("").to_string(),
            public: i["role"] == "public",
            guest: i["role"] == "guest",
            addresses: i["addresses"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| a.as_str()?.split('/').next().map(str::to_string))
                .collect(),
        })
        .filter(|n| crate::validate::is_valid_ifname(&n.device))
        .collect();
    let cmdline = &state["cloudstack"]["cmdline"];
    let vpc_cidr = (cmdline["type"] == "vpcrouter")
        .then(|| cmdline["vpccidr"].as_str())
        .flatten()
        .filter(|c| c.parse::<ipnet::Ipv4Net>().is_ok());
    Spec::new(&nics, vpc_cidr)
}

fn nft(args: &[&str]) -> Result<std::process::Output, String> {
    crate::process::output_within(Command::new("nft").args(args), NFT_LIMIT)
        .map_err(|e| format!("nft {}: {e}", args.join(" ")))
}

/// What the kernel holds (`None`: no table).
fn read() -> Result<Option<Current>, String> {
    let table = nft(&["-j", "list", "table", "inet", TABLE])?;
    if !table.status.success() {
        let err = String::from_utf8_lossy(&table.stderr);
        if err.contains("No such file") {
            return Ok(None);
        }
        return Err(format!("nft list table inet {TABLE}: {}", err.trim()));
    }
    let chain = nft(&["list", "chain", "inet", TABLE, "count"])?;
    let chain_text = if chain.status.success() {
        String::from_utf8_lossy(&chain.stdout).into_owned()
    } else {
        String::new()
    };
    netusage::parse_current(&String::from_utf8_lossy(&table.stdout), &chain_text).map(Some)
}

/// Plans, applies in one transaction, reads back; the read-back must need no change.
fn converge(spec: &Spec) -> Result<Current, String> {
    let current = read()?;
    let plan = netusage::plan(current.as_ref(), spec);
    if plan.changes() == 0 {
        return current.ok_or_else(|| "no table and nothing planned".to_string());
    }
    let mut script = tempfile::NamedTempFile::new().map_err(|e| e.to_string())?;
    script
        .write_all(plan.to_string().as_bytes())
        .map_err(|e| e.to_string())?;
    let path = script.path().to_string_lossy().into_owned();
    let out = nft(&["-f", &path])?;
    if !out.status.success() {
        return Err(format!(
            "nft -f: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let after = read()?.ok_or_else(|| format!("table inet {TABLE} missing after apply"))?;
    let left = netusage::plan(Some(&after), spec);
    if left.changes() != 0 {
        return Err(format!("read-back differs: still to do\n{left}"));
    }
    Ok(after)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_comes_from_the_committed_nics_and_a_vpc_counts_by_its_cidr() {
        let stored = serde_json::json!({"generation": 3, "state": {
            "interfaces": [
                {"device": "eth0", "role": "guest", "addresses": ["10.1.1.1/24"]},
                {"device": "eth1", "role": "control", "addresses": ["169.254.0.5/16"]},
                {"device": "eth2", "role": "public", "addresses": ["192.0.2.10/24", "192.0.2.11/24"]},
                {"device": "bad name", "role": "public", "addresses": []}
            ],
            "cloudstack": {"cmdline": {"type": "router"}}}});
        let spec = spec_of(&stored);
        assert_eq!(spec.public.len(), 1);
        assert_eq!(spec.public[0].addresses, ["192.0.2.10", "192.0.2.11"]);
        assert_eq!(spec.guests, netusage::Guests::Nics(vec!["eth0".into()]));
        let mut vpc = stored.clone();
        vpc["state"]["cloudstack"]["cmdline"] =
            serde_json::json!({"type": "vpcrouter", "vpccidr": "10.0.0.0/16"});
        assert_eq!(
            spec_of(&vpc).guests,
            netusage::Guests::Cidr("10.0.0.0/16".into())
        );
        // A CIDR that is not one is not pasted into an nft rule.
        vpc["state"]["cloudstack"]["cmdline"]["vpccidr"] = "10.0.0.0/16; flush ruleset".into();
        assert!(matches!(spec_of(&vpc).guests, netusage::Guests::Nics(_)));
    }
}
