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

use std::collections::BTreeMap;
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
pub struct Plan(pub WebPlan);

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

    /// Turns serving on (`vr-agent run`): acknowledgements are sent to `acks`.
    pub fn serve(&mut self, acks: mpsc::UnboundedSender<(Ipv4Addr, u64)>) {
        self.serving = true;
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
            listeners: if self.serving {
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
        let guest = if self.serving {
            guest_addresses(desired)
        } else {
            // Nothing listens without a running agent: plan the tables only.
            Vec::new()
        };
        Ok(Plan(plan(
            &guest,
            &desired.metadata,
            &desired.passwords,
            book.acked(),
            &current,
        )))
    }

    async fn execute(&mut self, plan: &Plan, desired: &DesiredState) -> Result<(), ConcernError> {
        let p = &plan.0;
        // Tables first: a listener started below answers from the new data at once.
        if p.tables_change() || self.current.is_none() {
            let table = Arc::new(MetaTable::build(&desired.metadata));
            *self.shared.meta.write().unwrap_or_else(|e| e.into_inner()) = table;
            self.loaded = desired.metadata.clone();
            self.book()
                .set(&desired.passwords)
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
