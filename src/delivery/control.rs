//! What operators see and steer of one subscriber while its dispatcher runs: its current policy
//! (swapped on reload), pause, orphaned and disabled states, and live statistics (in flight,
//! totals, recent latency and success rate, last error).
//!
//! The dispatcher owns delivery; this is the small shared surface between it and the admin API,
//! so neither reaches into the other.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use serde::Serialize;
use tokio::sync::Notify;

use crate::config::SubscriberConfig;
use crate::delivery::request::EventIdentity;
use crate::ids::{EventSeq, SubscriberId};

/// Attempts kept for the recent-window statistics.
const RECENT_ATTEMPTS: usize = 1024;
/// Attempts kept with their event, for the dashboard's subscriber page.
pub const ATTEMPT_LOG: usize = 100;
/// The recent window.
const RECENT_WINDOW_MS: u64 = 5 * 60 * 1000;

/// Upper bounds (seconds) of the latency histogram buckets.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// A Prometheus-style cumulative histogram with fixed buckets. Each observation counts in its
/// own bucket only (one atomic add, not one per bucket above it); a snapshot sums them up.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    pub fn observe_us(&self, micros: u64) {
        let seconds = micros as f64 / 1e6;
        // Above the last bound an observation counts only in `count` (the `+Inf` bucket).
        if let Some(index) = LATENCY_BUCKETS.iter().position(|bound| seconds <= *bound) {
            self.buckets[index].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(micros, Ordering::Relaxed);
    }

    /// (cumulative bucket counts, count, sum in seconds).
    pub fn snapshot(&self) -> (Vec<u64>, u64, f64) {
        (
            self.buckets
                .iter()
                .scan(0, |cumulative, bucket| {
                    *cumulative += bucket.load(Ordering::Relaxed);
                    Some(*cumulative)
                })
                .collect(),
            self.count.load(Ordering::Relaxed),
            self.sum_us.load(Ordering::Relaxed) as f64 / 1e6,
        )
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct LastError {
    pub at_ms: u64,
    pub status: Option<u16>,
    pub error: String,
}

/// Shared state of one subscriber.
#[derive(Debug)]
pub struct Control {
    pub id: SubscriberId,
    pub name: String,
    config: ArcSwap<SubscriberConfig>,
    paused: AtomicBool,
    orphaned: AtomicBool,
    disabled: Mutex<Option<String>>,
    /// Wakes the dispatcher after a change of state or policy.
    pub(crate) wake: Notify,
    pub in_flight: AtomicUsize,
    /// How many attempts may be in flight now (adaptive concurrency moves it).
    pub concurrency_limit: AtomicUsize,
    pub delivered: AtomicU64,
    pub failed_attempts: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub retries_scheduled: AtomicU64,
    /// When the next retry is due (ms since the epoch; 0 = none).
    pub next_retry_ms: AtomicU64,
    /// Attempt latency, by outcome-independent buckets.
    pub latency: Histogram,
    /// Accepted-to-delivered latency of first attempts.
    pub end_to_end: Histogram,
    last_error: Mutex<Option<LastError>>,
    recent: Mutex<VecDeque<(u64, u64, bool)>>,
    /// The last [`ATTEMPT_LOG`] attempts, oldest first.
    attempt_log: Mutex<VecDeque<Attempted>>,
    /// The circuit breaker's state (closed when there is none).
    circuit: Mutex<super::breaker::State>,
    pub circuit_opened: AtomicU64,
    /// Since when every attempt failed (ms since the epoch; 0 = not failing).
    pub failing_since_ms: AtomicU64,
    /// The validation handshake's state, for operators (`None`: no handshake configured).
    handshake: Mutex<Option<String>>,
}

/// One finished attempt, as the dispatcher reports it.
#[derive(Clone, Debug)]
pub struct Attempted {
    pub at_ms: u64,
    /// The event's id, source and type (shared by all the attempts at it).
    pub event: Arc<EventIdentity>,
    /// The delivery (its `webhook-id` is formatted when read: most entries never are).
    pub seq: EventSeq,
    /// 1 for the first attempt.
    pub attempt: u32,
    pub status: Option<u16>,
    pub latency_us: u64,
    pub ok: bool,
    pub error: Option<String>,
}

/// Success rate and latency over the recent window.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Recent {
    pub window_seconds: u64,
    pub attempts: usize,
    pub success_rate: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

impl Control {
    pub fn new(
        id: SubscriberId,
        config: SubscriberConfig,
        paused: bool,
        disabled: Option<String>,
    ) -> Control {
        Control {
            id,
            name: config.name.clone(),
            concurrency_limit: AtomicUsize::new(config.concurrency),
            config: ArcSwap::from_pointee(config),
            paused: AtomicBool::new(paused),
            orphaned: AtomicBool::new(false),
            disabled: Mutex::new(disabled),
            wake: Notify::new(),
            in_flight: AtomicUsize::new(0),
            delivered: AtomicU64::new(0),
            failed_attempts: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            retries_scheduled: AtomicU64::new(0),
            next_retry_ms: AtomicU64::new(0),
            latency: Histogram::default(),
            end_to_end: Histogram::default(),
            last_error: Mutex::new(None),
            recent: Mutex::new(VecDeque::with_capacity(RECENT_ATTEMPTS)),
            attempt_log: Mutex::new(VecDeque::with_capacity(ATTEMPT_LOG)),
            circuit: Mutex::new(super::breaker::State::Closed),
            circuit_opened: AtomicU64::new(0),
            failing_since_ms: AtomicU64::new(0),
            handshake: Mutex::new(None),
        }
    }

    /// The policy the next attempt uses.
    pub fn config(&self) -> Arc<SubscriberConfig> {
        self.config.load_full()
    }

    pub fn set_config(&self, config: SubscriberConfig) {
        self.config.store(Arc::new(config));
        self.wake.notify_one();
    }

    /// Makes the dispatcher look at its queue again (new retries were queued for it).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub fn paused(&self) -> bool {
        self.paused.load(Ordering::SeqCst)
    }

    pub fn set_paused(&self, paused: bool) {
        self.paused.store(paused, Ordering::SeqCst);
        self.wake.notify_one();
    }

    pub fn orphaned(&self) -> bool {
        self.orphaned.load(Ordering::SeqCst)
    }

    pub fn set_orphaned(&self, orphaned: bool) {
        self.orphaned.store(orphaned, Ordering::SeqCst);
        self.wake.notify_one();
    }

    pub fn disabled(&self) -> Option<String> {
        self.disabled.lock().expect("lock").clone()
    }

    pub fn set_disabled(&self, reason: Option<String>) {
        *self.disabled.lock().expect("lock") = reason;
        self.wake.notify_one();
    }

    /// Whether the dispatcher may start attempts.
    pub fn may_deliver(&self) -> bool {
        !self.paused() && !self.orphaned() && self.disabled().is_none()
    }

    /// `active`, `paused`, `disabled` or `orphaned`.
    pub fn state(&self) -> &'static str {
        if self.orphaned() {
            "orphaned"
        } else if self.disabled().is_some() {
            "disabled"
        } else if self.paused() {
            "paused"
        } else {
            "active"
        }
    }

    pub fn circuit(&self) -> super::breaker::State {
        *self.circuit.lock().expect("lock")
    }

    pub fn set_circuit(&self, state: super::breaker::State) {
        *self.circuit.lock().expect("lock") = state;
    }

    pub fn handshake(&self) -> Option<String> {
        self.handshake.lock().expect("lock").clone()
    }

    pub fn set_handshake(&self, state: Option<String>) {
        *self.handshake.lock().expect("lock") = state;
    }

    pub fn last_error(&self) -> Option<LastError> {
        self.last_error.lock().expect("lock").clone()
    }

    /// Records one finished attempt.
    pub fn attempted(&self, attempt: Attempted) {
        self.latency.observe_us(attempt.latency_us);
        if !attempt.ok {
            self.failed_attempts.fetch_add(1, Ordering::Relaxed);
            *self.last_error.lock().expect("lock") = Some(LastError {
                at_ms: attempt.at_ms,
                status: attempt.status,
                error: attempt
                    .error
                    .clone()
                    .or_else(|| attempt.status.map(|status| format!("HTTP {status}")))
                    .unwrap_or_default(),
            });
        }
        {
            let mut recent = self.recent.lock().expect("lock");
            if recent.len() == RECENT_ATTEMPTS {
                recent.pop_front();
            }
            recent.push_back((attempt.at_ms, attempt.latency_us, attempt.ok));
        }
        let mut log = self.attempt_log.lock().expect("lock");
        if log.len() == ATTEMPT_LOG {
            log.pop_front();
        }
        log.push_back(attempt);
    }

    /// The last attempts, newest first.
    pub fn attempt_log(&self) -> Vec<Attempted> {
        self.attempt_log
            .lock()
            .expect("lock")
            .iter()
            .rev()
            .cloned()
            .collect()
    }

    /// Statistics over the attempts of the last five minutes (at most the last 1,024).
    pub fn recent(&self, now_ms: u64) -> Recent {
        let recent = self.recent.lock().expect("lock");
        let since = now_ms.saturating_sub(RECENT_WINDOW_MS);
        let mut latencies: Vec<u64> = Vec::new();
        let mut ok = 0usize;
        for (at_ms, latency_us, success) in recent.iter().filter(|entry| entry.0 >= since) {
            let _ = at_ms;
            latencies.push(*latency_us);
            ok += usize::from(*success);
        }
        latencies.sort_unstable();
        let quantile = |q: f64| -> Option<f64> {
            if latencies.is_empty() {
                return None;
            }
            let index = ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len());
            Some(latencies[index - 1] as f64 / 1000.0)
        };
        Recent {
            window_seconds: RECENT_WINDOW_MS / 1000,
            attempts: latencies.len(),
            success_rate: (!latencies.is_empty()).then(|| ok as f64 / latencies.len() as f64),
            p50_ms: quantile(0.5),
            p99_ms: quantile(0.99),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_snapshot_is_cumulative() {
        let histogram = Histogram::default();
        // 0.5 ms, exactly 1 ms, 3 ms, 20 s (above every bound: only in the count).
        for micros in [500, 1_000, 3_000, 20_000_000] {
            histogram.observe_us(micros);
        }
        let (buckets, count, sum) = histogram.snapshot();
        assert_eq!(buckets, [2, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3]);
        assert_eq!(count, 4);
        assert!((sum - 20.0045).abs() < 1e-9);
    }

    #[test]
    fn recent_window_statistics() {
        let config = crate::config::parse(
            "subscribers:\n  a:\n    url: http://127.0.0.1:1/\nroutes:\n  - name: r\n    to: [a]\n",
            std::path::Path::new("t.yaml"),
            &|_| None,
        )
        .unwrap()
        .subscribers
        .remove(0);
        let control = Control::new(SubscriberId(1), config, false, None);
        assert_eq!(control.state(), "active");
        let attempt = |at_ms: u64, latency_us: u64, ok: bool, error: Option<&str>| Attempted {
            at_ms,
            event: Arc::new(EventIdentity {
                id: format!("e-{latency_us}"),
                source: "/test".into(),
                event_type: "t".into(),
            }),
            seq: EventSeq(1),
            attempt: 1,
            status: error.is_none().then_some(500),
            latency_us,
            ok,
            error: error.map(str::to_owned),
        };
        for index in 0..100u64 {
            control.attempted(attempt(1_000_000, (index + 1) * 1000, index % 4 != 0, None));
        }
        // One old attempt outside the window does not count.
        control.attempted(attempt(1, 999_000_000, false, Some("refused")));
        let recent = control.recent(1_000_000);
        assert_eq!(recent.attempts, 100);
        assert_eq!(recent.success_rate, Some(0.75));
        assert_eq!(recent.p50_ms, Some(50.0));
        assert_eq!(recent.p99_ms, Some(99.0));
        assert_eq!(control.last_error().unwrap().error, "refused");
        control.set_paused(true);
        assert_eq!(control.state(), "paused");
        assert!(!control.may_deliver());
        let (buckets, count, _) = control.latency.snapshot();
        assert_eq!(count, 101);
        assert_eq!(buckets[0], 1, "1 ms bucket holds only the 1 ms attempt");
        let log = control.attempt_log();
        assert_eq!(log.len(), ATTEMPT_LOG, "the log is bounded");
        assert_eq!(log[0].error.as_deref(), Some("refused"), "newest first");
        assert_eq!(log[1].event.id, "e-100000");
    }
}
