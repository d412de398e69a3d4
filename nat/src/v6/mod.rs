//! The IPv6 filter: table `ip6 vr`, beside the IPv4 table `ip vr`.
//!
//! Why a separate `ip6` table and not one `inet` table: the IPv4 table is edited by several
//! concerns at once (NAT, firewall, ACLs, VPN, LB ports) and its structure fingerprint and
//! element plans must not change because IPv6 arrived; IPv6 needs no NAT, so an `ip6` filter
//! table is small, needs no `meta nfproto` dependency in front of each address match, and is
//! planned, replaced and verified on its own. Both tables hook input and forward with policy
//! drop, so a packet must be accepted by the table of its family.
//!
//! - [`model`]: the `firewall6` section (CloudStack `ipv6firewallrules`: ingress to the
//!   guests' routed prefixes, egress policies per guest prefix).
//! - [`build::build6`]: pure `(Router6Context, firewall6) -> Ruleset` with the same IR,
//!   renderer, planner and netlink executor as the IPv4 table.

pub mod build;
pub mod model;

pub use build::{build6, Guest6, Router6Context, TABLE6};
pub use model::{validate_firewall6, Egress6Policy, Firewall6Rule, Firewall6Section};
