//! `flowscope bench`: the engine on its real store, in the shapes of issue 3, on SQLite and
//! PostgreSQL. Each shape runs in a fresh child process (`bench --shape S --database D`) so
//! its peak RSS is its own; the parent prints one table. It measures; it asserts nothing.

use std::time::{Duration, Instant};

use anyhow::Context;
use engine::executor::{Engine, EngineConfig, TriggerRequest};
use engine::model::Workflow;
use engine::records::RunStatus;
use engine::store::Store;
use serde::{Deserialize, Serialize};

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

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub(crate) fn pct(sorted: &[f64], q: f64) -> f64 {
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
    store
        .execute_raw(
            "CREATE TABLE IF NOT EXISTS bench_commit (id BIGSERIAL PRIMARY KEY, at BIGINT)",
        )
        .await?;
    let mut v = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        store
            .execute_raw("INSERT INTO bench_commit (at) VALUES (1)")
            .await?;
        v.push(ms(t.elapsed()));
    }
    store.execute_raw("DROP TABLE bench_commit").await?;
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
                    Store::create_postgres_database(admin, &db)
                        .await?
                        .close()
                        .await;
                    Store::postgres_database_url(admin, &db)
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
                Store::drop_postgres_database(admin, &db).await?;
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// The telemetry modes `bench --telemetry` compares, with the environment each child gets.
const TELEMETRY_MODES: &[(&str, &[(&str, &str)])] = &[
    ("off (OTEL_SDK_DISABLED)", &[("OTEL_SDK_DISABLED", "true")]),
    ("span ids, no export (default)", &[]),
    (
        "full export, OTLP http/protobuf",
        &[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")],
    ),
    (
        "full export, OTLP gRPC",
        &[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")],
    ),
];

/// Rounds per mode in `bench --telemetry`.
const ROUNDS: usize = 9;

/// `bench --telemetry`: the cost of tracing and metrics with export on against telemetry off,
/// on SQLite, with a local OTLP receiver (HTTP and gRPC) that accepts and counts what arrives.
pub async fn run_telemetry(shapes: &[String]) -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    let dir = tempfile_dir()?;
    let sink = crate::otlp_sink::start()?;
    println!(
        "| shape | telemetry | runs | run p50 ms | per-step p50 ms | runs/s, median (rounds) | throughput vs off | CPU ms per run, median | CPU vs off |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (i, shape) in shapes.iter().enumerate() {
        // Modes alternate within each round, so drift in the machine hits them alike; the
        // median of the rounds is reported.
        let mut figures: Vec<Vec<Figures>> = TELEMETRY_MODES.iter().map(|_| Vec::new()).collect();
        for round in 0..ROUNDS {
            for (j, (mode, env)) in TELEMETRY_MODES.iter().enumerate() {
                let url = format!("sqlite://{}/tel-{i}-{j}-{round}.db", dir.display());
                let mut cmd = std::process::Command::new(&exe);
                cmd.args(["bench", "--shape", shape, "--database", &url]);
                for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("OTEL_")) {
                    cmd.env_remove(k);
                }
                for (k, v) in env.iter() {
                    cmd.env(k, v);
                }
                if mode.starts_with("full export") {
                    let addr = if mode.ends_with("gRPC") {
                        sink.grpc
                    } else {
                        sink.http
                    };
                    cmd.env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{addr}"));
                }
                let out = cmd.output()?;
                if !out.status.success() {
                    anyhow::bail!(
                        "shape {shape} ({mode}) failed: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
                figures[j].push(serde_json::from_slice(&out.stdout).context("child output")?);
            }
        }
        // Throughput: measured for the concurrent shape, else runs one after another.
        let rps = |f: &Figures| f.runs_per_s.unwrap_or(1000.0 / f.p50_ms);
        let mut base: Option<(f64, f64)> = None;
        for (j, (mode, _)) in TELEMETRY_MODES.iter().enumerate() {
            let runs = &mut figures[j];
            // CPU time is far steadier than throughput on a shared VM: both are reported.
            let mut cpu: Vec<f64> = runs.iter().map(|f| f.cpu_ms_per_run).collect();
            cpu.sort_by(f64::total_cmp);
            let c = cpu[cpu.len() / 2];
            runs.sort_by(|a, b| rps(a).total_cmp(&rps(b)));
            let f = &runs[runs.len() / 2];
            let r = rps(f);
            let (vs, cpu_vs) = match base {
                None => {
                    base = Some((r, c));
                    ("–".to_string(), "–".to_string())
                }
                Some((b, bc)) => (
                    format!("{:+.1} %", (r - b) / b * 100.0),
                    format!("{:+.1} %", (c - bc) / bc * 100.0),
                ),
            };
            let all: Vec<String> = runs.iter().map(|f| format!("{:.0}", rps(f))).collect();
            println!(
                "| {} | {mode} | {} | {:.2} | {} | {r:.0} ({}) | {vs} | {c:.3} | {cpu_vs} |",
                f.shape,
                f.runs,
                f.p50_ms,
                f.per_step_p50_ms
                    .map(|v| format!("{v:.3}"))
                    .unwrap_or_else(|| "–".into()),
                all.join(", "),
            );
        }
    }
    let (spans, logs, bytes) = sink.counts();
    println!(
        "\nThe receiver got {spans} spans over gRPC, {:.1} MB of spans over HTTP, {logs} log records.",
        bytes as f64 / 1e6
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("flowscope-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

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
        let store = Store::create_postgres_database(postgres_admin_url, &db).await?;
        store.migrate().await?;
        let url = Store::postgres_database_url(postgres_admin_url, &db);
        let result = workers_round(&exe, &store, &url, n, held).await;
        store.close().await;
        Store::drop_postgres_database(postgres_admin_url, &db).await?;
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
        let store = Store::create_postgres_database(postgres_admin_url, &db).await?;
        store.migrate().await?;
        let url = Store::postgres_database_url(postgres_admin_url, &db);
        let result = spread_round(&exe, &store, &url, n).await;
        store.close().await;
        Store::drop_postgres_database(postgres_admin_url, &db).await?;
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

/// A child process killed (and reaped) when dropped, however the caller ends: the bench's
/// workers, and the tests' Prometheus and Alertmanager.
pub struct Killed(pub std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `bench --load URL --rate R --seconds S`: triggers runs of `workflow` on a running server
/// at a fixed rate (open loop: a slow answer does not slow the sending), then checks every
/// accepted run finished. Prints the trigger latency and the runs lost (none, or it says so).
pub async fn run_load(
    base: &str,
    workflow: &str,
    rate: f64,
    seconds: u64,
    token: Option<&str>,
) -> anyhow::Result<()> {
    anyhow::ensure!(rate > 0.0, "--rate must be positive");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;
    let url = format!(
        "{}/api/v1/workflows/{workflow}/runs",
        base.trim_end_matches('/')
    );
    let total = (rate * seconds as f64) as usize;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let started = tokio::time::Instant::now();
    let mut sends = Vec::with_capacity(total);
    for i in 0..total {
        tokio::time::sleep_until(started + interval * i as u32).await;
        let (client, url) = (client.clone(), url.clone());
        let token = token.map(str::to_string);
        sends.push(tokio::spawn(async move {
            let t = Instant::now();
            let mut request = client.post(&url).json(&serde_json::json!({}));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let answer = request.send().await;
            let ms = ms(t.elapsed());
            let id = match answer {
                Ok(r) if r.status().is_success() => r
                    .json::<serde_json::Value>()
                    .await
                    .ok()
                    .and_then(|v| v["run"]["id"].as_str().map(str::to_string)),
                _ => None,
            };
            (ms, id)
        }));
    }
    let mut latencies = Vec::with_capacity(total);
    let mut ids = Vec::with_capacity(total);
    let mut refused = 0;
    for s in sends {
        let (ms, id) = s.await?;
        latencies.push(ms);
        match id {
            Some(id) => ids.push(id),
            None => refused += 1,
        }
    }
    let sent_for = started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    // Every accepted run must finish; a bounded wait, then the stragglers are counted lost.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut open = ids.clone();
    while !open.is_empty() && Instant::now() < deadline {
        let checks = futures::future::join_all(open.chunks(64).map(|chunk| {
            let client = client.clone();
            let base = base.trim_end_matches('/').to_string();
            let token = token.map(str::to_string);
            let chunk = chunk.to_vec();
            async move {
                let mut still = Vec::new();
                for id in chunk {
                    let mut request = client.get(format!("{base}/api/v1/runs/{id}"));
                    if let Some(token) = &token {
                        request = request.bearer_auth(token);
                    }
                    let status = match request.send().await {
                        Ok(r) => r
                            .json::<serde_json::Value>()
                            .await
                            .ok()
                            .and_then(|v| v["status"].as_str().map(str::to_string)),
                        Err(_) => None,
                    };
                    if !matches!(
                        status.as_deref(),
                        Some("succeeded" | "failed" | "cancelled" | "timed_out")
                    ) {
                        still.push(id);
                    }
                }
                still
            }
        }))
        .await;
        open = checks.into_iter().flatten().collect();
        if !open.is_empty() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    println!("| target rate/s | sent | achieved rate/s | trigger p50 ms | p99 ms | max ms | refused | accepted, never finished |");
    println!("|---|---|---|---|---|---|---|---|");
    println!(
        "| {rate:.0} | {total} | {:.0} | {:.2} | {:.2} | {:.2} | {refused} | {} |",
        total as f64 / sent_for,
        pct(&latencies, 0.5),
        pct(&latencies, 0.99),
        latencies.last().copied().unwrap_or(f64::NAN),
        open.len()
    );
    Ok(())
}
