//! A token bucket for what the server meters itself, outside the engine: the pings and pongs a
//! client sends (`--ping-rate-burst`, `--ping-rate-per-second`). Control frames never reach the
//! engine as chat frames, so its rate limit cannot see them. A GCRA, like the engine's
//! `RateLimit`: one timestamp, exact integer arithmetic, and the time passed in, so the tests
//! drive it without a clock.

use std::time::{Duration, Instant};

/// Admits `burst` at once, then one per `1 s / per_second`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TokenBucket {
    /// When the bucket is full again (the theoretical arrival time of the next conforming
    /// frame); `None` until the first take.
    full_at: Option<Instant>,
}

impl TokenBucket {
    pub(crate) const fn new() -> Self {
        Self { full_at: None }
    }

    /// Takes one token at `now`; `false` means refused (nothing is taken). `per_second == 0`
    /// turns the meter off.
    pub(crate) fn try_take(&mut self, now: Instant, burst: u32, per_second: u32) -> bool {
        if per_second == 0 {
            return true;
        }
        let interval = Duration::from_secs(1) / per_second;
        let tolerance = interval * burst.saturating_sub(1);
        let full_at = self.full_at.map_or(now, |at| at.max(now));
        if full_at.saturating_duration_since(now) > tolerance {
            return false;
        }
        self.full_at = Some(full_at + interval);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_sustained_rate() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new();
        assert_eq!((0..40).filter(|_| bucket.try_take(t0, 32, 4)).count(), 32);
        assert!(!bucket.try_take(t0 + Duration::from_millis(249), 32, 4));
        assert!(bucket.try_take(t0 + Duration::from_millis(250), 32, 4));
        assert!(!bucket.try_take(t0 + Duration::from_millis(250), 32, 4));
        // A second later, four more: the sustained rate, not a new burst.
        let later = t0 + Duration::from_millis(1250);
        assert_eq!((0..40).filter(|_| bucket.try_take(later, 32, 4)).count(), 4);
        // Quiet long enough, the whole burst is back.
        let much_later = later + Duration::from_secs(60);
        assert_eq!(
            (0..40)
                .filter(|_| bucket.try_take(much_later, 32, 4))
                .count(),
            32
        );
    }

    #[test]
    fn a_zero_rate_is_off_and_a_zero_burst_still_admits_one() {
        let t0 = Instant::now();
        let mut off = TokenBucket::new();
        assert!((0..10_000).all(|_| off.try_take(t0, 1, 0)));
        let mut one = TokenBucket::new();
        assert!(one.try_take(t0, 0, 1));
        assert!(!one.try_take(t0, 0, 1));
    }
}
