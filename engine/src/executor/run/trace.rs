//! An attempt's `agent.execute` span and the agent metrics it feeds; skipped steps as events
//! on the run's root span and in `workflow_steps_skipped_total`.

use opentelemetry::trace::TraceContextExt as _;
use opentelemetry::KeyValue;
use serde_json::Value;

use super::RunDriver;
use crate::agents::AgentError;
use crate::records::SkipReason;
use crate::render::redact_text;
use crate::telemetry::{self, exemplar};

impl RunDriver {
    /// Ends an attempt's span and counts it: status, duration (with the trace as exemplar),
    /// error type, and an `llm` step's tokens and cost.
    /// Returns the attempt's span context, for the log line of a failure.
    pub(super) fn end_attempt_span(
        &mut self,
        idx: usize,
        result: &Result<Value, AgentError>,
    ) -> Option<opentelemetry::Context> {
        let (span, started) = self.steps[idx].attempt_span.take()?;
        let step = &self.workflow.steps()[idx];
        // A `for_each` step's items are the attempts counted (see `items`); the step's own
        // span only groups them.
        let counted = step.for_each.is_none().then_some(step.agent.as_str());
        end_attempt(
            &self.engine,
            &self.workflow_id,
            counted,
            self.trace_id.as_deref(),
            span.as_ref(),
            started,
            result,
        );
        span
    }

    /// Counts skipped steps by reason and marks each on the root span (a sampled trace).
    pub(super) fn note_skipped(&self, steps: &[usize], reason: SkipReason) {
        self.engine
            .metrics()
            .steps_skipped
            .get_or_create(&telemetry::SkipLabels {
                workflow: self.workflow_id.clone(),
                reason: reason.as_str().to_string(),
            })
            .inc_by(steps.len() as u64);
        if self.sampled {
            let span = self.otel_cx.span();
            for &i in steps {
                span.add_event(
                    "step.skipped",
                    vec![
                        KeyValue::new("agent.step.id", self.workflow.steps()[i].id.clone()),
                        KeyValue::new("flowscope.skip.reason", reason.as_str()),
                    ],
                );
            }
        }
    }
}

/// Ends an attempt's span (when sampled) and, given its `agent`, counts it: status, duration
/// (with the trace as exemplar), error type, and an `llm` step's tokens and cost.
pub(super) fn end_attempt(
    engine: &crate::executor::Engine,
    workflow_id: &str,
    agent: Option<&str>,
    trace_id: Option<&str>,
    span: Option<&opentelemetry::Context>,
    started: std::time::Instant,
    result: &Result<Value, AgentError>,
) {
    let status = if result.is_ok() {
        "succeeded"
    } else {
        "failed"
    };
    if let Some(cx) = span {
        // Span attributes leave the process: no secret in the message.
        let message = result
            .as_ref()
            .err()
            .map(|e| redact_text(&e.message, &engine.secrets().values));
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
    let Some(agent) = agent else { return };
    let agent = agent.to_string();
    let workflow = workflow_id.to_string();
    let metrics = engine.metrics();
    metrics
        .agent_runs
        .get_or_create(&telemetry::AgentStatusLabels {
            agent: agent.clone(),
            workflow: workflow.clone(),
            status: status.to_string(),
        })
        .inc();
    let (ex, ts) = exemplar(trace_id);
    metrics
        .agent_duration
        .get_or_create(&telemetry::AgentLabels {
            agent: agent.clone(),
            workflow: workflow.clone(),
        })
        .observe(started.elapsed().as_secs_f64(), ex, ts);
    match result {
        Err(e) => {
            metrics
                .agent_errors
                .get_or_create(&telemetry::AgentErrorLabels {
                    agent,
                    workflow,
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
                    workflow: workflow.clone(),
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
                            workflow: workflow.clone(),
                            model: model.to_string(),
                        })
                        .inc_by(cost);
                }
            }
        }
    }
}
