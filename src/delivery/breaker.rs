//! The per-subscriber circuit breaker. Pure (time is passed in): the dispatcher asks it before
//! starting an attempt and tells it every outcome.
//!
//! Closed: attempts flow. It opens after `failures` failures in a row, or when at least
//! `min_requests` attempts in the last `window` include a `failure_rate` share of failures.
//! Open: no attempt starts (so no retry budget is spent) until `open_for` has passed. Half-open:
//! exactly one attempt (the probe) goes; success closes the breaker, failure opens it again.
//! Only failures that speak of the endpoint's health count: connection errors, timeouts and
//! retryable statuses, not a 4xx that rejects one message.

use std::collections::VecDeque;

use crate::config::BreakerPolicy;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Closed,
    /// Until this time (ms since the epoch).
    Open {
        until_ms: u64,
    },
    /// One probe may go (`probing`: it is in flight).
    HalfOpen {
        probing: bool,
    },
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open { .. } => "open",
            State::HalfOpen { .. } => "half_open",
        }
    }
}

/// May an attempt start now?
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permit {
    Yes,
    /// Yes, as the half-open probe: only this one.
    Probe,
    /// No; ask again at this time (ms), or when the probe in flight finishes (`None`).
    No(Option<u64>),
}

/// A change of state worth telling operators about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    Opened { until_ms: u64 },
    HalfOpened,
    Closed,
}

#[derive(Debug)]
pub struct Breaker {
    policy: BreakerPolicy,
    state: State,
    consecutive: u32,
    /// (time, failed) of the attempts in the window.
    window: VecDeque<(u64, bool)>,
}

impl Breaker {
    pub fn new(policy: BreakerPolicy) -> Breaker {
        Breaker {
            policy,
            state: State::Closed,
            consecutive: 0,
            window: VecDeque::new(),
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// Follows a changed policy (a reload) without forgetting the state.
    pub fn set_policy(&mut self, policy: BreakerPolicy) {
        self.policy = policy;
    }

    /// Whether an attempt may start; moves from open to half-open when the time has come.
    pub fn permit(&mut self, now_ms: u64) -> (Permit, Option<Transition>) {
        match self.state {
            State::Closed => (Permit::Yes, None),
            State::Open { until_ms } if now_ms < until_ms => (Permit::No(Some(until_ms)), None),
            State::Open { .. } => {
                self.state = State::HalfOpen { probing: true };
                (Permit::Probe, Some(Transition::HalfOpened))
            }
            State::HalfOpen { probing: true } => (Permit::No(None), None),
            State::HalfOpen { probing: false } => {
                self.state = State::HalfOpen { probing: true };
                (Permit::Probe, None)
            }
        }
    }

    /// Gives back a probe permit that was not used (the rate limit held the attempt back).
    pub fn cancel_probe(&mut self) {
        if self.state == (State::HalfOpen { probing: true }) {
            self.state = State::HalfOpen { probing: false };
        }
    }

    /// Records an outcome: `failed` is true for a failure that counts.
    pub fn record(&mut self, now_ms: u64, failed: bool) -> Option<Transition> {
        let window_ms = u64::try_from(self.policy.window.as_millis()).unwrap_or(u64::MAX);
        self.window.push_back((now_ms, failed));
        while self
            .window
            .front()
            .is_some_and(|(at, _)| now_ms.saturating_sub(*at) > window_ms)
        {
            self.window.pop_front();
        }
        self.consecutive = if failed { self.consecutive + 1 } else { 0 };
        let open_until =
            now_ms + u64::try_from(self.policy.open_for.as_millis()).unwrap_or(u64::MAX);
        match (self.state, failed) {
            (State::HalfOpen { .. }, false) => {
                self.state = State::Closed;
                self.window.clear();
                Some(Transition::Closed)
            }
            (State::HalfOpen { .. }, true) => {
                self.state = State::Open {
                    until_ms: open_until,
                };
                Some(Transition::Opened {
                    until_ms: open_until,
                })
            }
            (State::Closed, true) if self.tripped() => {
                self.state = State::Open {
                    until_ms: open_until,
                };
                Some(Transition::Opened {
                    until_ms: open_until,
                })
            }
            // Outcomes of attempts that started before the breaker opened change nothing more.
            _ => None,
        }
    }

    fn tripped(&self) -> bool {
        if self.consecutive >= self.policy.failures {
            return true;
        }
        let total = self.window.len();
        let failed = self.window.iter().filter(|(_, failed)| *failed).count();
        total >= self.policy.min_requests as usize
            && total > 0
            && failed as f64 / total as f64 >= self.policy.failure_rate
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn breaker() -> Breaker {
        Breaker::new(BreakerPolicy {
            failures: 3,
            failure_rate: 0.5,
            window: Duration::from_secs(10),
            min_requests: 10,
            open_for: Duration::from_secs(5),
        })
    }

    #[test]
    fn opens_after_failures_in_a_row_probes_once_and_closes() {
        let mut breaker = breaker();
        assert_eq!(breaker.record(0, true), None);
        assert_eq!(
            breaker.record(1, false),
            None,
            "a success resets the streak"
        );
        assert_eq!(breaker.record(2, true), None);
        assert_eq!(breaker.record(3, true), None);
        assert_eq!(
            breaker.record(4, true),
            Some(Transition::Opened { until_ms: 5_004 })
        );
        assert_eq!(breaker.permit(100), (Permit::No(Some(5_004)), None));
        assert_eq!(
            breaker.permit(5_004),
            (Permit::Probe, Some(Transition::HalfOpened))
        );
        assert_eq!(
            breaker.permit(5_005),
            (Permit::No(None), None),
            "one probe only"
        );
        assert_eq!(
            breaker.record(5_010, true),
            Some(Transition::Opened { until_ms: 10_010 })
        );
        assert_eq!(breaker.permit(10_010).0, Permit::Probe);
        assert_eq!(breaker.record(10_020, false), Some(Transition::Closed));
        assert_eq!(breaker.permit(10_021), (Permit::Yes, None));
    }

    #[test]
    fn opens_on_a_failure_rate_with_a_minimum_count() {
        let mut breaker = breaker();
        // Alternating: never three in a row; 5 of 9 failed is under the minimum count.
        for at in 0..9u64 {
            assert_eq!(breaker.record(at, at % 2 == 0), None, "{at}");
        }
        assert_eq!(
            breaker.record(9, true),
            Some(Transition::Opened { until_ms: 5_009 }),
            "6 of 10 failed"
        );
        // Old attempts leave the window.
        let mut breaker = self::breaker();
        for at in 0..9u64 {
            breaker.record(at, at % 2 == 0);
        }
        assert_eq!(breaker.record(20_000, false), None);
    }
}
