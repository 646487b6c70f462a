//! Sign-in, sessions, API tokens, roles and stored secrets, against a real server on SQLite:
//! the role matrix over every REST route, server function and guarded page; sign-in, sign-out
//! and its rate limit; the first-run set-up; token revocation and last use; who started a
//! run; and a secret that never comes back out.

use crate::common;

use std::time::Duration;

use flowscope::config::Config;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const ADMIN: (&str, &str) = ("admin", "admin-password-1");

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
}

async fn serve_auth(dir: &std::path::Path, admin: bool) -> String {
    common::serve_with(
        dir,
        Config {
            auth: true,
            admin_user: admin.then(|| (ADMIN.0.to_string(), ADMIN.1.to_string())),
            ..common::quiet()
        },
    )
    .await
}

/// Posts the sign-in form; the response (a 303) as it came.
async fn login(c: &reqwest::Client, base: &str, name: &str, password: &str) -> reqwest::Response {
    c.post(format!("{base}/auth/login"))
        .form(&[("name", name), ("password", password), ("next", "/runs")])
        .send()
        .await
        .expect("login")
}

/// Signs in and returns the `Cookie` header value to send.
async fn session(c: &reqwest::Client, base: &str, name: &str, password: &str) -> String {
    let r = login(c, base, name, password).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()[LOCATION], "/runs", "signed in, back to `next`");
    let set = r.headers()[SET_COOKIE].to_str().expect("ascii").to_string();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Lax"),
        "{set}"
    );
    set.split(';').next().expect("pair").to_string()
}

/// Creates an API token with `role` as the admin session; returns its value.
async fn token(c: &reqwest::Client, base: &str, cookie: &str, name: &str, role: &str) -> String {
    let r = c
        .post(format!("{base}/api/v1/tokens"))
        .header(COOKIE, cookie)
        .json(&json!({ "name": name, "role": role }))
        .send()
        .await
        .expect("create token");
    assert_eq!(r.status(), StatusCode::CREATED);
    let body: Value = r.json().await.expect("json");
    body["token"].as_str().expect("token").to_string()
}

async fn finished_run(c: &reqwest::Client, base: &str, auth: &str) -> String {
    let created: Value = c
        .post(format!("{base}/api/v1/workflows/hello/runs"))
        .header(AUTHORIZATION, auth)
        .json(&json!({}))
        .send()
        .await
        .expect("trigger")
        .json()
        .await
        .expect("json");
    let id = created["run"]["id"].as_str().expect("id").to_string();
    loop {
        let run: Value = c
            .get(format!("{base}/api/v1/runs/{id}"))
            .header(AUTHORIZATION, auth)
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        if run["finished_at"].is_i64() {
            return id;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One request of the matrix: what it is, and the smallest role that may make it.
struct Case {
    method: Method,
    path: String,
    body: Option<(&'static str, String)>,
    needs: &'static str,
}

fn case(
    method: Method,
    path: &str,
    body: Option<(&'static str, String)>,
    needs: &'static str,
) -> Case {
    Case {
        method,
        path: path.to_string(),
        body,
        needs,
    }
}

const ROLES: [&str; 4] = ["viewer", "operator", "editor", "admin"];

fn rank(role: &str) -> usize {
    ROLES.iter().position(|r| *r == role).expect("role")
}

/// Every REST route, server function and page, with a body it accepts and the least role
/// that may call it.
#[rustfmt::skip]
fn route_cases(run: &str) -> Vec<Case> {
    let json = |v: Value| Some(("application/json", v.to_string()));
    let yaml = |s: &str| Some(("application/yaml", s.to_string()));
    let form = |s: &str| Some(("application/x-www-form-urlencoded", s.to_string()));
    let doc = |id: &str| format!("id: {id}\nname: {id}\nsteps:\n- id: a\n  agent: simulate\n");
    vec![
        // REST: reads.
        case(Method::GET, "/api/v1/me", None, "viewer"),
        case(Method::GET, "/api/v1/workflows", None, "viewer"),
        case(Method::GET, "/api/v1/workflows/hello", None, "viewer"),
        case(Method::GET, "/api/v1/workflows/hello/versions", None, "viewer"),
        case(Method::GET, "/api/v1/workflows/hello/versions/1", None, "viewer"),
        case(Method::GET, "/api/v1/workflows/hello/export", None, "viewer"),
        case(Method::GET, "/api/v1/workflows/hello/diff?from=1&to=1", None, "viewer"),
        case(Method::POST, "/api/v1/validate", yaml(&doc("v")), "viewer"),
        case(Method::GET, "/api/v1/runs", None, "viewer"),
        case(Method::GET, &format!("/api/v1/runs/{run}"), None, "viewer"),
        case(Method::GET, &format!("/api/v1/runs/{run}/steps/greet/output"), None, "viewer"),
        // REST: operating runs.
        case(Method::POST, "/api/v1/workflows/hello/runs", json(json!({})), "operator"),
        case(Method::POST, &format!("/api/v1/runs/{run}/cancel"), None, "operator"),
        case(Method::POST, &format!("/api/v1/runs/{run}/retry"), None, "operator"),
        // REST: changing workflows.
        case(Method::POST, "/api/v1/workflows", yaml(&doc("made")), "editor"),
        case(Method::PUT, "/api/v1/workflows/made", yaml(&doc("made")), "editor"),
        case(Method::POST, "/api/v1/workflows/made/archive", None, "editor"),
        case(Method::POST, "/api/v1/workflows/made/restore", None, "editor"),
        // REST: administration.
        case(Method::GET, "/api/v1/users", None, "admin"),
        case(Method::POST, "/api/v1/users", json(json!({ "name": "u", "password": "longenough", "role": "viewer" })), "admin"),
        case(Method::PUT, "/api/v1/users/999", json(json!({ "role": "viewer" })), "admin"),
        case(Method::DELETE, "/api/v1/users/999", None, "admin"),
        case(Method::GET, "/api/v1/tokens", None, "admin"),
        case(Method::POST, "/api/v1/tokens", json(json!({ "name": "x", "role": "viewer" })), "admin"),
        case(Method::DELETE, "/api/v1/tokens/999", None, "admin"),
        case(Method::GET, "/api/v1/secrets", None, "admin"),
        case(Method::PUT, "/api/v1/secrets/MATRIX", json(json!({ "value": "v" })), "admin"),
        case(Method::DELETE, "/api/v1/secrets/NONE", None, "admin"),
        // Server functions (the UI's calls).
        case(Method::POST, "/api/whoami", form(""), "viewer"),
        case(Method::POST, "/api/list_workflows", form("show_archived=false"), "viewer"),
        case(Method::POST, "/api/get_workflow", form("id=hello"), "viewer"),
        case(Method::POST, "/api/workflow_source", form("id=hello"), "viewer"),
        case(Method::POST, "/api/diff_versions", form("id=hello&from=1&to=1"), "viewer"),
        case(Method::POST, "/api/list_runs", form(""), "viewer"),
        case(Method::POST, "/api/runs_charts", form(""), "viewer"),
        case(Method::POST, "/api/get_run", form(&format!("id={run}")), "viewer"),
        case(Method::POST, "/api/trigger_run", form("workflow_id=hello&inputs_json="), "operator"),
        case(Method::POST, "/api/cancel_run", form(&format!("id={run}")), "operator"),
        case(Method::POST, "/api/retry_run", form(&format!("id={run}&mode=whole")), "operator"),
        case(Method::POST, "/api/bulk_runs", form("query[workflow]=none&query[status]=&query[trigger]=&query[range]=&query[before]=&action=cancel&dry_run=true"), "operator"),
        case(Method::POST, "/api/retry_changed_run", form(&format!("id={run}&inputs_json=%7B%7D&latest=false")), "operator"),
        case(Method::POST, "/api/save_workflow", form("source=x"), "editor"),
        case(Method::POST, "/api/access_list", form(""), "admin"),
        case(Method::POST, "/api/access_add_user", form("name=v&password=longenough&role=viewer"), "admin"),
        case(Method::POST, "/api/access_set_role", form("id=999&role=viewer"), "admin"),
        case(Method::POST, "/api/access_delete_user", form("id=999"), "admin"),
        case(Method::POST, "/api/access_create_token", form("name=y&role=viewer"), "admin"),
        case(Method::POST, "/api/access_revoke_token", form("id=999"), "admin"),
        case(Method::POST, "/api/access_put_secret", form("name=FN&value=v"), "admin"),
        case(Method::POST, "/api/access_delete_secret", form("name=FN"), "admin"),
        case(Method::POST, "/api/a_server_fn_nobody_listed", form(""), "admin"),
        // Pages.
        case(Method::GET, "/workflows", None, "viewer"),
        case(Method::GET, &format!("/runs/{run}"), None, "viewer"),
        case(Method::GET, "/workflows/new", None, "editor"),
        case(Method::GET, "/workflows/hello/edit", None, "editor"),
        case(Method::GET, "/settings", None, "admin"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_refuses_the_roles_below_its_own() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = serve_auth(dir.path(), true).await;
    let c = client();
    let admin = session(&c, &base, ADMIN.0, ADMIN.1).await;
    let mut tokens = Vec::new();
    for role in ROLES {
        tokens.push((
            role,
            token(&c, &base, &admin, &format!("t-{role}"), role).await,
        ));
    }
    let admin_bearer = format!("Bearer {}", tokens[3].1);
    let run = finished_run(&c, &base, &admin_bearer).await;

    let cases = route_cases(&run);

    let mut checked = 0;
    for case in &cases {
        let send = |auth: Option<&str>| {
            let mut r = c.request(case.method.clone(), format!("{base}{}", case.path));
            if let Some(a) = auth {
                r = r.header(AUTHORIZATION, a);
            }
            if let Some((ct, body)) = &case.body {
                r = r.header(CONTENT_TYPE, *ct).body(body.clone());
            }
            r.send()
        };
        // Without credentials: 401, or a page's redirect to sign-in.
        let anonymous = send(None).await.expect("send");
        if case.path.starts_with("/api/") {
            assert_eq!(
                anonymous.status(),
                StatusCode::UNAUTHORIZED,
                "{} {} without credentials",
                case.method,
                case.path
            );
        } else {
            assert_eq!(
                anonymous.status(),
                StatusCode::SEE_OTHER,
                "{} {}",
                case.method,
                case.path
            );
            let to = anonymous.headers()[LOCATION].to_str().expect("ascii");
            assert!(to.starts_with("/login?next="), "{to}");
        }
        for (role, value) in &tokens {
            let r = send(Some(&format!("Bearer {value}"))).await.expect("send");
            let status = r.status();
            let body = r.text().await.unwrap_or_default();
            if rank(role) < rank(case.needs) {
                assert_eq!(
                    status,
                    StatusCode::FORBIDDEN,
                    "{role} may not {} {}: {body}",
                    case.method,
                    case.path
                );
                assert!(
                    body.contains(case.needs),
                    "the refusal names the role needed: {body}"
                );
            } else {
                assert!(
                    status != StatusCode::FORBIDDEN && status != StatusCode::UNAUTHORIZED,
                    "{role} may {} {}, got {status}: {body}",
                    case.method,
                    case.path
                );
            }
            checked += 1;
        }
    }
    assert_eq!(checked, cases.len() * 4);

    // Public: health, metrics, the sign-in page, and a wrong token there is not even read.
    for path in ["/healthz", "/readyz", "/metrics", "/login", "/setup"] {
        let r = c.get(format!("{base}{path}")).send().await.expect("get");
        assert_eq!(r.status(), StatusCode::OK, "{path} is public");
    }
    // A wrong or malformed token is refused, never treated as anonymous-but-allowed.
    let r = c
        .get(format!("{base}/api/v1/workflows"))
        .header(AUTHORIZATION, "Bearer fs_0000")
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_sign_out_and_the_failed_attempt_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = serve_auth(dir.path(), true).await;
    let c = client();

    // A page without a session sends the browser to sign in, remembering where it was going.
    let r = c
        .get(format!("{base}/runs?status=failed"))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()[LOCATION], "/login?next=/runs%3Fstatus%3Dfailed");

    // Wrong password: back to the form with a message, no cookie.
    let r = login(&c, &base, ADMIN.0, "wrong-password").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(r.headers().get(SET_COOKIE).is_none());
    assert!(r.headers()[LOCATION]
        .to_str()
        .unwrap()
        .starts_with("/login?error="));

    let cookie = session(&c, &base, ADMIN.0, ADMIN.1).await;
    let me: Value = c
        .get(format!("{base}/api/v1/me"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .expect("me")
        .json()
        .await
        .expect("json");
    assert_eq!(
        me,
        json!({ "name": "admin", "role": "admin", "via": "session" })
    );
    // The page shows who is signed in, and no "No sign-in" warning.
    let page = c
        .get(format!("{base}/workflows"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    assert!(page.contains("Sign out") && !page.contains("No sign-in"));

    // Only the hash of the cookie is stored.
    let value = cookie.split_once('=').expect("pair").1;
    let db = std::fs::read(dir.path().join("flowscope.db")).expect("db");
    let wal = std::fs::read(dir.path().join("flowscope.db-wal")).unwrap_or_default();
    let hay = [db, wal].concat();
    assert!(
        !hay.windows(value.len()).any(|w| w == value.as_bytes()),
        "the session value is in the database"
    );

    // Behind TLS (as a proxy reports it) the cookie is Secure.
    let r = c
        .post(format!("{base}/auth/login"))
        .header("x-forwarded-proto", "https")
        .form(&[("name", ADMIN.0), ("password", ADMIN.1)])
        .send()
        .await
        .expect("login");
    assert!(r.headers()[SET_COOKIE]
        .to_str()
        .unwrap()
        .contains("; Secure"));
    assert_eq!(
        r.headers()[LOCATION],
        "/workflows",
        "no `next`: the home page"
    );

    // An open redirect is not possible through `next`.
    let r = c
        .post(format!("{base}/auth/login"))
        .form(&[
            ("name", ADMIN.0),
            ("password", ADMIN.1),
            ("next", "//evil.example/"),
        ])
        .send()
        .await
        .expect("login");
    assert_eq!(r.headers()[LOCATION], "/workflows");

    // Sign-out ends the session on the server, not only in the browser.
    let r = c
        .post(format!("{base}/auth/logout"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .expect("logout");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(r.headers()[SET_COOKIE]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    let r = c
        .get(format!("{base}/api/v1/me"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .expect("me");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // Five failures for a name, then even the right password is refused for a while.
    for _ in 0..5 {
        login(&c, &base, ADMIN.0, "guess").await;
    }
    let r = login(&c, &base, ADMIN.0, ADMIN.1).await;
    assert!(
        r.headers().get(SET_COOKIE).is_none(),
        "rate-limited sign-in must not succeed"
    );
    let to = r.headers()[LOCATION].to_str().unwrap().to_string();
    assert!(to.contains("Too%20many%20failed%20sign-ins"), "{to}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_run_creates_the_admin_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = serve_auth(dir.path(), false).await;
    let c = client();
    let r = c
        .get(format!("{base}/workflows"))
        .send()
        .await
        .expect("get");
    assert_eq!(r.headers()[LOCATION], "/setup", "no user yet: set-up first");

    let setup = |name: &'static str, password: &'static str, confirm: &'static str| {
        c.post(format!("{base}/auth/setup"))
            .form(&[("name", name), ("password", password), ("confirm", confirm)])
            .send()
    };
    let r = setup("root", "short", "short").await.expect("setup");
    assert!(r.headers()[LOCATION]
        .to_str()
        .unwrap()
        .starts_with("/setup?error="));
    let r = setup("root", "long-password", "other-password")
        .await
        .expect("setup");
    assert!(r.headers()[LOCATION]
        .to_str()
        .unwrap()
        .starts_with("/setup?error="));
    let r = setup("root", "long-password", "long-password")
        .await
        .expect("setup");
    assert_eq!(r.headers()[LOCATION], "/workflows");
    let cookie = r.headers()[SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let me: Value = c
        .get(format!("{base}/api/v1/me"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .expect("me")
        .json()
        .await
        .expect("json");
    assert_eq!(me["role"], "admin");

    // Nobody else can claim the hub afterwards.
    let r = setup("mallory", "long-password", "long-password")
        .await
        .expect("setup");
    assert!(r.headers()[LOCATION]
        .to_str()
        .unwrap()
        .starts_with("/login?error="));
    assert_eq!(
        login(&c, &base, "mallory", "long-password")
            .await
            .headers()
            .get(SET_COOKIE),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_record_use_and_stop_at_revocation_and_runs_record_who() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = serve_auth(dir.path(), true).await;
    let c = client();
    let admin = session(&c, &base, ADMIN.0, ADMIN.1).await;
    let ci = token(&c, &base, &admin, "ci", "operator").await;
    assert!(ci.starts_with("fs_") && ci.len() == 67, "{ci}");
    let bearer = format!("Bearer {ci}");

    let run = finished_run(&c, &base, &bearer).await;
    let detail: Value = c
        .get(format!("{base}/api/v1/runs/{run}"))
        .header(COOKIE, &admin)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(detail["trigger"], "api");
    assert_eq!(detail["actor"], "token:ci");

    // Started from the UI by a signed-in person: manual, by them.
    let r = c
        .post(format!("{base}/api/trigger_run"))
        .header(COOKIE, &admin)
        .form(&[("workflow_id", "hello"), ("inputs_json", "")])
        .send()
        .await
        .expect("trigger");
    assert_eq!(r.status(), StatusCode::OK);
    let id: String = r.json().await.expect("id");
    let detail: Value = c
        .get(format!("{base}/api/v1/runs/{id}"))
        .header(COOKIE, &admin)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(
        (detail["trigger"].as_str(), detail["actor"].as_str()),
        (Some("manual"), Some("admin"))
    );

    // The list shows the token's last use, never its value.
    let listed = c
        .get(format!("{base}/api/v1/tokens"))
        .header(COOKIE, &admin)
        .send()
        .await
        .expect("list")
        .text()
        .await
        .expect("text");
    assert!(
        !listed.contains(&ci[3..]),
        "a token's value is never listed"
    );
    let tokens: Value = serde_json::from_str(&listed).expect("json");
    let entry = &tokens["tokens"][0];
    assert_eq!(
        (entry["name"].as_str(), entry["created_by"].as_str()),
        (Some("ci"), Some("admin"))
    );
    assert!(entry["last_used_at"].is_i64(), "{entry}");

    let id = entry["id"].as_i64().expect("id");
    let r = c
        .delete(format!("{base}/api/v1/tokens/{id}"))
        .header(COOKIE, &admin)
        .send()
        .await
        .expect("revoke");
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = c
        .get(format!("{base}/api/v1/runs"))
        .header(AUTHORIZATION, &bearer)
        .send()
        .await
        .expect("get");
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "a revoked token stops at once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_change_at_once_and_the_last_admin_stays() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = serve_auth(dir.path(), true).await;
    let c = client();
    let admin = session(&c, &base, ADMIN.0, ADMIN.1).await;
    let r = c
        .post(format!("{base}/api/v1/users"))
        .header(COOKIE, &admin)
        .json(&json!({ "name": "ann", "password": "ann-password", "role": "viewer" }))
        .send()
        .await
        .expect("create");
    assert_eq!(r.status(), StatusCode::CREATED);
    let ann_id = r.json::<Value>().await.expect("json")["user"]["id"]
        .as_i64()
        .expect("id");
    let ann = session(&c, &base, "ann", "ann-password").await;
    let trigger = |cookie: String| {
        c.post(format!("{base}/api/v1/workflows/hello/runs"))
            .header(COOKIE, cookie)
            .json(&json!({}))
            .send()
    };
    assert_eq!(
        trigger(ann.clone()).await.expect("t").status(),
        StatusCode::FORBIDDEN
    );
    let r = c
        .put(format!("{base}/api/v1/users/{ann_id}"))
        .header(COOKIE, &admin)
        .json(&json!({ "role": "operator" }))
        .send()
        .await
        .expect("promote");
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        trigger(ann.clone()).await.expect("t").status(),
        StatusCode::ACCEPTED,
        "the same session, the new role"
    );

    // A taken name and a bad role are clear errors.
    let r = c
        .post(format!("{base}/api/v1/users"))
        .header(COOKIE, &admin)
        .json(&json!({ "name": "ann", "password": "ann-password", "role": "root" }))
        .send()
        .await
        .expect("create");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // The only admin can be neither demoted nor deleted.
    let users: Value = c
        .get(format!("{base}/api/v1/users"))
        .header(COOKIE, &admin)
        .send()
        .await
        .expect("users")
        .json()
        .await
        .expect("json");
    let admin_id = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "admin")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    for r in [
        c.put(format!("{base}/api/v1/users/{admin_id}"))
            .json(&json!({ "role": "viewer" })),
        c.delete(format!("{base}/api/v1/users/{admin_id}")),
    ] {
        let r = r.header(COOKIE, &admin).send().await.expect("send");
        assert_eq!(r.status(), StatusCode::CONFLICT);
        let body: Value = r.json().await.expect("json");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("last admin"),
            "{body}"
        );
    }

    // A new password signs the user out everywhere.
    let r = c
        .put(format!("{base}/api/v1/users/{ann_id}"))
        .header(COOKIE, &admin)
        .json(&json!({ "password": "new-ann-password" }))
        .send()
        .await
        .expect("password");
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        trigger(ann).await.expect("t").status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_secret_is_sealed_used_and_never_shown() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = common::serve(dir.path()).await;
    let c = client();
    let value = "s3cr3t-value-4f1d9c";

    // A receiver that echoes what it is sent: the step's output then holds the secret.
    let echo = axum::Router::new().route(
        "/echo",
        axum::routing::post(|body: String| async move { body }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let echo_url = format!("http://{}/echo", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, echo).await });

    let r = c
        .put(format!("{base}/api/v1/secrets/API_KEY"))
        .json(&json!({ "value": value }))
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let bad = c
        .put(format!("{base}/api/v1/secrets/not-a-name"))
        .json(&json!({ "value": value }))
        .send()
        .await
        .expect("put");
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);

    let listed = c
        .get(format!("{base}/api/v1/secrets"))
        .send()
        .await
        .expect("list")
        .text()
        .await
        .expect("text");
    assert!(
        listed.contains("API_KEY") && !listed.contains(value),
        "{listed}"
    );

    // Sealed at rest: the plaintext is nowhere in the database files; the key file is private.
    let mut hay = std::fs::read(dir.path().join("flowscope.db")).expect("db");
    hay.extend(std::fs::read(dir.path().join("flowscope.db-wal")).unwrap_or_default());
    assert!(
        !hay.windows(value.len()).any(|w| w == value.as_bytes()),
        "the secret is stored in plain text"
    );
    let key = dir.path().join("secret.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key)
                .expect("key file")
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
    }

    // Used by every kind of step that could echo it; redacted wherever it comes back.
    let workflow = format!(
        "id: uses-secret\nname: Uses a secret\nsteps:\n\
         - id: call\n  agent: http\n  with:\n    url: {echo_url}\n    method: POST\n    body: \"key={{{{ secrets.API_KEY }}}}\"\n\
         - id: shape\n  agent: transform\n  needs: [call]\n  with:\n    jq: '\"{{{{ secrets.API_KEY }}}}\" + \"-suffix\"'\n\
         - id: fail\n  agent: http\n  needs: [shape]\n  with:\n    url: \"http://127.0.0.1:1/{{{{ secrets.API_KEY }}}}\"\n"
    );
    let r = c
        .post(format!("{base}/api/v1/workflows"))
        .header(CONTENT_TYPE, "application/yaml")
        .body(workflow)
        .send()
        .await
        .expect("create");
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "{}",
        r.text().await.unwrap_or_default()
    );
    let created: Value = c
        .post(format!("{base}/api/v1/workflows/uses-secret/runs"))
        .json(&json!({}))
        .send()
        .await
        .expect("trigger")
        .json()
        .await
        .expect("json");
    let id = created["run"]["id"].as_str().expect("id").to_string();
    let run = common::wait_finished(&c, &base, &id).await;
    let text = run.to_string();
    assert_eq!(run["status"], "failed", "{text}");
    let call = run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step_id"] == "call")
        .unwrap();
    assert_eq!(
        call["status"], "succeeded",
        "the echo step ran with the secret: {call}"
    );
    assert!(
        text.contains("***"),
        "the value is replaced, visibly: {text}"
    );
    assert!(!text.contains(value), "the secret came back out: {text}");

    // Deleting it leaves the name unset.
    let r = c
        .delete(format!("{base}/api/v1/secrets/API_KEY"))
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let listed = c
        .get(format!("{base}/api/v1/secrets"))
        .send()
        .await
        .expect("list")
        .text()
        .await
        .expect("text");
    assert!(!listed.contains("API_KEY"));
}
