//! One run, driven to its end: the DAG scheduler.
//!
//! The loop is: start every ready step (commit `AttemptStarted` first), wait for the next
//! completion, record it, decide what it unlocks, and repeat. A completion and the starts
//! it unlocks are committed together, so a sequential chain costs one commit per step.
//! Cancellation and the run deadline drop the in-flight futures, which aborts the agents.
//!
//! - this file: the run's state (one [`StepState`] per step) and the driving loop;
//! - `flow`: which step runs next: needs, `if:` conditions, skip reasons;
//! - `items`: a `for_each` step's items, each its own attempt sequence, recorded as they end;
//! - `start`: starting attempts: rendering, a slot here or an offer to other workers;
//! - `record`: recording completions, the run's end, and committing;
//! - `trace`: an attempt's span and metrics.

mod flow;
mod items;
mod record;
mod start;
mod trace;
mod wait;

pub(crate) use wait::MAX_EVENT_KEY_BYTES;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt;
use opentelemetry::context::FutureExt as _;
use serde_json::{json, Map, Value};
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::Engine;
use crate::agents::AgentError;
use crate::model::{parse_duration, Workflow};
use crate::records::{Event, EventKind, RunStatus, StepStatus};
use crate::render::RenderError;
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
    /// A step's `with`, rendered in the sandbox's child off the driver: the step starts next.
    Rendered {
        idx: usize,
        result: Result<Map<String, Value>, RenderError>,
        /// Of the step's timeout: the agent gets the rest.
        took: Duration,
    },
    /// Results of offered steps that other workers reported (rows of `step_offers`).
    Remote {
        watcher: u64,
        reports: Vec<(String, i64, String)>,
    },
    /// An offered step that another worker claimed before a slot freed here.
    Claimed,
}

/// A `with` rendered in the sandbox, and the time that took of the step's timeout.
type Rendered = (Result<Map<String, Value>, RenderError>, Duration);

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

/// What the driver knows of one step: its one state record.
struct StepState {
    status: StepStatus,
    attempts: i64,
    /// When it became ready (unix ms): its queue wait is counted from here.
    ready_at: i64,
    /// It was running when a previous process stopped: its open attempt is closed when it
    /// starts again.
    resumed: bool,
    /// The attempt in flight here, if any: what cancellation must close.
    in_flight: Option<i64>,
    /// Why it fails as it starts: a condition that could not be evaluated, or a resumed step
    /// whose process stopped [`MAX_INTERRUPTIONS`] times while running it (a step that kills
    /// its server would otherwise do so at every start, for ever).
    doomed: Option<RenderError>,
    /// Its `with` rendered in the sandbox for its next start, and how long that took.
    rendered: Option<Rendered>,
    /// Its open attempt: when it started, and its `agent.execute` span (a context holding
    /// it) when the trace is sampled.
    attempt_span: Option<(Option<opentelemetry::Context>, Instant)>,
    /// Offered to the other workers and still out: the attempt offered, and what stops its
    /// wait for a slot here.
    offered: Option<(i64, CancellationToken)>,
    /// Its attempt waits without a worker (see `wait`).
    parked: Option<wait::Parked>,
    /// The output a failed attempt still records (a rejected approval's decision).
    failed_output: Option<Value>,
}

impl StepState {
    fn pending() -> StepState {
        StepState {
            status: StepStatus::Pending,
            attempts: 0,
            ready_at: 0,
            resumed: false,
            in_flight: None,
            doomed: None,
            rendered: None,
            attempt_span: None,
            offered: None,
            parked: None,
            failed_output: None,
        }
    }
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
    /// By step index.
    steps: Vec<StepState>,
    /// What templates and conditions read as `steps`: by step id, `{output, status}` of each
    /// finished step (and `error` of a failed one).
    outputs: Map<String, Value>,
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
    /// Commits of a sampled run, and the time it waited for them.
    commits: u32,
    commit_wait: Duration,
    /// The first failed step's error kind: the run's `error.type`.
    first_error: Option<&'static str>,
    /// How many steps are offered to the other workers and still out.
    offers_out: usize,
    /// The future that waits for offered steps' results, when one is in flight: its number
    /// and what stops it.
    watching: Option<(u64, CancellationToken)>,
    watchers: u64,
    /// The run was cancelled and its `always()`/`cancelled()` steps are running: it ends
    /// cancelled once they have.
    cancelling: bool,
    /// Cancelled when this process shuts down: start no more steps, leave the run to others.
    /// None on SQLite: nothing to hand over, and nothing to poll on the hot path.
    drain: Option<CancellationToken>,
    /// Steps whose attempts wait without a worker.
    parked: usize,
    /// The run has waited: its end removes its waits.
    had_waits: bool,
    /// Asked to pause: no new attempt starts; once none is in flight, the run parks `paused`.
    pausing: bool,
    /// Waits resolved, a pause asked or lifted: look again.
    signal: Arc<tokio::sync::Notify>,
}

impl RunDriver {
    pub(super) fn new(
        engine: Engine,
        workflow: Arc<Workflow>,
        state: Resumable,
        drain: Option<CancellationToken>,
    ) -> RunDriver {
        let defs = workflow.steps();
        let index: HashMap<&str, usize> = defs
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.as_str(), i))
            .collect();
        let mut steps: Vec<StepState> = defs.iter().map(|_| StepState::pending()).collect();
        let mut outputs = Map::new();
        for record in &state.steps {
            if let Some(&i) = index.get(record.step_id.as_str()) {
                let step = &mut steps[i];
                step.status = record.status;
                step.attempts = record.attempts;
                step.resumed = record.status == StepStatus::Running;
                if record.status.is_finished() {
                    outputs.insert(
                        record.step_id.clone(),
                        step_view(
                            record.status,
                            record.output.clone().unwrap_or(Value::Null),
                            record.error_message.as_deref(),
                        ),
                    );
                }
            }
        }
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
                    // A child run is part of its caller's trace, under the calling attempt;
                    // any other run links to the request that triggered it.
                    if state.run.trigger == "workflow" {
                        telemetry::set_remote_parent(&span, trigger);
                    } else {
                        span.add_link(trigger);
                    }
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
        let signal = engine.wait_signal(&state.run.id);
        let mut driver = RunDriver {
            parked: 0,
            had_waits: false,
            pausing: state.pause_requested,
            signal,
            otel_cx,
            span,
            trace_id,
            sampled,
            root_ids,
            created_at: state.run.created_at,
            commits: 0,
            commit_wait: Duration::ZERO,
            first_error: None,
            drain,
            offers_out: 0,
            watching: None,
            watchers: 0,
            cancelling: false,
            held_bytes: 0,
            run_id: state.run.id.clone(),
            workflow_id: state.run.workflow_id.clone(),
            trigger: state.run.trigger.clone(),
            started: state.run.status != RunStatus::Queued,
            started_at: state.run.started_at,
            inputs: state.inputs,
            engine,
            workflow,
            steps,
            outputs,
            ops: Vec::new(),
            events: Vec::new(),
        };
        driver.adopt_waits(&state.waits);
        driver
    }

    /// Takes step `idx`'s offer, if it has one out.
    fn take_offer(&mut self, idx: usize) -> Option<(i64, CancellationToken)> {
        let offer = self.steps[idx].offered.take();
        self.offers_out -= usize::from(offer.is_some());
        offer
    }

    /// Records the offer of step `idx`'s attempt.
    fn put_offer(&mut self, idx: usize, offer: (i64, CancellationToken)) {
        if self.steps[idx].offered.replace(offer).is_none() {
            self.offers_out += 1;
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
        let (engine, run_id) = (self.engine.clone(), self.run_id.clone());
        let status = self.drive_inner(cancel).with_context(cx).await;
        engine.forget_wait_signal(&run_id);
        if let Some((engine, run_id)) = offers {
            engine.forget_step_done_signal(&run_id);
        }
        active.dec();
        status
    }

    async fn drive_inner(mut self, cancel: CancellationToken) -> RunStatus {
        let now = now_ms();
        // A parked run is woken to be cancelled: its clean-up steps still run.
        let cancelled_early = cancel.is_cancelled();
        if cancelled_early && (!self.started || !self.workflow.any_checks_status()) {
            let why = if self.started {
                "the run was cancelled"
            } else {
                "cancelled before it started"
            };
            return self.end_all(RunStatus::Cancelled, why).await;
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
        if self.engine.inner.max_interruptions > 0 && self.steps.iter().any(|s| s.resumed) {
            self.find_crash_loops().await;
        }
        let mut ready = self.first_ready(now);
        if cancelled_early {
            self.begin_cleanup(&mut ready);
        }
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
        // Waits resolved while the run was parked, or fallen due.
        if self.parked > 0 {
            self.poll_waits(&mut ready, &mut in_flight).await;
        }
        let signal = self.signal.clone();
        let poll = self
            .engine
            .cluster()
            .is_some()
            .then(|| self.engine.worker_poll());

        loop {
            let draining = can_drain && drain.is_cancelled();
            let spawned = if draining || self.pausing {
                0
            } else {
                self.start_ready(&mut ready, &mut in_flight).await
            };
            if in_flight.is_empty() && ready.is_empty() && self.parked == 0 {
                break;
            }
            // Nothing runs, and what is left waits (or must not start): the run parks.
            if in_flight.is_empty() && !draining && (ready.is_empty() || self.pausing) {
                match self.park(&mut ready, &mut in_flight).await {
                    wait::Parking::Parked(status) => return status,
                    wait::Parking::GoOn => continue,
                    wait::Parking::Cancel => {
                        if self.cancelling || !self.workflow.any_checks_status() {
                            return self
                                .end_all(RunStatus::Cancelled, "the run was cancelled")
                                .await;
                        }
                        self.begin_cleanup(&mut ready);
                        continue;
                    }
                    wait::Parking::Failed => return RunStatus::Running,
                }
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
            // When to look at the waits again without a signal: the next due time, and among
            // several processes the poll interval (a resolution there is signalled, unless lost).
            let look_again = (self.parked > 0)
                .then(|| {
                    let due = self
                        .steps
                        .iter()
                        .filter_map(|s| s.parked.as_ref()?.due_at)
                        .min();
                    let due = due.map(|d| Duration::from_millis((d - now_ms()).max(0) as u64));
                    match (due, poll) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    }
                })
                .flatten()
                .map(|d| tokio::time::Instant::now() + d);
            let next = tokio::select! {
                biased;
                _ = cancel.cancelled(), if !self.cancelling => {
                    if !self.workflow.any_checks_status() {
                        return self.end_all(RunStatus::Cancelled, "the run was cancelled").await;
                    }
                    // Dropping the futures aborts the agents; clean-up steps start afresh.
                    in_flight = FuturesUnordered::new();
                    self.begin_cleanup(&mut ready);
                    continue;
                }
                _ = sleep_until(deadline) => return self.end_all(RunStatus::TimedOut, "the run exceeded its timeout").await,
                _ = drain.cancelled(), if can_drain && !draining => continue,
                _ = signal.notified() => {
                    self.look_again(&mut ready, &mut in_flight).await;
                    continue;
                }
                _ = sleep_until(look_again), if look_again.is_some() => {
                    self.poll_waits(&mut ready, &mut in_flight).await;
                    continue;
                }
                next = in_flight.next() => next,
            };
            let Some(first) = next else { continue };
            self.handle(first, &mut ready, &mut in_flight);
            // Everything else already finished joins the same commit.
            while let Some(Some(more)) = in_flight.next().now_or_never() {
                self.handle(more, &mut ready, &mut in_flight);
            }
        }
        if self.cancelling {
            return self
                .end_all(RunStatus::Cancelled, "the run was cancelled")
                .await;
        }
        let failed = self.failed_steps().next().is_some();
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

    /// Steps that failed the run: failed, and not allowed to (`continue_on_error`).
    fn failed_steps(&self) -> impl Iterator<Item = &str> {
        self.steps
            .iter()
            .zip(self.workflow.steps())
            .filter(|(s, def)| s.status == StepStatus::Failed && !def.continue_on_error)
            .map(|(_, def)| def.id.as_str())
    }
}

/// What templates read, the same for both places they render; conditions read it without
/// secrets.
#[derive(serde::Serialize)]
struct Context<'a> {
    inputs: &'a Value,
    steps: &'a Map<String, Value>,
    run: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    secrets: Option<Secrets>,
}

/// Serialises as the secrets by name.
struct Secrets(Arc<crate::secrets::SecretSet>);

impl serde::Serialize for Secrets {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.map.serialize(s)
    }
}

impl RunDriver {
    /// What templates see as `run`: `url` only where the public URL is known.
    fn run_view(&self) -> Value {
        let mut run =
            json!({ "id": self.run_id, "workflow": self.workflow_id, "trigger": self.trigger });
        if let Some(base) = &self.engine.inner.public_url {
            run["url"] = Value::String(format!("{base}/runs/{}", self.run_id));
        }
        run
    }

    fn context(&self, with_secrets: bool) -> Context<'_> {
        Context {
            inputs: &self.inputs,
            steps: &self.outputs,
            run: self.run_view(),
            secrets: with_secrets.then(|| Secrets(self.engine.secrets())),
        }
    }
}

/// What templates and conditions see of a finished step as `steps.<id>`.
fn step_view(status: StepStatus, output: Value, error: Option<&str>) -> Value {
    match error {
        Some(error) if status == StepStatus::Failed => {
            json!({ "output": output, "status": status.as_str(), "error": error })
        }
        _ => json!({ "output": output, "status": status.as_str() }),
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
