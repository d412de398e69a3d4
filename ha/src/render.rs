//! keepalived.conf and conntrackd.conf, rendered purely from the section (golden-tested).
//!
//! keepalived: every instance starts as BACKUP with `nopreempt` (a router that comes back never
//! takes the gateways from a primary that is up: one move per failure, not two), and its
//! notify hooks call `vr-agent ha primary|backup|fault`, which turns the transition into a
//! plan. The instances of several guest sides form one sync group, so they move together.
//!
//! conntrackd: FTFW (reliable, acknowledged) over the sync link; the flows of loopback, the
//! sync link itself and the `no_sync` networks (the control network) are not synced.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::model::{HaSection, SYNC_GROUP, SYNC_PORT};

/// Where the daemons' files live (under `<run-dir>/ha`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    pub dir: PathBuf,
}

impl Paths {
    pub fn new(run_dir: &Path) -> Paths {
        Paths {
            dir: run_dir.join("ha"),
        }
    }
    pub fn keepalived_conf(&self) -> PathBuf {
        self.dir.join("keepalived.conf")
    }
    pub fn keepalived_pid(&self) -> PathBuf {
        self.dir.join("keepalived.pid")
    }
    pub fn keepalived_vrrp_pid(&self) -> PathBuf {
        self.dir.join("keepalived_vrrp.pid")
    }
    pub fn keepalived_log(&self) -> PathBuf {
        self.dir.join("keepalived.log")
    }
    pub fn conntrackd_conf(&self) -> PathBuf {
        self.dir.join("conntrackd.conf")
    }
    pub fn conntrackd_pid(&self) -> PathBuf {
        self.dir.join("conntrackd.pid")
    }
    pub fn conntrackd_ctl(&self) -> PathBuf {
        self.dir.join("conntrackd.ctl")
    }
    pub fn conntrackd_lock(&self) -> PathBuf {
        self.dir.join("conntrackd.lock")
    }
    pub fn conntrackd_log(&self) -> PathBuf {
        self.dir.join("conntrackd.log")
    }
}

/// The command keepalived's notify hooks run, without the role (`/usr/bin/vr-agent --socket
/// /run/vr-agent.sock ha`): keepalived appends nothing, the role is written after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hooks {
    pub command: String,
}

/// The interval as keepalived reads it: whole seconds, or seconds with decimals (VRRPv3).
fn advert(ms: u32) -> String {
    if ms.is_multiple_of(1000) {
        (ms / 1000).to_string()
    } else {
        let s = format!("{}.{:03}", ms / 1000, ms % 1000);
        s.trim_end_matches('0').to_string()
    }
}

/// keepalived.conf. Holds the VRRP password: written 0600.
pub fn keepalived(ha: &HaSection, hooks: &Hooks, paths: &Paths) -> String {
    let mut s = String::new();
    let v = ha.vrrp_version();
    let _ = writeln!(
        s,
        "# vr-agent: keepalived of the redundant pair (rendered; do not edit)"
    );
    let _ = writeln!(s, "global_defs {{");
    let _ = writeln!(s, "  router_id vr-agent-{}", ha.router_id);
    let _ = writeln!(s, "  script_user root");
    // keepalived refuses to run notify scripts an unprivileged user could replace.
    let _ = writeln!(s, "  enable_script_security");
    let _ = writeln!(s, "  vrrp_version {v}");
    // The primary's gratuitous ARPs: a burst at once, no repeat later (the agent announces the
    // public addresses itself when it brings the public NICs up).
    let _ = writeln!(s, "  vrrp_garp_master_delay 0");
    let _ = writeln!(s, "  vrrp_garp_master_repeat 3");
    let _ = writeln!(s, "  vrrp_garp_master_refresh 0");
    let _ = writeln!(s, "}}");
    if ha.instances.len() > 1 {
        let _ = writeln!(s, "vrrp_sync_group VG_{} {{", ha.router_id);
        let _ = writeln!(s, "  group {{");
        for i in &ha.instances {
            let _ = writeln!(s, "    VI_{}", i.device);
        }
        let _ = writeln!(s, "  }}");
        let _ = writeln!(s, "}}");
    }
    for i in &ha.instances {
        let _ = writeln!(s, "vrrp_instance VI_{} {{", i.device);
        let _ = writeln!(s, "  state BACKUP");
        let _ = writeln!(s, "  nopreempt");
        let _ = writeln!(s, "  interface {}", i.device);
        let _ = writeln!(s, "  virtual_router_id {}", ha.router_id);
        let _ = writeln!(s, "  priority {}", ha.priority);
        let _ = writeln!(s, "  advert_int {}", advert(ha.advert_int_ms));
        if let (Some(p), 2) = (&ha.password, v) {
            // VRRPv2 PASS carries 8 characters; keepalived would cut it there too.
            let pass: String = p.expose().chars().take(8).collect();
            let _ = writeln!(s, "  authentication {{");
            let _ = writeln!(s, "    auth_type PASS");
            let _ = writeln!(s, "    auth_pass {pass}");
            let _ = writeln!(s, "  }}");
        }
        let _ = writeln!(s, "  virtual_ipaddress {{");
        for a in &i.vips {
            let _ = writeln!(s, "    {a} dev {}", i.device);
        }
        let _ = writeln!(s, "  }}");
        for (hook, role) in [
            ("notify_master", "primary"),
            ("notify_backup", "backup"),
            ("notify_fault", "fault"),
        ] {
            let _ = writeln!(s, "  {hook} \"{} {role}\"", hooks.command);
        }
        let _ = writeln!(s, "}}");
    }
    let _ = paths;
    s
}

/// conntrackd.conf, or `None` when the section has no sync link.
pub fn conntrackd(ha: &HaSection, paths: &Paths) -> Option<String> {
    let sync = ha.sync.as_ref()?;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# vr-agent: conntrackd of the redundant pair (rendered; do not edit)"
    );
    let _ = writeln!(s, "Sync {{");
    let _ = writeln!(s, "  Mode FTFW {{");
    // Flows the backup learns stay in its external cache until a promotion commits them.
    let _ = writeln!(s, "    DisableExternalCache off");
    let _ = writeln!(s, "  }}");
    match sync.peer {
        Some(peer) => {
            let _ = writeln!(s, "  UDP {{");
            let _ = writeln!(s, "    IPv4_address {}", sync.local);
            let _ = writeln!(s, "    IPv4_Destination_Address {peer}");
            let _ = writeln!(s, "    Port {SYNC_PORT}");
            let _ = writeln!(s, "    Interface {}", sync.device);
        }
        None => {
            let _ = writeln!(s, "  Multicast {{");
            let _ = writeln!(s, "    IPv4_address {SYNC_GROUP}");
            let _ = writeln!(s, "    Group {SYNC_PORT}");
            let _ = writeln!(s, "    IPv4_interface {}", sync.local);
            let _ = writeln!(s, "    Interface {}", sync.device);
        }
    }
    let _ = writeln!(s, "    SndSocketBuffer 1249280");
    let _ = writeln!(s, "    RcvSocketBuffer 1249280");
    let _ = writeln!(s, "    Checksum on");
    let _ = writeln!(s, "  }}");
    let _ = writeln!(s, "}}");
    let _ = writeln!(s, "General {{");
    let _ = writeln!(s, "  Systemd off");
    let _ = writeln!(s, "  HashSize 32768");
    let _ = writeln!(s, "  HashLimit 131072");
    let _ = writeln!(s, "  LogFile {}", paths.conntrackd_log().display());
    let _ = writeln!(s, "  Syslog off");
    let _ = writeln!(s, "  LockFile {}", paths.conntrackd_lock().display());
    let _ = writeln!(s, "  UNIX {{");
    let _ = writeln!(s, "    Path {}", paths.conntrackd_ctl().display());
    let _ = writeln!(s, "  }}");
    let _ = writeln!(s, "  NetlinkBufferSize 2097152");
    let _ = writeln!(s, "  NetlinkBufferSizeMaxGrowth 8388608");
    let _ = writeln!(s, "  Filter From Userspace {{");
    let _ = writeln!(s, "    Protocol Accept {{");
    let _ = writeln!(s, "      TCP");
    let _ = writeln!(s, "      UDP");
    let _ = writeln!(s, "      ICMP");
    let _ = writeln!(s, "    }}");
    let _ = writeln!(s, "    Address Ignore {{");
    let _ = writeln!(s, "      IPv4_address 127.0.0.1");
    let _ = writeln!(s, "      IPv4_address {}", sync.local);
    if let Some(peer) = sync.peer {
        let _ = writeln!(s, "      IPv4_address {peer}");
    }
    for n in &ha.no_sync {
        let _ = writeln!(s, "      IPv4_address {n}");
    }
    let _ = writeln!(s, "    }}");
    let _ = writeln!(s, "  }}");
    let _ = writeln!(s, "}}");
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::advert;

    #[test]
    fn intervals_as_keepalived_reads_them() {
        assert_eq!(advert(1000), "1");
        assert_eq!(advert(3000), "3");
        assert_eq!(advert(200), "0.2");
        assert_eq!(advert(1250), "1.25");
    }
}
