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
//!   `limit × clamp(no_load / mean, 0.5, 1) + √limit`: while the round trip stays at the no-load
//!   time the limit grows by its square root (a queue of √limit is allowed); as attempts start to
//!   wait, it shrinks toward the concurrency that holds the rate. Decreases are smoothed, so one
//!   noisy period cannot halve it.
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

#[derive(Debug)]
struct Period {
    started: Instant,
    sum_us: u64,
    count: u64,
    /// Most attempts in flight at once during the period.
    peak_in_flight: usize,
    backpressure: bool,
}

impl Period {
    fn new(started: Instant, in_flight: usize) -> Period {
        Period {
            started,
            sum_us: 0,
            count: 0,
            peak_in_flight: in_flight,
            backpressure: false,
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

    /// An attempt that took `rtt` ended at `now`; `in_flight` no longer counts it.
    pub fn finished(&mut self, now: Instant, rtt: Duration, backpressure: bool, in_flight: usize) {
        let rtt_us = u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX).max(1);
        if now.duration_since(self.window_started) >= MIN_RTT_WINDOW {
            self.min_previous = self.min_current;
            self.min_current = u64::MAX;
            self.window_started = now;
        }
        if backpressure {
            self.period.backpressure = true;
        } else {
            self.min_current = self.min_current.min(rtt_us);
            self.period.sum_us = self.period.sum_us.saturating_add(rtt_us);
            self.period.count += 1;
        }
        let mean_us = self
            .period
            .sum_us
            .checked_div(self.period.count)
            .unwrap_or(0);
        let length = Duration::from_micros(mean_us).max(MIN_PERIOD);
        if now.duration_since(self.period.started) < length {
            return;
        }
        self.adjust(mean_us);
        self.period = Period::new(now, in_flight);
    }

    fn adjust(&mut self, mean_us: u64) {
        let max = self.max as f64;
        if self.period.backpressure {
            self.limit = (self.limit * BACKOFF_RATIO).max(1.0);
            return;
        }
        if self.period.count == 0 {
            return;
        }
        let no_load = self.min_current.min(self.min_previous);
        #[allow(clippy::cast_precision_loss)]
        let gradient = (no_load as f64 / mean_us as f64).clamp(0.5, 1.0);
        let mut target = self.limit * gradient + self.limit.sqrt();
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

    /// Runs `periods` adjustment periods in which the subscriber keeps the limit full and every
    /// attempt takes `rtt_us(limit)`; returns the limit after them.
    fn drive(
        adaptive: &mut Adaptive,
        now: &mut Instant,
        periods: usize,
        rtt_us: impl Fn(usize) -> u64,
    ) {
        for _ in 0..periods {
            let limit = adaptive.limit();
            let rtt = Duration::from_micros(rtt_us(limit));
            let step = rtt.max(MIN_PERIOD);
            for _ in 0..limit {
                adaptive.started(limit);
            }
            *now += step;
            for _ in 0..limit {
                adaptive.finished(*now, rtt, false, limit - 1);
            }
        }
    }

    #[test]
    fn grows_to_the_maximum_while_the_round_trip_does_not_change() {
        let mut now = Instant::now();
        let mut adaptive = Adaptive::new(64, now);
        assert_eq!(adaptive.limit(), 1);
        // A slow endpoint that takes 2 s whatever the load: more in flight is more throughput.
        drive(&mut adaptive, &mut now, 20, |_| 2_000_000);
        assert_eq!(adaptive.limit(), 64);
    }

    #[test]
    fn settles_where_the_round_trip_starts_to_grow() {
        let mut now = Instant::now();
        let mut adaptive = Adaptive::new(256, now);
        // A bottleneck that serves 40,000 deliveries/s at best, 100 µs at no load: past 4 in
        // flight, each one more only waits (Little's law).
        let rtt = |limit: usize| 100.max(limit as u64 * 25);
        drive(&mut adaptive, &mut now, 400, rtt);
        let settled = adaptive.limit();
        assert!(
            (4..=16).contains(&settled),
            "settled at {settled} in flight (the bottleneck is full from 4)"
        );
        // Far below the maximum, and the throughput kept: 40,000/s from 4 in flight on.
        assert!(settled * 1_000_000 / rtt(settled) as usize >= 39_000);
    }

    #[test]
    fn backpressure_cuts_the_limit_to_its_floor_and_it_grows_again() {
        let mut now = Instant::now();
        let mut adaptive = Adaptive::new(32, now);
        drive(&mut adaptive, &mut now, 20, |_| 1_000);
        assert_eq!(adaptive.limit(), 32);
        // 503s: down by a tenth per period, to 1 at the least.
        for _ in 0..200 {
            now += MIN_PERIOD;
            adaptive.finished(now, Duration::from_millis(1), true, 0);
        }
        assert_eq!(adaptive.limit(), 1);
        // The endpoint is back: it grows again.
        drive(&mut adaptive, &mut now, 20, |_| 1_000);
        assert_eq!(adaptive.limit(), 32);
    }

    #[test]
    fn a_period_that_never_filled_the_limit_does_not_raise_it() {
        let mut now = Instant::now();
        let mut adaptive = Adaptive::new(32, now);
        drive(&mut adaptive, &mut now, 3, |_| 1_000);
        let reached = adaptive.limit();
        assert!(reached > 1);
        // Only one delivery at a time is ever pending: the round trips say nothing of more.
        for _ in 0..50 {
            adaptive.started(1);
            now += MIN_PERIOD;
            adaptive.finished(now, Duration::from_millis(1), false, 0);
        }
        assert_eq!(adaptive.limit(), reached);
    }

    #[test]
    fn a_lower_maximum_applies_at_once() {
        let mut now = Instant::now();
        let mut adaptive = Adaptive::new(32, now);
        drive(&mut adaptive, &mut now, 20, |_| 1_000);
        adaptive.set_max(4);
        assert_eq!(adaptive.limit(), 4);
        adaptive.set_max(0);
        assert_eq!(adaptive.limit(), 1);
    }
}
