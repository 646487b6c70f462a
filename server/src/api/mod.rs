//! The REST API under `/api/v1`: one router per area, merged here.
//!
//! - `workflows`: workflows, versions, archive/restore, export, diff, validate.
//! - `runs`: trigger, list, inspect, cancel, retry, live events.

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
}

/// Every `/api/v1` route; unknown paths under it answer a JSON 404.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .merge(workflows::router())
        .merge(runs::router())
        .fallback(|| async { ApiError::NotFound("no such API endpoint".into()) })
        .with_state(state)
}
