//! The REST API under `/api/v1`: one router per area, merged here.
//!
//! - `workflows`: workflows, versions, archive/restore, export, diff, validate.

mod document;
mod workflows;

use axum::Router;
use engine::store::Store;

use crate::error::ApiError;

/// Every `/api/v1` route; unknown paths under it answer a JSON 404.
pub fn router(store: Store) -> Router {
    Router::new()
        .merge(workflows::router())
        .fallback(|| async { ApiError::NotFound("no such API endpoint".into()) })
        .with_state(store)
}
