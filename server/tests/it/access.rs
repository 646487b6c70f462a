//! Sign-in, sessions, API tokens, roles and stored secrets, against a real server on SQLite:
//! the role matrix over every REST route, server function and guarded page; sign-in, sign-out
//! and its rate limit; the first-run set-up; token revocation and last use; who started a
//! run; and a secret that never comes back out.

use crate::common;
use crate::common::hub::{Client, Hub, ADMIN};

use flowscope::config::Config;
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// Posts the sign-in form; the response (a 303) as it came.
async fn login(app: &Client, name: &str, password: &str) -> reqwest::Response {
    app.request(Method::POST, "/auth/login")
        .form(&[("name", name), ("password", password), ("next", "/runs")])
        .send()
        .await
        .expect("login")
}

/// Signs in through the form, checking the session cookie's flags on every sign-in; a client
/// sending that cookie, and the `Cookie` header value itself.
async fn session(hub: &Hub, name: &str, password: &str) -> (Client, String) {
    let app = hub.signed_in(name, password).await;
    let cookie = app.cookie().expect("a session").to_string();
    (app, cookie)
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
        case(Method::POST, "/api/v1/workflows/always-fails/pause", None, "operator"),
        case(Method::POST, "/api/v1/workflows/always-fails/resume", None, "operator"),
        case(Method::POST, &format!("/api/v1/runs/{run}/pause"), None, "operator"),
        case(Method::POST, &format!("/api/v1/runs/{run}/resume"), None, "operator"),
        case(Method::POST, "/api/v1/events/some-key", json(json!({"ok": true})), "operator"),
        // Past the gate, the approval's own role decides (Engine::decide).
        case(Method::POST, &format!("/api/v1/runs/{run}/steps/greet/decision"), json(json!({"approved": true})), "viewer"),
        // REST: changing workflows.
        case(Method::POST, "/api/v1/workflows", yaml(&doc("made")), "editor"),
        case(Method::PUT, "/api/v1/workflows/made", yaml(&doc("made")), "editor"),
        case(Method::POST, "/api/v1/workflows/made/archive", None, "editor"),
        case(Method::POST, "/api/v1/workflows/made/restore", None, "editor"),
        case(Method::DELETE, "/api/v1/workflows/made", None, "editor"),
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
        case(Method::POST, "/api/pause_workflow", form("id=always-fails&paused=false"), "operator"),
        case(Method::POST, "/api/pause_run", form(&format!("id={run}&pause=true")), "operator"),
        case(Method::POST, "/api/decide_step", form(&format!("run_id={run}&step_id=greet&approved=true&comment=&fields_json=")), "viewer"),
        case(Method::POST, "/api/bulk_runs", form("query[workflow]=none&query[status]=&query[trigger]=&query[range]=&query[before]=&action=cancel&dry_run=true"), "operator"),
        case(Method::POST, "/api/retry_changed_run", form(&format!("id={run}&inputs_json=%7B%7D&latest=false")), "operator"),
        case(Method::POST, "/api/save_workflow", form("source=x"), "editor"),
        case(Method::POST, "/api/archive_workflow", form("id=hello&archived=false"), "editor"),
        case(Method::POST, "/api/delete_workflow", form("id=nothing-here"), "editor"),
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
    let hub = Hub::start_with_auth().await;
    let anonymous = hub.client();
    let (admin, _) = session(&hub, ADMIN.0, ADMIN.1).await;
    let mut tokens = Vec::new();
    for role in ROLES {
        let token = admin.token(&format!("t-{role}"), role).await;
        tokens.push((role, anonymous.with_token(&token)));
    }
    let admin_token = &tokens[3].1;
    let run = admin_token.trigger("hello", json!({})).await;
    admin_token.wait_finished(&run).await;

    let cases = route_cases(&run);

    let mut checked = 0;
    for case in &cases {
        let send = |caller: &Client| {
            let mut r = caller.request(case.method.clone(), &case.path);
            if let Some((ct, body)) = &case.body {
                r = r.header(CONTENT_TYPE, *ct).body(body.clone());
            }
            r.send()
        };
        // Without credentials: 401, or a page's redirect to sign-in.
        let r = send(&anonymous).await.expect("send");
        if case.path.starts_with("/api/") {
            assert_eq!(
                r.status(),
                StatusCode::UNAUTHORIZED,
                "{} {} without credentials",
                case.method,
                case.path
            );
        } else {
            assert_eq!(
                r.status(),
                StatusCode::SEE_OTHER,
                "{} {}",
                case.method,
                case.path
            );
            let to = r.headers()[LOCATION].to_str().expect("ascii");
            assert!(to.starts_with("/login?next="), "{to}");
        }
        for (role, caller) in &tokens {
            let r = send(caller).await.expect("send");
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
        let (status, _) = anonymous.get(path).await;
        assert_eq!(status, StatusCode::OK, "{path} is public");
    }
    // A wrong or malformed token is refused, never treated as anonymous-but-allowed.
    let (status, _) = anonymous
        .with_token("fs_0000")
        .get("/api/v1/workflows")
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_sign_out_and_the_failed_attempt_limit() {
    let hub = Hub::start_with_auth().await;
    let anonymous = hub.client();

    // A page without a session sends the browser to sign in, remembering where it was going.
    let r = anonymous
        .request(Method::GET, "/runs?status=failed")
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()[LOCATION], "/login?next=/runs%3Fstatus%3Dfailed");

    // Wrong password: back to the form with a message, no cookie.
    let r = login(&anonymous, ADMIN.0, "wrong-password").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(r.headers().get(SET_COOKIE).is_none());
    assert!(r.headers()[LOCATION]
        .to_str()
        .unwrap()
        .starts_with("/login?error="));

    let (admin, cookie) = session(&hub, ADMIN.0, ADMIN.1).await;
    let (_, me) = admin.get("/api/v1/me").await;
    assert_eq!(
        me,
        json!({ "name": "admin", "role": "admin", "via": "session" })
    );
    // The page shows who is signed in, and no "No sign-in" warning.
    let page = admin
        .request(Method::GET, "/workflows")
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    assert!(page.contains("Sign out") && !page.contains("No sign-in"));

    // Only the hash of the cookie is stored.
    let value = cookie.split_once('=').expect("pair").1;
    let db = std::fs::read(hub.dir().join("flowscope.db")).expect("db");
    let wal = std::fs::read(hub.dir().join("flowscope.db-wal")).unwrap_or_default();
    let hay = [db, wal].concat();
    assert!(
        !hay.windows(value.len()).any(|w| w == value.as_bytes()),
        "the session value is in the database"
    );

    // Behind TLS (as a proxy reports it) the cookie is Secure.
    let r = anonymous
        .request(Method::POST, "/auth/login")
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
    let r = anonymous
        .request(Method::POST, "/auth/login")
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
    let r = admin
        .request(Method::POST, "/auth/logout")
        .send()
        .await
        .expect("logout");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(r.headers()[SET_COOKIE]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    let (status, _) = admin.get("/api/v1/me").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Five failures for a name, then even the right password is refused for a while.
    for _ in 0..5 {
        login(&anonymous, ADMIN.0, "guess").await;
    }
    let r = login(&anonymous, ADMIN.0, ADMIN.1).await;
    assert!(
        r.headers().get(SET_COOKIE).is_none(),
        "rate-limited sign-in must not succeed"
    );
    let to = r.headers()[LOCATION].to_str().unwrap().to_string();
    assert!(to.contains("Too%20many%20failed%20sign-ins"), "{to}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_run_creates_the_admin_once() {
    let hub = Hub::start_with(Config {
        auth: true,
        ..common::quiet()
    })
    .await;
    let anonymous = hub.client();
    let r = anonymous
        .request(Method::GET, "/workflows")
        .send()
        .await
        .expect("get");
    assert_eq!(r.headers()[LOCATION], "/setup", "no user yet: set-up first");

    let setup = |name: &'static str, password: &'static str, confirm: &'static str| {
        anonymous
            .request(Method::POST, "/auth/setup")
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
    let (_, me) = anonymous
        .send(
            anonymous
                .request(Method::GET, "/api/v1/me")
                .header(COOKIE, &cookie),
        )
        .await;
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
        login(&anonymous, "mallory", "long-password")
            .await
            .headers()
            .get(SET_COOKIE),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_record_use_and_stop_at_revocation_and_runs_record_who() {
    let hub = Hub::start_with_auth().await;
    let (admin, _) = session(&hub, ADMIN.0, ADMIN.1).await;
    let ci = admin.token("ci", "operator").await;
    assert!(ci.starts_with("fs_") && ci.len() == 67, "{ci}");
    let ci_client = hub.client().with_token(&ci);

    let run = ci_client.trigger("hello", json!({})).await;
    ci_client.wait_finished(&run).await;
    let detail = admin.get_run(&run).await;
    assert_eq!(detail["trigger"], "api");
    assert_eq!(detail["actor"], "token:ci");

    // Started from the UI by a signed-in person: manual, by them.
    let (status, id) = admin
        .send(
            admin
                .request(Method::POST, "/api/trigger_run")
                .form(&[("workflow_id", "hello"), ("inputs_json", "")]),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let detail = admin.get_run(id.as_str().expect("id")).await;
    assert_eq!(
        (detail["trigger"].as_str(), detail["actor"].as_str()),
        (Some("manual"), Some("admin"))
    );

    // The list shows the token's last use, never its value.
    let listed = admin
        .request(Method::GET, "/api/v1/tokens")
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
    let (status, _) = admin.delete(&format!("/api/v1/tokens/{id}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = ci_client.get("/api/v1/runs").await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a revoked token stops at once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_change_at_once_and_the_last_admin_stays() {
    let hub = Hub::start_with_auth().await;
    let (admin, _) = session(&hub, ADMIN.0, ADMIN.1).await;
    let (status, body) = admin
        .post_json(
            "/api/v1/users",
            json!({ "name": "ann", "password": "ann-password", "role": "viewer" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let ann_id = body["user"]["id"].as_i64().expect("id");
    let (ann, _) = session(&hub, "ann", "ann-password").await;
    let trigger = || ann.post_json("/api/v1/workflows/hello/runs", json!({}));
    assert_eq!(trigger().await.0, StatusCode::FORBIDDEN);
    let (status, _) = admin
        .put_json(
            &format!("/api/v1/users/{ann_id}"),
            json!({ "role": "operator" }),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        trigger().await.0,
        StatusCode::ACCEPTED,
        "the same session, the new role"
    );

    // A taken name and a bad role are clear errors.
    let (status, _) = admin
        .post_json(
            "/api/v1/users",
            json!({ "name": "ann", "password": "ann-password", "role": "root" }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // The only admin can be neither demoted nor deleted.
    let (_, users) = admin.get("/api/v1/users").await;
    let admin_id = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "admin")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let path = format!("/api/v1/users/{admin_id}");
    for r in [
        admin
            .request(Method::PUT, &path)
            .json(&json!({ "role": "viewer" })),
        admin.request(Method::DELETE, &path),
    ] {
        let (status, body) = admin.send(r).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("last admin"),
            "{body}"
        );
    }

    // A new password signs the user out everywhere.
    let (status, _) = admin
        .put_json(
            &format!("/api/v1/users/{ann_id}"),
            json!({ "password": "new-ann-password" }),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(trigger().await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_secret_is_sealed_used_and_never_shown() {
    let hub = Hub::start().await;
    let app = hub.client();
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

    let (status, _) = app
        .put_json("/api/v1/secrets/API_KEY", json!({ "value": value }))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app
        .put_json("/api/v1/secrets/not-a-name", json!({ "value": value }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let listed = app
        .request(Method::GET, "/api/v1/secrets")
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
    let mut hay = std::fs::read(hub.dir().join("flowscope.db")).expect("db");
    hay.extend(std::fs::read(hub.dir().join("flowscope.db-wal")).unwrap_or_default());
    assert!(
        !hay.windows(value.len()).any(|w| w == value.as_bytes()),
        "the secret is stored in plain text"
    );
    let key = hub.dir().join("secret.key");
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
    app.create(&workflow).await;
    let run = app.run("uses-secret", json!({})).await;
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
    let (status, _) = app.delete("/api/v1/secrets/API_KEY").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let listed = app
        .request(Method::GET, "/api/v1/secrets")
        .send()
        .await
        .expect("list")
        .text()
        .await
        .expect("text");
    assert!(!listed.contains("API_KEY"));
}
