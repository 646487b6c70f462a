//! SPEC §6 spans, checked in-process with the SDK's in-memory exporter: the span tree of a
//! 3-step run with a retry and a failure, its link to the triggering request, the HTTP client
//! span passing `traceparent` on, the ids stored with the run, and the metrics it counted.
//! (Its own test binary: it installs a global subscriber; it shares `it`'s harness.)

#[path = "../it/harness.rs"]
#[allow(dead_code)]
mod harness;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use engine::executor::{Engine, EngineConfig, TriggerRequest};
use engine::records::RunStatus;
use engine::store::Store;
use opentelemetry::trace::{SpanKind, Status, TracerProvider as _};
use opentelemetry::Value;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;

use harness::{local_agents, serve};

fn attr(span: &SpanData, key: &str) -> Option<Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.clone())
}

fn attr_str(span: &SpanData, key: &str) -> String {
    attr(span, key)
        .map(|v| v.as_str().into_owned())
        .unwrap_or_default()
}

const SECRET: &str = "tok-5ecret-77aa";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_is_one_trace_with_a_span_per_attempt_linked_to_its_trigger() {
    let exporter = install_tracer();
    // /flaky fails once then answers; /down always fails. Both record the traceparent sent.
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let addr = upstreams(seen.clone()).await;
    let h = harness::harness_with(EngineConfig {
        secrets: [("TOKEN".to_string(), SECRET.to_string())].into(),
        agents: engine::agents::AgentSettings {
            llm_prices: engine::agents::llm::parse_prices("tiny-model=0.5/2.0").expect("prices"),
            ..local_agents()
        },
        // Every commit a span, however fast.
        trace_commits_over: std::time::Duration::ZERO,
        ..EngineConfig::default()
    })
    .await;
    add_workflows(&h, addr).await;
    let (engine, store) = (&h.engine, h.engine.store().clone());

    // The trigger happens inside a request's span, as the API's handlers do.
    let request = tracing::info_span!(
        "http.server",
        otel.name = "POST /api/v1/workflows/{id}/runs",
        otel.kind = "server"
    );
    let run = engine
        .trigger(TriggerRequest {
            workflow_id: "traced".into(),
            trigger: "api".into(),
            ..Default::default()
        })
        .instrument(request.clone())
        .await
        .expect("trigger");
    drop(request);
    assert_eq!(engine.wait(&run.id).await.expect("wait"), RunStatus::Failed);
    let detail = store.run_detail(&run.id).await.expect("detail");
    let spans = exporter.get_finished_spans().expect("spans");

    let (root, trace_id) = check_root(&spans, &run.id, &detail);
    let attempts = check_attempts(&spans, root, &detail);
    check_http_clients(
        &spans,
        &attempts,
        addr,
        &seen.lock().expect("lock"),
        trace_id,
    );
    check_commits(&spans, root, &run.id);
    // The same run, counted: metric names and labels of SPEC §6, the trace as exemplar.
    let metrics = engine.metrics().encode();
    for line in [
        "workflow_runs_total{workflow=\"traced\",status=\"failed\",trigger=\"api\"} 1",
        "agent_runs_total{agent=\"http\",workflow=\"traced\",status=\"failed\"} 2",
        "agent_runs_total{agent=\"http\",workflow=\"traced\",status=\"succeeded\"} 1",
        "agent_errors_total{agent=\"http\",workflow=\"traced\",error_type=\"http_status\"} 2",
        "workflows_active{workflow=\"traced\"} 0",
    ] {
        assert!(metrics.contains(line), "missing {line:?} in\n{metrics}");
    }
    assert!(
        metrics.contains(&format!("# {{trace_id=\"{trace_id}\"}}")),
        "no exemplar with the run's trace id in\n{metrics}"
    );

    check_a_model_call(engine, &exporter).await;
    check_no_span_carries_a_secret(engine, &exporter).await;
    check_loops_and_skips(engine, &exporter).await;
    check_fast_commits_are_counted_not_spanned(&store, &exporter).await;
}

/// The in-memory exporter behind the global subscriber and tracer provider (attempt and
/// commit spans come from the global provider).
fn install_tracer() -> InMemorySpanExporter {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    tracing::subscriber::set_global_default(subscriber).expect("one subscriber per binary");
    // Attempt and commit spans come from the global tracer provider.
    opentelemetry::global::set_tracer_provider(provider);
    exporter
}

/// The loopback services the workflows call: /flaky, /down and an OpenAI-compatible model API.
async fn upstreams(seen: Arc<Mutex<Vec<String>>>) -> SocketAddr {
    let calls = Arc::new(AtomicUsize::new(0));
    let (counter, seen_flaky, seen_down) = (calls.clone(), seen.clone(), seen);
    serve(
        Router::new()
            .route(
                "/flaky",
                get(move |headers: HeaderMap| {
                    let n = counter.fetch_add(1, Ordering::SeqCst);
                    record_traceparent(&seen_flaky, &headers);
                    async move {
                        if n == 0 {
                            (StatusCode::SERVICE_UNAVAILABLE, "busy")
                        } else {
                            (StatusCode::OK, "ready")
                        }
                    }
                }),
            )
            .route(
                "/down",
                post(move |headers: HeaderMap| {
                    record_traceparent(&seen_down, &headers);
                    async { (StatusCode::BAD_GATEWAY, "down") }
                }),
            )
            // An OpenAI-compatible model API.
            .route(
                "/v1/chat/completions",
                post(move |axum::Json(body): axum::Json<serde_json::Value>| async move {
                    axum::Json(serde_json::json!({
                        "id": "chatcmpl-1", "object": "chat.completion", "model": body["model"],
                        "choices": [{ "index": 0, "message": { "role": "assistant", "content": "ok" }, "finish_reason": "stop" }],
                        "usage": { "prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500 }
                    }))
                }),
            ),
    )
    .await
}

/// A SQLite store with `traced` (three steps, a retry, a failure), `chatty` (a model call)
/// and `leaky` (a secret in a URL).
async fn add_workflows(h: &harness::Harness, addr: SocketAddr) {
    let yaml = format!(
        "id: traced\nname: Traced flow\nsteps:\n\
         - {{id: fetch, agent: http, with: {{url: 'http://{addr}/flaky'}}, retry: {{max_attempts: 2, backoff: 10ms}}}}\n\
         - {{id: shape, agent: transform, needs: [fetch], with: {{jq: '.steps.fetch.output.status'}}}}\n\
         - {{id: post, agent: http, needs: [shape], with: {{url: 'http://{addr}/down', method: POST}}}}\n"
    );
    h.add(&yaml).await;
    let chat_yaml = format!(
        "id: chatty\nsteps:\n- {{id: ask, agent: llm, with: {{base_url: 'http://{addr}/v1', model: tiny-model, prompt: hi}}}}\n"
    );
    h.add(&chat_yaml).await;
    // A workflow that puts a secret where spans could carry it: a URL path, an error.
    let leaky_yaml = "id: leaky\nsteps:\n\
         - {id: refused, agent: http, with: {url: 'http://127.0.0.1:1/{{ secrets.TOKEN }}/x'}}\n"
        .to_string();
    h.add(&leaky_yaml).await;
    // A loop over three items, a condition that is false, a step below it, and a condition
    // that is true (`success()` written out).
    let looped_yaml = "id: looped\nsteps:\n\
         - {id: list, agent: transform, with: {jq: '[10, 20, 30]'}}\n\
         - {id: each, agent: transform, needs: [list], for_each: steps.list.output, with: {jq: '.item + .index'}}\n\
         - {id: never, agent: transform, needs: [list], if: 'false', with: {jq: '1'}}\n\
         - {id: blocked, agent: transform, needs: [never], with: {jq: '1'}}\n\
         - {id: counted, agent: transform, needs: [each], if: 'success() and steps.each.output | length == 3', with: {jq: '\"ok\"'}}\n"
        .to_string();
    h.add(&looped_yaml).await;
}

/// A `for_each` step: an `agent.execute` span per item with `flowscope.item.index`, below the
/// step's `step.for_each` span. Skipped steps: a `step.skipped` event on the root with the
/// reason, and `workflow_steps_skipped_total` by reason.
async fn check_loops_and_skips(engine: &Engine, exporter: &InMemorySpanExporter) {
    let (run_id, status) = run_by_hand(engine, "looped").await;
    assert_eq!(status, RunStatus::Succeeded);
    let detail = engine.store().run_detail(&run_id).await.expect("detail");
    let step = |id: &str| {
        detail
            .steps
            .iter()
            .find(|s| s.step_id == id)
            .unwrap_or_else(|| panic!("no step {id}"))
    };
    assert_eq!(step("each").output, Some(serde_json::json!([10, 21, 32])));
    assert_eq!(step("counted").output, Some(serde_json::json!("ok")));
    for (id, reason) in [("never", "condition"), ("blocked", "upstream")] {
        assert_eq!(
            step(id).status,
            engine::records::StepStatus::Skipped,
            "{id}"
        );
        assert_eq!(
            step(id).skip_reason.map(|r| r.as_str()),
            Some(reason),
            "{id}"
        );
    }

    let spans = exporter.get_finished_spans().expect("spans");
    let root = spans
        .iter()
        .find(|s| s.name == "workflow.execute" && attr_str(s, "workflow.run.id") == run_id)
        .expect("the root span");
    let in_trace = |s: &&SpanData| s.span_context.trace_id() == root.span_context.trace_id();
    let loop_span = spans
        .iter()
        .filter(in_trace)
        .find(|s| s.name == "step.for_each")
        .expect("the loop's span");
    assert_eq!(loop_span.parent_span_id, root.span_context.span_id());
    let mut indexes: Vec<i64> = spans
        .iter()
        .filter(in_trace)
        .filter(|s| s.name == "agent.execute" && attr_str(s, "agent.step.id") == "each")
        .map(|s| {
            assert_eq!(
                s.parent_span_id,
                loop_span.span_context.span_id(),
                "item below its loop"
            );
            match attr(s, "flowscope.item.index") {
                Some(Value::I64(i)) => i,
                other => panic!("item span without an index: {other:?}"),
            }
        })
        .collect();
    indexes.sort_unstable();
    assert_eq!(indexes, [0, 1, 2]);

    let mut skipped: Vec<(String, String)> = root
        .events
        .iter()
        .filter(|e| e.name == "step.skipped")
        .map(|e| {
            let get = |key: &str| {
                e.attributes
                    .iter()
                    .find(|kv| kv.key.as_str() == key)
                    .map(|kv| kv.value.as_str().into_owned())
                    .unwrap_or_default()
            };
            (get("agent.step.id"), get("flowscope.skip.reason"))
        })
        .collect();
    skipped.sort();
    assert_eq!(
        skipped,
        [
            ("blocked".to_string(), "upstream".to_string()),
            ("never".to_string(), "condition".to_string())
        ]
    );
    let metrics = engine.metrics().encode();
    for line in [
        "workflow_steps_skipped_total{workflow=\"looped\",reason=\"condition\"} 1",
        "workflow_steps_skipped_total{workflow=\"looped\",reason=\"upstream\"} 1",
    ] {
        assert!(metrics.contains(line), "missing {line:?} in\n{metrics}");
    }
}

/// One root per run, in a trace of its own, linked to the triggering request; its ids stored.
fn check_root<'a>(
    spans: &'a [SpanData],
    run_id: &str,
    detail: &engine::records::RunDetail,
) -> (&'a SpanData, opentelemetry::trace::TraceId) {
    let request = spans
        .iter()
        .find(|s| s.name == "POST /api/v1/workflows/{id}/runs")
        .expect("the request span");
    let roots: Vec<&SpanData> = spans
        .iter()
        .filter(|s| s.name == "workflow.execute")
        .collect();
    assert_eq!(roots.len(), 1, "one root per run");
    let root = roots[0];
    let trace_id = root.span_context.trace_id();
    assert_ne!(
        trace_id,
        request.span_context.trace_id(),
        "a run is its own trace"
    );
    assert_eq!(root.parent_span_id, opentelemetry::trace::SpanId::INVALID);
    let linked: Vec<_> = root
        .links
        .links
        .iter()
        .map(|l| (l.span_context.trace_id(), l.span_context.span_id()))
        .collect();
    assert_eq!(
        linked,
        vec![(
            request.span_context.trace_id(),
            request.span_context.span_id()
        )],
        "the root links to the triggering request"
    );
    assert_eq!(attr_str(root, "workflow.id"), "traced");
    assert_eq!(attr_str(root, "workflow.name"), "Traced flow");
    assert_eq!(attr(root, "workflow.version"), Some(Value::I64(1)));
    assert_eq!(attr_str(root, "workflow.run.id"), run_id);
    assert_eq!(attr_str(root, "workflow.trigger"), "api");
    assert_eq!(attr_str(root, "workflow.run.status"), "failed");
    assert_eq!(attr_str(root, "error.type"), "http_status");
    assert!(
        matches!(root.status, Status::Error { .. }),
        "{:?}",
        root.status
    );

    // Stored ids match the exported spans.
    assert_eq!(
        detail.run.trace_id.as_deref(),
        Some(trace_id.to_string().as_str())
    );
    assert_eq!(
        detail.run.span_id.as_deref(),
        Some(root.span_context.span_id().to_string().as_str())
    );
    (root, trace_id)
}

/// An `agent.execute` span per attempt, children of the root, each stored with its attempt.
fn check_attempts<'a>(
    spans: &'a [SpanData],
    root: &SpanData,
    detail: &engine::records::RunDetail,
) -> Vec<&'a SpanData> {
    let trace_id = root.span_context.trace_id();
    let mut attempts: Vec<&SpanData> = spans.iter().filter(|s| s.name == "agent.execute").collect();
    attempts.sort_by_key(|s| s.start_time);
    let summary: Vec<(String, i64, String, String)> = attempts
        .iter()
        .map(|s| {
            (
                attr_str(s, "agent.step.id"),
                match attr(s, "agent.attempt") {
                    Some(Value::I64(n)) => n,
                    other => panic!("agent.attempt: {other:?}"),
                },
                attr_str(s, "agent.run.status"),
                attr_str(s, "error.type"),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("fetch".into(), 1, "failed".into(), "http_status".into()),
            ("fetch".into(), 2, "succeeded".into(), String::new()),
            ("shape".into(), 1, "succeeded".into(), String::new()),
            ("post".into(), 1, "failed".into(), "http_status".into()),
        ]
    );
    for a in &attempts {
        assert_eq!(a.span_context.trace_id(), trace_id);
        assert_eq!(
            a.parent_span_id,
            root.span_context.span_id(),
            "attempts are children of the run"
        );
        let failed = attr_str(a, "agent.run.status") == "failed";
        assert_eq!(
            matches!(a.status, Status::Error { .. }),
            failed,
            "{:?}",
            a.status
        );
        let kind = attr_str(a, "agent.kind");
        assert!(kind == "http" || kind == "transform", "{kind}");
        let stored = detail
            .attempts
            .iter()
            .find(|r| {
                r.step_id == attr_str(a, "agent.step.id")
                    && Some(Value::I64(r.attempt)) == attr(a, "agent.attempt")
            })
            .expect("a stored attempt per span");
        assert_eq!(
            stored.span_id.as_deref(),
            Some(a.span_context.span_id().to_string().as_str())
        );
    }
    attempts
}

/// HTTP client spans under the http attempts, each sent on as the callee's traceparent.
fn check_http_clients(
    spans: &[SpanData],
    attempts: &[&SpanData],
    addr: SocketAddr,
    sent: &[String],
    trace_id: opentelemetry::trace::TraceId,
) {
    let clients: Vec<&SpanData> = spans
        .iter()
        .filter(|s| s.span_kind == SpanKind::Client && attr(s, "http.request.method").is_some())
        .collect();
    assert_eq!(clients.len(), 3, "two fetch attempts and one post");
    for c in &clients {
        assert_eq!(c.span_context.trace_id(), trace_id);
        let parent = attempts
            .iter()
            .find(|a| a.span_context.span_id() == c.parent_span_id)
            .expect("a client span's parent is an attempt");
        assert_eq!(attr_str(parent, "agent.kind"), "http");
        assert!(attr_str(c, "url.full").starts_with(&format!("http://{addr}/")));
        assert_eq!(attr_str(c, "server.address"), addr.ip().to_string());
        assert_eq!(
            attr(c, "server.port"),
            Some(Value::I64(i64::from(addr.port())))
        );
        let expected = format!("00-{}-{}-01", trace_id, c.span_context.span_id());
        assert!(sent.contains(&expected), "{expected} not in {sent:?}");
    }
    let post = clients
        .iter()
        .find(|c| attr_str(c, "http.request.method") == "POST")
        .expect("the POST");
    assert_eq!(post.name, "POST");
    assert_eq!(
        attr(post, "http.response.status_code"),
        Some(Value::I64(502))
    );
    assert_eq!(attr_str(post, "error.type"), "502");
}

/// Storage shows up in the trace: commits are client spans under the run.
fn check_commits(spans: &[SpanData], root: &SpanData, run_id: &str) {
    let trace_id = root.span_context.trace_id();
    let commits: Vec<&SpanData> = spans
        .iter()
        .filter(|s| attr_str(s, "db.operation.name") == "COMMIT")
        .collect();
    assert!(!commits.is_empty());
    assert_eq!(
        attr(root, "flowscope.commits"),
        Some(Value::I64(commits.len() as i64)),
        "the root counts every commit"
    );
    for c in &commits {
        assert_eq!(c.span_context.trace_id(), trace_id);
        assert_eq!(c.span_kind, SpanKind::Client);
        assert_eq!(attr_str(c, "db.system.name"), "sqlite");
        let text = attr_str(c, "db.query.text");
        assert!(
            text.contains("run_steps") && !text.contains(run_id),
            "{text}"
        );
    }
}

/// A model call: a `chat {model}` client span with the GenAI token attributes and cost,
/// under its attempt, and the tokens and spend counted.
async fn check_a_model_call(engine: &Engine, exporter: &InMemorySpanExporter) {
    let (_, chatted) = run_by_hand(engine, "chatty").await;
    assert_eq!(chatted, RunStatus::Succeeded);
    let spans = exporter.get_finished_spans().expect("spans");
    let chat = spans
        .iter()
        .find(|s| s.name == "chat tiny-model")
        .expect("a chat span");
    assert_eq!(chat.span_kind, SpanKind::Client);
    assert_eq!(attr_str(chat, "gen_ai.request.model"), "tiny-model");
    assert_eq!(
        attr(chat, "gen_ai.usage.input_tokens"),
        Some(Value::I64(1200))
    );
    assert_eq!(
        attr(chat, "gen_ai.usage.output_tokens"),
        Some(Value::I64(300))
    );
    // 1,200 × $0.5/M + 300 × $2/M
    assert_eq!(attr(chat, "agent.cost.usd"), Some(Value::F64(0.0012)));
    let attempt = spans
        .iter()
        .find(|s| s.span_context.span_id() == chat.parent_span_id)
        .expect("the chat span's parent");
    assert_eq!(attempt.name, "agent.execute");
    assert_eq!(attr_str(attempt, "agent.kind"), "llm");
    let metrics = engine.metrics().encode();
    for line in [
        "agent_tokens_total{agent=\"llm\",workflow=\"chatty\",model=\"tiny-model\",direction=\"input\"} 1200",
        "agent_tokens_total{agent=\"llm\",workflow=\"chatty\",model=\"tiny-model\",direction=\"output\"} 300",
        "agent_cost_usd_total{agent=\"llm\",workflow=\"chatty\",model=\"tiny-model\"} 0.0012",
        "workflow_runs_total{workflow=\"chatty\",status=\"succeeded\",trigger=\"manual\"} 1",
    ] {
        assert!(metrics.contains(line), "missing {line:?} in\n{metrics}");
    }
}

/// A secret in a URL and in an error message reaches no exported span.
async fn check_no_span_carries_a_secret(engine: &Engine, exporter: &InMemorySpanExporter) {
    let (_, leaked) = run_by_hand(engine, "leaky").await;
    assert_eq!(leaked, RunStatus::Failed);
    let spans = exporter.get_finished_spans().expect("spans");
    let client = spans
        .iter()
        .find(|s| {
            s.span_kind == SpanKind::Client && attr_str(s, "url.full").contains("127.0.0.1:1")
        })
        .expect("the refused request's span");
    assert!(
        attr_str(client, "url.full").contains("***"),
        "{:?}",
        client.attributes
    );
    for span in &spans {
        let text = format!("{:?} {:?} {:?}", span.attributes, span.status, span.events);
        assert!(
            !text.contains(SECRET),
            "span {} carries the secret: {text}",
            span.name
        );
    }
}

/// With the default threshold, a commit faster than it gets no span of its own; the root
/// still counts it, and the time waited. (An hour: no commit here is that slow.)
async fn check_fast_commits_are_counted_not_spanned(
    store: &Store,
    exporter: &InMemorySpanExporter,
) {
    let engine = Engine::start(
        store.clone(),
        EngineConfig {
            trace_commits_over: std::time::Duration::from_secs(3600),
            agents: local_agents(),
            ..EngineConfig::default()
        },
    )
    .await
    .expect("engine");
    let (quiet_id, quiet) = run_by_hand(&engine, "chatty").await;
    assert_eq!(quiet, RunStatus::Succeeded);
    let spans = exporter.get_finished_spans().expect("spans");
    let root = spans
        .iter()
        .find(|s| s.name == "workflow.execute" && attr_str(s, "workflow.run.id") == quiet_id)
        .expect("the root span");
    let in_trace = |name: &str| {
        spans
            .iter()
            .filter(|s| s.span_context.trace_id() == root.span_context.trace_id() && s.name == name)
            .count()
    };
    assert_eq!(in_trace("COMMIT run state"), 0);
    assert_eq!(in_trace("agent.execute"), 1);
    let Some(Value::I64(commits)) = attr(root, "flowscope.commits") else {
        panic!("no commit count on {:?}", root.attributes)
    };
    assert!(commits >= 2, "start and finish at least: {commits}");
    assert!(
        matches!(attr(root, "flowscope.commit_ms"), Some(Value::F64(ms)) if ms > 0.0),
        "{:?}",
        root.attributes
    );
}

/// Triggers `workflow` by hand and waits for it: its id and how it ended.
async fn run_by_hand(engine: &Engine, workflow: &str) -> (String, RunStatus) {
    let run = engine
        .trigger(TriggerRequest {
            workflow_id: workflow.into(),
            trigger: "manual".into(),
            ..Default::default()
        })
        .await
        .expect("trigger");
    let status = engine.wait(&run.id).await.expect("wait");
    (run.id, status)
}

fn record_traceparent(seen: &Mutex<Vec<String>>, headers: &HeaderMap) {
    if let Some(tp) = headers.get("traceparent").and_then(|v| v.to_str().ok()) {
        seen.lock().expect("lock").push(tp.to_string());
    }
}
