//! The gate in every spelling: each page, for each caller (signed out, and each role through
//! an API token), in each form of its path. The canonical path answers by role; a trailing
//! slash is sent to the canonical path; every other spelling (dot segments, encoded or not,
//! empty segments, encoded slashes) is refused before any page renders. The REST routes and
//! server functions are covered by role in `access.rs`; here their non-canonical spellings.

use crate::common;

use flowscope::config::Config;
use reqwest::header::{AUTHORIZATION, COOKIE, LOCATION};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

const ROLES: [&str; 4] = ["viewer", "operator", "editor", "admin"];

/// The spellings of `path` that must not reach it.
fn variants(path: &str) -> Vec<String> {
    let rest = path.trim_start_matches('/');
    vec![
        format!("/pkg/../{rest}"),
        format!("/pkg/%2e%2e/{rest}"),
        format!("/auth/%2E./{rest}"),
        format!("/hooks/.%2e/{rest}"),
        format!("/./{rest}"),
        format!("//{rest}"),
        format!("/{}", rest.replacen('/', "//", 1)),
        format!("/{}", rest.replacen('/', "%2f", 1)),
    ]
    .into_iter()
    .filter(|v| v != path)
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_in_every_spelling_answers_only_by_role() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        auth: true,
        admin_user: Some(("root".into(), "root-password".into())),
        ..common::quiet()
    };
    let base = common::serve_with(dir.path(), config).await;
    let c = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let login = c
        .post(format!("{base}/auth/login"))
        .form(&[("name", "root"), ("password", "root-password")])
        .send()
        .await
        .expect("login");
    let cookie = login.headers()["set-cookie"].to_str().expect("ascii");
    let cookie = cookie.split(';').next().expect("pair").to_string();
    let mut callers: Vec<(&str, Option<String>)> = vec![("anonymous", None)];
    for role in ROLES {
        let made: Value = c
            .post(format!("{base}/api/v1/tokens"))
            .header(COOKIE, &cookie)
            .json(&json!({ "name": format!("gate-{role}"), "role": role }))
            .send()
            .await
            .expect("token")
            .json()
            .await
            .expect("json");
        let token = made["token"].as_str().expect("token");
        callers.push((role, Some(format!("Bearer {token}"))));
    }
    let admin = callers[4].1.clone().expect("admin");
    let run = {
        let created: Value = c
            .post(format!("{base}/api/v1/workflows/hello/runs"))
            .header(AUTHORIZATION, &admin)
            .json(&json!({}))
            .send()
            .await
            .expect("trigger")
            .json()
            .await
            .expect("json");
        created["run"]["id"].as_str().expect("id").to_string()
    };
    let pages = [
        ("/workflows", "viewer"),
        ("/workflows/hello", "viewer"),
        ("/workflows/new", "editor"),
        ("/workflows/hello/edit", "editor"),
        ("/runs", "viewer"),
        (&format!("/runs/{run}") as &str, "viewer"),
        ("/settings", "admin"),
    ];
    let rank = |r: &str| ROLES.iter().position(|x| *x == r);
    let mut checked = 0;
    for (page, needs) in pages {
        for (who, auth) in &callers {
            let get = |path: String| {
                let mut r = c.get(format!("{base}{path}"));
                if let Some(a) = auth {
                    r = r.header(AUTHORIZATION, a);
                }
                r.send()
            };
            let r = get(page.to_string()).await.expect("get");
            let expected = match rank(who) {
                None => StatusCode::SEE_OTHER,
                Some(mine) if mine >= rank(needs).expect("role") => StatusCode::OK,
                Some(_) => StatusCode::FORBIDDEN,
            };
            assert_eq!(r.status(), expected, "{who} GET {page}");
            let r = get(format!("{page}/")).await.expect("get");
            assert_eq!(r.status(), StatusCode::PERMANENT_REDIRECT, "{who} {page}/");
            assert_eq!(r.headers()[LOCATION], page);
            for variant in variants(page) {
                let mut headers = Vec::new();
                if let Some(a) = auth {
                    headers.push(("Authorization", a.as_str()));
                }
                let r = common::raw_request(&base, "GET", &variant, &headers).await;
                assert_eq!(r.status, 400, "{who} GET {variant}: {}", r.body);
                assert!(r.body.contains("\"bad_request\""), "{}", r.body);
                checked += 1;
            }
        }
    }
    // The API and server functions in other spellings: refused the same way, for anyone.
    let viewer = callers[1].1.clone().expect("viewer");
    for path in [
        "/api/v1/../v1/users",
        "/api/v1/users/",
        "/api/%2e%2e/api/access_list",
        "/api//access_list",
    ] {
        let r = common::raw_request(&base, "POST", path, &[("Authorization", &viewer)]).await;
        assert_eq!(r.status, 400, "POST {path}: {}", r.body);
        checked += 1;
    }
    println!("{checked} non-canonical requests refused");
}
