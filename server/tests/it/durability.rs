//! Durability with real processes: the `flowscope` binary is killed with SIGKILL at many
//! moments while runs execute, restarted on the same database each time, and in the end every
//! run completes with each step's outcome recorded exactly once and no finished step re-run.

use crate::common;
use crate::common::hub::Client;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const WORKFLOW: &str = "id: sturdy\nsteps:\n- {id: a, agent: simulate, with: {latency: 40ms, output: 1}}\n- {id: b, agent: simulate, needs: [a], with: {latency: 40ms}}\n- {id: c, agent: simulate, needs: [a], with: {latency: 60ms}}\n- {id: d, agent: transform, needs: [b, c], with: {jq: '.steps.a.output + 1'}}\n- {id: e, agent: simulate, needs: [d], with: {latency: 40ms, output: '{{ steps.d.output }}'}}\n";

struct Server {
    child: Child,
    base: String,
}

/// Starts the binary on port 0 and reads the bound address from its log.
fn start(db_url: &str) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_flowscope"))
        .env("FLOWSCOPE_DATABASE_URL", db_url)
        .env("FLOWSCOPE_LISTEN", "127.0.0.1:0")
        .env("FLOWSCOPE_SEED_EXAMPLES", "false")
        // Killed at many moments on purpose: a step caught three times must still run to the
        // end here, so the crash-loop guard (tested in hostile.rs) is off.
        .env("FLOWSCOPE_STEP_MAX_INTERRUPTIONS", "0")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start flowscope");
    // The log goes to stderr.
    let log = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(log).lines();
    let base = loop {
        let line = lines
            .next()
            .expect("the server exited before listening")
            .expect("read log");
        if let Some(pos) = line.find("listening on http://") {
            let addr = line[pos + "listening on http://".len()..]
                .split_whitespace()
                .next()
                .expect("addr");
            break format!("http://{addr}");
        }
    };
    // Keep draining the log so the child never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Server { child, base }
}

/// Polls a run until it has finished; `None` if it has not within a minute (a hang guard).
async fn finished_run(client: &Client, id: &str) -> Option<Value> {
    for _ in 0..600 {
        let run = client.get_run(id).await;
        if run["status"] != "queued" && run["status"] != "running" {
            return Some(run);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

#[tokio::test]
async fn killing_the_server_at_many_moments_loses_no_run_and_repeats_no_finished_step() {
    let dir = tempfile::tempdir().expect("dir");
    let db = format!("sqlite://{}", dir.path().join("kill.db").display());

    let mut server = start(&db);
    let client = Client::new(&server.base);
    client.create(WORKFLOW).await;
    let mut run_ids = Vec::new();
    for _ in 0..6 {
        run_ids.push(client.trigger("sturdy", json!({})).await);
    }

    // Kill at varied moments: right after start-up, mid-step, between steps.
    for delay_ms in [5u64, 35, 70, 0, 120, 20, 55, 90] {
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        server.child.kill().expect("SIGKILL");
        server.child.wait().expect("reap");
        server = start(&db);
        // More work arrives while recovering.
        let client = Client::new(&server.base);
        run_ids.push(client.trigger("sturdy", json!({})).await);
    }

    // Let the last process finish everything (a bounded wait, only as a hang guard).
    let client = Client::new(&server.base);
    let mut finished = Vec::new();
    for id in &run_ids {
        finished.extend(finished_run(&client, id).await);
    }
    server.child.kill().expect("kill");
    assert_eq!(
        finished.len(),
        run_ids.len(),
        "every run finished after the restarts"
    );

    for run in &finished {
        assert_eq!(run["status"], "succeeded", "{run}");
        let attempts = run["attempts"].as_array().expect("attempts");
        for step in run["steps"].as_array().expect("steps") {
            let id = step["step_id"].as_str().expect("id");
            let succeeded = attempts
                .iter()
                .filter(|a| a["step_id"] == id && a["status"] == "succeeded")
                .count();
            assert_eq!(
                succeeded, 1,
                "step {id} of run {} has exactly one recorded success",
                run["id"]
            );
            assert!(
                attempts
                    .iter()
                    .filter(|a| a["step_id"] == id)
                    .all(|a| a["status"] == "succeeded" || a["error_kind"] == "interrupted"),
                "only interrupted attempts precede the success: {run}"
            );
            // A step starts only after its needs succeeded, so no finished step was redone:
            // every attempt of a step after its success would show up here.
            let last = attempts
                .iter()
                .filter(|a| a["step_id"] == id)
                .map(|a| a["attempt"].as_i64().expect("n"))
                .max();
            let success_n = attempts
                .iter()
                .find(|a| a["step_id"] == id && a["status"] == "succeeded")
                .map(|a| a["attempt"].as_i64().expect("n"));
            assert_eq!(last, success_n, "nothing ran after step {id} succeeded");
        }
        let e = run["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .find(|s| s["step_id"] == "e")
            .expect("e");
        assert_eq!(e["output"], 2);
    }
}

/// SIGTERM stops the server cleanly (exit status 0) even with a live event stream open, and the
/// unfinished run it leaves is picked up by the next process.
#[tokio::test]
async fn sigterm_shuts_down_cleanly_and_the_next_start_resumes_the_run() {
    let dir = tempfile::tempdir().expect("dir");
    let db = format!("sqlite://{}/term.db", dir.path().display());
    let mut server = start(&db);
    let client = Client::new(&server.base);
    let long = "id: slow\nsteps:\n- {id: wait, agent: delay, with: {duration: 3s}}\n- {id: after, agent: simulate, needs: [wait]}\n";
    client.create(long).await;
    let id = client.trigger("slow", json!({})).await;
    // A browser watching the run: the stream stays open while the run goes on.
    let stream = client
        .request(Method::GET, &format!("/api/v1/runs/{id}/events"))
        .send()
        .await
        .expect("events");
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(server.child.id().to_string())
        .status()
        .expect("kill -TERM");
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || server.child.wait())
        .await
        .expect("join")
        .expect("wait");
    assert!(exit.success(), "clean exit on SIGTERM: {exit:?}");
    drop(stream);

    let server = start(&db);
    let final_status = finished_run(&Client::new(&server.base), &id)
        .await
        .map(|run| run["status"].clone())
        .unwrap_or(Value::Null);
    let mut child = server.child;
    child.kill().expect("kill");
    assert_eq!(final_status, "succeeded");
}

/// One SQLite file, one process: a second is refused with a message that says why and what to
/// do, and once the first is killed the file can be served again.
#[test]
fn a_second_process_on_the_same_sqlite_file_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("one.db").display());
    let mut first = start(&url);
    let second = Command::new(env!("CARGO_BIN_EXE_flowscope"))
        .env("FLOWSCOPE_DATABASE_URL", &url)
        .env("FLOWSCOPE_LISTEN", "127.0.0.1:0")
        .env("NO_COLOR", "1")
        .output()
        .expect("run a second flowscope");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "{stderr}");
    assert!(
        stderr.contains("another Flowscope process is using"),
        "{stderr}"
    );
    assert!(stderr.contains("PostgreSQL"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    // `migrate` is refused too while the file is served.
    let migrate = Command::new(env!("CARGO_BIN_EXE_flowscope"))
        .arg("migrate")
        .env("FLOWSCOPE_DATABASE_URL", &url)
        .output()
        .expect("run migrate");
    assert!(!migrate.status.success());

    first.child.kill().expect("kill");
    first.child.wait().expect("reap");
    let mut again = start(&url);
    again.child.kill().expect("kill");
    let _ = again.child.wait();
}

/// SIGKILL with a `for_each` half done: on restart only the items not recorded run, and the
/// step's list is whole and in order.
/// A `for_each` step killed (SIGKILL) after some of its items were recorded: the next process
/// runs only the rest, and the output is the whole list in order.
async fn a_sigkill_inside_for_each(db: &str) {
    let env = [("FLOWSCOPE_STEP_MAX_INTERRUPTIONS", "0")];
    let mut server = common::procs::spawn("serve", db, &env);
    let client = Client::new(server.base.as_deref().expect("base"));
    let list: Vec<String> = (0..40).map(|i| i.to_string()).collect();
    client
        .create(&format!(
            "id: loopy\ninputs: {{n: {{type: array, default: [{}]}}}}\nsteps:\n\
             - {{id: each, agent: simulate, for_each: inputs.n, concurrency: 4, \
             with: {{latency: 60ms, output: {{n: '{{{{ item }}}}'}}}}}}\n",
            list.join(", ")
        ))
        .await;
    let id = client.trigger("loopy", json!({})).await;
    // The recorded items, in list order.
    let items = async |client: &Client| -> Vec<Value> {
        let (status, page) = client
            .get(&format!("/api/v1/runs/{id}/steps/each/items"))
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        page["items"].as_array().cloned().unwrap_or_default()
    };
    let recorded: Vec<Value> = loop {
        let found = items(&client).await;
        if found.len() >= 8 {
            break found;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(recorded.len() < 40, "killed before the end");
    server.child.kill().expect("SIGKILL");
    server.child.wait().expect("reap");

    let server = common::procs::spawn("serve", db, &env);
    let client = Client::new(server.base.as_deref().expect("base"));
    let run = finished_run(&client, &id)
        .await
        .expect("the run finished after the restart");
    assert_eq!(run["status"], "succeeded", "{run}");
    let each = run["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["step_id"] == "each"))
        .expect("step")
        .clone();
    assert_eq!(each["attempts"], 2, "resumed once: {each}");
    let whole: Vec<Value> = (0..40).map(|n| serde_json::json!({ "n": n })).collect();
    assert_eq!(
        each["output"],
        Value::Array(whole),
        "the whole list, in order"
    );
    let now = items(&client).await;
    assert_eq!(now.len(), 40);
    for before in &recorded {
        let again = now
            .iter()
            .find(|i| i["index"] == before["index"])
            .expect("still recorded");
        assert_eq!(
            (
                &again["started_at"],
                &again["finished_at"],
                &again["attempts"]
            ),
            (
                &before["started_at"],
                &before["finished_at"],
                &before["attempts"]
            ),
            "item {} ran again after the restart",
            before["index"]
        );
    }
}

#[tokio::test]
async fn a_sigkill_inside_for_each_runs_no_recorded_item_again_on_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = format!("sqlite://{}", dir.path().join("items.db").display());
    a_sigkill_inside_for_each(&db).await;
}

#[tokio::test]
async fn a_sigkill_inside_for_each_runs_no_recorded_item_again_on_postgres() {
    let db = common::procs::database("fs_durable_items").await;
    a_sigkill_inside_for_each(&db).await;
}

/// A run whose step failed, killed (SIGKILL) while the `always()` step after it runs: the next
/// process resumes into that step and no further. The failure is not run again, the clean-up
/// finishes, and the run ends failed. On both stores.
async fn a_sigkill_between_a_failure_and_its_always_step(db: &str) {
    let env = [("FLOWSCOPE_STEP_MAX_INTERRUPTIONS", "0")];
    let server = common::procs::spawn("serve", db, &env);
    let client = Client::new(server.base.as_deref().expect("base"));
    client
        .create(
            "id: mends\nsteps:\n\
             - {id: broken, agent: simulate, with: {failure_rate: 1}}\n\
             - id: cleanup\n  needs: [broken]\n  if: always()\n  agent: simulate\n  \
               with: {latency: 1500ms, output: cleaned}\n",
        )
        .await;
    let id = client.trigger("mends", json!({})).await;
    let step = |run: &Value, id: &str| -> Value {
        run["steps"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["step_id"] == id))
            .cloned()
            .unwrap_or(Value::Null)
    };
    // Killed once the failure is recorded and the clean-up has started.
    client
        .wait_run(&id, |run| {
            assert!(
                run["status"] == "queued" || run["status"] == "running",
                "killed before the end: {run}"
            );
            step(run, "broken")["status"] == "failed" && step(run, "cleanup")["status"] == "running"
        })
        .await;
    let mut server = server;
    server.child.kill().expect("SIGKILL");
    server.child.wait().expect("reap");

    let server = common::procs::spawn("serve", db, &env);
    let client = Client::new(server.base.as_deref().expect("base"));
    let run = finished_run(&client, &id)
        .await
        .expect("the run finished after the restart");
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(run["error"], "step broken failed", "{run}");
    let broken = step(&run, "broken");
    assert_eq!(
        (&broken["status"], &broken["attempts"]),
        (&Value::from("failed"), &Value::from(1)),
        "the failure is not run again: {broken}"
    );
    let cleanup = step(&run, "cleanup");
    assert_eq!(cleanup["status"], "succeeded", "{cleanup}");
    assert_eq!(cleanup["output"], "cleaned", "{cleanup}");
    assert_eq!(
        cleanup["attempts"], 2,
        "interrupted once, resumed once: {cleanup}"
    );
}

#[tokio::test]
async fn a_sigkill_between_a_failure_and_its_always_step_resumes_into_it_on_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = format!("sqlite://{}", dir.path().join("mends.db").display());
    a_sigkill_between_a_failure_and_its_always_step(&db).await;
}

#[tokio::test]
async fn a_sigkill_between_a_failure_and_its_always_step_resumes_into_it_on_postgres() {
    let db = common::procs::database("fs_durable_always").await;
    a_sigkill_between_a_failure_and_its_always_step(&db).await;
}
