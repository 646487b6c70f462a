//! The built-in agents (SPEC §3): their names and the schema of their `with` config.
//!
//! One table serves three readers: the validator checks every step against it before anything
//! is saved, the builder generates each step's form from it, and the engine's agents read the
//! same field names. A field whose string value contains `{{` is a template and is type-checked
//! only when rendered at run time.

use serde::Serialize;
use serde_json::Value;

/// The type a config field accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "type", content = "options")]
pub enum FieldType {
    /// One line of text.
    String,
    /// Multi-line text (prompts, jq programs, message bodies).
    Text,
    /// A whole number.
    Integer,
    /// Any number.
    Number,
    /// `true` or `false`.
    Boolean,
    /// A duration such as `250ms`, `2s`, `1h30m`.
    Duration,
    /// One of a fixed set of strings.
    Enum(&'static [&'static str]),
    /// A map of string to string (headers, env).
    StringMap,
    /// A list of strings (args).
    StringList,
    /// Any JSON value (request bodies, explicit outputs).
    Json,
}

impl FieldType {
    /// A short description for error messages, e.g. "a duration like 2s".
    pub fn describe(self) -> String {
        match self {
            FieldType::String | FieldType::Text => "a string".into(),
            FieldType::Integer => "an integer".into(),
            FieldType::Number => "a number".into(),
            FieldType::Boolean => "true or false".into(),
            FieldType::Duration => "a duration like 500ms, 2s or 1h30m".into(),
            FieldType::Enum(options) => format!("one of {}", options.join(", ")),
            FieldType::StringMap => "a map of names to strings".into(),
            FieldType::StringList => "a list of strings".into(),
            FieldType::Json => "any JSON value".into(),
        }
    }
}

/// One key of an agent's `with`.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct FieldSpec {
    /// The key under `with`.
    pub name: &'static str,
    /// The value's type.
    #[serde(flatten)]
    pub ty: FieldType,
    /// Whether a step must give it.
    pub required: bool,
    /// Shown under the field in the builder.
    pub help: &'static str,
}

/// A built-in agent kind.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct AgentSpec {
    /// The agent's name in a step's `agent:`.
    pub kind: &'static str,
    /// One line on what it does.
    pub summary: &'static str,
    /// Its `with` fields.
    pub fields: &'static [FieldSpec],
    /// Groups of fields of which exactly one must be set (e.g. `prompt` or `messages`).
    pub one_of: &'static [&'static [&'static str]],
}

const fn field(name: &'static str, ty: FieldType, required: bool, help: &'static str) -> FieldSpec {
    FieldSpec {
        name,
        ty,
        required,
        help,
    }
}

const HTTP_METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"];
/// Roles that may decide an approval, lowest first (see `access::Role`).
pub const APPROVER_ROLES: &[&str] = &["viewer", "operator", "editor", "admin"];
const ON_TIMEOUT: &[&str] = &["reject", "approve"];
const DISTRIBUTIONS: &[&str] = &["fixed", "uniform", "exponential", "lognormal"];

/// Every built-in agent, in the order the builder offers them.
pub const AGENTS: &[AgentSpec] = &[
    AgentSpec {
        kind: "http",
        summary: "Make an HTTP request; output {status, headers, body}",
        fields: &[
            field(
                "method",
                FieldType::Enum(HTTP_METHODS),
                false,
                "HTTP method (default GET)",
            ),
            field("url", FieldType::String, true, "Absolute http(s) URL"),
            field("headers", FieldType::StringMap, false, "Request headers"),
            field("json", FieldType::Json, false, "JSON request body"),
            field("body", FieldType::Text, false, "Raw request body"),
            field(
                "expected_status",
                FieldType::Json,
                false,
                "Status code or list of codes counted as success (default 2xx)",
            ),
        ],
        one_of: &[],
    },
    AgentSpec {
        kind: "transform",
        summary: "Evaluate a jq expression over {inputs, steps}",
        fields: &[field(
            "jq",
            FieldType::Text,
            true,
            "jq program, e.g. .steps.fetch.output.body.items | length",
        )],
        one_of: &[],
    },
    AgentSpec {
        kind: "delay",
        summary: "Wait for a duration",
        fields: &[field(
            "duration",
            FieldType::Duration,
            true,
            "How long to wait, e.g. 5s",
        )],
        one_of: &[],
    },
    AgentSpec {
        kind: "approval",
        summary:
            "Wait for a person to approve or reject; output {approved, by, at, comment, fields}",
        fields: &[
            field(
                "prompt",
                FieldType::Text,
                true,
                "What the person decides, shown on the run page",
            ),
            field(
                "role",
                FieldType::Enum(APPROVER_ROLES),
                false,
                "Who may decide: this role or above (default operator)",
            ),
            field(
                "fields",
                FieldType::Json,
                false,
                "Values the person fills in, declared like inputs: {name: {type: string}}",
            ),
            field(
                "timeout",
                FieldType::Duration,
                false,
                "How long to wait for a decision (default: for ever)",
            ),
            field(
                "on_timeout",
                FieldType::Enum(ON_TIMEOUT),
                false,
                "The decision when nobody decided in time (default reject)",
            ),
        ],
        one_of: &[],
    },
    AgentSpec {
        kind: "wait",
        summary: "Wait for an event posted to /api/v1/events/{key}; output: its payload",
        fields: &[
            field(
                "event",
                FieldType::String,
                true,
                "The event's key, e.g. order-{{ inputs.id }}",
            ),
            field(
                "timeout",
                FieldType::Duration,
                false,
                "How long to wait before the step fails (default: for ever)",
            ),
        ],
        one_of: &[],
    },
    AgentSpec {
        kind: "workflow",
        summary: "Run another workflow and wait for it; output: its run's outputs",
        fields: &[
            field(
                "workflow",
                FieldType::String,
                true,
                "The id of the workflow to run (not a template: calls are checked on save)",
            ),
            field(
                "version",
                FieldType::Integer,
                false,
                "The version to run (default: its latest when the step starts)",
            ),
            field(
                "inputs",
                FieldType::Json,
                false,
                "Its inputs, e.g. {id: \"{{ item.id }}\"}; checked like a trigger's",
            ),
        ],
        one_of: &[],
    },
    AgentSpec {
        kind: "notify",
        summary: "Post a message to a Slack-compatible incoming webhook",
        fields: &[
            field(
                "webhook_url",
                FieldType::String,
                true,
                "Incoming-webhook URL, usually {{ secrets.NAME }}",
            ),
            field("text", FieldType::Text, true, "Message text"),
            field("blocks", FieldType::Json, false, "Slack Block Kit blocks"),
        ],
        one_of: &[],
    },
    AgentSpec {
        kind: "llm",
        summary: "OpenAI-compatible chat completion; records tokens and cost",
        fields: &[
            field(
                "base_url",
                FieldType::String,
                true,
                "API base URL, e.g. https://api.openai.com/v1",
            ),
            field("model", FieldType::String, true, "Model name"),
            field(
                "api_key",
                FieldType::String,
                false,
                "API key, usually {{ secrets.NAME }}",
            ),
            field("system", FieldType::Text, false, "System prompt"),
            field("prompt", FieldType::Text, false, "User prompt"),
            field(
                "messages",
                FieldType::Json,
                false,
                "Full chat messages list",
            ),
            field(
                "temperature",
                FieldType::Number,
                false,
                "Sampling temperature",
            ),
            field(
                "max_tokens",
                FieldType::Integer,
                false,
                "Completion token limit",
            ),
        ],
        one_of: &[&["prompt", "messages"]],
    },
    AgentSpec {
        kind: "simulate",
        summary:
            "Sleep a random latency, fail with a probability, emit output (demos and load tests)",
        fields: &[
            field(
                "latency",
                FieldType::Duration,
                false,
                "Mean latency (default 0ms)",
            ),
            field(
                "distribution",
                FieldType::Enum(DISTRIBUTIONS),
                false,
                "Latency distribution (default fixed)",
            ),
            field(
                "failure_rate",
                FieldType::Number,
                false,
                "Probability of failure, 0 to 1",
            ),
            field(
                "output_bytes",
                FieldType::Integer,
                false,
                "Size of a generated output string",
            ),
            field("output", FieldType::Json, false, "Explicit output value"),
        ],
        one_of: &[],
    },
    AgentSpec {
        kind: "shell",
        summary: "Run a program with arguments (disabled unless enabled in config)",
        fields: &[
            field("program", FieldType::String, true, "Program path or name"),
            field(
                "args",
                FieldType::StringList,
                false,
                "Argument vector (no shell interpolation)",
            ),
            field("env", FieldType::StringMap, false, "Environment variables"),
        ],
        one_of: &[],
    },
];

/// Looks up an agent by its kind.
pub fn agent(kind: &str) -> Option<&'static AgentSpec> {
    AGENTS.iter().find(|a| a.kind == kind)
}

/// Whether a value is a template string, rendered (and checked) at run time.
pub fn is_template(value: &Value) -> bool {
    value.as_str().is_some_and(|s| s.contains("{{"))
}

/// Checks a concrete (non-template) value against a field type; `Err` says what was expected.
pub fn check_value(ty: FieldType, value: &Value) -> Result<(), String> {
    if is_template(value) {
        return Ok(());
    }
    let ok = match ty {
        FieldType::String | FieldType::Text => value.is_string(),
        FieldType::Integer => value.is_i64() || value.is_u64(),
        FieldType::Number => value.is_number(),
        FieldType::Boolean => value.is_boolean(),
        FieldType::Duration => match value.as_str() {
            Some(s) => return crate::model::parse_duration(s).map(|_| ()),
            None => false,
        },
        FieldType::Enum(options) => value.as_str().is_some_and(|s| options.contains(&s)),
        FieldType::StringMap => value
            .as_object()
            .is_some_and(|m| m.values().all(|v| v.is_string())),
        FieldType::StringList => value
            .as_array()
            .is_some_and(|a| a.iter().all(|v| v.is_string())),
        FieldType::Json => true,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "expected {}, found {}",
            ty.describe(),
            json_kind(value)
        ))
    }
}

/// "a string", "an object", … for messages.
pub fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}
