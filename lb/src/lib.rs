//! Load balancing of vr-agent, the pure part: the native `lb` section ([`model`]), the haproxy
//! configuration rendered from it or taken from CloudStack's pre-rendered lines
//! ([`render`], [`provided`]), the plan that brings a running haproxy there ([`plan`]) and the
//! reading of its stats socket ([`stats`]). The agent's concern (`agent/src/concern/lb.rs`)
//! runs the plans against a haproxy it owns in master-worker mode.

pub mod model;
pub mod plan;
pub mod provided;
pub mod render;
pub mod stats;

pub use model::LbSection;
