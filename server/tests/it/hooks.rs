//! Triggers over HTTP: webhooks with bearer tokens and signatures (valid, wrong, tampered,
//! replayed, stale), and the cron scheduler of a running server on the wall clock.

use crate::common;
use crate::common::hub::{Client, Hub};

use flowscope::config::Config;
use hmac::{Hmac, KeyInit, Mac};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const SECRET: &str = "hook-s3cret";

const HOOKED: &str = "id: hooked
name: Hooked
inputs:
  who: { type: string }
triggers:
  - webhook: { secret: HOOK }
steps:
  - id: greet
    agent: transform
    with: { jq: '\"hello \" + .inputs.who' }
";

fn sign(text: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).expect("key");
    mac.update(text);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

async fn runs_of(client: &Client, workflow: &str, trigger: &str) -> Vec<Value> {
    let (status, page) = client
        .get(&format!(
            "/api/v1/runs?workflow={workflow}&trigger={trigger}&limit=500"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["runs"].as_array().cloned().unwrap_or_default()
}

/// Posts `body` to the hook with extra headers; returns the status and the JSON answer.
async fn post(
    client: &Client,
    workflow: &str,
    body: &str,
    headers: &[(&str, String)],
) -> (StatusCode, Value) {
    let mut r = client
        .request(Method::POST, &format!("/hooks/{workflow}"))
        .header("content-type", "application/json")
        .body(body.to_string());
    for (k, v) in headers {
        r = r.header(*k, v);
    }
    client.send(r).await
}

/// A server whose `HOOK` secret is [`SECRET`], with the `hooked` workflow created.
async fn serve_hooked() -> (Hub, Client) {
    let hub = Hub::start_with(Config {
        secrets: [("HOOK".to_string(), SECRET.to_string())].into(),
        ..common::quiet()
    })
    .await;
    let client = hub.client();
    client.create(HOOKED).await;
    (hub, client)
}

#[tokio::test]
async fn webhooks_start_runs_only_for_callers_who_prove_the_secret() {
    let (_hub, client) = serve_hooked().await;
    let body = r#"{"who": "webhook"}"#;

    // No proof, a wrong token, a wrong scheme: refused.
    assert_eq!(
        post(&client, "hooked", body, &[]).await.0,
        StatusCode::UNAUTHORIZED
    );
    let wrong = [("authorization", "Bearer nope".to_string())];
    assert_eq!(
        post(&client, "hooked", body, &wrong).await.0,
        StatusCode::UNAUTHORIZED
    );
    let basic = [("authorization", format!("Basic {SECRET}"))];
    assert_eq!(
        post(&client, "hooked", body, &basic).await.0,
        StatusCode::UNAUTHORIZED
    );

    // The bearer token: the body becomes the inputs, and the run records its trigger.
    let bearer = [("authorization", format!("Bearer {SECRET}"))];
    let (status, created) = post(&client, "hooked", body, &bearer).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{created}");
    assert_eq!(created["run"]["trigger"], "webhook");
    let id = created["run"]["id"].as_str().expect("run id");
    let run = client.wait_finished(id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["inputs"], json!({ "who": "webhook" }));
    assert_eq!(run["steps"][0]["output"], "hello webhook");

    // A GitHub-style signature of the body: accepted once, then a replay.
    let signed = [("x-hub-signature-256", sign(body.as_bytes()))];
    let (status, created) = post(&client, "hooked", body, &signed).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{created}");
    let (status, answer) = post(&client, "hooked", body, &signed).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert!(answer["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .contains("already used"));
    // The same signature on another body: the body was changed on the way.
    let tampered = r#"{"who": "mallory"}"#;
    let (status, answer) = post(&client, "hooked", tampered, &signed).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");

    // Timestamped signatures: fresh ones pass, stale ones are refused even when well signed.
    let now = engine::store::now_ms() / 1000;
    let stamped = |ts: i64, body: &str| {
        [
            ("x-flowscope-timestamp", ts.to_string()),
            (
                "x-hub-signature-256",
                sign(format!("{ts}.{body}").as_bytes()),
            ),
        ]
    };
    let fresh = r#"{"who": "fresh"}"#;
    let (status, answer) = post(&client, "hooked", fresh, &stamped(now, fresh)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let late = r#"{"who": "late"}"#;
    let (status, answer) = post(&client, "hooked", late, &stamped(now - 3600, late)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
    assert!(answer["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .contains("stale"));

    // Bodies that are not the inputs: clear errors, no run.
    let (status, answer) = post(&client, "hooked", "[1, 2]", &bearer).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let (status, answer) = post(&client, "hooked", "{not json", &bearer).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let (status, answer) = post(&client, "hooked", r#"{"who": 5}"#, &bearer).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");

    // Only the three accepted calls started runs.
    assert_eq!(runs_of(&client, "hooked", "webhook").await.len(), 3);

    // Workflows without a usable webhook.
    assert_eq!(
        post(&client, "nope", "{}", &bearer).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        post(&client, "hello", "{}", &bearer).await.0,
        StatusCode::NOT_FOUND
    );
    client
        .create(
            &HOOKED
                .replace("id: hooked", "id: open-hook")
                .replace("{ secret: HOOK }", "{}"),
        )
        .await;
    let (status, answer) = post(&client, "open-hook", "{}", &bearer).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    assert!(answer["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .contains("names no secret"));
    assert!(runs_of(&client, "open-hook", "webhook").await.is_empty());
}

#[tokio::test]
async fn a_body_input_takes_a_whole_payload_without_declared_fields() {
    let (_hub, client) = serve_hooked().await;
    client
        .create(
            "id: on-push\nname: On push\ninputs:\n  payload: { type: object }\n\
             triggers:\n- webhook: { secret: HOOK, body_input: payload, \
             labels: { branch: /ref, repo: /repository/full_name, event: 'header:X-GitHub-Event', gone: /nope } }\n\
             steps:\n- id: branch\n  agent: transform\n  with: { jq: '.inputs.payload.ref' }\n",
        )
        .await;
    // A GitHub push event: keys nobody declared, nested, signed as GitHub signs it.
    let push = r#"{"ref": "refs/heads/main", "after": "9f2c", "repository": {"full_name": "acme/app"}, "commits": [{"id": "9f2c", "message": "fix"}]}"#;
    let signed = [
        ("x-hub-signature-256", sign(push.as_bytes())),
        ("x-github-event", "push".to_string()),
    ];
    let (status, created) = post(&client, "on-push", push, &signed).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{created}");
    let id = created["run"]["id"].as_str().expect("run id");
    let run = client.wait_finished(id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let sent: Value = serde_json::from_str(push).expect("json");
    assert_eq!(run["inputs"], json!({ "payload": sent }));
    assert_eq!(run["steps"][0]["output"], "refs/heads/main");
    // The trigger's labels, from the body and a header; one whose place is absent is left out.
    assert_eq!(
        run["labels"],
        json!({"branch": "refs/heads/main", "repo": "acme/app", "event": "push"})
    );
    let (_, page) = client
        .get("/api/v1/runs?label=repo:acme/app&label=event:push")
        .await;
    assert_eq!(page["runs"].as_array().map(Vec::len), Some(1), "{page}");
    // Not JSON: a 400 that says where the body was to go, and no run.
    let bearer = [("authorization", format!("Bearer {SECRET}"))];
    let (status, refused) = post(&client, "on-push", "ref=main", &bearer).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert!(
        refused["error"]["message"].to_string().contains("payload"),
        "{refused}"
    );
    assert_eq!(runs_of(&client, "on-push", "webhook").await.len(), 1);
}

#[tokio::test]
async fn a_refused_signed_delivery_can_be_resent_and_old_signatures_stay_spent() {
    let (hub, client) = serve_hooked().await;
    // Inputs that do not fit: refused (422), and the same delivery again is refused for the
    // same reason, not as a replay.
    let wrong = r#"{"who": 5}"#;
    let signed = [("x-hub-signature-256", sign(wrong.as_bytes()))];
    for _ in 0..2 {
        let (status, answer) = post(&client, "hooked", wrong, &signed).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    }
    // A timestamp header that is not text is refused, not taken as absent.
    let odd = [
        ("x-flowscope-timestamp", "é".to_string()),
        ("x-hub-signature-256", sign(r#"{"who": "odd"}"#.as_bytes())),
    ];
    let (status, answer) = post(&client, "hooked", r#"{"who": "odd"}"#, &odd).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
    // An accepted one is spent; pruning the trigger records later does not free it (it has no
    // timestamp to make a replay stale), while a timestamped one is forgotten.
    let good = r#"{"who": "once"}"#;
    let signed = [("x-hub-signature-256", sign(good.as_bytes()))];
    let (status, answer) = post(&client, "hooked", good, &signed).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let now = engine::store::now_ms() / 1000;
    let stamped = [
        ("x-flowscope-timestamp", now.to_string()),
        (
            "x-hub-signature-256",
            sign(format!("{now}.{good}").as_bytes()),
        ),
    ];
    let (status, answer) = post(&client, "hooked", good, &stamped).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let url = format!("sqlite://{}", hub.dir().join("flowscope.db").display());
    let store = engine::store::Store::connect(&url).await.expect("store");
    store
        .prune_trigger_records(engine::store::now_ms() + 1)
        .await
        .expect("prune");
    let left: Vec<String> = sqlx::query_scalar("SELECT signature FROM webhook_deliveries")
        .fetch_all(&sqlx::SqlitePool::connect(&url).await.expect("pool"))
        .await
        .expect("read");
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(!left[0].starts_with(engine::store::TIMESTAMPED_DELIVERY));
    let (status, answer) = post(&client, "hooked", good, &signed).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
}

#[tokio::test]
async fn a_running_server_fires_its_schedules() {
    let hub = Hub::start_with(Config {
        scheduler: true,
        seed_examples: false,
        ..Config::default()
    })
    .await;
    let client = hub.client();
    // Every second (the six-field form), so the test sees fires within moments.
    client
        .create(
            "id: ticking\nname: Ticking\ntriggers:\n  - cron: '* * * * * *'\nsteps:\n  - id: one\n    agent: transform\n    with: { jq: '1' }\n",
        )
        .await;
    let mut runs = Vec::new();
    for _ in 0..600 {
        runs = runs_of(&client, "ticking", "cron").await;
        if runs.len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(runs.len() >= 2, "the schedule fired {} times", runs.len());
    let finished = client
        .wait_finished(runs[0]["id"].as_str().expect("id"))
        .await;
    assert_eq!(finished["status"], "succeeded");

    // The workflow page lists the schedule with its next fire times.
    let page = client
        .request(Method::GET, "/workflows/ticking")
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    assert!(page.contains("* * * * * * (UTC)"), "the schedule is shown");
    let next = page.matches("<time>").count();
    assert!(
        next >= 3 && page.contains(" UTC</time>"),
        "next fire times are shown"
    );
}

#[tokio::test]
async fn pages_carry_a_nonce_policy_and_cross_origin_writes_are_refused() {
    let (_hub, client) = serve_hooked().await;

    // A page: its policy names a nonce, and every inline script carries that nonce.
    let page = client
        .request(Method::GET, "/workflows")
        .send()
        .await
        .expect("page");
    let headers = page.headers().clone();
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["x-frame-options"], "DENY");
    let csp = headers["content-security-policy"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(
        csp.contains("frame-ancestors 'none'") && csp.contains("'wasm-unsafe-eval'"),
        "{csp}"
    );
    let nonce = csp
        .split("'nonce-")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("a nonce in the policy")
        .to_string();
    let html = page.text().await.expect("html");
    let scripts = html.matches("<script").count();
    assert!(scripts > 0);
    assert_eq!(
        html.matches(&format!("nonce=\"{nonce}\"")).count(),
        scripts,
        "{html}"
    );
    // A new response, a new nonce.
    let again = client
        .request(Method::GET, "/workflows")
        .send()
        .await
        .expect("page");
    assert_ne!(
        again.headers()["content-security-policy"],
        headers["content-security-policy"]
    );

    // Writes from another origin (a page elsewhere posting to this hub) are refused.
    let trigger = "/api/v1/workflows/hello/runs";
    let from = |origin: &str| {
        client
            .request(Method::POST, trigger)
            .header("origin", origin)
            .json(&json!({ "inputs": { "who": "x" } }))
    };
    let (refused, _) = client.send(from("http://evil.example")).await;
    assert_eq!(refused, StatusCode::FORBIDDEN);
    let sneaky = client
        .request(Method::POST, trigger)
        .header("sec-fetch-site", "cross-site")
        .json(&json!({}));
    assert_eq!(client.send(sneaky).await.0, StatusCode::FORBIDDEN);
    let form = client
        .request(Method::POST, "/api/trigger_run")
        .header("origin", "http://evil.example")
        .form(&[("workflow_id", "hello"), ("inputs_json", "")]);
    assert_eq!(client.send(form).await.0, StatusCode::FORBIDDEN);
    assert!(
        runs_of(&client, "hello", "").await.is_empty(),
        "nothing ran"
    );

    // The same origin, and clients that are not browsers, may write.
    let (own, _) = client.send(from(&client.base)).await;
    assert_eq!(own, StatusCode::ACCEPTED);
    let (plain, _) = client.post_json(trigger, json!({})).await;
    assert_eq!(plain, StatusCode::ACCEPTED);
    // Webhooks answer to their secret, wherever the call comes from.
    let (status, _) = post(
        &client,
        "hooked",
        r#"{"who": "x"}"#,
        &[
            ("authorization", format!("Bearer {SECRET}")),
            ("origin", "https://github.com".into()),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
}

/// A paused workflow answers its webhook 409 (the caller's proof checked first), its Run 409,
/// the list says it is paused; resumed, both start runs again.
#[tokio::test]
async fn a_paused_workflow_refuses_its_webhook_and_run_until_resumed() {
    let (_hub, client) = serve_hooked().await;
    let body = r#"{"who": "paused"}"#;
    let bearer = [("authorization", format!("Bearer {SECRET}"))];
    let (status, summary) = client
        .post_json("/api/v1/workflows/hooked/pause", json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{summary}");
    assert!(summary["paused_at"].is_i64(), "{summary}");
    let (_, listed) = client.get("/api/v1/workflows").await;
    let hooked = listed
        .as_array()
        .expect("list")
        .iter()
        .find(|w| w["id"] == "hooked")
        .expect("listed");
    assert!(hooked["paused_at"].is_i64(), "{hooked}");

    assert_eq!(
        post(&client, "hooked", body, &[]).await.0,
        StatusCode::UNAUTHORIZED,
        "no proof is still refused first"
    );
    let (status, answer) = post(&client, "hooked", body, &bearer).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("paused")),
        "{answer}"
    );
    let (status, answer) = client
        .post_json(
            "/api/v1/workflows/hooked/runs",
            json!({ "inputs": { "who": "x" } }),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert!(runs_of(&client, "hooked", "webhook").await.is_empty());
    assert!(runs_of(&client, "hooked", "api").await.is_empty());

    let (status, summary) = client
        .post_json("/api/v1/workflows/hooked/resume", json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{summary}");
    assert_eq!(summary["paused_at"], Value::Null);
    let (status, answer) = post(&client, "hooked", body, &bearer).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let run = client.run("hooked", json!({ "who": "again" })).await;
    assert_eq!(run["status"], "succeeded", "{run}");
}
