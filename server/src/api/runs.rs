//! Runs: trigger, list, inspect, cancel, retry, and a live event stream.
//!
//! | method | path | does |
//! |---|---|---|
//! | POST | `/workflows/{id}/runs?wait=30s` | trigger (`{"inputs": {…}, "labels": {"k": "v"}, "version": n}`); 202 with the queued run, or with `wait` (at most 5m) 200 with the finished run (steps, outputs, errors) if it ends in time |
//! | GET | `/runs?workflow=&status=&trigger=&since=&until=&label=k:v&q=&cursor=&limit=` | newest first, cursor-paginated; `label` repeats; `q` searches inputs, outputs and errors |
//! | GET | `/runs/{id}` | the run with its steps and attempts |
//! | POST | `/runs/{id}/cancel` | stop a queued or running run |
//! | POST | `/runs/{id}/retry` | any finished run: `{"from": "failed" \| "<step id>"}`, or whole with optional `"inputs": {…}` and `"version": n \| "latest"`; 201 with the new run |
//! | POST | `/runs/bulk?workflow=&status=&trigger=&since=&until=&label=&q=` | `{"action": "cancel" \| "retry", "from": …, "dry_run": true}`: the runs the filters select (at most 1,000), counted or acted on |
//! | GET | `/runs/{id}/events` | Server-Sent Events of the run until it finishes |
//! | GET | `/events?workflow=` | Server-Sent Events of every run (or one workflow's): the live monitor |

use std::convert::Infallible;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use engine::access::Principal;
use engine::executor::{BulkAction, Engine, RetryChanges, RetryMode, RetryVersion, TriggerRequest};
use engine::records::{EventKind, RunDetail, RunStatus, RunSummary};
use engine::store::{RunFilter, Store, ValuePart};
use futures::stream::{self, Stream};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tracing::instrument;

use super::ApiState;
use crate::error::ApiError;

pub fn router() -> Router<ApiState> {
    Router::new()
        .route("/workflows/{id}/runs", post(trigger))
        .route("/runs", get(list))
        .route("/runs/{id}", get(show))
        .route("/runs/{id}/cancel", post(cancel))
        .route("/runs/{id}/retry", post(retry))
        .route("/runs/{id}/pause", post(pause))
        .route("/runs/{id}/resume", post(resume))
        .route("/runs/{id}/steps/{step}/decision", post(decide))
        .route("/events/{key}", post(post_event))
        .route("/runs/bulk", post(bulk))
        .route("/runs/{id}/events", get(events))
        .route("/runs/{id}/steps/{step}/items", get(items))
        .route("/runs/{id}/steps/{step}/output", get(value))
        .route("/events", get(all_events))
        .route("/workers", get(workers))
}

/// The processes that run workflows on this database, with their heartbeats and the runs
/// each holds (PostgreSQL; on SQLite this one process does everything, and the list is empty).
#[utoipa::path(get, path = "/api/v1/workers", tag = "runs", responses((status = 200, body = Workers), (status = "default", description = "An error", body = crate::error::ErrorBody)))]
async fn workers(State(store): State<Store>) -> Result<Json<Workers>, ApiError> {
    let workers = match store.backend() {
        engine::store::Backend::Postgres => store.workers().await?,
        engine::store::Backend::Sqlite => Vec::new(),
    };
    Ok(Json(Workers { workers }))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct TriggerBody {
    /// The run's inputs; declared defaults fill the rest.
    #[serde(default)]
    #[schema(value_type = Object)]
    inputs: Map<String, Value>,
    /// This version instead of the latest.
    version: Option<i64>,
    /// `{"env": "prod"}`: shown with the run and filtered on (`label=env:prod`).
    #[serde(default)]
    #[schema(value_type = std::collections::BTreeMap<String, String>)]
    labels: Map<String, Value>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct RunCreated {
    run: RunSummary,
}

/// A run that finished while the trigger waited.
#[derive(Serialize, utoipa::ToSchema)]
struct RunFinished {
    run: RunDetail,
}

/// What a cancel, pause or resume asked for.
#[derive(Serialize, utoipa::ToSchema)]
struct RunRequest {
    run_id: String,
    /// A cancel: asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    cancel_requested: Option<bool>,
    /// A pause (true) or a resume (false).
    #[serde(skip_serializing_if = "Option::is_none")]
    pause_requested: Option<bool>,
    /// A pause or resume: the run's status when it was asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<RunStatus>,
}

/// An approval's decision, as the step's output records it.
#[derive(Serialize, utoipa::ToSchema)]
struct Decided {
    decision: Value,
}

/// The processes that run workflows (PostgreSQL).
#[derive(Serialize, utoipa::ToSchema)]
struct Workers {
    workers: Vec<engine::store::WorkerRow>,
}

/// `label=key:value`, repeatable: runs carrying every one.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct LabelParams {
    /// `key:value`; repeat for more (at most 8, all required).
    label: Option<Vec<String>>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct TriggerQuery {
    /// How long to hold the request for the run to finish (`30s`).
    wait: Option<String>,
}

/// The longest `?wait=` held: past it a client follows `/runs/{id}/events` instead.
const MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(300);

#[utoipa::path(post, path = "/api/v1/workflows/{id}/runs", tag = "runs", params(("id" = String, Path, description = "The workflow's id", example = "hello"), TriggerQuery), request_body(content((TriggerBody = "application/json")), description = "Optional: an empty body means the defaults"), responses((status = 202, description = "Queued (or, with wait, still going)", body = RunCreated), (status = 200, description = "With wait: the run finished in time", body = RunFinished), (status = "default", description = "An error", body = crate::error::ErrorBody)))]
#[instrument(skip_all, fields(workflow.id = %id, workflow.run.id))]
async fn trigger(
    State(engine): State<Engine>,
    Path(id): Path<String>,
    Query(query): Query<TriggerQuery>,
    caller: Option<Extension<Principal>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::response::Response, ApiError> {
    let wait = match query.wait.as_deref() {
        None => None,
        Some(w) => {
            let wait = engine::model::parse_duration(w)
                .map_err(|e| ApiError::BadRequest(format!("wait: {e}")))?;
            if wait > MAX_WAIT {
                return Err(ApiError::BadRequest(format!(
                    "wait: {w} is longer than the 5m a request is held; follow /api/v1/runs/{{id}}/events instead"
                )));
            }
            Some(wait)
        }
    };
    let body: TriggerBody = json_body(&headers, &body)?;
    let labels = engine::search::labels_from_json(&body.labels).map_err(ApiError::BadRequest)?;
    // Before the trigger: the run's end cannot fall between it and the wait.
    let events = wait.map(|_| engine.subscribe());
    let traceparent = crate::api::traceparent(&headers);
    let run = engine
        .trigger(TriggerRequest {
            workflow_id: id,
            version: body.version,
            inputs: body.inputs,
            trigger: "api".into(),
            traceparent,
            actor: caller.and_then(|c| c.actor()),
            labels,
        })
        .await?;
    tracing::Span::current().record("workflow.run.id", run.id.as_str());
    if let (Some(wait), Some(events)) = (wait, events) {
        if let Some(done) = finished_within(&engine, events, &run.id, wait).await? {
            return Ok((StatusCode::OK, Json(RunFinished { run: done })).into_response());
        }
    }
    Ok((StatusCode::ACCEPTED, Json(RunCreated { run })).into_response())
}

/// The run once it has finished, if it does within `wait`. Woken by its events; the store is
/// read again at least every second (on PostgreSQL another process may run it).
async fn finished_within(
    engine: &Engine,
    mut events: tokio::sync::broadcast::Receiver<engine::records::Event>,
    id: &str,
    wait: std::time::Duration,
) -> Result<Option<RunDetail>, ApiError> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let detail = engine.run_detail(id).await?;
        if detail.run.status.is_finished() {
            return Ok(Some(detail));
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        let next_look = deadline.min(now + std::time::Duration::from_secs(1));
        let ended = async {
            loop {
                match events.recv().await {
                    Ok(e)
                        if e.run_id == id
                            && matches!(e.kind, EventKind::Run { status } if status.is_finished()) =>
                    {
                        return
                    }
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => return std::future::pending().await,
                }
            }
        };
        let _ = tokio::time::timeout_at(next_look, ended).await;
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Runs of this workflow.
    workflow: Option<String>,
    /// Runs in this status (comma-separated for several).
    status: Option<String>,
    /// Runs started this way: manual, api, cron, webhook, retry, alert, workflow.
    trigger: Option<String>,
    /// Created at or after (unix ms).
    since: Option<i64>,
    /// Created before (unix ms).
    until: Option<i64>,
    /// The previous page's `next_cursor`.
    cursor: Option<String>,
    /// Runs per page, 1 to 500 (default 50).
    limit: Option<i64>,
    /// Run time in milliseconds: at least / below.
    min_ms: Option<i64>,
    max_ms: Option<i64>,
    /// Words the run's inputs, outputs or errors hold.
    q: Option<String>,
}

/// The query's `label=k:v` pairs (repeatable, so not a field of [`ListQuery`]).
#[derive(Deserialize)]
#[serde(transparent)]
struct Pairs(Vec<(String, String)>);

impl Pairs {
    fn labels(&self) -> Result<Vec<(String, String)>, ApiError> {
        let given = self
            .0
            .iter()
            .filter(|(k, _)| k == "label")
            .map(|(_, v)| v.as_str());
        engine::search::parse_label_filters(given).map_err(ApiError::BadRequest)
    }
}

#[derive(Serialize, utoipa::ToSchema)]
struct RunPage {
    runs: Vec<RunSummary>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    next_cursor: Option<String>,
}

impl ListQuery {
    fn filter(self, pairs: &Pairs) -> Result<RunFilter, ApiError> {
        let status = RunStatus::parse_filter(self.status.as_deref().unwrap_or(""))
            .map_err(ApiError::BadRequest)?;
        let search = engine::search::SearchQuery::parse(self.q.as_deref().unwrap_or(""))
            .map_err(ApiError::BadRequest)?;
        Ok(RunFilter {
            labels: pairs.labels()?,
            search,
            workflow_id: self.workflow,
            status,
            trigger: self.trigger,
            since: self.since,
            until: self.until,
            before: self.cursor,
            min_duration_ms: self.min_ms,
            max_duration_ms: self.max_ms,
            limit: self.limit.unwrap_or(50).clamp(1, 500),
        })
    }
}

#[utoipa::path(get, operation_id = "list_runs", path = "/api/v1/runs", tag = "runs", params(ListQuery, LabelParams), responses((status = 200, body = RunPage), (status = "default", description = "An error", body = crate::error::ErrorBody)))]
#[instrument(skip_all)]
async fn list(
    State(store): State<Store>,
    Query(q): Query<ListQuery>,
    Query(pairs): Query<Pairs>,
) -> Result<Json<RunPage>, ApiError> {
    let filter = q.filter(&pairs)?;
    let limit = filter.limit;
    let runs = store.list_runs(&filter).await?;
    let next_cursor = (runs.len() as i64 == limit)
        .then(|| runs.last().map(|r| r.id.clone()))
        .flatten();
    Ok(Json(RunPage { runs, next_cursor }))
}

#[utoipa::path(get, operation_id = "show_run", path = "/api/v1/runs/{id}", tag = "runs", params(("id" = String, Path, description = "The run's id")), responses((status = 200, body = RunDetail), (status = "default", description = "An error", body = crate::error::ErrorBody)))]
#[instrument(skip_all, fields(workflow.run.id = %id))]
async fn show(
    State(engine): State<Engine>,
    Path(id): Path<String>,
) -> Result<Json<RunDetail>, ApiError> {
    Ok(Json(engine.run_detail(&id).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ItemsQuery {
    /// `succeeded` or `failed`; absent for every item that ended.
    status: Option<String>,
    /// `true` for only the items that took more than one attempt.
    retried: Option<bool>,
    /// The index after which the page starts (the previous page's `next_after`).
    after: Option<i64>,
    limit: Option<i64>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ValueQuery {
    attempt: Option<i64>,
    /// With `attempt`: `input` for its rendered input, `logs` for its log lines; else the
    /// output.
    part: Option<String>,
}

/// One stored value whole, where a run's detail carries a marker (values over 64 KiB): a
/// step's output, or an attempt's output, input or log lines.
#[utoipa::path(get, path = "/api/v1/runs/{id}/steps/{step}/output", tag = "runs", params(("id" = String, Path, description = "The run's id"), ("step" = String, Path, description = "The step's id"), ValueQuery), responses((status = 200, description = "The stored value, whole (any JSON)", body = serde_json::Value), (status = "default", description = "An error", body = crate::error::ErrorBody)))]
#[instrument(skip_all, fields(workflow.run.id = %id, agent.step.id = %step))]
async fn value(
    State(store): State<Store>,
    Path((id, step)): Path<(String, String)>,
    Query(q): Query<ValueQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let part = match q.part.as_deref() {
        None | Some("output") => ValuePart::Output,
        Some("input") if q.attempt.is_some() => ValuePart::Input,
        Some("logs") if q.attempt.is_some() => ValuePart::Logs,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "part: \"{other}\" is not a part; use output, or input or logs with attempt"
            )))
        }
    };
    store.run_status(&id).await?;
    match store.step_value(&id, &step, q.attempt, part).await? {
        Some(v) => Ok(Json(v)),
        None => Err(ApiError::NotFound(match q.attempt {
            Some(n) => format!("run {id} has no value stored for step {step}, attempt {n}"),
            None => format!("run {id} has no output stored for step {step}"),
        })),
    }
}

#[derive(Serialize, utoipa::ToSchema)]
struct ItemPage {
    items: Vec<engine::records::ItemRecord>,
    /// Where the next page starts, when there may be one.
    next_after: Option<i64>,
}

/// The items of a `for_each` step that have ended, in list order, a page at a time.
#[utoipa::path(get, path = "/api/v1/runs/{id}/steps/{step}/items", tag = "runs", params(("id" = String, Path, description = "The run's id"), ("step" = String, Path, description = "The step's id"), ItemsQuery), responses((status = 200, body = ItemPage), (status = "default", description = "An error", body = crate::error::ErrorBody)))]
#[instrument(skip_all, fields(workflow.run.id = %id, agent.step.id = %step))]
async fn items(
    State(store): State<Store>,
    Path((id, step)): Path<(String, String)>,
    Query(q): Query<ItemsQuery>,
) -> Result<Json<ItemPage>, ApiError> {
    let status = match q.status.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => match engine::records::StepStatus::parse(s) {
            Some(
                st @ (engine::records::StepStatus::Succeeded | engine::records::StepStatus::Failed),
            ) => Some(st),
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "status: \"{s}\" is not an item status; use succeeded or failed"
                )))
            }
        },
    };
    // A run that does not exist is a 404, not an empty page.
    store.run_status(&id).await?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let filter = engine::store::ItemFilter {
        status,
        retried: q.retried.unwrap_or(false),
    };
    let items = store.step_items(&id, &step, filter, q.after, limit).await?;
    let next_after = (items.len() as i64 == limit)
        .then(|| items.last().map(|i| i.index))
        .flatten();
    Ok(Json(ItemPage { items, next_after }))
}

#[utoipa::path(post, path = "/api/v1/runs/{id}/cancel", tag = "runs", params(("id" = String, Path, description = "The run's id")), responses((status = 202, body = RunRequest), (status = "default", description = "An error", body = crate::error::ErrorBody)))]
#[instrument(skip_all, fields(workflow.run.id = %id))]
async fn cancel(
    State(engine): State<Engine>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    engine.cancel(&id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(RunRequest {
            run_id: id,
            cancel_requested: Some(true),
            pause_requested: None,
            status: None,
        }),
    ))
}

/// Pauses a run: attempts in flight finish, none starts until it is resumed.
#[utoipa::path(post, operation_id = "pause_run", path = "/api/v1/runs/{id}/pause", tag = "runs", params(("id" = String, Path, description = "The run's id")), responses((status = 202, body = RunRequest), (status = "default", description = "An error", body = crate::error::ErrorBody)))]
#[instrument(skip_all, fields(workflow.run.id = %id))]
async fn pause(
    State(engine): State<Engine>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let was = engine.pause_run(&id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(RunRequest {
            run_id: id,
            cancel_requested: None,
            pause_requested: Some(true),
            status: Some(was),
        }),
    ))
}

/// Resumes a paused run.
#[utoipa::path(post, operation_id = "resume_run", path = "/api/v1/runs/{id}/resume", tag = "runs", params(("id" = String, Path, description = "The run's id")), responses((status = 202, body = RunRequest), (status = "default", description = "An error", body = crate::error::ErrorBody)))]
#[instrument(skip_all, fields(workflow.run.id = %id))]
async fn resume(
    State(engine): State<Engine>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let was = engine.resume_run(&id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(RunRequest {
            run_id: id,
            cancel_requested: None,
            pause_requested: Some(false),
            status: Some(was),
        }),
    ))
}

/// Decides an approval step: `{"approved": true|false, "comment": "…", "fields": {…}}`. Any
/// signed-in role may call it; the approval's own `role` says who may decide.
#[utoipa::path(post, path = "/api/v1/runs/{id}/steps/{step}/decision", tag = "runs", params(("id" = String, Path, description = "The run's id"), ("step" = String, Path, description = "The step's id")), request_body(content((engine::executor::Decision = "application/json"))), responses((status = 200, body = Decided), (status = "default", description = "An error", body = crate::error::ErrorBody)))]
#[instrument(skip_all, fields(workflow.run.id = %id, agent.step.id = %step))]
async fn decide(
    State(engine): State<Engine>,
    Path((id, step)): Path<(String, String)>,
    caller: Option<Extension<Principal>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest(
            "the body is {\"approved\": true|false, \"comment\": \"…\", \"fields\": {…}}".into(),
        ));
    }
    let decision: engine::executor::Decision = json_body(&headers, &body)?;
    // Sign-in off: whoever reaches the server may do everything.
    let (by, role) = match caller {
        Some(Extension(p)) => (p.actor().unwrap_or_else(|| "anonymous".into()), p.role),
        None => ("anonymous".into(), engine::access::Role::Admin),
    };
    let output = engine.decide(&id, &step, decision, &by, role).await?;
    Ok((StatusCode::OK, Json(Decided { decision: output })))
}

/// An event: every run waiting on `key` goes on with the JSON body as the waiting step's
/// output; kept a while for waits that start later.
#[utoipa::path(post, path = "/api/v1/events/{key}", tag = "runs", params(("key" = String, Path, description = "The event's key")), request_body(content((serde_json::Value = "application/json")), description = "The payload: any JSON (empty: null)"), responses((status = 202, body = engine::executor::EventPosted), (status = "default", description = "An error", body = crate::error::ErrorBody)))]
#[instrument(skip_all, fields(event.key = %key))]
async fn post_event(
    State(engine): State<Engine>,
    Path(key): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    if body.len() > engine::executor::MAX_EVENT_BYTES {
        return Err(ApiError::TooLarge(format!(
            "an event's payload is at most {} bytes",
            engine::executor::MAX_EVENT_BYTES
        )));
    }
    let payload: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        json_body::<Value>(&headers, &body)?
    };
    let posted = engine.post_event(&key, payload).await?;
    Ok((StatusCode::ACCEPTED, Json(posted)))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct RetryBody {
    /// `failed` to keep succeeded steps, a step id to re-run from it; absent for a whole retry.
    from: Option<String>,
    /// A whole retry's inputs, instead of the run's.
    #[schema(value_type = Option<Object>)]
    inputs: Option<Map<String, Value>>,
    /// A whole retry's version: a number, or `"latest"`.
    version: Option<Value>,
}

#[utoipa::path(post, path = "/api/v1/runs/{id}/retry", tag = "runs", params(("id" = String, Path, description = "The run's id")), request_body(content((RetryBody = "application/json")), description = "Optional: an empty body means the defaults"), responses((status = 201, body = RunCreated), (status = "default", description = "An error", body = crate::error::ErrorBody)))]
#[instrument(skip_all, fields(workflow.run.id = %id))]
async fn retry(
    State(engine): State<Engine>,
    Path(id): Path<String>,
    caller: Option<Extension<Principal>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let body: RetryBody = json_body(&headers, &body)?;
    let mode = RetryMode::from_request(body.from);
    let version = match body.version {
        None => None,
        Some(Value::String(s)) if s == "latest" => Some(RetryVersion::Latest),
        Some(v) => match v.as_i64() {
            Some(n) if n > 0 => Some(RetryVersion::Exact(n)),
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "version: expected a version number or \"latest\", got {v}"
                )))
            }
        },
    };
    let changes = RetryChanges {
        inputs: body.inputs,
        version,
    };
    let run = engine
        .retry_changed(&id, mode, changes, caller.and_then(|c| c.actor()))
        .await?;
    Ok((StatusCode::CREATED, Json(RunCreated { run })))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct BulkBody {
    /// `cancel` or `retry`.
    action: String,
    /// For `retry`: `failed` or a step id, as a single retry takes it; absent for whole.
    from: Option<String>,
    /// Count the runs, act on none.
    #[serde(default)]
    dry_run: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
struct BulkAnswer {
    /// Runs the filters select that the action applies to.
    matched: usize,
    /// When they were selected (unix ms): pass as `until` to act on exactly these after a
    /// dry run, not on runs that arrived since.
    as_of: i64,
    dry_run: bool,
    /// Runs acted on, with the new run of a retry.
    done: Vec<BulkDone>,
    /// Runs that could not be acted on, with why.
    refused: Vec<BulkRefused>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct BulkDone {
    run_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    new_run_id: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct BulkRefused {
    run_id: String,
    error: String,
}

/// Cancels or retries every run the list's filters select (at most 1,000; more is refused),
/// or with `dry_run` counts them.
#[utoipa::path(post, path = "/api/v1/runs/bulk", tag = "runs", params(ListQuery, LabelParams), request_body(content((BulkBody = "application/json"))), responses((status = 200, body = BulkAnswer), (status = "default", description = "An error", body = crate::error::ErrorBody)))]
#[instrument(skip_all)]
async fn bulk(
    State(engine): State<Engine>,
    Query(q): Query<ListQuery>,
    Query(pairs): Query<Pairs>,
    caller: Option<Extension<Principal>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<BulkAnswer>, ApiError> {
    let body: BulkBody = json_body(&headers, &body)?;
    let action = BulkAction::from_request(&body.action, body.from).map_err(ApiError::BadRequest)?;
    let filter = q.filter(&pairs)?;
    let as_of = engine::store::now_ms();
    if body.dry_run {
        let matched = engine.bulk_targets(&filter, &action).await?.len();
        return Ok(Json(BulkAnswer {
            matched,
            as_of,
            dry_run: true,
            done: Vec::new(),
            refused: Vec::new(),
        }));
    }
    let outcome = engine
        .bulk(&filter, &action, caller.and_then(|c| c.actor()))
        .await?;
    Ok(Json(BulkAnswer {
        matched: outcome.done.len() + outcome.refused.len(),
        as_of,
        dry_run: false,
        done: outcome
            .done
            .into_iter()
            .map(|(run_id, new_run_id)| BulkDone { run_id, new_run_id })
            .collect(),
        refused: outcome
            .refused
            .into_iter()
            .map(|(run_id, error)| BulkRefused { run_id, error })
            .collect(),
    }))
}

/// Streams the run's events; the first event is a snapshot of its state, the stream ends
/// after the run's final event.
#[utoipa::path(get, path = "/api/v1/runs/{id}/events", tag = "runs", params(("id" = String, Path, description = "The run's id")), responses((status = 200, description = "Server-Sent Events: a `snapshot` of the run, then a `change` per change until it finishes", content_type = "text/event-stream", body = String), (status = "default", description = "An error", body = crate::error::ErrorBody)))]
#[instrument(skip_all, fields(workflow.run.id = %id))]
async fn events(
    State(engine): State<Engine>,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    // Subscribe before reading the snapshot, so no change falls between the two.
    let rx = engine.subscribe();
    let detail = engine.run_detail(&id).await?;
    let snapshot = SseEvent::default()
        .event("snapshot")
        .json_data(&detail)
        .unwrap_or_default();
    let finished = detail.run.status.is_finished();
    let live = stream::unfold((rx, id, finished), |(mut rx, id, done)| async move {
        if done {
            return None;
        }
        loop {
            match rx.recv().await {
                Ok(e) if e.run_id == id => {
                    let last = matches!(e.kind, EventKind::Run { status } if status.is_finished());
                    let sse = SseEvent::default()
                        .event("change")
                        .json_data(&e)
                        .unwrap_or_default();
                    return Some((Ok(sse), (rx, id, last)));
                }
                Ok(_) => continue,
                // Fell behind: tell the client to reload the snapshot rather than miss changes.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    return Some((
                        Ok(SseEvent::default().event("resync").data("{}")),
                        (rx, id, false),
                    ));
                }
                Err(_) => return None,
            }
        }
    });
    let stream = stream::once(async move { Ok(snapshot) }).chain(live);
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct EventsQuery {
    /// Only this workflow's runs.
    workflow: Option<String>,
}

/// Every change of every run (or of one workflow's runs), as it is committed; `resync` when
/// this client fell behind and should reload what it shows.
#[utoipa::path(get, path = "/api/v1/events", tag = "runs", params(EventsQuery), responses((status = 200, description = "Server-Sent Events: a `change` per change of every run, or of one workflow's; `resync` when the client fell behind", content_type = "text/event-stream", body = String)))]
#[instrument(skip_all)]
async fn all_events(
    State(engine): State<Engine>,
    Query(q): Query<EventsQuery>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let rx = engine.subscribe();
    let workflow = q.workflow.filter(|w| !w.is_empty());
    let live = stream::unfold((rx, workflow), |(mut rx, workflow)| async move {
        loop {
            match rx.recv().await {
                Ok(e) if workflow.as_ref().is_none_or(|w| *w == e.workflow_id) => {
                    let sse = SseEvent::default()
                        .event("change")
                        .json_data(&e)
                        .unwrap_or_default();
                    return Some((Ok(sse), (rx, workflow)));
                }
                Ok(_) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    let sse = SseEvent::default().event("resync").data("{}");
                    return Some((Ok(sse), (rx, workflow)));
                }
                Err(_) => return None,
            }
        }
    });
    Sse::new(live).keep_alive(KeepAlive::default())
}

use futures::StreamExt as _;

/// An optional JSON body: empty means the defaults; anything else must be JSON that fits.
pub(crate) fn json_body<T: serde::de::DeserializeOwned + Default>(
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.contains("json") {
        return Err(ApiError::UnsupportedMediaType(format!(
            "send the body as application/json, not \"{content_type}\""
        )));
    }
    // With the path of what does not fit (`labels: invalid type …`).
    let mut reader = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut reader).map_err(|e| {
        let path = e.path().to_string();
        match path.as_str() {
            "." | "" => ApiError::BadRequest(format!("the body does not fit: {}", e.inner())),
            _ => ApiError::BadRequest(format!("the body does not fit: {path}: {}", e.inner())),
        }
    })?;
    reader
        .end()
        .map_err(|e| ApiError::BadRequest(format!("the body does not fit: {e}")))?;
    Ok(value)
}
