//! The engine's side of SPEC §6: the metric registry (served at `/metrics`) and the span
//! helpers the executor and agents share.
//!
//! Spans are `tracing` spans; the server installs `tracing-opentelemetry`, which gives them
//! OpenTelemetry ids and exports them. Without that layer (engine tests, `bench`) the spans
//! cost next to nothing and carry no ids, so nothing trace-related is stored.
//!
//! Metrics use `prometheus-client` rather than the OpenTelemetry SDK because only it attaches
//! exemplars (the trace id of a recent observation) to histograms.

use std::time::SystemTime;

use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, TraceContextExt, TraceFlags, TraceId, TraceState, Tracer,
};
use opentelemetry::KeyValue;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::exemplar::HistogramWithExemplars;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The exemplar attached to histogram observations.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TraceLabel {
    /// The run's trace id (hex): a chart point opens its trace.
    pub trace_id: String,
}

/// Labels of `workflow_runs_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RunLabels {
    /// The workflow's id.
    pub workflow: String,
    /// How the run ended.
    pub status: String,
    /// What started it.
    pub trigger: String,
}

/// Labels of `workflow_duration_seconds`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WorkflowStatusLabels {
    /// The workflow's id.
    pub workflow: String,
    /// How the run ended.
    pub status: String,
}

/// Labels of `workflows_active`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WorkflowLabel {
    /// The workflow's id.
    pub workflow: String,
}

/// Labels of `agent_runs_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AgentStatusLabels {
    /// The agent kind (`http`, `llm`, …).
    pub agent: String,
    /// The workflow's id.
    pub workflow: String,
    /// How the attempt ended.
    pub status: String,
}

/// Labels of `agent_duration_seconds`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AgentLabels {
    /// The agent kind (`http`, `llm`, …).
    pub agent: String,
    /// The workflow's id.
    pub workflow: String,
}

/// Labels of `agent_errors_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AgentErrorLabels {
    /// The agent kind (`http`, `llm`, …).
    pub agent: String,
    /// The workflow's id.
    pub workflow: String,
    /// The error's kind (`error.type`).
    pub error_type: String,
}

/// Labels of `workflow_steps_skipped_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SkipLabels {
    /// The workflow's id.
    pub workflow: String,
    /// Why: `upstream` or `condition`.
    pub reason: String,
}

/// Labels of `workflow_runs_waiting`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WaitingLabels {
    /// The workflow's id.
    pub workflow: String,
    /// What the runs wait for: `approval`, `event`, `delay`, `workflow`, or `paused`.
    pub reason: String,
}

/// Labels of `workflow_approval_decision_seconds`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    /// The workflow's id.
    pub workflow: String,
    /// `approved` or `rejected`.
    pub decision: String,
}

/// Labels of `agent_cost_usd_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelLabels {
    /// The agent kind (`http`, `llm`, …).
    pub agent: String,
    /// The workflow's id.
    pub workflow: String,
    /// The model called.
    pub model: String,
}

/// Labels of `agent_tokens_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    /// The agent kind (`http`, `llm`, …).
    pub agent: String,
    /// The workflow's id.
    pub workflow: String,
    /// The model called.
    pub model: String,
    /// `input` or `output`.
    pub direction: String,
}

type Histogram = HistogramWithExemplars<TraceLabel>;
type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Whole runs: from a few milliseconds to hours.
const RUN_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
    1800.0, 3600.0,
];
/// Queue wait: normally sub-millisecond, minutes when a concurrency limit holds runs back.
const QUEUE_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 60.0, 300.0,
];
/// One step attempt: sub-millisecond transforms to multi-minute model calls.
const AGENT_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 300.0,
];

/// A person's decision: seconds to a week.
const DECISION_BUCKETS: &[f64] = &[
    1.0, 10.0, 60.0, 300.0, 900.0, 3600.0, 14400.0, 43200.0, 86400.0, 259200.0, 604800.0,
];

fn decision_histogram() -> Histogram {
    Histogram::new(DECISION_BUCKETS.iter().copied())
}
fn run_histogram() -> Histogram {
    Histogram::new(RUN_BUCKETS.iter().copied())
}
fn agent_histogram() -> Histogram {
    Histogram::new(AGENT_BUCKETS.iter().copied())
}

/// Every metric of SPEC §6, with the names dashboards and alerts rely on.
pub struct Metrics {
    registry: Registry,
    /// `workflow_runs_total`: runs ended.
    pub runs: Family<RunLabels, Counter>,
    /// `workflow_duration_seconds`: run time, start to end.
    pub run_duration: HistogramFamily<WorkflowStatusLabels>,
    /// `workflows_active`: runs in flight.
    pub active: Family<WorkflowLabel, Gauge>,
    /// `workflow_queue_wait_seconds`: created to started.
    pub queue_wait: Histogram,
    /// `agent_runs_total`: attempts ended.
    pub agent_runs: Family<AgentStatusLabels, Counter>,
    /// `agent_duration_seconds`: attempt time.
    pub agent_duration: HistogramFamily<AgentLabels>,
    /// `agent_errors_total`: failed attempts by error kind.
    pub agent_errors: Family<AgentErrorLabels, Counter>,
    /// `agent_cost_usd_total`: model spend.
    pub agent_cost: Family<ModelLabels, Counter<f64, std::sync::atomic::AtomicU64>>,
    /// `agent_tokens_total`: model tokens.
    pub agent_tokens: Family<TokenLabels, Counter>,
    /// `workflow_steps_skipped_total`: steps not run, by reason.
    pub steps_skipped: Family<SkipLabels, Counter>,
    /// `workflow_runs_waiting`: parked runs, by what they wait for (read from the store at
    /// each scrape: they belong to no process).
    pub waiting: Family<WaitingLabels, Gauge>,
    waiting_seen: std::sync::Mutex<std::collections::HashSet<WaitingLabels>>,
    /// `workflow_approval_decision_seconds`: from an approval's start to its decision.
    pub approval_decision: HistogramFamily<DecisionLabels>,
    /// `flowscope_runs_pruned_total`: finished runs deleted by retention, by this process.
    pub runs_pruned: Counter,
    /// `flowscope_database_size_bytes`: what the database takes on disk (read at each scrape).
    pub database_size: Gauge,
    /// `flowscope_database_free_bytes`: of that, free pages kept for reuse (SQLite).
    pub database_free: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Every metric at zero, registered under its SPEC §6 name.
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let runs = Family::<RunLabels, Counter>::default();
        // prometheus-client appends `_total` to counters and the unit to the name.
        registry.register("workflow_runs", "Runs that ended", runs.clone());
        let run_duration: HistogramFamily<WorkflowStatusLabels> =
            Family::new_with_constructor(run_histogram);
        registry.register_with_unit(
            "workflow_duration",
            "Run duration, from start to end",
            Unit::Seconds,
            run_duration.clone(),
        );
        let active = Family::<WorkflowLabel, Gauge>::default();
        registry.register("workflows_active", "Runs executing now", active.clone());
        let queue_wait = Histogram::new(QUEUE_BUCKETS.iter().copied());
        registry.register_with_unit(
            "workflow_queue_wait",
            "Time from trigger to start",
            Unit::Seconds,
            queue_wait.clone(),
        );
        let agent_runs = Family::<AgentStatusLabels, Counter>::default();
        registry.register("agent_runs", "Step attempts that ended", agent_runs.clone());
        let agent_duration: HistogramFamily<AgentLabels> =
            Family::new_with_constructor(agent_histogram);
        registry.register_with_unit(
            "agent_duration",
            "Step attempt duration",
            Unit::Seconds,
            agent_duration.clone(),
        );
        let agent_errors = Family::<AgentErrorLabels, Counter>::default();
        registry.register(
            "agent_errors",
            "Step attempts that failed, by error type",
            agent_errors.clone(),
        );
        let agent_cost =
            Family::<ModelLabels, Counter<f64, std::sync::atomic::AtomicU64>>::default();
        registry.register(
            "agent_cost_usd",
            "Model spend in US dollars",
            agent_cost.clone(),
        );
        let agent_tokens = Family::<TokenLabels, Counter>::default();
        registry.register(
            "agent_tokens",
            "Model tokens, by direction",
            agent_tokens.clone(),
        );
        let steps_skipped = Family::<SkipLabels, Counter>::default();
        registry.register(
            "workflow_steps_skipped",
            "Steps that did not run: reason condition (their if: was false) or upstream",
            steps_skipped.clone(),
        );
        let waiting = Family::<WaitingLabels, Gauge>::default();
        registry.register(
            "workflow_runs_waiting",
            "Runs parked, waiting for an approval, an event, a delay, a child run, or paused",
            waiting.clone(),
        );
        let approval_decision: HistogramFamily<DecisionLabels> =
            Family::new_with_constructor(decision_histogram);
        registry.register_with_unit(
            "workflow_approval_decision",
            "Time from an approval step's start to a person's decision",
            Unit::Seconds,
            approval_decision.clone(),
        );
        let runs_pruned = Counter::default();
        registry.register(
            "flowscope_runs_pruned",
            "Finished runs deleted by retention (a workflow's retention:, the server's defaults)",
            runs_pruned.clone(),
        );
        let database_size = Gauge::default();
        registry.register_with_unit(
            "flowscope_database_size",
            "What the database takes on disk",
            Unit::Bytes,
            database_size.clone(),
        );
        let database_free = Gauge::default();
        registry.register_with_unit(
            "flowscope_database_free",
            "Free pages the database file keeps for reuse (SQLite)",
            Unit::Bytes,
            database_free.clone(),
        );
        Metrics {
            runs_pruned,
            database_size,
            database_free,
            waiting,
            waiting_seen: Default::default(),
            approval_decision,
            steps_skipped,
            registry,
            runs,
            run_duration,
            active,
            queue_wait,
            agent_runs,
            agent_duration,
            agent_errors,
            agent_cost,
            agent_tokens,
        }
    }

    /// Sets `workflow_runs_waiting` to these counts; series no longer counted read 0.
    pub fn set_waiting(&self, counts: &[(String, String, i64)]) {
        let mut seen = self.waiting_seen.lock().unwrap_or_else(|p| p.into_inner());
        for labels in seen.iter() {
            self.waiting.get_or_create(labels).set(0);
        }
        for (workflow, reason, n) in counts {
            let labels = WaitingLabels {
                workflow: workflow.clone(),
                reason: reason.clone(),
            };
            self.waiting.get_or_create(&labels).set(*n);
            seen.insert(labels);
        }
    }

    /// Counts a decision on an approval that waited `seconds`.
    pub fn observe_decision(&self, workflow: &str, approved: bool, seconds: f64) {
        self.approval_decision
            .get_or_create(&DecisionLabels {
                workflow: workflow.to_string(),
                decision: if approved { "approved" } else { "rejected" }.to_string(),
            })
            .observe(seconds, None, None);
    }

    /// The registry, for a server that serves it beside metrics of its own.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Creates the outcome series of every trigger that can start `workflow` at zero: the UI
    /// (`manual`), the API, retries, and its cron and webhook triggers if it declares them.
    /// Prometheus' `rate()` cannot see the first increment of a series it has never scraped,
    /// so a workflow's first failures would otherwise be invisible to the SLO alerts if they
    /// came between two scrapes. Called at start and at each scrape, for every workflow.
    pub fn expect_workflow(&self, workflow: &crate::model::Workflow) {
        use crate::model::TriggerDef;
        let triggers = &workflow.def().triggers;
        let cron = triggers.iter().any(|t| matches!(t, TriggerDef::Cron(_)));
        let webhook = triggers.iter().any(|t| matches!(t, TriggerDef::Webhook(_)));
        for (trigger, declared) in [
            ("manual", true),
            ("api", true),
            ("retry", true),
            ("cron", cron),
            ("webhook", webhook),
        ] {
            if declared {
                self.expect_run(workflow.id(), trigger);
            }
        }
    }

    /// Creates a run's outcome series at zero when it starts (its trigger may be one
    /// [`Metrics::expect_workflow`] did not foresee: an alert's).
    pub fn expect_run(&self, workflow: &str, trigger: &str) {
        for status in ["succeeded", "failed", "timed_out", "cancelled"] {
            let labels = RunLabels {
                workflow: workflow.to_string(),
                status: status.to_string(),
                trigger: trigger.to_string(),
            };
            // A read lock on the hot path once the series exist.
            if self.runs.get(&labels).is_none() {
                drop(self.runs.get_or_create(&labels));
            }
        }
    }

    /// The OpenMetrics text exposition, `# EOF` included.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// An exemplar for a histogram observation: the trace it belongs to, observed now.
pub fn exemplar(trace_id: Option<&str>) -> (Option<TraceLabel>, Option<SystemTime>) {
    match trace_id {
        Some(t) => (
            Some(TraceLabel {
                trace_id: t.to_string(),
            }),
            Some(SystemTime::now()),
        ),
        None => (None, None),
    }
}

/// The span's OpenTelemetry context, when a tracing-opentelemetry layer gave it one.
pub fn span_context(span: &tracing::Span) -> Option<SpanContext> {
    if span.is_disabled() {
        return None;
    }
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then_some(sc)
}

/// `(trace_id, span_id)` in lowercase hex, as stored and as Grafana expects them.
pub fn span_ids(span: &tracing::Span) -> Option<(String, String)> {
    span_context(span).map(|sc| {
        (
            hex(&sc.trace_id().to_bytes()),
            hex(&sc.span_id().to_bytes()),
        )
    })
}

/// Lowercase hex of an id, as its `Display` writes it, without the formatting machinery
/// (ids are written for every run and attempt).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

/// The W3C `traceparent` header value that makes a callee's spans children of `span`.
pub fn traceparent(span: &tracing::Span) -> Option<String> {
    span_context(span).map(|sc| {
        format!(
            "00-{}-{}-{:02x}",
            sc.trace_id(),
            sc.span_id(),
            sc.trace_flags().to_u8()
        )
    })
}

/// The W3C `traceparent` of the span an OpenTelemetry context holds (an attempt's).
pub fn traceparent_of(cx: &opentelemetry::Context) -> Option<String> {
    use opentelemetry::trace::TraceContextExt as _;
    let span = cx.span();
    let sc = span.span_context();
    sc.is_valid().then(|| {
        format!(
            "00-{}-{}-{:02x}",
            sc.trace_id(),
            sc.span_id(),
            sc.trace_flags().to_u8()
        )
    })
}

/// Parses a W3C `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`) into a remote span context.
pub fn parse_traceparent(value: &str) -> Option<SpanContext> {
    let mut parts = value.trim().split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if version.len() != 2
        || version == "ff"
        || trace.len() != 32
        || span.len() != 16
        || flags.len() != 2
    {
        return None;
    }
    // Version 00 has exactly four fields; later versions may append more.
    if version == "00" && parts.next().is_some() {
        return None;
    }
    let sc = SpanContext::new(
        TraceId::from_hex(trace).ok()?,
        SpanId::from_hex(span).ok()?,
        TraceFlags::new(u8::from_str_radix(flags, 16).ok()?),
        true,
        TraceState::default(),
    );
    sc.is_valid().then_some(sc)
}

/// A remote, sampled span context from stored hex ids (a resumed run's original root span).
pub fn stored_context(trace_id: &str, span_id: &str) -> Option<SpanContext> {
    let sc = SpanContext::new(
        TraceId::from_hex(trace_id).ok()?,
        SpanId::from_hex(span_id).ok()?,
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    );
    sc.is_valid().then_some(sc)
}

/// Makes `span` a child of `parent` (a span in another process or an earlier life of this one).
pub fn set_remote_parent(span: &tracing::Span, parent: SpanContext) {
    let cx = opentelemetry::Context::new().with_remote_span_context(parent);
    // Fails only when no OpenTelemetry layer is installed: then there is nothing to parent.
    let _ = span.set_parent(cx);
}

/// Starts a child of `parent` with the OpenTelemetry API and returns the context holding it.
///
/// The executor's per-attempt and per-commit spans are made this way rather than as `tracing`
/// spans: they need no subscriber registry, and are not entered on every poll. Spans under them
/// (the `http` and `llm` agents') still come from `tracing`: an attempt's future runs with this
/// context attached, which tracing-opentelemetry takes as the parent.
pub fn start_span(
    tracer: &opentelemetry::global::BoxedTracer,
    parent: &opentelemetry::Context,
    name: &'static str,
    kind: SpanKind,
    start: Option<SystemTime>,
    attributes: Vec<KeyValue>,
) -> opentelemetry::Context {
    let mut builder = tracer
        .span_builder(name)
        .with_kind(kind)
        .with_attributes(attributes);
    if let Some(at) = start {
        builder = builder.with_start_time(at);
    }
    parent.with_span(tracer.build_with_context(builder, parent))
}

/// Records a span that has already ended (a commit): built and ended at once, without the
/// context a live span needs.
pub fn record_span(
    tracer: &opentelemetry::global::BoxedTracer,
    parent: &opentelemetry::Context,
    name: &'static str,
    kind: SpanKind,
    start: SystemTime,
    mut attributes: Vec<KeyValue>,
    error: Option<(&str, &str)>,
) {
    use opentelemetry::trace::Span as _;
    if let Some((kind, _)) = error {
        attributes.push(KeyValue::new("error.type", kind.to_string()));
    }
    let builder = tracer
        .span_builder(name)
        .with_kind(kind)
        .with_start_time(start)
        .with_attributes(attributes);
    let mut span = tracer.build_with_context(builder, parent);
    if let Some((_, message)) = error {
        span.set_status(opentelemetry::trace::Status::error(message.to_string()));
    }
    span.end();
}

/// Ends the span `cx` holds, with `error.type` and an Error status when `error` is set.
pub fn end_span(
    cx: &opentelemetry::Context,
    attributes: Vec<KeyValue>,
    error: Option<(&str, &str)>,
) {
    let span = cx.span();
    span.set_attributes(attributes);
    if let Some((kind, message)) = error {
        span.set_attribute(KeyValue::new("error.type", kind.to_string()));
        span.set_status(opentelemetry::trace::Status::error(message.to_string()));
    }
    span.end();
}

/// Records a span's outcome: `error.type` and an Error status when `error` is set.
pub fn record_outcome(span: &tracing::Span, error: Option<(&str, &str)>) {
    if let Some((kind, message)) = error {
        span.record("error.type", kind);
        span.set_status(opentelemetry::trace::Status::error(message.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_parses_the_w3c_format_only() {
        let sc = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
            .expect("valid");
        assert_eq!(
            sc.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(sc.span_id().to_string(), "00f067aa0ba902b7");
        assert_eq!(hex(&sc.trace_id().to_bytes()), sc.trace_id().to_string());
        assert_eq!(hex(&sc.span_id().to_bytes()), "00f067aa0ba902b7");
        assert!(sc.is_sampled() && sc.is_remote());
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-zzf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert!(parse_traceparent(bad).is_none(), "accepted {bad:?}");
        }
    }

    #[test]
    fn metrics_use_the_contract_names() {
        let m = Metrics::new();
        m.runs
            .get_or_create(&RunLabels {
                workflow: "w".into(),
                status: "succeeded".into(),
                trigger: "api".into(),
            })
            .inc();
        let (ex, at) = exemplar(Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        m.run_duration
            .get_or_create(&WorkflowStatusLabels {
                workflow: "w".into(),
                status: "succeeded".into(),
            })
            .observe(0.2, ex, at);
        m.active
            .get_or_create(&WorkflowLabel {
                workflow: "w".into(),
            })
            .inc();
        m.agent_cost
            .get_or_create(&ModelLabels {
                agent: "llm".into(),
                workflow: "w".into(),
                model: "m".into(),
            })
            .inc_by(0.25);
        let text = m.encode();
        for name in [
            "# TYPE workflow_runs counter",
            "workflow_runs_total{workflow=\"w\",status=\"succeeded\",trigger=\"api\"} 1",
            "# TYPE workflow_duration_seconds histogram",
            "workflow_duration_seconds_bucket{le=\"0.25\",workflow=\"w\",status=\"succeeded\"} 1 # {trace_id=\"4bf92f3577b34da6a3ce929d0e0e4736\"} 0.2",
            "workflows_active{workflow=\"w\"} 1",
            "# TYPE workflow_queue_wait_seconds histogram",
            "agent_cost_usd_total{agent=\"llm\",workflow=\"w\",model=\"m\"} 0.25",
            "# EOF",
        ] {
            assert!(text.contains(name), "missing {name:?} in\n{text}");
        }
    }
}
