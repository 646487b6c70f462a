//! `http`: one HTTP request; output `{status, headers, body}`, the body parsed when it is JSON.

use serde_json::{json, Map, Value};

use super::{string_field, Agent, AgentContext, AgentError, AgentFuture};

/// Response bodies beyond this are cut (the stored output would be truncated anyway).
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

pub struct Http {
    /// See [`super::egress`].
    pub egress: std::sync::Arc<super::egress::Policy>,
}

impl Agent for Http {
    fn run<'a>(&'a self, ctx: &'a AgentContext, with: &'a Map<String, Value>) -> AgentFuture<'a> {
        Box::pin(async move {
            let url = string_field(with, "url")?;
            let method = with.get("method").and_then(Value::as_str).unwrap_or("GET");
            let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|_| {
                AgentError::config(format!("method: \"{method}\" is not an HTTP method"))
            })?;
            let parsed = self.egress.check("url", url)?;
            let mut request = ctx.http.request(method.clone(), parsed);
            if let Some(headers) = with.get("headers").and_then(Value::as_object) {
                for (name, value) in headers {
                    request = request.header(name.as_str(), value.as_str().unwrap_or_default());
                }
            }
            if let Some(body) = with.get("json") {
                request = request.json(body);
            } else if let Some(body) = with.get("body").and_then(Value::as_str) {
                request = request.body(body.to_string());
            }
            ctx.log(format!("{method} {url}"));
            let response = super::send_traced(ctx, request, method.as_str(), url)
                .await
                .map_err(|e| {
                    AgentError::request(&e, format!("{method} {url}: {}", super::describe(&e)))
                })?;
            let status = response.status().as_u16();
            let headers: Map<String, Value> = response
                .headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        Value::String(v.to_str().unwrap_or("").to_string()),
                    )
                })
                .collect();
            let (bytes, cut) = super::read_capped(response, MAX_BODY_BYTES).await?;
            let body = match cut {
                false => serde_json::from_slice::<Value>(&bytes).unwrap_or_else(|_| {
                    Value::String(String::from_utf8_lossy(&bytes).into_owned())
                }),
                // A cut body is not valid JSON anyway: kept as text, and said so.
                true => Value::String(String::from_utf8_lossy(&bytes).into_owned()),
            };
            ctx.log(format!(
                "→ {status} ({} bytes{})",
                bytes.len(),
                if cut { ", cut: the body is longer" } else { "" }
            ));
            if !status_expected(with.get("expected_status"), status) {
                return Err(AgentError::new(
                    "http_status",
                    format!("{method} {url} answered {status}"),
                ));
            }
            Ok(json!({ "status": status, "headers": headers, "body": body }))
        })
    }
}

/// 2xx by default; otherwise the code or list of codes given.
fn status_expected(expected: Option<&Value>, status: u16) -> bool {
    let matches = |v: &Value| {
        v.as_u64() == Some(status as u64)
            || v.as_str().and_then(|s| s.trim().parse::<u16>().ok()) == Some(status)
    };
    match expected {
        None | Some(Value::Null) => (200..300).contains(&status),
        Some(Value::Array(codes)) => codes.iter().any(matches),
        Some(v) => matches(v),
    }
}
