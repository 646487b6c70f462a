//! The run queue and per-workflow concurrency limits: new runs are committed, queued and
//! started here while their workflow's limit allows; a finished run frees its slot.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::{lock, run, Engine, EngineError, NewRunSpec};
use crate::model::Workflow;
use crate::records::{Event, EventKind, RunStatus, RunSummary, StepRecord, StepStatus};
use crate::store::{NewRun, Op, Resumable};

pub(super) struct Queued {
    pub(super) workflow: Arc<Workflow>,
    pub(super) state: Resumable,
}

#[derive(Default)]
pub(super) struct Scheduler {
    pub(super) queue: VecDeque<Queued>,
    /// Cancels that arrived before their run reached this scheduler.
    pub(super) pending_cancels: std::collections::HashSet<String>,
    pub(super) active: HashMap<String, usize>,
    pub(super) running: HashMap<String, CancellationToken>,
    /// Runs woken while their driver was still ending its turn: woken again once it has.
    pub(super) rewake: std::collections::HashSet<String>,
}

impl Engine {
    /// Commits and queues in a task of its own: a caller that goes away (an HTTP client
    /// disconnecting) must not leave a committed run that nobody queued.
    pub(super) async fn enqueue_new(
        &self,
        mut spec: NewRunSpec,
    ) -> Result<RunSummary, EngineError> {
        // The request that triggered this run (an HTTP server span honouring any incoming
        // `traceparent`) is what the run's root span links to.
        // A child run's parent is its caller's attempt, given.
        if spec.caller.is_none() {
            if let Some(current) = crate::telemetry::traceparent(&tracing::Span::current()) {
                spec.traceparent = Some(current);
            }
        }
        let engine = self.clone();
        tokio::spawn(async move { engine.enqueue_new_now(spec).await })
            .await
            .map_err(|e| EngineError::Journal(format!("run creation task failed: {e}")))?
    }

    pub(super) async fn enqueue_new_now(
        &self,
        spec: NewRunSpec,
    ) -> Result<RunSummary, EngineError> {
        let NewRunSpec {
            workflow,
            version,
            inputs,
            trigger,
            actor,
            parent_run_id,
            traceparent,
            reused,
            fire,
            caller,
            labels,
        } = spec;
        let now = run::now_ms();
        let id = uuid::Uuid::now_v7().to_string();
        let step_ids: Vec<String> = workflow.steps().iter().map(|s| s.id.clone()).collect();
        let inputs = Value::Object(inputs);
        let new_traceparent = traceparent.clone();
        let owner = self.claim_on_create(workflow.def().concurrency.is_some());
        let new = NewRun {
            id: id.clone(),
            workflow_id: workflow.id().to_string(),
            workflow_version: version,
            trigger: trigger.clone(),
            actor: actor.clone(),
            inputs: inputs.clone(),
            parent_run_id: parent_run_id.clone(),
            traceparent: traceparent.clone(),
            created_at: now,
            step_ids: step_ids.clone(),
            reused: reused.clone(),
            concurrency: workflow.def().concurrency.map(i64::from),
            owner: owner.as_deref().map(str::to_string),
            caller,
            labels: labels.clone(),
        };
        match fire {
            // Its own transaction, not a journal batch: a key clash must fail this run only.
            Some(fire) => {
                let claim = Op::FireSchedule {
                    workflow_id: workflow.id().to_string(),
                    trigger_index: fire.trigger_index,
                    fire_at: fire.fire_at,
                    run_id: id.clone(),
                    next_fire_at: fire.next_fire_at,
                };
                match self
                    .inner
                    .store
                    .apply(&[claim, Op::CreateRun(Box::new(new))])
                    .await
                {
                    Err(e) if e.is_unique_violation() => return Err(EngineError::AlreadyFired),
                    other => other?,
                }
            }
            None => self
                .inner
                .journal
                .commit(vec![Op::CreateRun(Box::new(new))])
                .await
                .map_err(EngineError::Journal)?,
        }
        let summary = RunSummary {
            id: id.clone(),
            workflow_id: workflow.id().to_string(),
            workflow_version: version,
            status: RunStatus::Queued,
            trigger,
            actor,
            parent_run_id,
            error: None,
            created_at: now,
            started_at: None,
            finished_at: None,
            trace_id: None,
            span_id: None,
            labels,
        };
        self.publish(Event {
            run_id: id,
            workflow_id: summary.workflow_id.clone(),
            at: now,
            kind: EventKind::Run {
                status: RunStatus::Queued,
            },
        });
        if let Some(c) = self.cluster() {
            match owner {
                // Claimed as created; unless this worker lost its lease meanwhile, and with
                // it the run (another worker takes it over as an orphan).
                Some(me) if me == c.me() => {}
                Some(_) => return Ok(summary),
                // Several processes: whoever has room claims it (this one is woken first).
                None => {
                    c.wake.notify_one();
                    return Ok(summary);
                }
            }
        }
        let steps = step_ids
            .into_iter()
            .map(|step_id| {
                let output = reused
                    .iter()
                    .find(|(s, _)| *s == step_id)
                    .map(|(_, o)| o.clone());
                StepRecord {
                    status: if output.is_some() {
                        StepStatus::Succeeded
                    } else {
                        StepStatus::Pending
                    },
                    step_id,
                    attempts: 0,
                    output,
                    error_kind: None,
                    error_message: None,
                    skip_reason: None,
                    ready_at: None,
                    started_at: None,
                    finished_at: None,
                }
            })
            .collect();
        let state = Resumable {
            run: summary.clone(),
            inputs,
            cancel_requested: false,
            steps,
            traceparent: new_traceparent,
            waits: Vec::new(),
            pause_requested: false,
        };
        lock(&self.inner.sched)
            .queue
            .push_back(Queued { workflow, state });
        self.dispatch();
        Ok(summary)
    }

    /// Stops the run if this process runs it, or ends it at once if it is still queued here.
    pub(super) fn cancel_local(&self, run_id: &str) {
        let mut sched = lock(&self.inner.sched);
        if let Some(token) = sched.running.get(run_id) {
            token.cancel();
            return;
        }
        if let Some(pos) = sched.queue.iter().position(|q| q.state.run.id == run_id) {
            // A queued run needs no concurrency slot to be cancelled.
            if let Some(q) = sched.queue.remove(pos) {
                let token = CancellationToken::new();
                token.cancel();
                *sched.active.entry(q.workflow.id().to_string()).or_default() += 1;
                sched.running.insert(run_id.to_string(), token.clone());
                drop(sched);
                self.spawn_driver(q, token);
            }
            return;
        }
        sched.pending_cancels.insert(run_id.to_string());
    }

    /// Starts queued runs while their workflows' concurrency limits allow.
    pub(super) fn dispatch(&self) {
        if self.inner.halt.is_cancelled() {
            return;
        }
        let mut to_start = Vec::new();
        {
            let mut sched = lock(&self.inner.sched);
            let mut i = 0;
            while i < sched.queue.len() {
                let wf = sched.queue[i].workflow.clone();
                let limit = wf
                    .def()
                    .concurrency
                    .map(|c| c as usize)
                    .unwrap_or(usize::MAX);
                let active = sched.active.get(wf.id()).copied().unwrap_or(0);
                if active < limit {
                    if let Some(q) = sched.queue.remove(i) {
                        *sched.active.entry(wf.id().to_string()).or_default() += 1;
                        let token = CancellationToken::new();
                        if sched.pending_cancels.remove(&q.state.run.id) {
                            token.cancel();
                        }
                        sched.running.insert(q.state.run.id.clone(), token.clone());
                        to_start.push((q, token));
                    }
                } else {
                    i += 1;
                }
            }
        }
        for (q, token) in to_start {
            self.spawn_driver(q, token);
        }
    }

    pub(super) fn spawn_driver(&self, q: Queued, token: CancellationToken) {
        let engine = self.clone();
        let (abandon, drain) = match self.cluster() {
            Some(c) => (Some(lock(&c.abandon).clone()), Some(c.drain.clone())),
            // One process: stopped where it is when the process shuts down (resumed at start).
            None => (Some(self.inner.halt.clone()), None),
        };
        tokio::spawn(async move {
            let run_id = q.state.run.id.clone();
            let workflow_id = q.workflow.id().to_string();
            let drive =
                run::RunDriver::new(engine.clone(), q.workflow, q.state, drain).drive(token);
            let status = match abandon {
                // Abandoned (the claim is someone else's) or shutting down: drop the agents,
                // record nothing.
                Some(abandon) => tokio::select! {
                    status = drive => status,
                    _ = abandon.cancelled() => RunStatus::Running,
                },
                None => drive.await,
            };
            engine.finished(&run_id, &workflow_id, status);
        });
    }

    pub(super) fn finished(&self, run_id: &str, workflow_id: &str, status: RunStatus) {
        let rewake = {
            let mut sched = lock(&self.inner.sched);
            sched.running.remove(run_id);
            if let Some(n) = sched.active.get_mut(workflow_id) {
                *n = n.saturating_sub(1);
            }
            sched.rewake.remove(run_id)
        };
        if rewake {
            let (engine, id) = (self.clone(), run_id.to_string());
            tokio::spawn(async move {
                if let Err(e) = engine.wake(&id).await {
                    tracing::warn!(run.id = %id, error = %e, "cannot wake a run");
                }
            });
        }
        if status.is_finished() {
            self.notify_watchers(run_id, status);
        }
        if let Some(c) = self.cluster() {
            if c.full.load(std::sync::atomic::Ordering::Acquire) {
                c.wake.notify_one();
            }
        }
        self.dispatch();
    }

    pub(super) fn notify_watchers(&self, run_id: &str, status: RunStatus) {
        if let Some(waiters) = lock(&self.inner.watchers).remove(run_id) {
            for w in waiters {
                let _ = w.send(status);
            }
        }
    }
}
