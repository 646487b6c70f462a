//! `for_each`: one step, many items. Each item is its own attempt sequence (the step's
//! `retry`, per item) that holds a step slot while it runs, under its own `agent.execute`
//! span with `flowscope.item.index`. An item is recorded once it ends, group-committed with
//! whatever else is due, so a step resumed after a crash starts only the items not recorded.
//! The step's output is the list of item outputs, in order; it fails when an item did.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt;
use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::SpanKind;
use opentelemetry::KeyValue;
use serde_json::{json, Map, Value};

use super::trace::end_attempt;
use super::{backoff, has_template, limit_size, now_ms, Completion, RunDriver, MAX_OUTPUT_BYTES};
use crate::agents::{Agent, AgentContext, AgentError};
use crate::executor::attempt::{render_in_sandbox, run_agent};
use crate::executor::Engine;
use crate::model::{parse_duration, RetryDef};
use crate::records::{Event, EventKind, ItemAttempt, ItemRecord, StepStatus};
use crate::render::{self, redact, RenderError};
use crate::secrets::SecretSet;
use crate::store::Op;
use crate::telemetry;

/// A `for_each` step about to start: its list, evaluated.
pub(super) struct Plan {
    items: Vec<Value>,
    concurrency: usize,
}

impl Plan {
    /// What the step's attempt records as its input (the run page reads `items`).
    pub(super) fn summary(&self, expr: &str) -> Value {
        json!({ "for_each": expr, "items": self.items.len(), "concurrency": self.concurrency })
    }
}

/// What every item of one step shares.
struct Items {
    engine: Engine,
    run_id: String,
    workflow_id: String,
    step_id: String,
    kind: String,
    agent: Option<Arc<dyn Agent>>,
    with: Map<String, Value>,
    /// Whether `with` renders in the server (bounded templates) or in the sandbox.
    bounded: bool,
    templated: bool,
    /// The template context (with secrets): as JSON for the sandbox, as a minijinja value here.
    context: Arc<Map<String, Value>>,
    context_value: minijinja::Value,
    /// `transform`'s data (`{inputs, steps}`), when the agent is `transform`.
    data: Option<Arc<Map<String, Value>>>,
    timeout: Option<Duration>,
    retry: Option<RetryDef>,
    secrets: Arc<SecretSet>,
    /// The step's span, parent of the items' spans, when the trace is sampled.
    parent: Option<opentelemetry::Context>,
    trace_id: Option<String>,
    /// The run's root span (`workflow` items in an unsampled trace: the child keeps it).
    root_traceparent: Option<String>,
    /// The run retries another: `workflow` items may re-use its children.
    retry_run: bool,
}

/// One item's end: its record, and its output for the step's list.
struct Ended {
    record: ItemRecord,
    output: Value,
}

impl RunDriver {
    /// Evaluates a `for_each` step's list.
    pub(super) fn plan_items(&self, idx: usize) -> Result<Plan, RenderError> {
        let step = &self.workflow.steps()[idx];
        let expr = step.for_each.as_deref().unwrap_or_default();
        let context = minijinja::Value::from_serialize(self.context(false));
        let items = render::item_list(expr, &context)?;
        let concurrency = step
            .concurrency
            .map_or(self.engine.inner.max_parallel_steps, |c| c as usize)
            .max(1);
        Ok(Plan { items, concurrency })
    }

    /// The future that runs a `for_each` step's items and completes as its attempt.
    pub(super) fn items_future(
        &self,
        idx: usize,
        attempt: i64,
        plan: Plan,
    ) -> BoxFuture<'static, Completion> {
        let step = &self.workflow.steps()[idx];
        let context = match serde_json::to_value(self.context(true)) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        };
        let data = (step.agent == "transform").then(|| match self.agent_data(idx) {
            Value::Object(map) => Arc::new(map),
            _ => Arc::new(Map::new()),
        });
        let items = Arc::new(Items {
            engine: self.engine.clone(),
            run_id: self.run_id.clone(),
            workflow_id: self.workflow_id.clone(),
            step_id: step.id.clone(),
            kind: step.agent.clone(),
            agent: self.engine.agent(&step.agent),
            with: step.with.clone(),
            bounded: step.with.values().all(render::all_bounded),
            templated: step.with.values().any(has_template),
            context_value: minijinja::Value::from_serialize(&context),
            context: Arc::new(context),
            data,
            timeout: step.timeout.as_deref().and_then(|t| parse_duration(t).ok()),
            retry: step.retry.clone(),
            secrets: self.engine.secrets(),
            parent: self.steps[idx]
                .attempt_span
                .as_ref()
                .and_then(|(s, _)| s.clone()),
            trace_id: self.trace_id.clone(),
            root_traceparent: telemetry::traceparent_of(&self.otel_cx),
            retry_run: self.trigger == "retry",
        });
        async move {
            let result = run_all(items, plan, attempt > 1).await;
            Completion::Attempt {
                idx,
                attempt,
                result,
                logs: Vec::new(),
                ended_at: now_ms(),
            }
        }
        .boxed()
    }
}

/// Runs the items not yet recorded, `concurrency` at once, recording each as it ends.
async fn run_all(items: Arc<Items>, plan: Plan, resumed: bool) -> Result<Value, AgentError> {
    let total = plan.items.len();
    let mut outputs: Vec<Value> = vec![Value::Null; total];
    let mut ended = vec![false; total];
    let (mut done, mut failed) = (0i64, 0i64);
    let mut first_failure: Option<(i64, String)> = None;
    // Outputs kept for the step's list, in bytes: past MAX_OUTPUT_BYTES the list would be
    // cut anyway, so they stop being held (each stays stored with its item).
    let mut held = 0usize;
    let mut overflow = false;
    let mut keep = |outputs: &mut Vec<Value>, i: usize, output: Value, overflow: &mut bool| {
        if *overflow {
            return;
        }
        held += output.to_string().len();
        if held > MAX_OUTPUT_BYTES {
            *overflow = true;
            outputs.clear();
            outputs.shrink_to_fit();
        } else {
            outputs[i] = output;
        }
    };
    if resumed {
        let recorded = items
            .engine
            .store()
            .ended_items(&items.run_id, &items.step_id)
            .await
            .map_err(|e| {
                AgentError::new("store", format!("cannot read the recorded items: {e}"))
            })?;
        for (i, status, output, error) in recorded {
            let Some(slot) = usize::try_from(i).ok().filter(|&i| i < total) else {
                continue;
            };
            ended[slot] = true;
            done += 1;
            if status == StepStatus::Failed {
                failed += 1;
                first_failure.get_or_insert((i, error.unwrap_or_default()));
            }
            keep(
                &mut outputs,
                slot,
                output.unwrap_or(Value::Null),
                &mut overflow,
            );
        }
    }
    let mut todo = (0..total)
        .filter(|&i| !ended[i])
        .collect::<Vec<_>>()
        .into_iter();
    let mut running = FuturesUnordered::new();
    let mut buffer: Vec<ItemRecord> = Vec::new();
    let mut flushing: Option<BoxFuture<'static, Result<(), String>>> = None;
    loop {
        while running.len() < plan.concurrency {
            let Some(i) = todo.next() else { break };
            running.push(run_item(items.clone(), i, plan.items[i].clone()));
        }
        if flushing.is_none() && !buffer.is_empty() {
            flushing = Some(flush(
                &items,
                std::mem::take(&mut buffer),
                done,
                failed,
                total,
            ));
        }
        if running.is_empty() && flushing.is_none() {
            break;
        }
        tokio::select! {
            Some(end) = running.next(), if !running.is_empty() => {
                let Ended { record, output } = end;
                done += 1;
                if record.status == StepStatus::Failed {
                    failed += 1;
                    let message = record.error_message.clone().unwrap_or_default();
                    first_failure.get_or_insert((record.index, message));
                }
                keep(&mut outputs, record.index as usize, output, &mut overflow);
                buffer.push(record);
            }
            written = pending(&mut flushing) => {
                flushing = None;
                written.map_err(|e| AgentError::new("store", format!("cannot record items: {e}")))?;
            }
        }
    }
    if let Some((i, message)) = first_failure {
        return Err(AgentError::new(
            "items_failed",
            format!("{failed} of {total} items failed; the first, item {i}: {message}"),
        ));
    }
    if overflow {
        return Ok(json!({
            "truncated": true,
            "items": total,
            "limit_bytes": MAX_OUTPUT_BYTES,
            "reason": "the items' outputs exceed the limit in all; each item's output is stored with the item",
        }));
    }
    Ok(Value::Array(outputs))
}

/// The flush in flight, if any; never ready without one.
async fn pending(f: &mut Option<BoxFuture<'static, Result<(), String>>>) -> Result<(), String> {
    match f {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

/// Records ended items (one journal submission, committed with whatever else is due), then
/// tells live pages how far the step has got.
fn flush(
    items: &Arc<Items>,
    records: Vec<ItemRecord>,
    done: i64,
    failed: i64,
    total: usize,
) -> BoxFuture<'static, Result<(), String>> {
    let items = items.clone();
    async move {
        let ops = vec![Op::ItemsEnded {
            run_id: items.run_id.clone(),
            step_id: items.step_id.clone(),
            items: records,
        }];
        items.engine.journal().commit(ops).await?;
        items.engine.publish(Event {
            run_id: items.run_id.clone(),
            workflow_id: items.workflow_id.clone(),
            at: now_ms(),
            kind: EventKind::Items {
                step_id: items.step_id.clone(),
                done,
                failed,
                total: total as i64,
            },
        });
        Ok(())
    }
    .boxed()
}

/// One item to its end: attempts (with backoff) until one succeeds or the retries run out.
async fn run_item(items: Arc<Items>, index: usize, item: Value) -> Ended {
    let started_at = now_ms();
    let max_attempts = items.retry.as_ref().map_or(1, |r| r.max_attempts as i64);
    let mut attempt = 0;
    let mut earlier: Vec<ItemAttempt> = Vec::new();
    loop {
        attempt += 1;
        let attempt_started = now_ms();
        // Released between attempts: a backoff holds no slot. A call holds none: its child
        // takes the slots it needs.
        let permit = if items.kind == "workflow" {
            None
        } else {
            items.engine.step_slots().acquire_owned().await.ok()
        };
        let began = Instant::now();
        let rendered = items.render(index, &item).await;
        let spent = began.elapsed();
        let mut input = Value::Object(rendered.clone().unwrap_or_default());
        redact(&mut input, &items.secrets.values);
        let span = items.parent.as_ref().map(|parent| {
            telemetry::start_span(
                items.engine.tracer(),
                parent,
                "agent.execute",
                SpanKind::Internal,
                None,
                vec![
                    KeyValue::new("agent.kind", items.kind.clone()),
                    KeyValue::new("agent.step.id", items.step_id.clone()),
                    KeyValue::new("agent.attempt", attempt),
                    KeyValue::new("flowscope.item.index", index as i64),
                ],
            )
        });
        let clock = Instant::now();
        let result = match rendered {
            Err(e) => Err(AgentError::new(e.kind, e.message)),
            Ok(with) if items.kind == "workflow" => {
                let call = crate::executor::calls::Call {
                    engine: items.engine.clone(),
                    run_id: items.run_id.clone(),
                    step_id: items.step_id.clone(),
                    item: Some(index as i64),
                    traceparent: span
                        .as_ref()
                        .or(items.parent.as_ref())
                        .and_then(telemetry::traceparent_of)
                        .or_else(|| items.root_traceparent.clone()),
                    timeout: items.timeout,
                    retry: items.retry_run,
                };
                call.run(&with, &mut Vec::new()).await
            }
            Ok(with) => {
                let ctx = AgentContext::new(
                    items.run_id.clone(),
                    items.step_id.clone(),
                    attempt,
                    items.data_for(index, &item),
                    items.engine.http(),
                )
                .with_secrets(items.secrets.clone());
                let work = run_agent(
                    items.agent.clone(),
                    &items.kind,
                    &ctx,
                    &with,
                    items.timeout,
                    spent,
                );
                match &span {
                    Some(cx) => work.with_context(cx.clone()).await,
                    None => work.await,
                }
            }
        };
        drop(permit);
        end_attempt(
            &items.engine,
            &items.workflow_id,
            Some(&items.kind),
            items.trace_id.as_deref(),
            span.as_ref(),
            clock,
            &result,
        );
        let mut record =
            |status, output: Option<Value>, error: Option<(String, String)>| ItemRecord {
                index: index as i64,
                status,
                attempts: attempt,
                input: Some(input.clone()),
                output,
                error_kind: error.as_ref().map(|(k, _)| k.clone()),
                error_message: error.map(|(_, m)| m),
                started_at,
                finished_at: now_ms(),
                earlier_attempts: std::mem::take(&mut earlier),
            };
        match result {
            Ok(output) => {
                let (mut kept, _) = limit_size(output);
                redact(&mut kept, &items.secrets.values);
                return Ended {
                    record: record(StepStatus::Succeeded, Some(kept.clone()), None),
                    output: kept,
                };
            }
            Err(e) if attempt < max_attempts => {
                if earlier.len() == ItemAttempt::KEPT {
                    earlier.remove(0);
                }
                let mut message = render::redact_text(&e.message, &items.secrets.values);
                message.truncate(message.floor_char_boundary(ItemAttempt::MESSAGE_BYTES));
                earlier.push(ItemAttempt {
                    attempt,
                    error_kind: e.kind.to_string(),
                    error_message: message,
                    started_at: attempt_started,
                    finished_at: now_ms(),
                });
                let retry = items.retry.as_ref();
                tokio::time::sleep(backoff(
                    retry.and_then(|r| r.backoff.as_deref()),
                    retry.and_then(|r| r.max_backoff.as_deref()),
                    attempt,
                ))
                .await;
            }
            Err(e) => {
                let message = render::redact_text(&e.message, &items.secrets.values);
                return Ended {
                    record: record(
                        StepStatus::Failed,
                        None,
                        Some((e.kind.to_string(), message)),
                    ),
                    output: Value::Null,
                };
            }
        }
    }
}

impl Items {
    /// `with` for one item: templates read `item` and `index` besides the run's context.
    async fn render(&self, index: usize, item: &Value) -> Result<Map<String, Value>, RenderError> {
        if !self.templated {
            return Ok(self.with.clone());
        }
        if !self.bounded {
            let mut context = (*self.context).clone();
            context.insert("item".into(), item.clone());
            context.insert("index".into(), json!(index));
            return render_in_sandbox(self.engine.sandbox(), &self.with, &context, self.timeout)
                .await;
        }
        let ctx = minijinja::context! {
            item => minijinja::Value::from_serialize(item),
            index => index,
            ..self.context_value.clone()
        };
        render::render(&self.with, &ctx)
    }

    /// What `transform` evaluates over for one item: `{inputs, steps, item, index}`.
    fn data_for(&self, index: usize, item: &Value) -> Arc<Value> {
        match &self.data {
            None => Arc::new(Value::Null),
            Some(data) => {
                let mut data = (**data).clone();
                data.insert("item".into(), item.clone());
                data.insert("index".into(), json!(index));
                Arc::new(Value::Object(data))
            }
        }
    }
}
