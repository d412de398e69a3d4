//! The native `passwords` section: the password each VM fetches once from the password
//! server (CloudStack's `vmpassword`, section 16 of the contract).
//!
//! Every password carries a serial, allocated when it is pushed. An acknowledgement from the
//! guest is recorded as "acknowledged up to serial N" for its address (a ledger the agent keeps
//! beside the state), so the acknowledged password is not served again after a restart or a
//! replay of a state that still holds it, while a new password pushed later (a higher serial)
//! is.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use vr_secret::Secret;

/// Passwords waiting to be fetched, by VM address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordSection {
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, PendingPassword>")]
    pub pending: BTreeMap<Ipv4Addr, PendingPassword>,
    /// The last serial allocated (serials are never reused).
    #[serde(default)]
    pub last_serial: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PendingPassword {
    pub password: Secret,
    /// Allocated by the agent; a pushed value is ignored.
    #[serde(default)]
    pub serial: u64,
}

/// Acknowledged serial by address.
pub type Acked = BTreeMap<Ipv4Addr, u64>;

impl PasswordSection {
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty() && self.last_serial == 0
    }

    /// A password pushed for `ip`: it replaces any pending one, under a new serial. The same
    /// password pushed again while pending changes nothing (a replayed push is idempotent).
    pub fn set(&mut self, ip: Ipv4Addr, password: Secret) {
        if self
            .pending
            .get(&ip)
            .is_some_and(|p| p.password == password)
        {
            return;
        }
        self.last_serial += 1;
        self.pending.insert(
            ip,
            PendingPassword {
                password,
                serial: self.last_serial,
            },
        );
    }

    /// A whole section pushed natively on top of `self`: an unchanged password keeps its
    /// serial (re-pushing the same section does not serve an acknowledged password again),
    /// any other gets a new one.
    pub fn replaced_by(&self, pushed: PasswordSection) -> PasswordSection {
        let mut next = PasswordSection {
            pending: BTreeMap::new(),
            last_serial: self.last_serial,
        };
        for (ip, p) in pushed.pending {
            match self.pending.get(&ip) {
                Some(old) if old.password == p.password => {
                    next.pending.insert(ip, old.clone());
                }
                _ => next.set(ip, p.password),
            }
        }
        next
    }

    /// The passwords still to serve: pending and not acknowledged.
    pub fn to_serve<'a>(
        &'a self,
        acked: &'a Acked,
    ) -> impl Iterator<Item = (Ipv4Addr, &'a PendingPassword)> + 'a {
        self.pending
            .iter()
            .filter(move |(ip, p)| acked.get(ip).is_none_or(|a| p.serial > *a))
            .map(|(ip, p)| (*ip, p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn serials_and_acknowledgements() {
        let mut s = PasswordSection::default();
        s.set(ip("10.1.1.2"), Secret::new("a"));
        s.set(ip("10.1.1.3"), Secret::new("b"));
        let mut acked = Acked::new();
        acked.insert(ip("10.1.1.2"), 1);
        let serve: Vec<Ipv4Addr> = s.to_serve(&acked).map(|(i, _)| i).collect();
        assert_eq!(serve, [ip("10.1.1.3")]);
        // A new password for the acknowledged VM is served again.
        s.set(ip("10.1.1.2"), Secret::new("c"));
        assert_eq!(s.to_serve(&acked).count(), 2);
        // A native re-push of the same passwords keeps their serials.
        let again = s.replaced_by(s.clone());
        assert_eq!(again, s);
        let mut other = s.clone();
        other.pending.get_mut(&ip("10.1.1.3")).unwrap().password = Secret::new("d");
        let next = s.replaced_by(other);
        assert_eq!(next.pending[&ip("10.1.1.3")].serial, 4);
        assert_eq!(next.pending[&ip("10.1.1.2")].serial, 3);
    }
}
