//! The `flowscope` command line: `serve` (default), `worker`, `validate FILE…`, `migrate`,
//! `precompress`, `token`, `bench` ([`local`]), and the commands that talk to a server over
//! the API (`apply`, `run`, `runs`, `export`; [`remote`]).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::startup::{open_store, shutdown_signal};

mod local;
pub mod remote;

#[derive(Parser)]
#[command(name = "flowscope", version, about = "Self-hosted workflow hub")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    remote: remote::Remote,
}

#[derive(Subcommand)]
pub(crate) enum Command {
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
        /// A label of the run as key=value (env=prod); repeatable.
        #[arg(long = "label", short = 'l')]
        labels: Vec<String>,
        #[arg(long)]
        wait: bool,
    },
    /// Approve a step that waits for a decision (agent `approval`).
    Approve(DecideArgs),
    /// Reject a step that waits for a decision; the step fails as `rejected`.
    Reject(DecideArgs),
    /// Post an event: every run waiting on KEY (agent `wait`) goes on with the data as the
    /// step's output; kept for waits that start soon after when nobody waits yet.
    Event {
        key: String,
        /// The event's JSON payload (default: {}).
        #[arg(long, short = 'd')]
        data: Option<String>,
    },
    /// Pause a run: attempts in flight finish, no new one starts.
    Pause { run: String },
    /// Resume a paused run.
    Resume { run: String },
    /// List the newest runs.
    Runs {
        #[arg(long)]
        workflow: Option<String>,
        #[arg(long)]
        status: Option<String>,
        /// Only runs with this label, as key=value; repeatable.
        #[arg(long = "label", short = 'l')]
        labels: Vec<String>,
        /// Only runs whose inputs, outputs or errors hold these words.
        #[arg(long = "search", short = 'q')]
        search: Option<String>,
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
        /// Measure N runs parked on approvals instead: memory, database size, decision latency.
        #[arg(long)]
        waits: Option<usize>,
        /// Measure one run calling a child workflow N times in a `for_each` instead.
        #[arg(long)]
        calls: Option<usize>,
        /// Measure retention pruning N old runs while 3-step runs go on instead.
        #[arg(long)]
        prune: Option<usize>,
        /// Measure label filters and text search over N runs instead.
        #[arg(long)]
        search: Option<usize>,
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
pub(crate) enum TokenAction {
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

/// A decision on an approval step, from the command line.
#[derive(Debug, clap::Args)]
pub struct DecideArgs {
    /// The run.
    pub run: String,
    /// The approval step.
    pub step: String,
    /// Why, for the record.
    #[arg(long, short = 'm')]
    pub comment: Option<String>,
    /// A value of the approval's fields as name=value (JSON values are read as JSON).
    #[arg(long = "field", short = 'f')]
    pub fields: Vec<String>,
}

/// The whole program, after `main` (which only calls this).
pub fn main() -> ExitCode {
    // The jq sandbox's child process (engine::agents::sandbox): none of the server starts.
    if std::env::args_os().nth(1).is_some_and(|a| a == "sandbox") {
        return engine::agents::sandbox::child_main();
    }
    let cli = Cli::parse();
    let telemetry = match crate::telemetry::Telemetry::init() {
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
        Command::Validate { files } => local::validate(&files),
        Command::Precompress { dir } => match crate::assets::precompress(&dir) {
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
        | Command::Approve(_)
        | Command::Reject(_)
        | Command::Event { .. }
        | Command::Pause { .. }
        | Command::Resume { .. }
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

/// The API commands: exit codes as [`remote`] describes.
fn client(command: Command, remote: &remote::Remote) -> ExitCode {
    use self::remote as cli;
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
                labels,
                wait,
            } => {
                let inputs = cli::parse_inputs(&inputs)?;
                let labels = cli::parse_labels(&labels)?;
                cli::run(remote, &workflow, inputs, labels, version, wait).await
            }
            Command::Runs {
                workflow,
                status,
                labels,
                search,
                limit,
            } => {
                let filter = cli::RunsFilter {
                    workflow,
                    status,
                    labels: cli::parse_labels(&labels)?,
                    search,
                };
                cli::runs(remote, &filter, limit).await
            }
            Command::Export { workflow, version } => cli::export(remote, &workflow, version).await,
            Command::Approve(args) => cli::decide(remote, args, true).await,
            Command::Reject(args) => cli::decide(remote, args, false).await,
            Command::Event { key, data } => cli::event(remote, &key, data.as_deref()).await,
            Command::Pause { run } => cli::pause(remote, &run, true).await,
            Command::Resume { run } => cli::pause(remote, &run, false).await,
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
        return local::bench(command).await;
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
        Command::Token { action } => local::token(&config, action).await,
        Command::Worker => crate::startup::run_worker(&config, shutdown_signal()).await,
        _ => local::serve(config).await,
    }
}
