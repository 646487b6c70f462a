//! `flowscope`: `serve` (default), `worker`, `validate FILE…`, `migrate`, `bench`, and the commands that
//! talk to a server over the API (`apply`, `run`, `runs`, `export`; see `cli.rs`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use engine::model::Workflow;
use flowscope::config::Config;
use flowscope::startup::{open_store, shutdown_signal, Application};

#[derive(Parser)]
#[command(name = "flowscope", version, about = "Self-hosted workflow hub")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    remote: flowscope::cli::Remote,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the UI, the API and the engine (the default).
    Serve,
    /// Run workflows only (no UI or API), beside `serve` on one PostgreSQL database: more
    /// throughput, and runs that survive a process or machine going away.
    Worker,
    /// Check workflow files and print every problem with its path; exit 1 if any.
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Write brotli and gzip copies beside the site's files (after a build), which the server
    /// sends to browsers that accept them.
    Precompress {
        /// The site folder (`target/site`).
        dir: PathBuf,
    },
    /// Create or update workflows from files on a server (a new version only when changed).
    Apply {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Trigger a run; with --wait, follow it and exit 0 only if it succeeded.
    Run {
        workflow: String,
        /// An input as name=value (JSON values are read as JSON: n=5, on=true).
        #[arg(long = "input", short = 'i')]
        inputs: Vec<String>,
        /// Run this version instead of the latest.
        #[arg(long)]
        version: Option<i64>,
        #[arg(long)]
        wait: bool,
    },
    /// List the newest runs.
    Runs {
        #[arg(long)]
        workflow: Option<String>,
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
    /// Print a workflow's saved text (the latest version unless --version).
    Export {
        workflow: String,
        #[arg(long)]
        version: Option<i64>,
    },
    /// Create, list or revoke API tokens, on the database directly (a first token for CI;
    /// Settings → API tokens does the same in the UI).
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Measure the engine on SQLite and PostgreSQL and print a table (see BENCHMARKS.md).
    Bench {
        /// Run one shape in this process against --database and print JSON (used internally).
        #[arg(long)]
        shape: Option<String>,
        /// With --shape: measured runs instead of the shape's own count (two counts under
        /// callgrind give the instructions of a run without start-up).
        #[arg(long)]
        runs: Option<usize>,
        #[arg(long)]
        database: Option<String>,
        /// PostgreSQL server URL; a fresh database is created there per shape.
        #[arg(
            long,
            env = "FLOWSCOPE_BENCH_POSTGRES_URL",
            default_value = "postgres://postgres@127.0.0.1:5432/postgres"
        )]
        postgres: String,
        /// Only these shapes (comma-separated).
        #[arg(long, value_delimiter = ',')]
        shapes: Vec<String>,
        /// Measure server rendering of the UI pages instead (1,000 workflows, 100,000 runs).
        #[arg(long)]
        ui: bool,
        /// Measure telemetry's cost instead: off, span ids only, full OTLP export (SQLite).
        #[arg(long)]
        telemetry: bool,
        /// Measure N `flowscope worker` processes on one PostgreSQL instead (e.g. 1,2,4).
        #[arg(long, value_delimiter = ',')]
        workers: Vec<usize>,
        /// Load a running server over HTTP instead: trigger --load-workflow at --rate per
        /// second for --seconds, then check every accepted run finished.
        #[arg(long)]
        load: Option<String>,
        #[arg(long, default_value = "three")]
        load_workflow: String,
        #[arg(long, default_value_t = 200.0)]
        rate: f64,
        #[arg(long, default_value_t = 60)]
        seconds: u64,
    },
}

#[derive(Subcommand)]
enum TokenAction {
    /// Create a token and print it (it is shown this once).
    Create {
        name: String,
        /// viewer, operator, editor or admin.
        #[arg(long, default_value = "operator")]
        role: String,
    },
    /// List tokens: id, name, role, last use, state.
    List,
    /// Revoke a token by id, at once.
    Revoke { id: i64 },
}

fn main() -> ExitCode {
    // The jq sandbox's child process (engine::agents::sandbox): none of the server starts.
    if std::env::args_os().nth(1).is_some_and(|a| a == "sandbox") {
        return engine::agents::sandbox::child_main();
    }
    let cli = Cli::parse();
    let telemetry = match flowscope::telemetry::Telemetry::init() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let code = main_with(cli);
    // Flushes spans and logs still buffered: the last run's trace is not lost on shutdown.
    telemetry.shutdown();
    code
}

fn main_with(cli: Cli) -> ExitCode {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Validate { files } => validate(&files),
        Command::Precompress { dir } => match flowscope::assets::precompress(&dir) {
            Ok(done) => {
                println!(
                    "precompressed {} files ({} already current): {} bytes → brotli {}, gzip {}",
                    done.files, done.current, done.bytes, done.brotli, done.gzip
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: cannot precompress {}: {e}", dir.display());
                ExitCode::FAILURE
            }
        },
        command @ (Command::Apply { .. }
        | Command::Run { .. }
        | Command::Runs { .. }
        | Command::Export { .. }) => client(command, &cli.remote),
        command => {
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("error: cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(run(command)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// The API commands: exit codes as `cli.rs` describes.
fn client(command: Command, remote: &flowscope::cli::Remote) -> ExitCode {
    use flowscope::cli;
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let done = runtime.block_on(async {
        match command {
            Command::Apply { files } => cli::apply(remote, &files).await,
            Command::Run {
                workflow,
                inputs,
                version,
                wait,
            } => {
                let inputs = cli::parse_inputs(&inputs)?;
                cli::run(remote, &workflow, inputs, version, wait).await
            }
            Command::Runs {
                workflow,
                status,
                limit,
            } => cli::runs(remote, workflow.as_deref(), status.as_deref(), limit).await,
            Command::Export { workflow, version } => cli::export(remote, &workflow, version).await,
            _ => Ok(()),
        }
    });
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => f.exit(),
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    if let Command::Bench { .. } = command {
        return bench(command).await;
    }
    let config = Config::load()?;
    match command {
        Command::Migrate => {
            open_store(&Config {
                seed_examples: false,
                ..config
            })
            .await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Token { action } => token(&config, action).await,
        Command::Worker => flowscope::startup::run_worker(&config, shutdown_signal()).await,
        _ => serve(config).await,
    }
}

/// Token commands work beside a running server: they take no SQLite process lock (they run
/// no engine), and SQLite serialises their one write with the server's.
async fn token(config: &Config, action: TokenAction) -> anyhow::Result<()> {
    use anyhow::Context;
    use engine::access::{check_name, Role};
    let shown = flowscope::config::redact_url(&config.database_url);
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

async fn serve(config: Config) -> anyhow::Result<()> {
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
    tracing::info!(address = %app.local_addr(), database = %flowscope::config::redact_url(&config.database_url), "Flowscope listening on http://{}", app.local_addr());
    app.run_until(shutdown_signal()).await
}

async fn bench(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Bench {
            shape: Some(shape),
            runs,
            database,
            ..
        } => {
            let database = database.ok_or_else(|| anyhow::anyhow!("--shape needs --database"))?;
            let figures = flowscope::bench::run_shape(&shape, &database, runs).await?;
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
            flowscope::bench::run_telemetry(&shapes).await
        }
        Command::Bench {
            load: Some(base),
            load_workflow,
            rate,
            seconds,
            ..
        } => {
            let token = std::env::var("FLOWSCOPE_TOKEN").ok();
            flowscope::bench::run_load(&base, &load_workflow, rate, seconds, token.as_deref()).await
        }
        Command::Bench {
            postgres, workers, ..
        } if !workers.is_empty() => flowscope::bench::run_workers(&postgres, &workers).await,
        Command::Bench { ui: true, .. } => {
            let options = leptos::prelude::get_configuration(None)?.leptos_options;
            flowscope::bench_ui::run(options).await
        }
        Command::Bench {
            postgres, shapes, ..
        } => {
            let shapes = if shapes.is_empty() {
                flowscope::bench::SHAPES
                    .iter()
                    .map(|s| s.to_string())
                    .collect()
            } else {
                shapes
            };
            flowscope::bench::run_all(&postgres, &shapes).await
        }
        _ => Ok(()),
    }
}

fn validate(files: &[PathBuf]) -> ExitCode {
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
