//! `transform`: a jq program over `{inputs, steps: {<id>: {output}}}`, evaluated by jaq in the
//! jq sandbox's child processes (see [`super::sandbox`]), which also compile and cache it.
//! One output is the value, several are a list.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::sandbox::Sandbox;
use super::{string_field, Agent, AgentContext, AgentFuture};

pub struct Transform {
    pub sandbox: Arc<Sandbox>,
}

impl Agent for Transform {
    fn run<'a>(&'a self, ctx: &'a AgentContext, with: &'a Map<String, Value>) -> AgentFuture<'a> {
        Box::pin(async move {
            let program = string_field(with, "jq")?;
            let mut outputs: Vec<Value> = self.sandbox.run(program, &ctx.data).await?;
            Ok(match outputs.len() {
                0 => Value::Null,
                1 => outputs.remove(0),
                _ => Value::Array(outputs),
            })
        })
    }
}
