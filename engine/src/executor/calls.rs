//! Sub-workflows (agent `workflow`, SPEC §2): a step (or a `for_each` item) starts a child
//! run of another workflow and its output is the child's outputs.
//!
//! The child records who called it (run, step, item), so the call is found again rather
//! than started twice: after a restart the caller's attempt re-attaches to its child; a
//! retry of the caller re-uses a child an earlier run finished with the same workflow and
//! inputs. The caller holds no step slot while its child runs (a child waiting for a slot
//! its parent holds would never start). The child's root span is a child of the calling
//! attempt's span: one trace across both. A caller that ends (a cancel, a failure, its
//! timeout) cancels the children still going.

use std::time::Duration;

use serde_json::{json, Map, Value};

use super::{Engine, EngineError, NewRunSpec};
use crate::agents::AgentError;
use crate::records::{Caller, RunStatus};
use crate::store::StoreError;

/// Calls deep a run may be: a child of a child … of this many levels may still call.
pub const MAX_CALL_DEPTH: i64 = 10;

/// One call of a `workflow` step, as its attempt (or item) makes it.
pub(crate) struct Call {
    pub(crate) engine: Engine,
    pub(crate) run_id: String,
    pub(crate) step_id: String,
    pub(crate) item: Option<i64>,
    /// The calling attempt's span (W3C `traceparent`): the child's root is its child.
    pub(crate) traceparent: Option<String>,
    /// The step's `timeout:`: the child is cancelled when it passes.
    pub(crate) timeout: Option<Duration>,
    /// The calling run is a retry: children of the runs it retries may be re-used.
    pub(crate) retry: bool,
}

fn store_error(e: StoreError) -> AgentError {
    AgentError::new("store", format!("cannot read the child run: {e}"))
}

impl Call {
    /// Finds or starts the child run and waits for its end; its outputs are the result.
    /// Log lines say which child it was.
    pub(crate) async fn run(
        self,
        with: &Map<String, Value>,
        logs: &mut Vec<String>,
    ) -> Result<Value, AgentError> {
        let workflow_id = with
            .get("workflow")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|w| !w.is_empty())
            .ok_or_else(|| AgentError::config("workflow: the id of the workflow to run"))?;
        let version = match with.get("version") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_i64()
                    .filter(|v| *v >= 1)
                    .ok_or_else(|| AgentError::config("version: a version number, from 1"))?,
            ),
        };
        let inputs = match with.get("inputs") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(_) => {
                return Err(AgentError::config(
                    "inputs: expected a map of names to values",
                ))
            }
        };
        let store = self.engine.store();
        // Called before, in an earlier life of this run: the same child, not a second one.
        let child = match store
            .find_call(&self.run_id, &self.step_id, self.item)
            .await
            .map_err(store_error)?
        {
            Some((id, _)) => {
                logs.push(format!("waits again for child run {id}"));
                id
            }
            None => {
                let (workflow, version) = self.callee(workflow_id, version).await?;
                let inputs = super::resolve_inputs(&workflow, inputs).map_err(|e| match e {
                    EngineError::InvalidInputs(problems) => AgentError::new(
                        "invalid_inputs",
                        format!(
                            "the inputs do not fit workflow \"{workflow_id}\": {}",
                            problems
                                .iter()
                                .map(|p| p.to_string())
                                .collect::<Vec<_>>()
                                .join("; ")
                        ),
                    ),
                    other => AgentError::new("workflow", other.to_string()),
                })?;
                if let Some((id, outputs)) = self.reusable(workflow_id, &inputs).await? {
                    logs.push(format!(
                        "re-used child run {id}, which succeeded with the same inputs"
                    ));
                    return Ok(outputs);
                }
                let id = self.start(workflow, version, inputs).await?;
                logs.push(format!("started child run {id} of workflow {workflow_id}"));
                id
            }
        };
        self.await_child(&child, workflow_id).await
    }

    /// The workflow to call, parsed (from the engine's cache), and its version.
    async fn callee(
        &self,
        workflow_id: &str,
        version: Option<i64>,
    ) -> Result<(std::sync::Arc<crate::model::Workflow>, i64), AgentError> {
        let missing = |e: &StoreError| {
            matches!(
                e,
                StoreError::NotFound(_) | StoreError::VersionNotFound { .. }
            )
        };
        let store = self.engine.store();
        let version = match version {
            Some(v) => v,
            None => match store.trigger_state(workflow_id).await {
                Ok((_, true)) => {
                    return Err(AgentError::new(
                        "workflow_paused",
                        format!("workflow \"{workflow_id}\" is paused: resume it to call it"),
                    ))
                }
                Ok((latest, false)) => latest,
                Err(e) if missing(&e) => {
                    return Err(AgentError::new(
                        "workflow_not_found",
                        format!("there is no workflow \"{workflow_id}\""),
                    ))
                }
                Err(e) => return Err(store_error(e)),
            },
        };
        match self.engine.workflow(workflow_id, version).await {
            Ok(w) => Ok((w, version)),
            Err(EngineError::Store(e)) if missing(&e) => Err(AgentError::new(
                "workflow_not_found",
                format!("workflow \"{workflow_id}\" has no version {version}"),
            )),
            Err(e) => Err(AgentError::new("workflow", e.to_string())),
        }
    }

    /// A child that the runs this one retries finished, with the same workflow and inputs.
    async fn reusable(
        &self,
        workflow_id: &str,
        inputs: &Map<String, Value>,
    ) -> Result<Option<(String, Value)>, AgentError> {
        if !self.retry {
            return Ok(None);
        }
        let store = self.engine.store();
        let found = store
            .reusable_calls(&self.run_id, &self.step_id, self.item)
            .await
            .map_err(store_error)?;
        let inputs = Value::Object(inputs.clone());
        for (id, wf, given) in found {
            if wf == workflow_id && given == inputs {
                let (_, _, outputs) = store.run_end(&id).await.map_err(store_error)?;
                return Ok(Some((id, outputs.unwrap_or_else(|| json!({})))));
            }
        }
        Ok(None)
    }

    /// Starts the child run, unless the calls above this run are already too deep.
    async fn start(
        &self,
        workflow: std::sync::Arc<crate::model::Workflow>,
        version: i64,
        inputs: Map<String, Value>,
    ) -> Result<String, AgentError> {
        let depth = self
            .engine
            .store()
            .call_depth(&self.run_id)
            .await
            .map_err(store_error)?;
        if depth >= MAX_CALL_DEPTH {
            return Err(AgentError::new(
                "call_depth",
                format!(
                    "this run is {depth} calls deep; a workflow step may call at most \
                     {MAX_CALL_DEPTH} levels down"
                ),
            ));
        }
        let workflow_id = workflow.id().to_string();
        let summary = self
            .engine
            .enqueue_new(NewRunSpec {
                workflow,
                version,
                inputs,
                trigger: "workflow".into(),
                actor: Some(format!("run:{}", self.run_id)),
                parent_run_id: None,
                traceparent: self.traceparent.clone(),
                reused: Vec::new(),
                fire: None,
                caller: Some(Caller {
                    run_id: self.run_id.clone(),
                    step_id: self.step_id.clone(),
                    item: self.item,
                }),
                labels: Default::default(),
            })
            .await
            .map_err(|e| {
                AgentError::new(
                    "workflow",
                    format!("cannot start workflow \"{workflow_id}\": {e}"),
                )
            })?;
        Ok(summary.id)
    }

    /// Waits for the child's end (cancelling it when the step's timeout passes first).
    async fn await_child(&self, child: &str, workflow_id: &str) -> Result<Value, AgentError> {
        let ended = self.engine.wait(child);
        match self.timeout {
            None => ended.await,
            Some(t) => match tokio::time::timeout(t, ended).await {
                Ok(status) => status,
                Err(_) => {
                    if let Err(e) = self.engine.cancel(child).await {
                        tracing::warn!(run.id = %child, error = %e, "cannot cancel a child run past its caller's timeout");
                    }
                    return Err(AgentError::new(
                        "timeout",
                        format!(
                            "the step exceeded its timeout of {}; child run {child} was cancelled",
                            humantime::format_duration(t)
                        ),
                    ));
                }
            },
        }
        .map_err(|e| AgentError::new("workflow", format!("cannot follow child run {child}: {e}")))?;
        // Read back whole: the status alone does not carry the outputs.
        let (status, error, outputs) = self
            .engine
            .store()
            .run_end(child)
            .await
            .map_err(store_error)?;
        match status {
            RunStatus::Succeeded => Ok(outputs.unwrap_or_else(|| json!({}))),
            _ => {
                let why = error.map(|e| format!(": {e}")).unwrap_or_default();
                Err(AgentError::new(
                    "child_failed",
                    format!("child run {child} of workflow \"{workflow_id}\" {status}{why}"),
                ))
            }
        }
    }
}

impl Engine {
    /// Cancels the children of run `run_id` still going (it ended without them).
    pub(crate) async fn cancel_children(&self, run_id: &str) {
        let children = match self.inner.store.unfinished_children(run_id).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(run.id = %run_id, error = %e, "cannot read the run's children to cancel them");
                return;
            }
        };
        for child in children {
            match self.cancel(&child).await {
                Ok(()) | Err(EngineError::AlreadyFinished { .. }) => {}
                Err(e) => {
                    tracing::warn!(run.id = %child, error = %e, "cannot cancel a child run of an ended run")
                }
            }
        }
    }
}

impl Engine {
    /// A run's detail (see [`crate::store::Store::run_detail`]) with its outputs: stored
    /// ones (declared, or a child's), else, once it succeeded, the output of each step
    /// nothing depends on, by id (read from its workflow version, cached).
    pub async fn run_detail(&self, id: &str) -> Result<crate::records::RunDetail, EngineError> {
        let mut detail = self.inner.store.run_detail(id).await?;
        if detail.outputs.is_none() && detail.run.status == RunStatus::Succeeded {
            if let Ok(workflow) = self
                .workflow(&detail.run.workflow_id, detail.run.workflow_version)
                .await
            {
                let leaves = workflow.leaves().map(|s| {
                    let output = detail
                        .steps
                        .iter()
                        .find(|r| r.step_id == s.id)
                        .and_then(|r| r.output.clone());
                    (s.id.clone(), output.unwrap_or(Value::Null))
                });
                detail.outputs = Some(Value::Object(leaves.collect()));
            }
        }
        Ok(detail)
    }
}
