//! The one HTTP error type of the REST API. Every variant documents its status; the body has
//! the stable shape `{"error": {"code", "message", "problems": [{"path", "message"}]}}`.
//! 5xx causes are logged once here and answered with a generic message.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use engine::executor::EngineError;
use engine::model::Problem;
use engine::store::StoreError;

/// What every error answers: `{"error": {"code", "message", "problems"}}`.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// An error: a stable code, a sentence for people, and for a document or inputs that do not
/// fit, every problem with its path.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// `bad_request`, `not_found`, `invalid_workflow`, …
    pub code: String,
    pub message: String,
    pub problems: Vec<Problem>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 422: the document is not a valid workflow; `problems` lists every reason.
    #[error("the workflow is not valid")]
    InvalidWorkflow(Vec<Problem>),
    /// 422: the run inputs do not fit the workflow's declared inputs.
    #[error("the inputs do not fit the workflow")]
    InvalidInputs(Vec<Problem>),
    /// 400: the request itself is malformed (not UTF-8, bad query parameter).
    #[error("{0}")]
    BadRequest(String),
    /// 401: missing or wrong credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: the endpoint is switched off, or the caller may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// 422: understood, but cannot be done as configured.
    #[error("{0}")]
    Unprocessable(String),
    /// 404: no such workflow or version.
    #[error("{0}")]
    NotFound(String),
    /// 409: the request conflicts with what is stored (id already taken).
    #[error("{0}")]
    Conflict(String),
    /// 421: the request names a host this server does not serve (DNS rebinding).
    #[error("{0}")]
    MisdirectedHost(String),
    /// 429: too many attempts; try again later.
    #[error("{0}")]
    TooMany(String),
    /// 413: the body is larger than the limit.
    #[error("{0}")]
    TooLarge(String),
    /// 415: a body type the endpoint does not read.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 503: the database is not answering.
    #[error("the database is unavailable; try again shortly")]
    Unavailable(#[source] StoreError),
    /// 500: anything else; the cause goes to the log only.
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::InvalidWorkflow(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_workflow"),
            ApiError::InvalidInputs(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_inputs"),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::Unprocessable(_) => (StatusCode::UNPROCESSABLE_ENTITY, "unprocessable"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            ApiError::MisdirectedHost(_) => (StatusCode::MISDIRECTED_REQUEST, "misdirected_host"),
            ApiError::TooMany(_) => (StatusCode::TOO_MANY_REQUESTS, "too_many_requests"),
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::InvalidInputs(problems) => ApiError::InvalidInputs(problems),
            EngineError::NotRetryable { .. } | EngineError::AlreadyFinished { .. } => {
                ApiError::Conflict(e.to_string())
            }
            EngineError::UnknownStep(_) | EngineError::Refused(_) => {
                ApiError::BadRequest(e.to_string())
            }
            EngineError::Store(s) => s.into(),
            EngineError::Journal(m) => ApiError::Internal(anyhow::anyhow!(m)),
            EngineError::AlreadyFired | EngineError::Paused(_) => ApiError::Conflict(e.to_string()),
            EngineError::Secrets(m) => ApiError::Unprocessable(m),
            EngineError::Forbidden(m) => ApiError::Forbidden(m),
            EngineError::Conflict(m) => ApiError::Conflict(m),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(_)
            | StoreError::VersionNotFound { .. }
            | StoreError::RunNotFound(_) => ApiError::NotFound(e.to_string()),
            StoreError::AlreadyExists(_) | StoreError::Refused(_) => {
                ApiError::Conflict(e.to_string())
            }
            StoreError::CallCycle(problems) => ApiError::InvalidWorkflow(problems),
            e if e.is_unavailable() => ApiError::Unavailable(e),
            other => ApiError::Internal(other.into()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        match &self {
            ApiError::Internal(cause) => tracing::error!(error = ?cause, "request failed"),
            ApiError::Unavailable(cause) => tracing::warn!(error = %cause, "database unavailable"),
            _ => {}
        }
        let problems = match &self {
            ApiError::InvalidWorkflow(p) | ApiError::InvalidInputs(p) => p.clone(),
            _ => Vec::new(),
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: code.to_string(),
                message: self.to_string(),
                problems,
            },
        };
        let mut response = (status, Json(body)).into_response();
        if matches!(self, ApiError::TooLarge(_)) {
            // The body was left unread, so the connection cannot carry another request: say so,
            // or a client reuses it and its next request meets a closed socket.
            response.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
        }
        response
    }
}

/// A server function's typed error ([`app::error::AppError`]) answers the status its kind
/// means: server_fn answers every error 500, so a bad input looked like a server fault to
/// clients, logs and the 5xx alerts. Only error answers are read (they are small).
pub async fn server_fn_status(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let response = next.run(request).await;
    if response.status() != StatusCode::INTERNAL_SERVER_ERROR
        || !response.headers().contains_key("serverfnerror")
    {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 1 << 20).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    use app::error::AppError;
    parts.status = match serde_json::from_slice::<AppError>(&bytes) {
        Ok(AppError::NotFound(_)) => StatusCode::NOT_FOUND,
        Ok(AppError::Invalid(_) | AppError::Problems(_)) => StatusCode::UNPROCESSABLE_ENTITY,
        Ok(AppError::Denied(_)) => StatusCode::FORBIDDEN,
        // Arguments that did not decode: the request was malformed.
        Ok(AppError::Transport(_)) => StatusCode::BAD_REQUEST,
        Ok(AppError::Internal) | Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    Response::from_parts(parts, axum::body::Body::from(bytes))
}
