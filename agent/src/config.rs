//! Settings: command line > environment (`VR_AGENT_<NAME>`) > config file > defaults.
//!
//! clap resolves the first two (every global option has `env = "VR_AGENT_..."`); the config
//! file fills what neither gave. An absent config file means defaults.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const DEFAULT_CONFIG: &str = "/etc/vr-agent/config.toml";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/vr-agent";
pub const DEFAULT_SPOOL_DIR: &str = "/var/cache/vr-agent/spool";
pub const DEFAULT_SOCKET: &str = "/run/vr-agent.sock";
pub const DEFAULT_RUN_DIR: &str = "/run/vr-agent";
pub const DEFAULT_VICI_SOCKET: &str = "/var/run/charon.vici";
pub const DEFAULT_FRR_CONFIG: &str = "/etc/frr/frr.conf";
/// Where CloudStack's hypervisor agent copies files (`scp -t -d /var/cache/cloud/`).
pub const DEFAULT_CLOUDSTACK_DIR: &str = "/var/cache/cloud";
/// root's keys: the boot cmdline's `authorized_key` is installed here.
pub const DEFAULT_AUTHORIZED_KEYS: &str = "/root/.ssh/authorized_keys";
/// The CloudStack version `get_template_version.sh` reports (the release the contract names;
/// the management server refuses routers older than its `minreq.sysvmtemplate.version`).
pub const DEFAULT_CLOUDSTACK_VERSION: &str = "4.22.0";
/// Seconds the agent waits at start for the boot cmdline (CloudStack's `init.sh` waits 60).
pub const DEFAULT_CMDLINE_WAIT: u64 = 60;

/// Errors of the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// cannot read config file {0}: {1}
    #[error("cannot read config file {0}: {1}")]
    Read(PathBuf, std::io::Error),
    /// config file {0} is invalid: {1}
    #[error("config file {0} is invalid: {1}")]
    Invalid(PathBuf, String),
}

/// The config file (`/etc/vr-agent/config.toml`). Every key is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ConfigFile {
    pub state_dir: Option<PathBuf>,
    /// Configs, pid files and sockets of the daemons the agent owns (dnsmasq).
    pub run_dir: Option<PathBuf>,
    pub spool_dir: Option<PathBuf>,
    pub socket: Option<PathBuf>,
    pub vici_socket: Option<PathBuf>,
    pub frr_vty_dir: Option<PathBuf>,
    pub frr_config: Option<PathBuf>,
    /// `netlink` (default) or `cli` (`nft -f -`, for debugging).
    pub nft_backend: Option<String>,
    /// Removed: the agent always drives FRR. Kept only to name its replacement when an old
    /// config file still sets it.
    #[serde(default, skip_serializing)]
    pub ospf_dialect: Option<String>,
    /// Seconds between self-heal observations (0 = off).
    pub observe_interval: Option<u64>,
    /// `net.netfilter.nf_conntrack_max` (default: sized from the VM's memory).
    pub conntrack_max: Option<u64>,
    /// `net.netfilter.nf_conntrack_buckets` (default: half the maximum).
    pub conntrack_buckets: Option<u64>,
    /// Conntrack timeouts in seconds (defaults in `tunables`).
    pub tcp_established_timeout: Option<u64>,
    pub udp_timeout: Option<u64>,
    pub udp_stream_timeout: Option<u64>,
    /// CloudStack's file drop directory (`cmdline`, pushes, `boot_up_done`). The agent does
    /// the CloudStack boot steps only when it exists.
    pub cloudstack_dir: Option<PathBuf>,
    /// The version `get_template_version.sh` reports (x.y.z).
    pub cloudstack_version: Option<String>,
    /// Seconds to wait at start for a boot cmdline written since this boot.
    pub cmdline_wait: Option<u64>,
    /// Where the cmdline's `authorized_key` goes.
    pub authorized_keys: Option<PathBuf>,
    /// Prometheus endpoint: `ADDR:PORT`, or `off` (default: the control address, port 9100).
    pub metrics_listen: Option<String>,
}

impl ConfigFile {
    /// Reads `path`; a missing file is the empty config unless `required`.
    pub fn load(path: &Path, required: bool) -> Result<ConfigFile, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                toml::from_str(&text).map_err(|e| ConfigError::Invalid(path.into(), e.to_string()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
                Ok(ConfigFile::default())
            }
            Err(e) => Err(ConfigError::Read(path.into(), e)),
        }
    }
}

/// Resolved settings the agent runs with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Config {
    pub state_dir: PathBuf,
    pub run_dir: PathBuf,
    pub spool_dir: PathBuf,
    pub socket: PathBuf,
    pub vici_socket: PathBuf,
    pub frr_vty_dir: Option<PathBuf>,
    pub frr_config: PathBuf,
    pub nft_backend: String,
    /// Seconds between self-heal observations; 0 turns self-healing off (drift then waits
    /// for `vr-agent reconcile`).
    pub observe_interval: u64,
    /// Conntrack sizing and timeouts set by the operator (a push's `kernel` section overrides
    /// them key by key; unset keys take the agent's defaults).
    pub kernel: crate::state::KernelSection,
    pub cloudstack_dir: PathBuf,
    pub cloudstack_version: String,
    pub cmdline_wait: u64,
    pub authorized_keys: PathBuf,
    pub metrics_listen: MetricsListen,
}

/// Where the Prometheus endpoint listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricsListen {
    /// Not served.
    Off,
    /// The control NIC's address of the committed state, at this port.
    Control(u16),
    At(std::net::SocketAddr),
}

impl MetricsListen {
    /// `off` or `ADDR:PORT`.
    pub fn parse(v: &str) -> Result<MetricsListen, String> {
        if v == "off" {
            return Ok(MetricsListen::Off);
        }
        v.parse()
            .map(MetricsListen::At)
            .map_err(|_| format!("metrics-listen {v:?}: expected ADDR:PORT or off"))
    }
}

/// What the command line and environment gave (None = not given).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub config: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
    pub run_dir: Option<PathBuf>,
    pub spool_dir: Option<PathBuf>,
    pub socket: Option<PathBuf>,
    pub vici_socket: Option<PathBuf>,
    pub frr_vty_dir: Option<PathBuf>,
    pub frr_config: Option<PathBuf>,
    pub nft_backend: Option<String>,
    pub observe_interval: Option<u64>,
    pub cloudstack_dir: Option<PathBuf>,
    pub cloudstack_version: Option<String>,
    pub cmdline_wait: Option<u64>,
    pub authorized_keys: Option<PathBuf>,
    pub metrics_listen: Option<String>,
}

/// How often the running agent looks for drift by default: often enough that a restarted
/// charon has its tunnels back within seconds, rarely enough to cost nothing measurable (each
/// look is one netlink request per concern unless something changed).
pub const DEFAULT_OBSERVE_INTERVAL: u64 = 5;

impl Config {
    pub fn resolve(o: Overrides) -> Result<Config, ConfigError> {
        let (path, required) = match &o.config {
            Some(p) => (p.clone(), true),
            None => (PathBuf::from(DEFAULT_CONFIG), false),
        };
        let f = ConfigFile::load(&path, required)?;
        let nft_backend = o
            .nft_backend
            .or(f.nft_backend)
            .unwrap_or_else(|| "netlink".into());
        if !matches!(nft_backend.as_str(), "netlink" | "cli") {
            return Err(ConfigError::Invalid(
                path,
                format!("nft-backend {nft_backend:?}: expected netlink or cli"),
            ));
        }
        if let Some(v) = &f.ospf_dialect {
            return Err(ConfigError::Invalid(
                path,
                format!("ospf-dialect = {v:?} is no longer a setting: the agent always drives FRR; `vr-agent show ospf --dialect quagga` prints Quagga's zebra.conf and ospfd.conf for the current state"),
            ));
        }
        let cloudstack_version = o
            .cloudstack_version
            .or(f.cloudstack_version)
            .unwrap_or_else(|| DEFAULT_CLOUDSTACK_VERSION.into());
        if !vr_cloudstack::scripts::version::is_router_version(&cloudstack_version) {
            return Err(ConfigError::Invalid(
                path,
                format!("cloudstack-version {cloudstack_version:?}: expected a CloudStack version such as 4.22.0"),
            ));
        }
        let metrics_listen = match o.metrics_listen.or(f.metrics_listen) {
            None => MetricsListen::Control(vr_nat::build::METRICS_PORT),
            Some(v) => {
                MetricsListen::parse(&v).map_err(|e| ConfigError::Invalid(path.clone(), e))?
            }
        };
        let kernel = crate::state::KernelSection {
            conntrack_max: f.conntrack_max,
            conntrack_buckets: f.conntrack_buckets,
            tcp_established_timeout: f.tcp_established_timeout,
            udp_timeout: f.udp_timeout,
            udp_stream_timeout: f.udp_stream_timeout,
        };
        let mut bad = Vec::new();
        crate::validate::validate_kernel(&kernel, &mut bad);
        if let Some(e) = bad.first() {
            // The file's keys are the section's keys without the `kernel.` prefix.
            let key = e.path.trim_start_matches("kernel.");
            return Err(ConfigError::Invalid(
                path,
                format!("{key} = {}: {}", e.value, e.reason),
            ));
        }
        Ok(Config {
            state_dir: o
                .state_dir
                .or(f.state_dir)
                .unwrap_or_else(|| DEFAULT_STATE_DIR.into()),
            run_dir: o
                .run_dir
                .or(f.run_dir)
                .unwrap_or_else(|| DEFAULT_RUN_DIR.into()),
            spool_dir: o
                .spool_dir
                .or(f.spool_dir)
                .unwrap_or_else(|| DEFAULT_SPOOL_DIR.into()),
            socket: o
                .socket
                .or(f.socket)
                .unwrap_or_else(|| DEFAULT_SOCKET.into()),
            vici_socket: o
                .vici_socket
                .or(f.vici_socket)
                .unwrap_or_else(|| DEFAULT_VICI_SOCKET.into()),
            frr_vty_dir: o.frr_vty_dir.or(f.frr_vty_dir),
            frr_config: o
                .frr_config
                .or(f.frr_config)
                .unwrap_or_else(|| DEFAULT_FRR_CONFIG.into()),
            nft_backend,
            observe_interval: o
                .observe_interval
                .or(f.observe_interval)
                .unwrap_or(DEFAULT_OBSERVE_INTERVAL),
            kernel,
            cloudstack_dir: o
                .cloudstack_dir
                .or(f.cloudstack_dir)
                .unwrap_or_else(|| DEFAULT_CLOUDSTACK_DIR.into()),
            cloudstack_version,
            cmdline_wait: o
                .cmdline_wait
                .or(f.cmdline_wait)
                .unwrap_or(DEFAULT_CMDLINE_WAIT),
            authorized_keys: o
                .authorized_keys
                .or(f.authorized_keys)
                .unwrap_or_else(|| DEFAULT_AUTHORIZED_KEYS.into()),
            metrics_listen,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_beats_file_beats_default() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("c.toml");
        std::fs::write(
            &file,
            "state-dir = \"/file/state\"\nspool-dir = \"/file/spool\"\n",
        )
        .unwrap();
        let cfg = Config::resolve(Overrides {
            config: Some(file),
            state_dir: Some("/cli/state".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(cfg.state_dir, PathBuf::from("/cli/state"));
        assert_eq!(cfg.spool_dir, PathBuf::from("/file/spool"));
        assert_eq!(cfg.socket, PathBuf::from(DEFAULT_SOCKET));
    }

    #[test]
    fn unknown_key_and_missing_named_file_are_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("c.toml");
        std::fs::write(&file, "stat-dir = \"/x\"\n").unwrap();
        assert!(Config::resolve(Overrides {
            config: Some(file),
            ..Default::default()
        })
        .is_err());
        std::fs::write(tmp.path().join("d.toml"), "ospf-dialect = \"quagga\"\n").unwrap();
        let e = Config::resolve(Overrides {
            config: Some(tmp.path().join("d.toml")),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("show ospf --dialect quagga"), "{e}");
        let missing = tmp.path().join("none.toml");
        assert!(Config::resolve(Overrides {
            config: Some(missing),
            ..Default::default()
        })
        .is_err());
    }
}
