//! `flowscope bench --ui`: server rendering time of the pages issue 4 sets targets for, on a
//! SQLite database filled like a busy hub — 1,000 workflows, 100,000 runs over 30 days — and
//! a run page with a 200-step DAG. Requests go over real HTTP to the real router; the time
//! is until the last byte of the streamed page has arrived.

use std::time::{Duration, Instant};

use engine::executor::{Engine, EngineConfig, TriggerRequest};

use crate::{ms, pct};
use engine::model::Workflow;
use engine::records::RunStatus;
use engine::store::{id_floor, NewRun, Op, Store};

const WORKFLOWS: usize = 1_000;
const RUNS: usize = 100_000;
const DAY_MS: i64 = 86_400_000;
/// Requests per page after the warm-up.
const SAMPLES: usize = 40;

fn doc(id: &str) -> String {
    format!(
        "id: {id}\nname: Workflow {id}\ntags: [bench]\nsteps:\n- id: a\n  agent: simulate\n- id: b\n  agent: simulate\n  needs: [a]\n"
    )
}

/// A 200-step DAG: 20 layers of 10, each step needing one step of the layer before.
fn wide_doc() -> String {
    let mut s = String::from("id: dag-200\nname: 200-step DAG\nsteps:\n");
    for layer in 0..20 {
        for i in 0..10 {
            s.push_str(&format!("- id: s{layer}_{i}\n  agent: simulate\n"));
            if layer > 0 {
                s.push_str(&format!("  needs: [s{}_{}]\n", layer - 1, (i + layer) % 10));
            }
        }
    }
    s
}

async fn fill(store: &Store, now: i64) -> anyhow::Result<()> {
    for i in 0..WORKFLOWS {
        let text = doc(&format!("wf-{i:04}"));
        let w = Workflow::parse(&text).map_err(|p| anyhow::anyhow!("{p:?}"))?;
        store.create_workflow(&w, &text).await?;
    }
    let span = 30 * DAY_MS;
    let mut ops = Vec::with_capacity(3_000);
    for n in 0..RUNS {
        // Oldest first, evenly over 30 days, round-robin over the workflows.
        let at = now - span + (n as i64 * span / RUNS as i64);
        let run_id = format!("{}{:012x}", &id_floor(at)[..24], n);
        ops.push(Op::CreateRun(Box::new(NewRun {
            id: run_id.clone(),
            workflow_id: format!("wf-{:04}", n % WORKFLOWS),
            workflow_version: 1,
            trigger: "api".into(),
            actor: None,
            inputs: serde_json::json!({}),
            parent_run_id: None,
            traceparent: None,
            created_at: at,
            step_ids: vec!["a".into(), "b".into()],
            reused: vec![],
            concurrency: None,
            owner: None,
            caller: None,
            labels: Default::default(),
        })));
        ops.push(Op::StartRun {
            run_id: run_id.clone(),
            at,
            trace: None,
        });
        let status = if n % 10 == 0 {
            RunStatus::Failed
        } else {
            RunStatus::Succeeded
        };
        ops.push(Op::FinishRun {
            run_id,
            status,
            error: None,
            at: at + 20 + (n % 50) as i64,
            frees_slot: false,
            outputs: None,
            search: None,
        });
        if ops.len() >= 3_000 {
            store.apply(&ops).await?;
            ops.clear();
        }
    }
    store.apply(&ops).await?;
    Ok(())
}

async fn measure(client: &reqwest::Client, url: &str) -> anyhow::Result<(f64, f64, usize)> {
    let mut times = Vec::with_capacity(SAMPLES);
    let mut bytes = 0;
    for i in 0..SAMPLES + 3 {
        let start = Instant::now();
        let r = client.get(url).send().await?;
        anyhow::ensure!(r.status().is_success(), "{url} answered {}", r.status());
        let body = r.bytes().await?;
        let t = start.elapsed();
        if i >= 3 {
            times.push(ms(t));
            bytes = body.len();
        }
    }
    times.sort_by(f64::total_cmp);
    Ok((pct(&times, 0.5), pct(&times, 0.99), bytes))
}

/// What loading a page costs in bytes on the wire.
struct PageBytes {
    /// The page, compressed as sent.
    html: u64,
    /// The site files it names (`/pkg/…`: JS, wasm, CSS, preloaded chunks), compressed as sent.
    files: u64,
    names: usize,
    /// Loaded again: what the site files cost (a 304 has no body; an `immutable` file is not
    /// asked for), and how many requests that takes.
    warm_files: u64,
    warm_requests: usize,
}

async fn page_bytes(client: &reqwest::Client, base: &str, path: &str) -> anyhow::Result<PageBytes> {
    let accept = "br, gzip";
    let r = client
        .get(format!("{base}{path}"))
        .header("accept-encoding", accept)
        .send()
        .await?;
    anyhow::ensure!(r.status().is_success(), "{path} answered {}", r.status());
    let html = r.bytes().await?;
    // The page is compressed: the names are read from a plain copy.
    let plain = client
        .get(format!("{base}{path}"))
        .send()
        .await?
        .text()
        .await?;
    let mut names: Vec<String> = plain
        .split("\"/pkg/")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(|name| format!("/pkg/{name}"))
        .collect();
    names.sort();
    names.dedup();
    let mut bytes = PageBytes {
        html: html.len() as u64,
        files: 0,
        names: names.len(),
        warm_files: 0,
        warm_requests: 0,
    };
    for name in &names {
        let r = client
            .get(format!("{base}{name}"))
            .header("accept-encoding", accept)
            .send()
            .await?;
        anyhow::ensure!(r.status().is_success(), "{name} answered {}", r.status());
        let header = |h: &str| {
            r.headers()
                .get(h)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let immutable = header("cache-control").is_some_and(|c| c.contains("immutable"));
        let modified = header("last-modified");
        bytes.files += r.bytes().await?.len() as u64;
        if immutable {
            continue;
        }
        bytes.warm_requests += 1;
        let mut again = client
            .get(format!("{base}{name}"))
            .header("accept-encoding", accept);
        if let Some(m) = modified {
            again = again.header("if-modified-since", m);
        }
        bytes.warm_files += again.send().await?.bytes().await?.len() as u64;
    }
    Ok(bytes)
}

/// Fills a database, then times the pages of the router `serve` builds over it (the server's
/// own: this crate does not depend on the server, the server's `bench` command passes it).
pub async fn run(serve: impl FnOnce(Store, Engine) -> axum::Router) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("flowscope-bench-ui-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let store = Store::connect(&format!("sqlite://{}/ui.db", dir.display())).await?;
    store.migrate().await?;
    let now = engine::store::now_ms();
    let filled = Instant::now();
    fill(&store, now).await?;
    eprintln!(
        "filled {WORKFLOWS} workflows and {RUNS} runs in {:.1} s",
        filled.elapsed().as_secs_f64()
    );

    let engine = Engine::start(store.clone(), EngineConfig::default()).await?;
    let wide = wide_doc();
    let w = Workflow::parse(&wide).map_err(|p| anyhow::anyhow!("{p:?}"))?;
    store.create_workflow(&w, &wide).await?;
    let run = engine
        .trigger(TriggerRequest {
            workflow_id: "dag-200".into(),
            trigger: "api".into(),
            ..Default::default()
        })
        .await?;
    engine.wait(&run.id).await?;

    let router = serve(store.clone(), engine.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
    });
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?;

    let mut stats_ms = Vec::new();
    for _ in 0..10 {
        let t = Instant::now();
        store.workflow_stats(engine::store::now_ms(), None).await?;
        stats_ms.push(ms(t.elapsed()));
    }
    stats_ms.sort_by(f64::total_cmp);
    // What one page of /workflows reads: every summary (to search and count), then the stats
    // of its 50 workflows.
    let (mut list_ms, mut page_stats_ms) = (Vec::new(), Vec::new());
    for _ in 0..20 {
        let t = Instant::now();
        let all = store.list_workflows(false).await?;
        list_ms.push(ms(t.elapsed()));
        let ids: Vec<&str> = all.iter().take(50).map(|w| w.id.as_str()).collect();
        let t = Instant::now();
        store
            .workflow_stats_of(engine::store::now_ms(), &ids)
            .await?;
        page_stats_ms.push(ms(t.elapsed()));
    }
    list_ms.sort_by(f64::total_cmp);
    page_stats_ms.sort_by(f64::total_cmp);
    println!("## Server rendering (SQLite, {WORKFLOWS} workflows, {RUNS} runs)");
    println!(
        "workflow stats of all {WORKFLOWS}: p50 {:.2} ms; every summary: p50 {:.2} ms; stats of one page of 50: p50 {:.2} ms",
        pct(&stats_ms, 0.5),
        pct(&list_ms, 0.5),
        pct(&page_stats_ms, 0.5)
    );
    println!("| page | p50 ms | p99 ms | HTML KB |");
    println!("|---|---|---|---|");
    for (label, path) in [
        (
            "/workflows (1,000 workflows: page 1 of 20, with stats)",
            "/workflows".to_string(),
        ),
        (
            "/workflows?q=wf-05 (search: 100 match, page 1)",
            "/workflows?q=wf-05".to_string(),
        ),
        (
            "/workflows?page=20 (the last page)",
            "/workflows?page=20".to_string(),
        ),
        ("/runs (newest 50 of 100,000)", "/runs".to_string()),
        ("/runs?status=failed", "/runs?status=failed".to_string()),
        ("/runs/:id (200-step DAG)", format!("/runs/{}", run.id)),
    ] {
        let (p50, p99, bytes) = measure(&client, &format!("{base}{path}")).await?;
        println!(
            "| {label} | {p50:.2} | {p99:.2} | {:.0} |",
            bytes as f64 / 1024.0
        );
    }
    println!();
    println!("## Bytes per page (as a browser that accepts brotli gets them)");
    println!("| page | HTML KB | site files KB (names) | cold KB | warm KB | warm requests for site files |");
    println!("|---|---|---|---|---|---|");
    for (label, path) in [
        ("/workflows", "/workflows".to_string()),
        ("/runs", "/runs".to_string()),
        ("/runs/:id (200-step DAG)", format!("/runs/{}", run.id)),
        ("/workflows/new (the builder)", "/workflows/new".to_string()),
    ] {
        let b = page_bytes(&client, &base, &path).await?;
        println!(
            "| {label} | {:.1} | {:.1} ({}) | {:.1} | {:.1} | {} |",
            b.html as f64 / 1024.0,
            b.files as f64 / 1024.0,
            b.names,
            (b.html + b.files) as f64 / 1024.0,
            (b.html + b.warm_files) as f64 / 1024.0,
            b.warm_requests
        );
    }
    store.close().await;
    if std::env::var_os("FLOWSCOPE_BENCH_KEEP").is_some() {
        eprintln!("kept {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}
