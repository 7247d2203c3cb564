//! Retry budget: a token bucket that bounds retries relative to real work.
//!
//! Every first attempt of a call earns `ratio` tokens and time earns `min_per_sec` tokens per
//! second; every retry spends one token. With no whole token, the retry waits until time has
//! earned one. So retries stay below `ratio` x first attempts + `min_per_sec` x seconds, which
//! caps how much an agent can amplify an outage, whatever its backoff and breaker do.
//!
//! The bucket holds at most what [`WINDOW`] of the floor plus [`WINDOW_FIRST_ATTEMPTS`] first
//! attempts earn, so a long quiet spell cannot bank an unbounded burst of retries. It starts
//! empty: a fleet that starts into an outage does not open with a burst.
//!
//! Pure arithmetic: every method takes `now`, so tests drive it with a fake clock.

use std::time::{Duration, Instant};

/// Seconds of floor income the bucket can hold.
pub const WINDOW: Duration = Duration::from_secs(10);
/// First attempts' worth of income the bucket can hold.
pub const WINDOW_FIRST_ATTEMPTS: f64 = 10.0;

#[derive(Debug, Clone)]
pub struct RetryBudget {
    ratio: f64,
    min_per_sec: f64,
    capacity: f64,
    tokens: f64,
    refilled_at: Instant,
}

impl RetryBudget {
    /// `ratio` >= 0 and `min_per_sec` > 0 (the configuration enforces both).
    pub fn new(ratio: f64, min_per_sec: f64, now: Instant) -> RetryBudget {
        let capacity =
            (min_per_sec * WINDOW.as_secs_f64() + ratio * WINDOW_FIRST_ATTEMPTS).max(1.0);
        RetryBudget {
            ratio,
            min_per_sec,
            capacity,
            tokens: 0.0,
            refilled_at: now,
        }
    }

    /// Tokens available at `now` (after the floor's income).
    #[cfg(test)]
    pub fn tokens(&mut self, now: Instant) -> f64 {
        self.refill(now);
        self.tokens
    }

    /// A first attempt was sent: earn `ratio` tokens.
    pub fn record_first_attempt(&mut self, now: Instant) {
        self.refill(now);
        self.tokens = (self.tokens + self.ratio).min(self.capacity);
    }

    /// How long a retry must wait for a token at `now`; zero when one is available.
    pub fn wait_for_token(&mut self, now: Instant) -> Duration {
        self.refill(now);
        let missing = 1.0 - self.tokens;
        if missing <= 0.0 {
            return Duration::ZERO;
        }
        // Round up to the next microsecond so that waiting this long really earns the token.
        Duration::from_secs_f64(missing / self.min_per_sec) + Duration::from_micros(1)
    }

    /// Spends a token for a retry. Returns `false` (and spends nothing) when none is available.
    pub fn try_spend(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now
            .saturating_duration_since(self.refilled_at)
            .as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.min_per_sec).min(self.capacity);
        self.refilled_at = self.refilled_at.max(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn starts_empty_and_the_floor_earns_tokens_over_time() {
        let t0 = Instant::now();
        let mut b = RetryBudget::new(0.0, 2.0, t0);
        assert!(!b.try_spend(t0), "a fresh budget is empty");
        assert_eq!(b.wait_for_token(t0).as_millis(), 500);
        assert!(!b.try_spend(t0 + secs(0.4)));
        assert!(b.try_spend(t0 + secs(0.5)), "2/s earns a token in 0.5 s");
        assert!(!b.try_spend(t0 + secs(0.5)), "and only one");
    }

    #[test]
    fn first_attempts_earn_the_ratio() {
        let t0 = Instant::now();
        // A tiny floor so that the ratio's income dominates.
        let mut b = RetryBudget::new(0.25, 0.000_001, t0);
        for _ in 0..3 {
            b.record_first_attempt(t0);
        }
        assert!(!b.try_spend(t0), "3 x 0.25 is less than a token");
        b.record_first_attempt(t0);
        assert!(b.try_spend(t0), "4 x 0.25 is one token");
        assert!(!b.try_spend(t0));
    }

    #[test]
    fn retries_over_a_period_are_bounded_by_ratio_and_floor() {
        // Simulate 60 s: 100 first attempts and a retry wanted every 10 ms.
        let t0 = Instant::now();
        let (ratio, floor) = (0.2, 1.0);
        let mut b = RetryBudget::new(ratio, floor, t0);
        let mut retries = 0u32;
        for tick in 0..6000u32 {
            let now = t0 + Duration::from_millis(u64::from(tick) * 10);
            if tick % 60 == 0 {
                b.record_first_attempt(now);
            }
            if b.try_spend(now) {
                retries += 1;
            }
        }
        let bound = ratio * 100.0 + floor * 60.0;
        assert!(
            f64::from(retries) <= bound,
            "{retries} retries exceed the bound {bound}"
        );
        assert!(
            f64::from(retries) >= bound - 2.0,
            "{retries} retries: the budget under-spends"
        );
    }

    #[test]
    fn idle_time_banks_at_most_the_capacity() {
        let t0 = Instant::now();
        let mut b = RetryBudget::new(0.5, 1.0, t0);
        let much_later = t0 + Duration::from_secs(3600);
        let capacity = 1.0 * WINDOW.as_secs_f64() + 0.5 * WINDOW_FIRST_ATTEMPTS;
        assert!((b.tokens(much_later) - capacity).abs() < 1e-9);
        let mut burst = 0;
        while b.try_spend(much_later) {
            burst += 1;
        }
        assert_eq!(burst, 15);
    }

    #[test]
    fn waiting_the_announced_time_always_yields_a_token() {
        let t0 = Instant::now();
        let mut b = RetryBudget::new(0.1, 3.0, t0);
        b.record_first_attempt(t0);
        let wait = b.wait_for_token(t0);
        assert!(wait > Duration::ZERO);
        assert!(b.try_spend(t0 + wait));
    }

    #[test]
    fn a_clock_going_backwards_earns_nothing() {
        let t0 = Instant::now() + Duration::from_secs(10);
        let mut b = RetryBudget::new(0.0, 1.0, t0);
        assert_eq!(b.tokens(t0 - Duration::from_secs(5)), 0.0);
        assert!((b.tokens(t0 + Duration::from_secs(1)) - 1.0).abs() < 1e-9);
    }
}
