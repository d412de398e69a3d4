//! How pushes arrive: the spool directory (files dropped by the management server) and the
//! local Unix socket (`vr-agent apply`, diagnostics).

pub mod mapped_push;
pub mod passed_file;
pub mod protocol;
pub mod retention;
pub mod socket;
pub mod spool;
