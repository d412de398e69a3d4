//! The interface between the engine and a push-format adapter, as data: the adapter gets the
//! router's NICs and hands back, besides the next desired state, what it stored but this agent
//! version does not apply. The engine reports those by the names given here and never needs to
//! know a CloudStack type name.

use std::collections::BTreeMap;

use crate::state::MacAddr;

/// The router's NICs by MAC address (CloudStack finds a NIC by `vif_mac_address` first).
pub type LocalNics = BTreeMap<MacAddr, String>;

/// A kind of data a push stored that this agent version does not apply yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotApplied {
    /// The kind as the sender named it (a CloudStack type, e.g. `vmdata`): the outcome's name.
    pub kind: &'static str,
    /// The feature it belongs to, for people (e.g. `metadata and user data`).
    pub concern: &'static str,
}
