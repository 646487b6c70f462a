//! Shared by the server's tests: the typed test client (`hub`), real `flowscope` processes
//! (`procs`), a Slack-compatible receiver, raw HTTP, and the files of `observability/`.

// Each test binary uses part of this module.
#![allow(dead_code)]

pub mod hub;
pub mod procs;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::routing::post;
use axum::{Json, Router};

use flowscope::config::Config;
use flowscope::startup::Application;
use serde_json::Value;

/// The default settings without the cron scheduler.
pub fn quiet() -> Config {
    Config {
        scheduler: false,
        ..Config::default()
    }
}

/// A server from [`serve_stoppable_on`]: [`Stoppable::stop`] shuts it down and waits until it
/// has let go of its database.
pub struct Stoppable {
    stop: tokio::sync::oneshot::Sender<()>,
    done: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Stoppable {
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.done.await;
    }
}

/// Serves `config` on its database with the key file in `dir` and the site in `site` (when
/// `None`: no site files at all).
pub async fn serve_stoppable_on(
    dir: &Path,
    config: Config,
    site: Option<&Path>,
) -> (String, Stoppable) {
    let config = Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        secret_key: engine::vault::KeySource::File(dir.join("secret.key")),
        // The fakes these tests start (Slack, echo servers) listen on loopback.
        egress_allow_private: true,
        ..config
    };
    // No built site unless one is given: what a page names must not depend on whether a
    // release build (hashed names) happens to sit in `target/site`.
    let site = site.map_or_else(
        || dir.join("site").display().to_string(),
        |s| s.display().to_string(),
    );
    let options = leptos::prelude::LeptosOptions::builder()
        .output_name("flowscope")
        .site_root(site)
        .build();
    let app = Application::build(&config, options).await.expect("app");
    let base = format!("http://{}", app.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let done = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    (base, Stoppable { stop, done })
}

/// A Slack-compatible incoming webhook on loopback: what the `notify` agent posts to.
pub struct Slack {
    /// Where to post: `http://127.0.0.1:PORT/hooks/alerts`.
    pub url: String,
    /// Each message's `text`, with when it arrived.
    pub messages: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl Slack {
    pub async fn start() -> Slack {
        let messages: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
        let seen = messages.clone();
        let receiver = Router::new().route(
            "/hooks/alerts",
            post(move |Json(body): Json<Value>| {
                // Slack's incoming webhooks take `text`, or attachments (what Alertmanager's
                // slack_configs send): their title and text then.
                let text = match body["text"].as_str() {
                    Some(t) => t.to_string(),
                    None => body["attachments"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|a| {
                            format!(
                                "{} {}",
                                a["title"].as_str().unwrap_or_default(),
                                a["text"].as_str().unwrap_or_default()
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("\n"),
                };
                seen.lock().expect("lock").push((Instant::now(), text));
                async { "ok" }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!(
            "http://{}/hooks/alerts",
            listener.local_addr().expect("addr")
        );
        tokio::spawn(async move { axum::serve(listener, receiver).await });
        Slack { url, messages }
    }

    /// The texts received so far.
    pub fn texts(&self) -> Vec<String> {
        let messages = self.messages.lock().expect("lock");
        messages.iter().map(|(_, t)| t.clone()).collect()
    }
}

/// A loopback port nobody listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A file of the observability stack, by its path under `observability/`.
pub fn stack_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../observability")
        .join(path)
}

/// A YAML file of the stack, parsed; a file that does not parse fails the test, naming it.
pub fn read_yaml(path: &str) -> serde_norway::Value {
    let file = stack_file(path);
    let text = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{} is not YAML: {e}", file.display()))
}

/// The Grafana dashboards (`grafana/dashboards/*.json`), parsed, with their file names.
pub fn dashboards() -> Vec<(String, Value)> {
    let folder = stack_file("grafana/dashboards");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&folder)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", folder.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|file| {
            let text = std::fs::read_to_string(&file).expect("read");
            let name = file
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            let value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{} is not JSON: {e}", file.display()));
            (name, value)
        })
        .collect()
}

/// Every panel of a dashboard, those inside rows included.
pub fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    let mut stack: Vec<&Value> = dashboard["panels"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    while let Some(panel) = stack.pop() {
        stack.extend(panel["panels"].as_array().into_iter().flatten());
        out.push(panel);
    }
    out
}

/// A response read off the wire by [`raw_request`].
pub struct RawResponse {
    pub status: u16,
    /// Header lines, names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `method path` exactly as written (HTTP clients resolve `..` before sending, as a
/// browser does; an attacker's client does not), with `headers`; reads the whole answer.
pub async fn raw_request(
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> RawResponse {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: 0\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        request.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    RawResponse {
        status,
        headers,
        body: body.to_string(),
    }
}
