//! `/metrics` scraped by a real Prometheus (Debian's `prometheus`, exemplar storage on): the
//! run counter arrives, and a duration exemplar carries the trace id stored with the run.

use std::process::{Command, Stdio};
use std::time::Duration;

use flowscope::telemetry::{OtlpSettings, Protocol, Telemetry};
use serde_json::Value;

mod common;

use bench::Killed;
use common::free_port;

async fn get_json(client: &reqwest::Client, url: &str) -> Option<Value> {
    client.get(url).send().await.ok()?.json().await.ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_runs_and_an_exemplar_with_the_runs_trace_id() {
    // Span ids without export: what a default install does.
    let telemetry = Telemetry::build(&OtlpSettings {
        disabled: false,
        endpoint: None,
        protocol: Protocol::HttpProtobuf,
    })
    .expect("telemetry");
    tracing::subscriber::set_global_default(telemetry.subscriber("warn"))
        .expect("one subscriber per test binary");

    let dir = tempfile::tempdir().expect("tempdir");
    let base = common::serve(dir.path()).await;
    let target = base.trim_start_matches("http://").to_string();
    let client = reqwest::Client::new();

    // One finished run, with its trace id stored.
    let run = common::run_hello(&client, &base, None).await;
    let trace_id = run["trace_id"]
        .as_str()
        .expect("a stored trace id")
        .to_string();
    assert_eq!(trace_id.len(), 32);

    let port = free_port();
    std::fs::write(
        dir.path().join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: flowscope\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .expect("config");
    let prometheus = Command::new("prometheus")
        .arg(format!(
            "--config.file={}",
            dir.path().join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--enable-feature=exemplar-storage")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("Debian's prometheus on PATH (scripts/setup.sh --test installs it)");
    let _prometheus = Killed(prometheus);
    let api = format!("http://127.0.0.1:{port}/api/v1");

    let (runs, exemplars) = scraped_runs_and_exemplars(&client, &api).await;
    check_outcomes_and_the_exemplar(&runs, &exemplars, &trace_id);
    check_the_servers_own_series(&client, &api).await;
    check_values_equal_the_api(&client, &api, &run).await;
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
    let expected: Vec<(String, String, String)> = [
        ("cancelled", "0"),
        ("failed", "0"),
        ("succeeded", "1"),
        ("timed_out", "0"),
    ]
    .iter()
    .map(|(s, v)| (s.to_string(), "api".to_string(), v.to_string()))
    .collect();
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
async fn check_values_equal_the_api(client: &reqwest::Client, api: &str, run: &Value) {
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
    close(
        value(&wait),
        seconds(&run["created_at"], &run["started_at"]),
        "queue wait",
        1e-6,
    );
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
