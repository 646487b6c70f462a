//! One run, driven to its end: the DAG scheduler.
//!
//! The loop is: start every ready step (commit `AttemptStarted` first), wait for the next
//! completion, record it, compute what became ready, and repeat. A completion and the starts
//! it unlocks are committed together, so a sequential chain costs one commit per step.
//! Cancellation and the run deadline drop the in-flight futures, which aborts the agents.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt;
use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::{SpanKind, TraceContextExt as _};
use opentelemetry::KeyValue;
use serde_json::{json, Map, Value};
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::offers::{run_agent, Payload, Report};
use super::Engine;
use crate::agents::{AgentContext, AgentError};
use crate::model::{parse_duration, Workflow};
use crate::records::{Event, EventKind, RunStatus, StepStatus};
use crate::render::{self as template, redact, redact_text, render};
use crate::store::{Op, Resumable};
use crate::telemetry::{self, exemplar};

/// Stored outputs larger than this are replaced by a marker with a preview.
const MAX_OUTPUT_BYTES: usize = 1024 * 1024;
/// Times a step's process may stop while running it before the step fails, by default
/// (crash-only recovery: a server always starts, whatever is stored).
pub const MAX_INTERRUPTIONS: i64 = 3;
/// Bytes of step outputs one run holds in memory (and stores) in all: with at most
/// [`MAX_OUTPUT_BYTES`] each, a run's memory is bounded whatever its steps answer.
const MAX_HELD_BYTES: usize = 64 * 1024 * 1024;

enum Completion {
    Attempt {
        idx: usize,
        attempt: i64,
        result: Result<Value, AgentError>,
        logs: Vec<String>,
        ended_at: i64,
    },
    RetryDue {
        idx: usize,
    },
    /// Results of offered steps that other workers reported (rows of `step_offers`).
    Remote {
        watcher: u64,
        reports: Vec<(String, i64, String)>,
    },
    /// An offered step that another worker claimed before a slot freed here.
    Claimed,
}

/// Where an attempt gets its step slot.
enum Slot {
    /// Taken already.
    Held(OwnedSemaphorePermit),
    /// Waits for one here.
    Wait,
    /// Offered to the other workers: waits for one here, then runs only if the offer can
    /// still be withdrawn; gives up once the token says another worker's result is in.
    Offered(CancellationToken),
}

/// The in-memory state of one run while it executes.
pub(super) struct RunDriver {
    engine: Engine,
    workflow: Arc<Workflow>,
    run_id: String,
    workflow_id: String,
    trigger: String,
    inputs: Value,
    started: bool,
    /// When the run first started (unix ms), if it has: its time limit counts from there.
    started_at: Option<i64>,
    status: Vec<StepStatus>,
    attempts: Vec<i64>,
    outputs: Map<String, Value>,
    ready_at: Vec<i64>,
    children: Vec<Vec<usize>>,
    deps: Vec<Vec<usize>>,
    /// Attempts in flight, by step index: what cancellation must close.
    in_flight: HashMap<usize, i64>,
    /// Steps that were running when a previous process stopped.
    resumed: Vec<bool>,
    /// Resumed steps whose process stopped [`MAX_INTERRUPTIONS`] times while running them:
    /// they fail instead of starting again (a step that kills its server would otherwise do
    /// so at every start, for ever).
    crash_looped: HashSet<usize>,
    /// Bytes of outputs held in `outputs` (see [`MAX_HELD_BYTES`]).
    held_bytes: usize,
    ops: Vec<Op>,
    events: Vec<Event>,
    /// The run's `workflow.execute` span and its trace id (hex), when telemetry gave one.
    span: tracing::Span,
    trace_id: Option<String>,
    /// Whether the trace is sampled (recorded and exported). When it is not, the run keeps
    /// its root for the trace id (exemplars, logs) and creates no child spans: nobody would
    /// ever see them.
    sampled: bool,
    /// `(trace_id, span_id)` to record when the run starts (a first start only).
    root_ids: Option<(String, String)>,
    created_at: i64,
    /// The root span's OpenTelemetry context: the parent of attempt and commit spans, and
    /// the current context while the driver runs (log lines carry its ids).
    otel_cx: opentelemetry::Context,
    /// Open attempts by step index: when each started, and its `agent.execute` span (a
    /// context holding it) when the trace is sampled.
    attempt_spans: HashMap<usize, (Option<opentelemetry::Context>, Instant)>,
    /// Commits of a sampled run, and the time it waited for them.
    commits: u32,
    commit_wait: Duration,
    /// The first failed step's error kind: the run's `error.type`.
    first_error: Option<&'static str>,
    /// Offered steps still out, by step index: the attempt offered, and what stops its wait
    /// for a slot here.
    offered: HashMap<usize, (i64, CancellationToken)>,
    /// The future that waits for offered steps' results, when one is in flight: its number
    /// and what stops it.
    watching: Option<(u64, CancellationToken)>,
    watchers: u64,
    /// Cancelled when this process shuts down: start no more steps, leave the run to others.
    /// None on SQLite: nothing to hand over, and nothing to poll on the hot path.
    drain: Option<CancellationToken>,
}

impl RunDriver {
    pub(super) fn new(
        engine: Engine,
        workflow: Arc<Workflow>,
        state: Resumable,
        drain: Option<CancellationToken>,
    ) -> RunDriver {
        let steps = workflow.steps();
        let index: HashMap<&str, usize> = steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.as_str(), i))
            .collect();
        let deps: Vec<Vec<usize>> = steps
            .iter()
            .map(|s| {
                s.needs
                    .iter()
                    .filter_map(|n| index.get(n.as_str()).copied())
                    .collect()
            })
            .collect();
        let mut children = vec![Vec::new(); steps.len()];
        for (i, d) in deps.iter().enumerate() {
            for &p in d {
                children[p].push(i);
            }
        }
        let mut status = vec![StepStatus::Pending; steps.len()];
        let mut attempts = vec![0; steps.len()];
        let mut outputs = Map::new();
        for record in &state.steps {
            if let Some(&i) = index.get(record.step_id.as_str()) {
                status[i] = record.status;
                attempts[i] = record.attempts;
                if record.status == StepStatus::Succeeded {
                    outputs.insert(
                        record.step_id.clone(),
                        json!({ "output": record.output.clone().unwrap_or(Value::Null) }),
                    );
                }
            }
        }
        let resumed = status.iter().map(|s| *s == StepStatus::Running).collect();
        let span = tracing::info_span!(
            parent: None,
            "workflow.execute",
            otel.name = "workflow.execute",
            workflow.id = %state.run.workflow_id,
            workflow.name = %workflow.name(),
            workflow.version = state.run.workflow_version,
            workflow.run.id = %state.run.id,
            workflow.trigger = %state.run.trigger,
            workflow.run.status = Empty,
            error.type = Empty,
        );
        let stored = match (&state.run.trace_id, &state.run.span_id) {
            (Some(t), Some(s)) => telemetry::stored_context(t, s),
            _ => None,
        };
        let root_ids = match stored {
            // A resumed run continues its trace: this life's span is a child of the first root.
            Some(root) => {
                telemetry::set_remote_parent(&span, root);
                None
            }
            None => {
                if let Some(trigger) = state
                    .traceparent
                    .as_deref()
                    .and_then(telemetry::parse_traceparent)
                {
                    span.add_link(trigger);
                }
                telemetry::span_ids(&span)
            }
        };
        let trace_id = state
            .run
            .trace_id
            .clone()
            .or_else(|| root_ids.as_ref().map(|(t, _)| t.clone()));
        let sampled = telemetry::span_context(&span).is_some_and(|sc| sc.is_sampled());
        let otel_cx = span.context();
        RunDriver {
            otel_cx,
            span,
            trace_id,
            sampled,
            root_ids,
            created_at: state.run.created_at,
            attempt_spans: HashMap::new(),
            commits: 0,
            commit_wait: Duration::ZERO,
            first_error: None,
            drain,
            offered: HashMap::new(),
            watching: None,
            watchers: 0,
            resumed,
            crash_looped: HashSet::new(),
            held_bytes: 0,
            run_id: state.run.id.clone(),
            workflow_id: state.run.workflow_id.clone(),
            trigger: state.run.trigger.clone(),
            started: state.run.status != RunStatus::Queued,
            started_at: state.run.started_at,
            inputs: state.inputs,
            ready_at: vec![0; steps.len()],
            engine,
            workflow,
            status,
            attempts,
            outputs,
            children,
            deps,
            in_flight: HashMap::new(),
            ops: Vec::new(),
            events: Vec::new(),
        }
    }

    /// Runs to the end, under the run's `workflow.execute` span, and returns its final state.
    pub(super) async fn drive(self, cancel: CancellationToken) -> RunStatus {
        let metrics = self.engine.metrics().clone();
        let active = metrics
            .active
            .get_or_create_owned(&telemetry::WorkflowLabel {
                workflow: self.workflow_id.clone(),
            });
        active.inc();
        // Attached as the OpenTelemetry context on every poll, rather than entering the
        // `tracing` span: the same parent for spans and ids for log lines, without a trip
        // through the subscriber's layers on each poll (measured: ~2 % of the CPU with export).
        let cx = self.otel_cx.clone();
        // Only among several processes can a run have waited for offered steps' results.
        let offers = self
            .engine
            .cluster()
            .is_some()
            .then(|| (self.engine.clone(), self.run_id.clone()));
        let status = self.drive_inner(cancel).with_context(cx).await;
        if let Some((engine, run_id)) = offers {
            engine.forget_step_done_signal(&run_id);
        }
        active.dec();
        status
    }

    async fn drive_inner(mut self, cancel: CancellationToken) -> RunStatus {
        let now = now_ms();
        if cancel.is_cancelled() {
            return self
                .end_all(RunStatus::Cancelled, "cancelled before it started")
                .await;
        }
        if !self.started {
            // The run's duration (and its time limit) count from here.
            self.started = true;
            self.started_at = Some(now);
            self.engine
                .metrics()
                .expect_run(&self.workflow_id, &self.trigger);
            let wait = (now - self.created_at).max(0) as f64 / 1000.0;
            let (ex, at) = exemplar(self.trace_id.as_deref());
            self.engine.metrics().queue_wait.observe(wait, ex, at);
            self.ops.push(Op::StartRun {
                run_id: self.run_id.clone(),
                at: now,
                trace: self.root_ids.take(),
            });
            self.event(
                EventKind::Run {
                    status: RunStatus::Running,
                },
                now,
            );
        }
        if self.engine.inner.max_interruptions > 0 && self.resumed.iter().any(|r| *r) {
            self.find_crash_loops().await;
        }
        // Resumed runs: a step that was running or retrying when the process stopped runs again.
        let mut ready: VecDeque<usize> = (0..self.status.len())
            .filter(|&i| self.is_ready(i))
            .collect();
        ready.iter().for_each(|&i| self.ready_at[i] = now);
        // A resumed run keeps its original deadline: the time before the restart counts.
        let elapsed = Duration::from_millis(self.started_at.map_or(0, |s| (now - s).max(0)) as u64);
        let deadline = self
            .workflow
            .timeout()
            .map(|t| tokio::time::Instant::now() + t.saturating_sub(elapsed));
        if self.workflow.timeout().is_some_and(|t| elapsed >= t) {
            return self
                .end_all(RunStatus::TimedOut, "the run exceeded its timeout")
                .await;
        }
        let mut in_flight: FuturesUnordered<BoxFuture<'static, Completion>> =
            FuturesUnordered::new();
        let drain = self.drain.clone().unwrap_or_default();
        let can_drain = self.drain.is_some();

        loop {
            let draining = can_drain && drain.is_cancelled();
            let spawned = if draining {
                0
            } else {
                self.start_ready(&mut ready, &mut in_flight).await
            };
            if in_flight.is_empty() && ready.is_empty() {
                break;
            }
            // Shutting down with nothing in flight: record what finished, leave the rest.
            if in_flight.is_empty() {
                if let Err(e) = self.commit().await {
                    tracing::warn!(run.id = %self.run_id, error = %e, "cannot record run progress at shutdown");
                }
                return RunStatus::Running;
            }
            // The last completion's commit is folded into the final one.
            if spawned > 0 || !self.ops.is_empty() {
                if let Err(e) = self.commit().await {
                    tracing::error!(run.id = %self.run_id, error = %e, "cannot record run progress; leaving it for recovery");
                    return RunStatus::Running;
                }
            }
            let next = tokio::select! {
                biased;
                _ = cancel.cancelled() => return self.end_all(RunStatus::Cancelled, "the run was cancelled").await,
                _ = sleep_until(deadline) => return self.end_all(RunStatus::TimedOut, "the run exceeded its timeout").await,
                _ = drain.cancelled(), if can_drain && !draining => continue,
                next = in_flight.next() => next,
            };
            let Some(first) = next else { continue };
            self.handle(first, &mut ready, &mut in_flight);
            // Everything else already finished joins the same commit.
            while let Some(Some(more)) = in_flight.next().now_or_never() {
                self.handle(more, &mut ready, &mut in_flight);
            }
        }
        let failed = self.status.contains(&StepStatus::Failed);
        let final_status = if failed {
            RunStatus::Failed
        } else {
            RunStatus::Succeeded
        };
        let error = failed.then(|| {
            let names: Vec<&str> = self.failed_steps().collect();
            format!("step {} failed", names.join(", "))
        });
        self.finish(final_status, error).await
    }

    /// Ends an attempt's span and counts it: status, duration (with the trace as exemplar),
    /// error type, and an `llm` step's tokens and cost.
    /// Returns the attempt's span context, for the log line of a failure.
    fn end_attempt_span(
        &mut self,
        idx: usize,
        result: &Result<Value, AgentError>,
    ) -> Option<opentelemetry::Context> {
        let (span, started) = self.attempt_spans.remove(&idx)?;
        let agent = self.workflow.steps()[idx].agent.clone();
        let metrics = self.engine.metrics();
        let status = if result.is_ok() {
            "succeeded"
        } else {
            "failed"
        };
        if let Some(cx) = &span {
            // Span attributes leave the process: no secret in the message.
            let message = result
                .as_ref()
                .err()
                .map(|e| redact_text(&e.message, &self.engine.secrets().values));
            telemetry::end_span(
                cx,
                vec![KeyValue::new("agent.run.status", status)],
                result
                    .as_ref()
                    .err()
                    .map(|e| e.kind)
                    .zip(message.as_deref()),
            );
        }
        metrics
            .agent_runs
            .get_or_create(&telemetry::AgentStatusLabels {
                agent: agent.clone(),
                workflow: self.workflow_id.clone(),
                status: status.to_string(),
            })
            .inc();
        let (ex, ts) = exemplar(self.trace_id.as_deref());
        metrics
            .agent_duration
            .get_or_create(&telemetry::AgentLabels {
                agent: agent.clone(),
                workflow: self.workflow_id.clone(),
            })
            .observe(started.elapsed().as_secs_f64(), ex, ts);
        match result {
            Err(e) => {
                metrics
                    .agent_errors
                    .get_or_create(&telemetry::AgentErrorLabels {
                        agent,
                        workflow: self.workflow_id.clone(),
                        error_type: e.kind.to_string(),
                    })
                    .inc();
            }
            Ok(output) => {
                // The `llm` agent's output: `{model, usage: {input_tokens, output_tokens}, cost_usd}`.
                // Only agents that report spend: any other output may hold a `model` key of
                // anything, and each value would be a new series.
                let model = (agent == "llm")
                    .then(|| output.get("model").and_then(Value::as_str))
                    .flatten()
                    .map(|m| m.chars().take(64).collect::<String>());
                if let Some(model) = model.as_deref() {
                    let tokens = |d: &str| output["usage"][d].as_u64().unwrap_or(0);
                    let labels = |direction: &str| telemetry::TokenLabels {
                        agent: agent.clone(),
                        workflow: self.workflow_id.clone(),
                        model: model.to_string(),
                        direction: direction.to_string(),
                    };
                    metrics
                        .agent_tokens
                        .get_or_create(&labels("input"))
                        .inc_by(tokens("input_tokens"));
                    metrics
                        .agent_tokens
                        .get_or_create(&labels("output"))
                        .inc_by(tokens("output_tokens"));
                    if let Some(cost) = output["cost_usd"].as_f64() {
                        metrics
                            .agent_cost
                            .get_or_create(&telemetry::ModelLabels {
                                agent: agent.clone(),
                                workflow: self.workflow_id.clone(),
                                model: model.to_string(),
                            })
                            .inc_by(cost);
                    }
                }
            }
        }
        span
    }

    fn failed_steps(&self) -> impl Iterator<Item = &str> {
        self.status
            .iter()
            .enumerate()
            .filter(|(_, s)| **s == StepStatus::Failed)
            .map(|(i, _)| self.workflow.steps()[i].id.as_str())
    }

    fn is_ready(&self, i: usize) -> bool {
        matches!(
            self.status[i],
            StepStatus::Pending | StepStatus::Running | StepStatus::Retrying
        ) && self.deps[i]
            .iter()
            .all(|&d| self.status[d] == StepStatus::Succeeded)
    }

    /// Renders and records the start of every ready step; returns how many were spawned.
    async fn start_ready(
        &mut self,
        ready: &mut VecDeque<usize>,
        in_flight: &mut FuturesUnordered<BoxFuture<'static, Completion>>,
    ) -> usize {
        let mut spawned = 0;
        while let Some(idx) = ready.pop_front() {
            let now = now_ms();
            let step = &self.workflow.steps()[idx];
            let attempt = self.attempts[idx] + 1;
            self.attempts[idx] = attempt;
            self.status[idx] = StepStatus::Running;
            let rendered = if self.crash_looped.remove(&idx) {
                Err(template::RenderError {
                    kind: "crash_loop",
                    message: format!(
                        "the process running this step stopped {} times while it ran, so it is \
                         not started again (does the step crash the server?)",
                        self.engine.inner.max_interruptions
                    ),
                })
            } else {
                self.render_with(idx).await
            };
            let mut input = Value::Object(rendered.clone().unwrap_or_default());
            redact(&mut input, &self.engine.secrets().values);
            let span = self.sampled.then(|| {
                telemetry::start_span(
                    self.engine.tracer(),
                    &self.otel_cx,
                    "agent.execute",
                    SpanKind::Internal,
                    None,
                    vec![
                        KeyValue::new("agent.kind", step.agent.clone()),
                        KeyValue::new("agent.step.id", step.id.clone()),
                        KeyValue::new("agent.attempt", attempt),
                    ],
                )
            });
            let span_id = span
                .as_ref()
                .map(|cx| telemetry::hex(&cx.span().span_context().span_id().to_bytes()));
            self.attempt_spans.insert(idx, (span, Instant::now()));
            self.ops.push(Op::AttemptStarted {
                run_id: self.run_id.clone(),
                step_id: step.id.clone(),
                attempt,
                ready_at: self.ready_at[idx],
                at: now,
                input,
                resumed: std::mem::take(&mut self.resumed[idx]),
                span_id,
                agent: step.agent.clone(),
                worker: self.engine.worker_name(),
            });
            self.event(
                EventKind::Step {
                    step_id: step.id.clone(),
                    status: StepStatus::Running,
                    attempt,
                },
                now,
            );
            match rendered {
                Err(e) => {
                    let result = Err(AgentError::new(e.kind, e.message));
                    self.handle(
                        Completion::Attempt {
                            idx,
                            attempt,
                            result,
                            logs: Vec::new(),
                            ended_at: now,
                        },
                        ready,
                        in_flight,
                    );
                }
                Ok(with) => {
                    let slot = match self.engine.step_slots().try_acquire_owned() {
                        Ok(permit) => Slot::Held(permit),
                        Err(_) => match self.offer(idx, attempt, &with) {
                            Some(resolved) => Slot::Offered(resolved),
                            None => Slot::Wait,
                        },
                    };
                    in_flight.push(self.attempt_future(idx, attempt, with, slot));
                    self.in_flight.insert(idx, attempt);
                    spawned += 1;
                }
            }
        }
        if !self.offered.is_empty() && self.watching.is_none() {
            in_flight.push(self.watch_offers());
        }
        spawned
    }

    /// The data `transform` evaluates over; null for the other agents.
    fn agent_data(&self, idx: usize) -> Value {
        if self.workflow.steps()[idx].agent == "transform" {
            json!({ "inputs": self.inputs, "steps": self.outputs })
        } else {
            Value::Null
        }
    }

    /// Offers a step to the other workers, in the commit that starts its attempt, when this
    /// process has no free slot for it; `None` when it must wait for one here instead (alone,
    /// stopping, or a secret in its input). The token is cancelled once another worker's
    /// result is recorded.
    fn offer(
        &mut self,
        idx: usize,
        attempt: i64,
        with: &Map<String, Value>,
    ) -> Option<CancellationToken> {
        if !self.engine.can_offer() {
            return None;
        }
        let step = &self.workflow.steps()[idx];
        let traceparent = self.attempt_spans.get(&idx).and_then(|(cx, _)| {
            let cx = cx.as_ref()?;
            let span = cx.span();
            let sc = span.span_context();
            Some(format!(
                "00-{}-{}-{:02x}",
                sc.trace_id(),
                sc.span_id(),
                sc.trace_flags().to_u8()
            ))
        });
        let payload = Payload {
            with: with.clone(),
            data: self.agent_data(idx),
            timeout_ms: step
                .timeout
                .as_deref()
                .and_then(|t| parse_duration(t).ok())
                .map(|t| t.as_millis() as u64),
            traceparent,
        };
        let (Some(payload), Some(owner)) =
            (self.engine.offer_payload(&payload), self.engine.worker_id())
        else {
            return None;
        };
        self.ops.push(Op::OfferStep {
            run_id: self.run_id.clone(),
            step_id: step.id.clone(),
            attempt,
            owner,
            agent: step.agent.clone(),
            payload,
            at: now_ms(),
        });
        let resolved = CancellationToken::new();
        self.offered.insert(idx, (attempt, resolved.clone()));
        Some(resolved)
    }

    /// Waits for results of this run's offered steps: a notification from the worker that
    /// reports one, or the poll interval; stopped once no offer is out.
    fn watch_offers(&mut self) -> BoxFuture<'static, Completion> {
        let stop = CancellationToken::new();
        self.watchers += 1;
        let watcher = self.watchers;
        self.watching = Some((watcher, stop.clone()));
        let engine = self.engine.clone();
        let run_id = self.run_id.clone();
        let signal = self.engine.step_done_signal(&run_id);
        let poll = self.engine.worker_poll();
        async move {
            let woken = async {
                match &signal {
                    Some(n) => n.notified().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = stop.cancelled() => return Completion::Remote { watcher, reports: Vec::new() },
                _ = woken => {}
                _ = tokio::time::sleep(poll) => {}
            }
            // On its own task, for the same reason as a withdrawal.
            let read = {
                let run_id = run_id.clone();
                tokio::spawn(async move { engine.store().step_results(&run_id).await })
            };
            let reports = match read.await {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => {
                    tracing::warn!(run.id = %run_id, error = %e, "cannot read the results of offered steps; retrying");
                    Vec::new()
                }
                Err(e) => {
                    tracing::warn!(run.id = %run_id, error = %e, "cannot read the results of offered steps; retrying");
                    Vec::new()
                }
            };
            Completion::Remote { watcher, reports }
        }
        .boxed()
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
            if self.offered.get(&idx).map(|(a, _)| *a) != Some(attempt) {
                continue;
            }
            if let Some((_, resolved)) = self.offered.remove(&idx) {
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
        if !self.offered.is_empty() && self.watching.is_none() {
            in_flight.push(self.watch_offers());
        }
    }

    /// Marks the resumed steps that have been interrupted too often (see `crash_looped`).
    async fn find_crash_loops(&mut self) {
        let counts = match self.engine.store().interruptions(&self.run_id).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(run.id = %self.run_id, error = %e, "cannot count the run's interrupted attempts");
                return;
            }
        };
        for (idx, step) in self.workflow.steps().iter().enumerate() {
            let times = counts.get(&step.id).copied().unwrap_or(0);
            if self.resumed[idx] && times >= self.engine.inner.max_interruptions {
                tracing::error!(run.id = %self.run_id, step.id = %step.id, times, "a step's process stopped every time it ran; failing the step");
                self.crash_looped.insert(idx);
            }
        }
    }

    async fn render_with(&self, idx: usize) -> Result<Map<String, Value>, template::RenderError> {
        let with = &self.workflow.steps()[idx].with;
        let templated = with.values().any(has_template);
        if !templated {
            return Ok(with.clone());
        }
        // What templates read, the same for both places they render.
        #[derive(serde::Serialize)]
        struct Context<'a> {
            inputs: &'a Value,
            steps: &'a Map<String, Value>,
            run: Value,
            secrets: &'a HashMap<String, String>,
        }
        let secrets = self.engine.secrets();
        let context = Context {
            inputs: &self.inputs,
            steps: &self.outputs,
            run: json!({ "id": self.run_id, "workflow": self.workflow_id, "trigger": self.trigger }),
            secrets: &secrets.map,
        };
        if !with.values().all(template::all_bounded) {
            // Could grow past any memory: rendered in the sandbox's child, under its limits.
            return self
                .engine
                .sandbox()
                .render(with, &context)
                .await
                .map_err(|e| template::RenderError {
                    kind: e.kind,
                    message: e.message,
                });
        }
        let ctx = minijinja::Value::from_serialize(&context);
        // Bounded templates, yet a filter over a large output (`tojson` of 64 MB) takes a
        // while: on the multi-threaded runtime this worker hands its other tasks to the rest
        // while it renders, so the server keeps answering.
        match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => {
                tokio::task::block_in_place(|| render(with, &ctx))
            }
            _ => render(with, &ctx),
        }
    }

    fn attempt_future(
        &self,
        idx: usize,
        attempt: i64,
        with: Map<String, Value>,
        slot: Slot,
    ) -> BoxFuture<'static, Completion> {
        let step = &self.workflow.steps()[idx];
        let agent = self.engine.agent(&step.agent);
        let timeout = step.timeout.as_deref().and_then(|t| parse_duration(t).ok());
        let data = Arc::new(self.agent_data(idx));
        let ctx = AgentContext::new(
            self.run_id.clone(),
            step.id.clone(),
            attempt,
            data,
            self.engine.http(),
        )
        .with_secrets(self.engine.secrets());
        let slots = self.engine.step_slots();
        let kind = step.agent.clone();
        let span = self.attempt_spans.get(&idx).and_then(|(s, _)| s.clone());
        // Only an offered step may need to take its offer back.
        let withdraw = matches!(slot, Slot::Offered(_))
            .then(|| (self.engine.clone(), self.run_id.clone(), step.id.clone()));
        let work = async move {
            let _permit = match slot {
                Slot::Held(permit) => Some(permit),
                Slot::Wait => slots.acquire_owned().await.ok(),
                Slot::Offered(resolved) => {
                    let permit = tokio::select! {
                        p = slots.acquire_owned() => p.ok(),
                        _ = resolved.cancelled() => return Completion::Claimed,
                    };
                    // Claimed meanwhile (or the database is away): the result comes from
                    // whoever runs it, or this process's own claim loop picks it up.
                    let Some((engine, run_id, step_id)) = withdraw else {
                        return Completion::Claimed;
                    };
                    // On its own task: the driver polls this future only between commits, and
                    // a connection held meanwhile could starve the journal of the pool.
                    let withdrawn = tokio::spawn(async move {
                        engine
                            .store()
                            .withdraw_offer(&run_id, &step_id, attempt)
                            .await
                    })
                    .await;
                    if !matches!(withdrawn, Ok(Ok(true))) {
                        return Completion::Claimed;
                    }
                    permit
                }
            };
            let result = run_agent(agent, &kind, &ctx, &with, timeout).await;
            Completion::Attempt {
                idx,
                attempt,
                result,
                logs: ctx.take_logs(),
                ended_at: now_ms(),
            }
        };
        // The attempt's span is the current context while it runs: the agents' own spans
        // (HTTP, chat) become its children.
        match span {
            Some(cx) => work.with_context(cx).boxed(),
            None => work.boxed(),
        }
    }

    fn handle(
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
                self.ready_at[idx] = now_ms();
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
        self.in_flight.remove(&idx);
        // Withdrawn and run here: the offer is gone; stop waiting once none is out.
        if !self.offered.is_empty()
            && self.offered.remove(&idx).is_some()
            && self.offered.is_empty()
        {
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
                self.status[idx] = StepStatus::Succeeded;
                // Downstream steps see what is stored (a resumed run reads it back), so a
                // run holds at most MAX_OUTPUT_BYTES (plus a preview) per step in memory.
                let (mut kept, bytes) = limit_size(output);
                self.held_bytes += bytes.min(MAX_OUTPUT_BYTES);
                if self.held_bytes > MAX_HELD_BYTES {
                    kept = json!({ "truncated": true, "bytes": bytes, "reason": format!("the run's outputs exceed {MAX_HELD_BYTES} bytes in all; later outputs are not kept") });
                }
                let mut stored = kept.clone();
                redact(&mut stored, secrets);
                self.outputs
                    .insert(step_id.clone(), json!({ "output": kept }));
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
                    },
                    at,
                );
                for &c in &self.children[idx] {
                    if self.is_ready(c) && !ready.contains(&c) {
                        self.ready_at[c] = at;
                        ready.push_back(c);
                    }
                }
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
                    "crash_loop" => 0,
                    _ => retry.map(|r| r.max_attempts as i64).unwrap_or(1),
                };
                let status = if attempt < max_attempts {
                    StepStatus::Retrying
                } else {
                    StepStatus::Failed
                };
                if status == StepStatus::Failed {
                    self.first_error.get_or_insert(e.kind);
                }
                self.status[idx] = status;
                self.ops.push(Op::AttemptFinished {
                    run_id: self.run_id.clone(),
                    step_id: step_id.clone(),
                    attempt,
                    status,
                    output: None,
                    error: Some((e.kind.to_string(), message)),
                    logs,
                    at,
                });
                self.event(
                    EventKind::Step {
                        step_id,
                        status,
                        attempt,
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
                    self.skip_downstream(idx, at);
                }
            }
        }
    }

    /// A failed step's descendants will never run.
    fn skip_downstream(&mut self, idx: usize, at: i64) {
        let mut stack = self.children[idx].clone();
        let mut skipped = Vec::new();
        while let Some(c) = stack.pop() {
            if self.status[c] == StepStatus::Pending {
                // Marked now so a step reached by two paths is listed once.
                self.status[c] = StepStatus::Skipped;
                skipped.push(c);
                stack.extend(self.children[c].iter().copied());
            }
        }
        self.end_steps(&skipped, StepStatus::Skipped, at);
    }

    /// Marks steps that will not run (skipped, cancelled) in one op, with their events.
    fn end_steps(&mut self, steps: &[usize], status: StepStatus, at: i64) {
        if steps.is_empty() {
            return;
        }
        let mut step_ids = Vec::with_capacity(steps.len());
        for &i in steps {
            self.status[i] = status;
            let step_id = self.workflow.steps()[i].id.clone();
            self.event(
                EventKind::Step {
                    step_id: step_id.clone(),
                    status,
                    attempt: 0,
                },
                at,
            );
            step_ids.push(step_id);
        }
        self.ops.push(Op::StepsEnded {
            run_id: self.run_id.clone(),
            step_ids,
            status,
            at,
        });
    }

    /// Closes an open attempt as cancelled (run cancelled or timed out).
    fn close_attempt(&mut self, idx: usize, attempt: i64, kind: &str, reason: &str, at: i64) {
        if let Some((Some(cx), _)) = self.attempt_spans.remove(&idx) {
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
        self.status[idx] = StepStatus::Cancelled;
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
            },
            at,
        );
    }

    /// Cancel or time out: close in-flight attempts, end waiting steps, finish the run.
    async fn end_all(mut self, status: RunStatus, reason: &str) -> RunStatus {
        let at = now_ms();
        let kind = if status == RunStatus::TimedOut {
            "timeout"
        } else {
            "cancelled"
        };
        let mut in_flight: Vec<(usize, i64)> = self.in_flight.drain().collect();
        // Steps resumed from a stopped process but not restarted yet have an open attempt too.
        for i in 0..self.status.len() {
            if std::mem::take(&mut self.resumed[i]) && self.attempts[i] > 0 {
                in_flight.push((i, self.attempts[i]));
            }
        }
        in_flight.sort_unstable();
        for (idx, attempt) in in_flight {
            self.close_attempt(idx, attempt, kind, reason, at);
        }
        if !self.offered.is_empty() {
            self.offered.clear();
            self.ops.push(Op::CloseOffers {
                run_id: self.run_id.clone(),
            });
        }
        let waiting: Vec<usize> = (0..self.status.len())
            .filter(|&i| !self.status[i].is_finished())
            .collect();
        self.end_steps(&waiting, StepStatus::Cancelled, at);
        self.finish(status, Some(reason.to_string())).await
    }

    async fn finish(mut self, status: RunStatus, error: Option<String>) -> RunStatus {
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
        self.ops.push(Op::FinishRun {
            run_id: self.run_id.clone(),
            status,
            error,
            at,
            frees_slot: self.workflow.def().concurrency.is_some(),
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
        match committed {
            Ok(()) => status,
            Err(e) => {
                tracing::error!(run.id = %self.run_id, error = %e, "cannot record the end of a run; leaving it for recovery");
                RunStatus::Running
            }
        }
    }

    fn event(&mut self, kind: EventKind, at: i64) {
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
    async fn commit(&mut self) -> Result<(), String> {
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

fn has_template(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains("{{") || s.contains("{%"),
        Value::Array(a) => a.iter().any(has_template),
        Value::Object(o) => o.values().any(has_template),
        _ => false,
    }
}

/// Exponential backoff with equal jitter: half the delay fixed, half random.
fn backoff(base: Option<&str>, max: Option<&str>, attempt: i64) -> Duration {
    let base = base
        .and_then(|b| parse_duration(b).ok())
        .unwrap_or(Duration::from_secs(1));
    let max = max
        .and_then(|m| parse_duration(m).ok())
        .unwrap_or(Duration::from_secs(300));
    let exp = base
        .saturating_mul(1u32 << (attempt - 1).clamp(0, 20) as u32)
        .min(max);
    exp.mul_f64(0.5 + 0.5 * fastrand::f64())
}

/// Outputs over the limit are stored as a marker with a preview, never silently dropped.
/// The output as kept (a preview past [`MAX_OUTPUT_BYTES`]) and its size in bytes.
fn limit_size(output: Value) -> (Value, usize) {
    let text = output.to_string();
    if text.len() <= MAX_OUTPUT_BYTES {
        return (output, text.len());
    }
    let preview: String = text.chars().take(4096).collect();
    (
        json!({ "truncated": true, "bytes": text.len(), "limit_bytes": MAX_OUTPUT_BYTES, "preview": preview }),
        text.len(),
    )
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

pub(crate) fn now_ms() -> i64 {
    crate::store::now_ms()
}
