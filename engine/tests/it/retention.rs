//! Retention: a workflow's `retention:` over the server's defaults, on both stores. Runs are
//! written with ids and times of the past (run ids are UUIDv7: they sort by time), then one
//! pass prunes what the limits let go and nothing else.

use std::time::Duration;

use engine::executor::{EngineConfig, RetentionConfig};
use engine::model::Workflow;
use engine::records::{RunStatus, StepStatus};
use engine::store::{NewRun, Op, Store};
use serde_json::json;

use crate::harness::{local_agents, Harness};

const DAY: i64 = 86_400_000;
/// "Now" of these tests: a fixed day, so ages are exact.
const NOW: i64 = 1_800_000_000_000;

/// A UUIDv7-shaped id at `ms`, told apart by `n`.
fn id_at(ms: i64, n: u64) -> String {
    format!(
        "{:08x}-{:04x}-7000-8000-{n:012x}",
        (ms as u64) >> 16,
        (ms as u64) & 0xFFFF
    )
}

/// A run of `workflow` created `days_ago`, one step with an attempt, ended `status` (or left
/// running).
fn run_ops(workflow: &str, id: &str, at: i64, status: Option<RunStatus>) -> Vec<Op> {
    let mut ops = vec![
        Op::CreateRun(Box::new(NewRun {
            id: id.into(),
            workflow_id: workflow.into(),
            workflow_version: 1,
            trigger: "api".into(),
            actor: None,
            inputs: json!({}),
            parent_run_id: None,
            traceparent: None,
            created_at: at,
            step_ids: vec!["s".into()],
            reused: vec![],
            concurrency: None,
            owner: None,
            caller: None,
            labels: [("seq".to_string(), id.to_string())].into(),
        })),
        Op::StartRun {
            run_id: id.into(),
            at,
            trace: None,
        },
        Op::AttemptStarted {
            run_id: id.into(),
            step_id: "s".into(),
            attempt: 1,
            ready_at: at,
            at,
            input: json!({"x": 1}),
            resumed: false,
            span_id: None,
            agent: "simulate".into(),
            worker: None,
        },
    ];
    if let Some(status) = status {
        ops.push(Op::AttemptFinished {
            run_id: id.into(),
            step_id: "s".into(),
            attempt: 1,
            status: if status == RunStatus::Succeeded {
                StepStatus::Succeeded
            } else {
                StepStatus::Failed
            },
            output: Some(json!({"big": "x".repeat(2000)})),
            error: None,
            logs: vec![],
            at: at + 1,
        });
        ops.push(Op::FinishRun {
            run_id: id.into(),
            status,
            error: None,
            at: at + 1,
            frees_slot: false,
            outputs: None,
            search: Some(format!("the text of {id}")),
        });
    }
    ops
}

async fn add(store: &Store, yaml: &str) {
    let w = Workflow::parse(yaml).expect("valid");
    store.create_workflow(&w, yaml).await.expect("create");
}

async fn ids_of(store: &Store, workflow: &str) -> Vec<String> {
    let mut page = store
        .list_runs(&engine::store::RunFilter {
            workflow_id: Some(workflow.into()),
            limit: 1000,
            ..Default::default()
        })
        .await
        .expect("list");
    page.sort_by(|a, b| a.id.cmp(&b.id));
    page.into_iter().map(|r| r.id).collect()
}

async fn prunes_what_the_limits_let_go(h: Harness) {
    let store = h.engine.store().clone();
    // By age, with failed runs kept longer; the server's default max_runs does not apply
    // to it since it sets its own.
    // Its step waits for a person: the run left running, should PostgreSQL's claim loop
    // take it up, parks instead of finishing.
    add(&store, "id: aged\nretention: {max_age: 30d, keep_failed: 90d, max_runs: 1000}\nsteps:\n- {id: s, agent: approval, with: {prompt: ok?}}\n").await;
    // By count, from the server's defaults.
    add(&store, "id: counted\nsteps:\n- {id: s, agent: simulate}\n").await;
    let mut ops = Vec::new();
    let aged = [
        (100, Some(RunStatus::Succeeded)), // old: goes
        (100, Some(RunStatus::Failed)),    // failed, past keep_failed: goes
        (60, Some(RunStatus::Failed)),     // failed within keep_failed: stays
        (60, Some(RunStatus::Cancelled)),  // old: goes
        (45, None),                        // old but still running: stays
        (10, Some(RunStatus::Succeeded)),  // young: stays
    ];
    let mut aged_ids = Vec::new();
    for (n, (days, status)) in aged.iter().enumerate() {
        let at = NOW - days * DAY;
        let id = id_at(at, n as u64);
        ops.extend(run_ops("aged", &id, at, *status));
        aged_ids.push(id);
    }
    let mut counted_ids = Vec::new();
    for n in 0..7u64 {
        let at = NOW - DAY + n as i64 * 1000;
        let id = id_at(at, n);
        ops.extend(run_ops("counted", &id, at, Some(RunStatus::Succeeded)));
        counted_ids.push(id);
    }
    store.apply(&ops).await.expect("runs");

    let pruned = h.engine.prune(NOW).await.expect("prune");
    assert_eq!(pruned.runs, 3 + 4, "{pruned:?}");
    assert_eq!(
        ids_of(&store, "aged").await,
        vec![
            aged_ids[2].clone(),
            aged_ids[4].clone(),
            aged_ids[5].clone()
        ]
    );
    assert_eq!(ids_of(&store, "counted").await, counted_ids[4..].to_vec());
    // Their rows went with them; the kept runs keep theirs.
    assert!(store.run_detail(&aged_ids[0]).await.is_err());
    let kept = store.run_detail(&aged_ids[2]).await.expect("kept");
    assert_eq!(kept.attempts.len(), 1);
    assert_eq!(kept.steps.len(), 1);
    // Their labels and text too: one label on each of the 6 runs kept, a text on the 5 of
    // them that finished.
    assert_eq!(
        store.count_label_and_search_rows().await.expect("count"),
        (6, 5)
    );
    // A second pass finds nothing more; the counter says what went.
    assert_eq!(h.engine.prune(NOW).await.expect("again").runs, 0);
    let metrics = h.engine.metrics().encode();
    assert!(
        metrics.contains("flowscope_runs_pruned_total 7"),
        "{metrics}"
    );
}

fn defaults() -> EngineConfig {
    EngineConfig {
        agents: local_agents(),
        retention: RetentionConfig {
            max_runs: Some(3),
            // Passes only when asked, here.
            every: Duration::ZERO,
            ..RetentionConfig::default()
        },
        ..EngineConfig::default()
    }
}

#[tokio::test]
async fn prunes_what_the_limits_let_go_on_sqlite() {
    prunes_what_the_limits_let_go(crate::harness::harness_with(defaults()).await).await;
}

#[tokio::test]
async fn prunes_what_the_limits_let_go_on_postgres() {
    prunes_what_the_limits_let_go(crate::harness::pg_harness_with(defaults()).await).await;
}

/// On SQLite the pages of pruned runs go back to the file system: the file shrinks.
#[tokio::test]
async fn pruning_gives_sqlite_space_back() {
    let h = crate::harness::harness_with(EngineConfig {
        retention: RetentionConfig {
            max_age: Some(Duration::from_secs(86_400)),
            every: Duration::ZERO,
            ..RetentionConfig::default()
        },
        ..defaults()
    })
    .await;
    let store = h.engine.store().clone();
    add(&store, "id: bulky\nsteps:\n- {id: s, agent: simulate}\n").await;
    let mut ops = Vec::new();
    for n in 0..2_000u64 {
        let at = NOW - 10 * DAY + n as i64;
        ops.extend(run_ops(
            "bulky",
            &id_at(at, n),
            at,
            Some(RunStatus::Succeeded),
        ));
    }
    store.apply(&ops).await.expect("runs");
    let (before, _) = store.database_bytes().await.expect("size");
    let pruned = h.engine.prune(NOW).await.expect("prune");
    assert_eq!(pruned.runs, 2_000);
    let (after, free) = store.database_bytes().await.expect("size");
    assert!(
        after * 2 < before,
        "the file shrank: {before} → {after} bytes ({free} free)"
    );
    assert_eq!(free, 0, "no free pages kept");
    h.engine.expect_workflow_series().await.expect("scrape");
    let metrics = h.engine.metrics().encode();
    assert!(
        metrics.contains(&format!("flowscope_database_size_bytes {after}")),
        "{metrics}"
    );
}

/// `retention:` is checked on save: durations longer than zero, at least one run.
#[test]
fn a_workflows_retention_is_checked() {
    let problems = Workflow::parse(
        "id: r\nretention: {max_age: soon, max_runs: 0, keep_failed: 0s}\nsteps:\n- {id: s, agent: simulate}\n",
    )
    .expect_err("invalid");
    let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "retention.max_age",
            "retention.keep_failed",
            "retention.max_runs"
        ],
        "{problems:?}"
    );
    let fine = Workflow::parse(
        "id: r\nretention: {max_age: 30d, max_runs: 10000, keep_failed: 90d}\nsteps:\n- {id: s, agent: simulate}\n",
    )
    .expect("valid");
    // Printed back in the file's order.
    assert!(
        fine.to_yaml()
            .contains("retention:\n  max_age: 30d\n  max_runs: 10000\n  keep_failed: 90d\n"),
        "{}",
        fine.to_yaml()
    );
}
