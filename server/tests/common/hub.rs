//! The typed test client every server test drives Flowscope with: [`Hub::start`] serves a
//! Flowscope on port 0 with a fresh SQLite database (or the URL given), [`Client`] speaks its
//! API as nobody, as a user of each role or with a token, and knows the common moves:
//! create a workflow, trigger a run, wait for it, follow its events.

use std::path::Path;
use std::time::Duration;

use flowscope::config::Config;
use reqwest::header::{AUTHORIZATION, COOKIE, LOCATION};
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::{quiet, serve_stoppable_on, Stoppable};

/// The administrator a hub with sign-in is started with.
pub const ADMIN: (&str, &str) = ("admin", "admin-password-1");

/// A Flowscope serving on loopback for one test; stopped when the test ends.
pub struct Hub {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    dir: tempfile::TempDir,
    server: Option<Stoppable>,
}

impl Hub {
    /// Default settings, no cron scheduler, a fresh SQLite database.
    pub async fn start() -> Hub {
        Hub::start_with(quiet()).await
    }

    /// `config` (its address, database and key file are set here) on a fresh SQLite database.
    pub async fn start_with(config: Config) -> Hub {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("flowscope.db").display());
        Hub::start_on(&url, config, dir).await
    }

    /// Sign-in on, with [`ADMIN`] as its administrator.
    pub async fn start_with_auth() -> Hub {
        Hub::start_with(Config {
            auth: true,
            admin_user: Some((ADMIN.0.to_string(), ADMIN.1.to_string())),
            ..quiet()
        })
        .await
    }

    /// On the database at `url` (PostgreSQL, or SQLite somewhere of the test's choosing);
    /// `dir` holds the key file and lives as long as the hub.
    pub async fn start_on(url: &str, config: Config, dir: tempfile::TempDir) -> Hub {
        Hub::serve(url, config, dir, None).await
    }

    /// Serving the site files in `site` instead of the build's.
    pub async fn start_site(site: &Path) -> Hub {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("flowscope.db").display());
        Hub::serve(&url, quiet(), dir, Some(site)).await
    }

    async fn serve(url: &str, config: Config, dir: tempfile::TempDir, site: Option<&Path>) -> Hub {
        let config = Config {
            database_url: url.to_string(),
            ..config
        };
        let (base, server) = serve_stoppable_on(dir.path(), config, site).await;
        Hub {
            base,
            dir,
            server: Some(server),
        }
    }

    /// The folder of its database and key file.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stops it and waits until it has let go of its database (a restart test's first half).
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
        self.dir
    }

    /// A client without credentials.
    pub fn client(&self) -> Client {
        Client::new(&self.base)
    }

    /// A client signed in as the administrator (a session cookie).
    pub async fn admin(&self) -> Client {
        self.signed_in(ADMIN.0, ADMIN.1).await
    }

    /// A client signed in as `name`.
    pub async fn signed_in(&self, name: &str, password: &str) -> Client {
        let anonymous = self.client();
        let r = anonymous
            .http
            .post(anonymous.url("/auth/login"))
            .form(&[("name", name), ("password", password), ("next", "/runs")])
            .send()
            .await
            .expect("sign in");
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "sign in as {name}");
        assert_eq!(
            r.headers()[LOCATION],
            "/runs",
            "{name}'s password is refused"
        );
        let set = r.headers()["set-cookie"].to_str().expect("ascii");
        assert!(
            set.contains("HttpOnly") && set.contains("SameSite=Lax"),
            "{set}"
        );
        let cookie = set.split(';').next().expect("a cookie").to_string();
        Client {
            auth: Some(Auth::Cookie(cookie)),
            ..anonymous
        }
    }

    /// A client signed in as a new user of `role` (created by the administrator, named after
    /// the role): one user per role, for the role matrix.
    pub async fn as_role(&self, role: &str) -> Client {
        let admin = self.admin().await;
        let password = format!("{role}-password-1");
        let (status, body) = admin
            .post_json(
                "/api/v1/users",
                json!({ "name": role, "password": password, "role": role }),
            )
            .await;
        assert!(
            status == StatusCode::CREATED || status == StatusCode::CONFLICT,
            "create the {role}: {status} {body}"
        );
        self.signed_in(role, &password).await
    }
}

/// A user's credentials as they travel.
#[derive(Clone)]
enum Auth {
    Cookie(String),
    Bearer(String),
}

/// Requests to one hub, with one identity.
#[derive(Clone)]
pub struct Client {
    /// The hub's base URL.
    pub base: String,
    /// Redirects are not followed, so tests see them; no request hangs a test forever.
    pub http: reqwest::Client,
    auth: Option<Auth>,
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(120))
        .build()
        .expect("client")
}

impl Client {
    /// A client without credentials of the Flowscope at `base` (a process the test spawned).
    pub fn new(base: &str) -> Client {
        Client {
            base: base.trim_end_matches('/').to_string(),
            http: http(),
            auth: None,
        }
    }

    /// The same hub with an API token (`Authorization: Bearer`).
    pub fn with_token(&self, token: &str) -> Client {
        Client {
            auth: Some(Auth::Bearer(token.to_string())),
            ..self.clone()
        }
    }

    /// The same hub with a session cookie (`name=value`).
    pub fn with_cookie(&self, cookie: &str) -> Client {
        Client {
            auth: Some(Auth::Cookie(cookie.to_string())),
            ..self.clone()
        }
    }

    /// The session cookie this client sends, if it signed in.
    pub fn cookie(&self) -> Option<&str> {
        match &self.auth {
            Some(Auth::Cookie(c)) => Some(c),
            _ => None,
        }
    }

    /// Creates an API token of `role` (as this client, an administrator); its value.
    pub async fn token(&self, name: &str, role: &str) -> String {
        let (status, body) = self
            .post_json("/api/v1/tokens", json!({ "name": name, "role": role }))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["token"].as_str().expect("token").to_string()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request with this client's credentials, to send as the test likes.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, self.url(path));
        match &self.auth {
            Some(Auth::Cookie(c)) => request.header(COOKIE, c),
            Some(Auth::Bearer(t)) => request.header(AUTHORIZATION, format!("Bearer {t}")),
            None => request,
        }
    }

    /// Sends `request`; its status and JSON body (`null` when it is not JSON).
    pub async fn send(&self, request: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let r = request.send().await.expect("send");
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(self.request(reqwest::Method::GET, path)).await
    }

    pub async fn post_json(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(self.request(reqwest::Method::POST, path).json(&body))
            .await
    }

    pub async fn put_json(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(self.request(reqwest::Method::PUT, path).json(&body))
            .await
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.send(self.request(reqwest::Method::DELETE, path)).await
    }

    /// Posts a YAML workflow document.
    pub async fn post_yaml(&self, path: &str, doc: &str) -> (StatusCode, Value) {
        self.send(
            self.request(reqwest::Method::POST, path)
                .header("content-type", "application/yaml")
                .body(doc.to_string()),
        )
        .await
    }

    pub async fn put_yaml(&self, path: &str, doc: &str) -> (StatusCode, Value) {
        self.send(
            self.request(reqwest::Method::PUT, path)
                .header("content-type", "application/yaml")
                .body(doc.to_string()),
        )
        .await
    }

    /// Creates the workflow `yaml` describes; fails the test unless it is stored.
    pub async fn create(&self, yaml: &str) {
        let (status, body) = self.post_yaml("/api/v1/workflows", yaml).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    /// Triggers `workflow` with `inputs`; the queued run's id.
    pub async fn trigger(&self, workflow: &str, inputs: Value) -> String {
        let (status, body) = self
            .post_json(
                &format!("/api/v1/workflows/{workflow}/runs"),
                json!({ "inputs": inputs }),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "trigger {workflow}: {body}");
        body["run"]["id"].as_str().expect("run id").to_string()
    }

    /// Triggers `workflow` and returns the run once it has finished.
    pub async fn run(&self, workflow: &str, inputs: Value) -> Value {
        let id = self.trigger(workflow, inputs).await;
        self.wait_finished(&id).await
    }

    /// The run as the API shows it.
    pub async fn get_run(&self, id: &str) -> Value {
        let (status, run) = self.get(&format!("/api/v1/runs/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{run}");
        run
    }

    /// Polls the run until it has finished; returns it.
    pub async fn wait_finished(&self, id: &str) -> Value {
        self.wait_run(id, |run| run["finished_at"].is_i64()).await
    }

    /// Polls the run until `done` holds for it; returns it.
    pub async fn wait_run(&self, id: &str, done: impl Fn(&Value) -> bool) -> Value {
        loop {
            let run = self.get_run(id).await;
            if done(&run) {
                return run;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Polls a run list (`/api/v1/runs?…`) until `done` holds for its runs; returns them.
    pub async fn wait_run_list(&self, path: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        loop {
            let (status, page) = self.get(path).await;
            assert_eq!(status, StatusCode::OK, "{page}");
            let runs = page["runs"].as_array().cloned().unwrap_or_default();
            if done(&runs) {
                return runs;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Follows the run's event stream until it ends: the events' names, and the final run.
    pub async fn follow(&self, id: &str) -> (Vec<String>, Value) {
        let mut r = self
            .request(reqwest::Method::GET, &format!("/api/v1/runs/{id}/events"))
            .send()
            .await
            .expect("events");
        assert_eq!(r.headers()["content-type"], "text/event-stream");
        let mut text = String::new();
        while let Some(chunk) = r.chunk().await.expect("chunk") {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
        let names = text
            .lines()
            .filter_map(|l| l.strip_prefix("event: "))
            .map(str::to_string)
            .collect();
        (names, self.get_run(id).await)
    }
}
