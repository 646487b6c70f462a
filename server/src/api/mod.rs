//! The REST API under `/api/v1`: one router per area, merged here.
//!
//! - `workflows`: workflows, versions, archive/restore, export, diff, validate.
//! - `runs`: trigger, list, inspect, cancel, retry, live events.
//! - `access`: users, API tokens, secrets, and who the caller is.
//! - `alerts`: Alertmanager's webhook, which starts the notification workflow.
//!
//! [`ApiDoc`] is the OpenAPI 3.1 document of all of them (`/api/v1/openapi.json`).

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

/// The API's contract, OpenAPI 3.1, generated from the handlers' own types and annotations:
/// what a client is generated from, and what the contract tests check the server against.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Flowscope API",
        description = "Workflows, their versions and runs; users, tokens and secrets. Errors are `{\"error\": {\"code\", \"message\", \"problems\"}}`. With sign-in on, send an API token as a bearer token (or a signed-in session's cookie)."
    ),
    paths(
        workflows::list, workflows::create, workflows::show, workflows::update, workflows::delete,
        workflows::archive, workflows::restore, workflows::pause, workflows::resume,
        workflows::versions, workflows::version, workflows::export, workflows::diff,
        workflows::validate,
        runs::trigger, runs::list, runs::show, runs::cancel, runs::retry, runs::pause,
        runs::resume, runs::decide, runs::post_event, runs::bulk, runs::events, runs::items,
        runs::value, runs::all_events, runs::workers,
        alerts::alertmanager,
        access::me, access::users, access::create_user, access::update_user, access::delete_user,
        access::tokens, access::create_token, access::revoke_token, access::secrets,
        access::put_secret, access::delete_secret,
        openapi,
    ),
    modifiers(&Bearer),
    tags(
        (name = "workflows", description = "Workflows and their versions"),
        (name = "runs", description = "Runs: trigger, list, search, inspect, act on, follow"),
        (name = "access", description = "Who the caller is; users, API tokens and secrets (admin)"),
        (name = "alerts", description = "Alertmanager's webhook"),
    )
)]
pub struct ApiDoc;

/// The bearer scheme an API token is sent with.
struct Bearer;

impl utoipa::Modify for Bearer {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    }
}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "workflows", responses((status = 200, description = "The OpenAPI 3.1 document of this API", content_type = "application/json", body = Object)))]
async fn openapi() -> impl axum::response::IntoResponse {
    static DOC: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let text = DOC.get_or_init(|| {
        <ApiDoc as utoipa::OpenApi>::openapi()
            .to_pretty_json()
            .unwrap_or_default()
    });
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        text.as_str(),
    )
}

/// Every `/api/v1` route; unknown paths under it answer a JSON 404.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/openapi.json", axum::routing::get(openapi))
        .merge(workflows::router())
        .merge(runs::router())
        .merge(alerts::router())
        .merge(access::router())
        .fallback(|| async { ApiError::NotFound("no such API endpoint".into()) })
        .with_state(state)
}
