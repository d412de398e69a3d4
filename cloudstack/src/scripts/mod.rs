//! The pure halves of the `/opt/cloud/bin` front doors (`vr-agent cloudstack <verb>`): argument
//! parsing and the exact text each script prints, as `cloudstack-contract.md` pins them down.
//! Only std, serde and thiserror: the I/O is in the agent (`agent/src/cli/cloudstack/`).
//!
//! Rules every script keeps (contract §0, §18): the management side merges stderr into the
//! text it parses and trusts only the exit status, so a front door prints only what the Java
//! parses, on stdout, and exits 0 only on success.

pub mod args;
pub mod cmdline;
pub mod role;
pub mod version;
