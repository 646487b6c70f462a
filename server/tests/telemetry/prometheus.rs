//! `/metrics` scraped by a real Prometheus (Debian's `prometheus`, exemplar storage on): the
//! run counter arrives, a duration exemplar carries the trace id stored with the run, and the
//! values equal what the API reports for the same runs: durations, queue wait, attempts, the
//! active gauge while a run is held open, a model call's tokens and cost, and the outcome
//! series of a workflow that never ran, at zero.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::{get, post};
use axum::{Json, Router};
use engine::agents::llm::Price;
use flowscope::telemetry::{OtlpSettings, Protocol, Telemetry};
use serde_json::{json, Value};
use tokio::sync::Notify;

use crate::common::hub::{Client, Hub};
use crate::common::{self, free_port};
use bench::Killed;

async fn get_json(client: &reqwest::Client, url: &str) -> Option<Value> {
    client.get(url).send().await.ok()?.json().await.ok()
}

/// A model provider speaking OpenAI's chat completions (1,200 tokens in, 300 out), and
/// `GET /hold`, which answers once the test calls `release`.
struct Upstream {
    addr: std::net::SocketAddr,
    release: Arc<Notify>,
}

impl Upstream {
    async fn start() -> Upstream {
        let release = Arc::new(Notify::new());
        let held = release.clone();
        let app = Router::new()
            .route(
                "/v1/chat/completions",
                post(|Json(body): Json<Value>| async move {
                    Json(json!({
                        "model": body["model"],
                        "choices": [{ "message": { "role": "assistant", "content": "hi" } }],
                        "usage": { "prompt_tokens": 1200, "completion_tokens": 300 }
                    }))
                }),
            )
            .route(
                "/hold",
                get(move || {
                    let held = held.clone();
                    async move {
                        held.notified().await;
                        "released"
                    }
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Upstream { addr, release }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_runs_and_an_exemplar_with_the_runs_trace_id() {
    let _globals = crate::GLOBALS.lock().await;
    // Span ids without export: what a default install does.
    let telemetry = Telemetry::build(&OtlpSettings {
        disabled: false,
        endpoint: None,
        protocol: Protocol::HttpProtobuf,
    })
    .expect("telemetry");
    tracing::subscriber::set_global_default(telemetry.subscriber("warn"))
        .expect("one global subscriber per test binary");

    let upstream = Upstream::start().await;
    let prices = HashMap::from([(
        "tiny-model".to_string(),
        Price {
            input_per_mtok: 0.5,
            output_per_mtok: 2.0,
        },
    )]);
    let hub = Hub::start_with(flowscope::config::Config {
        llm_prices: prices,
        ..common::quiet()
    })
    .await;
    let flowscope = hub.client();
    let addr = upstream.addr;
    flowscope
        .create(&format!(
            "id: chatty\nsteps:\n- {{id: ask, agent: llm, with: {{base_url: 'http://{addr}/v1', model: tiny-model, prompt: hi}}}}\n"
        ))
        .await;
    flowscope
        .create(&format!(
            "id: held\nsteps:\n- {{id: wait, agent: http, with: {{url: 'http://{addr}/hold'}}}}\n"
        ))
        .await;
    flowscope
        .create("id: unrun\nsteps:\n- {id: a, agent: transform, with: {jq: '1'}}\n")
        .await;

    // Finished runs, with their trace ids stored.
    let run = flowscope.run("hello", json!({ "who": "telemetry" })).await;
    let trace_id = run["trace_id"]
        .as_str()
        .expect("a stored trace id")
        .to_string();
    assert_eq!(trace_id.len(), 32);
    let chat = flowscope.run("chatty", json!({})).await;
    assert_eq!(chat["status"], "succeeded", "{chat}");
    let failed = flowscope.run("always-fails", json!({})).await;
    assert_eq!(failed["status"], "failed", "{failed}");

    let dir = tempfile::tempdir().expect("tempdir");
    let prometheus = start_prometheus(dir.path(), &hub.base);
    let client = flowscope.http.clone();
    let api = prometheus.api.clone();

    let (runs, exemplars) = scraped_runs_and_exemplars(&client, &api).await;
    check_outcomes_and_the_exemplar(&runs, &exemplars, &trace_id);
    check_the_servers_own_series(&client, &api).await;
    check_values_equal_the_api(&client, &api, &run, &[&chat, &failed]).await;
    check_errors_and_skips(&client, &api, &failed).await;
    check_a_model_calls_tokens_and_cost(&flowscope, &api, &chat).await;
    check_a_workflow_that_never_ran(&client, &api).await;
    check_the_active_gauge(&flowscope, &api, &upstream).await;
}

/// Debian's Prometheus scraping `base` every second, exemplar storage on.
struct Prometheus {
    api: String,
    _process: Killed,
}

fn start_prometheus(dir: &std::path::Path, base: &str) -> Prometheus {
    let target = base.trim_start_matches("http://");
    let port = free_port();
    std::fs::write(
        dir.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: flowscope\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .expect("config");
    let process = Command::new("prometheus")
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--enable-feature=exemplar-storage")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("Debian's prometheus on PATH (scripts/setup.sh --test installs it)");
    Prometheus {
        api: format!("http://127.0.0.1:{port}/api/v1"),
        _process: Killed(process),
    }
}

/// Polls `q` until `done` holds for its value; the value (a hang guard, not a time limit).
async fn poll_value(
    client: &reqwest::Client,
    api: &str,
    q: &str,
    done: impl Fn(Option<f64>) -> bool,
) -> Option<f64> {
    let mut last = None;
    for _ in 0..2400 {
        last = value(&query(client, api, q).await);
        if done(last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{q} stayed at {last:?}");
}

/// A failed run's failed attempts are its agent errors, by type, and the step it skipped is
/// counted with its reason.
async fn check_errors_and_skips(client: &reqwest::Client, api: &str, failed: &Value) {
    let mut errors: HashMap<String, f64> = HashMap::new();
    for attempt in failed["attempts"].as_array().into_iter().flatten() {
        if let Some(kind) = attempt["error_kind"].as_str() {
            *errors.entry(kind.to_string()).or_default() += 1.0;
        }
    }
    assert!(!errors.is_empty(), "{failed}");
    for (kind, n) in &errors {
        let q =
            format!(r#"sum(agent_errors_total{{workflow="always-fails",error_type="{kind}"}})"#);
        let got = poll_value(client, api, &q, |v| v.is_some()).await;
        assert_eq!(got, Some(*n), "{q}");
    }
    let mut skipped: HashMap<String, f64> = HashMap::new();
    for step in failed["steps"].as_array().into_iter().flatten() {
        if step["status"] == "skipped" {
            let reason = step["skip_reason"].as_str().expect("a skip reason");
            *skipped.entry(reason.to_string()).or_default() += 1.0;
        }
    }
    assert!(!skipped.is_empty(), "{failed}");
    for (reason, n) in &skipped {
        let q =
            format!(r#"workflow_steps_skipped_total{{workflow="always-fails",reason="{reason}"}}"#);
        let got = poll_value(client, api, &q, |v| v.is_some()).await;
        assert_eq!(got, Some(*n), "{q}");
    }
}

/// The tokens and dollars Prometheus holds for a model call are the ones in the step's output.
async fn check_a_model_calls_tokens_and_cost(flowscope: &Client, api: &str, chat: &Value) {
    let id = chat["id"].as_str().expect("id");
    let (_, output) = flowscope
        .get(&format!("/api/v1/runs/{id}/steps/ask/output"))
        .await;
    let usage = &output["usage"];
    let (input, output_tokens) = (
        usage["input_tokens"].as_f64().expect("input tokens"),
        usage["output_tokens"].as_f64().expect("output tokens"),
    );
    assert_eq!((input, output_tokens), (1200.0, 300.0), "{output}");
    let cost = output["cost_usd"].as_f64().expect("a cost");
    // 1,200 × $0.5/M + 300 × $2/M
    assert!((cost - 0.0012).abs() < 1e-12, "{output}");
    let client = &flowscope.http;
    let series = r#"workflow="chatty",agent="llm",model="tiny-model""#;
    for (direction, want) in [("input", input), ("output", output_tokens)] {
        let q = format!("agent_tokens_total{{{series},direction=\"{direction}\"}}");
        let got = poll_value(client, api, &q, |v| v.is_some()).await;
        assert_eq!(got, Some(want), "{q}");
    }
    let q = format!("agent_cost_usd_total{{{series}}}");
    let got = poll_value(client, api, &q, |v| v.is_some()).await;
    assert!(
        got.is_some_and(|g| (g - cost).abs() < 1e-12),
        "{q}: Prometheus has {got:?}, the API says {cost}"
    );
}

/// A workflow nobody ran has its outcome series at zero, for the triggers it can have: a first
/// failure between two scrapes is then an increase `rate()` sees.
async fn check_a_workflow_that_never_ran(client: &reqwest::Client, api: &str) {
    for trigger in ["manual", "api", "retry"] {
        let q = format!(
            r#"workflow_runs_total{{workflow="unrun",status="failed",trigger="{trigger}"}}"#
        );
        let got = poll_value(client, api, &q, |v| v.is_some()).await;
        assert_eq!(got, Some(0.0), "{q}");
    }
    // It declares no cron or webhook trigger: no series for them.
    let q = r#"count(workflow_runs_total{workflow="unrun",trigger=~"cron|webhook"})"#;
    let answer = query(client, api, q).await;
    assert_eq!(value(&answer), None, "{answer}");
}

/// While a run is held open the gauge counts it, and after it ends it does not.
async fn check_the_active_gauge(flowscope: &Client, api: &str, upstream: &Upstream) {
    let id = flowscope.trigger("held", json!({})).await;
    let client = &flowscope.http;
    let q = r#"workflows_active{workflow="held"}"#;
    poll_value(client, api, q, |v| v == Some(1.0)).await;
    let run = flowscope.get_run(&id).await;
    assert_eq!(
        run["status"], "running",
        "the gauge says 1 while the API says {run}"
    );
    upstream.release.notify_one();
    let run = flowscope.wait_finished(&id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    poll_value(client, api, q, |v| v == Some(0.0)).await;
}

/// Polls until Prometheus has scraped the run's outcome series and an exemplar.
async fn scraped_runs_and_exemplars(client: &reqwest::Client, api: &str) -> (Value, Value) {
    // Scrapes land every second; give up (with the last answers) after a generous number.
    let mut last = (Value::Null, Value::Null);
    let mut found = None;
    for _ in 0..400 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let Some(runs) = get_json(
            client,
            &format!("{api}/query?query=workflow_runs_total%7Bworkflow%3D%22hello%22%7D"),
        )
        .await
        else {
            continue;
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let Some(exemplars) = get_json(
            client,
            &format!(
                "{api}/query_exemplars?query=workflow_duration_seconds_bucket&start={}&end={}",
                now - 600,
                now + 60
            ),
        )
        .await
        else {
            continue;
        };
        let has_runs = runs["data"]["result"]
            .as_array()
            .is_some_and(|r| !r.is_empty());
        let has_exemplars = exemplars["data"].as_array().is_some_and(|r| !r.is_empty());
        if has_runs && has_exemplars {
            found = Some((runs, exemplars));
            break;
        }
        last = (runs, exemplars);
    }
    found.unwrap_or_else(|| panic!("Prometheus never had both: {last:?}"))
}

/// The run's outcome series exist from its start, at zero but for the one it ended with
/// (`rate()` then sees a workflow's very first failure); the run's trace is an exemplar.
fn check_outcomes_and_the_exemplar(runs: &Value, exemplars: &Value, trace_id: &str) {
    let mut outcomes: Vec<(String, String, String)> = runs["data"]["result"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            let label = |k: &str| s["metric"][k].as_str().unwrap_or_default().to_string();
            (
                label("status"),
                label("trigger"),
                s["value"][1].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    outcomes.sort();
    // Every outcome of every trigger `hello` can have, at zero but the one the run ended with.
    let mut expected: Vec<(String, String, String)> = Vec::new();
    for status in ["cancelled", "failed", "succeeded", "timed_out"] {
        for trigger in ["api", "manual", "retry"] {
            let n = if (status, trigger) == ("succeeded", "api") {
                "1"
            } else {
                "0"
            };
            expected.push((status.to_string(), trigger.to_string(), n.to_string()));
        }
    }
    assert_eq!(outcomes, expected);
    let ids: Vec<&str> = exemplars["data"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["exemplars"].as_array().into_iter().flatten())
        .filter_map(|e| e["labels"]["trace_id"].as_str())
        .collect();
    assert!(
        ids.contains(&trace_id),
        "{trace_id} not among exemplars {ids:?}"
    );
}

/// The server's own series parse too: requests by route, the process, the database pool.
async fn check_the_servers_own_series(client: &reqwest::Client, api: &str) {
    let posts = query(
        client,
        api,
        r#"sum(http_server_request_duration_seconds_count{http_route="/api/v1/workflows/{id}/runs",http_request_method="POST",http_response_status_code="202"})"#,
    )
    .await;
    assert!(value(&posts).is_some_and(|n| n >= 1.0), "{posts}");
    let memory = query(client, api, "process_resident_memory_bytes").await;
    assert!(value(&memory).is_some_and(|b| b > 1e6), "{memory}");
    let cpu = query(client, api, "process_cpu_seconds_total").await;
    assert!(value(&cpu).is_some_and(|s| s > 0.0), "{cpu}");
    let pool = query(client, api, "db_client_connection_max").await;
    assert_eq!(value(&pool), Some(8.0), "{pool}");
    let used = query(
        client,
        api,
        r#"db_client_connection_count{db_client_connection_state="idle"}"#,
    )
    .await;
    assert!(value(&used).is_some_and(|n| n >= 0.0), "{used}");
}

/// Values, not shapes: what Prometheus holds for the run equals what the API reports.
async fn check_values_equal_the_api(
    client: &reqwest::Client,
    api: &str,
    run: &Value,
    others: &[&Value],
) {
    let ms = |v: &Value| v.as_i64().unwrap_or_else(|| panic!("a time in {run}"));
    let seconds = |from: &Value, to: &Value| (ms(to) - ms(from)) as f64 / 1000.0;
    let close = |got: Option<f64>, want: f64, what: &str, tolerance: f64| {
        let got = got.unwrap_or_else(|| panic!("no {what} in Prometheus"));
        assert!(
            (got - want).abs() <= tolerance,
            "{what}: Prometheus has {got}, the API says {want}"
        );
    };
    let duration = seconds(&run["started_at"], &run["finished_at"]);
    // `hello`'s first step sleeps 50 ms: a run of 0 s would be the metric lying.
    assert!(duration >= 0.05, "{run}");
    let hello = r#"{workflow="hello",status="succeeded"}"#;
    let sum = query(
        client,
        api,
        &format!("workflow_duration_seconds_sum{hello}"),
    )
    .await;
    close(value(&sum), duration, "run duration", 1e-6);
    let count = query(
        client,
        api,
        &format!("workflow_duration_seconds_count{hello}"),
    )
    .await;
    close(value(&count), 1.0, "runs timed", 0.0);
    let wait = query(client, api, "workflow_queue_wait_seconds_sum").await;
    // The histogram has no workflow label: every run's wait.
    let waits: f64 = std::iter::once(run)
        .chain(others.iter().copied())
        .map(|r| seconds(&r["created_at"], &r["started_at"]))
        .sum();
    close(value(&wait), waits, "queue wait", 1e-6);
    let active = query(client, api, r#"workflows_active{workflow="hello"}"#).await;
    close(value(&active), 0.0, "active runs after the end", 0.0);
    // Attempt durations are timed by the agent call; the stored times bracket it.
    let attempts: Vec<&Value> = run["attempts"].as_array().into_iter().flatten().collect();
    let simulated: f64 = attempts
        .iter()
        .filter(|a| a["step_id"] != "summary")
        .map(|a| seconds(&a["started_at"], &a["finished_at"]))
        .sum();
    assert!(simulated >= 0.05, "{run}");
    let agent = r#"{agent="simulate",workflow="hello"}"#;
    let sum = query(client, api, &format!("agent_duration_seconds_sum{agent}")).await;
    close(value(&sum), simulated, "simulate attempt durations", 0.05);
    let runs = query(
        client,
        api,
        r#"agent_runs_total{agent="simulate",workflow="hello",status="succeeded"}"#,
    )
    .await;
    close(value(&runs), 2.0, "simulate attempts", 0.0);
}

fn value(answer: &Value) -> Option<f64> {
    answer["data"]["result"][0]["value"][1]
        .as_str()?
        .parse()
        .ok()
}

/// An instant query's answer.
async fn query(client: &reqwest::Client, api: &str, q: &str) -> Value {
    client
        .get(format!("{api}/query"))
        .query(&[("query", q)])
        .send()
        .await
        .expect("query")
        .json::<Value>()
        .await
        .expect("json")
}
