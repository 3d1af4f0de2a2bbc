//! Time as a value: the shell passes both clocks in with every input, so the engine never reads one.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The moment an input happened: `mono` drives timers, `wall` only stamps messages (`ts`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Now {
    /// Monotonic time: deadlines, rate limits, idle detection.
    pub mono: Instant,
    /// Wall-clock time, used only for the RFC 3339 `ts` of outgoing messages.
    pub wall: SystemTime,
}

impl Now {
    /// The moment with both clocks' readings.
    pub fn new(mono: Instant, wall: SystemTime) -> Self {
        Self { mono, wall }
    }
}

/// Latest instant RFC 3339 can spell (9999-12-31T23:59:59Z).
const WALL_MAX_SECS: u64 = 253_402_300_799;

/// Formats `wall` as RFC 3339 UTC with milliseconds, clamped to what the format can express
/// (a wall clock set before 1970 must not panic the engine).
pub(crate) fn rfc3339_millis(wall: SystemTime) -> String {
    let max = UNIX_EPOCH + Duration::from_secs(WALL_MAX_SECS);
    let wall = wall.clamp(UNIX_EPOCH, max);
    humantime::format_rfc3339_millis(wall).to_string()
}
