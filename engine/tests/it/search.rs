//! Labels and search, on both stores: labels given at trigger are kept, shown, filtered on and
//! carried by a retry; search finds runs by words of their inputs, outputs and errors (parts
//! of words, any case), finds a run still going by its inputs, and forgets pruned runs.

use engine::executor::{RetryMode, TriggerRequest};
use engine::records::RunStatus;
use engine::search::{Labels, SearchQuery};
use engine::store::RunFilter;
use serde_json::{json, Map, Value};

use crate::harness::{harness, pg_harness, Harness};

/// Says hello to `who`, or fails with a message naming them when `fail` is set.
const GREET: &str = "id: greet\ninputs:\n  who: {type: string}\n  fail: {type: boolean, default: false}\nsteps:\n- {id: hello, agent: transform, with: {jq: 'if .inputs.fail then error(\"no answer from \" + .inputs.who) else {greeting: (\"Hello, \" + .inputs.who + \"!\")} end'}}\n";

/// Waits for a person: a run that stays unfinished.
const GATE: &str = "id: gate\ninputs:\n  ticket: {type: string}\nsteps:\n- {id: ok, agent: approval, with: {prompt: Go?}}\n";

async fn trigger(h: &Harness, workflow: &str, inputs: Value, labels: &[(&str, &str)]) -> String {
    let inputs: Map<String, Value> = serde_json::from_value(inputs).expect("object");
    let labels: Labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let run = h
        .engine
        .trigger(TriggerRequest {
            workflow_id: workflow.into(),
            inputs,
            trigger: "api".into(),
            labels,
            ..Default::default()
        })
        .await
        .expect("trigger");
    run.id
}

/// The ids the filter lists, oldest first.
async fn found(h: &Harness, labels: &[(&str, &str)], q: &str) -> Vec<String> {
    let mut runs = h
        .engine
        .store()
        .list_runs(&RunFilter {
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            search: SearchQuery::parse(q).expect("query"),
            limit: 100,
            ..Default::default()
        })
        .await
        .expect("list");
    runs.reverse();
    runs.into_iter().map(|r| r.id).collect()
}

async fn labels_and_search_find_runs(h: Harness) {
    h.add(GREET).await;
    h.add(GATE).await;
    let ada = trigger(
        &h,
        "greet",
        json!({"who": "Ada Lovelace"}),
        &[("env", "prod"), ("team", "core")],
    )
    .await;
    let bob = trigger(&h, "greet", json!({"who": "Bob"}), &[("env", "staging")]).await;
    let cy = trigger(
        &h,
        "greet",
        json!({"who": "Cy", "fail": true}),
        &[("env", "prod")],
    )
    .await;
    for id in [&ada, &bob, &cy] {
        h.engine.wait(id).await.expect("wait");
    }
    let going = trigger(&h, "gate", json!({"ticket": "CHG-4217"}), &[]).await;

    // Labels: kept on the run, and each filter narrows.
    let detail = h.engine.run_detail(&ada).await.expect("detail");
    assert_eq!(
        detail.run.labels.get("team").map(String::as_str),
        Some("core")
    );
    assert_eq!(
        found(&h, &[("env", "prod")], "").await,
        [ada.as_str(), cy.as_str()]
    );
    assert_eq!(
        found(&h, &[("env", "prod"), ("team", "core")], "").await,
        [ada.as_str()]
    );
    assert_eq!(found(&h, &[("env", "dev")], "").await, Vec::<String>::new());

    // Search: inputs, outputs (part of a word, another case) and errors.
    assert_eq!(found(&h, &[], "lovelace").await, [ada.as_str()]);
    assert_eq!(
        found(&h, &[], "hello, bob").await,
        [bob.as_str()],
        "an output"
    );
    assert_eq!(
        found(&h, &[], "answer from").await,
        [cy.as_str()],
        "an error"
    );
    assert_eq!(
        found(&h, &[], "ada bob").await,
        Vec::<String>::new(),
        "every word"
    );
    // A run still going is found by its inputs.
    assert_eq!(found(&h, &[], "chg-42").await, [going.as_str()]);
    // Both together.
    assert_eq!(
        found(&h, &[("env", "prod")], "greeting").await,
        [ada.as_str()]
    );
    // Characters that mean something to FTS5 or LIKE are text.
    assert_eq!(found(&h, &[], "\"ada* OR%").await, Vec::<String>::new());

    // A retry keeps the labels.
    let retry = h.engine.retry(&cy, RetryMode::Whole).await.expect("retry");
    assert_eq!(retry.labels.get("env").map(String::as_str), Some("prod"));
    h.engine.wait(&retry.id).await.expect("wait");
    let detail = h.engine.run_detail(&retry.id).await.expect("detail");
    assert_eq!(detail.run.status, RunStatus::Failed);
    assert_eq!(
        detail.run.labels.get("env").map(String::as_str),
        Some("prod")
    );
    assert_eq!(
        found(&h, &[("env", "prod")], "answer").await,
        [cy.as_str(), retry.id.as_str()]
    );

    // A workflow deleted with its runs takes their labels and text along.
    h.engine.cancel(&going).await.expect("cancel");
    h.engine.wait(&going).await.expect("wait");
    h.engine
        .store()
        .delete_workflow("greet")
        .await
        .expect("delete");
    assert_eq!(
        found(&h, &[("env", "prod")], "").await,
        Vec::<String>::new()
    );
    assert_eq!(found(&h, &[], "lovelace").await, Vec::<String>::new());
    let left: (i64, i64) = h
        .engine
        .store()
        .count_label_and_search_rows()
        .await
        .expect("count");
    assert_eq!(
        left,
        (0, 1),
        "the gate run's text stays, nothing of greet's"
    );
}

#[tokio::test]
async fn labels_and_search_find_runs_on_sqlite() {
    labels_and_search_find_runs(harness().await).await;
}

#[tokio::test]
async fn labels_and_search_find_runs_on_postgres() {
    labels_and_search_find_runs(pg_harness().await).await;
}

#[tokio::test]
async fn bad_labels_are_refused_with_their_key() {
    let h = harness().await;
    h.add(GREET).await;
    let err = h
        .engine
        .trigger(TriggerRequest {
            workflow_id: "greet".into(),
            inputs: serde_json::from_value(json!({"who": "x"})).unwrap(),
            trigger: "api".into(),
            labels: [("env".to_string(), "a\nb".to_string())].into(),
            ..Default::default()
        })
        .await
        .expect_err("refused");
    assert_eq!(
        err.to_string(),
        "labels.env: the value holds a control character"
    );
}
