//! `vr-agent cloudstack <verb>`: the front doors behind `/opt/cloud/bin/<script>` (the list is
//! `image/deb/cloudstack-scripts`). Each verb prints exactly what the unmodified CloudStack
//! Java parses (`cloudstack-contract.md`), nothing on stderr, and answers from the agent's own
//! state within its caller's timeout: every call to the agent or a tool has a deadline.
//!
//! The arguments are taken raw (`args`), as the scripts' `getopts`/`sys.argv` took them: the
//! management server pastes one string into the remote command line and the login shell
//! splits it.

use std::process::ExitCode;

use clap::Subcommand;

use crate::config::Config;

mod facts;
mod files;
mod monitor;
pub mod netusage;
mod query;

/// Query verbs (`checkbatchs2svpn.sh`, `getRouterAlerts.sh`, ...).
#[derive(Debug, Subcommand)]
pub enum Verb {
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

pub async fn dispatch(verb: Verb, cfg: &Config) -> ExitCode {
    match verb {
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
