//! vr-vpn: the site-to-site IPsec concern of vr-agent.
//!
//! model (the `vpn` section) -> validation (CloudStack policy strings included) -> strongSwan
//! VICI messages (`load-shared`, `load-conn`, ...) -> a per-connection plan (unchanged
//! connections are never touched) -> a thin `rsvici` client; SA status from `list-sas`.

pub mod client;
pub mod l2tp;
pub mod model;
pub mod plan;
pub mod policy;
pub mod remote;
pub mod remote_plan;
mod remote_validate;
pub mod remote_vici;
pub mod validate;
pub mod vici;

pub use model::*;
pub use remote::{RemoteAccess, RemoteUser, ServerCertificate};
pub use validate::{validate_vpn, FieldError};
/// The PSK/password type, shared with the other crates that carry secrets.
pub use vr_secret::Secret;
