//! Starting attempts: the step's `with` rendered (in the server when bounded, else in the
//! sandbox), its start recorded, and a slot taken here or the attempt offered to another
//! worker.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::FutureExt;
use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::{SpanKind, TraceContextExt as _};
use opentelemetry::KeyValue;
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;

use super::{has_template, now_ms, Completion, RunDriver, Slot};
use crate::agents::{AgentContext, AgentError};
use crate::executor::attempt::{render_in_sandbox, run_agent};
use crate::executor::offers::Payload;
use crate::model::parse_duration;
use crate::records::{EventKind, StepStatus};
use crate::render::{self as template, redact, render};
use crate::store::Op;
use crate::telemetry;

/// How a ready step starts: one agent call with its rendered `with`, or a `for_each`'s items.
enum Start {
    Agent(Map<String, Value>),
    Items(super::items::Plan),
}

/// A step's `with`: rendered, or being rendered in the sandbox (ends as `Completion::Rendered`).
enum Render {
    Done(Result<Map<String, Value>, template::RenderError>),
    InSandbox(BoxFuture<'static, Completion>),
}

impl RunDriver {
    /// Renders and records the start of every ready step; returns how many were spawned.
    pub(super) async fn start_ready(
        &mut self,
        ready: &mut VecDeque<usize>,
        in_flight: &mut FuturesUnordered<BoxFuture<'static, Completion>>,
    ) -> usize {
        let mut spawned = 0;
        while let Some(idx) = ready.pop_front() {
            // What a render in the sandbox took of the step's timeout.
            let mut spent = Duration::ZERO;
            let rendered = if let Some(e) = self.steps[idx].doomed.take() {
                Err(e)
            } else if let Some(e) = self.missing_secret(idx) {
                Err(e)
            } else if self.workflow.steps()[idx].for_each.is_some() {
                self.plan_items(idx).map(Start::Items)
            } else if let Some((done, took)) = self.steps[idx].rendered.take() {
                spent = took;
                done.map(Start::Agent)
            } else {
                let began = Instant::now();
                match self.render_with(idx) {
                    Render::Done(r) => {
                        spent = began.elapsed();
                        r.map(Start::Agent)
                    }
                    Render::InSandbox(render) => {
                        // Not started until rendered: a cancel drops the render (and its child).
                        self.steps[idx].status = StepStatus::Running;
                        in_flight.push(render);
                        continue;
                    }
                }
            };
            let now = now_ms();
            let step = &self.workflow.steps()[idx];
            let attempt = self.steps[idx].attempts + 1;
            self.steps[idx].attempts = attempt;
            self.steps[idx].status = StepStatus::Running;
            let mut input = match &rendered {
                Ok(Start::Agent(with)) => Value::Object(with.clone()),
                Ok(Start::Items(plan)) => plan.summary(step.for_each.as_deref().unwrap_or("")),
                Err(_) => Value::Object(Map::new()),
            };
            redact(&mut input, &self.engine.secrets().values);
            let span = self.sampled.then(|| {
                telemetry::start_span(
                    self.engine.tracer(),
                    &self.otel_cx,
                    // A `for_each` step's span groups its items' `agent.execute` spans.
                    if step.for_each.is_some() {
                        "step.for_each"
                    } else {
                        "agent.execute"
                    },
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
            self.steps[idx].attempt_span = Some((span, Instant::now()));
            self.ops.push(Op::AttemptStarted {
                run_id: self.run_id.clone(),
                step_id: step.id.clone(),
                attempt,
                ready_at: self.steps[idx].ready_at,
                at: now,
                input,
                resumed: std::mem::take(&mut self.steps[idx].resumed),
                span_id,
                agent: step.agent.clone(),
                worker: self.engine.worker_name(),
            });
            self.event(
                EventKind::Step {
                    step_id: step.id.clone(),
                    status: StepStatus::Running,
                    attempt,
                    skip_reason: None,
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
                Ok(Start::Items(plan)) => {
                    in_flight.push(self.items_future(idx, attempt, plan));
                    self.steps[idx].in_flight = Some(attempt);
                    spawned += 1;
                }
                Ok(Start::Agent(with)) => {
                    if self.start_wait(idx, attempt, &with, now, ready, in_flight) {
                        continue;
                    }
                    // A call holds no slot while its child runs, and is never offered: it
                    // is the child that works.
                    if self.workflow.steps()[idx].agent == "workflow" {
                        in_flight.push(self.call_future(idx, attempt, with));
                        self.steps[idx].in_flight = Some(attempt);
                        spawned += 1;
                        continue;
                    }
                    let slot = match self.engine.step_slots().try_acquire_owned() {
                        Ok(permit) => Slot::Held(permit),
                        Err(_) => match self.offer(idx, attempt, &with, spent) {
                            Some(resolved) => Slot::Offered(resolved),
                            None => Slot::Wait,
                        },
                    };
                    in_flight.push(self.attempt_future(idx, attempt, with, slot, spent));
                    self.steps[idx].in_flight = Some(attempt);
                    spawned += 1;
                }
            }
        }
        if self.offers_out > 0 && self.watching.is_none() {
            in_flight.push(self.watch_offers());
        }
        spawned
    }

    /// The data `transform` evaluates over; null for the other agents.
    pub(super) fn agent_data(&self, idx: usize) -> Value {
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
        spent: Duration,
    ) -> Option<CancellationToken> {
        if !self.engine.can_offer() {
            return None;
        }
        let step = &self.workflow.steps()[idx];
        let traceparent = self.attempt_traceparent(idx);
        let payload = Payload {
            with: with.clone(),
            data: self.agent_data(idx),
            timeout_ms: step
                .timeout
                .as_deref()
                .and_then(|t| parse_duration(t).ok())
                .map(|t| t.as_millis() as u64),
            spent_ms: spent.as_millis() as u64,
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
        self.put_offer(idx, (attempt, resolved.clone()));
        Some(resolved)
    }

    /// Waits for results of this run's offered steps: a notification from the worker that
    /// reports one, or the poll interval; stopped once no offer is out.
    pub(super) fn watch_offers(&mut self) -> BoxFuture<'static, Completion> {
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

    /// A secret step `idx` reads that is not set: its attempt fails at once, and is not
    /// retried (a retry cannot find it either), instead of failing each attempt on its
    /// template.
    fn missing_secret(&self, idx: usize) -> Option<template::RenderError> {
        let used = self.workflow.step_secrets(idx);
        if used.is_empty() {
            return None;
        }
        let set = self.engine.secrets();
        let missing = set.missing(used);
        let first = *missing.first()?;
        let what = if missing.len() == 1 {
            format!("secret {first} is")
        } else {
            format!("secrets {} are", missing.join(", "))
        };
        let them = if missing.len() == 1 { "it" } else { "them" };
        let message = if crate::vault::VAULT_SETTINGS.contains(&first) {
            // Set, but as the vault's own setting: saying "set it" would mislead.
            format!(
                "{what} not set: FLOWSCOPE_SECRET_{first} configures the vault and is never a \
                 template secret; add {them} in Settings → Secrets, or read another name"
            )
        } else {
            format!(
                "{what} not set: set FLOWSCOPE_SECRET_{first} on the server, or add {them} in \
                 Settings → Secrets"
            )
        };
        Some(template::RenderError {
            kind: "secret_missing",
            message,
        })
    }

    /// Dooms the resumed steps that have been interrupted too often (see `doomed`).
    pub(super) async fn find_crash_loops(&mut self) {
        let counts = match self.engine.store().interruptions(&self.run_id).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(run.id = %self.run_id, error = %e, "cannot count the run's interrupted attempts");
                return;
            }
        };
        for (idx, step) in self.workflow.steps().iter().enumerate() {
            let times = counts.get(&step.id).copied().unwrap_or(0);
            if self.steps[idx].resumed && times >= self.engine.inner.max_interruptions {
                tracing::error!(run.id = %self.run_id, step.id = %step.id, times, "a step's process stopped every time it ran; failing the step");
                self.steps[idx].doomed = Some(template::RenderError {
                    kind: "crash_loop",
                    message: format!(
                        "the process running this step stopped {} times while it ran, so \
                             it is not started again (does the step crash the server?)",
                        self.engine.inner.max_interruptions
                    ),
                });
            }
        }
    }

    /// A step's rendered `with`, now, or (for templates the server cannot vouch for) a
    /// future that renders it in the sandbox's child under the sandbox's limits and the step's
    /// timeout, off the driver: the run keeps recording and answers a cancel meanwhile.
    fn render_with(&self, idx: usize) -> Render {
        let step = &self.workflow.steps()[idx];
        let with = &step.with;
        if !with.values().any(has_template) {
            return Render::Done(Ok(with.clone()));
        }
        let context = self.context(true);
        if !with.values().all(template::all_bounded) {
            // Serialized once, now (the context borrows the run); the frame to the child
            // embeds the text as it is.
            let context = match serde_json::value::to_raw_value(&context) {
                Ok(c) => c,
                Err(e) => {
                    return Render::Done(Err(template::RenderError {
                        kind: "template",
                        message: format!("the template's context could not be built: {e}"),
                    }))
                }
            };
            let timeout = step.timeout.as_deref().and_then(|t| parse_duration(t).ok());
            let (engine, with) = (self.engine.clone(), with.clone());
            return Render::InSandbox(
                async move {
                    let began = Instant::now();
                    let result =
                        render_in_sandbox(engine.sandbox(), &with, &context, timeout).await;
                    Completion::Rendered {
                        idx,
                        result,
                        took: began.elapsed(),
                    }
                }
                .boxed(),
            );
        }
        let ctx = minijinja::Value::from_serialize(&context);
        // Bounded templates, yet a filter over a large output (`tojson` of 64 MB) takes a
        // while: on the multi-threaded runtime this worker hands its other tasks to the rest
        // while it renders, so the server keeps answering.
        Render::Done(
            match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
                Ok(tokio::runtime::RuntimeFlavor::MultiThread) => {
                    tokio::task::block_in_place(|| render(with, &ctx))
                }
                _ => render(with, &ctx),
            },
        )
    }

    /// The `traceparent` of step `idx`'s attempt span, in a sampled trace.
    pub(super) fn attempt_traceparent(&self, idx: usize) -> Option<String> {
        let (cx, _) = self.steps[idx].attempt_span.as_ref()?;
        telemetry::traceparent_of(cx.as_ref()?)
    }

    /// A `workflow` step's attempt: its child run, found or started, to its end.
    fn call_future(
        &self,
        idx: usize,
        attempt: i64,
        with: Map<String, Value>,
    ) -> BoxFuture<'static, Completion> {
        let step = &self.workflow.steps()[idx];
        let call = crate::executor::calls::Call {
            engine: self.engine.clone(),
            run_id: self.run_id.clone(),
            step_id: step.id.clone(),
            item: None,
            // Unsampled, no attempt span: the root's still gives the child the same trace.
            traceparent: self
                .attempt_traceparent(idx)
                .or_else(|| telemetry::traceparent_of(&self.otel_cx)),
            timeout: step.timeout.as_deref().and_then(|t| parse_duration(t).ok()),
            retry: self.trigger == "retry",
        };
        async move {
            let mut logs = Vec::new();
            let result = call.run(&with, &mut logs).await;
            Completion::Attempt {
                idx,
                attempt,
                result,
                logs,
                ended_at: now_ms(),
            }
        }
        .boxed()
    }

    fn attempt_future(
        &self,
        idx: usize,
        attempt: i64,
        with: Map<String, Value>,
        slot: Slot,
        spent: Duration,
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
        let span = self.steps[idx]
            .attempt_span
            .as_ref()
            .and_then(|(s, _)| s.clone());
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
            let result = run_agent(agent, &kind, &ctx, &with, timeout, spent).await;
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
}
