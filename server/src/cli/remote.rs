//! The commands that talk to a running Flowscope over its REST API: `apply`, `run`, `runs`,
//! `export`, `approve`/`reject`, `event`, `pause`/`resume`. For a person's terminal and for CI, so every outcome is an exit code:
//!
//! - 0: done (for `run --wait`: the run succeeded).
//! - 1: the work was refused or did not succeed (invalid workflow, a failed, cancelled or
//!   timed-out run).
//! - 2: the request could not be made (bad arguments, server unreachable, unexpected answer).
//!
//! The server is `--server` / `FLOWSCOPE_SERVER` (default `http://127.0.0.1:3000`); a token
//! (`--token` / `FLOWSCOPE_TOKEN`) is sent as a bearer token.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use engine::model::Workflow;
use reqwest::{Client, RequestBuilder, StatusCode};
use serde_json::{Map, Value};

/// Where the server is and how to prove who we are.
#[derive(Debug, Clone, clap::Args)]
pub struct Remote {
    /// Base URL of the Flowscope server.
    #[arg(
        long,
        env = "FLOWSCOPE_SERVER",
        default_value = "http://127.0.0.1:3000",
        global = true
    )]
    pub server: String,
    /// API token, sent as a bearer token.
    #[arg(long, env = "FLOWSCOPE_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
}

/// A failure, with the exit code it maps to.
#[derive(Debug)]
pub enum Failure {
    /// Exit 1: refused or not successful; the message says why.
    Refused(String),
    /// Exit 2: the request could not be made.
    Trouble(String),
}

impl Failure {
    pub fn exit(self) -> ExitCode {
        match self {
            Failure::Refused(m) => {
                eprintln!("{m}");
                ExitCode::from(1)
            }
            Failure::Trouble(m) => {
                eprintln!("error: {m}");
                ExitCode::from(2)
            }
        }
    }
}

struct Api {
    base: String,
    token: Option<String>,
    client: Client,
}

impl Api {
    fn new(remote: &Remote) -> Api {
        Api {
            base: remote.server.trim_end_matches('/').to_string(),
            token: remote.token.clone(),
            client: Client::new(),
        }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> RequestBuilder {
        let r = self
            .client
            .request(method, format!("{}/api/v1{path}", self.base));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    /// Sends; returns the status and the body (JSON when it is JSON, else a string).
    async fn send(&self, r: RequestBuilder) -> Result<(StatusCode, Value), Failure> {
        let (status, text) = self.send_raw(r).await?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }

    /// Sends; returns the status and the body's text as it came.
    async fn send_raw(&self, r: RequestBuilder) -> Result<(StatusCode, String), Failure> {
        let response = r.send().await.map_err(|e| {
            Failure::Trouble(format!(
                "cannot reach Flowscope at {} ({e}); set --server or FLOWSCOPE_SERVER",
                self.base
            ))
        })?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| Failure::Trouble(format!("the answer broke off: {e}")))?;
        Ok((status, text))
    }
}

/// The API's error body as lines: the message, then each problem with its path.
fn error_text(body: &Value) -> String {
    let error = &body["error"];
    let mut text = error["message"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| body.to_string());
    for p in error["problems"].as_array().into_iter().flatten() {
        text.push_str(&format!(
            "\n  {}: {}",
            p["path"].as_str().unwrap_or(""),
            p["message"].as_str().unwrap_or("")
        ));
    }
    text
}

/// Refused (1) for answers about the request (4xx), trouble (2) for anything else.
fn failure(status: StatusCode, body: &Value) -> Failure {
    let text = format!("{status}: {}", error_text(body));
    if status.is_client_error() && status != StatusCode::NOT_FOUND {
        Failure::Refused(text)
    } else {
        Failure::Trouble(text)
    }
}

/// Creates each file's workflow, or saves it as a new version; unchanged files save nothing.
pub async fn apply(remote: &Remote, files: &[PathBuf]) -> Result<(), Failure> {
    let api = Api::new(remote);
    let mut refused = Vec::new();
    for file in files {
        let shown = file.display();
        let text = std::fs::read_to_string(file)
            .map_err(|e| Failure::Trouble(format!("{shown}: cannot read: {e}")))?;
        // Checked here first: the same rules as the server, and every problem at once.
        let workflow = match Workflow::parse(&text) {
            Ok(w) => w,
            Err(problems) => {
                for p in problems {
                    eprintln!("{shown}: {p}");
                }
                refused.push(shown.to_string());
                continue;
            }
        };
        let id = workflow.id();
        let (status, current) = api
            .send_raw(api.request(reqwest::Method::GET, &format!("/workflows/{id}/export")))
            .await?;
        let request = match status {
            StatusCode::OK if current == text => {
                println!("{shown}: {id} unchanged");
                continue;
            }
            StatusCode::OK => api.request(reqwest::Method::PUT, &format!("/workflows/{id}")),
            StatusCode::NOT_FOUND => api.request(reqwest::Method::POST, "/workflows"),
            other => {
                let body = serde_json::from_str(&current).unwrap_or(Value::String(current));
                return Err(failure(other, &body));
            }
        };
        let (status, saved) = api
            .send(
                request
                    .header("content-type", "application/yaml")
                    .body(text.clone()),
            )
            .await?;
        if !status.is_success() {
            eprintln!("{shown}: {}", error_text(&saved));
            refused.push(shown.to_string());
            continue;
        }
        let verb = if status == StatusCode::CREATED {
            "created"
        } else {
            "saved"
        };
        println!(
            "{shown}: {id} {verb} as version {}",
            saved["version"]["version"]
        );
    }
    match refused.is_empty() {
        true => Ok(()),
        false => Err(Failure::Refused(format!(
            "not applied: {}",
            refused.join(", ")
        ))),
    }
}

/// `k=v` pairs as run inputs: a value that reads as JSON is that JSON (`n=5`, `on=true`,
/// `tags=["a"]`), anything else is a string (`who=you`).
pub fn parse_inputs(pairs: &[String]) -> Result<Map<String, Value>, Failure> {
    let mut inputs = Map::new();
    for pair in pairs {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| Failure::Trouble(format!("--input \"{pair}\" is not name=value")))?;
        let value = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_string()));
        inputs.insert(k.trim().to_string(), value);
    }
    Ok(inputs)
}

/// `k=v` pairs as labels (`env=prod`), checked as the server checks them.
pub fn parse_labels(pairs: &[String]) -> Result<engine::search::Labels, Failure> {
    let mut labels = engine::search::Labels::new();
    for pair in pairs {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| Failure::Trouble(format!("--label \"{pair}\" is not key=value")))?;
        labels.insert(k.trim().to_string(), v.trim().to_string());
    }
    engine::search::check_labels(&labels).map_err(Failure::Trouble)?;
    Ok(labels)
}

/// Triggers a run; with `wait`, follows it to the end and answers with its outcome.
pub async fn run(
    remote: &Remote,
    workflow: &str,
    inputs: Map<String, Value>,
    labels: engine::search::Labels,
    version: Option<i64>,
    wait: bool,
) -> Result<(), Failure> {
    let api = Api::new(remote);
    let mut body = serde_json::json!({ "inputs": inputs, "labels": labels });
    if let Some(v) = version {
        body["version"] = v.into();
    }
    let mut request = api
        .request(
            reqwest::Method::POST,
            &format!("/workflows/{workflow}/runs"),
        )
        .json(&body);
    if wait {
        // The server holds the request until the run ends (most do within the minute).
        request = request.query(&[("wait", "60s")]);
    }
    let (status, created) = api.send(request).await?;
    if !status.is_success() {
        return Err(failure(status, &created));
    }
    let id = created["run"]["id"]
        .as_str()
        .ok_or_else(|| Failure::Trouble(format!("unexpected answer: {created}")))?
        .to_string();
    if !wait {
        println!("run {id} queued: {}/runs/{id}", api.base);
        return Ok(());
    }
    println!("run {id}: {}/runs/{id}", api.base);
    // 200: it finished within the server's wait; 202: still going, so follow it from here.
    let run = if status == StatusCode::OK {
        created["run"].clone()
    } else {
        loop {
            let (status, run) = api
                .send(api.request(reqwest::Method::GET, &format!("/runs/{id}")))
                .await?;
            if !status.is_success() {
                return Err(failure(status, &run));
            }
            if run["finished_at"].is_i64() {
                break run;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    for step in run["steps"].as_array().into_iter().flatten() {
        let mut line = format!(
            "  {:<24} {}",
            step["step_id"].as_str().unwrap_or("?"),
            step["status"].as_str().unwrap_or("?")
        );
        if let Some(e) = step["error_message"].as_str() {
            line.push_str(&format!(": {e}"));
        }
        println!("{line}");
    }
    let status = run["status"].as_str().unwrap_or("?");
    let took = match (run["started_at"].as_i64(), run["finished_at"].as_i64()) {
        (Some(s), Some(f)) => format!(" in {} ms", f - s),
        _ => String::new(),
    };
    match status {
        "succeeded" => {
            println!("run {id} succeeded{took}");
            if let Some(outputs) = run.get("outputs").filter(|o| !o.is_null()) {
                println!("outputs: {outputs}");
            }
            Ok(())
        }
        _ => Err(Failure::Refused(format!(
            "run {id} {status}{took}{}",
            run["error"]
                .as_str()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        ))),
    }
}

/// What `flowscope runs` lists.
pub struct RunsFilter {
    /// Runs of this workflow.
    pub workflow: Option<String>,
    /// Runs in this status.
    pub status: Option<String>,
    /// Runs with every one of these labels.
    pub labels: engine::search::Labels,
    /// Words their inputs, outputs or errors hold.
    pub search: Option<String>,
}

/// The newest runs as a table.
pub async fn runs(remote: &Remote, filter: &RunsFilter, limit: i64) -> Result<(), Failure> {
    let api = Api::new(remote);
    let mut query = vec![("limit", limit.to_string())];
    if let Some(w) = &filter.workflow {
        query.push(("workflow", w.clone()));
    }
    if let Some(s) = &filter.status {
        query.push(("status", s.clone()));
    }
    for (k, v) in &filter.labels {
        query.push(("label", format!("{k}:{v}")));
    }
    if let Some(q) = &filter.search {
        query.push(("q", q.clone()));
    }
    let (code, page) = api
        .send(api.request(reqwest::Method::GET, "/runs").query(&query))
        .await?;
    if !code.is_success() {
        return Err(failure(code, &page));
    }
    println!(
        "{:<36}  {:<24}  {:<10}  {:<8}  {:>10}  LABELS",
        "RUN", "WORKFLOW", "STATUS", "TRIGGER", "RUN TIME"
    );
    for r in page["runs"].as_array().into_iter().flatten() {
        let took = match (r["started_at"].as_i64(), r["finished_at"].as_i64()) {
            (Some(s), Some(f)) => format!("{} ms", f - s),
            _ => "–".into(),
        };
        let labels: Vec<String> = r["labels"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
            .collect();
        println!(
            "{:<36}  {:<24}  {:<10}  {:<8}  {:>10}  {}",
            r["id"].as_str().unwrap_or("?"),
            r["workflow_id"].as_str().unwrap_or("?"),
            r["status"].as_str().unwrap_or("?"),
            r["trigger"].as_str().unwrap_or("?"),
            took,
            labels.join(",")
        );
    }
    Ok(())
}

/// Prints a version's text exactly as saved (latest when `version` is absent).
pub async fn export(remote: &Remote, workflow: &str, version: Option<i64>) -> Result<(), Failure> {
    let api = Api::new(remote);
    let mut r = api.request(
        reqwest::Method::GET,
        &format!("/workflows/{workflow}/export"),
    );
    if let Some(v) = version {
        r = r.query(&[("version", v)]);
    }
    match api.send_raw(r).await? {
        (StatusCode::OK, text) => {
            print!("{text}");
            Ok(())
        }
        (status, body) => Err(failure(
            status,
            &serde_json::from_str(&body).unwrap_or(Value::String(body)),
        )),
    }
}

/// Approves or rejects an approval step: who decides is the token's user.
pub async fn decide(
    remote: &Remote,
    args: super::DecideArgs,
    approved: bool,
) -> Result<(), Failure> {
    let api = Api::new(remote);
    let fields = parse_inputs(&args.fields)?;
    let body =
        serde_json::json!({ "approved": approved, "comment": args.comment, "fields": fields });
    let (status, answer) = api
        .send(
            api.request(
                reqwest::Method::POST,
                &format!("/runs/{}/steps/{}/decision", args.run, args.step),
            )
            .json(&body),
        )
        .await?;
    if !status.is_success() {
        return Err(failure(status, &answer));
    }
    let by = answer["decision"]["by"].as_str().unwrap_or("?");
    let verb = if approved { "approved" } else { "rejected" };
    println!("step {} of run {} {verb} by {by}", args.step, args.run);
    Ok(())
}

/// Posts an event; says how many waiting runs it resolved.
pub async fn event(remote: &Remote, key: &str, data: Option<&str>) -> Result<(), Failure> {
    let api = Api::new(remote);
    let payload: Value = match data {
        None => Value::Object(Map::new()),
        Some(text) => serde_json::from_str(text)
            .map_err(|e| Failure::Trouble(format!("--data is not JSON: {e}")))?,
    };
    // One path segment, whatever the key holds (the guard refuses other spellings).
    let segment: String = key
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    let path = format!("/events/{segment}");
    let (status, answer) = api
        .send(api.request(reqwest::Method::POST, &path).json(&payload))
        .await?;
    if !status.is_success() {
        return Err(failure(status, &answer));
    }
    let resolved = answer["resolved"].as_i64().unwrap_or(0);
    let kept = if answer["kept_until"].is_i64() {
        "; kept for waits that start soon"
    } else {
        ""
    };
    println!("event \"{key}\": resolved {resolved} waiting run(s){kept}");
    Ok(())
}

/// Pauses (or resumes) a run.
pub async fn pause(remote: &Remote, run: &str, pause: bool) -> Result<(), Failure> {
    let api = Api::new(remote);
    let action = if pause { "pause" } else { "resume" };
    let (status, answer) = api
        .send(api.request(reqwest::Method::POST, &format!("/runs/{run}/{action}")))
        .await?;
    if !status.is_success() {
        return Err(failure(status, &answer));
    }
    let was = answer["status"].as_str().unwrap_or("?");
    let asked = if pause { "pause" } else { "resume" };
    println!("run {run}: {asked} requested (it was {was})");
    Ok(())
}
