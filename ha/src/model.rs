//! The native `ha` section: one VRRP instance per guest side, the state-sync link, and the
//! pair's shared settings. The role (primary, backup, fault) is not part of it: it is what
//! keepalived decides, kept beside the section in the agent's state (`ha_role`).

use std::fmt;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use vr_secret::Secret;

/// Advertisement interval when none is given (CloudStack's default: 1 s).
pub const DEFAULT_ADVERT_MS: u32 = 1000;
/// The VRRP priority when none is given.
pub const DEFAULT_PRIORITY: u8 = 100;
/// The UDP port conntrackd syncs on (its default).
pub const SYNC_PORT: u16 = 3780;
/// The multicast group of a sync link without a peer address (CloudStack's).
pub const SYNC_GROUP: Ipv4Addr = Ipv4Addr::new(225, 0, 0, 50);

fn default_advert() -> u32 {
    DEFAULT_ADVERT_MS
}
fn default_priority() -> u8 {
    DEFAULT_PRIORITY
}

/// A redundant router pair's settings (both routers get the same section but `priority`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct HaSection {
    /// VRRP virtual router id (1-255), the same on both routers of the pair.
    pub router_id: u8,
    /// VRRP priority (1-254); the higher one wins an election (keepalived never preempts a
    /// primary that is up: `nopreempt`).
    #[serde(default = "default_priority")]
    pub priority: u8,
    /// Advertisement interval in milliseconds (100-255,000). Whole seconds use VRRPv2 with
    /// authentication; fractions need VRRPv3, which has none.
    #[serde(default = "default_advert")]
    pub advert_int_ms: u32,
    /// VRRP authentication (VRRPv2 `PASS`, its first 8 characters); a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// One VRRP instance per guest side; their gateway addresses move together.
    pub instances: Vec<VrrpInstance>,
    /// Where conntrackd syncs flows with the peer; absent: no state sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync: Option<SyncLink>,
    /// Networks whose flows are not synced (the control network; loopback never is).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<String>")]
    pub no_sync: Vec<Ipv4Net>,
}

/// One VRRP instance: the addresses the primary holds on a guest NIC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct VrrpInstance {
    /// The guest NIC, e.g. `eth0`.
    pub device: String,
    /// The shared gateway addresses with prefix length, e.g. `10.1.1.1/24`.
    #[schemars(with = "Vec<String>")]
    pub vips: Vec<Ipv4Net>,
}

/// conntrackd's FTFW channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SyncLink {
    /// The NIC the sync traffic uses (a guest NIC or a dedicated link).
    pub device: String,
    /// This router's address on it.
    pub local: Ipv4Addr,
    /// The peer's address (UDP unicast); absent: multicast to 225.0.0.50, as CloudStack does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<Ipv4Addr>,
}

/// What keepalived made this router.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum HaRole {
    /// Holds the gateway addresses, public NICs up, runs the guest services and tunnels.
    Primary,
    /// Public NICs down, guest services and tunnel initiation held until promotion.
    Backup,
    /// keepalived sees a fault (a tracked NIC down): behaves as backup.
    Fault,
}

impl HaRole {
    pub fn parse(s: &str) -> Option<HaRole> {
        match s.to_ascii_lowercase().as_str() {
            "primary" | "master" => Some(HaRole::Primary),
            "backup" => Some(HaRole::Backup),
            "fault" => Some(HaRole::Fault),
            _ => None,
        }
    }

    /// `Status: PRIMARY|BACKUP|FAULT` as `checkrouter.sh` answers.
    pub fn upper(self) -> &'static str {
        match self {
            HaRole::Primary => "PRIMARY",
            HaRole::Backup => "BACKUP",
            HaRole::Fault => "FAULT",
        }
    }
}

impl fmt::Display for HaRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HaRole::Primary => "primary",
            HaRole::Backup => "backup",
            HaRole::Fault => "fault",
        })
    }
}

/// Whether the services a backup holds run: not redundant, or redundant and primary. A
/// redundant router whose role is not known yet (keepalived has not spoken) holds them: two
/// routers answering for the same public addresses is worse than a second of waiting.
pub fn active(ha: Option<&HaSection>, role: Option<HaRole>) -> bool {
    ha.is_none() || role == Some(HaRole::Primary)
}

/// Why an `ha` section is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    /// ha.{0}: {1:?} {2}
    #[error("ha.{0}: {1:?} {2}")]
    Field(String, String, &'static str),
}

impl HaSection {
    /// Field checks the types cannot express.
    pub fn validate(&self) -> Result<(), Invalid> {
        let bad = |f: &str, v: String, why| Err(Invalid::Field(f.into(), v, why));
        if self.router_id == 0 {
            return bad("router-id", "0".into(), "must be 1-255");
        }
        if self.priority == 0 || self.priority == 255 {
            return bad("priority", self.priority.to_string(), "must be 1-254");
        }
        if !(100..=255_000).contains(&self.advert_int_ms) || !self.advert_int_ms.is_multiple_of(10)
        {
            return bad(
                "advert-int-ms",
                self.advert_int_ms.to_string(),
                "must be 100-255000 in steps of 10",
            );
        }
        if self.instances.is_empty() {
            return bad("instances", "[]".into(), "needs at least one VRRP instance");
        }
        for (i, inst) in self.instances.iter().enumerate() {
            if !device_ok(&inst.device) {
                return bad(
                    &format!("instances[{i}].device"),
                    inst.device.clone(),
                    "is not a NIC name",
                );
            }
            if inst.vips.is_empty() {
                return bad(
                    &format!("instances[{i}].vips"),
                    "[]".into(),
                    "needs at least one address",
                );
            }
        }
        if let Some(s) = &self.sync {
            if !device_ok(&s.device) {
                return bad("sync.device", s.device.clone(), "is not a NIC name");
            }
        }
        if let Some(p) = &self.password {
            let ok = !p.expose().is_empty()
                && p.expose().chars().all(|c| c.is_ascii_graphic() && c != '"');
            if !ok {
                // The value is a secret: never quoted back.
                return bad(
                    "password",
                    vr_secret::REDACTED.into(),
                    "must be printable ASCII without spaces or quotes",
                );
            }
        }
        Ok(())
    }

    /// VRRPv3 when the interval is not whole seconds (VRRPv2 cannot express it).
    pub fn vrrp_version(&self) -> u8 {
        if self.advert_int_ms.is_multiple_of(1000) {
            2
        } else {
            3
        }
    }
}

fn device_ok(d: &str) -> bool {
    !d.is_empty()
        && d.len() < 16
        && d.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}
