//! Several processes on one PostgreSQL database, as real processes on loopback: a server and
//! `flowscope worker`s share the runs, keep each step's outcome to one record, survive a
//! worker killed with SIGKILL at random moments, refuse the writes of a worker that comes back
//! after its lease expired, and carry cancels and live events from one process to another.
//! The database itself is checked with SQL after each load.

use crate::common;
use crate::common::hub::Client;

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use common::procs::{all_finished, database, spawn, Proc};

use engine::store::{NewRun, Op};
use futures::StreamExt;
use reqwest::Method;
use serde_json::{json, Value};
use sqlx::PgPool;

/// Every step of every succeeded run has exactly one succeeded attempt, the attempts before
/// it were interrupted by a stopped process, and none came after it.
async fn each_outcome_recorded_once(pool: &PgPool) {
    let bad: Vec<(String, String, i64, i64, i64)> = sqlx::query_as(
        "SELECT s.run_id, s.step_id, \
           count(a.*) FILTER (WHERE a.status = 'succeeded'), \
           count(a.*) FILTER (WHERE a.status <> 'succeeded' AND a.error_kind IS DISTINCT FROM 'interrupted'), \
           COALESCE(max(a.attempt) - max(a.attempt) FILTER (WHERE a.status = 'succeeded'), -1) \
         FROM run_steps s JOIN runs r ON r.id = s.run_id \
         LEFT JOIN step_attempts a ON a.run_id = s.run_id AND a.step_id = s.step_id \
         WHERE r.status = 'succeeded' GROUP BY s.run_id, s.step_id \
         HAVING count(a.*) FILTER (WHERE a.status = 'succeeded') <> 1 \
            OR count(a.*) FILTER (WHERE a.status <> 'succeeded' AND a.error_kind IS DISTINCT FROM 'interrupted') > 0 \
            OR max(a.attempt) <> max(a.attempt) FILTER (WHERE a.status = 'succeeded')",
    )
    .fetch_all(pool)
    .await
    .expect("check attempts");
    assert!(
        bad.is_empty(),
        "steps without exactly one recorded outcome (run, step, successes, other failures, attempts after success): {bad:?}"
    );
}

const CHAIN: &str = "id: chain\nsteps:\n- {id: a, agent: simulate, with: {latency: 5ms, output: 1}}\n- {id: b, agent: simulate, needs: [a], with: {latency: 5ms}}\n- {id: c, agent: transform, needs: [b], with: {jq: '.steps.a.output + 1'}}\n";
const FAN: &str = "id: fan\nsteps:\n- {id: start, agent: simulate}\n- {id: b1, agent: simulate, needs: [start], with: {latency: 3ms}}\n- {id: b2, agent: simulate, needs: [start], with: {latency: 3ms}}\n- {id: b3, agent: simulate, needs: [start], with: {latency: 3ms}}\n- {id: b4, agent: simulate, needs: [start], with: {latency: 3ms}}\n- {id: join, agent: simulate, needs: [b1, b2, b3, b4]}\n";
const LIMITED: &str =
    "id: limited\nconcurrency: 2\nsteps:\n- {id: only, agent: simulate, with: {latency: 20ms}}\n";
const FLAKY: &str = "id: flaky\nsteps:\n- {id: fails, agent: simulate, with: {failure_rate: 1}, retry: {max_attempts: 2, backoff: 1ms}}\n";

#[tokio::test]
async fn a_server_and_three_workers_run_1000_runs_each_step_recorded_once() {
    let db = database("fs_cluster_load").await;
    let server = spawn("serve", &db, &[]);
    let workers: Vec<Proc> = (0..3).map(|_| spawn("worker", &db, &[])).collect();
    let client = Client::new(server.base.as_deref().expect("base"));
    for yaml in [CHAIN, FAN, LIMITED, FLAKY] {
        client.create(yaml).await;
    }
    let mix: Vec<&str> = (0..1000)
        .map(|i| match i % 10 {
            0..=3 => "chain",
            4..=6 => "fan",
            7 => "limited",
            _ => "flaky",
        })
        .collect();
    let ids: Vec<String> = futures::stream::iter(mix.iter())
        .map(|w| client.trigger(w, json!({})))
        .buffer_unordered(8)
        .collect()
        .await;
    assert_eq!(ids.len(), 1000);

    let pool = PgPool::connect(&db).await.expect("connect");
    all_finished(&pool).await;
    let by_status: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT workflow_id, status, count(*) FROM runs GROUP BY workflow_id, status ORDER BY 1, 2",
    )
    .fetch_all(&pool)
    .await
    .expect("statuses");
    assert_eq!(
        by_status,
        vec![
            ("chain".into(), "succeeded".into(), 400),
            ("fan".into(), "succeeded".into(), 300),
            ("flaky".into(), "failed".into(), 200),
            ("limited".into(), "succeeded".into(), 100),
        ]
    );
    // Nothing was lost or done twice: exactly the attempts the shapes make.
    let attempts: i64 = sqlx::query_scalar("SELECT count(*) FROM step_attempts")
        .fetch_one(&pool)
        .await
        .expect("attempts");
    assert_eq!(attempts, 400 * 3 + 300 * 6 + 100 + 200 * 2);
    each_outcome_recorded_once(&pool).await;
    let c: Value = serde_json::from_str(
        &sqlx::query_scalar::<_, String>(
            "SELECT output FROM run_steps WHERE step_id = 'c' LIMIT 1",
        )
        .fetch_one(&pool)
        .await
        .expect("output"),
    )
    .expect("json");
    assert_eq!(
        c,
        json!(2),
        "templates and outputs cross steps as in one process"
    );

    // The work was shared.
    let owners: Vec<(String, i64)> =
        sqlx::query_as("SELECT owner, count(*) FROM runs GROUP BY owner ORDER BY 2 DESC")
            .fetch_all(&pool)
            .await
            .expect("owners");
    eprintln!("runs per worker: {owners:?}");
    assert!(owners.iter().all(|(o, _)| !o.is_empty()));
    assert!(
        owners.len() >= 2,
        "more than one process ran runs: {owners:?}"
    );

    // `concurrency: 2` held across the processes: never three runs of `limited` at once.
    let spans: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT started_at, finished_at FROM runs WHERE workflow_id = 'limited' ORDER BY started_at",
    )
    .fetch_all(&pool)
    .await
    .expect("spans");
    let most = spans
        .iter()
        .map(|(s, _)| spans.iter().filter(|(s2, f2)| s2 <= s && s < f2).count())
        .max()
        .unwrap_or(0);
    assert!(most <= 2, "at most 2 runs of `limited` at once, saw {most}");
    drop(workers);
}

#[tokio::test]
async fn killing_workers_at_random_moments_loses_no_run_and_repeats_no_outcome() {
    let db = database("fs_cluster_kill").await;
    let server = spawn("serve", &db, &[]);
    let client = Client::new(server.base.as_deref().expect("base"));
    let sturdy = "id: sturdy\nsteps:\n- {id: a, agent: simulate, with: {latency: 30ms, output: 1}}\n- {id: b, agent: simulate, needs: [a], with: {latency: 30ms}}\n- {id: c, agent: simulate, needs: [a], with: {latency: 50ms}}\n- {id: d, agent: transform, needs: [b, c], with: {jq: '.steps.a.output + 1'}}\n";
    client.create(sturdy).await;
    let mut workers: Vec<Proc> = (0..3).map(|_| spawn("worker", &db, &[])).collect();

    let trigger_all = {
        let client = client.clone();
        tokio::spawn(async move {
            let mut ids = Vec::new();
            for _ in 0..300 {
                ids.push(client.trigger("sturdy", json!({})).await);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            ids
        })
    };
    // A different worker at a different moment each time (a fixed seed: reproducible).
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(150 + next(500))).await;
        let victim = next(workers.len() as u64) as usize;
        let mut gone = workers.remove(victim);
        gone.child.kill().expect("SIGKILL");
        let _ = gone.child.wait();
        workers.push(spawn("worker", &db, &[]));
    }
    let killed_at = Instant::now();
    let ids = trigger_all.await.expect("triggers");
    assert_eq!(ids.len(), 300);

    let pool = PgPool::connect(&db).await.expect("connect");
    all_finished(&pool).await;
    eprintln!(
        "all runs finished {:.1}s after the last kill (lease 1s)",
        killed_at.elapsed().as_secs_f64()
    );
    let statuses: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, count(*) FROM runs GROUP BY status")
            .fetch_all(&pool)
            .await
            .expect("statuses");
    assert_eq!(statuses, vec![("succeeded".to_string(), 300)]);
    each_outcome_recorded_once(&pool).await;
    let outputs: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT output FROM run_steps WHERE step_id = 'd'")
            .fetch_all(&pool)
            .await
            .expect("outputs");
    assert_eq!(outputs, vec!["2".to_string()]);
    let interrupted: i64 =
        sqlx::query_scalar("SELECT count(*) FROM step_attempts WHERE error_kind = 'interrupted'")
            .fetch_one(&pool)
            .await
            .expect("interrupted");
    eprintln!("attempts interrupted by the kills and run again: {interrupted}");
}

const SLOW: &str = "id: slow\nsteps:\n- {id: wait, agent: delay, with: {duration: 3s}}\n- {id: after, agent: simulate, needs: [wait], with: {output: done}}\n";

/// The run's owner and whether its first step has started.
async fn owner_once_started(pool: &PgPool, run: &str) -> String {
    for _ in 0..200 {
        let row: Option<(Option<String>, String)> =
            sqlx::query_as("SELECT r.owner, s.status FROM runs r JOIN run_steps s ON s.run_id = r.id AND s.step_id = 'wait' WHERE r.id = $1")
                .bind(run)
                .fetch_optional(pool)
                .await
                .expect("owner");
        if let Some((Some(owner), status)) = row {
            if status == "running" {
                return owner;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("run {run} never started");
}

#[tokio::test]
async fn a_worker_back_after_its_lease_expired_writes_nothing_and_joins_again() {
    let db = database("fs_cluster_stale").await;
    // This server runs nothing itself: the worker does.
    let server = spawn("serve", &db, &[("FLOWSCOPE_WORKER_MAX_RUNS", "0")]);
    let client = Client::new(server.base.as_deref().expect("base"));
    client.create(SLOW).await;
    let first = spawn("worker", &db, &[]);
    let run = client.trigger("slow", json!({})).await;
    let pool = PgPool::connect(&db).await.expect("connect");
    let owner = owner_once_started(&pool, &run).await;

    // Frozen mid-step (a long GC pause, a VM migration): its lease runs out.
    let stop = Command::new("kill")
        .args(["-STOP", &first.pid()])
        .status()
        .expect("kill");
    assert!(stop.success());
    let second = spawn("worker", &db, &[]);
    all_finished(&pool).await;
    let new_owner: String = sqlx::query_scalar("SELECT owner FROM runs WHERE id = $1")
        .bind(&run)
        .fetch_one(&pool)
        .await
        .expect("owner");
    assert_ne!(new_owner, owner, "another worker finished the run");

    // Thawed: its delay is over and it would record the step's success.
    let cont = Command::new("kill")
        .args(["-CONT", &first.pid()])
        .status()
        .expect("kill");
    assert!(cont.success());
    let mut rejoined = false;
    for _ in 0..100 {
        if first.logged("lease expired") {
            rejoined = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(rejoined, "the thawed worker noticed its lease had expired");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let attempts: Vec<(i64, String, Option<String>)> = sqlx::query_as(
        "SELECT attempt, status, error_kind FROM step_attempts WHERE run_id = $1 AND step_id = 'wait' ORDER BY attempt",
    )
    .bind(&run)
    .fetch_all(&pool)
    .await
    .expect("attempts");
    assert_eq!(
        attempts,
        vec![
            (1, "failed".into(), Some("interrupted".into())),
            (2, "succeeded".into(), None)
        ],
        "the stale worker's late success was not recorded"
    );
    let status: String = sqlx::query_scalar("SELECT status FROM runs WHERE id = $1")
        .bind(&run)
        .fetch_one(&pool)
        .await
        .expect("status");
    assert_eq!(status, "succeeded");
    // It is alive and working again, under a new id.
    let workers: Vec<(String, String)> = sqlx::query_as("SELECT id, kind FROM workers")
        .fetch_all(&pool)
        .await
        .expect("workers");
    assert!(
        !workers.iter().any(|(id, _)| *id == owner),
        "the old id is gone: {workers:?}"
    );
    assert_eq!(workers.iter().filter(|(_, k)| k == "worker").count(), 2);
    let again = client.trigger("slow", json!({})).await;
    all_finished(&pool).await;
    let status: String = sqlx::query_scalar("SELECT status FROM runs WHERE id = $1")
        .bind(&again)
        .fetch_one(&pool)
        .await
        .expect("status");
    assert_eq!(status, "succeeded");
    drop(second);
}

#[tokio::test]
async fn a_run_on_a_worker_is_watched_live_and_cancelled_from_the_server() {
    let db = database("fs_cluster_remote").await;
    let server = spawn("serve", &db, &[("FLOWSCOPE_WORKER_MAX_RUNS", "0")]);
    let client = Client::new(server.base.as_deref().expect("base"));
    client
        .create(
            "id: endless\nconcurrency: 1\nsteps:\n- {id: first, agent: simulate, with: {latency: 50ms}}\n- {id: wait, agent: simulate, needs: [first], with: {latency: 10m}}\n",
        )
        .await;
    let worker = spawn("worker", &db, &[]);
    let run = client.trigger("endless", json!({})).await;
    // A second run waits for the first (concurrency 1), unclaimed.
    let queued = client.trigger("endless", json!({})).await;

    // The server runs nothing, so every event on its stream came from the worker.
    let mut stream = client
        .request(Method::GET, &format!("/api/v1/runs/{run}/events"))
        .send()
        .await
        .expect("events");
    // Read `change` events (after the snapshot) until the delay step runs.
    let mut buffer = String::new();
    let mut changes: Vec<Value> = Vec::new();
    let running = |changes: &[Value]| {
        changes
            .iter()
            .any(|c| c["step_id"] == "wait" && c["status"] == "running")
    };
    while !running(&changes) {
        let chunk = tokio::time::timeout(Duration::from_secs(30), stream.chunk())
            .await
            .expect("an event within 30 s")
            .expect("stream open")
            .expect("bytes");
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            if block.contains("event: change") {
                let data = block
                    .lines()
                    .filter_map(|l| l.strip_prefix("data: "))
                    .collect::<String>();
                changes.push(serde_json::from_str(&data).expect("event json"));
            }
        }
    }
    assert!(
        changes
            .iter()
            .any(|c| c["step_id"] == "first" && c["status"] == "succeeded"),
        "{changes:?}"
    );

    let pool = PgPool::connect(&db).await.expect("connect");
    let (owner, server_kind): (String, i64) = sqlx::query_as(
        "SELECT r.owner, (SELECT count(*) FROM workers w WHERE w.id = r.owner AND w.kind = 'worker') FROM runs r WHERE r.id = $1",
    )
    .bind(&run)
    .fetch_one(&pool)
    .await
    .expect("owner");
    assert_eq!(server_kind, 1, "the worker {owner} runs it");

    // Cancelled on the server, stopped on the worker; the queued one ends without a slot.
    for id in [&queued, &run] {
        let cancel = client.request(Method::POST, &format!("/api/v1/runs/{id}/cancel"));
        let (status, _) = client.send(cancel).await;
        assert!(status.is_success(), "{status}");
    }
    all_finished(&pool).await;
    let statuses: HashMap<String, String> = sqlx::query_as("SELECT id, status FROM runs")
        .fetch_all(&pool)
        .await
        .expect("statuses")
        .into_iter()
        .collect();
    assert_eq!(statuses[&run], "cancelled");
    assert_eq!(statuses[&queued], "cancelled");
    let wait: (String, Option<String>) = sqlx::query_as(
        "SELECT status, error_kind FROM step_attempts WHERE run_id = $1 AND step_id = 'wait'",
    )
    .bind(&run)
    .fetch_one(&pool)
    .await
    .expect("attempt");
    assert_eq!(wait.0, "cancelled", "the worker closed the delay's attempt");

    // The worker's own /metrics counts the run it ran (the server ran none).
    let scrape = Client::new(worker.base.as_deref().expect("metrics address"));
    let counted =
        "workflow_runs_total{workflow=\"endless\",status=\"cancelled\",trigger=\"api\"} 1";
    let mut text = String::new();
    for _ in 0..100 {
        text = scrape
            .request(Method::GET, "/metrics")
            .send()
            .await
            .expect("scrape the worker")
            .text()
            .await
            .expect("text");
        if text.contains(counted) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(text.contains(counted), "{text}");
    assert!(text.ends_with("# EOF\n"), "OpenMetrics text");

    // The settings page lists both processes, this server marked as such.
    let settings = client
        .request(Method::GET, "/settings")
        .send()
        .await
        .expect("settings")
        .text()
        .await
        .expect("html");
    assert!(settings.contains("(this server)"), "{settings}");
    assert!(
        settings.contains(&format!(":{}", worker.pid())),
        "the worker is listed: {settings}"
    );
}

/// The claim and fence protocol on the store directly, with a short lease.
#[tokio::test]
async fn claims_never_overlap_and_the_fence_refuses_a_lost_claim() {
    let admin = engine::store::scratch::admin_url();
    let store = engine::store::scratch::create_database(&admin, "fs_cluster_claims")
        .await
        .expect("db");
    store.migrate().await.expect("migrate");
    let yaml = "id: w\nsteps:\n- {id: s, agent: simulate}\n";
    store
        .create_workflow(&engine::model::Workflow::parse(yaml).expect("valid"), yaml)
        .await
        .expect("create");
    let ops: Vec<Op> = (0..400)
        .map(|i| {
            Op::CreateRun(Box::new(NewRun {
                id: format!("run-{i:04}"),
                workflow_id: "w".into(),
                workflow_version: 1,
                trigger: "api".into(),
                actor: None,
                inputs: json!({}),
                parent_run_id: None,
                traceparent: None,
                created_at: 1,
                step_ids: vec!["s".into()],
                reused: vec![],
                concurrency: None,
                owner: None,
                caller: None,
                labels: Default::default(),
            }))
        })
        .collect();
    store.apply(&ops).await.expect("runs");

    // Four claimers at once, in small batches: every run exactly once.
    let mut tasks = Vec::new();
    for w in 0..4 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let me = format!("w{w}");
            store
                .register_worker(&me, &me, "worker")
                .await
                .expect("register");
            let mut got = Vec::new();
            loop {
                let batch = store.claim_new(&me, 7).await.expect("claim");
                if batch.is_empty() {
                    return got;
                }
                assert!(batch.iter().all(|r| r.steps.len() == 1));
                got.extend(batch.into_iter().map(|r| r.run.id));
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("claimer"));
    }
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!((n, all.len()), (400, 400), "each run claimed once");

    // w0's lease (200 ms here) runs out; w1, still beating, takes its runs over.
    let lease = 200;
    let pool = PgPool::connect(&engine::store::scratch::database_url(
        &admin,
        "fs_cluster_claims",
    ))
    .await
    .expect("pool");
    let w0_run: String = sqlx::query_scalar("SELECT id FROM runs WHERE owner = 'w0' LIMIT 1")
        .fetch_one(&pool)
        .await
        .expect("a run of w0");
    pool.close().await;
    let start = |run: &str| Op::StartRun {
        run_id: run.to_string(),
        at: 2,
        trace: None,
    };
    store
        .apply_fenced(&[start(&w0_run)], Some("w0"))
        .await
        .expect("its own run");
    let refused = store.apply_fenced(&[start(&w0_run)], Some("w1")).await;
    assert!(
        refused.as_ref().is_err_and(|e| e.is_fenced()),
        "{refused:?}"
    );
    let fresh = store.claim_orphans("w1", 60_000, 1000).await.expect("none");
    assert!(fresh.is_empty(), "no lease of a minute has expired yet");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        store.heartbeat("w1", 60_000).await.expect("beat"),
        Some(4),
        "w1 is alive, and so are the other three within a minute"
    );
    let taken = store
        .claim_orphans("w1", lease, 1000)
        .await
        .expect("orphans");
    assert!(taken.iter().any(|r| r.run.id == w0_run));
    assert_eq!(
        store.heartbeat("w0", lease).await.expect("beat"),
        None,
        "w0 learns it lost its lease"
    );
    let stale = store
        .apply_fenced(
            &[Op::FinishRun {
                run_id: w0_run.clone(),
                status: engine::records::RunStatus::Succeeded,
                error: None,
                at: 3,
                frees_slot: false,
                outputs: None,
                search: None,
            }],
            Some("w0"),
        )
        .await;
    assert!(stale.as_ref().is_err_and(|e| e.is_fenced()), "{stale:?}");
    let detail = store.run_detail(&w0_run).await.expect("run");
    assert_eq!(detail.run.status, engine::records::RunStatus::Running);
    store
        .apply_fenced(
            &[Op::FinishRun {
                run_id: w0_run.clone(),
                status: engine::records::RunStatus::Succeeded,
                error: None,
                at: 3,
                frees_slot: false,
                outputs: None,
                search: None,
            }],
            Some("w1"),
        )
        .await
        .expect("the new owner writes");
    store.close().await;
    let _ = engine::store::scratch::drop_database(&admin, "fs_cluster_claims").await;
}

/// A fan-out of eight 1.5 s branches, each output its own name, joined by a `transform` that
/// reads them all: the join's output proves every branch's output reached the run's owner.
const WIDE: &str = "id: wide\nsteps:\n- {id: start, agent: simulate, with: {output: 0}}\n\
- {id: b1, agent: simulate, needs: [start], with: {latency: 1500ms, output: b1}}\n\
- {id: b2, agent: simulate, needs: [start], with: {latency: 1500ms, output: b2}}\n\
- {id: b3, agent: simulate, needs: [start], with: {latency: 1500ms, output: b3}}\n\
- {id: b4, agent: simulate, needs: [start], with: {latency: 1500ms, output: b4}}\n\
- {id: b5, agent: simulate, needs: [start], with: {latency: 1500ms, output: b5}}\n\
- {id: b6, agent: simulate, needs: [start], with: {latency: 1500ms, output: b6}}\n\
- {id: b7, agent: simulate, needs: [start], with: {latency: 1500ms, output: b7}}\n\
- {id: b8, agent: simulate, needs: [start], with: {latency: 1500ms, output: b8}}\n\
- {id: join, agent: transform, needs: [b1, b2, b3, b4, b5, b6, b7, b8], with: {jq: '[.steps[] | .output] | map(select(type == \"string\")) | sort | join(\",\")'}}\n";

/// Three workers with two step slots each, beside a server that runs nothing.
fn narrow_workers(db: &str) -> Vec<Proc> {
    ["w1", "w2", "w3"]
        .iter()
        .map(|name| {
            spawn(
                "worker",
                db,
                &[
                    ("FLOWSCOPE_WORKER_MAX_STEPS", "2"),
                    ("FLOWSCOPE_WORKER_NAME", name),
                ],
            )
        })
        .collect()
}

async fn join_output(pool: &PgPool, run: &str) -> (String, Option<String>) {
    sqlx::query_as(
        "SELECT r.status, s.output FROM runs r JOIN run_steps s ON s.run_id = r.id AND s.step_id = 'join' WHERE r.id = $1",
    )
    .bind(run)
    .fetch_one(pool)
    .await
    .expect("run")
}

#[tokio::test]
async fn ready_steps_beyond_the_owners_slots_run_on_other_workers_each_recorded_once() {
    let db = database("fs_cluster_steps").await;
    let server = spawn("serve", &db, &[("FLOWSCOPE_WORKER_MAX_RUNS", "0")]);
    let client = Client::new(server.base.as_deref().expect("base"));
    client.create(WIDE).await;
    let _workers = narrow_workers(&db);
    let pool = PgPool::connect(&db).await.expect("connect");
    let run = client.trigger("wide", json!({})).await;
    all_finished(&pool).await;

    let (status, output) = join_output(&pool, &run).await;
    assert_eq!(status, "succeeded");
    assert_eq!(
        output.as_deref(),
        Some("\"b1,b2,b3,b4,b5,b6,b7,b8\""),
        "every branch's output, wherever it ran, reached the join"
    );
    each_outcome_recorded_once(&pool).await;
    let attempts: i64 = sqlx::query_scalar("SELECT count(*) FROM step_attempts WHERE run_id = $1")
        .bind(&run)
        .fetch_one(&pool)
        .await
        .expect("attempts");
    assert_eq!(attempts, 10, "one attempt per step");
    // The owner had two slots for eight branches: the others ran the rest.
    let by_worker: Vec<(String, i64)> = sqlx::query_as(
        "SELECT worker, count(*) FROM step_attempts WHERE run_id = $1 AND step_id LIKE 'b%' GROUP BY worker ORDER BY worker",
    )
    .bind(&run)
    .fetch_all(&pool)
    .await
    .expect("workers");
    eprintln!("branches by worker: {by_worker:?}");
    assert!(
        by_worker.len() >= 2,
        "the branches ran on more than one worker: {by_worker:?}"
    );
    assert!(by_worker.iter().all(|(_, n)| *n <= 4), "{by_worker:?}");
    // The run page names the worker of each attempt.
    let page = client
        .request(Method::GET, &format!("/runs/{run}"))
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("text");
    for (worker, _) in &by_worker {
        assert!(
            page.contains(&format!("class=\"attempt-worker\">{worker}<")),
            "the run page shows {worker}"
        );
    }
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM step_offers")
        .fetch_one(&pool)
        .await
        .expect("offers");
    assert_eq!(left, 0, "every offer ended with its step's outcome");
}

#[tokio::test]
async fn a_worker_killed_while_running_anothers_step_loses_nothing() {
    let db = database("fs_cluster_steps_kill").await;
    let server = spawn("serve", &db, &[("FLOWSCOPE_WORKER_MAX_RUNS", "0")]);
    let client = Client::new(server.base.as_deref().expect("base"));
    client.create(WIDE).await;
    let mut workers = narrow_workers(&db);
    let pool = PgPool::connect(&db).await.expect("connect");
    let run = client.trigger("wide", json!({})).await;

    // Wait for a worker running a step of a run it does not own, then SIGKILL it.
    let mut claimant = None;
    for _ in 0..200 {
        claimant = sqlx::query_scalar(
            "SELECT w.name FROM step_offers o JOIN workers w ON w.id = o.claimed_by \
             JOIN runs r ON r.id = o.run_id WHERE r.owner <> o.claimed_by AND o.result IS NULL LIMIT 1",
        )
        .fetch_optional(&pool)
        .await
        .expect("claims");
        if claimant.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let claimant: String = claimant.expect("another worker claimed a step");
    let victim = ["w1", "w2", "w3"]
        .iter()
        .position(|n| *n == claimant)
        .expect("a known worker");
    let mut gone = workers.remove(victim);
    gone.child.kill().expect("SIGKILL");
    let _ = gone.child.wait();
    let killed_at = Instant::now();

    all_finished(&pool).await;
    eprintln!(
        "the run finished {:.1}s after {claimant} was killed (lease 1s, steps 1.5s)",
        killed_at.elapsed().as_secs_f64()
    );
    let (status, output) = join_output(&pool, &run).await;
    assert_eq!(status, "succeeded");
    assert_eq!(output.as_deref(), Some("\"b1,b2,b3,b4,b5,b6,b7,b8\""));
    each_outcome_recorded_once(&pool).await;
    // Its steps were claimed again and run elsewhere under the same attempt.
    let on_victim: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM step_attempts WHERE run_id = $1 AND worker = $2 AND status = 'succeeded' AND step_id LIKE 'b%'",
    )
    .bind(&run)
    .bind(&claimant)
    .fetch_one(&pool)
    .await
    .expect("attempts");
    assert_eq!(
        on_victim, 0,
        "no branch's outcome came from the killed worker"
    );
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM step_offers")
        .fetch_one(&pool)
        .await
        .expect("offers");
    assert_eq!(left, 0);
}

#[tokio::test]
async fn cancelling_a_run_stops_its_steps_on_other_workers() {
    let db = database("fs_cluster_steps_cancel").await;
    let server = spawn("serve", &db, &[("FLOWSCOPE_WORKER_MAX_RUNS", "0")]);
    let client = Client::new(server.base.as_deref().expect("base"));
    let long = "id: long\nsteps:\n- {id: a, agent: simulate, with: {latency: 1h}}\n- {id: b, agent: simulate, with: {latency: 1h}}\n- {id: c, agent: simulate, with: {latency: 1h}}\n";
    client.create(long).await;
    let workers: Vec<Proc> = ["w1", "w2"]
        .iter()
        .map(|name| {
            spawn(
                "worker",
                &db,
                &[
                    ("FLOWSCOPE_WORKER_MAX_STEPS", "1"),
                    ("FLOWSCOPE_WORKER_NAME", name),
                ],
            )
        })
        .collect();
    let pool = PgPool::connect(&db).await.expect("connect");
    let run = client.trigger("long", json!({})).await;
    // One slot each: the owner runs one delay, the other worker claims one, one waits.
    let mut claimant: Option<String> = None;
    for _ in 0..200 {
        claimant = sqlx::query_scalar(
            "SELECT w.name FROM step_offers o JOIN workers w ON w.id = o.claimed_by \
             JOIN runs r ON r.id = o.run_id WHERE r.owner <> o.claimed_by LIMIT 1",
        )
        .fetch_optional(&pool)
        .await
        .expect("claims");
        if claimant.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let claimant = claimant.expect("the other worker claimed a step");
    let cancel = client.request(Method::POST, &format!("/api/v1/runs/{run}/cancel"));
    let (status, _) = client.send(cancel).await;
    assert!(status.is_success(), "{status}");
    all_finished(&pool).await;
    let remote = &workers[if claimant == "w1" { 0 } else { 1 }];
    let mut stopped = false;
    for _ in 0..200 {
        if remote.logged("stopped a step claimed from another worker") {
            stopped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        stopped,
        "{claimant} stopped the delay it ran for the cancelled run"
    );
    let steps: Vec<(String, String)> =
        sqlx::query_as("SELECT step_id, status FROM run_steps WHERE run_id = $1 ORDER BY step_id")
            .bind(&run)
            .fetch_all(&pool)
            .await
            .expect("steps");
    assert!(
        steps.iter().all(|(_, s)| s == "cancelled"),
        "every step ends cancelled: {steps:?}"
    );
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM step_offers")
        .fetch_one(&pool)
        .await
        .expect("offers");
    assert_eq!(left, 0, "the cancelled run's offers are gone");
}

#[tokio::test]
async fn step_offers_are_claimed_once_withdrawn_only_unclaimed_and_lost_claims_return() {
    let admin = engine::store::scratch::admin_url();
    let store = engine::store::scratch::create_database(&admin, "fs_cluster_offers")
        .await
        .expect("db");
    store.migrate().await.expect("migrate");
    let offer = |step: String, agent: &str| Op::OfferStep {
        run_id: "run-1".into(),
        step_id: step,
        attempt: 1,
        owner: "owner".into(),
        agent: agent.into(),
        payload: "{}".into(),
        at: 1,
    };
    let mut ops: Vec<Op> = (0..200)
        .map(|i| offer(format!("s{i:03}"), "simulate"))
        .collect();
    ops.push(offer("only-shell".into(), "shell"));
    store.apply(&ops).await.expect("offers");

    // Four claimers at once, in small batches: every offer exactly once, and none of an
    // agent they do not run.
    let mut tasks = Vec::new();
    for w in 0..4 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let me = format!("w{w}");
            store
                .register_worker(&me, &me, "worker")
                .await
                .expect("register");
            let mut got = Vec::new();
            loop {
                let batch = store
                    .claim_steps(&me, &["simulate", "transform"], 7)
                    .await
                    .expect("claim");
                if batch.is_empty() {
                    return got;
                }
                got.extend(batch.into_iter().map(|s| s.step_id));
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("claimer"));
    }
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!((n, all.len()), (200, 200), "each offer claimed once");
    assert!(!all.contains(&"only-shell".to_string()));

    // The owner can take back only what nobody claimed.
    assert!(!store
        .withdraw_offer("run-1", "s000", 1)
        .await
        .expect("withdraw"));
    assert!(store
        .withdraw_offer("run-1", "only-shell", 1)
        .await
        .expect("withdraw"));

    // w0 falls silent past its lease (30 s here): its claims return to the pool, and its
    // late report is refused; whoever claims the step again reports it, once.
    let pool = PgPool::connect(&engine::store::scratch::database_url(
        &admin,
        "fs_cluster_offers",
    ))
    .await
    .expect("pool");
    let w0_step: String = sqlx::query_scalar(
        "SELECT step_id FROM step_offers WHERE claimed_by = 'w0' ORDER BY step_id LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .expect("a step of w0");
    sqlx::query("UPDATE workers SET heartbeat_at = heartbeat_at - 60000 WHERE id = 'w0'")
        .execute(&pool)
        .await
        .expect("silence w0");
    let w0_claims: i64 =
        sqlx::query_scalar("SELECT count(*) FROM step_offers WHERE claimed_by = 'w0'")
            .fetch_one(&pool)
            .await
            .expect("count");
    let returned = store.reoffer_lost_steps(30_000).await.expect("reoffer");
    assert_eq!(
        returned as i64, w0_claims,
        "w0's claims, and only those, returned"
    );
    let stale = engine::store::cluster::ClaimedStep {
        run_id: "run-1".into(),
        step_id: w0_step.clone(),
        attempt: 1,
        agent: "simulate".into(),
        payload: "{}".into(),
    };
    assert!(
        !store
            .report_step("w0", &stale, "\"late\"")
            .await
            .expect("report"),
        "a claim that lapsed cannot report"
    );
    let again = store
        .claim_steps("w1", &["simulate"], 500)
        .await
        .expect("claim again");
    assert_eq!(again.len() as u64, returned);
    let step = again
        .into_iter()
        .find(|s| s.step_id == w0_step)
        .expect("w0's step");
    assert!(store
        .report_step("w1", &step, "\"done\"")
        .await
        .expect("report"));
    assert!(
        !store
            .report_step("w1", &step, "\"twice\"")
            .await
            .expect("report"),
        "a result is written once"
    );
    let results = store.step_results("run-1").await.expect("results");
    assert_eq!(results, vec![(w0_step, 1, "\"done\"".to_string())]);
    pool.close().await;
}

#[tokio::test]
async fn a_fan_out_wider_than_the_only_workers_slots_finishes_through_its_own_withdrawals() {
    let db = database("fs_cluster_steps_one").await;
    // The server runs nothing, so the worker is not alone and offers what it has no slot for;
    // nobody else claims, so it takes its own offers back as its slots free up: 150 of them,
    // many more at once than its 16 database connections.
    let server = spawn("serve", &db, &[("FLOWSCOPE_WORKER_MAX_RUNS", "0")]);
    let client = Client::new(server.base.as_deref().expect("base"));
    let mut yaml = "id: big\nsteps:\n- {id: root, agent: simulate}\n".to_string();
    for i in 0..200 {
        yaml.push_str(&format!(
            "- {{id: w{i}, agent: simulate, needs: [root], with: {{latency: 50ms, output: {i}}}}}\n"
        ));
    }
    yaml.push_str("- {id: sum, agent: transform, needs: [");
    yaml.push_str(
        &(0..200)
            .map(|i| format!("w{i}"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    yaml.push_str("], with: {jq: '[.steps[] | .output | numbers] | add'}}\n");
    client.create(&yaml).await;
    let worker = spawn(
        "worker",
        &db,
        &[
            ("FLOWSCOPE_WORKER_MAX_STEPS", "50"),
            ("FLOWSCOPE_WORKER_NAME", "only"),
        ],
    );
    let pool = PgPool::connect(&db).await.expect("connect");
    let run = client.trigger("big", json!({})).await;
    all_finished(&pool).await;
    let (status, output): (String, Option<String>) = sqlx::query_as(
        "SELECT r.status, s.output FROM runs r JOIN run_steps s ON s.run_id = r.id AND s.step_id = 'sum' WHERE r.id = $1",
    )
    .bind(&run)
    .fetch_one(&pool)
    .await
    .expect("run");
    assert_eq!(status, "succeeded");
    assert_eq!(output.as_deref(), Some("19900"), "0 + 1 + … + 199");
    each_outcome_recorded_once(&pool).await;
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM step_offers")
        .fetch_one(&pool)
        .await
        .expect("offers");
    assert_eq!(left, 0);
    drop(worker);
}
