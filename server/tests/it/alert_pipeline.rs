//! The alert path with the real programs, end to end: Flowscope's `/metrics` → Prometheus
//! (Debian's, with the shipped rule files) → Alertmanager (Debian's, with the shipped config) →
//! `POST /api/v1/alerts/alertmanager` → the `notify-on-alert` workflow → a Slack-compatible
//! receiver. Failing runs of a workflow of the test's own (`payments`; the seeded examples never
//! page) make its run-success SLO burn; the test measures the time from the first failing run to
//! the message, which names the workflow and links to its failing runs, then dilutes the
//! failures with successful runs of it until the resolved message arrives. A seeded example that
//! fails as much pages nobody.
//!
//! The shipped configs are used as they are, but for the addresses and, unless
//! `FLOWSCOPE_ALERT_INTERVALS=production`, the intervals: scrape and evaluation every second and a
//! one-second group wait, so the test takes seconds rather than a minute. The figure is printed
//! (`--nocapture`) and reported in BENCHMARKS.md, not asserted.
//!
//! With Prometheus holding real data, every PromQL expression of the four Grafana dashboards is
//! run against it: each must be valid, and each Flowscope metric it names must be one Flowscope
//! serves or a recording rule defines.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bench::Killed;
use common::{free_port, read_yaml, stack_file};
use flowscope::config::Config;
use serde_json::{json, Value};
use serde_norway::Value as Yaml;

use crate::common;
use crate::common::hub::{Client, Hub};

const TOKEN: &str = "pipeline-token-0123456789";
const ALERT: &str = "FlowscopeRunSuccessBudgetBurnFast";

fn yaml(value: Value) -> Yaml {
    serde_json::from_value(value).expect("JSON is YAML")
}

/// The shipped intervals (`production`), or the test's one-second ones.
struct Intervals {
    production: bool,
}

impl Intervals {
    fn describe(&self, prometheus: &Yaml, alertmanager: &Yaml) -> String {
        let g = &prometheus["global"];
        format!(
            "scrape {}, evaluation {}, group_wait {}",
            g["scrape_interval"].as_str().unwrap_or("?"),
            g["evaluation_interval"].as_str().unwrap_or("?"),
            alertmanager["route"]["group_wait"].as_str().unwrap_or("?"),
        )
    }
}

/// The shipped `prometheus.yml`, pointed at this test's Flowscope, Alertmanager and rule files.
fn prometheus_config(flowscope: &str, alertmanager: &str, intervals: &Intervals) -> Yaml {
    let mut config = read_yaml("prometheus/prometheus.yml");
    if !intervals.production {
        config["global"]["scrape_interval"] = yaml(json!("1s"));
        config["global"]["evaluation_interval"] = yaml(json!("1s"));
    }
    let rules = stack_file("prometheus/rules/*.yml");
    config["rule_files"] = yaml(json!([rules.display().to_string()]));
    config["alerting"] = yaml(json!({
        "alertmanagers": [{ "static_configs": [{ "targets": [alertmanager] }] }]
    }));
    // Only Flowscope's job: the rest of the stack is not running here.
    let mut scrape = config["scrape_configs"]
        .as_sequence()
        .expect("scrape_configs")
        .iter()
        .find(|job| job["job_name"].as_str() == Some("flowscope"))
        .cloned()
        .expect("a flowscope job in prometheus.yml");
    scrape["static_configs"] = yaml(json!([{ "targets": [flowscope] }]));
    config["scrape_configs"] = Yaml::Sequence(vec![scrape]);
    config
}

/// The shipped `alertmanager.yml`, posting to this test's Flowscope with the token in a file.
fn alertmanager_config(flowscope: &str, token_file: &Path, intervals: &Intervals) -> Yaml {
    let mut config = read_yaml("alertmanager/alertmanager.yml");
    let receivers = config["receivers"]
        .as_sequence_mut()
        .expect("receivers in alertmanager.yml");
    let flowscope_receiver = receivers
        .iter_mut()
        .find(|r| r["name"].as_str() == Some("flowscope"))
        .expect("a flowscope receiver");
    let hook = &mut flowscope_receiver["webhook_configs"][0];
    let url = hook["url"].as_str().expect("a webhook url").to_string();
    assert!(
        url.ends_with("/api/v1/alerts/alertmanager"),
        "the webhook goes to Flowscope's intake: {url}"
    );
    hook["url"] = yaml(json!(format!("{flowscope}/api/v1/alerts/alertmanager")));
    hook["http_config"]["authorization"]["credentials_file"] =
        yaml(json!(token_file.display().to_string()));
    // Flowscope's own outage goes to Slack directly: the URL in a file beside the token's.
    let direct = receivers_named(&mut config, "slack-direct");
    direct["slack_configs"][0]["api_url_file"] = yaml(json!(token_file
        .with_file_name("slack-url")
        .display()
        .to_string()));
    if !intervals.production {
        let route = &mut config["route"];
        route["group_wait"] = yaml(json!("1s"));
        route["group_interval"] = yaml(json!("1s"));
        if let Some(routes) = route["routes"].as_sequence_mut() {
            for r in routes {
                r["group_wait"] = yaml(json!("1s"));
                r["group_interval"] = yaml(json!("1s"));
            }
        }
    }
    config
}

fn receivers_named<'a>(config: &'a mut Yaml, name: &str) -> &'a mut Yaml {
    config["receivers"]
        .as_sequence_mut()
        .expect("receivers in alertmanager.yml")
        .iter_mut()
        .find(|r| r["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("a {name} receiver"))
}

async fn get_json(client: &reqwest::Client, url: &str) -> Option<Value> {
    client.get(url).send().await.ok()?.json().await.ok()
}

/// What Prometheus and Alertmanager hold, for a failure message.
async fn diagnosis(client: &reqwest::Client, prometheus: &str, alertmanager: &str) -> String {
    let alerts = get_json(client, &format!("{prometheus}/api/v1/alerts")).await;
    let ratio = get_json(
        client,
        &format!("{prometheus}/api/v1/query?query=flowscope:run_error_ratio:rate5m"),
    )
    .await;
    let am = get_json(client, &format!("{alertmanager}/api/v2/alerts")).await;
    format!("prometheus alerts: {alerts:?}\nerror ratio: {ratio:?}\nalertmanager: {am:?}")
}

fn spawn(program: &str, args: &[String], log: &Path) -> Killed {
    let log = std::fs::File::create(log).expect("log file");
    Killed(
        Command::new(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {program} (scripts/setup.sh --test installs it): {e}")
            }),
    )
}

/// Debian's Alertmanager on `port` with `config`; its log file beside.
fn spawn_alertmanager(dir: &Path, config: &Path, port: u16) -> (Killed, std::path::PathBuf) {
    let log = dir.join("alertmanager.log");
    let am = spawn(
        "prometheus-alertmanager",
        &[
            format!("--config.file={}", config.display()),
            format!("--storage.path={}", dir.join("am-data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            // The URL messages link to; by default it names this machine's host name.
            format!("--web.external-url=http://127.0.0.1:{port}"),
            // No gossip with peers: one instance, and no port 9094 taken.
            "--cluster.listen-address=".into(),
        ],
        &log,
    );
    (am, log)
}

async fn wait_ready(client: &reqwest::Client, url: &str, what: &str, log: &Path) {
    for _ in 0..600 {
        if let Ok(r) = client.get(url).send().await {
            if r.status().is_success() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "{what} never became ready at {url}:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_runs_reach_slack_through_prometheus_alertmanager_and_flowscope() {
    pipeline(Intervals { production: false }).await;
}

/// The same with the shipped intervals (15 s scrape and evaluation, 10 s group wait): about a
/// minute, so run by hand: `cargo test -p flowscope --test it alert_pipeline -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "takes a minute; run by hand to measure the production intervals"]
async fn failing_runs_reach_slack_with_the_production_intervals() {
    pipeline(Intervals { production: true }).await;
}

async fn pipeline(intervals: Intervals) {
    let slack = common::Slack::start().await;
    let hub = Hub::start_with(Config {
        alert_token: Some(TOKEN.into()),
        secrets: [("SLACK_WEBHOOK".to_string(), slack.url.clone())].into(),
        ..common::quiet()
    })
    .await;
    let flowscope = hub.client();
    // Prometheus' and Alertmanager's APIs.
    let client = flowscope.http.clone();

    let stack = Stack::start(hub.dir(), &client, &hub.base, &slack.url, &intervals).await;
    let (prometheus, alertmanager) = (&stack.prometheus, &stack.alertmanager);

    // The workflow that burns its budget: every run fails or succeeds as its input says.
    flowscope
        .create(
            "id: payments\nname: Payments\ninputs:\n  failure_rate: { type: number, default: 1 }\n\
             steps:\n- id: charge\n  agent: simulate\n  with: { failure_rate: '{{ inputs.failure_rate }}' }\n",
        )
        .await;
    // The seeded example that fails on purpose fails as much, and never pages.
    for _ in 0..20 {
        flowscope.trigger("always-fails", json!({})).await;
    }

    // Runs fail, one every half second, until the message arrives.
    let firing = format!("[firing] {ALERT}");
    let first_failure = Instant::now();
    let mut failures = 0;
    let arrived = loop {
        let found = slack
            .messages
            .lock()
            .expect("lock")
            .iter()
            .find(|(_, text)| text.starts_with(&firing))
            .map(|(at, _)| *at);
        if let Some(at) = found {
            break at;
        }
        assert!(
            failures < 1200,
            "no alert message after {failures} failing runs; Slack got {:?}\n{}",
            slack.texts(),
            diagnosis(&client, prometheus, alertmanager).await
        );
        flowscope
            .trigger("payments", json!({ "failure_rate": 1 }))
            .await;
        failures += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let elapsed = arrived.duration_since(first_failure);
    println!(
        "alert pipeline ({}): first failing run → Slack message in {:.1} s ({failures} failing runs started)",
        intervals.describe(&stack.prom_config, &stack.am_config),
        elapsed.as_secs_f64()
    );
    let text = slack
        .texts()
        .into_iter()
        .find(|t| t.starts_with(&firing))
        .unwrap_or_default();
    assert!(
        text.contains("Run success SLO (99 %) of payments") && text.contains(alertmanager.as_str()),
        "the message names the objective and the workflow, and links to Alertmanager: {text}"
    );
    // Under this server's public URL (the default, here), and with the runbook and dashboard.
    assert!(
        text.contains("failing runs: http://127.0.0.1:3000/runs?workflow=payments&status=failed"),
        "the message links to the failing runs: {text}"
    );
    assert!(
        text.contains(" — dashboard: ") && text.contains("var-workflow=payments"),
        "the message links to the workflow's dashboard: {text}"
    );
    assert!(
        text.contains(" — runbook: observability/README.md"),
        "the message names the runbook: {text}"
    );
    assert!(
        !slack.texts().iter().any(|t| t.contains("always-fails")),
        "the example never pages: {:?}",
        slack.texts()
    );

    // It went through Flowscope's notification workflow, as an alert-triggered run.
    let (_, alert_runs) = flowscope.get("/api/v1/runs?trigger=alert").await;
    let runs = alert_runs["runs"].as_array().cloned().unwrap_or_default();
    assert!(
        runs.iter().any(|r| r["workflow_id"] == "notify-on-alert"),
        "{alert_runs}"
    );

    check_dashboards(&flowscope, prometheus).await;

    if !intervals.production {
        resolves_once(&flowscope, &slack, &stack).await;
    }
}

/// Prometheus and Alertmanager, configured as shipped, running against this Flowscope, and
/// Prometheus past its first scrape of it: the state a deployment is in.
struct Stack {
    prometheus: String,
    alertmanager: String,
    prom_config: Yaml,
    am_config: Yaml,
    _prom: Killed,
    _am: Killed,
}

impl Stack {
    async fn start(
        dir: &Path,
        client: &reqwest::Client,
        base: &str,
        slack_url: &str,
        intervals: &Intervals,
    ) -> Stack {
        let flowscope = base.trim_start_matches("http://").to_string();
        let (prom_port, am_port) = (free_port(), free_port());
        let prometheus = format!("http://127.0.0.1:{prom_port}");
        let alertmanager = format!("http://127.0.0.1:{am_port}");

        let token_file = dir.join("flowscope-token");
        std::fs::write(&token_file, TOKEN).expect("token file");
        std::fs::write(dir.join("slack-url"), slack_url).expect("slack url file");
        let am_config = alertmanager_config(base, &token_file, intervals);
        let am_file = dir.join("alertmanager.yml");
        std::fs::write(&am_file, serde_norway::to_string(&am_config).expect("yaml"))
            .expect("write");
        let prom_config = prometheus_config(&flowscope, &format!("127.0.0.1:{am_port}"), intervals);
        let prom_file = dir.join("prometheus.yml");
        std::fs::write(
            &prom_file,
            serde_norway::to_string(&prom_config).expect("yaml"),
        )
        .expect("write");

        let (_am, am_log) = spawn_alertmanager(dir, &am_file, am_port);
        let prom_log = dir.join("prometheus.log");
        let _prom = spawn(
            "prometheus",
            &[
                format!("--config.file={}", prom_file.display()),
                format!("--storage.tsdb.path={}", dir.join("tsdb").display()),
                format!("--web.listen-address=127.0.0.1:{prom_port}"),
                "--enable-feature=exemplar-storage".into(),
            ],
            &prom_log,
        );
        wait_ready(
            client,
            &format!("{alertmanager}/-/ready"),
            "Alertmanager",
            &am_log,
        )
        .await;
        wait_ready(
            client,
            &format!("{prometheus}/-/ready"),
            "Prometheus",
            &prom_log,
        )
        .await;
        // Prometheus has scraped Flowscope at least once: the state a deployment is in.
        let up = format!("{prometheus}/api/v1/query?query=up{{job=\"flowscope\"}}==1");
        for _ in 0..600 {
            let answer = get_json(client, &up).await;
            if answer.is_some_and(|a| {
                a["data"]["result"]
                    .as_array()
                    .is_some_and(|r| !r.is_empty())
            }) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Stack {
            prometheus,
            alertmanager,
            prom_config,
            am_config,
            _prom,
            _am,
        }
    }
}

/// Successful runs dilute the failures below 14.4 % in both windows: Prometheus resolves the
/// alert, Alertmanager sends it resolved, and Flowscope says so once.
async fn resolves_once(flowscope: &Client, slack: &common::Slack, stack: &Stack) {
    let firing = format!("[firing] {ALERT}");
    let resolved = format!("[resolved] {ALERT}");
    let mut successes = 0;
    while !slack.texts().iter().any(|t| t.starts_with(&resolved)) {
        assert!(
            successes < 20_000,
            "no resolved message after {successes} successful runs; Slack got {:?}\n{}",
            slack.texts(),
            diagnosis(&flowscope.http, &stack.prometheus, &stack.alertmanager).await
        );
        for _ in 0..10 {
            flowscope
                .trigger("payments", json!({ "failure_rate": 0 }))
                .await;
            successes += 1;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let texts = slack.texts();
    let announced = |prefix: &str| texts.iter().filter(|t| t.starts_with(prefix)).count();
    assert_eq!(
        (announced(&firing), announced(&resolved)),
        (1, 1),
        "one firing and one resolved message, however often Alertmanager repeats: {texts:?}"
    );
}

/// Every target expression of every dashboard, with the dashboard and panel it belongs to.
fn dashboard_queries() -> Vec<(String, String)> {
    let dashboards = common::dashboards();
    assert!(dashboards.len() >= 4, "four dashboards");
    let mut queries = Vec::new();
    for (file, dashboard) in &dashboards {
        for panel in common::panels(dashboard) {
            for target in panel["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = target["expr"].as_str() {
                    let title = panel["title"].as_str().unwrap_or("?");
                    queries.push((format!("{file} / {title}"), expr.to_string()));
                }
            }
        }
    }
    queries
}

/// Replaces Grafana's variables (`$name`, `${name}`, `${name:format}`) with values a query can
/// run with; an unknown variable fails the test.
fn substitute(expr: &str, at: &str) -> String {
    let value = |name: &str| -> String {
        match name {
            "workflow" | "agent" | "model" | "route" | "job" => ".*".into(),
            "__rate_interval" | "__interval" => "1m".into(),
            "__range" => "1h".into(),
            "__range_s" => "3600".into(),
            "__range_ms" => "3600000".into(),
            "budget" => "500".into(),
            other => panic!("{at}: unknown variable ${other} in {expr}"),
        }
    };
    let mut out = String::with_capacity(expr.len());
    let mut rest = expr;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(braced) = after.strip_prefix('{') {
            let end = braced
                .find('}')
                .unwrap_or_else(|| panic!("{at}: unclosed ${{ in {expr}"));
            let name = braced[..end].split(':').next().unwrap_or_default();
            out.push_str(&value(name));
            rest = &braced[end + 1..];
        } else {
            let len = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            out.push_str(&value(&after[..len]));
            rest = &after[len..];
        }
    }
    out.push_str(rest);
    out
}

/// SPEC §6's families: a family without samples yet (no `llm` step has run, so no cost) is
/// not in `/metrics` at all.
const CONTRACT: &[&str] = &[
    "workflow_runs",
    "workflow_duration_seconds",
    "workflows_active",
    "workflow_queue_wait_seconds",
    "agent_runs",
    "agent_duration_seconds",
    "agent_errors",
    "agent_cost_usd",
    "agent_tokens",
];

/// Metric families Flowscope serves (from `/metrics`), SPEC §6 names, and recording rules.
async fn known_names(flowscope: &Client) -> BTreeSet<String> {
    let text = flowscope
        .request(reqwest::Method::GET, "/metrics")
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let mut names: BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .chain(CONTRACT.iter().map(|n| n.to_string()))
        .collect();
    for file in ["prometheus/rules/slo.yml", "prometheus/rules/alerts.yml"] {
        let rules = read_yaml(file);
        for group in rules["groups"].as_sequence().into_iter().flatten() {
            for rule in group["rules"].as_sequence().into_iter().flatten() {
                if let Some(record) = rule["record"].as_str() {
                    names.insert(record.to_string());
                }
            }
        }
    }
    names
}

/// Flowscope's own metric names in an expression (the stack's, such as `up`, are not checked).
fn flowscope_names(expr: &str) -> Vec<String> {
    const PREFIXES: &[&str] = &[
        "workflow_",
        "workflows_",
        "agent_",
        "http_server_",
        "process_",
        "db_client_",
        "flowscope:",
    ];
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|t| PREFIXES.iter().any(|p| t.starts_with(p)))
        .filter(|t| !LABELS.contains(t))
        .map(str::to_string)
        .collect()
}

/// Label names of Flowscope's series that share the metric names' prefixes.
const LABELS: &[&str] = &[
    "db_client_connection_state",
    "http_request_method",
    "http_route",
    "http_response_status_code",
];

/// Whether `name` is a served family or one of its samples (`x_total` of a counter,
/// `x_bucket`/`_sum`/`_count` of a histogram).
fn is_known(known: &BTreeSet<String>, name: &str) -> bool {
    known.contains(name)
        || ["_total", "_bucket", "_sum", "_count"]
            .iter()
            .filter_map(|s| name.strip_suffix(s))
            .any(|family| known.contains(family))
}

async fn check_dashboards(flowscope: &Client, prometheus: &str) {
    let client = &flowscope.http;
    let known = known_names(flowscope).await;
    let queries = dashboard_queries();
    assert!(
        queries.len() >= 20,
        "the dashboards query: {}",
        queries.len()
    );
    let mut with_data = 0;
    for (at, expr) in &queries {
        for name in flowscope_names(expr) {
            assert!(
                is_known(&known, &name),
                "{at}: `{name}` is neither served by Flowscope nor a recording rule ({expr})"
            );
        }
        let query = substitute(expr, at);
        let answer: Value = client
            .get(format!("{prometheus}/api/v1/query"))
            .query(&[("query", query.as_str())])
            .send()
            .await
            .expect("query")
            .json()
            .await
            .expect("json");
        assert_eq!(
            answer["status"], "success",
            "{at}: Prometheus refuses `{query}`: {answer}"
        );
        if answer["data"]["result"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
        {
            with_data += 1;
        }
    }
    println!(
        "dashboards: {} PromQL queries valid, {with_data} with data",
        queries.len()
    );
    assert!(
        with_data > 0,
        "some dashboard query finds the runs just made"
    );
}

/// With Flowscope down (nothing listens where its intake should be), Alertmanager alone gets
/// `FlowscopeDown` to Slack: the shipped route and receiver, through the real Alertmanager.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flowscope_down_reaches_slack_from_alertmanager_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let client = reqwest::Client::new();
    let slack = common::Slack::start().await;
    let nobody = format!("http://127.0.0.1:{}", free_port());
    let token_file = dir.path().join("flowscope-token");
    std::fs::write(&token_file, TOKEN).expect("token file");
    std::fs::write(dir.path().join("slack-url"), &slack.url).expect("slack url file");
    let fast = Intervals { production: false };
    let am_config = alertmanager_config(&nobody, &token_file, &fast);
    let am_file = dir.path().join("alertmanager.yml");
    std::fs::write(&am_file, serde_norway::to_string(&am_config).expect("yaml")).expect("write");
    let am_port = free_port();
    let alertmanager = format!("http://127.0.0.1:{am_port}");
    let (_am, am_log) = spawn_alertmanager(dir.path(), &am_file, am_port);
    wait_ready(
        &client,
        &format!("{alertmanager}/-/ready"),
        "Alertmanager",
        &am_log,
    )
    .await;
    // What Prometheus sends when the FlowscopeDown rule fires.
    let r = client
        .post(format!("{alertmanager}/api/v2/alerts"))
        .json(&json!([{
            "labels": { "alertname": "FlowscopeDown", "severity": "page", "job": "flowscope", "instance": "flowscope:3000" },
            "annotations": { "summary": "Flowscope at flowscope:3000 does not answer scrapes" },
        }]))
        .send()
        .await
        .expect("post the alert");
    assert!(r.status().is_success(), "{}", r.status());
    let mut texts = Vec::new();
    for _ in 0..600 {
        texts = slack.texts();
        if !texts.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = std::fs::read_to_string(&am_log).unwrap_or_default();
    assert_eq!(texts.len(), 1, "{texts:?}\n{log}");
    assert!(texts[0].contains("[firing] FlowscopeDown"), "{texts:?}");
    assert!(texts[0].contains("does not answer scrapes"), "{texts:?}");
}
