//! Browser-facing protections on every response and request.
//!
//! - **Cross-origin writes are refused.** A state-changing request (anything but GET, HEAD
//!   and OPTIONS) sent by a browser from another origin gets 403: its `Origin` must name
//!   this server's own host, and without an `Origin` a `Sec-Fetch-Site: cross-site` is
//!   refused. Otherwise any web page a user visits could trigger runs on the hub at
//!   127.0.0.1:3000 from their browser. Requests without either header (curl, the CLI,
//!   Alertmanager) pass, and `/hooks/` are exempt: their callers prove a secret instead.
//! - **Headers on every response:** `nosniff`, no framing, and no referrer sent to other
//!   origins. Pages also carry a Content-Security-Policy with a per-response nonce; the
//!   shell sets it (`app::content_security_policy`), where the nonce is known.

use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

pub async fn guard(request: Request, next: Next) -> Response {
    let writes = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if writes && !request.uri().path().starts_with("/hooks/") {
        if let Err(why) = same_origin(request.headers()) {
            tracing::warn!(path = %request.uri().path(), why, "cross-origin request refused");
            let mut refused =
                ApiError::Forbidden(format!("cross-origin request refused: {why}")).into_response();
            set_headers(refused.headers_mut());
            return refused;
        }
    }
    let mut response = next.run(request).await;
    set_headers(response.headers_mut());
    response
}

fn set_headers(h: &mut HeaderMap) {
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
}

/// `Ok` unless the request comes from a browser on another origin.
fn same_origin(headers: &HeaderMap) -> Result<(), &'static str> {
    let get = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(origin) = get(header::ORIGIN) {
        // `scheme://host[:port]`; compared by authority, so TLS ended at a proxy still matches.
        let authority = origin.split_once("://").map(|(_, a)| a);
        let host = get(header::HOST);
        return match (authority, host) {
            (Some(a), Some(h)) if a.eq_ignore_ascii_case(h) => Ok(()),
            _ => Err("its Origin is not this server"),
        };
    }
    match headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        Some("cross-site") | Some("same-site") => {
            Err("the browser says it comes from another site")
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn only_other_origins_are_refused() {
        let ok = |h: &[(&'static str, &'static str)]| same_origin(&headers(h)).is_ok();
        assert!(ok(&[
            ("host", "127.0.0.1:3000"),
            ("origin", "http://127.0.0.1:3000")
        ]));
        assert!(ok(&[
            ("host", "hub.example"),
            ("origin", "https://hub.example")
        ]));
        assert!(!ok(&[
            ("host", "127.0.0.1:3000"),
            ("origin", "http://evil.example")
        ]));
        assert!(!ok(&[
            ("host", "127.0.0.1:3000"),
            ("origin", "http://127.0.0.1:3001")
        ]));
        assert!(!ok(&[("host", "127.0.0.1:3000"), ("origin", "null")]));
        assert!(!ok(&[
            ("host", "127.0.0.1:3000"),
            ("sec-fetch-site", "cross-site")
        ]));
        assert!(ok(&[
            ("host", "127.0.0.1:3000"),
            ("sec-fetch-site", "same-origin")
        ]));
        assert!(ok(&[("host", "127.0.0.1:3000")]));
    }
}
