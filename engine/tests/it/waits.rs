//! Runs that wait without a worker: events, approvals, long delays, pause and resume; on
//! both stores, and across a restart.

use std::time::Duration;

use engine::access::Role;
use engine::executor::{Decision, Engine, EngineConfig, EngineError};
use engine::records::{RunStatus, StepStatus, WaitKind};
use engine::store::Store;
use serde_json::{json, Map, Value};

use crate::harness::{harness_with, local_agents, pg_harness, step_of, Harness};

const ORDER: &str = "id: order\ninputs:\n  id: {type: string}\nsteps:\n- {id: placed, agent: transform, with: {jq: '.inputs.id'}}\n- {id: paid, agent: wait, needs: [placed], with: {event: 'order-{{ inputs.id }}', timeout: 1h}}\n- {id: shipped, agent: transform, needs: [paid], with: {jq: '.steps.paid.output.amount * 2'}}\n";

const DEPLOY: &str = "id: deploy\nsteps:\n- id: ok\n  agent: approval\n  with:\n    prompt: Ship it?\n    role: operator\n    fields: {ticket: {type: string}, note: {type: string, default: none}}\n- {id: ship, agent: transform, needs: [ok], with: {jq: '.steps.ok.output.fields.ticket'}}\n";

async fn sqlite() -> Harness {
    harness_with(EngineConfig {
        agents: local_agents(),
        durable_delay: Duration::from_millis(200),
        ..EngineConfig::default()
    })
    .await
}

/// Waits until the run is parked with this status (read from the store: a parked run has no
/// driver to send events).
async fn until_status(engine: &Engine, run_id: &str, want: RunStatus) {
    for _ in 0..600 {
        if engine.store().run_status(run_id).await.expect("status") == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let d = engine.store().run_detail(run_id).await.expect("detail");
    panic!("run never became {want}: {d:#?}");
}

async fn finished(engine: &Engine, run_id: &str) -> engine::records::RunDetail {
    engine.wait(run_id).await.expect("wait");
    engine.store().run_detail(run_id).await.expect("detail")
}

fn decision(approved: bool, comment: &str, fields: Value) -> Decision {
    let fields: Map<String, Value> = serde_json::from_value(fields).expect("object");
    Decision {
        approved,
        comment: Some(comment.into()),
        fields,
    }
}

async fn an_event_wakes_the_parked_run(h: Harness) {
    h.add(ORDER).await;
    let id = h.start("order", json!({"id": "42"})).await;
    until_status(&h.engine, &id, RunStatus::Waiting).await;
    let d = h.engine.store().run_detail(&id).await.expect("detail");
    assert_eq!(d.waits.len(), 1, "{d:?}");
    assert_eq!(d.waits[0].kind, WaitKind::Event);
    assert_eq!(d.waits[0].key.as_deref(), Some("order-42"));
    assert!(d.waits[0]
        .until
        .is_some_and(|u| u - d.waits[0].since == 3_600_000));
    assert_eq!(step_of(&d, "placed").status, StepStatus::Succeeded);
    assert_eq!(step_of(&d, "paid").status, StepStatus::Running);
    // Another order's event wakes nobody.
    let other = h
        .engine
        .post_event("order-7", json!({"amount": 1}))
        .await
        .expect("post");
    assert_eq!(other.resolved, 0);
    let posted = h
        .engine
        .post_event("order-42", json!({"amount": 21}))
        .await
        .expect("post");
    assert_eq!(posted.resolved, 1);
    let d = finished(&h.engine, &id).await;
    assert_eq!(d.run.status, RunStatus::Succeeded, "{d:?}");
    assert_eq!(step_of(&d, "paid").output, Some(json!({"amount": 21})));
    assert_eq!(step_of(&d, "shipped").output, Some(json!(42)));
    assert!(
        d.waits.is_empty(),
        "a finished run keeps no waits: {:?}",
        d.waits
    );
}

#[tokio::test]
async fn an_event_wakes_the_parked_run_on_sqlite() {
    an_event_wakes_the_parked_run(sqlite().await).await;
}

#[tokio::test]
async fn an_event_wakes_the_parked_run_on_postgres() {
    an_event_wakes_the_parked_run(pg_harness().await).await;
}

/// An event that arrives before the wait starts is kept for the keep window; none past it.
#[tokio::test]
async fn an_event_that_came_first_is_kept_for_its_window() {
    let h = sqlite().await;
    h.add(ORDER).await;
    h.engine
        .post_event("order-1", json!({"amount": 5}))
        .await
        .expect("post");
    let id = h.start("order", json!({"id": "1"})).await;
    let d = finished(&h.engine, &id).await;
    assert_eq!(d.run.status, RunStatus::Succeeded, "{d:?}");
    assert_eq!(step_of(&d, "shipped").output, Some(json!(10)));

    let h = harness_with(EngineConfig {
        agents: local_agents(),
        event_keep: Duration::ZERO,
        ..EngineConfig::default()
    })
    .await;
    h.add(ORDER).await;
    h.engine
        .post_event("order-1", json!({"amount": 5}))
        .await
        .expect("post");
    let id = h.start("order", json!({"id": "1"})).await;
    until_status(&h.engine, &id, RunStatus::Waiting).await;
}

async fn an_approval_takes_its_role_and_fields(h: Harness) {
    h.add(DEPLOY).await;
    let id = h.start("deploy", json!({})).await;
    until_status(&h.engine, &id, RunStatus::Waiting).await;
    let d = h.engine.store().run_detail(&id).await.expect("detail");
    assert_eq!(d.waits[0].kind, WaitKind::Approval);
    assert_eq!(d.waits[0].detail["prompt"], "Ship it?");

    let e = h
        .engine
        .decide(
            &id,
            "ok",
            decision(true, "", json!({"ticket": "T-1"})),
            "vic",
            Role::Viewer,
        )
        .await
        .expect_err("a viewer may not decide");
    assert!(matches!(e, EngineError::Forbidden(_)), "{e:?}");
    let e = h
        .engine
        .decide(
            &id,
            "ok",
            decision(true, "", json!({})),
            "olga",
            Role::Operator,
        )
        .await
        .expect_err("ticket is required");
    assert!(
        matches!(e, EngineError::InvalidInputs(ref p) if p[0].path == "fields.ticket"),
        "{e:?}"
    );
    let e = h
        .engine
        .decide(
            &id,
            "ship",
            decision(true, "", json!({"ticket": "T-1"})),
            "olga",
            Role::Operator,
        )
        .await
        .expect_err("not an approval");
    assert!(matches!(e, EngineError::Conflict(_)), "{e:?}");
    // Still parked, nothing recorded by the refusals.
    assert_eq!(
        h.engine.store().run_status(&id).await.expect("status"),
        RunStatus::Waiting
    );

    let out = h
        .engine
        .decide(
            &id,
            "ok",
            decision(true, "looks good", json!({"ticket": "T-1"})),
            "olga",
            Role::Operator,
        )
        .await
        .expect("decide");
    assert_eq!(out["by"], "olga");
    let d = finished(&h.engine, &id).await;
    assert_eq!(d.run.status, RunStatus::Succeeded, "{d:?}");
    let ok = step_of(&d, "ok").output.clone().expect("output");
    assert_eq!(ok["approved"], true);
    assert_eq!(ok["by"], "olga");
    assert_eq!(ok["comment"], "looks good");
    assert_eq!(ok["fields"], json!({"ticket": "T-1", "note": "none"}));
    assert!(ok["at"]
        .as_i64()
        .is_some_and(|at| at >= d.run.started_at.unwrap_or(0)));
    assert_eq!(step_of(&d, "ship").output, Some(json!("T-1")));
    let e = h
        .engine
        .decide(
            &id,
            "ok",
            decision(false, "", json!({"ticket": "T-1"})),
            "olga",
            Role::Operator,
        )
        .await
        .expect_err("decided already");
    assert!(matches!(e, EngineError::Conflict(_)), "{e:?}");
    // Its latency is in the histogram.
    let metrics = h.engine.metrics().encode();
    assert!(
        metrics.contains(
            "workflow_approval_decision_seconds_count{workflow=\"deploy\",decision=\"approved\"} 1"
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn an_approval_takes_its_role_and_fields_on_sqlite() {
    an_approval_takes_its_role_and_fields(sqlite().await).await;
}

#[tokio::test]
async fn an_approval_takes_its_role_and_fields_on_postgres() {
    an_approval_takes_its_role_and_fields(pg_harness().await).await;
}

/// A rejection fails the step (no retry) and skips what needs it; the decision stays its output.
#[tokio::test]
async fn a_rejection_fails_the_step_and_keeps_the_decision() {
    let h = sqlite().await;
    h.add(&DEPLOY.replace(
        "  agent: approval\n",
        "  agent: approval\n  retry: {max_attempts: 3}\n",
    ))
    .await;
    let id = h.start("deploy", json!({})).await;
    until_status(&h.engine, &id, RunStatus::Waiting).await;
    h.engine
        .decide(
            &id,
            "ok",
            decision(false, "not on a Friday", json!({"ticket": "T-2"})),
            "olga",
            Role::Admin,
        )
        .await
        .expect("decide");
    let d = finished(&h.engine, &id).await;
    assert_eq!(d.run.status, RunStatus::Failed);
    let ok = step_of(&d, "ok");
    assert_eq!(ok.status, StepStatus::Failed);
    assert_eq!(ok.attempts, 1, "a rejection is not retried");
    assert_eq!(ok.error_kind.as_deref(), Some("rejected"));
    assert_eq!(
        ok.error_message.as_deref(),
        Some("rejected by olga: not on a Friday")
    );
    assert_eq!(
        ok.output.as_ref().map(|o| o["approved"].clone()),
        Some(json!(false))
    );
    assert_eq!(step_of(&d, "ship").status, StepStatus::Skipped);
}

/// Due times: an event's timeout fails the step; an approval's applies its `on_timeout`.
#[tokio::test]
async fn waits_end_at_their_timeouts() {
    let h = sqlite().await;
    h.add("id: late\nsteps:\n- {id: w, agent: wait, with: {event: never, timeout: 300ms}}\n")
        .await;
    h.add("id: lenient\nsteps:\n- {id: a, agent: approval, with: {prompt: Go?, timeout: 300ms, on_timeout: approve}}\n").await;
    let late = h.start("late", json!({})).await;
    let lenient = h.start("lenient", json!({})).await;
    let d = finished(&h.engine, &late).await;
    assert_eq!(d.run.status, RunStatus::Failed);
    assert_eq!(step_of(&d, "w").error_kind.as_deref(), Some("timeout"));
    assert!(step_of(&d, "w")
        .error_message
        .as_deref()
        .is_some_and(|m| m.contains("no event \"never\"")));
    let d = finished(&h.engine, &lenient).await;
    assert_eq!(d.run.status, RunStatus::Succeeded, "{d:?}");
    let a = step_of(&d, "a").output.clone().expect("output");
    assert_eq!(
        (a["approved"].clone(), a["timed_out"].clone()),
        (json!(true), json!(true))
    );
    let waited =
        step_of(&d, "a").finished_at.unwrap_or(0) - step_of(&d, "a").started_at.unwrap_or(0);
    assert!(
        waited >= 300,
        "decided at its timeout, not before: {waited} ms"
    );
}

/// A long delay parks the run: the one step slot is free for another run meanwhile.
#[tokio::test]
async fn a_long_delay_holds_no_slot() {
    let h = harness_with(EngineConfig {
        agents: local_agents(),
        durable_delay: Duration::from_millis(200),
        max_parallel_steps: 1,
        ..EngineConfig::default()
    })
    .await;
    h.add("id: nap\nsteps:\n- {id: d, agent: delay, with: {duration: 600ms}}\n- {id: after, agent: transform, needs: [d], with: {jq: '1'}}\n").await;
    h.add("id: quick\nsteps:\n- {id: q, agent: transform, with: {jq: '2'}}\n")
        .await;
    let nap = h.start("nap", json!({})).await;
    until_status(&h.engine, &nap, RunStatus::Waiting).await;
    let quick = h.run("quick", json!({})).await;
    assert_eq!(quick.run.status, RunStatus::Succeeded);
    assert_eq!(
        h.engine.store().run_status(&nap).await.expect("status"),
        RunStatus::Waiting,
        "the quick run ran while the delay waited"
    );
    let d = finished(&h.engine, &nap).await;
    assert_eq!(d.run.status, RunStatus::Succeeded, "{d:?}");
    let waited = step_of(&d, "d")
        .output
        .as_ref()
        .and_then(|o| o["waited_ms"].as_i64())
        .unwrap_or(0);
    assert!(waited >= 600, "{waited}");
}

/// Cancelling a parked run ends it (no driver held it) and removes its waits.
#[tokio::test]
async fn a_parked_run_can_be_cancelled() {
    let h = sqlite().await;
    h.add(DEPLOY).await;
    let id = h.start("deploy", json!({})).await;
    until_status(&h.engine, &id, RunStatus::Waiting).await;
    h.engine.cancel(&id).await.expect("cancel");
    let d = finished(&h.engine, &id).await;
    assert_eq!(d.run.status, RunStatus::Cancelled);
    assert_eq!(step_of(&d, "ok").status, StepStatus::Cancelled);
    assert!(d.waits.is_empty());
    let e = h
        .engine
        .decide(
            &id,
            "ok",
            decision(true, "", json!({"ticket": "x"})),
            "olga",
            Role::Admin,
        )
        .await
        .expect_err("nothing to decide");
    assert!(matches!(e, EngineError::Conflict(_)), "{e:?}");
}

/// Pause: the attempt in flight finishes, the next does not start; resume goes on.
async fn pause_and_resume(h: Harness) {
    h.add("id: two\nsteps:\n- {id: a, agent: simulate, with: {latency: 400ms, distribution: fixed}}\n- {id: b, agent: transform, needs: [a], with: {jq: '3'}}\n").await;
    let id = h.start("two", json!({})).await;
    h.wait_for_step(&id, "a", StepStatus::Running).await;
    h.engine.pause_run(&id).await.expect("pause");
    until_status(&h.engine, &id, RunStatus::Paused).await;
    let d = h.engine.store().run_detail(&id).await.expect("detail");
    assert_eq!(
        step_of(&d, "a").status,
        StepStatus::Succeeded,
        "the attempt in flight finished"
    );
    assert_eq!(
        step_of(&d, "b").status,
        StepStatus::Pending,
        "no new attempt while paused"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        h.engine.store().run_status(&id).await.expect("status"),
        RunStatus::Paused
    );
    h.engine.expect_workflow_series().await.expect("series");
    let metrics = h.engine.metrics().encode();
    assert!(
        metrics.contains("workflow_runs_waiting{workflow=\"two\",reason=\"paused\"} 1"),
        "{metrics}"
    );
    h.engine.resume_run(&id).await.expect("resume");
    let d = finished(&h.engine, &id).await;
    assert_eq!(d.run.status, RunStatus::Succeeded, "{d:?}");
    assert_eq!(step_of(&d, "b").output, Some(json!(3)));
    h.engine.expect_workflow_series().await.expect("series");
    let metrics = h.engine.metrics().encode();
    assert!(
        metrics.contains("workflow_runs_waiting{workflow=\"two\",reason=\"paused\"} 0"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_run_pauses_and_resumes_on_sqlite() {
    pause_and_resume(sqlite().await).await;
}

#[tokio::test]
async fn a_run_pauses_and_resumes_on_postgres() {
    pause_and_resume(pg_harness().await).await;
}

const PATIENT: &str = "id: patient\nsteps:\n- {id: ok, agent: approval, with: {prompt: Go?}}\n- {id: ev, agent: wait, with: {event: go}}\n- {id: nap, agent: delay, with: {duration: 1h}}\n- {id: end, agent: transform, needs: [ok, ev], with: {jq: '.steps.ev.output'}}\n";

/// What survives a restart: a run waiting on an approval, an event and a one-hour delay.
/// After it, the approval and the event are taken and recorded, and the delay still waits
/// for its hour; cancelling ends it.
async fn check_after_restart(engine: &Engine, id: &str, due_before: i64) {
    assert_eq!(
        engine.store().run_status(id).await.expect("status"),
        RunStatus::Waiting
    );
    let d = engine.store().run_detail(id).await.expect("detail");
    let kinds: Vec<WaitKind> = d.waits.iter().map(|w| w.kind).collect();
    assert_eq!(kinds.len(), 3, "{kinds:?}");
    let nap = d.waits.iter().find(|w| w.step_id == "nap").expect("nap");
    assert_eq!(nap.until, Some(due_before), "the delay keeps its due time");
    engine
        .decide(
            id,
            "ok",
            Decision {
                approved: true,
                ..Default::default()
            },
            "olga",
            Role::Operator,
        )
        .await
        .expect("decide");
    engine.post_event("go", json!("green")).await.expect("post");
    for _ in 0..400 {
        let d = engine.store().run_detail(id).await.expect("detail");
        if step_of(&d, "end").status == StepStatus::Succeeded {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    until_status(engine, id, RunStatus::Waiting).await;
    let d = engine.store().run_detail(id).await.expect("detail");
    assert_eq!(step_of(&d, "end").output, Some(json!("green")), "{d:?}");
    assert_eq!(step_of(&d, "ok").attempts, 1);
    assert_eq!(d.waits.len(), 1, "only the delay waits: {:?}", d.waits);
    engine.cancel(id).await.expect("cancel");
    let d = finished(engine, id).await;
    assert_eq!(d.run.status, RunStatus::Cancelled);
}

#[test]
fn waits_survive_a_restart_on_sqlite() {
    let killed = crate::harness::kill_midway(PATIENT, json!({}), async |h: &Harness, id: &str| {
        until_status(&h.engine, id, RunStatus::Waiting).await;
        let d = h.engine.store().run_detail(id).await.expect("detail");
        d.waits
            .iter()
            .find(|w| w.step_id == "nap")
            .and_then(|w| w.until)
            .expect("due")
    });
    let due = killed.seen;
    killed.restart(async |engine: Engine| check_after_restart(&engine, &killed.run_id, due).await);
}

#[tokio::test]
async fn waits_survive_a_restart_on_postgres() {
    let h = pg_harness().await;
    h.add(PATIENT).await;
    let id = h.start("patient", json!({})).await;
    until_status(&h.engine, &id, RunStatus::Waiting).await;
    let d = h.engine.store().run_detail(&id).await.expect("detail");
    let due = d
        .waits
        .iter()
        .find(|w| w.step_id == "nap")
        .and_then(|w| w.until)
        .expect("due");
    h.engine.shutdown(Duration::from_secs(1)).await;
    let url = engine::store::scratch::database_url(
        &engine::store::scratch::admin_url(),
        h.pg_db.as_deref().expect("db"),
    );
    let store = Store::connect(&url).await.expect("connect");
    let engine = Engine::start(
        store,
        EngineConfig {
            agents: local_agents(),
            ..EngineConfig::default()
        },
    )
    .await
    .expect("engine");
    check_after_restart(&engine, &id, due).await;
    engine.shutdown(Duration::from_secs(1)).await;
}
