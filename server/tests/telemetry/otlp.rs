//! Telemetry over the wire: a real OTLP receiver (gRPC on tonic, HTTP/protobuf on axum, both on
//! the `opentelemetry-proto` types) gets the spans and logs of a run triggered through the API,
//! with Flowscope's resource attributes; the run's root links to the request, and the request
//! span continues the caller's `traceparent`.

use std::collections::HashMap;

use flowscope::telemetry::{OtlpSettings, Protocol, Telemetry};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::trace::v1::Span;
use otlp::sink as otlp_sink;
use serde_json::Value;

use crate::common;
use crate::common::hub::Hub;

fn value(attrs: &[KeyValue], key: &str) -> Option<AnyValue> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.clone())
        .and_then(|v| v.value)
}

fn string(attrs: &[KeyValue], key: &str) -> String {
    match value(attrs, key) {
        Some(AnyValue::StringValue(s)) => s,
        _ => String::new(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Serves Flowscope with telemetry exported by `protocol`, runs `hello` through the API under a
/// caller's trace, flushes, and checks what the receiver got.
fn exports_a_run(protocol: Protocol) {
    let sink = otlp_sink::start_keeping().expect("OTLP receiver");
    let addr = match protocol {
        Protocol::Grpc => sink.grpc,
        Protocol::HttpProtobuf => sink.http,
    };
    let telemetry = Telemetry::build(&OtlpSettings {
        disabled: false,
        endpoint: Some(format!("http://{addr}")),
        protocol,
    })
    .expect("telemetry");
    let subscriber = telemetry.subscriber("info");
    // One thread runs the server, the engine and this test: the thread's default subscriber
    // sees every span.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let caller_trace = "0af7651916cd43dd8448eb211c80319c";
    let (run, failed, parent, child): (Value, Value, Value, Value) =
        tracing::subscriber::with_default(subscriber, || {
            runtime.block_on(async {
                // Every commit a span, however fast: the run's storage time is in its trace.
                let config = flowscope::config::Config {
                    trace_commit_threshold: std::time::Duration::ZERO,
                    ..common::quiet()
                };
                let hub = Hub::start_with(config).await;
                let client = hub.client();
                let tp = format!("00-{caller_trace}-b7ad6b7169203331-01");
                let request = client
                    .request(reqwest::Method::POST, "/api/v1/workflows/hello/runs")
                    .header("traceparent", tp)
                    .json(&serde_json::json!({ "inputs": { "who": "telemetry" } }));
                let (_, created) = client.send(request).await;
                let id = created["run"]["id"].as_str().expect("run id");
                let run = client.wait_finished(id).await;
                tracing::info_span!("test.observer").in_scope(|| {
                    tracing::info!(run.id = %run["id"], "test saw the run finish");
                });
                let failed = client.run("always-fails", serde_json::json!({})).await;
                client.create(CHILD).await;
                client.create(PARENT).await;
                let parent = client.run("traced-parent", serde_json::json!({})).await;
                let child_id = parent["children"][0]["id"].as_str().expect("a child run");
                let child = client.get_run(child_id).await;
                (run, failed, parent, child)
            })
        });
    // Shutdown flushes both providers: everything must have arrived when it returns.
    telemetry.shutdown();

    let received = sink.received();
    assert!(
        !received.traces.is_empty(),
        "no spans arrived over {protocol:?}"
    );
    let spans = exported_spans(&received);
    check_the_runs_trace(&spans, &run, caller_trace);
    check_one_trace_across_a_call(&spans, &parent, &child);
    // Logs arrive with the resource and the trace context of the span they were written in.
    let records = exported_logs(&received);
    let seen = records
        .iter()
        .find(|r| {
            matches!(&r.body, Some(b) if matches!(&b.value, Some(AnyValue::StringValue(s)) if s == "test saw the run finish"))
        })
        .expect("the test's log line arrived");
    assert_eq!(
        seen.trace_id.len(),
        16,
        "a log written in a span carries its trace id"
    );

    // A failure is in the logs: a line per failed attempt under its span, one for the run
    // under its root; each with the error.
    assert_eq!(failed["status"], "failed", "{failed}");
    let body = |r: &LogRecord| match r.body.as_ref().and_then(|b| b.value.as_ref()) {
        Some(AnyValue::StringValue(s)) => s.clone(),
        _ => String::new(),
    };
    let failed_trace = failed["trace_id"].as_str().expect("stored trace id");
    let in_run: Vec<&LogRecord> = records
        .iter()
        .filter(|r| hex(&r.trace_id) == failed_trace)
        .collect();
    let mut attempt_spans: Vec<String> = in_run
        .iter()
        .filter(|r| body(r).starts_with("step attempt failed: "))
        .map(|r| hex(&r.span_id))
        .collect();
    attempt_spans.sort();
    let mut failed_attempts: Vec<String> = failed["attempts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["status"] == "failed" || a["status"] == "retrying")
        .filter_map(|a| a["span_id"].as_str().map(str::to_string))
        .collect();
    failed_attempts.sort();
    assert_eq!(failed_attempts.len(), 3, "{failed}");
    assert_eq!(attempt_spans, failed_attempts, "{in_run:?}");
    let run_line = in_run
        .iter()
        .find(|r| body(r).starts_with("run failed: "))
        .unwrap_or_else(|| panic!("no log line for the failed run among {in_run:?}"));
    assert_eq!(
        hex(&run_line.span_id),
        failed["span_id"].as_str().unwrap_or("?")
    );
    assert_eq!(run_line.severity_number, 17, "ERROR");
    assert!(body(run_line).contains("flaky_call"), "{}", body(run_line));
}

const CHILD: &str = "id: traced-child\ninputs:\n  n: {type: integer}\noutputs: {twice: '{{ steps.double.output }}'}\nsteps:\n- {id: double, agent: transform, with: {jq: '.inputs.n * 2'}}\n";
const PARENT: &str = "id: traced-parent\nsteps:\n- {id: call, agent: workflow, with: {workflow: traced-child, inputs: {n: 21}}}\n";

/// A child run is in its caller's trace: its root is a child of the calling attempt's span.
fn check_one_trace_across_a_call(spans: &[Span], parent: &Value, child: &Value) {
    assert_eq!(parent["status"], "succeeded", "{parent}");
    assert_eq!(
        parent["steps"][0]["output"],
        serde_json::json!({"twice": 42})
    );
    assert_eq!(child["caller"]["run_id"], parent["id"]);
    let trace = parent["trace_id"].as_str().expect("parent trace");
    assert_eq!(
        child["trace_id"].as_str(),
        Some(trace),
        "one trace: {child}"
    );
    let call = parent["attempts"][0]["span_id"]
        .as_str()
        .expect("the call's span");
    let root = spans
        .iter()
        .find(|s| hex(&s.span_id) == child["span_id"].as_str().unwrap_or("?"))
        .expect("the child's root span arrived");
    assert_eq!(root.name, "workflow.execute");
    assert_eq!(hex(&root.trace_id), trace);
    assert_eq!(hex(&root.parent_span_id), call, "under the calling attempt");
    let attempt = spans
        .iter()
        .find(|s| hex(&s.span_id) == call)
        .expect("the calling attempt's span arrived");
    assert_eq!(string(&attempt.attributes, "agent.kind"), "workflow");
    assert!(
        spans
            .iter()
            .any(|s| s.name == "agent.execute" && s.parent_span_id == root.span_id),
        "the child's own step is in the same trace"
    );
}

/// Every span that arrived, each request's resource checked.
fn exported_spans(received: &otlp_sink::Received) -> Vec<Span> {
    let mut spans = Vec::new();
    for request in &received.traces {
        for rs in &request.resource_spans {
            let resource = rs.resource.as_ref().expect("a resource");
            assert_eq!(string(&resource.attributes, "service.name"), "flowscope");
            assert!(!string(&resource.attributes, "service.version").is_empty());
            assert_eq!(
                string(&resource.attributes, "telemetry.sdk.language"),
                "rust"
            );
            for ss in &rs.scope_spans {
                spans.extend(ss.spans.iter().cloned());
            }
        }
    }
    spans
}

/// The run's trace: its root and stored ids, an attempt per step under the root, the request
/// span continuing the caller's trace with the run linked to it, and database spans.
fn check_the_runs_trace(spans: &[Span], run: &Value, caller_trace: &str) {
    let by_name: HashMap<&str, Vec<_>> = spans.iter().fold(HashMap::new(), |mut m, s| {
        m.entry(s.name.as_str()).or_default().push(s);
        m
    });
    let trace_id = run["trace_id"].as_str().expect("stored trace id");
    let root = by_name["workflow.execute"]
        .iter()
        .find(|s| hex(&s.trace_id) == trace_id)
        .expect("the run's root span");
    assert_eq!(
        hex(&root.span_id),
        run["span_id"].as_str().expect("stored span id")
    );
    assert_eq!(
        string(&root.attributes, "workflow.run.id"),
        run["id"].as_str().unwrap_or("?")
    );
    let attempts: Vec<_> = by_name["agent.execute"]
        .iter()
        .filter(|s| hex(&s.trace_id) == trace_id)
        .collect();
    let steps = run["steps"].as_array().map_or(0, Vec::len);
    assert!(steps > 1);
    assert_eq!(attempts.len(), steps, "each of hello's steps ran once");
    for a in &attempts {
        assert_eq!(a.parent_span_id, root.span_id);
    }
    // The request span continues the caller's trace, and the run links to it.
    // The test makes several such requests, and batches of spans may arrive in any order:
    // the one sent with the caller's `traceparent` is the one under the caller's span.
    let requests = &by_name["POST /api/v1/workflows/{id}/runs"];
    let under_caller: Vec<_> = requests
        .iter()
        .filter(|s| hex(&s.parent_span_id) == "b7ad6b7169203331")
        .collect();
    assert_eq!(
        under_caller.len(),
        1,
        "one request continued the caller's span"
    );
    let request = *under_caller[0];
    assert_eq!(hex(&request.trace_id), caller_trace);
    assert_eq!(
        string(&request.attributes, "http.route"),
        "/api/v1/workflows/{id}/runs"
    );
    assert!(matches!(
        value(&request.attributes, "http.response.status_code"),
        Some(AnyValue::IntValue(200..=202))
    ));
    assert_eq!(root.links.len(), 1);
    assert_eq!(root.links[0].trace_id, request.trace_id);
    // The link is to the request span or a span inside it (the handler's).
    let mut linked = root.links[0].span_id.clone();
    while linked != request.span_id {
        let span = spans
            .iter()
            .find(|s| s.span_id == linked)
            .expect("the linked span is exported with the request's trace");
        assert_eq!(span.trace_id, request.trace_id);
        linked = span.parent_span_id.clone();
        assert!(
            !linked.is_empty(),
            "the linked span is not inside the request"
        );
    }
    // Database work is in the trace: the run's commits and the API's reads.
    assert!(spans.iter().any(
        |s| hex(&s.trace_id) == trace_id && string(&s.attributes, "db.system.name") == "sqlite"
    ));
    // Each inside what asked for it: start-up's reads (no request, no run) make no trace.
    let db: Vec<&Span> = spans
        .iter()
        .filter(|s| !string(&s.attributes, "db.system.name").is_empty())
        .collect();
    assert!(db.len() > 3, "{} database spans", db.len());
    for s in db {
        assert!(
            !s.parent_span_id.is_empty(),
            "the database span {} is a trace of its own",
            s.name
        );
    }
}

/// Every log record that arrived, each request's resource checked.
fn exported_logs(received: &otlp_sink::Received) -> Vec<LogRecord> {
    let mut records = Vec::new();
    for request in &received.log_requests {
        for rl in &request.resource_logs {
            let resource = rl.resource.as_ref().expect("a resource");
            assert_eq!(string(&resource.attributes, "service.name"), "flowscope");
            for sl in &rl.scope_logs {
                records.extend(sl.log_records.iter().cloned());
            }
        }
    }
    records
}

/// One test, the two protocols in turn: each installs its provider as the global one, which
/// the engine's attempt spans use.
#[test]
fn spans_and_logs_arrive_over_grpc_and_http_protobuf() {
    let _globals = crate::GLOBALS.blocking_lock();
    exports_a_run(Protocol::Grpc);
    exports_a_run(Protocol::HttpProtobuf);
}
