//! Hostile input against a real `flowscope serve` process: each class of issue 18's findings
//! (user code that never ends or recurses without bound, expansion bombs, oversized and
//! malformed bodies, foreign hosts, non-canonical paths, sign-in floods, secrets rendered or
//! leaked, requests to where agents may not go). Each test asserts a clear JSON 4xx or a failed
//! step with its reason, that the server keeps serving, and that nothing stored is wrong.

use crate::common;
use crate::common::hub::Client;

use std::time::{Duration, Instant};

use common::procs::{spawn, Proc};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// A server on a fresh SQLite file, with `env` on top of the defaults; a client of it.
fn serve(dir: &tempfile::TempDir, env: &[(&str, &str)]) -> (Proc, Client) {
    let db = format!("sqlite://{}", dir.path().join("flowscope.db").display());
    let key = dir.path().join("secret.key");
    let mut all = vec![(
        "FLOWSCOPE_SECRET_KEY_FILE",
        key.to_str().unwrap_or_default(),
    )];
    all.extend_from_slice(env);
    let p = spawn("serve", &db, &all);
    let app = Client::new(p.base.as_deref().expect("base url"));
    (p, app)
}

/// The run's failed step error kind and message.
fn failure(run: &Value) -> (String, String) {
    let step = run["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["status"] == "failed"))
        .unwrap_or_else(|| panic!("no failed step in {run}"));
    (
        step["error_kind"].as_str().unwrap_or_default().to_string(),
        step["error_message"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

/// `/healthz` answers, and how long it took.
async fn healthz(app: &Client) -> Duration {
    let start = Instant::now();
    let r = app
        .request(Method::GET, "/healthz")
        .send()
        .await
        .expect("healthz");
    assert_eq!(r.status(), StatusCode::OK);
    start.elapsed()
}

fn jq_workflow(id: &str, program: &str, timeout: &str) -> String {
    format!(
        "id: {id}\nname: {id}\nsteps:\n- id: t\n  agent: transform\n  timeout: {timeout}\n  with:\n    jq: '{program}'\n"
    )
}

#[tokio::test]
async fn runaway_jq_programs_fail_their_step_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().expect("dir");
    let (_server, app) = serve(&dir, &[]);
    for (id, program) in [
        ("recurse", "def f: [f]; f"),
        ("deep", "reduce range(100000) as $i (0; [.])"),
        ("many", "range(100000)"),
        ("endless", "last(range(1e15))"),
        (
            "parse-bomb",
            &format!("{}1{}", "[".repeat(5000), "]".repeat(5000)),
        ),
    ] {
        app.create(&jq_workflow(id, program, "3s")).await;
    }
    // Two endless programs at once: the server must answer meanwhile.
    let mut endless = Vec::new();
    for _ in 0..2 {
        endless.push(app.trigger("endless", json!({})).await);
    }
    let mut worst = Duration::ZERO;
    for _ in 0..10 {
        worst = worst.max(healthz(&app).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("/healthz while two endless jq steps ran: worst of 10 = {worst:?}");
    for id in endless {
        let r = app.wait_finished(&id).await;
        assert_eq!(r["status"], "failed", "{r}");
        assert_eq!(failure(&r).0, "timeout", "{r}");
    }
    let expect = [
        ("recurse", "limit_stack"),
        ("deep", "limit_depth"),
        ("many", "limit_outputs"),
    ];
    for (id, kind) in expect {
        let r = app.run(id, json!({})).await;
        assert_eq!(r["status"], "failed", "{id}: {r}");
        let (got, message) = failure(&r);
        assert_eq!(got, kind, "{id}: {message}");
        assert!(!message.is_empty());
    }
    let r = app.run("parse-bomb", json!({})).await;
    assert_eq!(r["status"], "failed", "{r}");
    assert!(failure(&r).0.starts_with("limit_") || failure(&r).0 == "jq_compile");
    // Still serving, and still running ordinary work.
    healthz(&app).await;
    app.create(&jq_workflow("fine", ".inputs | length", "3s"))
        .await;
    let r = app.run("fine", json!({})).await;
    assert_eq!(r["status"], "succeeded", "{r}");
}

#[tokio::test]
async fn bombs_and_bad_bodies_get_a_json_4xx_and_nothing_is_stored() {
    let dir = tempfile::tempdir().expect("dir");
    let (server, app) = serve(&dir, &[]);
    // A billion laughs (nine levels of nine aliases), refused by the parser's alias limit;
    // and a wide one under that limit (one 2,000-item list named 200 times), refused by the
    // expansion budget.
    let mut laughs = String::from("a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for (prev, next) in ["a", "b", "c", "d", "e", "f", "g", "h"]
        .iter()
        .zip(["b", "c", "d", "e", "f", "g", "h", "i"])
    {
        let refs = vec![format!("*{prev}"); 9].join(",");
        laughs.push_str(&format!("{next}: &{next} [{refs}]\n"));
    }
    laughs.push_str("id: bomb\nsteps: []\n");
    let wide = format!(
        "big: &big [{}]\nmany: [{}]\nid: bomb\nsteps: []\n",
        vec!["x"; 2000].join(","),
        vec!["*big"; 200].join(",")
    );
    for (bomb, says) in [
        (&laughs, "repetition limit"),
        (&wide, "expands to more than"),
    ] {
        // Validation answers the problem (200, `valid: false`); saving refuses it (422).
        let (status, body) = app
            .send(
                app.request(Method::POST, "/api/v1/validate")
                    .body(bomb.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["valid"], false);
        assert!(body["problems"].to_string().contains(says), "{body}");
        let (status, body) = app
            .send(
                app.request(Method::POST, "/api/v1/workflows")
                    .body(bomb.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(body["error"].to_string().contains(says), "{body}");
    }
    // Bodies over the limit, declared or streamed, and malformed JSON.
    let big = vec![b'x'; 3 * 1024 * 1024];
    let r = app
        .request(Method::POST, "/api/v1/validate")
        .body(big)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // Its body unread, the connection is not offered for reuse (the next request would fail).
    assert_eq!(r.headers()["connection"], "close");
    assert_eq!(
        r.json::<Value>().await.expect("json")["error"]["code"],
        "too_large"
    );
    let (status, body) = app
        .send(
            app.request(Method::POST, "/api/v1/workflows/hello/runs")
                .header("content-type", "application/json")
                .body("{\"inputs\": "),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"]["message"].is_string());
    // A made-up method is not a new metric series.
    let odd = Method::from_bytes(b"BREW").expect("method");
    let _ = app.request(odd, "/runs").send().await.expect("brew");
    let metrics = app
        .request(Method::GET, "/metrics")
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(!metrics.contains("BREW"));
    assert!(
        metrics.contains("http_request_method=\"_OTHER\""),
        "{metrics}"
    );
    // Nothing was stored.
    let (_, list) = app.get("/api/v1/workflows").await;
    assert!(list
        .as_array()
        .expect("list")
        .iter()
        .all(|w| w["id"] != "bomb"));
    assert!(!server.logged("panicked"));
}

#[tokio::test]
async fn foreign_hosts_and_non_canonical_paths_never_reach_a_page() {
    let dir = tempfile::tempdir().expect("dir");
    let (_server, app) = serve(
        &dir,
        &[
            ("FLOWSCOPE_AUTH", "true"),
            ("FLOWSCOPE_PUBLIC_URL", "https://hub.example.com"),
        ],
    );
    // DNS rebinding: a page whose own name points at us.
    for host in ["evil.example:3000", "hub.example.com.evil.example"] {
        let (status, body) = app
            .send(app.request(Method::GET, "/healthz").header("host", host))
            .await;
        assert_eq!(status, StatusCode::MISDIRECTED_REQUEST, "{host}");
        assert_eq!(body["error"]["code"], "misdirected_host");
    }
    let (status, _) = app
        .send(
            app.request(Method::GET, "/healthz")
                .header("host", "hub.example.com"),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // Signed out: every spelling of a way round the gate is refused before any page renders.
    for path in [
        "/pkg/../settings",
        "/pkg/%2e%2e/settings",
        "/pkg/%2E%2e/runs/x",
        "/auth/../settings",
        "/hooks/%2e%2e/settings",
        "/workflows/../settings",
        "//settings",
        "/pkg/%2fsettings",
        "/pkg/..%5csettings",
    ] {
        let r = common::raw_request(&app.base, "GET", path, &[]).await;
        assert_eq!(r.status, 400, "{path}: {}", r.body);
        assert!(!r.body.contains("Settings"), "{path} rendered a page");
    }
    // A trailing slash is sent to the canonical page, which still needs a sign-in.
    let r = app
        .request(Method::GET, "/settings/")
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(r.headers()["location"], "/settings");
    let (status, _) = app.get("/settings").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    // `next` after sign-in stays on this site, whatever it is given.
    for next in [
        "/\t/evil.example",
        "/\\evil.example",
        "//evil.example",
        "https://evil.example",
        "/x\ny",
    ] {
        let (status, _) = app
            .send(app.request(Method::POST, "/auth/login").form(&[
                ("name", "nobody"),
                ("password", "wrong-password"),
                ("next", next),
            ]))
            .await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{next:?}");
    }
}

/// A template that doubles a 100 MB string to 3.2 GB: fuel cannot see it (a handful of
/// instructions), so it must render in the sandbox's child, whose memory limit stops it.
/// The size comes from an input: a constant would be refused when the workflow is saved.
const TEMPLATE_BOMB: &str = "{% set a = 'x' * inputs.n %}{% set b = a ~ a %}{% set c = b ~ b %}{% set d = c ~ c %}{% set e = d ~ d %}{% set f = e ~ e %}{{ f | length }}";

/// Constants minijinja would fold while compiling, with no fuel: 30 × 200 MB.
fn folding_bomb() -> String {
    let term = "('x' * 100000000 ~ 'x' * 100000000)";
    format!("{{{{ {} }}}}", vec![term; 30].join(" ~ "))
}

#[tokio::test]
async fn templates_that_can_grow_render_in_the_sandbox_and_a_bomb_fails_its_step() {
    let dir = tempfile::tempdir().expect("dir");
    let (server, app) = serve(&dir, &[]);
    // Templates the server cannot vouch for still render, in the child, with their types.
    app.create(
        "id: loops\nname: loops\ninputs:\n  items: { type: array, default: [1, 2, 3] }\nsteps:\n- id: t\n  agent: simulate\n  with:\n    output:\n      text: \"{% for i in inputs.items %}{{ i * 2 }},{% endfor %}\"\n      next: \"{{ inputs.items | length + 1 }}\"\n      plain: \"{{ inputs.items | length }}\"\n",
    )
    .await;
    let r = app.run("loops", json!({})).await;
    assert_eq!(r["status"], "succeeded", "{r}");
    let output = &r["steps"][0]["output"];
    assert_eq!(output["text"], "2,4,6,", "{r}");
    assert_eq!(output["next"], 4, "{r}");
    assert_eq!(output["plain"], 3, "{r}");

    let before = peak_rss_kib(&server.pid());
    // Validation (any viewer may ask) never compiles a template whose constants are huge.
    let folding = format!(
        "id: fold\nname: fold\nsteps:\n- id: t\n  agent: simulate\n  with:\n    output: \"{}\"\n",
        folding_bomb()
    );
    let (status, body) = app
        .send(app.request(Method::POST, "/api/v1/validate").body(folding))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["valid"], false, "{body}");
    let problem = &body["problems"][0];
    assert_eq!(problem["path"], "steps[0].with.output", "{body}");
    assert!(
        problem["message"]
            .to_string()
            .contains("constant expression"),
        "{body}"
    );
    app.create(
        &format!("id: bomb\nname: bomb\ninputs:\n  n: {{ type: integer, default: 100000000 }}\nsteps:\n- id: t\n  agent: simulate\n  with:\n    output: {{ text: \"{TEMPLATE_BOMB}\" }}\n"),
    )
    .await;
    let r = app.run("bomb", json!({})).await;
    assert_eq!(r["status"], "failed", "{r}");
    let (kind, message) = failure(&r);
    assert_eq!(kind, "limit_memory", "{message}");
    assert!(message.contains("template"), "{message}");
    // The gigabytes were the child's: the server grew by far less than one 100 MB string.
    let grown = peak_rss_kib(&server.pid()).saturating_sub(before);
    println!("the server's peak grew {grown} KiB while the bombs went off (from {before} KiB)");
    assert!(grown < 50_000, "the server's peak grew {grown} KiB");
    healthz(&app).await;
}

/// A deploy is not a crash: a step stopped by graceful shutdowns, more times than the
/// crash-loop limit, starts again each time, and its attempts say why they ended.
#[tokio::test]
async fn graceful_restarts_do_not_count_as_crashes() {
    let dir = tempfile::tempdir().expect("dir");
    let (mut server, app) = serve(&dir, &[]);
    app.create(
        "id: long\nname: long\nsteps:\n- id: s\n  agent: simulate\n  with:\n    latency: 10m\n",
    )
    .await;
    let id = app.trigger("long", json!({})).await;
    until_attempt_runs(&app, &id, 1).await;
    for attempt in 2..=5 {
        assert!(server.terminate().success());
        let app;
        (server, app) = serve(&dir, &[]);
        until_attempt_runs(&app, &id, attempt).await;
    }
    let app = Client::new(server.base.as_deref().expect("base"));
    let run = app.get_run(&id).await;
    let kinds: Vec<&str> = run["attempts"]
        .as_array()
        .expect("attempts")
        .iter()
        .map(|a| a["error_kind"].as_str().unwrap_or("open"))
        .collect();
    assert_eq!(
        kinds,
        ["shutdown", "shutdown", "shutdown", "shutdown", "open"],
        "{run}"
    );
    healthz(&app).await;
}

/// One sign-in through a proxy that says the client is `client`, with `cookies`: where it
/// sends the browser, and the `name=value` of each cookie it sets.
async fn sign_in(
    app: &Client,
    name: &str,
    password: &str,
    client: &str,
    cookies: &str,
) -> (String, Vec<String>) {
    let r = app
        .request(Method::POST, "/auth/login")
        .header("x-forwarded-for", format!("{client}, 127.0.0.1"))
        .header("cookie", cookies)
        .form(&[("name", name), ("password", password)])
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let set: Vec<String> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_string))
        .collect();
    let location = r.headers()["location"]
        .to_str()
        .unwrap_or_default()
        .to_string();
    (location, set)
}

/// Knowing a name is not enough to lock its owner out: a browser that signed in as that name
/// before is limited on its own. Behind a trusted proxy each client is counted apart.
#[tokio::test]
async fn sign_in_limits_follow_the_client_not_only_the_name() {
    let dir = tempfile::tempdir().expect("dir");
    let (_server, app) = serve(
        &dir,
        &[
            ("FLOWSCOPE_AUTH", "true"),
            ("FLOWSCOPE_ADMIN_USER", "root"),
            ("FLOWSCOPE_ADMIN_PASSWORD", "correct-horse"),
            ("FLOWSCOPE_TRUSTED_PROXIES", "127.0.0.1"),
        ],
    );
    let limited = |location: &str| location.contains("Too%20many");
    // The owner signs in once from their browser: it is remembered for that name.
    let (location, set) = sign_in(&app, "root", "correct-horse", "192.0.2.1", "").await;
    assert_eq!(location, "/workflows");
    let device = set
        .iter()
        .find(|c| c.starts_with("flowscope_device="))
        .unwrap_or_else(|| panic!("no device cookie in {set:?}"))
        .clone();
    // Someone else fails five times for the name: the name is closed to unknown browsers…
    for _ in 0..5 {
        let (location, _) = sign_in(&app, "root", "guess", "203.0.113.7", "").await;
        assert!(location.contains("do%20not%20match"), "{location}");
    }
    let (location, _) = sign_in(&app, "root", "guess", "203.0.113.7", "").await;
    assert!(limited(&location), "{location}");
    let (location, _) = sign_in(&app, "root", "correct-horse", "203.0.113.8", "").await;
    assert!(limited(&location), "an unknown browser waits: {location}");
    // …but not to the owner's, which signs in with the right password.
    let (location, set) = sign_in(&app, "root", "correct-horse", "192.0.2.1", &device).await;
    assert_eq!(location, "/workflows");
    assert!(
        set.iter().any(|c| c.starts_with("flowscope_session=")),
        "{set:?}"
    );
    // The cookie trusts only that name, and a stolen one gets five guesses.
    let (location, _) = sign_in(&app, "nobody", "x", "192.0.2.2", &device).await;
    assert!(location.contains("do%20not%20match"), "{location}");
    for _ in 0..5 {
        let (location, _) = sign_in(&app, "root", "guess", "192.0.2.3", &device).await;
        assert!(location.contains("do%20not%20match"), "{location}");
    }
    let (location, _) = sign_in(&app, "root", "guess", "192.0.2.3", &device).await;
    assert!(limited(&location), "{location}");
    // Behind the proxy, one client's failures do not close the door to another.
    for i in 0..20 {
        let (location, _) = sign_in(&app, &format!("u{i}"), "x", "198.51.100.1", "").await;
        assert!(!limited(&location), "{i}: {location}");
    }
    let (location, _) = sign_in(&app, "u99", "x", "198.51.100.1", "").await;
    assert!(limited(&location), "{location}");
    let (location, _) = sign_in(&app, "u98", "x", "198.51.100.2", "").await;
    assert!(!limited(&location), "another client: {location}");
}

/// The largest run a workflow may describe (2,000 steps, a chain) whose steps answer 200 KB
/// each: 400 MB of outputs, stored, while the run holds at most 64 MiB of them in memory
/// (later ones are markers to downstream steps), so the server's peak grows by far less.
#[tokio::test]
async fn a_2000_step_run_of_large_outputs_holds_a_bounded_memory() {
    let dir = tempfile::tempdir().expect("dir");
    let (server, app) = serve(&dir, &[]);
    let mut yaml = String::from("id: big\nname: big\nsteps:\n");
    for i in 0..2000 {
        let needs = if i == 0 {
            String::new()
        } else {
            format!(", needs: [s{}]", i - 1)
        };
        yaml.push_str(&format!(
            "- {{id: s{i}, agent: simulate{needs}, with: {{output_bytes: 200000}}}}\n"
        ));
    }
    app.create(&yaml).await;
    let before = peak_rss_kib(&server.pid());
    let id = app.trigger("big", json!({})).await;
    // The run's summary only: its detail holds the 400 MB of outputs.
    let status = loop {
        let (_, page) = app.get("/api/v1/runs?workflow=big&limit=1").await;
        let run = &page["runs"][0];
        assert_eq!(run["id"], id.as_str());
        if run["status"] != "running" && run["status"] != "queued" {
            break run["status"].clone();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let grown = peak_rss_kib(&server.pid()).saturating_sub(before);
    println!(
        "a 2,000-step run of 200 KB outputs (400 MB): peak RSS +{} MiB from {} MiB",
        grown / 1024,
        before / 1024
    );
    assert_eq!(status, "succeeded");
    assert!(
        grown < 160 * 1024,
        "peak RSS grew by {grown} KiB: more than the 64 MiB of held outputs allow"
    );
    // Reading it back (any viewer may) is bounded too: each large value is a marker with a
    // preview and where it is, 8 MiB of values at most.
    let body = app
        .request(Method::GET, &format!("/api/v1/runs/{id}"))
        .send()
        .await
        .expect("detail")
        .bytes()
        .await
        .expect("body");
    let detail: Value = serde_json::from_slice(&body).expect("JSON");
    // The first step's output is stored whole (the last ones past the run's 64 MiB are not).
    let first = detail["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["step_id"] == "s0"))
        .expect("s0");
    assert_eq!(first["output"]["truncated"], true, "{}", first["output"]);
    assert_eq!(first["output"]["bytes"], 200002);
    let whole = first["output"]["whole"].as_str().expect("whole");
    assert_eq!(whole, format!("/api/v1/runs/{id}/steps/s0/output"));
    let (_, value) = app.get(whole).await;
    assert_eq!(value.as_str().map(str::len), Some(200_000));
    let read = peak_rss_kib(&server.pid()).saturating_sub(before);
    println!(
        "its detail: {} KiB; peak RSS +{} MiB after reading it",
        body.len() / 1024,
        read / 1024
    );
    assert!(body.len() < 12 << 20, "the detail is {} bytes", body.len());
    assert!(
        read < 160 * 1024,
        "peak RSS grew by {read} KiB reading the run"
    );
    healthz(&app).await;
}

/// Peak resident memory of a process, in KiB.
fn peak_rss_kib(pid: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

#[tokio::test]
async fn a_flood_of_wrong_sign_ins_is_limited_before_any_hash() {
    let dir = tempfile::tempdir().expect("dir");
    let (server, app) = serve(
        &dir,
        &[
            ("FLOWSCOPE_AUTH", "true"),
            ("FLOWSCOPE_ADMIN_USER", "root"),
            ("FLOWSCOPE_ADMIN_PASSWORD", "correct-horse"),
        ],
    );
    let before = peak_rss_kib(&server.pid());
    let tries = (0..100).map(|i| {
        let app = app.clone();
        tokio::spawn(async move {
            let r = app
                .request(Method::POST, "/auth/login")
                .form(&[
                    ("name", format!("user{}", i % 10)),
                    ("password", "wrong-password".into()),
                ])
                .send()
                .await
                .expect("login");
            r.headers()["location"]
                .to_str()
                .unwrap_or_default()
                .to_string()
        })
    });
    let answers: Vec<String> = futures::future::join_all(tries)
        .await
        .into_iter()
        .map(|r| r.expect("task"))
        .collect();
    let limited = answers.iter().filter(|a| a.contains("Too%20many")).count();
    let grown = peak_rss_kib(&server.pid()).saturating_sub(before);
    println!(
        "100 parallel wrong sign-ins: {limited} limited before hashing, peak RSS +{} MiB",
        grown / 1024
    );
    // One address may fail 20 times in the window: the other 80 never reach argon2.
    assert_eq!(limited, 80, "{answers:?}");
    // At most four 19 MiB hashes at once (it was all of them: +740 MB for 40).
    assert!(grown < 160 * 1024, "peak RSS grew by {grown} KiB");
}

/// A local server whose `/huge` streams `gib` GiB of JSON-looking bytes, and `/ok` answers.
async fn hostile_upstream(gib: u64) -> String {
    use axum::body::Body;
    use axum::routing::get;
    let app = axum::Router::new()
        .route(
            "/huge",
            get(move || async move {
                let chunk = axum::body::Bytes::from(vec![b' '; 1 << 20]);
                let stream = futures::stream::iter(
                    (0..gib * 1024).map(move |_| Ok::<_, std::io::Error>(chunk.clone())),
                );
                Body::from_stream(stream)
            }),
        )
        .route("/ok", get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

#[tokio::test]
async fn agents_read_at_most_their_cap_and_go_only_where_allowed() {
    let upstream = hostile_upstream(1).await;
    // Private addresses allowed (the upstream is on loopback): a 1 GiB answer is cut, not held.
    let dir = tempfile::tempdir().expect("dir");
    let (server, app) = serve(&dir, &[("FLOWSCOPE_EGRESS_ALLOW_PRIVATE", "true")]);
    app.create(&format!(
        "id: huge\nname: huge\nsteps:\n- id: get\n  agent: http\n  with:\n    url: {upstream}/huge\n"
    ))
    .await;
    let before = peak_rss_kib(&server.pid());
    let r = app.run("huge", json!({})).await;
    let grown = peak_rss_kib(&server.pid()).saturating_sub(before);
    println!("a 1 GiB response: peak RSS +{} MiB", grown / 1024);
    assert_eq!(r["status"], "succeeded", "{r}");
    assert!(
        grown < 64 * 1024,
        "peak RSS grew by {grown} KiB for one 1 GiB response"
    );
    drop(server);

    // The default: loopback, private and metadata addresses are refused for every agent.
    let dir = tempfile::tempdir().expect("dir");
    let (_server, app) = serve(&dir, &[]);
    let cases = [
        ("http-loopback", format!("agent: http\n  with:\n    url: {upstream}/ok")),
        ("notify-private", "agent: notify\n  with:\n    webhook_url: http://10.0.0.1/hook\n    text: hi".to_string()),
        ("notify-metadata", "agent: notify\n  with:\n    webhook_url: http://169.254.169.254/latest\n    text: hi".to_string()),
        ("llm-localhost", "agent: llm\n  with:\n    base_url: http://localhost:9/v1\n    model: m\n    prompt: hi".to_string()),
    ];
    for (id, step) in &cases {
        app.create(&format!(
            "id: {id}\nname: {id}\nsteps:\n- id: s\n  {step}\n"
        ))
        .await;
        let r = app.run(id, json!({})).await;
        let (kind, message) = failure(&r);
        assert_eq!(kind, "http_refused", "{id}: {message}");
    }
}

#[tokio::test]
async fn the_vault_key_is_no_template_secret_and_names_are_escaped() {
    let dir = tempfile::tempdir().expect("dir");
    let key = "ab".repeat(32);
    let (_server, app) = serve(
        &dir,
        &[
            ("FLOWSCOPE_SECRET_KEY", &key),
            ("FLOWSCOPE_SECRET_TOKEN", "tok-123456"),
        ],
    );
    app.create(
        "id: leak\nname: leak\nsteps:\n- id: s\n  agent: transform\n  with:\n    jq: '\"{{ secrets.KEY }}\"'\n",
    )
    .await;
    let r = app.run("leak", json!({})).await;
    let (kind, message) = failure(&r);
    // Not a secret at all: the step fails before it renders, saying why.
    assert_eq!(kind, "secret_missing", "{message}");
    assert!(
        message.contains("FLOWSCOPE_SECRET_KEY configures the vault"),
        "{message}"
    );
    assert!(!r.to_string().contains(&key));
    // A name that closes the title and opens a refresh is text, not markup.
    let name = "x</title><meta http-equiv=refresh content=0;url=https://evil.example>";
    app.create(&format!(
        "id: named\nname: '{name}'\nsteps:\n- id: s\n  agent: simulate\n  with: {{}}\n"
    ))
    .await;
    let page = app
        .request(Method::GET, "/workflows/named")
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    assert!(
        !page.contains("<meta http-equiv=refresh"),
        "the name was written as markup"
    );
    assert!(
        page.contains("x&lt;/title&gt;&lt;meta"),
        "{}",
        &page[..page.len().min(2000)]
    );
}

/// Polls until the run's first step is running its `attempt`-th attempt. (The status alone
/// says "running" from before a restart too, before the new process has started anything.)
async fn until_attempt_runs(app: &Client, id: &str, attempt: i64) {
    app.wait_run(id, |run| {
        run["steps"][0]["status"] == "running"
            && run["steps"][0]["attempts"].as_i64() == Some(attempt)
    })
    .await;
}

#[tokio::test]
async fn a_step_that_keeps_killing_its_server_fails_instead_of_looping() {
    let dir = tempfile::tempdir().expect("dir");
    let (server, app) = serve(&dir, &[]);
    app.create(
        "id: fatal\nname: fatal\nsteps:\n- id: s\n  agent: simulate\n  retry: { max_attempts: 5 }\n  with:\n    latency: 10m\n",
    )
    .await;
    let id = app.trigger("fatal", json!({})).await;
    until_attempt_runs(&app, &id, 1).await;
    drop(server); // killed mid-step, as a crash would
                  // Twice more the step starts again on restart, and its server dies again.
    for attempt in 2..=3 {
        let (server, app) = serve(&dir, &[]);
        until_attempt_runs(&app, &id, attempt).await;
        drop(server);
    }
    // The third restart does not start it: the run fails, saying why, and the server serves.
    let (server, app) = serve(&dir, &[]);
    let run = app.wait_finished(&id).await;
    assert_eq!(run["status"], "failed", "{run}");
    let (kind, message) = failure(&run);
    assert_eq!(kind, "crash_loop", "{message}");
    assert!(message.contains("stopped 3 times"), "{message}");
    let attempts = run["attempts"].as_array().expect("attempts");
    let interrupted = attempts
        .iter()
        .filter(|a| a["error_kind"] == "interrupted")
        .count();
    assert_eq!(interrupted, 3, "{run}");
    healthz(&app).await;
    drop(server);
}
