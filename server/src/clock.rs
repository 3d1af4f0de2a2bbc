//! The server's only reading of time, so simulations see simulated time everywhere. The one
//! exception is [`new_epoch`], which only a server started without an epoch calls: simulations
//! and fuzzing give theirs.

use std::time::{Instant, SystemTime};

use chat_engine::Now;

use crate::settings::WallClock;

#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    wall: WallClock,
    started: Instant,
}

impl Clock {
    pub(crate) fn new(wall: WallClock) -> Self {
        Self {
            wall,
            started: Self::mono(),
        }
    }

    /// tokio's clock, which turmoil and paused tests control.
    pub(crate) fn mono() -> Instant {
        tokio::time::Instant::now().into_std()
    }

    pub(crate) fn now(&self) -> Now {
        let mono = Self::mono();
        let wall = match self.wall {
            WallClock::System => SystemTime::now(),
            WallClock::Anchored(start) => start + mono.duration_since(self.started),
        };
        Now::new(mono, wall)
    }

    pub(crate) fn uptime_seconds(&self) -> u64 {
        Self::mono().duration_since(self.started).as_secs()
    }
}

/// A fresh epoch: start time and process id, unique per server start on a host.
pub(crate) fn new_epoch() -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{:x}{:x}", nanos, std::process::id())
}
