//! `delay`: waits a duration. Cancellable: the executor drops the sleep on cancel.

use super::{duration_field, Agent, AgentContext, AgentError, AgentFuture};
use serde_json::{json, Map, Value};

pub struct Delay;

impl Agent for Delay {
    fn run<'a>(&'a self, _ctx: &'a AgentContext, with: &'a Map<String, Value>) -> AgentFuture<'a> {
        Box::pin(async move {
            let d = duration_field(with, "duration")?
                .ok_or_else(|| AgentError::config("duration: required"))?;
            super::timer::sleep(d).await;
            Ok(json!({ "waited_ms": d.as_millis() as u64 }))
        })
    }
}
