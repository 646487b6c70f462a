//! The `flowscope` binary's API commands against a real server: apply, run (with its exit
//! codes), runs and export.

use crate::common;
use crate::common::hub::Hub;

use std::process::Output;

/// Runs `flowscope ARGS…` against the server at `base`.
async fn flowscope(base: &str, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_flowscope"))
        .args(args)
        .env("FLOWSCOPE_SERVER", base)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .expect("the binary runs")
}

fn out(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test]
async fn apply_run_runs_and_export_work_with_exit_codes_a_script_can_use() {
    let hub = Hub::start().await;
    let base = hub.base.clone();
    let file = hub.dir().join("greet.yaml");
    let v1 = "id: greet\nname: Greet\ninputs:\n  who: { type: string }\n  times: { type: integer, default: 1 }\nsteps:\n  - id: say\n    agent: transform\n    with: { jq: '\"hi \" + .inputs.who' }\n";
    std::fs::write(&file, v1).expect("write");
    let path = file.to_str().expect("utf-8 path");

    // apply: created, then unchanged, then a new version when the file changes.
    let o = flowscope(&base, &["apply", path]).await;
    assert!(o.status.success(), "{}", out(&o));
    assert!(
        out(&o).contains("greet created as version 1"),
        "{}",
        out(&o)
    );
    let o = flowscope(&base, &["apply", path]).await;
    assert!(out(&o).contains("greet unchanged"), "{}", out(&o));
    let v2 = v1.replace("name: Greet", "name: Greeter");
    std::fs::write(&file, &v2).expect("write");
    let o = flowscope(&base, &["apply", path]).await;
    assert!(out(&o).contains("greet saved as version 2"), "{}", out(&o));

    // An invalid file: every problem with its path, exit 1, nothing saved.
    let bad = hub.dir().join("bad.yaml");
    std::fs::write(
        &bad,
        v2.replace("needs: []", "")
            .replace("agent: transform", "agent: nope"),
    )
    .expect("write");
    let o = flowscope(&base, &["apply", bad.to_str().expect("path")]).await;
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(out(&o).contains("steps[0].agent"), "{}", out(&o));

    // export prints the latest text byte for byte, or an older version.
    let o = flowscope(&base, &["export", "greet"]).await;
    assert_eq!(String::from_utf8_lossy(&o.stdout), v2);
    let o = flowscope(&base, &["export", "greet", "--version", "1"]).await;
    assert_eq!(String::from_utf8_lossy(&o.stdout), v1);

    // run --wait: 0 when the run succeeds, with typed inputs from name=value.
    let o = flowscope(
        &base,
        &[
            "run", "greet", "--input", "who=cli", "-i", "times=3", "--wait",
        ],
    )
    .await;
    assert!(o.status.success(), "{}", out(&o));
    assert!(out(&o).contains("succeeded"), "{}", out(&o));
    // 1 when it fails; the failed step and its error are printed.
    let o = flowscope(&base, &["run", "always-fails", "--wait"]).await;
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(out(&o).contains("failed"), "{}", out(&o));
    // Inputs that do not fit are refused (1) with the problem; a malformed pair is a usage
    // error (2), and so is an unreachable server.
    let o = flowscope(&base, &["run", "greet", "--input", "times=many"]).await;
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(out(&o).contains("times"), "{}", out(&o));
    let o = flowscope(&base, &["run", "greet", "--input", "who"]).await;
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    let o = flowscope("http://127.0.0.1:9", &["runs"]).await;
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    assert!(out(&o).contains("cannot reach Flowscope"), "{}", out(&o));

    // runs lists what ran, filtered by workflow.
    let o = flowscope(&base, &["runs", "--workflow", "greet"]).await;
    assert!(o.status.success(), "{}", out(&o));
    let listed = String::from_utf8_lossy(&o.stdout).to_string();
    assert_eq!(
        listed.lines().filter(|l| l.contains(" greet ")).count(),
        1,
        "{listed}"
    );
    assert!(listed.contains("succeeded"), "{listed}");
    assert!(!listed.contains("always-fails"), "{listed}");

    // Labels given with -l are kept and filter the list; -q searches what runs carried.
    let o = flowscope(
        &base,
        &[
            "run",
            "greet",
            "-i",
            "who=Grace Hopper",
            "-l",
            "env=ci",
            "-l",
            "team=core",
            "--wait",
        ],
    )
    .await;
    assert!(o.status.success(), "{}", out(&o));
    let o = flowscope(&base, &["runs", "-l", "env=ci"]).await;
    let listed = String::from_utf8_lossy(&o.stdout).to_string();
    assert_eq!(
        listed.lines().count(),
        2,
        "a heading and the one run: {listed}"
    );
    assert!(listed.contains("env=ci,team=core"), "{listed}");
    let o = flowscope(&base, &["runs", "-q", "hopper"]).await;
    let listed = String::from_utf8_lossy(&o.stdout).to_string();
    assert_eq!(listed.lines().count(), 2, "{listed}");
    assert!(listed.contains("env=ci"), "{listed}");
    // A label that is not key=value is a usage error; one the server refuses is 2 as well,
    // checked before anything is sent.
    let o = flowscope(&base, &["run", "greet", "-l", "env"]).await;
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    let o = flowscope(&base, &["run", "greet", "-i", "who=x", "-l", "bad key=x"]).await;
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    assert!(out(&o).contains("bad key"), "{}", out(&o));
}

/// `flowscope token` on the database (beside a running server), and the API commands
/// authenticating with what it printed.
#[tokio::test]
async fn token_commands_make_a_token_the_server_and_the_cli_accept() {
    let hub = Hub::start_with(flowscope::config::Config {
        auth: true,
        ..common::quiet()
    })
    .await;
    let base = hub.base.clone();
    let db = format!("sqlite://{}", hub.dir().join("flowscope.db").display());
    let local = |args: &'static [&'static str]| {
        let db = db.clone();
        async move {
            tokio::process::Command::new(env!("CARGO_BIN_EXE_flowscope"))
                .args(args)
                .env("FLOWSCOPE_DATABASE_URL", db)
                .env("RUST_LOG", "warn")
                .output()
                .await
                .expect("the binary runs")
        }
    };
    let o = local(&["token", "create", "ci", "--role", "viewer"]).await;
    assert!(o.status.success(), "{}", out(&o));
    let token = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert!(token.starts_with("fs_"), "{}", out(&o));

    let o = local(&["token", "create", "x", "--role", "root"]).await;
    assert!(!o.status.success());
    assert!(out(&o).contains("not one of viewer"), "{}", out(&o));

    // Without the token the server refuses; with it, a viewer lists runs but may not run.
    let o = flowscope(&base, &["runs"]).await;
    assert_eq!(o.status.code(), Some(1), "refused: {}", out(&o));
    assert!(out(&o).contains("401"), "{}", out(&o));
    let with_token = |args: &'static [&'static str]| {
        let (base, token) = (base.clone(), token.clone());
        async move {
            tokio::process::Command::new(env!("CARGO_BIN_EXE_flowscope"))
                .args(args)
                .env("FLOWSCOPE_SERVER", base)
                .env("FLOWSCOPE_TOKEN", token)
                .env("RUST_LOG", "warn")
                .output()
                .await
                .expect("the binary runs")
        }
    };
    let o = with_token(&["runs"]).await;
    assert!(o.status.success(), "{}", out(&o));
    let o = with_token(&["run", "hello"]).await;
    assert!(!o.status.success());
    assert!(out(&o).contains("needs operator"), "{}", out(&o));

    let o = local(&["token", "list"]).await;
    assert!(
        out(&o).contains("ci") && out(&o).contains("active"),
        "{}",
        out(&o)
    );
    let o = local(&["token", "revoke", "1"]).await;
    assert!(o.status.success(), "{}", out(&o));
    let o = with_token(&["runs"]).await;
    assert_eq!(o.status.code(), Some(1), "a revoked token: {}", out(&o));
}

/// approve, reject, event and pause/resume from the command line, with an operator's token;
/// `run --wait` prints a run's outputs.
#[tokio::test]
async fn approvals_events_and_pauses_from_the_command_line() {
    let hub = Hub::start_with_auth().await;
    let admin = hub.admin().await;
    admin
        .create("id: cli-gate\nsteps:\n- {id: ok, agent: approval, with: {prompt: Go?, fields: {ticket: {type: string}}}}\n- {id: paid, agent: wait, needs: [ok], with: {event: 'paid-{{ run.id }}'}}\n- {id: sum, agent: transform, needs: [paid], with: {jq: '[.steps.ok.output.fields.ticket, .steps.paid.output.amount]'}}\n")
        .await;
    let token = admin.token("cli-ops", "operator").await;
    let base = hub.base.clone();
    let with_token = |args: &[&str]| {
        let mut all = vec!["--token", token.as_str()];
        all.extend_from_slice(args);
        all.into_iter().map(str::to_string).collect::<Vec<_>>()
    };
    let call = async |args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        flowscope(&base, &args).await
    };

    let run = admin.trigger("cli-gate", serde_json::json!({})).await;
    let waiting = |step: &'static str| {
        move |r: &serde_json::Value| {
            r["waits"].as_array().is_some_and(|w| {
                w.iter()
                    .any(|w| w["step_id"] == step && w["resolved_at"].is_null())
            }) && r["status"] == "waiting"
        }
    };
    admin.wait_run(&run, waiting("ok")).await;
    // A field that does not fit is refused (exit 1), naming it.
    let o = call(with_token(&["approve", &run, "ok", "-f", "ticket=5"])).await;
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(out(&o).contains("ticket"), "{}", out(&o));
    let o = call(with_token(&[
        "approve",
        &run,
        "ok",
        "-f",
        "ticket=\"OPS-1\"",
        "-m",
        "fine",
    ]))
    .await;
    assert!(o.status.success(), "{}", out(&o));
    assert!(out(&o).contains("approved by token:cli-ops"), "{}", out(&o));
    // Decided already: refused.
    let o = call(with_token(&["reject", &run, "ok"])).await;
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));

    admin.wait_run(&run, waiting("paid")).await;
    let o = call(with_token(&["pause", &run])).await;
    assert!(o.status.success(), "{}", out(&o));
    admin.wait_run(&run, |r| r["status"] == "paused").await;
    let o = call(with_token(&[
        "event",
        &format!("paid-{run}"),
        "-d",
        "{\"amount\": 12}",
    ]))
    .await;
    assert!(o.status.success(), "{}", out(&o));
    assert!(out(&o).contains("resolved 1 waiting run"), "{}", out(&o));
    let o = call(with_token(&["resume", &run])).await;
    assert!(o.status.success(), "{}", out(&o));
    let done = admin.wait_finished(&run).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["outputs"], serde_json::json!({"sum": ["OPS-1", 12]}));

    // run --wait prints the outputs.
    let o = call(with_token(&["run", "hello", "-i", "who=cli", "--wait"])).await;
    assert!(o.status.success(), "{}", out(&o));
    assert!(out(&o).contains("outputs: {"), "{}", out(&o));
}
