//! vr-agent: the virtual-router agent library (intake, state, CloudStack adapter, store,
//! reconciler, diagnostics). The binary is a thin clap front end over it.

pub mod alerts;
pub mod cli;
pub mod cloudstack;
pub mod concern;
pub mod config;
pub mod conntrack;
pub mod diag;
pub mod engine;
pub mod error;
pub mod excerpt;
pub mod heal;
pub mod intake;
pub mod memory;
pub mod net;
pub mod not_applied;
pub mod oversize;
pub mod parse;
pub mod process;
pub mod push;
pub mod reconcile;
pub mod redact;
pub mod state;
pub mod store;
pub mod testhook;
pub mod tunables;
pub mod validate;
pub mod watchdog;
