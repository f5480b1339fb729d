//! The delivery state machine's one decision: after an attempt, is the delivery done, retried
//! (when), dead (why), or is the subscriber to be disabled? Pure: time and randomness come in
//! as arguments.
//!
//! `pending(next_at) → in_flight → delivered | pending(next_at') | dead(reason)`; a 410 parks the
//! delivery as pending and disables the subscriber.

use std::time::Duration;

use crate::config::RetryPolicy;
use crate::store::millis;

use super::outcome::Outcome;

/// What to do with a delivery after an attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Delivered,
    Retry {
        at_ms: u64,
    },
    Dead {
        reason: String,
    },
    /// Keep the delivery pending and stop delivering to this subscriber.
    Disable {
        reason: String,
    },
}

/// The delay before the next attempt after `attempts` failed ones: exponential from
/// `initial_interval` by `multiplier`, capped at `max_interval`, spread by ±`jitter`.
/// `unit_random` is drawn uniformly from [0, 1).
pub fn backoff(policy: &RetryPolicy, attempts: u32, unit_random: f64) -> Duration {
    let exponent = i32::try_from(attempts.saturating_sub(1)).unwrap_or(i32::MAX);
    let max = policy.max_interval.as_secs_f64();
    let nominal =
        (policy.initial_interval.as_secs_f64() * policy.multiplier.powi(exponent)).min(max);
    let jittered = nominal * (1.0 + policy.jitter * (2.0 * unit_random - 1.0));
    Duration::from_secs_f64(jittered.clamp(0.0, max))
}

/// Decides after attempt number `attempts` (1 for the first) of a delivery first tried at
/// `first_attempt_ms`.
pub fn decide(
    policy: &RetryPolicy,
    outcome: &Outcome,
    attempts: u32,
    first_attempt_ms: u64,
    now_ms: u64,
    unit_random: f64,
) -> Decision {
    match outcome {
        Outcome::Success { .. } => Decision::Delivered,
        Outcome::Gone => Decision::Disable {
            reason: "subscriber answered 410 Gone".into(),
        },
        Outcome::Permanent { status } => Decision::Dead {
            reason: format!("permanent failure: HTTP {status}"),
        },
        Outcome::Refused { reason } => Decision::Dead {
            reason: format!("permanent failure: {reason}"),
        },
        Outcome::Retryable {
            status,
            error,
            retry_after,
        } => {
            let last = match (status, error) {
                (Some(status), _) => format!("HTTP {status}"),
                (None, Some(error)) => error.clone(),
                (None, None) => "unknown error".into(),
            };
            if attempts >= policy.max_attempts {
                return Decision::Dead {
                    reason: format!("exhausted {attempts} attempts; last: {last}"),
                };
            }
            let delay = match retry_after {
                // Honour the subscriber's Retry-After, within [initial_interval, max_interval].
                Some(after) => (*after).clamp(policy.initial_interval, policy.max_interval),
                None => backoff(policy, attempts, unit_random),
            };
            let at_ms = now_ms.saturating_add(millis(delay));
            if at_ms > first_attempt_ms.saturating_add(millis(policy.max_age)) {
                return Decision::Dead {
                    reason: format!(
                        "gave up after {attempts} attempts: max_age reached; last: {last}"
                    ),
                };
            }
            Decision::Retry { at_ms }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RetryOn;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            initial_interval: Duration::from_secs(1),
            multiplier: 2.0,
            max_interval: Duration::from_secs(3600),
            jitter: 0.2,
            max_attempts: 12,
            max_age: Duration::from_secs(24 * 3600),
            retry_on: RetryOn {
                codes: vec![429],
                classes: vec![5],
            },
        }
    }

    #[test]
    fn backoff_grows_exponentially_with_bounded_jitter() {
        let policy = policy();
        for (attempts, nominal) in [
            (1, 1.0),
            (2, 2.0),
            (3, 4.0),
            (6, 32.0),
            (12, 2048.0),
            (13, 3600.0),
            (40, 3600.0),
        ] {
            assert_eq!(
                backoff(&policy, attempts, 0.5).as_secs_f64(),
                nominal,
                "attempts {attempts}"
            );
            let low = backoff(&policy, attempts, 0.0).as_secs_f64();
            let high = backoff(&policy, attempts, 0.999_999).as_secs_f64();
            assert!((low - nominal * 0.8).abs() < 1e-6, "{attempts}: {low}");
            assert!(
                high <= 3600.0 && high >= (nominal * 1.19).min(3600.0),
                "{attempts}: {high}"
            );
        }
        let no_jitter = RetryPolicy {
            jitter: 0.0,
            ..policy
        };
        assert_eq!(backoff(&no_jitter, 3, 0.0), Duration::from_secs(4));
    }

    fn retryable(status: u16, after: Option<u64>) -> Outcome {
        Outcome::Retryable {
            status: Some(status),
            error: None,
            retry_after: after.map(Duration::from_secs),
        }
    }

    #[test]
    fn decides_by_outcome_attempts_and_age() {
        let policy = RetryPolicy {
            jitter: 0.0,
            ..policy()
        };
        let now: u64 = 1_000_000_000;
        assert_eq!(
            decide(&policy, &Outcome::Success { status: 200 }, 1, now, now, 0.5),
            Decision::Delivered
        );
        assert_eq!(
            decide(&policy, &retryable(500, None), 1, now, now, 0.5),
            Decision::Retry { at_ms: now + 1_000 }
        );
        assert_eq!(
            decide(&policy, &retryable(500, None), 3, now, now, 0.5),
            Decision::Retry { at_ms: now + 4_000 }
        );
        assert_eq!(
            decide(&policy, &retryable(503, Some(30)), 1, now, now, 0.5),
            Decision::Retry {
                at_ms: now + 30_000
            }
        );
        // Retry-After is clamped to [initial_interval, max_interval].
        assert_eq!(
            decide(&policy, &retryable(429, Some(0)), 1, now, now, 0.5),
            Decision::Retry { at_ms: now + 1_000 }
        );
        assert_eq!(
            decide(&policy, &retryable(429, Some(86_400)), 1, now, now, 0.5),
            Decision::Retry {
                at_ms: now + 3_600_000
            }
        );
        let transport = Outcome::Retryable {
            status: None,
            error: Some("connection refused".into()),
            retry_after: None,
        };
        assert!(
            matches!(decide(&policy, &transport, 12, now, now, 0.5), Decision::Dead { reason } if reason.contains("connection refused") && reason.contains("12"))
        );
        assert!(matches!(
            decide(&policy, &retryable(500, None), 12, now, now, 0.5),
            Decision::Dead { .. }
        ));
        // The next attempt would start after max_age.
        let old = now - 24 * 3_600_000 + 500;
        assert!(
            matches!(decide(&policy, &retryable(500, None), 2, old, now, 0.5), Decision::Dead { reason } if reason.contains("max_age"))
        );
        assert!(
            matches!(decide(&policy, &Outcome::Permanent { status: 400 }, 1, now, now, 0.5), Decision::Dead { reason } if reason.contains("400"))
        );
        assert!(matches!(
            decide(&policy, &Outcome::Gone, 1, now, now, 0.5),
            Decision::Disable { .. }
        ));
    }
}
