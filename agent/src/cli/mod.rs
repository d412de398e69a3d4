//! The `vr-agent` command line (clap). Exit status: 0 success, 1 the request was understood
//! and failed (invalid push, drift, failed check), 2 usage error.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::{Config, Overrides};

pub mod cloudstack;
mod commands;
mod ha;
mod run;
mod support;

// What `commands` dispatches to, one idea per file.
mod apply;
mod query;
mod query_ravpn;
mod views;

/// Virtual-router agent: applies pushed network state to nftables, strongSwan, FRR and the
/// kernel, keeps it across restarts, and explains what it holds.
#[derive(Debug, Parser)]
#[command(name = "vr-agent", version, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand understands; each also settable in the config file and by
/// `VR_AGENT_<NAME>`.
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// Config file [default: /etc/vr-agent/config.toml; absent file = defaults]
    #[arg(long, global = true, env = "VR_AGENT_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// State directory [default: /var/lib/vr-agent]
    #[arg(long, global = true, env = "VR_AGENT_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Configs, pid files and sockets of the daemons the agent owns (dnsmasq)
    /// [default: /run/vr-agent]
    #[arg(long, global = true, env = "VR_AGENT_RUN_DIR", value_name = "DIR")]
    pub run_dir: Option<PathBuf>,
    /// Spool directory [default: /var/cache/vr-agent/spool]
    #[arg(long, global = true, env = "VR_AGENT_SPOOL_DIR", value_name = "DIR")]
    pub spool_dir: Option<PathBuf>,
    /// The agent's control socket [default: /run/vr-agent.sock]
    #[arg(long, global = true, env = "VR_AGENT_SOCKET", value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// strongSwan VICI socket [default: /var/run/charon.vici]
    #[arg(long, global = true, env = "VR_AGENT_VICI_SOCKET", value_name = "PATH")]
    pub vici_socket: Option<PathBuf>,
    /// FRR vty socket directory (as `vtysh --vty_socket`) [default: FRR's own]
    #[arg(long, global = true, env = "VR_AGENT_FRR_VTY_DIR", value_name = "DIR")]
    pub frr_vty_dir: Option<PathBuf>,
    /// FRR integrated config file [default: /etc/frr/frr.conf]
    #[arg(long, global = true, env = "VR_AGENT_FRR_CONFIG", value_name = "FILE")]
    pub frr_config: Option<PathBuf>,
    /// nftables backend: netlink (default) or cli (`nft -f -`, for debugging)
    #[arg(
        long,
        global = true,
        env = "VR_AGENT_NFT_BACKEND",
        value_name = "BACKEND"
    )]
    pub nft_backend: Option<String>,
    /// Seconds between self-heal observations (drift repaired without a push); 0 = off
    /// [default: 5]
    #[arg(
        long,
        global = true,
        env = "VR_AGENT_OBSERVE_INTERVAL",
        value_name = "SECONDS"
    )]
    pub observe_interval: Option<u64>,
    /// Prometheus endpoint ADDR:PORT, or off [default: the control address, port 9100]
    #[arg(
        long,
        global = true,
        env = "VR_AGENT_METRICS_LISTEN",
        value_name = "ADDR:PORT"
    )]
    pub metrics_listen: Option<String>,
    /// CloudStack's file drop directory (boot cmdline, pushes, boot_up_done)
    /// [default: /var/cache/cloud]
    #[arg(
        long,
        global = true,
        env = "VR_AGENT_CLOUDSTACK_DIR",
        value_name = "DIR"
    )]
    pub cloudstack_dir: Option<PathBuf>,
    /// CloudStack version reported by get_template_version.sh [default: 4.22.0]
    #[arg(
        long,
        global = true,
        env = "VR_AGENT_CLOUDSTACK_VERSION",
        value_name = "X.Y.Z"
    )]
    pub cloudstack_version: Option<String>,
    /// Seconds to wait at start for the boot cmdline [default: 60]
    #[arg(
        long,
        global = true,
        env = "VR_AGENT_CMDLINE_WAIT",
        value_name = "SECONDS"
    )]
    pub cmdline_wait: Option<u64>,
    /// root's authorized_keys, written from the cmdline's authorized_key
    /// [default: /root/.ssh/authorized_keys]
    #[arg(
        long,
        global = true,
        env = "VR_AGENT_AUTHORIZED_KEYS",
        value_name = "FILE"
    )]
    pub authorized_keys: Option<PathBuf>,
    /// Print machine-readable JSON instead of text
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the agent: replay the stored state, then serve the spool and the socket.
    ///
    /// Example: vr-agent run --state-dir /var/lib/vr-agent
    Run,
    /// Apply push files through the running agent (or in-process if none runs).
    ///
    /// Exit 0 only if every file applied. Example: vr-agent apply forwarding_rules.json
    Apply {
        /// Print the plan and change nothing
        #[arg(long)]
        dry_run: bool,
        /// Push files (native or CloudStack format, or a VR-<uuid>.cfg container); - = stdin
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Parse and validate push files only (exit 0 valid, 1 invalid).
    ///
    /// Example: vr-agent validate examples/router.json
    Validate {
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Print the JSON Schema of the native state document.
    ///
    /// Example: vr-agent schema > state.schema.json
    Schema,
    /// Agent version, uptime, generation, last push and replay, per-concern health.
    ///
    /// Example: vr-agent status --json
    Status,
    /// Show what the agent holds.
    ///
    /// Example: vr-agent show state --json
    Show {
        #[command(subcommand)]
        what: Show,
    },
    /// What reconcile would change to bring the system back to the desired state (exit 1 if
    /// anything would).
    ///
    /// Example: vr-agent diff
    Diff,
    /// Re-apply the desired state to repair drift.
    ///
    /// Example: vr-agent reconcile
    Reconcile,
    /// Health checks, one line each; exit 1 if any fails.
    ///
    /// Example: vr-agent check
    Check,
    /// Ping an address (no shell, validated arguments).
    ///
    /// Example: vr-agent ping 192.0.2.1 --count 3 --interface eth2
    Ping {
        /// IPv4 or IPv6 address (no names)
        destination: String,
        /// Number of echo requests (1-100)
        #[arg(long, short = 'c', default_value_t = 4)]
        count: u32,
        /// Source interface
        #[arg(long, short = 'I')]
        interface: Option<String>,
    },
    /// Trace the route to an address (no shell, validated arguments).
    ///
    /// Example: vr-agent traceroute 198.51.100.7 --max-hops 20
    Traceroute {
        destination: String,
        /// Maximum number of hops (1-64)
        #[arg(long, short = 'm', default_value_t = 30)]
        max_hops: u32,
        #[arg(long, short = 'I')]
        interface: Option<String>,
    },
    /// ARP-ping an IPv4 neighbour on an interface (no shell, validated arguments).
    ///
    /// Example: vr-agent arping 192.0.2.1 --interface eth2
    Arping {
        destination: String,
        #[arg(long, short = 'I')]
        interface: String,
        #[arg(long, short = 'c', default_value_t = 3)]
        count: u32,
    },
    /// Write a tar.gz with every `show` output, nft/ip/conntrack dumps, swanctl and vtysh
    /// summaries and recent logs, secrets redacted.
    ///
    /// Example: vr-agent tech-support --output /var/tmp/support.tar.gz
    TechSupport {
        /// Where to write the bundle [default: /var/tmp/vr-agent-tech-support-<time>.tar.gz]
        #[arg(long, short = 'o')]
        output: Option<PathBuf>,
    },
    /// This router's new role in its redundant pair (keepalived's notify hooks call it),
    /// applied as a push through the running agent.
    ///
    /// Example: vr-agent ha primary
    Ha {
        #[arg(value_parser = ["primary", "backup", "fault"])]
        role: String,
    },
    /// CloudStack's `/opt/cloud/bin` scripts: each prints exactly what the management
    /// server parses (one verb per script; the scripts are thin wrappers).
    ///
    /// Example: vr-agent cloudstack check-s2s-vpn 203.0.113.6
    Cloudstack {
        #[command(subcommand)]
        verb: cloudstack::Verb,
    },
    /// Print the man page (roff) or bash completions, generated from this command line.
    #[command(hide = true)]
    Generate {
        #[arg(value_enum)]
        what: Generated,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Generated {
    Man,
    Bash,
}

#[derive(Debug, Subcommand)]
pub enum Show {
    /// The desired state (secrets redacted).
    ///
    /// Example: vr-agent show state --json
    State,
    /// Recent pushes with their results.
    ///
    /// Example: vr-agent show pushes
    Pushes,
    /// NAT maps (port forwards, static NAT, source NAT) and NAT chains with packet counters.
    ///
    /// Example: vr-agent show nat
    Nat,
    /// Firewall maps and filter chains with packet counters.
    ///
    /// Example: vr-agent show firewall --json
    Firewall,
    /// VPC network ACL maps and the forward chain with packet counters.
    ///
    /// Example: vr-agent show acl
    Acl,
    /// Links and addresses (`ip addr`).
    ///
    /// Example: vr-agent show interfaces --json
    Interfaces,
    /// Routes of every table and the policy-routing rules.
    ///
    /// Example: vr-agent show routes
    Routes,
    /// Site-to-site tunnels: IKE and CHILD SA state, established time, bytes and packets.
    ///
    /// Example: vr-agent show vpn --json
    Vpn,
    /// OSPF neighbors (state, uptime) and OSPF routes, from FRR; with --dialect, the
    /// committed OSPF state as FRR or Quagga configuration (keys redacted).
    ///
    /// Example: vr-agent show ospf --dialect quagga
    Ospf {
        /// Print the committed state as `frr.conf` (frr) or as Quagga's `zebra.conf` and
        /// `ospfd.conf` (quagga) instead of FRR's live view
        #[arg(long, value_parser = ["frr", "quagga"])]
        dialect: Option<String>,
    },
    /// BGP neighbors per address family: session state, uptime, prefixes sent and received,
    /// from FRR (passwords never shown).
    ///
    /// Example: vr-agent show bgp --json
    Bgp,
    /// Static DHCP hosts with their lease state, and the dnsmasq serving them.
    ///
    /// Example: vr-agent show dhcp --json
    Dhcp,
    /// The names the router answers for guests (VMs, data-server) and where others go.
    ///
    /// Example: vr-agent show dns
    Dns,
    /// Load balancers as haproxy reports them (its stats socket): frontends, backends and
    /// servers with their health and session counts.
    ///
    /// Example: vr-agent show lb --json
    Lb,
    /// Which VMs have user data, which metadata keys, and whether a password waits for them
    /// (never a value).
    ///
    /// Example: vr-agent show metadata --json
    Metadata,
    /// The redundant pair: role, peer, priority, last transitions with times, conntrackd
    /// cache and sync counters.
    ///
    /// Example: vr-agent show ha --json
    Ha,
    /// Conntrack entries, filtered, with counts by state.
    ///
    /// Example: vr-agent show conntrack --address 192.0.2.11 --port 8080 --protocol tcp
    Conntrack {
        /// Entries with this address on either side
        #[arg(long)]
        address: Option<std::net::IpAddr>,
        /// Entries with this port on either side
        #[arg(long)]
        port: Option<u16>,
        /// tcp, udp, icmp, ...
        #[arg(long, value_parser = ["tcp", "udp", "icmp", "gre", "esp", "sctp"])]
        protocol: Option<String>,
    },
}

impl Global {
    pub fn config(&self) -> Result<Config, crate::config::ConfigError> {
        Config::resolve(Overrides {
            config: self.config.clone(),
            state_dir: self.state_dir.clone(),
            run_dir: self.run_dir.clone(),
            spool_dir: self.spool_dir.clone(),
            socket: self.socket.clone(),
            vici_socket: self.vici_socket.clone(),
            frr_vty_dir: self.frr_vty_dir.clone(),
            frr_config: self.frr_config.clone(),
            nft_backend: self.nft_backend.clone(),
            observe_interval: self.observe_interval,
            cloudstack_dir: self.cloudstack_dir.clone(),
            cloudstack_version: self.cloudstack_version.clone(),
            cmdline_wait: self.cmdline_wait,
            authorized_keys: self.authorized_keys.clone(),
            metrics_listen: self.metrics_listen.clone(),
        })
    }
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    crate::memory::tune_allocator();
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Run) {
        // A command's output piped into `head` or `less` ends quietly when the reader goes,
        // as every Unix tool does, instead of panicking on the broken pipe. The agent keeps
        // Rust's default (SIGPIPE ignored): a client that hangs up must never kill it.
        // SAFETY: setting a signal disposition before any thread is started.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    // The CloudStack front doors print nothing on stderr: ssh merges it into what the
    // management server parses.
    if !matches!(cli.command, Command::Cloudstack { .. }) {
        init_logging(matches!(cli.command, Command::Run));
    }
    let cfg = match cli.global.config() {
        Ok(c) => c,
        Err(e) => {
            if matches!(cli.command, Command::Cloudstack { .. }) {
                println!("vr-agent: {e}");
                return ExitCode::from(1);
            }
            eprintln!("vr-agent: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("vr-agent: cannot start runtime: {e}");
            return ExitCode::from(1);
        }
    };
    rt.block_on(commands::dispatch(cli, cfg))
}

/// journald under systemd (JOURNAL_STREAM set), stderr otherwise; `RUST_LOG` filters.
fn init_logging(agent: bool) {
    use tracing_subscriber::prelude::*;
    let default = if agent { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        if let Ok(journald) = tracing_journald::layer() {
            let _ = tracing_subscriber::registry()
                .with(filter)
                .with(journald.with_syslog_identifier("vr-agent".into()))
                .try_init();
            return;
        }
    }
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_target(false),
        )
        .try_init();
}
