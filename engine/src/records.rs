//! Plain records the store returns and the UI shows; no database types, so they also
//! cross into the browser.

use serde::{Deserialize, Serialize};

/// One row of the workflow list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowSummary {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub tags: Vec<String>,
    pub latest_version: i64,
    pub created_at: i64,
    pub updated_at: i64,
    /// When it was archived; archived workflows are hidden from the default list.
    pub archived_at: Option<i64>,
}

/// How a workflow has been doing: what the list and the workflow page chart.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WorkflowStats {
    pub last_status: Option<RunStatus>,
    /// Finished runs in the last 24 hours, and how many of them succeeded.
    pub finished_24h: i64,
    pub succeeded_24h: i64,
    /// Nearest-rank 95th percentile of run time (start to finish) over the last 24 hours.
    pub p95_ms_24h: Option<i64>,
    /// Runs created on each of the last 7 UTC days, oldest first (today last).
    pub runs_per_day: [i64; 7],
}

/// A version's identity and time, without its text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "runtime", derive(sqlx::FromRow))]
pub struct VersionInfo {
    pub workflow_id: String,
    pub version: i64,
    pub created_at: i64,
}

/// The life of a run (SPEC §4): `queued → running → succeeded | failed | cancelled | timed_out`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    TimedOut,
}

/// The life of a step: `pending → running → succeeded | failed | skipped | cancelled`,
/// with `retrying` while it waits out a backoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Pending,
    Running,
    Retrying,
    Succeeded,
    Failed,
    Skipped,
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
        !matches!(self, RunStatus::Queued | RunStatus::Running)
    }
}

impl StepStatus {
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
pub struct RunSummary {
    pub id: String,
    pub workflow_id: String,
    pub workflow_version: i64,
    pub status: RunStatus,
    /// What started it: manual, api, cron, webhook, retry, alert.
    pub trigger: String,
    /// Who started it, when a person or API token did (`alice`, `token:ci`).
    #[serde(default)]
    pub actor: Option<String>,
    /// The run this one retries, if any.
    pub parent_run_id: Option<String>,
    pub error: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// The run's trace and its root `workflow.execute` span (hex), once it started with
    /// telemetry on.
    #[serde(default)]
    pub trace_id: Option<String>,
    #[serde(default)]
    pub span_id: Option<String>,
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
pub struct StepRecord {
    pub step_id: String,
    pub status: StepStatus,
    pub attempts: i64,
    pub output: Option<serde_json::Value>,
    pub error_kind: Option<String>,
    pub error_message: Option<String>,
    /// Why it was skipped, when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_reason: Option<SkipReason>,
    /// When it became ready to run (its needs done): queue wait is `started_at - ready_at`.
    pub ready_at: Option<i64>,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

/// One attempt of a step: what it was given, what it gave back, and its log lines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptRecord {
    pub step_id: String,
    pub attempt: i64,
    pub status: StepStatus,
    /// The rendered `with`, secrets redacted.
    pub input: Option<serde_json::Value>,
    pub output: Option<serde_json::Value>,
    pub error_kind: Option<String>,
    pub error_message: Option<String>,
    pub logs: Vec<String>,
    pub started_at: i64,
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
pub struct RunDetail {
    #[serde(flatten)]
    pub run: RunSummary,
    pub inputs: serde_json::Value,
    pub steps: Vec<StepRecord>,
    pub attempts: Vec<AttemptRecord>,
    /// Progress of each `for_each` step that has started.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<ItemCounts>,
}

/// How far a `for_each` step has got: its items, and how many ended each way.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ItemCounts {
    pub step_id: String,
    /// Items in its list (from its latest attempt's input).
    pub total: i64,
    pub succeeded: i64,
    pub failed: i64,
}

/// One item of a `for_each` step, once it has ended: its own attempt sequence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemRecord {
    /// Its position in the list, from 0.
    pub index: i64,
    /// `succeeded` or `failed`.
    pub status: StepStatus,
    pub attempts: i64,
    /// The rendered `with` of its last attempt, secrets redacted.
    pub input: Option<serde_json::Value>,
    pub output: Option<serde_json::Value>,
    pub error_kind: Option<String>,
    pub error_message: Option<String>,
    pub started_at: i64,
    pub finished_at: i64,
}

/// A change the executor publishes after committing it: what the live UI and the
/// `/api/v1/runs/{id}/events` stream carry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub run_id: String,
    pub workflow_id: String,
    pub at: i64,
    #[serde(flatten)]
    pub kind: EventKind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    Run {
        status: RunStatus,
    },
    Step {
        step_id: String,
        status: StepStatus,
        attempt: i64,
    },
    /// Items of a `for_each` step ended (recorded): how many so far.
    Items {
        step_id: String,
        done: i64,
        failed: i64,
        total: i64,
    },
}
