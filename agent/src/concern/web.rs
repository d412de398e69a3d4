//! Concern `metadata`: user data, metadata and the password server on every guest gateway
//! address (ports 80 and 8080), served by the agent itself on its tokio runtime
//! (design.md: "the agent's own HTTP service"). `vr_guest::web_plan` plans which listeners
//! run and which VMs' data the tables hold; this executor binds and aborts the listeners and
//! swaps the tables the listeners read (`web_http`).
//!
//! Only `vr-agent run` serves ([`WebConcern::serve`]): an in-process `vr-agent apply` (no
//! agent running) updates nothing that outlives it, and the agent's boot replay starts the
//! listeners from the committed state.
//!
//! Self-heal: a listener task that ended is drift; `observe` sees it and the plan starts it
//! again.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use vr_guest::web::MetaTable;
use vr_guest::web_plan::{plan, Current, Listener, WebPlan};
use vr_guest::MetadataSection;

use super::web_book::PasswordBook;
use super::web_http::{self, Shared};
use super::{Concern, ConcernError, PlanSummary};
use crate::state::{DesiredState, InterfaceRole};

#[derive(Debug)]
pub struct WebConcern {
    shared: Arc<Shared>,
    /// Listeners are started (by `vr-agent run` only).
    serving: bool,
    tasks: BTreeMap<Listener, JoinHandle<()>>,
    /// The metadata the table was last built from.
    loaded: MetadataSection,
    /// What the system held at the last observe or execute (`None`: not looked yet).
    current: Option<Current>,
}

#[derive(Debug)]
pub struct Plan(pub WebPlan, Held);

/// The addresses whose password the committed (applied) state holds: their
/// acknowledgements stay in the ledger until a state without them is committed.
#[derive(Debug, Default)]
pub struct Held(BTreeSet<Ipv4Addr>);

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl PlanSummary for Plan {
    fn changes(&self) -> usize {
        self.0.changes()
    }
}

/// The guest gateway addresses: every IPv4 address of a guest NIC.
pub fn guest_addresses(s: &DesiredState) -> Vec<(String, Ipv4Addr)> {
    s.interfaces
        .iter()
        .filter(|i| i.role == InterfaceRole::Guest)
        .flat_map(|i| i.addresses.iter().map(|a| (i.device.clone(), a.addr())))
        .collect()
}

impl WebConcern {
    pub fn new(state_dir: &Path) -> WebConcern {
        WebConcern {
            shared: Arc::new(Shared::new(PasswordBook::new(state_dir))),
            serving: false,
            tasks: BTreeMap::new(),
            loaded: MetadataSection::default(),
            current: None,
        }
    }

    /// Turns serving on (`vr-agent run`): acknowledgements are sent to `acks`. Those the
    /// ledger already holds are sent first: an agent stopped between recording an
    /// acknowledgement and committing the state without the password would otherwise keep
    /// the password in `state.json` for good (no guest acknowledges it again, since it is
    /// not served). `Engine::forget_password` ignores those the state no longer holds.
    pub fn serve(&mut self, acks: mpsc::UnboundedSender<(Ipv4Addr, u64)>) {
        self.serving = true;
        for (ip, serial) in self.book().acked() {
            let _ = acks.send((*ip, *serial));
        }
        *self.shared.acks.lock().unwrap_or_else(|p| p.into_inner()) = Some(acks);
    }

    fn book(&self) -> std::sync::MutexGuard<'_, PasswordBook> {
        self.shared.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn now(&self) -> Current {
        Current {
            listeners: self
                .tasks
                .iter()
                .filter(|(_, t)| !t.is_finished())
                .map(|(l, _)| l.clone())
                .collect(),
            metadata: self.loaded.clone(),
            passwords: self.book().serials(),
        }
    }
}

impl Concern for WebConcern {
    const NAME: &'static str = "metadata";
    type Plan = Plan;

    fn plan(&self, applied: &DesiredState, desired: &DesiredState) -> Result<Plan, ConcernError> {
        let book = self.book();
        // Not observed yet: the system is taken to hold what was applied.
        let current = self.current.clone().unwrap_or_else(|| Current {
            listeners: if self.serving && applied.ha_active() {
                vr_guest::web_plan::listeners(&guest_addresses(applied))
            } else {
                Default::default()
            },
            metadata: applied.metadata.clone(),
            passwords: applied
                .passwords
                .to_serve(book.acked())
                .map(|(ip, p)| (ip, p.serial))
                .collect(),
        });
        let guest = if self.serving && desired.ha_active() {
            guest_addresses(desired)
        } else {
            // Nothing listens without a running agent, nor on a redundant pair's backup (the
            // data is kept and served from promotion on): plan the tables only.
            Vec::new()
        };
        Ok(Plan(
            plan(
                &guest,
                &desired.metadata,
                &desired.passwords,
                book.acked(),
                &current,
            ),
            Held(applied.passwords.pending.keys().copied().collect()),
        ))
    }

    async fn execute(&mut self, plan: &Plan, desired: &DesiredState) -> Result<(), ConcernError> {
        let p = &plan.0;
        // Tables first: a listener started below answers from the new data at once.
        if p.tables_change() || self.current.is_none() {
            let table = Arc::new(MetaTable::build(&desired.metadata));
            *self.shared.meta.write().unwrap_or_else(|e| e.into_inner()) = table;
            self.loaded = desired.metadata.clone();
            self.book()
                .set(&desired.passwords, &plan.1 .0)
                .map_err(ConcernError::Failed)?;
        }
        for l in &p.stop {
            if let Some(t) = self.tasks.remove(l) {
                t.abort();
                tracing::info!("stopped listening on {l}");
            }
        }
        let mut failed = Vec::new();
        for l in &p.start {
            if let Some(t) = self.tasks.remove(l) {
                t.abort();
            }
            match web_http::bind(l).await {
                Ok(sock) => {
                    let task = web_http::spawn(sock, l.service, self.shared.clone());
                    self.tasks.insert(l.clone(), task);
                    tracing::info!("listening on {l}");
                }
                Err(e) => failed.push(format!("cannot listen on {l}: {e}")),
            }
        }
        self.current = Some(self.now());
        if failed.is_empty() {
            Ok(())
        } else {
            // Kept and retried (an address not yet there, a port held by someone else).
            Err(ConcernError::Unavailable(failed.join("; ")))
        }
    }

    async fn observe(&mut self) -> Result<(), ConcernError> {
        self.current = Some(self.now());
        Ok(())
    }

    async fn may_have_drifted(&mut self) -> bool {
        self.tasks.values().any(|t| t.is_finished())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vr_secret::Secret;

    /// The state without an acknowledged password is executed before it is committed: a
    /// crash in between replays the committed state, which still holds the password, and
    /// the guest must not be served it again.
    #[tokio::test]
    async fn an_acknowledgement_outlives_a_crash_before_the_commit() {
        let dir = tempfile::tempdir().unwrap();
        let ip: Ipv4Addr = "10.1.1.23".parse().unwrap();
        let mut committed = DesiredState::default();
        committed.passwords.set(ip, Secret::new("pw-1"));
        let mut web = WebConcern::new(dir.path());
        let p = web.plan(&DesiredState::default(), &committed).unwrap();
        web.execute(&p, &committed).await.unwrap();
        web.book().acknowledge(ip, 1).unwrap();
        // The next state forgets the password and changes the tables (a VM's metadata).
        let mut next = committed.clone();
        next.passwords.pending.remove(&ip);
        next.metadata
            .vms
            .entry("10.1.1.24".parse().unwrap())
            .or_default()
            .set_key("instance-id", Some("i-2"));
        let p = web.plan(&committed, &next).unwrap();
        assert!(p.0.tables_change());
        web.execute(&p, &next).await.unwrap();
        // Crash before the commit: a new agent replays the committed state.
        let mut again = WebConcern::new(dir.path());
        let p = again.plan(&committed, &committed).unwrap();
        again.execute(&p, &committed).await.unwrap();
        assert!(
            again.book().pending(ip).is_none(),
            "acknowledged password served again"
        );
        // Once a state without it is committed, the next change drops it from the ledger.
        let p = again.plan(&next, &next).unwrap();
        assert!(p.0.tables_change());
        again.execute(&p, &next).await.unwrap();
        let mut later = next.clone();
        later.metadata.vms.clear();
        let p = again.plan(&next, &later).unwrap();
        assert!(p.0.tables_change());
        again.execute(&p, &later).await.unwrap();
        assert!(again.book().acked().is_empty());
    }

    #[test]
    fn serving_hands_the_recorded_acknowledgements_to_the_run_loop() {
        let dir = tempfile::tempdir().unwrap();
        let ip: Ipv4Addr = "10.1.1.23".parse().unwrap();
        WebConcern::new(dir.path())
            .book()
            .acknowledge(ip, 7)
            .unwrap();
        // A restart: the run loop learns of it and drops the password from the state.
        let mut web = WebConcern::new(dir.path());
        let (tx, mut rx) = mpsc::unbounded_channel();
        web.serve(tx);
        assert_eq!(rx.try_recv().ok(), Some((ip, 7)));
        assert!(rx.try_recv().is_err());
    }
}
