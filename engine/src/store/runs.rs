//! Runs, steps and attempts. Writes arrive as [`Op`]s, applied many at a time in one
//! transaction by the executor's journal (group commit); reads serve the API and recovery.

use futures::TryStreamExt;
use serde_json::Value;
use std::collections::HashMap;
use tracing::Instrument;

use std::fmt::Write;

use sqlx::AssertSqlSafe;

use super::script::{OptInt, OptText, Text};
use super::{on_pool, Db, Store, StoreError};
use crate::records::{
    AttemptRecord, ItemCounts, ItemRecord, RunDetail, RunStatus, RunSummary, SkipReason,
    StepRecord, StepStatus,
};

/// A new run: what is inserted when a workflow is triggered.
#[derive(Debug, Clone)]
pub struct NewRun {
    /// The run's id (a UUID v7).
    pub id: String,
    /// The workflow it runs.
    pub workflow_id: String,
    /// The version it runs.
    pub workflow_version: i64,
    /// What started it: manual, api, cron, webhook, retry, alert.
    pub trigger: String,
    /// Who started it (`alice`, `token:ci`), when a person or token did.
    pub actor: Option<String>,
    /// Its inputs, defaults filled.
    pub inputs: Value,
    /// The run it retries, if any.
    pub parent_run_id: Option<String>,
    /// The W3C `traceparent` of the request that triggered it: its root span links there.
    pub traceparent: Option<String>,
    /// When it was created (unix ms).
    pub created_at: i64,
    /// Its steps' ids, in the workflow's order: each gets a pending row.
    pub step_ids: Vec<String>,
    /// Steps whose outputs are carried over (retry from a failed step): stored as succeeded.
    pub reused: Vec<(String, Value)>,
    /// The workflow's `concurrency` limit: claims keep to it across processes.
    pub concurrency: Option<i64>,
    /// The worker that claims it as it is created (PostgreSQL); `None` leaves it to a claim.
    pub owner: Option<String>,
}

/// One state change, persisted before the executor acts on it.
#[derive(Debug, Clone)]
pub enum Op {
    /// A triggered run, with a pending row per step.
    CreateRun(Box<NewRun>),
    /// The run leaves the queue: its first steps may start.
    StartRun {
        /// The run.
        run_id: String,
        /// When (unix ms).
        at: i64,
        /// `(trace_id, span_id)` of the run's root span.
        trace: Option<(String, String)>,
    },
    /// A step's attempt starts (its rendered input stored).
    AttemptStarted {
        /// The run.
        run_id: String,
        /// The step.
        step_id: String,
        /// The attempt's number, from 1.
        attempt: i64,
        /// When the step became ready (unix ms).
        ready_at: i64,
        /// When the attempt started (unix ms).
        at: i64,
        /// The rendered `with`, secrets redacted.
        input: Value,
        /// A resumed step: earlier attempts left `running` by a stopped process are closed.
        resumed: bool,
        /// The attempt's `agent.execute` span.
        span_id: Option<String>,
        /// The step's agent (for the attempt's row, which charts read).
        agent: String,
        /// The name of the worker that runs it (PostgreSQL), until another one claims it.
        worker: Option<std::sync::Arc<str>>,
    },
    /// A step's attempt ended.
    AttemptFinished {
        /// The run.
        run_id: String,
        /// The step.
        step_id: String,
        /// The attempt's number.
        attempt: i64,
        /// The step's state after this attempt: succeeded, failed, retrying or cancelled.
        status: StepStatus,
        /// What the agent returned, on success.
        output: Option<Value>,
        /// `(kind, message)` of its error, on failure.
        error: Option<(String, String)>,
        /// Its log lines, secrets redacted.
        logs: Vec<String>,
        /// When it ended (unix ms).
        at: i64,
    },
    /// Steps that will not run (skipped, cancelled): set together. A skip's reason is kept
    /// in `error_kind`: a skipped step has no error of its own.
    StepsEnded {
        /// The run.
        run_id: String,
        /// The steps.
        step_ids: Vec<String>,
        /// Their status: skipped or cancelled.
        status: StepStatus,
        /// Why they were skipped.
        reason: Option<SkipReason>,
        /// When (unix ms).
        at: i64,
    },
    /// Items of a `for_each` step that ended (after their retries).
    ItemsEnded {
        /// The run.
        run_id: String,
        /// The `for_each` step.
        step_id: String,
        /// The items, each with its outcome.
        items: Vec<ItemRecord>,
    },
    /// The run ended.
    FinishRun {
        /// The run.
        run_id: String,
        /// How it ended.
        status: RunStatus,
        /// Why it failed, for people.
        error: Option<String>,
        /// When (unix ms).
        at: i64,
        /// The run held a concurrency slot: other processes are woken to claim a waiting run.
        frees_slot: bool,
    },
    /// A ready step offered to the other workers (PostgreSQL): see `executor::offers`.
    OfferStep {
        /// The run.
        run_id: String,
        /// The step.
        step_id: String,
        /// The attempt offered.
        attempt: i64,
        /// The offering worker's id.
        owner: String,
        /// The step's agent.
        agent: String,
        /// JSON: what the claimer needs to run the agent.
        payload: String,
        /// When (unix ms).
        at: i64,
    },
    /// An offered attempt's result is recorded (by `AttemptFinished`): the attempt ran on
    /// `worker` from `started_at`, and the offer is gone.
    OfferDone {
        /// The run.
        run_id: String,
        /// The step.
        step_id: String,
        /// The attempt.
        attempt: i64,
        /// The worker that ran it.
        worker: String,
        /// When it started there (unix ms).
        started_at: i64,
    },
    /// Every offer of a run ends (cancelled, timed out): a late result has nowhere to go.
    CloseOffers {
        /// The run.
        run_id: String,
    },
    /// A cron occurrence fired by `run_id`, committed with that run's creation. Its key makes
    /// a second firing of the same occurrence (another process) fail the whole transaction.
    FireSchedule {
        /// The workflow whose schedule fired.
        workflow_id: String,
        /// Which of its triggers (its position in `triggers`).
        trigger_index: i64,
        /// The occurrence's time (unix ms).
        fire_at: i64,
        /// The run it created.
        run_id: String,
        /// The schedule's next occurrence after this firing.
        next_fire_at: i64,
    },
}

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
}

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
}

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

impl Store {
    /// Applies a batch of state changes in one transaction: all or none, in order.
    ///
    /// The batch is one SQL script with its values inline (see [`super::script`]): one round
    /// trip however many statements it holds.
    pub async fn apply(&self, ops: &[Op]) -> Result<(), StoreError> {
        self.apply_fenced(ops, None).await
    }

    /// [`Store::apply`] by worker `fence` on PostgreSQL: the runs the batch changes must still
    /// be claimed by it, or nothing is written (error `FS001`, see [`StoreError::is_fenced`]).
    /// A batch that creates unclaimed runs or frees a concurrency slot wakes the other processes.
    pub async fn apply_fenced(&self, ops: &[Op], fence: Option<&str>) -> Result<(), StoreError> {
        self.apply_held(ops, fence, None).await
    }

    /// [`Store::apply_fenced`] on the PostgreSQL connection `held` keeps between calls (taken
    /// from the pool when it has none; given back after an error). A connection released to
    /// the pool is pinged there, one more round trip per commit, and the journal commits
    /// thousands of times a second.
    pub async fn apply_held(
        &self,
        ops: &[Op],
        fence: Option<&str>,
        held: Option<&mut HeldConnection>,
    ) -> Result<(), StoreError> {
        let mut sql = String::with_capacity(64 + 320 * ops.len());
        match &self.db {
            Db::Sqlite(pool) => {
                sql.push_str("BEGIN;\n");
                ops.iter().for_each(|op| write_op(&mut sql, op));
                sql.push_str("COMMIT;\n");
                let mut conn = pool.acquire().await?;
                if let Err(e) = sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut *conn).await {
                    // A statement failed mid-script: its transaction is still open here.
                    if sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await.is_err() {
                        drop(conn.detach());
                    }
                    return Err(e.into());
                }
            }
            // Several statements in one simple query are one implicit transaction.
            Db::Postgres(pool) => {
                // The fence and the calls after it share one `SELECT` while no other statement
                // comes between: one statement for a chain step, not three.
                let mut open = usize::from(fence.is_some_and(|me| write_fence(&mut sql, me, ops)));
                ops.iter()
                    .for_each(|op| write_op_pg(&mut sql, op, &mut open));
                if open > 0 {
                    sql.push_str(";\n");
                }
                if ops.iter().any(|op| match op {
                    Op::CreateRun(run) => run.owner.is_none(),
                    Op::FinishRun { frees_slot, .. } => *frees_slot,
                    _ => false,
                }) {
                    let _ = writeln!(sql, "NOTIFY {};", super::cluster::RUNS_CHANNEL);
                }
                if ops.iter().any(|op| matches!(op, Op::OfferStep { .. })) {
                    let _ = writeln!(sql, "NOTIFY {};", super::cluster::STEPS_CHANNEL);
                }
                let script = sqlx::raw_sql(AssertSqlSafe(sql));
                match held {
                    None => {
                        script.execute(pool).await?;
                    }
                    Some(held) => {
                        let (mut conn, since) = match held.0.take() {
                            Some(kept) => kept,
                            None => (pool.acquire().await?, std::time::Instant::now()),
                        };
                        script.execute(&mut *conn).await?;
                        held.0 = Some((conn, since));
                    }
                }
            }
        }
        Ok(())
    }

    /// Runs, newest first, filtered; pass the last id of a page as `before` for the next.
    pub async fn list_runs(&self, f: &RunFilter) -> Result<Vec<RunSummary>, StoreError> {
        let limit = f.limit.clamp(1, 500);
        let span = super::db_span(
            self.backend(),
            "SELECT",
            "runs",
            "SELECT … FROM runs WHERE <filters> ORDER BY id DESC LIMIT ?",
        );
        let rows: Vec<RunRow> = async { Ok::<_, StoreError>(on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT id, workflow_id, workflow_version, status, trigger, actor, parent_run_id, error, created_at, started_at, finished_at, trace_id, span_id
                 FROM runs
                 WHERE ($1 IS NULL OR workflow_id = $1) AND ($2 IS NULL OR status = $2) AND ($3 IS NULL OR trigger = $3)
                   AND ($4 IS NULL OR created_at >= $4) AND ($5 IS NULL OR created_at < $5) AND ($6 IS NULL OR id < $6)
                   AND ($8 IS NULL OR finished_at - started_at >= $8) AND ($9 IS NULL OR finished_at - started_at < $9)
                 ORDER BY id DESC LIMIT $7",
            )
            .bind(f.workflow_id.clone())
            .bind(f.status.map(|s| s.as_str()))
            .bind(f.trigger.clone())
            .bind(f.since)
            .bind(f.until)
            .bind(f.before.clone())
            .bind(limit)
            .bind(f.min_duration_ms)
            .bind(f.max_duration_ms)
            .fetch_all(pool)
            .await?
        })) }
        .instrument(span)
        .await?;
        rows.into_iter().map(RunRow::into_summary).collect()
    }

    /// The run's number among its workflow's runs, the first being 1: what people call it
    /// ("Nightly report #42"). Run ids grow with time, so it counts the ids up to this one
    /// (the `runs_by_workflow` index).
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
            Vec<(String, String, i64)>,
        );
        let mut budget = DetailBudget {
            left: DETAIL_BUDGET_BYTES,
        };
        let (run, steps, attempts, item_rows): Rows = async { Ok::<_, StoreError>(on_pool!(self, pool => {
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
            let items: Vec<(String, String, i64)> = sqlx::query_as(
                "SELECT step_id, status, COUNT(*) FROM step_items WHERE run_id = $1 GROUP BY step_id, status",
            )
            .bind(id.to_string())
            .fetch_all(pool)
            .await?;
            (run, steps, attempts, items)
        })) }
        .instrument(span)
        .await?;
        let mut run = run.ok_or_else(|| StoreError::RunNotFound(id.to_string()))?;
        let inputs = run
            .inputs
            .take()
            .and_then(|i| serde_json::from_str(&i).ok())
            .unwrap_or(Value::Null);
        let run = run.into_summary()?;
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
        Ok(RunDetail {
            run,
            inputs,
            steps,
            attempts,
            items,
        })
    }

    /// One stored value whole, where a run's detail carries a marker: a step's output, or with
    /// `attempt` that attempt's output (its input with `input`). `None`: no such step or
    /// attempt, or nothing stored. Each is at most about 1 MiB (outputs past it are stored
    /// as a preview), so this read is bounded too.
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

    /// The items of a `for_each` step that have ended, by position: those with `status` when
    /// given, from `after` (exclusive), at most `limit`.
    pub async fn step_items(
        &self,
        run_id: &str,
        step_id: &str,
        status: Option<StepStatus>,
        after: Option<i64>,
        limit: i64,
    ) -> Result<Vec<ItemRecord>, StoreError> {
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
        );
        let rows: Vec<Row> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT item, status, attempts, input, output, error_kind, error_message, started_at, finished_at
                 FROM step_items WHERE run_id = $1 AND step_id = $2 AND item > $3 AND ($4 = '' OR status = $4)
                 ORDER BY item LIMIT $5",
            )
            .bind(run_id.to_string())
            .bind(step_id.to_string())
            .bind(after.unwrap_or(-1))
            .bind(status.map_or("", |s| s.as_str()).to_string())
            .bind(limit)
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
                })
            })
            .collect()
    }

    /// The outcomes of a `for_each` step's items recorded so far, by position: what a resumed
    /// step does not run again.
    pub async fn ended_items(
        &self,
        run_id: &str,
        step_id: &str,
    ) -> Result<Vec<(i64, StepStatus, Option<Value>, Option<String>)>, StoreError> {
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
    pub async fn unfinished_runs(&self, limit: i64) -> Result<Vec<Resumable>, StoreError> {
        let rows: Vec<(String, Option<i64>, Option<String>)> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT id, cancel_requested, traceparent FROM runs WHERE status IN ('queued', 'running') ORDER BY id LIMIT $1",
            )
            .bind(limit)
            .fetch_all(pool)
            .await?
        });
        let mut out = Vec::with_capacity(rows.len());
        for (id, cancel, traceparent) in rows {
            let detail = self.run_detail(&id).await?;
            out.push(Resumable {
                run: detail.run,
                inputs: detail.inputs,
                cancel_requested: cancel.is_some(),
                steps: detail.steps,
                traceparent,
            });
        }
        Ok(out)
    }

    /// Marks a run for cancellation; returns its status at that moment.
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

/// A PostgreSQL connection kept by one writer between batches ([`Store::apply_held`]). Give
/// it back ([`HeldConnection::release`]) when idle: closing the store waits for it.
#[derive(Default)]
pub struct HeldConnection(
    Option<(
        sqlx::pool::PoolConnection<sqlx::Postgres>,
        std::time::Instant,
    )>,
);

impl HeldConnection {
    /// Whether a connection is held now.
    pub fn is_held(&self) -> bool {
        self.0.is_some()
    }

    /// Gives the connection back to the pool.
    pub fn release(&mut self) {
        self.0 = None;
    }

    /// Gives the connection back once it has been held `age`: the pool's lifetime limits
    /// never see a connection that is always in use.
    pub fn release_if_held_for(&mut self, age: std::time::Duration) {
        if self
            .0
            .as_ref()
            .is_some_and(|(_, since)| since.elapsed() >= age)
        {
            self.0 = None;
        }
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
fn item_counts(attempts: &[AttemptRecord], rows: Vec<(String, String, i64)>) -> Vec<ItemCounts> {
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
    for (step_id, status, n) in rows {
        if let Some(c) = out.iter_mut().find(|c| c.step_id == step_id) {
            match status.as_str() {
                "succeeded" => c.succeeded += n,
                _ => c.failed += n,
            }
        }
    }
    out
}

/// The fence of a worker's batch: every existing run it changes must still be the worker's.
///
/// Written as an open `SELECT` (returns true) for the calls after it to join.
fn write_fence(sql: &mut String, me: &str, ops: &[Op]) -> bool {
    let mut ids: Vec<&str> = ops
        .iter()
        .filter_map(|op| match op {
            Op::StartRun { run_id, .. }
            | Op::AttemptStarted { run_id, .. }
            | Op::AttemptFinished { run_id, .. }
            | Op::StepsEnded { run_id, .. }
            | Op::ItemsEnded { run_id, .. }
            | Op::OfferStep { run_id, .. }
            | Op::OfferDone { run_id, .. }
            | Op::CloseOffers { run_id }
            | Op::FinishRun { run_id, .. } => Some(run_id.as_str()),
            Op::CreateRun(_) | Op::FireSchedule { .. } => None,
        })
        .collect();
    if ids.is_empty() {
        return false;
    }
    // Sorted: the fence locks in the order given, and every worker must use one order.
    ids.sort_unstable();
    ids.dedup();
    let _ = write!(sql, "SELECT flowscope_fence({}, ARRAY[", Text(me));
    for (i, id) in ids.iter().enumerate() {
        let _ = write!(sql, "{}{}", if i == 0 { "" } else { ", " }, Text(id));
    }
    sql.push_str("]::TEXT[])");
    true
}

mod const_sql {
    pub const RUN_BY_ID: &str = "SELECT id, workflow_id, workflow_version, status, trigger, actor, parent_run_id, error, created_at, started_at, finished_at, trace_id, span_id, inputs FROM runs WHERE id = $1";
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

/// What a batch writes, as a set of statement kinds: cheap to take before the batch is
/// handed over, and turned into `db.query.text` only for a commit span that is kept.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct OpsSummary(u16);

/// The statement kinds of [`OpsSummary`], in the order they are listed.
const WRITES: [&str; 9] = [
    "INSERT INTO runs",
    "INSERT INTO run_steps",
    "UPDATE runs",
    "UPDATE run_steps",
    "INSERT INTO step_attempts",
    "UPDATE step_attempts",
    "INSERT INTO schedule_fires; UPDATE schedules",
    "INSERT INTO step_offers; DELETE FROM step_offers",
    "INSERT INTO step_items",
];

impl OpsSummary {
    /// The statements, without values, e.g. `UPDATE run_steps; INSERT INTO step_attempts`.
    pub fn text(self) -> String {
        WRITES
            .iter()
            .enumerate()
            .filter(|(i, _)| self.0 & (1 << i) != 0)
            .map(|(_, w)| *w)
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// What a batch writes, without values: `db.query.text` of the commit span.
pub fn summarize_ops(ops: &[Op]) -> OpsSummary {
    let mut bits = 0u16;
    for op in ops {
        bits |= match op {
            Op::CreateRun(_) => 0b11,
            Op::StartRun { .. } | Op::FinishRun { .. } => 1 << 2,
            Op::AttemptStarted { .. } => 1 << 3 | 1 << 4,
            Op::AttemptFinished { .. } => 1 << 5 | 1 << 3,
            Op::StepsEnded { .. } => 1 << 3,
            Op::FireSchedule { .. } => 1 << 6,
            Op::OfferStep { .. } | Op::CloseOffers { .. } => 1 << 7,
            Op::OfferDone { .. } => 1 << 7 | 1 << 5,
            Op::ItemsEnded { .. } => 1 << 8,
        };
    }
    OpsSummary(bits)
}

/// [`write_op`] for PostgreSQL: an attempt's start and end, the hot path, call the functions
/// of migration 0008, whose statements run on plans the connection keeps. Both stores write
/// the same rows with the same values.
///
/// Consecutive calls are items of one `SELECT` (`open` counts the items of the one not yet
/// terminated), which PostgreSQL evaluates in order. Any other statement ends it first, and
/// so does reaching [`MAX_SELECT_ITEMS`].
fn write_op_pg(sql: &mut String, op: &Op, open: &mut usize) {
    let call = |sql: &mut String, open: &mut usize| {
        if *open == MAX_SELECT_ITEMS {
            sql.push_str(";\n");
            *open = 0;
        }
        sql.push_str(if *open > 0 { ",\n  " } else { "SELECT " });
        *open += 1;
    };
    match op {
        Op::AttemptStarted {
            run_id,
            step_id,
            attempt,
            ready_at,
            at,
            input,
            resumed,
            span_id,
            agent,
            worker,
        } => {
            call(sql, open);
            let _ = write!(
                sql,
                "flowscope_attempt_started({}, {}, {attempt}, {ready_at}, {at}, {}, {}, {}, {}, {resumed})",
                Text(run_id),
                Text(step_id),
                Text(&input.to_string()),
                OptText(span_id.as_deref()),
                Text(agent),
                OptText(worker.as_deref()),
            );
        }
        Op::AttemptFinished {
            run_id,
            step_id,
            attempt,
            status,
            output,
            error,
            logs,
            at,
        } => {
            let output = output.as_ref().map(|o| o.to_string());
            let logs = serde_json::to_string(logs).unwrap_or_else(|_| "[]".into());
            call(sql, open);
            let _ = write!(
                sql,
                "flowscope_attempt_finished({}, {}, {attempt}, '{}', '{}', {}, {}, {}, {}, {at}, {})",
                Text(run_id),
                Text(step_id),
                attempt_status(*status),
                status.as_str(),
                OptText(output.as_deref()),
                OptText(error.as_ref().map(|(k, _)| k.as_str())),
                OptText(error.as_ref().map(|(_, m)| m.as_str())),
                Text(&logs),
                OptInt(status.is_finished().then_some(*at)),
            );
        }
        other => {
            if std::mem::take(open) > 0 {
                sql.push_str(";\n");
            }
            write_op(sql, other);
        }
    }
}

/// Rows of one `INSERT INTO step_items`: SQLite binds nothing here (values are quoted
/// inline), but a statement of thousands of rows is slow to parse on both.
const ITEM_ROWS: usize = 500;

/// Items of one `SELECT` at most: PostgreSQL refuses a target list of more than 1,664, and a
/// batch may start a thousand-wide fan-out.
const MAX_SELECT_ITEMS: usize = 1000;

/// An attempt's own status when it ends: one that will be retried failed.
fn attempt_status(step: StepStatus) -> &'static str {
    if step == StepStatus::Retrying {
        "failed"
    } else {
        step.as_str()
    }
}

/// Appends the statements of one state change to a batch script.
fn write_op(sql: &mut String, op: &Op) {
    // `write!` to a String cannot fail.
    match op {
        Op::FireSchedule {
            workflow_id,
            trigger_index,
            fire_at,
            run_id,
            next_fire_at,
        } => {
            let _ = writeln!(
                sql,
                "INSERT INTO schedule_fires (workflow_id, trigger_index, fire_at, run_id) VALUES ({}, {trigger_index}, {fire_at}, {});\n\
                 UPDATE schedules SET next_fire_at = {next_fire_at} WHERE workflow_id = {} AND trigger_index = {trigger_index};",
                Text(workflow_id),
                Text(run_id),
                Text(workflow_id),
            );
        }
        Op::CreateRun(run) => {
            let _ = writeln!(
                sql,
                "INSERT INTO runs (id, workflow_id, workflow_version, status, trigger, actor, inputs, parent_run_id, traceparent, created_at, concurrency, owner) \
                 VALUES ({}, {}, {}, 'queued', {}, {}, {}, {}, {}, {}, {}, {});",
                Text(&run.id),
                Text(&run.workflow_id),
                run.workflow_version,
                Text(&run.trigger),
                OptText(run.actor.as_deref()),
                Text(&run.inputs.to_string()),
                OptText(run.parent_run_id.as_deref()),
                OptText(run.traceparent.as_deref()),
                run.created_at,
                OptInt(run.concurrency),
                OptText(run.owner.as_deref()),
            );
            if run.step_ids.is_empty() {
                return;
            }
            sql.push_str("INSERT INTO run_steps (run_id, step_id, status, output) VALUES ");
            for (i, step) in run.step_ids.iter().enumerate() {
                let reused = run
                    .reused
                    .iter()
                    .find(|(id, _)| id == step)
                    .map(|(_, out)| out.to_string());
                let status = if reused.is_some() {
                    "succeeded"
                } else {
                    "pending"
                };
                let sep = if i == 0 { "" } else { ", " };
                let _ = write!(
                    sql,
                    "{sep}({}, {}, '{status}', {})",
                    Text(&run.id),
                    Text(step),
                    OptText(reused.as_deref())
                );
            }
            sql.push_str(";\n");
        }
        Op::StartRun { run_id, at, trace } => {
            let _ = writeln!(
                sql,
                "UPDATE runs SET status = 'running', started_at = {at}, trace_id = {}, span_id = {} \
                 WHERE id = {} AND status = 'queued';",
                OptText(trace.as_ref().map(|t| t.0.as_str())),
                OptText(trace.as_ref().map(|t| t.1.as_str())),
                Text(run_id)
            );
        }
        Op::AttemptStarted {
            run_id,
            step_id,
            attempt,
            ready_at,
            at,
            input,
            resumed,
            span_id,
            agent,
            worker,
        } => {
            let (run, step) = (Text(run_id), Text(step_id));
            if *resumed {
                let _ = writeln!(
                    sql,
                    "UPDATE step_attempts SET status = 'failed', error_kind = 'interrupted', \
                     error_message = 'the process running this attempt stopped', finished_at = {at} \
                     WHERE run_id = {run} AND step_id = {step} AND attempt < {attempt} AND status = 'running';"
                );
            }
            let _ = writeln!(
                sql,
                "UPDATE run_steps SET status = 'running', attempts = {attempt}, ready_at = COALESCE(ready_at, {ready_at}), \
                 started_at = COALESCE(started_at, {at}), error_kind = NULL, error_message = NULL \
                 WHERE run_id = {run} AND step_id = {step};"
            );
            // A resumed attempt may re-insert a number the killed process had started. The
            // worker is named only where there are several (PostgreSQL): SQLite parses every
            // statement, so it keeps the shorter one.
            let (worker_column, worker_value, worker_update) = match worker {
                Some(w) => (
                    ", worker",
                    format!(", {}", Text(w)),
                    ", worker = excluded.worker",
                ),
                None => ("", String::new(), ""),
            };
            let _ = writeln!(
                sql,
                "INSERT INTO step_attempts (run_id, step_id, attempt, status, input, started_at, span_id, agent{worker_column}) \
                 VALUES ({run}, {step}, {attempt}, 'running', {}, {at}, {}, {}{worker_value}) \
                 ON CONFLICT (run_id, step_id, attempt) DO UPDATE SET status = 'running', input = excluded.input, \
                 started_at = excluded.started_at, span_id = excluded.span_id{worker_update};",
                Text(&input.to_string()),
                OptText(span_id.as_deref()),
                Text(agent),
            );
        }
        Op::AttemptFinished {
            run_id,
            step_id,
            attempt,
            status,
            output,
            error,
            logs,
            at,
        } => {
            let (run, step) = (Text(run_id), Text(step_id));
            let output = output.as_ref().map(|o| o.to_string());
            let output = OptText(output.as_deref());
            let kind = OptText(error.as_ref().map(|(k, _)| k.as_str()));
            let message = OptText(error.as_ref().map(|(_, m)| m.as_str()));
            let attempt_status = attempt_status(*status);
            let logs = serde_json::to_string(logs).unwrap_or_else(|_| "[]".into());
            let _ = writeln!(
                sql,
                "UPDATE step_attempts SET status = '{attempt_status}', output = {output}, error_kind = {kind}, \
                 error_message = {message}, logs = {}, finished_at = {at} \
                 WHERE run_id = {run} AND step_id = {step} AND attempt = {attempt};",
                Text(&logs)
            );
            let finished = OptInt(status.is_finished().then_some(*at));
            let _ = writeln!(
                sql,
                "UPDATE run_steps SET status = '{}', output = {output}, error_kind = {kind}, error_message = {message}, \
                 finished_at = {finished} WHERE run_id = {run} AND step_id = {step};",
                status.as_str()
            );
        }
        Op::OfferStep {
            run_id,
            step_id,
            attempt,
            owner,
            agent,
            payload,
            at,
        } => {
            // A run taken over re-offers its steps under the same key: the old offer is replaced.
            let _ = writeln!(
                sql,
                "INSERT INTO step_offers (run_id, step_id, attempt, owner, agent, payload, created_at) \
                 VALUES ({}, {}, {attempt}, {}, {}, {}, {at}) \
                 ON CONFLICT (run_id, step_id) DO UPDATE SET attempt = excluded.attempt, owner = excluded.owner, \
                 agent = excluded.agent, payload = excluded.payload, created_at = excluded.created_at, \
                 claimed_by = NULL, claimed_at = NULL, result = NULL;",
                Text(run_id),
                Text(step_id),
                Text(owner),
                Text(agent),
                Text(payload)
            );
        }
        Op::OfferDone {
            run_id,
            step_id,
            attempt,
            worker,
            started_at,
        } => {
            let (run, step) = (Text(run_id), Text(step_id));
            let _ = writeln!(
                sql,
                "UPDATE step_attempts SET worker = {}, started_at = {started_at} \
                 WHERE run_id = {run} AND step_id = {step} AND attempt = {attempt};\n\
                 DELETE FROM step_offers WHERE run_id = {run} AND step_id = {step} AND attempt = {attempt};",
                Text(worker)
            );
        }
        Op::CloseOffers { run_id } => {
            let _ = writeln!(
                sql,
                "DELETE FROM step_offers WHERE run_id = {};",
                Text(run_id)
            );
        }
        Op::StepsEnded {
            run_id,
            step_ids,
            status,
            reason,
            at,
        } => {
            if step_ids.is_empty() {
                return;
            }
            let _ = write!(
                sql,
                "UPDATE run_steps SET status = '{}', {}finished_at = {at} WHERE run_id = {} AND step_id IN (",
                status.as_str(),
                match reason {
                    Some(r) => format!("error_kind = '{}', ", r.as_str()),
                    None => String::new(),
                },
                Text(run_id)
            );
            for (i, step) in step_ids.iter().enumerate() {
                let _ = write!(sql, "{}{}", if i == 0 { "" } else { ", " }, Text(step));
            }
            sql.push_str(");\n");
        }
        Op::ItemsEnded {
            run_id,
            step_id,
            items,
        } => {
            // A resumed step may end an item again that the killed process had recorded.
            for chunk in items.chunks(ITEM_ROWS) {
                sql.push_str(
                    "INSERT INTO step_items (run_id, step_id, item, status, attempts, input, output, \
                     error_kind, error_message, started_at, finished_at) VALUES ",
                );
                for (i, item) in chunk.iter().enumerate() {
                    let input = item.input.as_ref().map(|v| v.to_string());
                    let output = item.output.as_ref().map(|v| v.to_string());
                    let _ = write!(
                        sql,
                        "{}({}, {}, {}, '{}', {}, {}, {}, {}, {}, {}, {})",
                        if i == 0 { "" } else { ", " },
                        Text(run_id),
                        Text(step_id),
                        item.index,
                        item.status.as_str(),
                        item.attempts,
                        OptText(input.as_deref()),
                        OptText(output.as_deref()),
                        OptText(item.error_kind.as_deref()),
                        OptText(item.error_message.as_deref()),
                        item.started_at,
                        item.finished_at,
                    );
                }
                sql.push_str(
                    " ON CONFLICT (run_id, step_id, item) DO UPDATE SET status = excluded.status, \
                     attempts = excluded.attempts, input = excluded.input, output = excluded.output, \
                     error_kind = excluded.error_kind, error_message = excluded.error_message, \
                     started_at = excluded.started_at, finished_at = excluded.finished_at;\n",
                );
            }
        }
        Op::FinishRun {
            run_id,
            status,
            error,
            at,
            ..
        } => {
            let _ = writeln!(
                sql,
                "UPDATE runs SET status = '{}', error = {}, finished_at = {at}, started_at = COALESCE(started_at, {at}) \
                 WHERE id = {};",
                status.as_str(),
                OptText(error.as_deref()),
                Text(run_id)
            );
        }
    }
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
