//! `shell`: runs a program with an argument vector (no shell interpolation). Off unless the
//! server enables it. The child starts with an empty environment plus an allow-list of the
//! server's variables and the step's `env`; it is killed when the step times out or the run
//! is cancelled (`kill_on_drop`). Output `{exit_code, stdout, stderr}`.

use std::process::Stdio;

use serde_json::{json, Map, Value};

use super::{string_field, Agent, AgentContext, AgentError, AgentFuture};

/// Captured output beyond this is cut.
const MAX_CAPTURE: usize = 1024 * 1024;

pub struct Shell {
    /// Names of the server's environment variables a child may inherit (e.g. PATH, HOME).
    pub inherit_env: Vec<String>,
}

impl Agent for Shell {
    fn run<'a>(&'a self, ctx: &'a AgentContext, with: &'a Map<String, Value>) -> AgentFuture<'a> {
        Box::pin(async move {
            let program = string_field(with, "program")?;
            let args: Vec<String> = match with.get("args") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|v| {
                        v.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| v.to_string())
                    })
                    .collect(),
                Some(_) => return Err(AgentError::config("args: expected a list of strings")),
            };
            let mut command = tokio::process::Command::new(program);
            command
                .args(&args)
                .env_clear()
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true);
            for name in &self.inherit_env {
                if let Ok(v) = std::env::var(name) {
                    command.env(name, v);
                }
            }
            if let Some(env) = with.get("env").and_then(Value::as_object) {
                for (k, v) in env {
                    command.env(k, v.as_str().unwrap_or_default());
                }
            }
            ctx.log(format!("exec {program} {}", args.join(" ")));
            let out = command
                .output()
                .await
                .map_err(|e| AgentError::new("spawn", format!("cannot run {program}: {e}")))?;
            let text =
                |b: &[u8]| String::from_utf8_lossy(&b[..b.len().min(MAX_CAPTURE)]).into_owned();
            let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
            let code = out.status.code();
            if !out.status.success() {
                let tail: String = stderr
                    .chars()
                    .rev()
                    .take(300)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                return Err(AgentError::new(
                    "exit_status",
                    format!(
                        "{program} exited with {}: {tail}",
                        code.map_or("a signal".into(), |c| c.to_string())
                    ),
                ));
            }
            Ok(json!({ "exit_code": code, "stdout": stdout, "stderr": stderr }))
        })
    }
}
