//! Black-box tests of the REST API, health and server-rendered pages, against a real server
//! bound to port 0 with a fresh SQLite database per test (and one run on PostgreSQL).

use std::process::Command;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::common;
use crate::common::hub::{Client, Hub};

/// The workflows' ids, as the list shows them.
async fn ids(app: &Client) -> Vec<String> {
    let (_, list) = app.get("/api/v1/workflows").await;
    list.as_array()
        .expect("list")
        .iter()
        .map(|w| w["id"].as_str().expect("id").to_string())
        .collect()
}

fn doc(id: &str, latency: &str) -> String {
    format!("id: {id}\nname: Doc {id}\nsteps:\n- id: a\n  agent: simulate\n  with:\n    latency: {latency}\n")
}

/// Asserts the stable error shape and returns its problems' paths.
fn error_paths(body: &Value, code: &str) -> Vec<String> {
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    body["error"]["problems"]
        .as_array()
        .expect("problems array")
        .iter()
        .map(|p| {
            assert!(p["message"].is_string());
            p["path"].as_str().expect("path").to_string()
        })
        .collect()
}

#[tokio::test]
async fn health_and_readiness_answer() {
    let hub = Hub::start().await;
    let app = hub.client();
    assert_eq!(app.get("/healthz").await.0, StatusCode::OK);
    let (status, body) = app.get("/readyz").await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("ready"))
    );
}

#[tokio::test]
async fn the_examples_are_seeded_into_an_empty_database() {
    let hub = Hub::start().await;
    let app = hub.client();
    let ids = ids(&app).await;
    assert!(
        ids.contains(&"hello".into()) && ids.contains(&"always-fails".into()),
        "{ids:?}"
    );
}

#[tokio::test]
async fn a_created_workflow_can_be_read_versioned_exported_and_diffed() {
    let hub = Hub::start().await;
    let app = hub.client();
    let v1 = doc("report", "1ms");
    let (status, body) = app.post_yaml("/api/v1/workflows", &v1).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["version"]["version"], 1);

    let v2 = doc("report", "5ms");
    let (status, body) = app.put_yaml("/api/v1/workflows/report", &v2).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["version"]["version"], 2);

    let (_, shown) = app.get("/api/v1/workflows/report").await;
    assert_eq!(shown["latest_version"], 2);
    assert_eq!(shown["latest"]["source"], v2);
    assert_eq!(
        shown["latest"]["definition"]["steps"][0]["with"]["latency"],
        "5ms"
    );

    let (_, versions) = app.get("/api/v1/workflows/report/versions").await;
    assert_eq!(
        versions
            .as_array()
            .expect("list")
            .iter()
            .map(|v| v["version"].as_i64())
            .collect::<Vec<_>>(),
        [Some(2), Some(1)]
    );
    let (_, old) = app.get("/api/v1/workflows/report/versions/1").await;
    assert_eq!(old["source"], v1);

    let exported = app
        .http
        .get(app.url("/api/v1/workflows/report/export?version=1"))
        .send()
        .await
        .expect("export");
    assert_eq!(exported.headers()["content-type"], "application/yaml");
    assert_eq!(
        exported.text().await.expect("text"),
        v1,
        "export returns the saved bytes"
    );

    let (_, diff) = app.get("/api/v1/workflows/report/diff?from=1&to=2").await;
    let diff = diff["diff"].as_str().expect("diff");
    assert!(
        diff.contains("-    latency: 1ms") && diff.contains("+    latency: 5ms"),
        "{diff}"
    );
}

#[tokio::test]
async fn export_then_import_round_trips_byte_for_byte() {
    let hub = Hub::start().await;
    let app = hub.client();
    let exported = app
        .http
        .get(app.url("/api/v1/workflows/hello/export"))
        .send()
        .await
        .expect("export")
        .text()
        .await
        .expect("text");
    let renamed = exported.replacen("id: hello", "id: hello-copy", 1);
    assert_eq!(
        app.post_yaml("/api/v1/workflows", &renamed).await.0,
        StatusCode::CREATED
    );
    let again = app
        .http
        .get(app.url("/api/v1/workflows/hello-copy/export"))
        .send()
        .await
        .expect("export")
        .text()
        .await
        .expect("text");
    assert_eq!(again, renamed);
    // The canonical form the validator reports is the text itself: the examples are canonical.
    let r = app
        .http
        .post(app.url("/api/v1/validate"))
        .body(exported.clone())
        .send()
        .await
        .expect("validate");
    assert_eq!(
        r.json::<Value>().await.expect("json")["canonical"],
        exported
    );
}

#[tokio::test]
async fn invalid_documents_get_422_with_every_problem_and_nothing_is_stored() {
    let hub = Hub::start().await;
    let app = hub.client();
    let before = ids(&app).await;
    let cases: &[(&str, &str)] = &[
        ("id: x\nsteps: [\n", ""),                                                                         // invalid YAML
        ("{\"id\": \"x\", ", ""),                                                                          // invalid JSON
        ("id: x\nstepz: []\n", ""),                                                                        // unknown field
        ("id: Not A Slug\nsteps:\n- {id: a, agent: delay, with: {duration: 1s}}\n", "id"),                  // bad slug
        ("id: d\nsteps:\n- {id: a, agent: delay, with: {duration: 1s}}\n- {id: a, agent: delay, with: {duration: 1s}}\n", "steps[1].id"),
        ("id: c\nsteps:\n- {id: a, agent: delay, needs: [b], with: {duration: 1s}}\n- {id: b, agent: delay, needs: [a], with: {duration: 1s}}\n", "steps[0].needs"),
        ("id: u\nsteps:\n- {id: a, agent: teleport}\n", "steps[0].agent"),
        ("id: t\nsteps:\n- {id: a, agent: notify, with: {webhook_url: 'http://h', text: '{{ inputs.x '}}\n", "steps[0].with.text"),
    ];
    for (body, path) in cases {
        let (status, err) = app.post_yaml("/api/v1/workflows", body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {err}");
        let paths = error_paths(&err, "invalid_workflow");
        assert!(!paths.is_empty(), "{err}");
        if !path.is_empty() {
            assert!(
                paths.contains(&path.to_string()),
                "{body}: expected {path} in {paths:?}"
            );
        }
    }
    assert_eq!(ids(&app).await, before, "nothing was stored");
}

#[tokio::test]
async fn an_oversized_document_is_refused_with_413() {
    let hub = Hub::start().await;
    let app = hub.client();
    let big = format!("{}#{}\n", doc("big", "1ms"), "x".repeat(300 * 1024));
    let (status, body) = app.post_yaml("/api/v1/workflows", &big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    error_paths(&body, "too_large");
    let huge = "x".repeat(3 * 1024 * 1024);
    assert_eq!(
        app.post_yaml("/api/v1/workflows", &huge).await.0,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    assert!(!ids(&app).await.contains(&"big".into()));
}

#[tokio::test]
async fn bodies_that_are_not_utf8_text_or_of_the_wrong_type_are_refused() {
    let hub = Hub::start().await;
    let app = hub.client();
    let r = app
        .http
        .post(app.url("/api/v1/workflows"))
        .body(vec![0xff, 0xfe, 0x00])
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = app
        .http
        .post(app.url("/api/v1/workflows"))
        .header("content-type", "image/png")
        .body("id: x")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn creating_an_existing_id_is_a_409_and_keeps_the_original() {
    let hub = Hub::start().await;
    let app = hub.client();
    let (status, body) = app
        .post_yaml("/api/v1/workflows", &doc("hello", "9ms"))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    error_paths(&body, "conflict");
    let (_, shown) = app.get("/api/v1/workflows/hello").await;
    assert_eq!(shown["latest_version"], 1);
}

#[tokio::test]
async fn updates_must_target_an_existing_workflow_with_the_same_id() {
    let hub = Hub::start().await;
    let app = hub.client();
    let (status, body) = app
        .put_yaml("/api/v1/workflows/nope", &doc("nope", "1ms"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = app
        .put_yaml("/api/v1/workflows/hello", &doc("other", "1ms"))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_paths(&body, "invalid_workflow"), ["id"]);
}

#[tokio::test]
async fn racing_saves_of_one_workflow_all_become_versions() {
    let hub = Hub::start().await;
    let app = hub.client();
    app.post_yaml("/api/v1/workflows", &doc("busy", "1ms"))
        .await;
    let client = app.http.clone();
    let saves: Vec<_> = (0..10)
        .map(|i| {
            let (client, url) = (client.clone(), app.url("/api/v1/workflows/busy"));
            tokio::spawn(async move {
                client
                    .put(url)
                    .body(doc("busy", &format!("{}ms", i + 2)))
                    .send()
                    .await
                    .expect("send")
                    .status()
            })
        })
        .collect();
    for s in saves {
        assert_eq!(s.await.expect("join"), StatusCode::OK);
    }
    let (_, versions) = app.get("/api/v1/workflows/busy/versions").await;
    assert_eq!(versions.as_array().expect("list").len(), 11);
}

#[tokio::test]
async fn archiving_hides_a_workflow_and_restoring_shows_it_again() {
    let hub = Hub::start().await;
    let app = hub.client();
    let r = app
        .http
        .post(app.url("/api/v1/workflows/hello/archive"))
        .send()
        .await
        .expect("archive");
    assert_eq!(r.status(), StatusCode::OK);
    assert!(!ids(&app).await.contains(&"hello".into()));
    let (_, all) = app.get("/api/v1/workflows?archived=true").await;
    assert!(all
        .as_array()
        .expect("list")
        .iter()
        .any(|w| w["id"] == "hello" && w["archived_at"].is_i64()));
    assert_eq!(
        app.get("/api/v1/workflows/hello/versions/1").await.0,
        StatusCode::OK,
        "versions are kept"
    );
    app.http
        .post(app.url("/api/v1/workflows/hello/restore"))
        .send()
        .await
        .expect("restore");
    assert!(ids(&app).await.contains(&"hello".into()));
    let r = app
        .http
        .post(app.url("/api/v1/workflows/nope/archive"))
        .send()
        .await
        .expect("archive");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn validate_reports_problems_without_saving() {
    let hub = Hub::start().await;
    let app = hub.client();
    let (status, body) = app
        .post_yaml(
            "/api/v1/validate",
            "id: v\nsteps:\n- {id: a, agent: delay, needs: [zz], with: {}}\n",
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["valid"], false);
    let paths: Vec<&str> = body["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .filter_map(|p| p["path"].as_str())
        .collect();
    assert!(
        paths.contains(&"steps[0].needs[0]") && paths.contains(&"steps[0].with"),
        "{paths:?}"
    );
    let (_, ok) = app.post_yaml("/api/v1/validate", &doc("v", "1ms")).await;
    assert_eq!(ok["valid"], true);
    assert!(!ids(&app).await.contains(&"v".into()));
}

#[tokio::test]
async fn unknown_things_are_json_404s() {
    let hub = Hub::start().await;
    let app = hub.client();
    for path in [
        "/api/v1/workflows/nope",
        "/api/v1/workflows/hello/versions/99",
        "/api/v1/nothing-here",
    ] {
        let (status, body) = app.get(path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        error_paths(&body, "not_found");
    }
}

#[tokio::test]
async fn the_workflows_page_is_rendered_on_the_server_with_the_seeded_workflows() {
    let hub = Hub::start().await;
    let app = hub.client();
    let r = app
        .http
        .get(app.url("/workflows"))
        .send()
        .await
        .expect("page");
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.expect("html");
    assert!(
        html.contains("Hello, Flowscope") && html.contains("Always fails"),
        "seeded names rendered"
    );
    assert!(
        html.contains("/pkg/flowscope.js") && html.contains("/pkg/flowscope.wasm"),
        "hydration scripts point at the built bundle"
    );
    let r = app
        .http
        .get(app.url("/no/such/page"))
        .send()
        .await
        .expect("page");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(r.text().await.expect("html").contains("Page not found"));
}

#[tokio::test]
async fn the_list_server_function_answers_over_http() {
    let hub = Hub::start().await;
    let app = hub.client();
    let r = app
        .http
        .post(app.url("/api/list_workflows"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("query=hello&page=1")
        .send()
        .await
        .expect("call");
    assert_eq!(r.status(), StatusCode::OK);
    let list: Value = r.json().await.expect("json");
    // The search ran on the server: only what matches, of all the seeded workflows.
    assert_eq!(list["matching"], 1, "{list}");
    assert!(list["total"].as_u64().is_some_and(|t| t > 1), "{list}");
    assert_eq!(
        (list["page"].clone(), list["pages"].clone()),
        (json!(1), json!(1))
    );
    let hello = list["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .find(|w| w["summary"]["id"] == json!("hello"))
        .expect("hello is listed");
    // Never run yet: no last status, an empty week.
    assert_eq!(hello["stats"]["last_status"], Value::Null);
    assert_eq!(hello["stats"]["runs_per_day"], json!([0, 0, 0, 0, 0, 0, 0]));
}

#[tokio::test]
async fn the_server_runs_on_postgres_too() {
    let admin = engine::store::scratch::admin_url();
    let name = format!("flowscope_api_{}", std::process::id());
    engine::store::scratch::create_database(&admin, &name)
        .await
        .expect("PostgreSQL on 127.0.0.1:5432")
        .close()
        .await;
    let hub = Hub::start_on(
        &engine::store::scratch::database_url(&admin, &name),
        common::quiet(),
        tempfile::tempdir().expect("dir"),
    )
    .await;
    let app = hub.client();
    assert!(ids(&app).await.contains(&"hello".into()));
    assert_eq!(
        app.post_yaml("/api/v1/workflows", &doc("pg", "1ms"))
            .await
            .0,
        StatusCode::CREATED
    );
    assert_eq!(app.get("/readyz").await.0, StatusCode::OK);
}

#[tokio::test]
async fn an_unreachable_database_stops_start_up_with_a_clear_message() {
    let out = Command::new(env!("CARGO_BIN_EXE_flowscope"))
        .env(
            "FLOWSCOPE_DATABASE_URL",
            "postgres://postgres@127.0.0.1:1/none",
        )
        .env("FLOWSCOPE_LISTEN", "127.0.0.1:0")
        .output()
        .expect("run binary");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot connect to the database")
            && stderr.contains("FLOWSCOPE_DATABASE_URL"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test]
async fn a_bad_setting_stops_start_up_naming_it() {
    let out = Command::new(env!("CARGO_BIN_EXE_flowscope"))
        .env("FLOWSCOPE_LISTEN", "nowhere")
        .output()
        .expect("run binary");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("FLOWSCOPE_LISTEN"), "{stderr}");
}

#[tokio::test]
async fn the_validate_command_prints_problems_and_exits_non_zero() {
    let dir = tempfile::tempdir().expect("dir");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "id: b\nsteps:\n- {id: a, agent: delay, needs: [zz], with: {duration: 1s}}\n",
    )
    .expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_flowscope"))
        .arg("validate")
        .arg(&bad)
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("steps[0].needs[0]: unknown step \"zz\""));
    let good = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../workflows/examples/hello.yaml"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_flowscope"))
        .arg("validate")
        .arg(good)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn a_triggered_run_is_queued_at_once_streams_its_events_and_succeeds() {
    let hub = Hub::start().await;
    let app = hub.client();
    let (status, body) = app
        .post_json(
            "/api/v1/workflows/hello/runs",
            json!({ "inputs": { "who": "API" } }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["run"]["status"], "queued");
    assert_eq!(body["run"]["trigger"], "api");
    let id = body["run"]["id"].as_str().expect("id").to_string();
    let (events, run) = app.follow(&id).await;
    assert_eq!(events.first().map(String::as_str), Some("snapshot"));
    assert!(
        events.iter().filter(|e| *e == "change").count() >= 2,
        "{events:?}"
    );
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["steps"].as_array().expect("steps").len(), 3);
    assert!(run["attempts"]
        .as_array()
        .expect("attempts")
        .iter()
        .all(|a| a["status"] == "succeeded"));
}

#[tokio::test]
async fn bad_run_requests_get_clear_errors_and_start_nothing() {
    let hub = Hub::start().await;
    let app = hub.client();
    let (status, body) = app
        .post_json(
            "/api/v1/workflows/hello/runs",
            json!({ "inputs": { "who": 42 } }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_paths(&body, "invalid_inputs"), ["inputs.who"]);
    assert_eq!(
        app.post_json("/api/v1/workflows/nope/runs", json!({}))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.post_json("/api/v1/workflows/hello/runs", json!({ "version": 42 }))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.post_json("/api/v1/workflows/hello/runs", json!({ "inptus": {} }))
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    let (_, page) = app.get("/api/v1/runs").await;
    assert!(page["runs"].as_array().expect("runs").is_empty());
    assert_eq!(
        app.get("/api/v1/runs?status=exploded").await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        app.get("/api/v1/runs/no-such-run").await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_failed_run_can_be_retried_from_the_failed_step_but_a_finished_one_not_cancelled() {
    let hub = Hub::start().await;
    let app = hub.client();
    let (_, body) = app
        .post_json("/api/v1/workflows/always-fails/runs", json!({}))
        .await;
    let id = body["run"]["id"].as_str().expect("id").to_string();
    let (_, run) = app.follow(&id).await;
    assert_eq!(run["status"], "failed");
    let (status, body) = app
        .post_json(&format!("/api/v1/runs/{id}/cancel"), json!({}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, retried) = app
        .post_json(
            &format!("/api/v1/runs/{id}/retry"),
            json!({ "from": "failed" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{retried}");
    let new_id = retried["run"]["id"].as_str().expect("id").to_string();
    let (_, new_run) = app.follow(&new_id).await;
    assert_eq!(new_run["parent_run_id"], id.as_str());
    let prepare = new_run["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["step_id"] == "prepare")
        .expect("prepare")
        .clone();
    assert_eq!(prepare["attempts"], 0, "the succeeded step was reused");
    let (status, _) = app
        .post_json(
            &format!("/api/v1/runs/{new_id}/retry"),
            json!({ "from": "nope" }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// Any finished run, succeeded included, is retried whole with its own inputs and version, or
/// with new inputs on the latest version; what cannot be done is refused, saying why.
#[tokio::test]
async fn any_finished_run_is_retried_with_its_inputs_or_new_ones_on_its_version_or_the_latest() {
    let hub = Hub::start().await;
    let app = hub.client();
    let greet = |word: &str| {
        format!(
            "id: greet\ninputs:\n  who: {{type: string, default: world}}\nsteps:\n\
             - {{id: say, agent: transform, with: {{jq: '\"{word} \" + .inputs.who'}}}}\n"
        )
    };
    assert_eq!(
        app.post_yaml("/api/v1/workflows", &greet("hello")).await.0,
        StatusCode::CREATED
    );
    let (_, body) = app
        .post_json(
            "/api/v1/workflows/greet/runs",
            json!({ "inputs": { "who": "ada" } }),
        )
        .await;
    let id = body["run"]["id"].as_str().expect("id").to_string();
    let (_, run) = app.follow(&id).await;
    assert_eq!(run["status"], "succeeded");
    // A second version: the retry runs the run's own unless asked for the latest.
    assert_eq!(
        app.put_yaml("/api/v1/workflows/greet", &greet("hi"))
            .await
            .0,
        StatusCode::OK
    );
    let retried = async |body: Value| -> Value {
        let (status, created) = app
            .post_json(&format!("/api/v1/runs/{id}/retry"), body)
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let new_id = created["run"]["id"].as_str().expect("id").to_string();
        app.follow(&new_id).await.1
    };
    let output = |run: &Value| run["steps"][0]["output"].clone();

    let same = retried(json!({})).await;
    assert_eq!(
        (
            &same["status"],
            &same["workflow_version"],
            &same["inputs"],
            &same["parent_run_id"]
        ),
        (
            &json!("succeeded"),
            &json!(1),
            &json!({ "who": "ada" }),
            &json!(id)
        ),
        "{same}"
    );
    assert_eq!(same["trigger"], "retry");
    assert_eq!(output(&same), "hello ada");

    let changed = retried(json!({ "inputs": { "who": "bob" }, "version": "latest" })).await;
    assert_eq!(changed["workflow_version"], 2, "{changed}");
    assert_eq!(output(&changed), "hi bob");
    let pinned = retried(json!({ "version": 1, "inputs": {} })).await;
    assert_eq!(
        pinned["inputs"],
        json!({ "who": "world" }),
        "defaults fill in"
    );
    assert_eq!(output(&pinned), "hello world");

    // Refusals: each a 4xx that says why, and no run made.
    let (_, before) = app.get("/api/v1/runs?workflow=greet").await;
    for (body, status, says) in [
        (
            json!({ "inputs": { "who": 5 } }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "who",
        ),
        (
            json!({ "from": "failed" }),
            StatusCode::BAD_REQUEST,
            "no failed step",
        ),
        (
            json!({ "from": "say", "inputs": {} }),
            StatusCode::BAD_REQUEST,
            "retry the whole run",
        ),
        (
            json!({ "version": "newest" }),
            StatusCode::BAD_REQUEST,
            "\"latest\"",
        ),
        (json!({ "version": 9 }), StatusCode::NOT_FOUND, "9"),
    ] {
        let (got, answer) = app
            .post_json(&format!("/api/v1/runs/{id}/retry"), body.clone())
            .await;
        assert_eq!(got, status, "{body} → {answer}");
        let text = format!(
            "{} {}",
            answer["error"]["message"].as_str().unwrap_or_default(),
            answer["error"]["problems"]
        );
        assert!(text.contains(says), "{body} → {answer}");
    }
    let (_, after) = app.get("/api/v1/runs?workflow=greet").await;
    assert_eq!(before["runs"], after["runs"]);
}

/// Bulk actions act on what the monitor's filters select: a dry run counts, the act takes
/// `until` from it so runs that arrive after do not join, and each run is reported.
#[tokio::test]
async fn runs_selected_by_filters_are_counted_then_retried_or_cancelled_in_bulk() {
    let hub = Hub::start().await;
    let app = hub.client();
    app.post_yaml(
        "/api/v1/workflows",
        "id: flip\ninputs:\n  fail: {type: boolean, default: false}\nsteps:\n\
         - {id: go, agent: transform, with: {jq: 'if .inputs.fail then error(\"boom\") else 1 end'}}\n",
    )
    .await;
    app.post_yaml(
        "/api/v1/workflows",
        "id: slow\nsteps:\n- {id: wait, agent: simulate, with: {latency: 1h}}\n",
    )
    .await;
    let start = async |workflow: &str, inputs: Value| -> String {
        let (_, body) = app
            .post_json(
                &format!("/api/v1/workflows/{workflow}/runs"),
                json!({ "inputs": inputs }),
            )
            .await;
        body["run"]["id"].as_str().expect("id").to_string()
    };
    let mut failed = Vec::new();
    for fail in [true, false, true, false, true] {
        let id = start("flip", json!({ "fail": fail })).await;
        app.follow(&id).await;
        if fail {
            failed.push(id);
        }
    }
    let slow = [
        start("slow", json!({})).await,
        start("slow", json!({})).await,
    ];

    let bulk = async |query: &str, body: Value| -> (StatusCode, Value) {
        app.post_json(&format!("/api/v1/runs/bulk?{query}"), body)
            .await
    };
    let (status, counted) = bulk(
        "workflow=flip&status=failed",
        json!({ "action": "retry", "from": "failed", "dry_run": true }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{counted}");
    assert_eq!(
        (
            counted["matched"].as_u64(),
            counted["done"].as_array().map(Vec::len)
        ),
        (Some(3), Some(0))
    );
    let (_, none) = bulk(
        "workflow=flip&status=succeeded",
        json!({ "action": "retry", "from": "failed", "dry_run": true }),
    )
    .await;
    assert_eq!(
        none["matched"], 0,
        "a succeeded run has no failure to retry: {none}"
    );
    // A run that arrives after the count is not retried.
    let late = start("flip", json!({ "fail": true })).await;
    app.follow(&late).await;
    let (_, retried) = bulk(
        &format!("workflow=flip&status=failed&until={}", counted["as_of"]),
        json!({ "action": "retry", "from": "failed" }),
    )
    .await;
    let mut done: Vec<String> = retried["done"]
        .as_array()
        .expect("done")
        .iter()
        .map(|d| d["run_id"].as_str().expect("id").to_string())
        .collect();
    done.sort();
    failed.sort();
    assert_eq!(done, failed, "{retried}");
    for d in retried["done"].as_array().expect("done") {
        let new_id = d["new_run_id"].as_str().expect("a new run");
        let (_, run) = app.follow(new_id).await;
        assert_eq!(
            (&run["trigger"], &run["parent_run_id"]),
            (&json!("retry"), &d["run_id"])
        );
    }

    // Cancel without a status: only the running ones are touched, and they end cancelled.
    let (_, counted) = bulk(
        "workflow=flip",
        json!({ "action": "cancel", "dry_run": true }),
    )
    .await;
    assert_eq!(
        counted["matched"], 0,
        "finished runs are not cancelled: {counted}"
    );
    let (_, cancelled) = bulk("workflow=slow", json!({ "action": "cancel" })).await;
    assert_eq!(cancelled["matched"], 2, "{cancelled}");
    for id in &slow {
        assert_eq!(app.follow(id).await.1["status"], "cancelled");
    }

    for (query, body, says) in [
        (
            "",
            json!({ "action": "delete" }),
            "not one of cancel, retry",
        ),
        (
            "",
            json!({ "action": "cancel", "from": "failed" }),
            "only a retry",
        ),
        ("status=exploded", json!({ "action": "retry" }), "exploded"),
    ] {
        let (status, answer) = bulk(query, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} → {answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains(says),
            "{answer}"
        );
    }
}

#[tokio::test]
async fn a_long_run_is_cancelled_from_the_api() {
    let hub = Hub::start().await;
    let app = hub.client();
    app.post_yaml(
        "/api/v1/workflows",
        "id: long\nsteps:\n- {id: wait, agent: simulate, with: {latency: 1h}}\n",
    )
    .await;
    let (_, body) = app
        .post_json("/api/v1/workflows/long/runs", json!({}))
        .await;
    let id = body["run"]["id"].as_str().expect("id").to_string();
    let (status, _) = app
        .post_json(&format!("/api/v1/runs/{id}/cancel"), json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (_, run) = app.follow(&id).await;
    assert_eq!(run["status"], "cancelled");
}

/// A workflow goes with its versions and runs, but not while one of them runs; its id is free
/// again afterwards, and the other workflows' runs stay.
#[tokio::test]
async fn a_workflow_is_deleted_with_its_runs_but_not_while_one_runs() {
    let hub = Hub::start().await;
    let app = hub.client();
    app.create("id: long\nsteps:\n- {id: wait, agent: simulate, with: {latency: 1h}}\n")
        .await;
    let other = app.run("hello", json!({})).await;
    let id = app.trigger("long", json!({})).await;
    app.wait_run(&id, |r| r["status"] == "running").await;
    let (status, body) = app.delete("/api/v1/workflows/long").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("1 runs") && m.contains("cancel")),
        "{body}"
    );
    assert_eq!(app.get_run(&id).await["status"], "running");
    let (status, _) = app
        .post_json(&format!("/api/v1/runs/{id}/cancel"), json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    app.wait_finished(&id).await;

    let (status, body) = app.delete("/api/v1/workflows/long").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({ "deleted": "long", "runs": 1 }));
    assert_eq!(
        app.get("/api/v1/workflows/long").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get(&format!("/api/v1/runs/{id}")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.delete("/api/v1/workflows/long").await.0,
        StatusCode::NOT_FOUND
    );
    let other_id = other["id"].as_str().expect("id");
    assert_eq!(app.get_run(other_id).await["status"], "succeeded");
    // The id starts over at version 1, on its new definition.
    let (status, body) = app
        .post_yaml("/api/v1/workflows", &doc("long", "1ms"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["version"]["version"], 1);
    let run = app.run("long", json!({})).await;
    assert_eq!(run["status"], "succeeded", "the new definition runs: {run}");
}

#[tokio::test]
async fn the_run_list_filters_and_pages_with_a_cursor() {
    let hub = Hub::start().await;
    let app = hub.client();
    let mut ids = Vec::new();
    for wf in ["hello", "hello", "hello", "always-fails"] {
        let (_, body) = app
            .post_json(&format!("/api/v1/workflows/{wf}/runs"), json!({}))
            .await;
        ids.push(body["run"]["id"].as_str().expect("id").to_string());
    }
    for id in &ids {
        app.follow(id).await;
    }
    let (_, page1) = app.get("/api/v1/runs?workflow=hello&limit=2").await;
    let first: Vec<&str> = page1["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .map(|r| r["id"].as_str().expect("id"))
        .collect();
    assert_eq!(first, [ids[2].as_str(), ids[1].as_str()], "newest first");
    let cursor = page1["next_cursor"].as_str().expect("cursor");
    let (_, page2) = app
        .get(&format!(
            "/api/v1/runs?workflow=hello&limit=2&cursor={cursor}"
        ))
        .await;
    let second: Vec<&str> = page2["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .map(|r| r["id"].as_str().expect("id"))
        .collect();
    assert_eq!(second, [ids[0].as_str()]);
    assert!(page2["next_cursor"].is_null());
    let (_, failed) = app.get("/api/v1/runs?status=failed").await;
    let failed: Vec<&str> = failed["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .map(|r| r["id"].as_str().expect("id"))
        .collect();
    assert_eq!(failed, [ids[3].as_str()]);
}

#[tokio::test]
async fn the_trigger_server_function_starts_a_run_and_reports_bad_inputs() {
    let hub = Hub::start().await;
    let app = hub.client();
    let call = |inputs: &'static str| {
        app.http
            .post(app.url("/api/trigger_run"))
            .form(&[("workflow_id", "hello"), ("inputs_json", inputs)])
            .send()
    };
    let ok = call(r#"{"who": "UI"}"#).await.expect("call");
    assert_eq!(ok.status(), StatusCode::OK);
    let run_id: String = ok.json().await.expect("run id");
    let (_, run) = app.follow(&run_id).await;
    assert_eq!(
        (run["status"].as_str(), run["trigger"].as_str()),
        (Some("succeeded"), Some("manual"))
    );
    assert_eq!(run["inputs"], json!({ "who": "UI" }));
    // Bad input is the caller's error, never a 500 (server_fn answers 500 for any error).
    let bad = call(r#"{"who": 7}"#).await.expect("call");
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        bad.text().await.expect("body").contains("inputs.who"),
        "the error names the input"
    );
    let unknown = app
        .http
        .post(app.url("/api/trigger_run"))
        .form(&[("workflow_id", "no-such-flow"), ("inputs_json", "")])
        .send()
        .await
        .expect("call");
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let malformed = app
        .http
        .post(app.url("/api/trigger_run"))
        .form(&[("inputs_json", "{}")])
        .send()
        .await
        .expect("call");
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_monitor_stream_carries_changes_of_the_workflow_it_follows_only() {
    let hub = Hub::start().await;
    let app = hub.client();
    let mut stream = app
        .http
        .get(app.url("/api/v1/events?workflow=hello"))
        .send()
        .await
        .expect("events");
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    // A run of another workflow first: none of its changes may reach this stream.
    let (_, other) = app
        .post_json("/api/v1/workflows/fan-out/runs", json!({}))
        .await;
    let (_, hello) = app
        .post_json("/api/v1/workflows/hello/runs", json!({}))
        .await;
    let hello_id = hello["run"]["id"].as_str().expect("id").to_string();
    let mut text = String::new();
    let events = |text: &str| -> Vec<Value> {
        text.lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter_map(|d| serde_json::from_str(d).ok())
            .collect()
    };
    // Read until the hello run's final change; the stream itself never ends.
    while !events(&text).iter().any(|e| {
        e["run_id"] == hello_id.as_str() && e["type"] == "run" && e["status"] == "succeeded"
    }) {
        let chunk = stream.chunk().await.expect("chunk").expect("stream open");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.contains("event: change"), "{text}");
    assert!(
        !text.contains(other["run"]["id"].as_str().expect("id")),
        "{text}"
    );
    assert!(
        events(&text).iter().all(|e| e["workflow_id"] == "hello"),
        "{text}"
    );
}

/// A site built with content-hashed names: pages name the hashed files, browsers may keep those
/// for a year, and what is not hashed is still revalidated.
#[tokio::test]
async fn hashed_site_files_are_named_by_pages_and_kept_immutable() {
    let site = tempfile::tempdir().expect("site");
    let pkg = site.path().join("pkg");
    std::fs::create_dir_all(&pkg).expect("mkdir");
    let hash = "0123456789abcdef012345";
    for ext in ["js", "wasm", "css"] {
        std::fs::write(
            pkg.join(format!("flowscope.{hash}.{ext}")),
            ext.repeat(5000),
        )
        .expect("write");
    }
    std::fs::write(pkg.join("logo.svg"), "<svg/>".repeat(100)).expect("write");
    std::fs::write(
        pkg.join("hash.txt"),
        ["js", "wasm", "css", "split", "manifest"]
            .map(|k| format!("{k}: {hash}\n"))
            .concat(),
    )
    .expect("write");
    flowscope::assets::precompress(site.path()).expect("precompress");
    let hub = Hub::start_site(site.path()).await;
    let app = hub.client();
    let page = app
        .http
        .get(app.url("/workflows"))
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    for name in [
        format!("/pkg/flowscope.{hash}.js"),
        format!("/pkg/flowscope.{hash}.wasm"),
        format!("/pkg/flowscope.{hash}.css"),
    ] {
        assert!(page.contains(&name), "{name} in the page");
    }
    assert!(
        !page.contains("/pkg/flowscope.css"),
        "no unhashed stylesheet"
    );
    for (path, cache) in [
        (
            format!("/pkg/flowscope.{hash}.wasm"),
            "public, max-age=31536000, immutable",
        ),
        (
            format!("/pkg/flowscope.{hash}.css"),
            "public, max-age=31536000, immutable",
        ),
        ("/pkg/logo.svg".to_string(), "no-cache"),
    ] {
        let r = app
            .http
            .get(app.url(&path))
            .header("accept-encoding", "br")
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert_eq!(r.headers()["cache-control"], cache, "{path}");
        assert_eq!(r.headers()["content-encoding"], "br", "{path}");
    }
    // Not found is not cached.
    let r = app
        .http
        .get(app.url(&format!("/pkg/flowscope.{hash}.gone")))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(r.headers().get("cache-control").is_none());
    assert!(flowscope::assets::is_hashed(
        "/flowscope.0123456789abcdef012345.js"
    ));
    assert!(!flowscope::assets::is_hashed("/flowscope.js"));
    assert!(!flowscope::assets::is_hashed(
        "/snippets/leptos-0123456789abcdef/inline0.js"
    ));
}

#[tokio::test]
async fn site_files_go_out_precompressed_and_revalidated_and_pages_compressed() {
    use std::io::Read;
    let site = tempfile::tempdir().expect("site");
    let pkg = site.path().join("pkg");
    std::fs::create_dir_all(&pkg).expect("mkdir");
    let wasm: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(pkg.join("flowscope.wasm"), &wasm).expect("write");
    let done = flowscope::assets::precompress(site.path()).expect("precompress");
    assert_eq!(done.files, 1);
    let hub = Hub::start_site(site.path()).await;
    let app = hub.client();
    let get = |encoding: Option<&'static str>| {
        let mut r = app.http.get(app.url("/pkg/flowscope.wasm"));
        if let Some(e) = encoding {
            r = r.header("accept-encoding", e);
        }
        r.send()
    };
    // The smallest copy the browser accepts, the bytes written at build time.
    for (accepts, sent, file) in [
        (Some("gzip, deflate, br"), Some("br"), "flowscope.wasm.br"),
        (Some("gzip"), Some("gzip"), "flowscope.wasm.gz"),
        (None, None, "flowscope.wasm"),
    ] {
        let r = get(accepts).await.expect("get");
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            r.headers()
                .get("content-encoding")
                .and_then(|v| v.to_str().ok()),
            sent,
            "{accepts:?}"
        );
        assert_eq!(r.headers()["cache-control"], "no-cache");
        let body = r.bytes().await.expect("body");
        assert_eq!(
            body.as_ref(),
            std::fs::read(pkg.join(file)).expect("file"),
            "{accepts:?}"
        );
        if sent.is_some() {
            assert!(body.len() < wasm.len() / 2, "{file}: {} bytes", body.len());
        }
    }
    // A browser that has it asks again and gets 304, no body.
    let r = get(Some("br")).await.expect("get");
    let modified = r.headers()["last-modified"].clone();
    let again = app
        .http
        .get(app.url("/pkg/flowscope.wasm"))
        .header("accept-encoding", "br")
        .header("if-modified-since", modified)
        .send()
        .await
        .expect("get");
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert!(again.bytes().await.expect("body").is_empty());

    // Pages are compressed as they render.
    let page = app
        .http
        .get(app.url("/workflows"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()["content-encoding"], "gzip");
    let zipped = page.bytes().await.expect("body");
    let mut html = String::new();
    flate2::read::GzDecoder::new(zipped.as_ref())
        .read_to_string(&mut html)
        .expect("gzip");
    assert!(html.contains("Hello, Flowscope"), "{html}");
    assert!(zipped.len() < html.len() / 2);
}

#[tokio::test]
async fn a_trigger_can_wait_for_the_finished_run() {
    let hub = Hub::start().await;
    let app = hub.client();
    let post = |path: &str| {
        let inputs = if path.contains("/hello/") {
            json!({ "who": "waiter" })
        } else {
            json!({})
        };
        app.http
            .post(app.url(path))
            .json(&json!({ "inputs": inputs }))
            .send()
    };
    // Finished within the wait: 200 with the whole run, its steps' outputs and errors.
    let r = post("/api/v1/workflows/hello/runs?wait=30s")
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.expect("json");
    let run = &body["run"];
    assert_eq!(run["status"], "succeeded", "{body}");
    assert!(run["finished_at"].is_i64(), "{body}");
    let greet = run["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["step_id"] == "greet"))
        .unwrap_or_else(|| panic!("greet in {body}"));
    assert_eq!(greet["output"]["greeting"], "Hello, waiter!", "{body}");
    let r = post("/api/v1/workflows/always-fails/runs?wait=30s")
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["run"]["status"], "failed", "{body}");
    assert!(body["run"]["error"]
        .as_str()
        .is_some_and(|e| e.contains("flaky_call")));

    // Still running when the wait is over: 202 with the run, as without a wait.
    let (status, _) = app
        .post_yaml(
            "/api/v1/workflows",
            "id: slow\nname: slow\nsteps:\n- id: a\n  agent: delay\n  with: { duration: 1m }\n",
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let r = post("/api/v1/workflows/slow/runs?wait=200ms")
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let body: Value = r.json().await.expect("json");
    assert!(
        matches!(body["run"]["status"].as_str(), Some("queued" | "running")),
        "{body}"
    );

    // A wait that is not a duration, or longer than a request is held: a clear 400, no run.
    for (wait, says) in [("10m", "longer than the 5m"), ("soon", "wait:")] {
        let r = post(&format!("/api/v1/workflows/hello/runs?wait={wait}"))
            .await
            .expect("post");
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{wait}");
        let body: Value = r.json().await.expect("json");
        assert!(
            body["error"]["message"].to_string().contains(says),
            "{body}"
        );
    }
}

#[tokio::test]
async fn a_for_each_steps_items_are_listed_a_page_at_a_time_and_filtered_by_status() {
    let hub = Hub::start().await;
    let app = hub.client();
    let (status, body) = app
        .post_yaml(
            "/api/v1/workflows",
            "id: loop\nname: loop\ninputs: {xs: {type: array}}\nsteps:\n\
             - id: each\n  agent: transform\n  for_each: inputs.xs\n  continue_on_error: true\n  \
             retry: {max_attempts: 2, backoff: 1ms}\n  \
             with: {jq: 'if .item % 5 == 0 then error(\"five\") else .item + .index end'}\n",
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let xs: Vec<i64> = (1..=12).collect();
    let r = app
        .http
        .post(app.url("/api/v1/workflows/loop/runs?wait=30s"))
        .json(&json!({ "inputs": { "xs": xs } }))
        .send()
        .await
        .expect("post");
    let body: Value = r.json().await.expect("json");
    let run = &body["run"];
    assert_eq!(run["status"], "succeeded", "{body}");
    assert_eq!(
        run["items"],
        json!([{ "step_id": "each", "total": 12, "succeeded": 10, "failed": 2, "retried": 2 }])
    );
    let id = run["id"].as_str().expect("id");
    let path = format!("/api/v1/runs/{id}/steps/each/items");
    let (status, first) = app.get(&format!("{path}?limit=5")).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let index = |page: &Value| -> Vec<i64> {
        page["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| i["index"].as_i64().expect("i"))
            .collect()
    };
    assert_eq!(index(&first), vec![0, 1, 2, 3, 4]);
    assert_eq!(
        first["items"][1]["output"],
        json!(2 + 1),
        "item 2 at index 1"
    );
    assert_eq!(first["next_after"], json!(4));
    let (_, second) = app.get(&format!("{path}?limit=5&after=4")).await;
    assert_eq!(index(&second), vec![5, 6, 7, 8, 9]);
    let (_, failed) = app.get(&format!("{path}?status=failed")).await;
    assert_eq!(index(&failed), vec![4, 9], "items 5 and 10 failed");
    assert_eq!(failed["items"][0]["error_kind"], "jq_runtime");
    assert_eq!(failed["next_after"], Value::Null);
    // Each failing item was tried twice: its first attempt is listed with it.
    assert_eq!(failed["items"][0]["attempts"], 2);
    assert_eq!(failed["items"][0]["earlier_attempts"][0]["attempt"], 1);
    assert_eq!(
        failed["items"][0]["earlier_attempts"][0]["error_kind"],
        "jq_runtime"
    );
    let (_, retried) = app.get(&format!("{path}?retried=true")).await;
    assert_eq!(index(&retried), vec![4, 9], "only the retried");
    let (_, none) = app
        .get(&format!("{path}?retried=true&status=succeeded"))
        .await;
    assert_eq!(
        index(&none),
        Vec::<i64>::new(),
        "no succeeded item was retried"
    );
    let (_, first_page) = app.get(&format!("{path}?limit=5")).await;
    assert!(
        first_page["items"][0].get("earlier_attempts").is_none(),
        "an item tried once lists no earlier attempts: {first_page}"
    );
    let (status, bad) = app.get(&format!("{path}?status=running")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    let (status, _) = app.get("/api/v1/runs/nope/steps/each/items").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// The ids of a run list page, newest first.
fn ids_of(page: &Value) -> Vec<String> {
    page["runs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| r["id"].as_str().expect("id").to_string())
        .collect()
}

#[tokio::test]
async fn runs_are_labelled_at_trigger_then_filtered_searched_and_acted_on_in_bulk() {
    let hub = Hub::start().await;
    let app = hub.client();
    let mut ids = Vec::new();
    for (who, env) in [
        ("Ada Lovelace", "prod"),
        ("Bob", "staging"),
        ("Ada King", "prod"),
    ] {
        let (status, body) = app
            .post_json(
                "/api/v1/workflows/hello/runs",
                json!({"inputs": {"who": who}, "labels": {"env": env, "build": 7}}),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert_eq!(body["run"]["labels"]["env"], env, "{body}");
        ids.push(body["run"]["id"].as_str().expect("id").to_string());
    }
    for id in &ids {
        app.follow(id).await;
    }
    let run = app.get_run(&ids[0]).await;
    assert_eq!(run["labels"], json!({"env": "prod", "build": "7"}));

    let (_, page) = app.get("/api/v1/runs?label=env:prod").await;
    assert_eq!(ids_of(&page), [ids[2].clone(), ids[0].clone()]);
    let (_, page) = app
        .get("/api/v1/runs?label=env:prod&label=build:7&q=lovelace")
        .await;
    assert_eq!(ids_of(&page), [ids[0].clone()]);
    // An output: hello's greeting, in another case.
    let (_, page) = app.get("/api/v1/runs?q=HELLO,%20BOB").await;
    assert_eq!(ids_of(&page), [ids[1].clone()]);
    let (_, page) = app.get("/api/v1/runs?q=ada").await;
    assert_eq!(ids_of(&page), [ids[2].clone(), ids[0].clone()]);

    // Bulk by label: counted, then retried; each retry keeps its labels.
    let (status, counted) = app
        .post_json(
            "/api/v1/runs/bulk?label=env:prod&status=succeeded",
            json!({"action": "retry", "dry_run": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{counted}");
    assert_eq!(counted["matched"], 2, "{counted}");

    // Bad labels and searches are 400s that say what is wrong; nothing starts.
    for (body, says) in [
        (
            json!({"labels": {"env": ["a"]}}),
            "labels.env: a label's value is a string",
        ),
        (
            json!({"labels": {"has space": "x"}}),
            "\"has space\" may hold",
        ),
        (
            json!({"labels": {"env": "x".repeat(201)}}),
            "longer than 200",
        ),
        (json!({"labels": "env=prod"}), "labels"),
    ] {
        let (status, refused) = app.post_json("/api/v1/workflows/hello/runs", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
        assert!(
            refused["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains(says),
            "{says}: {refused}"
        );
    }
    for (query, says) in [
        ("label=env", "not key:value"),
        ("q=ab", "shorter than 3"),
        ("label=a:1&label=b:1&label=c:1&label=d:1&label=e:1&label=f:1&label=g:1&label=h:1&label=i:1", "at most 8"),
    ] {
        let (status, refused) = app.get(&format!("/api/v1/runs?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {refused}");
        assert!(refused["error"]["message"].as_str().unwrap_or_default().contains(says), "{says}: {refused}");
    }
    let (_, all) = app.get("/api/v1/runs?workflow=hello").await;
    assert_eq!(ids_of(&all).len(), 3, "no refused trigger started a run");
}

#[tokio::test]
async fn the_api_contract_is_served_and_names_every_operation_once() {
    let hub = Hub::start().await;
    let app = hub.client();
    let (status, doc) = app.get("/api/v1/openapi.json").await;
    assert_eq!(status, StatusCode::OK, "{doc}");
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().expect("paths");
    let mut ids = std::collections::BTreeSet::new();
    let mut operations = 0;
    for (path, item) in paths {
        assert!(path.starts_with("/api/v1/"), "{path}");
        for (method, op) in item.as_object().expect("path item") {
            operations += 1;
            let id = op["operationId"].as_str().expect("operationId");
            assert!(ids.insert(id.to_string()), "{id} twice");
            let responses = op["responses"].as_object().expect("responses");
            assert!(
                responses.keys().any(|k| k.starts_with('2')),
                "{method} {path}: no success answer"
            );
        }
    }
    // The routers' 42 operations (the module docs list them), this document included.
    assert_eq!(operations, 42, "{:?}", paths.keys().collect::<Vec<_>>());
    // What this session added is in it: the list's labels and search, the trigger's labels,
    // and the error shape every operation shares.
    let list = &doc["paths"]["/api/v1/runs"]["get"]["parameters"];
    let names: Vec<&str> = list
        .as_array()
        .expect("parameters")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert!(
        names.contains(&"label") && names.contains(&"q"),
        "{names:?}"
    );
    let schemas = &doc["components"]["schemas"];
    assert!(
        schemas["TriggerBody"]["properties"]["labels"].is_object(),
        "{}",
        schemas["TriggerBody"]
    );
    assert_eq!(schemas["ErrorBody"]["required"], json!(["error"]));
}
