//! Workflows and their versions.
//!
//! | method | path | does |
//! |---|---|---|
//! | GET | `/workflows[?archived=true]` | list |
//! | POST | `/workflows` | create from a YAML/JSON body (version 1) |
//! | GET | `/workflows/{id}` | summary + latest definition |
//! | PUT | `/workflows/{id}` | save a new version |
//! | POST | `/workflows/{id}/archive`, `/restore` | hide / show again |
//! | GET | `/workflows/{id}/versions` | version list, newest first |
//! | GET | `/workflows/{id}/versions/{v}` | one version |
//! | GET | `/workflows/{id}/export[?version=v]` | the saved text, byte for byte |
//! | GET | `/workflows/{id}/diff?from=a&to=b` | unified diff of two versions |
//! | POST | `/validate` | the problems of a document, nothing saved |

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use engine::model::{Format, Problem, Workflow};
use engine::records::{VersionInfo, WorkflowSummary};
use engine::store::{Store, VersionRecord};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::instrument;

use super::document::Document;
use crate::error::ApiError;

pub fn router() -> Router<super::ApiState> {
    Router::new()
        .route("/workflows", get(list).post(create))
        .route("/workflows/{id}", get(show).put(update).delete(delete))
        .route("/workflows/{id}/archive", post(archive))
        .route("/workflows/{id}/restore", post(restore))
        .route("/workflows/{id}/pause", post(pause))
        .route("/workflows/{id}/resume", post(resume))
        .route("/workflows/{id}/versions", get(versions))
        .route("/workflows/{id}/versions/{version}", get(version))
        .route("/workflows/{id}/export", get(export))
        .route("/workflows/{id}/diff", get(diff))
        .route("/validate", post(validate))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// The archived workflows instead.
    #[serde(default)]
    archived: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
struct Saved {
    workflow: WorkflowSummary,
    version: VersionInfo,
}

/// A version as the API shows it: the saved text and its parsed definition.
#[derive(Serialize, utoipa::ToSchema)]
struct VersionView {
    #[serde(flatten)]
    info: VersionInfo,
    source: String,
    /// The parsed definition, as JSON.
    #[schema(value_type = Object)]
    definition: Value,
}

impl From<VersionRecord> for VersionView {
    fn from(r: VersionRecord) -> Self {
        VersionView {
            definition: serde_json::to_value(r.workflow.def()).unwrap_or(Value::Null),
            info: r.info,
            source: r.source,
        }
    }
}

fn parse(doc: &str) -> Result<Workflow, ApiError> {
    Workflow::parse(doc).map_err(ApiError::InvalidWorkflow)
}

#[utoipa::path(get, operation_id = "list_workflows", path = "/api/v1/workflows", tag = "workflows", params(ListQuery), responses((status = 200, body = Vec<WorkflowSummary>), (status = "default", description = "An error", body = crate::error::ErrorBody)))]
#[instrument(skip_all)]
async fn list(
    State(store): State<Store>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<WorkflowSummary>>, ApiError> {
    Ok(Json(store.list_workflows(q.archived).await?))
}

#[utoipa::path(post, path = "/api/v1/workflows", tag = "workflows", request_body(description = "The workflow document, YAML or JSON", content((String = "text/yaml"), (Object = "application/json"))), responses((status = 201, body = Saved), (status = "default", description = "An error", body = crate::error::ErrorBody)))]
#[instrument(skip_all, fields(workflow.id))]
async fn create(
    State(store): State<Store>,
    Document(doc): Document,
) -> Result<impl IntoResponse, ApiError> {
    let workflow = parse(&doc)?;
    tracing::Span::current().record("workflow.id", workflow.id());
    let version = store.create_workflow(&workflow, &doc).await?;
    let summary = store.workflow(workflow.id()).await?;
    Ok((
        StatusCode::CREATED,
        Json(Saved {
            workflow: summary,
            version,
        }),
    ))
}

#[utoipa::path(put, path = "/api/v1/workflows/{id}", tag = "workflows", params(("id" = String, Path, description = "The workflow's id", example = "hello")), request_body(description = "The workflow document, YAML or JSON", content((String = "text/yaml"), (Object = "application/json"))), responses((status = 200, body = Saved), (status = "default", description = "An error", body = crate::error::ErrorBody)))]
#[instrument(skip_all, fields(workflow.id = %id))]
async fn update(
    State(store): State<Store>,
    Path(id): Path<String>,
    Document(doc): Document,
) -> Result<Json<Saved>, ApiError> {
    let workflow = parse(&doc)?;
    if workflow.id() != id {
        return Err(ApiError::InvalidWorkflow(vec![Problem::new(
            "id",
            format!(
                "\"{}\" does not match the workflow being saved (\"{id}\"); ids cannot be changed",
                workflow.id()
            ),
        )]));
    }
    let version = store.save_version(&workflow, &doc).await?;
    let summary = store.workflow(&id).await?;
    Ok(Json(Saved {
        workflow: summary,
        version,
    }))
}

#[derive(Serialize, utoipa::ToSchema)]
struct WorkflowView {
    #[serde(flatten)]
    summary: WorkflowSummary,
    latest: VersionView,
}

#[utoipa::path(get, operation_id = "show_workflow", path = "/api/v1/workflows/{id}", tag = "workflows", params(("id" = String, Path, description = "The workflow's id", example = "hello")), responses((status = 200, body = WorkflowView), (status = "default", description = "An error", body = crate::error::ErrorBody)))]
#[instrument(skip_all, fields(workflow.id = %id))]
async fn show(
    State(store): State<Store>,
    Path(id): Path<String>,
) -> Result<Json<WorkflowView>, ApiError> {
    let summary = store.workflow(&id).await?;
    let latest = store.version(&id, None).await?.into();
    Ok(Json(WorkflowView { summary, latest }))
}

#[utoipa::path(post, path = "/api/v1/workflows/{id}/archive", tag = "workflows", params(("id" = String, Path, description = "The workflow's id", example = "hello")), responses((status = 200, body = WorkflowSummary), (status = "default", description = "An error", body = crate::error::ErrorBody)))]
#[instrument(skip_all, fields(workflow.id = %id))]
async fn archive(
    State(store): State<Store>,
    Path(id): Path<String>,
) -> Result<Json<WorkflowSummary>, ApiError> {
    Ok(Json(store.set_archived(&id, true).await?))
}

/// Pauses the workflow's triggers: no run starts until it is resumed (409 to each trigger).
#[utoipa::path(post, operation_id = "pause_workflow", path = "/api/v1/workflows/{id}/pause", tag = "workflows", params(("id" = String, Path, description = "The workflow's id", example = "hello")), responses((status = 200, body = WorkflowSummary), (status = "default", description = "An error", body = crate::error::ErrorBody)))]
#[instrument(skip_all, fields(workflow.id = %id))]
async fn pause(
    State(store): State<Store>,
    Path(id): Path<String>,
) -> Result<Json<WorkflowSummary>, ApiError> {
    Ok(Json(store.set_paused(&id, true).await?))
}

#[utoipa::path(post, operation_id = "resume_workflow", path = "/api/v1/workflows/{id}/resume", tag = "workflows", params(("id" = String, Path, description = "The workflow's id", example = "hello")), responses((status = 200, body = WorkflowSummary), (status = "default", description = "An error", body = crate::error::ErrorBody)))]
#[instrument(skip_all, fields(workflow.id = %id))]
async fn resume(
    State(store): State<Store>,
    Path(id): Path<String>,
) -> Result<Json<WorkflowSummary>, ApiError> {
    Ok(Json(store.set_paused(&id, false).await?))
}

/// Deletes the workflow with its versions and runs; 409 while one of its runs is going.
#[utoipa::path(delete, path = "/api/v1/workflows/{id}", tag = "workflows", params(("id" = String, Path, description = "The workflow's id", example = "hello")), responses((status = 200, body = Deleted), (status = "default", description = "An error", body = crate::error::ErrorBody)))]
#[instrument(skip_all, fields(workflow.id = %id))]
async fn delete(
    State(engine): State<engine::executor::Engine>,
    Path(id): Path<String>,
) -> Result<Json<Deleted>, ApiError> {
    let runs = engine.delete_workflow(&id).await?;
    tracing::info!(workflow.id = %id, runs, "workflow deleted");
    Ok(Json(Deleted { deleted: id, runs }))
}

/// What a delete removed.
#[derive(Serialize, utoipa::ToSchema)]
struct Deleted {
    /// The workflow's id.
    deleted: String,
    /// Its runs, deleted with it.
    runs: i64,
}

#[utoipa::path(post, path = "/api/v1/workflows/{id}/restore", tag = "workflows", params(("id" = String, Path, description = "The workflow's id", example = "hello")), responses((status = 200, body = WorkflowSummary), (status = "default", description = "An error", body = crate::error::ErrorBody)))]
#[instrument(skip_all, fields(workflow.id = %id))]
async fn restore(
    State(store): State<Store>,
    Path(id): Path<String>,
) -> Result<Json<WorkflowSummary>, ApiError> {
    Ok(Json(store.set_archived(&id, false).await?))
}

#[utoipa::path(get, path = "/api/v1/workflows/{id}/versions", tag = "workflows", params(("id" = String, Path, description = "The workflow's id", example = "hello")), responses((status = 200, body = Vec<VersionInfo>), (status = "default", description = "An error", body = crate::error::ErrorBody)))]
#[instrument(skip_all, fields(workflow.id = %id))]
async fn versions(
    State(store): State<Store>,
    Path(id): Path<String>,
) -> Result<Json<Vec<VersionInfo>>, ApiError> {
    Ok(Json(store.list_versions(&id).await?))
}

#[utoipa::path(get, path = "/api/v1/workflows/{id}/versions/{version}", tag = "workflows", params(("id" = String, Path, description = "The workflow's id", example = "hello"), ("version" = i64, Path, description = "A version number")), responses((status = 200, body = VersionView), (status = "default", description = "An error", body = crate::error::ErrorBody)))]
#[instrument(skip_all, fields(workflow.id = %id, workflow.version = version))]
async fn version(
    State(store): State<Store>,
    Path((id, version)): Path<(String, i64)>,
) -> Result<Json<VersionView>, ApiError> {
    Ok(Json(store.version(&id, Some(version)).await?.into()))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ExportQuery {
    /// This version instead of the latest.
    version: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/workflows/{id}/export", tag = "workflows", params(("id" = String, Path, description = "The workflow's id", example = "hello"), ExportQuery), responses((status = 200, description = "The saved text, byte for byte", content((Object = "application/yaml"), (Object = "application/json"))), (status = "default", description = "An error", body = crate::error::ErrorBody)))]
#[instrument(skip_all, fields(workflow.id = %id))]
async fn export(
    State(store): State<Store>,
    Path(id): Path<String>,
    Query(q): Query<ExportQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let record = store.version(&id, q.version).await?;
    let (content_type, ext) = match Format::detect(&record.source) {
        Format::Json => ("application/json", "json"),
        Format::Yaml => ("application/yaml", "yaml"),
    };
    let disposition = format!(
        "attachment; filename=\"{id}.v{}.{ext}\"",
        record.info.version
    );
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        record.source,
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct DiffQuery {
    from: i64,
    to: i64,
}

#[derive(Serialize, utoipa::ToSchema)]
struct DiffView {
    from: i64,
    to: i64,
    diff: String,
}

#[utoipa::path(get, path = "/api/v1/workflows/{id}/diff", tag = "workflows", params(("id" = String, Path, description = "The workflow's id", example = "hello"), DiffQuery), responses((status = 200, body = DiffView), (status = "default", description = "An error", body = crate::error::ErrorBody)))]
#[instrument(skip_all, fields(workflow.id = %id))]
async fn diff(
    State(store): State<Store>,
    Path(id): Path<String>,
    Query(q): Query<DiffQuery>,
) -> Result<Json<DiffView>, ApiError> {
    let old = store.version(&id, Some(q.from)).await?;
    let new = store.version(&id, Some(q.to)).await?;
    let diff = engine::model::diff_text(
        &old.source,
        &new.source,
        &format!("{id} v{}", q.from),
        &format!("{id} v{}", q.to),
    );
    Ok(Json(DiffView {
        from: q.from,
        to: q.to,
        diff,
    }))
}

#[derive(Serialize, utoipa::ToSchema)]
struct Validation {
    valid: bool,
    problems: Vec<Problem>,
    /// The canonical YAML of a valid document (what export of it would give once saved).
    #[serde(skip_serializing_if = "Option::is_none")]
    canonical: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/validate", tag = "workflows", request_body(description = "The workflow document, YAML or JSON", content((String = "text/yaml"), (Object = "application/json"))), responses((status = 200, body = Validation), (status = "default", description = "An error", body = crate::error::ErrorBody)))]
#[instrument(skip_all)]
async fn validate(Document(doc): Document) -> Json<Validation> {
    match Workflow::parse(&doc) {
        Ok(w) => Json(Validation {
            valid: true,
            problems: Vec::new(),
            canonical: Some(w.to_yaml()),
        }),
        Err(problems) => Json(Validation {
            valid: false,
            problems,
            canonical: None,
        }),
    }
}
