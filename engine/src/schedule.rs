//! Cron triggers: every process on a database runs a [`Scheduler`]; each occurrence fires
//! exactly once among them.
//!
//! - The next occurrence of every schedule is stored (`schedules`), so it survives restarts,
//!   and is computed in the schedule's own time zone (DST included).
//! - A run is created in one transaction with its occurrence's row in `schedule_fires`, whose
//!   key lets only the first process through (see [`Engine::trigger_scheduled`]).
//! - After downtime the missed occurrences fire as one late run, or every one of them (oldest
//!   first, at most [`MAX_CATCH_UP`]) when the trigger sets `catch_up: true`.
//! - A new or edited schedule starts from the next occurrence after now: saving never fires.
//!
//! [`Scheduler::tick`] takes the time as an argument: tests drive it with their own clock.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;

use crate::executor::{Engine, EngineError, Fire};
use crate::model::{CronDef, TriggerDef, Workflow};
use crate::store::ScheduleRow;

/// The most missed occurrences one schedule fires after downtime (with `catch_up`).
pub const MAX_CATCH_UP: usize = 100;

/// How often workflows are re-read for schedules saved by other processes (this process's
/// saves wake the scheduler at once).
pub const RESYNC: Duration = Duration::from_secs(15);

/// How long fired occurrences and webhook signatures are remembered.
const KEEP_RECORDS_MS: i64 = 7 * 24 * 3600 * 1000;

/// A parsed cron trigger.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: croner::Cron,
    tz: Tz,
    catch_up: bool,
    spec: String,
}

impl Schedule {
    /// A schedule from its definition; the reason when it does not parse.
    pub fn new(def: &CronDef) -> Result<Schedule, String> {
        let cron = croner::Cron::new(def.schedule())
            .with_seconds_optional()
            .parse()
            .map_err(|e| format!("\"{}\": {e}", def.schedule()))?;
        let tz: Tz = def
            .timezone()
            .parse()
            .map_err(|_| format!("unknown time zone \"{}\"", def.timezone()))?;
        Ok(Schedule {
            cron,
            tz,
            catch_up: def.catch_up(),
            spec: format!("{} @ {}", def.schedule().trim(), def.timezone()),
        })
    }

    /// The first occurrence strictly after `after_ms` (unix ms), if the schedule has one.
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        let at = self.tz.timestamp_millis_opt(after_ms).single()?;
        self.cron
            .find_next_occurrence(&at, false)
            .ok()
            .map(|t| t.timestamp_millis())
    }

    /// The next `n` occurrences after `after_ms`.
    pub fn upcoming(&self, after_ms: i64, n: usize) -> Vec<i64> {
        let mut out = Vec::with_capacity(n);
        let mut t = after_ms;
        while out.len() < n {
            match self.next_after(t) {
                Some(next) => {
                    out.push(next);
                    t = next;
                }
                None => break,
            }
        }
        out
    }

    /// The expression and zone, as stored with the next occurrence.
    pub fn spec(&self) -> &str {
        &self.spec
    }
}

/// The cron triggers of a workflow, by trigger index.
pub fn schedules_of(workflow: &Workflow) -> Vec<(i64, Result<Schedule, String>)> {
    workflow
        .def()
        .triggers
        .iter()
        .enumerate()
        .filter_map(|(i, t)| match t {
            TriggerDef::Cron(c) => Some((i as i64, Schedule::new(c))),
            _ => None,
        })
        .collect()
}

/// A time as the person reading it in that zone would write it: `2026-11-30 02:00 CET`.
pub fn format_in_zone(at_ms: i64, zone: &str) -> String {
    let tz: Tz = zone.parse().unwrap_or(Tz::UTC);
    match tz.timestamp_millis_opt(at_ms).single() {
        Some(t) => t.format("%a %Y-%m-%d %H:%M %Z").to_string(),
        None => DateTime::<Utc>::from_timestamp_millis(at_ms)
            .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_default(),
    }
}

/// What one [`Scheduler::tick`] did.
#[derive(Debug, Default)]
pub struct Tick {
    /// `(workflow id, run id, occurrence)` of each run this process started.
    pub fired: Vec<(String, String, i64)>,
    /// The earliest stored next occurrence: when the next tick is due.
    pub next_due: Option<i64>,
}

/// One process's view of the schedules.
pub struct Scheduler {
    engine: Engine,
    /// Cron triggers per workflow id, of the version they were read from.
    known: HashMap<String, (i64, Vec<(i64, Schedule)>)>,
    last_prune: i64,
}

impl Scheduler {
    /// A scheduler that triggers through `engine`.
    pub fn new(engine: Engine) -> Scheduler {
        Scheduler {
            engine,
            known: HashMap::new(),
            last_prune: 0,
        }
    }

    /// Brings the stored schedules in line with the latest versions, then fires what is due
    /// at `now` (unix ms).
    pub async fn tick(&mut self, now: i64) -> Result<Tick, EngineError> {
        let store = self.engine.store().clone();
        let versions = store.active_workflow_versions().await?;
        self.known
            .retain(|id, _| versions.iter().any(|(v_id, _)| v_id == id));
        for (id, version) in &versions {
            if self.known.get(id).is_some_and(|(v, _)| v == version) {
                continue;
            }
            let schedules = match store.version(id, Some(*version)).await {
                Ok(record) => schedules_of(&record.workflow)
                    .into_iter()
                    .filter_map(|(i, s)| match s {
                        Ok(s) => Some((i, s)),
                        Err(e) => {
                            tracing::warn!(workflow.id = %id, trigger = i, error = %e, "cron trigger not scheduled");
                            None
                        }
                    })
                    .collect(),
                Err(e) => {
                    tracing::warn!(workflow.id = %id, error = %e, "cannot read the workflow's schedules");
                    Vec::new()
                }
            };
            self.known.insert(id.clone(), (*version, schedules));
        }

        let stored: HashMap<(String, i64), ScheduleRow> = store
            .schedules()
            .await?
            .into_iter()
            .map(|r| ((r.workflow_id.clone(), r.trigger_index), r))
            .collect();
        for (key, row) in &stored {
            let wanted = self
                .known
                .get(&key.0)
                .is_some_and(|(_, s)| s.iter().any(|(i, _)| *i == key.1));
            if !wanted {
                store
                    .delete_schedule(&row.workflow_id, row.trigger_index)
                    .await?;
            }
        }

        let mut tick = Tick::default();
        for (id, (version, schedules)) in &self.known {
            for (index, schedule) in schedules {
                let Some(row) = stored
                    .get(&(id.clone(), *index))
                    .filter(|r| r.spec == schedule.spec)
                else {
                    // New or edited: the first occurrence after now.
                    if let Some(next) = schedule.next_after(now) {
                        store
                            .put_schedule(&ScheduleRow {
                                workflow_id: id.clone(),
                                trigger_index: *index,
                                spec: schedule.spec.clone(),
                                next_fire_at: next,
                            })
                            .await?;
                        tick.next_due = Some(tick.next_due.map_or(next, |d| d.min(next)));
                    }
                    continue;
                };
                if row.next_fire_at > now {
                    let next = row.next_fire_at;
                    tick.next_due = Some(tick.next_due.map_or(next, |d| d.min(next)));
                    continue;
                }
                let next = schedule.next_after(now).unwrap_or(i64::MAX);
                for fire_at in due(schedule, row.next_fire_at, now) {
                    let fire = Fire {
                        trigger_index: *index,
                        fire_at,
                        next_fire_at: next,
                    };
                    match self.engine.trigger_scheduled(id, *version, fire).await {
                        Ok(run) => {
                            tracing::info!(workflow.id = %id, workflow.run.id = %run.id, occurrence = fire_at, "cron trigger fired");
                            tick.fired.push((id.clone(), run.id, fire_at));
                        }
                        Err(EngineError::AlreadyFired) => {}
                        Err(EngineError::Paused(_)) => {
                            // A paused workflow's occurrences pass; resuming fires the next.
                            tracing::info!(workflow.id = %id, occurrence = fire_at, "cron occurrence skipped: the workflow is paused");
                            store.set_next_fire(id, *index, next).await?;
                        }
                        Err(EngineError::InvalidInputs(problems)) => {
                            // The run cannot start: move on rather than retry forever.
                            tracing::error!(workflow.id = %id, ?problems, "a scheduled run cannot start: its inputs need values without defaults");
                            store.set_next_fire(id, *index, next).await?;
                        }
                        Err(e) => return Err(e),
                    }
                }
                tick.next_due = Some(tick.next_due.map_or(next, |d| d.min(next)));
            }
        }

        if now - self.last_prune > 3600 * 1000 {
            store.prune_trigger_records(now - KEEP_RECORDS_MS).await?;
            self.last_prune = now;
        }
        Ok(tick)
    }

    /// Ticks on the wall clock until `stop` is cancelled: at each stored occurrence, when this
    /// process saves a workflow, and at least every [`RESYNC`] (for other processes' saves).
    pub async fn run(mut self, stop: tokio_util::sync::CancellationToken) {
        loop {
            let now = crate::store::now_ms();
            let wait = match self.tick(now).await {
                Ok(t) => t
                    .next_due
                    .map(|d| Duration::from_millis((d - now).max(0) as u64))
                    .unwrap_or(RESYNC)
                    .min(RESYNC),
                Err(e) => {
                    tracing::warn!(error = %e, "the scheduler could not read or fire schedules; trying again");
                    RESYNC
                }
            };
            let store = self.engine.store().clone();
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
                // A workflow saved here: its schedule (and next fire times) count from now.
                _ = store.workflows_changed() => {}
            }
        }
    }
}

/// The occurrences to fire for a schedule whose stored next occurrence `from` is due: `from`
/// alone (the missed ones become one late run), or with `catch_up` every occurrence up to
/// `now`, oldest first, at most [`MAX_CATCH_UP`].
fn due(schedule: &Schedule, from: i64, now: i64) -> Vec<i64> {
    let mut all = vec![from];
    if !schedule.catch_up {
        return all;
    }
    while all.len() < MAX_CATCH_UP {
        match schedule
            .next_after(all[all.len() - 1])
            .filter(|n| *n <= now)
        {
            Some(next) => all.push(next),
            None => break,
        }
    }
    all
}
