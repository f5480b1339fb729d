//! The per-subscriber rate limit: a token bucket. Pure (time is passed in), so the dispatcher
//! only asks it before starting an attempt and sleeps for the wait it returns; an attempt over
//! the limit waits, it does not fail.

use crate::config::RateLimit;

/// A token bucket refilled at `per_second`, holding at most `burst` tokens.
#[derive(Debug)]
pub struct TokenBucket {
    limit: RateLimit,
    tokens: f64,
    /// When `tokens` was last brought up to date (ms since the epoch).
    updated_ms: u64,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(limit: RateLimit, now_ms: u64) -> TokenBucket {
        TokenBucket {
            limit,
            tokens: f64::from(limit.burst),
            updated_ms: now_ms,
        }
    }

    /// Follows a changed limit (a reload), keeping the tokens it has (capped at the new burst).
    pub fn set_limit(&mut self, limit: RateLimit) {
        self.limit = limit;
        self.tokens = self.tokens.min(f64::from(limit.burst));
    }

    fn refill(&mut self, now_ms: u64) {
        let elapsed = now_ms.saturating_sub(self.updated_ms) as f64 / 1000.0;
        self.tokens =
            (self.tokens + elapsed * self.limit.per_second).min(f64::from(self.limit.burst));
        self.updated_ms = self.updated_ms.max(now_ms);
    }

    /// Takes a token, or says when the next one is there (ms since the epoch).
    ///
    /// # Errors
    /// No token now: the time at which one will be.
    pub fn take(&mut self, now_ms: u64) -> Result<(), u64> {
        self.refill(now_ms);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            let wait_ms = ((1.0 - self.tokens) / self.limit.per_second * 1000.0).ceil() as u64;
            Err(now_ms + wait_ms.max(1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_spaces_attempts_at_the_rate() {
        let mut bucket = TokenBucket::new(
            RateLimit {
                per_second: 10.0,
                burst: 3,
            },
            1_000,
        );
        for _ in 0..3 {
            assert_eq!(bucket.take(1_000), Ok(()));
        }
        assert_eq!(bucket.take(1_000), Err(1_100));
        assert_eq!(bucket.take(1_050), Err(1_100));
        assert_eq!(bucket.take(1_100), Ok(()));
        assert_eq!(bucket.take(1_100), Err(1_200));
        // A long pause refills only up to the burst.
        for _ in 0..3 {
            assert_eq!(bucket.take(60_000), Ok(()));
        }
        assert!(bucket.take(60_000).is_err());
        // Over one simulated minute, at most rate x time + burst attempts start.
        let mut started = 0;
        let mut now = 100_000;
        let mut bucket = TokenBucket::new(
            RateLimit {
                per_second: 50.0,
                burst: 10,
            },
            now,
        );
        while now < 160_000 {
            match bucket.take(now) {
                Ok(()) => started += 1,
                Err(at) => now = at,
            }
        }
        assert!((3_000..=3_010).contains(&started), "{started}");
    }
}
