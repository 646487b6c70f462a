//! Pruning finished runs (a workflow's `retention:`, the server's defaults), a batch at a time,
//! and what the database takes on disk.
//!
//! Which runs go is decided on run ids (UUIDv7: they sort by creation time) over the
//! `runs_by_workflow (workflow_id, id)` index, so a batch reads only the rows it deletes.

use std::fmt::Write as _;

use super::script::Text;
use super::{on_pool, stats::id_floor, Store, StoreError};

/// What a workflow's runs are pruned to (unix ms cut-offs; `None`: no such limit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneRule {
    /// Runs created before this go.
    pub created_before: Option<i64>,
    /// Only this many of the newest runs stay.
    pub max_runs: Option<u64>,
    /// Failed and timed-out runs created at or after this stay whatever the other two say.
    pub keep_failed_since: Option<i64>,
}

/// What one batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Runs deleted.
    pub deleted: usize,
    /// Runs looked at (deleted, or kept: unfinished, failed within `keep_failed`).
    pub scanned: usize,
    /// The last run id looked at: where the next batch starts.
    pub last: Option<String>,
}

/// Above any run id (they start with a hex digit), in byte order and in any collation
/// PostgreSQL may use (those can ignore punctuation such as `~`): a bound that protects
/// nothing.
const NO_ID: &str = "g";

impl Store {
    /// Deletes up to `batch` finished runs of `workflow_id` that `rule` lets go, with their
    /// steps, attempts, items, offers and waits, in one transaction; returns how many.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "DELETE runs", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "DELETE", db.collection.name = "runs", workflow.id = %workflow_id))]
    pub async fn prune_runs(
        &self,
        workflow_id: &str,
        rule: PruneRule,
        batch: i64,
        after: Option<&str>,
    ) -> Result<Pruned, StoreError> {
        // The oldest run kept by count; older ones go.
        let by_count: Option<String> = match rule.max_runs {
            None => None,
            Some(n) => on_pool!(self, pool => {
                sqlx::query_scalar(
                    "SELECT id FROM runs WHERE workflow_id = $1 ORDER BY id DESC LIMIT 1 OFFSET $2",
                )
                .bind(workflow_id.to_string())
                .bind(n.saturating_sub(1).min(i64::MAX as u64) as i64)
                .fetch_optional(pool)
                .await?
            }),
        };
        let by_age = rule.created_before.map(id_floor);
        let Some(before) = by_count.into_iter().chain(by_age).max() else {
            return Ok(Pruned::default());
        };
        let keep_failed = rule
            .keep_failed_since
            .map_or_else(|| NO_ID.to_string(), id_floor);
        // The next `batch` runs by id after the last batch (not from the start: on PostgreSQL
        // the index keeps the deleted rows' entries until vacuumed, and a scan from the start
        // would step over all of them every batch); which of them go is decided here.
        let rows: Vec<(String, String)> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT id, status FROM runs WHERE workflow_id = $1 AND id < $2 AND id > $4 \
                 ORDER BY id LIMIT $3",
            )
            .bind(workflow_id.to_string())
            .bind(before)
            .bind(batch)
            .bind(after.unwrap_or("").to_string())
            .fetch_all(pool)
            .await?
        });
        let Some(last) = rows.last().map(|(id, _)| id.clone()) else {
            return Ok(Pruned::default());
        };
        let ids: Vec<&String> = rows
            .iter()
            .filter(|(id, status)| {
                let failed = status == "failed" || status == "timed_out";
                let finished = failed || status == "succeeded" || status == "cancelled";
                finished && !(failed && id.as_str() >= keep_failed.as_str())
            })
            .map(|(id, _)| id)
            .collect();
        let scanned = rows.len();
        if ids.is_empty() {
            return Ok(Pruned {
                deleted: 0,
                scanned,
                last: Some(last),
            });
        }
        let mut list = String::new();
        for (i, id) in ids.iter().enumerate() {
            let _ = write!(list, "{}{}", if i == 0 { "" } else { ", " }, Text(id));
        }
        let mut script = String::new();
        for table in [
            "run_labels",
            "run_search",
            "step_items",
            "step_offers",
            "waits",
            "step_attempts",
            "run_steps",
        ] {
            let _ = writeln!(script, "DELETE FROM {table} WHERE run_id IN ({list});");
        }
        // A finished run stays finished (a retry is a new run), so what was selected goes.
        let _ = writeln!(script, "DELETE FROM runs WHERE id IN ({list});");
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(script)).execute(&mut *tx).await?;
            tx.commit().await?;
        });
        if let Some(before) = rule.created_before {
            // The cron occurrences of those runs: none of them fires again.
            on_pool!(self, pool => {
                sqlx::query("DELETE FROM schedule_fires WHERE workflow_id = $1 AND fire_at < $2")
                    .bind(workflow_id.to_string())
                    .bind(before)
                    .execute(pool)
                    .await?;
            });
        }
        Ok(Pruned {
            deleted: ids.len(),
            scanned,
            last: Some(last),
        })
    }

    /// How many runs there are (benchmarks).
    pub async fn count_runs(&self) -> Result<i64, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM runs")
                .fetch_one(pool)
                .await?
        }))
    }

    /// Adds up to `limit` of the run texts written since the last call to SQLite's full-text
    /// index, in one transaction: how many. (PostgreSQL's index is kept as they are written.)
    pub async fn index_search_texts(&self, limit: i64) -> Result<u64, StoreError> {
        let super::Db::Sqlite(pool) = &self.db else {
            return Ok(0);
        };
        let mut tx = pool.begin().await?;
        let upto: i64 = sqlx::query_scalar("SELECT upto FROM run_search_indexed")
            .fetch_one(&mut *tx)
            .await?;
        let last: Option<i64> = sqlx::query_scalar(
            "SELECT max(id) FROM (SELECT id FROM run_search WHERE id > $1 ORDER BY id LIMIT $2)",
        )
        .bind(upto)
        .bind(limit)
        .fetch_one(&mut *tx)
        .await?;
        let Some(last) = last else {
            return Ok(0);
        };
        let added = sqlx::query(
            "INSERT INTO run_search_text (rowid, body) \
             SELECT id, body FROM run_search WHERE id > $1 AND id <= $2",
        )
        .bind(upto)
        .bind(last)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query("UPDATE run_search_indexed SET upto = $1")
            .bind(last)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(added)
    }

    /// Refreshes PostgreSQL's planner statistics, as autovacuum does after many writes
    /// (benchmarks: right after a bulk load the planner would still think the tables empty).
    pub async fn analyze(&self) -> Result<(), StoreError> {
        if let super::Db::Postgres(pool) = &self.db {
            sqlx::query("ANALYZE").execute(pool).await?;
        }
        Ok(())
    }

    /// Checks SQLite's search index against the texts it indexes (FTS5's integrity check);
    /// an error says what is wrong.
    pub async fn check_search_index(&self) -> Result<(), StoreError> {
        if let super::Db::Sqlite(pool) = &self.db {
            sqlx::query(
                "INSERT INTO run_search_text (run_search_text, rank) VALUES ('integrity-check', 1)",
            )
            .execute(pool)
            .await?;
        }
        Ok(())
    }

    /// How many label rows and search texts there are (tests and benchmarks: none outlives
    /// its run).
    pub async fn count_label_and_search_rows(&self) -> Result<(i64, i64), StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT (SELECT CAST(COUNT(*) AS BIGINT) FROM run_labels), \
                 (SELECT CAST(COUNT(*) AS BIGINT) FROM run_search)",
            )
            .fetch_one(pool)
            .await?
        }))
    }

    /// Gives freed pages back to the file system, up to `pages` of them (SQLite with
    /// incremental auto-vacuum; elsewhere nothing: PostgreSQL's autovacuum reuses them).
    pub async fn give_back_space(&self, pages: i64) -> Result<(), StoreError> {
        if let super::Db::Sqlite(pool) = &self.db {
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "PRAGMA incremental_vacuum({pages})"
            )))
            .execute(pool)
            .await?;
        }
        Ok(())
    }

    /// What the database takes on disk, in bytes, and how much of that is free pages it keeps
    /// for reuse (SQLite; PostgreSQL: `pg_database_size`, and 0).
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "SELECT size", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "SELECT", db.collection.name = "database"))]
    pub async fn database_bytes(&self) -> Result<(i64, i64), StoreError> {
        Ok(match &self.db {
            super::Db::Sqlite(pool) => {
                sqlx::query_as(
                    "SELECT p.page_count * s.page_size, f.freelist_count * s.page_size \
                     FROM pragma_page_count() p, pragma_page_size() s, pragma_freelist_count() f",
                )
                .fetch_one(pool)
                .await?
            }
            super::Db::Postgres(pool) => {
                sqlx::query_as("SELECT pg_database_size(current_database()), CAST(0 AS BIGINT)")
                    .fetch_one(pool)
                    .await?
            }
        })
    }
}
