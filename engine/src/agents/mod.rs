//! The built-in agents (SPEC §3), one file each, behind one trait: a new agent is one new
//! file plus a line in [`Registry::builtin`] and its schema in [`crate::catalog`].
//!
//! The executor owns timeouts and cancellation: it drops an agent's future when the step
//! times out or the run is cancelled, which aborts HTTP requests, interrupts sleeps and
//! (with `kill_on_drop`) kills child processes. Agents only do their work.

mod delay;
pub mod egress;
mod http;
pub mod jq;
pub mod llm;
mod notify;
pub mod sandbox;
mod shell;
mod simulate;
mod timer;
mod transform;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use serde_json::Value;

/// Why an attempt failed: a low-cardinality `kind` (metrics label, `error.type`) and a sentence.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentError {
    /// The error's kind (`error.type`: `timeout`, `http_status`, …).
    pub kind: &'static str,
    /// The error, for people.
    pub message: String,
}

impl AgentError {
    /// An error of `kind`.
    pub fn new(kind: &'static str, message: impl Into<String>) -> Self {
        AgentError {
            kind,
            message: message.into(),
        }
    }

    /// A request that did not get an answer: `http_connect` when nothing listened.
    pub fn request(e: &reqwest::Error, message: impl Into<String>) -> Self {
        AgentError::new(
            if e.is_connect() {
                "http_connect"
            } else {
                "http_request"
            },
            message,
        )
    }

    /// The agent was given a `with` it cannot use (after templates were rendered).
    pub fn config(message: impl Into<String>) -> Self {
        AgentError::new("invalid_config", message)
    }
}

/// An error with its causes, `outer: inner: innermost`: reqwest's own text ("error sending
/// request") alone does not say what went wrong.
pub(crate) fn describe(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

/// What an agent may use besides its config.
#[derive(Clone)]
pub struct AgentContext {
    /// The run the step belongs to.
    pub run_id: String,
    /// The step.
    pub step_id: String,
    /// The attempt's number, from 1.
    pub attempt: i64,
    /// The data `transform` evaluates over: `{inputs, steps: {<id>: {output}}}`.
    pub data: Arc<Value>,
    /// The shared HTTP client (its egress policy applied).
    pub http: reqwest::Client,
    logs: Arc<Mutex<Log>>,
    /// Secret values, kept out of what agents put in spans (URLs, error messages).
    secrets: Arc<crate::secrets::SecretSet>,
}

impl AgentContext {
    /// The context of one attempt (no secrets: see `with_secrets`).
    pub fn new(
        run_id: String,
        step_id: String,
        attempt: i64,
        data: Arc<Value>,
        http: reqwest::Client,
    ) -> Self {
        AgentContext {
            run_id,
            step_id,
            attempt,
            data,
            http,
            logs: Arc::default(),
            secrets: Arc::default(),
        }
    }

    pub(crate) fn with_secrets(mut self, secrets: Arc<crate::secrets::SecretSet>) -> Self {
        self.secrets = secrets;
        self
    }

    /// `text` with every secret value replaced by `***`.
    pub(crate) fn redact(&self, text: &str) -> String {
        crate::render::redact_text(text, &self.secrets.values)
    }

    /// Appends a line to this attempt's log (shown in the run page), within the log's
    /// bounds ([`MAX_LOG_BYTES`], [`MAX_LOG_LINE_BYTES`] a line).
    pub fn log(&self, line: impl Into<String>) {
        if let Ok(mut logs) = self.logs.lock() {
            logs.push(line.into());
        }
    }

    /// The lines logged so far; a last line says how many were not kept.
    pub fn take_logs(&self) -> Vec<String> {
        self.logs
            .lock()
            .map(|mut l| std::mem::take(&mut *l).into_lines())
            .unwrap_or_default()
    }
}

/// Bytes of log one attempt keeps: every attempt's logs are stored and read with its run,
/// so an agent that logs in a loop (or a huge rendered argument) cannot grow them unbounded.
pub const MAX_LOG_BYTES: usize = 64 * 1024;
/// Bytes of one log line kept; the rest is cut with a note.
pub const MAX_LOG_LINE_BYTES: usize = 4 * 1024;

/// One attempt's log lines, bounded.
#[derive(Default)]
struct Log {
    lines: Vec<String>,
    bytes: usize,
    dropped: usize,
}

impl Log {
    fn push(&mut self, mut line: String) {
        if line.len() > MAX_LOG_LINE_BYTES {
            let total = line.len();
            line.truncate(line.floor_char_boundary(MAX_LOG_LINE_BYTES));
            line.push_str(&format!(" … ({total} bytes in all)"));
        }
        if self.bytes + line.len() > MAX_LOG_BYTES {
            self.dropped += 1;
            return;
        }
        self.bytes += line.len();
        self.lines.push(line);
    }

    fn into_lines(mut self) -> Vec<String> {
        if self.dropped > 0 {
            self.lines.push(format!(
                "… {} more lines not kept (an attempt keeps {MAX_LOG_BYTES} bytes of log)",
                self.dropped
            ));
        }
        self.lines
    }
}

/// Sends `request` under an HTTP client span (`{method}`, SPEC §6) and passes the span on to
/// the server as `traceparent`, so the callee's spans join the run's trace.
pub(crate) async fn send_traced(
    ctx: &AgentContext,
    request: reqwest::RequestBuilder,
    method: &str,
    url: &str,
) -> Result<reqwest::Response, reqwest::Error> {
    use tracing::Instrument;
    // The semantic conventions' required attributes: who was called (a dashboard groups
    // calls by them without parsing URLs).
    let parsed = reqwest::Url::parse(url).ok();
    let host = parsed
        .as_ref()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default();
    let port = parsed
        .as_ref()
        .and_then(|u| u.port_or_known_default())
        .map_or(0, i64::from);
    let span = tracing::info_span!(
        "http.client",
        otel.name = method,
        otel.kind = "client",
        http.request.method = method,
        server.address = %ctx.redact(&host),
        server.port = port,
        url.full = %ctx.redact(&url_without_secrets(url)),
        http.response.status_code = tracing::field::Empty,
        error.type = tracing::field::Empty,
    );
    let request = match crate::telemetry::traceparent(&span) {
        Some(tp) => request.header("traceparent", tp),
        None => request,
    };
    let result = request.send().instrument(span.clone()).await;
    match &result {
        Ok(response) => {
            let status = response.status();
            span.record("http.response.status_code", i64::from(status.as_u16()));
            if status.is_client_error() || status.is_server_error() {
                let code = status.as_u16().to_string();
                crate::telemetry::record_outcome(&span, Some((&code, "error status")));
            }
        }
        Err(e) => {
            let kind = if e.is_connect() {
                "http_connect"
            } else {
                "http_request"
            };
            crate::telemetry::record_outcome(&span, Some((kind, &ctx.redact(&e.to_string()))));
        }
    }
    result
}

/// Reads a response body up to `max` bytes, chunk by chunk: a larger body is never held.
/// The flag says whether it was cut.
pub(crate) async fn read_capped(
    mut response: reqwest::Response,
    max: usize,
) -> Result<(Vec<u8>, bool), AgentError> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| AgentError::new("http_body", describe(&e)))?
    {
        let room = max - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            return Ok((body, true));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, false))
}

/// `url.full` without credentials or query values, which may hold rendered secrets.
fn url_without_secrets(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            if u.query().is_some() {
                let keys: Vec<String> = u
                    .query_pairs()
                    .map(|(k, _)| format!("{k}=REDACTED"))
                    .collect();
                u.set_query(Some(&keys.join("&")));
            }
            u.to_string()
        }
        Err(_) => String::new(),
    }
}

/// What an agent's `run` returns: its output, or an error.
pub type AgentFuture<'a> = Pin<Box<dyn Future<Output = Result<Value, AgentError>> + Send + 'a>>;

/// One kind of step.
pub trait Agent: Send + Sync {
    /// Runs one attempt with the rendered config.
    fn run<'a>(
        &'a self,
        ctx: &'a AgentContext,
        with: &'a serde_json::Map<String, Value>,
    ) -> AgentFuture<'a>;
}

/// Server settings that agents depend on.
#[derive(Debug, Clone)]
pub struct AgentSettings {
    /// Per-model prices for the `llm` agent's cost.
    pub llm_prices: HashMap<String, llm::Price>,
    /// `shell` runs programs on the server: off unless an operator turns it on.
    pub shell_enabled: bool,
    /// The server's environment variables a `shell` child inherits.
    pub shell_inherit_env: Vec<String>,
    /// Where every agent's requests may go (see [`egress`]).
    pub egress: egress::Policy,
    /// The program that evaluates jq in a child process (see [`sandbox`]).
    pub sandbox: sandbox::SandboxCommand,
    /// What one jq evaluation may use.
    pub sandbox_limits: sandbox::Limits,
}

impl Default for AgentSettings {
    fn default() -> Self {
        AgentSettings {
            llm_prices: HashMap::new(),
            shell_enabled: false,
            shell_inherit_env: vec!["PATH".into(), "HOME".into(), "LANG".into()],
            egress: egress::Policy::default(),
            sandbox: sandbox::SandboxCommand::this_executable(),
            sandbox_limits: sandbox::Limits::default(),
        }
    }
}

/// The agents available to the executor, by kind.
#[derive(Clone)]
pub struct Registry {
    agents: HashMap<&'static str, Arc<dyn Agent>>,
    /// The child processes that evaluate jq (`transform`) and unbounded templates.
    sandbox: Arc<sandbox::Sandbox>,
}

impl Registry {
    /// Every built-in agent; `shell` only when `settings.shell_enabled`.
    pub fn builtin(settings: &AgentSettings) -> Registry {
        let mut agents: HashMap<&'static str, Arc<dyn Agent>> = HashMap::new();
        agents.insert("simulate", Arc::new(simulate::Simulate));
        let slots = std::thread::available_parallelism().map_or(2, |n| n.get().max(2));
        let sandbox = Arc::new(sandbox::Sandbox::new(
            settings.sandbox.clone(),
            settings.sandbox_limits,
            slots,
        ));
        agents.insert(
            "transform",
            Arc::new(transform::Transform {
                sandbox: sandbox.clone(),
            }),
        );
        agents.insert("delay", Arc::new(delay::Delay));
        let egress = Arc::new(settings.egress.clone());
        agents.insert(
            "http",
            Arc::new(http::Http {
                egress: egress.clone(),
            }),
        );
        agents.insert(
            "notify",
            Arc::new(notify::Notify {
                egress: egress.clone(),
            }),
        );
        agents.insert(
            "llm",
            Arc::new(llm::Llm {
                prices: settings.llm_prices.clone(),
                egress,
            }),
        );
        if settings.shell_enabled {
            agents.insert(
                "shell",
                Arc::new(shell::Shell {
                    inherit_env: settings.shell_inherit_env.clone(),
                }),
            );
        }
        Registry { agents, sandbox }
    }

    /// The sandbox that renders templates [`crate::render::is_bounded`] cannot vouch for.
    pub fn sandbox(&self) -> &Arc<sandbox::Sandbox> {
        &self.sandbox
    }

    /// The agent of `kind`, when it is enabled.
    pub fn get(&self, kind: &str) -> Option<&Arc<dyn Agent>> {
        self.agents.get(kind)
    }

    /// The kinds this process can run, sorted.
    pub fn kinds(&self) -> Vec<&'static str> {
        let mut kinds: Vec<&'static str> = self.agents.keys().copied().collect();
        kinds.sort_unstable();
        kinds
    }
}

/// Every error kind the built-in agents and the executor report: a result that comes back
/// from another process names its kind as text, and metrics and spans want a `&'static str`.
pub const ERROR_KINDS: &[&str] = &[
    "agent_disabled",
    "cancelled",
    "crash_loop",
    "exit_status",
    "http_body",
    "http_connect",
    "http_refused",
    "http_request",
    "http_status",
    "interrupted",
    "invalid_config",
    "jq_compile",
    "jq_runtime",
    "limit_crash",
    "limit_depth",
    "limit_memory",
    "limit_output",
    "limit_outputs",
    "limit_stack",
    "limit_time",
    "limit_work",
    "llm_response",
    "llm_status",
    "secret_missing",
    "shutdown",
    "simulated",
    "spawn",
    "template",
    "timeout",
];

/// The static name of an error kind read back as text; unknown kinds become `agent_error`.
pub fn error_kind(kind: &str) -> &'static str {
    ERROR_KINDS
        .iter()
        .find(|k| **k == kind)
        .copied()
        .unwrap_or("agent_error")
}

/// Reads an optional duration setting (`"250ms"`).
fn duration_field(
    with: &serde_json::Map<String, Value>,
    key: &str,
) -> Result<Option<std::time::Duration>, AgentError> {
    match with.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => crate::model::parse_duration(s)
            .map(Some)
            .map_err(|e| AgentError::config(format!("{key}: {e}"))),
        Some(other) => Err(AgentError::config(format!(
            "{key}: expected a duration, found {other}"
        ))),
    }
}

/// Reads a required string setting.
fn string_field<'a>(
    with: &'a serde_json::Map<String, Value>,
    key: &str,
) -> Result<&'a str, AgentError> {
    with.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| AgentError::config(format!("{key}: a string is required")))
}

/// Reads an optional number, accepting numeric strings (rendered templates are strings).
fn number_field(
    with: &serde_json::Map<String, Value>,
    key: &str,
) -> Result<Option<f64>, AgentError> {
    match with.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(Value::String(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| AgentError::config(format!("{key}: \"{s}\" is not a number"))),
        Some(other) => Err(AgentError::config(format!(
            "{key}: expected a number, found {other}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_attempt_log_keeps_its_bounds_and_says_what_it_dropped() {
        let mut log = Log::default();
        log.push("é".repeat(MAX_LOG_LINE_BYTES));
        for i in 0..10_000 {
            log.push(format!("line {i} {}", "x".repeat(100)));
        }
        let lines = log.into_lines();
        let first = &lines[0];
        assert!(first.len() < MAX_LOG_LINE_BYTES + 64, "{}", first.len());
        assert!(first.ends_with(&format!("({} bytes in all)", 2 * MAX_LOG_LINE_BYTES)));
        let kept: usize = lines[..lines.len() - 1].iter().map(String::len).sum();
        assert!(kept <= MAX_LOG_BYTES, "{kept}");
        let last = lines.last().expect("a last line");
        let dropped = 10_000 - (lines.len() - 2);
        assert!(
            last.starts_with(&format!("… {dropped} more lines not kept")),
            "{last}"
        );
    }
}
