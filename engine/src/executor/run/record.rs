//! Recording what happened: an attempt's completion (here or on another worker), steps that
//! will not run, the run's end, and the commit that makes it all durable before it is
//! published.

use std::collections::VecDeque;
use std::time::Instant;

use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::FutureExt;
use opentelemetry::trace::SpanKind;
use opentelemetry::KeyValue;
use serde_json::{json, Value};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::{
    backoff, limit_size, now_ms, step_view, Completion, RunDriver, MAX_HELD_BYTES, MAX_OUTPUT_BYTES,
};
use crate::executor::offers::Report;
use crate::records::{Event, EventKind, RunStatus, SkipReason, StepStatus};
use crate::render::{redact, redact_text};
use crate::store::Op;
use crate::telemetry::{self, exemplar};

impl RunDriver {
    pub(super) fn handle(
        &mut self,
        completion: Completion,
        ready: &mut VecDeque<usize>,
        in_flight: &mut FuturesUnordered<BoxFuture<'static, Completion>>,
    ) {
        let (idx, attempt, result, logs, at) = match completion {
            Completion::Claimed => return,
            Completion::Remote { watcher, reports } => {
                self.handle_remote(watcher, reports, ready, in_flight);
                return;
            }
            Completion::RetryDue { idx } => {
                self.steps[idx].ready_at = now_ms();
                ready.push_back(idx);
                return;
            }
            Completion::Rendered { idx, result, took } => {
                self.steps[idx].rendered = Some((result, took));
                ready.push_back(idx);
                return;
            }
            Completion::Attempt {
                idx,
                attempt,
                result,
                logs,
                ended_at,
            } => (idx, attempt, result, logs, ended_at),
        };
        self.steps[idx].in_flight = None;
        // Withdrawn and run here: the offer is gone; stop waiting once none is out.
        if self.offers_out > 0 && self.take_offer(idx).is_some() && self.offers_out == 0 {
            if let Some((_, stop)) = self.watching.take() {
                stop.cancel();
            }
        }
        let attempt_cx = self.end_attempt_span(idx, &result);
        let secret_set = self.engine.secrets();
        let secrets = &secret_set.values;
        let logs: Vec<String> = logs.iter().map(|l| redact_text(l, secrets)).collect();
        let step_id = self.workflow.steps()[idx].id.clone();
        match result {
            Ok(output) => {
                self.steps[idx].status = StepStatus::Succeeded;
                // Downstream steps see what is stored (a resumed run reads it back), so a
                // run holds at most MAX_OUTPUT_BYTES (plus a preview) per step in memory.
                let (mut kept, bytes) = limit_size(output);
                self.held_bytes += bytes.min(MAX_OUTPUT_BYTES);
                if self.held_bytes > MAX_HELD_BYTES {
                    kept = json!({ "truncated": true, "bytes": bytes, "reason": format!("the run's outputs exceed {MAX_HELD_BYTES} bytes in all; later outputs are not kept") });
                }
                let mut stored = kept.clone();
                redact(&mut stored, secrets);
                self.outputs.insert(
                    step_id.clone(),
                    step_view(StepStatus::Succeeded, kept, None),
                );
                self.ops.push(Op::AttemptFinished {
                    run_id: self.run_id.clone(),
                    step_id: step_id.clone(),
                    attempt,
                    status: StepStatus::Succeeded,
                    output: Some(stored),
                    error: None,
                    logs,
                    at,
                });
                self.event(
                    EventKind::Step {
                        step_id,
                        status: StepStatus::Succeeded,
                        attempt,
                        skip_reason: None,
                    },
                    at,
                );
                self.settle(idx, at, ready);
            }
            Err(e) => {
                let message = redact_text(&e.message, secrets);
                {
                    // One line per failed attempt, under its span: trace → logs finds it.
                    let _cx = attempt_cx.map(|cx| cx.attach());
                    tracing::warn!(
                        run.id = %self.run_id,
                        workflow.id = %self.workflow_id,
                        step.id = %step_id,
                        attempt,
                        error.type = e.kind,
                        "step attempt failed: {message}"
                    );
                }
                let workflow = self.workflow.clone();
                let retry = workflow.steps()[idx].retry.as_ref();
                // A crash loop is not retried: each retry would take the process down again.
                let max_attempts = match e.kind {
                    // A person said no: asking again is a new run's business.
                    // Nothing another attempt could change: a missing workflow, inputs that do not fit, a
                    // call too deep.
                    "crash_loop" | "secret_missing" | "rejected" | "workflow_not_found"
                    | "invalid_inputs" | "call_depth" => 0,
                    // Its items were retried each; a new attempt would only resume the list.
                    _ if workflow.steps()[idx].for_each.is_some() => 1,
                    _ => retry.map(|r| r.max_attempts as i64).unwrap_or(1),
                };
                let status = if attempt < max_attempts {
                    StepStatus::Retrying
                } else {
                    StepStatus::Failed
                };
                // A rejected approval's decision is its output still.
                let kept = self.steps[idx].failed_output.take();
                if status == StepStatus::Failed {
                    if !workflow.steps()[idx].continue_on_error {
                        self.first_error.get_or_insert(e.kind);
                    }
                    self.outputs.insert(
                        step_id.clone(),
                        step_view(
                            StepStatus::Failed,
                            kept.clone().unwrap_or(Value::Null),
                            Some(&message),
                        ),
                    );
                }
                self.steps[idx].status = status;
                self.ops.push(Op::AttemptFinished {
                    run_id: self.run_id.clone(),
                    step_id: step_id.clone(),
                    attempt,
                    status,
                    output: kept,
                    error: Some((e.kind.to_string(), message)),
                    logs,
                    at,
                });
                self.event(
                    EventKind::Step {
                        step_id,
                        status,
                        attempt,
                        skip_reason: None,
                    },
                    at,
                );
                if status == StepStatus::Retrying {
                    let delay = backoff(
                        retry.and_then(|r| r.backoff.as_deref()),
                        retry.and_then(|r| r.max_backoff.as_deref()),
                        attempt,
                    );
                    in_flight.push(
                        async move {
                            tokio::time::sleep(delay).await;
                            Completion::RetryDue { idx }
                        }
                        .boxed(),
                    );
                } else {
                    self.settle(idx, at, ready);
                }
            }
        }
    }

    /// Turns results other workers reported into completions of the attempts still out.
    fn handle_remote(
        &mut self,
        watcher: u64,
        reports: Vec<(String, i64, String)>,
        ready: &mut VecDeque<usize>,
        in_flight: &mut FuturesUnordered<BoxFuture<'static, Completion>>,
    ) {
        if self.watching.as_ref().is_some_and(|(w, _)| *w == watcher) {
            self.watching = None;
        }
        for (step_id, attempt, text) in reports {
            let Some(idx) = self.workflow.steps().iter().position(|s| s.id == step_id) else {
                continue;
            };
            // Already recorded (a second read before the commit that removed the offer).
            if self.steps[idx].offered.as_ref().map(|(a, _)| *a) != Some(attempt) {
                continue;
            }
            if let Some((_, resolved)) = self.take_offer(idx) {
                resolved.cancel();
            }
            let report: Report = serde_json::from_str(&text).unwrap_or_else(|e| Report {
                output: None,
                error: Some((
                    "agent_error".into(),
                    format!("the worker's report of this attempt is unreadable: {e}"),
                )),
                logs: Vec::new(),
                started_at: now_ms(),
                ended_at: now_ms(),
                worker: String::new(),
            });
            self.ops.push(Op::OfferDone {
                run_id: self.run_id.clone(),
                step_id,
                attempt,
                worker: report.worker.clone(),
                started_at: report.started_at,
            });
            let result = report.result();
            self.handle(
                Completion::Attempt {
                    idx,
                    attempt,
                    result,
                    logs: report.logs,
                    ended_at: report.ended_at,
                },
                ready,
                in_flight,
            );
        }
        if self.offers_out > 0 && self.watching.is_none() {
            in_flight.push(self.watch_offers());
        }
    }

    /// Marks steps that will not run (skipped, cancelled) in one op, with their events.
    /// `reason`: why skipped steps were (recorded, counted, and an event on the root span).
    pub(super) fn end_steps(
        &mut self,
        steps: &[usize],
        status: StepStatus,
        reason: Option<SkipReason>,
        at: i64,
    ) {
        if steps.is_empty() {
            return;
        }
        if let Some(reason) = reason {
            self.note_skipped(steps, reason);
        }
        let mut step_ids = Vec::with_capacity(steps.len());
        for &i in steps {
            self.steps[i].status = status;
            let step_id = self.workflow.steps()[i].id.clone();
            self.outputs
                .insert(step_id.clone(), step_view(status, Value::Null, None));
            self.event(
                EventKind::Step {
                    step_id: step_id.clone(),
                    status,
                    attempt: 0,
                    skip_reason: reason,
                },
                at,
            );
            step_ids.push(step_id);
        }
        self.ops.push(Op::StepsEnded {
            run_id: self.run_id.clone(),
            step_ids,
            status,
            reason,
            at,
        });
    }

    /// Closes an open attempt as cancelled (run cancelled or timed out).
    fn close_attempt(&mut self, idx: usize, attempt: i64, kind: &str, reason: &str, at: i64) {
        if let Some((Some(cx), _)) = self.steps[idx].attempt_span.take() {
            telemetry::end_span(
                &cx,
                vec![KeyValue::new(
                    "agent.run.status",
                    StepStatus::Cancelled.as_str(),
                )],
                (kind == "timeout").then_some((kind, reason)),
            );
        }
        let step_id = self.workflow.steps()[idx].id.clone();
        self.steps[idx].status = StepStatus::Cancelled;
        // Clean-up steps after a cancel read it.
        self.outputs.insert(
            step_id.clone(),
            step_view(StepStatus::Cancelled, Value::Null, None),
        );
        self.ops.push(Op::AttemptFinished {
            run_id: self.run_id.clone(),
            step_id: step_id.clone(),
            attempt,
            status: StepStatus::Cancelled,
            output: None,
            error: Some((kind.to_string(), reason.to_string())),
            logs: Vec::new(),
            at,
        });
        self.event(
            EventKind::Step {
                step_id,
                status: StepStatus::Cancelled,
                attempt,
                skip_reason: None,
            },
            at,
        );
    }

    /// Cancel or time out: close in-flight attempts, end waiting steps, finish the run.
    pub(super) async fn end_all(mut self, status: RunStatus, reason: &str) -> RunStatus {
        let at = now_ms();
        let kind = if status == RunStatus::TimedOut {
            "timeout"
        } else {
            "cancelled"
        };
        self.close_in_flight(kind, reason, at);
        let waiting: Vec<usize> = (0..self.steps.len())
            .filter(|&i| !self.steps[i].status.is_finished())
            .collect();
        self.end_steps(&waiting, StepStatus::Cancelled, None, at);
        self.finish(status, Some(reason.to_string())).await
    }

    /// A cancel with `always()` or `cancelled()` steps to come: the attempts in flight are
    /// closed as cancelled (their futures were dropped), steps waiting to retry are cancelled,
    /// and the steps that may still run are decided. Returns what can start now; the run goes
    /// on until those steps end, then ends cancelled.
    pub(super) fn begin_cleanup(&mut self, ready: &mut VecDeque<usize>) {
        let at = now_ms();
        self.cancelling = true;
        ready.clear();
        self.close_in_flight("cancelled", "the run was cancelled", at);
        // Started (or waiting to retry) but not in flight: they will not run again.
        let stopped: Vec<usize> = (0..self.steps.len())
            .filter(|&i| {
                let s = self.steps[i].status;
                !s.is_finished() && s != StepStatus::Pending
            })
            .collect();
        self.end_steps(&stopped, StepStatus::Cancelled, None, at);
        ready.extend(self.first_ready(at));
    }

    /// Closes every attempt in flight (and any left open by a stopped process).
    fn close_in_flight(&mut self, kind: &str, reason: &str, at: i64) {
        let mut in_flight: Vec<(usize, i64)> = (self.steps.iter_mut().enumerate())
            .filter_map(|(i, s)| s.in_flight.take().map(|a| (i, a)))
            .collect();
        // Waiting steps, and steps resumed from a stopped process but not restarted yet, have
        // an open attempt too.
        for i in 0..self.steps.len() {
            if let Some(parked) = self.steps[i].parked.take() {
                self.parked -= 1;
                in_flight.push((i, parked.attempt));
                continue;
            }
            if std::mem::take(&mut self.steps[i].resumed) && self.steps[i].attempts > 0 {
                in_flight.push((i, self.steps[i].attempts));
            }
        }
        in_flight.sort_unstable();
        for (idx, attempt) in in_flight {
            self.close_attempt(idx, attempt, kind, reason, at);
        }
        if self.offers_out > 0 {
            self.steps.iter_mut().for_each(|s| s.offered = None);
            self.offers_out = 0;
            if let Some((_, stop)) = self.watching.take() {
                stop.cancel();
            }
            self.ops.push(Op::CloseOffers {
                run_id: self.run_id.clone(),
            });
        }
    }

    /// What an `on_failure` handler is told of this run, if it failed or timed out and has
    /// one (a handler's own run, trigger `failure`, starts no handler: no chains of them).
    fn failure_view(&self, status: RunStatus, error: Option<&str>, at: i64) -> Option<Value> {
        if !matches!(status, RunStatus::Failed | RunStatus::TimedOut)
            || self.trigger == "failure"
            || self.workflow.def().on_failure.is_none()
        {
            return None;
        }
        let failed_step = (self.steps.iter().zip(self.workflow.steps()))
            .find(|(s, _)| s.status == StepStatus::Failed)
            .map(|(_, def)| def.id.clone());
        let inner = &self.engine.inner;
        let run_url = match &inner.public_url {
            Some(base) => format!("{base}/runs/{}", self.run_id),
            None => format!("/runs/{}", self.run_id),
        };
        let trace_url = inner.trace_links.link(
            &self.run_id,
            self.trace_id.as_deref(),
            None,
            self.started_at.unwrap_or(self.created_at),
            Some(at),
        );
        // The failed step's own error says more than the run's ("step x failed").
        let step_error = failed_step
            .as_ref()
            .and_then(|id| self.outputs.get(id))
            .and_then(|view| view["error"].as_str());
        Some(serde_json::json!({
            "workflow": self.workflow_id,
            "run_id": self.run_id,
            "status": status.as_str(),
            "run_url": run_url,
            "trace_url": trace_url,
            "failed_step": failed_step,
            "error": step_error.or(error),
        }))
    }

    /// The run's outputs, once it succeeded: its `outputs:` rendered, or for a child run
    /// (whose caller reads them) the output of each step nothing depends on, by id.
    async fn run_outputs(&self) -> Result<Option<Value>, crate::render::RenderError> {
        let declared = match &self.workflow.def().outputs {
            Some(declared) => declared,
            None if self.trigger == "workflow" => {
                let leaves = self.workflow.leaves().map(|s| {
                    let output = self.outputs.get(&s.id).map(|v| v["output"].clone());
                    (s.id.clone(), output.unwrap_or(Value::Null))
                });
                return Ok(Some(Value::Object(leaves.collect())));
            }
            None => return Ok(None),
        };
        let context = self.context(false);
        let rendered = if declared.values().all(crate::render::all_bounded) {
            crate::render::render(declared, &minijinja::Value::from_serialize(&context))?
        } else {
            crate::executor::attempt::render_in_sandbox(
                self.engine.sandbox(),
                declared,
                &context,
                None,
            )
            .await?
        };
        let (mut outputs, _) = limit_size(Value::Object(rendered));
        redact(&mut outputs, &self.engine.secrets().values);
        Ok(Some(outputs))
    }

    /// What search reads of the run: its inputs, its outputs (declared, or those of the steps
    /// nothing depends on) and the errors of the run and its steps.
    fn search_document(&self, declared: Option<&Value>, error: Option<&str>) -> String {
        let mut errors: Vec<&str> = error.into_iter().collect();
        errors.extend(
            self.outputs
                .values()
                .filter_map(|v| v.get("error").and_then(Value::as_str)),
        );
        match declared {
            Some(outputs) => crate::search::document(&self.inputs, [outputs], &errors),
            None => {
                let leaves = self
                    .workflow
                    .leaves()
                    .filter_map(|s| self.outputs.get(&s.id))
                    .map(|v| &v["output"]);
                crate::search::document(&self.inputs, leaves, &errors)
            }
        }
    }

    pub(super) async fn finish(
        mut self,
        mut status: RunStatus,
        mut error: Option<String>,
    ) -> RunStatus {
        let mut outputs = None;
        if status == RunStatus::Succeeded {
            match self.run_outputs().await {
                Ok(o) => outputs = o,
                Err(e) => {
                    status = RunStatus::Failed;
                    self.first_error = Some("outputs");
                    error = Some(format!(
                        "the run's outputs could not be rendered: {}",
                        e.message
                    ));
                }
            }
        }
        let at = now_ms();
        self.span.record("workflow.run.status", status.as_str());
        let error_type = match status {
            RunStatus::Failed => Some(self.first_error.unwrap_or("step_failed")),
            RunStatus::TimedOut => Some("timeout"),
            _ => None,
        };
        if let Some(kind) = error_type {
            let message = error.as_deref().unwrap_or(kind);
            telemetry::record_outcome(&self.span, Some((kind, message)));
            // Under the run's root span (the driver runs in its context): trace → logs.
            tracing::error!(
                run.id = %self.run_id,
                workflow.id = %self.workflow_id,
                error.type = kind,
                "run {}: {message}",
                status.as_str()
            );
        }
        let metrics = self.engine.metrics();
        metrics
            .runs
            .get_or_create(&telemetry::RunLabels {
                workflow: self.workflow_id.clone(),
                status: status.as_str().to_string(),
                trigger: self.trigger.clone(),
            })
            .inc();
        let seconds = (at - self.started_at.unwrap_or(at)).max(0) as f64 / 1000.0;
        let (ex, ts) = exemplar(self.trace_id.as_deref());
        metrics
            .run_duration
            .get_or_create(&telemetry::WorkflowStatusLabels {
                workflow: self.workflow_id.clone(),
                status: status.as_str().to_string(),
            })
            .observe(seconds, ex, ts);
        let failure = self.failure_view(status, error.as_deref(), at);
        if self.had_waits {
            self.ops.push(Op::EndWaits {
                run_id: self.run_id.clone(),
                step_id: None,
            });
        }
        let search = Some(self.search_document(outputs.as_ref(), error.as_deref()));
        self.ops.push(Op::FinishRun {
            run_id: self.run_id.clone(),
            status,
            error,
            at,
            frees_slot: self.workflow.def().concurrency.is_some(),
            outputs,
            search,
        });
        self.event(EventKind::Run { status }, at);
        let committed = self.commit().await;
        if self.sampled {
            // Every commit's wait, including those too short to get a span of their own.
            // Set on the OpenTelemetry span alone: a `record` would also be formatted for the
            // console log, which never shows it after the run's last line.
            self.span
                .set_attribute("flowscope.commits", i64::from(self.commits));
            self.span.set_attribute(
                "flowscope.commit_ms",
                self.commit_wait.as_secs_f64() * 1000.0,
            );
        }
        // Children still going when their caller ends (cancelled, failed, timed out) have
        // nobody to wait for them.
        if committed.is_ok()
            && status != RunStatus::Succeeded
            && self.workflow.steps().iter().any(|s| s.agent == "workflow")
        {
            let (engine, run_id) = (self.engine.clone(), self.run_id.clone());
            tokio::spawn(async move { engine.cancel_children(&run_id).await });
        }
        if let (Ok(()), Some(failure)) = (&committed, failure) {
            // Off the driver: the run has ended, its handler is a run of its own.
            let (engine, workflow) = (self.engine.clone(), self.workflow.clone());
            tokio::spawn(async move {
                if let Some(handler) = &workflow.def().on_failure {
                    engine.start_failure_handler(handler, failure).await;
                }
            });
        }
        match committed {
            Ok(()) => status,
            Err(e) => {
                tracing::error!(run.id = %self.run_id, error = %e, "cannot record the end of a run; leaving it for recovery");
                RunStatus::Running
            }
        }
    }

    pub(super) fn event(&mut self, kind: EventKind, at: i64) {
        self.events.push(Event {
            run_id: self.run_id.clone(),
            workflow_id: self.workflow_id.clone(),
            at,
            kind,
        });
    }

    /// Commits pending state changes, then publishes their events.
    ///
    /// In a sampled trace, a commit that took at least `trace_commits_over` (and every failed
    /// one) is a client span, so the trace shows where the run waited for storage; the root
    /// span counts them all. A span per sub-millisecond commit would double the spans of a
    /// run, and their export cost, for marks too thin to see.
    pub(super) async fn commit(&mut self) -> Result<(), String> {
        let ops = std::mem::take(&mut self.ops);
        let timing = self.sampled.then(|| {
            (
                crate::store::summarize_ops(&ops),
                std::time::SystemTime::now(),
                Instant::now(),
            )
        });
        let committed = self.engine.journal().commit(ops).await;
        if let Some((writes, started, clock)) = timing {
            let took = clock.elapsed();
            self.commits += 1;
            self.commit_wait += took;
            if took >= self.engine.inner.trace_commits_over || committed.is_err() {
                let backend = self.engine.store().backend();
                telemetry::record_span(
                    self.engine.tracer(),
                    &self.otel_cx,
                    "COMMIT run state",
                    SpanKind::Client,
                    started,
                    vec![
                        KeyValue::new("db.system.name", backend.system_name()),
                        KeyValue::new("db.operation.name", "COMMIT"),
                        KeyValue::new("db.collection.name", "run state"),
                        KeyValue::new("db.query.text", writes.text()),
                    ],
                    committed.as_ref().err().map(|e| ("db_error", e.as_str())),
                );
            }
        }
        committed?;
        for event in self.events.drain(..) {
            self.engine.publish(event);
        }
        Ok(())
    }
}
