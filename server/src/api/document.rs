//! The `Document` extractor: a workflow file in a request body (YAML or JSON text),
//! size-limited and UTF-8-checked, with rejections in the API's JSON error shape.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use engine::model::MAX_DOCUMENT_BYTES;

use crate::error::ApiError;

/// A request body holding one workflow document.
pub struct Document(pub String);

impl<S: Send + Sync> FromRequest<S> for Document {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let content_type = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let accepted = content_type.is_empty()
            || ["yaml", "json", "text/plain"]
                .iter()
                .any(|t| content_type.contains(t));
        if !accepted {
            return Err(ApiError::UnsupportedMediaType(format!(
                "send the workflow as application/yaml, application/json or text/plain, not {content_type}"
            )));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::TooLarge(format!(
                    "the document is larger than {MAX_DOCUMENT_BYTES} bytes"
                ))
            } else {
                ApiError::BadRequest(format!("could not read the request body: {e}"))
            }
        })?;
        if bytes.len() > MAX_DOCUMENT_BYTES {
            return Err(ApiError::TooLarge(format!(
                "the document is {} bytes; the limit is {MAX_DOCUMENT_BYTES} bytes",
                bytes.len()
            )));
        }
        let text = String::from_utf8(bytes.to_vec()).map_err(|e| {
            ApiError::BadRequest(format!(
                "the document is not UTF-8 text (byte {})",
                e.utf8_error().valid_up_to()
            ))
        })?;
        Ok(Document(text))
    }
}
