//! Adaptive concurrency: how many attempts one subscriber has in flight, between 1 and its
//! `concurrency`, chosen from the round-trip times its attempts see.
//!
//! A fixed limit is wrong both ways. Too low, and a slow endpoint (or a long network path) gets
//! fewer deliveries than it could take. Too high, and once the endpoint, or fanout's own CPU,
//! is the bottleneck, more attempts in flight add only queueing: every connection costs memory,
//! wake-ups and cache, and the endpoint sees a burst. So the limit follows the gradient of the
//! round-trip time, as Netflix's concurrency-limits `Gradient` does (Vector's adaptive request
//! concurrency is the same idea with an additive step):
//!
//! - The lowest round-trip time of the last two windows is the *no-load* time.
//! - Each period (one mean round trip, at least [`MIN_PERIOD`]), the new limit is
//!   `limit × min(no_load / mean, 1) + queue`: while the round trip stays at the no-load
//!   time the limit grows by `queue`; as attempts start to wait, it shrinks toward the
//!   concurrency that holds the rate plus `queue` waiting. Decreases are smoothed, so one noisy
//!   period cannot halve it.
//! - `queue` is this subscriber's share of [`QUEUE_BUDGET`]: the budget divided by the
//!   subscribers with attempts in flight. The bottleneck is often fanout's own CPU, shared by
//!   every subscriber, and past a dozen or two attempts in flight in all each one more costs CPU
//!   (connections, wake-ups, cache) without adding rate. So one busy subscriber may queue up to
//!   the budget, and sixteen busy ones a sixteenth each. An endpoint whose round trip does not
//!   grow with load (a slow but roomy one) still gets all of its `concurrency`, whatever the
//!   share: its gradient stays 1.
//! - Backpressure (429, 503, a timeout or a connection error) cuts the limit by
//!   [`BACKOFF_RATIO`] at most once a period, whatever the round trips say.
//! - A period that never filled the limit does not raise it (the subscriber had no more work,
//!   so the round trip says nothing about a higher limit).
//!
//! Pure: time comes in as an argument, so the tests drive it with synthetic clocks.

use std::time::{Duration, Instant};

/// Shortest adjustment period (loopback round trips are tens of microseconds: a period of one
/// round trip would hold one or two samples).
pub const MIN_PERIOD: Duration = Duration::from_millis(2);
/// The no-load round trip is the lowest of this window and the one before it, so it can rise
/// again when the path really gets slower.
pub const MIN_RTT_WINDOW: Duration = Duration::from_secs(10);
/// Attempts that may wait beyond the no-load concurrency, shared by the busy subscribers. On
/// loopback at fan-out 16 the delivery measured cheapest with one or two attempts in flight per
/// subscriber, 16 to 32 in all: each one more holds a connection, its buffers and its wake-ups
/// (2026-12-07: 16 against 32, alternating, 73-75 % of B3 against 69-70 %, with the cursor no
/// longer written per finished attempt; 48 and 64 were slower still).
pub const QUEUE_BUDGET: usize = 16;
/// The multiplicative decrease on backpressure.
pub const BACKOFF_RATIO: f64 = 0.9;
/// How much of a computed decrease is taken per period.
const DECREASE_SMOOTHING: f64 = 0.2;

/// The limit of one subscriber and what it is computed from.
#[derive(Debug)]
pub struct Adaptive {
    max: usize,
    limit: f64,
    /// Lowest round trip of the current window, and of the one before (µs).
    min_current: u64,
    min_previous: u64,
    window_started: Instant,
    period: Period,
}

/// Round trips seen in a period (µs).
#[derive(Debug, Default)]
struct Samples {
    sum_us: u64,
    count: u64,
}

impl Samples {
    fn add(&mut self, rtt_us: u64) {
        self.sum_us = self.sum_us.saturating_add(rtt_us);
        self.count += 1;
    }

    fn mean_us(&self) -> Option<u64> {
        self.sum_us.checked_div(self.count)
    }
}

#[derive(Debug)]
struct Period {
    started: Instant,
    /// Round trips of the attempts that were not backpressure (the gradient's samples).
    ok: Samples,
    /// Round trips of every attempt (the period's length); more of them than `ok` means the
    /// period had backpressure.
    all: Samples,
    /// Most attempts in flight at once during the period.
    peak_in_flight: usize,
}

impl Period {
    fn new(started: Instant, in_flight: usize) -> Period {
        Period {
            started,
            ok: Samples::default(),
            all: Samples::default(),
            peak_in_flight: in_flight,
        }
    }
}

impl Adaptive {
    /// Starts at one attempt in flight, at most `max`.
    pub fn new(max: usize, now: Instant) -> Adaptive {
        Adaptive {
            max: max.max(1),
            limit: 1.0,
            min_current: u64::MAX,
            min_previous: u64::MAX,
            window_started: now,
            period: Period::new(now, 0),
        }
    }

    /// How many attempts may be in flight now.
    pub fn limit(&self) -> usize {
        // Truncation is the point: a limit of 2.7 allows 2 in flight.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let limit = self.limit as usize;
        limit.clamp(1, self.max)
    }

    /// The no-load round trip (µs) the limit is computed from (`None`: no sample yet).
    pub fn no_load_us(&self) -> Option<u64> {
        Some(self.min_current.min(self.min_previous)).filter(|us| *us != u64::MAX)
    }

    /// The most in flight: the subscriber's `concurrency` (after a reload, the new one).
    pub fn set_max(&mut self, max: usize) {
        self.max = max.max(1);
        self.limit = self.limit.min(self.max as f64);
    }

    /// An attempt started; `in_flight` counts it.
    pub fn started(&mut self, in_flight: usize) {
        self.period.peak_in_flight = self.period.peak_in_flight.max(in_flight);
    }

    /// An attempt that took `rtt` ended at `now`; `in_flight` no longer counts it. `busy` is
    /// how many subscribers have attempts in flight (this one included): they share
    /// [`QUEUE_BUDGET`].
    pub fn finished(
        &mut self,
        now: Instant,
        rtt: Duration,
        backpressure: bool,
        in_flight: usize,
        busy: usize,
    ) {
        let rtt_us = u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX).max(1);
        let idle = now.duration_since(self.window_started);
        if idle >= MIN_RTT_WINDOW {
            // After an idle spell of two windows or more, the last window is stale too.
            self.min_previous = if idle >= 2 * MIN_RTT_WINDOW {
                u64::MAX
            } else {
                self.min_current
            };
            self.min_current = u64::MAX;
            self.window_started = now;
        }
        self.period.all.add(rtt_us);
        if !backpressure {
            self.min_current = self.min_current.min(rtt_us);
            self.period.ok.add(rtt_us);
        }
        // Timeouts and 503s count for the length too: one cut per round trip, not per answer.
        let length = Duration::from_micros(self.period.all.mean_us().unwrap_or(0)).max(MIN_PERIOD);
        if now.duration_since(self.period.started) < length {
            return;
        }
        #[allow(clippy::cast_precision_loss)]
        let queue = (QUEUE_BUDGET as f64 / busy.max(1) as f64).max(1.0);
        self.adjust(queue);
        self.period = Period::new(now, in_flight);
    }

    fn adjust(&mut self, queue: f64) {
        let max = self.max as f64;
        if self.period.all.count > self.period.ok.count {
            self.limit = (self.limit * BACKOFF_RATIO).max(1.0);
            return;
        }
        let (Some(mean_us), Some(no_load)) = (self.period.ok.mean_us(), self.no_load_us()) else {
            return;
        };
        #[allow(clippy::cast_precision_loss)]
        let gradient = (no_load as f64 / mean_us as f64).min(1.0);
        let mut target = self.limit * gradient + queue;
        // Truncation as in `limit`: whether the period ever had the limit's worth in flight.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let filled = self.period.peak_in_flight >= self.limit as usize;
        if !filled {
            target = target.min(self.limit);
        }
        self.limit = if target < self.limit {
            self.limit + (target - self.limit) * DECREASE_SMOOTHING
        } else {
            target
        }
        .clamp(1.0, max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `periods` adjustment periods in which the subscriber, one of `busy`, keeps the limit
    /// full and every attempt takes `rtt_us(limit)`.
    fn drive(
        adaptive: &mut Adaptive,
        now: &mut Instant,
        (periods, busy): (usize, usize),
        rtt_us: impl Fn(usize) -> u64,
    ) {
        for _ in 0..periods {
            let limit = adaptive.limit();
            let rtt = Duration::from_micros(rtt_us(limit));
            for _ in 0..limit {
                adaptive.started(limit);
            }
            *now += rtt.max(MIN_PERIOD);
            for _ in 0..limit {
                adaptive.finished(*now, rtt, false, limit - 1, busy);
            }
        }
    }

    #[test]
    fn a_roomy_endpoint_gets_the_maximum_however_many_subscribers_are_busy() {
        let mut now = Instant::now();
        let mut adaptive = Adaptive::new(64, now);
        assert_eq!(adaptive.limit(), 1);
        // A slow endpoint that takes 2 s whatever the load: more in flight is more throughput,
        // even with a queue share of 1.
        drive(&mut adaptive, &mut now, (80, 200), |_| 2_000_000);
        assert_eq!(adaptive.limit(), 64);
    }

    /// A bottleneck shared by every subscriber that serves 40,000 deliveries/s at best, 100 µs
    /// at no load: past 4 in flight in all, each one more only waits (Little's law).
    fn shared_bottleneck(busy: usize) -> impl Fn(usize) -> u64 {
        move |limit| 100.max((limit * busy) as u64 * 25)
    }

    #[test]
    fn busy_subscribers_settle_where_their_shares_of_the_queue_are_full() {
        for busy in [1, 4, 16] {
            let mut now = Instant::now();
            let mut adaptive = Adaptive::new(256, now);
            drive(
                &mut adaptive,
                &mut now,
                (400, busy),
                shared_bottleneck(busy),
            );
            let in_all = adaptive.limit() * busy;
            // The no-load concurrency (4, or one each when more are busy), plus the budget
            // waiting, give or take rounding; far below the 256 each would be allowed.
            assert!(
                (QUEUE_BUDGET - 2..=QUEUE_BUDGET + 20).contains(&in_all),
                "{busy} busy subscribers settled at {in_all} in flight in all"
            );
        }
    }

    #[test]
    fn backpressure_cuts_the_limit_to_its_floor_and_it_grows_again() {
        let mut now = Instant::now();
        let mut adaptive = Adaptive::new(32, now);
        drive(&mut adaptive, &mut now, (20, 8), |_| 1_000);
        assert_eq!(adaptive.limit(), 32);
        // 503s after 10 ms: down by a tenth per period (one round trip), however many answers
        // come in it, to 1 at the least.
        for _ in 0..32 {
            now += Duration::from_millis(1);
            adaptive.finished(now, Duration::from_millis(10), true, 31, 8);
        }
        // 32 answers in 32 ms make three or four periods of a round trip (a cut per answer
        // would leave 5).
        assert!(adaptive.limit() >= 20, "{}", adaptive.limit());
        for _ in 0..400 {
            now += MIN_PERIOD;
            adaptive.finished(now, Duration::from_millis(1), true, 0, 8);
        }
        assert_eq!(adaptive.limit(), 1);
        // The endpoint is back: it grows again.
        drive(&mut adaptive, &mut now, (20, 8), |_| 1_000);
        assert_eq!(adaptive.limit(), 32);
    }

    #[test]
    fn a_period_that_never_filled_the_limit_does_not_raise_it() {
        let mut now = Instant::now();
        let mut adaptive = Adaptive::new(64, now);
        drive(&mut adaptive, &mut now, (1, 16), |_| 1_000);
        let reached = adaptive.limit();
        assert!(reached > 1 && reached < 64, "{reached}");
        // Only one delivery at a time is ever pending: the round trips say nothing of more.
        for _ in 0..50 {
            adaptive.started(1);
            now += MIN_PERIOD;
            adaptive.finished(now, Duration::from_millis(1), false, 0, 16);
        }
        assert_eq!(adaptive.limit(), reached);
    }

    #[test]
    fn after_an_idle_spell_the_no_load_time_is_measured_again() {
        let mut now = Instant::now();
        let mut adaptive = Adaptive::new(8, now);
        drive(&mut adaptive, &mut now, (3, 1), |_| 100);
        assert_eq!(adaptive.no_load_us(), Some(100));
        // Idle for three windows; the path is slower now.
        now += 3 * MIN_RTT_WINDOW;
        adaptive.started(1);
        adaptive.finished(now, Duration::from_millis(5), false, 0, 1);
        assert_eq!(adaptive.no_load_us(), Some(5_000));
    }

    #[test]
    fn a_lower_maximum_applies_at_once() {
        let mut now = Instant::now();
        let mut adaptive = Adaptive::new(32, now);
        drive(&mut adaptive, &mut now, (20, 1), |_| 1_000);
        adaptive.set_max(4);
        assert_eq!(adaptive.limit(), 4);
        adaptive.set_max(0);
        assert_eq!(adaptive.limit(), 1);
    }
}
