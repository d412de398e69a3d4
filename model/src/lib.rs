//! vr-model: what the vr-agent engine and its CloudStack adapter (`vr-cloudstack`) both need,
//! so neither depends on the other: the desired-state types, field errors, strict/lenient JSON
//! parsing with path-naming errors, state validation, the typed secret handling of the stored
//! CloudStack context, and the adapter interface (local NICs in, stored-but-not-applied types
//! out).

pub mod adapter;
pub mod error;
pub mod excerpt;
pub mod later_types;
pub mod monitor;
pub mod oversize;
pub mod parse;
pub mod secrets;
pub mod state;
pub mod stored_types;
pub mod validate;

pub use adapter::{LocalNics, NotApplied};
