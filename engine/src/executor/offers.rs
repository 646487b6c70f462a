//! Steps run by other workers (PostgreSQL, several processes).
//!
//! The run stays the unit of ownership: its owner schedules it and records every outcome,
//! fenced as always. But a ready step the owner has no free step slot for (and that carries no
//! secret value in its rendered input) is **offered** in the commit that starts its attempt: a
//! `step_offers` row with the rendered `with`, and a `NOTIFY flowscope_steps`. Then:
//!
//! - any worker with a free step slot **claims** offers (`FOR UPDATE SKIP LOCKED`), runs the
//!   agent (under the attempt's span, from the stored `traceparent`), and writes the result to
//!   its claimed row with `NOTIFY flowscope_step_done` — a write refused once the claim is not
//!   its own anymore;
//! - the owner, woken by that notification (or a poll), reads the results of its run's offers
//!   and records each outcome, deleting the offer in the same commit: exactly one outcome;
//! - the owner **withdraws** an offer nobody has claimed as soon as it has a slot again, and
//!   runs the step itself;
//! - a claimant whose lease expires has its claims reset by the others' heartbeats, so the step
//!   is claimed again (at least once for the agent); a run taken over, cancelled or timed out
//!   drops its offers, and a late result finds nothing to write to.
//!
//! A lone worker never offers: nobody would claim, and the local path costs no round trip.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::trace::TraceContextExt as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;

use super::attempt::run_agent;
use super::{lock, Engine};
use crate::agents::{AgentContext, AgentError};
use crate::render::{redact, redact_text};
use crate::store::cluster::ClaimedStep;

/// What a claimant needs to run an offered attempt: `step_offers.payload`.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Payload {
    pub(super) with: Map<String, Value>,
    /// The data `transform` evaluates over (null for other agents).
    pub(super) data: Value,
    pub(super) timeout_ms: Option<u64>,
    /// What the attempt's render took of that timeout already (rendered by the owner).
    #[serde(default)]
    pub(super) spent_ms: u64,
    /// Of the attempt's `agent.execute` span: the agent's own spans become its children.
    pub(super) traceparent: Option<String>,
}

/// What a claimant reports: `step_offers.result`.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Report {
    pub(super) output: Option<Value>,
    /// `(kind, message)`.
    pub(super) error: Option<(String, String)>,
    pub(super) logs: Vec<String>,
    pub(super) started_at: i64,
    pub(super) ended_at: i64,
    /// The claimant's name (`host:pid` or `FLOWSCOPE_WORKER_NAME`).
    pub(super) worker: String,
}

impl Report {
    pub(super) fn result(&self) -> Result<Value, AgentError> {
        match &self.error {
            Some((kind, message)) => Err(AgentError::new(
                crate::agents::error_kind(kind),
                message.clone(),
            )),
            None => Ok(self.output.clone().unwrap_or(Value::Null)),
        }
    }
}

/// Offered steps claimed per query.
const CLAIM_BATCH: usize = 16;

impl Engine {
    /// Whether a step without a free slot here should be offered to the others: only among
    /// several live workers, and not while this one is stopping.
    pub(super) fn can_offer(&self) -> bool {
        self.cluster()
            .is_some_and(|c| !c.alone.load(Ordering::Acquire) && !c.stop.is_cancelled())
    }

    /// The payload of an offer, or `None` when the step must run here: its rendered input or
    /// data holds a secret value, which is never written to the database in clear.
    pub(super) fn offer_payload(&self, payload: &Payload) -> Option<String> {
        let text = serde_json::to_string(payload).ok()?;
        let secrets = &self.secrets().values;
        if secrets.iter().any(|s| text.contains(s.as_str())) {
            return None;
        }
        // A secret whose JSON form differs from its text (quotes, backslashes) is checked too.
        let mut check = serde_json::to_value(payload).ok()?;
        redact(&mut check, secrets);
        (serde_json::to_string(&check).ok()? == text).then_some(text)
    }

    /// Woken when another worker reported a result for one of `run_id`'s offered steps.
    pub(super) fn step_done_signal(&self, run_id: &str) -> Option<Arc<tokio::sync::Notify>> {
        let c = self.cluster()?;
        Some(
            lock(&c.step_done)
                .entry(run_id.to_string())
                .or_default()
                .clone(),
        )
    }

    pub(super) fn forget_step_done_signal(&self, run_id: &str) {
        if let Some(c) = self.cluster() {
            lock(&c.step_done).remove(run_id);
        }
    }

    /// The listener heard that a result for `run_id` is in.
    pub(super) fn step_done(&self, run_id: &str) {
        if let Some(c) = self.cluster() {
            if let Some(n) = lock(&c.step_done).get(run_id) {
                n.notify_one();
            }
        }
    }

    /// Stops the offered steps of `run_id` this process runs for another (a cancel).
    pub(super) fn cancel_claimed_steps(&self, run_id: &str) {
        if let Some(c) = self.cluster() {
            if let Some(tokens) = lock(&c.claimed).get(run_id) {
                tokens.iter().for_each(|(_, t)| t.cancel());
            }
        }
    }

    /// Claims offered steps while this process has free step slots, and runs them.
    pub(super) async fn step_loop(self) {
        let Some(c) = self.cluster() else { return };
        // A server that runs no runs (`FLOWSCOPE_WORKER_MAX_RUNS=0`) runs no steps either.
        if c.config.max_runs == 0 {
            return;
        }
        let agents = self.inner.agents.kinds();
        let mut backoff = Duration::from_millis(100);
        loop {
            if c.stop.is_cancelled() {
                return;
            }
            let slots = self.step_slots();
            let room = slots.available_permits().min(CLAIM_BATCH);
            let mut more = false;
            if room > 0 {
                let me = c.me();
                match self.store().claim_steps(&me, &agents, room as i64).await {
                    Ok(steps) => {
                        backoff = Duration::from_millis(100);
                        more = steps.len() == room;
                        for step in steps {
                            // Claimed for the free slots just counted; a local step that took
                            // one meanwhile only makes this one wait for the next.
                            let permit = slots.clone().acquire_owned().await.ok();
                            tokio::spawn(self.clone().run_claimed(me.clone(), step, permit));
                        }
                    }
                    Err(e) if e.is_closed() => return,
                    Err(e) => {
                        tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "cannot claim offered steps");
                        if !c.back_off(&mut backoff).await {
                            return;
                        }
                        continue;
                    }
                }
            }
            if more {
                continue;
            }
            tokio::select! {
                _ = c.stop.cancelled() => return,
                _ = c.steps_wake.notified() => {}
                _ = tokio::time::sleep(c.config.poll) => {}
            }
        }
    }

    /// Runs an offered step claimed from another worker's run and reports its result.
    async fn run_claimed(
        self,
        me: Arc<str>,
        step: ClaimedStep,
        _permit: Option<OwnedSemaphorePermit>,
    ) {
        let Some(c) = self.cluster() else { return };
        let started_at = super::run::now_ms();
        let cancel = CancellationToken::new();
        let id = c.claim_ids.fetch_add(1, Ordering::Relaxed);
        lock(&c.claimed)
            .entry(step.run_id.clone())
            .or_default()
            .push((id, cancel.clone()));
        let mut logs = Vec::new();
        let result = match serde_json::from_str::<Payload>(&step.payload) {
            Err(e) => Err(AgentError::new(
                "invalid_config",
                format!("the offered step's stored input is unreadable: {e}"),
            )),
            Ok(payload) => {
                let ctx = AgentContext::new(
                    step.run_id.clone(),
                    step.step_id.clone(),
                    step.attempt,
                    Arc::new(payload.data),
                    self.http(),
                )
                .with_secrets(self.secrets());
                let work = run_agent(
                    self.agent(&step.agent),
                    &step.agent,
                    &ctx,
                    &payload.with,
                    payload.timeout_ms.map(Duration::from_millis),
                    Duration::from_millis(payload.spent_ms),
                );
                let work = async {
                    tokio::select! {
                        r = work => Some(r),
                        _ = cancel.cancelled() => None,
                    }
                };
                let parent = payload
                    .traceparent
                    .as_deref()
                    .and_then(crate::telemetry::parse_traceparent)
                    .map(|sc| opentelemetry::Context::new().with_remote_span_context(sc));
                let outcome = match parent {
                    Some(cx) => opentelemetry::context::FutureExt::with_context(work, cx).await,
                    None => work.await,
                };
                logs = ctx.take_logs();
                match outcome {
                    Some(r) => r,
                    // The run was cancelled: its owner records that; nothing to report.
                    None => {
                        tracing::info!(run.id = %step.run_id, step.id = %step.step_id, "stopped a step claimed from another worker: its run was cancelled");
                        self.unclaim(&step.run_id, id);
                        return;
                    }
                }
            }
        };
        let secrets = &self.secrets().values;
        let (output, error) = match result {
            Ok(mut v) => {
                // The owner keeps it for later steps' templates: no secret leaves in clear.
                redact(&mut v, secrets);
                (Some(v), None)
            }
            Err(e) => (
                None,
                Some((e.kind.to_string(), redact_text(&e.message, secrets))),
            ),
        };
        let report = Report {
            output,
            error,
            logs: logs.iter().map(|l| redact_text(l, secrets)).collect(),
            started_at,
            ended_at: super::run::now_ms(),
            worker: c.config.name.clone(),
        };
        let text = serde_json::to_string(&report).unwrap_or_default();
        let mut delay = Duration::from_millis(50);
        loop {
            match self.store().report_step(&me, &step, &text).await {
                Ok(true) => break,
                Ok(false) => {
                    tracing::warn!(run.id = %step.run_id, step.id = %step.step_id, "an offered step's claim was lost before its result was written; the result is dropped");
                    break;
                }
                Err(e) if e.is_unavailable() && !c.halt.is_cancelled() => {
                    tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "cannot report an offered step's result; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot report an offered step's result; it is claimed again once this worker's lease expires");
                    break;
                }
            }
        }
        self.unclaim(&step.run_id, id);
    }

    fn unclaim(&self, run_id: &str, id: u64) {
        let Some(c) = self.cluster() else { return };
        let mut claimed = lock(&c.claimed);
        if let Some(tokens) = claimed.get_mut(run_id) {
            tokens.retain(|(i, _)| *i != id);
            if tokens.is_empty() {
                claimed.remove(run_id);
            }
        }
    }
}
