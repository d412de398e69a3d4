//! systemd's watchdog (`WatchdogSec=` in the unit).
//!
//! The ping means "the agent is making progress", so it is sent only by the task doing the
//! work: the main loop on every tick, and the reconciler after each concern of a long apply.
//! A wedged main loop therefore stops the pings and systemd restarts the agent; a slow but
//! moving apply (many concerns, each bounded by its own deadlines) does not get killed.

//!
//! At most one ping a second: the notify socket is a datagram socket whose queue holds ten
//! messages (`net.unix.max_dgram_qlen`), and a send to a full queue blocks. A replay of ten
//! concerns pinging after each would fill it before `READY=1` and stall the main loop until
//! the reader caught up; `WatchdogSec=` is tens of seconds, so one ping a second loses nothing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the epoch of the last ping sent.
static LAST_PING_MS: AtomicU64 = AtomicU64::new(0);

/// Tells systemd the agent is alive (at most once a second). A no-op outside systemd
/// (`NOTIFY_SOCKET` unset).
pub fn progress() {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let last = LAST_PING_MS.load(Ordering::Relaxed);
    if now.saturating_sub(last) < 1000
        || LAST_PING_MS
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
    {
        return;
    }
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
}
