//! A sleep that ends when asked, for `delay` and `simulate`.
//!
//! tokio's timer rounds every deadline up to its next millisecond tick and then wakes a parked
//! runtime: measured here, `tokio::time::sleep(10ms)` takes 11.1 ms (p50), so a chain of forty
//! 10 ms steps spent 45 ms of its 466 ms waiting on the timer alone. The long part of a sleep
//! still goes to tokio (cheap, holds nothing); its last [`FINE`] goes to one thread that waits on
//! a condition variable with a nanosecond timeout (≈0.1 ms late) and wakes the task. Dropping the
//! future (cancel, timeout) leaves at most one short-lived entry behind.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// What the fine timer waits out; the rest is tokio's.
const FINE: Duration = Duration::from_millis(2);

struct Entry {
    at: Instant,
    seq: u64,
    wake: oneshot::Sender<()>,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

#[derive(Default)]
struct Queue {
    due: BinaryHeap<Reverse<Entry>>,
    seq: u64,
}

struct Fine {
    queue: Mutex<Queue>,
    changed: Condvar,
}

fn fine() -> &'static Fine {
    static FINE_TIMER: OnceLock<&'static Fine> = OnceLock::new();
    FINE_TIMER.get_or_init(|| {
        let timer: &'static Fine = Box::leak(Box::new(Fine {
            queue: Mutex::new(Queue::default()),
            changed: Condvar::new(),
        }));
        let spawned = std::thread::Builder::new()
            .name("flowscope-fine-timer".into())
            .spawn(move || timer.run());
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the fine timer; sleeps end on tokio's tick");
        }
        timer
    })
}

impl Fine {
    fn run(&self) {
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let now = Instant::now();
            while queue.due.peek().is_some_and(|Reverse(e)| e.at <= now) {
                if let Some(Reverse(e)) = queue.due.pop() {
                    // The sleeper may be gone (cancelled): nothing to wake then.
                    let _ = e.wake.send(());
                }
            }
            queue = match queue.due.peek().map(|Reverse(e)| e.at - now) {
                Some(wait) => {
                    self.changed
                        .wait_timeout(queue, wait)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
                None => self.changed.wait(queue).unwrap_or_else(|p| p.into_inner()),
            };
        }
    }

    fn push(&self, at: Instant) -> oneshot::Receiver<()> {
        let (wake, woken) = oneshot::channel();
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        queue.seq += 1;
        let seq = queue.seq;
        let first = queue.due.peek().is_none_or(|Reverse(e)| at < e.at);
        queue.due.push(Reverse(Entry { at, seq, wake }));
        drop(queue);
        // Only a new earliest deadline shortens the thread's wait.
        if first {
            self.changed.notify_one();
        }
        woken
    }
}

/// Sleeps `d`, ending within about a tenth of a millisecond of it.
pub async fn sleep(d: Duration) {
    let until = Instant::now() + d;
    if d > FINE {
        tokio::time::sleep(d - FINE).await;
    }
    if Instant::now() >= until {
        return;
    }
    if fine().push(until).await.is_err() {
        // No timer thread: tokio's tick is late, but it ends.
        tokio::time::sleep_until(until.into()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sleeps_at_least_as_long_as_asked_and_in_order() {
        let started = Instant::now();
        let (a, b) = tokio::join!(
            async {
                sleep(Duration::from_millis(7)).await;
                started.elapsed()
            },
            async {
                sleep(Duration::from_millis(3)).await;
                started.elapsed()
            }
        );
        assert!(a >= Duration::from_millis(7), "{a:?}");
        assert!(b >= Duration::from_millis(3), "{b:?}");
        assert!(b < a, "the shorter sleep ends first: {b:?} {a:?}");
        // A dropped sleep leaves nothing that blocks the next one.
        let dropped =
            tokio::time::timeout(Duration::from_millis(1), sleep(Duration::from_millis(50)));
        assert!(dropped.await.is_err());
        let t = Instant::now();
        sleep(Duration::from_millis(1)).await;
        assert!(t.elapsed() >= Duration::from_millis(1));
    }
}
