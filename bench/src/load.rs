//! `bench --load`: an open-loop trigger rate against a running server.

use std::time::{Duration, Instant};

use crate::{ms, pct};

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
