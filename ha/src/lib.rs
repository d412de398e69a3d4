//! vr-ha: the redundant router pair (design.md, "redundant pair"). The agent never speaks VRRP
//! or state sync itself: it renders configs for keepalived (VRRP: who holds the guest
//! gateways) and conntrackd (FTFW: the peer's flows, committed into the kernel on promotion),
//! and turns keepalived's notify hooks into role transitions that are ordinary plans.
//!
//! Everything here is pure: the model ([`model`]), the two renderers ([`render`]) and the
//! plan from one applied (section, role) to the next ([`plan`]).

pub mod model;
pub mod plan;
pub mod render;

pub use model::{HaRole, HaSection, SyncLink, VrrpInstance};
