//! `for_each` on both stores: items in order with `item`/`index` in templates and jq, each
//! item recorded with its own attempts, retries per item, a failing item failing the step
//! (and `continue_on_error` letting the run go on), a list that is not one, and a resume
//! after a kill that runs no recorded item again.

use engine::records::{RunStatus, StepStatus};
use serde_json::json;

use crate::harness::*;

const SQUARES: &str = r##"
id: squares
inputs: { numbers: { type: array } }
steps:
  - id: square
    for_each: inputs.numbers
    concurrency: 3
    agent: transform
    with: { jq: "{n: .item, at: .index, sq: (.item * .item)}" }
  - id: label
    needs: [square]
    for_each: steps.square.output
    agent: simulate
    with: { output: { text: "#{{ index }}: {{ item.n }}² = {{ item.sq }}" } }
  - id: total
    needs: [label]
    agent: transform
    with: { jq: "[.steps.square.output[].sq] | add" }
"##;

async fn squares(h: &Harness) {
    h.add(SQUARES).await;
    let numbers: Vec<i64> = (1..=25).collect();
    let d = h.run("squares", json!({ "numbers": numbers })).await;
    assert_eq!(d.run.status, RunStatus::Succeeded, "{d:?}");
    let square = step_of(&d, "square").output.clone().expect("output");
    assert_eq!(square.as_array().map(Vec::len), Some(25));
    assert_eq!(
        square[4],
        json!({ "n": 5, "at": 4, "sq": 25 }),
        "in list order"
    );
    let label = step_of(&d, "label").output.clone().expect("output");
    assert_eq!(label[2], json!({ "text": "#2: 3² = 9" }));
    let expected: i64 = numbers.iter().map(|n| n * n).sum();
    assert_eq!(step_of(&d, "total").output, Some(json!(expected)));
    let counts = d
        .items
        .iter()
        .find(|c| c.step_id == "square")
        .expect("counts");
    assert_eq!((counts.total, counts.succeeded, counts.failed), (25, 25, 0));
    let store = h.engine.store();
    let page = store
        .step_items(&d.run.id, "label", None, Some(20), 10)
        .await
        .expect("items");
    let indexes: Vec<i64> = page.iter().map(|i| i.index).collect();
    assert_eq!(indexes, vec![21, 22, 23, 24], "a page after index 20");
    assert_eq!(
        page[0].input,
        Some(json!({ "output": { "text": "#21: 22² = 484" } }))
    );
    assert_eq!(page[0].attempts, 1);

    let d = h.run("squares", json!({ "numbers": [] })).await;
    assert_eq!(d.run.status, RunStatus::Succeeded, "{d:?}");
    assert_eq!(
        step_of(&d, "square").output,
        Some(json!([])),
        "no items: an empty list"
    );
    assert_eq!(step_of(&d, "total").output, Some(json!(null)));
}

#[tokio::test]
async fn for_each_runs_every_item_in_order_and_records_each_on_sqlite() {
    squares(&harness().await).await;
}

#[tokio::test]
async fn for_each_runs_every_item_in_order_and_records_each_on_postgres() {
    squares(&pg_harness().await).await;
}

const PICKY: &str = r#"
id: picky
steps:
  - id: each
    for_each: '[1, 2, 3, 4]'
    continue_on_error: true
    retry: { max_attempts: 2, backoff: 10ms }
    agent: transform
    with: { jq: 'if .item == 3 then error("three is not allowed") else .item end' }
  - id: after
    needs: [each]
    agent: transform
    with: { jq: '[.steps.each.status, .steps.each.error]' }
"#;

async fn picky(h: &Harness) {
    // A list literal is not a bounded expression: the list comes from a step instead.
    let yaml = PICKY.replace(
        "for_each: '[1, 2, 3, 4]'",
        "needs: [list]\n    for_each: steps.list.output",
    );
    let yaml = yaml.replace(
        "steps:\n",
        "steps:\n  - id: list\n    agent: transform\n    with: { jq: '[1, 2, 3, 4]' }\n",
    );
    h.add(&yaml).await;
    let d = h.run("picky", json!({})).await;
    assert_eq!(
        d.run.status,
        RunStatus::Succeeded,
        "continue_on_error: {d:?}"
    );
    let each = step_of(&d, "each");
    assert_eq!(each.status, StepStatus::Failed);
    assert_eq!(each.attempts, 1, "items are retried, not the step");
    assert_eq!(each.error_kind.as_deref(), Some("items_failed"));
    let message = each.error_message.clone().unwrap_or_default();
    assert!(
        message.starts_with("1 of 4 items failed; the first, item 2:")
            && message.contains("three is not allowed"),
        "{message}"
    );
    assert_eq!(
        step_of(&d, "after").output.as_ref().map(|o| o[0].clone()),
        Some(json!("failed"))
    );
    let items = h
        .engine
        .store()
        .step_items(&d.run.id, "each", None, None, 100)
        .await
        .expect("items");
    let seen: Vec<(i64, StepStatus, i64)> = items
        .iter()
        .map(|i| (i.index, i.status, i.attempts))
        .collect();
    assert_eq!(
        seen,
        vec![
            (0, StepStatus::Succeeded, 1),
            (1, StepStatus::Succeeded, 1),
            (2, StepStatus::Failed, 2),
            (3, StepStatus::Succeeded, 1),
        ],
        "each item its own attempts: only the failing one was retried"
    );
    let failed = h
        .engine
        .store()
        .step_items(&d.run.id, "each", Some(StepStatus::Failed), None, 100)
        .await
        .expect("failed items");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].output, None);
    // Its first attempt is kept beside its last: what failed, and when.
    let earlier = &failed[0].earlier_attempts;
    assert_eq!(earlier.len(), 1, "{earlier:?}");
    assert_eq!(earlier[0].attempt, 1);
    assert_eq!(earlier[0].error_kind, "jq_runtime");
    assert!(
        earlier[0].error_message.contains("three is not allowed"),
        "{earlier:?}"
    );
    assert!(
        failed[0].started_at <= earlier[0].started_at
            && earlier[0].started_at <= earlier[0].finished_at
            && earlier[0].finished_at <= failed[0].finished_at,
        "the first attempt ended before the item did: {:?}",
        failed[0]
    );
    assert!(
        items
            .iter()
            .filter(|i| i.index != 2)
            .all(|i| i.earlier_attempts.is_empty()),
        "items that succeeded at once have no earlier attempts"
    );
    let counts = d
        .items
        .iter()
        .find(|c| c.step_id == "each")
        .expect("counts");
    assert_eq!(
        (
            counts.total,
            counts.succeeded,
            counts.failed,
            counts.retried
        ),
        (4, 3, 1, 1)
    );
}

#[tokio::test]
async fn a_failing_item_is_retried_alone_and_fails_its_step_on_sqlite() {
    picky(&harness().await).await;
}

#[tokio::test]
async fn a_failing_item_is_retried_alone_and_fails_its_step_on_postgres() {
    picky(&pg_harness().await).await;
}

/// Odd items fail their first two calls and succeed on the third: each keeps the two failed
/// attempts, in order, with the server's answer, and its last attempt's output.
async fn flaky_items(h: &Harness) {
    use axum::extract::Path;
    use axum::routing::get;
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    let hits: Arc<Mutex<HashMap<u32, u32>>> = Arc::default();
    let seen = hits.clone();
    let addr = serve(axum::Router::new().route(
        "/item/{n}",
        get(move |Path(n): Path<u32>| {
            let hit = {
                let mut hits = seen.lock().expect("hits");
                let hit = hits.entry(n).or_insert(0);
                *hit += 1;
                *hit
            };
            async move {
                if n % 2 == 1 && hit < 3 {
                    // 503 first, then 502: each attempt's own answer is kept.
                    (
                        axum::http::StatusCode::from_u16(504 - hit as u16).expect("a status"),
                        format!("item {n} busy"),
                    )
                } else {
                    (axum::http::StatusCode::OK, format!("item {n} done"))
                }
            }
        }),
    ))
    .await;
    h.add(&format!(
        "id: flaky-items\ninputs: {{n: {{type: array}}}}\nsteps:\n\
         - {{id: each, agent: http, for_each: inputs.n, retry: {{max_attempts: 3, backoff: 5ms}}, \
            with: {{url: 'http://{addr}/item/{{{{ item }}}}'}}}}\n"
    ))
    .await;
    let d = h.run("flaky-items", json!({ "n": [0, 1, 2, 3] })).await;
    assert_eq!(d.run.status, RunStatus::Succeeded, "{d:?}");
    let items = h
        .engine
        .store()
        .step_items(&d.run.id, "each", None, None, 100)
        .await
        .expect("items");
    let shape: Vec<(i64, StepStatus, i64, Vec<i64>)> = items
        .iter()
        .map(|i| {
            let earlier = i.earlier_attempts.iter().map(|a| a.attempt).collect();
            (i.index, i.status, i.attempts, earlier)
        })
        .collect();
    assert_eq!(
        shape,
        vec![
            (0, StepStatus::Succeeded, 1, vec![]),
            (1, StepStatus::Succeeded, 3, vec![1, 2]),
            (2, StepStatus::Succeeded, 1, vec![]),
            (3, StepStatus::Succeeded, 3, vec![1, 2]),
        ]
    );
    let three = &items[3];
    for (a, status) in three.earlier_attempts.iter().zip(["503", "502"]) {
        assert_eq!(a.error_kind, "http_status", "{a:?}");
        assert!(
            a.error_message
                .ends_with(&format!("/item/3 answered {status}")),
            "attempt {} says what the server answered: {a:?}",
            a.attempt
        );
    }
    let first = &three.earlier_attempts[0];
    let second = &three.earlier_attempts[1];
    assert!(
        three.started_at <= first.started_at
            && first.finished_at <= second.started_at
            && second.finished_at <= three.finished_at,
        "attempts in order: {three:?}"
    );
    assert_eq!(
        three.output.as_ref().map(|o| o["body"].clone()),
        Some(json!("item 3 done"))
    );
    // Only the retried ones, and how many there were.
    let retried = h
        .engine
        .store()
        .step_items(
            &d.run.id,
            "each",
            engine::store::ItemFilter {
                status: None,
                retried: true,
            },
            None,
            100,
        )
        .await
        .expect("retried items");
    assert_eq!(
        retried.iter().map(|i| i.index).collect::<Vec<_>>(),
        vec![1, 3]
    );
    let counts = d
        .items
        .iter()
        .find(|c| c.step_id == "each")
        .expect("counts");
    assert_eq!((counts.succeeded, counts.failed, counts.retried), (4, 0, 2));
}

#[tokio::test]
async fn an_item_keeps_its_failed_attempts_before_the_one_that_succeeded_on_sqlite() {
    flaky_items(&harness().await).await;
}

#[tokio::test]
async fn an_item_keeps_its_failed_attempts_before_the_one_that_succeeded_on_postgres() {
    flaky_items(&pg_harness().await).await;
}

#[tokio::test]
async fn for_each_over_something_that_is_not_a_list_fails_the_step_with_the_reason() {
    let h = harness().await;
    h.add(
        "id: notalist\nsteps:\n\
         - {id: a, agent: transform, with: {jq: '{\"x\": 1}'}}\n\
         - {id: b, agent: transform, needs: [a], for_each: steps.a.output, with: {jq: '.item'}}\n",
    )
    .await;
    let d = h.run("notalist", json!({})).await;
    assert_eq!(d.run.status, RunStatus::Failed, "{d:?}");
    let b = step_of(&d, "b");
    assert_eq!(b.error_kind.as_deref(), Some("for_each"), "{b:?}");
    assert_eq!(
        b.error_message.as_deref(),
        Some("for_each: steps.a.output is map, not a list")
    );
}

/// Killed with items recorded and others running: on restart only the unrecorded items run,
/// and the step's list is whole and in order.
#[test]
fn a_kill_inside_for_each_resumes_without_running_a_recorded_item_again() {
    let yaml = "id: slow-items\ninputs: {n: {type: array}}\nsteps:\n\
        - {id: each, agent: simulate, for_each: inputs.n, concurrency: 4, \
           with: {latency: 150ms, output: {n: '{{ item }}'}}}\n";
    let inputs = json!({ "n": (0..20).collect::<Vec<_>>() });
    let killed = kill_midway(yaml, inputs, async |h, id| loop {
        let items = h
            .engine
            .store()
            .step_items(id, "each", None, None, 100)
            .await
            .expect("items");
        if items.len() >= 6 {
            break items;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    });
    killed.restart(async |engine| {
        let run_id = &killed.run_id;
        assert_eq!(
            engine.wait(run_id).await.expect("wait"),
            RunStatus::Succeeded
        );
        let d = engine.store().run_detail(run_id).await.expect("detail");
        let each = step_of(&d, "each");
        assert_eq!(each.attempts, 2, "the step was resumed: {d:?}");
        let ns: Vec<serde_json::Value> = (0..20).map(|n| json!({ "n": n })).collect();
        assert_eq!(each.output, Some(json!(ns)), "the whole list, in order");
        let now = engine
            .store()
            .step_items(run_id, "each", None, None, 100)
            .await
            .expect("items");
        assert_eq!(now.len(), 20);
        for before in &killed.seen {
            let again = now
                .iter()
                .find(|i| i.index == before.index)
                .expect("still there");
            assert_eq!(
                (again.started_at, again.finished_at),
                (before.started_at, before.finished_at),
                "item {} ran again after the restart",
                before.index
            );
        }
    });
}

/// The example that uses all of control flow: a condition, a loop, an allowed failure and an
/// `always()` report, as seeded.
#[tokio::test]
async fn the_branches_example_runs_its_loop_and_reports_on_both_paths() {
    let h = harness().await;
    let d = h.run("branches", json!({})).await;
    assert_eq!(d.run.status, RunStatus::Succeeded, "{d:?}");
    assert_eq!(
        step_of(&d, "report").output,
        Some(json!({
            "mode": "full",
            "regions": ["eu-west", "us-east", "ap-south", "sa-east"],
            "synced": 160,
            "cache": "failed",
        }))
    );
    let d = h.run("branches", json!({ "mode": "quick" })).await;
    assert_eq!(d.run.status, RunStatus::Succeeded, "{d:?}");
    assert_eq!(step_of(&d, "full_sync").status, StepStatus::Skipped);
    assert_eq!(
        step_of(&d, "report").output,
        Some(json!({ "mode": "quick", "regions": [], "synced": 10, "cache": "failed" }))
    );
}
