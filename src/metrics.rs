//! Counters shared by the ingress and the dispatchers. Passed in from the composition root (no
//! process-global state); the operations issue exposes them in Prometheus format.

use std::sync::atomic::{AtomicU64, Ordering};

/// Why ingest refused a request: the problem type's last segment, `_` for `-`.
pub const REJECT_REASONS: [&str; 9] = [
    "invalid_event",
    "unsupported_media_type",
    "payload_too_large",
    "unavailable",
    "unauthorized",
    "forbidden",
    "schema_violation",
    "headers_too_large",
    "other",
];

/// The index in [`REJECT_REASONS`] of a problem type URN.
pub fn reject_reason(kind: &str) -> usize {
    let last = kind.rsplit(':').next().unwrap_or("").replace('-', "_");
    REJECT_REASONS
        .iter()
        .position(|reason| *reason == last)
        .unwrap_or(REJECT_REASONS.len() - 1)
}

/// Monotonic counters.
#[derive(Debug, Default)]
pub struct Metrics {
    pub events_received: AtomicU64,
    pub events_accepted: AtomicU64,
    pub events_rejected: AtomicU64,
    /// The same, by [`REJECT_REASONS`].
    pub events_rejected_by_reason: [AtomicU64; REJECT_REASONS.len()],
    pub events_duplicate: AtomicU64,
    pub events_unrouted: AtomicU64,
    pub deliveries_succeeded: AtomicU64,
    pub attempts_failed: AtomicU64,
    pub retries_scheduled: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub dead_letters_forwarded: AtomicU64,
    /// Inbound webhook requests by (source, outcome): `accepted`, `invalid`, `unavailable`, or
    /// a signature rejection's label.
    pub hook_requests: std::sync::Mutex<std::collections::BTreeMap<(String, &'static str), u64>>,
}

impl Metrics {
    /// Adds `count` to `counter`.
    pub fn add(counter: &AtomicU64, count: u64) {
        counter.fetch_add(count, Ordering::Relaxed);
    }

    /// Counts one inbound webhook request of `source` with `outcome`.
    pub fn count_hook(&self, source: &str, outcome: &'static str) {
        *self
            .hook_requests
            .lock()
            .expect("lock")
            .entry((source.to_owned(), outcome))
            .or_default() += 1;
    }

    /// Reads `counter`.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reject_reasons_come_from_problem_types() {
        for (kind, reason) in [
            ("urn:fanout:problem:invalid-event", "invalid_event"),
            ("urn:fanout:problem:payload-too-large", "payload_too_large"),
            (
                "urn:fanout:problem:unsupported-media-type",
                "unsupported_media_type",
            ),
            ("urn:fanout:problem:unavailable", "unavailable"),
            ("urn:fanout:problem:something-new", "other"),
        ] {
            assert_eq!(REJECT_REASONS[reject_reason(kind)], reason, "{kind}");
        }
    }
}
