//! `vr-agent tech-support`: gathers the agent's views (over its socket) and the system's
//! (nft, ip, conntrack, swanctl, vtysh, logs) into one bundle with secrets redacted.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::Config;
use crate::diag::support::{bundle, Item};
use crate::intake::protocol::Request;
use crate::intake::socket;
use crate::redact::secrets_of;
use crate::store::Store;

/// `--json`: `{"tool": "tech-support", "ok", "bundle"}` (or `error`) instead of the path.
pub async fn tech_support(cfg: &Config, output: Option<PathBuf>, json: bool) -> ExitCode {
    let out = output.unwrap_or_else(|| {
        PathBuf::from(format!(
            "/var/tmp/vr-agent-tech-support-{}.tar.gz",
            crate::push::now_secs()
        ))
    });
    let (items, secrets) = items(cfg).await;
    let result = bundle(items, &secrets, &out);
    if json {
        let v = match &result {
            Ok(p) => serde_json::json!({"tool": "tech-support", "ok": true, "bundle": p}),
            Err(e) => {
                serde_json::json!({"tool": "tech-support", "ok": false, "error": e.to_string()})
            }
        };
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    }
    match result {
        Ok(p) => {
            if !json {
                println!("{}", p.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("vr-agent: tech-support: {e}");
            ExitCode::from(1)
        }
    }
}

/// What a tech-support bundle holds, and the secrets to scrub from it (also the content of
/// CloudStack's diagnostics zip).
pub(crate) async fn items(cfg: &Config) -> (Vec<Item>, Vec<String>) {
    // Secrets come from the unredacted state file (root only): every file of the bundle is
    // scrubbed of them, whatever tool printed it.
    let secrets = Store::open(&cfg.state_dir)
        .and_then(|s| s.load())
        .map(|s| secrets_of(&s))
        .unwrap_or_default();
    let mut items = Vec::new();
    for (name, req) in [
        ("status.json", Request::Status),
        ("show-state.json", Request::ShowState),
        ("show-pushes.json", Request::ShowPushes),
        ("diff.json", Request::Diff),
        ("check.json", Request::Check),
    ] {
        let text = match socket::call(&cfg.socket, &req).await {
            Ok(Some(r)) => serde_json::to_string_pretty(&r).unwrap_or_default(),
            Ok(None) => "agent not running\n".to_string(),
            Err(e) => format!("error: {e}\n"),
        };
        items.push(Item::Text(name, text));
    }
    let vici = format!("unix://{}", cfg.vici_socket.display());
    let mut vtysh = vec![];
    if let Some(dir) = &cfg.frr_vty_dir {
        vtysh.extend(["--vty_socket".to_string(), dir.display().to_string()]);
    }
    let vty = |cmd: &str| {
        let mut a = vtysh.clone();
        a.extend(["-c".to_string(), cmd.to_string()]);
        a
    };
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    items.extend([
        Item::Run("nft-ruleset.txt", "nft", s(&["list", "ruleset"])),
        Item::Run("ip-addr.txt", "ip", s(&["-d", "addr", "show"])),
        Item::Run("ip-route.txt", "ip", s(&["route", "show", "table", "all"])),
        Item::Run("ip-rule.txt", "ip", s(&["rule", "show"])),
        Item::Run("ip-neigh.txt", "ip", s(&["neigh", "show"])),
        Item::Run("conntrack-stats.txt", "conntrack", s(&["-S"])),
        Item::Run("conntrack-count.txt", "conntrack", s(&["-C"])),
        Item::Run(
            "swanctl-list-sas.txt",
            "swanctl",
            vec!["--list-sas".into(), "--uri".into(), vici.clone()],
        ),
        Item::Run(
            "swanctl-list-conns.txt",
            "swanctl",
            vec!["--list-conns".into(), "--uri".into(), vici],
        ),
        Item::Run(
            "vtysh-ospf-neighbors.txt",
            "vtysh",
            vty("show ip ospf neighbor"),
        ),
        Item::Run("vtysh-ospf-route.txt", "vtysh", vty("show ip ospf route")),
        Item::Run("vtysh-bgp-summary.txt", "vtysh", vty("show bgp summary")),
        Item::Run(
            "vtysh-running-config.txt",
            "vtysh",
            vty("show running-config"),
        ),
        Item::Run(
            "journal.txt",
            "journalctl",
            s(&["-u", "vr-agent", "-n", "2000", "--no-pager"]),
        ),
    ]);
    (items, secrets)
}
