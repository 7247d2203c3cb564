//! Capped exponential backoff with full jitter.
//!
//! After the n-th consecutive failure (n = 0 for the first) the caller sleeps
//! `uniform(0, min(cap, base * 2^n))`. Full jitter spreads a fleet that failed at the same
//! moment over the whole window instead of having it retry in lock-step, which is what turns
//! one gateway hiccup into a retry storm. Disabled backoff sleeps zero: the retry-storm
//! scenario's negative control.

use std::time::Duration;

use rand::Rng;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    enabled: bool,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration, enabled: bool) -> Backoff {
        Backoff { base, cap, enabled }
    }

    /// Upper bound of the sleep after failure number `n` (0-based): `min(cap, base * 2^n)`.
    pub fn ceiling(&self, n: u32) -> Duration {
        if !self.enabled {
            return Duration::ZERO;
        }
        let factor = 1u32.checked_shl(n).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// A sleep drawn uniformly from `[0, ceiling(n)]`.
    pub fn delay(&self, n: u32, rng: &mut impl Rng) -> Duration {
        let ceiling = self.ceiling(n);
        if ceiling.is_zero() {
            return Duration::ZERO;
        }
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rng.random_range(0..=nanos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{SeedableRng, rngs::StdRng};

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn ceiling_doubles_until_the_cap() {
        let b = Backoff::new(100 * MS, 1000 * MS, true);
        let ceilings: Vec<u128> = (0..6).map(|n| b.ceiling(n).as_millis()).collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1000, 1000]);
        // Far past the cap the exponent saturates instead of overflowing.
        assert_eq!(b.ceiling(200), 1000 * MS);
    }

    #[test]
    fn delays_stay_within_zero_and_the_ceiling_and_spread_over_it() {
        let b = Backoff::new(100 * MS, 1000 * MS, true);
        let mut rng = StdRng::seed_from_u64(7);
        for n in 0..8 {
            let ceiling = b.ceiling(n);
            let samples: Vec<Duration> = (0..2000).map(|_| b.delay(n, &mut rng)).collect();
            assert!(
                samples.iter().all(|d| *d <= ceiling),
                "n={n}: a delay exceeds {ceiling:?}"
            );
            let mean = samples.iter().sum::<Duration>() / 2000;
            // Full jitter: the mean is half the ceiling (within 10% for 2000 samples).
            let half = ceiling / 2;
            assert!(
                mean > half.mul_f64(0.9) && mean < half.mul_f64(1.1),
                "n={n}: mean {mean:?}, expected about {half:?}"
            );
            let low = samples.iter().filter(|d| **d < ceiling / 10).count();
            assert!(
                low > 0,
                "n={n}: no sample in the lowest tenth: not full jitter"
            );
        }
    }

    #[test]
    fn disabled_backoff_retries_immediately() {
        let b = Backoff::new(100 * MS, 1000 * MS, false);
        let mut rng = StdRng::seed_from_u64(1);
        assert!((0..10).all(|n| b.delay(n, &mut rng).is_zero()));
    }
}
