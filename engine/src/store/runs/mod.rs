//! Runs, steps and attempts. Writes arrive as [`Op`]s, applied many at a time in one
//! transaction by the executor's journal (group commit; `write.rs`); reads, here, serve the
//! API and recovery.

mod write;
pub(crate) use write::sqlite_script;
pub use write::{summarize_ops, HeldConnection, NewRun, Op, OpsSummary};

use futures::TryStreamExt;
use serde_json::Value;
use std::collections::HashMap;
use std::fmt::Write as _;
use tracing::Instrument;

use super::{on_pool, Store, StoreError};
use crate::records::{
    AttemptRecord, ItemCounts, ItemRecord, RunDetail, RunStatus, RunSummary, SkipReason,
    StepRecord, StepStatus,
};

/// Filters of the run list; all optional, combined with AND.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    /// Runs of this workflow.
    pub workflow_id: Option<String>,
    /// Runs in this status.
    pub status: Option<RunStatus>,
    /// Runs started this way (manual, api, cron, …).
    pub trigger: Option<String>,
    /// Created at or after (unix ms).
    pub since: Option<i64>,
    /// Created before (unix ms).
    pub until: Option<i64>,
    /// Only runs older than this id (the cursor of the previous page).
    pub before: Option<String>,
    /// Run time (start to finish, ms) at least / below: a chart's histogram bucket.
    pub min_duration_ms: Option<i64>,
    /// Run time below this (ms).
    pub max_duration_ms: Option<i64>,
    /// At most this many runs (the page size).
    pub limit: i64,
    /// Runs carrying every one of these labels (key, value).
    pub labels: Vec<(String, String)>,
    /// Runs whose inputs, outputs or errors hold every word.
    pub search: Option<crate::search::SearchQuery>,
}

/// At most this many matches of a search are listed as ids; with more, the run list is read
/// newest first, each run's text checked, and soon has its page.
const FEW_MATCHES: usize = 2_000;

/// The runs a search matches.
enum Matches {
    /// Few: their ids (finished runs from the index, runs still going by their inputs).
    Few(Vec<String>),
    /// More than [`FEW_MATCHES`].
    Many,
}

/// The conditions of a filter's labels and search, numbered from `$10`, with their values.
///
/// A label is looked up by key and value in `run_labels`. A search of few matches is the list
/// of their ids (looked up by key: a rare word over 1,000,000 runs takes milliseconds); of
/// many, a check of each run's text newest first (the page fills within a few hundred runs).
/// The index is `run_search` (FTS5 trigrams on SQLite, built a batch at a time, the rows past
/// its mark read directly; `pg_trgm` on PostgreSQL). Runs still going are matched by their
/// inputs: their text is written when they end.
fn found_by(
    backend: super::Backend,
    f: &RunFilter,
    search: Option<(&crate::search::SearchQuery, Matches)>,
) -> (String, Vec<String>) {
    let mut sql = String::new();
    let mut texts: Vec<String> = Vec::new();
    let param = |texts: &mut Vec<String>, value: String| {
        texts.push(value);
        format!("${}", 9 + texts.len())
    };
    for (key, value) in f.labels.iter().take(crate::search::MAX_LABEL_FILTERS) {
        let k = param(&mut texts, key.clone());
        let v = param(&mut texts, value.clone());
        let _ = write!(
            sql,
            "\n               AND id IN (SELECT run_id FROM run_labels WHERE key = {k} AND value = {v})"
        );
    }
    match search {
        None => {}
        Some((_, Matches::Few(ids))) if ids.is_empty() => {
            sql.push_str("\n               AND 1 = 0")
        }
        Some((_, Matches::Few(ids))) => {
            let list: Vec<String> = ids
                .iter()
                .map(|id| super::script::Text(id).to_string())
                .collect();
            let _ = write!(sql, "\n               AND id IN ({})", list.join(", "));
        }
        Some((q, Matches::Many)) => {
            let like = match backend {
                super::Backend::Sqlite => "LIKE",
                super::Backend::Postgres => "ILIKE",
            };
            let all = |column: &str, texts: &mut Vec<String>| -> String {
                q.like_patterns()
                    .into_iter()
                    .map(|p| format!("{column} {like} {} ESCAPE '\\'", param(texts, p)))
                    .collect::<Vec<_>>()
                    .join(" AND ")
            };
            // Matches are common here: reading each run's text beats asking the index,
            // which reads its whole lists for each check.
            let indexed = format!(
                "EXISTS (SELECT 1 FROM run_search s WHERE s.run_id = runs.id AND {})",
                all("s.body", &mut texts)
            );
            let going = all("inputs", &mut texts);
            let _ = write!(
                sql,
                "\n               AND ({indexed} \
                 OR (status IN ('queued', 'running', 'waiting', 'paused') AND {going}))"
            );
        }
    }
    (sql, texts)
}

/// An unfinished run's id, cancel and pause requests, and traceparent.
type UnfinishedRow = (String, Option<i64>, Option<String>, Option<i64>);

/// A run the executor must pick up (queued, or running when the process stopped).
#[derive(Debug, Clone)]
pub struct Resumable {
    /// The run.
    pub run: RunSummary,
    /// Its inputs.
    pub inputs: Value,
    /// A cancel was asked for before the process stopped.
    pub cancel_requested: bool,
    /// Its steps, as stored.
    pub steps: Vec<StepRecord>,
    /// Of the request that triggered the run: its root span links there.
    pub traceparent: Option<String>,
    /// Its waiting steps, resolved or not.
    pub waits: Vec<crate::records::WaitRecord>,
    /// A pause was asked for: no new attempt starts.
    pub pause_requested: bool,
}

impl Resumable {
    /// A run's detail with what its row says of cancel and pause requests.
    fn of(detail: RunDetail, (_, cancel, traceparent, pause): UnfinishedRow) -> Resumable {
        Resumable {
            run: detail.run,
            inputs: detail.inputs,
            cancel_requested: cancel.is_some(),
            steps: detail.steps,
            traceparent,
            waits: detail.waits,
            pause_requested: pause.is_some(),
        }
    }
}

/// A child run: id, workflow, status, calling step and item.
type ChildRow = (String, String, String, Option<String>, Option<i64>);

#[derive(sqlx::FromRow)]
pub(super) struct RunRow {
    pub(super) id: String,
    workflow_id: String,
    workflow_version: i64,
    status: String,
    trigger: String,
    actor: Option<String>,
    parent_run_id: Option<String>,
    error: Option<String>,
    created_at: i64,
    started_at: Option<i64>,
    finished_at: Option<i64>,
    trace_id: Option<String>,
    span_id: Option<String>,
    /// Selected only where the whole run is read (the list leaves it out).
    #[sqlx(default)]
    pub(super) inputs: Option<String>,
    /// These four too.
    #[sqlx(default)]
    pub(super) outputs: Option<String>,
    #[sqlx(default)]
    pub(super) caller_run_id: Option<String>,
    #[sqlx(default)]
    pub(super) caller_step_id: Option<String>,
    #[sqlx(default)]
    pub(super) caller_item: Option<i64>,
    /// JSON object; NULL for a run without labels.
    #[sqlx(default)]
    labels: Option<String>,
}

impl RunRow {
    pub(super) fn into_summary(self) -> Result<RunSummary, StoreError> {
        Ok(RunSummary {
            status: RunStatus::parse(&self.status)
                .ok_or_else(|| corrupt(&self.id, "status", &self.status))?,
            id: self.id,
            workflow_id: self.workflow_id,
            workflow_version: self.workflow_version,
            trigger: self.trigger,
            actor: self.actor,
            parent_run_id: self.parent_run_id,
            error: self.error,
            created_at: self.created_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
            trace_id: self.trace_id,
            span_id: self.span_id,
            // Written by the engine from checked labels; a damaged value shows none.
            labels: self
                .labels
                .and_then(|l| serde_json::from_str(&l).ok())
                .unwrap_or_default(),
        })
    }
}

#[derive(sqlx::FromRow)]
struct StepRow {
    step_id: String,
    status: String,
    attempts: i64,
    output: Option<String>,
    /// Where a run's detail is read: the output's length (the output itself is NULL past
    /// [`DETAIL_VALUE_BYTES`]).
    #[sqlx(default)]
    output_len: Option<i64>,
    error_kind: Option<String>,
    error_message: Option<String>,
    ready_at: Option<i64>,
    started_at: Option<i64>,
    finished_at: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct AttemptRow {
    step_id: String,
    attempt: i64,
    status: String,
    input: Option<String>,
    output: Option<String>,
    input_len: Option<i64>,
    output_len: Option<i64>,
    error_kind: Option<String>,
    error_message: Option<String>,
    logs: String,
    started_at: i64,
    finished_at: Option<i64>,
    span_id: Option<String>,
    worker: Option<String>,
}

fn corrupt(id: &str, what: &str, value: &str) -> StoreError {
    StoreError::Corrupt(format!("run {id}: unknown {what} \"{value}\""))
}

/// Which ended items [`Store::step_items`] lists: those of a status, those that took more
/// than one attempt, or (the default) all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ItemFilter {
    /// Only items that ended so.
    pub status: Option<StepStatus>,
    /// Only items that were retried.
    pub retried: bool,
}

impl From<Option<StepStatus>> for ItemFilter {
    fn from(status: Option<StepStatus>) -> ItemFilter {
        ItemFilter {
            status,
            retried: false,
        }
    }
}

/// Which of an attempt's stored values [`Store::step_value`] reads (a step's own value is
/// its output).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValuePart {
    /// The output (a step's, or with an attempt, that attempt's).
    Output,
    /// An attempt's rendered input.
    Input,
    /// The attempt's log lines, as a JSON list.
    Logs,
}

/// Largest stored value (a step's output, an attempt's input or output) a run's detail
/// carries whole; a larger one is a marker saying where it is ([`Store::step_value`]).
pub const DETAIL_VALUE_BYTES: i64 = 64 * 1024;
/// Bytes of values one run's detail carries in all; past them, markers. With the per-value
/// cut (done in SQL) and rows read one at a time, reading a run costs at most about this
/// much memory, however many steps it has and however large their outputs.
pub const DETAIL_BUDGET_BYTES: usize = 8 << 20;

/// What a run's detail has left of [`DETAIL_BUDGET_BYTES`].
struct DetailBudget {
    left: usize,
}

impl DetailBudget {
    /// `text` if it fits (the SQL left out values over [`DETAIL_VALUE_BYTES`]: `len` says how
    /// long they were), else a marker naming `whole`, where the value can be read.
    fn keep(
        &mut self,
        text: Option<String>,
        len: Option<i64>,
        whole: impl FnOnce() -> String,
    ) -> Option<String> {
        let bytes = len.unwrap_or(0).max(0) as usize;
        let cut = bytes as i64 > DETAIL_VALUE_BYTES;
        match text {
            Some(t) if !cut && t.len() <= self.left => {
                self.left -= t.len();
                Some(t)
            }
            None => None,
            Some(t) => {
                // Past the cut the SQL sent a preview; past the budget, none is kept.
                let (reason, preview) = if cut && t.len() <= self.left {
                    self.left -= t.len();
                    (format!("larger than {DETAIL_VALUE_BYTES} bytes"), t)
                } else {
                    (
                        format!("past the {DETAIL_BUDGET_BYTES} bytes one run's detail carries"),
                        String::new(),
                    )
                };
                Some(
                    serde_json::json!({
                        "truncated": true,
                        "bytes": bytes,
                        "reason": reason,
                        "preview": preview,
                        "whole": whole(),
                    })
                    .to_string(),
                )
            }
        }
    }

    /// An attempt's log lines (a JSON list, at most about `MAX_LOG_BYTES`) if they fit, else
    /// one line that says where to read them.
    fn keep_logs(&mut self, logs: String, whole: impl FnOnce() -> String) -> String {
        if logs.len() <= self.left {
            self.left -= logs.len();
            return logs;
        }
        serde_json::json!([format!(
            "… {} bytes of log not shown: past the {DETAIL_BUDGET_BYTES} bytes one run's detail carries; read them at {}",
            logs.len(),
            whole()
        )])
        .to_string()
    }
}

fn json_opt(text: Option<String>) -> Option<Value> {
    text.map(|t| serde_json::from_str(&t).unwrap_or(Value::String(t)))
}

fn step_record(run_id: &str, mut r: StepRow) -> Result<StepRecord, StoreError> {
    let status =
        StepStatus::parse(&r.status).ok_or_else(|| corrupt(run_id, "step status", &r.status))?;
    // A skipped step's `error_kind` holds why it was skipped (see `Op::StepsEnded`).
    let skip_reason = match status {
        StepStatus::Skipped => r.error_kind.take().and_then(|k| SkipReason::parse(&k)),
        _ => None,
    };
    Ok(StepRecord {
        status,
        skip_reason,
        step_id: r.step_id,
        attempts: r.attempts,
        output: json_opt(r.output),
        error_kind: r.error_kind,
        error_message: r.error_message,
        ready_at: r.ready_at,
        started_at: r.started_at,
        finished_at: r.finished_at,
    })
}

/// `(index, status, output, error message)` of a `for_each` item that has ended.
pub type EndedItem = (i64, StepStatus, Option<Value>, Option<String>);

impl Store {
    /// Runs, newest first, filtered; pass the last id of a page as `before` for the next.
    pub async fn list_runs(&self, f: &RunFilter) -> Result<Vec<RunSummary>, StoreError> {
        let limit = f.limit.clamp(1, 500);
        let span = super::db_span(
            self.backend(),
            "SELECT",
            "runs",
            "SELECT … FROM runs WHERE <filters> ORDER BY id DESC LIMIT ?",
        );
        let search = match &f.search {
            Some(q) => Some((q, self.search_matches(q).await?)),
            None => None,
        };
        let (found_by, texts) = found_by(self.backend(), f, search);
        let sql = format!(
            "SELECT id, workflow_id, workflow_version, status, trigger, actor, parent_run_id, error, created_at, started_at, finished_at, trace_id, span_id, labels
             FROM runs
             WHERE ($1 IS NULL OR workflow_id = $1) AND ($2 IS NULL OR status = $2) AND ($3 IS NULL OR trigger = $3)
               AND ($4 IS NULL OR created_at >= $4) AND ($5 IS NULL OR created_at < $5) AND ($6 IS NULL OR id < $6)
               AND ($8 IS NULL OR finished_at - started_at >= $8) AND ($9 IS NULL OR finished_at - started_at < $9){found_by}
             ORDER BY id DESC LIMIT $7"
        );
        let rows: Vec<RunRow> = async {
            Ok::<_, StoreError>(on_pool!(self, pool => {
                let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
                    .bind(f.workflow_id.clone())
                    .bind(f.status.map(|s| s.as_str()))
                    .bind(f.trigger.clone())
                    .bind(f.since)
                    .bind(f.until)
                    .bind(f.before.clone())
                    .bind(limit)
                    .bind(f.min_duration_ms)
                    .bind(f.max_duration_ms);
                for text in &texts {
                    query = query.bind(text.clone());
                }
                query.fetch_all(pool).await?
            }))
        }
        .instrument(span)
        .await?;
        rows.into_iter().map(RunRow::into_summary).collect()
    }

    /// The runs a search matches, if they are few ([`FEW_MATCHES`]): finished ones from the
    /// index (and, on SQLite, the texts written since it was built), and those still going by
    /// their inputs.
    async fn search_matches(&self, q: &crate::search::SearchQuery) -> Result<Matches, StoreError> {
        let limit = FEW_MATCHES as i64 + 1;
        let patterns = q.like_patterns();
        let all = |column: &str, like: &str, from: usize| -> String {
            (0..patterns.len())
                .map(|i| format!("{column} {like} ${} ESCAPE '\\'", from + i))
                .collect::<Vec<_>>()
                .join(" AND ")
        };
        let going_status = "status IN ('queued', 'running', 'waiting', 'paused')";
        let (indexed, rest): (Vec<String>, Vec<String>) = match &self.db {
            super::Db::Sqlite(pool) => {
                let indexed = sqlx::query_scalar(
                    "SELECT s.run_id FROM run_search s WHERE s.id IN \
                     (SELECT rowid FROM run_search_text WHERE run_search_text MATCH $1 LIMIT $2)",
                )
                .bind(q.fts5())
                .bind(limit)
                .fetch_all(pool)
                .await?;
                let sql = format!(
                    "SELECT run_id FROM run_search WHERE id > (SELECT upto FROM run_search_indexed) AND {} \
                     UNION ALL SELECT id FROM runs WHERE {going_status} AND {}",
                    all("body", "LIKE", 1),
                    all("inputs", "LIKE", 1)
                );
                let mut query = sqlx::query_scalar(sqlx::AssertSqlSafe(sql));
                for p in &patterns {
                    query = query.bind(p.clone());
                }
                (indexed, query.fetch_all(pool).await?)
            }
            super::Db::Postgres(pool) => {
                let sql = format!(
                    "SELECT run_id FROM run_search WHERE {} LIMIT {limit}",
                    all("body", "ILIKE", 1)
                );
                let mut query = sqlx::query_scalar(sqlx::AssertSqlSafe(sql));
                for p in &patterns {
                    query = query.bind(p.clone());
                }
                let indexed = query.fetch_all(pool).await?;
                let sql = format!(
                    "SELECT id FROM runs WHERE {going_status} AND {}",
                    all("inputs", "ILIKE", 1)
                );
                let mut query = sqlx::query_scalar(sqlx::AssertSqlSafe(sql));
                for p in &patterns {
                    query = query.bind(p.clone());
                }
                (indexed, query.fetch_all(pool).await?)
            }
        };
        if indexed.len() + rest.len() > FEW_MATCHES {
            return Ok(Matches::Many);
        }
        Ok(Matches::Few(indexed.into_iter().chain(rest).collect()))
    }

    /// The run's number among its workflow's runs, the first being 1: what people call it
    /// ("Nightly report #42"). Run ids grow with time, so it counts the ids up to this one
    /// (the `runs_by_workflow` index).
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "SELECT runs", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "SELECT", db.collection.name = "runs"))]
    pub async fn run_number(&self, workflow_id: &str, id: &str) -> Result<i64, StoreError> {
        let n: i64 = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM runs WHERE workflow_id = $1 AND id <= $2")
                .bind(workflow_id.to_string())
                .bind(id.to_string())
                .fetch_one(pool)
                .await?
        });
        Ok(n)
    }

    /// One run with its steps and attempts.
    pub async fn run_detail(&self, id: &str) -> Result<RunDetail, StoreError> {
        let span = super::db_span(
            self.backend(),
            "SELECT",
            "runs",
            "SELECT … FROM runs, run_steps, step_attempts WHERE run_id = ?",
        );
        type Rows = (
            Option<RunRow>,
            Vec<StepRow>,
            Vec<AttemptRow>,
            Vec<(String, String, i64, i64)>,
            Vec<super::waits::WaitRow>,
            Vec<ChildRow>,
        );
        let mut budget = DetailBudget {
            left: DETAIL_BUDGET_BYTES,
        };
        let (run, steps, attempts, item_rows, waits, children): Rows = async { Ok::<_, StoreError>(on_pool!(self, pool => {
            let run: Option<RunRow> = sqlx::query_as(const_sql::RUN_BY_ID).bind(id.to_string()).fetch_optional(pool).await?;
            // Row by row, each value cut in SQL and the whole under a budget (see DETAIL_*).
            let mut steps = Vec::new();
            let mut rows = sqlx::query_as::<_, StepRow>(const_sql::DETAIL_STEPS).bind(id.to_string()).fetch(pool);
            while let Some(mut r) = rows.try_next().await? {
                let whole = || format!("/api/v1/runs/{id}/steps/{}/output", r.step_id);
                r.output = budget.keep(r.output.take(), r.output_len, whole);
                steps.push(r);
            }
            drop(rows);
            let mut attempts = Vec::new();
            let mut rows = sqlx::query_as::<_, AttemptRow>(const_sql::DETAIL_ATTEMPTS).bind(id.to_string()).fetch(pool);
            while let Some(mut a) = rows.try_next().await? {
                let at = format!("/api/v1/runs/{id}/steps/{}/output?attempt={}", a.step_id, a.attempt);
                a.input = budget.keep(a.input.take(), a.input_len, || format!("{at}&part=input"));
                a.output = budget.keep(a.output.take(), a.output_len, || at.clone());
                a.logs = budget.keep_logs(std::mem::take(&mut a.logs), || format!("{at}&part=logs"));
                attempts.push(a);
            }
            drop(rows);
            let items: Vec<(String, String, i64, i64)> = sqlx::query_as(
                "SELECT step_id, status, COUNT(*), SUM(CASE WHEN attempts > 1 THEN 1 ELSE 0 END) FROM step_items WHERE run_id = $1 GROUP BY step_id, status",
            )
            .bind(id.to_string())
            .fetch_all(pool)
            .await?;
            let waits: Vec<super::waits::WaitRow> = sqlx::query_as(super::waits::WAITS_OF_RUN)
                .bind(id.to_string())
                .fetch_all(pool)
                .await?;
            let children: Vec<ChildRow> = sqlx::query_as(const_sql::CHILDREN)
                .bind(id.to_string())
                .bind(crate::records::MAX_LISTED_CHILDREN)
                .fetch_all(pool)
                .await?;
            (run, steps, attempts, items, waits, children)
        })) }
        .instrument(span)
        .await?;
        let mut run = run.ok_or_else(|| StoreError::RunNotFound(id.to_string()))?;
        let inputs = run
            .inputs
            .take()
            .and_then(|i| serde_json::from_str(&i).ok())
            .unwrap_or(Value::Null);
        let outputs = run
            .outputs
            .take()
            .and_then(|o| serde_json::from_str(&o).ok());
        let caller = match (run.caller_run_id.take(), run.caller_step_id.take()) {
            (Some(run_id), Some(step_id)) => Some(crate::records::Caller {
                run_id,
                step_id,
                item: run.caller_item,
            }),
            _ => None,
        };
        let run = run.into_summary()?;
        let children = children
            .into_iter()
            .map(|(child, workflow_id, status, step_id, item)| {
                Ok(crate::records::ChildRun {
                    status: RunStatus::parse(&status)
                        .ok_or_else(|| corrupt(&child, "status", &status))?,
                    id: child,
                    workflow_id,
                    step_id: step_id.unwrap_or_default(),
                    item,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let steps = steps
            .into_iter()
            .map(|s| step_record(id, s))
            .collect::<Result<Vec<_>, _>>()?;
        let attempts = attempts
            .into_iter()
            .map(|a| {
                Ok(AttemptRecord {
                    status: StepStatus::parse(&a.status)
                        .ok_or_else(|| corrupt(id, "attempt status", &a.status))?,
                    step_id: a.step_id,
                    attempt: a.attempt,
                    input: json_opt(a.input),
                    output: json_opt(a.output),
                    error_kind: a.error_kind,
                    error_message: a.error_message,
                    logs: serde_json::from_str(&a.logs).unwrap_or_default(),
                    started_at: a.started_at,
                    finished_at: a.finished_at,
                    span_id: a.span_id,
                    worker: a.worker,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let items = item_counts(&attempts, item_rows);
        let waits = waits
            .into_iter()
            .map(|w| super::waits::wait_record(id, w))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RunDetail {
            run,
            inputs,
            steps,
            attempts,
            items,
            waits,
            outputs,
            caller,
            children,
        })
    }

    /// One stored value whole, where a run's detail carries a marker: a step's output, or with
    /// `attempt` that attempt's output (its input with `input`). `None`: no such step or
    /// attempt, or nothing stored. Each is at most about 1 MiB (outputs past it are stored
    /// as a preview), so this read is bounded too.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "SELECT run_steps", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "SELECT", db.collection.name = "run_steps"))]
    pub async fn step_value(
        &self,
        run_id: &str,
        step_id: &str,
        attempt: Option<i64>,
        part: ValuePart,
    ) -> Result<Option<Value>, StoreError> {
        let text: Option<Option<String>> = on_pool!(self, pool => {
            match attempt {
                None => sqlx::query_scalar("SELECT output FROM run_steps WHERE run_id = $1 AND step_id = $2")
                    .bind(run_id.to_string())
                    .bind(step_id.to_string())
                    .fetch_optional(pool)
                    .await?,
                Some(n) => sqlx::query_scalar(match part {
                    ValuePart::Input => "SELECT input FROM step_attempts WHERE run_id = $1 AND step_id = $2 AND attempt = $3",
                    ValuePart::Output => "SELECT output FROM step_attempts WHERE run_id = $1 AND step_id = $2 AND attempt = $3",
                    ValuePart::Logs => "SELECT logs FROM step_attempts WHERE run_id = $1 AND step_id = $2 AND attempt = $3",
                })
                .bind(run_id.to_string())
                .bind(step_id.to_string())
                .bind(n)
                .fetch_optional(pool)
                .await?,
            }
        });
        Ok(json_opt(text.flatten()))
    }

    /// The items of a `for_each` step that have ended, by position: those `filter` keeps (a
    /// status, or only the retried), from `after` (exclusive), at most `limit`.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "SELECT step_items", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "SELECT", db.collection.name = "step_items"))]
    pub async fn step_items(
        &self,
        run_id: &str,
        step_id: &str,
        filter: impl Into<ItemFilter>,
        after: Option<i64>,
        limit: i64,
    ) -> Result<Vec<ItemRecord>, StoreError> {
        let filter = filter.into();
        type Row = (
            i64,
            String,
            i64,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            i64,
            i64,
            Option<String>,
        );
        let rows: Vec<Row> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT item, status, attempts, input, output, error_kind, error_message, started_at, finished_at, earlier_attempts
                 FROM step_items WHERE run_id = $1 AND step_id = $2 AND item > $3 AND ($4 = '' OR status = $4)
                   AND ($6 = 0 OR attempts > 1)
                 ORDER BY item LIMIT $5",
            )
            .bind(run_id.to_string())
            .bind(step_id.to_string())
            .bind(after.unwrap_or(-1))
            .bind(filter.status.map_or("", |s| s.as_str()).to_string())
            .bind(limit)
            .bind(i64::from(filter.retried))
            .fetch_all(pool)
            .await?
        });
        rows.into_iter()
            .map(|r| {
                Ok(ItemRecord {
                    index: r.0,
                    status: StepStatus::parse(&r.1)
                        .ok_or_else(|| corrupt(run_id, "item status", &r.1))?,
                    attempts: r.2,
                    input: json_opt(r.3),
                    output: json_opt(r.4),
                    error_kind: r.5,
                    error_message: r.6,
                    started_at: r.7,
                    finished_at: r.8,
                    earlier_attempts: match r.9 {
                        None => Vec::new(),
                        Some(text) => serde_json::from_str(&text).map_err(|_| {
                            corrupt(
                                run_id,
                                "item attempts",
                                &text[..text.floor_char_boundary(80)],
                            )
                        })?,
                    },
                })
            })
            .collect()
    }

    /// The outcomes of a `for_each` step's items recorded so far, by position: what a resumed
    /// step does not run again.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "SELECT step_items", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "SELECT", db.collection.name = "step_items"))]
    pub async fn ended_items(
        &self,
        run_id: &str,
        step_id: &str,
    ) -> Result<Vec<EndedItem>, StoreError> {
        let rows: Vec<(i64, String, Option<String>, Option<String>)> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT item, status, output, error_message FROM step_items WHERE run_id = $1 AND step_id = $2",
            )
            .bind(run_id.to_string())
            .bind(step_id.to_string())
            .fetch_all(pool)
            .await?
        });
        rows.into_iter()
            .map(|(i, status, output, error)| {
                let status = StepStatus::parse(&status)
                    .ok_or_else(|| corrupt(run_id, "item status", &status))?;
                Ok((i, status, json_opt(output), error))
            })
            .collect()
    }

    /// For each step of a run: its attempts that a stopped process left behind, counting the
    /// one still marked `running`. A step that keeps killing its process shows here.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "SELECT step_attempts", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "SELECT", db.collection.name = "step_attempts"))]
    pub async fn interruptions(&self, run_id: &str) -> Result<HashMap<String, i64>, StoreError> {
        let rows: Vec<(String, i64)> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT step_id, COUNT(*) FROM step_attempts
                 WHERE run_id = $1 AND (error_kind = 'interrupted' OR status = 'running')
                 GROUP BY step_id",
            )
            .bind(run_id.to_string())
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().collect())
    }

    /// Closes the attempts still running as stopped by a graceful shutdown (one process, so
    /// all of them): [`Store::interruptions`] does not count them as crashes.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "UPDATE step_attempts", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "UPDATE", db.collection.name = "step_attempts"))]
    pub async fn close_attempts_at_shutdown(&self, at: i64) -> Result<u64, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query(
                "UPDATE step_attempts SET status = 'failed', error_kind = 'shutdown', \
                 error_message = 'the server shut down while this attempt ran; it starts again', \
                 finished_at = $1 WHERE status = 'running'",
            )
            .bind(at)
            .execute(pool)
            .await?
            .rows_affected()
        }))
    }

    /// A run's status alone (waiting for a run reads nothing else).
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "SELECT runs", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "SELECT", db.collection.name = "runs"))]
    pub async fn run_status(&self, id: &str) -> Result<RunStatus, StoreError> {
        let status: Option<String> = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT status FROM runs WHERE id = $1")
                .bind(id.to_string())
                .fetch_optional(pool)
                .await?
        });
        let status = status.ok_or_else(|| StoreError::RunNotFound(id.to_string()))?;
        RunStatus::parse(&status).ok_or_else(|| corrupt(id, "status", &status))
    }

    /// Unfinished runs (queued or running), oldest first: what a starting executor picks up.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "SELECT runs", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "SELECT", db.collection.name = "runs"))]
    pub async fn unfinished_runs(&self, limit: i64) -> Result<Vec<Resumable>, StoreError> {
        let rows: Vec<UnfinishedRow> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT id, cancel_requested, traceparent, pause_requested FROM runs WHERE status IN ('queued', 'running') ORDER BY id LIMIT $1",
            )
            .bind(limit)
            .fetch_all(pool)
            .await?
        });
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let detail = self.run_detail(&row.0).await?;
            out.push(Resumable::of(detail, row));
        }
        Ok(out)
    }

    /// One run as [`Store::unfinished_runs`] gives it: what a process that wakes it resumes.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "SELECT runs", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "SELECT", db.collection.name = "runs"))]
    pub async fn resumable(&self, id: &str) -> Result<Resumable, StoreError> {
        let row: Option<UnfinishedRow> = on_pool!(self, pool => {
            sqlx::query_as("SELECT id, cancel_requested, traceparent, pause_requested FROM runs WHERE id = $1")
                .bind(id.to_string())
                .fetch_optional(pool)
                .await?
        });
        let row = row.ok_or_else(|| StoreError::RunNotFound(id.to_string()))?;
        let detail = self.run_detail(id).await?;
        Ok(Resumable::of(detail, row))
    }

    /// Marks a run for cancellation; returns its status at that moment.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "UPDATE runs", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "UPDATE", db.collection.name = "runs"))]
    pub async fn request_cancel(&self, id: &str, at: i64) -> Result<RunStatus, StoreError> {
        let status: Option<String> = on_pool!(self, pool => {
            sqlx::query_scalar(
                "UPDATE runs SET cancel_requested = COALESCE(cancel_requested, $2) WHERE id = $1 RETURNING status",
            )
            .bind(id.to_string())
            .bind(at)
            .fetch_optional(pool)
            .await?
        });
        let status = status.ok_or_else(|| StoreError::RunNotFound(id.to_string()))?;
        let status = RunStatus::parse(&status).ok_or_else(|| corrupt(id, "status", &status))?;
        // The process that runs it may be another one.
        if self.backend() == super::Backend::Postgres && !status.is_finished() {
            self.notify(super::cluster::CANCEL_CHANNEL, id).await?;
        }
        Ok(status)
    }
}

/// The steps of several runs, by run id (PostgreSQL: claims load a batch at once).
pub(super) async fn step_rows_of(
    pool: &sqlx::PgPool,
    ids: &[String],
) -> Result<std::collections::HashMap<String, Vec<StepRecord>>, StoreError> {
    let rows: Vec<(String, StepRow)> = sqlx::query_as::<_, RunStepRow>(
        "SELECT run_id, step_id, status, attempts, output, error_kind, error_message, ready_at, started_at, finished_at \
         FROM run_steps WHERE run_id = ANY($1)",
    )
    .bind(ids)
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|r| (r.run_id, r.step))
    .collect();
    let mut out: std::collections::HashMap<String, Vec<StepRecord>> = Default::default();
    for (run_id, step) in rows {
        let record = step_record(&run_id, step)?;
        out.entry(run_id).or_default().push(record);
    }
    Ok(out)
}

#[derive(sqlx::FromRow)]
struct RunStepRow {
    run_id: String,
    #[sqlx(flatten)]
    step: StepRow,
}

/// Progress of each `for_each` step: counts by status, and the list's length from the
/// step's latest attempt input (`items`).
fn item_counts(
    attempts: &[AttemptRecord],
    rows: Vec<(String, String, i64, i64)>,
) -> Vec<ItemCounts> {
    let mut out: Vec<ItemCounts> = Vec::new();
    for a in attempts {
        let Some(total) = a
            .input
            .as_ref()
            .and_then(|i| i.get("items"))
            .and_then(Value::as_i64)
        else {
            continue;
        };
        if a.input
            .as_ref()
            .is_some_and(|i| i.get("for_each").is_some())
        {
            match out.iter_mut().find(|c| c.step_id == a.step_id) {
                Some(c) => c.total = total,
                None => out.push(ItemCounts {
                    step_id: a.step_id.clone(),
                    total,
                    ..Default::default()
                }),
            }
        }
    }
    for (step_id, status, n, retried) in rows {
        if let Some(c) = out.iter_mut().find(|c| c.step_id == step_id) {
            match status.as_str() {
                "succeeded" => c.succeeded += n,
                _ => c.failed += n,
            }
            c.retried += retried;
        }
    }
    out
}

mod const_sql {
    pub const RUN_BY_ID: &str = "SELECT id, workflow_id, workflow_version, status, trigger, actor, parent_run_id, error, created_at, started_at, finished_at, trace_id, span_id, inputs, outputs, caller_run_id, caller_step_id, caller_item, labels FROM runs WHERE id = $1";
    /// The runs a run called, oldest first.
    pub const CHILDREN: &str =
        "SELECT id, workflow_id, status, caller_step_id, caller_item FROM runs \
        WHERE caller_run_id = $1 ORDER BY id LIMIT $2";
    /// A run's detail: of values over `DETAIL_VALUE_BYTES` (65,536) only a 4,096-character
    /// preview leaves the database.
    pub const DETAIL_STEPS: &str = "SELECT step_id, status, attempts, \
        CASE WHEN length(output) > 65536 THEN substr(output, 1, 4096) ELSE output END AS output, \
        CAST(length(output) AS BIGINT) AS output_len, \
        error_kind, error_message, ready_at, started_at, finished_at FROM run_steps WHERE run_id = $1";
    pub const DETAIL_ATTEMPTS: &str = "SELECT step_id, attempt, status, \
        CASE WHEN length(input) > 65536 THEN substr(input, 1, 4096) ELSE input END AS input, \
        CASE WHEN length(output) > 65536 THEN substr(output, 1, 4096) ELSE output END AS output, \
        CAST(length(input) AS BIGINT) AS input_len, CAST(length(output) AS BIGINT) AS output_len, \
        error_kind, error_message, logs, started_at, finished_at, span_id, worker \
        FROM step_attempts WHERE run_id = $1 ORDER BY started_at, step_id, attempt";
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The detail's SQL writes the cut as a literal: it must be `DETAIL_VALUE_BYTES`.
    #[test]
    fn the_detail_sql_cuts_at_the_detail_value_limit() {
        for sql in [const_sql::DETAIL_STEPS, const_sql::DETAIL_ATTEMPTS] {
            let cut = format!("> {DETAIL_VALUE_BYTES} THEN");
            assert_eq!(
                sql.matches("length(").count(),
                sql.matches(&cut).count() * 2,
                "{sql}"
            );
        }
    }
}
