//! Renders a step's `with` against `{inputs, steps, run, secrets}` with minijinja, and
//! redacts secret values from anything that will be stored.
//!
//! A string that is exactly one `{{ expression }}` keeps the expression's type
//! (`'{{ inputs.batch }}'` stays an integer); any other string renders to text.

use std::sync::OnceLock;

use minijinja::{Environment, UndefinedBehavior};
use serde_json::{Map, Value};

fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        // A typo in a reference fails the step with a message instead of rendering "".
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env
    })
}

/// Renders every string in `with`; the error names the field.
pub fn render(
    with: &Map<String, Value>,
    ctx: &minijinja::Value,
) -> Result<Map<String, Value>, String> {
    with.iter()
        .map(|(k, v)| {
            render_value(v, ctx)
                .map(|v| (k.clone(), v))
                .map_err(|e| format!("with.{k}: {e}"))
        })
        .collect()
}

fn render_value(value: &Value, ctx: &minijinja::Value) -> Result<Value, String> {
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

fn render_string(text: &str, ctx: &minijinja::Value) -> Result<Value, String> {
    let trimmed = text.trim();
    if let Some(inner) = trimmed
        .strip_prefix("{{")
        .and_then(|t| t.strip_suffix("}}"))
    {
        if !inner.contains("{{") && !inner.contains("}}") && !text.contains("{%") {
            let expr = env().compile_expression(inner).map_err(describe)?;
            let value = expr.eval(ctx).map_err(describe)?;
            // Strict mode lets a missing last key through as undefined; a typo must fail the step.
            if value.is_undefined() {
                return Err(format!("undefined value: {} does not exist", inner.trim()));
            }
            return serde_json::to_value(&value).map_err(|e| e.to_string());
        }
    }
    env()
        .render_str(text, ctx)
        .map(Value::String)
        .map_err(describe)
}

fn describe(e: minijinja::Error) -> String {
    match e.detail() {
        Some(detail) => format!("{}: {detail}", e.kind()),
        None => e.to_string(),
    }
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
