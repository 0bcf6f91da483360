//! Reconnect delays: exponential growth with full jitter, sans-IO.
//!
//! The n-th consecutive failure waits a uniformly random time in
//! `[min, min(max, min * 2^n)]`. Jitter spreads the reconnects of many
//! gateways after a shared outage; the floor at `min` keeps a dead device
//! from being retried in a tight loop.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Exponential backoff with full jitter between `min` and a growing ceiling.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    failures: u32,
    rng: StdRng,
}

impl Backoff {
    /// `max` below `min` is raised to `min`.
    pub fn new(min: Duration, max: Duration) -> Self {
        Self::with_rng(min, max, StdRng::from_os_rng())
    }

    /// Deterministic jitter, for tests and simulations.
    pub fn with_seed(min: Duration, max: Duration, seed: u64) -> Self {
        Self::with_rng(min, max, StdRng::seed_from_u64(seed))
    }

    fn with_rng(min: Duration, max: Duration, rng: StdRng) -> Self {
        Backoff {
            min,
            max: max.max(min),
            failures: 0,
            rng,
        }
    }

    /// The current ceiling: `min * 2^failures`, capped at `max`.
    pub fn ceiling(&self) -> Duration {
        let factor = 1u32.checked_shl(self.failures.min(31)).unwrap_or(u32::MAX);
        self.min.saturating_mul(factor).min(self.max)
    }

    /// Delay before the next attempt; each call counts one more failure.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.failures = self.failures.saturating_add(1);
        if ceiling <= self.min {
            return self.min;
        }
        let lo = u64::try_from(self.min.as_nanos()).unwrap_or(u64::MAX);
        let hi = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(self.rng.random_range(lo..=hi))
    }

    /// Consecutive failures since the last [`reset`](Self::reset).
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Call after a success: the next failure starts again at `min`.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn delays_stay_between_min_and_growing_ceiling() {
        let mut b = Backoff::with_seed(100 * MS, 3000 * MS, 7);
        for n in 0..20u32 {
            let ceiling = (100 * MS * 2u32.pow(n.min(10))).min(3000 * MS);
            assert_eq!(b.ceiling(), ceiling);
            let d = b.next_delay();
            assert!(
                d >= 100 * MS && d <= ceiling,
                "attempt {n}: {d:?} > {ceiling:?}"
            );
        }
        assert_eq!(b.failures(), 20);
    }

    #[test]
    fn first_delay_is_min_then_grows_on_average() {
        let mut b = Backoff::with_seed(50 * MS, 10_000 * MS, 1);
        assert_eq!(b.next_delay(), 50 * MS);
        // After many failures the ceiling is max; the mean of full jitter is
        // about half way.
        for _ in 0..20 {
            b.next_delay();
        }
        let mean: Duration = (0..200).map(|_| b.next_delay()).sum::<Duration>() / 200;
        assert!(mean > 3_000 * MS && mean < 7_000 * MS, "mean {mean:?}");
    }

    #[test]
    fn jitter_spreads_values() {
        let mut b = Backoff::with_seed(10 * MS, 10_000 * MS, 3);
        for _ in 0..12 {
            b.next_delay();
        }
        let a: Vec<_> = (0..10).map(|_| b.next_delay()).collect();
        let distinct = a.iter().collect::<std::collections::BTreeSet<_>>().len();
        assert!(distinct > 5, "{a:?}");
    }

    #[test]
    fn reset_returns_to_min() {
        let mut b = Backoff::with_seed(100 * MS, 1000 * MS, 9);
        for _ in 0..10 {
            b.next_delay();
        }
        assert_eq!(b.ceiling(), 1000 * MS);
        b.reset();
        assert_eq!(b.failures(), 0);
        assert_eq!(b.next_delay(), 100 * MS);
    }

    #[test]
    fn max_below_min_and_huge_counts_do_not_overflow() {
        let mut b = Backoff::with_seed(500 * MS, 10 * MS, 0);
        assert_eq!(b.next_delay(), 500 * MS);
        let mut b = Backoff::with_seed(Duration::from_secs(1), Duration::MAX, 0);
        for _ in 0..100 {
            b.next_delay();
        }
        assert!(b.ceiling() >= Duration::from_secs(1 << 30));
    }
}
