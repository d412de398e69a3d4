//! vr-ospf: the OSPF concern of vr-agent.
//!
//! model (the `ospf` section) -> validation -> FRR `frr.conf` or Quagga `zebra.conf` +
//! `ospfd.conf` text -> incremental apply to a running FRR through `vtysh` (only the lines that
//! differ, in an order FRR accepts, so unrelated changes never reset an adjacency). The Quagga
//! dialect is an export for operators ([`export`]); the agent drives FRR only.

pub mod apply;
pub mod bgp;
pub mod blocks;
pub mod export;
pub mod model;
pub mod render;
pub mod status;
pub mod validate;

pub use model::*;
pub use validate::{validate_ospf, FieldError};
/// The PSK/password type, shared with the other crates that carry secrets.
pub use vr_secret::Secret;
