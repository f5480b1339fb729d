//! Counters shared by the ingress and the dispatchers. Passed in from the composition root (no
//! process-global state); the operations issue exposes them in Prometheus format.

use std::sync::atomic::{AtomicU64, Ordering};

/// Monotonic counters.
#[derive(Debug, Default)]
pub struct Metrics {
    pub events_received: AtomicU64,
    pub events_accepted: AtomicU64,
    pub events_rejected: AtomicU64,
    pub events_duplicate: AtomicU64,
    pub events_unrouted: AtomicU64,
    pub deliveries_succeeded: AtomicU64,
    pub attempts_failed: AtomicU64,
    pub retries_scheduled: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub dead_letters_forwarded: AtomicU64,
}

impl Metrics {
    /// Adds `count` to `counter`.
    pub fn add(counter: &AtomicU64, count: u64) {
        counter.fetch_add(count, Ordering::Relaxed);
    }

    /// Reads `counter`.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
