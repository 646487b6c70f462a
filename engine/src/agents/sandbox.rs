//! jq programs, and templates that could grow without bound, run in child processes, never
//! in the server's own.
//!
//! A jq program is user code, and jaq (like jq) has no bound of its own: `def f: [f]; f`
//! recurses until the stack overflows, which aborts the process that runs it (Rust cannot
//! catch a stack overflow), and `last(range(1e12))` loops on whatever thread it is given.
//! In the server's process that was a crash loop (the resumed run aborts it again) and a
//! frozen runtime. So every evaluation runs in a **sandbox process** (`flowscope sandbox`,
//! or the engine's `flowscope-sandbox` binary in its tests):
//!
//! - **time**: the parent waits at most [`Limits::time`] (and the step's own timeout or a
//!   cancel drop the wait), then kills the child: `error.type` `limit_time`;
//! - **stack and memory**: the child evaluates on a thread with a [`Limits::stack_bytes`]
//!   stack under an address-space limit of [`Limits::memory_bytes`]; overflowing either kills
//!   only the child: `limit_stack` or `limit_memory`;
//! - **output**: at most [`Limits::outputs`] values, nested at most [`Limits::depth`] deep,
//!   [`Limits::output_bytes`] in all: `limit_outputs`, `limit_depth`, `limit_output`.
//!
//! Templates come here only when [`crate::render::is_bounded`] cannot vouch for them (a
//! `{% set %}`, `*`, `~`, …): [`Sandbox::render`] renders a step's whole `with` in the child,
//! with the same fuel and output limits as in the server, and the memory and time limits above.
//!
//! Children are reused (a pool, at most [`Sandbox::new`]'s `slots` at once); one that was
//! killed or died is replaced by a fresh one on the next evaluation. Requests and replies are
//! JSON frames with a 4-byte little-endian length on the child's stdin and stdout.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use super::jq;
use super::AgentError;

/// How the sandbox's child process is started: a program and its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxCommand {
    /// The program to start (the server's own binary).
    pub program: PathBuf,
    /// Its arguments (`sandbox`).
    pub args: Vec<String>,
}

impl SandboxCommand {
    /// The running executable with the argument `sandbox`: what the `flowscope` binary
    /// answers. A cargo test binary (`target/<profile>/deps/<name>-<hash>`) cannot answer it,
    /// so there the `flowscope` or `flowscope-sandbox` binary cargo built beside it is used.
    pub fn this_executable() -> SandboxCommand {
        let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("flowscope"));
        let built = exe
            .parent()
            .filter(|d| d.ends_with("deps"))
            .and_then(|d| d.parent())
            .and_then(|dir| {
                ["flowscope", "flowscope-sandbox"]
                    .iter()
                    .map(|name| dir.join(name))
                    .find(|p| p.is_file())
            });
        SandboxCommand {
            program: built.unwrap_or(exe),
            args: vec!["sandbox".into()],
        }
    }
}

/// What one evaluation may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall time of one evaluation (compiling included).
    pub time: Duration,
    /// The child's address space.
    pub memory_bytes: u64,
    /// The evaluating thread's stack.
    pub stack_bytes: usize,
    /// Values a program may yield.
    pub outputs: usize,
    /// Nesting of a yielded value (stored outputs are read back by parsers with a depth limit
    /// of 128, and nested again under `steps.<id>.output`).
    pub depth: usize,
    /// The reply's size in bytes.
    pub output_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            time: Duration::from_secs(30),
            memory_bytes: 2 << 30,
            stack_bytes: 64 << 20,
            outputs: 10_000,
            depth: 100,
            output_bytes: 16 << 20,
        }
    }
}

/// A request to the child. The input is borrowed: it is serialized once, into the frame.
/// With `with`, the request renders it (the input is the templates' context) instead of
/// running `program`.
#[derive(Serialize)]
struct Request<'a, T: Serialize> {
    program: &'a str,
    input: &'a T,
    #[serde(skip_serializing_if = "Option::is_none")]
    with: Option<&'a serde_json::Map<String, Value>>,
    limits: WireLimits,
}

#[derive(Deserialize)]
struct OwnedRequest {
    program: String,
    input: Value,
    #[serde(default)]
    with: Option<serde_json::Map<String, Value>>,
    limits: WireLimits,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct WireLimits {
    outputs: usize,
    depth: usize,
    output_bytes: usize,
}

#[derive(Serialize, Deserialize)]
enum Reply {
    Ok(Vec<Value>),
    Err { kind: String, message: String },
}

/// A running child, between evaluations.
struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
}

/// A pool of sandbox processes that evaluate jq programs.
pub struct Sandbox {
    command: SandboxCommand,
    limits: Limits,
    idle: Mutex<Vec<Worker>>,
    slots: tokio::sync::Semaphore,
}

impl Sandbox {
    /// At most `slots` evaluations (and children) at once; more wait for a slot.
    pub fn new(command: SandboxCommand, limits: Limits, slots: usize) -> Sandbox {
        Sandbox {
            command,
            limits,
            idle: Mutex::new(Vec::new()),
            slots: tokio::sync::Semaphore::new(slots.max(1)),
        }
    }

    /// Runs `program` over `input` in a child; its values, or why not.
    pub async fn run(&self, program: &str, input: &Value) -> Result<Vec<Value>, AgentError> {
        self.evaluate(program, input, None, "the jq program").await
    }

    /// Renders a step's `with` against `context` (`{inputs, steps, run, secrets}`) in a child:
    /// what [`crate::render::render`] gives, or why not (its kinds, or a limit's).
    pub async fn render(
        &self,
        with: &serde_json::Map<String, Value>,
        context: &impl Serialize,
    ) -> Result<serde_json::Map<String, Value>, AgentError> {
        let values = self
            .evaluate("", context, Some(with), "the template")
            .await?;
        match values.into_iter().next() {
            Some(Value::Object(rendered)) => Ok(rendered),
            _ => Err(AgentError::new(
                "template",
                "the sandbox's rendering could not be read",
            )),
        }
    }

    async fn evaluate(
        &self,
        program: &str,
        input: &impl Serialize,
        with: Option<&serde_json::Map<String, Value>>,
        what: &str,
    ) -> Result<Vec<Value>, AgentError> {
        let frame = serde_json::to_vec(&Request {
            program,
            input,
            with,
            limits: WireLimits {
                outputs: self.limits.outputs,
                depth: self.limits.depth,
                output_bytes: self.limits.output_bytes,
            },
        })
        .map_err(|e| AgentError::new("jq_runtime", format!("cannot send the input: {e}")))?;
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| AgentError::new("cancelled", "the sandbox is shutting down"))?;
        let pooled = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let mut worker = match pooled {
            Some(w) => w,
            None => self.spawn()?,
        };
        // Dropping `worker` anywhere below (a timeout, the step's cancel) kills the child.
        let exchanged = tokio::time::timeout(
            self.limits.time,
            exchange(&mut worker, &frame, self.limits.output_bytes),
        )
        .await;
        let reply = match exchanged {
            Err(_) => {
                return Err(AgentError::new(
                    "limit_time",
                    format!(
                        "{what} ran longer than {} and was stopped",
                        humantime::format_duration(self.limits.time)
                    ),
                ))
            }
            Ok(Err(Exchange::TooLarge(n))) => {
                return Err(output_too_large(n, self.limits.output_bytes));
            }
            Ok(Err(Exchange::Io)) => return Err(died(worker, &self.limits, what).await),
            Ok(Ok(reply)) => reply,
        };
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(worker);
        }
        match serde_json::from_slice::<Reply>(&reply) {
            Ok(Reply::Ok(values)) => Ok(values),
            Ok(Reply::Err { kind, message }) => {
                Err(AgentError::new(super::error_kind(&kind), message))
            }
            Err(e) => Err(AgentError::new(
                "jq_runtime",
                format!("the sandbox's answer could not be read: {e}"),
            )),
        }
    }

    fn spawn(&self) -> Result<Worker, AgentError> {
        let mut child = Command::new(&self.command.program)
            .args(&self.command.args)
            .env_clear()
            .env(
                "FLOWSCOPE_SANDBOX_MEMORY",
                self.limits.memory_bytes.to_string(),
            )
            .env(
                "FLOWSCOPE_SANDBOX_STACK",
                self.limits.stack_bytes.to_string(),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                AgentError::new(
                    "spawn",
                    format!(
                        "cannot start the jq sandbox ({}): {e}",
                        self.command.program.display()
                    ),
                )
            })?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(AgentError::new("spawn", "the jq sandbox has no pipes"));
        };
        Ok(Worker {
            child,
            stdin,
            stdout,
        })
    }
}

enum Exchange {
    /// The pipe broke: the child died (or was never usable).
    Io,
    TooLarge(usize),
}

/// Writes one request frame and reads one reply frame.
async fn exchange(w: &mut Worker, frame: &[u8], max: usize) -> Result<Vec<u8>, Exchange> {
    let len = u32::try_from(frame.len()).map_err(|_| Exchange::Io)?;
    w.stdin
        .write_all(&len.to_le_bytes())
        .await
        .map_err(|_| Exchange::Io)?;
    w.stdin.write_all(frame).await.map_err(|_| Exchange::Io)?;
    w.stdin.flush().await.map_err(|_| Exchange::Io)?;
    let mut len = [0u8; 4];
    w.stdout
        .read_exact(&mut len)
        .await
        .map_err(|_| Exchange::Io)?;
    let len = u32::from_le_bytes(len) as usize;
    // The child checks the size itself; this is the parent not trusting it.
    if len > max + 4096 {
        return Err(Exchange::TooLarge(len));
    }
    let mut reply = vec![0u8; len];
    w.stdout
        .read_exact(&mut reply)
        .await
        .map_err(|_| Exchange::Io)?;
    Ok(reply)
}

fn output_too_large(n: usize, max: usize) -> AgentError {
    AgentError::new(
        "limit_output",
        format!("the jq program's output is {n} bytes; at most {max} are kept"),
    )
}

/// The child died mid-evaluation: why, from what it last wrote to stderr.
async fn died(mut w: Worker, limits: &Limits, what: &str) -> AgentError {
    let _ = w.child.start_kill();
    let mut said = Vec::new();
    if let Some(mut err) = w.child.stderr.take() {
        let _ = tokio::time::timeout(
            Duration::from_secs(1),
            (&mut err).take(64 * 1024).read_to_end(&mut said),
        )
        .await;
    }
    let _ = w.child.wait().await;
    let said = String::from_utf8_lossy(&said);
    if said.contains("overflowed its stack") {
        AgentError::new(
            "limit_stack",
            format!(
                "{what} recursed too deep (over the sandbox's {} MiB stack)",
                limits.stack_bytes >> 20
            ),
        )
    } else if said.contains("memory allocation") || said.contains("out of memory") {
        AgentError::new(
            "limit_memory",
            format!(
                "{what} needed more than the sandbox's {} MiB of memory",
                limits.memory_bytes >> 20
            ),
        )
    } else {
        let last = said.lines().last().unwrap_or("no message").trim();
        AgentError::new(
            "limit_crash",
            format!("the sandbox stopped while evaluating {what} ({last})"),
        )
    }
}

/// Compiled programs a child keeps, at most this many.
const CHILD_CACHE: usize = 256;

/// The child: limits itself, then answers requests on stdin until it closes.
pub fn child_main() -> ExitCode {
    let setting = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(default)
    };
    let defaults = Limits::default();
    let memory = setting("FLOWSCOPE_SANDBOX_MEMORY", defaults.memory_bytes);
    let stack = setting("FLOWSCOPE_SANDBOX_STACK", defaults.stack_bytes as u64) as usize;
    #[cfg(target_os = "linux")]
    {
        use rustix::process::{setrlimit, Resource, Rlimit};
        // A child whose server died goes with it, whatever it was evaluating. (Not
        // PR_SET_PDEATHSIG: that fires when the *thread* that spawned the child exits, and
        // the runtime's threads come and go.)
        if let Some(parent) = rustix::process::getppid() {
            let _ = std::thread::Builder::new()
                .name("jq-sandbox-watch".into())
                .spawn(move || loop {
                    std::thread::sleep(std::time::Duration::from_millis(500));
                    if rustix::process::getppid() != Some(parent) {
                        std::process::exit(1);
                    }
                });
        }
        let _ = setrlimit(
            Resource::As,
            Rlimit {
                current: Some(memory),
                maximum: Some(memory),
            },
        );
    }
    let serving = std::thread::Builder::new()
        .name("jq-sandbox".into())
        .stack_size(stack)
        .spawn(serve);
    match serving.map(|t| t.join()) {
        Ok(Ok(Ok(()))) => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    }
}

fn serve() -> std::io::Result<()> {
    let mut stdin = std::io::stdin().lock();
    let mut stdout = std::io::stdout().lock();
    let mut cache: HashMap<String, jq::Compiled> = HashMap::new();
    loop {
        let mut len = [0u8; 4];
        match stdin.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
        let mut frame = vec![0u8; u32::from_le_bytes(len) as usize];
        stdin.read_exact(&mut frame)?;
        let reply = match serde_json::from_slice::<OwnedRequest>(&frame) {
            Ok(request) => {
                let max = request.limits.output_bytes;
                let reply = evaluate(&mut cache, request);
                match serde_json::to_vec(&reply) {
                    Ok(bytes) if bytes.len() <= max + 1024 => Ok(bytes),
                    Ok(bytes) => Err(output_too_large(bytes.len(), max)),
                    Err(e) => Err(AgentError::new(
                        "jq_runtime",
                        format!("cannot encode the output: {e}"),
                    )),
                }
            }
            Err(e) => Err(AgentError::new(
                "jq_runtime",
                format!("cannot read the input: {e}"),
            )),
        };
        let bytes = reply.unwrap_or_else(|e| {
            serde_json::to_vec(&Reply::Err {
                kind: e.kind.into(),
                message: e.message,
            })
            .unwrap_or_default()
        });
        stdout.write_all(&(bytes.len() as u32).to_le_bytes())?;
        stdout.write_all(&bytes)?;
        stdout.flush()?;
    }
}

fn evaluate(cache: &mut HashMap<String, jq::Compiled>, request: OwnedRequest) -> Reply {
    let limits = request.limits;
    if let Some(with) = &request.with {
        let ctx = minijinja::Value::from_serialize(&request.input);
        return match crate::render::render(with, &ctx) {
            Ok(rendered) => Reply::Ok(vec![Value::Object(rendered)]),
            Err(e) => Reply::Err {
                kind: e.kind.into(),
                message: e.message,
            },
        };
    }
    if !cache.contains_key(&request.program) {
        match jq::compile(&request.program) {
            Ok(c) => {
                if cache.len() >= CHILD_CACHE {
                    cache.clear();
                }
                cache.insert(request.program.clone(), c);
            }
            Err(message) => {
                return Reply::Err {
                    kind: "jq_compile".into(),
                    message,
                }
            }
        }
    }
    let Some(compiled) = cache.get(&request.program) else {
        return Reply::Err {
            kind: "jq_runtime".into(),
            message: "the compiled program was lost".into(),
        };
    };
    match jq::run(compiled, request.input, limits.outputs, limits.depth) {
        Ok(values) => Reply::Ok(values),
        Err(e) => Reply::Err {
            kind: e.kind.into(),
            message: e.message,
        },
    }
}
