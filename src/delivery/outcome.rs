//! What an attempt's result means: success, retry (maybe after a `Retry-After`), permanent
//! failure, or `410 Gone`. Pure, so the table of cases below is the whole specification.

use std::time::{Duration, SystemTime};

use crate::config::RetryOn;

/// The classified result of one attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx: delivered.
    Success { status: u16 },
    /// Worth trying again: a connection error, a timeout, or a status in the retryable set.
    Retryable {
        status: Option<u16>,
        error: Option<String>,
        retry_after: Option<Duration>,
    },
    /// Any other non-2xx: straight to the dead letters.
    Permanent { status: u16 },
    /// Not sent, and never will be: the outbound policy refuses the destination.
    Refused { reason: String },
    /// 410: the subscriber is gone; stop delivering to it.
    Gone,
}

/// Classifies an HTTP response. `now` is read only to resolve a `Retry-After` date, so a success
/// costs no clock read.
pub fn classify(
    status: u16,
    retry_after: Option<&str>,
    retry_on: &RetryOn,
    now: impl FnOnce() -> SystemTime,
) -> Outcome {
    match status {
        200..=299 => Outcome::Success { status },
        410 => Outcome::Gone,
        _ if retry_on.contains(status) => Outcome::Retryable {
            status: Some(status),
            error: None,
            retry_after: retry_after.and_then(|value| parse_retry_after(value, now())),
        },
        _ => Outcome::Permanent { status },
    }
}

/// Parses a `Retry-After` value: delay seconds or an HTTP date (RFC 9110 section 10.2.3).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retry_on() -> RetryOn {
        RetryOn {
            codes: vec![408, 429],
            classes: vec![5],
        }
    }

    #[track_caller]
    fn check(status: u16, retry_after: Option<&str>, expected: Outcome) {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(classify(status, retry_after, &retry_on(), || now), expected);
    }

    fn retry(status: u16, after: Option<u64>) -> Outcome {
        Outcome::Retryable {
            status: Some(status),
            error: None,
            retry_after: after.map(Duration::from_secs),
        }
    }

    #[test]
    fn classifies_statuses() {
        check(200, None, Outcome::Success { status: 200 });
        check(204, None, Outcome::Success { status: 204 });
        check(500, None, retry(500, None));
        check(503, Some("7"), retry(503, Some(7)));
        check(
            429,
            Some("Tue, 14 Nov 2023 22:13:40 GMT"),
            retry(429, Some(20)),
        );
        check(
            429,
            Some("Tue, 14 Nov 2023 22:00:00 GMT"),
            retry(429, Some(0)),
        );
        check(429, Some("soon"), retry(429, None));
        check(408, None, retry(408, None));
        check(410, None, Outcome::Gone);
        check(400, None, Outcome::Permanent { status: 400 });
        check(404, None, Outcome::Permanent { status: 404 });
        check(301, None, Outcome::Permanent { status: 301 });
        check(100, None, Outcome::Permanent { status: 100 });
    }
}
