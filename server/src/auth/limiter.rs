//! Failed sign-ins, limited before any password is hashed: per name, per client address,
//! and per trusted device (a browser that signed in as that name before; see
//! [`super::device`]), in this process.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed sign-ins per key (a name, a client address) in a sliding window: past the limit,
/// that key is refused until its oldest failure leaves the window.
#[derive(Default)]
pub struct LoginLimiter {
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

/// Failures allowed per name (and per trusted device) in [`WINDOW`]; an address may fail
/// four times as often (a shared NAT, an office).
const PER_NAME: usize = 5;
const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Names and addresses the limiter tracks at most.
const MAX_KEYS: usize = 100_000;

impl LoginLimiter {
    fn limit(key: &str) -> usize {
        if key.starts_with("ip:") {
            PER_NAME * 4
        } else {
            PER_NAME
        }
    }

    /// Counts an attempt against every key, unless one of them is already at its limit:
    /// then how long until it may try again. Called before the password is checked, so
    /// attempts in flight count too; [`LoginLimiter::succeeded`] takes a success back.
    pub(super) fn attempt(&self, keys: &[String]) -> Result<(), Duration> {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let wait = keys
            .iter()
            .filter_map(|k| {
                let q = map.get_mut(k)?;
                while q.front().is_some_and(|t| now.duration_since(*t) > WINDOW) {
                    q.pop_front();
                }
                (q.len() >= Self::limit(k))
                    .then(|| {
                        q.front()
                            .map(|t| WINDOW.saturating_sub(now.duration_since(*t)))
                    })
                    .flatten()
            })
            .max();
        if let Some(wait) = wait {
            return Err(wait);
        }
        // Bounded: a flood of made-up names cannot grow the map without end, nor wipe the
        // counts of real ones. Past the bound, expired entries go; if that is not enough,
        // a new key waits (the flood is refused, the counted keys keep their counts).
        if map.len() >= MAX_KEYS && keys.iter().any(|k| !map.contains_key(k)) {
            map.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) <= WINDOW));
            if map.len() >= MAX_KEYS {
                return Err(Duration::from_secs(60));
            }
        }
        for k in keys {
            map.entry(k.clone()).or_default().push_back(now);
        }
        Ok(())
    }

    /// A sign-in succeeded: its name (or device) starts afresh, and its address gets the
    /// attempt back.
    pub(super) fn succeeded(&self, keys: &[String]) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        for k in keys {
            if k.starts_with("user:") || k.starts_with("device:") {
                map.remove(k);
            } else if let Some(q) = map.get_mut(k) {
                q.pop_back();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_of_new_names_is_refused_not_a_reset() {
        let l = LoginLimiter::default();
        let real = ["user:root".to_string(), "ip:9".to_string()];
        for _ in 0..PER_NAME {
            assert!(l.attempt(&real).is_ok());
        }
        for i in 0..MAX_KEYS {
            let _ = l.attempt(&[format!("user:n{i}")]);
        }
        assert!(
            l.attempt(&["user:new".to_string()]).is_err(),
            "the map is full"
        );
        assert!(l.attempt(&real).is_err(), "root's failures still count");
    }

    #[test]
    fn limiter_counts_attempts_before_they_are_checked() {
        let l = LoginLimiter::default();
        let keys = ["user:a".to_string(), "ip:1".to_string()];
        for _ in 0..PER_NAME {
            assert!(l.attempt(&keys).is_ok());
        }
        assert!(l.attempt(&keys).is_err());
        // Another name from the same address is not blocked yet.
        let other = ["user:b".to_string(), "ip:1".to_string()];
        assert!(l.attempt(&other).is_ok());
        // A success gives its name a fresh start.
        l.succeeded(&other);
        for _ in 0..PER_NAME {
            assert!(l.attempt(&other).is_ok());
        }
        assert!(l.attempt(&other).is_err());
    }
}
