//! `notify`: posts `{text, blocks?}` to a Slack-compatible incoming webhook.

use serde_json::{json, Map, Value};

use super::{string_field, Agent, AgentContext, AgentError, AgentFuture};

pub struct Notify;

impl Agent for Notify {
    fn run<'a>(&'a self, ctx: &'a AgentContext, with: &'a Map<String, Value>) -> AgentFuture<'a> {
        Box::pin(async move {
            let url = string_field(with, "webhook_url")?;
            super::egress::refuse_metadata(url)?;
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
            let body = response.text().await.unwrap_or_default();
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
