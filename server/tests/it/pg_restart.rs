//! PostgreSQL restarted under a server and a worker in the middle of runs: both processes ride
//! it out (no crash), and every run completes once the database is back, each step's outcome
//! recorded once. A test binary of its own: the restart would disturb any test beside it.

use crate::common;
use crate::common::hub::Client;

use std::process::Command;
use std::time::Duration;

use common::procs::{all_finished, database, spawn};
use serde_json::json;
use sqlx::PgPool;

#[tokio::test]
async fn runs_complete_after_postgresql_restarts_mid_run_and_no_process_crashes() {
    let db = database("fs_pg_restart").await;
    // A lease longer than the restart: the processes keep their runs through it.
    let env = [("FLOWSCOPE_WORKER_LEASE", "20s")];
    let mut server = spawn("serve", &db, &env);
    let mut worker = spawn("worker", &db, &env);
    let client = Client::new(server.base.as_deref().expect("base"));
    client
        .create(
            "id: through\nsteps:\n- {id: a, agent: simulate, with: {latency: 300ms, output: 1}}\n- {id: b, agent: delay, needs: [a], with: {duration: 1500ms}}\n- {id: c, agent: transform, needs: [b], with: {jq: '.steps.a.output + 1'}}\n",
        )
        .await;
    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(client.trigger("through", json!({})).await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let cluster = std::fs::read_dir("/etc/postgresql")
        .expect("/etc/postgresql: the Debian PostgreSQL cluster this test restarts")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().to_string())
        .next()
        .expect("a PostgreSQL version");
    let restarted = tokio::task::spawn_blocking(move || {
        Command::new("pg_ctlcluster")
            .args(["--skip-systemctl-redirect", &cluster, "main", "restart"])
            .status()
    })
    .await
    .expect("join")
    .expect("pg_ctlcluster");
    assert!(restarted.success(), "PostgreSQL restarted");

    let pool = PgPool::connect(&db)
        .await
        .expect("connect after the restart");
    all_finished(&pool).await;
    assert!(
        server.child.try_wait().expect("status").is_none(),
        "the server is still running"
    );
    assert!(
        worker.child.try_wait().expect("status").is_none(),
        "the worker is still running"
    );
    let statuses: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, count(*) FROM runs GROUP BY status")
            .fetch_all(&pool)
            .await
            .expect("statuses");
    assert_eq!(statuses, vec![("succeeded".to_string(), ids.len() as i64)]);
    let outputs: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT output FROM run_steps WHERE step_id = 'c'")
            .fetch_all(&pool)
            .await
            .expect("outputs");
    assert_eq!(outputs, vec!["2".to_string()]);
    let doubled: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT run_id, step_id FROM step_attempts WHERE status = 'succeeded' GROUP BY run_id, step_id HAVING count(*) > 1) d",
    )
    .fetch_one(&pool)
    .await
    .expect("doubles");
    assert_eq!(doubled, 0, "no step outcome recorded twice");
    // The API answers again too.
    let (status, _) = client.get("/api/v1/runs?limit=1").await;
    assert!(status.is_success());
}
