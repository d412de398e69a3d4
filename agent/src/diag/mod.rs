//! Diagnostics an operator runs after SSHing into the router: health checks, network tools
//! with validated arguments, and the tech-support bundle.

pub mod addressing;
pub mod bgp;
pub mod check;
pub mod guest;
pub mod metadata;
pub mod ospf;
pub mod show;
pub mod support;
pub mod tools;
