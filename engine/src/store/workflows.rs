//! Workflows and their versions: every save is a new immutable row in `workflow_versions`.
//!
//! Saving bumps `workflows.latest_version` with `UPDATE … RETURNING` inside the transaction
//! that inserts the version, so two racing saves are serialised by the row lock (PostgreSQL)
//! or the write lock (SQLite) and both become versions; neither is lost.

use super::{now_ms, on_pool, Store, StoreError};
use crate::examples::EXAMPLES;
use crate::model::{Problem, Workflow};
use crate::records::{VersionInfo, WorkflowSummary};

/// A whole stored version: the exact text saved and its validated form.
#[derive(Debug, Clone)]
pub struct VersionRecord {
    /// Its workflow, number and time.
    pub info: VersionInfo,
    /// The document exactly as saved (export returns these bytes).
    pub source: String,
    /// Its validated form.
    pub workflow: Workflow,
}

#[derive(sqlx::FromRow)]
struct SummaryRow {
    id: String,
    name: String,
    description: Option<String>,
    tags: String,
    latest_version: i64,
    created_at: i64,
    updated_at: i64,
    archived_at: Option<i64>,
    paused_at: Option<i64>,
}

impl From<SummaryRow> for WorkflowSummary {
    fn from(r: SummaryRow) -> Self {
        WorkflowSummary {
            id: r.id,
            name: r.name,
            description: r.description,
            // Written by this module from a Vec<String>; an unreadable value shows as no tags.
            tags: serde_json::from_str(&r.tags).unwrap_or_default(),
            latest_version: r.latest_version,
            created_at: r.created_at,
            updated_at: r.updated_at,
            archived_at: r.archived_at,
            paused_at: r.paused_at,
        }
    }
}

#[derive(sqlx::FromRow)]
struct VersionRow {
    workflow_id: String,
    version: i64,
    created_at: i64,
    source: String,
}

impl TryFrom<VersionRow> for VersionRecord {
    type Error = StoreError;
    fn try_from(r: VersionRow) -> Result<Self, StoreError> {
        let workflow = Workflow::parse(&r.source).map_err(|problems| StoreError::Unreadable {
            id: r.workflow_id.clone(),
            version: r.version,
            problems,
        })?;
        Ok(VersionRecord {
            info: VersionInfo {
                workflow_id: r.workflow_id,
                version: r.version,
                created_at: r.created_at,
            },
            source: r.source,
            workflow,
        })
    }
}

/// The workflow-list query with a literal tail (`WHERE …`, `ORDER BY …`), kept `'static`.
macro_rules! summary_sql {
    ($tail:literal) => {
        concat!(
            "SELECT id, name, description, tags, latest_version, created_at, updated_at, archived_at, paused_at FROM workflows",
            $tail
        )
    };
}

fn tags_json(workflow: &Workflow) -> String {
    serde_json::to_string(&workflow.def().tags).unwrap_or_else(|_| "[]".into())
}

impl Store {
    /// Every workflow, by id; archived ones only when asked.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "SELECT workflows", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "SELECT", db.collection.name = "workflows", db.query.text = "SELECT … FROM workflows WHERE archived = ?"))]
    pub async fn list_workflows(
        &self,
        include_archived: bool,
    ) -> Result<Vec<WorkflowSummary>, StoreError> {
        let rows: Vec<SummaryRow> = on_pool!(self, pool => {
            if include_archived {
                sqlx::query_as(summary_sql!(" ORDER BY id")).fetch_all(pool).await?
            } else {
                sqlx::query_as(summary_sql!(" WHERE archived_at IS NULL ORDER BY id"))
                    .fetch_all(pool)
                    .await?
            }
        });
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// One workflow's summary, archived or not.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "SELECT workflows", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "SELECT", db.collection.name = "workflows", db.query.text = "SELECT … FROM workflows WHERE id = ?"))]
    pub async fn workflow(&self, id: &str) -> Result<WorkflowSummary, StoreError> {
        let row: Option<SummaryRow> = on_pool!(self, pool => {
            sqlx::query_as(summary_sql!(" WHERE id = $1"))
                .bind(id.to_string())
                .fetch_optional(pool)
                .await?
        });
        row.map(Into::into)
            .ok_or_else(|| StoreError::NotFound(id.to_string()))
    }

    /// Creates a workflow with version 1; `AlreadyExists` if the id is taken (even archived).
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "INSERT workflows", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "INSERT", db.collection.name = "workflows", db.query.text = "INSERT INTO workflows …; INSERT INTO workflow_versions …"))]
    pub async fn create_workflow(
        &self,
        workflow: &Workflow,
        source: &str,
    ) -> Result<VersionInfo, StoreError> {
        self.check_calls(workflow).await?;
        let now = now_ms();
        let id = workflow.id().to_string();
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let inserted = sqlx::query(
                "INSERT INTO workflows (id, name, description, tags, latest_version, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, 1, $5, $5) ON CONFLICT (id) DO NOTHING",
            )
            .bind(id.clone())
            .bind(workflow.name().to_string())
            .bind(workflow.def().description.clone())
            .bind(tags_json(workflow))
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if inserted.rows_affected() == 0 {
                return Err(StoreError::AlreadyExists(id));
            }
            sqlx::query("INSERT INTO workflow_versions (workflow_id, version, source, created_at) VALUES ($1, 1, $2, $3)")
                .bind(id.clone())
                .bind(source.to_string())
                .bind(now)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        self.mark_changed();
        Ok(VersionInfo {
            workflow_id: id,
            version: 1,
            created_at: now,
        })
    }

    /// Saves a new version of an existing workflow and makes it the latest.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "INSERT workflow_versions", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "INSERT", db.collection.name = "workflow_versions", db.query.text = "UPDATE workflows … RETURNING latest_version; INSERT INTO workflow_versions …"))]
    pub async fn save_version(
        &self,
        workflow: &Workflow,
        source: &str,
    ) -> Result<VersionInfo, StoreError> {
        self.check_calls(workflow).await?;
        let now = now_ms();
        let id = workflow.id().to_string();
        let version: i64 = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let version: Option<i64> = sqlx::query_scalar(
                "UPDATE workflows SET latest_version = latest_version + 1, name = $2, description = $3,
                        tags = $4, updated_at = $5
                 WHERE id = $1 RETURNING latest_version",
            )
            .bind(id.clone())
            .bind(workflow.name().to_string())
            .bind(workflow.def().description.clone())
            .bind(tags_json(workflow))
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(version) = version else {
                return Err(StoreError::NotFound(id));
            };
            sqlx::query("INSERT INTO workflow_versions (workflow_id, version, source, created_at) VALUES ($1, $2, $3, $4)")
                .bind(id.clone())
                .bind(version)
                .bind(source.to_string())
                .bind(now)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            version
        });
        self.mark_changed();
        Ok(VersionInfo {
            workflow_id: id,
            version,
            created_at: now,
        })
    }

    /// Every version of a workflow, newest first.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "SELECT workflow_versions", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "SELECT", db.collection.name = "workflow_versions", db.query.text = "SELECT … FROM workflow_versions WHERE workflow_id = ?"))]
    pub async fn list_versions(&self, id: &str) -> Result<Vec<VersionInfo>, StoreError> {
        let rows: Vec<VersionInfo> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT workflow_id, version, created_at FROM workflow_versions WHERE workflow_id = $1 ORDER BY version DESC",
            )
            .bind(id.to_string())
            .fetch_all(pool)
            .await?
        });
        if rows.is_empty() {
            // Distinguish "no such workflow" from an impossible empty history.
            self.workflow(id).await?;
        }
        Ok(rows)
    }

    /// One version, or the latest when `version` is `None`.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "SELECT workflow_versions", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "SELECT", db.collection.name = "workflow_versions", db.query.text = "SELECT … FROM workflow_versions WHERE workflow_id = ? AND version = ?"))]
    pub async fn version(
        &self,
        id: &str,
        version: Option<i64>,
    ) -> Result<VersionRecord, StoreError> {
        let row: Option<VersionRow> = on_pool!(self, pool => {
            match version {
                Some(v) => sqlx::query_as(
                    "SELECT workflow_id, version, created_at, source FROM workflow_versions WHERE workflow_id = $1 AND version = $2",
                )
                .bind(id.to_string())
                .bind(v)
                .fetch_optional(pool)
                .await?,
                None => sqlx::query_as(
                    "SELECT v.workflow_id, v.version, v.created_at, v.source FROM workflow_versions v
                     JOIN workflows w ON w.id = v.workflow_id AND w.latest_version = v.version
                     WHERE w.id = $1",
                )
                .bind(id.to_string())
                .fetch_optional(pool)
                .await?,
            }
        });
        match (row, version) {
            (Some(row), _) => row.try_into(),
            (None, None) => Err(StoreError::NotFound(id.to_string())),
            (None, Some(v)) => {
                self.workflow(id).await?;
                Err(StoreError::VersionNotFound {
                    id: id.to_string(),
                    version: v,
                })
            }
        }
    }

    /// The latest version number of a workflow: a one-row read, where [`Store::version`]
    /// also reads and parses the source (a trigger finds the definition in the engine's cache).
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "SELECT workflows", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "SELECT", db.collection.name = "workflows"))]
    pub async fn latest_version(&self, id: &str) -> Result<i64, StoreError> {
        Ok(self.trigger_state(id).await?.0)
    }

    /// A workflow's latest version and whether its triggers are paused: what a trigger reads,
    /// in one query.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "SELECT workflows", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "SELECT", db.collection.name = "workflows"))]
    pub async fn trigger_state(&self, id: &str) -> Result<(i64, bool), StoreError> {
        let row: Option<(i64, Option<i64>)> = on_pool!(self, pool => {
            sqlx::query_as("SELECT latest_version, paused_at FROM workflows WHERE id = $1")
                .bind(id.to_string())
                .fetch_optional(pool)
                .await?
        });
        row.map(|(latest, paused)| (latest, paused.is_some()))
            .ok_or_else(|| StoreError::NotFound(id.to_string()))
    }

    /// Pauses (`true`) or resumes (`false`) a workflow's triggers.
    pub async fn set_paused(&self, id: &str, paused: bool) -> Result<WorkflowSummary, StoreError> {
        self.set_since(
            id,
            "UPDATE workflows SET paused_at = $2 WHERE id = $1",
            paused,
        )
        .await
    }

    /// Hides (`true`) or restores (`false`) a workflow; its versions and runs are kept.
    pub async fn set_archived(
        &self,
        id: &str,
        archived: bool,
    ) -> Result<WorkflowSummary, StoreError> {
        self.set_since(
            id,
            "UPDATE workflows SET archived_at = $2 WHERE id = $1",
            archived,
        )
        .await
    }

    /// Sets a workflow's `…_at` column (`update`) to now, or clears it; its summary after.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "UPDATE workflows", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "UPDATE", db.collection.name = "workflows"))]
    async fn set_since(
        &self,
        id: &str,
        update: &'static str,
        on: bool,
    ) -> Result<WorkflowSummary, StoreError> {
        let at = on.then(now_ms);
        let updated = on_pool!(self, pool => {
            sqlx::query(update)
                .bind(id.to_string())
                .bind(at)
                .execute(pool)
                .await?
                .rows_affected()
        });
        if updated == 0 {
            return Err(StoreError::NotFound(id.to_string()));
        }
        self.mark_changed();
        self.workflow(id).await
    }

    /// Deletes a workflow with its versions, its runs and all recorded of them (steps,
    /// attempts, items, offers), its schedules and webhook deliveries: the number of runs
    /// deleted. Refused while one of its runs is not finished (cancel them first), so no
    /// driver is left writing to rows that are gone.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "DELETE workflows", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "DELETE", db.collection.name = "workflows"))]
    pub async fn delete_workflow(&self, id: &str) -> Result<i64, StoreError> {
        const OF_ITS_RUNS: &str = "run_id IN (SELECT id FROM runs WHERE workflow_id = $1)";
        let deletes = [
            format!("DELETE FROM run_labels WHERE {OF_ITS_RUNS}"),
            format!("DELETE FROM run_search WHERE {OF_ITS_RUNS}"),
            format!("DELETE FROM step_items WHERE {OF_ITS_RUNS}"),
            format!("DELETE FROM step_offers WHERE {OF_ITS_RUNS}"),
            format!("DELETE FROM waits WHERE {OF_ITS_RUNS}"),
            format!("DELETE FROM step_attempts WHERE {OF_ITS_RUNS}"),
            format!("DELETE FROM run_steps WHERE {OF_ITS_RUNS}"),
            "DELETE FROM schedule_fires WHERE workflow_id = $1".to_string(),
            "DELETE FROM schedules WHERE workflow_id = $1".to_string(),
            "DELETE FROM webhook_deliveries WHERE workflow_id = $1".to_string(),
            "DELETE FROM runs WHERE workflow_id = $1".to_string(),
            "DELETE FROM workflow_versions WHERE workflow_id = $1".to_string(),
            "DELETE FROM workflows WHERE id = $1".to_string(),
        ];
        let runs = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let (found, open, runs): (i64, i64, i64) = sqlx::query_as(
                "SELECT (SELECT COUNT(*) FROM workflows WHERE id = $1), \
                 (SELECT COUNT(*) FROM runs WHERE workflow_id = $1 AND status IN ('queued', 'running', 'waiting', 'paused')), \
                 (SELECT COUNT(*) FROM runs WHERE workflow_id = $1)",
            )
            .bind(id.to_string())
            .fetch_one(&mut *tx)
            .await?;
            if found == 0 {
                return Err(StoreError::NotFound(id.to_string()));
            }
            if open > 0 {
                return Err(StoreError::Refused(format!(
                    "{open} runs of \"{id}\" are not finished: cancel them, then delete it"
                )));
            }
            for sql in &deletes {
                sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                    .bind(id.to_string())
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            runs
        });
        self.mark_changed();
        Ok(runs)
    }

    /// Loads the example workflows into an empty database; returns how many were created.
    pub async fn seed_examples(&self) -> Result<usize, StoreError> {
        let count: i64 = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM workflows").fetch_one(pool).await?
        });
        if count > 0 {
            return Ok(0);
        }
        let mut created = 0;
        for (file, source) in EXAMPLES {
            let workflow = Workflow::parse(source).map_err(|problems| StoreError::Unreadable {
                id: (*file).to_string(),
                version: 0,
                problems,
            })?;
            match self.create_workflow(&workflow, source).await {
                Ok(_) => created += 1,
                // Another replica seeded it at the same moment: fine.
                Err(StoreError::AlreadyExists(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(created)
    }
}

/// Workflows a call-cycle check reads at most: past them a hostile hub could make a save
/// slow; a chain that long is refused as if it were a cycle.
const MAX_CALL_GRAPH: usize = 1_000;

impl Store {
    /// Refuses `workflow` when its `workflow` steps reach it again through the latest
    /// versions of stored workflows (a run would call itself for ever; the depth limit would
    /// stop it, but only after a pile of runs). Versions pinned with `version:` are followed
    /// as pinned.
    async fn check_calls(&self, workflow: &Workflow) -> Result<(), StoreError> {
        let calls = |steps: &[crate::model::StepDef]| -> Vec<(String, Option<i64>, String)> {
            steps
                .iter()
                .filter(|s| s.agent == "workflow")
                .filter_map(|s| {
                    let id = s.with.get("workflow")?.as_str()?.to_string();
                    let v = s.with.get("version").and_then(serde_json::Value::as_i64);
                    Some((id, v, s.id.clone()))
                })
                .collect()
        };
        let first = calls(workflow.steps());
        for (callee, version, step) in first {
            // Depth-first from the callee, with the path that led there.
            let mut stack = vec![(callee.clone(), version, vec![callee.clone()])];
            let mut seen = std::collections::HashSet::new();
            while let Some((id, version, path)) = stack.pop() {
                if id == workflow.id() {
                    let at = workflow
                        .steps()
                        .iter()
                        .position(|s| s.id == step)
                        .unwrap_or(0);
                    return Err(StoreError::CallCycle(vec![Problem::new(
                        format!("steps[{at}].with.workflow"),
                        format!(
                            "calls {} → {}: a run would call itself through these workflows",
                            workflow.id(),
                            path.join(" → ")
                        ),
                    )]));
                }
                if !seen.insert((id.clone(), version)) {
                    continue;
                }
                if seen.len() > MAX_CALL_GRAPH {
                    return Err(StoreError::Refused(format!(
                        "step \"{step}\" calls more than {MAX_CALL_GRAPH} workflows deep or wide; \
                         cannot check it for cycles"
                    )));
                }
                // A workflow not stored (yet), or one that no longer parses, calls nothing.
                let Ok(record) = self.version(&id, version).await else {
                    continue;
                };
                for (next, v, _) in calls(record.workflow.steps()) {
                    let mut p = path.clone();
                    p.push(next.clone());
                    stack.push((next, v, p));
                }
            }
        }
        Ok(())
    }
}
