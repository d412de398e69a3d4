//! Guest services of vr-agent, the pure part: the native model of what the router serves its
//! guest networks, the rendering of the daemons' files and the plans that bring them there.
//! The agent's concerns (`agent/src/concern/dhcp.rs`) run the plans.
//!
//! DHCP and DNS through dnsmasq ([`model`], [`render`], [`plan`]); user data, metadata and
//! the password server ([`metadata`], [`passwords`], answered by [`web`], planned by
//! [`web_plan`]) on the agent's own HTTP listeners.

pub mod leases;
pub mod metadata;
pub mod model;
pub mod passwords;
pub mod plan;
pub mod radvd;
pub mod render;
pub mod web;
pub mod web_plan;

pub use metadata::MetadataSection;
pub use model::{DhcpHost, DhcpNetwork, DhcpSection};
pub use passwords::PasswordSection;
