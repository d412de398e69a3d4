//! systemd's watchdog (`WatchdogSec=` in the unit).
//!
//! The ping means "the agent is making progress", so it is sent only by the task doing the
//! work: the main loop on every tick, and the reconciler after each concern of a long apply.
//! A wedged main loop therefore stops the pings and systemd restarts the agent; a slow but
//! moving apply (many concerns, each bounded by its own deadlines) does not get killed.

/// Tells systemd the agent is alive. A no-op outside systemd (`NOTIFY_SOCKET` unset).
pub fn progress() {
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
}
