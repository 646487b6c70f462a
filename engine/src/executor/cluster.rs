//! Being one of several processes on one PostgreSQL database (`store::cluster` has the SQL).
//!
//! - **Claiming.** New runs are committed unclaimed; a claim loop takes batches of them
//!   (`FOR UPDATE SKIP LOCKED`) while this process has room, woken by `NOTIFY` and, as a
//!   fallback, every [`WorkerConfig::poll`]. The run is the unit of ownership: its steps run
//!   where it runs, so a step still costs one commit and no claim of its own, unless the
//!   owner has no free step slot, when the step is offered to the others (`offers.rs`). A process
//!   that is the only live worker creates runs already claimed by itself (no wake-up, no
//!   claim query); a worker that joins announces itself, and claims take over at once.
//! - **Leases.** A heartbeat renews this worker's lease every quarter of it; the same tick
//!   takes over runs of workers whose lease expired and picks up cancels it missed. A worker
//!   that finds its own lease expired gives up its runs (others may hold them now) and joins
//!   again under a new id; the fence on every commit refuses whatever it still tries to write.
//! - **Steps** a run's owner has no slot for are offered to the others (`offers.rs`).
//! - **Events** of this process's runs are sent to the others' live pages, batched.
//! - **Shutdown** stops claiming, lets in-flight steps finish within a grace period, and
//!   releases the rest for the others at once.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{lock, Engine};
use crate::records::Event;
use crate::store::cluster::{
    CANCEL_CHANNEL, EVENTS_CHANNEL, RUNS_CHANNEL, STEPS_CHANNEL, STEP_DONE_CHANNEL, WORKERS_CHANNEL,
};
use crate::store::now_ms;

/// How this process takes part.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Shown in the workers list: `host:pid` unless set.
    pub name: String,
    /// `serve` (UI, API and worker) or `worker`.
    pub kind: &'static str,
    /// A worker silent this long is dead and its runs are taken over.
    pub lease: Duration,
    /// Runs this process holds at once; beyond it, it stops claiming.
    pub max_runs: usize,
    /// How often to look for work when no notification arrives.
    pub poll: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            name: default_name(),
            kind: "serve",
            lease: Duration::from_secs(15),
            max_runs: 1000,
            poll: Duration::from_secs(1),
        }
    }
}

fn default_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    format!("{host}:{}", std::process::id())
}

/// Runs claimed per query.
const CLAIM_BATCH: usize = 64;
/// Largest `NOTIFY` payload sent (PostgreSQL's limit is 8000 bytes).
const MAX_PAYLOAD: usize = 7000;

/// This process's part in the cluster.
pub(super) struct Cluster {
    pub(super) config: WorkerConfig,
    /// The worker id claims and the commit fence use; replaced when the lease was lost.
    pub(super) me: Arc<std::sync::RwLock<Arc<str>>>,
    /// Wakes the claim loop.
    pub(super) wake: tokio::sync::Notify,
    /// Set while the claim loop found no room: a finishing run wakes it.
    pub(super) full: std::sync::atomic::AtomicBool,
    /// Set while this is the only live worker: it runs the runs it creates itself, and
    /// forwards no live events.
    pub(super) alone: std::sync::atomic::AtomicBool,
    /// Counts what may have made this process not alone (a worker announcing itself, a lost
    /// notification connection): a heartbeat's count read across one of them is stale.
    pub(super) joins: std::sync::atomic::AtomicU64,
    /// Stops claiming (shutdown).
    pub(super) stop: CancellationToken,
    /// Tells drivers to start no more steps (shutdown).
    pub(super) drain: CancellationToken,
    /// Drops every local driver without recording anything: the runs are someone else's now.
    pub(super) abandon: std::sync::Mutex<CancellationToken>,
    /// Ends the heartbeat and listener once the runs are released.
    pub(super) halt: CancellationToken,
    /// Local events on their way to the other processes.
    pub(super) outbox: mpsc::UnboundedSender<Event>,
    /// Wakes the loop that claims offered steps.
    pub(super) steps_wake: tokio::sync::Notify,
    /// Runs with offered steps, woken when another worker reports one's result.
    pub(super) step_done: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Notify>>>,
    /// Steps this process runs for others' runs, by run id: what a cancel stops.
    pub(super) claimed: std::sync::Mutex<HashMap<String, Vec<(u64, CancellationToken)>>>,
    pub(super) claim_ids: std::sync::atomic::AtomicU64,
    /// [`WorkerConfig::name`], recorded with every attempt this process starts.
    pub(super) name: Arc<str>,
}

/// The id in events sent to others, so a process skips its own.
#[derive(serde::Serialize, serde::Deserialize)]
struct Envelope {
    from: String,
    events: Vec<Event>,
}

impl Engine {
    pub(super) fn cluster(&self) -> Option<&Cluster> {
        self.inner.cluster.as_ref()
    }

    /// The current worker id (cluster mode).
    pub fn worker_id(&self) -> Option<String> {
        self.cluster().map(|c| c.me().to_string())
    }

    /// This process's worker name (cluster mode), as attempts record it.
    pub(super) fn worker_name(&self) -> Option<Arc<str>> {
        self.cluster().map(|c| c.name.clone())
    }

    /// How often to look for work without a notification (1 s outside cluster mode).
    pub(super) fn worker_poll(&self) -> Duration {
        self.cluster()
            .map_or(Duration::from_secs(1), |c| c.config.poll)
    }

    /// How long a silent worker keeps its runs (cluster mode).
    pub fn worker_lease(&self) -> Option<Duration> {
        self.cluster().map(|c| c.config.lease)
    }

    /// Registers this worker and starts its loops.
    pub(super) async fn join_cluster(
        &self,
        outbox: mpsc::UnboundedReceiver<Event>,
    ) -> Result<(), super::EngineError> {
        let Some(c) = self.cluster() else {
            return Ok(());
        };
        let me = c.me();
        // Listening first: a worker joining from here on is heard of.
        let listener = self.store().listen().await?;
        self.store()
            .register_worker(&me, &c.config.name, c.config.kind)
            .await?;
        let lease_ms = c.config.lease.as_millis() as i64;
        if let Some(alive) = self.store().heartbeat(&me, lease_ms).await? {
            c.alone.store(alive <= 1, Ordering::Release);
        }
        tracing::info!(worker.id = %me, worker.name = %c.config.name, lease_s = c.config.lease.as_secs_f64(), "joined the workers on this database");
        tokio::spawn(self.clone().claim_loop());
        tokio::spawn(self.clone().step_loop());
        tokio::spawn(self.clone().heartbeat_loop());
        tokio::spawn(self.clone().listen_loop(listener));
        tokio::spawn(self.clone().forward_loop(outbox));
        Ok(())
    }

    /// The worker id to create a run under, claimed in the same transaction: only while this
    /// process is the only live worker and has room, so a lone server pays no claim round trip
    /// while several processes share new runs through claims. Runs of a workflow with a
    /// `concurrency` limit are always claimed, where the limit is counted across processes.
    pub(super) fn claim_on_create(&self, limited: bool) -> Option<Arc<str>> {
        let c = self.cluster()?;
        let room = c.config.max_runs > self.local_runs();
        (room && !limited && c.alone.load(Ordering::Acquire) && !c.stop.is_cancelled())
            .then(|| c.me())
    }

    fn local_runs(&self) -> usize {
        let sched = lock(&self.inner.sched);
        sched.running.len() + sched.queue.len()
    }

    async fn claim_loop(self) {
        let Some(c) = self.cluster() else { return };
        let mut backoff = Duration::from_millis(100);
        loop {
            if c.stop.is_cancelled() {
                return;
            }
            let room = c.config.max_runs.saturating_sub(self.local_runs());
            c.full.store(room == 0, Ordering::Release);
            let mut more = false;
            if room > 0 {
                let me = c.me();
                let batch = room.min(CLAIM_BATCH) as i64;
                let claimed = match self.store().claim_new(&me, batch).await {
                    Ok(mut runs) => {
                        more = runs.len() as i64 == batch;
                        let left = batch - runs.len() as i64;
                        if left > 0 {
                            match self.store().claim_limited(&me, left).await {
                                Ok(mut limited) => runs.append(&mut limited),
                                Err(e) => tracing::warn!(error = %e, "cannot claim runs"),
                            }
                        }
                        Ok(runs)
                    }
                    Err(e) => Err(e),
                };
                match claimed {
                    Ok(runs) => {
                        backoff = Duration::from_millis(100);
                        self.adopt(runs).await;
                    }
                    Err(e) if e.is_closed() => return,
                    Err(e) => {
                        tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "cannot claim runs");
                        if !c.back_off(&mut backoff).await {
                            return;
                        }
                        continue;
                    }
                }
            }
            if more {
                continue;
            }
            tokio::select! {
                _ = c.stop.cancelled() => return,
                _ = c.wake.notified() => {}
                _ = tokio::time::sleep(c.config.poll) => {}
            }
        }
    }

    async fn heartbeat_loop(self) {
        let Some(c) = self.cluster() else { return };
        let lease_ms = c.config.lease.as_millis() as i64;
        let every = (c.config.lease / 4).max(Duration::from_millis(50));
        let mut ticks: u64 = 0;
        loop {
            let me = c.me();
            let joins = c.joins.load(Ordering::Acquire);
            match self.store().heartbeat(&me, lease_ms).await {
                Ok(Some(alive)) => c.alone.store(
                    alive <= 1 && c.joins.load(Ordering::Acquire) == joins,
                    Ordering::Release,
                ),
                Ok(None) => {
                    c.alone.store(false, Ordering::Release);
                    tracing::error!(worker.id = %me, "this worker's lease expired: giving up its runs and joining again");
                    self.abandon_local();
                    let new: Arc<str> = uuid::Uuid::now_v7().to_string().into();
                    *c.me.write().unwrap_or_else(|e| e.into_inner()) = new.clone();
                    // Its runs are claimable either way: a missing owner is a dead one.
                    if let Err(e) = self.store().forget_worker(&me).await {
                        tracing::debug!(error = %e, "cannot remove the old worker row");
                    }
                    if let Err(e) = self
                        .store()
                        .register_worker(&new, &c.config.name, c.config.kind)
                        .await
                    {
                        tracing::warn!(error = %e, "cannot join again; retrying");
                    }
                    c.wake.notify_one();
                    continue;
                }
                Err(e) if e.is_closed() => return,
                Err(e) => tracing::warn!(error = %e, "cannot renew this worker's lease"),
            }
            if !c.stop.is_cancelled() {
                match self.store().cancels_for(&me).await {
                    Ok(ids) => ids.iter().for_each(|id| self.cancel_if_local(id)),
                    Err(e) => tracing::debug!(error = %e, "cannot read requested cancels"),
                }
                match self.store().reoffer_lost_steps(lease_ms).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(
                        steps = n,
                        "offered steps of a worker whose lease expired are claimable again"
                    ),
                    Err(e) => tracing::debug!(error = %e, "cannot take back lost step claims"),
                }
                let room = c.config.max_runs.saturating_sub(self.local_runs());
                if room > 0 {
                    match self.store().claim_orphans(&me, lease_ms, room as i64).await {
                        Ok(runs) => self.adopt(runs).await,
                        Err(e) => tracing::debug!(error = %e, "cannot take over runs"),
                    }
                }
                if ticks.is_multiple_of(240) {
                    let _ = self.store().forget_workers(24 * 3600 * 1000).await;
                }
            }
            ticks += 1;
            tokio::select! {
                _ = c.halt.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
        }
    }

    async fn listen_loop(self, mut listener: sqlx::postgres::PgListener) {
        let Some(c) = self.cluster() else { return };
        loop {
            let next = tokio::select! {
                _ = c.halt.cancelled() => return,
                n = listener.recv() => n,
            };
            match next {
                Ok(n) => match n.channel() {
                    RUNS_CHANNEL => c.wake.notify_one(),
                    STEPS_CHANNEL => c.steps_wake.notify_one(),
                    STEP_DONE_CHANNEL => {
                        self.step_done(n.payload());
                        self.signal_local(n.payload());
                    }
                    CANCEL_CHANNEL => {
                        self.cancel_claimed_steps(n.payload());
                        self.cancel_if_local(n.payload());
                    }
                    WORKERS_CHANNEL if n.payload() != &*c.me() => c.not_alone(),
                    EVENTS_CHANNEL => match serde_json::from_str::<Envelope>(n.payload()) {
                        Ok(env) if env.from != *c.me() => {
                            env.events.into_iter().for_each(|e| self.publish_remote(e))
                        }
                        Ok(_) => {}
                        Err(e) => tracing::debug!(error = %e, "unreadable event notification"),
                    },
                    _ => {}
                },
                // The store was closed (shutdown, end of a test): let go of the connection.
                Err(sqlx::Error::PoolClosed) => return,
                // It reconnects on the next call; missed wake-ups are covered by polling.
                Err(e) => {
                    // A worker may have announced itself meanwhile.
                    c.not_alone();
                    tracing::warn!(error = %e, "lost the notification connection; reconnecting");
                    tokio::select! {
                        _ = c.halt.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    }
                }
            }
        }
    }

    /// Sends local events to the other processes, at most one notification per 50 ms window
    /// (split to fit the payload limit).
    async fn forward_loop(self, mut outbox: mpsc::UnboundedReceiver<Event>) {
        let Some(c) = self.cluster() else { return };
        while let Some(first) = tokio::select! {
            _ = c.halt.cancelled() => None,
            e = outbox.recv() => e,
        } {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let mut events = vec![first];
            while let Ok(e) = outbox.try_recv() {
                events.push(e);
            }
            let from = c.me().to_string();
            for payload in envelopes(&from, events) {
                if let Err(e) = self.store().notify(EVENTS_CHANNEL, &payload).await {
                    tracing::debug!(error = %e, "cannot send live events to other processes");
                }
            }
        }
    }

    /// Drops every local run without recording anything (their claims are not ours anymore).
    pub(super) fn abandon_local(&self) {
        let Some(c) = self.cluster() else { return };
        let old = std::mem::take(&mut *lock(&c.abandon));
        old.cancel();
        let mut sched = lock(&self.inner.sched);
        sched.queue.clear();
        sched.pending_cancels.clear();
    }

    /// Stops the run if this process has it; a cancel for another process's run is theirs.
    pub(super) fn cancel_if_local(&self, run_id: &str) {
        let local = {
            let sched = lock(&self.inner.sched);
            sched.running.contains_key(run_id)
                || sched.queue.iter().any(|q| q.state.run.id == run_id)
        };
        if local {
            self.cancel_local(run_id);
        }
    }

    /// Stops claiming, lets in-flight steps finish for at most `grace`, then gives the rest
    /// of this worker's runs back for others to resume at once. On SQLite, stops every run
    /// where it is (the next start resumes them). Either way the attempts left open are
    /// closed as `shutdown`, so a restart is not counted as a crash (`crash_loop`).
    pub async fn shutdown(&self, grace: Duration) {
        let Some(c) = self.cluster() else {
            self.inner.halt.cancel();
            // The drivers return at the next poll; a moment bounds the wait for them.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
            while !lock(&self.inner.sched).running.is_empty()
                && tokio::time::Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            // After what the stopped drivers had already handed to the journal.
            self.journal().barrier().await;
            if let Err(e) = self.store().close_attempts_at_shutdown(now_ms()).await {
                tracing::warn!(error = %e, "cannot mark the attempts this shutdown stops; the next start counts them as interrupted");
            }
            // Nothing lands after that mark; the journal's own connection closes.
            self.journal().close().await;
            return;
        };
        c.stop.cancel();
        c.drain.cancel();
        let deadline = tokio::time::Instant::now() + grace;
        while !lock(&self.inner.sched).running.is_empty() && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let left = lock(&self.inner.sched).running.len();
        self.abandon_local();
        let me = c.me();
        match self.store().release_worker(&me).await {
            Ok(n) => tracing::info!(
                runs = n,
                unfinished_steps_runs = left,
                "released this worker's runs for the others"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "cannot release this worker's runs; others take them when its lease expires")
            }
        }
        c.halt.cancel();
        self.journal().close().await;
    }
}

impl Cluster {
    /// Another worker may be live: until a heartbeat counts again, not alone.
    fn not_alone(&self) {
        self.joins.fetch_add(1, Ordering::AcqRel);
        self.alone.store(false, Ordering::Release);
    }

    /// Waits out a failed claim's backoff and doubles it (at most 5 s); false when this
    /// process began stopping meanwhile.
    pub(super) async fn back_off(&self, backoff: &mut Duration) -> bool {
        let stopped = tokio::select! {
            _ = self.stop.cancelled() => true,
            _ = tokio::time::sleep(*backoff) => false,
        };
        *backoff = (*backoff * 2).min(Duration::from_secs(5));
        !stopped
    }

    pub(super) fn me(&self) -> Arc<str> {
        self.me.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Events in JSON envelopes (an [`Envelope`] each) that each fit one notification. Every
/// event is serialized once; one too large for a notification alone is left out.
fn envelopes(from: &str, events: Vec<Event>) -> Vec<String> {
    let head = format!("{{\"from\":{},\"events\":[", serde_json::Value::from(from));
    let mut out = Vec::new();
    let mut current = head.clone();
    let mut in_current = 0;
    for event in events {
        let Ok(json) = serde_json::to_string(&event) else {
            continue;
        };
        // With the `]}` that closes it, and the `,` before it when it joins others.
        if head.len() + json.len() + 2 > MAX_PAYLOAD {
            continue;
        }
        if in_current > 0 && current.len() + 1 + json.len() + 2 > MAX_PAYLOAD {
            current.push_str("]}");
            out.push(std::mem::replace(&mut current, head.clone()));
            in_current = 0;
        }
        if in_current > 0 {
            current.push(',');
        }
        current.push_str(&json);
        in_current += 1;
    }
    if in_current > 0 {
        current.push_str("]}");
        out.push(current);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{EventKind, StepStatus};

    #[test]
    fn envelopes_carry_every_event_in_order_within_the_payload_limit() {
        let events: Vec<Event> = (0..400)
            .map(|i| Event {
                run_id: format!("run-\"{i}\\"),
                workflow_id: "wf".into(),
                at: i,
                kind: EventKind::Step {
                    step_id: format!("step {i}"),
                    status: StepStatus::Running,
                    attempt: 1,
                    skip_reason: None,
                },
            })
            .collect();
        let out = envelopes("w\"1", events.clone());
        assert!(out.len() > 1, "400 events need several notifications");
        let mut back = Vec::new();
        for payload in &out {
            assert!(payload.len() <= MAX_PAYLOAD, "{}", payload.len());
            let env: Envelope = serde_json::from_str(payload).expect("an envelope");
            assert_eq!(env.from, "w\"1");
            back.extend(env.events);
        }
        assert_eq!(back, events);
        assert!(envelopes("w", Vec::new()).is_empty());
        let huge = Event {
            run_id: "x".repeat(MAX_PAYLOAD),
            ..events[0].clone()
        };
        let out = envelopes("w", vec![huge, events[1].clone()]);
        assert_eq!(out.len(), 1, "an event too large alone is left out");
    }
}
