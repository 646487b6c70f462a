//! Group commit: every state change goes through one writer, which applies whatever has
//! queued up (from any number of runs) in a single transaction and then acknowledges each
//! submitter. One durable commit carries many transitions, so throughput scales with load
//! while each transition is still committed before the executor acts on it.
//!
//! On a SQLite file the writer is a thread with a connection of its own (`store::direct`);
//! on PostgreSQL a task that keeps two batches in flight on two connections.
//!
//! A database that is unreachable is retried with backoff (nothing is dropped); a batch that
//! the database refuses is split so only the bad submission fails.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use futures::stream::{FuturesUnordered, StreamExt};

use crate::store::{Backend, DirectWriter, HeldConnection, Op, Store, StoreError};

/// Most operations applied in one transaction.
const MAX_BATCH_OPS: usize = 4096;

/// How long the writer keeps its connection with nothing to write: under load it commits on
/// one connection, and an idle process gives it back (closing the store waits for it).
const HOLD_IDLE: Duration = Duration::from_millis(100);

/// How long it keeps one connection however busy, so the pool can still recycle it.
const HOLD_MAX: Duration = Duration::from_secs(300);

struct Submission {
    ops: Vec<Op>,
    done: oneshot::Sender<Result<(), String>>,
    /// The journal closes after it ([`Journal::close`]).
    last: bool,
}

/// A handle to the writer; cheap to clone.
#[derive(Clone)]
pub struct Journal {
    tx: mpsc::UnboundedSender<Submission>,
    /// The SQLite writer's thread, joined by [`Journal::close`].
    thread: Arc<std::sync::Mutex<Option<std::thread::JoinHandle<()>>>>,
}

impl Journal {
    /// Starts the writer on `store`. With a `fence` (the worker id of a process among
    /// several), every batch checks the runs it changes are still that worker's.
    pub fn start(store: Store, fence: Option<Fence>) -> Journal {
        let (tx, rx) = mpsc::unbounded_channel();
        // A SQLite file is written from a thread of its own, on a connection of its own: no
        // hand-off between threads inside a commit (see `store::direct`).
        let direct = match (store.file(), &fence) {
            (Some(path), None) => match DirectWriter::open(&path) {
                Ok(direct) => Some(direct),
                Err(e) => {
                    tracing::warn!(error = %e, "the journal writes through the pool instead of its own connection");
                    None
                }
            },
            _ => None,
        };
        let mut thread = None;
        let mut rx = Some(rx);
        if let Some(direct) = direct {
            // Handed over once the thread runs: if it cannot start, the task below writes.
            let (handoff, taken) = std::sync::mpsc::sync_channel(1);
            let spawned = std::thread::Builder::new()
                .name("flowscope-journal".into())
                .spawn(move || {
                    if let Ok((direct, rx)) = taken.recv() {
                        write_directly(direct, rx);
                    }
                });
            match spawned {
                Ok(handle) => {
                    if let Some(rx) = rx.take() {
                        let _ = handoff.send((direct, rx));
                    }
                    thread = Some(handle);
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot start the journal's thread; it writes through the pool");
                }
            }
        }
        if let Some(rx) = rx {
            tokio::spawn(writer(store, rx, fence));
        }
        Journal {
            tx,
            thread: Arc::new(std::sync::Mutex::new(thread)),
        }
    }

    /// Applies what was submitted before, then stops the writer and lets go of its
    /// connections: the SQLite thread closes its own, so the store's last connection to
    /// close checkpoints everything into the database file. Later commits fail.
    pub async fn close(&self) {
        let (done, wait) = oneshot::channel();
        let sent = self.tx.send(Submission {
            ops: Vec::new(),
            done,
            last: true,
        });
        if sent.is_ok() {
            let _ = wait.await;
        }
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }

    /// Commits `ops` (in one transaction, possibly shared with others) and returns once durable.
    pub async fn commit(&self, ops: Vec<Op>) -> Result<(), String> {
        if ops.is_empty() {
            return Ok(());
        }
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Submission {
                ops,
                done,
                last: false,
            })
            .map_err(|_| "the journal writer has stopped".to_string())?;
        wait.await
            .map_err(|_| "the journal writer has stopped".to_string())?
    }
}

impl Journal {
    /// Returns once everything submitted before it is applied (or refused): what a writer
    /// outside the journal waits for so that its change lands after them.
    pub async fn barrier(&self) {
        let (done, wait) = oneshot::channel();
        if self
            .tx
            .send(Submission {
                ops: Vec::new(),
                done,
                last: false,
            })
            .is_ok()
        {
            let _ = wait.await;
        }
    }
}

/// The current worker id, which changes when the worker joins again after losing its lease.
pub type Fence = Arc<RwLock<Arc<str>>>;

async fn writer(store: Store, mut rx: mpsc::UnboundedReceiver<Submission>, fence: Option<Fence>) {
    // PostgreSQL: a commit waits for its WAL flush, and meanwhile a second batch can be
    // applied on another connection (the server flushes both at once). Each submitter waits
    // for its answer before the next, so batches in flight together do not depend on each
    // other (an items flush still in flight when its run is cancelled may land after the
    // run's end: harmless, the items are the same). An in-memory SQLite has one connection.
    let width = if store.backend() == Backend::Postgres {
        BATCHES_IN_FLIGHT
    } else {
        1
    };
    let mut free: Vec<HeldConnection> = (0..width).map(|_| HeldConnection::default()).collect();
    let mut in_flight = FuturesUnordered::new();
    loop {
        let next = tokio::select! {
            biased;
            Some(held) = in_flight.next(), if !in_flight.is_empty() => {
                free.push(held);
                continue;
            }
            next = next_submission(&mut rx, &mut free), if !free.is_empty() => next,
        };
        let Some(first) = next else { break };
        let (ops, waiters, last) = gather(first, &mut rx);
        // A barrier (a submission with no ops) is answered once everything before it is
        // applied: the batches in flight first.
        if waiters.iter().any(|(range, _)| range.is_empty()) {
            while let Some(held) = in_flight.next().await {
                free.push(held);
            }
        }
        if ops.is_empty() {
            acknowledge(waiters);
            if last {
                break;
            }
            continue;
        }
        let fence = fence
            .as_ref()
            .map(|f| f.read().unwrap_or_else(|e| e.into_inner()).clone());
        // Event waits lock their keys in the order of the batch: such a batch is applied
        // alone, so two batches cannot take those locks in opposite orders.
        let alone = ops.iter().any(|op| {
            matches!(
                op,
                Op::BeginWait {
                    key: Some(_),
                    kind: crate::records::WaitKind::Event,
                    ..
                }
            )
        });
        if alone {
            while let Some(held) = in_flight.next().await {
                free.push(held);
            }
        }
        // A connection is free: the `select!` takes a submission only then.
        let held = free.pop().unwrap_or_default();
        let batch = commit_batch(store.clone(), ops, waiters, fence, held);
        if alone {
            free.push(batch.await);
        } else {
            in_flight.push(batch);
        }
        if last {
            break;
        }
    }
    // Closed, or every handle dropped: what is in flight ends, then the connections go back.
    while in_flight.next().await.is_some() {}
}

/// Batches applied at once on PostgreSQL, each on its own connection.
const BATCHES_IN_FLIGHT: usize = 2;

/// The next submission, giving the free connections back to the pool after [`HOLD_IDLE`]
/// without one.
async fn next_submission(
    rx: &mut mpsc::UnboundedReceiver<Submission>,
    free: &mut [HeldConnection],
) -> Option<Submission> {
    if free.iter().any(HeldConnection::is_held) {
        if let Ok(next) = tokio::time::timeout(HOLD_IDLE, rx.recv()).await {
            return next;
        }
        free.iter_mut().for_each(HeldConnection::release);
    }
    rx.recv().await
}

/// Applies one batch on `held`'s connection and answers its submitters; gives the connection
/// back for the next batch.
async fn commit_batch(
    store: Store,
    ops: Vec<Op>,
    waiters: Vec<Waiter>,
    fence: Option<Arc<str>>,
    mut held: HeldConnection,
) -> HeldConnection {
    let fence = fence.as_deref();
    held.release_if_held_for(HOLD_MAX);
    match apply_with_retry(&store, &ops, fence, &mut held).await {
        Ok(()) => acknowledge(waiters),
        // Refused (not unreachable): apply each submission alone so one bad one cannot sink the rest.
        Err(_) if waiters.len() > 1 => {
            for (range, done) in waiters {
                let result = apply_with_retry(&store, &ops[range], fence, &mut held)
                    .await
                    .map_err(|e| e.to_string());
                let _ = done.send(result);
            }
        }
        Err(e) if e.is_fenced() => {
            tracing::warn!("a state change of a run this worker no longer holds was refused");
            for (_, done) in waiters {
                let _ = done.send(Err(e.to_string()));
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "state change refused by the database");
            for (_, done) in waiters {
                let _ = done.send(Err(e.to_string()));
            }
        }
    }
    held
}

/// Takes every submission waiting, up to [`MAX_BATCH_OPS`] operations, after `first`: the
/// batch, its operations in order, and each submitter's range of them.
type Waiter = (std::ops::Range<usize>, oneshot::Sender<Result<(), String>>);

/// The last one ([`Journal::close`]) ends the batch, and says so.
fn gather(
    first: Submission,
    rx: &mut mpsc::UnboundedReceiver<Submission>,
) -> (Vec<Op>, Vec<Waiter>, bool) {
    let mut last = first.last;
    let mut batch = vec![first];
    let mut count = batch[0].ops.len();
    while count < MAX_BATCH_OPS && !last {
        match rx.try_recv() {
            Ok(s) => {
                count += s.ops.len();
                last = s.last;
                batch.push(s);
            }
            Err(_) => break,
        }
    }
    // Moved, not cloned: ops carry inputs and outputs, and this is the hot path.
    let mut ops: Vec<Op> = Vec::with_capacity(count);
    let mut waiters = Vec::with_capacity(batch.len());
    for s in batch {
        waiters.push((ops.len()..ops.len() + s.ops.len(), s.done));
        ops.extend(s.ops);
    }
    (ops, waiters, last)
}

/// Tells every submitter of a batch that it is applied.
fn acknowledge(waiters: Vec<Waiter>) {
    for (_, done) in waiters {
        let _ = done.send(Ok(()));
    }
}

/// The writer of a SQLite file, on its own thread: blocks for the first submission, takes
/// whatever else waits, applies it all in one transaction. Ends when the journal is closed
/// or every [`Journal`] is dropped, closing its connection.
fn write_directly(mut direct: DirectWriter, mut rx: mpsc::UnboundedReceiver<Submission>) {
    while let Some(first) = rx.blocking_recv() {
        let (ops, waiters, last) = gather(first, &mut rx);
        if ops.is_empty() {
            acknowledge(waiters);
            if last {
                break;
            }
            continue;
        }
        let mut apply = |ops: &[Op]| {
            let mut delay = Duration::from_millis(50);
            loop {
                match direct.apply(ops) {
                    Err(e) if e.is_busy() => {
                        tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "database unavailable; retrying");
                        std::thread::sleep(delay);
                        delay = (delay * 2).min(Duration::from_secs(5));
                    }
                    other => return other,
                }
            }
        };
        match apply(&ops) {
            Ok(()) => acknowledge(waiters),
            // Refused: each submission alone, so one bad one cannot sink the rest.
            Err(_) if waiters.len() > 1 => {
                for (range, done) in waiters {
                    let _ = done.send(apply(&ops[range]).map_err(|e| e.to_string()));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "state change refused by the database");
                for (_, done) in waiters {
                    let _ = done.send(Err(e.to_string()));
                }
            }
        }
        if last {
            break;
        }
    }
}

async fn apply_with_retry(
    store: &Store,
    ops: &[Op],
    fence: Option<&str>,
    held: &mut HeldConnection,
) -> Result<(), StoreError> {
    let mut delay = Duration::from_millis(50);
    loop {
        match store.apply_held(ops, fence, Some(held)).await {
            // Two batches in flight may, rarely, lock the same rows in opposite orders.
            Err(e) if e.is_conflict() => {
                tracing::info!(error = %e, "a batch met another in the database; applying it again");
                tokio::time::sleep(Duration::from_millis(fastrand::u64(1..10))).await;
            }
            Err(e) if e.is_unavailable() => {
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "database unavailable; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            other => return other,
        }
    }
}
