//! vr-ospf: the OSPF concern of vr-agent.
//!
//! model (the `ospf` section) -> validation -> FRR `frr.conf` or Quagga `zebra.conf` +
//! `ospfd.conf` text -> incremental apply to a running FRR through `vtysh` (only the lines that
//! differ, so unrelated changes never reset an adjacency).

pub mod apply;
pub mod cloudstack;
pub mod model;
pub mod render;
pub mod secret;
pub mod status;
pub mod validate;

pub use model::*;
pub use secret::Secret;
pub use validate::{validate_ospf, FieldError};
