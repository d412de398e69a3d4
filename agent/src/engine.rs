//! The agent engine: the committed state, the reconciler and the push pipeline
//! validate -> merge -> journal the intent -> execute -> journal the commit.
//!
//! One `Engine` exists per process and is driven by one task at a time (the main loop of
//! `vr-agent run`, or an in-process `vr-agent apply`), so pushes are strictly sequential.

mod forget;

use std::collections::VecDeque;
use std::time::Instant;

use serde::Serialize;

use crate::concern::{Outcome, Status};
use crate::config::Config;
use crate::push::{self, LocalNics, PushResult};
use crate::reconcile::Reconciler;
use crate::state::DesiredState;
use crate::store::{Store, StoreError, StoreLock, Stored};

/// How many push results `show pushes` keeps.
const HISTORY: usize = 100;

/// What the boot replay did.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayReport {
    pub generation: u64,
    pub at: u64,
    pub millis: u64,
    pub ok: bool,
    /// An interrupted push (an intent without its commit) was found and rolled back.
    pub interrupted_push_rolled_back: bool,
    pub outcomes: Vec<Outcome>,
}

#[derive(Debug)]
pub struct Engine {
    pub cfg: Config,
    store: Store,
    _lock: StoreLock,
    pub reconciler: Reconciler,
    pub stored: Stored,
    pub history: VecDeque<PushResult>,
    pub replay: Option<ReplayReport>,
    pub started_at: u64,
    /// Concerns whose backend was unavailable at the last apply: retried by `retry`.
    pub pending_retry: Vec<&'static str>,
    /// Why the agent is not running from `state.json` (see `Store::load_recovering`); cleared
    /// by the next commit, which rewrites it.
    pub state_problem: Option<String>,
    /// No readable state at all: the boot replay must not tear down what the kernel has.
    skip_replay: bool,
    /// Self-heal bookkeeping (backoffs, recent repairs).
    pub heal: crate::heal::HealState,
    /// `retry` waits until then, doubling the wait after each retry that found the daemon
    /// still away: a hung daemon costs one deadline per minute, not one per tick.
    retry_after: Option<(std::time::Instant, std::time::Duration)>,
    /// A push left work for after its answer (see `after_answer`).
    after_answer_due: bool,
    /// The last `forwardrules` push's memo while it holds for the committed state: the next
    /// one is merged from what changed (issue 15; `vr_cloudstack::forward_memo`).
    forward_memo: Option<push::ForwardMemo>,
    /// The port-forward list the last valid push (not a dry run) validated (the checks of a
    /// forward read the list alone): a push that leaves it shared is not checked against
    /// 10,000 forwards again.
    valid_forwards: Option<vr_nat::shared::ListId<vr_nat::model::PortForward>>,
}

/// First wait between retries of an unavailable concern, and the longest.
const RETRY_FIRST: std::time::Duration = std::time::Duration::from_secs(2);
const RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(60);

impl Engine {
    /// Opens the state directory and takes its lock (`wait`: block until free).
    pub fn open(cfg: Config, wait: bool) -> Result<Engine, StoreError> {
        let mut store = Store::open(&cfg.state_dir)?;
        let lock = store.lock(wait)?;
        let loaded = store.load_recovering()?;
        if let Some(p) = &loaded.problem {
            tracing::error!("{p}");
        }
        let mut stored = loaded.stored;
        // Data an older agent kept as "not yet applied" and this one applies (user data,
        // passwords) is served from the first replay. The journal's deltas are taken from the
        // state the engine holds: if the upgrade changed it, the next record says everything.
        let read = stored.state.clone();
        push::upgrade_stored(&mut stored.state);
        if stored.state != read {
            store.rebase();
        }
        drop(read);
        let reconciler = Reconciler::new(&cfg);
        Ok(Engine {
            cfg,
            store,
            _lock: lock,
            reconciler,
            stored,
            history: VecDeque::new(),
            replay: None,
            started_at: push::now_secs(),
            pending_retry: Vec::new(),
            skip_replay: loaded.problem.is_some() && !loaded.from_good,
            state_problem: loaded.problem,
            heal: Default::default(),
            retry_after: None,
            after_answer_due: false,
            forward_memo: None,
            valid_forwards: None,
        })
    }

    /// Brings the system to the committed state. If a push was interrupted (the journal ends
    /// with its intent), its changes are driven back first, so the result is the old state,
    /// whole.
    pub async fn replay(&mut self) -> ReplayReport {
        let start = Instant::now();
        let mut outcomes = Vec::new();
        let mut ok = true;
        let interrupted = self.store.has_next();
        if interrupted {
            match self.store.load_next() {
                Some(next) => {
                    tracing::warn!(
                        generation = next.generation,
                        "rolling back an interrupted push"
                    );
                    let report = self
                        .reconciler
                        .converge_from(&next.state, &self.stored.state)
                        .await;
                    ok &= !report.failed;
                    outcomes.extend(report.outcomes);
                }
                None => tracing::warn!("discarding an interrupted push that cannot be read"),
            }
            if let Err(e) = self.store.discard_next() {
                tracing::error!("{e}");
                ok = false;
            }
        }
        // A redundant router's role is keepalived's word: stored from before keepalived went
        // away (a reboot, the node lost), it is stale, and replaying "primary" would bring up
        // public addresses the peer holds now. Until keepalived elects again, hold as a backup.
        if self.stored.state.ha.is_some()
            && !self.reconciler.ha.keepalived_running()
            && self.stored.state.ha_role.take().is_some()
        {
            tracing::warn!("ha: keepalived is not running; the stored role waits for its election");
            self.store.rebase();
        }
        if self.skip_replay {
            tracing::error!("no readable state: replay skipped, the kernel is left as it is");
            ok = false;
        } else {
            let report = self.reconciler.converge(&self.stored.state).await;
            ok &= !report.failed;
            self.pending_retry = report.unavailable();
            outcomes.extend(report.outcomes);
        }
        let r = ReplayReport {
            generation: self.stored.generation,
            at: push::now_secs(),
            millis: start.elapsed().as_millis() as u64,
            ok,
            interrupted_push_rolled_back: interrupted,
            outcomes,
        };
        tracing::info!(
            generation = r.generation,
            ok = r.ok,
            millis = r.millis,
            "replay done"
        );
        crate::metrics::record_replay(r.millis);
        crate::health::configure(&self.stored.state);
        crate::metrics::http::follow(&self.cfg, &self.stored.state);
        crate::metrics::configure(&self.stored.state);
        self.replay = Some(r.clone());
        // What reading the snapshot and journal and planning the whole state freed goes back
        // to the kernel, as after a push: the idle agent should not keep the boot's peak.
        crate::memory::release_free();
        r
    }

    /// Applies one push. Never panics on input; the result says what happened.
    pub async fn apply(
        &mut self,
        name: &str,
        text: &str,
        dry_run: bool,
        nics: &LocalNics,
    ) -> PushResult {
        self.apply_onto(None, name, text, dry_run, nics).await
    }

    /// Applies one push onto an empty desired state instead of the committed one: what was
    /// applied before goes (CloudStack's start of a router: a new boot cmdline, after which
    /// the management server sends everything again). Two things stay: the policy-routing
    /// indexes, so marks keep their meaning, and the passwords guests have not fetched yet,
    /// which the management server sent once and never again (upstream keeps its password
    /// file across a start too).
    pub async fn apply_fresh(&mut self, name: &str, text: &str, nics: &LocalNics) -> PushResult {
        let base = DesiredState {
            policy_index: self.stored.state.policy_index.clone(),
            passwords: self.stored.state.passwords.clone(),
            ..DesiredState::default()
        };
        self.apply_onto(Some(base), name, text, false, nics).await
    }

    async fn apply_onto(
        &mut self,
        base: Option<DesiredState>,
        name: &str,
        text: &str,
        dry_run: bool,
        nics: &LocalNics,
    ) -> PushResult {
        let start = Instant::now();
        let mut result = PushResult::pending(name.to_string(), self.stored.generation);
        // What the adapter stored but this version does not apply, named by the adapter.
        let mut not_applied = Vec::new();
        // What the last pushes left holds for the committed state only.
        let earlier = if base.is_none() {
            push::Earlier {
                memo: self.forward_memo.as_ref(),
                valid_forwards: self.valid_forwards.as_ref(),
            }
        } else {
            push::Earlier::default()
        };
        match push::prepare_with(
            base.as_ref().unwrap_or(&self.stored.state),
            text,
            nics,
            earlier,
        ) {
            Err(invalid) => {
                result.message = match invalid.total() {
                    1 => format!("rejected: {invalid}"),
                    n => format!("rejected: {n} invalid values"),
                };
                result.errors = invalid.0;
                tracing::warn!(push = name, "{}", result.message);
                crate::alerts::push_rejected(self.store.dir(), name, result.errors.len());
            }
            Ok(prepared) => {
                // Not a dry run's: the next push starts from the committed list, not from it.
                if !dry_run {
                    self.valid_forwards = Some(prepared.state.nat.port_forwards.id());
                }
                result.format = Some(prepared.format);
                result.not_yet_applied = prepared
                    .not_yet_applied
                    .iter()
                    .map(|n| n.kind.to_string())
                    .collect();
                not_applied.clone_from(&prepared.not_yet_applied);
                if dry_run {
                    self.reconciler
                        .refresh(&self.stored.state, &prepared.state)
                        .await;
                    let plan = self.reconciler.plan(&self.stored.state, &prepared.state);
                    result.ok = true;
                    result.message =
                        format!("dry run: {} change(s), nothing applied", plan.changes());
                    result.plan = Some(plan.to_string());
                } else {
                    self.commit_push(&mut result, prepared.state).await;
                    // A memo holds only for the state it was made on: the new one once this
                    // push committed; the old one is kept while the committed state is its.
                    let committed = &self.stored.state;
                    self.forward_memo = prepared
                        .memo
                        .filter(|m| m.holds_for(committed))
                        .or_else(|| self.forward_memo.take().filter(|m| m.holds_for(committed)));
                }
            }
        }
        // Stored but not applied: said in the answer, yet `ok` stays true. CloudStack starts a
        // router with one aggregate holding every payload of the network (vmdata, vmpassword,
        // dhcpentry, ...); failing it because one concern has not landed would fail the router
        // start although everything this agent applies was applied and committed. The data is
        // kept in the state and applied from it when its concern lands; the message, the
        // `not_yet_applied` list and one outcome per type tell the management server and the
        // operator exactly what is not applied.
        if result.ok && !not_applied.is_empty() {
            let said = crate::not_applied::sentence(&not_applied, dry_run);
            result.message.push_str(&said);
            tracing::warn!(push = name, "{}", said.trim_start_matches("; "));
        }
        for n in &not_applied {
            result.outcomes.push(Outcome {
                concern: n.kind,
                status: Status::NotYetApplied,
                changes: 0,
                millis: 0.0,
            });
        }
        result.millis = start.elapsed().as_millis() as u64;
        if !dry_run {
            self.remember(&result);
            crate::metrics::record_push(&result);
            crate::health::configure(&self.stored.state);
            crate::metrics::http::follow(&self.cfg, &self.stored.state);
            crate::metrics::configure(&self.stored.state);
        }
        // Two things wait until the answer is out (`after_answer`): the journal's compaction
        // (a 10,000-forward snapshot rewritten twice, 7 ms) and giving what parsing and
        // planning freed back to the kernel (malloc_trim walks the whole heap, its cost
        // grows with the state). The push text itself is mapped on its own and goes when the
        // caller drops it.
        self.after_answer_due = true;
        result
    }

    /// What the last pushes left for after their answers, if a push came since the last
    /// call: the journal's compaction if due, then the release of freed memory. Called by
    /// the main loop off the answer's path.
    pub fn after_answer(&mut self) {
        if std::mem::take(&mut self.after_answer_due) {
            self.store.compact_if_due(&self.stored);
            let _releasing = crate::timing::phase("release");
            crate::memory::release_free();
        }
    }

    /// Keeps a summary of `result` (never the push itself) in the bounded history.
    fn remember(&mut self, result: &PushResult) {
        self.history.push_back(result.summary());
        while self.history.len() > HISTORY {
            self.history.pop_front();
        }
    }

    async fn commit_push(&mut self, result: &mut PushResult, next_state: DesiredState) {
        let next = Stored {
            generation: self.stored.generation + 1,
            committed_at: push::now_secs(),
            state: next_state,
        };
        let persisting = crate::timing::phase("persist-next");
        let written = self.store.write_next(&self.stored, &next);
        drop(persisting);
        let changed = match written {
            Ok(changed) => changed,
            Err(e) => {
                result.message = format!("not applied: {e}");
                return;
            }
        };
        let report = self
            .reconciler
            .execute(&self.stored.state, &next.state, &changed)
            .await;
        result.outcomes = report.outcomes.clone();
        if report.failed {
            let _ = self.store.discard_next();
            let failed: Vec<String> = report
                .outcomes
                .iter()
                .filter_map(|o| match &o.status {
                    Status::Failed(e) => Some(format!("{}: {e}", o.concern)),
                    _ => None,
                })
                .collect();
            if report.rollback_incomplete.is_empty() {
                result.message = format!("not applied, rolled back: {}", failed.join("; "));
            } else {
                // Never claim a rollback that did not happen: name what may still hold part of
                // this push, and retry those concerns (with backoff) towards the committed
                // state.
                let undone: Vec<String> = report
                    .rollback_incomplete
                    .iter()
                    .map(|(c, why)| format!("{c}: {why}"))
                    .collect();
                result.message = format!(
                    "not applied: {}; rollback INCOMPLETE, retrying towards generation {}: {}",
                    failed.join("; "),
                    self.stored.generation,
                    undone.join("; ")
                );
                for (c, _) in &report.rollback_incomplete {
                    if !self.pending_retry.contains(c) {
                        self.pending_retry.push(c);
                    }
                }
            }
            tracing::error!(push = result.name, "{}", result.message);
            crate::alerts::push_failed(
                self.store.dir(),
                &result.name,
                &report.outcomes,
                report.rollback_incomplete.is_empty(),
            );
            return;
        }
        let committing = crate::timing::phase("persist-commit");
        let committed = self.store.commit_next(&next);
        drop(committing);
        if let Err(e) = committed {
            result.message = format!("applied but not committed: {e}");
            tracing::error!(push = result.name, "{}", result.message);
            return;
        }
        self.stored = next;
        if let Some(p) = self.state_problem.take() {
            tracing::warn!("state.json rewritten by this push; it was unreadable: {p}");
            self.skip_replay = false;
        }
        self.pending_retry = report.unavailable();
        result.ok = true;
        result.generation = self.stored.generation;
        let changed: usize = report.outcomes.iter().map(|o| o.changes).sum();
        result.message = if self.pending_retry.is_empty() {
            format!(
                "applied generation {} ({changed} change(s))",
                self.stored.generation
            )
        } else {
            format!(
                "applied generation {} ({changed} change(s)); retrying when available: {}",
                self.stored.generation,
                self.pending_retry.join(", ")
            )
        };
        tracing::info!(push = result.name, "{}", result.message);
    }

    /// A push that could not even be read (oversized, not UTF-8): recorded like any other.
    pub fn reject(&mut self, name: &str, why: &str) -> PushResult {
        let r = PushResult {
            message: format!("rejected: {why}"),
            ..PushResult::pending(name.to_string(), self.stored.generation)
        };
        tracing::warn!(push = name, "{}", r.message);
        self.remember(&r);
        r
    }

    /// `vr-agent status` body.
    pub fn status(&self) -> serde_json::Value {
        let last = self.history.back().map(crate::redact::redacted);
        serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "pid": std::process::id(),
            "state_dir": self.store.dir(),
            "uptime_secs": push::now_secs().saturating_sub(self.started_at),
            "generation": self.stored.generation,
            "committed_at": self.stored.committed_at,
            "state_file": match &self.state_problem {
                None => serde_json::json!({"ok": true}),
                Some(p) => serde_json::json!({"ok": false, "problem": p}),
            },
            "replay": self.replay,
            "last_push": last,
            "pending_retry": self.pending_retry,
            "self_heal": {
                "interval_secs": self.cfg.observe_interval,
                "repairs": self.heal.repairs,
                "recent": self.heal.recent,
            },
            "daemon_starts": crate::metrics::daemon_starts(),
            "services": crate::health::supervise::status(),
            "monitor": crate::health::status(),
            "concerns": self.last_outcomes(),
        })
    }

    /// The latest outcome per concern (last push, or the replay if no push came since).
    fn last_outcomes(&self) -> Vec<Outcome> {
        let mut out: Vec<Outcome> = Vec::new();
        let sources = self
            .replay
            .iter()
            .map(|r| &r.outcomes)
            .chain(self.history.iter().filter(|p| p.ok).map(|p| &p.outcomes));
        for list in sources {
            for o in list {
                match out.iter_mut().find(|x| x.concern == o.concern) {
                    Some(x) => *x = o.clone(),
                    None => out.push(o.clone()),
                }
            }
        }
        for o in &mut out {
            if self.pending_retry.contains(&o.concern) {
                o.status = Status::Unavailable("retrying".into());
            }
        }
        out
    }

    /// Retries the concerns whose backend was unavailable.
    pub async fn retry(&mut self) {
        if self.pending_retry.is_empty() {
            self.retry_after = None;
            return;
        }
        let now = std::time::Instant::now();
        match self.retry_after {
            // The first retry waits too: the push that found the daemon away has just spent
            // its deadline on it, and the socket's next request should not wait for another.
            None => {
                self.retry_after = Some((now + RETRY_FIRST, RETRY_FIRST));
                return;
            }
            Some((at, _)) if now < at => return,
            Some(_) => {}
        }
        let names = std::mem::take(&mut self.pending_retry);
        let outcomes = self
            .reconciler
            .retry(&names, &DesiredState::default(), &self.stored.state)
            .await;
        for o in outcomes {
            match o.status {
                Status::Unavailable(_) => self.pending_retry.push(o.concern),
                Status::Applied | Status::Unchanged => {
                    tracing::info!(concern = o.concern, "caught up after being unavailable")
                }
                ref s => tracing::warn!(concern = o.concern, "retry: {s:?}"),
            }
        }
        let step = self
            .retry_after
            .map_or(RETRY_FIRST, |(_, d)| (d * 2).min(RETRY_MAX));
        self.retry_after =
            (!self.pending_retry.is_empty()).then(|| (std::time::Instant::now() + step, step));
    }

    /// One self-heal pass (see [`crate::heal`]): repairs drift from the committed state
    /// without a push. Concerns waiting for their daemon (`pending_retry`) are left to
    /// `retry`; concerns backing off are left alone.
    pub async fn heal(&mut self) {
        if self.skip_replay {
            // No readable state: "repairing" toward the empty state would tear the router
            // down. The next push gives the agent a state to keep again.
            return;
        }
        let now = std::time::Instant::now();
        let mut skip = self.heal.resting(now);
        skip.extend(self.pending_retry.iter().copied());
        let outcomes = self.reconciler.heal(&self.stored.state, &skip).await;
        for o in &outcomes {
            match &o.status {
                Status::Applied => {
                    tracing::warn!(
                        concern = o.concern,
                        changes = o.changes,
                        "self-heal: drift repaired"
                    );
                    crate::alerts::healed(self.store.dir(), o);
                }
                Status::Failed(_) => crate::alerts::healed(self.store.dir(), o),
                Status::Unavailable(_) if !self.pending_retry.contains(&o.concern) => {
                    self.pending_retry.push(o.concern)
                }
                _ => {}
            }
        }
        let interval = std::time::Duration::from_secs(self.cfg.observe_interval);
        self.heal.record(outcomes, interval, now, push::now_secs());
    }

    /// What differs between the system and the committed state: (changes, plan text).
    /// Each concern first refreshes its mirror from the system; planning from the committed
    /// state to itself then shows only what the system lost or gained behind the agent's back.
    pub async fn diff(&mut self) -> (usize, String) {
        for (concern, e) in self.reconciler.observe().await {
            tracing::warn!(concern, "cannot read current state: {e}");
        }
        let stored = self.stored.state.clone();
        let plan = self.reconciler.plan(&stored, &stored);
        (plan.changes(), plan.to_string())
    }

    /// `vr-agent check`: one line per health check.
    pub async fn check(&mut self) -> Vec<crate::diag::check::Check> {
        use crate::diag::check::{self, Check, Verdict};
        let mut out = vec![Check::ok(
            "agent running",
            format!(
                "pid {}, up {} s",
                std::process::id(),
                push::now_secs().saturating_sub(self.started_at)
            ),
        )];
        out.push(match &self.state_problem {
            None => Check::ok(
                "state file",
                format!("state.json generation {}", self.stored.generation),
            ),
            Some(p) => Check::fail("state file", p.clone()),
        });
        out.push(match &self.replay {
            Some(r) if r.ok => Check::ok(
                "boot replay",
                format!("generation {} in {} ms", r.generation, r.millis),
            ),
            Some(r) => Check::fail(
                "boot replay",
                format!(
                    "generation {} failed: {:?}",
                    r.generation,
                    failed_concerns(&r.outcomes)
                ),
            ),
            None => Check::fail("boot replay", "not done"),
        });
        out.push(match self.history.back() {
            None => Check::ok("last push", "none since start"),
            Some(p) if p.ok => Check::ok("last push", format!("{}: {}", p.name, p.message)),
            Some(p) => Check::new(
                "last push",
                Verdict::Warn,
                format!("{}: {}", p.name, p.message),
            ),
        });
        for (concern, e) in self.reconciler.observe().await {
            out.push(Check::fail(format!("{concern} reachable"), e));
        }
        let stored = self.stored.state.clone();
        for (name, plan, changes) in self.reconciler.plan(&stored, &stored).parts {
            out.push(match (plan, self.pending_retry.contains(&name)) {
                (_, true) => {
                    Check::fail(format!("{name} in sync"), "backend unavailable; retrying")
                }
                (Err(e), _) => Check::fail(format!("{name} in sync"), e),
                (Ok(_), _) if changes == 0 => {
                    Check::ok(format!("{name} in sync"), "matches the desired state")
                }
                (Ok(_), _) => Check::fail(
                    format!("{name} in sync"),
                    format!("drift: {changes} change(s); see `vr-agent diff`"),
                ),
            });
        }
        for extra in self.reconciler.health(&stored).await {
            out.push(extra);
        }
        out.push(check::conntrack_usage());
        out.push(check::disk_space(self.store.dir()));
        // The pushed health checks, as their last run left them (run off this loop).
        out.extend(crate::health::results());
        out
    }

    /// Every secret of the committed state (for redacting free text such as daemon output).
    pub fn secrets(&self) -> Vec<String> {
        crate::redact::secrets_of(&self.stored)
    }

    /// Re-applies the committed state to repair drift (`vr-agent reconcile`).
    pub async fn reconcile(&mut self) -> Vec<Outcome> {
        let report = self.reconciler.converge(&self.stored.state).await;
        self.pending_retry = report.unavailable();
        report.outcomes
    }
}

fn failed_concerns(outcomes: &[Outcome]) -> Vec<String> {
    outcomes
        .iter()
        .filter_map(|o| match &o.status {
            Status::Failed(e) | Status::Unavailable(e) => Some(format!("{}: {e}", o.concern)),
            _ => None,
        })
        .collect()
}
