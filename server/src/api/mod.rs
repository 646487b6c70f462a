//! The REST API under `/api/v1`: one router per area, merged here.
//!
//! - `workflows`: workflows, versions, archive/restore, export, diff, validate.
//! - `runs`: trigger, list, inspect, cancel, retry, live events.
//! - `access`: users, API tokens, secrets, and who the caller is.
//! - `alerts`: Alertmanager's webhook, which starts the notification workflow.

mod access;
pub mod alerts;
mod document;
mod runs;
mod workflows;

use axum::extract::FromRef;
use axum::Router;
use engine::executor::Engine;
use engine::store::Store;

use crate::error::ApiError;

/// What API handlers may extract with `State<…>`.
#[derive(Clone, FromRef)]
pub struct ApiState {
    pub store: Store,
    pub engine: Engine,
    pub alerts: alerts::AlertIntake,
}

/// The caller's `traceparent` header, for a run it triggers (the engine prefers the current
/// request span, which continues it, when telemetry is on).
pub(crate) fn traceparent(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Every `/api/v1` route; unknown paths under it answer a JSON 404.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .merge(workflows::router())
        .merge(runs::router())
        .merge(alerts::router())
        .merge(access::router())
        .fallback(|| async { ApiError::NotFound("no such API endpoint".into()) })
        .with_state(state)
}
