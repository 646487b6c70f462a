//! Alertmanager's webhook through the real server: authentication, bad payloads, the
//! notification workflow posting to a Slack-compatible receiver, de-duplication within a group
//! and resolved messages.

use std::sync::{Arc, Mutex};

use axum::routing::post;
use axum::{Json, Router};
use flowscope::config::Config;
use reqwest::StatusCode;
use serde_json::{json, Value};

mod common;

const TOKEN: &str = "alert-token-0123456789";

struct Stack {
    base: String,
    client: reqwest::Client,
    /// Texts the Slack-compatible receiver got.
    slack: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

/// Flowscope with alert intake on (unless `token` is None), and a Slack-compatible receiver
/// that the seeded `notify-on-alert` workflow posts to.
async fn stack(token: Option<&str>, workflow: &str) -> Stack {
    let slack: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = slack.clone();
    let receiver = Router::new().route(
        "/hooks/alerts",
        post(move |Json(body): Json<Value>| {
            seen.lock()
                .expect("lock")
                .push(body["text"].as_str().unwrap_or_default().to_string());
            async { "ok" }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let slack_url = format!(
        "http://{}/hooks/alerts",
        listener.local_addr().expect("addr")
    );
    tokio::spawn(async move { axum::serve(listener, receiver).await });

    let dir = tempfile::tempdir().expect("tempdir");
    let base = common::serve_with(
        dir.path(),
        Config {
            alert_token: token.map(str::to_string),
            alert_workflow: workflow.to_string(),
            secrets: [("SLACK_WEBHOOK".to_string(), slack_url)].into(),
            ..Config::default()
        },
    )
    .await;
    Stack {
        base,
        client: reqwest::Client::new(),
        slack,
        _dir: dir,
    }
}

/// An Alertmanager webhook payload (version 4) for one alert.
fn payload(status: &str, fingerprint: &str) -> Value {
    json!({
        "version": "4",
        "groupKey": "{}:{alertname=\"FlowscopeRunSuccessBudgetBurnFast\"}",
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "flowscope",
        "groupLabels": { "alertname": "FlowscopeRunSuccessBudgetBurnFast" },
        "commonLabels": { "alertname": "FlowscopeRunSuccessBudgetBurnFast", "severity": "page" },
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": [{
            "status": status,
            "labels": { "alertname": "FlowscopeRunSuccessBudgetBurnFast", "severity": "page" },
            "annotations": { "summary": "the error budget burns 14.4x too fast" },
            "startsAt": "2026-11-30T02:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus:9090/graph",
            "fingerprint": fingerprint
        }]
    })
}

impl Stack {
    async fn send(&self, token: Option<&str>, body: &str) -> (StatusCode, Value) {
        let mut request = self
            .client
            .post(format!("{}/api/v1/alerts/alertmanager", self.base))
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        let r = request.send().await.expect("send");
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn alert_runs(&self) -> Vec<Value> {
        let page: Value = self
            .client
            .get(format!("{}/api/v1/runs?trigger=alert", self.base))
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("json");
        page["runs"].as_array().cloned().unwrap_or_default()
    }

    /// Waits for the run to finish; returns its status.
    async fn finished(&self, id: &str) -> String {
        let run = common::wait_finished(&self.client, &self.base, id).await;
        run["status"].as_str().unwrap_or_default().to_string()
    }
}

#[tokio::test]
async fn a_firing_alert_is_announced_once_and_its_resolution_once() {
    let s = stack(Some(TOKEN), "notify-on-alert").await;
    let firing = payload("firing", "a1b2c3").to_string();

    let (status, body) = s.send(Some(TOKEN), &firing).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["announced"], 1);
    let id = body["run"]["id"].as_str().expect("a run").to_string();
    assert_eq!(body["run"]["trigger"], "alert");
    assert_eq!(s.finished(&id).await, "succeeded");
    assert_eq!(
        s.slack.lock().expect("lock").clone(),
        vec!["[firing] FlowscopeRunSuccessBudgetBurnFast: the error budget burns 14.4x too fast — http://alertmanager:9093".to_string()]
    );

    // Alertmanager repeats the group: nothing new, nothing sent.
    let (status, body) = s.send(Some(TOKEN), &firing).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["announced"], 0);
    assert_eq!(s.alert_runs().await.len(), 1);

    // The alert resolves: announced once more, as resolved.
    let (status, body) = s
        .send(Some(TOKEN), &payload("resolved", "a1b2c3").to_string())
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["run"]["id"].as_str().expect("a run").to_string();
    assert_eq!(s.finished(&id).await, "succeeded");
    let texts = s.slack.lock().expect("lock").clone();
    assert_eq!(texts.len(), 2);
    assert!(
        texts[1].starts_with("[resolved] FlowscopeRunSuccessBudgetBurnFast"),
        "{texts:?}"
    );
}

#[tokio::test]
async fn bad_tokens_and_payloads_are_refused_and_start_nothing() {
    let s = stack(Some(TOKEN), "notify-on-alert").await;
    let firing = payload("firing", "f1").to_string();
    for token in [
        None,
        Some("wrong-token-0123456789"),
        Some("alert-token-012345678"),
    ] {
        let (status, body) = s.send(token, &firing).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{token:?}: {body}");
        assert_eq!(body["error"]["code"], "unauthorized");
    }
    let (status, body) = s.send(Some(TOKEN), "{not json").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("Alertmanager"),
        "{body}"
    );
    let mut no_alerts = payload("firing", "f1");
    no_alerts["alerts"] = json!("none");
    let (status, body) = s.send(Some(TOKEN), &no_alerts.to_string()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("at alerts"),
        "{body}"
    );
    let mut old = payload("firing", "f1");
    old["version"] = json!("3");
    let (status, _) = s.send(Some(TOKEN), &old.to_string()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(s.alert_runs().await.is_empty(), "nothing was started");
    assert!(s.slack.lock().expect("lock").is_empty());

    // Still accepted afterwards: a refusal remembers nothing.
    let (status, _) = s.send(Some(TOKEN), &firing).await;
    assert_eq!(status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn intake_off_or_an_unknown_workflow_is_a_clear_refusal() {
    let off = stack(None, "notify-on-alert").await;
    let firing = payload("firing", "x").to_string();
    let (status, body) = off.send(Some(TOKEN), &firing).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .contains("FLOWSCOPE_ALERT_TOKEN"));

    let unknown = stack(Some(TOKEN), "no-such-workflow").await;
    let (status, body) = unknown.send(Some(TOKEN), &firing).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .contains("no-such-workflow"));
    assert!(unknown.alert_runs().await.is_empty());
    // Not remembered as announced: once the workflow exists, the same alert goes out.
    let (status, _) = unknown.send(Some(TOKEN), &firing).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}
