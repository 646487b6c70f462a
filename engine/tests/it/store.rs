//! The store test suite, run unchanged against SQLite and PostgreSQL.
//!
//! Each test body is an `async fn(Store)`; `both!` turns it into one `#[tokio::test]` per
//! backend. PostgreSQL tests each get a fresh database on `FLOWSCOPE_TEST_POSTGRES_URL`
//! (default `postgres://postgres@127.0.0.1:5432/postgres`), dropped afterwards.

use std::sync::atomic::{AtomicUsize, Ordering};

use engine::examples::EXAMPLES;
use engine::model::Workflow;
use engine::records::{RunStatus, StepStatus};
use engine::store::{id_floor, NewRun, Op, RunFilter, Store, StoreError};

mod support {
    use super::*;

    pub struct TestDb {
        pub store: Store,
        _dir: Option<tempfile::TempDir>,
        drop_pg: Option<(String, String)>,
    }

    impl TestDb {
        pub async fn cleanup(self) {
            self.store.close().await;
            if let Some((admin_url, name)) = self.drop_pg {
                engine::store::scratch::drop_database(&admin_url, &name)
                    .await
                    .expect("drop db");
            }
        }
    }

    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = Store::connect(&url).await.expect("connect sqlite");
        store.migrate().await.expect("migrate");
        TestDb {
            store,
            _dir: Some(dir),
            drop_pg: None,
        }
    }

    pub async fn postgres() -> TestDb {
        static N: AtomicUsize = AtomicUsize::new(0);
        let admin_url = engine::store::scratch::admin_url();
        let name = format!(
            "flowscope_test_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let store = engine::store::scratch::create_database(&admin_url, &name)
            .await
            .expect("PostgreSQL must run on 127.0.0.1:5432 (the test command starts it)");
        store.migrate().await.expect("migrate");
        TestDb {
            store,
            _dir: None,
            drop_pg: Some((admin_url, name)),
        }
    }
}

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test] async fn $name() {
                let db = super::support::sqlite().await;
                super::$name(db.store.clone()).await;
                db.cleanup().await;
            })*
        }
        mod postgres {
            $(#[tokio::test] async fn $name() {
                let db = super::support::postgres().await;
                super::$name(db.store.clone()).await;
                db.cleanup().await;
            })*
        }
    };
}

both!(
    creating_a_workflow_stores_version_one_with_its_exact_text,
    every_save_is_a_new_immutable_version,
    creating_an_existing_id_is_a_conflict_and_changes_nothing,
    saving_an_unknown_workflow_is_not_found,
    archived_workflows_are_hidden_and_can_be_restored,
    racing_saves_all_become_versions,
    seeding_fills_only_an_empty_database,
    readiness_follows_migrations,
    unknown_versions_are_distinguished_from_unknown_workflows,
    state_changes_keep_every_character_of_text,
    a_refused_batch_changes_nothing_and_later_batches_apply,
    the_journal_refuses_only_the_bad_submission_of_a_batch,
    workflow_stats_count_days_rates_and_p95,
    users_sessions_tokens_and_secrets_keep_their_rules,
    attempt_transitions_write_the_same_rows_on_both_stores,
    a_batch_wider_than_a_select_list_applies,
    alert_announcements_follow_transitions_and_racing_replicas_announce_once,
    a_runs_detail_carries_logs_within_its_budget,
    a_deleted_workflow_takes_its_runs_and_waits_for_running_ones,
    search_finds_texts_before_and_after_they_are_indexed_and_forgets_deleted_ones,
    a_search_of_many_matches_pages_newest_first,
);

/// More matches than are listed as ids: the runs are read newest first and checked one by
/// one, before the index is built and after, and page by page with the cursor.
async fn a_search_of_many_matches_pages_newest_first(store: Store) {
    let (w, t) = wf("one", "1ms");
    store.create_workflow(&w, &t).await.expect("create");
    let mut ops = Vec::new();
    for i in 0..2_100 {
        let id = format!("r{i:05}");
        ops.push(new_run(&id, serde_json::json!({}), &[]));
        ops.push(Op::FinishRun {
            run_id: id.clone(),
            status: engine::records::RunStatus::Succeeded,
            error: None,
            at: 2_000,
            frees_slot: false,
            outputs: None,
            // Every run says "shipped"; one in seven was late.
            search: Some(format!(
                "order {id} shipped{}",
                if i % 7 == 0 { ", late" } else { "" }
            )),
        });
    }
    store.apply(&ops).await.expect("runs");
    let page = async |q: &str, before: Option<&str>| -> Vec<String> {
        let runs = store
            .list_runs(&engine::store::RunFilter {
                search: engine::search::SearchQuery::parse(q).expect("query"),
                before: before.map(str::to_string),
                limit: 3,
                ..Default::default()
            })
            .await
            .expect("list");
        runs.into_iter().map(|r| r.id).collect()
    };
    for pass in ["written", "indexed"] {
        assert_eq!(
            page("shipped", None).await,
            ["r02099", "r02098", "r02097"],
            "{pass}"
        );
        assert_eq!(
            page("SHIPPED", Some("r02097")).await,
            ["r02096", "r02095", "r02094"],
            "{pass}"
        );
        // 300 late runs: few enough to be listed by id.
        assert_eq!(
            page("late shipped", None).await,
            ["r02093", "r02086", "r02079"],
            "{pass}"
        );
        assert_eq!(
            page("r0000 shipped", Some("r00007")).await,
            ["r00006", "r00005", "r00004"],
            "{pass}"
        );
        store.index_search_texts(10_000).await.expect("index");
    }
}

/// Run texts are found as soon as they are written (SQLite's index is built afterwards, a
/// batch at a time), and after; deleting runs takes them out of the index, which stays sound.
async fn search_finds_texts_before_and_after_they_are_indexed_and_forgets_deleted_ones(
    store: Store,
) {
    let (w, t) = wf("one", "1ms");
    store.create_workflow(&w, &t).await.expect("create");
    let finish = |id: &str, text: &str| {
        vec![
            new_run(id, serde_json::json!({}), &[]),
            Op::FinishRun {
                run_id: id.into(),
                status: engine::records::RunStatus::Succeeded,
                error: None,
                at: 2_000,
                frees_slot: false,
                outputs: None,
                search: Some(text.into()),
            },
        ]
    };
    let found = async |q: &str| -> Vec<String> {
        let runs = store
            .list_runs(&engine::store::RunFilter {
                search: engine::search::SearchQuery::parse(q).expect("query"),
                limit: 10,
                ..Default::default()
            })
            .await
            .expect("list");
        runs.into_iter().map(|r| r.id).collect()
    };
    store
        .apply(&finish("r1", "{\"order\": \"ORD-1742\"}"))
        .await
        .expect("r1");
    store
        .apply(&finish("r2", "payment declined: ORD-2001"))
        .await
        .expect("r2");
    assert_eq!(found("ord-17").await, ["r1"], "written, not indexed yet");
    assert_eq!(
        store.index_search_texts(1).await.expect("index"),
        match store.backend() {
            engine::store::Backend::Sqlite => 1,
            engine::store::Backend::Postgres => 0,
        }
    );
    assert_eq!(found("ord-17").await, ["r1"], "indexed");
    assert_eq!(found("declined ord-20").await, ["r2"], "not yet indexed");
    store.index_search_texts(100).await.expect("index");
    assert_eq!(found("ORD").await, ["r2", "r1"]);
    store
        .apply(&finish("r3", "ORD-3 comes after"))
        .await
        .expect("r3");
    // Deleting the workflow deletes its runs' texts, indexed (r1, r2) or not (r3).
    store.delete_workflow("one").await.expect("delete");
    assert_eq!(found("ord").await, Vec::<String>::new());
    store
        .check_search_index()
        .await
        .expect("the index matches its table");
    assert_eq!(
        store.count_label_and_search_rows().await.expect("count"),
        (0, 0)
    );
}

/// Deleting a workflow takes its versions, runs, steps and attempts and leaves the others';
/// while one of its runs is still going it is refused and nothing changes.
async fn a_deleted_workflow_takes_its_runs_and_waits_for_running_ones(store: Store) {
    create_owned_run(&store, &["a"]).await;
    let (w, t) = wf("other", "1ms");
    store.create_workflow(&w, &t).await.expect("create");
    let Op::CreateRun(mut kept) = new_run("kept", serde_json::json!({}), &["a"]) else {
        unreachable!()
    };
    kept.workflow_id = "other".into();
    store
        .apply(&[Op::CreateRun(kept), started("a", 1, 100, false, None)])
        .await
        .expect("apply");
    let refused = store.delete_workflow("one").await;
    assert!(
        matches!(&refused, Err(StoreError::Refused(m)) if m.contains("1 runs")),
        "{refused:?}"
    );
    assert!(store.run_detail("r").await.is_ok(), "nothing deleted");
    store
        .apply(&[
            finished("a", 1, StepStatus::Failed, 101),
            Op::FinishRun {
                run_id: "r".into(),
                status: RunStatus::Failed,
                error: Some("a failed".into()),
                at: 102,
                frees_slot: false,
                outputs: None,
                search: None,
            },
        ])
        .await
        .expect("finish");
    assert_eq!(store.delete_workflow("one").await.expect("delete"), 1);
    assert!(matches!(
        store.workflow("one").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.run_detail("r").await,
        Err(StoreError::RunNotFound(_))
    ));
    assert!(
        store.run_detail("kept").await.is_ok(),
        "another workflow's run stays"
    );
    assert!(matches!(
        store.delete_workflow("one").await,
        Err(StoreError::NotFound(_))
    ));
    // The id is free again: a new workflow under it starts at version 1.
    let (w, t) = wf("one", "2ms");
    assert_eq!(
        store.create_workflow(&w, &t).await.expect("again").version,
        1
    );
}

/// Logs count against the 8 MiB a run's detail carries: 200 attempts of 60 KB logs (12 MB)
/// come back as the first ones whole and the rest as a line naming where they are, and that
/// place reads them whole.
async fn a_runs_detail_carries_logs_within_its_budget(store: Store) {
    let steps: Vec<String> = (0..200).map(|i| format!("s{i}")).collect();
    let refs: Vec<&str> = steps.iter().map(String::as_str).collect();
    create_owned_run(&store, &refs).await;
    let line = "l".repeat(1_000);
    let mut ops = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        ops.push(started(step, 1, 100 + i as i64, false, None));
        let mut end = finished(step, 1, StepStatus::Succeeded, 101 + i as i64);
        if let Op::AttemptFinished { logs, .. } = &mut end {
            *logs = vec![line.clone(); 60];
        }
        ops.push(end);
    }
    store.apply(&ops).await.expect("apply");
    let detail = store.run_detail("r").await.expect("detail");
    let whole: Vec<_> = detail
        .attempts
        .iter()
        .filter(|a| a.logs.len() == 60)
        .collect();
    let cut: Vec<_> = detail
        .attempts
        .iter()
        .filter(|a| a.logs.len() == 1)
        .collect();
    assert_eq!(whole.len() + cut.len(), 200);
    let kept: usize = whole
        .iter()
        .map(|a| serde_json::to_string(&a.logs).expect("json").len())
        .sum();
    assert!(kept <= engine::store::DETAIL_BUDGET_BYTES, "{kept}");
    assert!(
        whole.len() >= 100 && cut.len() >= 50,
        "{} whole, {} cut",
        whole.len(),
        cut.len()
    );
    let note = &cut[0].logs[0];
    let at = format!(
        "/api/v1/runs/r/steps/{}/output?attempt=1&part=logs",
        cut[0].step_id
    );
    assert!(
        note.contains("bytes of log not shown") && note.ends_with(&at),
        "{note}"
    );
    let logs = store
        .step_value(
            "r",
            &cut[0].step_id,
            Some(1),
            engine::store::ValuePart::Logs,
        )
        .await
        .expect("logs");
    assert_eq!(logs, Some(serde_json::json!(vec![line.clone(); 60])));
}

async fn alert_announcements_follow_transitions_and_racing_replicas_announce_once(store: Store) {
    let (g, f) = ("{}:{alertname=\"X\"}", "fp1");
    // A resolution of what never fired is not news.
    assert!(!store
        .announce_alert(g, f, "resolved", 1)
        .await
        .expect("announce"));
    assert!(store
        .announce_alert(g, f, "firing", 2)
        .await
        .expect("announce"));
    assert!(!store
        .announce_alert(g, f, "firing", 3)
        .await
        .expect("announce"));
    assert!(store
        .announce_alert(g, f, "resolved", 4)
        .await
        .expect("announce"));
    assert!(!store
        .announce_alert(g, f, "resolved", 5)
        .await
        .expect("announce"));
    assert!(store
        .announce_alert(g, f, "firing", 6)
        .await
        .expect("announce"));
    // Taken back (the notification could not start): news again.
    store.unannounce_alert(g, f, "firing").await.expect("undo");
    assert!(store
        .announce_alert(g, f, "firing", 7)
        .await
        .expect("announce"));
    assert!(store
        .announce_alert(g, f, "resolved", 8)
        .await
        .expect("announce"));
    store
        .unannounce_alert(g, f, "resolved")
        .await
        .expect("undo");
    assert!(store
        .announce_alert(g, f, "resolved", 9)
        .await
        .expect("announce"));
    // Other alerts and groups are their own.
    assert!(store
        .announce_alert(g, "fp2", "firing", 10)
        .await
        .expect("announce"));
    assert!(store
        .announce_alert("other", f, "firing", 10)
        .await
        .expect("announce"));
    // Ten replicas given the same notification at once: one announces it.
    let racing = (0..10).map(|_| {
        let store = store.clone();
        tokio::spawn(async move { store.announce_alert("race", "fp", "firing", 11).await })
    });
    let mut news = 0;
    for r in futures::future::join_all(racing).await {
        news += usize::from(r.expect("task").expect("announce"));
    }
    assert_eq!(news, 1);
}

async fn users_sessions_tokens_and_secrets_keep_their_rules(store: Store) {
    use engine::access::Role;
    // The first admin once, then never again.
    assert!(store
        .create_first_admin("root", "h1", 1)
        .await
        .expect("first"));
    assert!(!store
        .create_first_admin("eve", "h2", 2)
        .await
        .expect("second"));
    assert_eq!(store.count_users().await.expect("count"), 1);
    let root = store
        .user_by_name("root")
        .await
        .expect("read")
        .expect("root");
    assert_eq!(
        (root.role.as_str(), root.password_hash.as_str()),
        ("admin", "h1")
    );
    let ann = store
        .create_user("ann", "h3", Role::Viewer, 3)
        .await
        .expect("ann");
    assert!(matches!(
        store.create_user("ann", "h4", Role::Admin, 4).await,
        Err(StoreError::Refused(m)) if m.contains("already exists")
    ));

    // The last admin stays; with a second one, the first may go.
    assert!(matches!(
        store.set_user_role(root.id, Role::Viewer).await,
        Err(StoreError::Refused(_))
    ));
    assert!(matches!(
        store.delete_user(root.id).await,
        Err(StoreError::Refused(_))
    ));
    assert!(
        matches!(store.set_user_role(9_999, Role::Viewer).await, Err(StoreError::Refused(m)) if m.contains("no user"))
    );
    store
        .set_user_role(ann, Role::Admin)
        .await
        .expect("promote");
    store
        .set_user_role(root.id, Role::Editor)
        .await
        .expect("demote");

    // Sessions end at expiry, at deletion, and with a new password.
    store
        .create_session("s1", ann, 10, 1_000)
        .await
        .expect("session");
    assert_eq!(
        store.session_user("s1", 500, 0).await.expect("read"),
        Some(("ann".to_string(), Role::Admin, 10))
    );
    assert_eq!(
        store.session_user("s1", 1_000, 0).await.expect("read"),
        None,
        "expired"
    );
    // Idle: unused since before `idle_since`, until it is used again.
    assert_eq!(
        store.session_user("s1", 500, 10).await.expect("read"),
        None,
        "idle"
    );
    store.touch_session("s1", 400).await.expect("touch");
    assert_eq!(
        store.session_user("s1", 500, 10).await.expect("read"),
        Some(("ann".to_string(), Role::Admin, 400))
    );
    store
        .create_session("s2", ann, 10, i64::MAX)
        .await
        .expect("session");
    store.set_user_password(ann, "h5").await.expect("password");
    assert_eq!(
        store.session_user("s2", 500, 0).await.expect("read"),
        None,
        "signed out everywhere"
    );
    store
        .create_session("s3", root.id, 10, i64::MAX)
        .await
        .expect("session");
    store.delete_session("s3").await.expect("delete");
    assert_eq!(store.session_user("s3", 500, 0).await.expect("read"), None);

    // Tokens: found by hash until revoked, last use recorded.
    let t = store
        .create_token("ci", "hash-ci", Role::Operator, Some("root"), 20)
        .await
        .expect("token");
    assert_eq!(
        store.token_by_hash("hash-ci").await.expect("read"),
        Some((t, "ci".to_string(), Role::Operator, None))
    );
    store.touch_token(t, 30).await.expect("touch");
    assert_eq!(
        store.tokens().await.expect("list")[0].last_used_at,
        Some(30)
    );
    assert!(store.revoke_token(t, 40).await.expect("revoke"));
    assert!(!store.revoke_token(t, 50).await.expect("again"));
    assert_eq!(store.token_by_hash("hash-ci").await.expect("read"), None);

    // Secrets: replaced in place, deleted once.
    store
        .put_secret("K", "n1", "c1", 60, Some("root"))
        .await
        .expect("put");
    store
        .put_secret("K", "n2", "c2", 70, None)
        .await
        .expect("replace");
    let sealed = store.sealed_secrets().await.expect("list");
    assert_eq!(sealed.len(), 1);
    assert_eq!(
        (
            sealed[0].nonce.as_str(),
            sealed[0].ciphertext.as_str(),
            sealed[0].updated_at
        ),
        ("n2", "c2", 70)
    );
    assert!(store.delete_secret("K").await.expect("delete"));
    assert!(!store.delete_secret("K").await.expect("again"));
}

fn wf(id: &str, latency: &str) -> (Workflow, String) {
    let text = format!("id: {id}\nname: Test {id}\ntags:\n- t1\nsteps:\n- id: a\n  agent: simulate\n  with:\n    latency: {latency}\n");
    (Workflow::parse(&text).expect("valid"), text)
}

async fn creating_a_workflow_stores_version_one_with_its_exact_text(store: Store) {
    // Non-canonical spacing and a comment: export must give back these very bytes.
    let text = "# mine\nid:   exact\nsteps:\n  - {id: a, agent: delay, with: {duration: 1s}}   \n";
    let w = Workflow::parse(text).expect("valid");
    let info = store.create_workflow(&w, text).await.expect("create");
    assert_eq!(info.version, 1);
    let record = store.version("exact", None).await.expect("latest");
    assert_eq!(record.source, text);
    assert_eq!(record.workflow.id(), "exact");
    let summary = store.workflow("exact").await.expect("summary");
    assert_eq!(
        (summary.name.as_str(), summary.latest_version),
        ("exact", 1)
    );
}

async fn every_save_is_a_new_immutable_version(store: Store) {
    let (w1, t1) = wf("versions", "1ms");
    let (w2, t2) = wf("versions", "2ms");
    store.create_workflow(&w1, &t1).await.expect("create");
    let v2 = store.save_version(&w2, &t2).await.expect("save");
    assert_eq!(v2.version, 2);
    assert_eq!(
        store.version("versions", Some(1)).await.expect("v1").source,
        t1
    );
    assert_eq!(
        store
            .version("versions", None)
            .await
            .expect("latest")
            .source,
        t2
    );
    let list = store.list_versions("versions").await.expect("versions");
    assert_eq!(list.iter().map(|v| v.version).collect::<Vec<_>>(), [2, 1]);
    let summary = store.workflow("versions").await.expect("summary");
    assert_eq!(summary.latest_version, 2);
    assert_eq!(summary.tags, ["t1"]);
}

async fn creating_an_existing_id_is_a_conflict_and_changes_nothing(store: Store) {
    let (w1, t1) = wf("dup", "1ms");
    let (w2, t2) = wf("dup", "9ms");
    store.create_workflow(&w1, &t1).await.expect("create");
    let err = store.create_workflow(&w2, &t2).await.expect_err("conflict");
    assert!(
        matches!(err, StoreError::AlreadyExists(ref id) if id == "dup"),
        "{err}"
    );
    assert_eq!(store.version("dup", None).await.expect("latest").source, t1);
    assert_eq!(store.list_versions("dup").await.expect("versions").len(), 1);
}

async fn saving_an_unknown_workflow_is_not_found(store: Store) {
    let (w, t) = wf("ghost", "1ms");
    assert!(matches!(
        store.save_version(&w, &t).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.version("ghost", None).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(store.list_workflows(true).await.expect("list").is_empty());
}

async fn archived_workflows_are_hidden_and_can_be_restored(store: Store) {
    let (w, t) = wf("old", "1ms");
    store.create_workflow(&w, &t).await.expect("create");
    let archived = store.set_archived("old", true).await.expect("archive");
    assert!(archived.archived_at.is_some());
    assert!(store.list_workflows(false).await.expect("list").is_empty());
    assert_eq!(store.list_workflows(true).await.expect("list all").len(), 1);
    assert_eq!(
        store
            .version("old", Some(1))
            .await
            .expect("still readable")
            .source,
        t
    );
    store.set_archived("old", false).await.expect("restore");
    assert_eq!(store.list_workflows(false).await.expect("list").len(), 1);
    assert!(matches!(
        store.set_archived("nope", true).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn racing_saves_all_become_versions(store: Store) {
    let (w, t) = wf("race", "1ms");
    store.create_workflow(&w, &t).await.expect("create");
    let saves = (0..8).map(|i| {
        let store = store.clone();
        let (w, t) = wf("race", &format!("{}ms", i + 10));
        tokio::spawn(async move { store.save_version(&w, &t).await })
    });
    let mut numbers = Vec::new();
    for handle in saves.collect::<Vec<_>>() {
        numbers.push(
            handle
                .await
                .expect("join")
                .expect("every racing save succeeds")
                .version,
        );
    }
    numbers.sort_unstable();
    assert_eq!(numbers, (2..=9).collect::<Vec<i64>>());
    assert_eq!(
        store.list_versions("race").await.expect("versions").len(),
        9
    );
}

async fn seeding_fills_only_an_empty_database(store: Store) {
    assert_eq!(store.seed_examples().await.expect("seed"), EXAMPLES.len());
    let ids: Vec<String> = store
        .list_workflows(false)
        .await
        .expect("list")
        .into_iter()
        .map(|w| w.id)
        .collect();
    assert!(
        ids.contains(&"hello".into()) && ids.contains(&"always-fails".into()),
        "{ids:?}"
    );
    assert_eq!(store.seed_examples().await.expect("seed again"), 0);
}

async fn readiness_follows_migrations(store: Store) {
    store.ready().await.expect("migrated store is ready");
}

async fn unknown_versions_are_distinguished_from_unknown_workflows(store: Store) {
    let (w, t) = wf("one", "1ms");
    store.create_workflow(&w, &t).await.expect("create");
    assert!(matches!(
        store.version("one", Some(7)).await,
        Err(StoreError::VersionNotFound { version: 7, .. })
    ));
    assert!(matches!(
        store.version("two", Some(1)).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.list_versions("two").await,
        Err(StoreError::NotFound(_))
    ));
}

/// Text that would break naive quoting: quotes, backslashes, SQL, non-ASCII, NUL.
const NASTY: &str = "it's \\ '' \"q\" '); DROP TABLE runs; -- ü 🚀 \u{0} end";

fn new_run(id: &str, inputs: serde_json::Value, steps: &[&str]) -> Op {
    Op::CreateRun(Box::new(NewRun {
        id: id.into(),
        workflow_id: "one".into(),
        workflow_version: 1,
        trigger: "api".into(),
        actor: None,
        inputs,
        parent_run_id: Some(NASTY.into()),
        traceparent: None,
        created_at: 1_000,
        step_ids: steps.iter().map(|s| s.to_string()).collect(),
        reused: vec![],
        concurrency: None,
        owner: None,
        caller: None,
        labels: Default::default(),
    }))
}

async fn state_changes_keep_every_character_of_text(store: Store) {
    let (w, t) = wf("one", "1ms");
    store.create_workflow(&w, &t).await.expect("create");
    let inputs = serde_json::json!({ "text": NASTY, NASTY: [1, 2.5, null] });
    let ops = vec![
        new_run("r1", inputs.clone(), &["a", "b"]),
        Op::StartRun {
            run_id: "r1".into(),
            at: 1_001,
            trace: Some((NASTY.into(), "00f067aa0ba902b7".into())),
        },
        Op::AttemptStarted {
            run_id: "r1".into(),
            step_id: "a".into(),
            attempt: 1,
            ready_at: 1_001,
            at: 1_002,
            input: serde_json::json!({ "with": NASTY }),
            resumed: false,
            span_id: Some(NASTY.into()),
            agent: NASTY.into(),
            worker: Some(NASTY.into()),
        },
        Op::AttemptFinished {
            run_id: "r1".into(),
            step_id: "a".into(),
            attempt: 1,
            status: StepStatus::Failed,
            output: Some(serde_json::json!({ "out": NASTY })),
            error: Some((NASTY.into(), NASTY.into())),
            logs: vec![NASTY.into(), String::new()],
            at: 1_003,
        },
        Op::StepsEnded {
            run_id: "r1".into(),
            step_ids: vec!["b".into()],
            status: StepStatus::Skipped,
            reason: Some(engine::records::SkipReason::Upstream),
            at: 1_003,
        },
        Op::FinishRun {
            run_id: "r1".into(),
            status: RunStatus::Failed,
            error: Some(NASTY.into()),
            at: 1_004,
            frees_slot: false,
            outputs: None,
            search: None,
        },
    ];
    store.apply(&ops).await.expect("apply");
    let run = store.run_detail("r1").await.expect("read");
    // Plain text columns cannot hold NUL in PostgreSQL: both stores write U+FFFD instead.
    let stored = NASTY.replace('\0', "\u{FFFD}");
    assert_eq!(
        run.inputs, inputs,
        "JSON escapes NUL, so inputs come back exactly"
    );
    assert_eq!(run.run.parent_run_id.as_deref(), Some(stored.as_str()));
    assert_eq!(run.run.error.as_deref(), Some(stored.as_str()));
    assert_eq!(run.run.status, RunStatus::Failed);
    assert_eq!(run.run.trace_id.as_deref(), Some(stored.as_str()));
    assert_eq!(run.run.span_id.as_deref(), Some("00f067aa0ba902b7"));
    let a = &run.attempts[0];
    assert_eq!(a.span_id.as_deref(), Some(stored.as_str()));
    assert_eq!(a.worker.as_deref(), Some(stored.as_str()));
    assert_eq!(a.input, Some(serde_json::json!({ "with": NASTY })));
    assert_eq!(a.output, Some(serde_json::json!({ "out": NASTY })));
    assert_eq!(a.error_kind.as_deref(), Some(stored.as_str()));
    assert_eq!(a.error_message.as_deref(), Some(stored.as_str()));
    assert_eq!(a.logs, vec![NASTY.to_string(), String::new()]);
    let steps: Vec<_> = run
        .steps
        .iter()
        .map(|s| (s.step_id.as_str(), s.status))
        .collect();
    assert_eq!(
        steps,
        vec![("a", StepStatus::Failed), ("b", StepStatus::Skipped)]
    );
    assert_eq!(
        run.steps[1].skip_reason,
        Some(engine::records::SkipReason::Upstream),
        "a skip's reason is stored with the step"
    );
    assert_eq!(
        store
            .list_runs(&RunFilter {
                limit: 10,
                ..Default::default()
            })
            .await
            .expect("list")
            .len(),
        1
    );
}

/// Run `r` of workflow `one` with `steps`, claimed by worker `me`.
async fn create_owned_run(store: &Store, steps: &[&str]) {
    let (w, t) = wf("one", "1ms");
    store.create_workflow(&w, &t).await.expect("create");
    let Op::CreateRun(mut run) = new_run("r", serde_json::json!({}), steps) else {
        unreachable!()
    };
    run.owner = Some("me".into());
    store
        .apply(&[Op::CreateRun(run)])
        .await
        .expect("create run");
}

fn started(step: &str, attempt: i64, at: i64, resumed: bool, worker: Option<&str>) -> Op {
    Op::AttemptStarted {
        run_id: "r".into(),
        step_id: step.into(),
        attempt,
        ready_at: at - 1,
        at,
        input: serde_json::json!({ "n": attempt }),
        resumed,
        span_id: None,
        agent: "simulate".into(),
        worker: worker.map(Into::into),
    }
}

fn finished(step: &str, attempt: i64, status: StepStatus, at: i64) -> Op {
    let ok = status == StepStatus::Succeeded;
    Op::AttemptFinished {
        run_id: "r".into(),
        step_id: step.into(),
        attempt,
        status,
        output: ok.then(|| serde_json::json!({ "attempt": attempt })),
        error: (!ok).then(|| ("agent_error".to_string(), format!("attempt {attempt}"))),
        logs: vec![format!("line of {attempt}")],
        at,
    }
}

/// PostgreSQL writes an attempt's start and end through functions (migration 0008), in one
/// `SELECT` with the fence; SQLite as statements. Every column must come out the same: a
/// retry leaves the step unfinished, a resumed attempt closes the one a stopped process left
/// running, an attempt started again without a worker name keeps the one it had, and a fenced
/// batch with a plain statement between the calls writes all of it, or nothing.
async fn attempt_transitions_write_the_same_rows_on_both_stores(store: Store) {
    create_owned_run(&store, &["a", "b", "c"]).await;
    let fenced = |ops: Vec<Op>| {
        let store = store.clone();
        async move { store.apply_fenced(&ops, Some("me")).await }
    };
    fenced(vec![
        Op::StartRun {
            run_id: "r".into(),
            at: 10,
            trace: None,
        },
        started("a", 1, 11, false, Some("w-1")),
        started("b", 1, 11, false, Some("w-1")),
    ])
    .await
    .expect("start");
    // A retry of `a`, a plain statement between the calls, and `b` ends.
    fenced(vec![
        finished("a", 1, StepStatus::Retrying, 12),
        Op::StepsEnded {
            run_id: "r".into(),
            step_ids: vec!["c".into()],
            status: StepStatus::Skipped,
            reason: None,
            at: 12,
        },
        finished("b", 1, StepStatus::Succeeded, 12),
    ])
    .await
    .expect("retry a, skip c, finish b");
    let d = store.run_detail("r").await.expect("read");
    let step = |id: &str| {
        d.steps
            .iter()
            .find(|s| s.step_id == id)
            .expect("step")
            .clone()
    };
    assert_eq!(
        (step("a").status, step("a").finished_at, step("a").attempts),
        (StepStatus::Retrying, None, 1)
    );
    assert_eq!(step("a").error_message.as_deref(), Some("attempt 1"));
    assert_eq!(
        (step("b").status, step("b").finished_at),
        (StepStatus::Succeeded, Some(12))
    );
    assert_eq!(step("b").output, Some(serde_json::json!({ "attempt": 1 })));
    assert_eq!(
        (step("c").status, step("c").finished_at),
        (StepStatus::Skipped, Some(12))
    );
    let a1 = d.attempts.iter().find(|a| a.step_id == "a").expect("a1");
    assert_eq!((a1.status, a1.finished_at), (StepStatus::Failed, Some(12)));
    assert_eq!(a1.logs, vec!["line of 1".to_string()]);

    // Attempt 2 starts, then the process stops; its replacement resumes attempt 3 and
    // re-inserts attempt 2's number without a worker name.
    fenced(vec![started("a", 2, 20, false, Some("w-2"))])
        .await
        .expect("attempt 2");
    fenced(vec![
        started("a", 3, 30, true, None),
        started("a", 2, 30, false, None),
    ])
    .await
    .expect("resumed");
    let d = store.run_detail("r").await.expect("read");
    let attempt = |n: i64| {
        d.attempts
            .iter()
            .find(|a| a.step_id == "a" && a.attempt == n)
            .expect("attempt")
            .clone()
    };
    let (a2, a3) = (attempt(2), attempt(3));
    assert_eq!(a2.worker.as_deref(), Some("w-2"), "no name keeps the row's");
    assert_eq!((a2.status, a2.started_at), (StepStatus::Running, 30));
    assert_eq!(a3.status, StepStatus::Running);
    assert_eq!(a3.input, Some(serde_json::json!({ "n": 3 })));
    let a = d.steps.iter().find(|s| s.step_id == "a").expect("a");
    assert_eq!(
        (
            a.status,
            a.attempts,
            a.ready_at,
            a.started_at,
            a.error_kind.as_deref()
        ),
        (StepStatus::Running, 2, Some(10), Some(11), None),
        "the step keeps when it first became ready and started; the last start sets attempts"
    );

    // Another worker's fence: on PostgreSQL nothing of the batch is written.
    let other = store
        .apply_fenced(
            &[
                finished("a", 3, StepStatus::Succeeded, 40),
                Op::FinishRun {
                    run_id: "r".into(),
                    status: RunStatus::Succeeded,
                    error: None,
                    at: 40,
                    frees_slot: false,
                    outputs: None,
                    search: None,
                },
            ],
            Some("someone else"),
        )
        .await;
    let d = store.run_detail("r").await.expect("read");
    if store.backend() == engine::store::Backend::Postgres {
        assert!(other.is_err_and(|e| e.is_fenced()));
        assert_eq!(d.run.status, RunStatus::Running);
        assert!(d
            .attempts
            .iter()
            .all(|a| a.attempt != 3 || a.status == StepStatus::Running));
    } else {
        // SQLite has one process and no fence.
        other.expect("no fence on SQLite");
        assert_eq!(d.run.status, RunStatus::Succeeded);
    }
}

/// PostgreSQL allows 1,664 items in one `SELECT`: a batch that starts a wider fan-out (here
/// 2,000 attempts, with the fence) must still apply, in several.
async fn a_batch_wider_than_a_select_list_applies(store: Store) {
    let ids: Vec<String> = (0..2000).map(|i| format!("s{i}")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    create_owned_run(&store, &refs).await;
    let starts: Vec<Op> = ids
        .iter()
        .map(|id| started(id, 1, 5, false, Some("me")))
        .collect();
    store
        .apply_fenced(&starts, Some("me"))
        .await
        .expect("2,000 starts in one batch");
    let d = store.run_detail("r").await.expect("read");
    assert_eq!(d.attempts.len(), 2000);
    assert!(d.steps.iter().all(|s| s.status == StepStatus::Running));
}

async fn a_refused_batch_changes_nothing_and_later_batches_apply(store: Store) {
    let (w, t) = wf("one", "1ms");
    store.create_workflow(&w, &t).await.expect("create");
    // Enough rounds to pass through every pooled connection: none may keep a half transaction.
    for i in 0..20 {
        let fresh = format!("ok-{i}");
        let refused = store
            .apply(&[
                new_run(&format!("lost-{i}"), serde_json::json!({}), &["a"]),
                // The same id again: a primary-key violation after the first insert succeeded.
                new_run(&format!("lost-{i}"), serde_json::json!({}), &["a"]),
            ])
            .await;
        assert!(refused.is_err(), "a duplicate run id must be refused");
        assert!(matches!(
            store.run_detail(&format!("lost-{i}")).await,
            Err(StoreError::RunNotFound(_))
        ));
        store
            .apply(&[new_run(&fresh, serde_json::json!({ "i": i }), &["a"])])
            .await
            .expect("a later batch applies");
        assert_eq!(
            store.run_detail(&fresh).await.expect("read").inputs,
            serde_json::json!({ "i": i })
        );
    }
    // The same across the scripts a large batch is cut into on SQLite (about 16 KiB each): a
    // refusal in a later one undoes the earlier ones.
    let big = serde_json::json!({ "pad": "x".repeat(40_000) });
    let refused = store
        .apply(&[
            new_run("big-lost", big.clone(), &["a"]),
            new_run("big-other", big.clone(), &["a"]),
            new_run("big-lost", big, &["a"]),
        ])
        .await;
    assert!(refused.is_err(), "a duplicate run id must be refused");
    for id in ["big-lost", "big-other"] {
        assert!(matches!(
            store.run_detail(id).await,
            Err(StoreError::RunNotFound(_))
        ));
    }
    store
        .apply(&[new_run("after-big", serde_json::json!({}), &["a"])])
        .await
        .expect("a later batch applies");
}

/// Through the journal (on SQLite, its own thread and connection): submissions made together
/// share transactions, yet a refused one fails alone, changes nothing, and the rest land,
/// also when a batch is cut into several scripts.
async fn the_journal_refuses_only_the_bad_submission_of_a_batch(store: Store) {
    let (w, t) = wf("one", "1ms");
    store.create_workflow(&w, &t).await.expect("create");
    let journal = engine::executor::Journal::start(store.clone(), None);
    let big = serde_json::json!({ "pad": "x".repeat(40_000) });
    let submissions = (0..40).map(|i| {
        let ops = match i % 10 {
            // The same id twice: refused after its first insert succeeded.
            3 => vec![
                new_run(&format!("bad-{i}"), big.clone(), &["a"]),
                new_run(&format!("bad-{i}"), serde_json::json!({}), &["a"]),
            ],
            7 => vec![new_run(&format!("good-{i}"), big.clone(), &["a"])],
            _ => vec![new_run(
                &format!("good-{i}"),
                serde_json::json!({ "i": i }),
                &["a"],
            )],
        };
        let journal = journal.clone();
        async move { (i, journal.commit(ops).await) }
    });
    let outcomes = futures::future::join_all(submissions).await;
    for (i, outcome) in outcomes {
        if i % 10 == 3 {
            assert!(outcome.is_err(), "submission {i} repeats a run id");
            assert!(matches!(
                store.run_detail(&format!("bad-{i}")).await,
                Err(StoreError::RunNotFound(_))
            ));
        } else {
            outcome.unwrap_or_else(|e| panic!("submission {i}: {e}"));
            let inputs = store
                .run_detail(&format!("good-{i}"))
                .await
                .expect("read")
                .inputs;
            assert_eq!(inputs.get("i").is_some(), i % 10 != 7, "{i}");
        }
    }
    // And what comes after lands too.
    journal
        .commit(vec![new_run("after", serde_json::json!({}), &["a"])])
        .await
        .expect("after");
    store.run_detail("after").await.expect("read");
}

/// Another connection holding SQLite's write lock: the journal's own connection waits for it
/// (the store's busy timeout) instead of failing, and commits once it is free.
#[tokio::test]
async fn the_journal_waits_for_another_writer_on_sqlite() {
    let db = support::sqlite().await;
    let store = db.store.clone();
    let (w, t) = wf("one", "1ms");
    store.create_workflow(&w, &t).await.expect("create");
    let path = store.file().expect("a SQLite file");
    let other = rusqlite::Connection::open(&path).expect("open");
    other
        .execute_batch("BEGIN IMMEDIATE; UPDATE workflows SET updated_at = updated_at;")
        .expect("take the write lock");
    let released = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = released.clone();
    let holder = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        flag.store(true, Ordering::SeqCst);
        other.execute_batch("COMMIT").expect("commit");
    });
    let journal = engine::executor::Journal::start(store.clone(), None);
    journal
        .commit(vec![new_run("waited", serde_json::json!({}), &["a"])])
        .await
        .expect("committed once the lock was free");
    assert!(
        released.load(Ordering::SeqCst),
        "the commit cannot have landed while the other writer held the lock"
    );
    holder.join().expect("holder");
    store.run_detail("waited").await.expect("read");
    db.cleanup().await;
}

/// Closing the journal, then the store, leaves everything in the database file itself: the
/// journal's own connection is gone, so the pool's last one checkpoints the WAL. A copy of
/// the file alone has the run; a commit after the close is refused.
#[tokio::test]
async fn a_closed_journal_leaves_its_commits_in_the_database_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("t.db");
    let store = Store::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    let (w, t) = wf("one", "1ms");
    store.create_workflow(&w, &t).await.expect("create");
    let journal = engine::executor::Journal::start(store.clone(), None);
    journal
        .commit(vec![new_run("kept", serde_json::json!({ "n": 1 }), &["a"])])
        .await
        .expect("commit");
    journal.close().await;
    assert!(
        journal
            .commit(vec![new_run("late", serde_json::json!({}), &["a"])])
            .await
            .is_err(),
        "a closed journal takes nothing more"
    );
    store.close().await;
    let copy = dir.path().join("copy.db");
    std::fs::copy(&path, &copy).expect("copy the file alone");
    let conn = rusqlite::Connection::open(&copy).expect("open the copy");
    let inputs: String = conn
        .query_row("SELECT inputs FROM runs WHERE id = 'kept'", [], |r| {
            r.get(0)
        })
        .expect("the run is in the file itself");
    assert_eq!(inputs, r#"{"n":1}"#);
}

/// A statement slower than sqlx's threshold (1 s) logs nothing: sqlx would write its whole
/// text, values and all, at WARN.
#[test]
fn a_slow_statement_is_not_logged_with_its_text() {
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::layer::SubscriberExt;
    #[derive(Clone, Default)]
    struct Seen(Arc<Mutex<Vec<String>>>);
    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Seen {
        fn on_event(
            &self,
            event: &tracing::Event<'_>,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            let target = event.metadata().target();
            if target == "sqlx::query" {
                self.0.lock().expect("seen").push(target.to_string());
            }
        }
    }
    let seen = Seen::default();
    let subscriber = tracing_subscriber::registry().with(seen.clone());
    tracing::subscriber::with_default(subscriber, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let db = support::postgres().await;
            engine::store::scratch::execute(&db.store, "SELECT pg_sleep(1.2), 'secret-value'")
                .await
                .expect("a slow statement");
            db.cleanup().await;
        });
    });
    let seen = seen.0.lock().expect("seen").clone();
    assert!(seen.is_empty(), "sqlx logged: {seen:?}");
}

async fn workflow_stats_count_days_rates_and_p95(store: Store) {
    let (w, t) = wf("one", "1ms");
    store.create_workflow(&w, &t).await.expect("create");
    let (w2, t2) = wf("idle", "1ms");
    store.create_workflow(&w2, &t2).await.expect("create");
    const DAY: i64 = 86_400_000;
    let now = 20_000 * DAY + DAY / 2; // noon UTC
                                      // A UUIDv7-shaped id created at `at`, as the engine makes them.
    let id = |at: i64, n: usize| format!("{}{:012x}", &id_floor(at)[..24], n);
    let mut ops = Vec::new();
    let mut run = |run_id: String, at: i64, ms: Option<i64>, status: RunStatus| {
        let mut create = new_run(&run_id, serde_json::json!({}), &[]);
        if let Op::CreateRun(r) = &mut create {
            r.created_at = at;
            r.parent_run_id = None;
        }
        ops.push(create);
        if let Some(ms) = ms {
            ops.push(Op::StartRun {
                run_id: run_id.clone(),
                at,
                trace: None,
            });
            ops.push(Op::FinishRun {
                run_id,
                status,
                error: None,
                at: at + ms,
                frees_slot: false,
                outputs: None,
                search: None,
            });
        }
    };
    // 20 finished runs today, 10..200 ms, the 5 longest failed.
    for k in 1..=20 {
        let status = if k > 15 {
            RunStatus::Failed
        } else {
            RunStatus::Succeeded
        };
        run(
            id(now - (21 - k as i64) * 1_800_000, k),
            now - (21 - k as i64) * 1_800_000,
            Some(k as i64 * 10),
            status,
        );
    }
    run(
        id(now - 3 * DAY, 100),
        now - 3 * DAY,
        Some(5),
        RunStatus::Succeeded,
    );
    run(id(now - 60_000, 101), now - 60_000, None, RunStatus::Queued);
    store.apply(&ops).await.expect("apply");

    let stats = store.workflow_stats(now, None).await.expect("stats");
    let one = &stats["one"];
    assert_eq!(
        one.last_status,
        Some(RunStatus::Queued),
        "the newest run, still queued"
    );
    assert_eq!((one.finished_24h, one.succeeded_24h), (20, 15));
    assert_eq!(one.p95_ms_24h, Some(190), "the 19th of 20 sorted run times");
    assert_eq!(one.runs_per_day, [0, 0, 0, 1, 0, 0, 21]);
    assert!(
        !stats.contains_key("idle"),
        "a workflow without runs has no stats"
    );
    // Asked for one workflow: the same figures, and nothing else.
    let only = store.workflow_stats(now, Some("one")).await.expect("stats");
    assert_eq!(only.len(), 1);
    assert_eq!(&only["one"], one);
    // A page of the list: the named workflows only (one `IN (…)` per query), unknown ids ignored.
    let page = store
        .workflow_stats_of(now, &["idle", "one", "missing"])
        .await
        .expect("stats");
    assert_eq!(page.len(), 1);
    assert_eq!(&page["one"], one);
    assert!(store
        .workflow_stats_of(now, &[])
        .await
        .expect("stats")
        .is_empty());
}
