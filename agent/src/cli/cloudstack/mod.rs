//! `vr-agent cloudstack <verb> [args]`: the front doors behind `/opt/cloud/bin/<script>`
//! (`cloudstack-contract.md`). Each script is a two-line wrapper exec'ing one verb (the list is
//! `image/deb/cloudstack-scripts`); each verb prints exactly what the unmodified CloudStack Java
//! parses, nothing on stderr (ssh merges it into the same text), exits 0 only on success, and
//! answers from the agent's own state within its caller's timeout: every call to the agent or a
//! tool has a deadline.
//!
//! The arguments are taken raw, as the scripts' `getopts`/`sys.argv` took them: the management
//! server pastes one string into the remote command line and the login shell splits it; a verb
//! parses them itself, so a bad call exits 1 like upstream instead of clap's 2.
//!
//! Apply side: `update_config.py`, `vr_cfg.sh`, `configure.py`, `checkrouter.sh`,
//! `get_template_version.sh`, `update_interface_config.sh`, `manage_service.sh`,
//! `bumpup_priority.sh` (and the KVM boot steps, `boot`). Query side: the rest.

use std::process::ExitCode;

use clap::Subcommand;

use crate::config::Config;

mod apply;
pub mod boot;
mod facts;
mod files;
pub mod interface;
mod monitor;
pub mod netusage;
mod query;
pub(crate) mod router;

/// The scripts, by verb. The apply verbs also answer to their script's name
/// (`update_config.py`, ...).
#[derive(Debug, Subcommand)]
pub enum Verb {
    /// update_config.py <file> [false]: apply one pushed file through the agent
    #[command(name = "update-config", visible_alias = "update_config.py")]
    UpdateConfig(Raw),
    /// vr_cfg.sh -c <file>: apply a VR-<uuid>.cfg container through the agent, as one unit
    #[command(name = "vr-cfg", visible_alias = "vr_cfg.sh")]
    VrCfg(Raw),
    /// configure.py <file>: re-run of a file update_config.py applied (nothing left to do)
    #[command(name = "configure", visible_alias = "configure.py")]
    Configure(Raw),
    /// checkrouter.sh: `Status: PRIMARY|BACKUP|FAULT|UNKNOWN`
    #[command(name = "checkrouter", visible_alias = "checkrouter.sh")]
    Checkrouter(Raw),
    /// get_template_version.sh: waits for boot_up_done, prints the release line
    #[command(
        name = "get-template-version",
        visible_alias = "get_template_version.sh"
    )]
    GetTemplateVersion(Raw),
    /// update_interface_config.sh <ip> <prefixlen> <mtu> [tries]: set a NIC's MTU
    #[command(
        name = "update-interface-config",
        visible_alias = "update_interface_config.sh"
    )]
    UpdateInterfaceConfig(Raw),
    /// manage_service.sh <action> keepalived
    #[command(name = "manage-service", visible_alias = "manage_service.sh")]
    ManageService(Raw),
    /// bumpup_priority.sh: dead upstream (nothing sends it); succeeds
    #[command(name = "bumpup-priority", visible_alias = "bumpup_priority.sh")]
    BumpupPriority(Raw),
    // Query verbs.
    /// checkbatchs2svpn.sh <ip>...: site-to-site state per peer, `ip:0|11:info&`.
    CheckS2sVpn {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// getRouterAlerts.sh <date> <time>: the agent's alerts newer than the time.
    RouterAlerts {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// getRouterMonitorResults.sh [true|false]: health checks (true: run them now).
    MonitorResults {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// filesystem_writable_check.py: exit 1 if /root or /var/cache/cloud is read-only.
    FilesystemCheck {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// diagnostics.py <type> <ip> [params]: ping, traceroute, arping; `out&&\nerr&&\nrc`.
    Diagnostics {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// get_diagnostics_files.py <file>...: a zip of tech-support content and the files.
    DiagnosticsFiles {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// cleanup.sh <zip>: deletes a zip made by diagnostics-files.
    Cleanup {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// netusage.sh -c|-g [-l ip]|-r|-a dev|-d dev: byte counters of an isolated router.
    Netusage {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// vpc_netusage.sh -l ip -c|-g|-r|-n|-d [-v cidr]: byte counters of a VPC router.
    VpcNetusage {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

/// A script's arguments, unparsed.
#[derive(Debug, clap::Args)]
pub struct Raw {
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ARG"
    )]
    pub args: Vec<String>,
}

pub async fn dispatch(verb: Verb, cfg: &Config) -> ExitCode {
    match verb {
        Verb::UpdateConfig(a) => apply::update_config(cfg, &a.args).await,
        Verb::VrCfg(a) => apply::vr_cfg(cfg, &a.args).await,
        Verb::Configure(a) => apply::configure(&a.args),
        Verb::Checkrouter(_) => router::checkrouter(cfg),
        Verb::GetTemplateVersion(_) => router::get_template_version(cfg).await,
        Verb::UpdateInterfaceConfig(a) => interface::update_interface_config(cfg, &a.args).await,
        Verb::ManageService(a) => router::manage_service(&a.args),
        Verb::BumpupPriority(_) => ExitCode::SUCCESS,
        Verb::CheckS2sVpn { args } => query::check_s2s(cfg, &args).await,
        Verb::RouterAlerts { args } => query::router_alerts(cfg, &args).await,
        Verb::MonitorResults { args } => monitor::monitor_results(cfg, &args).await,
        Verb::FilesystemCheck { .. } => monitor::filesystem_check(),
        Verb::Diagnostics { args } => query::diagnostics(&args),
        Verb::DiagnosticsFiles { args } => files::diagnostics_files(cfg, &args).await,
        Verb::Cleanup { args } => files::cleanup(&args),
        Verb::Netusage { args } => netusage::netusage(cfg, &args, false).await,
        Verb::VpcNetusage { args } => netusage::netusage(cfg, &args, true).await,
    }
}

/// A failure: one line on stdout (what the management side logs), exit 1.
fn fail(msg: impl std::fmt::Display) -> ExitCode {
    println!("{msg}");
    ExitCode::from(1)
}
