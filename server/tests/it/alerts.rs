//! Alertmanager's webhook through the real server: authentication, bad payloads, the
//! notification workflow posting to a Slack-compatible receiver, de-duplication within a group
//! and resolved messages.

use flowscope::config::Config;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common;
use crate::common::hub::{Client, Hub};

const TOKEN: &str = "alert-token-0123456789";

struct Stack {
    hub: Hub,
    client: Client,
    slack: common::Slack,
    config: Config,
}

/// Flowscope with alert intake on (unless `token` is None), and a Slack-compatible receiver
/// that the seeded `notify-on-alert` workflow posts to.
async fn stack(token: Option<&str>, workflow: &str) -> Stack {
    let slack = common::Slack::start().await;
    let config = Config {
        alert_token: token.map(str::to_string),
        alert_workflow: workflow.to_string(),
        secrets: [("SLACK_WEBHOOK".to_string(), slack.url.clone())].into(),
        ..common::quiet()
    };
    let hub = Hub::start_with(config.clone()).await;
    Stack {
        client: hub.client(),
        hub,
        slack,
        config,
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
        let client = match token {
            Some(t) => self.client.with_token(t),
            None => self.client.clone(),
        };
        let request = client
            .request(Method::POST, "/api/v1/alerts/alertmanager")
            .header("content-type", "application/json")
            .body(body.to_string());
        client.send(request).await
    }

    async fn alert_runs(&self) -> Vec<Value> {
        let (_, page) = self.client.get("/api/v1/runs?trigger=alert").await;
        page["runs"].as_array().cloned().unwrap_or_default()
    }

    /// Waits for the run to finish; returns its status.
    async fn finished(&self, id: &str) -> String {
        let run = self.client.wait_finished(id).await;
        run["status"].as_str().unwrap_or_default().to_string()
    }

    /// Stops the server and starts it again on the same database and settings.
    async fn restart(self) -> Stack {
        let url = format!("sqlite://{}", self.hub.dir().join("flowscope.db").display());
        let dir = self.hub.stop().await;
        let hub = Hub::start_on(&url, self.config.clone(), dir).await;
        Stack {
            client: hub.client(),
            hub,
            slack: self.slack,
            config: self.config,
        }
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
        s.slack.texts(),
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
    let texts = s.slack.texts();
    assert_eq!(texts.len(), 2);
    assert!(
        texts[1].starts_with("[resolved] FlowscopeRunSuccessBudgetBurnFast"),
        "{texts:?}"
    );

    // It fires again: a new transition, announced again.
    let (status, body) = s.send(Some(TOKEN), &firing).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["announced"], 1);
    let id = body["run"]["id"].as_str().expect("a run").to_string();
    assert_eq!(s.finished(&id).await, "succeeded");
    let texts = s.slack.texts();
    assert_eq!(texts.len(), 3, "{texts:?}");
    assert!(texts[2].starts_with("[firing] "), "{texts:?}");

    // After a restart on the same database, what went out is known: the repeat is not news,
    // and its resolution is.
    let s = s.restart().await;
    let (status, body) = s.send(Some(TOKEN), &firing).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["announced"], 0);
    let (status, body) = s
        .send(Some(TOKEN), &payload("resolved", "a1b2c3").to_string())
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["announced"], 1);
    let id = body["run"]["id"].as_str().expect("a run").to_string();
    assert_eq!(s.finished(&id).await, "succeeded");
    assert_eq!(s.slack.texts().len(), 4);
}

#[tokio::test]
async fn a_resolution_whose_firing_was_never_announced_is_not_news() {
    let s = stack(Some(TOKEN), "notify-on-alert").await;
    let (status, body) = s
        .send(Some(TOKEN), &payload("resolved", "never-fired").to_string())
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["announced"], 0);
    assert!(s.alert_runs().await.is_empty());
}

/// Grafana's webhook contact point (provisioned in observability/grafana) sends Alertmanager's
/// fields plus its own (`orgId`, `title`, `state`, `message`, per-alert `values`, URLs).
#[tokio::test]
async fn a_grafana_managed_alert_is_announced_too() {
    let s = stack(Some(TOKEN), "notify-on-alert").await;
    let grafana = json!({
        "receiver": "flowscope",
        "status": "firing",
        "orgId": 1,
        "alerts": [{
            "status": "firing",
            "labels": { "alertname": "Runs failing", "grafana_folder": "Flowscope", "workflow": "billing" },
            "annotations": { "summary": "billing fails 40% of its runs" },
            "startsAt": "2026-11-30T09:51:03.157076+02:00",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://localhost:3001/alerting/grafana/abc/view",
            "fingerprint": "c6eadffa33fcdf37",
            "silenceURL": "http://localhost:3001/alerting/silence/new",
            "dashboardURL": "http://localhost:3001/d/flowscope-workflows",
            "panelURL": "http://localhost:3001/d/flowscope-workflows?viewPanel=2",
            "values": { "B": 0.4, "C": 1 },
            "valueString": "[ var='B' labels={workflow=billing} value=0.4 ]"
        }],
        "groupLabels": { "alertname": "Runs failing" },
        "commonLabels": { "alertname": "Runs failing", "workflow": "billing" },
        "commonAnnotations": { "summary": "billing fails 40% of its runs" },
        "externalURL": "http://localhost:3001/",
        "version": "1",
        "groupKey": "{}/{}:{alertname=\"Runs failing\"}",
        "truncatedAlerts": 0,
        "title": "[FIRING:1] Runs failing (billing)",
        "state": "alerting",
        "message": "**Firing**\n\nValue: B=0.4"
    });
    let (status, body) = s.send(Some(TOKEN), &grafana.to_string()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["announced"], 1);
    let id = body["run"]["id"].as_str().expect("a run").to_string();
    assert_eq!(s.finished(&id).await, "succeeded");
    let texts = s.slack.texts();
    assert_eq!(texts.len(), 1, "{texts:?}");
    assert!(
        texts[0].starts_with("[firing] Runs failing: billing fails 40% of its runs"),
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
    assert!(s.slack.texts().is_empty());

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

/// A workflow's alert links where a person looks first: its failing runs under this server's
/// public URL (not the rule file's guess), their traces in Grafana, the dashboard and the
/// runbook.
#[tokio::test]
async fn a_workflows_alert_links_its_failing_runs_traces_and_runbook() {
    let slack = common::Slack::start().await;
    let config = Config {
        alert_token: Some(TOKEN.into()),
        alert_workflow: "notify-on-alert".into(),
        secrets: [("SLACK_WEBHOOK".to_string(), slack.url.clone())].into(),
        public_url: "https://hub.example.com".into(),
        grafana_url: Some("https://grafana.example.com".into()),
        ..common::quiet()
    };
    let hub = Hub::start_with(config).await;
    let client = hub.client().with_token(TOKEN);
    let mut alert = payload("firing", "w1");
    alert["alerts"][0]["labels"]["workflow"] = json!("payments");
    alert["alerts"][0]["annotations"] = json!({
        "summary": "payments burns its budget",
        "runs_url": "http://localhost:3000/runs?workflow=payments&status=failed",
        "dashboard_url": "https://grafana.example.com/d/flowscope-workflows?var-workflow=payments",
        "runbook": "observability/README.md, When a workflow burns its budget"
    });
    let (status, run) = client.post_json("/api/v1/alerts/alertmanager", alert).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{run}");
    let id = run["run"]["id"].as_str().expect("a run");
    let done = client.wait_finished(id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let text = slack.texts().pop().expect("a message");
    assert!(
        text.contains(
            " — failing runs: https://hub.example.com/runs?workflow=payments&status=failed"
        ),
        "{text}"
    );
    assert!(!text.contains("localhost:3000"), "{text}");
    let traces = text
        .split(" — traces: ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .expect("a traces link");
    assert!(traces.starts_with("https://grafana.example.com/explore?schemaVersion=1&panes="));
    let panes = engine::links::decode_component(
        traces
            .split("panes=")
            .nth(1)
            .and_then(|p| p.split('&').next())
            .expect("panes"),
    )
    .expect("decodes");
    let panes: Value = serde_json::from_str(&panes).expect("JSON");
    assert_eq!(
        panes["flowscope"]["queries"][0]["query"],
        "{ name = \"workflow.execute\" && span.workflow.id = \"payments\" && span.workflow.run.status = \"failed\" }"
    );
    assert!(
        text.contains(
            " — dashboard: https://grafana.example.com/d/flowscope-workflows?var-workflow=payments"
        ),
        "{text}"
    );
    assert!(
        text.contains(" — runbook: observability/README.md, When a workflow burns its budget"),
        "{text}"
    );
}

/// A workflow's `on_failure` starts the seeded `notify-failure` when one of its runs fails:
/// Slack gets the workflow, the failed step, its error and the run's links, and the handler's
/// run says what started it. A workflow cannot name itself as its handler.
#[tokio::test]
async fn a_failed_run_starts_its_failure_handler_with_what_failed_and_where() {
    let slack = common::Slack::start().await;
    let hub = Hub::start_with(Config {
        secrets: [("SLACK_WEBHOOK".to_string(), slack.url.clone())].into(),
        public_url: "https://hub.example.com".into(),
        ..common::quiet()
    })
    .await;
    let client = hub.client();
    client
        .create(
            "id: payments\non_failure: { workflow: notify-failure }\nsteps:\n\
             - id: charge\n  agent: simulate\n  with: { failure_rate: 1 }\n",
        )
        .await;
    let ok = client.run("hello", json!({})).await;
    assert_eq!(ok["status"], "succeeded");
    let failed = client.run("payments", json!({})).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    let id = failed["id"].as_str().expect("id");
    let step_error = failed["steps"][0]["error_message"]
        .as_str()
        .expect("an error");

    let handler = client
        .wait_run_list("/api/v1/runs?trigger=failure", |runs| !runs.is_empty())
        .await;
    assert_eq!(handler.len(), 1, "{handler:?}");
    assert_eq!(handler[0]["workflow_id"], "notify-failure");
    let done = client
        .wait_finished(handler[0]["id"].as_str().expect("id"))
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["actor"], format!("run:{id}"));
    let text = slack.texts().pop().expect("a message");
    assert!(
        text.starts_with(&format!(
            "payments failed at charge: {step_error} — run: https://hub.example.com/runs/{id}"
        )),
        "{text}"
    );
    assert!(text.contains(" — trace: "), "{text}");

    let (status, body) = client
        .post_yaml(
            "/api/v1/workflows",
            "id: selfish\non_failure: { workflow: selfish }\nsteps:\n- id: a\n  agent: simulate\n",
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["problems"][0]["path"], "on_failure.workflow");
}
