//! `bench --workers`: N `flowscope worker` processes on one PostgreSQL database.

use std::time::{Duration, Instant};

use anyhow::Context;
use engine::executor::{Engine, EngineConfig};
use engine::model::Workflow;
use engine::store::{scratch, Store};

use crate::{chain, fanout_of, pct, pg_commit_ms, run_to_success, Killed};

/// One row of `bench --workers`.
struct WorkerFigures {
    workers: usize,
    held: bool,
    runs_per_s: f64,
    run_p50_ms: f64,
    run_p99_ms: f64,
    per_step_p50_ms: f64,
    commits_per_s: f64,
    dead_rows: i64,
    autovacuums: i64,
    max_locks: i64,
}

/// `bench --workers 1,2,4`: 3-step runs (200 in flight) and 40-step chains executed by N
/// `flowscope worker` processes on one PostgreSQL database, triggered by this process (which
/// runs none itself). Run times come from the database (started → finished), so the way the
/// result reaches this process does not count.
pub async fn run_workers(postgres_admin_url: &str, counts: &[usize]) -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    println!(
        "single-client durable commit (one-row INSERT), median: {:.2} ms",
        pg_commit_ms(postgres_admin_url).await?
    );
    println!("| workers | 3-step runs/s (200 in flight) | run p50 ms | run p99 ms | chain-40 per-step p50 ms | commits/s | dead rows after | autovacuums | most locks held |");
    println!("|---|---|---|---|---|---|---|---|---|");
    // Every count, then the largest again with a transaction held open throughout: the
    // vacuum-blocking failure mode of queue tables.
    let mut rounds: Vec<(usize, bool)> = counts.iter().map(|&n| (n, false)).collect();
    if let Some(&most) = counts.iter().max() {
        rounds.push((most, true));
    }
    for (n, held) in rounds {
        let db = format!("flowscope_bench_workers_{}_{n}_{held}", std::process::id());
        let store = scratch::create_database(postgres_admin_url, &db).await?;
        store.migrate().await?;
        let url = scratch::database_url(postgres_admin_url, &db);
        let result = workers_round(&exe, &store, &url, n, held).await;
        store.close().await;
        scratch::drop_database(postgres_admin_url, &db).await?;
        let f = result?;
        println!(
            "| {}{} | {:.0} | {:.1} | {:.1} | {:.3} | {:.0} | {} | {} | {} |",
            f.workers,
            if f.held {
                " + a transaction held open"
            } else {
                ""
            },
            f.runs_per_s,
            f.run_p50_ms,
            f.run_p99_ms,
            f.per_step_p50_ms,
            f.commits_per_s,
            f.dead_rows,
            f.autovacuums,
            f.max_locks
        );
    }
    // Steps that wait (100 ms each, as an HTTP call would) and a process with 50 step slots:
    // a fan-out wider than that is offered to the other workers.
    println!();
    println!("| workers (50 step slots each) | fan-out 1 → 200 × 100 ms → 1, run ms (5 runs) | ideal ms | steps run by another worker than the run's owner |");
    println!("|---|---|---|---|");
    for &n in counts {
        let db = format!("flowscope_bench_spread_{}_{n}", std::process::id());
        let store = scratch::create_database(postgres_admin_url, &db).await?;
        store.migrate().await?;
        let url = scratch::database_url(postgres_admin_url, &db);
        let result = spread_round(&exe, &store, &url, n).await;
        store.close().await;
        scratch::drop_database(postgres_admin_url, &db).await?;
        let (times, remote) = result?;
        let list: Vec<String> = times.iter().map(|t| format!("{t:.0}")).collect();
        let waves = 200usize.div_ceil(50 * n);
        println!(
            "| {n} | {} | {} | {:.0} % |",
            list.join(", "),
            waves * 100,
            remote * 100.0
        );
    }
    Ok(())
}

/// `n` workers with 50 step slots each; five 200-wide fan-outs of 100 ms steps, one at a
/// time. Returns each run's time (ms, the database's start to finish) and the share of the
/// branches that ran on a worker other than the run's owner.
async fn spread_round(
    exe: &std::path::Path,
    store: &Store,
    url: &str,
    n: usize,
) -> anyhow::Result<(Vec<f64>, f64)> {
    let yaml = fanout_of("wide", 200, "100ms");
    let w = Workflow::parse(&yaml).map_err(|p| anyhow::anyhow!("{p:?}"))?;
    store.create_workflow(&w, &yaml).await?;
    let children = spawn_workers(exe, url, n, &[("FLOWSCOPE_WORKER_MAX_STEPS", "50")])?;
    let engine = driver_beside(store, n).await?;
    run_to_success(&engine, "wide").await?;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(run_to_success(&engine, "wide").await?);
    }
    let mut times = Vec::new();
    let mut remote = 0usize;
    for id in &ids {
        times.extend(store.run_times_ms(std::slice::from_ref(id)).await?);
        let detail = store.run_detail(id).await?;
        let owner = detail
            .attempts
            .iter()
            .find(|a| a.step_id == "root")
            .and_then(|a| a.worker.clone());
        remote += detail
            .attempts
            .iter()
            .filter(|a| a.step_id.starts_with('w') && a.worker != owner)
            .count();
    }
    engine.shutdown(Duration::from_secs(1)).await;
    drop(children);
    Ok((times, remote as f64 / (200.0 * ids.len() as f64)))
}

/// An engine in this process that triggers and waits but runs nothing (the workers run
/// everything), once all `n` workers have joined.
async fn driver_beside(store: &Store, n: usize) -> anyhow::Result<Engine> {
    let engine = Engine::start(
        store.clone(),
        EngineConfig {
            worker: engine::executor::WorkerConfig {
                kind: "bench",
                max_runs: 0,
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await?;
    while (store.workers().await?.len()) < n + 1 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(engine)
}

/// `n` `flowscope worker` processes on `url`, killed when dropped.
fn spawn_workers(
    exe: &std::path::Path,
    url: &str,
    n: usize,
    env: &[(&str, &str)],
) -> anyhow::Result<Vec<Killed>> {
    let mut children = Vec::new();
    for i in 0..n {
        let mut command = std::process::Command::new(exe);
        command
            .arg("worker")
            .env("FLOWSCOPE_DATABASE_URL", url)
            .env("FLOWSCOPE_SCHEDULER", "false")
            .env("FLOWSCOPE_WORKER_NAME", format!("bench-{i}"))
            .env("FLOWSCOPE_WORKER_LISTEN", "127.0.0.1:0")
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null());
        for (k, v) in env {
            command.env(k, v);
        }
        children.push(Killed(command.spawn().context("start a worker")?));
    }
    Ok(children)
}

async fn workers_round(
    exe: &std::path::Path,
    store: &Store,
    url: &str,
    n: usize,
    held: bool,
) -> anyhow::Result<WorkerFigures> {
    for yaml in [chain("chain40z", 40, "0ms"), chain("three", 3, "0ms")] {
        let w = Workflow::parse(&yaml).map_err(|p| anyhow::anyhow!("{p:?}"))?;
        store.create_workflow(&w, &yaml).await?;
    }
    let children = spawn_workers(exe, url, n, &[])?;
    let engine = driver_beside(store, n).await?;
    let trigger = {
        let engine = engine.clone();
        move |wf: &'static str| {
            let engine = engine.clone();
            async move { run_to_success(&engine, wf).await }
        }
    };
    // Warm-up: every worker connected and caching.
    for _ in 0..n * 4 {
        trigger("three").await?;
    }
    // A snapshot held from before the load to after it: no dead row can be vacuumed meanwhile.
    let snapshot = if held {
        Some(store.hold_snapshot().await?)
    } else {
        None
    };
    let before = store.commits().await?;
    let total = 3000;
    let started = Instant::now();
    let locks = {
        let store = store.clone();
        let stop = tokio_util::sync::CancellationToken::new();
        let watch = stop.clone();
        let sampler = tokio::spawn(async move {
            let mut most = 0i64;
            while !watch.is_cancelled() {
                most = most.max(store.lock_count().await.unwrap_or(0));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            most
        });
        (stop, sampler)
    };
    let clients: Vec<_> = (0..200)
        .map(|_| {
            let trigger = trigger.clone();
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for _ in 0..total / 200 {
                    ids.push(trigger("three").await?);
                }
                Ok::<_, anyhow::Error>(ids)
            })
        })
        .collect();
    let mut ids = Vec::new();
    for c in clients {
        ids.extend(c.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    locks.0.cancel();
    let max_locks = locks.1.await.unwrap_or(0);
    let after = store.commits().await?;
    drop(snapshot);
    let mut run_ms = store.run_times_ms(&ids).await?;
    run_ms.sort_by(f64::total_cmp);
    let mut chains = Vec::new();
    for _ in 0..5 {
        chains.push(trigger("chain40z").await?);
    }
    let mut per_step: Vec<f64> = store
        .run_times_ms(&chains)
        .await?
        .into_iter()
        .map(|t| t / 40.0)
        .collect();
    per_step.sort_by(f64::total_cmp);
    let stats = store.table_stats().await?;
    engine.shutdown(Duration::from_secs(1)).await;
    drop(children);
    Ok(WorkerFigures {
        workers: n,
        held,
        runs_per_s: ids.len() as f64 / elapsed,
        run_p50_ms: pct(&run_ms, 0.5),
        run_p99_ms: pct(&run_ms, 0.99),
        per_step_p50_ms: pct(&per_step, 0.5),
        commits_per_s: (after - before) as f64 / elapsed,
        dead_rows: stats.0,
        autovacuums: stats.1,
        max_locks,
    })
}
