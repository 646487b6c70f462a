//! `bench --telemetry`: tracing and metrics, exported and not, against telemetry off.

use anyhow::Context;

use crate::{tempfile_dir, Figures};

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
    let sink = otlp::sink::start()?;
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
