//! Flowscope as real processes on one PostgreSQL database: `serve` and `worker` children that
//! die with the test, a fresh database per test, and the API calls the cluster tests share.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::PgPool;

/// A `flowscope serve` or `flowscope worker` child, killed with the test.
pub struct Proc {
    pub child: Child,
    /// The server's base URL, or a worker's (its `/metrics` and health listener).
    pub base: Option<String>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    pub fn pid(&self) -> String {
        self.child.id().to_string()
    }
    /// SIGTERM, as a deploy or `systemctl stop` sends, and the exit status once it is gone.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let sent = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid())
            .status()
            .expect("kill -TERM");
        assert!(sent.success());
        self.child.wait().expect("wait")
    }
    pub fn logged(&self, text: &str) -> bool {
        self.log
            .lock()
            .expect("log")
            .iter()
            .any(|l| l.contains(text))
    }
}

/// Starts `flowscope <kind>` on `db` and waits until it says it is ready.
pub fn spawn(kind: &str, db: &str, env: &[(&str, &str)]) -> Proc {
    let mut command = Command::new(env!("CARGO_BIN_EXE_flowscope"));
    command
        .arg(kind)
        .env("FLOWSCOPE_DATABASE_URL", db)
        .env("FLOWSCOPE_LISTEN", "127.0.0.1:0")
        .env("FLOWSCOPE_SEED_EXAMPLES", "false")
        .env("FLOWSCOPE_SCHEDULER", "false")
        .env("FLOWSCOPE_WORKER_LEASE", "1s")
        .env("FLOWSCOPE_WORKER_LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().expect("start flowscope");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let log = Arc::new(Mutex::new(Vec::new()));
    let base = loop {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("flowscope {kind} exited before it was ready"))
            .expect("read log");
        if let Some(pos) = line.find("listening on http://") {
            let addr = line[pos + "listening on http://".len()..]
                .split_whitespace()
                .next()
                .expect("addr");
            break Some(format!("http://{addr}"));
        }
        if line.contains("Flowscope worker ready") {
            let pos = line
                .find("metrics=http://")
                .expect("the worker's metrics address");
            let url = line[pos + "metrics=".len()..]
                .split_whitespace()
                .next()
                .expect("url");
            break url.strip_suffix("/metrics").map(str::to_string);
        }
    };
    let keep = log.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            keep.lock().expect("log").push(line);
        }
    });
    Proc { child, base, log }
}

/// A fresh database `name`; its URL.
pub async fn database(name: &str) -> String {
    let admin = engine::store::scratch::admin_url();
    let store = engine::store::scratch::create_database(&admin, name)
        .await
        .expect("create database");
    store.migrate().await.expect("migrate");
    store.close().await;
    engine::store::scratch::database_url(&admin, name)
}

/// Waits until no run is queued or running (a hang guard of five minutes, not a limit).
pub async fn all_finished(pool: &PgPool) -> Duration {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(300) {
        let open: i64 =
            sqlx::query_scalar("SELECT count(*) FROM runs WHERE status IN ('queued', 'running')")
                .fetch_one(pool)
                .await
                .expect("count");
        if open == 0 {
            return start.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("runs still unfinished after five minutes");
}
