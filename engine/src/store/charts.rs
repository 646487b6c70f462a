//! What the charts of `/workflows/:id` and `/runs` plot: the newest runs in a window, and
//! their attempts (agent, time, span, cost). Runs are read newest first with a limit, attempts
//! by a key range from the oldest of those runs (run ids are UUIDv7, so they sort by time).

use tracing::Instrument;

use super::{db_span, on_pool, RunFilter, Store, StoreError};
use crate::records::RunSummary;

/// One step attempt, for agent-duration and cost charts.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptPoint {
    /// The run.
    pub run_id: String,
    /// Its workflow.
    pub workflow_id: String,
    /// The agent kind.
    pub agent: String,
    /// When it started (unix ms).
    pub started_at: i64,
    /// When it ended (unix ms).
    pub finished_at: Option<i64>,
    /// Its `agent.execute` span (hex).
    pub span_id: Option<String>,
    /// `cost_usd` of an `llm` attempt's output.
    pub cost_usd: Option<f64>,
}

/// Runs (newest first) and the attempts of those runs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChartData {
    /// The runs in the chart's window.
    pub runs: Vec<RunSummary>,
    /// Their attempts.
    pub attempts: Vec<AttemptPoint>,
}

type AttemptRow = (
    String,
    String,
    Option<String>,
    i64,
    Option<i64>,
    Option<String>,
    Option<String>,
);

impl Store {
    /// The newest `limit` runs created since `since_ms` (of one workflow, or all), with their
    /// attempts.
    pub async fn chart_data(
        &self,
        workflow: Option<&str>,
        since_ms: i64,
        limit: i64,
    ) -> Result<ChartData, StoreError> {
        let runs = self
            .list_runs(&RunFilter {
                workflow_id: workflow.map(str::to_string),
                since: Some(since_ms),
                limit,
                ..Default::default()
            })
            .await?;
        let Some(oldest) = runs.last().map(|r| r.id.clone()) else {
            return Ok(ChartData::default());
        };
        let span = db_span(
            self.backend(),
            "SELECT",
            "step_attempts",
            "SELECT … FROM step_attempts JOIN runs WHERE run_id >= ?",
        );
        let rows: Vec<AttemptRow> = async {
            Ok::<_, StoreError>(on_pool!(self, pool => {
                // Only outputs that report a cost are read whole.
                let mut q = sqlx::query_as::<_, AttemptRow>(if workflow.is_some() {
                    "SELECT a.run_id, r.workflow_id, a.agent, a.started_at, a.finished_at, a.span_id,
                            CASE WHEN a.output LIKE '%\"cost_usd\"%' THEN a.output END
                     FROM step_attempts a JOIN runs r ON r.id = a.run_id
                     WHERE a.run_id >= $1 AND r.workflow_id = $2"
                } else {
                    "SELECT a.run_id, r.workflow_id, a.agent, a.started_at, a.finished_at, a.span_id,
                            CASE WHEN a.output LIKE '%\"cost_usd\"%' THEN a.output END
                     FROM step_attempts a JOIN runs r ON r.id = a.run_id
                     WHERE a.run_id >= $1"
                })
                .bind(oldest);
                if let Some(w) = workflow {
                    q = q.bind(w.to_string());
                }
                q.fetch_all(pool).await?
            }))
        }
        .instrument(span)
        .await?;
        let attempts = rows
            .into_iter()
            .map(
                |(run_id, workflow_id, agent, started_at, finished_at, span_id, output)| {
                    let cost_usd = output
                        .and_then(|o| serde_json::from_str::<serde_json::Value>(&o).ok())
                        .and_then(|o| o["cost_usd"].as_f64());
                    AttemptPoint {
                        run_id,
                        workflow_id,
                        agent: agent.unwrap_or_else(|| "unknown".into()),
                        started_at,
                        finished_at,
                        span_id,
                        cost_usd,
                    }
                },
            )
            .collect();
        Ok(ChartData { runs, attempts })
    }
}
