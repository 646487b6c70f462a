//! `flowscope bench --prune N`: N finished runs of the past pruned by retention while the
//! engine runs 3-step runs from 200 clients, on SQLite and PostgreSQL. How long the pass took,
//! and the 3-step throughput without it and during it; the database before and after.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::executor::{Engine, EngineConfig, RetentionConfig};
use engine::model::Workflow;
use engine::records::{RunStatus, StepStatus};
use engine::store::{Op, Store};
use serde_json::json;

const OLD: &str = "id: old\nretention: {max_age: 30d}\nsteps:\n- {id: s, agent: simulate}\n";
const CLIENTS: usize = 200;
const DAY: i64 = 86_400_000;

/// N finished runs of `old`, 60 to 90 days old, each with a step and its attempt.
async fn fill(store: &Store, n: usize, now: i64) -> anyhow::Result<()> {
    let output = json!({"result": "x".repeat(200)});
    let mut ops = Vec::with_capacity(4_000);
    for i in 0..n as u64 {
        let at = now - 90 * DAY + (i as i64 * 30 * DAY / n.max(1) as i64);
        let id = crate::id_at(at, i);
        ops.push(crate::past_run(
            &id,
            "old",
            at,
            json!({"i": i}),
            Default::default(),
        ));
        ops.push(Op::AttemptStarted {
            run_id: id.clone(),
            step_id: "s".into(),
            attempt: 1,
            ready_at: at,
            at,
            input: json!({}),
            resumed: false,
            span_id: None,
            agent: "simulate".into(),
            worker: None,
        });
        ops.push(Op::AttemptFinished {
            run_id: id.clone(),
            step_id: "s".into(),
            attempt: 1,
            status: StepStatus::Succeeded,
            output: Some(output.clone()),
            error: None,
            logs: vec![],
            at: at + 5,
        });
        ops.push(Op::FinishRun {
            run_id: id,
            status: RunStatus::Succeeded,
            error: None,
            at: at + 5,
            frees_slot: false,
            outputs: None,
            search: None,
        });
        crate::apply_from(store, &mut ops, 4_000).await?;
    }
    crate::apply_from(store, &mut ops, 1).await
}

/// 3-step runs from `CLIENTS` clients until `stop`; counts the runs that ended.
fn load(
    engine: &Engine,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
) -> Vec<tokio::task::JoinHandle<anyhow::Result<()>>> {
    (0..CLIENTS)
        .map(|_| {
            let (engine, stop, done) = (engine.clone(), stop.clone(), done.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let run = engine
                        .trigger(engine::executor::TriggerRequest {
                            workflow_id: "three".into(),
                            trigger: "bench".into(),
                            ..Default::default()
                        })
                        .await?;
                    engine.wait(&run.id).await?;
                    done.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            })
        })
        .collect()
}

/// Runs per second of the 3-step load over `secs`, with `during` running beside it.
async fn throughput<F: std::future::Future>(
    engine: &Engine,
    secs: f64,
    during: Option<F>,
) -> anyhow::Result<(f64, Option<(F::Output, f64)>)> {
    let (stop, done) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let tasks = load(engine, stop.clone(), done.clone());
    let t = Instant::now();
    let side = match during {
        Some(f) => {
            let out = f.await;
            Some((out, t.elapsed().as_secs_f64()))
        }
        None => {
            tokio::time::sleep(Duration::from_secs_f64(secs)).await;
            None
        }
    };
    let took = t.elapsed().as_secs_f64();
    let n = done.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await??;
    }
    Ok((n as f64 / took, side))
}

async fn one_store(label: &str, url: &str, n: usize) -> anyhow::Result<()> {
    let store = Store::connect(url).await?;
    store.migrate().await?;
    let three = crate::chain("three", 3, "0ms");
    for doc in [OLD, three.as_str()] {
        let w = Workflow::parse(doc).map_err(|p| anyhow::anyhow!("{p:?}"))?;
        store.create_workflow(&w, doc).await?;
    }
    let now = engine::store::now_ms();
    let filled = Instant::now();
    fill(&store, n, now).await?;
    let fill_s = filled.elapsed().as_secs_f64();
    let engine = Engine::start(
        store,
        EngineConfig {
            retention: RetentionConfig {
                every: Duration::ZERO,
                ..RetentionConfig::default()
            },
            ..EngineConfig::default()
        },
    )
    .await?;
    let (alone, _) = throughput::<std::future::Ready<()>>(&engine, 10.0, None).await?;
    let (size_before, _) = engine.store().database_bytes().await?;
    let runs_before = engine.store().count_runs().await?;
    let pruning = engine.prune(now);
    let (during, side) = throughput(&engine, 0.0, Some(pruning)).await?;
    let added = engine.store().count_runs().await?
        + side
            .as_ref()
            .map_or(0, |(p, _)| p.as_ref().map_or(0, |p| p.runs as i64))
        - runs_before;
    let (pruned, prune_s) = side.ok_or_else(|| anyhow::anyhow!("no pass"))?;
    let pruned = pruned?;
    let (size_after, free_after) = engine.store().database_bytes().await?;
    println!(
        "| {label} | {} | {fill_s:.0} s | {prune_s:.1} s ({:.0} runs/s) | {alone:.0} | {during:.0} ({:+.0} %) | {:.0} MB → {:.0} MB ({:.0} MB free; {added} runs added meanwhile) |",
        pruned.runs,
        pruned.runs as f64 / prune_s,
        (during / alone - 1.0) * 100.0,
        size_before as f64 / 1e6,
        size_after as f64 / 1e6,
        free_after as f64 / 1e6,
    );
    engine.shutdown(Duration::from_secs(1)).await;
    engine.store().close().await;
    Ok(())
}

/// Prints one table row per store.
pub async fn run_prune(postgres_admin_url: &str, n: usize) -> anyhow::Result<()> {
    println!("| store | runs pruned | writing them | the pass | 3-step runs/s alone | during the pass | database before the pass → after |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    crate::on_both_stores(postgres_admin_url, "prune", async |label, url| {
        one_store(label, &url, n).await
    })
    .await
}
