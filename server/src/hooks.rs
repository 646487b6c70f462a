//! `POST /hooks/{workflow_id}`: a workflow's webhook trigger. The JSON body becomes the run's
//! inputs; the answer is 202 with the queued run, as from the API.
//!
//! The caller proves it knows the trigger's secret (`webhook: { secret: NAME }`, the value of
//! `FLOWSCOPE_SECRET_<NAME>`) in one of two ways, both compared in constant time:
//!
//! - `Authorization: Bearer <secret>`.
//! - `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`, as GitHub signs. With an
//!   `X-Flowscope-Timestamp: <unix seconds>` header the signed text is `<timestamp>.<body>`
//!   and a timestamp more than [`MAX_SKEW_S`] from the server's clock is refused as stale.
//!   Either way a signature is accepted once: the same signature again is a replay (409).
//!   A signature is spent only by a delivery that started a run (a refused one may be sent
//!   again), and one without a timestamp is remembered for good.
//!
//! An incoming `traceparent` is honoured: the run's root span links to the caller's span.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use engine::executor::{Engine, TriggerRequest};
use engine::model::TriggerDef;
use serde_json::{json, Value};
use tracing::instrument;

use crate::error::ApiError;

use engine::webhook;
pub use engine::webhook::{MAX_SKEW_S, SIGNATURE_HEADER, TIMESTAMP_HEADER};

pub fn router(engine: Engine) -> Router {
    Router::new()
        .route("/hooks/{id}", post(hook))
        .with_state(engine)
}

#[instrument(skip_all, fields(workflow.id = %id, workflow.run.id))]
async fn hook(
    State(engine): State<Engine>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let store = engine.store();
    if store.workflow(&id).await?.archived_at.is_some() {
        return Err(ApiError::NotFound(format!(
            "workflow \"{id}\" is archived; restore it to use its webhook"
        )));
    }
    let record = store.version(&id, None).await?;
    let hook = record
        .workflow
        .def()
        .triggers
        .iter()
        .find_map(|t| match t {
            TriggerDef::Webhook(w) => Some(w.clone()),
            _ => None,
        })
        .ok_or_else(|| ApiError::NotFound(format!("workflow \"{id}\" has no webhook trigger")))?;
    let Some(name) = hook.secret else {
        return Err(ApiError::Forbidden(format!(
            "the webhook of \"{id}\" names no secret, so it accepts no call: add `secret: NAME` to its trigger"
        )));
    };
    let Some(secret) = engine.secret(&name) else {
        tracing::warn!(workflow.id = %id, secret = %name, "a webhook's secret is not configured");
        return Err(ApiError::Forbidden(format!(
            "the webhook's secret {name} is not set on this server (Settings → Secrets, or FLOWSCOPE_SECRET_{name})"
        )));
    };

    let now_ms = engine::store::now_ms();
    // A timestamp header that cannot be read must not count as absent: the signature would
    // then be checked over the body alone yet recorded as a timestamped one.
    if headers
        .get(TIMESTAMP_HEADER)
        .is_some_and(|v| v.to_str().is_err())
    {
        return Err(ApiError::Unauthorized(format!(
            "{TIMESTAMP_HEADER} is not readable text"
        )));
    }
    let signature = verify(&headers, &body, secret.as_bytes(), now_ms / 1000)?;
    // A body that cannot be inputs is refused before its signature is spent: the sender may
    // fix and resend it.
    let inputs =
        webhook::inputs_of(&body, hook.body_input.as_deref()).map_err(ApiError::BadRequest)?;
    // Timestamped signatures are forgotten once their timestamp is stale (refused anyway);
    // the others are kept, so a replay is refused however late it comes.
    let key = signature.map(|s| match headers.contains_key(TIMESTAMP_HEADER) {
        true => format!("{}{s}", engine::store::TIMESTAMPED_DELIVERY),
        false => s,
    });
    if let Some(key) = &key {
        if !store.record_delivery(key, &id, now_ms).await? {
            return Err(ApiError::Conflict(
                "this signature was already used: a replayed delivery is not run again".into(),
            ));
        }
    }
    let labels = match hook.body_input.as_deref() {
        _ if hook.labels.is_empty() => Default::default(),
        Some(name) => webhook::labels_of(
            &hook.labels,
            inputs.get(name).unwrap_or(&Value::Null),
            |h| headers.get(h).and_then(|v| v.to_str().ok()),
        ),
        None => webhook::labels_of(&hook.labels, &Value::Object(inputs.clone()), |h| {
            headers.get(h).and_then(|v| v.to_str().ok())
        }),
    };
    let traceparent = crate::api::traceparent(&headers);
    let triggered = engine
        .trigger(TriggerRequest {
            workflow_id: id.clone(),
            version: None,
            inputs,
            trigger: "webhook".into(),
            traceparent,
            actor: None,
            labels,
        })
        .await
        .map_err(ApiError::from);
    let run = match triggered {
        Ok(run) => run,
        Err(e) => {
            // Not accepted (inputs that do not fit, say): the signature is not used up.
            if let Some(key) = &key {
                if let Err(forget) = store.forget_delivery(key).await {
                    tracing::warn!(error = %forget, "cannot forget a refused delivery's signature");
                }
            }
            return Err(e);
        }
    };
    tracing::Span::current().record("workflow.run.id", run.id.as_str());
    Ok((StatusCode::ACCEPTED, Json(json!({ "run": run }))))
}

/// Checks the caller's proof (see `engine::webhook::verify`). `Some(signature)` for a valid
/// signature (to be used once), `None` for a valid bearer token.
fn verify(
    headers: &HeaderMap,
    body: &[u8],
    secret: &[u8],
    now_s: i64,
) -> Result<Option<String>, ApiError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match webhook::verify(
        header("authorization"),
        header(SIGNATURE_HEADER),
        header(TIMESTAMP_HEADER),
        body,
        secret,
        now_s,
    ) {
        Ok(webhook::Proof::Bearer) => Ok(None),
        Ok(webhook::Proof::Signature(s)) => Ok(Some(s)),
        Err(why) => Err(ApiError::Unauthorized(why)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, KeyInit, Mac};

    fn sign(secret: &[u8], text: &[u8]) -> String {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).expect("key");
        mac.update(text);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }

    fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().expect("header value"));
        }
        h
    }

    #[test]
    fn github_style_signatures_verify_and_tampering_does_not() {
        let body = br#"{"ref":"main"}"#;
        // GitHub's documented example: secret "It's a Secret to Everybody", body "Hello, World!".
        let known = headers(&[(
            SIGNATURE_HEADER,
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17".into(),
        )]);
        assert!(
            verify(&known, b"Hello, World!", b"It's a Secret to Everybody", 0)
                .expect("GitHub's example verifies")
                .is_some()
        );
        let good = headers(&[(SIGNATURE_HEADER, sign(b"s3cret", body))]);
        assert!(verify(&good, body, b"s3cret", 0).is_ok());
        assert!(verify(&good, br#"{"ref":"evil"}"#, b"s3cret", 0).is_err());
        assert!(verify(&good, body, b"other", 0).is_err());
        let garbage = headers(&[(SIGNATURE_HEADER, "sha256=zz".into())]);
        assert!(verify(&garbage, body, b"s3cret", 0).is_err());
    }

    #[test]
    fn timestamps_are_signed_and_stale_ones_refused() {
        let body = b"{}";
        let now = 1_800_000_000;
        let signed = |ts: i64| {
            headers(&[
                (
                    SIGNATURE_HEADER,
                    sign(b"k", format!("{ts}.{{}}").as_bytes()),
                ),
                (TIMESTAMP_HEADER, ts.to_string()),
            ])
        };
        assert!(verify(&signed(now - 10), body, b"k", now).is_ok());
        let stale = verify(&signed(now - MAX_SKEW_S - 1), body, b"k", now);
        assert!(matches!(stale, Err(ApiError::Unauthorized(m)) if m.contains("stale")));
        // The timestamp is part of what is signed: moving it breaks the signature.
        let mut moved = signed(now - 400);
        moved.insert(
            TIMESTAMP_HEADER,
            (now - 5).to_string().parse().expect("value"),
        );
        assert!(verify(&moved, body, b"k", now).is_err());
    }

    #[test]
    fn bearer_tokens_compare_whole() {
        let h = |t: &str| headers(&[("authorization", format!("Bearer {t}"))]);
        assert!(matches!(verify(&h("tok"), b"", b"tok", 0), Ok(None)));
        assert!(verify(&h("to"), b"", b"tok", 0).is_err());
        assert!(verify(&h("tokk"), b"", b"tok", 0).is_err());
        assert!(verify(&HeaderMap::new(), b"", b"tok", 0).is_err());
    }
}
