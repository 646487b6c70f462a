//! Start-up as named steps: connect the store, migrate, seed, build the router, bind.
//! `main` and the tests share it; a test binds port 0 and reads the port back.

use std::net::SocketAddr;
use std::sync::Arc;

use std::future::IntoFuture;

use anyhow::Context;
use axum::Router;
use engine::executor::{Engine, EngineConfig};
use engine::links::TraceLinks;
use engine::store::Store;
use leptos::prelude::*;
use leptos_axum::{generate_route_list, LeptosRoutes};
use tokio::net::TcpListener;

use crate::config::{redact_url, Config};

/// A bound, ready-to-serve Flowscope.
pub struct Application {
    listener: TcpListener,
    router: Router,
    store: Store,
    engine: Engine,
    /// Stops the cron scheduler (when this process runs one) at shutdown.
    scheduler: tokio_util::sync::CancellationToken,
    /// Held while this process serves an SQLite file (see [`open_store`]).
    _lock: Option<std::fs::File>,
}

impl Application {
    /// Connects, migrates and seeds the database, then binds the listener.
    pub async fn build(
        config: &Config,
        leptos_options: LeptosOptions,
    ) -> anyhow::Result<Application> {
        let (store, lock) = open_store(config).await?;
        let engine = Engine::start(store.clone(), engine_config(config, "serve"))
            .await
            .context("cannot start the engine")?;
        if config.auth {
            if let Some((name, password)) = &config.admin_user {
                crate::auth::ensure_admin(&store, name, password)
                    .await
                    .context("cannot create the admin from FLOWSCOPE_ADMIN_USER")?;
            }
        }
        let scheduler = background(config, &engine);
        let alerts = crate::api::alerts::AlertIntake::new(
            config.alert_token.clone(),
            config.alert_workflow.clone(),
            config.public_url.clone(),
            config.trace_links(),
        );
        let auth = crate::auth::Auth::new(
            store.clone(),
            config.auth,
            Some(config.secret_key.clone()),
            config.trusted_proxies.clone(),
        );
        let guard = crate::guard::Guard::new(&config.public_url);
        let router = router(
            store.clone(),
            engine.clone(),
            config.trace_links(),
            alerts,
            auth,
            guard,
            leptos_options,
        );
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {} (FLOWSCOPE_LISTEN)", config.listen))?;
        Ok(Application {
            listener,
            router,
            store,
            engine,
            scheduler,
            _lock: lock,
        })
    }

    /// The address actually bound (the real port when the config asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish (at most
    /// [`SHUTDOWN_GRACE`]: a live event stream would otherwise hold the process until its run
    /// ends) and closes the store. Unfinished runs resume on the next start.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (fired, mut watch) = tokio::sync::watch::channel(false);
        let signal = async move {
            shutdown.await;
            let _ = fired.send(true);
        };
        // The client's address feeds the sign-in rate limit.
        let service = self
            .router
            .into_make_service_with_connect_info::<SocketAddr>();
        let server = axum::serve(self.listener, service).with_graceful_shutdown(signal);
        // Among several processes, runs in flight finish their steps or go to the others; on
        // SQLite they stop where they are, to resume at the next start.
        let (engine, mut engine_watch) = (self.engine.clone(), watch.clone());
        let engine_done = tokio::spawn(async move {
            let _ = engine_watch.wait_for(|f| *f).await;
            engine.shutdown(SHUTDOWN_GRACE).await;
        });
        let grace = async move {
            let _ = watch.wait_for(|f| *f).await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        };
        tokio::select! {
            served = server.into_future() => served.context("HTTP server failed")?,
            _ = grace => tracing::warn!(grace_s = SHUTDOWN_GRACE.as_secs(), "connections still open after the grace period; stopping"),
        }
        // The engine closes the attempts it stops as `shutdown` before the store closes.
        let _ = engine_done.await;
        self.scheduler.cancel();
        self.store.close().await;
        Ok(())
    }
}

/// The engine's settings from the configuration; `kind` is `serve` or `worker`.
pub fn engine_config(config: &Config, kind: &'static str) -> EngineConfig {
    EngineConfig {
        secrets: config.secrets.clone(),
        secret_key: Some(config.secret_key.clone()),
        agents: engine::agents::AgentSettings {
            llm_prices: config.llm_prices.clone(),
            shell_enabled: config.shell_enabled,
            egress: engine::agents::egress::Policy {
                allowed_hosts: config.http_allowed_hosts.clone(),
                allow_private: config.egress_allow_private,
            },
            ..Default::default()
        },
        worker: config.worker(kind),
        max_parallel_steps: config.worker_max_steps,
        trace_commits_over: config.trace_commit_threshold,
        max_interruptions: config.step_max_interruptions,
        public_url: Some(config.public_url.clone()),
        trace_links: config.trace_links(),
        event_keep: config.event_keep,
        retention: engine::executor::RetentionConfig {
            max_age: config.retention_max_age,
            max_runs: config.retention_max_runs,
            keep_failed: config.retention_keep_failed,
            every: config.retention_every,
            ..Default::default()
        },
        ..EngineConfig::default()
    }
}

/// The cron scheduler and, on PostgreSQL, a periodic reread of stored secrets (another process
/// may change them). Both stop when the returned token is cancelled.
fn background(config: &Config, engine: &Engine) -> tokio_util::sync::CancellationToken {
    let stop = tokio_util::sync::CancellationToken::new();
    if engine.store().backend() == engine::store::Backend::Postgres {
        let (engine, stop) = (engine.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(std::time::Duration::from_secs(15)) => {}
                }
                if let Err(e) = engine.reload_secrets().await {
                    tracing::warn!(error = %e, "cannot reread the stored secrets");
                }
            }
        });
    }
    if config.scheduler {
        let run = engine::schedule::Scheduler::new(engine.clone()).run(stop.clone());
        tokio::spawn(run);
    }
    stop
}

/// `flowscope worker`: the engine and the cron scheduler without UI or API, beside servers
/// and other workers on one PostgreSQL database. Runs until `shutdown`, then stops claiming,
/// lets in-flight steps finish (at most [`SHUTDOWN_GRACE`]) and releases the rest.
pub async fn run_worker(
    config: &Config,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    if config.database_url.starts_with("sqlite:") {
        anyhow::bail!(
            "`flowscope worker` works beside `flowscope serve` on one PostgreSQL database \
             (FLOWSCOPE_DATABASE_URL=postgres://…); an SQLite file serves one process, whose \
             `flowscope serve` already runs every workflow"
        );
    }
    let (store, _) = open_store(&Config {
        seed_examples: false,
        ..config.clone()
    })
    .await?;
    // Bound before the engine starts, so a port in use stops a worker that has claimed nothing.
    let listener = TcpListener::bind(config.worker_listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (FLOWSCOPE_WORKER_LISTEN: every worker on one host needs its own address, or 127.0.0.1:0 for any free port)",
                config.worker_listen
            )
        })?;
    let metrics_at = listener.local_addr()?;
    let engine = Engine::start(store.clone(), engine_config(config, "worker"))
        .await
        .context("cannot start the engine")?;
    let stop = background(config, &engine);
    // Its runs' metrics are its own: Prometheus scrapes every worker as it scrapes the server.
    let server_metrics = Arc::new(crate::observe::ServerMetrics::new(store.clone()));
    let app = crate::observe::router(engine.clone(), server_metrics)
        .merge(crate::health::router(store.clone()));
    let serving = tokio::spawn({
        let stop = stop.clone();
        async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
        }
    });
    tracing::info!(
        worker.id = engine.worker_id().unwrap_or_default(),
        database = %redact_url(&config.database_url),
        metrics = %format!("http://{metrics_at}/metrics"),
        "Flowscope worker ready"
    );
    shutdown.await;
    engine.shutdown(SHUTDOWN_GRACE).await;
    stop.cancel();
    let _ = serving.await;
    store.close().await;
    Ok(())
}

/// How long shutdown waits for open requests and event streams.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Connects to the configured database, applies migrations and seeds the examples.
///
/// An SQLite file is one process's: two engines on it would each resume and run the other's
/// runs. So the process takes an exclusive lock on `<file>.lock`, held as long as the
/// returned file is, and a second process is refused with a message. The lock goes with the
/// process, however it ends. PostgreSQL is shared by design and takes no lock.
pub async fn open_store(config: &Config) -> anyhow::Result<(Store, Option<std::fs::File>)> {
    let shown = redact_url(&config.database_url);
    let lock = match engine::store::sqlite_file(&config.database_url) {
        Some(file) => Some(lock_sqlite(&file)?),
        None => None,
    };
    let store = Store::connect(&config.database_url)
        .await
        .with_context(|| {
            format!("cannot connect to the database at {shown} (FLOWSCOPE_DATABASE_URL)")
        })?;
    store
        .migrate()
        .await
        .with_context(|| format!("cannot apply migrations to {shown}"))?;
    if config.seed_examples {
        let seeded = store
            .seed_examples()
            .await
            .context("cannot seed the example workflows")?;
        if seeded > 0 {
            tracing::info!(
                workflows = seeded,
                "seeded example workflows into an empty database"
            );
        }
    }
    Ok((store, lock))
}

/// Takes the exclusive lock of an SQLite file's `<file>.lock`, creating its folder first.
fn lock_sqlite(file: &std::path::Path) -> anyhow::Result<std::fs::File> {
    let mut name = file.as_os_str().to_owned();
    name.push(".lock");
    let path = std::path::PathBuf::from(name);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create folder {}", dir.display()))?;
    }
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match lock.try_lock() {
        Ok(()) => Ok(lock),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "another Flowscope process is using {} (it holds {}); SQLite serves one process. \
             Stop the other one, or use PostgreSQL (FLOWSCOPE_DATABASE_URL=postgres://…) to run several",
            file.display(),
            path.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

/// The whole HTTP surface: pages (SSR + server functions), REST API, health, static files.
pub fn router(
    store: Store,
    engine: Engine,
    links: TraceLinks,
    alerts: crate::api::alerts::AlertIntake,
    auth: crate::auth::Auth,
    guard: crate::guard::Guard,
    leptos_options: LeptosOptions,
) -> Router {
    let routes = generate_route_list(app::App);
    let server_metrics = Arc::new(crate::observe::ServerMetrics::new(store.clone()));
    let auth_on = auth.enabled();
    let context = {
        let (store, engine) = (store.clone(), engine.clone());
        move || {
            provide_context(store.clone());
            provide_context(engine.clone());
            provide_context(links.clone());
            provide_context(app::auth::SignIn(auth_on));
        }
    };
    let pkg = std::path::Path::new(leptos_options.site_root.as_ref())
        .join(leptos_options.site_pkg_dir.as_ref());
    let (leptos_options, style) = crate::assets::hashed_names(leptos_options, &pkg);
    let context = move || {
        context();
        provide_context(style.clone());
    };
    let pages = Router::new()
        .leptos_routes_with_context(&leptos_options, routes, context.clone(), {
            let options = leptos_options.clone();
            move || app::shell(options.clone())
        })
        .fallback(leptos_axum::file_and_error_handler_with_context::<
            LeptosOptions,
            _,
        >(context, app::shell))
        .with_state(leptos_options)
        .layer(axum::middleware::from_fn(crate::error::server_fn_status))
        // Pages compressed as they render; the event streams (SSE) are left alone.
        .layer(tower_http::compression::CompressionLayer::new())
        .nest_service(
            &format!(
                "/{}",
                pkg.file_name().and_then(|n| n.to_str()).unwrap_or("pkg")
            ),
            crate::assets::service(&pkg),
        );
    Router::new()
        .nest(
            "/api/v1",
            crate::api::router(crate::api::ApiState {
                store: store.clone(),
                engine: engine.clone(),
                alerts,
            }),
        )
        .merge(crate::hooks::router(engine.clone()))
        .merge(crate::auth::router(auth.clone()))
        .merge(crate::health::router(store.clone()))
        .merge(crate::observe::router(engine, server_metrics.clone()))
        .merge(pages)
        .layer(axum::middleware::from_fn_with_state(
            auth,
            crate::auth::authenticate,
        ))
        .layer(axum::middleware::from_fn_with_state(
            guard,
            crate::guard::guard,
        ))
        .layer(axum::middleware::from_fn_with_state(
            server_metrics,
            crate::observe::http_span,
        ))
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
