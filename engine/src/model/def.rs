//! The workflow file format (SPEC §2) as plain serde types.
//!
//! These types are what a document *says*; nothing here is checked beyond its shape.
//! [`crate::model::Workflow`] is the validated form the rest of Flowscope trusts.
//! Field order here is the canonical order of the serialised file, and optional fields
//! are skipped when empty, so `parse → to_yaml` is a fixed point (see `canonical`).

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A workflow document as written by a person or the builder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowDef {
    /// Slug, unique across the hub; the key of every version.
    pub id: String,
    /// Display name; the id is shown when it is absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What the workflow does, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Labels for search and the list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Typed run inputs, in the order the Run form shows them.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub inputs: IndexMap<String, InputDef>,
    /// What may start a run besides the API (manual, cron, webhook).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub triggers: Vec<TriggerDef>,
    /// Max runs of this workflow at once; unlimited when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    /// Whole-run time limit, e.g. `10m`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "duration_text"
    )]
    pub timeout: Option<String>,
    /// A workflow to start when a run of this one fails or times out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<OnFailureDef>,
    /// How long its finished runs are kept (each limit unset here: the server's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<RetentionDef>,
    /// The run's outputs (templates over `inputs`, `steps`, `run`), what a `workflow` step that
    /// calls this one gets; without them, the output of each step nothing depends on, by id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Map<String, Value>>,
    /// The steps, in the order the file gives them (their `needs` make the graph).
    pub steps: Vec<StepDef>,
}

/// `on_failure: { workflow: notify-failure, inputs: {…} }`: started (trigger `failure`) when a
/// run fails or times out, with these inputs, and with `failure` (the workflow, run, its links,
/// the failed step and the error) when the handler declares an input of that name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnFailureDef {
    /// The workflow to start.
    pub workflow: String,
    /// Its inputs, as given.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub inputs: Map<String, Value>,
}

/// `retention: { max_age: 30d, max_runs: 10000, keep_failed: 90d }`: a finished run is deleted
/// once it is older than `max_age` or past the newest `max_runs`, unless it failed (or timed
/// out) within `keep_failed`. Runs that have not finished are never deleted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionDef {
    /// Finished runs older than this are deleted.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "duration_text"
    )]
    pub max_age: Option<String>,
    /// Only this many of the newest runs are kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_runs: Option<u64>,
    /// Failed and timed-out runs are kept this long whatever the other two say.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "duration_text"
    )]
    pub keep_failed: Option<String>,
}

/// One declared run input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputDef {
    /// The JSON type a value must have.
    #[serde(rename = "type")]
    pub ty: InputType,
    /// Used when a trigger gives no value (the input is optional then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// What the input means, shown on the Run form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// The JSON types an input may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputType {
    /// Text.
    String,
    /// Any JSON number.
    Number,
    /// A whole number.
    Integer,
    /// `true` or `false`.
    Boolean,
    /// A JSON object.
    Object,
    /// A JSON list.
    Array,
}

impl InputType {
    /// Whether `value` is of this type.
    pub fn accepts(self, value: &Value) -> bool {
        match self {
            InputType::String => value.is_string(),
            InputType::Number => value.is_number(),
            InputType::Integer => value.is_i64() || value.is_u64(),
            InputType::Boolean => value.is_boolean(),
            InputType::Object => value.is_object(),
            InputType::Array => value.is_array(),
        }
    }

    /// The name used in the file (`string`, `number`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            InputType::String => "string",
            InputType::Number => "number",
            InputType::Integer => "integer",
            InputType::Boolean => "boolean",
            InputType::Object => "object",
            InputType::Array => "array",
        }
    }
}

/// What may start a run. Written as a one-key map, `- cron: "0 2 * * *"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum TriggerDef {
    /// Run from the UI or the API only.
    Manual(Empty),
    /// On a cron schedule.
    Cron(CronDef),
    /// `POST /hooks/{id}`, authenticated.
    Webhook(WebhookDef),
}

/// `POST /hooks/{workflow_id}`. Callers prove they know the named secret, as a bearer token or
/// as the HMAC-SHA256 key of an `X-Hub-Signature-256` body signature.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookDef {
    /// Name of a secret (`FLOWSCOPE_SECRET_<NAME>`); without one the hook refuses every call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// The input that receives the whole JSON body (a GitHub push payload, say), instead of
    /// the body's keys being the inputs. It must be declared, of type `object` or `array`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_input: Option<String>,
    /// Labels of each run it starts, taken from the call: a JSON Pointer into the body
    /// (`branch: /ref`) or a header (`event: header:X-GitHub-Event`).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub labels: IndexMap<String, String>,
}

/// `{}` in the file: a trigger without settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

/// A schedule: either the bare expression or the long form with a timezone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CronDef {
    /// `"0 2 * * *"`: the expression alone, in UTC.
    Expr(String),
    /// `{schedule, timezone, catch_up}`.
    Full(CronFull),
}

/// The long form of a schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CronFull {
    /// The cron expression (five or six fields).
    pub schedule: String,
    /// IANA zone name; UTC when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// Fire the runs missed while the hub was down (default: only the next one).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub catch_up: bool,
}

impl CronDef {
    /// The cron expression, whichever form was written.
    pub fn schedule(&self) -> &str {
        match self {
            CronDef::Expr(s) => s,
            CronDef::Full(f) => &f.schedule,
        }
    }

    /// The IANA zone the schedule reads in; UTC when absent.
    pub fn timezone(&self) -> &str {
        match self {
            CronDef::Full(CronFull {
                timezone: Some(tz), ..
            }) => tz,
            _ => "UTC",
        }
    }

    /// Whether runs missed while the hub was down are fired.
    pub fn catch_up(&self) -> bool {
        matches!(self, CronDef::Full(f) if f.catch_up)
    }
}

impl WorkflowDef {
    /// For each step, the indices of the steps it needs (unknown names left out): what the
    /// executor schedules on and the graphs draw, valid or not.
    pub fn need_indices(&self) -> Vec<Vec<usize>> {
        // The first of duplicate ids wins (a document being edited may have them).
        let mut index = std::collections::HashMap::new();
        for (i, s) in self.steps.iter().enumerate() {
            index.entry(s.id.as_str()).or_insert(i);
        }
        self.steps
            .iter()
            .map(|s| {
                s.needs
                    .iter()
                    .filter_map(|n| index.get(n.as_str()).copied())
                    .collect()
            })
            .collect()
    }
}

/// One step: an agent invocation with its configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepDef {
    /// Its id: unique in the workflow; `steps.<id>` in templates.
    pub id: String,
    /// Display name in the builder and monitor; the id when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Its agent kind (`http`, `llm`, `transform`, …).
    pub agent: String,
    /// Steps that must end first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub needs: Vec<String>,
    /// Runs the step only when this expression holds: minijinja, without braces, over
    /// `inputs`, `steps.<id>.{output,status,error}` and `run`, with the status functions
    /// `success()`, `failure()`, `always()` and `cancelled()`. Absent: `success()`.
    #[serde(default, rename = "if", skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// Runs the step once per item of this list: a bounded minijinja expression (no braces)
    /// over `inputs`, `steps` and `run`. Templates read `item` and `index`; `transform` reads
    /// `.item` and `.index`. The output is the list of item outputs, in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_each: Option<String>,
    /// Items of a `for_each` at once (default: the worker's step slots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    /// Agent configuration; string values may be `{{ … }}` templates.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub with: Map<String, Value>,
    /// Attempts after a failure; one attempt when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryDef>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "duration_text"
    )]
    /// Time limit of one attempt (its render and its agent), e.g. `30s`.
    pub timeout: Option<String>,
    /// A failure here does not fail the run: the step ends `failed` (after its retries) and
    /// the steps that need it run, seeing its status.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub continue_on_error: bool,
}

/// Retry policy of a step: exponential backoff with jitter, capped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryDef {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "duration_text"
    )]
    /// Wait before the second attempt, doubled each time after (e.g. `1s`).
    pub backoff: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "duration_text"
    )]
    /// The longest wait between attempts.
    pub max_backoff: Option<String>,
}

/// Reads a duration field as text, taking a bare number too, so `timeout: 30` reaches
/// validation and gets "has no unit; write e.g. 30s" rather than a type error.
fn duration_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(serde::de::Error::custom(format!(
            "expected a duration like 2s, found {}",
            crate::catalog::json_kind(&other)
        ))),
    }
}
