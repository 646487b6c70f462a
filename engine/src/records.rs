//! Plain records the store returns and the UI shows; no database types, so they also
//! cross into the browser.

use serde::{Deserialize, Serialize};

/// One row of the workflow list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkflowSummary {
    /// Its id: the file's `id`, the URL's `/workflows/{id}`.
    pub id: String,
    /// Its name for people (the id when the file gives none).
    pub name: String,
    /// What it does, from the file.
    pub description: Option<String>,
    /// Its tags, for search.
    pub tags: Vec<String>,
    /// Its newest saved version (the one a trigger runs).
    pub latest_version: i64,
    /// When it was first saved (Unix time in milliseconds).
    pub created_at: i64,
    /// When its latest version was saved (Unix time in milliseconds).
    pub updated_at: i64,
    /// When it was archived; archived workflows are hidden from the default list.
    pub archived_at: Option<i64>,
    /// When its triggers were paused: no run starts (cron passes, webhooks and Run refuse).
    #[serde(default)]
    pub paused_at: Option<i64>,
}

/// How a workflow has been doing: what the list and the workflow page chart.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkflowStats {
    /// How its newest finished run ended.
    pub last_status: Option<RunStatus>,
    /// Finished runs in the last 24 hours, and how many of them succeeded.
    pub finished_24h: i64,
    /// Of `finished_24h`, those that succeeded.
    pub succeeded_24h: i64,
    /// Nearest-rank 95th percentile of run time (start to finish) over the last 24 hours.
    pub p95_ms_24h: Option<i64>,
    /// Runs created on each of the last 7 UTC days, oldest first (today last).
    pub runs_per_day: [i64; 7],
}

/// A version's identity and time, without its text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "runtime", derive(sqlx::FromRow))]
pub struct VersionInfo {
    /// The workflow it is a version of.
    pub workflow_id: String,
    /// Its number, from 1.
    pub version: i64,
    /// When it was saved (Unix time in milliseconds).
    pub created_at: i64,
}

/// The life of a run (SPEC §4): `queued → running → succeeded | failed | cancelled | timed_out`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Created, waiting for a slot (its workflow's `concurrency`, or the process's).
    Queued,
    /// Its steps are being run.
    Running,
    /// Every step that can go on waits (an approval, an event, a long delay, a child run): it
    /// holds no worker and no slot, and is woken when one of them is resolved or due.
    Waiting,
    /// Paused by a person: no new attempt starts until it is resumed.
    Paused,
    /// Every step succeeded, was skipped, or failed with `continue_on_error`.
    Succeeded,
    /// A step failed.
    Failed,
    /// Stopped by a person or the API.
    Cancelled,
    /// Ran past its workflow's `timeout`.
    TimedOut,
}

/// The life of a step: `pending → running → succeeded | failed | skipped | cancelled`,
/// with `retrying` while it waits out a backoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Its needs have not ended yet.
    Pending,
    /// An attempt is in flight.
    Running,
    /// An attempt failed and the next waits out its backoff.
    Retrying,
    /// An attempt succeeded.
    Succeeded,
    /// Its last attempt failed (or it could not start: a template, a crash loop).
    Failed,
    /// Not run: an upstream step did not succeed, or its `if:` was false (`skip_reason`).
    Skipped,
    /// Stopped with its run.
    Cancelled,
}

macro_rules! status_text {
    ($ty:ident { $($variant:ident = $text:literal),* $(,)? }) => {
        impl $ty {
            /// Every state, in life order.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),*];

            /// The name stored in the database, used in the API and as a metric label.
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $text),* }
            }

            /// Reads a stored name.
            pub fn parse(text: &str) -> Option<$ty> {
                match text { $($text => Some($ty::$variant),)* _ => None }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

status_text!(RunStatus {
    Queued = "queued",
    Running = "running",
    Waiting = "waiting",
    Paused = "paused",
    Succeeded = "succeeded",
    Failed = "failed",
    Cancelled = "cancelled",
    TimedOut = "timed_out",
});

status_text!(StepStatus {
    Pending = "pending",
    Running = "running",
    Retrying = "retrying",
    Succeeded = "succeeded",
    Failed = "failed",
    Skipped = "skipped",
    Cancelled = "cancelled",
});

/// Why a step was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// Its `if:` was false.
    Condition,
    /// A step it needs did not succeed.
    Upstream,
}

status_text!(SkipReason {
    Condition = "condition",
    Upstream = "upstream",
});

impl SkipReason {
    /// The reason in words, for the run page.
    pub fn describe(self) -> &'static str {
        match self {
            SkipReason::Condition => "its condition was false",
            SkipReason::Upstream => "a step it needs did not succeed",
        }
    }
}

impl RunStatus {
    /// A status filter as the API and the monitor take it: empty for any status. The one rule
    /// for both, with one message.
    pub fn parse_filter(s: &str) -> Result<Option<RunStatus>, String> {
        match s.trim() {
            "" => Ok(None),
            s => RunStatus::parse(s).map(Some).ok_or_else(|| {
                let known: Vec<&str> = RunStatus::ALL.iter().map(|s| s.as_str()).collect();
                format!("status \"{s}\" is not one of {}", known.join(", "))
            }),
        }
    }

    /// Finished runs never change again.
    pub fn is_finished(self) -> bool {
        !matches!(
            self,
            RunStatus::Queued | RunStatus::Running | RunStatus::Waiting | RunStatus::Paused
        )
    }
}

impl StepStatus {
    /// Ended steps never change again (until a retry starts a new run).
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            StepStatus::Succeeded
                | StepStatus::Failed
                | StepStatus::Skipped
                | StepStatus::Cancelled
        )
    }
}

/// A run as the list and the monitor show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunSummary {
    /// Its id (a UUID v7: ordered by creation).
    pub id: String,
    /// The workflow it runs.
    pub workflow_id: String,
    /// The version of the workflow it runs.
    pub workflow_version: i64,
    /// Where it is in its life.
    pub status: RunStatus,
    /// What started it: manual, api, cron, webhook, retry, alert.
    pub trigger: String,
    /// Who started it, when a person or API token did (`alice`, `token:ci`).
    #[serde(default)]
    pub actor: Option<String>,
    /// The run this one retries, if any.
    pub parent_run_id: Option<String>,
    /// Why it failed, for people.
    pub error: Option<String>,
    /// When it was created (Unix time in milliseconds).
    pub created_at: i64,
    /// When its first step could start (Unix time in milliseconds).
    pub started_at: Option<i64>,
    /// When it ended (Unix time in milliseconds).
    pub finished_at: Option<i64>,
    /// The run's trace and its root `workflow.execute` span (hex), once it started with
    /// telemetry on.
    #[serde(default)]
    pub trace_id: Option<String>,
    /// Its root `workflow.execute` span (hex), beside `trace_id`.
    #[serde(default)]
    pub span_id: Option<String>,
    /// Labels given when it was triggered (`env: prod`), carried by its retries.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: crate::search::Labels,
}

impl RunSummary {
    /// What started it, for people: `manual · alice`, `api · token:ci`, `cron`.
    pub fn started_by(&self) -> String {
        match &self.actor {
            Some(who) => format!("{} · {who}", self.trigger),
            None => self.trigger.clone(),
        }
    }
}

/// One step of a run, with its latest outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StepRecord {
    /// Its id in the workflow.
    pub step_id: String,
    /// Where it is in its life.
    pub status: StepStatus,
    /// Attempts started so far.
    pub attempts: i64,
    /// What its successful attempt returned (a marker past the stored size).
    pub output: Option<serde_json::Value>,
    /// The error's kind (`error.type`: `timeout`, `http_status`, …); a skipped step has
    /// `skip_reason` instead.
    pub error_kind: Option<String>,
    /// The error, for people.
    pub error_message: Option<String>,
    /// Why it was skipped, when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_reason: Option<SkipReason>,
    /// When it became ready to run (its needs done): queue wait is `started_at - ready_at`.
    pub ready_at: Option<i64>,
    /// When its first attempt started (Unix time in milliseconds).
    pub started_at: Option<i64>,
    /// When it ended (Unix time in milliseconds).
    pub finished_at: Option<i64>,
}

/// One attempt of a step: what it was given, what it gave back, and its log lines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AttemptRecord {
    /// The step it is an attempt of.
    pub step_id: String,
    /// Its number, from 1.
    pub attempt: i64,
    /// How it ended (`running` while in flight).
    pub status: StepStatus,
    /// The rendered `with`, secrets redacted.
    pub input: Option<serde_json::Value>,
    /// What the agent returned.
    pub output: Option<serde_json::Value>,
    /// The error's kind (`error.type`).
    pub error_kind: Option<String>,
    /// The error, for people.
    pub error_message: Option<String>,
    /// The agent's log lines (at most 64 KiB an attempt), secrets redacted.
    pub logs: Vec<String>,
    /// When it started (Unix time in milliseconds).
    pub started_at: i64,
    /// When it ended (Unix time in milliseconds).
    pub finished_at: Option<i64>,
    /// This attempt's `agent.execute` span (hex), when telemetry was on.
    #[serde(default)]
    pub span_id: Option<String>,
    /// The worker that ran it (its name), on PostgreSQL.
    #[serde(default)]
    pub worker: Option<String>,
}

/// A whole run: summary, inputs, steps and every attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunDetail {
    /// Its summary (flattened into the same JSON object).
    #[serde(flatten)]
    pub run: RunSummary,
    /// The inputs it was triggered with, defaults filled.
    pub inputs: serde_json::Value,
    /// Every step, in the workflow's order.
    pub steps: Vec<StepRecord>,
    /// Every attempt, in the order they started.
    pub attempts: Vec<AttemptRecord>,
    /// Progress of each `for_each` step that has started.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<ItemCounts>,
    /// Its steps that wait (an approval, an event, a long delay, a child run).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waits: Vec<WaitRecord>,
    /// Its outputs once it succeeded: the workflow's `outputs:`, else the output of each step
    /// nothing depends on, by id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<serde_json::Value>,
    /// The run and step that called it, when a `workflow` step did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller: Option<Caller>,
    /// The runs its `workflow` steps called, oldest first (at most [`MAX_LISTED_CHILDREN`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<ChildRun>,
}

/// Child runs a run's detail lists, at most (a `for_each` may call thousands).
pub const MAX_LISTED_CHILDREN: i64 = 200;

/// Where a child run was called from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Caller {
    /// The calling run.
    pub run_id: String,
    /// Its `workflow` step.
    pub step_id: String,
    /// The item of a `for_each` step, by index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<i64>,
}

/// A run a `workflow` step called.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChildRun {
    /// The child run.
    pub id: String,
    /// The workflow it runs.
    pub workflow_id: String,
    /// Its state.
    pub status: RunStatus,
    /// The calling step.
    pub step_id: String,
    /// The item of a `for_each` step, by index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<i64>,
}

/// What a waiting step waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum WaitKind {
    /// A person's decision (agent `approval`).
    Approval,
    /// An event posted to `/api/v1/events/{key}` (agent `wait`).
    Event,
    /// A long `delay`: a wake-up time.
    Delay,
    /// A child run (agent `workflow`).
    Workflow,
}

status_text!(WaitKind {
    Approval = "approval",
    Event = "event",
    Delay = "delay",
    Workflow = "workflow",
});

/// A step that waits without holding a worker: the run sleeps as this row until it is resolved
/// (a decision, an event, the child's end) or falls due (a delay's end, a timeout).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WaitRecord {
    /// The waiting step.
    pub step_id: String,
    /// Its attempt.
    pub attempt: i64,
    /// What it waits for.
    pub kind: WaitKind,
    /// The event's key, or the child run's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The step's rendered `with` (an approval's prompt, role and fields), secrets redacted.
    pub detail: serde_json::Value,
    /// Since when (unix ms).
    pub since: i64,
    /// Until when: a delay's end or a timeout (unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<i64>,
    /// When it was resolved, if it has been and the run has not recorded it yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<i64>,
    /// How: `{"output": …}`, or `{"error": {"kind", "message"}, "output"?: …}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<serde_json::Value>,
}

/// How far a `for_each` step has got: its items, and how many ended each way.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ItemCounts {
    /// The `for_each` step.
    pub step_id: String,
    /// Items in its list (from its latest attempt's input).
    pub total: i64,
    /// Items that succeeded.
    pub succeeded: i64,
    /// Items that failed after their retries.
    pub failed: i64,
    /// Items, of either outcome, that took more than one attempt.
    #[serde(default)]
    pub retried: i64,
}

/// One item of a `for_each` step, once it has ended: its own attempt sequence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ItemRecord {
    /// Its position in the list, from 0.
    pub index: i64,
    /// `succeeded` or `failed`.
    pub status: StepStatus,
    /// Attempts it took.
    pub attempts: i64,
    /// The rendered `with` of its last attempt, secrets redacted.
    pub input: Option<serde_json::Value>,
    /// What its last attempt returned.
    pub output: Option<serde_json::Value>,
    /// Its error's kind (`error.type`).
    pub error_kind: Option<String>,
    /// Its error, for people.
    pub error_message: Option<String>,
    /// When its first attempt started (Unix time in milliseconds).
    pub started_at: i64,
    /// When it ended (Unix time in milliseconds).
    pub finished_at: i64,
    /// The attempts before its last, oldest first (each failed and was retried); the newest
    /// [`ItemAttempt::KEPT`] when there were more.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub earlier_attempts: Vec<ItemAttempt>,
}

/// One attempt of an item that failed and was retried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ItemAttempt {
    /// Its number, from 1.
    pub attempt: i64,
    /// Its error's kind (`error.type`).
    pub error_kind: String,
    /// Its error, for people (cut to [`ItemAttempt::MESSAGE_BYTES`]).
    pub error_message: String,
    /// When it started (Unix time in milliseconds).
    pub started_at: i64,
    /// When it ended.
    pub finished_at: i64,
}

impl ItemAttempt {
    /// Earlier attempts kept per item: an item may be retried 100 times, over 10,000 items.
    pub const KEPT: usize = 20;
    /// Bytes of an earlier attempt's message kept.
    pub const MESSAGE_BYTES: usize = 1000;
}

/// A change the executor publishes after committing it: what the live UI and the
/// `/api/v1/runs/{id}/events` stream carry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Event {
    /// The run it happened in.
    pub run_id: String,
    /// The run's workflow (so a list can filter without a lookup).
    pub workflow_id: String,
    /// When it was committed (Unix time in milliseconds).
    pub at: i64,
    /// What happened (flattened: `type` says which).
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What an [`Event`] says happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// The run changed status.
    Run {
        /// Its new status.
        status: RunStatus,
    },
    /// A step changed status.
    Step {
        /// The step.
        step_id: String,
        /// Its new status.
        status: StepStatus,
        /// The attempt it is on.
        attempt: i64,
        /// Why it was not run, when it was skipped: live pages draw "if false" apart from
        /// "an upstream failed" without reading the run again.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        skip_reason: Option<SkipReason>,
    },
    /// Items of a `for_each` step ended (recorded): how many so far.
    Items {
        /// The `for_each` step.
        step_id: String,
        /// Items ended so far.
        done: i64,
        /// Of those, items that failed.
        failed: i64,
        /// Items in its list.
        total: i64,
    },
}

/// `850 ms`, `1.25 s`, `3 m 05 s`, `2 h 10 m`: durations as people read them.
pub fn format_duration(ms: i64) -> String {
    let ms = ms.max(0);
    match ms {
        0..=999 => format!("{ms} ms"),
        1_000..=59_999 => format!("{:.2} s", ms as f64 / 1000.0),
        60_000..=3_599_999 => format!("{} m {:02} s", ms / 60_000, ms % 60_000 / 1000),
        3_600_000..=172_799_999 => {
            format!("{} h {:02} m", ms / 3_600_000, ms % 3_600_000 / 60_000)
        }
        // Approvals and retention count in days.
        _ => format!("{} d {:02} h", ms / 86_400_000, ms % 86_400_000 / 3_600_000),
    }
}
