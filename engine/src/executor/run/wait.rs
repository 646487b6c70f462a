//! Steps that wait without a worker (SPEC §3): `approval`, `wait`, a long `delay`.
//!
//! Such a step's attempt is a row in `waits` instead of a future. While other steps run, the
//! driver watches its waits (a signal from this process, a poll among several, and the
//! earliest due time); once nothing else can go on, it parks the run as `waiting` and ends,
//! holding no slot and no memory. A resolution (a decision, an event, a due time) sets the run
//! running again and wakes it like a recovered one: its waits are read back and recorded as
//! the attempts' ends.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use serde_json::{json, Map, Value};

use super::{now_ms, Completion, RunDriver};
use crate::agents::AgentError;
use crate::model::{parse_duration, InputDef};
use crate::records::{format_duration, EventKind, RunStatus, WaitKind, WaitRecord};
use crate::render::redact;
use crate::store::{Op, Park};

/// Bytes an event key may have.
pub(crate) const MAX_EVENT_KEY_BYTES: usize = 200;

/// Where a wait's detail keeps its step's `timeout:` (ms) when that ends it first.
const STEP_TIMEOUT: &str = "step_timeout_ms";

/// A step's wait, as the driver holds it.
pub(super) struct Parked {
    pub(super) kind: WaitKind,
    pub(super) attempt: i64,
    /// When its timer ends (a delay, a timeout), unix ms.
    pub(super) due_at: Option<i64>,
    /// Since when it waits, unix ms.
    pub(super) since: i64,
}

/// What a waiting step's `with` asks for.
struct Plan {
    kind: WaitKind,
    key: Option<String>,
    due_at: Option<i64>,
    /// The step's `timeout:` (ms), when it ends the wait before the wait's own end.
    step_timeout: Option<i64>,
}

/// How the driver's run ended its turn: parked, or not (resolutions came in meanwhile).
pub(super) enum Parking {
    Parked(RunStatus),
    GoOn,
    /// A cancel came in as the run was parking.
    Cancel,
    Failed,
}

fn timeout_at(with: &Map<String, Value>, now: i64) -> Result<Option<i64>, AgentError> {
    match with.get("timeout") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(t)) => {
            let d = parse_duration(t).map_err(|e| AgentError::config(format!("timeout: {e}")))?;
            Ok(Some(now.saturating_add(d.as_millis() as i64)))
        }
        Some(_) => Err(AgentError::config("timeout: expected a duration like 1h")),
    }
}

/// An approval's `fields`, declared like a workflow's inputs.
pub(crate) fn approval_fields(with: &Map<String, Value>) -> Result<Map<String, Value>, String> {
    match with.get("fields") {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => {
            for (name, def) in m {
                serde_json::from_value::<InputDef>(def.clone())
                    .map_err(|e| format!("fields.{name}: {e}"))?;
            }
            Ok(m.clone())
        }
        Some(_) => Err("fields: expected a map of names to {type: …}".into()),
    }
}

/// The outcome a wait falls to at its due time: a delay's end, a timeout.
fn due_outcome(kind: WaitKind, detail: &Value, since: i64, at: i64) -> Value {
    let waited = |since: i64| format_duration(at - since);
    // The step's own `timeout:` came before the wait's end.
    if let Some(limit) = detail[STEP_TIMEOUT].as_i64().filter(|l| at - since >= *l) {
        let limit = format_duration(limit);
        return json!({ "error": { "kind": "timeout", "message": format!("the step exceeded its timeout of {limit}") } });
    }
    match kind {
        WaitKind::Delay => json!({ "output": { "waited_ms": (at - since).max(0) } }),
        WaitKind::Approval => {
            let approve = detail["on_timeout"].as_str() == Some("approve");
            let output = json!({ "approved": approve, "by": null, "at": at, "comment": null, "fields": {}, "timed_out": true });
            if approve {
                json!({ "output": output })
            } else {
                json!({ "output": output, "error": { "kind": "rejected", "message": format!("nobody decided within {}: rejected", waited(since)) } })
            }
        }
        WaitKind::Event => json!({ "error": { "kind": "timeout", "message": format!(
            "no event \"{}\" arrived within {}", detail["event"].as_str().unwrap_or(""), waited(since)
        ) } }),
        WaitKind::Workflow => json!({ "error": { "kind": "timeout", "message": format!(
            "the child run did not end within {}", waited(since)
        ) } }),
    }
}

/// A resolution as an attempt's end: its result, and the output a failed one still keeps (a
/// rejection's decision).
fn outcome_result(outcome: Option<&Value>) -> (Result<Value, AgentError>, Option<Value>) {
    let Some(outcome) = outcome else {
        return (
            Err(AgentError::new("wait", "the wait ended without an outcome")),
            None,
        );
    };
    let output = outcome.get("output").cloned();
    match outcome.get("error") {
        None => (Ok(output.unwrap_or(Value::Null)), None),
        Some(e) => {
            let kind = match e["kind"].as_str() {
                Some("timeout") => "timeout",
                Some("rejected") => "rejected",
                Some("child_failed") => "child_failed",
                _ => "wait",
            };
            let message = e["message"].as_str().unwrap_or("the wait failed");
            (Err(AgentError::new(kind, message)), output)
        }
    }
}

impl RunDriver {
    /// Whether step `idx` waits without a worker, given its rendered `with`: `Some(Err)` for a
    /// `with` it cannot wait on.
    fn wait_plan(
        &self,
        idx: usize,
        with: &Map<String, Value>,
        now: i64,
    ) -> Option<Result<Plan, AgentError>> {
        let agent = self.workflow.steps()[idx].agent.as_str();
        let plan = match agent {
            "wait" => (|| {
                let key = with
                    .get("event")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .trim();
                if key.is_empty() {
                    return Err(AgentError::config("event: the key to wait for is empty"));
                }
                if key.len() > MAX_EVENT_KEY_BYTES {
                    return Err(AgentError::config(format!(
                        "event: the key is {} bytes; at most {MAX_EVENT_KEY_BYTES}",
                        key.len()
                    )));
                }
                Ok(Plan {
                    kind: WaitKind::Event,
                    key: Some(key.to_string()),
                    due_at: timeout_at(with, now)?,
                    step_timeout: None,
                })
            })(),
            "approval" => (|| {
                if !with.get("prompt").is_some_and(Value::is_string) {
                    return Err(AgentError::config("prompt: required, a string"));
                }
                approval_fields(with).map_err(AgentError::config)?;
                Ok(Plan {
                    kind: WaitKind::Approval,
                    key: None,
                    due_at: timeout_at(with, now)?,
                    step_timeout: None,
                })
            })(),
            "delay" => {
                let d = match with
                    .get("duration")
                    .and_then(Value::as_str)
                    .map(parse_duration)
                {
                    Some(Ok(d)) => d,
                    // The agent says what is wrong.
                    _ => return None,
                };
                if d < self.engine.inner.durable_delay {
                    return None;
                }
                Ok(Plan {
                    kind: WaitKind::Delay,
                    key: None,
                    due_at: Some(now.saturating_add(d.as_millis() as i64)),
                    step_timeout: None,
                })
            }
            _ => return None,
        };
        // The step's own `timeout:` bounds the wait too.
        let limit = self.workflow.steps()[idx]
            .timeout
            .as_deref()
            .and_then(|t| parse_duration(t).ok());
        Some(plan.map(|mut plan| {
            if let Some(limit) = limit {
                let at = now.saturating_add(limit.as_millis() as i64);
                if plan.due_at.is_none_or(|d| at < d) {
                    plan.due_at = Some(at);
                    plan.step_timeout = Some(limit.as_millis() as i64);
                }
            }
            plan
        }))
    }

    /// Starts step `idx`'s attempt as a wait, if it is one: true when it did (or failed it).
    pub(super) fn start_wait(
        &mut self,
        idx: usize,
        attempt: i64,
        with: &Map<String, Value>,
        now: i64,
        ready: &mut VecDeque<usize>,
        in_flight: &mut FuturesUnordered<BoxFuture<'static, Completion>>,
    ) -> bool {
        let plan = match self.wait_plan(idx, with, now) {
            None => return false,
            Some(Ok(plan)) => plan,
            Some(Err(e)) => {
                let completion = Completion::Attempt {
                    idx,
                    attempt,
                    result: Err(e),
                    logs: Vec::new(),
                    ended_at: now,
                };
                self.handle(completion, ready, in_flight);
                return true;
            }
        };
        let mut detail = Value::Object(with.clone());
        redact(&mut detail, &self.engine.secrets().values);
        if let Some(limit) = plan.step_timeout {
            detail[STEP_TIMEOUT] = json!(limit);
        }
        if let Some((Some(cx), _)) = &self.steps[idx].attempt_span {
            use opentelemetry::trace::TraceContextExt as _;
            let mut attributes = vec![opentelemetry::KeyValue::new(
                "wait.kind",
                plan.kind.as_str(),
            )];
            if let Some(key) = &plan.key {
                attributes.push(opentelemetry::KeyValue::new("wait.key", key.clone()));
            }
            cx.span().add_event("wait.start", attributes);
        }
        self.ops.push(Op::BeginWait {
            run_id: self.run_id.clone(),
            step_id: self.workflow.steps()[idx].id.clone(),
            attempt,
            kind: plan.kind,
            key: plan.key,
            detail,
            at: now,
            due_at: plan.due_at,
        });
        self.steps[idx].parked = Some(Parked {
            kind: plan.kind,
            attempt,
            due_at: plan.due_at,
            since: now,
        });
        self.parked += 1;
        self.had_waits = true;
        true
    }

    /// The earliest time one of the run's waits falls due, or its deadline passes.
    fn next_due(&self) -> Option<i64> {
        let due = self
            .steps
            .iter()
            .filter_map(|s| s.parked.as_ref()?.due_at)
            .min();
        let deadline = self
            .workflow
            .timeout()
            .zip(self.started_at)
            .map(|(t, s)| s.saturating_add(t.as_millis() as i64));
        due.into_iter().chain(deadline).min()
    }

    /// A signal came (a wait resolved here or elsewhere, a pause asked or lifted): reads
    /// whether the run is to pause, and its resolved waits.
    pub(super) async fn look_again(
        &mut self,
        ready: &mut VecDeque<usize>,
        in_flight: &mut FuturesUnordered<BoxFuture<'static, Completion>>,
    ) {
        match self.engine.store().pause_requested(&self.run_id).await {
            Ok(pause) => self.pausing = pause,
            Err(e) => {
                tracing::warn!(run.id = %self.run_id, error = %e, "cannot read whether the run is paused")
            }
        }
        if self.parked > 0 {
            self.poll_waits(ready, in_flight).await;
        }
    }

    /// Resolves the waits that fell due (a resolution that came first wins), then records every
    /// resolved wait of the run as its attempt's end.
    pub(super) async fn poll_waits(
        &mut self,
        ready: &mut VecDeque<usize>,
        in_flight: &mut FuturesUnordered<BoxFuture<'static, Completion>>,
    ) {
        let now = now_ms();
        let store = self.engine.store().clone();
        let waits = match store.waits_of(&self.run_id).await {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(run.id = %self.run_id, error = %e, "cannot read the run's waits; trying again");
                return;
            }
        };
        let mut resolved = Vec::new();
        for mut w in waits {
            if w.resolved_at.is_none() && w.until.is_some_and(|u| u <= now) {
                let outcome = due_outcome(w.kind, &w.detail, w.since, now);
                match store
                    .resolve_wait(&self.run_id, &w.step_id, Some(w.kind), &outcome, now)
                    .await
                {
                    Ok(crate::store::Resolved::Already) => match store.waits_of(&self.run_id).await
                    {
                        Ok(again) => {
                            w = again
                                .into_iter()
                                .find(|a| a.step_id == w.step_id)
                                .unwrap_or(w)
                        }
                        Err(_) => continue,
                    },
                    Ok(_) => {
                        w.resolved_at = Some(now);
                        w.outcome = Some(outcome);
                    }
                    Err(e) => {
                        tracing::warn!(run.id = %self.run_id, error = %e, "cannot resolve a due wait; trying again");
                        continue;
                    }
                }
            }
            if w.resolved_at.is_some() {
                resolved.push(w);
            }
        }
        for w in resolved {
            self.apply_wait(w, ready, in_flight);
        }
    }

    /// Records a resolved wait as its attempt's end; one that is not this run's current wait
    /// of that step (an older attempt's) is only removed.
    pub(super) fn apply_wait(
        &mut self,
        w: WaitRecord,
        ready: &mut VecDeque<usize>,
        in_flight: &mut FuturesUnordered<BoxFuture<'static, Completion>>,
    ) {
        self.ops.push(Op::EndWaits {
            run_id: self.run_id.clone(),
            step_id: Some(w.step_id.clone()),
        });
        let Some(idx) = self.workflow.steps().iter().position(|s| s.id == w.step_id) else {
            return;
        };
        if self.steps[idx].parked.as_ref().map(|p| p.attempt) != Some(w.attempt) {
            return;
        }
        let Some(parked) = self.steps[idx].parked.take() else {
            return;
        };
        self.parked -= 1;
        let at = w.resolved_at.unwrap_or_else(now_ms);
        // A run woken in another life has no span of this attempt: its metrics still count
        // the whole wait.
        if self.steps[idx].attempt_span.is_none() {
            let waited = Duration::from_millis((at - parked.since).max(0) as u64);
            let started = Instant::now()
                .checked_sub(waited)
                .unwrap_or_else(Instant::now);
            self.steps[idx].attempt_span = Some((None, started));
        }
        self.span.in_scope(|| {
            tracing::info!(run.id = %self.run_id, step.id = %w.step_id, wait.kind = parked.kind.as_str(), "wait.end")
        });
        let (result, kept) = outcome_result(w.outcome.as_ref());
        self.steps[idx].failed_output = kept;
        self.handle(
            Completion::Attempt {
                idx,
                attempt: w.attempt,
                result,
                logs: Vec::new(),
                ended_at: at,
            },
            ready,
            in_flight,
        );
    }

    /// Reads back the waits of a run that starts again: its waiting steps wait on.
    pub(super) fn adopt_waits(&mut self, waits: &[WaitRecord]) {
        for w in waits {
            let Some(idx) = self.workflow.steps().iter().position(|s| s.id == w.step_id) else {
                continue;
            };
            let step = &mut self.steps[idx];
            if step.attempts == w.attempt && !step.status.is_finished() {
                step.resumed = false;
                step.parked = Some(Parked {
                    kind: w.kind,
                    attempt: w.attempt,
                    due_at: w.until,
                    since: w.since,
                });
                self.parked += 1;
            }
            self.had_waits = true;
        }
    }

    /// Nothing can go on but waits: commits, then parks the run (`paused` when asked to pause,
    /// else `waiting`) unless resolutions came in meanwhile, which are recorded instead.
    pub(super) async fn park(
        &mut self,
        ready: &mut VecDeque<usize>,
        in_flight: &mut FuturesUnordered<BoxFuture<'static, Completion>>,
    ) -> Parking {
        if let Err(e) = self.commit().await {
            tracing::error!(run.id = %self.run_id, error = %e, "cannot record run progress; leaving it for recovery");
            return Parking::Failed;
        }
        let status = if self.pausing {
            RunStatus::Paused
        } else {
            RunStatus::Waiting
        };
        let wake_at = if self.pausing { None } else { self.next_due() };
        match self
            .engine
            .store()
            .park_run(&self.run_id, status, wake_at)
            .await
        {
            Ok(Park::Parked(status)) => {
                let at = now_ms();
                self.engine.publish(crate::records::Event {
                    run_id: self.run_id.clone(),
                    workflow_id: self.workflow_id.clone(),
                    at,
                    kind: EventKind::Run { status },
                });
                if let Some(at) = wake_at.filter(|_| status == RunStatus::Waiting) {
                    self.engine.timer_changed(at);
                }
                Parking::Parked(status)
            }
            Ok(Park::Cancel) => Parking::Cancel,
            Ok(Park::Resumed) => {
                self.pausing = false;
                Parking::GoOn
            }
            Ok(Park::Resolved(waits)) => {
                for w in waits {
                    self.apply_wait(w, ready, in_flight);
                }
                Parking::GoOn
            }
            Err(e) => {
                tracing::error!(run.id = %self.run_id, error = %e, "cannot park the run; leaving it for recovery");
                Parking::Failed
            }
        }
    }
}
