//! One attempt of an agent, with its time limit: the same for a step run by its own driver
//! and for one claimed from another worker's offer.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::agents::{Agent, AgentContext, AgentError};

/// Runs one attempt of `agent` with its timeout: the same for a local step and a claimed one.
/// `spent` is what the attempt's render took already: one `timeout` covers both.
pub(super) async fn run_agent(
    agent: Option<Arc<dyn Agent>>,
    kind: &str,
    ctx: &AgentContext,
    with: &Map<String, Value>,
    timeout: Option<Duration>,
    spent: Duration,
) -> Result<Value, AgentError> {
    let Some(agent) = agent else {
        return Err(AgentError::new(
            "agent_disabled",
            format!("the {kind} agent is not enabled on this server"),
        ));
    };
    let work = agent.run(ctx, with);
    match timeout {
        Some(t) => tokio::time::timeout(t.saturating_sub(spent), work)
            .await
            .unwrap_or_else(|_| {
                Err(AgentError::new(
                    "timeout",
                    format!(
                        "the step exceeded its timeout of {}",
                        humantime::format_duration(t)
                    ),
                ))
            }),
        None => work.await,
    }
}

/// Renders a step's `with` in the sandbox's child under the step's own `timeout` too (the
/// sandbox's limit is the ceiling): a render is part of the attempt, so a `timeout: 1s` step
/// does not wait 30 s for a template. Dropping the future (a cancel) kills the child.
pub(super) async fn render_in_sandbox(
    sandbox: &crate::agents::sandbox::Sandbox,
    with: &Map<String, Value>,
    context: &impl serde::Serialize,
    timeout: Option<Duration>,
) -> Result<Map<String, Value>, crate::render::RenderError> {
    let work = sandbox.render(with, context);
    let rendered = match timeout {
        Some(t) => tokio::time::timeout(t, work).await.unwrap_or_else(|_| {
            Err(AgentError::new(
                "timeout",
                format!(
                    "the step exceeded its timeout of {} while its templates rendered",
                    humantime::format_duration(t)
                ),
            ))
        }),
        None => work.await,
    };
    rendered.map_err(|e| crate::render::RenderError {
        kind: e.kind,
        message: e.message,
    })
}
