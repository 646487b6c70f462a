//! The durable execution engine (SPEC §4).
//!
//! - [`Engine`]: trigger, cancel, retry, subscribe; owns the run queue and per-workflow limits.
//! - `run`: one run's DAG scheduler ([`run::RunDriver`]).
//! - `journal`: group commit of state changes.
//! - rendering `with` and redacting secrets are [`crate::render`]'s.
//!
//! Every state change is committed before it is acted on. A process that dies loses nothing:
//! [`Engine::start`] picks up every queued or running run; finished steps keep their outputs,
//! a step that was running gets a new attempt.

mod attempt;
mod bulk;
mod calls;
mod cluster;
mod journal;
mod offers;
mod queue;
mod retention;
mod run;
mod secrets;
mod waiting;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Map, Value};
use tokio::sync::{broadcast, oneshot, Semaphore};
use tokio_util::sync::CancellationToken;

pub use cluster::WorkerConfig;
pub use journal::Journal;

use crate::agents::{Agent, AgentSettings, Registry};
use crate::model::{Problem, Workflow};
use crate::records::{Event, EventKind, RunStatus, RunSummary, StepRecord, StepStatus};
use crate::secrets::SecretSet;
use crate::store::{Resumable, Store, StoreError};
use crate::telemetry::Metrics;
pub use bulk::{BulkAction, BulkOutcome, MAX_BULK};
pub use calls::MAX_CALL_DEPTH;
use queue::{Queued, Scheduler};
pub use retention::{Pruned, RetentionConfig};
pub use waiting::{Decision, EventPosted, MAX_COMMENT_BYTES, MAX_EVENT_BYTES};

/// What can go wrong asking the engine for something.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The inputs do not match the workflow's declared inputs.
    #[error("the inputs do not fit the workflow")]
    InvalidInputs(Vec<Problem>),
    /// The run cannot be retried in its status.
    #[error("run \"{id}\" is {status}; a run can be retried once it has finished")]
    NotRetryable {
        /// The run.
        id: String,
        /// Its status.
        status: RunStatus,
    },
    /// The run ended already.
    #[error("run \"{id}\" already finished ({status})")]
    AlreadyFinished {
        /// The run.
        id: String,
        /// How it ended.
        status: RunStatus,
    },
    /// A retry named a step the workflow does not have.
    #[error("step \"{0}\" is not part of this run's workflow")]
    UnknownStep(String),
    /// The request cannot be done as asked (new inputs for a retry that keeps outputs, a bulk
    /// action over too many runs); the message says why and what to do instead.
    #[error("{0}")]
    Refused(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The journal could not commit.
    #[error("cannot record the change: {0}")]
    Journal(String),
    /// A secret could not be stored or opened.
    #[error("{0}")]
    Secrets(String),
    /// The workflow's triggers are paused: no run starts until it is resumed.
    #[error("workflow \"{0}\" is paused: resume it to start runs")]
    Paused(String),
    /// Another process already started the run of this cron occurrence.
    #[error("this occurrence of the schedule has already fired")]
    AlreadyFired,
    /// The caller's role may not do this (an approval that needs a higher role).
    #[error("{0}")]
    Forbidden(String),
    /// The run is not in a state where this can be done (a step decided already).
    #[error("{0}")]
    Conflict(String),
}

/// Tuning of one engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Step attempts executing at once in this process.
    pub max_parallel_steps: usize,
    /// `{{ secrets.NAME }}` values; redacted from everything stored.
    pub secrets: HashMap<String, String>,
    /// The key stored secrets are sealed with; none: secrets cannot be stored.
    pub secret_key: Option<crate::vault::KeySource>,
    /// Runs picked up from the database on start.
    pub recover_limit: i64,
    /// Prices for `llm`, and whether `shell` is enabled.
    pub agents: AgentSettings,
    /// How this process works beside others on PostgreSQL (unused on SQLite).
    pub worker: WorkerConfig,
    /// In a sampled trace, commits at least this long get a span of their own (all of them
    /// are counted on the run's root span).
    pub trace_commits_over: std::time::Duration,
    /// Times a step's process may stop while running it before the step fails as
    /// `crash_loop` instead of starting again; 0: never.
    pub max_interruptions: i64,
    /// Where people reach Flowscope (`FLOWSCOPE_PUBLIC_URL`): templates read a run's page as
    /// `{{ run.url }}`. None: `run.url` is not defined.
    pub public_url: Option<String>,
    /// Where trace links point: the `trace_url` an `on_failure` handler gets.
    pub trace_links: crate::links::TraceLinks,
    /// A `delay` at least this long waits parked (holds no slot, survives restarts).
    pub durable_delay: std::time::Duration,
    /// How long an event nobody waited for is kept for waits that start later (0: not kept).
    pub event_keep: std::time::Duration,
    /// How long finished runs are kept when their workflow does not say, and how often they
    /// are pruned.
    pub retention: RetentionConfig,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_parallel_steps: 1024,
            secrets: HashMap::new(),
            secret_key: None,
            recover_limit: 100_000,
            agents: AgentSettings::default(),
            worker: WorkerConfig::default(),
            trace_commits_over: std::time::Duration::from_millis(1),
            max_interruptions: run::MAX_INTERRUPTIONS,
            public_url: None,
            trace_links: crate::links::TraceLinks::default(),
            durable_delay: std::time::Duration::from_secs(10),
            event_keep: std::time::Duration::from_secs(600),
            retention: RetentionConfig::default(),
        }
    }
}

/// How to retry a finished run.
#[derive(Debug, Clone, PartialEq)]
pub enum RetryMode {
    /// Everything again, same inputs and version.
    Whole,
    /// Keep succeeded steps' outputs; run the failed (or cancelled) steps and what follows.
    FromFailed,
    /// Keep outputs of steps that are not this step or downstream of it; run the rest.
    FromStep(String),
}

/// What a whole retry may change: the inputs, the version. A retry that keeps outputs keeps
/// both, since those outputs were made from them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RetryChanges {
    /// Inputs instead of the run's (declared defaults fill the rest); `None` keeps the run's.
    pub inputs: Option<Map<String, Value>>,
    /// The workflow version to run instead of the run's.
    pub version: Option<RetryVersion>,
}

/// The version a retry runs, when not the run's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryVersion {
    /// The workflow's latest version.
    Latest,
    /// This version.
    Exact(i64),
}

impl RetryMode {
    /// The mode a request names: nothing for a whole retry, `failed`, or a step id. The REST
    /// API's `from` and the run page's buttons both say it this way.
    pub fn from_request(from: Option<String>) -> RetryMode {
        match from {
            None => RetryMode::Whole,
            Some(f) if f == "failed" => RetryMode::FromFailed,
            Some(step) => RetryMode::FromStep(step),
        }
    }
}

/// A request to start a run.
#[derive(Debug, Clone, Default)]
pub struct TriggerRequest {
    /// The workflow to run.
    pub workflow_id: String,
    /// Latest when absent.
    pub version: Option<i64>,
    /// The inputs given; declared defaults fill the rest.
    pub inputs: Map<String, Value>,
    /// manual, api, cron, webhook, retry, alert.
    pub trigger: String,
    /// The W3C `traceparent` of the request: the run's root span links there.
    pub traceparent: Option<String>,
    /// Who started it, when a person or API token did (`alice`, `token:ci`).
    pub actor: Option<String>,
    /// Its labels (`env: prod`): shown with it, filtered on, carried by its retries.
    pub labels: crate::search::Labels,
}

/// Everything a new run is made from.
struct NewRunSpec {
    workflow: Arc<Workflow>,
    version: i64,
    inputs: Map<String, Value>,
    trigger: String,
    actor: Option<String>,
    parent_run_id: Option<String>,
    traceparent: Option<String>,
    /// Outputs carried over from the run being retried.
    reused: Vec<(String, Value)>,
    /// A cron occurrence this run fires: committed with the run, once across processes.
    fire: Option<Fire>,
    /// The `workflow` step that calls it: its `traceparent` is then the root's parent.
    caller: Option<crate::records::Caller>,
    labels: crate::search::Labels,
}

/// A cron occurrence to fire: see [`Engine::trigger_scheduled`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fire {
    /// Which of the workflow's triggers fires.
    pub trigger_index: i64,
    /// The occurrence's time (unix ms).
    pub fire_at: i64,
    /// The schedule's next occurrence (unix ms).
    pub next_fire_at: i64,
}

struct Inner {
    store: Store,
    journal: Journal,
    agents: Registry,
    http: reqwest::Client,
    events: broadcast::Sender<Event>,
    step_slots: Arc<Semaphore>,
    /// Step slots in all: a `for_each` without `concurrency` runs this many items at once.
    max_parallel_steps: usize,
    /// Configured secrets; stored ones are merged in by [`Engine::reload_secrets`].
    config_secrets: HashMap<String, String>,
    secrets: std::sync::RwLock<Arc<SecretSet>>,
    vault: Option<crate::vault::Vault>,
    workflows: Mutex<HashMap<(String, i64), Arc<Workflow>>>,
    sched: Mutex<Scheduler>,
    watchers: Mutex<HashMap<String, Vec<oneshot::Sender<RunStatus>>>>,
    metrics: Arc<Metrics>,
    /// The global provider's tracer, looked up once: attempt and commit spans use it.
    tracer: opentelemetry::global::BoxedTracer,
    /// On PostgreSQL: claims, leases and events shared with other processes.
    cluster: Option<cluster::Cluster>,
    trace_commits_over: std::time::Duration,
    max_interruptions: i64,
    /// `EngineConfig::public_url` without a trailing `/`.
    public_url: Option<String>,
    trace_links: crate::links::TraceLinks,
    /// Cancelled when this process shuts down (SQLite): drivers stop where they are and
    /// nothing new starts; see [`Engine::shutdown`].
    halt: CancellationToken,
    /// Each live driver's signal: its waits were resolved, or a pause asked or lifted.
    signals: Mutex<HashMap<String, Arc<tokio::sync::Notify>>>,
    /// Wakes the timer of parked runs (see `waiting`).
    timer: tokio::sync::Notify,
    durable_delay: std::time::Duration,
    event_keep: std::time::Duration,
    retention: RetentionConfig,
}

/// The engine; cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Engine {
    /// Starts the engine on `store` and resumes every unfinished run.
    pub async fn start(store: Store, config: EngineConfig) -> Result<Engine, EngineError> {
        let (events, _) = broadcast::channel(8192);
        // Only where the egress policy allows, at every hop: see agents/egress.rs.
        let policy = Arc::new(config.agents.egress.clone());
        let http = reqwest::Client::builder()
            .user_agent(concat!("flowscope/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(crate::agents::egress::GuardedResolver {
                policy: policy.clone(),
            }))
            .redirect(crate::agents::egress::redirect_policy(policy))
            // A proxy from the environment would resolve the target itself, past the resolver
            // that enforces the egress policy.
            .no_proxy()
            .build()
            .map_err(|e| EngineError::Journal(format!("cannot build the HTTP client: {e}")))?;
        // PostgreSQL may be shared by several processes: runs are claimed, not just taken.
        let (cluster, outbox) = if store.backend() == crate::store::Backend::Postgres {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            let me: Arc<str> = uuid::Uuid::now_v7().to_string().into();
            let cluster = cluster::Cluster {
                config: config.worker.clone(),
                me: Arc::new(std::sync::RwLock::new(me)),
                wake: tokio::sync::Notify::new(),
                full: std::sync::atomic::AtomicBool::new(false),
                alone: std::sync::atomic::AtomicBool::new(false),
                joins: std::sync::atomic::AtomicU64::new(0),
                stop: CancellationToken::new(),
                drain: CancellationToken::new(),
                abandon: Mutex::new(CancellationToken::new()),
                halt: CancellationToken::new(),
                outbox: tx,
                steps_wake: tokio::sync::Notify::new(),
                step_done: Mutex::default(),
                claimed: Mutex::default(),
                claim_ids: std::sync::atomic::AtomicU64::new(0),
                name: config.worker.name.as_str().into(),
            };
            (Some(cluster), Some(rx))
        } else {
            (None, None)
        };
        let fence = cluster.as_ref().map(|c| c.me.clone());
        let engine = Engine {
            inner: Arc::new(Inner {
                journal: Journal::start(store.clone(), fence),
                cluster,
                store,
                agents: Registry::builtin(&config.agents),
                http,
                events,
                step_slots: Arc::new(Semaphore::new(config.max_parallel_steps.max(1))),
                max_parallel_steps: config.max_parallel_steps.max(1),
                secrets: std::sync::RwLock::new(Arc::new(SecretSet::new(config.secrets.clone()))),
                config_secrets: config.secrets,
                vault: config.secret_key.map(crate::vault::Vault::new),
                workflows: Mutex::default(),
                sched: Mutex::default(),
                watchers: Mutex::default(),
                metrics: Arc::new(Metrics::new()),
                tracer: opentelemetry::global::tracer("flowscope"),
                trace_commits_over: config.trace_commits_over,
                max_interruptions: config.max_interruptions,
                halt: CancellationToken::new(),
                public_url: config
                    .public_url
                    .as_deref()
                    .map(|u| u.trim_end_matches('/').to_string()),
                trace_links: config.trace_links,
                signals: Mutex::default(),
                timer: tokio::sync::Notify::new(),
                durable_delay: config.durable_delay,
                event_keep: config.event_keep,
                retention: config.retention,
            }),
        };
        if let Err(e) = engine.expect_workflow_series().await {
            tracing::warn!(error = %e, "cannot create the workflows' metric series yet");
        }
        if let Err(e) = engine.reload_secrets().await {
            tracing::error!(error = %e, "stored secrets are unavailable until this is fixed");
        }
        match outbox {
            // Unfinished runs are claimed like new ones, once their worker's lease expired.
            Some(outbox) => engine.join_cluster(outbox).await?,
            None => engine.recover(config.recover_limit).await?,
        }
        engine.start_timer();
        engine.start_pruning();
        engine.start_indexing();
        Ok(engine)
    }

    async fn recover(&self, limit: i64) -> Result<(), EngineError> {
        let unfinished = self.inner.store.unfinished_runs(limit).await?;
        if !unfinished.is_empty() {
            tracing::info!(runs = unfinished.len(), "resuming unfinished runs");
        }
        for state in unfinished {
            self.adopt_one(state).await?;
        }
        self.dispatch();
        Ok(())
    }

    /// Queues runs this process has claimed (cluster mode) and starts what it can.
    async fn adopt(&self, states: Vec<Resumable>) {
        for state in states {
            let id = state.run.id.clone();
            if let Err(e) = self.adopt_one(state).await {
                // Its claim lapses with this worker's lease; it cannot run anywhere until fixed.
                tracing::error!(run.id = %id, error = %e, "cannot resume a claimed run");
            }
        }
        self.dispatch();
    }

    async fn adopt_one(&self, state: Resumable) -> Result<(), EngineError> {
        let workflow = self
            .workflow(&state.run.workflow_id, state.run.workflow_version)
            .await?;
        let cancel = state.cancel_requested;
        let id = state.run.id.clone();
        lock(&self.inner.sched)
            .queue
            .push_back(Queued { workflow, state });
        if cancel {
            self.cancel_local(&id);
        }
        Ok(())
    }

    /// Validates inputs, records a queued run and returns it at once.
    pub async fn trigger(&self, req: TriggerRequest) -> Result<RunSummary, EngineError> {
        // The definition comes from the cache: parsing it is most of a trigger's work.
        let (latest, paused) = self.inner.store.trigger_state(&req.workflow_id).await?;
        if paused {
            return Err(EngineError::Paused(req.workflow_id));
        }
        crate::search::check_labels(&req.labels).map_err(EngineError::Refused)?;
        let version = req.version.unwrap_or(latest);
        let workflow = self.workflow(&req.workflow_id, version).await?;
        let inputs = resolve_inputs(&workflow, req.inputs)?;
        self.enqueue_new(NewRunSpec {
            workflow,
            version,
            inputs,
            trigger: req.trigger,
            actor: req.actor,
            parent_run_id: None,
            traceparent: req.traceparent,
            reused: Vec::new(),
            fire: None,
            caller: None,
            labels: req.labels,
        })
        .await
    }

    /// Starts the run of one cron occurrence of a workflow version, with the inputs' defaults.
    /// The run and the occurrence commit together: when another process fired the occurrence
    /// first, nothing is created and the answer is [`EngineError::AlreadyFired`].
    pub async fn trigger_scheduled(
        &self,
        workflow_id: &str,
        version: i64,
        fire: Fire,
    ) -> Result<RunSummary, EngineError> {
        if self.inner.store.trigger_state(workflow_id).await?.1 {
            return Err(EngineError::Paused(workflow_id.to_string()));
        }
        let workflow = self.workflow(workflow_id, version).await?;
        let inputs = resolve_inputs(&workflow, Map::new())?;
        self.enqueue_new(NewRunSpec {
            workflow,
            version,
            inputs,
            trigger: "cron".into(),
            actor: None,
            parent_run_id: None,
            traceparent: None,
            reused: Vec::new(),
            fire: Some(fire),
            caller: None,
            labels: Default::default(),
        })
        .await
    }

    /// Starts a new run from a finished one (same inputs and version), linked to it.
    pub async fn retry(&self, run_id: &str, mode: RetryMode) -> Result<RunSummary, EngineError> {
        self.retry_as(run_id, mode, None).await
    }

    /// [`Engine::retry`], recording who asked.
    pub async fn retry_as(
        &self,
        run_id: &str,
        mode: RetryMode,
        actor: Option<String>,
    ) -> Result<RunSummary, EngineError> {
        self.retry_changed(run_id, mode, RetryChanges::default(), actor)
            .await
    }

    /// Retries any finished run, succeeded included: whole (with `changes` to its inputs or
    /// version, if any), from its failed steps, or from a step. The new run links to the old.
    pub async fn retry_changed(
        &self,
        run_id: &str,
        mode: RetryMode,
        changes: RetryChanges,
        actor: Option<String>,
    ) -> Result<RunSummary, EngineError> {
        let old = self.inner.store.run_detail(run_id).await?;
        if !old.run.status.is_finished() {
            return Err(EngineError::NotRetryable {
                id: run_id.to_string(),
                status: old.run.status,
            });
        }
        // A paused workflow starts no runs, retries included.
        if self
            .inner
            .store
            .trigger_state(&old.run.workflow_id)
            .await?
            .1
        {
            return Err(EngineError::Paused(old.run.workflow_id));
        }
        if mode != RetryMode::Whole && changes != RetryChanges::default() {
            return Err(EngineError::Refused(
                "a retry that keeps step outputs keeps the inputs and version they were made \
                 from; retry the whole run to change them"
                    .into(),
            ));
        }
        if mode == RetryMode::FromFailed && old.run.status == RunStatus::Succeeded {
            return Err(EngineError::Refused(format!(
                "run \"{run_id}\" succeeded: it has no failed step to retry from"
            )));
        }
        let version = match changes.version {
            None => old.run.workflow_version,
            Some(RetryVersion::Exact(v)) => v,
            Some(RetryVersion::Latest) => {
                self.inner
                    .store
                    .latest_version(&old.run.workflow_id)
                    .await?
            }
        };
        let workflow = self.workflow(&old.run.workflow_id, version).await?;
        let reused = match &mode {
            RetryMode::Whole => Vec::new(),
            RetryMode::FromFailed => succeeded_outputs(&old.steps, |_| true),
            RetryMode::FromStep(step) => {
                let rerun = downstream_of(&workflow, step)
                    .ok_or_else(|| EngineError::UnknownStep(step.clone()))?;
                succeeded_outputs(&old.steps, |id| !rerun.contains(id))
            }
        };
        let inputs = match (changes.inputs, old.inputs) {
            // Checked like a trigger's: types, required names, defaults.
            (Some(given), _) => resolve_inputs(&workflow, given)?,
            // The run's own, as they were resolved then; on another version, checked again.
            (None, Value::Object(m)) if version != old.run.workflow_version => {
                resolve_inputs(&workflow, m)?
            }
            (None, Value::Object(m)) => m,
            (None, _) => Map::new(),
        };
        self.enqueue_new(NewRunSpec {
            workflow,
            version,
            inputs,
            trigger: "retry".into(),
            actor,
            parent_run_id: Some(run_id.to_string()),
            traceparent: None,
            reused,
            fire: None,
            caller: None,
            labels: old.run.labels,
        })
        .await
    }

    /// Cancels a queued or running run: in-flight agents are aborted, waiting steps cancelled.
    pub async fn cancel(&self, run_id: &str) -> Result<(), EngineError> {
        let (engine, id) = (self.clone(), run_id.to_string());
        let task = tokio::spawn(async move {
            match engine
                .inner
                .store
                .request_cancel(&id, run::now_ms())
                .await?
            {
                status if status.is_finished() => Err(EngineError::AlreadyFinished { id, status }),
                // Parked: no driver holds it anywhere; woken, its driver ends it cancelled.
                RunStatus::Waiting | RunStatus::Paused => engine.cancel_parked(&id).await,
                // Unclaimed (a full concurrency limit may keep it so): it ends here and now.
                RunStatus::Queued if engine.cluster().is_some() => {
                    let at = run::now_ms();
                    if let Some(workflow_id) = engine.inner.store.cancel_unclaimed(&id, at).await? {
                        engine.publish(Event {
                            run_id: id.clone(),
                            workflow_id,
                            at,
                            kind: EventKind::Run {
                                status: RunStatus::Cancelled,
                            },
                        });
                        engine.notify_watchers(&id, RunStatus::Cancelled);
                    } else {
                        engine.cancel_if_local(&id);
                    }
                    Ok(())
                }
                // Another process's run is stopped there (the store notified it).
                _ if engine.cluster().is_some() => {
                    engine.cancel_if_local(&id);
                    Ok(())
                }
                _ => {
                    engine.cancel_local(&id);
                    Ok(())
                }
            }
        });
        task.await
            .map_err(|e| EngineError::Journal(format!("cancel task failed: {e}")))?
    }

    /// Waits until a run finishes and returns its final state.
    pub async fn wait(&self, run_id: &str) -> Result<RunStatus, EngineError> {
        let (tx, rx) = oneshot::channel();
        lock(&self.inner.watchers)
            .entry(run_id.to_string())
            .or_default()
            .push(tx);
        let status = match self.inner.store.run_status(run_id).await {
            Ok(status) => status,
            Err(e) => {
                lock(&self.inner.watchers).remove(run_id);
                return Err(e.into());
            }
        };
        if status.is_finished() {
            lock(&self.inner.watchers).remove(run_id);
            return Ok(status);
        }
        if self.cluster().is_none() {
            return rx
                .await
                .map_err(|_| EngineError::Journal("the engine stopped".into()));
        }
        // Another process may run it: its events say when it ends, and the store, should
        // an event be lost, within a second.
        let mut rx = rx;
        loop {
            tokio::select! {
                done = &mut rx => return done.map_err(|_| EngineError::Journal("the engine stopped".into())),
                _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            }
            let status = self.inner.store.run_status(run_id).await?;
            if status.is_finished() {
                lock(&self.inner.watchers).remove(run_id);
                return Ok(status);
            }
        }
    }

    /// Live events of every run (subscribe, then filter by run id).
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    /// The store the engine records in.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub(crate) fn tracer(&self) -> &opentelemetry::global::BoxedTracer {
        &self.inner.tracer
    }

    /// The metric registry `/metrics` serves.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// Creates the outcome series of every stored workflow at zero (see
    /// [`Metrics::expect_workflow`]): at start, and before each scrape, so that a workflow saved
    /// on any replica has its series on every process before its runs end. One query, and the
    /// versions it has not parsed yet.
    pub async fn expect_workflow_series(&self) -> Result<(), EngineError> {
        // Parked runs belong to no process: every process reports them all, from the store.
        let waiting = self.inner.store.waiting_counts().await?;
        self.inner.metrics.set_waiting(&waiting);
        self.measure_database().await?;
        for summary in self.inner.store.list_workflows(false).await? {
            // A version that no longer parses has its series made by its runs, as before.
            if let Ok(workflow) = self.workflow(&summary.id, summary.latest_version).await {
                self.inner.metrics.expect_workflow(&workflow);
            }
        }
        Ok(())
    }

    /// Starts `handler` (a workflow's `on_failure`) for a run that failed or timed out:
    /// trigger `failure`, the handler's inputs as given, and `failure` (what failed, where to
    /// look) when the handler declares that input. A handler that cannot start is logged: the
    /// failed run is already recorded and is what a person will look at.
    pub(crate) async fn start_failure_handler(
        &self,
        handler: &crate::model::OnFailureDef,
        failure: Value,
    ) {
        let failed_run = failure["run_id"].as_str().unwrap_or_default().to_string();
        let started = async {
            let (latest, _) = self.inner.store.trigger_state(&handler.workflow).await?;
            let workflow = self.workflow(&handler.workflow, latest).await?;
            let mut inputs = handler.inputs.clone();
            if workflow.def().inputs.contains_key("failure") {
                inputs.insert("failure".into(), failure);
            }
            self.trigger(TriggerRequest {
                workflow_id: handler.workflow.clone(),
                version: Some(latest),
                inputs,
                trigger: "failure".into(),
                actor: Some(format!("run:{failed_run}")),
                ..Default::default()
            })
            .await
        };
        match started.await {
            Ok(run) => {
                tracing::info!(workflow.run.id = %failed_run, handler.run.id = %run.id, workflow.id = %handler.workflow, "failure handler started")
            }
            Err(e) => {
                tracing::error!(workflow.run.id = %failed_run, workflow.id = %handler.workflow, error = %e, "the failure handler could not start")
            }
        }
    }

    /// Deletes a workflow with its runs (see [`Store::delete_workflow`]) and forgets its
    /// parsed versions: a workflow created again under the same id starts at version 1.
    pub async fn delete_workflow(&self, id: &str) -> Result<i64, EngineError> {
        let runs = self.inner.store.delete_workflow(id).await?;
        lock(&self.inner.workflows).retain(|(w, _), _| w != id);
        Ok(runs)
    }

    /// The workflow of a run's pinned version, from cache or the store.
    async fn workflow(&self, id: &str, version: i64) -> Result<Arc<Workflow>, EngineError> {
        if let Some(w) = lock(&self.inner.workflows).get(&(id.to_string(), version)) {
            return Ok(w.clone());
        }
        let record = self.inner.store.version(id, Some(version)).await?;
        Ok(self.cache(record.workflow, version))
    }

    fn cache(&self, workflow: Workflow, version: i64) -> Arc<Workflow> {
        let mut cache = lock(&self.inner.workflows);
        if cache.len() > 4096 {
            cache.clear();
        }
        cache
            .entry((workflow.id().to_string(), version))
            .or_insert_with(|| Arc::new(workflow))
            .clone()
    }

    fn publish(&self, event: Event) {
        // A lone process has nobody to forward to: it would only hear its own notification
        // back, at a cost on every step. A worker that joins says so at once
        // (`WORKERS_CHANNEL`), and its pages read state from the database before following.
        if let Some(c) = self
            .cluster()
            .filter(|c| !c.alone.load(std::sync::atomic::Ordering::Acquire))
        {
            let _ = c.outbox.send(event.clone());
        }
        // No subscriber is fine: events are a convenience, the store is the truth.
        let _ = self.inner.events.send(event);
    }

    /// An event of another process's run: for this process's live pages and waiters.
    fn publish_remote(&self, event: Event) {
        if let EventKind::Run { status } = &event.kind {
            if status.is_finished() {
                self.notify_watchers(&event.run_id, *status);
            }
        }
        let _ = self.inner.events.send(event);
    }

    fn journal(&self) -> &Journal {
        &self.inner.journal
    }
    fn agent(&self, kind: &str) -> Option<Arc<dyn Agent>> {
        self.inner.agents.get(kind).cloned()
    }
    fn sandbox(&self) -> &crate::agents::sandbox::Sandbox {
        self.inner.agents.sandbox()
    }
    fn http(&self) -> reqwest::Client {
        self.inner.http.clone()
    }
    fn step_slots(&self) -> Arc<Semaphore> {
        self.inner.step_slots.clone()
    }
    fn secrets(&self) -> Arc<SecretSet> {
        self.secret_set()
    }
}

/// Checks inputs against the workflow's declared inputs and fills in defaults.
pub fn resolve_inputs(
    workflow: &Workflow,
    mut given: Map<String, Value>,
) -> Result<Map<String, Value>, EngineError> {
    let declared = &workflow.def().inputs;
    let mut problems = Vec::new();
    for (name, value) in &given {
        match declared.get(name) {
            None => problems.push(Problem::new(
                format!("inputs.{name}"),
                format!("the workflow has no input \"{name}\""),
            )),
            Some(spec) if !spec.ty.accepts(value) => problems.push(Problem::new(
                format!("inputs.{name}"),
                format!(
                    "expected {}, found {}",
                    spec.ty.as_str(),
                    crate::catalog::json_kind(value)
                ),
            )),
            Some(_) => {}
        }
    }
    let mut resolved = Map::new();
    for (name, spec) in declared {
        match given.remove(name).or_else(|| spec.default.clone()) {
            Some(v) => {
                resolved.insert(name.clone(), v);
            }
            None => problems.push(Problem::new(
                format!("inputs.{name}"),
                "is required (it has no default)",
            )),
        }
    }
    if problems.is_empty() {
        Ok(resolved)
    } else {
        Err(EngineError::InvalidInputs(problems))
    }
}

fn succeeded_outputs(steps: &[StepRecord], keep: impl Fn(&str) -> bool) -> Vec<(String, Value)> {
    steps
        .iter()
        .filter(|s| s.status == StepStatus::Succeeded && keep(&s.step_id))
        .map(|s| (s.step_id.clone(), s.output.clone().unwrap_or(Value::Null)))
        .collect()
}

/// `step` and every step downstream of it, or `None` if there is no such step.
fn downstream_of(workflow: &Workflow, step: &str) -> Option<std::collections::HashSet<String>> {
    workflow.steps().iter().find(|s| s.id == step)?;
    let mut set = std::collections::HashSet::from([step.to_string()]);
    // Steps are in topological order, so one pass finds every descendant.
    for &i in workflow.topo_order() {
        let s = &workflow.steps()[i];
        if s.needs.iter().any(|n| set.contains(n)) {
            set.insert(s.id.clone());
        }
    }
    Some(set)
}
