//! `flowscope bench --waits N`: N runs parked on an approval each, on SQLite and PostgreSQL.
//! How long parking them took, what the process and the database hold while they wait, and
//! how soon a decision starts the next step (decision call to that step's start event).

use std::time::{Duration, Instant};

use engine::access::Role;
use engine::executor::{Decision, Engine, EngineConfig, TriggerRequest};
use engine::model::Workflow;
use engine::records::{EventKind, StepStatus};
use engine::store::{scratch, Store};

use crate::{ms, pct};

const GATED: &str = "id: gated\nsteps:\n- {id: ok, agent: approval, with: {prompt: Go?}}\n- {id: next, agent: simulate, needs: [ok]}\n";

/// Decisions timed, of the N parked runs.
const DECIDED: usize = 200;

/// VmRSS of this process (Linux), in MB.
fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmRSS:"))?.to_string();
            line.split_whitespace().nth(1)?.parse::<f64>().ok()
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

async fn one_store(
    label: &str,
    url: &str,
    n: usize,
    size: impl AsyncFn() -> f64,
) -> anyhow::Result<()> {
    let store = Store::connect(url).await?;
    store.migrate().await?;
    let w = Workflow::parse(GATED).map_err(|p| anyhow::anyhow!("{p:?}"))?;
    store.create_workflow(&w, GATED).await?;
    let engine = Engine::start(store, EngineConfig::default()).await?;
    let rss_before = rss_mb();
    let size_before = size().await;
    let started = Instant::now();
    let mut ids = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(200) {
        let mut tasks = Vec::new();
        for _ in chunk {
            let engine = engine.clone();
            tasks.push(tokio::spawn(async move {
                engine
                    .trigger(TriggerRequest {
                        workflow_id: "gated".into(),
                        trigger: "bench".into(),
                        ..Default::default()
                    })
                    .await
            }));
        }
        for t in tasks {
            ids.push(t.await??.id);
        }
    }
    loop {
        let parked: i64 = engine
            .store()
            .waiting_counts()
            .await?
            .iter()
            .map(|c| c.2)
            .sum();
        if parked as usize >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let park_s = started.elapsed().as_secs_f64();
    // Let the drivers' memory go back before reading what the waiting runs hold.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_waiting = rss_mb();
    let size_waiting = size().await;
    let mut events = engine.subscribe();
    let mut latencies = Vec::with_capacity(DECIDED);
    for id in ids.iter().take(DECIDED) {
        let t = Instant::now();
        engine
            .decide(
                id,
                "ok",
                Decision {
                    approved: true,
                    ..Default::default()
                },
                "bench",
                Role::Admin,
            )
            .await?;
        loop {
            let e = events.recv().await?;
            if e.run_id == *id
                && matches!(&e.kind, EventKind::Step { step_id, status: StepStatus::Running, .. } if step_id == "next")
            {
                break;
            }
        }
        latencies.push(ms(t.elapsed()));
    }
    latencies.sort_by(f64::total_cmp);
    println!(
        "| {label} | {n} | {park_s:.1} s ({:.0} runs/s) | {:.0} MB → {:.0} MB (+{:.1} KB/run) | {:.1} MB (+{:.2} KB/run) | {:.2} | {:.2} |",
        n as f64 / park_s,
        rss_before,
        rss_waiting,
        (rss_waiting - rss_before) * 1024.0 / n as f64,
        size_waiting,
        (size_waiting - size_before) * 1024.0 / n as f64,
        pct(&latencies, 0.5),
        pct(&latencies, 0.99),
    );
    engine.shutdown(Duration::from_secs(1)).await;
    engine.store().close().await;
    Ok(())
}

/// Prints one table row per store.
pub async fn run_waits(postgres_admin_url: &str, n: usize) -> anyhow::Result<()> {
    println!("| store | parked runs | parking them | process RSS while they wait | database | decision → next step p50 ms | p99 ms |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let dir = crate::tempfile_dir()?;
    let path = dir.join("waits.db");
    let _ = std::fs::remove_file(&path);
    let url = format!("sqlite://{}", path.display());
    let file_mb = || {
        let path = path.clone();
        async move {
            ["", "-wal"]
                .iter()
                .filter_map(|s| std::fs::metadata(format!("{}{s}", path.display())).ok())
                .map(|m| m.len() as f64 / 1e6)
                .sum::<f64>()
        }
    };
    one_store("SQLite", &url, n, file_mb).await?;
    let _ = std::fs::remove_dir_all(&dir);
    let name = format!("flowscope_bench_waits_{}", std::process::id());
    let store = scratch::create_database(postgres_admin_url, &name).await?;
    store.close().await;
    let url = scratch::database_url(postgres_admin_url, &name);
    let admin = Store::connect(postgres_admin_url).await?;
    let db_mb = || {
        let (admin, name) = (admin.clone(), name.clone());
        async move {
            admin
                .database_size(&name)
                .await
                .map_or(f64::NAN, |b| b as f64 / 1e6)
        }
    };
    let result = one_store("PostgreSQL", &url, n, db_mb).await;
    admin.close().await;
    scratch::drop_database(postgres_admin_url, &name).await?;
    result
}
