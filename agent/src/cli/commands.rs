//! Subcommands other than `run`: the dispatcher. Each subcommand is a thin client of the
//! running agent's socket ([`super::query`]), a push sent or applied in process
//! ([`super::apply`]), or a view read here ([`super::views`]).

use std::process::ExitCode;

use super::apply::{apply, validate};
use super::query::{print_checks, print_pushes, print_status, print_vpn, query};
use super::views::{addressing_view, print_view, run_tool};
use super::{Cli, Command, Show};
use crate::config::Config;
use crate::intake::protocol::Request;
use crate::state::StateDocument;
use crate::store::Store;

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
        Command::Show { what: Show::Bgp } => print_view(
            crate::diag::bgp::live_view(cfg.frr_vty_dir.as_deref()).await,
            json,
        ),
        Command::Show { what: Show::Dhcp } => print_view(
            crate::diag::guest::dhcp_view(&crate::concern::dhcp::paths(
                &cfg.run_dir,
                &cfg.state_dir,
            )),
            json,
        ),
        Command::Show { what: Show::Lb } => {
            print_view(crate::concern::lb::view(&cfg.run_dir).await, json)
        }
        Command::Show { what: Show::Dns } => print_view(
            crate::diag::guest::dns_view(&crate::concern::dhcp::paths(
                &cfg.run_dir,
                &cfg.state_dir,
            )),
            json,
        ),
        Command::Show {
            what: Show::Metadata,
        } => match Store::open(&cfg.state_dir).and_then(|s| s.load()) {
            Ok(stored) => print_view(
                crate::diag::metadata::view(&stored.state, &cfg.state_dir),
                json,
            ),
            Err(e) => {
                eprintln!("vr-agent: {e}");
                ExitCode::from(1)
            }
        },
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
        Command::Ha { role } => super::ha::transition(&cfg, &role).await,
        Command::Show { what: Show::Ha } => super::ha::show(&cfg, json).await,
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

pub(super) fn pretty(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}
