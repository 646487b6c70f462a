//! Browser-facing protections on every response and request.
//!
//! - **Cross-origin writes are refused.** A state-changing request (anything but GET, HEAD
//!   and OPTIONS) sent by a browser from another origin gets 403: its `Origin` must name
//!   this server's own host, and without an `Origin` a `Sec-Fetch-Site: cross-site` is
//!   refused. Otherwise any web page a user visits could trigger runs on the hub at
//!   127.0.0.1:3000 from their browser. Requests without either header (curl, the CLI,
//!   Alertmanager) pass, and `/hooks/` are exempt: their callers prove a secret instead.
//! - **Only our own host names are served.** A request whose `Host` is neither a loopback
//!   name nor the host of `FLOWSCOPE_PUBLIC_URL` gets 421: otherwise a page on any site could
//!   point its own DNS name at 127.0.0.1 (DNS rebinding) and drive a loopback install, whose
//!   `Origin` then matches its `Host`.
//! - **Only canonical paths reach the gate.** Dot segments (in any encoding), empty segments,
//!   encoded slashes and backslashes are refused with 400, and a trailing slash is redirected
//!   away, so the role table in `auth::need` sees the same path the routers will serve.
//! - **Bodies are bounded** ([`MAX_BODY_BYTES`]) for every route, server functions included,
//!   and the API's rejections (a bad body, a body too large) answer JSON like every other
//!   API error, never plain text or a 500.
//! - **Headers on every response:** `nosniff`, no framing, and no referrer sent to other
//!   origins. Pages also carry a Content-Security-Policy with a per-response nonce; the
//!   shell sets it (`app::content_security_policy`), where the nonce is known.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

use engine::links::decode_component as percent_decode;

use crate::error::ApiError;

/// What the guard knows of this server.
#[derive(Clone)]
pub struct Guard {
    /// The host of `FLOWSCOPE_PUBLIC_URL`, lowercase, without port.
    public_host: Arc<str>,
}

impl Guard {
    pub fn new(public_url: &str) -> Guard {
        Guard {
            public_host: crate::config::public_host(public_url)
                .unwrap_or_default()
                .into(),
        }
    }
}

/// The largest request body any route reads (workflow documents are at most 256 KiB).
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;
/// A declared body over the limit but at most this large is read and dropped before the
/// 413 (within [`DRAIN_TIME`]), so the client can read the answer; a larger one is not read.
const DRAIN_BYTES: u64 = 16 * 1024 * 1024;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(10);

pub async fn guard(State(guard): State<Guard>, request: Request, next: Next) -> Response {
    let refused = |mut r: Response| {
        set_headers(r.headers_mut());
        r
    };
    if let Err(why) = known_host(&request, &guard.public_host) {
        tracing::warn!(path = %request.uri().path(), why, "request for another host refused");
        return refused(ApiError::MisdirectedHost(why).into_response());
    }
    match canonical(request.uri().path()) {
        Canonical::Yes => {}
        Canonical::Redirect(to) if matches!(*request.method(), Method::GET | Method::HEAD) => {
            let to = match request.uri().query() {
                Some(q) => format!("{to}?{q}"),
                None => to,
            };
            return refused(Redirect::permanent(&to).into_response());
        }
        Canonical::Redirect(_) | Canonical::No => {
            return refused(
                ApiError::BadRequest(
                    "the path is not canonical (dot segments, empty segments, encoded slashes \
                     or a trailing slash); request the path itself"
                        .into(),
                )
                .into_response(),
            );
        }
    }
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
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = declared.filter(|&n| n > MAX_BODY_BYTES as u64) {
        // Read and dropped first when it is not huge: closing with unread bytes resets the
        // connection, and the client sees a broken pipe instead of this answer.
        if n <= DRAIN_BYTES {
            use http_body_util::BodyExt;
            let mut body = request.into_body();
            let _ = tokio::time::timeout(DRAIN_TIME, async {
                while let Some(Ok(_)) = body.frame().await {}
            })
            .await;
        }
        return refused(
            ApiError::TooLarge(format!(
                "the request body is larger than {MAX_BODY_BYTES} bytes"
            ))
            .into_response(),
        );
    }
    // A body without a length is cut off at the limit as it streams.
    let api = is_api(request.uri().path());
    let request = request
        .map(|body| axum::body::Body::new(http_body_util::Limited::new(body, MAX_BODY_BYTES)));
    let mut response = next.run(request).await;
    if api {
        response = json_rejection(response).await;
    }
    set_headers(response.headers_mut());
    response
}

/// Paths whose callers are programs expecting JSON errors.
fn is_api(path: &str) -> bool {
    path.starts_with("/api/") || path.starts_with("/hooks/")
}

/// A client error answered in plain text (axum's extractor rejections: bad JSON, a body too
/// large, a wrong content type) becomes the API's JSON error, with its status kept.
async fn json_rejection(response: Response) -> Response {
    let status = response.status();
    let plain = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|t| t.starts_with("text/plain"));
    if !status.is_client_error() || !plain {
        return response;
    }
    let text = match axum::body::to_bytes(response.into_body(), 4096).await {
        Ok(b) => String::from_utf8_lossy(&b).trim().to_string(),
        Err(_) => String::new(),
    };
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("refused").to_string()
    } else {
        text
    };
    let code = status
        .canonical_reason()
        .unwrap_or("client_error")
        .to_ascii_lowercase()
        .replace([' ', '-'], "_");
    let body = serde_json::json!({ "error": { "code": code, "message": message, "problems": [] } });
    (status, axum::Json(body)).into_response()
}

/// `Ok` when the request names a loopback host or the public URL's host.
fn known_host(request: &Request, public_host: &str) -> Result<(), String> {
    let authority = request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()));
    let Some(authority) = authority else {
        return Err("the request names no host".into());
    };
    let host = match authority.strip_prefix('[') {
        Some(v6) => format!("[{}]", v6.split(']').next().unwrap_or_default()),
        None => authority.split(':').next().unwrap_or_default().to_string(),
    }
    .to_ascii_lowercase();
    let loopback = matches!(host.as_str(), "localhost" | "[::1]")
        || host.ends_with(".localhost")
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback || (!public_host.is_empty() && host == public_host) {
        Ok(())
    } else {
        Err(format!(
            "{host} is not this server's host (FLOWSCOPE_PUBLIC_URL names {public_host})"
        ))
    }
}

/// How a path compares with its canonical form.
#[derive(Debug, PartialEq)]
enum Canonical {
    Yes,
    /// Only a trailing slash differs: the path without it.
    Redirect(String),
    No,
}

fn canonical(path: &str) -> Canonical {
    if path == "/" {
        return Canonical::Yes;
    }
    let trimmed = path.strip_suffix('/');
    let body = trimmed.unwrap_or(path);
    let Some(rest) = body.strip_prefix('/') else {
        return Canonical::No;
    };
    for segment in rest.split('/') {
        let decoded = percent_decode(segment);
        let bad = match &decoded {
            None => true,
            Some(d) => {
                d.is_empty()
                    || d == "."
                    || d == ".."
                    || d.contains(['/', '\\', '\0'])
                    // A second decoding must not yield a dot segment either (`%252e`).
                    || percent_decode(d).is_none_or(|dd| dd == "." || dd == ".." || dd.contains(['/', '\\']))
            }
        };
        if bad {
            return Canonical::No;
        }
    }
    match trimmed {
        Some(t) => Canonical::Redirect(t.to_string()),
        None => Canonical::Yes,
    }
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

    #[test]
    fn only_canonical_paths_pass() {
        for ok in [
            "/",
            "/runs",
            "/runs/0190-ab",
            "/pkg/flowscope.js",
            "/api/v1/runs",
            "/hooks/a%20b",
        ] {
            assert_eq!(canonical(ok), Canonical::Yes, "{ok}");
        }
        assert_eq!(
            canonical("/settings/"),
            Canonical::Redirect("/settings".into())
        );
        for bad in [
            "/pkg/../settings",
            "/pkg/%2e%2e/settings",
            "/pkg/%2E%2E/settings",
            "/pkg/.%2e/settings",
            "/pkg/%252e%252e/settings",
            "/auth/./x",
            "/hooks/%2e%2e/x",
            "/workflows/../settings",
            "//settings",
            "/runs//x",
            "/runs/a%2fb",
            "/runs/a%5cb",
            "/runs/a\\b",
            "/runs/%zz",
            "/runs/%c0%ae",
            "/a/../",
            "relative",
        ] {
            assert_eq!(canonical(bad), Canonical::No, "{bad}");
        }
    }

    #[test]
    fn only_loopback_and_the_public_host_are_served() {
        let req = |host: &str| {
            Request::builder()
                .uri("/runs")
                .header(header::HOST, host)
                .body(axum::body::Body::empty())
                .expect("request")
        };
        let public = "hub.example.com";
        for ok in [
            "127.0.0.1:3000",
            "localhost:3000",
            "[::1]:8080",
            "127.0.0.2",
            "hub.example.com",
            "HUB.example.com:443",
        ] {
            assert!(known_host(&req(ok), public).is_ok(), "{ok}");
        }
        for bad in [
            "evil.example:3000",
            "hub.example.com.evil.example",
            "0.0.0.0:3000",
            "10.0.0.1",
        ] {
            assert!(known_host(&req(bad), public).is_err(), "{bad}");
        }
        let none = Request::builder()
            .uri("/runs")
            .body(axum::body::Body::empty())
            .expect("request");
        assert!(known_host(&none, public).is_err());
    }

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
