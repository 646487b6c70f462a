//! `flowscope bench`: the engine on its real store, in the shapes of issue 3, on SQLite and
//! PostgreSQL. Each shape runs in a fresh child process (`bench --shape S --database D`) so
//! its peak RSS is its own; the parent prints one table. It measures; it asserts nothing.

use std::time::{Duration, Instant};

use anyhow::Context;
use engine::executor::{Engine, EngineConfig, TriggerRequest};
use engine::model::Workflow;
use engine::records::RunStatus;
use engine::store::{scratch, Store};
use serde::{Deserialize, Serialize};

mod calls;
mod load;
mod retention;
mod search;
mod telemetry;
pub mod ui;
mod waits;
mod workers;

pub use calls::run_calls;
pub use load::run_load;
pub use retention::run_prune;
pub use search::run_search;
pub use telemetry::run_telemetry;
pub use waits::run_waits;
pub use workers::run_workers;

/// The shapes, in the order the table shows them.
pub const SHAPES: &[&str] = &[
    "chain40-zero",
    "chain40-10ms",
    "three-step-c1",
    "three-step-c200",
    "fanout-1000",
    "foreach-10000",
];

/// One shape's figures (milliseconds unless the name says otherwise).
#[derive(Debug, Serialize, Deserialize)]
pub struct Figures {
    pub shape: String,
    pub runs: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Per-step orchestration overhead for chains (run time / steps, minus step latency).
    pub per_step_p50_ms: Option<f64>,
    pub per_step_p99_ms: Option<f64>,
    pub runs_per_s: Option<f64>,
    pub peak_rss_mb: f64,
    /// CPU time (user + system, every thread of this process) per measured run.
    #[serde(default)]
    pub cpu_ms_per_run: f64,
}

fn chain(id: &str, steps: usize, latency: &str) -> String {
    let mut y = format!("id: {id}\nsteps:\n");
    for i in 0..steps {
        y.push_str(&format!(
            "- id: s{i}\n  agent: simulate\n  with:\n    latency: {latency}\n"
        ));
        if i > 0 {
            y.push_str(&format!("  needs:\n  - s{}\n", i - 1));
        }
    }
    y
}

/// One zero-latency `simulate` step over a list of `items` numbers (an input's default).
fn foreach(id: &str, items: usize) -> String {
    let list: Vec<String> = (0..items).map(|i| i.to_string()).collect();
    format!(
        "id: {id}\ninputs:\n  items:\n    type: array\n    default: [{}]\nsteps:\n- id: each\n  agent: simulate\n  for_each: inputs.items\n",
        list.join(", ")
    )
}

fn fanout(id: &str, width: usize) -> String {
    fanout_of(id, width, "0ms")
}

fn fanout_of(id: &str, width: usize, latency: &str) -> String {
    let mut y = format!("id: {id}\nsteps:\n- id: root\n  agent: simulate\n");
    // Zero-latency branches name no latency: the same text as before there was a choice.
    let with = if latency == "0ms" {
        String::new()
    } else {
        format!("  with:\n    latency: {latency}\n")
    };
    for i in 0..width {
        y.push_str(&format!(
            "- id: w{i}\n  agent: simulate\n{with}  needs:\n  - root\n"
        ));
    }
    y.push_str("- id: join\n  agent: simulate\n  needs:\n");
    for i in 0..width {
        y.push_str(&format!("  - w{i}\n"));
    }
    y
}

/// Runs one shape against `database_url` in this process and returns its figures.
pub async fn run_shape(
    shape: &str,
    database_url: &str,
    runs: Option<usize>,
) -> anyhow::Result<Figures> {
    let store = Store::connect(database_url)
        .await
        .context("bench database")?;
    store.migrate().await?;
    for yaml in [
        chain("chain40z", 40, "0ms"),
        chain("chain40t", 40, "10ms"),
        chain("three", 3, "0ms"),
        fanout("fanout", 1000),
    ]
    .into_iter()
    // Its 10,000-item list is parsed at start-up: only where it is measured, so the other
    // shapes start exactly as they did before it existed.
    .chain((shape == "foreach-10000").then(|| foreach("foreach", 10_000)))
    {
        let w = Workflow::parse(&yaml).map_err(|p| anyhow::anyhow!("{p:?}"))?;
        if store.create_workflow(&w, &yaml).await.is_err() {
            store.save_version(&w, &yaml).await?;
        }
    }
    let mut config = EngineConfig::default();
    // As the server reads it: which commits of a sampled run become spans.
    if let Ok(v) = std::env::var("FLOWSCOPE_TRACE_COMMIT_THRESHOLD") {
        config.trace_commits_over = engine::model::parse_duration(&v)
            .map_err(|e| anyhow::anyhow!("FLOWSCOPE_TRACE_COMMIT_THRESHOLD: {e}"))?;
    }
    let engine = Engine::start(store, config).await?;
    let cpu_start: f64;
    let mut figures = match shape {
        "chain40-zero" | "chain40-10ms" => {
            let (wf, step_ms, n) = if shape == "chain40-zero" {
                ("chain40z", 0.0, 30)
            } else {
                ("chain40t", 10.0, 5)
            };
            let n = runs.unwrap_or(n);
            one(engine.clone(), wf).await?; // warm-up: caches, prepared statements
            cpu_start = cpu_ms();
            let mut times = Vec::new();
            for _ in 0..n {
                times.push(one(engine.clone(), wf).await?);
            }
            let mut per_step: Vec<f64> = times.iter().map(|t| ms(*t) / 40.0 - step_ms).collect();
            let mut f = summary(shape, &mut times);
            per_step.sort_by(f64::total_cmp);
            f.per_step_p50_ms = Some(pct(&per_step, 0.5));
            f.per_step_p99_ms = Some(pct(&per_step, 0.99));
            f
        }
        "three-step-c1" => {
            one(engine.clone(), "three").await?;
            cpu_start = cpu_ms();
            let mut times = Vec::new();
            for _ in 0..runs.unwrap_or(300) {
                times.push(one(engine.clone(), "three").await?);
            }
            summary(shape, &mut times)
        }
        "three-step-c200" => {
            one(engine.clone(), "three").await?;
            cpu_start = cpu_ms();
            let total_runs = runs.unwrap_or(6000).max(200);
            let started = Instant::now();
            let clients: Vec<_> = (0..200)
                .map(|_| {
                    let engine = engine.clone();
                    tokio::spawn(async move {
                        let mut times = Vec::new();
                        for _ in 0..total_runs / 200 {
                            times.push(one(engine.clone(), "three").await?);
                        }
                        Ok::<_, anyhow::Error>(times)
                    })
                })
                .collect();
            let mut times = Vec::new();
            for c in clients {
                times.extend(c.await??);
            }
            let elapsed = started.elapsed();
            let mut f = summary(shape, &mut times);
            f.runs_per_s = Some(times.len() as f64 / elapsed.as_secs_f64());
            f
        }
        "fanout-1000" => {
            one(engine.clone(), "fanout").await?;
            cpu_start = cpu_ms();
            let mut times = Vec::new();
            for _ in 0..runs.unwrap_or(5) {
                times.push(one(engine.clone(), "fanout").await?);
            }
            summary(shape, &mut times)
        }
        "foreach-10000" => {
            one(engine.clone(), "foreach").await?;
            cpu_start = cpu_ms();
            let mut times = Vec::new();
            for _ in 0..runs.unwrap_or(5) {
                times.push(one(engine.clone(), "foreach").await?);
            }
            summary(shape, &mut times)
        }
        other => anyhow::bail!("unknown shape {other}; shapes: {}", SHAPES.join(", ")),
    };
    figures.cpu_ms_per_run = (cpu_ms() - cpu_start) / figures.runs.max(1) as f64;
    figures.peak_rss_mb = peak_rss_mb();
    engine.store().close().await;
    Ok(figures)
}

/// Triggers one run and waits for it; returns its end-to-end time.
async fn one(engine: Engine, wf: &'static str) -> anyhow::Result<Duration> {
    let t = Instant::now();
    run_to_success(&engine, wf).await?;
    Ok(t.elapsed())
}

/// Triggers one run of `wf`, waits for it and returns its id; a run that did not succeed is
/// an error.
async fn run_to_success(engine: &Engine, wf: &'static str) -> anyhow::Result<String> {
    let run = engine
        .trigger(TriggerRequest {
            workflow_id: wf.into(),
            trigger: "bench".into(),
            ..Default::default()
        })
        .await?;
    let status = engine.wait(&run.id).await?;
    anyhow::ensure!(
        status == RunStatus::Succeeded,
        "bench run {} ended {status}",
        run.id
    );
    Ok(run.id)
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub fn pct(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn summary(shape: &str, times: &mut [Duration]) -> Figures {
    let mut v: Vec<f64> = times.iter().map(|t| ms(*t)).collect();
    v.sort_by(f64::total_cmp);
    Figures {
        shape: shape.into(),
        runs: v.len(),
        p50_ms: pct(&v, 0.5),
        p99_ms: pct(&v, 0.99),
        per_step_p50_ms: None,
        per_step_p99_ms: None,
        runs_per_s: None,
        peak_rss_mb: 0.0,
        cpu_ms_per_run: 0.0,
    }
}

/// CPU time this process's threads have used so far, in ms: the sum of their
/// `/proc/self/task/*/schedstat` (nanoseconds; `/proc/self/stat` counts in 10 ms ticks). Every
/// thread of the bench lives through the measurement, so none is missed.
fn cpu_ms() -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return f64::NAN;
    };
    let ns: u64 = tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    ns as f64 / 1e6
}

/// VmHWM of this process (Linux), in MB.
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(str::to_string)
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// Median latency of a single-client durable commit on PostgreSQL (one-row insert).
pub async fn pg_commit_ms(url: &str) -> anyhow::Result<f64> {
    let store = Store::connect(url).await?;
    scratch::execute(
        &store,
        "CREATE TABLE IF NOT EXISTS bench_commit (id BIGSERIAL PRIMARY KEY, at BIGINT)",
    )
    .await?;
    let mut v = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        scratch::execute(&store, "INSERT INTO bench_commit (at) VALUES (1)").await?;
        v.push(ms(t.elapsed()));
    }
    scratch::execute(&store, "DROP TABLE bench_commit").await?;
    store.close().await;
    v.sort_by(f64::total_cmp);
    Ok(pct(&v, 0.5))
}

/// Prints the table for every backend, running each shape in a child process.
pub async fn run_all(postgres_admin_url: &str, shapes: &[String]) -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    let dir = tempfile_dir()?;
    let mut backends = vec![("SQLite (WAL, synchronous=NORMAL)".to_string(), None)];
    match Store::connect(postgres_admin_url).await {
        Ok(s) => {
            s.close().await;
            backends.push((
                "PostgreSQL (synchronous_commit=on)".to_string(),
                Some(postgres_admin_url.to_string()),
            ));
        }
        Err(e) => eprintln!("PostgreSQL not reachable at {postgres_admin_url} ({e}); SQLite only"),
    }
    for (name, pg) in backends {
        println!("\n## {name}");
        if let Some(url) = &pg {
            println!(
                "single-client durable commit (one-row INSERT), median: {:.2} ms",
                pg_commit_ms(url).await?
            );
        }
        println!("| shape | runs | run p50 ms | run p99 ms | per-step p50 ms | per-step p99 ms | runs/s | peak RSS MB |");
        println!("|---|---|---|---|---|---|---|---|");
        for (i, shape) in shapes.iter().enumerate() {
            let url = match &pg {
                None => format!("sqlite://{}/bench-{i}.db", dir.display()),
                Some(admin) => {
                    let db = format!("flowscope_bench_{}_{i}", std::process::id());
                    scratch::create_database(admin, &db).await?.close().await;
                    scratch::database_url(admin, &db)
                }
            };
            let out = std::process::Command::new(&exe)
                .args(["bench", "--shape", shape, "--database", &url])
                .output()?;
            if !out.status.success() {
                anyhow::bail!(
                    "shape {shape} failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            let f: Figures = serde_json::from_slice(&out.stdout).context("child output")?;
            let opt = |v: Option<f64>, p: usize| {
                v.map(|x| format!("{x:.p$}")).unwrap_or_else(|| "–".into())
            };
            println!(
                "| {} | {} | {:.2} | {:.2} | {} | {} | {} | {:.0} |",
                f.shape,
                f.runs,
                f.p50_ms,
                f.p99_ms,
                opt(f.per_step_p50_ms, 3),
                opt(f.per_step_p99_ms, 3),
                opt(f.runs_per_s, 0),
                f.peak_rss_mb
            );
            if let Some(admin) = &pg {
                let db = format!("flowscope_bench_{}_{i}", std::process::id());
                scratch::drop_database(admin, &db).await?;
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("flowscope-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// A child process killed (and reaped) when dropped, however the caller ends: the bench's
/// workers, and the tests' Prometheus and Alertmanager.
pub struct Killed(pub std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `one` on a fresh SQLite file named `name`, then on a fresh PostgreSQL database on
/// `postgres_admin_url` (dropped after), passing the store's label and URL.
/// A queued one-step (`s`) run of `workflow` created at `at`, as the engine writes one: the
/// first op of runs written as of the past.
fn past_run(
    id: &str,
    workflow: &str,
    at: i64,
    inputs: serde_json::Value,
    labels: engine::search::Labels,
) -> engine::store::Op {
    engine::store::Op::CreateRun(Box::new(engine::store::NewRun {
        id: id.to_string(),
        workflow_id: workflow.to_string(),
        workflow_version: 1,
        trigger: "api".into(),
        actor: None,
        inputs,
        parent_run_id: None,
        traceparent: None,
        created_at: at,
        step_ids: vec!["s".into()],
        reused: vec![],
        concurrency: None,
        owner: None,
        caller: None,
        labels,
    }))
}

/// Applies `ops` once there are `at_least` of them (1: whatever is left), in one batch.
async fn apply_from(
    store: &Store,
    ops: &mut Vec<engine::store::Op>,
    at_least: usize,
) -> anyhow::Result<()> {
    if ops.len() >= at_least.max(1) {
        store.apply(ops).await?;
        ops.clear();
    }
    Ok(())
}

/// A UUIDv7-shaped run id at `ms`, told apart by `n`: runs written as of the past.
fn id_at(ms: i64, n: u64) -> String {
    format!(
        "{:08x}-{:04x}-7000-8000-{n:012x}",
        (ms as u64) >> 16,
        (ms as u64) & 0xFFFF
    )
}

async fn on_both_stores(
    postgres_admin_url: &str,
    name: &str,
    one: impl AsyncFn(&'static str, String) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let dir = tempfile_dir()?;
    let path = dir.join(format!("{name}.db"));
    let _ = std::fs::remove_file(&path);
    one("SQLite", format!("sqlite://{}", path.display())).await?;
    let _ = std::fs::remove_dir_all(&dir);
    let db = format!("flowscope_bench_{name}_{}", std::process::id());
    let store = engine::store::scratch::create_database(postgres_admin_url, &db).await?;
    store.close().await;
    let url = engine::store::scratch::database_url(postgres_admin_url, &db);
    let result = one("PostgreSQL", url).await;
    engine::store::scratch::drop_database(postgres_admin_url, &db).await?;
    result
}
