//! Claims, leases and wake-ups for several processes on one PostgreSQL database.
//!
//! A run is driven by the worker that claimed it (`runs.owner`). A claim holds while the
//! worker's row in `workers` has a fresh heartbeat (the database's clock, so machines need not
//! agree on the time); a worker whose heartbeat is older than the lease is dead, and its
//! unfinished runs are claimed by others. Every claim is `FOR UPDATE SKIP LOCKED`, so
//! claimers never wait on each other, and every state change a worker commits is fenced by
//! `flowscope_fence` (migration 0006): a worker that lost its runs cannot write to them.
//!
//! Wake-ups are `NOTIFY`: `flowscope_runs` when there may be something to claim, `flowscope_cancel`
//! with a run id, `flowscope_events` with live events for other processes' pages.
//! SQLite serves one process, so none of this applies there: these calls refuse it.

use serde_json::Value;
use sqlx::postgres::{PgListener, PgPool};

use super::runs::{step_rows_of, RunRow};
use super::{Db, Resumable, Store, StoreError};

/// Channel woken when a run may be claimable (created, released, a limited run finished).
pub const RUNS_CHANNEL: &str = "flowscope_runs";
/// Channel carrying the id of a run whose cancellation was requested.
pub const CANCEL_CHANNEL: &str = "flowscope_cancel";
/// Channel carrying live events (JSON) from one process to the others.
pub const EVENTS_CHANNEL: &str = "flowscope_events";
/// Channel carrying the id of a worker that joined: the others stop running alone.
pub const WORKERS_CHANNEL: &str = "flowscope_workers";
/// Channel woken when a step may be claimable (offered, or its claimant died).
pub const STEPS_CHANNEL: &str = "flowscope_steps";
/// Channel carrying the id of a run one of whose offered steps has a result.
pub const STEP_DONE_CHANNEL: &str = "flowscope_step_done";

/// The database's clock in unix milliseconds: every process compares heartbeats against it.
const DB_NOW_MS: &str = "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT";

/// One process that runs workflows, as the `workers` table has it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkerRow {
    /// Its id (unique per start).
    pub id: String,
    /// Its name (host and process).
    pub name: String,
    /// `server` or `worker`.
    pub kind: String,
    /// When it started (unix ms).
    pub started_at: i64,
    /// Its last heartbeat (unix ms).
    pub heartbeat_at: i64,
    /// Unfinished runs it holds.
    pub runs: i64,
}

#[derive(sqlx::FromRow)]
struct ClaimRow {
    #[sqlx(flatten)]
    run: RunRow,
    cancel_requested: Option<i64>,
    traceparent: Option<String>,
    pause_requested: Option<i64>,
}

const CLAIM_COLUMNS: &str = "r.id, r.workflow_id, r.workflow_version, r.status, r.trigger, r.actor, r.parent_run_id, r.error, r.created_at, r.started_at, r.finished_at, r.trace_id, r.span_id, r.labels, r.inputs, r.cancel_requested, r.traceparent, r.pause_requested";

impl Store {
    pub(super) fn pg(&self) -> Result<&PgPool, StoreError> {
        match &self.db {
            Db::Postgres(pool) => Ok(pool),
            Db::Sqlite(_) => Err(StoreError::Refused(
                "several processes need PostgreSQL: an SQLite file serves one process".into(),
            )),
        }
    }

    /// Records a new worker with a fresh heartbeat.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "INSERT workers", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "INSERT", db.collection.name = "workers"))]
    pub async fn register_worker(
        &self,
        id: &str,
        name: &str,
        kind: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.pg()?.begin().await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO workers (id, name, kind, started_at, heartbeat_at) VALUES ($1, $2, $3, {DB_NOW_MS}, {DB_NOW_MS})"
        )))
        .bind(id)
        .bind(name)
        .bind(kind)
        .execute(&mut *tx)
        .await?;
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(WORKERS_CHANNEL)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Renews a worker's lease and returns how many workers are alive, itself included.
    /// `None`: the lease had already expired (or the row is gone), so others may hold its
    /// runs now; the worker must give them up and join again.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "UPDATE workers", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "UPDATE", db.collection.name = "workers"))]
    pub async fn heartbeat(&self, id: &str, lease_ms: i64) -> Result<Option<i64>, StoreError> {
        let alive: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "UPDATE workers SET heartbeat_at = {DB_NOW_MS} WHERE id = $1 AND heartbeat_at >= {DB_NOW_MS} - $2 \
             RETURNING (SELECT count(*) FROM workers WHERE heartbeat_at >= {DB_NOW_MS} - $2)"
        )))
        .bind(id)
        .bind(lease_ms)
        .fetch_optional(self.pg()?)
        .await?;
        Ok(alive)
    }

    /// Claims up to `limit` unclaimed runs without a concurrency limit, oldest first.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "UPDATE runs", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "UPDATE", db.collection.name = "runs"))]
    pub async fn claim_new(&self, me: &str, limit: i64) -> Result<Vec<Resumable>, StoreError> {
        let pool = self.pg()?;
        let rows: Vec<ClaimRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "WITH c AS (SELECT id FROM runs WHERE owner IS NULL AND concurrency IS NULL AND status IN ('queued', 'running') \
             ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED) \
             UPDATE runs r SET owner = $1 FROM c WHERE r.id = c.id RETURNING {CLAIM_COLUMNS}"
        )))
        .bind(me)
        .bind(limit)
        .fetch_all(pool)
        .await?;
        self.resumables(pool, rows).await
    }

    /// Claims up to `limit` unfinished runs whose worker's lease expired (or whose worker is
    /// gone), oldest first. Their concurrency slots were already counted, so limits hold.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "UPDATE runs", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "UPDATE", db.collection.name = "runs"))]
    pub async fn claim_orphans(
        &self,
        me: &str,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<Resumable>, StoreError> {
        let pool = self.pg()?;
        let rows: Vec<ClaimRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "WITH c AS (SELECT id FROM runs x WHERE owner IS NOT NULL AND status IN ('queued', 'running') \
             AND NOT EXISTS (SELECT 1 FROM workers w WHERE w.id = x.owner AND w.heartbeat_at >= {DB_NOW_MS} - $2) \
             ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED) \
             UPDATE runs r SET owner = $1 FROM c WHERE r.id = c.id RETURNING {CLAIM_COLUMNS}"
        )))
        .bind(me)
        .bind(lease_ms)
        .bind(limit)
        .fetch_all(pool)
        .await?;
        if !rows.is_empty() {
            // The dead owner's offers: the new owner runs those steps again as new attempts,
            // so a result still coming for them has nowhere to go.
            let ids: Vec<&str> = rows.iter().map(|r| r.run.id.as_str()).collect();
            sqlx::query("DELETE FROM step_offers WHERE run_id = ANY($1)")
                .bind(&ids)
                .execute(pool)
                .await?;
            tracing::info!(
                runs = rows.len(),
                "took over runs of a worker whose lease expired"
            );
        }
        self.resumables(pool, rows).await
    }

    /// Claims unclaimed runs of workflows with a `concurrency` limit, keeping to the limit
    /// across every process: each workflow's claim holds its workflow row's lock while it
    /// counts the runs already claimed.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "UPDATE runs", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "UPDATE", db.collection.name = "runs"))]
    pub async fn claim_limited(&self, me: &str, limit: i64) -> Result<Vec<Resumable>, StoreError> {
        let pool = self.pg()?;
        let workflows: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT workflow_id FROM runs WHERE owner IS NULL AND concurrency IS NOT NULL \
             AND status IN ('queued', 'running') LIMIT 64",
        )
        .fetch_all(pool)
        .await?;
        let mut rows: Vec<ClaimRow> = Vec::new();
        for workflow in workflows {
            let room = limit - rows.len() as i64;
            if room <= 0 {
                break;
            }
            let mut tx = pool.begin().await?;
            // Serialises claims of this workflow; `NO KEY` lets new runs (a foreign key to
            // this row) be inserted meanwhile.
            sqlx::query("SELECT 1 FROM workflows WHERE id = $1 FOR NO KEY UPDATE")
                .bind(&workflow)
                .execute(&mut *tx)
                .await?;
            let (busy, cap): (i64, Option<i64>) = sqlx::query_as(
                "SELECT \
                   (SELECT count(*) FROM runs WHERE workflow_id = $1 AND owner IS NOT NULL AND concurrency IS NOT NULL AND status IN ('queued', 'running')), \
                   (SELECT concurrency FROM runs WHERE workflow_id = $1 AND owner IS NULL AND concurrency IS NOT NULL AND status IN ('queued', 'running') ORDER BY id LIMIT 1)",
            )
            .bind(&workflow)
            .fetch_one(&mut *tx)
            .await?;
            let n = cap.unwrap_or(0).saturating_sub(busy).min(room);
            if n > 0 {
                let mut claimed: Vec<ClaimRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "WITH c AS (SELECT id FROM runs WHERE workflow_id = $2 AND owner IS NULL AND concurrency IS NOT NULL \
                     AND status IN ('queued', 'running') ORDER BY id LIMIT $3) \
                     UPDATE runs r SET owner = $1 FROM c WHERE r.id = c.id RETURNING {CLAIM_COLUMNS}"
                )))
                .bind(me)
                .bind(&workflow)
                .bind(n)
                .fetch_all(&mut *tx)
                .await?;
                rows.append(&mut claimed);
            }
            tx.commit().await?;
        }
        rows.sort_by(|a, b| a.run.id.cmp(&b.run.id));
        self.resumables(pool, rows).await
    }

    /// Gives back a worker's unfinished runs (graceful shutdown) and removes the worker;
    /// others are woken to claim them at once. Returns how many runs were released.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "UPDATE runs", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "UPDATE", db.collection.name = "runs"))]
    pub async fn release_worker(&self, me: &str) -> Result<u64, StoreError> {
        let pool = self.pg()?;
        let mut tx = pool.begin().await?;
        // Its open attempts stopped with a shutdown, not a crash: not counted as crashes.
        sqlx::query(
            "UPDATE step_attempts SET status = 'failed', error_kind = 'shutdown', \
             error_message = 'the server shut down while this attempt ran; it starts again', \
             finished_at = $2 WHERE status = 'running' \
             AND run_id IN (SELECT id FROM runs WHERE owner = $1 AND status IN ('queued', 'running'))",
        )
        .bind(me)
        .bind(super::now_ms())
        .execute(&mut *tx)
        .await?;
        let released = sqlx::query(
            "UPDATE runs SET owner = NULL WHERE owner = $1 AND status IN ('queued', 'running')",
        )
        .bind(me)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        // Its runs' offers end with them (whoever resumes a run offers again); the steps it
        // claimed from others' runs go back to be claimed again.
        sqlx::query("DELETE FROM step_offers WHERE owner = $1")
            .bind(me)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE step_offers SET claimed_by = NULL, claimed_at = NULL WHERE claimed_by = $1 AND result IS NULL",
        )
        .bind(me)
        .execute(&mut *tx)
        .await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("NOTIFY {STEPS_CHANNEL}")))
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM workers WHERE id = $1")
            .bind(me)
            .execute(&mut *tx)
            .await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("NOTIFY {RUNS_CHANNEL}")))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(released)
    }

    /// Ends a run nobody has claimed yet as cancelled; its workflow id when it did.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "UPDATE runs", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "UPDATE", db.collection.name = "runs"))]
    pub async fn cancel_unclaimed(&self, id: &str, at: i64) -> Result<Option<String>, StoreError> {
        let pool = self.pg()?;
        let mut tx = pool.begin().await?;
        let workflow: Option<String> = sqlx::query_scalar(
            "UPDATE runs SET status = 'cancelled', error = 'cancelled before it started', finished_at = $2, started_at = COALESCE(started_at, $2) \
             WHERE id = $1 AND owner IS NULL AND status = 'queued' RETURNING workflow_id",
        )
        .bind(id)
        .bind(at)
        .fetch_optional(&mut *tx)
        .await?;
        if workflow.is_some() {
            sqlx::query(
                "UPDATE run_steps SET status = 'cancelled', finished_at = $2 WHERE run_id = $1 AND status = 'pending'",
            )
            .bind(id)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(workflow)
    }

    /// Runs this worker holds whose cancellation was requested: the polling fallback of
    /// `flowscope_cancel`.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "SELECT runs", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "SELECT", db.collection.name = "runs"))]
    pub async fn cancels_for(&self, me: &str) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM runs WHERE owner = $1 AND status IN ('queued', 'running') AND cancel_requested IS NOT NULL",
        )
        .bind(me)
        .fetch_all(self.pg()?)
        .await?)
    }

    /// Every registered worker with its unfinished runs; the oldest heartbeats last.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "SELECT workers", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "SELECT", db.collection.name = "workers"))]
    pub async fn workers(&self) -> Result<Vec<WorkerRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT w.id, w.name, w.kind, w.started_at, w.heartbeat_at, \
               (SELECT count(*) FROM runs r WHERE r.owner = w.id AND r.status IN ('queued', 'running')) AS runs \
             FROM workers w ORDER BY w.heartbeat_at DESC, w.id",
        )
        .fetch_all(self.pg()?)
        .await?)
    }

    /// [`Store::workers`] and the database's clock (unix ms), to tell how long each has been
    /// silent whatever the reader's clock says.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "SELECT workers", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "SELECT", db.collection.name = "workers"))]
    pub async fn workers_now(&self) -> Result<(Vec<WorkerRow>, i64), StoreError> {
        let workers = self.workers().await?;
        let now: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT {DB_NOW_MS}")))
            .fetch_one(self.pg()?)
            .await?;
        Ok((workers, now))
    }

    /// Deletes one worker's row (its unfinished runs become claimable at once).
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "DELETE workers", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "DELETE", db.collection.name = "workers"))]
    pub async fn forget_worker(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM workers WHERE id = $1")
            .bind(id)
            .execute(self.pg()?)
            .await?;
        Ok(())
    }

    /// Deletes workers silent for longer than `older_than_ms` that hold no unfinished run.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "DELETE workers", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "DELETE", db.collection.name = "workers"))]
    pub async fn forget_workers(&self, older_than_ms: i64) -> Result<u64, StoreError> {
        Ok(sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM workers w WHERE heartbeat_at < {DB_NOW_MS} - $1 \
             AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.owner = w.id AND r.status IN ('queued', 'running'))"
        )))
        .bind(older_than_ms)
        .execute(self.pg()?)
        .await?
        .rows_affected())
    }

    /// Sends `payload` on `channel` to every listening process.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "NOTIFY", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "NOTIFY"))]
    pub async fn notify(&self, channel: &str, payload: &str) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(channel)
            .bind(payload)
            .execute(self.pg()?)
            .await?;
        Ok(())
    }

    /// A connection listening on the cluster's channels. It reconnects by itself; what was
    /// sent while it was away is lost, which the callers' polling covers.
    pub async fn listen(&self) -> Result<PgListener, StoreError> {
        let mut listener = PgListener::connect_with(self.pg()?).await?;
        listener
            .listen_all([
                RUNS_CHANNEL,
                CANCEL_CHANNEL,
                EVENTS_CHANNEL,
                WORKERS_CHANNEL,
                STEPS_CHANNEL,
                STEP_DONE_CHANNEL,
            ])
            .await?;
        Ok(listener)
    }

    /// Claimed rows with their steps (one query for all), as the executor resumes them.
    async fn resumables(
        &self,
        pool: &PgPool,
        rows: Vec<ClaimRow>,
    ) -> Result<Vec<Resumable>, StoreError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = rows.iter().map(|r| r.run.id.clone()).collect();
        let mut steps = step_rows_of(pool, &ids).await?;
        let mut waits = super::waits::waits_of_runs(pool, &ids).await?;
        let mut out = Vec::with_capacity(rows.len());
        for mut row in rows {
            let inputs = row
                .run
                .inputs
                .take()
                .and_then(|i| serde_json::from_str(&i).ok())
                .unwrap_or(Value::Null);
            let run = row.run.into_summary()?;
            out.push(Resumable {
                steps: steps.remove(&run.id).unwrap_or_default(),
                waits: waits.remove(&run.id).unwrap_or_default(),
                pause_requested: row.pause_requested.is_some(),
                run,
                inputs,
                cancel_requested: row.cancel_requested.is_some(),
                traceparent: row.traceparent,
            });
        }
        Ok(out)
    }
}

/// A step offer claimed by this worker: what it needs to run the agent.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClaimedStep {
    /// The run.
    pub run_id: String,
    /// The step.
    pub step_id: String,
    /// The attempt.
    pub attempt: i64,
    /// The step's agent.
    pub agent: String,
    /// JSON: the rendered `with`, the data, the timeout.
    pub payload: String,
}

/// Step offers (migration 0007): see `executor::offers`.
impl Store {
    /// Claims up to `limit` unclaimed offers of the agents this worker runs, oldest first.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "UPDATE step_offers", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "UPDATE", db.collection.name = "step_offers"))]
    pub async fn claim_steps(
        &self,
        me: &str,
        agents: &[&str],
        limit: i64,
    ) -> Result<Vec<ClaimedStep>, StoreError> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "WITH c AS (SELECT run_id, step_id FROM step_offers WHERE claimed_by IS NULL AND agent = ANY($3) \
             ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED) \
             UPDATE step_offers o SET claimed_by = $1, claimed_at = {DB_NOW_MS} FROM c \
             WHERE o.run_id = c.run_id AND o.step_id = c.step_id \
             RETURNING o.run_id, o.step_id, o.attempt, o.agent, o.payload"
        )))
        .bind(me)
        .bind(limit)
        .bind(agents)
        .fetch_all(self.pg()?)
        .await?)
    }

    /// Takes back an offer nobody has claimed: true when the owner may run the step itself.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "DELETE step_offers", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "DELETE", db.collection.name = "step_offers"))]
    pub async fn withdraw_offer(
        &self,
        run_id: &str,
        step_id: &str,
        attempt: i64,
    ) -> Result<bool, StoreError> {
        let n = sqlx::query(
            "DELETE FROM step_offers WHERE run_id = $1 AND step_id = $2 AND attempt = $3 AND claimed_by IS NULL",
        )
        .bind(run_id)
        .bind(step_id)
        .bind(attempt)
        .execute(self.pg()?)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Writes the result of a claimed offer and tells its owner. False when the claim is not
    /// this worker's anymore (its lease lapsed, the run ended or moved): the result is dropped.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "UPDATE step_offers", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "UPDATE", db.collection.name = "step_offers"))]
    pub async fn report_step(
        &self,
        me: &str,
        step: &ClaimedStep,
        result: &str,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pg()?.begin().await?;
        let n = sqlx::query(
            "UPDATE step_offers SET result = $5 WHERE run_id = $1 AND step_id = $2 AND attempt = $3 AND claimed_by = $4 AND result IS NULL",
        )
        .bind(&step.run_id)
        .bind(&step.step_id)
        .bind(step.attempt)
        .bind(me)
        .bind(result)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 1 {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(STEP_DONE_CHANNEL)
                .bind(&step.run_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(n == 1)
    }

    /// Results of a run's offered steps: `(step_id, attempt, result JSON)`.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "SELECT step_offers", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "SELECT", db.collection.name = "step_offers"))]
    pub async fn step_results(
        &self,
        run_id: &str,
    ) -> Result<Vec<(String, i64, String)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT step_id, attempt, result FROM step_offers WHERE run_id = $1 AND result IS NOT NULL",
        )
        .bind(run_id)
        .fetch_all(self.pg()?)
        .await?)
    }

    /// Offers claimed by workers whose lease expired (or that are gone) and never answered go
    /// back to be claimed again; returns how many.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "UPDATE step_offers", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "UPDATE", db.collection.name = "step_offers"))]
    pub async fn reoffer_lost_steps(&self, lease_ms: i64) -> Result<u64, StoreError> {
        let mut tx = self.pg()?.begin().await?;
        let n = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE step_offers o SET claimed_by = NULL, claimed_at = NULL \
             WHERE claimed_by IS NOT NULL AND result IS NULL \
             AND NOT EXISTS (SELECT 1 FROM workers w WHERE w.id = o.claimed_by AND w.heartbeat_at >= {DB_NOW_MS} - $1)"
        )))
        .bind(lease_ms)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n > 0 {
            sqlx::query(sqlx::AssertSqlSafe(format!("NOTIFY {STEPS_CHANNEL}")))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(n)
    }
}

/// Figures of the database itself, for `bench --workers`.
impl Store {
    /// Transactions committed in this database so far (`pg_stat_database`).
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "SELECT pg_stat_database", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "SELECT", db.collection.name = "pg_stat_database"))]
    pub async fn commits(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()",
        )
        .fetch_one(self.pg()?)
        .await?)
    }

    /// Row and relation locks held right now in this database.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "SELECT pg_locks", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "SELECT", db.collection.name = "pg_locks"))]
    pub async fn lock_count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database WHERE d.datname = current_database()",
        )
        .fetch_one(self.pg()?)
        .await?)
    }

    /// Dead rows in the run tables and how often autovacuum has cleaned them.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "SELECT pg_stat_user_tables", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "SELECT", db.collection.name = "pg_stat_user_tables"))]
    pub async fn table_stats(&self) -> Result<(i64, i64), StoreError> {
        Ok(sqlx::query_as(
            "SELECT COALESCE(sum(n_dead_tup), 0)::BIGINT, COALESCE(sum(autovacuum_count), 0)::BIGINT FROM pg_stat_user_tables \
             WHERE relname IN ('runs', 'run_steps', 'step_attempts')",
        )
        .fetch_one(self.pg()?)
        .await?)
    }

    /// Opens a transaction with a snapshot of `runs` and keeps it until dropped (it rolls
    /// back): what a forgotten `BEGIN` in a console does to a queue table.
    pub async fn hold_snapshot(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, StoreError> {
        let mut tx = self.pg()?.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            .execute(&mut *tx)
            .await?;
        sqlx::query("SELECT count(*) FROM runs")
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }

    /// Start-to-finish times of runs, in ms, as the database has them.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "SELECT runs", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "SELECT", db.collection.name = "runs"))]
    pub async fn run_times_ms(&self, ids: &[String]) -> Result<Vec<f64>, StoreError> {
        let times: Vec<i64> = sqlx::query_scalar(
            "SELECT finished_at - started_at FROM runs WHERE id = ANY($1) AND finished_at IS NOT NULL",
        )
        .bind(ids)
        .fetch_all(self.pg()?)
        .await?;
        Ok(times.into_iter().map(|t| t as f64).collect())
    }
}
