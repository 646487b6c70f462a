//! `transform`: a jq program over `{inputs, steps: {<id>: {output}}}`, evaluated by jaq.
//! Programs are compiled once and cached; one output is the value, several are a list.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};

use super::jq::{self, Compiled};
use super::{string_field, Agent, AgentContext, AgentError, AgentFuture};

/// Most outputs a program may yield: guards against `range(1e12)`.
const MAX_OUTPUTS: usize = 10_000;

#[derive(Default)]
pub struct Transform {
    cache: Mutex<HashMap<String, Arc<Compiled>>>,
}

impl Transform {
    fn compiled(&self, program: &str) -> Result<Arc<Compiled>, AgentError> {
        if let Some(c) = self.cache.lock().ok().and_then(|c| c.get(program).cloned()) {
            return Ok(c);
        }
        let compiled =
            Arc::new(jq::compile(program).map_err(|e| AgentError::new("jq_compile", e))?);
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() > 1024 {
                cache.clear();
            }
            cache.insert(program.to_string(), compiled.clone());
        }
        Ok(compiled)
    }
}

impl Agent for Transform {
    fn run<'a>(&'a self, ctx: &'a AgentContext, with: &'a Map<String, Value>) -> AgentFuture<'a> {
        Box::pin(async move {
            let program = string_field(with, "jq")?;
            let compiled = self.compiled(program)?;
            let mut outputs = jq::run(&compiled, (*ctx.data).clone(), MAX_OUTPUTS)
                .map_err(|e| AgentError::new("jq_runtime", e))?;
            Ok(match outputs.len() {
                0 => Value::Null,
                1 => outputs.remove(0),
                _ => Value::Array(outputs),
            })
        })
    }
}
