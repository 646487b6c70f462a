//! `flowscope bench --search N`: N finished runs with labels and search text, then the run
//! list's label filters and searches over them, on SQLite and PostgreSQL. Each query is the
//! monitor's first page (50 runs, newest first); the figure is the median of 5.

use std::time::Instant;

use engine::model::Workflow;
use engine::records::RunStatus;
use engine::search::SearchQuery;
use engine::store::{Op, RunFilter, Store};
use serde_json::json;

const REGIONS: [&str; 5] = ["eu-west", "eu-north", "us-east", "us-west", "ap-south"];

/// N finished runs of `orders`, one a second up to now: inputs with an order and customer id
/// each, labels `env` (staging for one in ten) and `team` (one of 100), a search text made
/// as the engine makes it; one in twenty failed with an error naming the customer.
async fn fill(store: &Store, n: usize, now: i64) -> anyhow::Result<()> {
    let mut ops = Vec::with_capacity(4_000);
    for i in 0..n as u64 {
        let at = now - (n as i64 - i as i64) * 1000;
        let id = crate::id_at(at, i);
        let inputs = json!({
            "order": format!("ord-{i:07}"),
            "customer": format!("cust-{:05}", i % 50_000),
            "region": REGIONS[i as usize % 5],
        });
        let failed = i % 20 == 0;
        let output = json!({"total": i % 997, "currency": "EUR", "note": "shipped by courier"});
        let error = failed.then(|| format!("payment declined for cust-{:05}", i % 50_000));
        let errors: Vec<&str> = error.as_deref().into_iter().collect();
        let search = engine::search::document(&inputs, (!failed).then_some(&output), &errors);
        let labels = [
            (
                "env",
                if i % 10 == 0 { "staging" } else { "prod" }.to_string(),
            ),
            ("team", format!("t{:02}", i % 100)),
        ];
        let labels = labels.map(|(k, v)| (k.to_string(), v)).into();
        ops.push(crate::past_run(&id, "orders", at, inputs, labels));
        ops.push(Op::FinishRun {
            run_id: id,
            status: if failed {
                RunStatus::Failed
            } else {
                RunStatus::Succeeded
            },
            error,
            at: at + 5,
            frees_slot: false,
            outputs: None,
            search: Some(search),
        });
        crate::apply_from(store, &mut ops, 3_000).await?;
    }
    crate::apply_from(store, &mut ops, 1).await
}

/// The median time of the first page, and how many runs it held.
async fn measure(store: &Store, labels: &[(&str, &str)], q: &str) -> anyhow::Result<(f64, usize)> {
    let filter = RunFilter {
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        search: SearchQuery::parse(q).map_err(|e| anyhow::anyhow!(e))?,
        limit: 50,
        ..Default::default()
    };
    let mut times = Vec::new();
    let mut found = 0;
    for _ in 0..5 {
        let t = Instant::now();
        found = store.list_runs(&filter).await?.len();
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    Ok((times[2], found))
}

/// A query of the table: what it is, its labels, its words, and how many runs match.
type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str, String);

async fn one_store(label: &str, url: &str, n: usize) -> anyhow::Result<()> {
    let store = Store::connect(url).await?;
    store.migrate().await?;
    let doc = "id: orders\nsteps:\n- {id: s, agent: simulate}\n";
    let w = Workflow::parse(doc).map_err(|p| anyhow::anyhow!("{p:?}"))?;
    store.create_workflow(&w, doc).await?;
    let t = Instant::now();
    fill(&store, n, engine::store::now_ms()).await?;
    let fill_s = t.elapsed().as_secs_f64();
    // SQLite's index, as the engine builds it behind the runs' commits (PostgreSQL's was
    // kept while writing).
    let t = Instant::now();
    while store.index_search_texts(20_000).await? > 0 {}
    let index_s = t.elapsed().as_secs_f64();
    // PostgreSQL's statistics, as autovacuum would have them soon after such a load.
    store.analyze().await?;
    let (bytes, _) = store.database_bytes().await?;
    println!(
        "\n{label}: {n} runs written in {fill_s:.0} s ({:.0} runs/s), then indexed in {index_s:.0} s; database {:.0} MB\n",
        n as f64 / fill_s,
        bytes as f64 / 1e6
    );
    println!("| query | matches | first page (median of 5) |");
    println!("|---|---|---:|");
    let last = format!("ord-{:07}", n - 1);
    let middle = format!("ord-{:07}", n / 2);
    let cases: [Case; 8] = [
        ("a word in every run", &[], "courier", "95 %".into()),
        ("a word in one run in five", &[], "eu-north", "20 %".into()),
        ("the newest run's order id", &[], &last, "1".into()),
        ("an order id half-way back", &[], &middle, "1".into()),
        (
            "a customer in an error",
            &[],
            "declined cust-00020",
            format!("{}", n.div_ceil(50_000)),
        ),
        ("a word in no run", &[], "zanzibar", "0".into()),
        (
            "label env:staging",
            &[("env", "staging")],
            "",
            "10 %".into(),
        ),
        (
            "label team:t07 and a word",
            &[("team", "t07")],
            "us-east",
            "1 %".into(),
        ),
    ];
    for (name, labels, q, share) in cases {
        let (ms, found) = measure(&store, labels, q).await?;
        println!(
            "| {name} (`{}`) | {share} | {ms:.1} ms ({found} listed) |",
            if q.is_empty() { "–" } else { q }
        );
    }
    store.close().await;
    Ok(())
}

/// Prints one table per store.
pub async fn run_search(postgres_admin_url: &str, n: usize) -> anyhow::Result<()> {
    crate::on_both_stores(postgres_admin_url, "search", async |label, url| {
        one_store(label, &url, n).await
    })
    .await
}
