//! What the engine's tests share: an engine on a fresh SQLite or PostgreSQL store, and local
//! servers for the agents to call.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use engine::executor::{Engine, EngineConfig, TriggerRequest};
use engine::model::Workflow;
use engine::records::{RunDetail, StepStatus};
use engine::store::Store;
use serde_json::{Map, Value};

/// Agents that may call the loopback servers these tests start (the default refuses them).
pub(crate) fn local_agents() -> engine::agents::AgentSettings {
    engine::agents::AgentSettings {
        egress: engine::agents::egress::Policy {
            allowed_hosts: None,
            allow_private: true,
        },
        ..Default::default()
    }
}

pub(crate) struct Harness {
    pub(crate) engine: Engine,
    pub(crate) _dir: tempfile::TempDir,
    /// The PostgreSQL database of a `pg_harness`.
    pub(crate) pg_db: Option<String>,
}

pub(crate) async fn harness_with(config: EngineConfig) -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::connect(&format!("sqlite://{}", dir.path().join("e.db").display()))
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    store.seed_examples().await.expect("seed");
    let engine = Engine::start(store, config).await.expect("engine");
    Harness {
        engine,
        _dir: dir,
        pg_db: None,
    }
}

pub(crate) async fn harness() -> Harness {
    harness_with(EngineConfig {
        agents: local_agents(),
        ..EngineConfig::default()
    })
    .await
}

/// The same engine on a fresh PostgreSQL database (`FLOWSCOPE_TEST_POSTGRES_URL`).
pub(crate) async fn pg_harness() -> Harness {
    pg_harness_with(EngineConfig {
        agents: local_agents(),
        ..EngineConfig::default()
    })
    .await
}

/// [`pg_harness`] with `config`.
pub(crate) async fn pg_harness_with(config: EngineConfig) -> Harness {
    static N: AtomicUsize = AtomicUsize::new(0);
    let admin_url = engine::store::scratch::admin_url();
    let name = format!(
        "flowscope_exec_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let store = engine::store::scratch::create_database(&admin_url, &name)
        .await
        .expect("PostgreSQL on 127.0.0.1:5432");
    store.migrate().await.expect("migrate");
    store.seed_examples().await.expect("seed");
    let engine = Engine::start(store, config).await.expect("engine");
    Harness {
        engine,
        _dir: tempfile::tempdir().expect("dir"),
        pg_db: Some(name),
    }
}

impl Harness {
    pub(crate) async fn add(&self, yaml: &str) {
        let w = Workflow::parse(yaml).expect("valid workflow");
        self.engine
            .store()
            .create_workflow(&w, yaml)
            .await
            .expect("create");
    }

    pub(crate) async fn run(&self, workflow: &str, inputs: Value) -> RunDetail {
        let id = self.start(workflow, inputs).await;
        self.engine.wait(&id).await.expect("wait");
        self.engine.store().run_detail(&id).await.expect("detail")
    }

    pub(crate) async fn start(&self, workflow: &str, inputs: Value) -> String {
        let inputs: Map<String, Value> = serde_json::from_value(inputs).expect("object");
        let req = TriggerRequest {
            workflow_id: workflow.into(),
            inputs,
            trigger: "manual".into(),
            ..Default::default()
        };
        self.engine.trigger(req).await.expect("trigger").id
    }

    pub(crate) async fn wait_for_step(&self, run_id: &str, step: &str, status: StepStatus) {
        let mut events = self.engine.subscribe();
        loop {
            let detail = self
                .engine
                .store()
                .run_detail(run_id)
                .await
                .expect("detail");
            if step_of(&detail, step).status == status {
                return;
            }
            let _ =
                tokio::time::timeout(std::time::Duration::from_millis(200), events.recv()).await;
        }
    }
}

pub(crate) fn step_of<'a>(d: &'a RunDetail, id: &str) -> &'a engine::records::StepRecord {
    d.steps
        .iter()
        .find(|s| s.step_id == id)
        .unwrap_or_else(|| panic!("no step {id}"))
}

/// A local HTTP server for the agents; returns its address and the bodies it received.
pub(crate) async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await.expect("serve") });
    addr
}

/// A process killed mid-run (see [`kill_midway`]): the database it left, and the run.
pub(crate) struct Killed<T> {
    _dir: tempfile::TempDir,
    url: String,
    pub(crate) run_id: String,
    /// What the wait before the kill returned.
    pub(crate) seen: T,
}

/// Starts an engine on a fresh SQLite file holding `yaml`, triggers that workflow with
/// `inputs`, awaits `until` (what must have happened before the kill), then drops the runtime
/// with every task in flight, as a killed process would leave it.
pub(crate) fn kill_midway<T>(
    yaml: &str,
    inputs: Value,
    until: impl AsyncFnOnce(&Harness, &str) -> T,
) -> Killed<T> {
    kill_midway_among(&[], yaml, inputs, until)
}

/// [`kill_midway`] with `others` stored first (the workflows `yaml` calls).
pub(crate) fn kill_midway_among<T>(
    others: &[&str],
    yaml: &str,
    inputs: Value,
    until: impl AsyncFnOnce(&Harness, &str) -> T,
) -> Killed<T> {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("killed.db").display());
    let workflow = Workflow::parse(yaml).expect("valid");
    let before = tokio::runtime::Runtime::new().expect("runtime");
    let (run_id, seen) = before.block_on(async {
        let store = Store::connect(&url).await.expect("connect");
        store.migrate().await.expect("migrate");
        for other in others {
            let w = Workflow::parse(other).expect("valid");
            store.create_workflow(&w, other).await.expect("create");
        }
        store
            .create_workflow(&workflow, yaml)
            .await
            .expect("create");
        let h = Harness {
            engine: Engine::start(store, local_config()).await.expect("engine"),
            _dir: tempfile::tempdir().expect("d"),
            pg_db: None,
        };
        let id = h.start(workflow.id(), inputs).await;
        let seen = until(&h, &id).await;
        (id, seen)
    });
    before.shutdown_background();
    Killed {
        _dir: dir,
        url,
        run_id,
        seen,
    }
}

impl<T> Killed<T> {
    /// A new process on the same database: `check` runs with its engine once it started.
    pub(crate) fn restart(&self, check: impl AsyncFnOnce(Engine)) {
        let after = tokio::runtime::Runtime::new().expect("runtime");
        after.block_on(async {
            let store = Store::connect(&self.url).await.expect("connect");
            store.migrate().await.expect("migrate");
            check(Engine::start(store, local_config()).await.expect("engine")).await;
        });
    }
}

fn local_config() -> EngineConfig {
    EngineConfig {
        agents: local_agents(),
        ..EngineConfig::default()
    }
}
