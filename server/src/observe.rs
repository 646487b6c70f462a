//! HTTP server spans (`{method} {route}`, honouring an incoming `traceparent`) and `/metrics`:
//! the engine's registry (SPEC §6, with exemplars) followed by the server's own — HTTP request
//! durations by route, the process (CPU, memory, file descriptors) and the database pool.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use engine::executor::Engine;
use engine::store::Store;
use engine::telemetry;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use tracing::field::Empty;
use tracing::Instrument;

/// Request durations: from a cached page (a millisecond) to a slow server function.
const HTTP_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The OpenTelemetry HTTP server conventions, as Prometheus names them.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    http_request_method: String,
    http_route: String,
    http_response_status_code: u16,
}

type HttpFamily = Family<HttpLabels, Histogram, fn() -> Histogram>;

fn http_histogram() -> Histogram {
    Histogram::new(HTTP_BUCKETS.iter().copied())
}

/// What the server measures beside the engine.
#[derive(Debug)]
pub struct ServerMetrics {
    registry: Registry,
    http: HttpFamily,
}

impl ServerMetrics {
    pub fn new(store: Store) -> ServerMetrics {
        let mut registry = Registry::default();
        let http: HttpFamily = Family::new_with_constructor(http_histogram);
        registry.register_with_unit(
            "http_server_request_duration",
            "HTTP requests served, by route",
            Unit::Seconds,
            http.clone(),
        );
        registry.register_collector(Box::new(ProcessCollector));
        registry.register_collector(Box::new(PoolCollector { store }));
        ServerMetrics { registry, http }
    }
}

/// `GET /metrics`.
pub fn router(engine: Engine, server: Arc<ServerMetrics>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state((engine, server))
}

async fn metrics(State((engine, server)): State<(Engine, Arc<ServerMetrics>)>) -> Response {
    // Workflows saved since the last scrape, here or on another replica, get their series at
    // zero now, before any of their runs can end (see `Metrics::expect_workflow`).
    if let Err(e) = engine.expect_workflow_series().await {
        tracing::warn!(error = %e, "cannot create the workflows' metric series");
    }
    let mut text = String::with_capacity(24 * 1024);
    // Writing to a String cannot fail.
    let _ =
        prometheus_client::encoding::text::encode_registry(&mut text, engine.metrics().registry())
            .and_then(|()| {
                prometheus_client::encoding::text::encode_registry(&mut text, &server.registry)
            })
            .and_then(|()| prometheus_client::encoding::text::encode_eof(&mut text));
    let mut response = Body::from(text).into_response();
    // Prometheus keeps exemplars only from the OpenMetrics format.
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}

/// The process, read from `/proc/self` at each scrape, under the names every Prometheus client
/// library uses. Elsewhere than Linux there is nothing to read, and nothing is reported.
#[derive(Debug)]
struct ProcessCollector;

/// `/proc` reports CPU time in USER_HZ, which Linux fixes at 100 for user space.
const USER_HZ: f64 = 100.0;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
            return Ok(());
        };
        // Fields after the command name, which is in parentheses and may hold spaces.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        // `fields[0]` is field 3 of proc(5): field N is `fields[N - 3]`.
        let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<f64>().ok());
        if let (Some(utime), Some(stime)) = (field(14), field(15)) {
            let cpu = ConstCounter::new((utime + stime) / USER_HZ);
            cpu.encode(encoder.encode_descriptor(
                "process_cpu_seconds",
                "User and system CPU time spent",
                None,
                cpu.metric_type(),
            )?)?;
        }
        let mut gauge = |name: &str, help: &str, value: f64| -> Result<(), std::fmt::Error> {
            let g = ConstGauge::new(value);
            g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)
        };
        if let Some(threads) = field(20) {
            gauge("process_threads", "OS threads in the process", threads)?;
        }
        if let Some(vsize) = field(23) {
            gauge("process_virtual_memory_bytes", "Virtual memory size", vsize)?;
        }
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        if let Some(rss_kb) = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        {
            gauge(
                "process_resident_memory_bytes",
                "Resident memory size",
                rss_kb * 1024.0,
            )?;
        }
        if let (Some(start), Some(boot)) = (field(22), boot_time()) {
            gauge(
                "process_start_time_seconds",
                "Start time of the process since the Unix epoch",
                boot + start / USER_HZ,
            )?;
        }
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            gauge(
                "process_open_fds",
                "Open file descriptors",
                fds.count() as f64,
            )?;
        }
        if let Some(max) = std::fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|l| {
                l.lines()
                    .find(|l| l.starts_with("Max open files"))
                    .and_then(|l| l.split_whitespace().nth(3))
                    .and_then(|v| v.parse::<f64>().ok())
            })
        {
            gauge("process_max_fds", "Limit on open file descriptors", max)?;
        }
        Ok(())
    }
}

/// Seconds since the Unix epoch at which the machine booted (`btime` in `/proc/stat`).
fn boot_time() -> Option<f64> {
    std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// The database pool's connections, as the OpenTelemetry database client conventions name them.
#[derive(Debug)]
struct PoolCollector {
    store: Store,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolState {
    db_client_connection_state: &'static str,
}

impl Collector for PoolCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let (used, idle, max) = self.store.pool_usage();
        let mut count = encoder.encode_descriptor(
            "db_client_connection_count",
            "Database connections in the pool, by state",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for (state, n) in [("used", used), ("idle", idle)] {
            let g = ConstGauge::new(i64::from(n));
            g.encode(count.encode_family(&PoolState {
                db_client_connection_state: state,
            })?)?;
        }
        let g = ConstGauge::new(i64::from(max));
        g.encode(encoder.encode_descriptor(
            "db_client_connection_max",
            "Most connections the pool opens",
            None,
            g.metric_type(),
        )?)
    }
}

/// Paths scraped or probed every few seconds: a span each would drown the traces that matter.
fn is_probe(path: &str) -> bool {
    matches!(path, "/metrics" | "/healthz" | "/readyz")
}

/// Middleware: one server span per request, the child of the caller's `traceparent` if sent,
/// and its duration in `http_server_request_duration_seconds`.
pub async fn http_span(
    State(server): State<Arc<ServerMetrics>>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = known_method(request.method()).to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    let response = if is_probe(request.uri().path()) {
        next.run(request).await
    } else {
        traced(&method, route.as_deref(), request, next).await
    };
    // Unmatched paths (static files, 404s) share one route label, not one per path.
    server
        .http
        .get_or_create(&HttpLabels {
            http_request_method: method,
            http_route: route.unwrap_or_else(|| "other".into()),
            http_response_status_code: response.status().as_u16(),
        })
        .observe(started.elapsed().as_secs_f64());
    response
}

/// The method as a label value: one of the standard methods, else `_OTHER` (OpenTelemetry's
/// convention), so a client cannot mint a new series per made-up method.
fn known_method(method: &axum::http::Method) -> &'static str {
    use axum::http::Method as M;
    match *method {
        M::GET => "GET",
        M::HEAD => "HEAD",
        M::POST => "POST",
        M::PUT => "PUT",
        M::DELETE => "DELETE",
        M::PATCH => "PATCH",
        M::OPTIONS => "OPTIONS",
        M::CONNECT => "CONNECT",
        M::TRACE => "TRACE",
        _ => "_OTHER",
    }
}

async fn traced(method: &str, route: Option<&str>, request: Request, next: Next) -> Response {
    let name = match route {
        Some(r) => format!("{method} {r}"),
        None => method.to_owned(),
    };
    let span = tracing::info_span!(
        "http.server",
        otel.name = %name,
        otel.kind = "server",
        http.request.method = %method,
        http.route = route.unwrap_or_default(),
        url.path = %request.uri().path(),
        http.response.status_code = Empty,
        error.type = Empty,
    );
    if let Some(parent) = request
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(telemetry::parse_traceparent)
    {
        telemetry::set_remote_parent(&span, parent);
    }
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status();
    span.record("http.response.status_code", i64::from(status.as_u16()));
    if status.is_server_error() {
        let code = status.as_u16().to_string();
        telemetry::record_outcome(&span, Some((&code, status.as_str())));
    }
    response
}
