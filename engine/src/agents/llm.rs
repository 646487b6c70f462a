//! `llm`: an OpenAI-compatible chat completion (`POST {base_url}/chat/completions`).
//! Output `{content, model, usage: {input_tokens, output_tokens}, cost_usd}`; the cost comes
//! from the per-model price table in the engine's config (USD per million tokens).

use std::collections::HashMap;

use serde_json::{json, Map, Value};
use tracing::Instrument;

use super::{number_field, string_field, Agent, AgentContext, AgentError, AgentFuture};

/// USD per million input and output tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    /// US dollars per million input tokens.
    pub input_per_mtok: f64,
    /// US dollars per million output tokens.
    pub output_per_mtok: f64,
}

/// `llm`: an OpenAI-compatible chat completion, with its tokens and spend.
pub struct Llm {
    /// Prices by model name (`FLOWSCOPE_LLM_PRICES`).
    pub prices: HashMap<String, Price>,
    /// See [`super::egress`].
    pub egress: std::sync::Arc<super::egress::Policy>,
}

/// A chat completion's answer is read up to this size; a larger one is an error.
const MAX_ANSWER_BYTES: usize = 8 * 1024 * 1024;

impl Agent for Llm {
    fn run<'a>(&'a self, ctx: &'a AgentContext, with: &'a Map<String, Value>) -> AgentFuture<'a> {
        let model = with
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or_default();
        // The GenAI semantic conventions' client span: `chat {model}`.
        let span = tracing::info_span!(
            "gen_ai.chat",
            otel.name = format!("chat {model}"),
            otel.kind = "client",
            gen_ai.operation.name = "chat",
            gen_ai.request.model = model,
            gen_ai.response.model = tracing::field::Empty,
            gen_ai.usage.input_tokens = tracing::field::Empty,
            gen_ai.usage.output_tokens = tracing::field::Empty,
            agent.cost.usd = tracing::field::Empty,
            error.type = tracing::field::Empty,
        );
        let outcome = span.clone();
        let work = self.chat(ctx, with).instrument(span);
        Box::pin(async move {
            let result = work.await;
            match &result {
                Ok(out) => {
                    outcome.record(
                        "gen_ai.response.model",
                        out["model"].as_str().unwrap_or_default(),
                    );
                    outcome.record(
                        "gen_ai.usage.input_tokens",
                        out["usage"]["input_tokens"].as_i64().unwrap_or(0),
                    );
                    outcome.record(
                        "gen_ai.usage.output_tokens",
                        out["usage"]["output_tokens"].as_i64().unwrap_or(0),
                    );
                    if let Some(cost) = out["cost_usd"].as_f64() {
                        outcome.record("agent.cost.usd", cost);
                    }
                }
                Err(e) => crate::telemetry::record_outcome(&outcome, Some((e.kind, &e.message))),
            }
            result
        })
    }
}

impl Llm {
    fn chat<'a>(&'a self, ctx: &'a AgentContext, with: &'a Map<String, Value>) -> AgentFuture<'a> {
        Box::pin(async move {
            let base = string_field(with, "base_url")?.trim_end_matches('/');
            self.egress.check("base_url", base)?;
            let model = string_field(with, "model")?;
            let mut messages = match (
                with.get("messages"),
                with.get("prompt").and_then(Value::as_str),
            ) {
                (Some(Value::Array(m)), _) => m.clone(),
                (_, Some(prompt)) => vec![json!({ "role": "user", "content": prompt })],
                _ => {
                    return Err(AgentError::config(
                        "give prompt (text) or messages (a list)",
                    ))
                }
            };
            if let Some(system) = with.get("system").and_then(Value::as_str) {
                messages.insert(0, json!({ "role": "system", "content": system }));
            }
            let mut body = json!({ "model": model, "messages": messages });
            if let Some(t) = number_field(with, "temperature")? {
                body["temperature"] = json!(t);
            }
            if let Some(m) = number_field(with, "max_tokens")? {
                body["max_tokens"] = json!(m as u64);
            }
            let mut request = ctx
                .http
                .post(format!("{base}/chat/completions"))
                .json(&body);
            if let Some(key) = with
                .get("api_key")
                .and_then(Value::as_str)
                .filter(|k| !k.is_empty())
            {
                request = request.bearer_auth(key);
            }
            ctx.log(format!(
                "chat {model}: {} messages",
                body["messages"].as_array().map_or(0, Vec::len)
            ));
            if let Some(tp) = crate::telemetry::traceparent(&tracing::Span::current()) {
                request = request.header("traceparent", tp);
            }
            let response = request
                .send()
                .await
                .map_err(|e| AgentError::request(&e, e.to_string()))?;
            let status = response.status();
            let (bytes, cut) = super::read_capped(response, MAX_ANSWER_BYTES).await?;
            if cut {
                return Err(AgentError::new(
                    "llm_response",
                    format!("the model API's answer is longer than {MAX_ANSWER_BYTES} bytes"),
                ));
            }
            let text = String::from_utf8_lossy(&bytes).into_owned();
            if !status.is_success() {
                return Err(AgentError::new(
                    "llm_status",
                    format!(
                        "the model API answered {}: {}",
                        status.as_u16(),
                        text.chars().take(300).collect::<String>()
                    ),
                ));
            }
            let reply: Value = serde_json::from_str(&text).map_err(|e| {
                AgentError::new(
                    "llm_response",
                    format!("the model API answered something that is not JSON: {e}"),
                )
            })?;
            let content = reply["choices"][0]["message"]["content"]
                .as_str()
                .ok_or_else(|| {
                    AgentError::new(
                        "llm_response",
                        "the answer has no choices[0].message.content",
                    )
                })?;
            let input_tokens = reply["usage"]["prompt_tokens"].as_u64().unwrap_or(0);
            let output_tokens = reply["usage"]["completion_tokens"].as_u64().unwrap_or(0);
            let cost = self.prices.get(model).map(|p| {
                (input_tokens as f64 * p.input_per_mtok + output_tokens as f64 * p.output_per_mtok)
                    / 1e6
            });
            ctx.log(format!(
                "{input_tokens} input + {output_tokens} output tokens"
            ));
            Ok(json!({
                "content": content,
                "model": reply["model"].as_str().unwrap_or(model),
                "usage": { "input_tokens": input_tokens, "output_tokens": output_tokens },
                "cost_usd": cost,
            }))
        })
    }
}

/// Parses `model=in/out,model2=in/out` (USD per million tokens); the error names the entry.
pub fn parse_prices(text: &str) -> Result<HashMap<String, Price>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|entry| {
            let bad = || format!("\"{entry}\" is not model=INPUT/OUTPUT (USD per million tokens)");
            let (model, prices) = entry.split_once('=').ok_or_else(bad)?;
            let (i, o) = prices.split_once('/').ok_or_else(bad)?;
            let price = Price {
                input_per_mtok: i.trim().parse().map_err(|_| bad())?,
                output_per_mtok: o.trim().parse().map_err(|_| bad())?,
            };
            Ok((model.trim().to_string(), price))
        })
        .collect()
}
