//! Sub-workflows (agent `workflow`): outputs, links both ways, failure, cancel, retries that
//! re-use children, the depth limit, cycles refused on save, and a restart while a child
//! waits; on both stores where the store does the work.

use std::time::Duration;

use engine::access::Role;
use engine::executor::{Decision, Engine, RetryMode};
use engine::model::Workflow;
use engine::records::{RunDetail, RunStatus, StepStatus};
use engine::store::StoreError;
use serde_json::json;

use crate::harness::{harness, kill_midway_among, pg_harness, step_of, Harness};

/// Doubles `n`, or fails for 2; its outputs are declared.
const CHILD: &str = "id: child\ninputs:\n  n: {type: integer}\noutputs:\n  doubled: '{{ steps.double.output }}'\n  note: 'n was {{ inputs.n }}'\nsteps:\n- {id: double, agent: transform, with: {jq: 'if .inputs.n == 2 then error(\"two is not allowed\") else .inputs.n * 2 end'}}\n";

/// Without `outputs:`: its outputs are its last steps', by id.
const PLAIN: &str = "id: plain\nsteps:\n- {id: a, agent: transform, with: {jq: '1'}}\n- {id: b, agent: transform, needs: [a], with: {jq: '.steps.a.output + 1'}}\n- {id: c, agent: transform, needs: [a], with: {jq: '\"c\"'}}\n";

const PARENT: &str = "id: parent\ninputs:\n  n: {type: integer, default: 21}\nsteps:\n- {id: call, agent: workflow, with: {workflow: child, inputs: {n: '{{ inputs.n }}'}}}\n- {id: plain, agent: workflow, with: {workflow: plain}}\n- {id: use, agent: transform, needs: [call, plain], with: {jq: '[.steps.call.output.doubled, .steps.plain.output.b]'}}\n";

/// Three items, each a child; item 2 (n = 2) fails.
const FAN: &str = "id: fan\ninputs:\n  ns: {type: array, default: [1, 2, 3]}\nsteps:\n- {id: each, agent: workflow, for_each: inputs.ns, with: {workflow: child, inputs: {n: '{{ item }}'}}}\n";

/// Waits for a person.
const GATED: &str = "id: gated\nsteps:\n- {id: ok, agent: approval, with: {prompt: Go?}}\n- {id: done, agent: transform, needs: [ok], with: {jq: '\"through\"'}}\n";
const CALLS_GATED: &str =
    "id: calls-gated\nsteps:\n- {id: call, agent: workflow, with: {workflow: gated}}\n";

async fn detail(engine: &Engine, id: &str) -> RunDetail {
    engine.run_detail(id).await.expect("detail")
}

async fn finished(engine: &Engine, id: &str) -> RunDetail {
    engine.wait(id).await.expect("wait");
    detail(engine, id).await
}

async fn a_child_runs_and_links_both_ways(h: Harness) {
    for w in [CHILD, PLAIN, PARENT] {
        h.add(w).await;
    }
    let id = h.start("parent", json!({})).await;
    let d = finished(&h.engine, &id).await;
    assert_eq!(d.run.status, RunStatus::Succeeded, "{d:#?}");
    assert_eq!(
        step_of(&d, "call").output,
        Some(json!({"doubled": 42, "note": "n was 21"}))
    );
    assert_eq!(
        step_of(&d, "plain").output,
        Some(json!({"b": 2, "c": "c"})),
        "without outputs: the steps nothing depends on"
    );
    assert_eq!(step_of(&d, "use").output, Some(json!([42, 2])));
    // The parent lists its children; each names its caller.
    assert_eq!(d.children.len(), 2, "{:?}", d.children);
    let call = d
        .children
        .iter()
        .find(|c| c.step_id == "call")
        .expect("call");
    assert_eq!(
        (call.workflow_id.as_str(), call.status, call.item),
        ("child", RunStatus::Succeeded, None)
    );
    let child = detail(&h.engine, &call.id).await;
    assert_eq!(child.run.trigger, "workflow");
    assert_eq!(
        child.run.actor.as_deref(),
        Some(format!("run:{id}").as_str())
    );
    let caller = child.caller.as_ref().expect("caller");
    assert_eq!(
        (caller.run_id.as_str(), caller.step_id.as_str()),
        (id.as_str(), "call")
    );
    assert_eq!(child.inputs, json!({"n": 21}));
    assert_eq!(
        child.outputs,
        Some(json!({"doubled": 42, "note": "n was 21"}))
    );
    // The attempt's log says which child it was.
    let attempt = d
        .attempts
        .iter()
        .find(|a| a.step_id == "call")
        .expect("attempt");
    assert!(
        attempt.logs.iter().any(|l| l.contains(&call.id)),
        "{:?}",
        attempt.logs
    );
    // A run with no `outputs:` shows its last steps' outputs.
    assert_eq!(d.outputs, Some(json!({"use": [42, 2]})));
}

#[tokio::test]
async fn a_child_runs_and_links_both_ways_on_sqlite() {
    a_child_runs_and_links_both_ways(harness().await).await;
}

#[tokio::test]
async fn a_child_runs_and_links_both_ways_on_postgres() {
    a_child_runs_and_links_both_ways(pg_harness().await).await;
}

/// A child that fails fails the calling step, naming the child and its error; inputs that
/// do not fit the child fail it before any child starts.
#[tokio::test]
async fn a_childs_failure_fails_the_calling_step() {
    let h = harness().await;
    for w in [CHILD, PLAIN, PARENT] {
        h.add(w).await;
    }
    let id = h.start("parent", json!({"n": 2})).await;
    let d = finished(&h.engine, &id).await;
    assert_eq!(d.run.status, RunStatus::Failed);
    let call = step_of(&d, "call");
    assert_eq!(call.status, StepStatus::Failed);
    assert_eq!(call.error_kind.as_deref(), Some("child_failed"));
    let child = &d
        .children
        .iter()
        .find(|c| c.step_id == "call")
        .expect("child");
    assert_eq!(child.status, RunStatus::Failed);
    let message = call.error_message.as_deref().unwrap_or("");
    assert!(message.contains(&child.id), "{message}");
    assert!(message.contains("two is not allowed"), "{message}");

    h.add("id: wrong\nsteps:\n- {id: call, agent: workflow, with: {workflow: child, inputs: {n: nope}}}\n").await;
    let d = h.run("wrong", json!({})).await;
    let call = step_of(&d, "call");
    assert_eq!(
        call.error_kind.as_deref(),
        Some("invalid_inputs"),
        "{call:?}"
    );
    assert!(
        call.error_message
            .as_deref()
            .unwrap_or("")
            .contains("inputs.n"),
        "{call:?}"
    );
    assert!(d.children.is_empty());

    h.add("id: missing\nsteps:\n- {id: call, agent: workflow, with: {workflow: nobody-here}}\n")
        .await;
    let d = h.run("missing", json!({})).await;
    assert_eq!(
        step_of(&d, "call").error_kind.as_deref(),
        Some("workflow_not_found")
    );
}

async fn cancelling_the_parent_cancels_the_child(h: Harness) {
    h.add(GATED).await;
    h.add(CALLS_GATED).await;
    let id = h.start("calls-gated", json!({})).await;
    // The child parks on its approval.
    let child = loop {
        let d = detail(&h.engine, &id).await;
        if let Some(c) = d
            .children
            .first()
            .filter(|c| c.status == RunStatus::Waiting)
        {
            break c.id.clone();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    h.engine.cancel(&id).await.expect("cancel");
    assert_eq!(
        h.engine.wait(&id).await.expect("wait"),
        RunStatus::Cancelled
    );
    assert_eq!(
        h.engine.wait(&child).await.expect("wait"),
        RunStatus::Cancelled
    );
}

#[tokio::test]
async fn cancelling_the_parent_cancels_the_child_on_sqlite() {
    cancelling_the_parent_cancels_the_child(harness().await).await;
}

#[tokio::test]
async fn cancelling_the_parent_cancels_the_child_on_postgres() {
    cancelling_the_parent_cancels_the_child(pg_harness().await).await;
}

/// Retrying a run whose `for_each` of calls failed re-uses the children that succeeded: only
/// the failed item starts a child again.
async fn a_retry_reuses_the_children_that_succeeded(h: Harness) {
    h.add(CHILD).await;
    h.add(FAN).await;
    let id = h.start("fan", json!({})).await;
    let d = finished(&h.engine, &id).await;
    assert_eq!(d.run.status, RunStatus::Failed);
    assert_eq!(d.children.len(), 3, "{:?}", d.children);
    let items: Vec<Option<i64>> = d.children.iter().map(|c| c.item).collect();
    assert!(
        items.contains(&Some(0)) && items.contains(&Some(2)),
        "{items:?}"
    );

    let retry = h
        .engine
        .retry(&id, RetryMode::FromFailed)
        .await
        .expect("retry");
    let r = finished(&h.engine, &retry.id).await;
    assert_eq!(r.run.status, RunStatus::Failed);
    assert_eq!(
        r.children.len(),
        1,
        "only the failed item called again: {:?}",
        r.children
    );
    assert_eq!(r.children[0].item, Some(1));
    let outputs = h
        .engine
        .store()
        .step_items(&retry.id, "each", None, None, 10)
        .await
        .expect("items");
    let done: Vec<_> = outputs
        .iter()
        .filter(|i| i.status == StepStatus::Succeeded)
        .map(|i| i.output.clone())
        .collect();
    assert_eq!(
        done,
        vec![
            Some(json!({"doubled": 2, "note": "n was 1"})),
            Some(json!({"doubled": 6, "note": "n was 3"}))
        ]
    );
    // And a retry of the retry still finds them (they were the first run's).
    let again = h
        .engine
        .retry(&retry.id, RetryMode::FromFailed)
        .await
        .expect("retry");
    let a = finished(&h.engine, &again.id).await;
    assert_eq!(a.children.len(), 1, "{:?}", a.children);
}

#[tokio::test]
async fn a_retry_reuses_the_children_that_succeeded_on_sqlite() {
    a_retry_reuses_the_children_that_succeeded(harness().await).await;
}

#[tokio::test]
async fn a_retry_reuses_the_children_that_succeeded_on_postgres() {
    a_retry_reuses_the_children_that_succeeded(pg_harness().await).await;
}

/// A chain of calls deeper than the limit fails at the level past it, and the failure
/// reaches the top through every caller.
#[tokio::test]
async fn calls_deeper_than_the_limit_fail() {
    let h = harness().await;
    let depth = engine::executor::MAX_CALL_DEPTH;
    h.add(&format!(
        "id: level-{}\nsteps:\n- {{id: leaf, agent: transform, with: {{jq: '\"bottom\"'}}}}\n",
        depth + 1
    ))
    .await;
    for level in (0..=depth).rev() {
        h.add(&format!(
            "id: level-{level}\nsteps:\n- {{id: down, agent: workflow, with: {{workflow: level-{}}}}}\n",
            level + 1
        ))
        .await;
    }
    let d = h.run("level-0", json!({})).await;
    assert_eq!(d.run.status, RunStatus::Failed);
    assert_eq!(
        step_of(&d, "down").error_kind.as_deref(),
        Some("child_failed")
    );
    // Walk down to the run that was refused.
    let mut run = d;
    let mut levels = 0;
    while let Some(child) = run.children.first().cloned() {
        run = detail(&h.engine, &child.id).await;
        levels += 1;
    }
    assert_eq!(levels, depth, "runs down to the limit");
    assert_eq!(run.run.workflow_id, format!("level-{depth}"));
    let down = step_of(&run, "down");
    assert_eq!(down.error_kind.as_deref(), Some("call_depth"), "{down:?}");

    // One level less is fine.
    let d = h.run("level-1", json!({})).await;
    assert_eq!(d.run.status, RunStatus::Succeeded, "{d:#?}");
    let mut leaf = d;
    while let Some(child) = leaf.children.first().cloned() {
        leaf = detail(&h.engine, &child.id).await;
    }
    assert_eq!(leaf.outputs, Some(json!({"leaf": "bottom"})));
}

/// A workflow may not call itself, directly (validation) or through stored workflows (on
/// save, with the path); calling a workflow saved later is fine.
#[tokio::test]
async fn call_cycles_are_refused_on_save() {
    let problems =
        Workflow::parse("id: me\nsteps:\n- {id: again, agent: workflow, with: {workflow: me}}\n")
            .expect_err("self call");
    assert_eq!(problems[0].path, "steps[0].with.workflow");
    let problems = Workflow::parse(
        "id: me\nsteps:\n- {id: t, agent: workflow, with: {workflow: '{{ inputs.w }}'}}\n",
    )
    .expect_err("templated callee");
    assert!(problems[0].message.contains("literally"), "{problems:?}");

    let h = harness().await;
    h.add("id: a\nsteps:\n- {id: to_b, agent: workflow, with: {workflow: b}}\n")
        .await;
    h.add("id: b\nsteps:\n- {id: to_c, agent: workflow, with: {workflow: c}}\n")
        .await;
    let c = "id: c\nsteps:\n- {id: x, agent: transform, with: {jq: '1'}}\n- {id: to_a, agent: workflow, needs: [x], with: {workflow: a}}\n";
    let w = Workflow::parse(c).expect("valid alone");
    match h.engine.store().create_workflow(&w, c).await {
        Err(StoreError::CallCycle(problems)) => {
            assert_eq!(problems[0].path, "steps[1].with.workflow");
            assert!(
                problems[0].message.contains("c → a → b → c"),
                "{problems:?}"
            );
        }
        other => panic!("a cycle was stored: {other:?}"),
    }
    // Without the call back it is stored, and a new version that adds it is refused too.
    let fine = "id: c\nsteps:\n- {id: x, agent: transform, with: {jq: '1'}}\n";
    h.add(fine).await;
    assert!(matches!(
        h.engine.store().save_version(&w, c).await,
        Err(StoreError::CallCycle(_))
    ));
}

/// Killed while the child waits on an approval: after the restart the parent waits for the
/// same child (no second one), which goes on once approved.
#[test]
fn a_call_survives_a_restart() {
    let killed = kill_midway_among(
        &[GATED],
        CALLS_GATED,
        json!({}),
        async |h: &Harness, id: &str| loop {
            let d = detail(&h.engine, id).await;
            if let Some(c) = d
                .children
                .first()
                .filter(|c| c.status == RunStatus::Waiting)
            {
                break c.id.clone();
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        },
    );
    let child = killed.seen.clone();
    killed.restart(async |engine: Engine| {
        engine
            .decide(
                &child,
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
        let d = finished(&engine, &killed.run_id).await;
        assert_eq!(d.run.status, RunStatus::Succeeded, "{d:#?}");
        assert_eq!(step_of(&d, "call").output, Some(json!({"done": "through"})));
        assert_eq!(d.children.len(), 1, "the same child: {:?}", d.children);
        assert_eq!(d.children[0].id, child);
    });
}

/// `outputs:` templates are checked on save like a step's: steps and inputs that exist.
#[test]
fn outputs_read_only_what_exists() {
    let problems = Workflow::parse(
        "id: outs\ninputs:\n  n: {type: integer}\noutputs:\n  a: '{{ steps.nope.output }}'\n  b: '{{ inputs.m }}'\n  c: '{{ steps.s.output }} of {{ inputs.n }}'\n  bad-name: 1\nsteps:\n- {id: s, agent: transform, with: {jq: '1'}}\n",
    )
    .expect_err("invalid outputs");
    let said: Vec<(&str, &str)> = problems
        .iter()
        .map(|p| (p.path.as_str(), p.message.as_str()))
        .collect();
    assert_eq!(said.len(), 3, "{said:?}");
    assert!(
        said.contains(&("outputs.a", "refers to unknown step \"nope\"")),
        "{said:?}"
    );
    assert!(
        said.contains(&("outputs.b", "input \"m\" is not declared under inputs")),
        "{said:?}"
    );
    assert!(
        said.iter().any(|(p, _)| *p == "outputs.bad-name"),
        "{said:?}"
    );
}
