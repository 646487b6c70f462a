//! The execution engine end to end on a real SQLite store (and, where storage matters, on
//! PostgreSQL): DAG order, concurrency, retries, failures, cancel, timeouts, retry modes,
//! recovery after a crash, agents against local servers speaking their real protocols.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::routing::{get, post};
use axum::{Json, Router};
use engine::executor::{Engine, EngineConfig, EngineError, RetryMode, TriggerRequest};
use engine::model::Workflow;
use engine::records::{RunStatus, StepStatus};
use engine::store::Store;
use serde_json::{json, Value};

use crate::harness::*;

#[tokio::test]
async fn hello_runs_every_step_in_order_and_transform_reads_upstream_outputs() {
    let h = harness().await;
    let d = h.run("hello", json!({ "who": "Ada" })).await;
    assert_eq!(d.run.status, RunStatus::Succeeded, "{d:?}");
    assert!(d
        .steps
        .iter()
        .all(|s| s.status == StepStatus::Succeeded && s.attempts == 1));
    assert_eq!(
        step_of(&d, "greet").output,
        Some(json!({ "greeting": "Hello, Ada!" }))
    );
    assert_eq!(
        step_of(&d, "summary").output,
        Some(json!({ "message": "Hello, Ada!", "at": "done" }))
    );
    let summary_start = step_of(&d, "summary").started_at.expect("started");
    for upstream in ["greet", "think"] {
        assert!(
            step_of(&d, upstream).finished_at.expect("finished") <= summary_start,
            "{upstream} finished before summary started"
        );
    }
    assert_eq!(d.inputs, json!({ "who": "Ada" }));
}

#[tokio::test]
async fn a_step_that_keeps_failing_is_retried_then_fails_the_run_and_skips_downstream() {
    let h = harness().await;
    let d = h.run("always-fails", json!({})).await;
    assert_eq!(d.run.status, RunStatus::Failed);
    assert!(d.run.error.as_deref().unwrap_or("").contains("flaky_call"));
    let flaky = step_of(&d, "flaky_call");
    assert_eq!((flaky.status, flaky.attempts), (StepStatus::Failed, 3));
    assert_eq!(flaky.error_kind.as_deref(), Some("simulated"));
    assert_eq!(step_of(&d, "publish").status, StepStatus::Skipped);
    assert_eq!(step_of(&d, "prepare").status, StepStatus::Succeeded);
    let attempts: Vec<i64> = d
        .attempts
        .iter()
        .filter(|a| a.step_id == "flaky_call")
        .map(|a| a.attempt)
        .collect();
    assert_eq!(attempts, [1, 2, 3]);
    assert!(d
        .attempts
        .iter()
        .filter(|a| a.step_id == "flaky_call")
        .all(|a| a.status == StepStatus::Failed
            && a.logs.iter().any(|l| l.contains("simulated failure"))));
}

#[tokio::test]
async fn independent_steps_run_at_the_same_time() {
    let h = harness().await;
    h.add("id: par\nsteps:\n- {id: a, agent: delay, with: {duration: 300ms}}\n- {id: b, agent: delay, with: {duration: 300ms}}\n").await;
    let d = h.run("par", json!({})).await;
    let (a, b) = (step_of(&d, "a"), step_of(&d, "b"));
    // Each started before the other finished: their intervals overlap.
    assert!(
        a.started_at < b.finished_at && b.started_at < a.finished_at,
        "{a:?} {b:?}"
    );
}

#[tokio::test]
async fn templates_keep_types_and_a_template_failing_at_run_time_fails_its_step() {
    let h = harness().await;
    h.add("id: tpl\ninputs:\n  n: {type: integer, default: 3}\nsteps:\n- {id: a, agent: simulate, with: {output: {n: '{{ inputs.n }}', s: 'n={{ inputs.n }}'}}}\n- {id: b, agent: simulate, needs: [a], with: {output: '{{ steps.a.output.missing }}'}}\n").await;
    let d = h.run("tpl", json!({ "n": 7 })).await;
    assert_eq!(step_of(&d, "a").output, Some(json!({ "n": 7, "s": "n=7" })));
    let b = step_of(&d, "b");
    assert_eq!(
        (b.status, b.error_kind.as_deref()),
        (StepStatus::Failed, Some("template"))
    );
    assert!(
        b.error_message
            .as_deref()
            .unwrap_or("")
            .contains("with.output"),
        "{b:?}"
    );
    assert_eq!(d.run.status, RunStatus::Failed);
}

#[tokio::test]
async fn inputs_that_do_not_fit_are_refused_and_defaults_are_applied() {
    let h = harness().await;
    let err = h
        .engine
        .trigger(TriggerRequest {
            workflow_id: "hello".into(),
            inputs: serde_json::from_value(json!({ "who": 5, "extra": 1 })).expect("map"),
            trigger: "api".into(),
            ..Default::default()
        })
        .await
        .expect_err("invalid inputs");
    let EngineError::InvalidInputs(problems) = err else {
        panic!("{err:?}")
    };
    let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
    assert!(
        paths.contains(&"inputs.who") && paths.contains(&"inputs.extra"),
        "{paths:?}"
    );
    let d = h.run("hello", json!({})).await;
    assert_eq!(d.inputs, json!({ "who": "world" }));
    let missing = h
        .engine
        .trigger(TriggerRequest {
            workflow_id: "nope".into(),
            ..Default::default()
        })
        .await;
    assert!(matches!(
        missing,
        Err(EngineError::Store(engine::store::StoreError::NotFound(_)))
    ));
    let bad_version = h
        .engine
        .trigger(TriggerRequest {
            workflow_id: "hello".into(),
            version: Some(9),
            ..Default::default()
        })
        .await;
    assert!(matches!(
        bad_version,
        Err(EngineError::Store(
            engine::store::StoreError::VersionNotFound { .. }
        ))
    ));
}

#[tokio::test]
async fn cancelling_a_running_run_stops_its_agents_and_cancels_waiting_steps() {
    let h = harness().await;
    h.add("id: long\nsteps:\n- {id: wait, agent: delay, with: {duration: 1h}}\n- {id: after, agent: delay, needs: [wait], with: {duration: 1s}}\n").await;
    let id = h.start("long", json!({})).await;
    h.wait_for_step(&id, "wait", StepStatus::Running).await;
    h.engine.cancel(&id).await.expect("cancel");
    assert_eq!(
        h.engine.wait(&id).await.expect("wait"),
        RunStatus::Cancelled
    );
    let d = h.engine.store().run_detail(&id).await.expect("detail");
    assert_eq!(step_of(&d, "wait").status, StepStatus::Cancelled);
    assert_eq!(step_of(&d, "after").status, StepStatus::Cancelled);
    let again = h.engine.cancel(&id).await;
    assert!(
        matches!(
            again,
            Err(EngineError::AlreadyFinished {
                status: RunStatus::Cancelled,
                ..
            })
        ),
        "{again:?}"
    );
}

#[tokio::test]
async fn a_step_timeout_fails_the_step_and_a_run_timeout_times_the_run_out() {
    let h = harness().await;
    h.add("id: slowstep\nsteps:\n- {id: s, agent: delay, timeout: 50ms, with: {duration: 1h}}\n")
        .await;
    let d = h.run("slowstep", json!({})).await;
    assert_eq!(
        (d.run.status, step_of(&d, "s").error_kind.as_deref()),
        (RunStatus::Failed, Some("timeout"))
    );
    h.add("id: slowrun\ntimeout: 100ms\nsteps:\n- {id: s, agent: delay, with: {duration: 1h}}\n")
        .await;
    let d = h.run("slowrun", json!({})).await;
    assert_eq!(d.run.status, RunStatus::TimedOut);
    assert_eq!(step_of(&d, "s").status, StepStatus::Cancelled);
}

#[tokio::test]
async fn the_concurrency_limit_keeps_extra_runs_queued() {
    let h = harness().await;
    h.add("id: one-at-a-time\nconcurrency: 1\nsteps:\n- {id: s, agent: delay, with: {duration: 100ms}}\n").await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(h.start("one-at-a-time", json!({})).await);
    }
    let mut spans = Vec::new();
    for id in &ids {
        h.engine.wait(id).await.expect("wait");
        let d = h.engine.store().run_detail(id).await.expect("detail");
        spans.push((
            d.run.started_at.expect("started"),
            d.run.finished_at.expect("finished"),
        ));
    }
    spans.sort_unstable();
    for w in spans.windows(2) {
        assert!(w[0].1 <= w[1].0, "runs overlapped: {spans:?}");
    }
}

#[tokio::test]
async fn retry_from_failed_reuses_succeeded_outputs_and_reruns_the_failed_step() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let addr = serve(Router::new().route(
        "/flaky",
        get(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    (
                        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                        Json(json!({ "error": "down" })),
                    )
                } else {
                    (
                        axum::http::StatusCode::OK,
                        Json(json!({ "items": [1, 2, 3] })),
                    )
                }
            }
        }),
    ))
    .await;
    let h = harness().await;
    h.add(&format!(
        "id: fetcher\nsteps:\n- {{id: prep, agent: simulate, with: {{output: prepared}}}}\n- {{id: fetch, agent: http, needs: [prep], with: {{url: 'http://{addr}/flaky'}}}}\n- {{id: count, agent: transform, needs: [fetch], with: {{jq: '.steps.fetch.output.body.items | length'}}}}\n"
    ))
    .await;
    let first = h.run("fetcher", json!({})).await;
    assert_eq!(first.run.status, RunStatus::Failed);
    assert_eq!(
        step_of(&first, "fetch").error_kind.as_deref(),
        Some("http_status")
    );

    let retried = h
        .engine
        .retry(&first.run.id, RetryMode::FromFailed)
        .await
        .expect("retry");
    h.engine.wait(&retried.id).await.expect("wait");
    let d = h
        .engine
        .store()
        .run_detail(&retried.id)
        .await
        .expect("detail");
    assert_eq!(d.run.status, RunStatus::Succeeded);
    assert_eq!(d.run.parent_run_id.as_deref(), Some(first.run.id.as_str()));
    assert_eq!(d.run.trigger, "retry");
    let prep = step_of(&d, "prep");
    assert_eq!(
        (prep.attempts, prep.output.clone()),
        (0, Some(json!("prepared"))),
        "prep was reused, not re-run"
    );
    assert_eq!(step_of(&d, "count").output, Some(json!(3)));
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    // A succeeded run can be retried whole (see the API's tests), but not from its failures.
    let not_failed = h.engine.retry(&d.run.id, RetryMode::FromFailed).await;
    assert!(
        matches!(not_failed, Err(EngineError::Refused(_))),
        "a succeeded run has no failed step to retry from: {not_failed:?}"
    );
    let whole = h
        .engine
        .retry(&first.run.id, RetryMode::Whole)
        .await
        .expect("whole");
    h.engine.wait(&whole.id).await.expect("wait");
    let w = h
        .engine
        .store()
        .run_detail(&whole.id)
        .await
        .expect("detail");
    assert_eq!(
        step_of(&w, "prep").attempts,
        1,
        "a whole retry runs everything again"
    );
    let unknown = h
        .engine
        .retry(&first.run.id, RetryMode::FromStep("nope".into()))
        .await;
    assert!(matches!(unknown, Err(EngineError::UnknownStep(_))));
}

#[tokio::test]
async fn notify_posts_a_slack_style_message_and_secrets_never_reach_the_store() {
    let received: Arc<Mutex<Vec<Value>>> = Arc::default();
    let sink = received.clone();
    let addr = serve(Router::new().route(
        "/hook/T000/B000/s3cr3t-token",
        post(move |Json(body): Json<Value>| {
            sink.lock().expect("lock").push(body);
            async { "ok" }
        }),
    ))
    .await;
    let secret = format!("http://{addr}/hook/T000/B000/s3cr3t-token");
    let h = harness_with(EngineConfig {
        secrets: HashMap::from([("SLACK_WEBHOOK".to_string(), secret.clone())]),
        agents: local_agents(),
        ..Default::default()
    })
    .await;
    let d = h
        .run("notify-on-alert", json!({ "summary": "disk full" }))
        .await;
    assert_eq!(d.run.status, RunStatus::Succeeded, "{d:?}");
    assert_eq!(
        received.lock().expect("lock").as_slice(),
        [json!({ "text": "[firing] disk full" })]
    );
    let stored = serde_json::to_string(&d).expect("json");
    assert!(
        !stored.contains("s3cr3t-token"),
        "the secret leaked into the stored run: {stored}"
    );
    assert!(stored.contains("***"));
}

#[tokio::test]
async fn an_oversized_output_is_stored_truncated_with_a_marker() {
    let h = harness().await;
    h.add("id: big\nsteps:\n- {id: s, agent: simulate, with: {output_bytes: 2000000}}\n")
        .await;
    let d = h.run("big", json!({})).await;
    let out = step_of(&d, "s").output.clone().expect("output");
    assert_eq!(out["truncated"], true);
    assert!(out["bytes"].as_u64().expect("bytes") > 2_000_000);
}

#[tokio::test]
async fn an_http_step_parses_json_bodies_and_fails_on_an_unreachable_host() {
    let addr =
        serve(Router::new().route("/data", get(|| async { Json(json!({ "ok": true })) }))).await;
    let h = harness().await;
    h.add(&format!("id: h\nsteps:\n- {{id: ok, agent: http, with: {{url: 'http://{addr}/data'}}}}\n- {{id: dead, agent: http, with: {{url: 'http://127.0.0.1:1/x'}}}}\n")).await;
    let d = h.run("h", json!({})).await;
    let ok = step_of(&d, "ok").output.clone().expect("output");
    assert_eq!(
        (ok["status"].clone(), ok["body"].clone()),
        (json!(200), json!({ "ok": true }))
    );
    assert_eq!(
        step_of(&d, "dead").error_kind.as_deref(),
        Some("http_connect")
    );
}

/// Cloud metadata stays out of reach: a link-local address written in a URL (in any form), a
/// redirect there, and a notify or llm endpoint there are refused; ordinary redirects work.
#[tokio::test]
async fn agents_never_reach_link_local_addresses_and_http_keeps_to_allowed_hosts() {
    use axum::response::Redirect;
    let addr = serve(
        Router::new()
            .route("/ok", get(|| async { Json(json!({ "ok": true })) }))
            .route("/hop", get(|| async { Redirect::temporary("/ok") }))
            .route(
                "/meta",
                get(|| async { Redirect::temporary("http://169.254.169.254/latest/meta-data/") }),
            ),
    )
    .await;
    let h = harness().await;
    h.add(&format!(
        "id: egress
steps:
         - {{id: direct, agent: http, with: {{url: 'http://169.254.169.254/latest/meta-data/'}}}}
         - {{id: decimal, agent: http, with: {{url: 'http://2852039166/'}}}}
         - {{id: ipv6, agent: http, with: {{url: 'http://[fe80::1]/'}}}}
         - {{id: redirected, agent: http, with: {{url: 'http://{addr}/meta'}}}}
         - {{id: hop, agent: http, with: {{url: 'http://{addr}/hop'}}}}
         - {{id: hook, agent: notify, with: {{webhook_url: 'http://169.254.169.254/hook', text: hi}}}}
"
    ))
    .await;
    let d = h.run("egress", json!({})).await;
    for id in ["direct", "decimal", "ipv6", "hook"] {
        let step = step_of(&d, id);
        assert_eq!(
            step.error_kind.as_deref(),
            Some("http_refused"),
            "{id}: {step:?}"
        );
        assert!(
            step.error_message
                .as_deref()
                .unwrap_or_default()
                .contains("link-local"),
            "{id}: {step:?}"
        );
    }
    let redirected = step_of(&d, "redirected");
    assert_eq!(redirected.status, StepStatus::Failed);
    assert!(
        redirected
            .error_message
            .as_deref()
            .unwrap_or_default()
            .contains("redirect refused"),
        "{redirected:?}"
    );
    assert_eq!(
        step_of(&d, "hop")
            .output
            .as_ref()
            .map(|o| o["body"].clone()),
        Some(json!({ "ok": true }))
    );

    // With an allow-list, only those hosts.
    let listed = harness_with(EngineConfig {
        agents: engine::agents::AgentSettings {
            egress: engine::agents::egress::Policy {
                allowed_hosts: Some(vec!["localhost".into()]),
                allow_private: true,
            },
            ..local_agents()
        },
        ..EngineConfig::default()
    })
    .await;
    let port = addr.port();
    listed
        .add(&format!(
            "id: listed
steps:
             - {{id: named, agent: http, with: {{url: 'http://localhost:{port}/ok'}}}}
             - {{id: other, agent: http, with: {{url: 'http://127.0.0.1:{port}/ok'}}}}
"
        ))
        .await;
    let d = listed.run("listed", json!({})).await;
    assert_eq!(step_of(&d, "named").status, StepStatus::Succeeded, "{d:?}");
    let other = step_of(&d, "other");
    assert_eq!(other.error_kind.as_deref(), Some("http_refused"));
    assert!(other
        .error_message
        .as_deref()
        .unwrap_or_default()
        .contains("not among the allowed hosts"));
}

/// A process that dies mid-run: its runtime is dropped with the run half done (as a kill
/// would leave it), and a new engine on the same database finishes the run without running
/// the finished step again.
#[test]
fn a_run_interrupted_by_a_crash_resumes_without_repeating_finished_steps() {
    let yaml = "id: crashy\nsteps:\n- {id: first, agent: simulate, with: {output: 1}}\n- {id: second, agent: delay, needs: [first], with: {duration: 400ms}}\n- {id: third, agent: transform, needs: [second], with: {jq: '.steps.first.output + 1'}}\n";
    let killed = kill_midway(yaml, json!({}), async |h, id| {
        h.wait_for_step(id, "second", StepStatus::Running).await
    });
    killed.restart(async |engine| {
        let run_id = &killed.run_id;
        assert_eq!(
            engine.wait(run_id).await.expect("wait"),
            RunStatus::Succeeded
        );
        let d = engine.store().run_detail(run_id).await.expect("detail");
        assert_eq!(
            step_of(&d, "first").attempts,
            1,
            "a finished step is never executed again"
        );
        assert_eq!(
            step_of(&d, "second").attempts,
            2,
            "the interrupted step ran as a new attempt"
        );
        assert_eq!(step_of(&d, "third").output, Some(json!(2)));
    });
}

#[tokio::test]
async fn llm_calls_an_openai_compatible_endpoint_and_records_tokens_and_cost() {
    type Seen = Vec<(Option<String>, Value)>;
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let sink = seen.clone();
    let addr = serve(Router::new().route(
        "/v1/chat/completions",
        post(move |headers: axum::http::HeaderMap, Json(body): Json<Value>| {
            let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string);
            sink.lock().expect("lock").push((auth, body.clone()));
            async move {
                if body["messages"][1]["content"] == "garbage please" {
                    return "<html>not json</html>".to_string();
                }
                json!({
                    "id": "chatcmpl-1", "object": "chat.completion", "model": body["model"],
                    "choices": [{ "index": 0, "message": { "role": "assistant", "content": "Summary: fine." }, "finish_reason": "stop" }],
                    "usage": { "prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500 }
                })
                .to_string()
            }
        }),
    ))
    .await;
    let prices = engine::agents::llm::parse_prices("tiny-model=0.5/2.0").expect("prices");
    let settings = engine::agents::AgentSettings {
        llm_prices: prices,
        ..local_agents()
    };
    let h = harness_with(EngineConfig {
        secrets: HashMap::from([("OPENAI_KEY".into(), "sk-test-123".into())]),
        agents: settings,
        ..Default::default()
    })
    .await;
    h.add(&format!("id: ask\ninputs:\n  q: {{type: string}}\nsteps:\n- {{id: chat, agent: llm, with: {{base_url: 'http://{addr}/v1', model: tiny-model, api_key: '{{{{ secrets.OPENAI_KEY }}}}', system: Be brief., prompt: '{{{{ inputs.q }}}}'}}}}\n")).await;
    let d = h.run("ask", json!({ "q": "How are we?" })).await;
    assert_eq!(d.run.status, RunStatus::Succeeded, "{d:?}");
    let out = step_of(&d, "chat").output.clone().expect("output");
    assert_eq!(out["content"], "Summary: fine.");
    assert_eq!(
        out["usage"],
        json!({ "input_tokens": 1200, "output_tokens": 300 })
    );
    assert!(
        (out["cost_usd"].as_f64().expect("cost") - (1200.0 * 0.5 + 300.0 * 2.0) / 1e6).abs()
            < 1e-12
    );
    let (auth, body) = seen.lock().expect("lock")[0].clone();
    assert_eq!(auth.as_deref(), Some("Bearer sk-test-123"));
    assert_eq!(
        body["messages"],
        json!([{ "role": "system", "content": "Be brief." }, { "role": "user", "content": "How are we?" }])
    );
    assert!(
        !serde_json::to_string(&d)
            .expect("json")
            .contains("sk-test-123"),
        "the key never reaches the store"
    );

    let garbage = h.run("ask", json!({ "q": "garbage please" })).await;
    assert_eq!(
        step_of(&garbage, "chat").error_kind.as_deref(),
        Some("llm_response")
    );
}

#[tokio::test]
async fn shell_is_off_by_default_and_when_enabled_runs_an_argv_with_an_allow_listed_env() {
    let yaml = "id: sh\nsteps:\n- {id: echo, agent: shell, with: {program: /bin/sh, args: ['-c', 'echo \"$GREETING $HOME_LEAK\"; echo err >&2'], env: {GREETING: hi}}}\n";
    let off = harness().await;
    off.add(yaml).await;
    let d = off.run("sh", json!({})).await;
    assert_eq!(
        step_of(&d, "echo").error_kind.as_deref(),
        Some("agent_disabled")
    );

    std::env::set_var("HOME_LEAK", "server-secret");
    let settings = engine::agents::AgentSettings {
        shell_enabled: true,
        ..local_agents()
    };
    let on = harness_with(EngineConfig {
        agents: settings,
        ..Default::default()
    })
    .await;
    on.add(yaml).await;
    on.add("id: sleepy\nsteps:\n- {id: s, agent: shell, timeout: 100ms, with: {program: /bin/sleep, args: ['30']}}\n- {id: bad, agent: shell, with: {program: /bin/sh, args: ['-c', 'exit 3']}}\n").await;
    let d = on.run("sh", json!({})).await;
    let out = step_of(&d, "echo").output.clone().expect("output");
    assert_eq!(
        out["stdout"], "hi \n",
        "the server's other variables are not inherited"
    );
    assert_eq!(
        (out["stderr"].clone(), out["exit_code"].clone()),
        (json!("err\n"), json!(0))
    );
    let d = on.run("sleepy", json!({})).await;
    assert_eq!(step_of(&d, "s").error_kind.as_deref(), Some("timeout"));
    assert_eq!(
        step_of(&d, "bad").error_kind.as_deref(),
        Some("exit_status")
    );
}

/// The run queries (batched state changes, run detail, list filters, cancel) on PostgreSQL.
#[tokio::test]
async fn on_postgres_runs_succeed_fail_retry_cancel_and_list_like_on_sqlite() {
    let h = pg_harness().await;
    let ok = h.run("hello", json!({ "who": "PG" })).await;
    assert_eq!(ok.run.status, RunStatus::Succeeded, "{ok:?}");
    assert_eq!(
        step_of(&ok, "summary").output,
        Some(json!({ "message": "Hello, PG!", "at": "done" }))
    );

    let failed = h.run("always-fails", json!({})).await;
    assert_eq!(
        (failed.run.status, step_of(&failed, "flaky_call").attempts),
        (RunStatus::Failed, 3)
    );
    assert_eq!(step_of(&failed, "publish").status, StepStatus::Skipped);
    let retried = h
        .engine
        .retry(&failed.run.id, RetryMode::FromFailed)
        .await
        .expect("retry");
    h.engine.wait(&retried.id).await.expect("wait");
    let r = h
        .engine
        .store()
        .run_detail(&retried.id)
        .await
        .expect("detail");
    assert_eq!(
        step_of(&r, "prepare").attempts,
        0,
        "reused on PostgreSQL too"
    );

    h.add("id: long\nsteps:\n- {id: wait, agent: delay, with: {duration: 1h}}\n")
        .await;
    let id = h.start("long", json!({})).await;
    h.wait_for_step(&id, "wait", StepStatus::Running).await;
    h.engine.cancel(&id).await.expect("cancel");
    assert_eq!(
        h.engine.wait(&id).await.expect("wait"),
        RunStatus::Cancelled
    );

    let filter = engine::store::RunFilter {
        status: Some(RunStatus::Failed),
        limit: 10,
        ..Default::default()
    };
    let listed: Vec<String> = h
        .engine
        .store()
        .list_runs(&filter)
        .await
        .expect("list")
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(
        r.run.status,
        RunStatus::Failed,
        "flaky_call fails every time, retried or not"
    );
    assert!(
        listed.contains(&failed.run.id) && listed.contains(&r.run.id),
        "{listed:?}"
    );
    let all = engine::store::RunFilter {
        limit: 2,
        ..Default::default()
    };
    let page = h.engine.store().list_runs(&all).await.expect("page");
    assert_eq!(page.len(), 2);
    assert!(page[0].id > page[1].id, "newest first");
}

/// A lone process on PostgreSQL creates runs already claimed by itself (no wake-up, no claim
/// query); once another worker joins, new runs go through claims, so every worker gets some.
#[tokio::test]
async fn on_postgres_a_lone_process_claims_its_new_runs_and_shares_them_once_another_joins() {
    use engine::store::cluster::RUNS_CHANNEL;
    let h = pg_harness().await;
    let store = h.engine.store().clone();
    let mut listener = store.listen().await.expect("listen");
    // Did a run's creation send a wake-up? Notifications arrive in commit order, so one sent
    // for the creation comes before this marker.
    async fn woken(store: &Store, listener: &mut sqlx::postgres::PgListener) -> bool {
        store.notify(RUNS_CHANNEL, "marker").await.expect("notify");
        loop {
            let n = listener.recv().await.expect("notification");
            if n.channel() == RUNS_CHANNEL {
                return n.payload() != "marker";
            }
        }
    }
    let alone = h.run("hello", json!({ "who": "alone" })).await;
    assert_eq!(alone.run.status, RunStatus::Succeeded);
    assert!(
        !woken(&store, &mut listener).await,
        "a lone process claims its runs as it creates them"
    );

    store
        .register_worker("another", "another:1", "worker")
        .await
        .expect("join");
    // The engine hears of the new worker by notification: a few runs later at most.
    let mut shared = false;
    for i in 0..100 {
        let d = h.run("hello", json!({ "who": format!("run {i}") })).await;
        assert_eq!(d.run.status, RunStatus::Succeeded, "claimed and run: {d:?}");
        if woken(&store, &mut listener).await {
            shared = true;
            break;
        }
    }
    assert!(
        shared,
        "new runs were never left for the other worker to claim"
    );
}

/// PostgreSQL drops the engine's connections several times mid-run (as on a restart or a
/// failover): the journal backs off, reconnects and the run completes with every step once.
#[tokio::test]
async fn on_postgres_a_run_survives_its_connections_being_killed() {
    let h = pg_harness().await;
    h.add("id: steady\nsteps:\n- {id: a, agent: delay, with: {duration: 150ms}}\n- {id: b, agent: delay, needs: [a], with: {duration: 150ms}}\n- {id: c, agent: delay, needs: [b], with: {duration: 150ms}}\n- {id: d, agent: delay, needs: [c], with: {duration: 150ms}}\n").await;
    let id = h.start("steady", json!({})).await;
    let waiter = {
        let engine = h.engine.clone();
        let id = id.clone();
        tokio::spawn(async move { engine.wait(&id).await })
    };
    let admin_url = engine::store::scratch::admin_url();
    let admin = Store::connect(&admin_url).await.expect("admin");
    let db = h.pg_db.clone().expect("a PostgreSQL harness");
    for _ in 0..4 {
        tokio::time::sleep(std::time::Duration::from_millis(120)).await;
        engine::store::scratch::execute(
            &admin,
            &format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}'"
            ),
        )
        .await
        .expect("terminate");
    }
    admin.close().await;
    assert_eq!(
        waiter.await.expect("join").expect("wait"),
        RunStatus::Succeeded
    );
    let d = h.engine.store().run_detail(&id).await.expect("detail");
    assert!(
        d.steps
            .iter()
            .all(|s| s.status == StepStatus::Succeeded && s.attempts == 1),
        "{d:?}"
    );
}

/// A run resumed after a restart keeps its deadline: here it started 10 s before the process
/// stopped and has a 5 s limit, so on recovery it times out instead of running its step.
#[tokio::test]
async fn a_resumed_run_keeps_the_deadline_it_started_with() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::connect(&format!("sqlite://{}", dir.path().join("d.db").display()))
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    let yaml = "id: limited\ntimeout: 5s\nsteps:\n- {id: only, agent: simulate}\n";
    store
        .create_workflow(&Workflow::parse(yaml).expect("valid"), yaml)
        .await
        .expect("create");
    let started = engine::store::now_ms() - 10_000;
    let run = engine::store::NewRun {
        id: "01900000-0000-7000-8000-000000000001".into(),
        workflow_id: "limited".into(),
        workflow_version: 1,
        trigger: "api".into(),
        actor: None,
        inputs: json!({}),
        parent_run_id: None,
        traceparent: None,
        created_at: started,
        step_ids: vec!["only".into()],
        reused: vec![],
        concurrency: None,
        owner: None,
        caller: None,
        labels: Default::default(),
    };
    use engine::store::Op;
    store
        .apply(&[
            Op::CreateRun(Box::new(run)),
            Op::StartRun {
                run_id: "01900000-0000-7000-8000-000000000001".into(),
                at: started,
                trace: None,
            },
        ])
        .await
        .expect("a run left running by a stopped process");
    let engine = Engine::start(
        store,
        EngineConfig {
            agents: local_agents(),
            ..EngineConfig::default()
        },
    )
    .await
    .expect("engine");
    assert_eq!(
        engine
            .wait("01900000-0000-7000-8000-000000000001")
            .await
            .expect("wait"),
        RunStatus::TimedOut
    );
    let d = engine
        .store()
        .run_detail("01900000-0000-7000-8000-000000000001")
        .await
        .expect("detail");
    assert_eq!(step_of(&d, "only").attempts, 0, "its step never started");
}

/// A bulk action over more runs than `MAX_BULK` is refused whole, saying to narrow the filter;
/// narrowed below it, the same selection is taken, newest first. Both stores.
async fn a_bulk_action_over_too_many_runs_is_refused(h: &Harness) {
    use engine::executor::{BulkAction, MAX_BULK};
    h.add("id: many\nsteps:\n- {id: a, agent: transform, with: {jq: '1'}}\n")
        .await;
    let mut ids = Vec::new();
    for _ in 0..=MAX_BULK {
        ids.push(h.start("many", json!({})).await);
    }
    for id in &ids {
        h.engine.wait(id).await.expect("wait");
    }
    let all = engine::store::RunFilter {
        workflow_id: Some("many".into()),
        ..Default::default()
    };
    let action = BulkAction::Retry(RetryMode::Whole);
    match h.engine.bulk_targets(&all, &action).await {
        Err(EngineError::Refused(why)) => assert!(why.contains("narrow"), "{why}"),
        other => panic!(
            "more than {MAX_BULK} runs selected: {:?}",
            other.map(|r| r.len())
        ),
    }
    assert!(
        matches!(
            h.engine.bulk(&all, &action, None).await,
            Err(EngineError::Refused(_))
        ),
        "and nothing is retried"
    );
    let retries = engine::store::RunFilter {
        trigger: Some("retry".into()),
        limit: 10,
        ..Default::default()
    };
    let retries = h.engine.store().list_runs(&retries).await.expect("list");
    assert!(retries.is_empty(), "nothing is retried: {retries:?}");
    // Narrowed by time to the newest 400 or so: taken whole, newest first.
    let newest = engine::store::RunFilter {
        limit: 500,
        ..all.clone()
    };
    let newest = h.engine.store().list_runs(&newest).await.expect("list");
    let narrowed = engine::store::RunFilter {
        since: Some(newest[399].created_at),
        ..all
    };
    let targets = h
        .engine
        .bulk_targets(&narrowed, &action)
        .await
        .expect("within the limit");
    assert!(
        (400..=MAX_BULK).contains(&targets.len()),
        "{}",
        targets.len()
    );
    assert!(
        targets.windows(2).all(|w| w[0].id > w[1].id),
        "newest first"
    );
}

#[tokio::test]
async fn a_bulk_action_over_too_many_runs_is_refused_on_sqlite() {
    a_bulk_action_over_too_many_runs_is_refused(&harness().await).await;
}

#[tokio::test]
async fn a_bulk_action_over_too_many_runs_is_refused_on_postgres() {
    a_bulk_action_over_too_many_runs_is_refused(&pg_harness().await).await;
}
