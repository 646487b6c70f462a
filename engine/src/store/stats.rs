//! Aggregates over runs for the workflow list and page: last status, 24-hour success rate and
//! p95, runs per day. Each is one grouped query the database answers from the indexes; the
//! time windows are id ranges, because run ids are UUIDv7 and so sort by creation time.

use std::collections::HashMap;

use super::{on_pool, Store, StoreError};
use crate::records::{RunStatus, WorkflowStats};

const DAY_MS: i64 = 86_400_000;

/// The smallest UUIDv7 text created at or after `ms`: a lower bound for `id >=`.
pub fn id_floor(ms: i64) -> String {
    let ms = ms.max(0) as u64 & 0xFFFF_FFFF_FFFF;
    format!("{:08x}-{:04x}-0000-0000-000000000000", ms >> 16, ms & 0xFFFF)
}

impl Store {
    /// Stats of every workflow that has runs, keyed by workflow id, as of `now` (unix ms).
    pub async fn workflow_stats(&self, now: i64) -> Result<HashMap<String, WorkflowStats>, StoreError> {
        let day0 = now.div_euclid(DAY_MS) - 6;
        let week = id_floor(day0 * DAY_MS);
        let day = id_floor(now - DAY_MS);
        let mut out: HashMap<String, WorkflowStats> = HashMap::new();
        on_pool!(self, pool => {
            let last: Vec<(String, Option<String>)> = sqlx::query_as(
                "SELECT w.id, (SELECT r.status FROM runs r WHERE r.workflow_id = w.id ORDER BY r.id DESC LIMIT 1)
                 FROM workflows w",
            )
            .fetch_all(pool)
            .await?;
            for (id, status) in last {
                if let Some(s) = status {
                    out.entry(id).or_default().last_status = RunStatus::parse(&s);
                }
            }
            let per_day: Vec<(String, i64, i64)> = sqlx::query_as(
                "SELECT workflow_id, created_at / 86400000 AS day, COUNT(*) FROM runs WHERE id >= $1 GROUP BY workflow_id, created_at / 86400000",
            )
            .bind(week)
            .fetch_all(pool)
            .await?;
            for (id, d, n) in per_day {
                let i = d - day0;
                if (0..7).contains(&i) {
                    out.entry(id).or_default().runs_per_day[i as usize] += n;
                }
            }
            let rates: Vec<(String, i64, i64)> = sqlx::query_as(
                "SELECT workflow_id, COUNT(*), SUM(CASE WHEN status = 'succeeded' THEN 1 ELSE 0 END)
                 FROM runs WHERE id >= $1 AND finished_at IS NOT NULL GROUP BY workflow_id",
            )
            .bind(day.clone())
            .fetch_all(pool)
            .await?;
            for (id, n, ok) in rates {
                let s = out.entry(id).or_default();
                s.finished_24h = n;
                s.succeeded_24h = ok;
            }
            // Nearest rank: the ceil(0.95 n)-th shortest run time.
            let p95: Vec<(String, i64)> = sqlx::query_as(
                "SELECT workflow_id, dur FROM (
                     SELECT workflow_id, finished_at - started_at AS dur,
                            ROW_NUMBER() OVER (PARTITION BY workflow_id ORDER BY finished_at - started_at) AS rn,
                            COUNT(*) OVER (PARTITION BY workflow_id) AS n
                     FROM runs WHERE id >= $1 AND started_at IS NOT NULL AND finished_at IS NOT NULL
                 ) t WHERE rn = (n * 95 + 99) / 100",
            )
            .bind(day)
            .fetch_all(pool)
            .await?;
            for (id, dur) in p95 {
                out.entry(id).or_default().p95_ms_24h = Some(dur);
            }
        });
        Ok(out)
    }
}
