//! Guest services of vr-agent, the pure part: the native model of what the router serves its
//! guest networks, the rendering of the daemons' files and the plans that bring them there.
//! The agent's concerns (`agent/src/concern/dhcp.rs`) run the plans.
//!
//! Today: DHCP and DNS through dnsmasq ([`model`], [`render`], [`plan`]). The metadata/user
//! data service and the password server plug in beside them.

pub mod leases;
pub mod model;
pub mod plan;
pub mod render;

pub use model::{DhcpHost, DhcpNetwork, DhcpSection};
