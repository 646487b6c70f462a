//! Runs that wait, over HTTP: an approval decided by role, an event posted by an operator's
//! token, a run paused and resumed, the monitor's `waiting` filter, hostile event payloads.

use crate::common::hub::Hub;

use reqwest::StatusCode;
use serde_json::{json, Value};

const GATED: &str = "id: gated
steps:
  - id: approve
    agent: approval
    with:
      prompt: 'Release {{ run.id }}?'
      role: editor
      fields: { ticket: { type: string } }
  - id: paid
    agent: wait
    needs: [approve]
    with: { event: 'paid-{{ run.id }}' }
  - id: done
    agent: transform
    needs: [paid]
    with: { jq: '[.steps.approve.output.by, .steps.approve.output.fields.ticket, .steps.paid.output.amount]' }
";

fn waiting_on(step: &'static str) -> impl Fn(&Value) -> bool {
    move |run: &Value| {
        run["status"] == "waiting"
            && run["waits"].as_array().is_some_and(|w| {
                w.iter()
                    .any(|w| w["step_id"] == step && w["resolved_at"].is_null())
            })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_and_an_event_move_a_waiting_run_on() {
    let hub = Hub::start_with_auth().await;
    let admin = hub.admin().await;
    admin.create(GATED).await;
    let operator = hub.as_role("operator").await;
    let editor = hub.as_role("editor").await;
    let id = operator.trigger("gated", json!({})).await;
    let run = operator.wait_run(&id, waiting_on("approve")).await;
    assert_eq!(run["waits"][0]["kind"], "approval");
    assert_eq!(
        run["waits"][0]["detail"]["prompt"],
        format!("Release {id}?")
    );
    // The monitor lists it under "waiting".
    let listed = operator
        .wait_run_list("/api/v1/runs?status=waiting", |runs| {
            runs.iter().any(|r| r["id"] == id)
        })
        .await;
    assert!(listed.iter().all(|r| r["status"] == "waiting"));

    let decision = format!("/api/v1/runs/{id}/steps/approve/decision");
    let (status, body) = operator
        .post_json(
            &decision,
            json!({"approved": true, "fields": {"ticket": "T-9"}}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "the approval needs an editor: {body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("editor"),
        "{body}"
    );
    let (status, body) = editor.post_json(&decision, json!({"approved": true})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["problems"][0]["path"], "fields.ticket");
    let (status, body) = editor
        .post_json(
            &decision,
            json!({"approved": true, "fields": {"ticket": "T-9"}, "verdict": 1}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "unknown keys are refused: {body}"
    );
    let (status, body) = editor
        .post_json(
            &decision,
            json!({"approved": true, "comment": "go", "fields": {"ticket": "T-9"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["decision"]["by"], "editor");
    let (status, _) = editor
        .post_json(
            &decision,
            json!({"approved": false, "fields": {"ticket": "T-9"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "decided once");

    // Now it waits for the event: a viewer may not post it, an operator's token may.
    operator.wait_run(&id, waiting_on("paid")).await;
    let viewer = hub.as_role("viewer").await;
    let event = format!("/api/v1/events/paid-{id}");
    let (status, _) = viewer.post_json(&event, json!({"amount": 3})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let token = admin.token("shop", "operator").await;
    let shop = hub.client().with_token(&token);
    let (status, body) = shop.post_json(&event, json!({"amount": 3})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["resolved"], 1);
    let run = operator.wait_finished(&id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let done = run["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["step_id"] == "done"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(done["output"], json!(["editor", "T-9", 3]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_keys_and_payloads_are_bounded() {
    let hub = Hub::start().await;
    let client = hub.client();
    let long = "k".repeat(201);
    let (status, body) = client
        .post_json(&format!("/api/v1/events/{long}"), json!({}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let big = json!({ "blob": "x".repeat(1024 * 1024 + 1) });
    let (status, body) = client.post_json("/api/v1/events/big", big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    let (status, body) = client
        .send(
            client
                .request(reqwest::Method::POST, "/api/v1/events/bad")
                .header("content-type", "application/json")
                .body("{not json"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // A good one, nobody waiting: kept, and it says until when.
    let (status, body) = client
        .post_json("/api/v1/events/early", json!({"ok": true}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["resolved"], 0);
    assert!(body["kept_until"].as_i64().is_some(), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_is_paused_and_resumed_over_http() {
    let hub = Hub::start().await;
    let client = hub.client();
    client
        .create("id: steps2\nsteps:\n- {id: a, agent: simulate, with: {latency: 300ms}}\n- {id: b, agent: simulate, needs: [a]}\n")
        .await;
    let id = client.trigger("steps2", json!({})).await;
    client.wait_run(&id, |r| r["status"] == "running").await;
    let (status, body) = client
        .post_json(&format!("/api/v1/runs/{id}/pause"), json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let run = client.wait_run(&id, |r| r["status"] == "paused").await;
    let b = run["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["step_id"] == "b"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(b["status"], "pending", "{run}");
    let (status, body) = client
        .post_json(&format!("/api/v1/runs/{id}/resume"), json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let run = client.wait_finished(&id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let (status, _) = client
        .post_json(&format!("/api/v1/runs/{id}/pause"), json!({}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "a finished run cannot pause");
}
