//! Cron schedules and webhook deliveries: the small tables that let several processes on one
//! database fire each occurrence once and refuse a replayed webhook.

use super::{on_pool, Store, StoreError};

/// A schedule as stored: its next occurrence, shared by every process.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ScheduleRow {
    /// The workflow.
    pub workflow_id: String,
    /// Which of its triggers.
    pub trigger_index: i64,
    /// Schedule and zone, as the definition had them when `next_fire_at` was computed.
    pub spec: String,
    /// Its next occurrence (unix ms).
    pub next_fire_at: i64,
}

impl Store {
    /// `(id, latest_version)` of every workflow that is not archived.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "SELECT workflows", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "SELECT", db.collection.name = "workflows"))]
    pub async fn active_workflow_versions(&self) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as("SELECT id, latest_version FROM workflows WHERE archived_at IS NULL")
                .fetch_all(pool)
                .await?
        }))
    }

    /// Every schedule.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "SELECT schedules", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "SELECT", db.collection.name = "schedules"))]
    pub async fn schedules(&self) -> Result<Vec<ScheduleRow>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT workflow_id, trigger_index, spec, next_fire_at FROM schedules ORDER BY workflow_id, trigger_index",
            )
            .fetch_all(pool)
            .await?
        }))
    }

    /// Stores a new or edited schedule; an unchanged one (same spec) is left as it is, so a
    /// process that starts late does not move another's next occurrence.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "INSERT schedules", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "INSERT", db.collection.name = "schedules"))]
    pub async fn put_schedule(&self, row: &ScheduleRow) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO schedules (workflow_id, trigger_index, spec, next_fire_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (workflow_id, trigger_index) DO UPDATE
                 SET spec = excluded.spec, next_fire_at = excluded.next_fire_at
                 WHERE schedules.spec <> excluded.spec",
            )
            .bind(row.workflow_id.clone())
            .bind(row.trigger_index)
            .bind(row.spec.clone())
            .bind(row.next_fire_at)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Moves a schedule on without firing (its run could not start).
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "UPDATE schedules", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "UPDATE", db.collection.name = "schedules"))]
    pub async fn set_next_fire(
        &self,
        workflow_id: &str,
        trigger_index: i64,
        next_fire_at: i64,
    ) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("UPDATE schedules SET next_fire_at = $1 WHERE workflow_id = $2 AND trigger_index = $3")
                .bind(next_fire_at)
                .bind(workflow_id.to_string())
                .bind(trigger_index)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Forgets a schedule (its trigger was removed).
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "DELETE schedules", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "DELETE", db.collection.name = "schedules"))]
    pub async fn delete_schedule(
        &self,
        workflow_id: &str,
        trigger_index: i64,
    ) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("DELETE FROM schedules WHERE workflow_id = $1 AND trigger_index = $2")
                .bind(workflow_id.to_string())
                .bind(trigger_index)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Forgets fired occurrences and webhook signatures older than `before` (unix ms).
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "DELETE schedule_fires", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "DELETE", db.collection.name = "schedule_fires"))]
    pub async fn prune_trigger_records(&self, before: i64) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("DELETE FROM schedule_fires WHERE fire_at < $1")
                .bind(before)
                .execute(pool)
                .await?;
            // Only timestamped signatures: their timestamp is stale by now, so a replay is
            // refused anyway. Untimestamped ones are kept, or a replay would succeed later.
            sqlx::query("DELETE FROM webhook_deliveries WHERE received_at < $1 AND signature LIKE 't:%'")
                .bind(before)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Records that an alert is now `status`; true when that is news to announce: a firing
    /// alert not announced as firing, or the resolution of one that was. (A resolution of an
    /// alert never announced as firing is not news.) One statement each, so two replicas
    /// given the same notification announce it once.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "INSERT alert_announcements", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "INSERT", db.collection.name = "alert_announcements"))]
    pub async fn announce_alert(
        &self,
        group_key: &str,
        fingerprint: &str,
        status: &str,
        at: i64,
    ) -> Result<bool, StoreError> {
        let firing = status == "firing";
        let changed = on_pool!(self, pool => {
            let sql = if firing {
                "INSERT INTO alert_announcements (group_key, fingerprint, status, at) VALUES ($1, $2, 'firing', $3)
                 ON CONFLICT (group_key, fingerprint) DO UPDATE SET status = 'firing', at = excluded.at
                 WHERE alert_announcements.status <> 'firing'"
            } else {
                "UPDATE alert_announcements SET status = 'resolved', at = $3
                 WHERE group_key = $1 AND fingerprint = $2 AND status = 'firing'"
            };
            let changed = sqlx::query(sql)
                .bind(group_key.to_string())
                .bind(fingerprint.to_string())
                .bind(at)
                .execute(pool)
                .await?
                .rows_affected();
            if !firing {
                // Resolved a month ago: nothing will refer to it again.
                sqlx::query("DELETE FROM alert_announcements WHERE status = 'resolved' AND at < $1")
                    .bind(at - 30 * 24 * 3_600_000)
                    .execute(pool)
                    .await?;
            }
            changed
        });
        Ok(changed == 1)
    }

    /// Takes back [`Store::announce_alert`] when the announcement could not be made, so the
    /// next delivery of the same notification is news again.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "DELETE alert_announcements", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "DELETE", db.collection.name = "alert_announcements"))]
    pub async fn unannounce_alert(
        &self,
        group_key: &str,
        fingerprint: &str,
        status: &str,
    ) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            let sql = if status == "firing" {
                "DELETE FROM alert_announcements WHERE group_key = $1 AND fingerprint = $2 AND status = 'firing'"
            } else {
                "UPDATE alert_announcements SET status = 'firing'
                 WHERE group_key = $1 AND fingerprint = $2 AND status = 'resolved'"
            };
            sqlx::query(sql)
                .bind(group_key.to_string())
                .bind(fingerprint.to_string())
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Forgets a recorded signature whose delivery was refused after all.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "DELETE webhook_deliveries", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "DELETE", db.collection.name = "webhook_deliveries"))]
    pub async fn forget_delivery(&self, signature: &str) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("DELETE FROM webhook_deliveries WHERE signature = $1")
                .bind(signature.to_string())
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Records a webhook signature; `false` when it was seen before (a replay).
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "INSERT webhook_deliveries", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "INSERT", db.collection.name = "webhook_deliveries"))]
    pub async fn record_delivery(
        &self,
        signature: &str,
        workflow_id: &str,
        at: i64,
    ) -> Result<bool, StoreError> {
        let inserted = on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO webhook_deliveries (signature, workflow_id, received_at) VALUES ($1, $2, $3)
                 ON CONFLICT (signature) DO NOTHING",
            )
            .bind(signature.to_string())
            .bind(workflow_id.to_string())
            .bind(at)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(inserted == 1)
    }
}

/// The prefix of a recorded signature that was made over a timestamp (pruned once stale).
pub const TIMESTAMPED_DELIVERY: &str = "t:";

impl StoreError {
    /// A key was already taken: for [`super::Op::FireSchedule`], another process fired it.
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, StoreError::Database(sqlx::Error::Database(e)) if e.is_unique_violation())
    }
}
