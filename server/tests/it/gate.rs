//! The gate in every spelling: each page, for each caller (signed out, and each role through
//! an API token), in each form of its path. The canonical path answers by role; a trailing
//! slash is sent to the canonical path; every other spelling (dot segments, encoded or not,
//! empty segments, encoded slashes) is refused before any page renders. The REST routes and
//! server functions are covered by role in `access.rs`; here their non-canonical spellings.

use crate::common;
use crate::common::hub::Hub;

use reqwest::header::LOCATION;
use reqwest::{Method, StatusCode};
use serde_json::json;

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
    let hub = Hub::start_with_auth().await;
    let anonymous = hub.client();
    let admin = hub.admin().await;
    // Each caller's client, and the `Authorization` header it sends (for the raw requests).
    let mut callers = vec![("anonymous", anonymous.clone(), None)];
    for role in ROLES {
        let token = admin.token(&format!("gate-{role}"), role).await;
        let bearer = Some(format!("Bearer {token}"));
        callers.push((role, anonymous.with_token(&token), bearer));
    }
    let run = callers[4].1.trigger("hello", json!({})).await;
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
        for (who, caller, auth) in &callers {
            let (status, _) = caller.get(page).await;
            let expected = match rank(who) {
                None => StatusCode::SEE_OTHER,
                Some(mine) if mine >= rank(needs).expect("role") => StatusCode::OK,
                Some(_) => StatusCode::FORBIDDEN,
            };
            assert_eq!(status, expected, "{who} GET {page}");
            let r = caller
                .request(Method::GET, &format!("{page}/"))
                .send()
                .await
                .expect("get");
            assert_eq!(r.status(), StatusCode::PERMANENT_REDIRECT, "{who} {page}/");
            assert_eq!(r.headers()[LOCATION], page);
            for variant in variants(page) {
                let mut headers = Vec::new();
                if let Some(a) = auth {
                    headers.push(("Authorization", a.as_str()));
                }
                let r = common::raw_request(&hub.base, "GET", &variant, &headers).await;
                assert_eq!(r.status, 400, "{who} GET {variant}: {}", r.body);
                assert!(r.body.contains("\"bad_request\""), "{}", r.body);
                checked += 1;
            }
        }
    }
    // The API and server functions in other spellings: refused the same way, for anyone.
    let viewer = callers[1].2.clone().expect("viewer");
    for path in [
        "/api/v1/../v1/users",
        "/api/v1/users/",
        "/api/%2e%2e/api/access_list",
        "/api//access_list",
    ] {
        let headers = [("Authorization", viewer.as_str())];
        let r = common::raw_request(&hub.base, "POST", path, &headers).await;
        assert_eq!(r.status, 400, "POST {path}: {}", r.body);
        checked += 1;
    }
    println!("{checked} non-canonical requests refused");
}
