//! Persistence on SQLite (the embedded default) or PostgreSQL, chosen by the URL.
//!
//! One [`Store`] wraps either pool; each query is written once, in SQL both databases accept
//! (`$1` placeholders, `BIGINT` unix-millisecond times, JSON kept as `TEXT`), and dispatched by
//! the [`on_pool!`] macro, which compiles the same body once per backend. Queries are checked
//! by the store test suite, which runs unchanged on both databases (see `tests/store.rs`).
//!
//! - `workflows`: workflows, their immutable versions, archive/restore, example seeding.
//! - `runs`: runs, steps and attempts; batched state changes ([`Op`]) and reads.
//! - `cluster`: claims, leases and wake-ups of several processes on PostgreSQL.

mod access;
mod calls;
mod charts;
pub mod cluster;
mod direct;
mod retention;
mod runs;
mod schedules;
pub mod scratch;
mod script;
mod stats;
mod waits;
mod workflows;

use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::ConnectOptions as _;

use crate::model::Problem;

pub use access::{SealedSecret, UserRow};
pub use charts::{AttemptPoint, ChartData};
pub use cluster::WorkerRow;
pub use direct::DirectWriter;
pub use retention::{PruneRule, Pruned as PrunedBatch};
pub use runs::{
    summarize_ops, HeldConnection, ItemFilter, NewRun, Op, OpsSummary, Resumable, RunFilter,
    ValuePart, DETAIL_BUDGET_BYTES, DETAIL_VALUE_BYTES,
};
pub use schedules::{ScheduleRow, TIMESTAMPED_DELIVERY};
pub use stats::id_floor;
pub use waits::{Park, Resolved};
pub use workflows::VersionRecord;

/// What can go wrong in the store; `server` maps each to an HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A workflow of that id exists.
    #[error("workflow \"{0}\" already exists")]
    AlreadyExists(String),
    /// No workflow of that id.
    #[error("workflow \"{0}\" not found")]
    NotFound(String),
    /// No run of that id.
    #[error("run \"{0}\" not found")]
    RunNotFound(String),
    /// A stored value the code does not know (a status written by a newer version?).
    #[error("unreadable stored data: {0}")]
    Corrupt(String),
    /// The workflow has no such version.
    #[error("workflow \"{id}\" has no version {version}")]
    VersionNotFound {
        /// The workflow.
        id: String,
        /// The version asked for.
        version: i64,
    },
    /// A stored document no longer parses: reported, never silently dropped.
    #[error("stored version {version} of workflow \"{id}\" is unreadable: {problems:?}")]
    Unreadable {
        /// The workflow.
        id: String,
        /// The version.
        version: i64,
        /// What no longer parses.
        problems: Vec<Problem>,
    },
    /// A change refused for a reason the caller can act on (a taken name, the last admin).
    #[error("{0}")]
    Refused(String),
    /// A workflow whose `workflow` steps would call it again (through stored workflows).
    #[error("{}", .0.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; "))]
    CallCycle(Vec<Problem>),
    /// The database URL cannot be used.
    #[error("invalid database URL \"{url}\": {reason}")]
    BadUrl {
        /// The URL, its password hidden ([`redact_url`]).
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The database refused or failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A migration failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// SQLite refused or failed, on the journal's own connection ([`DirectWriter`]).
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

impl StoreError {
    /// A worker's write refused because the runs it changes are no longer its own (its lease
    /// expired and another worker took them over): see `store::cluster`.
    pub fn is_fenced(&self) -> bool {
        matches!(self, StoreError::Database(sqlx::Error::Database(e)) if e.code().as_deref() == Some("FS001"))
    }

    /// This process closed the store (shutting down): nothing more will get through.
    pub fn is_closed(&self) -> bool {
        matches!(self, StoreError::Database(sqlx::Error::PoolClosed))
    }

    /// PostgreSQL broke a deadlock or a serialization conflict by aborting this transaction:
    /// nothing of it was written, and applying it again is right.
    pub fn is_conflict(&self) -> bool {
        matches!(self, StoreError::Database(sqlx::Error::Database(e)) if matches!(e.code().as_deref(), Some("40P01" | "40001")))
    }

    /// The database could not be reached (as opposed to refusing a query): worth a retry.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Database(
                sqlx::Error::PoolTimedOut
                | sqlx::Error::Io(_)
                | sqlx::Error::PoolClosed
                | sqlx::Error::Tls(_),
            ) => true,
            // PostgreSQL going away: connection exceptions (class 08), admin/crash shutdown,
            // "cannot connect now" while it starts; SQLite: busy or locked beyond the timeout.
            StoreError::Database(sqlx::Error::Database(e)) => {
                let code = e.code();
                let code = code.as_deref().unwrap_or("");
                code.starts_with("08")
                    || matches!(
                        code,
                        "57P01" | "57P02" | "57P03" | "5" | "6" | "517" | "262"
                    )
            }
            StoreError::Sqlite(_) => self.is_busy(),
            _ => false,
        }
    }

    /// Another SQLite connection held the write lock past the busy timeout: worth a retry.
    /// (`SQLITE_LOCKED` is a conflict within one connection, which waiting does not end.)
    pub fn is_busy(&self) -> bool {
        matches!(self, StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::DatabaseBusy)
    }
}

/// Which database a store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An embedded SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

impl Backend {
    /// `db.system.name` of the OpenTelemetry semantic conventions.
    pub fn system_name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgresql",
        }
    }
}

/// A client span for one database operation, named `{operation} {collection}` as the
/// semantic conventions ask; `db.query.text` is a summary without values.
pub fn db_span(
    backend: Backend,
    operation: &'static str,
    collection: &'static str,
    summary: &str,
) -> tracing::Span {
    tracing::info_span!(
        "db.query",
        otel.name = format!("{operation} {collection}"),
        otel.kind = "client",
        db.collection.name = collection,
        db.system.name = backend.system_name(),
        db.operation.name = operation,
        db.query.text = summary,
    )
}

#[derive(Debug, Clone)]
enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// A handle to the database; cheap to clone (pools are reference-counted).
#[derive(Debug, Clone)]
pub struct Store {
    db: Db,
    /// Set once this process has applied (or found applied) every migration: `/readyz` reads it.
    migrated: Arc<AtomicBool>,
    /// Woken when this process saves, archives or restores a workflow: the scheduler rereads
    /// schedules at once instead of at its next resync.
    changed: Arc<tokio::sync::Notify>,
}

/// Runs `$body` with `$pool` bound to the concrete pool of either backend.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.db {
            $crate::store::Db::Sqlite($pool) => $body,
            $crate::store::Db::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

impl Store {
    /// Connects to `sqlite://path` (creating the file and its folder) or `postgres://…`.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        let db = if url.starts_with("sqlite:") {
            Db::Sqlite(connect_sqlite(url).await?)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url)
                .map_err(|e| StoreError::BadUrl {
                    url: redact_url(url),
                    reason: e.to_string(),
                })?
                // Batch scripts quote text by doubling `'` only (see `script`): exact with this on.
                .options([("standard_conforming_strings", "on")])
                // sqlx would log a slow statement whole at WARN: a commit script holds the runs'
                // inputs and outputs, megabytes of them. Our `db.query` and commit spans time
                // every statement instead, without the values.
                .disable_statement_logging();
            let pool = PgPoolOptions::new()
                .max_connections(16)
                // No ping before every checkout: it is a round trip per transaction, and a dead
                // connection surfaces as an I/O error that the journal retries anyway.
                .test_before_acquire(false)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await?;
            Db::Postgres(pool)
        } else {
            return Err(StoreError::BadUrl {
                url: redact_url(url),
                reason: "expected sqlite://PATH or postgres://…".into(),
            });
        };
        Ok(Store {
            db,
            migrated: Arc::new(AtomicBool::new(false)),
            changed: Arc::new(tokio::sync::Notify::new()),
        })
    }

    /// Applies pending migrations (append-only files under `engine/migrations/<backend>/`).
    /// Completes after the next workflow change this process makes (or one already made
    /// since the last wait).
    pub async fn workflows_changed(&self) {
        self.changed.notified().await
    }

    fn mark_changed(&self) {
        self.changed.notify_one();
    }

    /// Applies the migrations this build has (idempotent).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match &self.db {
            Db::Sqlite(pool) => sqlx::migrate!("./migrations/sqlite").run(pool).await?,
            Db::Postgres(pool) => sqlx::migrate!("./migrations/postgres").run(pool).await?,
        }
        self.migrated.store(true, Ordering::Release);
        Ok(())
    }

    /// The SQLite file behind the store, if it is one (not PostgreSQL, not in memory).
    pub fn file(&self) -> Option<std::path::PathBuf> {
        match &self.db {
            Db::Sqlite(pool) => Some(pool.connect_options().get_filename().to_path_buf())
                .filter(|path| path.is_file()),
            Db::Postgres(_) => None,
        }
    }

    /// Which database this store talks to.
    pub fn backend(&self) -> Backend {
        match self.db {
            Db::Sqlite(_) => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// The pool's connections now: `(used, idle, max)`, for the `db_client_connection_*` gauges.
    pub fn pool_usage(&self) -> (u32, u32, u32) {
        on_pool!(self, pool => {
            let idle = u32::try_from(pool.num_idle()).unwrap_or(u32::MAX);
            let size = pool.size();
            (size.saturating_sub(idle), idle, pool.options().get_max_connections())
        })
    }

    /// Ready to serve: migrations applied and the database answering now.
    pub async fn ready(&self) -> Result<(), StoreError> {
        if !self.migrated.load(Ordering::Acquire) {
            return Err(StoreError::Database(sqlx::Error::Protocol(
                "migrations not applied yet".into(),
            )));
        }
        on_pool!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// Runs one statement given as text: administration only ([`scratch`]), never with
    /// user input.
    pub(crate) async fn execute_raw(&self, sql: &str) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string())).execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// Closes every connection (graceful shutdown).
    pub async fn close(&self) {
        on_pool!(self, pool => pool.close().await)
    }
}

/// The file of a `sqlite:` URL (none for other URLs and in-memory databases).
pub fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    if !url.starts_with("sqlite:") {
        return None;
    }
    let path = SqliteConnectOptions::from_str(url)
        .ok()?
        .get_filename()
        .to_path_buf();
    (path != Path::new(":memory:") && !path.as_os_str().is_empty()).then_some(path)
}

/// `url` with its password replaced by `***`: what logs and errors may show.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_string();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

async fn connect_sqlite(url: &str) -> Result<SqlitePool, StoreError> {
    let bad = |reason: String| StoreError::BadUrl {
        url: redact_url(url),
        reason,
    };
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|e| bad(e.to_string()))?
        .create_if_missing(true)
        // WAL + NORMAL: a committed transaction survives a killed process (not a power cut),
        // at tens of microseconds per commit instead of an fsync each.
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(10))
        // Pages freed by pruning go back to the file system (`incremental_vacuum` after a
        // pass). Takes effect on a new file only: an older one reuses its free pages instead.
        .auto_vacuum(sqlx::sqlite::SqliteAutoVacuum::Incremental)
        .foreign_keys(true)
        // As for PostgreSQL: no statement text, with its values, in the logs.
        .disable_statement_logging();
    let path = options.get_filename();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            std::fs::create_dir_all(dir)
                .map_err(|e| bad(format!("cannot create folder {}: {e}", dir.display())))?;
        }
    }
    let is_memory = path == Path::new(":memory:");
    Ok(SqlitePoolOptions::new()
        // One in-memory database exists per connection, so keep exactly one.
        .max_connections(if is_memory { 1 } else { 8 })
        // A ping per checkout is a worker-thread round trip per transaction, for nothing.
        .test_before_acquire(false)
        .connect_with(options)
        .await?)
}

/// Now, in unix milliseconds (the store's time unit).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database URL the store cannot use is named in the error, its password hidden.
    #[tokio::test]
    async fn a_bad_url_error_does_not_show_the_password() {
        let Err(err) = Store::connect("postgres://u:s3cret@h:notaport/db").await else {
            panic!("a URL with a bad port connected");
        };
        let text = err.to_string();
        assert!(text.contains("postgres://u:***@h:notaport/db"), "{text}");
        assert!(!text.contains("s3cret"), "{text}");
    }

    /// Every operation of the store is a database span (`db.query`, by attribute or by
    /// [`db_span`]), but for these: the connection's life (no query of a run or a request),
    /// the run journal's commits (spanned where they are committed, `executor/run/record.rs`),
    /// and operations made of spanned ones.
    #[test]
    fn every_store_operation_is_a_database_span() {
        const NOT_QUERIES: &[&str] = &["connect", "workflows_changed", "migrate", "ready", "close"];
        const SPANNED_ELSEWHERE: &[&str] = &["apply", "apply_fenced", "apply_held"];
        const COMPOSITE: &[&str] = &[
            "seed_examples",
            "workflow_stats",
            "workflow_stats_of",
            "set_paused",
            "set_archived",
        ];
        // Test databases, and the raw access the benchmark's tools use.
        const TOOLS: &[&str] = &["execute_raw", "hold_snapshot", "listen"];
        let files = [
            ("access.rs", include_str!("access.rs")),
            ("charts.rs", include_str!("charts.rs")),
            ("cluster.rs", include_str!("cluster.rs")),
            ("mod.rs", include_str!("mod.rs")),
            ("runs/mod.rs", include_str!("runs/mod.rs")),
            ("runs/write.rs", include_str!("runs/write.rs")),
            ("schedules.rs", include_str!("schedules.rs")),
            ("stats.rs", include_str!("stats.rs")),
            ("workflows.rs", include_str!("workflows.rs")),
        ];
        let mut checked = 0;
        for (file, text) in files {
            let lines: Vec<&str> = text.lines().collect();
            for (i, line) in lines.iter().enumerate() {
                let Some(rest) = line
                    .trim_start()
                    .strip_prefix("pub async fn ")
                    .or_else(|| line.trim_start().strip_prefix("pub(crate) async fn "))
                else {
                    continue;
                };
                let name = rest.split(['(', '<']).next().unwrap_or_default();
                if [NOT_QUERIES, SPANNED_ELSEWHERE, COMPOSITE, TOOLS]
                    .iter()
                    .any(|list| list.contains(&name))
                {
                    continue;
                }
                let attribute = lines[..i]
                    .iter()
                    .rev()
                    .take_while(|l| {
                        l.trim_start().starts_with("#[") || l.trim_start().starts_with("///")
                    })
                    .any(|l| l.contains("name = \"db.query\""));
                let indent = line.len() - line.trim_start().len();
                let end = format!("{}}}", " ".repeat(indent));
                let body = lines[i..].iter().take_while(|l| **l != end);
                let by_hand = body.clone().any(|l| l.contains("db_span("));
                assert!(
                    attribute || by_hand,
                    "{file}: {name} is not a database span"
                );
                checked += 1;
            }
        }
        assert!(checked > 60, "{checked} operations");
    }
}
