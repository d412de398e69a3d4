//! A password the guest acknowledged leaves the committed state too: the password server
//! has already recorded the acknowledgement in its ledger (so it is never served again, even
//! before this runs), and this commit makes the state directory forget the secret itself. It
//! goes through the ordinary pipeline (journaled intent, execute, commit) and is recorded in
//! the push history like a push; the commit compacts, so the password leaves the snapshot, its
//! copy and the journal's older records at once instead of at the next compaction.

use std::net::Ipv4Addr;
use std::time::Instant;

use super::Engine;
use crate::push::PushResult;

impl Engine {
    /// Drops the password of `ip` from the committed state if it is still the one of
    /// `serial` (a newer push may have replaced it meanwhile).
    pub async fn forget_password(&mut self, ip: Ipv4Addr, serial: u64) {
        let current = self.stored.state.passwords.pending.get(&ip);
        if current.is_none_or(|p| p.serial != serial) {
            return;
        }
        let start = Instant::now();
        let mut next = self.stored.state.clone();
        next.passwords.pending.remove(&ip);
        let mut result = PushResult::pending(
            format!("password of {ip} acknowledged"),
            self.stored.generation,
        );
        self.store.compact_at_next_commit();
        self.commit_push(&mut result, next).await;
        result.millis = start.elapsed().as_millis() as u64;
        self.remember(&result);
    }
}
