//! The commands that work on this machine: serve, validate, API tokens on the database, and
//! the benchmarks.

use std::path::PathBuf;
use std::process::ExitCode;

use engine::model::Workflow;

use super::{Command, TokenAction};
use crate::config::Config;
use crate::startup::{shutdown_signal, Application};

/// Token commands work beside a running server: they take no SQLite process lock (they run
/// no engine), and SQLite serialises their one write with the server's.
pub(super) async fn token(config: &Config, action: TokenAction) -> anyhow::Result<()> {
    use anyhow::Context;
    use engine::access::{check_name, Role};
    let shown = crate::config::redact_url(&config.database_url);
    let store = engine::store::Store::connect(&config.database_url)
        .await
        .with_context(|| format!("cannot connect to the database at {shown}"))?;
    store.migrate().await?;
    let now = engine::store::now_ms();
    match action {
        TokenAction::Create { name, role } => {
            check_name("token", &name).map_err(anyhow::Error::msg)?;
            let role = Role::parse(&role).ok_or_else(|| {
                anyhow::anyhow!("role \"{role}\" is not one of viewer, operator, editor, admin")
            })?;
            let token = engine::vault::new_token();
            let id = store
                .create_token(
                    &name,
                    &engine::vault::token_hash(&token),
                    role,
                    Some("cli"),
                    now,
                )
                .await?;
            eprintln!("token {id} \"{name}\" ({role}) created; it is not shown again:");
            println!("{token}");
        }
        TokenAction::List => {
            println!(
                "{:>5}  {:<24} {:<9} {:<22} STATE",
                "ID", "NAME", "ROLE", "LAST USED"
            );
            for t in store.tokens().await? {
                let used = t
                    .last_used_at
                    .map(app::components::format_ms)
                    .unwrap_or_else(|| "never".into());
                let state = if t.revoked_at.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                println!(
                    "{:>5}  {:<24} {:<9} {:<22} {state}",
                    t.id,
                    t.name,
                    t.role.as_str(),
                    used
                );
            }
        }
        TokenAction::Revoke { id } => {
            if !store.revoke_token(id, now).await? {
                anyhow::bail!("no active token with id {id}");
            }
            println!("token {id} revoked");
        }
    }
    store.close().await;
    Ok(())
}

pub(super) async fn serve(config: Config) -> anyhow::Result<()> {
    // Site files (js, wasm, css) come from LEPTOS_SITE_ROOT (default target/site), set by
    // cargo-leptos or by whoever starts the built binary.
    let mut leptos_options = leptos::prelude::get_configuration(None)?.leptos_options;
    leptos_options.site_addr = config.listen;
    let exporting = [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|k| std::env::var(k).is_ok_and(|v| !v.is_empty()));
    if config.grafana_url.is_some() && !exporting {
        tracing::warn!("FLOWSCOPE_GRAFANA_URL is set but OTEL_EXPORTER_OTLP_ENDPOINT is not: traces are not exported, so trace links will find nothing in Grafana");
    }
    let app = Application::build(&config, leptos_options).await?;
    tracing::info!(address = %app.local_addr(), database = %crate::config::redact_url(&config.database_url), "Flowscope listening on http://{}", app.local_addr());
    app.run_until(shutdown_signal()).await
}

pub(super) async fn bench(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Bench {
            shape: Some(shape),
            runs,
            database,
            ..
        } => {
            let database = database.ok_or_else(|| anyhow::anyhow!("--shape needs --database"))?;
            let figures = bench::run_shape(&shape, &database, runs).await?;
            println!("{}", serde_json::to_string(&figures)?);
            Ok(())
        }
        Command::Bench {
            telemetry: true,
            shapes,
            ..
        } => {
            let shapes = if shapes.is_empty() {
                vec![
                    "chain40-zero".into(),
                    "three-step-c1".into(),
                    "three-step-c200".into(),
                ]
            } else {
                shapes
            };
            bench::run_telemetry(&shapes).await
        }
        Command::Bench {
            load: Some(base),
            load_workflow,
            rate,
            seconds,
            ..
        } => {
            let token = std::env::var("FLOWSCOPE_TOKEN").ok();
            bench::run_load(&base, &load_workflow, rate, seconds, token.as_deref()).await
        }
        Command::Bench {
            postgres,
            waits: Some(n),
            ..
        } => bench::run_waits(&postgres, n).await,
        Command::Bench {
            postgres,
            calls: Some(n),
            ..
        } => bench::run_calls(&postgres, n).await,
        Command::Bench {
            postgres,
            prune: Some(n),
            ..
        } => bench::run_prune(&postgres, n).await,
        Command::Bench {
            postgres,
            search: Some(n),
            ..
        } => bench::run_search(&postgres, n).await,
        Command::Bench {
            postgres, workers, ..
        } if !workers.is_empty() => bench::run_workers(&postgres, &workers).await,
        Command::Bench { ui: true, .. } => {
            let options = leptos::prelude::get_configuration(None)?.leptos_options;
            bench::ui::run(|store, engine| {
                crate::startup::router(
                    store.clone(),
                    engine,
                    Default::default(),
                    Default::default(),
                    crate::auth::Auth::new(store, false, None, Vec::new()),
                    crate::guard::Guard::new("http://127.0.0.1:3000"),
                    options,
                )
            })
            .await
        }
        Command::Bench {
            postgres, shapes, ..
        } => {
            let shapes = if shapes.is_empty() {
                bench::SHAPES.iter().map(|s| s.to_string()).collect()
            } else {
                shapes
            };
            bench::run_all(&postgres, &shapes).await
        }
        _ => Ok(()),
    }
}

pub(super) fn validate(files: &[PathBuf]) -> ExitCode {
    let mut failed = false;
    for file in files {
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("{}: cannot read: {e}", file.display());
                failed = true;
                continue;
            }
        };
        match Workflow::parse(&text) {
            Ok(w) => println!(
                "{}: ok ({}, {} steps)",
                file.display(),
                w.id(),
                w.steps().len()
            ),
            Err(problems) => {
                failed = true;
                for p in problems {
                    eprintln!("{}: {p}", file.display());
                }
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
