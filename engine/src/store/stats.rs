//! Aggregates over runs for the workflow list and page: last status, 24-hour success rate and
//! p95, runs per day. Two queries: the newest run of each workflow (an index lookup each),
//! and one range scan over the last 7 days of runs, aggregated here. The window is an id
//! range, because run ids are UUIDv7 and so sort by creation time.

use std::collections::HashMap;

use sqlx::AssertSqlSafe;

use super::{on_pool, Store, StoreError};
use crate::records::{RunStatus, WorkflowStats};

const DAY_MS: i64 = 86_400_000;

/// The smallest UUIDv7 text created at or after `ms`: a lower bound for `id >=`.
pub fn id_floor(ms: i64) -> String {
    let ms = ms.max(0) as u64 & 0xFFFF_FFFF_FFFF;
    format!(
        "{:08x}-{:04x}-0000-0000-000000000000",
        ms >> 16,
        ms & 0xFFFF
    )
}

impl Store {
    /// Stats of every workflow that has runs (or only of `only`), keyed by workflow id, as of
    /// `now` (unix ms).
    pub async fn workflow_stats(
        &self,
        now: i64,
        only: Option<&str>,
    ) -> Result<HashMap<String, WorkflowStats>, StoreError> {
        match only {
            Some(id) => self.workflow_stats_of(now, &[id]).await,
            None => self.stats_where(now, None).await,
        }
    }

    /// Stats of the workflows named, as of `now`: what one page of the list shows. An index
    /// range per workflow (`runs_by_workflow`), so the cost follows the page, not the table.
    pub async fn workflow_stats_of(
        &self,
        now: i64,
        ids: &[&str],
    ) -> Result<HashMap<String, WorkflowStats>, StoreError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        self.stats_where(now, Some(ids)).await
    }

    #[tracing::instrument(name = "db.query", skip_all, fields(otel.name = "SELECT runs", otel.kind = "client", db.system.name = self.backend().system_name(), db.operation.name = "SELECT", db.collection.name = "runs", db.query.text = "SELECT … FROM runs WHERE id >= ? (the last 7 days)"))]
    async fn stats_where(
        &self,
        now: i64,
        only: Option<&[&str]>,
    ) -> Result<HashMap<String, WorkflowStats>, StoreError> {
        let day0 = now.div_euclid(DAY_MS) - 6;
        let week = id_floor(day0 * DAY_MS);
        let since_24h = now - DAY_MS;
        let mut out: HashMap<String, WorkflowStats> = HashMap::new();
        on_pool!(self, pool => {
            // `IN (…)`: one numbered placeholder per id, from `$first`.
            let placeholders = |first: usize| {
                only.map(|ids| {
                    (first..first + ids.len()).map(|n| format!("${n}")).collect::<Vec<_>>().join(", ")
                })
            };
            let last_sql = format!(
                "SELECT w.id, (SELECT r.status FROM runs r WHERE r.workflow_id = w.id ORDER BY r.id DESC LIMIT 1)
                 FROM workflows w{}",
                placeholders(1).map(|l| format!(" WHERE w.id IN ({l})")).unwrap_or_default()
            );
            let mut last = sqlx::query_as::<_, (String, Option<String>)>(AssertSqlSafe(last_sql));
            for id in only.into_iter().flatten() {
                last = last.bind(*id);
            }
            for (id, status) in last.fetch_all(pool).await? {
                if let Some(s) = status {
                    out.entry(id).or_default().last_status = RunStatus::parse(&s);
                }
            }
            // One pass over the week's runs, a range of the primary key (ids sort by time);
            // grouping in SQL tempted SQLite into scanning every run through another index.
            let week_sql = format!(
                "SELECT workflow_id, created_at, status, started_at, finished_at FROM runs WHERE id >= $1{}",
                placeholders(2).map(|l| format!(" AND workflow_id IN ({l})")).unwrap_or_default()
            );
            let mut rows = sqlx::query_as::<_, (String, i64, String, Option<i64>, Option<i64>)>(AssertSqlSafe(week_sql))
                .bind(week);
            for id in only.into_iter().flatten() {
                rows = rows.bind(*id);
            }
            let rows = rows.fetch_all(pool).await?;
            let mut durations: HashMap<String, Vec<i64>> = HashMap::new();
            for (id, created, status, started, finished) in rows {
                let s = out.entry(id.clone()).or_default();
                let i = created.div_euclid(DAY_MS) - day0;
                if (0..7).contains(&i) {
                    s.runs_per_day[i as usize] += 1;
                }
                if created < since_24h {
                    continue;
                }
                if let Some(f) = finished {
                    s.finished_24h += 1;
                    s.succeeded_24h += i64::from(status == "succeeded");
                    if let Some(st) = started {
                        durations.entry(id).or_default().push(f - st);
                    }
                }
            }
            for (id, mut d) in durations {
                // Nearest rank: the ceil(0.95 n)-th shortest run time.
                d.sort_unstable();
                let rank = (d.len() * 95).div_ceil(100).max(1);
                out.entry(id).or_default().p95_ms_24h = Some(d[rank - 1]);
            }
        });
        Ok(out)
    }
}
