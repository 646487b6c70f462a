//! Child runs (agent `workflow`, migration 0013/0014): a child run records the run, step and
//! item that called it, which is how a caller finds its child again after a restart, a
//! retry finds the children an earlier run finished, and a cancel reaches them.

use serde_json::Value;

use super::{on_pool, Store, StoreError};
use crate::records::RunStatus;

/// Retries a call looks back through (`parent_run_id`), and callers a depth count climbs.
const MAX_CHAIN: i64 = 100;

/// A call's item, as stored: -1 for a step that is no `for_each`.
fn item_key(item: Option<i64>) -> i64 {
    item.unwrap_or(-1)
}

/// A call's child: by the `runs_by_call` index (run, step, item), so a lookup reads the
/// call's own rows whatever the number of the run's children.
const FIND_ITEM_CALL: &str = "SELECT id, status FROM runs WHERE caller_run_id = $1 \
    AND caller_step_id = $2 AND caller_item = $3 \
    AND status NOT IN ('failed', 'cancelled', 'timed_out') ORDER BY id DESC LIMIT 1";
/// The same for a step that is no `for_each` (`$3` is unused but bound: one binding for both).
const FIND_STEP_CALL: &str = "SELECT id, status FROM runs WHERE caller_run_id = $1 \
    AND caller_step_id = $2 AND caller_item IS NULL AND $3 = CAST(-1 AS BIGINT) \
    AND status NOT IN ('failed', 'cancelled', 'timed_out') ORDER BY id DESC LIMIT 1";

/// Succeeded children of the runs a run retries (its `parent_run_id` chain), for one step
/// and item: by the `runs_by_call` index.
const REUSABLE_ITEM_CALLS: &str = "WITH RECURSIVE chain(id, n) AS ( \
    SELECT parent_run_id, 1 FROM runs WHERE id = $1 AND parent_run_id IS NOT NULL \
    UNION ALL \
    SELECT r.parent_run_id, c.n + 1 FROM runs r JOIN chain c ON r.id = c.id \
    WHERE r.parent_run_id IS NOT NULL AND c.n < $4) \
    SELECT id, workflow_id, inputs FROM runs WHERE caller_run_id IN (SELECT id FROM chain) \
    AND caller_step_id = $2 AND caller_item = $3 AND status = 'succeeded' \
    ORDER BY id DESC LIMIT 10";
/// The same for a step that is no `for_each`.
const REUSABLE_STEP_CALLS: &str = "WITH RECURSIVE chain(id, n) AS ( \
    SELECT parent_run_id, 1 FROM runs WHERE id = $1 AND parent_run_id IS NOT NULL \
    UNION ALL \
    SELECT r.parent_run_id, c.n + 1 FROM runs r JOIN chain c ON r.id = c.id \
    WHERE r.parent_run_id IS NOT NULL AND c.n < $4) \
    SELECT id, workflow_id, inputs FROM runs WHERE caller_run_id IN (SELECT id FROM chain) \
    AND caller_step_id = $2 AND caller_item IS NULL AND $3 = CAST(-1 AS BIGINT) AND status = 'succeeded' \
    ORDER BY id DESC LIMIT 10";

impl Store {
    /// The child run step `step_id` (item `item`) of run `run_id` called and that has not
    /// failed: one still going, or one that succeeded. The newest, if several.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "SELECT runs", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "SELECT", db.collection.name = "runs"))]
    pub async fn find_call(
        &self,
        run_id: &str,
        step_id: &str,
        item: Option<i64>,
    ) -> Result<Option<(String, RunStatus)>, StoreError> {
        let row: Option<(String, String)> = on_pool!(self, pool => {
            sqlx::query_as(if item.is_some() { FIND_ITEM_CALL } else { FIND_STEP_CALL })
                .bind(run_id.to_string())
                .bind(step_id.to_string())
                .bind(item_key(item))
                .fetch_optional(pool)
                .await?
        });
        row.map(|(id, status)| {
            let status = RunStatus::parse(&status).ok_or_else(|| {
                StoreError::Corrupt(format!("run {id}: unknown status \"{status}\""))
            })?;
            Ok((id, status))
        })
        .transpose()
    }

    /// Children that the same step (and item) of the runs this run retries called and that
    /// succeeded, newest first: `(id, workflow_id, inputs)`. A retry re-uses them.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "SELECT runs", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "SELECT", db.collection.name = "runs"))]
    pub async fn reusable_calls(
        &self,
        run_id: &str,
        step_id: &str,
        item: Option<i64>,
    ) -> Result<Vec<(String, String, Value)>, StoreError> {
        let sql = if item.is_some() {
            REUSABLE_ITEM_CALLS
        } else {
            REUSABLE_STEP_CALLS
        };
        let rows: Vec<(String, String, String)> = on_pool!(self, pool => {
            sqlx::query_as(sql)
                .bind(run_id.to_string())
                .bind(step_id.to_string())
                .bind(item_key(item))
                .bind(MAX_CHAIN)
                .fetch_all(pool)
                .await?
        });
        Ok(rows
            .into_iter()
            .map(|(id, wf, inputs)| {
                let inputs = serde_json::from_str(&inputs).unwrap_or(Value::Null);
                (id, wf, inputs)
            })
            .collect())
    }

    /// How many calls deep run `run_id` is: 0 for a run no `workflow` step called.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "SELECT runs", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "SELECT", db.collection.name = "runs"))]
    pub async fn call_depth(&self, run_id: &str) -> Result<i64, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_scalar(
                "WITH RECURSIVE up(id, n) AS ( \
                   SELECT caller_run_id, 1 FROM runs WHERE id = $1 AND caller_run_id IS NOT NULL \
                   UNION ALL \
                   SELECT r.caller_run_id, u.n + 1 FROM runs r JOIN up u ON r.id = u.id \
                   WHERE r.caller_run_id IS NOT NULL AND u.n < $2) \
                 SELECT CAST(COUNT(*) AS BIGINT) FROM up",
            )
            .bind(run_id.to_string())
            .bind(MAX_CHAIN)
            .fetch_one(pool)
            .await?
        }))
    }

    /// The children of run `run_id` that have not ended.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "SELECT runs", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "SELECT", db.collection.name = "runs"))]
    pub async fn unfinished_children(&self, run_id: &str) -> Result<Vec<String>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_scalar(
                "SELECT id FROM runs WHERE caller_run_id = $1 \
                 AND status NOT IN ('succeeded', 'failed', 'cancelled', 'timed_out')",
            )
            .bind(run_id.to_string())
            .fetch_all(pool)
            .await?
        }))
    }

    /// How a run ended: its status, error (with its first failed step's) and outputs.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "SELECT runs", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "SELECT", db.collection.name = "runs"))]
    pub async fn run_end(
        &self,
        run_id: &str,
    ) -> Result<(RunStatus, Option<String>, Option<Value>), StoreError> {
        type Row = (String, Option<String>, Option<String>, Option<String>);
        let row: Option<Row> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT status, error, outputs, (SELECT error_message FROM run_steps s \
                 WHERE s.run_id = r.id AND s.status = 'failed' AND s.error_message IS NOT NULL \
                 ORDER BY s.finished_at LIMIT 1) FROM runs r WHERE id = $1",
            )
            .bind(run_id.to_string())
            .fetch_optional(pool)
            .await?
        });
        let (status, error, outputs, step_error) =
            row.ok_or_else(|| StoreError::RunNotFound(run_id.to_string()))?;
        let error = match (error, step_error) {
            (Some(e), Some(s)) => Some(format!("{e}: {s}")),
            (e, s) => e.or(s),
        };
        let status = RunStatus::parse(&status).ok_or_else(|| {
            StoreError::Corrupt(format!("run {run_id}: unknown status \"{status}\""))
        })?;
        Ok((
            status,
            error,
            outputs.and_then(|o| serde_json::from_str(&o).ok()),
        ))
    }
}
