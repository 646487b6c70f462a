//! Cron triggers against a controllable clock: [`Scheduler::tick`] is given the time. Each
//! occurrence fires once (also with two processes on one PostgreSQL), schedules survive a
//! restart, downtime fires one late run unless the trigger catches up, zones are honoured,
//! and edits or removals take effect without firing.

use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, Utc};
use engine::executor::{Engine, EngineConfig};
use engine::model::{CronDef, CronFull, Workflow};
use engine::schedule::{Schedule, Scheduler, MAX_CATCH_UP};
use engine::store::{RunFilter, Store};

/// Unix ms of an RFC 3339 time.
fn at(text: &str) -> i64 {
    DateTime::parse_from_rfc3339(text)
        .expect("RFC 3339 time")
        .timestamp_millis()
}

fn utc(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .expect("time")
        .to_rfc3339()
}

fn workflow(id: &str, cron: &str) -> String {
    format!(
        "id: {id}\nname: {id}\ntriggers:\n  - {cron}\nsteps:\n  - id: one\n    agent: transform\n    with: {{ jq: '1' }}\n"
    )
}

async fn sqlite() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::connect(&format!("sqlite://{}", dir.path().join("s.db").display()))
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    (store, dir)
}

async fn postgres() -> (Store, String) {
    static N: AtomicUsize = AtomicUsize::new(0);
    let name = format!(
        "flowscope_sched_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let store =
        engine::store::scratch::create_database(&engine::store::scratch::admin_url(), &name)
            .await
            .expect("PostgreSQL on 127.0.0.1:5432");
    store.migrate().await.expect("migrate");
    (store, name)
}

async fn add(store: &Store, yaml: &str) {
    let w = Workflow::parse(yaml).expect("valid workflow");
    match store.workflow(w.id()).await {
        Ok(_) => store.save_version(&w, yaml).await.map(|_| ()),
        Err(_) => store.create_workflow(&w, yaml).await.map(|_| ()),
    }
    .expect("saved");
}

async fn cron_runs(store: &Store, workflow: &str) -> usize {
    store
        .list_runs(&RunFilter {
            workflow_id: Some(workflow.into()),
            trigger: Some("cron".into()),
            limit: 1000,
            ..Default::default()
        })
        .await
        .expect("runs")
        .len()
}

async fn engine(store: &Store) -> Engine {
    Engine::start(store.clone(), EngineConfig::default())
        .await
        .expect("engine")
}

#[tokio::test]
async fn each_occurrence_fires_once_and_the_schedule_survives_a_restart() {
    let (store, _dir) = sqlite().await;
    add(&store, &workflow("every5", "cron: '*/5 * * * *'")).await;
    let engine = engine(&store).await;
    let mut scheduler = Scheduler::new(engine.clone());

    // Seen for the first time: nothing fires, the next occurrence is stored.
    let t = scheduler
        .tick(at("2026-03-01T10:02:00Z"))
        .await
        .expect("tick");
    assert!(t.fired.is_empty());
    assert_eq!(t.next_due.map(utc), Some(utc(at("2026-03-01T10:05:00Z"))));
    let t = scheduler
        .tick(at("2026-03-01T10:04:59.999Z"))
        .await
        .expect("tick");
    assert!(t.fired.is_empty(), "{t:?}");

    let t = scheduler
        .tick(at("2026-03-01T10:05:00Z"))
        .await
        .expect("tick");
    assert_eq!(t.fired.len(), 1, "{t:?}");
    assert_eq!(t.fired[0].2, at("2026-03-01T10:05:00Z"));
    assert_eq!(t.next_due, Some(at("2026-03-01T10:10:00Z")));
    let run = engine.store().run_detail(&t.fired[0].1).await.expect("run");
    assert_eq!(run.run.trigger, "cron");
    engine.wait(&t.fired[0].1).await.expect("finishes");

    // The same instant again fires nothing.
    let t = scheduler
        .tick(at("2026-03-01T10:05:30Z"))
        .await
        .expect("tick");
    assert!(t.fired.is_empty(), "{t:?}");

    // A new process (a restart) reads the stored next occurrence.
    let mut restarted = Scheduler::new(engine.clone());
    let t = restarted
        .tick(at("2026-03-01T10:06:00Z"))
        .await
        .expect("tick");
    assert!(t.fired.is_empty(), "{t:?}");
    assert_eq!(t.next_due, Some(at("2026-03-01T10:10:00Z")));
    let t = restarted
        .tick(at("2026-03-01T10:10:00.500Z"))
        .await
        .expect("tick");
    assert_eq!(t.fired.len(), 1, "{t:?}");
    assert_eq!(cron_runs(&store, "every5").await, 2);
}

#[tokio::test]
async fn downtime_fires_one_late_run_unless_the_trigger_catches_up() {
    let (store, _dir) = sqlite().await;
    add(&store, &workflow("hourly", "cron: '0 * * * *'")).await;
    add(
        &store,
        &workflow(
            "hourly-catch-up",
            "cron: { schedule: '0 * * * *', catch_up: true }",
        ),
    )
    .await;
    let engine = engine(&store).await;
    let mut scheduler = Scheduler::new(engine.clone());
    scheduler
        .tick(at("2026-03-01T10:30:00Z"))
        .await
        .expect("tick");

    // Down from 10:30 until 15:30: five occurrences (11:00 … 15:00) missed.
    let mut after = Scheduler::new(engine.clone());
    let t = after.tick(at("2026-03-01T15:30:00Z")).await.expect("tick");
    let fired =
        |wf: &str| -> Vec<i64> { t.fired.iter().filter(|f| f.0 == wf).map(|f| f.2).collect() };
    assert_eq!(fired("hourly"), vec![at("2026-03-01T11:00:00Z")]);
    let hours: Vec<i64> = (11..=15)
        .map(|h| at(&format!("2026-03-01T{h}:00:00Z")))
        .collect();
    assert_eq!(fired("hourly-catch-up"), hours);
    assert_eq!(t.next_due, Some(at("2026-03-01T16:00:00Z")));

    let t = after.tick(at("2026-03-01T15:31:00Z")).await.expect("tick");
    assert!(t.fired.is_empty(), "{t:?}");
    assert_eq!(cron_runs(&store, "hourly").await, 1);
    assert_eq!(cron_runs(&store, "hourly-catch-up").await, 5);

    // A very long outage catches up at most MAX_CATCH_UP runs, oldest first.
    let t = after.tick(at("2026-03-31T15:30:00Z")).await.expect("tick");
    let caught: Vec<&(String, String, i64)> = t
        .fired
        .iter()
        .filter(|f| f.0 == "hourly-catch-up")
        .collect();
    assert_eq!(caught.len(), MAX_CATCH_UP);
    assert_eq!(caught[0].2, at("2026-03-01T16:00:00Z"));
    assert_eq!(t.next_due, Some(at("2026-03-31T16:00:00Z")));
}

#[tokio::test]
async fn edits_take_effect_without_firing_and_removed_schedules_stop() {
    let (store, _dir) = sqlite().await;
    add(&store, &workflow("edited", "cron: '0 2 * * *'")).await;
    let engine = engine(&store).await;
    let mut scheduler = Scheduler::new(engine.clone());
    let t = scheduler
        .tick(at("2026-03-01T10:00:00Z"))
        .await
        .expect("tick");
    assert_eq!(t.next_due, Some(at("2026-03-02T02:00:00Z")));

    // Edited to every minute: the next minute, not a catch-up of the old schedule.
    add(&store, &workflow("edited", "cron: '* * * * *'")).await;
    let t = scheduler
        .tick(at("2026-03-01T10:00:30Z"))
        .await
        .expect("tick");
    assert!(t.fired.is_empty());
    assert_eq!(t.next_due, Some(at("2026-03-01T10:01:00Z")));

    // Archived: the schedule is gone and nothing fires.
    store.set_archived("edited", true).await.expect("archive");
    let t = scheduler
        .tick(at("2026-03-01T10:05:00Z"))
        .await
        .expect("tick");
    assert!(t.fired.is_empty() && t.next_due.is_none(), "{t:?}");
    assert!(store.schedules().await.expect("rows").is_empty());

    // Restored, then the trigger removed from the definition: gone again.
    store.set_archived("edited", false).await.expect("restore");
    scheduler
        .tick(at("2026-03-01T10:06:00Z"))
        .await
        .expect("tick");
    assert_eq!(store.schedules().await.expect("rows").len(), 1);
    add(&store, &workflow("edited", "manual: {}")).await;
    let t = scheduler
        .tick(at("2026-03-01T10:10:00Z"))
        .await
        .expect("tick");
    assert!(t.fired.is_empty() && t.next_due.is_none(), "{t:?}");
    assert!(store.schedules().await.expect("rows").is_empty());
    assert_eq!(cron_runs(&store, "edited").await, 0);
}

#[tokio::test]
async fn saving_archiving_and_restoring_wake_the_scheduler() {
    use futures::FutureExt;
    let (store, _dir) = sqlite().await;
    assert!(
        store.workflows_changed().now_or_never().is_none(),
        "nothing changed yet"
    );
    add(&store, &workflow("woken", "cron: '0 2 * * *'")).await;
    assert!(
        store.workflows_changed().now_or_never().is_some(),
        "a new workflow"
    );
    assert!(
        store.workflows_changed().now_or_never().is_none(),
        "one wake per change"
    );
    add(&store, &workflow("woken", "cron: '0 3 * * *'")).await;
    assert!(
        store.workflows_changed().now_or_never().is_some(),
        "a new version"
    );
    store.set_archived("woken", true).await.expect("archive");
    assert!(
        store.workflows_changed().now_or_never().is_some(),
        "archived"
    );
}

#[test]
fn schedules_read_in_their_time_zone_across_daylight_saving() {
    let def = CronDef::Full(CronFull {
        schedule: "0 2 * * *".into(),
        timezone: Some("America/New_York".into()),
        catch_up: false,
    });
    let s = Schedule::new(&def).expect("schedule");
    // 02:00 in New York is 07:00 UTC in winter (EST) and 06:00 UTC in summer (EDT).
    assert_eq!(
        s.next_after(at("2026-01-10T12:00:00Z")),
        Some(at("2026-01-11T07:00:00Z"))
    );
    assert_eq!(
        s.next_after(at("2026-07-10T12:00:00Z")),
        Some(at("2026-07-11T06:00:00Z"))
    );
    let utc = Schedule::new(&CronDef::Expr("0 2 * * *".into())).expect("schedule");
    assert_eq!(
        utc.upcoming(at("2026-01-10T12:00:00Z"), 2),
        vec![at("2026-01-11T02:00:00Z"), at("2026-01-12T02:00:00Z")]
    );
    assert!(Schedule::new(&CronDef::Full(CronFull {
        schedule: "0 2 * * *".into(),
        timezone: Some("Mars/Olympus".into()),
        catch_up: false,
    }))
    .is_err());
}

#[tokio::test]
async fn two_processes_on_postgres_fire_each_occurrence_once() {
    let (store, name) = postgres().await;
    add(&store, &workflow("shared", "cron: '* * * * *'")).await;
    // Two engines with their own connection pools: two processes as far as the database sees.
    let other = Store::connect(&engine::store::scratch::database_url(
        &engine::store::scratch::admin_url(),
        &name,
    ))
    .await
    .expect("second pool");
    let (a, b) = (engine(&store).await, engine(&other).await);
    let (mut sa, mut sb) = (Scheduler::new(a.clone()), Scheduler::new(b.clone()));
    let start = at("2026-03-01T10:00:30Z");
    let (ta, tb) = tokio::join!(sa.tick(start), sb.tick(start));
    assert!(ta.expect("a").fired.is_empty() && tb.expect("b").fired.is_empty());
    let mut fired = Vec::new();
    for minute in 1..=20 {
        let now = start + minute * 60_000;
        let (ta, tb) = tokio::join!(sa.tick(now), sb.tick(now));
        let (ta, tb) = (ta.expect("a"), tb.expect("b"));
        assert_eq!(
            ta.fired.len() + tb.fired.len(),
            1,
            "minute {minute}: a {ta:?} b {tb:?}"
        );
        fired.extend(ta.fired.into_iter().chain(tb.fired).map(|f| f.2));
    }
    let expected: Vec<i64> = (1..=20)
        .map(|m| at("2026-03-01T10:00:00Z") + m * 60_000)
        .collect();
    assert_eq!(fired, expected);
    assert_eq!(cron_runs(&store, "shared").await, 20);
    other.close().await;
    store.close().await;
    let _ =
        engine::store::scratch::drop_database(&engine::store::scratch::admin_url(), &name).await;
}

/// A paused workflow starts nothing, on either store: its occurrences pass (stored as passed,
/// so resuming does not fire them late), and a trigger or a retry is refused. Resumed, the
/// next occurrence fires and triggers start runs.
#[tokio::test]
async fn a_paused_workflow_lets_its_occurrences_pass_and_refuses_triggers() {
    let (store, _dir) = sqlite().await;
    paused_workflows_start_nothing(store).await;
    let (store, name) = postgres().await;
    paused_workflows_start_nothing(store.clone()).await;
    store.close().await;
    let _ =
        engine::store::scratch::drop_database(&engine::store::scratch::admin_url(), &name).await;
}

async fn paused_workflows_start_nothing(store: Store) {
    use engine::executor::{EngineError, RetryMode, TriggerRequest};
    add(&store, &workflow("nightly", "cron: '0 2 * * *'")).await;
    let engine = engine(&store).await;
    let mut scheduler = Scheduler::new(engine.clone());
    scheduler
        .tick(at("2026-03-01T01:00:00Z"))
        .await
        .expect("tick");
    let before = engine
        .trigger(TriggerRequest {
            workflow_id: "nightly".into(),
            trigger: "api".into(),
            ..Default::default()
        })
        .await
        .expect("trigger");
    engine.wait(&before.id).await.expect("finishes");

    let paused = store.set_paused("nightly", true).await.expect("pause");
    assert!(paused.paused_at.is_some());
    assert_eq!(
        store.trigger_state("nightly").await.expect("state"),
        (1, true)
    );
    let t = scheduler
        .tick(at("2026-03-01T02:00:00Z"))
        .await
        .expect("tick");
    assert!(t.fired.is_empty(), "{t:?}");
    assert_eq!(
        t.next_due,
        Some(at("2026-03-02T02:00:00Z")),
        "the occurrence passed"
    );
    for version in [None, Some(1)] {
        let refused = engine
            .trigger(TriggerRequest {
                workflow_id: "nightly".into(),
                trigger: "api".into(),
                version,
                ..Default::default()
            })
            .await;
        assert!(
            matches!(&refused, Err(EngineError::Paused(id)) if id == "nightly"),
            "{refused:?}"
        );
    }
    let retried = engine.retry(&before.id, RetryMode::Whole).await;
    assert!(
        matches!(retried, Err(EngineError::Paused(_))),
        "{retried:?}"
    );

    let resumed = store.set_paused("nightly", false).await.expect("resume");
    assert_eq!(resumed.paused_at, None);
    let t = scheduler
        .tick(at("2026-03-01T03:00:00Z"))
        .await
        .expect("tick");
    assert!(
        t.fired.is_empty(),
        "the passed occurrence does not fire late: {t:?}"
    );
    let t = scheduler
        .tick(at("2026-03-02T02:00:00Z"))
        .await
        .expect("tick");
    assert_eq!(t.fired.len(), 1, "{t:?}");
    assert_eq!(cron_runs(&store, "nightly").await, 1);
    let again = engine
        .retry(&before.id, RetryMode::Whole)
        .await
        .expect("retry");
    engine.wait(&again.id).await.expect("finishes");
}
