//! Per-client rate limit as a GCRA (the token bucket expressed with one timestamp): exact integer
//! time arithmetic, so refill never drifts however often it is asked.

use std::time::{Duration, Instant};

/// Admits up to `burst` frames at once and `per_second` sustained.
#[derive(Clone, Debug)]
pub(crate) struct RateLimit {
    /// Theoretical arrival time of the next conforming frame.
    tat: Option<Instant>,
}

impl RateLimit {
    pub(crate) fn new() -> Self {
        Self { tat: None }
    }

    /// When the bucket is full again (`None`: it has never been drawn from).
    pub(crate) fn full_at(&self) -> Option<Instant> {
        self.tat
    }

    /// The one of two buckets that has less left.
    pub(crate) fn stricter(self, other: Self) -> Self {
        Self {
            tat: self.tat.max(other.tat),
        }
    }

    /// Takes one token at `now`; `false` means refused (nothing is consumed).
    pub(crate) fn try_acquire(&mut self, now: Instant, burst: u32, per_second: u32) -> bool {
        if per_second == 0 {
            return true;
        }
        self.try_acquire_every(now, burst, Duration::from_secs(1) / per_second)
    }

    /// Takes one token at `now` from a bucket of `burst` that refills one per `interval` (zero:
    /// no limit); `false` means refused (nothing is consumed).
    pub(crate) fn try_acquire_every(
        &mut self,
        now: Instant,
        burst: u32,
        interval: Duration,
    ) -> bool {
        if interval.is_zero() {
            return true;
        }
        let tolerance = interval * burst.saturating_sub(1);
        let tat = self.tat.map_or(now, |tat| tat.max(now));
        if tat.saturating_duration_since(now) > tolerance {
            return false;
        }
        self.tat = Some(tat + interval);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill_at_the_sustained_rate() {
        let t0 = Instant::now();
        let mut limit = RateLimit::new();
        for _ in 0..20 {
            assert!(limit.try_acquire(t0, 20, 10));
        }
        assert!(!limit.try_acquire(t0, 20, 10));
        assert!(!limit.try_acquire(t0 + Duration::from_millis(99), 20, 10));
        assert!(limit.try_acquire(t0 + Duration::from_millis(100), 20, 10));
        assert!(!limit.try_acquire(t0 + Duration::from_millis(100), 20, 10));
        let later = t0 + Duration::from_secs(1) + Duration::from_millis(100);
        let admitted = (0..30).filter(|_| limit.try_acquire(later, 20, 10)).count();
        assert_eq!(admitted, 10);
    }

    #[test]
    fn zero_rate_means_unlimited() {
        let t0 = Instant::now();
        let mut limit = RateLimit::new();
        assert!((0..10_000).all(|_| limit.try_acquire(t0, 1, 0)));
    }
}
