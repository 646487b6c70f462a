//! HTTP server spans (`{method} {route}`, honouring an incoming `traceparent`) and `/metrics`
//! (OpenMetrics text with exemplars, from the engine's registry).

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use engine::executor::Engine;
use engine::telemetry;
use tracing::field::Empty;
use tracing::Instrument;

/// `GET /metrics`.
pub fn router(engine: Engine) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(engine)
}

async fn metrics(State(engine): State<Engine>) -> Response {
    let mut response = Body::from(engine.metrics().encode()).into_response();
    // Prometheus keeps exemplars only from the OpenMetrics format.
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}

/// Paths scraped or probed every few seconds: a span each would drown the traces that matter.
fn is_probe(path: &str) -> bool {
    matches!(path, "/metrics" | "/healthz" | "/readyz")
}

/// Middleware: one server span per request, the child of the caller's `traceparent` if sent.
pub async fn http_span(request: Request, next: Next) -> Response {
    if is_probe(request.uri().path()) {
        return next.run(request).await;
    }
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    let name = match &route {
        Some(r) => format!("{method} {r}"),
        None => method.clone(),
    };
    let span = tracing::info_span!(
        "http.server",
        otel.name = %name,
        otel.kind = "server",
        http.request.method = %method,
        http.route = route.as_deref().unwrap_or_default(),
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
