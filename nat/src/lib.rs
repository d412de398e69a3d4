//! vr-nat: the NAT, firewall and VPC ACL concern of vr-agent.
//!
//! model (the `nat`, `firewall` and `acls` sections) -> validation -> ruleset IR ->
//! (a) one nftables netlink batch, (b) `nft -f` text.
//!
//! - [`validate`]: `validate_nat`, `validate_firewall`, `validate_acls` (paths relative to
//!   the section).
//! - [`build::build`]: pure `(RouterContext, nat, firewall, acls) -> Ruleset` (table `ip vr`).
//! - [`render`]: `full` (atomic replace text), `table`, `element`, `rule`.
//! - [`plan::plan`] / [`plan::plan_opt`]: mirror vs desired -> `NftPlan` (empty, element ops,
//!   full replace, removal); `Display` is the `nft -f` text.
//! - [`cli::Nft`]: the `nft -f -` executor and `nft [-j] list table` readback.
//! - [`revoked::revoked`]: mappings a transition takes away (for conntrack deletes).
//! - [`usage`]: the per-public-NIC byte counters (table `inet vr_stats`): spec, plan, read-back.

pub mod build;
pub mod cli;
pub mod ir;
pub mod list_ends;
pub mod model;
pub mod netlink;
pub mod observe;
pub mod plan;
pub mod present;
pub mod render;
pub mod revoked;
pub mod rule_counts;
pub mod rule_stats;
pub mod shared;
pub mod usage;
pub mod v6;
pub mod validate;

pub use build::{build, GuestNetwork, PublicInterface, RemoteAccessVpn, RouterContext, VpnPeer};
pub use ir::Ruleset;
pub use plan::{plan, NftPlan};

pub use model::*;
pub use shared::Shared;
pub use validate::FieldError;
