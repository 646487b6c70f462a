//! `notify`: posts `{text, blocks?}` to a Slack-compatible incoming webhook.

use serde_json::{json, Map, Value};

use super::{string_field, Agent, AgentContext, AgentError, AgentFuture};

pub struct Notify {
    /// See [`super::egress`].
    pub egress: std::sync::Arc<super::egress::Policy>,
}

/// The part of a webhook's answer that is kept.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

impl Agent for Notify {
    fn run<'a>(&'a self, ctx: &'a AgentContext, with: &'a Map<String, Value>) -> AgentFuture<'a> {
        Box::pin(async move {
            let url = string_field(with, "webhook_url")?;
            self.egress.check("webhook_url", url)?;
            let text = string_field(with, "text")?;
            let mut payload = json!({ "text": text });
            if let Some(blocks) = with.get("blocks") {
                payload["blocks"] = blocks.clone();
            }
            let response = super::send_traced(ctx, ctx.http.post(url).json(&payload), "POST", url)
                .await
                .map_err(|e| {
                    AgentError::request(&e, format!("posting to the webhook failed: {e}"))
                })?;
            let status = response.status();
            // Slack answers 200 "ok"; anything else carries the reason in the body.
            let body = super::read_capped(response, MAX_ANSWER_BYTES)
                .await
                .map(|(b, _)| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            if !status.is_success() {
                return Err(AgentError::new(
                    "http_status",
                    format!(
                        "the webhook answered {}: {}",
                        status.as_u16(),
                        body.chars().take(200).collect::<String>()
                    ),
                ));
            }
            ctx.log(format!("posted {} characters", text.len()));
            Ok(json!({ "status": status.as_u16(), "response": body }))
        })
    }
}
