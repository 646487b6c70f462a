//! Runs that wait and are woken (SPEC §2–4): events, approval decisions, the timer that wakes
//! parked runs when a delay or a timeout falls due, and pausing and resuming a run.
//!
//! A resolution is written to the store first (`Store::resolve_wait`, `post_event`); a run it
//! finds parked is set running again, unclaimed, in the same transaction, and woken here: on
//! SQLite it is read back and queued; on PostgreSQL any process with room claims it. A run
//! whose driver is alive is signalled instead (on PostgreSQL through the step-done channel,
//! whichever process drives it).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};
use tokio::sync::Notify;

use super::{lock, run, Engine, EngineError};
use crate::access::Role;
use crate::model::InputDef;
use crate::records::{RunStatus, WaitKind};
use crate::store::{Resolved, StoreError};

/// Bytes of an event's payload: it becomes a step's output.
pub const MAX_EVENT_BYTES: usize = 1024 * 1024;
/// Bytes of a decision's comment.
pub const MAX_COMMENT_BYTES: usize = 4096;

/// A person's decision on an approval step.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// Approve (true) or reject.
    pub approved: bool,
    /// Why, for the record.
    #[serde(default)]
    pub comment: Option<String>,
    /// Values of the approval's `fields`.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub fields: Map<String, Value>,
}

/// What posting an event did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventPosted {
    /// The waits it resolved (one per waiting run).
    pub resolved: usize,
    /// Whether it is kept for waits that start later, and until when (unix ms).
    pub kept_until: Option<i64>,
}

impl Engine {
    /// The signal a run's driver listens to (created on first use).
    pub(super) fn wait_signal(&self, run_id: &str) -> Arc<Notify> {
        lock(&self.inner.signals)
            .entry(run_id.to_string())
            .or_default()
            .clone()
    }

    pub(super) fn forget_wait_signal(&self, run_id: &str) {
        lock(&self.inner.signals).remove(run_id);
    }

    /// Tells a run's driver in this process to look again.
    pub(super) fn signal_local(&self, run_id: &str) {
        if let Some(n) = lock(&self.inner.signals).get(run_id) {
            n.notify_one();
        }
    }

    /// Tells a run's driver, wherever it runs, to look again.
    async fn signal_run(&self, run_id: &str) {
        self.signal_local(run_id);
        if self.cluster().is_some() {
            if let Err(e) = self
                .inner
                .store
                .notify(crate::store::cluster::STEP_DONE_CHANNEL, run_id)
                .await
            {
                // Its driver polls while it waits: the news arrives within a poll interval.
                tracing::warn!(run.id = %run_id, error = %e, "cannot signal the run's process");
            }
        }
    }

    /// A parked run was set running again: queue it here (one process), or let whoever has
    /// room claim it (several).
    pub(super) async fn wake(&self, run_id: &str) -> Result<(), EngineError> {
        if let Some(c) = self.cluster() {
            c.wake.notify_one();
            self.inner
                .store
                .notify(crate::store::cluster::RUNS_CHANNEL, "")
                .await?;
            return Ok(());
        }
        {
            let mut sched = lock(&self.inner.sched);
            if sched.running.contains_key(run_id) {
                // Its driver is still ending its turn: woken again once it has.
                sched.rewake.insert(run_id.to_string());
                return Ok(());
            }
        }
        let state = self.inner.store.resumable(run_id).await?;
        self.adopt_one(state).await?;
        self.dispatch();
        Ok(())
    }

    /// A resolution recorded: wake the run, or signal its driver.
    async fn after_resolve(&self, run_id: &str, resolved: Resolved) -> Result<(), EngineError> {
        match resolved {
            Resolved::Woken => self.wake(run_id).await,
            Resolved::Live => {
                self.signal_run(run_id).await;
                Ok(())
            }
            Resolved::Already | Resolved::NotWaiting => Ok(()),
        }
    }

    /// An event arrived: every run waiting on `key` goes on with `payload` as the waiting
    /// step's output, and the event is kept for waits that start within the keep window.
    pub async fn post_event(&self, key: &str, payload: Value) -> Result<EventPosted, EngineError> {
        let key = key.trim();
        if key.is_empty() || key.len() > run::MAX_EVENT_KEY_BYTES {
            return Err(EngineError::Refused(format!(
                "an event key is 1 to {} bytes",
                run::MAX_EVENT_KEY_BYTES
            )));
        }
        let at = run::now_ms();
        let keep = self.inner.event_keep;
        let kept_until = (!keep.is_zero()).then(|| at + keep.as_millis() as i64);
        let runs = self
            .inner
            .store
            .post_event(key, &payload, at, kept_until)
            .await?;
        for (run_id, woken) in &runs {
            let resolved = if *woken {
                Resolved::Woken
            } else {
                Resolved::Live
            };
            if let Err(e) = self.after_resolve(run_id, resolved).await {
                tracing::warn!(run.id = %run_id, error = %e, "cannot wake a run its event resolved; the timer will");
            }
        }
        Ok(EventPosted {
            resolved: runs.len(),
            kept_until,
        })
    }

    /// Records a person's decision on an approval step: who (`by`, with `role`), approve or
    /// reject, a comment and the approval's fields. Refused when the step does not wait for
    /// one, was decided already, or the role is below the approval's.
    pub async fn decide(
        &self,
        run_id: &str,
        step_id: &str,
        decision: Decision,
        by: &str,
        role: Role,
    ) -> Result<Value, EngineError> {
        let detail = self.inner.store.run_detail(run_id).await?;
        let wait = detail
            .waits
            .iter()
            .find(|w| w.step_id == step_id && w.kind == WaitKind::Approval)
            .ok_or_else(|| {
                EngineError::Conflict(format!(
                    "step \"{step_id}\" of run \"{run_id}\" does not wait for a decision"
                ))
            })?;
        if wait.resolved_at.is_some() {
            return Err(EngineError::Conflict(format!(
                "step \"{step_id}\" was decided already"
            )));
        }
        let needed = wait.detail["role"]
            .as_str()
            .and_then(Role::parse)
            .unwrap_or(Role::Operator);
        if !role.allows(needed) {
            return Err(EngineError::Forbidden(format!(
                "deciding step \"{step_id}\" takes the {needed} role or above; you are {role}"
            )));
        }
        if decision
            .comment
            .as_ref()
            .is_some_and(|c| c.len() > MAX_COMMENT_BYTES)
        {
            return Err(EngineError::Refused(format!(
                "the comment is longer than {MAX_COMMENT_BYTES} bytes"
            )));
        }
        let fields = check_fields(&wait.detail, decision.fields)?;
        let at = run::now_ms();
        let comment = decision.comment.filter(|c| !c.trim().is_empty());
        let output = json!({
            "approved": decision.approved,
            "by": by,
            "at": at,
            "comment": comment,
            "fields": fields,
        });
        let outcome = if decision.approved {
            json!({ "output": output })
        } else {
            let message = match &comment {
                Some(c) => format!("rejected by {by}: {c}"),
                None => format!("rejected by {by}"),
            };
            json!({ "output": output, "error": { "kind": "rejected", "message": message } })
        };
        let resolved = self
            .inner
            .store
            .resolve_wait(run_id, step_id, Some(WaitKind::Approval), &outcome, at)
            .await?;
        if resolved == Resolved::Already {
            return Err(EngineError::Conflict(format!(
                "step \"{step_id}\" was decided already"
            )));
        }
        if resolved == Resolved::NotWaiting {
            return Err(EngineError::Conflict(format!(
                "step \"{step_id}\" of run \"{run_id}\" does not wait for a decision"
            )));
        }
        let waited = (at - wait.since).max(0) as f64 / 1000.0;
        self.inner
            .metrics
            .observe_decision(&detail.run.workflow_id, decision.approved, waited);
        self.after_resolve(run_id, resolved).await?;
        Ok(output)
    }

    /// Pauses a run: attempts in flight finish, no new one starts, and the run parks
    /// `paused` (its waits go on being resolved, and are recorded when it resumes).
    pub async fn pause_run(&self, run_id: &str) -> Result<RunStatus, EngineError> {
        let status = self
            .inner
            .store
            .request_pause(run_id, Some(run::now_ms()))
            .await?;
        if status.is_finished() {
            self.inner.store.request_pause(run_id, None).await?;
            return Err(EngineError::AlreadyFinished {
                id: run_id.to_string(),
                status,
            });
        }
        if status == RunStatus::Waiting {
            // Parked already: it parks again as paused.
            if self.inner.store.unpark(run_id).await? {
                self.wake(run_id).await?;
            }
        } else {
            self.signal_run(run_id).await;
        }
        Ok(status)
    }

    /// Resumes a paused run (or lifts a pause not reached yet).
    pub async fn resume_run(&self, run_id: &str) -> Result<RunStatus, EngineError> {
        let status = self.inner.store.request_pause(run_id, None).await?;
        if status.is_finished() {
            return Err(EngineError::AlreadyFinished {
                id: run_id.to_string(),
                status,
            });
        }
        if status == RunStatus::Paused {
            if self.inner.store.unpark(run_id).await? {
                self.wake(run_id).await?;
            }
        } else {
            self.signal_run(run_id).await;
        }
        Ok(status)
    }

    /// A parked run to be cancelled: set running and woken, its driver ends it cancelled.
    pub(super) async fn cancel_parked(&self, run_id: &str) -> Result<(), EngineError> {
        if self.inner.store.unpark(run_id).await? {
            self.wake(run_id).await?;
        }
        Ok(())
    }

    /// A parked run's wake-up time was set: the timer looks again.
    pub(super) fn timer_changed(&self, _at: i64) {
        self.inner.timer.notify_one();
    }

    /// Wakes parked runs as they fall due, for as long as the engine runs: sleeps until the
    /// earliest wake-up time (at most a minute: another process may have set an earlier one).
    pub(super) fn start_timer(&self) {
        let engine = self.clone();
        tokio::spawn(async move {
            let halt = engine.inner.halt.clone();
            loop {
                let now = run::now_ms();
                let mut sleep = Duration::from_secs(60);
                match engine.inner.store.wake_due(now, 500).await {
                    Ok(ids) => {
                        let full = ids.len() == 500;
                        for id in ids {
                            if let Err(e) = engine.wake(&id).await {
                                tracing::warn!(run.id = %id, error = %e, "cannot wake a due run");
                            }
                        }
                        if full {
                            continue;
                        }
                        match engine.inner.store.next_wake_at().await {
                            Ok(Some(at)) => {
                                sleep = sleep.min(Duration::from_millis((at - now).max(0) as u64))
                            }
                            Ok(None) => {}
                            Err(e) => log_timer_error(&e),
                        }
                    }
                    Err(e) => {
                        log_timer_error(&e);
                        sleep = Duration::from_secs(1);
                    }
                }
                tokio::select! {
                    _ = halt.cancelled() => return,
                    _ = engine.inner.timer.notified() => {}
                    _ = tokio::time::sleep(sleep) => {}
                }
            }
        });
    }
}

fn log_timer_error(e: &StoreError) {
    tracing::warn!(error = %e, "cannot read the parked runs that are due; trying again");
}

/// A decision's fields checked against the approval's declared `fields` (like a trigger's
/// inputs: types, required names, defaults).
fn check_fields(
    detail: &Value,
    mut given: Map<String, Value>,
) -> Result<Map<String, Value>, EngineError> {
    let declared: Map<String, Value> = detail
        .get("fields")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut problems = Vec::new();
    let mut out = Map::new();
    for name in given.keys() {
        if !declared.contains_key(name) {
            problems.push(crate::model::Problem::new(
                format!("fields.{name}"),
                format!("the approval has no field \"{name}\""),
            ));
        }
    }
    for (name, def) in declared {
        let Ok(def) = serde_json::from_value::<InputDef>(def) else {
            continue;
        };
        match given.remove(&name).or(def.default) {
            Some(v) if !def.ty.accepts(&v) => problems.push(crate::model::Problem::new(
                format!("fields.{name}"),
                format!(
                    "expected {}, found {}",
                    def.ty.as_str(),
                    crate::catalog::json_kind(&v)
                ),
            )),
            Some(v) => {
                out.insert(name, v);
            }
            None => problems.push(crate::model::Problem::new(
                format!("fields.{name}"),
                "is required",
            )),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(EngineError::InvalidInputs(problems))
    }
}
