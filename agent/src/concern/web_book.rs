//! The passwords the password server hands out, and the ledger of acknowledgements.
//!
//! A guest's `saved_password` is recorded in `<state-dir>/passwords-acked.json` (address ->
//! acknowledged serial, 0600, written atomically with fsync) before the answer goes out, so an
//! acknowledged password is never served again: not after an agent restart, not after a
//! replay of a `state.json` that still holds it. The run loop then drops it from the state
//! too (`Engine::forget_password`). The ledger holds no secret.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use vr_guest::passwords::{Acked, PasswordSection, PendingPassword};

/// File name of the ledger in the state directory.
pub const LEDGER: &str = "passwords-acked.json";

#[derive(Debug)]
pub struct PasswordBook {
    /// What is served now: pending and not acknowledged.
    serve: BTreeMap<Ipv4Addr, PendingPassword>,
    acked: Acked,
    ledger: PathBuf,
}

/// The ledger at `path` (absent or unreadable: nothing acknowledged, said in the log).
pub fn read_ledger(path: &Path) -> Acked {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).unwrap_or_else(|e| {
            tracing::error!("{}: unreadable ({e}); taken as empty", path.display());
            Acked::new()
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Acked::new(),
        Err(e) => {
            tracing::error!("{}: {e}; taken as empty", path.display());
            Acked::new()
        }
    }
}

impl PasswordBook {
    pub fn new(state_dir: &Path) -> PasswordBook {
        let ledger = state_dir.join(LEDGER);
        PasswordBook {
            serve: BTreeMap::new(),
            acked: read_ledger(&ledger),
            ledger,
        }
    }

    pub fn acked(&self) -> &Acked {
        &self.acked
    }

    /// The password pending for `ip`, if any.
    pub fn pending(&self, ip: Ipv4Addr) -> Option<&PendingPassword> {
        self.serve.get(&ip)
    }

    /// Serial by address of what is served now.
    pub fn serials(&self) -> BTreeMap<Ipv4Addr, u64> {
        self.serve.iter().map(|(ip, p)| (*ip, p.serial)).collect()
    }

    /// Serves the unacknowledged passwords of `section`. Acknowledgements of addresses that
    /// neither the section nor the committed state (`held`: the addresses of its pending
    /// passwords) holds are dropped from the ledger (a later password has a higher serial
    /// anyway), which keeps it as small as the sections. `held` matters: this runs before the
    /// new state is committed, and a crash in between replays the committed `state.json`,
    /// whose acknowledged password must stay forgotten.
    pub fn set(
        &mut self,
        section: &PasswordSection,
        held: &BTreeSet<Ipv4Addr>,
    ) -> Result<(), String> {
        self.serve = section
            .to_serve(&self.acked)
            .map(|(ip, p)| (ip, p.clone()))
            .collect();
        let before = self.acked.len();
        self.acked
            .retain(|ip, _| section.pending.contains_key(ip) || held.contains(ip));
        if self.acked.len() != before {
            self.save()?;
        }
        Ok(())
    }

    /// The guest at `ip` set the password of `serial`: recorded on disk first, then forgotten.
    pub fn acknowledge(&mut self, ip: Ipv4Addr, serial: u64) -> Result<(), String> {
        let old = self.acked.insert(ip, serial);
        if let Err(e) = self.save() {
            match old {
                Some(o) => self.acked.insert(ip, o),
                None => self.acked.remove(&ip),
            };
            return Err(e);
        }
        if self.serve.get(&ip).is_some_and(|p| p.serial <= serial) {
            self.serve.remove(&ip);
        }
        Ok(())
    }

    fn save(&self) -> Result<(), String> {
        let bytes = serde_json::to_vec(&self.acked).unwrap_or_default();
        crate::store::write_atomic(&self.ledger, &bytes)
            .map_err(|e| format!("write {}: {e}", self.ledger.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vr_secret::Secret;

    #[test]
    fn acknowledged_stays_forgotten_across_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let ip: Ipv4Addr = "10.1.1.23".parse().unwrap();
        let mut s = PasswordSection::default();
        s.set(ip, Secret::new("pw-1"));
        s.set("10.1.1.24".parse().unwrap(), Secret::new("pw-2"));
        let mut book = PasswordBook::new(dir.path());
        book.set(&s, &BTreeSet::new()).unwrap();
        assert_eq!(book.pending(ip).unwrap().password.expose(), "pw-1");
        book.acknowledge(ip, 1).unwrap();
        assert!(book.pending(ip).is_none());
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(dir.path().join(LEDGER))
                .unwrap()
                .permissions(),
        );
        assert_eq!(mode & 0o077, 0);
        // A restart: a new book from the same state and ledger.
        let mut again = PasswordBook::new(dir.path());
        again.set(&s, &BTreeSet::new()).unwrap();
        assert!(again.pending(ip).is_none());
        assert!(again.pending("10.1.1.24".parse().unwrap()).is_some());
        // A new password for the VM is served.
        s.set(ip, Secret::new("pw-3"));
        again.set(&s, &BTreeSet::new()).unwrap();
        assert_eq!(again.pending(ip).unwrap().password.expose(), "pw-3");
    }
}
