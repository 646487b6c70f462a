//! Control flow on both stores: `if:` conditions over outputs and inputs, status functions
//! (`always()`, `failure()`), `continue_on_error`, skip reasons, and a resume after a crash
//! between a failure and the step that handles it.

use engine::records::{EventKind, RunStatus, SkipReason, StepStatus};
use serde_json::json;

use crate::harness::*;

const BRANCHY: &str = r#"
id: branchy
inputs: { mode: { type: string, default: full } }
steps:
  - id: check
    agent: transform
    with: { jq: '.inputs.mode == "full"' }
  - id: full
    needs: [check]
    if: steps.check.output and inputs.mode == "full"
    agent: transform
    with: { jq: "1" }
  - id: quick
    needs: [check]
    if: not steps.check.output
    agent: transform
    with: { jq: "2" }
  - id: after_quick
    needs: [quick]
    agent: transform
    with: { jq: "3" }
  - id: report
    needs: [full, after_quick]
    if: always()
    agent: transform
    with: { jq: "[.steps.full.status, .steps.quick.status, .steps.after_quick.status]" }
"#;

async fn branches(h: &Harness) {
    h.add(BRANCHY).await;
    let mut events = h.engine.subscribe();
    let d = h.run("branchy", json!({ "mode": "full" })).await;
    // Live pages learn why a step was skipped from its event, without reading the run again.
    let mut skipped = Vec::new();
    while let Ok(event) = events.try_recv() {
        if let EventKind::Step {
            step_id,
            status: StepStatus::Skipped,
            skip_reason,
            ..
        } = event.kind
        {
            assert_eq!(event.run_id, d.run.id);
            skipped.push((step_id, skip_reason));
        }
    }
    skipped.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        skipped,
        [
            ("after_quick".to_string(), Some(SkipReason::Upstream)),
            ("quick".to_string(), Some(SkipReason::Condition))
        ]
    );
    assert_eq!(d.run.status, RunStatus::Succeeded, "{d:?}");
    assert_eq!(step_of(&d, "full").output, Some(json!(1)));
    let quick = step_of(&d, "quick");
    assert_eq!(quick.status, StepStatus::Skipped);
    assert_eq!(quick.skip_reason, Some(SkipReason::Condition));
    assert_eq!(
        quick.attempts, 0,
        "a step whose condition is false never starts"
    );
    let after = step_of(&d, "after_quick");
    assert_eq!(after.status, StepStatus::Skipped);
    assert_eq!(after.skip_reason, Some(SkipReason::Upstream));
    assert_eq!(
        step_of(&d, "report").output,
        Some(json!(["succeeded", "skipped", "skipped"])),
        "always() runs after every step it needs ended, and sees their states"
    );

    let d = h.run("branchy", json!({ "mode": "quick" })).await;
    assert_eq!(d.run.status, RunStatus::Succeeded, "{d:?}");
    assert_eq!(step_of(&d, "full").skip_reason, Some(SkipReason::Condition));
    assert_eq!(step_of(&d, "after_quick").output, Some(json!(3)));
    assert_eq!(
        step_of(&d, "report").output,
        Some(json!(["skipped", "succeeded", "succeeded"]))
    );
}

#[tokio::test]
async fn conditions_choose_a_branch_and_skip_reasons_say_why_on_sqlite() {
    branches(&harness().await).await;
}

#[tokio::test]
async fn conditions_choose_a_branch_and_skip_reasons_say_why_on_postgres() {
    branches(&pg_harness().await).await;
}

const CLEANUP: &str = r#"
id: cleanup
steps:
  - id: flaky
    agent: simulate
    continue_on_error: true
    with: { failure_rate: 1 }
  - id: next
    needs: [flaky]
    agent: transform
    with: { jq: ".steps.flaky.status" }
  - id: broken
    agent: simulate
    with: { failure_rate: 1 }
  - id: downstream
    needs: [broken]
    agent: transform
    with: { jq: "1" }
  - id: on_failure
    needs: [downstream]
    if: failure()
    agent: transform
    with: { jq: ".steps.broken.error" }
  - id: not_failed
    needs: [next]
    if: failure()
    agent: transform
    with: { jq: "1" }
"#;

async fn failures(h: &Harness) {
    h.add(CLEANUP).await;
    let d = h.run("cleanup", json!({})).await;
    assert_eq!(d.run.status, RunStatus::Failed, "{d:?}");
    assert_eq!(
        d.run.error.as_deref(),
        Some("step broken failed"),
        "a step allowed to fail does not fail the run"
    );
    assert_eq!(step_of(&d, "flaky").status, StepStatus::Failed);
    assert_eq!(
        step_of(&d, "next").output,
        Some(json!("failed")),
        "after continue_on_error the next step runs and sees the failure"
    );
    assert_eq!(
        step_of(&d, "downstream").skip_reason,
        Some(SkipReason::Upstream)
    );
    let handler = step_of(&d, "on_failure");
    assert_eq!(handler.status, StepStatus::Succeeded, "{d:?}");
    let message = handler
        .output
        .as_ref()
        .and_then(|o| o.as_str())
        .unwrap_or("");
    assert_eq!(
        Some(message),
        step_of(&d, "broken").error_message.as_deref(),
        "failure() runs when a step above failed, and reads its error"
    );
    let not_failed = step_of(&d, "not_failed");
    assert_eq!(not_failed.skip_reason, Some(SkipReason::Condition));
}

#[tokio::test]
async fn continue_on_error_goes_on_and_failure_handlers_run_on_sqlite() {
    failures(&harness().await).await;
}

#[tokio::test]
async fn continue_on_error_goes_on_and_failure_handlers_run_on_postgres() {
    failures(&pg_harness().await).await;
}

#[tokio::test]
async fn a_condition_that_cannot_be_evaluated_fails_its_step_with_the_reason() {
    let h = harness().await;
    h.add(
        "id: badif\ninputs: {n: {type: integer, default: 3}}\nsteps:\n\
         - {id: a, agent: transform, with: {jq: '\"text\"'}}\n\
         - {id: b, agent: transform, needs: [a], if: 'steps.a.output in inputs.n', with: {jq: '1'}}\n",
    )
    .await;
    let d = h.run("badif", json!({})).await;
    assert_eq!(d.run.status, RunStatus::Failed, "{d:?}");
    let b = step_of(&d, "b");
    assert_eq!(b.status, StepStatus::Failed);
    assert_eq!(b.error_kind.as_deref(), Some("condition"), "{b:?}");
    assert!(
        b.error_message.as_deref().unwrap_or("").starts_with("if: "),
        "{b:?}"
    );
}

/// Killed while the `always()` step after a failure runs: on restart the failure stays
/// recorded, the handler runs again, and the run ends failed with the handler's output.
#[test]
fn a_crash_between_a_failure_and_its_always_step_resumes_the_handler() {
    let yaml = "id: crashy\nsteps:\n\
        - {id: broken, agent: simulate, with: {failure_rate: 1}}\n\
        - {id: skipped, agent: transform, needs: [broken], with: {jq: '1'}}\n\
        - {id: handler, agent: delay, needs: [skipped], if: always(), with: {duration: 400ms}}\n\
        - {id: last, agent: transform, needs: [handler], with: {jq: '.steps.broken.status'}}\n";
    let killed = kill_midway(yaml, json!({}), async |h, id| {
        h.wait_for_step(id, "handler", StepStatus::Running).await
    });
    killed.restart(async |engine| {
        let run_id = &killed.run_id;
        assert_eq!(engine.wait(run_id).await.expect("wait"), RunStatus::Failed);
        let d = engine.store().run_detail(run_id).await.expect("detail");
        assert_eq!(step_of(&d, "broken").attempts, 1, "{d:?}");
        assert_eq!(
            step_of(&d, "skipped").skip_reason,
            Some(SkipReason::Upstream)
        );
        let handler = step_of(&d, "handler");
        assert_eq!(handler.status, StepStatus::Succeeded, "{d:?}");
        assert_eq!(handler.attempts, 2, "the interrupted handler ran again");
        assert_eq!(step_of(&d, "last").output, Some(json!("failed")));
    });
}

const CANCELLABLE: &str = r#"
id: cancellable
steps:
  - id: slow
    agent: delay
    with: { duration: 60s }
  - id: plain
    needs: [slow]
    agent: transform
    with: { jq: "1" }
  - id: on_cancel
    needs: [plain]
    if: cancelled()
    agent: transform
    with: { jq: '"cleaned up after " + .steps.slow.status' }
  - id: only_on_failure
    needs: [slow]
    if: failure()
    agent: transform
    with: { jq: "1" }
  - id: after_cleanup
    needs: [on_cancel]
    agent: transform
    with: { jq: "1" }
"#;

/// A cancel stops what runs and what would follow, but runs the steps that ask to run on a
/// cancel (`cancelled()`, `always()`), and the run still ends cancelled.
async fn cancel_cleanup(h: &Harness) {
    h.add(CANCELLABLE).await;
    let id = h.start("cancellable", json!({})).await;
    h.wait_for_step(&id, "slow", StepStatus::Running).await;
    h.engine.cancel(&id).await.expect("cancel");
    assert_eq!(
        h.engine.wait(&id).await.expect("wait"),
        RunStatus::Cancelled
    );
    let d = h.engine.store().run_detail(&id).await.expect("detail");
    assert_eq!(step_of(&d, "slow").status, StepStatus::Cancelled, "{d:?}");
    assert_eq!(step_of(&d, "plain").status, StepStatus::Cancelled);
    let cleanup = step_of(&d, "on_cancel");
    assert_eq!(cleanup.status, StepStatus::Succeeded, "{d:?}");
    assert_eq!(cleanup.output, Some(json!("cleaned up after cancelled")));
    assert_eq!(
        step_of(&d, "only_on_failure").skip_reason,
        Some(SkipReason::Condition),
        "nothing failed: failure() is false after a cancel"
    );
    assert_eq!(
        step_of(&d, "after_cleanup").status,
        StepStatus::Cancelled,
        "a step without a status function does not run after a cancel"
    );
    assert_eq!(d.run.error.as_deref(), Some("the run was cancelled"));
}

#[tokio::test]
async fn a_cancel_runs_the_cancelled_steps_and_ends_cancelled_on_sqlite() {
    cancel_cleanup(&harness().await).await;
}

#[tokio::test]
async fn a_cancel_runs_the_cancelled_steps_and_ends_cancelled_on_postgres() {
    cancel_cleanup(&pg_harness().await).await;
}

/// A template the server cannot vouch for (it renders in the sandbox's child) that runs for
/// about a minute: 2,000 copies of a 100 MB string, within the fuel and memory limits.
const SLOW_TEMPLATE: &str =
    "{% set s = 'x' * inputs.n %}{% for i in inputs.reps %}{% set t = s ~ s %}{% endfor %}done";

fn slow_render(id: &str, extra: &str) -> String {
    let reps = serde_json::to_string(&vec![0; 2000]).expect("list");
    format!(
        "id: {id}\ninputs: {{n: {{type: integer, default: 50000000}}, reps: {{type: array, default: {reps}}}, one: {{type: array, default: [1]}}}}\nsteps:\n\
         - {{id: first, agent: transform, with: {{jq: '1'}}}}\n\
         - id: slow\n  needs: [first]\n  agent: simulate\n{extra}  with: {{output: \"{SLOW_TEMPLATE}\"}}\n"
    )
}

/// A render in the sandbox is part of its attempt: the step's timeout ends it (not the
/// sandbox's 30 s ceiling: `limit_time`), for a plain step and for each item of a loop. The
/// render runs off the driver: the step before it is recorded meanwhile, and a cancel drops
/// the render, so the step ends cancelled rather than failing 30 s later.
#[tokio::test]
async fn a_slow_render_obeys_the_step_timeout_and_a_cancel() {
    let h = harness().await;
    h.add(&slow_render("timed", "  timeout: 1s\n")).await;
    let d = h.run("timed", json!({})).await;
    let slow = step_of(&d, "slow");
    assert_eq!(slow.status, StepStatus::Failed, "{d:?}");
    assert_eq!(slow.error_kind.as_deref(), Some("timeout"), "{slow:?}");
    assert!(
        slow.error_message
            .as_deref()
            .unwrap_or("")
            .contains("templates rendered"),
        "{slow:?}"
    );

    h.add(&slow_render(
        "looped",
        "  timeout: 1s\n  for_each: inputs.one\n",
    ))
    .await;
    let d = h.run("looped", json!({})).await;
    assert_eq!(step_of(&d, "slow").status, StepStatus::Failed, "{d:?}");
    let items = h
        .engine
        .store()
        .step_items(&d.run.id, "slow", None, None, 10)
        .await
        .expect("items");
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0].error_kind.as_deref(), Some("timeout"), "{items:?}");

    h.add(&slow_render("cancelled", "")).await;
    let id = h.start("cancelled", json!({})).await;
    h.wait_for_step(&id, "first", StepStatus::Succeeded).await;
    h.engine.cancel(&id).await.expect("cancel");
    assert_eq!(
        h.engine.wait(&id).await.expect("wait"),
        RunStatus::Cancelled
    );
    let d = h.engine.store().run_detail(&id).await.expect("detail");
    let slow = step_of(&d, "slow");
    assert_eq!(slow.status, StepStatus::Cancelled, "{d:?}");
    assert_eq!(slow.attempts, 0, "dropped while it rendered: never started");
}

/// One `timeout` covers the attempt: what its render in the sandbox took is gone from the
/// agent's share, so a step never runs for up to twice its timeout.
#[tokio::test]
async fn a_render_and_its_agent_share_one_timeout() {
    let h = harness().await;
    let reps = serde_json::to_string(&vec![0; 30]).expect("list");
    h.add(&format!(
        "id: shared\ninputs: {{n: {{type: integer, default: 10000000}}, reps: {{type: array, default: {reps}}}}}\nsteps:\n\
         - {{id: first, agent: transform, with: {{jq: '1'}}}}\n\
         - id: slow\n  needs: [first]\n  agent: simulate\n  timeout: 4s\n  with: {{latency: 60s, output: \"{SLOW_TEMPLATE}\"}}\n"
    ))
    .await;
    let d = h.run("shared", json!({})).await;
    let slow = step_of(&d, "slow");
    assert_eq!(slow.error_kind.as_deref(), Some("timeout"), "{slow:?}");
    let (ready, started, finished) = (
        slow.ready_at.expect("ready"),
        slow.started_at.expect("started"),
        slow.finished_at.expect("finished"),
    );
    // The attempt is recorded as started once its `with` is rendered.
    let render = started - ready;
    assert!(render >= 50, "the render should take a while: {render} ms");
    assert!(
        finished - started < 4000,
        "the agent had the whole timeout after a {render} ms render: {slow:?}"
    );
    assert!(finished - ready >= 4000, "{slow:?}");
}

/// A step that reads a secret nobody set fails at once, naming it and where to set it, and is
/// not retried; the engine lists the workflow's missing secrets before any run (the page
/// says so). A secret that is set is not reported.
#[tokio::test]
async fn a_missing_secret_fails_its_step_once_and_is_reported_before_a_run() {
    let h = harness_with(engine::executor::EngineConfig {
        agents: local_agents(),
        secrets: [("THERE".to_string(), "v".to_string())].into(),
        ..Default::default()
    })
    .await;
    let yaml = "id: secretive\nsteps:\n\
        - {id: fine, agent: simulate, with: {output: '{{ secrets.THERE }}'}}\n\
        - {id: lost, agent: simulate, needs: [fine], retry: {max_attempts: 5, backoff: 10ms}, with: {output: {nested: ['x {{ secrets.NOPE }}']}}}\n";
    h.add(yaml).await;
    let wf = engine::model::Workflow::parse(yaml).expect("valid");
    assert_eq!(h.engine.missing_secrets(&wf), vec!["NOPE".to_string()]);
    let d = h.run("secretive", json!({})).await;
    assert_eq!(d.run.status, RunStatus::Failed);
    assert_eq!(step_of(&d, "fine").status, StepStatus::Succeeded);
    let lost = step_of(&d, "lost");
    assert_eq!(
        lost.error_kind.as_deref(),
        Some("secret_missing"),
        "{lost:?}"
    );
    assert_eq!(lost.attempts, 1, "not retried: {lost:?}");
    let message = lost.error_message.as_deref().unwrap_or_default();
    assert!(
        message.contains("secret NOPE is not set") && message.contains("FLOWSCOPE_SECRET_NOPE"),
        "{message}"
    );
}

/// `{{ run.url }}` is the run's page under the public URL: what a notification links to.
#[tokio::test]
async fn templates_link_to_the_run_page_under_the_public_url() {
    let h = harness_with(engine::executor::EngineConfig {
        agents: local_agents(),
        public_url: Some("https://hub.example.com/".into()),
        ..Default::default()
    })
    .await;
    h.add("id: linked\nsteps:\n- {id: s, agent: simulate, with: {output: 'see {{ run.url }}'}}\n")
        .await;
    let d = h.run("linked", json!({})).await;
    assert_eq!(
        step_of(&d, "s").output,
        Some(json!(format!(
            "see https://hub.example.com/runs/{}",
            d.run.id
        )))
    );
}
