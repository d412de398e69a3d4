//! `vr-agent cloudstack <verb> [args]`: the `/opt/cloud/bin` front doors CloudStack's
//! management side runs over SSH (`cloudstack-contract.md`). Each script under `/opt/cloud/bin`
//! is a two-line wrapper exec'ing one verb (the list: `image/deb/cloudstack-scripts`, with the bumpup_priority.sh legacy call); the
//! verbs take the script's arguments raw, as the VR's login shell split them, and parse them
//! themselves so that a bad call exits 1 like upstream instead of clap's 2.
//!
//! What the Java parses comes on stdout and nothing else does: stderr is merged into the same
//! text (contract §0.1), so these verbs never log to it. Exit 0 only on success.

use std::process::ExitCode;

use clap::Subcommand;

use crate::config::Config;

mod apply;
pub mod boot;
pub mod interface;
mod router;

/// The scripts, by verb. Each also answers to its script's name (`update_config.py`, ...).
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
    }
}

/// A failure: one line on stdout (what the management side logs), exit 1.
fn fail(msg: impl std::fmt::Display) -> ExitCode {
    println!("{msg}");
    ExitCode::from(1)
}
