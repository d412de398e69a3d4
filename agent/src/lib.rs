//! vr-agent: the virtual-router agent library (intake, store, reconciler, diagnostics). The
//! binary is a thin clap front end over it. The state model is `vr-model`; CloudStack pushes
//! go through the `vr-cloudstack` adapter (called from [`push`] and [`intake`] only).

pub mod alerts;
pub mod cli;
pub mod concern;
pub mod config;
pub mod conntrack;
pub mod daemon;
pub mod diag;
pub mod engine;
pub mod heal;
pub mod health;
pub mod intake;
pub mod memory;
pub mod metrics;
pub mod net;
pub mod not_applied;
pub mod process;
pub mod push;
pub mod reconcile;
pub mod redact;
pub mod store;
pub mod testhook;
pub mod timing;
pub mod tunables;
pub mod watchdog;

/// The shared model's modules under their old paths (`crate::state::DesiredState`, ...).
pub use vr_model::{error, excerpt, oversize, parse, state, validate};
