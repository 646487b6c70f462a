//! `simulate`: sleeps a latency drawn from a distribution, fails with a probability, and
//! emits an output of a chosen size. For demos, load tests and the benchmark.

use std::time::Duration;

use serde_json::{json, Map, Value};

use super::{duration_field, number_field, Agent, AgentContext, AgentError, AgentFuture};

pub struct Simulate;

impl Agent for Simulate {
    fn run<'a>(&'a self, ctx: &'a AgentContext, with: &'a Map<String, Value>) -> AgentFuture<'a> {
        Box::pin(async move {
            let mean = duration_field(with, "latency")?.unwrap_or(Duration::ZERO);
            let failure_rate = number_field(with, "failure_rate")?.unwrap_or(0.0);
            if !(0.0..=1.0).contains(&failure_rate) {
                return Err(AgentError::config(format!(
                    "failure_rate: {failure_rate} is not between 0 and 1"
                )));
            }
            let latency = match with
                .get("distribution")
                .and_then(Value::as_str)
                .unwrap_or("fixed")
            {
                "fixed" => mean,
                "uniform" => mean.mul_f64(2.0 * fastrand::f64()),
                // Inverse-CDF sampling; capped at 20× the mean so a demo never hangs.
                "exponential" => mean.mul_f64((-(1.0 - fastrand::f64()).ln()).min(20.0)),
                "lognormal" => mean.mul_f64(lognormal_factor()),
                other => {
                    return Err(AgentError::config(format!(
                        "distribution: unknown \"{other}\""
                    )))
                }
            };
            if !latency.is_zero() {
                super::timer::sleep(latency).await;
            }
            if failure_rate > 0.0 && fastrand::f64() < failure_rate {
                ctx.log(format!("simulated failure (failure_rate {failure_rate})"));
                return Err(AgentError::new(
                    "simulated",
                    format!("simulated failure after {} ms", latency.as_millis()),
                ));
            }
            if let Some(output) = with.get("output") {
                return Ok(output.clone());
            }
            match number_field(with, "output_bytes")? {
                Some(n) if n > 0.0 => Ok(Value::String(
                    "x".repeat(n.min(16.0 * 1024.0 * 1024.0) as usize),
                )),
                _ => Ok(json!({ "latency_ms": latency.as_secs_f64() * 1000.0 })),
            }
        })
    }
}

/// A log-normal multiplier with median 1 and σ = 0.5 (Box–Muller).
fn lognormal_factor() -> f64 {
    let (u1, u2) = (1.0 - fastrand::f64(), fastrand::f64());
    let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
    (0.5 * z).exp().min(20.0)
}
