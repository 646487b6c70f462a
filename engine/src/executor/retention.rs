//! Retention: finished runs deleted once their workflow's `retention:` (each limit unset there:
//! the server's default) lets them go. A pass walks every workflow and deletes in batches,
//! pausing between them so the runs' own commits are never held up for long; on SQLite the
//! freed pages then go back to the file system, a slice at a time.

use std::time::Duration;

use super::{run::now_ms, Engine, EngineError};
use crate::model::{parse_duration, RetentionDef};
use crate::store::PruneRule;

/// The server's retention defaults and how pruning paces itself.
#[derive(Debug, Clone, PartialEq)]
pub struct RetentionConfig {
    /// Finished runs older than this go (`FLOWSCOPE_RETENTION_MAX_AGE`).
    pub max_age: Option<Duration>,
    /// Only this many of a workflow's newest runs stay (`FLOWSCOPE_RETENTION_MAX_RUNS`).
    pub max_runs: Option<u64>,
    /// Failed runs stay this long whatever the other two say (`FLOWSCOPE_RETENTION_KEEP_FAILED`).
    pub keep_failed: Option<Duration>,
    /// Time between passes; zero: no pass (`FLOWSCOPE_RETENTION_EVERY`).
    pub every: Duration,
    /// Runs deleted in one transaction.
    pub batch: i64,
    /// Rest between two batches.
    pub pause: Duration,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            max_age: None,
            max_runs: None,
            keep_failed: None,
            every: Duration::from_secs(600),
            batch: 500,
            pause: Duration::from_millis(5),
        }
    }
}

/// Free pages given back to the file system at a time (SQLite), 4 KiB each.
const VACUUM_PAGES: i64 = 2_000;

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Runs deleted.
    pub runs: u64,
    /// Workflows that have a limit.
    pub workflows: usize,
}

/// The cut-offs of `def` over `defaults`, as of `now` (unix ms).
fn rule_of(def: Option<&RetentionDef>, defaults: &RetentionConfig, now: i64) -> PruneRule {
    let duration = |text: Option<&String>, default: Option<Duration>| {
        text.and_then(|t| parse_duration(t).ok()).or(default)
    };
    let ago = |d: Duration| now.saturating_sub(d.as_millis().min(i64::MAX as u128) as i64);
    PruneRule {
        created_before: duration(def.and_then(|d| d.max_age.as_ref()), defaults.max_age).map(ago),
        max_runs: def.and_then(|d| d.max_runs).or(defaults.max_runs),
        keep_failed_since: duration(
            def.and_then(|d| d.keep_failed.as_ref()),
            defaults.keep_failed,
        )
        .map(ago),
    }
}

impl Engine {
    /// One pass over every workflow (archived ones too), as of `now` (unix ms): deletes the
    /// finished runs their limits let go.
    pub async fn prune(&self, now: i64) -> Result<Pruned, EngineError> {
        let config = &self.inner.retention;
        let store = &self.inner.store;
        let mut done = Pruned::default();
        for summary in store.list_workflows(true).await? {
            // The latest version's limits: the workflow as it is now.
            let def = match self.workflow(&summary.id, summary.latest_version).await {
                Ok(w) => w.def().retention.clone(),
                Err(_) => None,
            };
            let rule = rule_of(def.as_ref(), config, now);
            if rule.created_before.is_none() && rule.max_runs.is_none() {
                continue;
            }
            done.workflows += 1;
            let mut after: Option<String> = None;
            loop {
                if self.inner.halt.is_cancelled() {
                    return Ok(done);
                }
                let batch = store
                    .prune_runs(&summary.id, rule, config.batch, after.as_deref())
                    .await?;
                done.runs += batch.deleted as u64;
                self.inner.metrics.runs_pruned.inc_by(batch.deleted as u64);
                if (batch.scanned as i64) < config.batch {
                    break;
                }
                after = batch.last;
                tokio::time::sleep(config.pause).await;
            }
        }
        if done.runs > 0 {
            // A slice at a time: each takes the write lock only briefly.
            let (_, mut free) = store.database_bytes().await?;
            while free > 0 && !self.inner.halt.is_cancelled() {
                store.give_back_space(VACUUM_PAGES).await?;
                let (_, left) = store.database_bytes().await?;
                // No auto-vacuum (an older file): nothing goes back; stop.
                if left >= free {
                    break;
                }
                free = left;
                tokio::time::sleep(config.pause).await;
            }
        }
        Ok(done)
    }

    /// Prunes every `every`, the first pass a minute after start (the engine's own start-up
    /// comes first).
    pub(super) fn start_pruning(&self) {
        let every = self.inner.retention.every;
        if every.is_zero() {
            return;
        }
        let engine = self.clone();
        tokio::spawn(async move {
            let halt = engine.inner.halt.clone();
            let mut wait = every.min(Duration::from_secs(60));
            loop {
                tokio::select! {
                    _ = halt.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
                wait = every;
                match engine.prune(now_ms()).await {
                    Ok(p) if p.runs > 0 => {
                        tracing::info!(
                            runs = p.runs,
                            workflows = p.workflows,
                            "retention deleted finished runs"
                        )
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "retention pass failed; trying again next time")
                    }
                }
            }
        });
    }

    /// Builds SQLite's search index from the run texts written since, every 250 ms (at once
    /// again while there is a backlog): a batch a transaction, off the runs' commits.
    pub(super) fn start_indexing(&self) {
        if self.inner.store.backend() != crate::store::Backend::Sqlite {
            return;
        }
        const BATCH: i64 = 2_000;
        let engine = self.clone();
        tokio::spawn(async move {
            let halt = engine.inner.halt.clone();
            let mut wait = Duration::from_millis(250);
            loop {
                tokio::select! {
                    _ = halt.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
                wait = match engine.inner.store.index_search_texts(BATCH).await {
                    Ok(n) if n as i64 == BATCH => Duration::from_millis(5),
                    Ok(_) => Duration::from_millis(250),
                    Err(e) => {
                        tracing::warn!(error = %e, "search index not built; trying again");
                        Duration::from_secs(5)
                    }
                };
            }
        });
    }

    /// The server's retention defaults.
    pub fn retention(&self) -> &RetentionConfig {
        &self.inner.retention
    }

    /// Reads the database's size into its gauges (before each scrape).
    pub(super) async fn measure_database(&self) -> Result<(), EngineError> {
        let (size, free) = self.inner.store.database_bytes().await?;
        self.inner.metrics.database_size.set(size);
        self.inner.metrics.database_free.set(free);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workflows_limits_override_the_defaults_one_by_one() {
        let defaults = RetentionConfig {
            max_age: Some(Duration::from_secs(100)),
            max_runs: Some(10),
            keep_failed: None,
            ..RetentionConfig::default()
        };
        let now = 1_000_000;
        assert_eq!(
            rule_of(None, &defaults, now),
            PruneRule {
                created_before: Some(900_000),
                max_runs: Some(10),
                keep_failed_since: None,
            }
        );
        let def = RetentionDef {
            max_age: None,
            max_runs: Some(3),
            keep_failed: Some("5s".into()),
        };
        assert_eq!(
            rule_of(Some(&def), &defaults, now),
            PruneRule {
                created_before: Some(900_000),
                max_runs: Some(3),
                keep_failed_since: Some(995_000),
            }
        );
    }
}
