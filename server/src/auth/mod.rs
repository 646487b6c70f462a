//! Sign-in, sessions, API tokens, and the role every route needs.
//!
//! One middleware ([`authenticate`]) is the gate for pages, server functions and the REST
//! API alike: it finds who is calling (a session cookie or an `Authorization: Bearer fs_…`
//! token), looks up the role the route needs in [`need`], and refuses the rest — 401 (or a
//! redirect to `/login` for a page) without credentials, 403 with too small a role. Handlers
//! read the caller from the request's extensions (`Extension<Principal>`) to record who did
//! what. With sign-in off (`FLOWSCOPE_AUTH=false`, the loopback default) every caller is an
//! admin named `local`, and pages say "No sign-in".
//!
//! Passwords are argon2id PHC strings; session cookies and API tokens are 256 random bits
//! of which only the SHA-256 is stored. Failed sign-ins are limited per name and per client
//! address, or per trusted device, in this process ([`limiter`], [`device`]).

mod device;
mod limiter;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Form, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::post;
use axum::Router;
use engine::access::{Action, Principal, Role, Via};
use engine::store::{now_ms, Store};
use engine::vault::verify_password;
use serde::Deserialize;

use crate::error::ApiError;

pub use device::Proxy;
use device::{client_addr, Devices, DEVICE_COOKIE};
pub use engine::access::{check_password, MIN_PASSWORD};
use limiter::LoginLimiter;

pub const SESSION_COOKIE: &str = "flowscope_session";
/// A session lasts this long from sign-in.
const SESSION_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// A session unused this long has ended (a browser left signed in on a shared machine).
pub const SESSION_IDLE: Duration = Duration::from_secs(12 * 3600);
/// An API token's last-used time is written at most this often (not on every request).
const TOUCH_EVERY_MS: i64 = 60_000;

/// The sign-in state shared by the middleware and the `/auth` handlers.
#[derive(Clone)]
pub struct Auth {
    inner: Arc<AuthInner>,
}

struct AuthInner {
    enabled: bool,
    store: Store,
    limiter: LoginLimiter,
    devices: Devices,
    trusted_proxies: Vec<Proxy>,
}

impl Auth {
    /// `key` seals device cookies (none: no browser is remembered); `trusted_proxies` may
    /// name the client in `X-Forwarded-For`.
    pub fn new(
        store: Store,
        enabled: bool,
        key: Option<engine::vault::KeySource>,
        trusted_proxies: Vec<Proxy>,
    ) -> Auth {
        Auth {
            inner: Arc::new(AuthInner {
                enabled,
                store,
                limiter: LoginLimiter::default(),
                devices: Devices::new(key),
                trusted_proxies,
            }),
        }
    }

    pub fn enabled(&self) -> bool {
        self.inner.enabled
    }

    /// Who the request's credentials name; `None` without (valid) credentials.
    async fn principal(&self, headers: &HeaderMap) -> Result<Option<Principal>, ApiError> {
        if !self.inner.enabled {
            return Ok(Some(Principal {
                name: "local".into(),
                role: Role::Admin,
                via: Via::Open,
            }));
        }
        let store = &self.inner.store;
        if let Some(token) = bearer(headers) {
            let Some((id, name, role, last_used)) = store.token_by_hash(&sha256_hex(token)).await?
            else {
                return Err(ApiError::Unauthorized(
                    "the API token is not valid (wrong, or revoked)".into(),
                ));
            };
            let now = now_ms();
            if last_used.is_none_or(|t| now - t > TOUCH_EVERY_MS) {
                let store = store.clone();
                tokio::spawn(async move {
                    if let Err(e) = store.touch_token(id, now).await {
                        tracing::warn!(error = %e, "cannot record the token's last use");
                    }
                });
            }
            return Ok(Some(Principal {
                name,
                role,
                via: Via::Token,
            }));
        }
        if let Some(cookie) = cookie(headers, SESSION_COOKIE) {
            let (hash, now) = (sha256_hex(cookie), now_ms());
            let idle_since = now - SESSION_IDLE.as_millis() as i64;
            if let Some((name, role, seen)) = store.session_user(&hash, now, idle_since).await? {
                if now - seen > TOUCH_EVERY_MS {
                    let store = store.clone();
                    tokio::spawn(async move {
                        if let Err(e) = store.touch_session(&hash, now).await {
                            tracing::warn!(error = %e, "cannot record the session's last use");
                        }
                    });
                }
                return Ok(Some(Principal {
                    name,
                    role,
                    via: Via::Session,
                }));
            }
        }
        Ok(None)
    }
}

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Anyone: sign-in itself, static files, health, `/metrics`, and the endpoints that check
    /// a secret of their own (webhooks, Alertmanager).
    Public,
    Role(Role),
}

/// Server functions that only read: a viewer may call them. Any other server function needs
/// its role listed in [`need`], or admin: a new one is closed until it is placed here.
const READ_SERVER_FNS: &[&str] = &[
    "list_runs",
    "runs_charts",
    "workflow_source",
    "diff_versions",
    "get_workflow",
    "list_workflows",
    "get_run",
    "whoami",
    // The approval's own `role` says who may decide (`Engine::decide`).
    "decide_step",
];

/// The role a request needs, from its method and path. Closed by default: a write this
/// table does not name needs admin.
pub fn need(method: &Method, path: &str) -> Need {
    let read = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    let public = matches!(
        path,
        "/login" | "/setup" | "/healthz" | "/readyz" | "/metrics" | "/favicon.svg"
    ) || path.starts_with("/auth/")
        || path.starts_with("/pkg/")
        || path.starts_with("/hooks/")
        || path == "/api/v1/alerts/alertmanager";
    if public {
        return Need::Public;
    }
    if let Some(rest) = path.strip_prefix("/api/v1/") {
        let parts: Vec<&str> = rest.split('/').collect();
        return Need::Role(
            match (read, parts.as_slice()) {
                (_, ["users" | "tokens" | "secrets" | "workers", ..]) => Action::Administer,
                (true, _) => Action::Read,
                (false, ["validate"]) => Action::Read,
                (
                    false,
                    ["workflows", _, "runs" | "pause" | "resume"]
                    | ["runs", "bulk"]
                    | ["runs", _, "cancel" | "retry" | "pause" | "resume"]
                    | ["events", _],
                ) => Action::Operate,
                // The approval's own `role` says who may decide (`Engine::decide`).
                (false, ["runs", _, "steps", _, "decision"]) => Action::Read,
                (
                    false,
                    ["workflows"] | ["workflows", _] | ["workflows", _, "archive" | "restore"],
                ) => Action::Edit,
                _ => Action::Administer,
            }
            .role(),
        );
    }
    if let Some(name) = path.strip_prefix("/api/") {
        return Need::Role(
            match name {
                n if READ_SERVER_FNS.contains(&n) => Action::Read,
                "trigger_run" | "cancel_run" | "retry_run" | "retry_changed_run" | "bulk_runs"
                | "pause_workflow" | "pause_run" => Action::Operate,
                "save_workflow" | "archive_workflow" | "delete_workflow" => Action::Edit,
                _ => Action::Administer,
            }
            .role(),
        );
    }
    if !read {
        return Need::Role(Role::Admin);
    }
    Need::Role(
        match path {
            "/settings" => Action::Administer,
            "/workflows/new" => Action::Edit,
            p if p.starts_with("/workflows/") && p.ends_with("/edit") => Action::Edit,
            _ => Action::Read,
        }
        .role(),
    )
}

/// Is this a page a browser navigates to (answered with a redirect, not JSON)?
fn is_page(method: &Method, path: &str) -> bool {
    *method == Method::GET && !path.starts_with("/api/")
}

/// The gate: resolves the caller, checks the route's role, passes the caller on.
pub async fn authenticate(State(auth): State<Auth>, mut request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let needed = match need(&method, &path) {
        Need::Public => return next.run(request).await,
        Need::Role(r) => r,
    };
    let principal = match auth.principal(request.headers()).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let Some(principal) = principal else {
        if is_page(&method, &path) {
            let first_run = matches!(auth.inner.store.count_users().await, Ok(0));
            let target = if first_run {
                "/setup".to_string()
            } else {
                let next = request
                    .uri()
                    .path_and_query()
                    .map(|p| p.as_str())
                    .unwrap_or("/");
                format!("/login?next={}", encode(next))
            };
            return Redirect::to(&target).into_response();
        }
        return ApiError::Unauthorized(
            "sign in first, or send an API token (Authorization: Bearer fs_…)".into(),
        )
        .into_response();
    };
    if !principal.role.allows(needed) {
        tracing::info!(user = %principal.name, role = %principal.role, needed = %needed, %path, "refused: role too small");
        return ApiError::Forbidden(format!(
            "{} \"{}\" has the {} role; this needs {}",
            match principal.via {
                Via::Token => "API token",
                _ => "user",
            },
            principal.name,
            principal.role,
            needed
        ))
        .into_response();
    }
    request.extensions_mut().insert(principal);
    next.run(request).await
}

/// `POST /auth/login`, `/auth/logout`, `/auth/setup`: plain forms, so sign-in works before
/// (and without) the page's WebAssembly.
pub fn router(auth: Auth) -> Router {
    Router::new()
        .route("/auth/login", post(login))
        .route("/auth/logout", post(logout))
        .route("/auth/setup", post(setup))
        .with_state(auth)
}

#[derive(Deserialize)]
struct LoginForm {
    name: String,
    password: String,
    #[serde(default)]
    next: String,
}

async fn login(
    State(auth): State<Auth>,
    peer: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let back = |error: &str| {
        Redirect::to(&format!(
            "/login?error={}&next={}",
            encode(error),
            encode(&form.next)
        ))
        .into_response()
    };
    let name = form.name.trim().to_string();
    let device = cookie(&headers, DEVICE_COOKIE)
        .and_then(|c| auth.inner.devices.trusted(c, &name))
        .map(str::to_string);
    // A browser that signed in as this name before is limited on its own: strangers'
    // failures for the name do not lock it out.
    let keys = match &device {
        Some(id) => vec![format!("device:{id}")],
        None => {
            let addr = client_addr(
                peer.map(|p| p.0 .0.ip()),
                &headers,
                &auth.inner.trusted_proxies,
            );
            vec![
                format!("user:{}", name.to_lowercase()),
                format!("ip:{}", addr.map(|a| a.to_string()).unwrap_or_default()),
            ]
        }
    };
    // Counted before the hash, so concurrent guesses cannot all reach argon2 at once.
    if let Err(wait) = auth.inner.limiter.attempt(&keys) {
        tracing::warn!(user = %name, "sign-in refused: too many failed attempts");
        let minutes = wait.as_secs().div_ceil(60).max(1);
        return back(&format!(
            "Too many failed sign-ins. Try again in {minutes} minute{}.",
            if minutes == 1 { "" } else { "s" }
        ));
    }
    let user = match auth.inner.store.user_by_name(&name).await {
        Ok(u) => u,
        Err(e) => return ApiError::from(e).into_response(),
    };
    // A name that does not exist costs the same hash as one that does: no user enumeration.
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    let password = form.password.clone();
    let verified = engine::vault::bounded_hash(move || {
        verify_password(&password, hash.as_deref().unwrap_or(&DUMMY_HASH))
    })
    .await;
    let ok = match verified {
        Ok(ok) => ok,
        Err(e) => return back(&e.to_string()),
    };
    let user = match user {
        Some(u) if ok => u,
        _ => {
            tracing::info!(user = %name, "sign-in failed");
            return back("That name and password do not match.");
        }
    };
    auth.inner.limiter.succeeded(&keys);
    match start_session(&auth.inner.store, user.id, &headers).await {
        Ok(cookie) => {
            tracing::info!(user = %user.name, "signed in");
            let mut response = Redirect::to(safe_next(&form.next)).into_response();
            response.headers_mut().insert(header::SET_COOKIE, cookie);
            let remembered = auth.inner.devices.issue(&user.name).and_then(|d| {
                HeaderValue::from_str(&Devices::set_cookie(&d, is_tls(&headers))).ok()
            });
            if let Some(remembered) = remembered {
                response
                    .headers_mut()
                    .append(header::SET_COOKIE, remembered);
            }
            response
        }
        Err(e) => e.into_response(),
    }
}

async fn logout(State(auth): State<Auth>, headers: HeaderMap) -> Response {
    if let Some(c) = cookie(&headers, SESSION_COOKIE) {
        if let Err(e) = auth.inner.store.delete_session(&sha256_hex(c)).await {
            return ApiError::from(e).into_response();
        }
    }
    let mut response = Redirect::to("/login").into_response();
    let clear = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0");
    if let Ok(v) = HeaderValue::from_str(&clear) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

#[derive(Deserialize)]
struct SetupForm {
    name: String,
    password: String,
    confirm: String,
}

/// The first-run form: creates the first admin while there is no user, and signs them in.
async fn setup(
    State(auth): State<Auth>,
    headers: HeaderMap,
    Form(form): Form<SetupForm>,
) -> Response {
    let back =
        |error: &str| Redirect::to(&format!("/setup?error={}", encode(error))).into_response();
    if !auth.enabled() {
        return back(
            "Sign-in is off on this server (FLOWSCOPE_AUTH=false): there is nothing to set up.",
        );
    }
    let name = form.name.trim().to_string();
    if let Err(m) = engine::access::check_name("user", &name) {
        return back(&m);
    }
    if let Err(m) = check_password(&form.password) {
        return back(&m);
    }
    if form.password != form.confirm {
        return back("The two passwords differ.");
    }
    let hash = match hash_blocking(form.password).await {
        Ok(h) => h,
        Err(e) => return e.into_response(),
    };
    let store = &auth.inner.store;
    match store.create_first_admin(&name, &hash, now_ms()).await {
        Ok(true) => {}
        Ok(false) => {
            return Redirect::to("/login?error=This+hub+is+already+set+up%3A+sign+in.")
                .into_response()
        }
        Err(e) => return ApiError::from(e).into_response(),
    }
    tracing::info!(user = %name, "first admin created");
    let user = match store.user_by_name(&name).await {
        Ok(Some(u)) => u,
        Ok(None) => return back("The new user could not be read back."),
        Err(e) => return ApiError::from(e).into_response(),
    };
    match start_session(store, user.id, &headers).await {
        Ok(cookie) => {
            let mut response = Redirect::to("/workflows").into_response();
            response.headers_mut().insert(header::SET_COOKIE, cookie);
            response
        }
        Err(e) => e.into_response(),
    }
}

/// Creates the configured first admin when there is no user yet.
pub async fn ensure_admin(store: &Store, name: &str, password: &str) -> anyhow::Result<()> {
    if store.count_users().await? > 0 {
        return Ok(());
    }
    let hash = hash_blocking(password.to_string())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if store.create_first_admin(name, &hash, now_ms()).await? {
        tracing::info!(user = %name, "created the admin from FLOWSCOPE_ADMIN_USER");
    }
    Ok(())
}

/// Stores a new session for `user_id`; returns its `Set-Cookie` header.
async fn start_session(
    store: &Store,
    user_id: i64,
    headers: &HeaderMap,
) -> Result<HeaderValue, ApiError> {
    let token = random_hex(32);
    let now = now_ms();
    let expires = now + SESSION_TTL.as_millis() as i64;
    store
        .create_session(&sha256_hex(&token), user_id, now, expires)
        .await?;
    let tls = is_tls(headers);
    let cookie = format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{}",
        SESSION_TTL.as_secs(),
        if tls { "; Secure" } else { "" }
    );
    HeaderValue::from_str(&cookie).map_err(|e| ApiError::Internal(e.into()))
}

/// Whether the browser reached us over TLS (ended at a proxy in front): cookies are `Secure`.
fn is_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

/// A `next` that stays on this site: a path, never `//host` or a full URL. Browsers drop tabs
/// and newlines from URLs (`/\t/evil.example` becomes `//evil.example`) and read `\` as `/`,
/// so any control character, space or backslash refuses it outright.
fn safe_next(next: &str) -> &str {
    let plain = next.len() <= 2048
        && next.bytes().all(|b| b.is_ascii_graphic() && b != b'\\')
        && next.starts_with('/')
        && !next.starts_with("//");
    if plain {
        next
    } else {
        "/workflows"
    }
}

/// Hashes a password off the async threads (argon2 is slow on purpose), a bounded number
/// at once.
pub async fn hash_blocking(password: String) -> Result<String, ApiError> {
    match engine::vault::bounded_hash(move || engine::vault::hash_password(&password)).await {
        Ok(Ok(hash)) => Ok(hash),
        Ok(Err(e)) => Err(ApiError::Internal(anyhow::anyhow!(e))),
        Err(engine::vault::HashError::Busy) => Err(ApiError::TooMany(
            engine::vault::HashError::Busy.to_string(),
        )),
        Err(e) => Err(ApiError::Internal(anyhow::anyhow!(e))),
    }
}

/// The hash verified for a name that does not exist: of a random password nobody knows,
/// made with the same parameters as real ones so both take as long.
static DUMMY_HASH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| engine::vault::hash_password(&random_hex(16)).unwrap_or_default());

pub use engine::vault::{new_token, random_hex, token_hash as sha256_hex};

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Percent-encodes a query value.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_closed_unless_named() {
        let post = Method::POST;
        assert_eq!(
            need(&post, "/api/v1/something_new"),
            Need::Role(Role::Admin)
        );
        assert_eq!(need(&post, "/api/new_server_fn"), Need::Role(Role::Admin));
        assert_eq!(need(&Method::DELETE, "/workflows"), Need::Role(Role::Admin));
        assert_eq!(need(&post, "/api/list_runs"), Need::Role(Role::Viewer));
        assert_eq!(need(&Method::GET, "/runs/x"), Need::Role(Role::Viewer));
        assert_eq!(need(&post, "/hooks/x"), Need::Public);
    }

    #[test]
    fn next_stays_on_site() {
        assert_eq!(safe_next("/runs?x=1"), "/runs?x=1");
        assert_eq!(safe_next("//evil.example"), "/workflows");
        assert_eq!(safe_next("https://evil.example"), "/workflows");
        assert_eq!(safe_next(""), "/workflows");
        assert_eq!(safe_next("/\t/evil.example"), "/workflows");
        assert_eq!(safe_next("/\n/evil.example"), "/workflows");
        assert_eq!(safe_next("/\\evil.example"), "/workflows");
        assert_eq!(safe_next("/ /evil.example"), "/workflows");
    }

    #[test]
    fn dummy_hash_parses_and_matches_nothing() {
        assert!(DUMMY_HASH.starts_with("$argon2id$"));
        assert!(!verify_password("", &DUMMY_HASH));
        let real = engine::vault::hash_password("correct horse").unwrap();
        assert!(verify_password("correct horse", &real));
        assert!(!verify_password("correct horsf", &real));
        assert!(!verify_password("x", "not a hash"));
    }
}
