//! Waiting steps (migration 0012): a run whose every step that can go on waits is parked as
//! `waiting` with one row per waiting step, and holds no worker. Resolving a wait (a decision,
//! an event, a child run's end, a timer) and parking a run both lock the run's row first, so
//! one of them always sees the other: a run is never parked past a resolution.

use serde_json::Value;

use super::{on_pool, Backend, Store, StoreError};
use crate::records::{RunStatus, WaitKind, WaitRecord};

/// The columns of a [`WaitRecord`], in its field order.
const WAIT_COLUMNS: &str =
    "step_id, attempt, kind, wait_key, detail, created_at, due_at, resolved_at, outcome";

/// A run's waits, oldest first.
pub(super) const WAITS_OF_RUN: &str = "SELECT step_id, attempt, kind, wait_key, detail, created_at, due_at, resolved_at, outcome FROM waits WHERE run_id = $1 ORDER BY created_at, step_id";

pub(super) type WaitRow = (
    String,
    i64,
    String,
    Option<String>,
    String,
    i64,
    Option<i64>,
    Option<i64>,
    Option<String>,
);

pub(super) fn wait_record(run_id: &str, r: WaitRow) -> Result<WaitRecord, StoreError> {
    let (step_id, attempt, kind, key, detail, since, until, resolved_at, outcome) = r;
    Ok(WaitRecord {
        kind: WaitKind::parse(&kind).ok_or_else(|| {
            StoreError::Corrupt(format!("run {run_id}: unknown wait kind \"{kind}\""))
        })?,
        step_id,
        attempt,
        key,
        detail: serde_json::from_str(&detail).unwrap_or(Value::Null),
        since,
        until,
        resolved_at,
        outcome: outcome.and_then(|o| serde_json::from_str(&o).ok()),
    })
}

/// What parking a run came to.
#[derive(Debug)]
pub enum Park {
    /// The run is parked with this status (`waiting`, or `paused` when a pause is asked):
    /// its driver may go.
    Parked(RunStatus),
    /// Some of its waits were resolved meanwhile: the driver records them and goes on.
    Resolved(Vec<WaitRecord>),
    /// A cancel was asked meanwhile: the driver ends the run.
    Cancel,
    /// It was to park paused, but the pause was lifted meanwhile: the driver goes on.
    Resumed,
}

/// What resolving one wait came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolved {
    /// Resolved; the run was parked and is now `running` again, unclaimed: it must be woken.
    Woken,
    /// Resolved; the run's driver is alive (or the run is paused): it reads the resolution.
    Live,
    /// The wait was resolved already (another decision, a timeout came first).
    Already,
    /// The step does not wait (any more), or waits for something else.
    NotWaiting,
}

/// A [`WaitRow`] with its run's id first.
type RunWaitRow = (
    String,
    String,
    i64,
    String,
    Option<String>,
    String,
    i64,
    Option<i64>,
    Option<i64>,
    Option<String>,
);

/// The waits of several runs, by run id (PostgreSQL: claims load a batch at once).
pub(super) async fn waits_of_runs(
    pool: &sqlx::PgPool,
    ids: &[String],
) -> Result<std::collections::HashMap<String, Vec<WaitRecord>>, StoreError> {
    let rows: Vec<RunWaitRow> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT run_id, {WAIT_COLUMNS} FROM waits WHERE run_id = ANY($1) ORDER BY created_at, step_id"
        )))
        .bind(ids)
        .fetch_all(pool)
        .await?;
    let mut out: std::collections::HashMap<String, Vec<WaitRecord>> = Default::default();
    for (run_id, a, b, c, d, e, f, g, h, i) in rows {
        let record = wait_record(&run_id, (a, b, c, d, e, f, g, h, i))?;
        out.entry(run_id).or_default().push(record);
    }
    Ok(out)
}

impl Store {
    /// A run's waits, resolved or not.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "SELECT waits", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "SELECT", db.collection.name = "waits"))]
    pub async fn waits_of(&self, run_id: &str) -> Result<Vec<WaitRecord>, StoreError> {
        let rows: Vec<WaitRow> = on_pool!(self, pool => {
            sqlx::query_as(WAITS_OF_RUN)
            .bind(run_id.to_string())
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(|r| wait_record(run_id, r)).collect()
    }

    /// Parks a run whose driver has nothing left to do but wait: `waiting` (or `paused`),
    /// unclaimed, to be woken at `wake_at` at the latest. Unless a wait of the run was resolved
    /// meanwhile: then nothing changes and those resolutions are returned.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "UPDATE runs", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "UPDATE", db.collection.name = "runs", db.query.text = "UPDATE runs (lock); SELECT waits; UPDATE runs SET status"))]
    pub async fn park_run(
        &self,
        run_id: &str,
        status: RunStatus,
        wake_at: Option<i64>,
    ) -> Result<Park, StoreError> {
        let outcome: Result<Park, Vec<WaitRow>> = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            // The row lock (SQLite: the write lock) orders this against every resolution,
            // cancel and pause.
            let asked: Option<(Option<i64>, Option<i64>)> = sqlx::query_as(
                "UPDATE runs SET status = status WHERE id = $1 RETURNING cancel_requested, pause_requested",
            )
            .bind(run_id.to_string())
            .fetch_optional(&mut *tx)
            .await?;
            let (cancel, pause) = asked.ok_or_else(|| StoreError::RunNotFound(run_id.to_string()))?;
            let resolved: Vec<WaitRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {WAIT_COLUMNS} FROM waits WHERE run_id = $1 AND resolved_at IS NOT NULL"
            )))
            .bind(run_id.to_string())
            .fetch_all(&mut *tx)
            .await?;
            let status = if pause.is_some() { RunStatus::Paused } else { status };
            let outcome = if cancel.is_some() {
                Ok(Park::Cancel)
            } else if !resolved.is_empty() {
                Err(resolved)
            } else if status == RunStatus::Paused && pause.is_none() {
                Ok(Park::Resumed)
            } else {
                sqlx::query("UPDATE runs SET status = $2, owner = NULL, wake_at = $3 WHERE id = $1")
                    .bind(run_id.to_string())
                    .bind(status.as_str())
                    .bind(if status == RunStatus::Paused { None } else { wake_at })
                    .execute(&mut *tx)
                    .await?;
                Ok(Park::Parked(status))
            };
            tx.commit().await?;
            outcome
        });
        match outcome {
            Ok(park) => Ok(park),
            Err(rows) => Ok(Park::Resolved(
                rows.into_iter()
                    .map(|r| wait_record(run_id, r))
                    .collect::<Result<_, _>>()?,
            )),
        }
    }

    /// Resolves one wait of a run with `outcome` (JSON, see [`WaitRecord::outcome`]), if it
    /// is still open and of `kind` (any kind when `None`). A parked run is set running again,
    /// unclaimed, in the same transaction: see [`Resolved`].
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "UPDATE waits", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "UPDATE", db.collection.name = "waits", db.query.text = "UPDATE runs (lock); UPDATE waits SET resolved_at; UPDATE runs SET status"))]
    pub async fn resolve_wait(
        &self,
        run_id: &str,
        step_id: &str,
        kind: Option<WaitKind>,
        outcome: &Value,
        at: i64,
    ) -> Result<Resolved, StoreError> {
        let outcome = outcome.to_string();
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let status: Option<String> =
                sqlx::query_scalar("UPDATE runs SET status = status WHERE id = $1 RETURNING status")
                    .bind(run_id.to_string())
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some(status) = status else {
                return Err(StoreError::RunNotFound(run_id.to_string()));
            };
            let done = sqlx::query(
                "UPDATE waits SET resolved_at = $3, outcome = $4
                 WHERE run_id = $1 AND step_id = $2 AND resolved_at IS NULL AND ($5 IS NULL OR kind = $5)",
            )
            .bind(run_id.to_string())
            .bind(step_id.to_string())
            .bind(at)
            .bind(outcome)
            .bind(kind.map(|k| k.as_str()))
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if done == 0 {
                let open: Option<Option<i64>> = sqlx::query_scalar(
                    "SELECT resolved_at FROM waits WHERE run_id = $1 AND step_id = $2 AND ($3 IS NULL OR kind = $3)",
                )
                .bind(run_id.to_string())
                .bind(step_id.to_string())
                .bind(kind.map(|k| k.as_str()))
                .fetch_optional(&mut *tx)
                .await?;
                tx.commit().await?;
                return Ok(match open {
                    Some(Some(_)) => Resolved::Already,
                    _ => Resolved::NotWaiting,
                });
            }
            let woken = status == RunStatus::Waiting.as_str();
            if woken {
                sqlx::query("UPDATE runs SET status = 'running', owner = NULL, wake_at = NULL WHERE id = $1")
                    .bind(run_id.to_string())
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(if woken { Resolved::Woken } else { Resolved::Live })
        })
    }

    /// An event arrived: resolves every open `wait` on `key` with `payload` as its output, and
    /// keeps the event until `keep_until` (unix ms) for waits that start later. Returns the runs
    /// resolved, each with whether it was parked (and is now running again, unclaimed).
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "UPDATE waits", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "UPDATE", db.collection.name = "waits", db.query.text = "UPDATE runs (lock); UPDATE waits SET resolved_at; UPDATE runs SET status; INSERT INTO kept_events"))]
    pub async fn post_event(
        &self,
        key: &str,
        payload: &Value,
        at: i64,
        keep_until: Option<i64>,
    ) -> Result<Vec<(String, bool)>, StoreError> {
        let outcome = serde_json::json!({ "output": payload }).to_string();
        let postgres = self.backend() == Backend::Postgres;
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            if postgres {
                // A wait on this key that starts now takes the same lock (see `Op::BeginWait`):
                // one of the two sees the other.
                sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
                    .bind(key.to_string())
                    .execute(&mut *tx)
                    .await?;
            }
            // The waiting runs' rows first, as every resolution does.
            sqlx::query(
                "UPDATE runs SET status = status WHERE id IN
                 (SELECT run_id FROM waits WHERE wait_key = $1 AND kind = 'event' AND resolved_at IS NULL)",
            )
            .bind(key.to_string())
            .execute(&mut *tx)
            .await?;
            let runs: Vec<String> = sqlx::query_scalar(
                "UPDATE waits SET resolved_at = $2, outcome = $3
                 WHERE wait_key = $1 AND kind = 'event' AND resolved_at IS NULL RETURNING run_id",
            )
            .bind(key.to_string())
            .bind(at)
            .bind(outcome.clone())
            .fetch_all(&mut *tx)
            .await?;
            let mut woken: Vec<String> = Vec::new();
            for chunk in runs.chunks(500) {
                let list = chunk.iter().map(|id| super::script::Text(id).to_string()).collect::<Vec<_>>().join(", ");
                let mut ids: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "UPDATE runs SET status = 'running', owner = NULL, wake_at = NULL
                     WHERE status = 'waiting' AND id IN ({list}) RETURNING id"
                )))
                .fetch_all(&mut *tx)
                .await?;
                woken.append(&mut ids);
            }
            sqlx::query("DELETE FROM kept_events WHERE expires_at <= $1")
                .bind(at)
                .execute(&mut *tx)
                .await?;
            if let Some(until) = keep_until {
                sqlx::query("INSERT INTO kept_events (event_key, outcome, received_at, expires_at) VALUES ($1, $2, $3, $4)")
                    .bind(key.to_string())
                    .bind(outcome)
                    .bind(at)
                    .bind(until)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            let woken: std::collections::HashSet<String> = woken.into_iter().collect();
            Ok(runs.into_iter().map(|id| { let w = woken.contains(&id); (id, w) }).collect())
        })
    }

    /// Wakes parked runs that are due (a delay ended, a timeout passed): `running` again,
    /// unclaimed. At most `limit`, earliest first; returns their ids.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "UPDATE runs", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "UPDATE", db.collection.name = "runs"))]
    pub async fn wake_due(&self, at: i64, limit: i64) -> Result<Vec<String>, StoreError> {
        // PostgreSQL: each due run is woken by one process, the others skip it.
        let lock = if self.backend() == Backend::Postgres {
            "FOR UPDATE SKIP LOCKED"
        } else {
            ""
        };
        Ok(on_pool!(self, pool => {
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "UPDATE runs SET status = 'running', owner = NULL, wake_at = NULL
                 WHERE id IN (SELECT id FROM runs WHERE wake_at <= $1 AND status = 'waiting'
                              ORDER BY wake_at LIMIT $2 {lock})
                 RETURNING id"
            )))
            .bind(at)
            .bind(limit)
            .fetch_all(pool)
            .await?
        }))
    }

    /// When the next parked run falls due, if any does.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "SELECT runs", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "SELECT", db.collection.name = "runs"))]
    pub async fn next_wake_at(&self) -> Result<Option<i64>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_scalar("SELECT MIN(wake_at) FROM runs WHERE wake_at IS NOT NULL")
                .fetch_one(pool)
                .await?
        }))
    }

    /// Sets a parked (`waiting` or `paused`) run running again, unclaimed: to be cancelled or
    /// resumed by its driver. True when it was parked.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "UPDATE runs", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "UPDATE", db.collection.name = "runs"))]
    pub async fn unpark(&self, run_id: &str) -> Result<bool, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query(
                "UPDATE runs SET status = 'running', owner = NULL, wake_at = NULL
                 WHERE id = $1 AND status IN ('waiting', 'paused')",
            )
            .bind(run_id.to_string())
            .execute(pool)
            .await?
            .rows_affected()
                > 0
        }))
    }

    /// Asks a run to pause (`Some(at)`) or to go on (`None`); returns its status then.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "UPDATE runs", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "UPDATE", db.collection.name = "runs"))]
    pub async fn request_pause(
        &self,
        run_id: &str,
        at: Option<i64>,
    ) -> Result<RunStatus, StoreError> {
        let status: Option<String> = on_pool!(self, pool => {
            sqlx::query_scalar("UPDATE runs SET pause_requested = $2 WHERE id = $1 RETURNING status")
                .bind(run_id.to_string())
                .bind(at)
                .fetch_optional(pool)
                .await?
        });
        let status = status.ok_or_else(|| StoreError::RunNotFound(run_id.to_string()))?;
        RunStatus::parse(&status).ok_or_else(|| {
            StoreError::Corrupt(format!("run {run_id}: unknown status \"{status}\""))
        })
    }

    /// Whether a run is asked to pause.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "SELECT runs", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "SELECT", db.collection.name = "runs"))]
    pub async fn pause_requested(&self, run_id: &str) -> Result<bool, StoreError> {
        let at: Option<Option<i64>> = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT pause_requested FROM runs WHERE id = $1")
                .bind(run_id.to_string())
                .fetch_optional(pool)
                .await?
        });
        Ok(at.flatten().is_some())
    }

    /// Parked runs by workflow and what they wait for (`approval`, `event`, `delay`,
    /// `workflow`, or `paused`): the `workflow_runs_waiting` gauge, read at each scrape.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "SELECT runs", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "SELECT", db.collection.name = "runs"))]
    pub async fn waiting_counts(&self) -> Result<Vec<(String, String, i64)>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT r.workflow_id, w.kind, COUNT(DISTINCT r.id) FROM runs r JOIN waits w ON w.run_id = r.id
                 WHERE r.status = 'waiting' AND w.resolved_at IS NULL GROUP BY r.workflow_id, w.kind
                 UNION ALL
                 SELECT workflow_id, 'paused', COUNT(*) FROM runs WHERE status = 'paused' GROUP BY workflow_id",
            )
            .fetch_all(pool)
            .await?
        }))
    }

    /// The size of PostgreSQL database `name` in bytes (benchmarks).
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "SELECT pg_database_size", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "SELECT", db.collection.name = "pg_database"))]
    pub async fn database_size(&self, name: &str) -> Result<i64, StoreError> {
        let pool = self.pg()?;
        Ok(sqlx::query_scalar("SELECT pg_database_size($1)")
            .bind(name.to_string())
            .fetch_one(pool)
            .await?)
    }
}
