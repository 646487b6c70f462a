//! Settings (SPEC §7): `FLOWSCOPE_*` environment variables first, then an optional
//! `flowscope.toml` (or the file `FLOWSCOPE_CONFIG` names), then defaults.
//! A bad value stops start-up with a message that names the setting.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Everything the server needs to start.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Address the HTTP server binds (port 0 picks a free one, for tests).
    pub listen: SocketAddr,
    /// `sqlite://…` (embedded default) or `postgres://…`.
    pub database_url: String,
    /// Load the example workflows into an empty database on start.
    pub seed_examples: bool,
    /// Base URL of Grafana, for trace and dashboard links.
    pub grafana_url: Option<String>,
    /// uid of the Tempo datasource in that Grafana.
    pub grafana_tempo_uid: String,
    /// `{{ secrets.NAME }}` values, from `FLOWSCOPE_SECRET_<NAME>` variables (until the
    /// encrypted secret store lands); redacted from everything stored.
    pub secrets: std::collections::HashMap<String, String>,
    /// Whether the `shell` agent may run programs on this server.
    pub shell_enabled: bool,
    /// `llm` prices, `model=IN/OUT,…` in USD per million tokens.
    pub llm_prices: std::collections::HashMap<String, engine::agents::llm::Price>,
    /// Bearer token Alertmanager must send to `/api/v1/alerts/alertmanager`; none: refused.
    pub alert_token: Option<String>,
    /// The workflow an alert notification starts.
    pub alert_workflow: String,
    /// Fire cron triggers from this process (every process on a database may; each
    /// occurrence fires once).
    pub scheduler: bool,
    /// Serve on an address other than loopback although there is no sign-in (behind an
    /// authenticating proxy, or in the compose stack's private network).
    pub allow_unauthenticated: bool,
    /// Sign-in required: users, sessions, roles and API tokens (off: everyone is admin, which
    /// only loopback allows).
    pub auth: bool,
    /// The first admin, created at start when there is no user yet (else the `/setup` page
    /// asks for one).
    pub admin_user: Option<(String, String)>,
    /// The key stored secrets are sealed with: 64 hex digits, or a key file (created on the
    /// first stored secret; by default `secret.key` beside the SQLite file, or
    /// `data/secret.key`).
    pub secret_key: engine::vault::KeySource,
    /// Hosts the `http` agent may call (`*.example.com` for subdomains); none: any host that
    /// is not link-local.
    pub http_allowed_hosts: Option<Vec<String>>,
    /// On PostgreSQL: how long a silent process keeps its runs before others take them over.
    pub worker_lease: std::time::Duration,
    /// On PostgreSQL: this process's name in the workers list (default `host:pid`).
    pub worker_name: Option<String>,
    /// Runs this process holds at once (it claims no more beyond); 0 on PostgreSQL: this
    /// server runs none, workers beside it run them all.
    pub worker_max_runs: usize,
    /// Step attempts this process runs at once; beyond it, on PostgreSQL beside other
    /// workers, ready steps are offered to them.
    pub worker_max_steps: usize,
    /// Where `flowscope worker` serves `/metrics`, `/healthz` and `/readyz`.
    pub worker_listen: SocketAddr,
    /// In an exported trace, commits at least this long get a span of their own.
    pub trace_commit_threshold: std::time::Duration,
    /// The URL people reach Flowscope at (`FLOWSCOPE_PUBLIC_URL`, default `http://<listen>`):
    /// its host is the only one served besides the loopback names (DNS rebinding), and it is
    /// the base of links in notifications.
    pub public_url: String,
    /// Agents may reach loopback and private addresses (`FLOWSCOPE_EGRESS_ALLOW_PRIVATE`):
    /// off by default, so a workflow cannot probe the hub's own network.
    pub egress_allow_private: bool,
    /// Proxies in front whose `X-Forwarded-For` names the client (the sign-in limit counts
    /// per client address); none: every peer is the client.
    pub trusted_proxies: Vec<crate::auth::Proxy>,
    /// Times a step's process may stop while running it before the step fails as
    /// `crash_loop` (`FLOWSCOPE_STEP_MAX_INTERRUPTIONS`, default 3; 0: never).
    pub step_max_interruptions: i64,
    /// How long an event nobody waited for is kept for waits that start later
    /// (`FLOWSCOPE_EVENT_KEEP`, default 10m; 0s: not kept).
    pub event_keep: std::time::Duration,
    /// Finished runs are kept this long when their workflow's `retention:` does not say
    /// (`FLOWSCOPE_RETENTION_MAX_AGE`; unset: no age limit).
    pub retention_max_age: Option<std::time::Duration>,
    /// Only this many of a workflow's newest runs are kept when it does not say
    /// (`FLOWSCOPE_RETENTION_MAX_RUNS`; unset: no limit).
    pub retention_max_runs: Option<u64>,
    /// Failed runs are kept this long whatever the limits (`FLOWSCOPE_RETENTION_KEEP_FAILED`).
    pub retention_keep_failed: Option<std::time::Duration>,
    /// Time between retention passes (`FLOWSCOPE_RETENTION_EVERY`, default 10m; 0s: none).
    pub retention_every: std::time::Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 3000)),
            database_url: "sqlite://data/flowscope.db".into(),
            seed_examples: true,
            grafana_url: None,
            grafana_tempo_uid: "tempo".into(),
            secrets: Default::default(),
            shell_enabled: false,
            llm_prices: Default::default(),
            alert_token: None,
            alert_workflow: "notify-on-alert".into(),
            scheduler: true,
            allow_unauthenticated: false,
            auth: false,
            admin_user: None,
            secret_key: engine::vault::KeySource::File(PathBuf::from("data/secret.key")),
            http_allowed_hosts: None,
            worker_lease: std::time::Duration::from_secs(15),
            worker_name: None,
            worker_max_runs: 1000,
            worker_max_steps: 1024,
            // OpenTelemetry's port for a Prometheus endpoint; several workers on one host
            // need one each.
            worker_listen: SocketAddr::from(([127, 0, 0, 1], 9464)),
            trace_commit_threshold: std::time::Duration::from_millis(1),
            public_url: "http://127.0.0.1:3000".into(),
            egress_allow_private: false,
            trusted_proxies: Vec::new(),
            step_max_interruptions: 3,
            event_keep: std::time::Duration::from_secs(600),
            retention_max_age: None,
            retention_max_runs: None,
            retention_keep_failed: None,
            retention_every: std::time::Duration::from_secs(600),
        }
    }
}

pub use engine::vault::VAULT_SETTINGS;

/// A setting that could not be used; `setting` is its environment-variable or file key.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("configuration: {setting}: {message}")]
pub struct ConfigError {
    pub setting: String,
    pub message: String,
}

fn err(setting: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        setting: setting.to_string(),
        message: message.into(),
    }
}

/// The keys `flowscope.toml` may hold; unknown keys are an error, not silently ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    database_url: Option<String>,
    seed_examples: Option<bool>,
    grafana_url: Option<String>,
    grafana_tempo_uid: Option<String>,
    shell_enabled: Option<bool>,
    llm_prices: Option<String>,
    alert_token: Option<String>,
    alert_workflow: Option<String>,
    scheduler: Option<bool>,
    allow_unauthenticated: Option<bool>,
    http_allowed_hosts: Option<String>,
    auth: Option<bool>,
    secret_key_file: Option<String>,
    worker_lease: Option<String>,
    worker_name: Option<String>,
    worker_max_runs: Option<usize>,
    worker_max_steps: Option<usize>,
    worker_listen: Option<String>,
    trace_commit_threshold: Option<String>,
    event_keep: Option<String>,
    retention_max_age: Option<String>,
    retention_max_runs: Option<u64>,
    retention_keep_failed: Option<String>,
    retention_every: Option<String>,
    public_url: Option<String>,
    egress_allow_private: Option<bool>,
    trusted_proxies: Option<String>,
}

impl Config {
    /// Where trace links point: Grafana Explore when `grafana_url` is set.
    pub fn trace_links(&self) -> engine::links::TraceLinks {
        engine::links::TraceLinks {
            grafana_url: self.grafana_url.clone(),
            tempo_uid: self.grafana_tempo_uid.clone(),
        }
    }

    /// The engine's part among several processes on one PostgreSQL database.
    pub fn worker(&self, kind: &'static str) -> engine::executor::WorkerConfig {
        let mut w = engine::executor::WorkerConfig {
            kind,
            lease: self.worker_lease,
            max_runs: self.worker_max_runs,
            ..Default::default()
        };
        if let Some(name) = &self.worker_name {
            w.name = name.clone();
        }
        w
    }

    /// Reads the process environment and the config file.
    pub fn load() -> Result<Config, ConfigError> {
        let mut config = Config::from_sources(|k| std::env::var(k).ok())?;
        config.secrets = std::env::vars()
            .filter_map(|(k, v)| {
                k.strip_prefix("FLOWSCOPE_SECRET_")
                    .map(|name| (name.to_string(), v))
            })
            // The vault's own settings share the prefix; the master key is never a template value.
            .filter(|(name, _)| !VAULT_SETTINGS.contains(&name.as_str()))
            .collect();
        Ok(config)
    }

    /// Builds a config from an environment lookup (tests pass a map) and the file it names.
    pub fn from_sources(env: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let (path, required) = match env("FLOWSCOPE_CONFIG") {
            Some(p) => (PathBuf::from(p), true),
            None => (PathBuf::from("flowscope.toml"), false),
        };
        let file = read_file(&path, required)?;
        let mut config = Config::default();

        if let Some(v) = env("FLOWSCOPE_LISTEN")
            .map(|v| ("FLOWSCOPE_LISTEN", v))
            .or(file.listen.map(|v| ("listen", v)))
        {
            config.listen = v.1.parse().map_err(|_| {
                err(
                    v.0,
                    format!("\"{}\" is not an address like 127.0.0.1:3000", v.1),
                )
            })?;
        }
        if let Some(v) = env("FLOWSCOPE_DATABASE_URL")
            .map(|v| ("FLOWSCOPE_DATABASE_URL", v))
            .or(file.database_url.map(|v| ("database_url", v)))
        {
            if !(v.1.starts_with("sqlite:")
                || v.1.starts_with("postgres://")
                || v.1.starts_with("postgresql://"))
            {
                return Err(err(
                    v.0,
                    format!("\"{}\" is neither sqlite://PATH nor postgres://…", v.1),
                ));
            }
            config.database_url = v.1;
        }
        if let Some(v) = env("FLOWSCOPE_SEED_EXAMPLES") {
            config.seed_examples = parse_bool(&v).ok_or_else(|| {
                err(
                    "FLOWSCOPE_SEED_EXAMPLES",
                    format!("\"{v}\" is not true or false"),
                )
            })?;
        } else if let Some(b) = file.seed_examples {
            config.seed_examples = b;
        }
        if let Some(v) = env("FLOWSCOPE_GRAFANA_URL")
            .map(|v| ("FLOWSCOPE_GRAFANA_URL", v))
            .or(file.grafana_url.map(|v| ("grafana_url", v)))
        {
            if !(v.1.starts_with("http://") || v.1.starts_with("https://")) {
                return Err(err(v.0, format!("\"{}\" is not an http(s) URL", v.1)));
            }
            config.grafana_url = Some(v.1.trim_end_matches('/').to_string());
        }
        if let Some(v) = env("FLOWSCOPE_GRAFANA_TEMPO_UID").or(file.grafana_tempo_uid) {
            if v.trim().is_empty() {
                return Err(err("FLOWSCOPE_GRAFANA_TEMPO_UID", "must not be empty"));
            }
            config.grafana_tempo_uid = v;
        }
        if let Some(v) = env("FLOWSCOPE_SHELL_ENABLED") {
            config.shell_enabled = parse_bool(&v).ok_or_else(|| {
                err(
                    "FLOWSCOPE_SHELL_ENABLED",
                    format!("\"{v}\" is not true or false"),
                )
            })?;
        } else if let Some(b) = file.shell_enabled {
            config.shell_enabled = b;
        }
        if let Some(v) = env("FLOWSCOPE_ALLOW_UNAUTHENTICATED") {
            config.allow_unauthenticated = parse_bool(&v).ok_or_else(|| {
                err(
                    "FLOWSCOPE_ALLOW_UNAUTHENTICATED",
                    format!("\"{v}\" is not true or false"),
                )
            })?;
        } else if let Some(b) = file.allow_unauthenticated {
            config.allow_unauthenticated = b;
        }
        if let Some(v) = env("FLOWSCOPE_AUTH") {
            config.auth = parse_bool(&v)
                .ok_or_else(|| err("FLOWSCOPE_AUTH", format!("\"{v}\" is not true or false")))?;
        } else if let Some(b) = file.auth {
            config.auth = b;
        }
        // Without sign-in, only loopback is private enough to serve on.
        if !config.listen.ip().is_loopback() && !config.auth && !config.allow_unauthenticated {
            return Err(err(
                "FLOWSCOPE_LISTEN",
                format!(
                    "{} would serve the hub to the network without sign-in; set \
                     FLOWSCOPE_AUTH=true, or bind 127.0.0.1, or set \
                     FLOWSCOPE_ALLOW_UNAUTHENTICATED=true behind an authenticating proxy",
                    config.listen
                ),
            ));
        }
        match (env("FLOWSCOPE_ADMIN_USER"), env("FLOWSCOPE_ADMIN_PASSWORD")) {
            (Some(user), Some(password)) => {
                engine::access::check_name("user", &user)
                    .map_err(|m| err("FLOWSCOPE_ADMIN_USER", m))?;
                engine::access::check_password(&password)
                    .map_err(|m| err("FLOWSCOPE_ADMIN_PASSWORD", m))?;
                config.admin_user = Some((user, password));
            }
            (None, None) => {}
            (Some(_), None) => {
                return Err(err(
                    "FLOWSCOPE_ADMIN_PASSWORD",
                    "must be set with FLOWSCOPE_ADMIN_USER",
                ))
            }
            (None, Some(_)) => {
                return Err(err(
                    "FLOWSCOPE_ADMIN_USER",
                    "must be set with FLOWSCOPE_ADMIN_PASSWORD",
                ))
            }
        }
        config.secret_key = match (
            env("FLOWSCOPE_SECRET_KEY"),
            env("FLOWSCOPE_SECRET_KEY_FILE").or(file.secret_key_file),
        ) {
            (Some(key), _) => {
                let ok =
                    key.trim().len() == 64 && key.trim().bytes().all(|b| b.is_ascii_hexdigit());
                if !ok {
                    return Err(err(
                        "FLOWSCOPE_SECRET_KEY",
                        "must be 64 hex digits (32 bytes), e.g. from `openssl rand -hex 32`",
                    ));
                }
                engine::vault::KeySource::Hex(key.trim().to_string())
            }
            (None, Some(file)) => engine::vault::KeySource::File(PathBuf::from(file)),
            (None, None) => engine::vault::KeySource::File(
                engine::store::sqlite_file(&config.database_url)
                    .and_then(|db| db.parent().map(|d| d.join("secret.key")))
                    .unwrap_or_else(|| PathBuf::from("data/secret.key")),
            ),
        };
        if let Some((setting, v)) = env("FLOWSCOPE_HTTP_ALLOWED_HOSTS")
            .map(|v| ("FLOWSCOPE_HTTP_ALLOWED_HOSTS", v))
            .or(file.http_allowed_hosts.map(|v| ("http_allowed_hosts", v)))
        {
            let hosts: Vec<String> = v
                .split(',')
                .map(|h| h.trim().to_ascii_lowercase())
                .filter(|h| !h.is_empty())
                .collect();
            if let Some(bad) = hosts.iter().find(|h| {
                let name = h.strip_prefix("*.").unwrap_or(h);
                name.is_empty()
                    || !name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
            }) {
                return Err(err(
                    setting,
                    format!("\"{bad}\" is not a host name (e.g. api.example.com or *.example.com)"),
                ));
            }
            config.http_allowed_hosts = Some(hosts);
        }
        if let Some(v) = env("FLOWSCOPE_SCHEDULER") {
            config.scheduler = parse_bool(&v).ok_or_else(|| {
                err(
                    "FLOWSCOPE_SCHEDULER",
                    format!("\"{v}\" is not true or false"),
                )
            })?;
        } else if let Some(b) = file.scheduler {
            config.scheduler = b;
        }
        if let Some((setting, v)) = env("FLOWSCOPE_LLM_PRICES")
            .map(|v| ("FLOWSCOPE_LLM_PRICES", v))
            .or(file.llm_prices.map(|v| ("llm_prices", v)))
        {
            config.llm_prices =
                engine::agents::llm::parse_prices(&v).map_err(|e| err(setting, e))?;
        }
        if let Some((setting, v)) = env("FLOWSCOPE_ALERT_TOKEN")
            .map(|v| ("FLOWSCOPE_ALERT_TOKEN", v))
            .or(file.alert_token.map(|v| ("alert_token", v)))
        {
            // A guessable token would let anyone start notifications.
            if v.trim().len() < 16 {
                return Err(err(setting, "use at least 16 characters"));
            }
            config.alert_token = Some(v.trim().to_string());
        }
        if let Some((setting, v)) = env("FLOWSCOPE_WORKER_LEASE")
            .map(|v| ("FLOWSCOPE_WORKER_LEASE", v))
            .or(file.worker_lease.map(|v| ("worker_lease", v)))
        {
            let lease = engine::model::parse_duration(&v).map_err(|e| err(setting, e))?;
            // Heartbeats go every quarter lease: much shorter would be a query storm.
            if lease < std::time::Duration::from_millis(500) {
                return Err(err(setting, "must be at least 500ms"));
            }
            config.worker_lease = lease;
        }
        if let Some(v) = env("FLOWSCOPE_WORKER_NAME").or(file.worker_name) {
            if v.trim().is_empty() {
                return Err(err("FLOWSCOPE_WORKER_NAME", "must not be empty"));
            }
            config.worker_name = Some(v.trim().to_string());
        }
        if let Some((setting, v)) = env("FLOWSCOPE_WORKER_MAX_RUNS")
            .map(|v| ("FLOWSCOPE_WORKER_MAX_RUNS", v))
            .or(file
                .worker_max_runs
                .map(|n| ("worker_max_runs", n.to_string())))
        {
            let n: usize = v
                .trim()
                .parse()
                .map_err(|_| err(setting, format!("\"{v}\" is not a number")))?;
            // 0: a server for the UI and API only, beside workers that run everything.
            if n == 0 && engine::store::sqlite_file(&config.database_url).is_some() {
                return Err(err(
                    setting,
                    "0 (run no workflows) needs PostgreSQL and a `flowscope worker` beside this server; on SQLite this process is the only one that can run them",
                ));
            }
            config.worker_max_runs = n;
        }
        if let Some((setting, v)) = env("FLOWSCOPE_WORKER_MAX_STEPS")
            .map(|v| ("FLOWSCOPE_WORKER_MAX_STEPS", v))
            .or(file
                .worker_max_steps
                .map(|n| ("worker_max_steps", n.to_string())))
        {
            let n: usize = v
                .trim()
                .parse()
                .map_err(|_| err(setting, format!("\"{v}\" is not a number")))?;
            if n == 0 {
                return Err(err(setting, "must be at least 1"));
            }
            config.worker_max_steps = n;
        }
        if let Some((setting, v)) = env("FLOWSCOPE_WORKER_LISTEN")
            .map(|v| ("FLOWSCOPE_WORKER_LISTEN", v))
            .or(file.worker_listen.map(|v| ("worker_listen", v)))
        {
            config.worker_listen = v.trim().parse().map_err(|_| {
                err(
                    setting,
                    format!("\"{v}\" is not an address like 127.0.0.1:9464"),
                )
            })?;
        }
        if let Some((setting, v)) = env("FLOWSCOPE_TRACE_COMMIT_THRESHOLD")
            .map(|v| ("FLOWSCOPE_TRACE_COMMIT_THRESHOLD", v))
            .or(file
                .trace_commit_threshold
                .map(|v| ("trace_commit_threshold", v)))
        {
            config.trace_commit_threshold =
                engine::model::parse_duration(v.trim()).map_err(|e| err(setting, e))?;
        }
        if let Some((setting, v)) = env("FLOWSCOPE_EVENT_KEEP")
            .map(|v| ("FLOWSCOPE_EVENT_KEEP", v))
            .or(file.event_keep.map(|v| ("event_keep", v)))
        {
            config.event_keep =
                engine::model::parse_duration(v.trim()).map_err(|e| err(setting, e))?;
        }
        let positive = |setting: &str, v: &str| match engine::model::parse_duration(v.trim()) {
            Ok(d) if !d.is_zero() => Ok(d),
            Ok(_) => Err(err(
                setting,
                "must be longer than zero (leave it unset for no limit)",
            )),
            Err(e) => Err(err(setting, e)),
        };
        if let Some((setting, v)) = env("FLOWSCOPE_RETENTION_MAX_AGE")
            .map(|v| ("FLOWSCOPE_RETENTION_MAX_AGE", v))
            .or(file.retention_max_age.map(|v| ("retention_max_age", v)))
        {
            config.retention_max_age = Some(positive(setting, &v)?);
        }
        if let Some((setting, v)) = env("FLOWSCOPE_RETENTION_KEEP_FAILED")
            .map(|v| ("FLOWSCOPE_RETENTION_KEEP_FAILED", v))
            .or(file
                .retention_keep_failed
                .map(|v| ("retention_keep_failed", v)))
        {
            config.retention_keep_failed = Some(positive(setting, &v)?);
        }
        if let Some(v) = env("FLOWSCOPE_RETENTION_MAX_RUNS") {
            let n: u64 = v.trim().parse().map_err(|_| {
                err(
                    "FLOWSCOPE_RETENTION_MAX_RUNS",
                    format!("\"{v}\" is not a number"),
                )
            })?;
            config.retention_max_runs = Some(n);
        } else if let Some(n) = file.retention_max_runs {
            config.retention_max_runs = Some(n);
        }
        if config.retention_max_runs == Some(0) {
            return Err(err(
                "FLOWSCOPE_RETENTION_MAX_RUNS",
                "must be at least 1 (leave it unset for no limit)",
            ));
        }
        if let Some((setting, v)) = env("FLOWSCOPE_RETENTION_EVERY")
            .map(|v| ("FLOWSCOPE_RETENTION_EVERY", v))
            .or(file.retention_every.map(|v| ("retention_every", v)))
        {
            config.retention_every =
                engine::model::parse_duration(v.trim()).map_err(|e| err(setting, e))?;
        }
        config.public_url = format!("http://{}", config.listen);
        if let Some((setting, v)) = env("FLOWSCOPE_PUBLIC_URL")
            .map(|v| ("FLOWSCOPE_PUBLIC_URL", v))
            .or(file.public_url.map(|v| ("public_url", v)))
        {
            let v = v.trim().trim_end_matches('/').to_string();
            if public_host(&v).is_none() {
                return Err(err(
                    setting,
                    format!("\"{v}\" is not an http(s) URL like https://flowscope.example.com"),
                ));
            }
            config.public_url = v;
        }
        if let Some((setting, v)) = env("FLOWSCOPE_TRUSTED_PROXIES")
            .map(|v| ("FLOWSCOPE_TRUSTED_PROXIES", v))
            .or(file.trusted_proxies.map(|v| ("trusted_proxies", v)))
        {
            config.trusted_proxies = v
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(|p| {
                    crate::auth::Proxy::parse(p).ok_or_else(|| {
                        err(
                            setting,
                            format!("\"{p}\" is not an address or a network (e.g. 10.0.0.0/8 or 127.0.0.1)"),
                        )
                    })
                })
                .collect::<Result<_, _>>()?;
        }
        if let Some(v) = env("FLOWSCOPE_EGRESS_ALLOW_PRIVATE") {
            config.egress_allow_private = parse_bool(&v).ok_or_else(|| {
                err(
                    "FLOWSCOPE_EGRESS_ALLOW_PRIVATE",
                    format!("\"{v}\" is not true or false"),
                )
            })?;
        } else if let Some(b) = file.egress_allow_private {
            config.egress_allow_private = b;
        }
        if let Some(v) = env("FLOWSCOPE_STEP_MAX_INTERRUPTIONS") {
            config.step_max_interruptions = v
                .trim()
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| {
                    err(
                        "FLOWSCOPE_STEP_MAX_INTERRUPTIONS",
                        format!("\"{v}\" is not a whole number (0: never fail a step for it)"),
                    )
                })?;
        }
        if let Some((setting, v)) = env("FLOWSCOPE_ALERT_WORKFLOW")
            .map(|v| ("FLOWSCOPE_ALERT_WORKFLOW", v))
            .or(file.alert_workflow.map(|v| ("alert_workflow", v)))
        {
            if v.trim().is_empty() {
                return Err(err(setting, "must name a workflow"));
            }
            config.alert_workflow = v.trim().to_string();
        }
        Ok(config)
    }
}

/// The host (lowercase, without port) of an `http(s)://host[:port][/path]` URL.
pub fn public_host(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))?;
    let authority = rest.split(['/', '?', '#']).next()?;
    if authority.contains('@') {
        return None;
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => format!("[{}]", v6.split(']').next()?),
        None => authority.split(':').next()?.to_string(),
    };
    let ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-[]:".contains(&b));
    ok.then(|| host.to_ascii_lowercase())
}

fn read_file(path: &Path, required: bool) -> Result<FileConfig, ConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
            return Ok(FileConfig::default())
        }
        Err(e) => {
            return Err(err(
                "FLOWSCOPE_CONFIG",
                format!("cannot read {}: {e}", path.display()),
            ))
        }
    };
    toml::from_str(&text).map_err(|e| err(&path.display().to_string(), e.message().to_string()))
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

pub use engine::store::redact_url;

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn from(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_sources(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_are_the_embedded_setup() {
        let c = from(&[]).expect("defaults");
        assert_eq!(c.listen.to_string(), "127.0.0.1:3000");
        assert_eq!(c.database_url, "sqlite://data/flowscope.db");
        assert!(c.seed_examples);
        assert_eq!(c.grafana_tempo_uid, "tempo");
    }

    #[test]
    fn worker_settings_are_checked() {
        let c = from(&[
            ("FLOWSCOPE_WORKER_LEASE", "3s"),
            ("FLOWSCOPE_WORKER_NAME", "w1"),
            ("FLOWSCOPE_WORKER_MAX_RUNS", "50"),
            ("FLOWSCOPE_WORKER_MAX_STEPS", "8"),
        ])
        .expect("ok");
        let w = c.worker("worker");
        assert_eq!(w.lease, std::time::Duration::from_secs(3));
        assert_eq!((w.name.as_str(), w.max_runs, w.kind), ("w1", 50, "worker"));
        assert_eq!(c.worker_max_steps, 8);
        let none = from(&[("FLOWSCOPE_WORKER_MAX_STEPS", "0")]).expect_err("0 steps");
        assert_eq!(none.setting, "FLOWSCOPE_WORKER_MAX_STEPS");
        let short = from(&[("FLOWSCOPE_WORKER_LEASE", "10ms")]).expect_err("short");
        assert_eq!(short.setting, "FLOWSCOPE_WORKER_LEASE");
        let bad = from(&[("FLOWSCOPE_WORKER_LEASE", "soon")]).expect_err("bad");
        assert_eq!(bad.setting, "FLOWSCOPE_WORKER_LEASE");
        let zero = from(&[("FLOWSCOPE_WORKER_MAX_RUNS", "0")]).expect_err("zero on SQLite");
        assert_eq!(zero.setting, "FLOWSCOPE_WORKER_MAX_RUNS");
        let api_only = from(&[
            ("FLOWSCOPE_WORKER_MAX_RUNS", "0"),
            ("FLOWSCOPE_DATABASE_URL", "postgres://db/flowscope"),
        ])
        .expect("0 on PostgreSQL");
        assert_eq!(api_only.worker_max_runs, 0);
        assert_eq!(c.worker_listen.to_string(), "127.0.0.1:9464");
        let listen = from(&[("FLOWSCOPE_WORKER_LISTEN", "0.0.0.0:9101")]).expect("ok");
        assert_eq!(listen.worker_listen.to_string(), "0.0.0.0:9101");
        let bad = from(&[("FLOWSCOPE_WORKER_LISTEN", "port 9101")]).expect_err("bad");
        assert_eq!(bad.setting, "FLOWSCOPE_WORKER_LISTEN");
    }

    #[test]
    fn retention_defaults_are_unset_until_given_and_checked() {
        let none = from(&[]).expect("ok");
        assert_eq!(
            (
                none.retention_max_age,
                none.retention_max_runs,
                none.retention_keep_failed
            ),
            (None, None, None)
        );
        assert_eq!(none.retention_every, std::time::Duration::from_secs(600));
        let set = from(&[
            ("FLOWSCOPE_RETENTION_MAX_AGE", "30d"),
            ("FLOWSCOPE_RETENTION_MAX_RUNS", "10000"),
            ("FLOWSCOPE_RETENTION_KEEP_FAILED", "90d"),
            ("FLOWSCOPE_RETENTION_EVERY", "0s"),
        ])
        .expect("ok");
        assert_eq!(
            set.retention_max_age,
            Some(std::time::Duration::from_secs(30 * 86_400))
        );
        assert_eq!(set.retention_max_runs, Some(10_000));
        assert_eq!(set.retention_every, std::time::Duration::ZERO);
        for (setting, value) in [
            ("FLOWSCOPE_RETENTION_MAX_AGE", "0s"),
            ("FLOWSCOPE_RETENTION_MAX_AGE", "a month"),
            ("FLOWSCOPE_RETENTION_MAX_RUNS", "0"),
            ("FLOWSCOPE_RETENTION_MAX_RUNS", "many"),
            ("FLOWSCOPE_RETENTION_KEEP_FAILED", "-1d"),
        ] {
            let bad = from(&[(setting, value)]).expect_err(value);
            assert_eq!(bad.setting, setting, "{value}");
        }
    }

    #[test]
    fn the_commit_span_threshold_is_a_duration() {
        assert_eq!(
            from(&[]).expect("ok").trace_commit_threshold,
            std::time::Duration::from_millis(1)
        );
        let every = from(&[("FLOWSCOPE_TRACE_COMMIT_THRESHOLD", "0ms")]).expect("ok");
        assert_eq!(every.trace_commit_threshold, std::time::Duration::ZERO);
        let bad = from(&[("FLOWSCOPE_TRACE_COMMIT_THRESHOLD", "fast")]).expect_err("bad");
        assert_eq!(bad.setting, "FLOWSCOPE_TRACE_COMMIT_THRESHOLD");
    }

    #[test]
    fn alert_intake_needs_a_long_token_and_a_workflow_name() {
        let c = from(&[("FLOWSCOPE_ALERT_TOKEN", " 0123456789abcdef ")]).expect("ok");
        assert_eq!(c.alert_token.as_deref(), Some("0123456789abcdef"));
        assert_eq!(c.alert_workflow, "notify-on-alert");
        let short = from(&[("FLOWSCOPE_ALERT_TOKEN", "secret")]).expect_err("short");
        assert_eq!(short.setting, "FLOWSCOPE_ALERT_TOKEN");
        let blank = from(&[("FLOWSCOPE_ALERT_WORKFLOW", " ")]).expect_err("blank");
        assert_eq!(blank.setting, "FLOWSCOPE_ALERT_WORKFLOW");
    }

    #[test]
    fn serving_beyond_loopback_without_sign_in_needs_saying_so() {
        let e = from(&[("FLOWSCOPE_LISTEN", "0.0.0.0:3000")]).expect_err("refused");
        assert_eq!(e.setting, "FLOWSCOPE_LISTEN");
        assert!(
            e.message.contains("without sign-in") && e.message.contains("FLOWSCOPE_AUTH=true"),
            "{e}"
        );
        let c = from(&[
            ("FLOWSCOPE_LISTEN", "0.0.0.0:3000"),
            ("FLOWSCOPE_AUTH", "true"),
        ])
        .expect("allowed with sign-in");
        assert!(c.auth);
        let c = from(&[
            ("FLOWSCOPE_LISTEN", "0.0.0.0:3000"),
            ("FLOWSCOPE_ALLOW_UNAUTHENTICATED", "true"),
        ])
        .expect("allowed when said");
        assert!(c.allow_unauthenticated);
        assert!(from(&[("FLOWSCOPE_LISTEN", "[::1]:3000")]).is_ok());
    }

    #[test]
    fn admin_and_secret_key_settings_are_checked() {
        let c = from(&[
            ("FLOWSCOPE_ADMIN_USER", "root"),
            ("FLOWSCOPE_ADMIN_PASSWORD", "long-enough"),
        ])
        .expect("ok");
        assert_eq!(c.admin_user, Some(("root".into(), "long-enough".into())));
        let e = from(&[
            ("FLOWSCOPE_ADMIN_USER", "root"),
            ("FLOWSCOPE_ADMIN_PASSWORD", "short"),
        ])
        .expect_err("short");
        assert_eq!(e.setting, "FLOWSCOPE_ADMIN_PASSWORD");
        let e = from(&[("FLOWSCOPE_ADMIN_USER", "root")]).expect_err("alone");
        assert_eq!(e.setting, "FLOWSCOPE_ADMIN_PASSWORD");
        let e = from(&[("FLOWSCOPE_SECRET_KEY", "abc")]).expect_err("short key");
        assert_eq!(e.setting, "FLOWSCOPE_SECRET_KEY");
        let key = "0f".repeat(32);
        let c = from(&[("FLOWSCOPE_SECRET_KEY", key.as_str())]).expect("key");
        assert_eq!(c.secret_key, engine::vault::KeySource::Hex(key));
        // The key file sits beside the SQLite file by default.
        let c = from(&[("FLOWSCOPE_DATABASE_URL", "sqlite:///var/lib/fs/hub.db")]).expect("ok");
        assert_eq!(
            c.secret_key,
            engine::vault::KeySource::File("/var/lib/fs/secret.key".into())
        );
    }

    #[test]
    fn allowed_hosts_are_a_comma_separated_list_of_names() {
        let c = from(&[(
            "FLOWSCOPE_HTTP_ALLOWED_HOSTS",
            "API.example.com, *.internal,",
        )])
        .expect("ok");
        assert_eq!(
            c.http_allowed_hosts,
            Some(vec![
                "api.example.com".to_string(),
                "*.internal".to_string()
            ])
        );
        let e = from(&[("FLOWSCOPE_HTTP_ALLOWED_HOSTS", "https://x/")]).expect_err("bad");
        assert_eq!(e.setting, "FLOWSCOPE_HTTP_ALLOWED_HOSTS");
    }

    #[test]
    fn a_bad_listen_address_names_the_setting() {
        let e = from(&[("FLOWSCOPE_LISTEN", "localhost")]).expect_err("bad");
        assert_eq!(e.setting, "FLOWSCOPE_LISTEN");
        assert!(e.to_string().contains("FLOWSCOPE_LISTEN"), "{e}");
    }

    #[test]
    fn a_bad_database_url_and_bool_name_their_settings() {
        assert_eq!(
            from(&[("FLOWSCOPE_DATABASE_URL", "mysql://x")])
                .expect_err("bad")
                .setting,
            "FLOWSCOPE_DATABASE_URL"
        );
        assert_eq!(
            from(&[("FLOWSCOPE_SEED_EXAMPLES", "maybe")])
                .expect_err("bad")
                .setting,
            "FLOWSCOPE_SEED_EXAMPLES"
        );
        assert_eq!(
            from(&[("FLOWSCOPE_GRAFANA_URL", "grafana:3000")])
                .expect_err("bad")
                .setting,
            "FLOWSCOPE_GRAFANA_URL"
        );
    }

    #[test]
    fn the_file_is_read_and_the_environment_wins_over_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:4000\"\nseed_examples = false\ndatabase_url = \"sqlite://x.db\"\n").expect("write");
        let p = path.to_str().expect("utf8");
        let c = from(&[
            ("FLOWSCOPE_CONFIG", p),
            ("FLOWSCOPE_LISTEN", "127.0.0.1:5000"),
        ])
        .expect("config");
        assert_eq!(c.listen.to_string(), "127.0.0.1:5000");
        assert!(!c.seed_examples);
        assert_eq!(c.database_url, "sqlite://x.db");
    }

    #[test]
    fn an_unknown_or_mistyped_file_key_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f.toml");
        std::fs::write(&path, "listn = \"127.0.0.1:4000\"\n").expect("write");
        let e =
            from(&[("FLOWSCOPE_CONFIG", path.to_str().expect("utf8"))]).expect_err("unknown key");
        assert!(e.message.contains("listn"), "{e}");
        let missing =
            from(&[("FLOWSCOPE_CONFIG", "/nonexistent/flowscope.toml")]).expect_err("missing");
        assert_eq!(missing.setting, "FLOWSCOPE_CONFIG");
    }

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("sqlite://data/f.db"), "sqlite://data/f.db");
    }
}
