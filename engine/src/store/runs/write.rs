//! The write side of runs: [`Op`]s, and the one SQL script a batch of them becomes (one round
//! trip, one transaction), per database.

use serde_json::Value;
use std::fmt::Write;

use sqlx::AssertSqlSafe;

use crate::records::{ItemRecord, RunStatus, SkipReason, StepStatus};
use crate::store::script::{OptInt, OptText, Text};
use crate::store::{Db, Store, StoreError};

/// The size of one script of a SQLite batch (see [`Store::apply_held`]).
const SQLITE_CHUNK: usize = 16 * 1024;

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
    /// The run, step and item (of a `for_each`) that called it (agent `workflow`).
    pub caller: Option<crate::records::Caller>,
    /// Its labels, checked ([`crate::search::check_labels`]).
    pub labels: crate::search::Labels,
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
        /// Its outputs (the workflow's `outputs:`, or a child run's), when it succeeded.
        outputs: Option<Value>,
        /// What search reads of it ([`crate::search::document`]).
        search: Option<String>,
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
    /// A step's attempt waits without a worker (see `store::waits`): an event's wait resolves
    /// at once when a kept event of its key is there.
    BeginWait {
        /// The run.
        run_id: String,
        /// The step.
        step_id: String,
        /// The attempt that waits.
        attempt: i64,
        /// What it waits for.
        kind: crate::records::WaitKind,
        /// The event's key, the child run's id.
        key: Option<String>,
        /// The rendered `with`, secrets redacted.
        detail: Value,
        /// When it started waiting (unix ms).
        at: i64,
        /// A delay's end or a timeout (unix ms).
        due_at: Option<i64>,
    },
    /// Waits the run has recorded the end of: one step's, or (`None`) all of the run's.
    EndWaits {
        /// The run.
        run_id: String,
        /// The step, or every step.
        step_id: Option<String>,
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
        match &self.db {
            Db::Sqlite(pool) => {
                // One round trip to the connection's thread per chunk.
                let chunks = sqlite_script(ops);
                let mut conn = pool.acquire().await?;
                for chunk in chunks {
                    if let Err(e) = sqlx::raw_sql(AssertSqlSafe(chunk))
                        .execute(&mut *conn)
                        .await
                    {
                        // A statement failed mid-script: its transaction is still open here.
                        if sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await.is_err() {
                            drop(conn.detach());
                        }
                        return Err(e.into());
                    }
                }
                return Ok(());
            }
            // Several statements in one simple query are one implicit transaction.
            Db::Postgres(pool) => {
                let mut sql = String::with_capacity(64 + 320 * ops.len());
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
                    let _ = writeln!(sql, "NOTIFY {};", crate::store::cluster::RUNS_CHANNEL);
                }
                if ops.iter().any(|op| matches!(op, Op::OfferStep { .. })) {
                    let _ = writeln!(sql, "NOTIFY {};", crate::store::cluster::STEPS_CHANNEL);
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
}

/// A batch as SQLite script chunks of about [`SQLITE_CHUNK`] bytes, `BEGIN` to `COMMIT`.
///
/// SQLite copies the rest of a script each time it prepares one of its statements (the text
/// given is not NUL-terminated), so one script of a whole batch costs its size times its
/// statements: chunks keep that linear.
pub(crate) fn sqlite_script(ops: &[Op]) -> Vec<String> {
    let mut sql = String::with_capacity(64 + 320 * ops.len().min(64));
    let mut chunks: Vec<String> = Vec::new();
    sql.push_str("BEGIN;\n");
    for op in ops {
        write_op(&mut sql, op);
        if sql.len() >= SQLITE_CHUNK {
            chunks.push(std::mem::take(&mut sql));
        }
    }
    sql.push_str("COMMIT;\n");
    chunks.push(sql);
    chunks
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
            | Op::BeginWait { run_id, .. }
            | Op::EndWaits { run_id, .. }
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

/// What a batch writes, as a set of statement kinds: cheap to take before the batch is
/// handed over, and turned into `db.query.text` only for a commit span that is kept.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct OpsSummary(u16);

/// The statement kinds of [`OpsSummary`], in the order they are listed.
const WRITES: [&str; 10] = [
    "INSERT INTO runs",
    "INSERT INTO run_steps",
    "UPDATE runs",
    "UPDATE run_steps",
    "INSERT INTO step_attempts",
    "UPDATE step_attempts",
    "INSERT INTO schedule_fires; UPDATE schedules",
    "INSERT INTO step_offers; DELETE FROM step_offers",
    "INSERT INTO step_items",
    "INSERT INTO waits; DELETE FROM waits",
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
            Op::BeginWait { .. } | Op::EndWaits { .. } => 1 << 9,
        };
    }
    OpsSummary(bits)
}

/// A new run's row as values, in the order both stores take them: id, workflow, version,
/// trigger, actor, inputs, parent, traceparent, created, concurrency, owner, labels.
fn write_run_values(sql: &mut String, run: &NewRun) {
    // Most runs have no labels: NULL, and no `run_labels` rows.
    let labels =
        (!run.labels.is_empty()).then(|| serde_json::to_string(&run.labels).unwrap_or_default());
    let _ = write!(
        sql,
        "{}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}",
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
        OptText(labels.as_deref()),
    );
}

/// What a new run writes besides its row and steps: its labels and its caller, if any.
fn write_run_extras(sql: &mut String, run: &NewRun) {
    if !run.labels.is_empty() {
        sql.push_str("INSERT INTO run_labels (run_id, key, value) VALUES ");
        for (i, (key, value)) in run.labels.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            let _ = write!(
                sql,
                "{sep}({}, {}, {})",
                Text(&run.id),
                Text(key),
                Text(value)
            );
        }
        sql.push_str(";\n");
    }
    if let Some(c) = &run.caller {
        let _ = writeln!(
            sql,
            "UPDATE runs SET caller_run_id = {}, caller_step_id = {}, caller_item = {} WHERE id = {};",
            Text(&c.run_id),
            Text(&c.step_id),
            OptInt(c.item),
            Text(&run.id),
        );
    }
}

/// [`write_op`] for PostgreSQL: a run's creation, start and end and an attempt's start and
/// end, the hot path, call the functions of migrations 0008 and 0017, whose statements run
/// on plans the connection keeps. Both stores write the same rows with the same values.
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
    // Any other statement ends the open `SELECT` first.
    let end = |sql: &mut String, open: &mut usize| {
        if std::mem::take(open) > 0 {
            sql.push_str(";\n");
        }
    };
    match op {
        Op::CreateRun(run) => {
            call(sql, open);
            sql.push_str("flowscope_run_created(");
            write_run_values(sql, run);
            sql.push_str(", ARRAY[");
            for (i, step) in run.step_ids.iter().enumerate() {
                let _ = write!(sql, "{}{}", if i == 0 { "" } else { ", " }, Text(step));
            }
            sql.push_str("]::TEXT[], ARRAY[");
            for (i, step) in run.step_ids.iter().enumerate() {
                let reused = run
                    .reused
                    .iter()
                    .find(|(id, _)| id == step)
                    .map(|(_, out)| out.to_string());
                let _ = write!(
                    sql,
                    "{}{}",
                    if i == 0 { "" } else { ", " },
                    OptText(reused.as_deref())
                );
            }
            sql.push_str("]::TEXT[])");
            if !run.labels.is_empty() || run.caller.is_some() {
                end(sql, open);
                write_run_extras(sql, run);
            }
        }
        Op::StartRun { run_id, at, trace } => {
            call(sql, open);
            let _ = write!(
                sql,
                "flowscope_run_started({}, {at}, {}, {})",
                Text(run_id),
                OptText(trace.as_ref().map(|t| t.0.as_str())),
                OptText(trace.as_ref().map(|t| t.1.as_str())),
            );
        }
        Op::FinishRun {
            run_id,
            status,
            error,
            at,
            outputs,
            search,
            ..
        } => {
            call(sql, open);
            let _ = write!(
                sql,
                "flowscope_run_finished({}, '{}', {}, {at}, {}, {})",
                Text(run_id),
                status.as_str(),
                OptText(error.as_deref()),
                OptText(outputs.as_ref().map(|o| o.to_string()).as_deref()),
                OptText(search.as_deref()),
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
            end(sql, open);
            if let Op::BeginWait {
                key: Some(key),
                kind: crate::records::WaitKind::Event,
                ..
            } = other
            {
                // The lock an arriving event takes (`Store::post_event`): one of the two
                // transactions sees the other's row.
                let _ = writeln!(
                    sql,
                    "SELECT pg_advisory_xact_lock(hashtext({}));",
                    Text(key)
                );
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
            sql.push_str(
                "INSERT INTO runs (id, workflow_id, workflow_version, trigger, actor, inputs, parent_run_id, \
                 traceparent, created_at, concurrency, owner, labels, status) VALUES (",
            );
            write_run_values(sql, run);
            sql.push_str(", 'queued');\n");
            write_run_extras(sql, run);
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
        Op::BeginWait {
            run_id,
            step_id,
            attempt,
            kind,
            key,
            detail,
            at,
            due_at,
        } => {
            let _ = writeln!(
                sql,
                "INSERT INTO waits (run_id, step_id, attempt, kind, wait_key, detail, created_at, due_at) \
                 VALUES ({}, {}, {attempt}, '{}', {}, {}, {at}, {}) \
                 ON CONFLICT (run_id, step_id) DO UPDATE SET attempt = excluded.attempt, kind = excluded.kind, \
                 wait_key = excluded.wait_key, detail = excluded.detail, created_at = excluded.created_at, \
                 due_at = excluded.due_at, resolved_at = NULL, outcome = NULL;",
                Text(run_id),
                Text(step_id),
                kind.as_str(),
                OptText(key.as_deref()),
                Text(&detail.to_string()),
                OptInt(*due_at),
            );
            if let (crate::records::WaitKind::Event, Some(key)) = (kind, key) {
                // An event that came first and is still kept resolves the wait at once.
                let _ = writeln!(
                    sql,
                    "UPDATE waits SET resolved_at = {at}, outcome = (SELECT outcome FROM kept_events \
                     WHERE event_key = {k} AND expires_at > {at} ORDER BY received_at DESC LIMIT 1) \
                     WHERE run_id = {} AND step_id = {} AND EXISTS (SELECT 1 FROM kept_events \
                     WHERE event_key = {k} AND expires_at > {at});",
                    Text(run_id),
                    Text(step_id),
                    k = Text(key),
                );
            }
        }
        Op::EndWaits { run_id, step_id } => match step_id {
            Some(step) => {
                let _ = writeln!(
                    sql,
                    "DELETE FROM waits WHERE run_id = {} AND step_id = {};",
                    Text(run_id),
                    Text(step)
                );
            }
            None => {
                let _ = writeln!(sql, "DELETE FROM waits WHERE run_id = {};", Text(run_id));
            }
        },
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
                     error_kind, error_message, started_at, finished_at, earlier_attempts) VALUES ",
                );
                for (i, item) in chunk.iter().enumerate() {
                    let input = item.input.as_ref().map(|v| v.to_string());
                    let output = item.output.as_ref().map(|v| v.to_string());
                    let earlier = (!item.earlier_attempts.is_empty())
                        .then(|| serde_json::to_string(&item.earlier_attempts).unwrap_or_default());
                    let _ = write!(
                        sql,
                        "{}({}, {}, {}, '{}', {}, {}, {}, {}, {}, {}, {}, {})",
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
                        OptText(earlier.as_deref()),
                    );
                }
                sql.push_str(
                    " ON CONFLICT (run_id, step_id, item) DO UPDATE SET status = excluded.status, \
                     attempts = excluded.attempts, input = excluded.input, output = excluded.output, \
                     error_kind = excluded.error_kind, error_message = excluded.error_message, \
                     started_at = excluded.started_at, finished_at = excluded.finished_at, \
                     earlier_attempts = excluded.earlier_attempts;\n",
                );
            }
        }
        Op::FinishRun {
            run_id,
            status,
            error,
            at,
            outputs,
            search,
            ..
        } => {
            let _ = writeln!(
                sql,
                "UPDATE runs SET status = '{}', error = {}, finished_at = {at}, started_at = COALESCE(started_at, {at}){} \
                 WHERE id = {};",
                status.as_str(),
                OptText(error.as_deref()),
                // Written only when there are some: most runs have none to keep.
                match outputs {
                    Some(o) => format!(", outputs = {}", Text(&o.to_string())),
                    None => String::new(),
                },
                Text(run_id)
            );
            if let Some(body) = search {
                let _ = writeln!(
                    sql,
                    "INSERT INTO run_search (run_id, body) VALUES ({}, {}) ON CONFLICT (run_id) DO NOTHING;",
                    Text(run_id),
                    Text(body)
                );
            }
        }
    }
}
