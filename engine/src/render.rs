//! Renders a step's `with` against `{inputs, steps, run, secrets}` with minijinja, and
//! redacts secret values from anything that will be stored.
//!
//! A string that is exactly one `{{ expression }}` keeps the expression's type
//! (`'{{ inputs.batch }}'` stays an integer); any other string renders to text.
//!
//! Templates are user code, so every render is bounded: [`FUEL`] instructions per string
//! (minijinja's `fuel`: loops end), a recursion limit of [`RECURSION`] (macros), and
//! [`MAX_RENDERED`] bytes of output per string. Past a limit the step fails with
//! `error.type` `limit_work` or `limit_output`; the process is not touched.
//!
//! Fuel counts instructions, not bytes: one `'x' * 100000000` is a single instruction, and a
//! few `{% set s = s ~ s %}` double it past any memory. So only templates that cannot grow
//! past a constant times their data ([`is_bounded`]: lookups, comparisons and a list of
//! filters that do not amplify) render in the server's process; any other is rendered by the
//! sandbox's child process ([`crate::agents::sandbox`]), under its memory and time limits.

use std::sync::OnceLock;

pub use crate::model::{is_bounded, BOUNDED_FILTERS};

use minijinja::{Environment, UndefinedBehavior};
use serde_json::{Map, Value};

/// Instructions one string's template may execute.
pub const FUEL: u64 = 20_000;
/// Nested macro calls a template may make (minijinja allows 500; each takes stack).
pub const RECURSION: usize = 64;
/// Bytes one rendered string may hold.
pub const MAX_RENDERED: usize = 1 << 20;

fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        // A typo in a reference fails the step with a message instead of rendering "".
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_fuel(Some(FUEL));
        env.set_recursion_limit(RECURSION);
        env
    })
}

/// Why a template could not be rendered: a low-cardinality kind (`template`, `limit_work`,
/// `limit_output`) and a sentence.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderError {
    /// The error's kind (`error.type`: `template`, `limit_*`).
    pub kind: &'static str,
    /// The error, for people.
    pub message: String,
}

impl RenderError {
    fn template(message: impl Into<String>) -> Self {
        RenderError {
            kind: "template",
            message: message.into(),
        }
    }
}

impl std::fmt::Display for RenderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// A writer that refuses to grow past [`MAX_RENDERED`] bytes.
struct Capped(Vec<u8>);

impl std::io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.0.len() + buf.len() > MAX_RENDERED {
            return Err(std::io::Error::other("too large"));
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn too_large() -> RenderError {
    RenderError {
        kind: "limit_output",
        message: format!("the rendered text is larger than {MAX_RENDERED} bytes"),
    }
}

/// What a condition's status functions answer for one step.
#[derive(Debug, Clone, Copy, Default)]
pub struct StatusFunctions {
    /// Every step it needs succeeded (or failed with `continue_on_error`).
    pub success: bool,
    /// A step above it failed the run.
    pub failure: bool,
    /// Whether the run is being cancelled (`cancelled()`).
    pub cancelled: bool,
}

fn condition_env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        // A step that was skipped or failed has no output: `steps.x.output.ok` is then false,
        // not an error. Names are checked when the workflow is validated.
        env.set_undefined_behavior(UndefinedBehavior::Chainable);
        env.set_fuel(Some(FUEL));
        env.set_recursion_limit(RECURSION);
        env
    })
}

/// Whether a step's `if:` holds, over `ctx` (`inputs`, `steps`, `run`). Validation admitted
/// only bounded expressions; an error (a type mismatch, say) fails the step, kind `condition`.
pub fn condition(
    expr: &str,
    ctx: &minijinja::Value,
    status: StatusFunctions,
) -> Result<bool, RenderError> {
    let failed = |e: minijinja::Error| RenderError {
        kind: "condition",
        message: format!("if: {}", describe(e).message),
    };
    if let Some(d) = crate::model::template::expression_delimiter(expr) {
        return Err(RenderError {
            kind: "condition",
            message: format!("if: an expression cannot contain {d}"),
        });
    }
    let compiled = condition_env().compile_expression(expr).map_err(failed)?;
    let StatusFunctions {
        success,
        failure,
        cancelled,
    } = status;
    let ctx = minijinja::context! {
        success => minijinja::Value::from_function(move || success),
        failure => minijinja::Value::from_function(move || failure),
        always => minijinja::Value::from_function(|| true),
        cancelled => minijinja::Value::from_function(move || cancelled),
        ..ctx.clone()
    };
    compiled.eval(ctx).map(|v| v.is_true()).map_err(failed)
}

/// Items of one `for_each` at most: each is recorded, and a run holds its outputs.
pub const MAX_ITEMS: usize = 100_000;

/// The list a `for_each` runs over, evaluated over `ctx` (without secrets). Anything but a
/// list (or more than [`MAX_ITEMS`]) fails the step, kind `for_each`.
pub fn item_list(expr: &str, ctx: &minijinja::Value) -> Result<Vec<Value>, RenderError> {
    let failed = |message: String| RenderError {
        kind: "for_each",
        message: format!("for_each: {message}"),
    };
    if let Some(d) = crate::model::template::expression_delimiter(expr) {
        return Err(failed(format!("an expression cannot contain {d}")));
    }
    let compiled = condition_env()
        .compile_expression(expr)
        .map_err(|e| failed(describe(e).message))?;
    let value = compiled
        .eval(ctx.clone())
        .map_err(|e| failed(describe(e).message))?;
    if value.kind() != minijinja::value::ValueKind::Seq {
        let kind = if value.is_undefined() {
            "undefined".to_string()
        } else {
            value.kind().to_string()
        };
        return Err(failed(format!("{expr} is {kind}, not a list")));
    }
    let len = value.len().unwrap_or(0);
    if len > MAX_ITEMS {
        return Err(failed(format!(
            "{expr} has {len} items; a step runs over {MAX_ITEMS} at most"
        )));
    }
    match serde_json::to_value(&value) {
        Ok(Value::Array(items)) => Ok(items),
        Ok(_) => Err(failed(format!("{expr} is not a list"))),
        Err(e) => Err(failed(format!("{expr} cannot be read as JSON: {e}"))),
    }
}

/// Renders every string in `with`; the error names the field.
pub fn render(
    with: &Map<String, Value>,
    ctx: &minijinja::Value,
) -> Result<Map<String, Value>, RenderError> {
    with.iter()
        .map(|(k, v)| {
            render_value(v, ctx)
                .map(|v| (k.clone(), v))
                .map_err(|e| RenderError {
                    kind: e.kind,
                    message: format!("with.{k}: {}", e.message),
                })
        })
        .collect()
}

fn render_value(value: &Value, ctx: &minijinja::Value) -> Result<Value, RenderError> {
    match value {
        Value::String(s) if s.contains("{{") || s.contains("{%") => render_string(s, ctx),
        Value::Array(items) => items
            .iter()
            .map(|v| render_value(v, ctx))
            .collect::<Result<_, _>>()
            .map(Value::Array),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| render_value(v, ctx).map(|v| (k.clone(), v)))
            .collect::<Result<_, _>>()
            .map(Value::Object),
        other => Ok(other.clone()),
    }
}

fn render_string(text: &str, ctx: &minijinja::Value) -> Result<Value, RenderError> {
    let trimmed = text.trim();
    if let Some(inner) = trimmed
        .strip_prefix("{{")
        .and_then(|t| t.strip_suffix("}}"))
    {
        if crate::model::template::expression_delimiter(inner).is_none() && !text.contains("{%") {
            let expr = env().compile_expression(inner).map_err(describe)?;
            let value = expr.eval(ctx).map_err(describe)?;
            // Strict mode lets a missing last key through as undefined; a typo must fail the step.
            if value.is_undefined() {
                return Err(RenderError::template(format!(
                    "undefined value: {} does not exist",
                    inner.trim()
                )));
            }
            let value =
                serde_json::to_value(&value).map_err(|e| RenderError::template(e.to_string()))?;
            let size = serde_json::to_vec(&value).map_or(0, |b| b.len());
            return if size > MAX_RENDERED {
                Err(too_large())
            } else {
                Ok(value)
            };
        }
    }
    let template = env().template_from_str(text).map_err(describe)?;
    let mut out = Capped(Vec::new());
    match template.render_captured_to(ctx, &mut out) {
        Ok(_) => Ok(Value::String(String::from_utf8_lossy(&out.0).into_owned())),
        Err(e) if e.kind() == minijinja::ErrorKind::WriteFailure => Err(too_large()),
        Err(e) => Err(describe(e)),
    }
}

/// Whether every template in `value` (a step's `with`) is [`bounded`](is_bounded).
pub fn all_bounded(value: &Value) -> bool {
    match value {
        Value::String(s) if s.contains("{{") || s.contains("{%") => is_bounded(s),
        Value::Array(items) => items.iter().all(all_bounded),
        Value::Object(map) => map.values().all(all_bounded),
        _ => true,
    }
}

fn describe(e: minijinja::Error) -> RenderError {
    let message = match e.detail() {
        Some(detail) => format!("{}: {detail}", e.kind()),
        None => e.to_string(),
    };
    if e.kind() == minijinja::ErrorKind::OutOfFuel {
        RenderError {
            kind: "limit_work",
            message: format!("the template did more than {FUEL} steps of work: {message}"),
        }
    } else {
        RenderError::template(message)
    }
}

/// A secret and the encodings of it that agents and libraries write: percent-encoded (URLs,
/// error texts that quote them), form-encoded, JSON-escaped, and base64 (standard and
/// URL-safe, at each of the three alignments it can have inside a longer text, such as
/// `Basic user:secret`). Redaction looks for all of them.
pub fn secret_forms(secret: &str) -> Vec<String> {
    let mut forms = vec![secret.to_string()];
    let mut push = |f: String| {
        if !f.is_empty() && !forms.contains(&f) {
            forms.push(f);
        }
    };
    let percent = |plus: bool, lower: bool| {
        let mut out = String::new();
        for b in secret.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    out.push(b as char)
                }
                b' ' if plus => out.push('+'),
                b if lower => out.push_str(&format!("%{b:02x}")),
                b => out.push_str(&format!("%{b:02X}")),
            }
        }
        out
    };
    // As the URL parser writes it in a query and in a path (only some characters escaped):
    // what reqwest's error texts quote.
    if let Ok(mut u) = reqwest::Url::parse("http://h/") {
        u.set_query(Some(secret));
        if let Some(q) = u.query() {
            push(q.to_string());
        }
        u.set_query(None);
        u.set_path(secret);
        push(u.path().trim_start_matches('/').to_string());
    }
    push(percent(false, false));
    push(percent(false, true));
    push(percent(true, false));
    if let Ok(json) = serde_json::to_string(secret) {
        push(json[1..json.len() - 1].to_string());
    }
    // Base64 cores: the characters that depend on the secret's bytes alone. Short cores
    // would match ordinary text, so only secrets of 6 bytes or more get them.
    if secret.len() >= 6 {
        for url_safe in [false, true] {
            for lead in 0..3usize {
                let mut bytes = vec![0u8; lead];
                bytes.extend_from_slice(secret.as_bytes());
                let encoded = base64(&bytes, url_safe);
                let start = (lead * 8).div_ceil(6);
                let end = (lead + secret.len()) * 8 / 6;
                if let Some(core) = encoded.get(start..end) {
                    push(core.to_string());
                }
            }
        }
    }
    forms
}

fn base64(bytes: &[u8], url_safe: bool) -> String {
    let table: &[u8; 64] = if url_safe {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    } else {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    };
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(table[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// Replaces every occurrence of a secret value in `value` with `***`.
pub fn redact(value: &mut Value, secrets: &[String]) {
    if secrets.is_empty() {
        return;
    }
    match value {
        Value::String(s) => {
            for secret in secrets.iter().filter(|s| !s.is_empty()) {
                if s.contains(secret.as_str()) {
                    *s = s.replace(secret.as_str(), "***");
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| redact(v, secrets)),
        Value::Object(map) => map.values_mut().for_each(|v| redact(v, secrets)),
        _ => {}
    }
}

/// Replaces secret values in a text (error messages, log lines) and drops NUL bytes.
pub fn redact_text(text: &str, secrets: &[String]) -> String {
    // PostgreSQL refuses NUL bytes in text columns.
    let mut out = text.replace('\0', "");
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        out = out.replace(secret.as_str(), "***");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_time_expressions_with_delimiters_fail_their_step_without_a_panic() {
        let ctx = minijinja::Value::from_serialize(serde_json::json!({ "inputs": {} }));
        let status = StatusFunctions {
            success: true,
            failure: false,
            cancelled: false,
        };
        let e = condition(" }}t }}", &ctx, status).expect_err("refused");
        assert_eq!(e.kind, "condition");
        assert_eq!(
            item_list("a }} b", &ctx).expect_err("refused").kind,
            "for_each"
        );
        let mut with = Map::new();
        with.insert("t".into(), Value::String("{{ a %} b }}".into()));
        assert!(render(&with, &ctx).is_err());
    }

    #[test]
    fn encoded_secrets_are_redacted_too() {
        let secret = "s3cr/t+key value&more";
        let mut forms = secret_forms(secret);
        forms.extend(secret_forms("q\"uo\\te"));
        let texts = [
            format!(
                "GET https://api.example/?token={}",
                "s3cr%2Ft%2Bkey%20value%26more"
            ),
            "posted token=s3cr%2Ft%2Bkey+value%26more".to_string(),
            format!(
                "body: {}",
                serde_json::to_string(&json_escaped()).unwrap_or_default()
            ),
            format!(
                "{{\"t\": {}}}",
                serde_json::to_string("q\"uo\\te").unwrap_or_default()
            ),
            // `Authorization: Basic base64("user:" + secret)`.
            format!(
                "Basic {}",
                base64(format!("user:{secret}").as_bytes(), false)
            ),
            format!("Basic {}", base64(format!("ab:{secret}").as_bytes(), false)),
            format!("Basic {}", base64(format!("a:{secret}").as_bytes(), true)),
            // As a URL quotes it: the space escaped, `/`, `+` and `&` not.
            "error sending request for url (http://h/x?k=s3cr/t+key%20value&more)".to_string(),
        ];
        for text in &texts {
            let out = redact_text(text, &forms);
            assert!(out.contains("***"), "not redacted: {text} → {out}");
        }
        // Ordinary text is left alone.
        assert_eq!(redact_text("nothing to see", &forms), "nothing to see");

        fn json_escaped() -> String {
            "line \"quoted\" s3cr/t+key value&more".to_string()
        }
    }

    #[test]
    fn a_runaway_template_fails_with_its_limit() {
        let ctx = minijinja::context! {};
        let with = |t: &str| {
            let mut m = Map::new();
            m.insert("text".into(), Value::String(t.into()));
            m
        };
        let e = render(
            &with("{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}"),
            &ctx,
        )
        .expect_err("fuel");
        assert_eq!(e.kind, "limit_work");
        let e = render(
            &with("{% for i in range(50) %}{{ 'x' * 100000 }}{% endfor %}"),
            &ctx,
        )
        .expect_err("size");
        assert_eq!(e.kind, "limit_output");
        let e = render(
            &with("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}"),
            &ctx,
        )
        .expect_err("recursion");
        assert_eq!(e.kind, "template", "{}", e.message);
        let ok = render(&with("{{ 'a' ~ 'b' }}"), &ctx).expect("renders");
        assert_eq!(ok["text"], "ab");
    }

    #[test]
    fn only_templates_that_cannot_amplify_are_bounded() {
        for t in [
            "plain {{ inputs.who }}!",
            "{{ steps['a-b'].output.items[0].id | upper }}",
            "{{ inputs.n > 3 and not inputs.dry_run }}",
            "{{ inputs.x | default('none') | tojson }}",
            "{{ 'yes' if steps.check.output else 'no' }}",
            "{{ inputs.items | length }} items, {{ secrets.TOKEN }}",
            "{{ inputs.name is defined }}",
            "{{ broken",
        ] {
            assert!(is_bounded(t), "{t}");
        }
        for t in [
            "{{ 'x' * 100000000 }}",
            "{{ inputs.a ~ inputs.a }}",
            "{{ inputs.a + inputs.a }}",
            "{% set s = 'x' %}{{ s }}",
            "{% for i in inputs.items %}{{ i }}{% endfor %}",
            "{{ range(10) }}",
            "{{ [inputs.a, inputs.a] | tojson }}",
            "{{ inputs.a | replace('a', inputs.a) }}",
            "{{ inputs.list | join(inputs.a) }}",
            "{{ inputs.a | default(inputs.a ~ inputs.a) }}",
            "{% macro f() %}{% endmacro %}",
        ] {
            assert!(!is_bounded(t), "{t}");
        }
        assert!(all_bounded(
            &serde_json::json!({"a": ["{{ x }}", {"b": "{{ y | lower }}"}], "n": 3})
        ));
        assert!(!all_bounded(
            &serde_json::json!({"a": ["{{ x }}", {"b": "{{ y * 2 }}"}]})
        ));
    }
}
