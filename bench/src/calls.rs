//! `flowscope bench --calls N`: one run whose `for_each` calls a child workflow N times, on
//! SQLite and PostgreSQL. The whole run's time, calls per second, and what one call adds to
//! a run of the child alone (its child run is created, linked, awaited and read back).

use std::time::{Duration, Instant};

use engine::executor::{Engine, EngineConfig, TriggerRequest};
use engine::model::Workflow;
use engine::records::RunStatus;
use engine::store::Store;
use serde_json::{json, Map, Value};

const CHILD: &str = "id: child\ninputs:\n  n: {type: integer}\noutputs:\n  twice: '{{ steps.double.output }}'\nsteps:\n- {id: double, agent: transform, with: {jq: '.inputs.n * 2'}}\n";
const FAN: &str = "id: fan\ninputs:\n  ns: {type: array}\nsteps:\n- {id: each, agent: workflow, for_each: inputs.ns, concurrency: 50, with: {workflow: child, inputs: {n: '{{ item }}'}}}\n";

async fn run_of(
    engine: &Engine,
    workflow: &str,
    inputs: Map<String, Value>,
) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let run = engine
        .trigger(TriggerRequest {
            workflow_id: workflow.into(),
            inputs,
            trigger: "bench".into(),
            ..Default::default()
        })
        .await?;
    let status = engine.wait(&run.id).await?;
    anyhow::ensure!(status == RunStatus::Succeeded, "run {} {status}", run.id);
    Ok(t.elapsed())
}

async fn one_store(label: &str, url: &str, n: usize) -> anyhow::Result<()> {
    let store = Store::connect(url).await?;
    store.migrate().await?;
    for doc in [CHILD, FAN] {
        let w = Workflow::parse(doc).map_err(|p| anyhow::anyhow!("{p:?}"))?;
        store.create_workflow(&w, doc).await?;
    }
    let engine = Engine::start(store, EngineConfig::default()).await?;
    // The child alone, one at a time: what a call costs beyond it.
    let mut alone = Vec::new();
    for i in 0..50 {
        let inputs = json!({ "n": i });
        let Value::Object(inputs) = inputs else {
            unreachable!()
        };
        alone.push(run_of(&engine, "child", inputs).await?.as_secs_f64() * 1000.0);
    }
    alone.sort_by(f64::total_cmp);
    let child_ms = crate::pct(&alone, 0.5);
    let ns: Vec<Value> = (0..n as i64).map(Value::from).collect();
    let mut inputs = Map::new();
    inputs.insert("ns".into(), Value::Array(ns));
    let took = run_of(&engine, "fan", inputs).await?;
    let s = took.as_secs_f64();
    println!(
        "| {label} | {n} | {s:.2} s | {:.0} | {child_ms:.2} |",
        n as f64 / s,
    );
    engine.shutdown(Duration::from_secs(1)).await;
    engine.store().close().await;
    Ok(())
}

/// Prints one table row per store.
pub async fn run_calls(postgres_admin_url: &str, n: usize) -> anyhow::Result<()> {
    println!("| store | calls in one for_each (50 at once) | whole run | calls/s | one child run alone, p50 ms |");
    println!("|---|---:|---:|---:|---:|");
    crate::on_both_stores(postgres_admin_url, "calls", async |label, url| {
        one_store(label, &url, n).await
    })
    .await
}
