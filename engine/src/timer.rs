//! The engine's timers as data: one deadline per kind in a small table (as quinn-proto's
//! `timer.rs`). `poll_timeout` is the earliest armed deadline; `Input::Tick` (or any input) fires
//! the expired ones, and firing early does nothing.

use std::time::{Duration, Instant};

use crate::engine::Engine;
use crate::output::Output;
use crate::{CloseReason, Now};

/// Every kind of deadline the engine keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Timer {
    /// Next heartbeat ping to every client.
    Ping = 0,
    /// Next sweep for clients silent past `idle_timeout`.
    Sweep = 1,
    /// Next `presence` frame of the large rooms with changes.
    Presence = 2,
}

impl Timer {
    const COUNT: usize = 3;
}

/// One optional deadline per [`Timer`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TimerTable {
    deadlines: [Option<Instant>; Timer::COUNT],
}

impl TimerTable {
    pub(crate) fn get(&self, timer: Timer) -> Option<Instant> {
        self.deadlines[timer as usize]
    }

    pub(crate) fn set(&mut self, timer: Timer, at: Instant) {
        self.deadlines[timer as usize] = Some(at);
    }

    /// Arms `timer` at `at` unless it is already armed.
    pub(crate) fn start(&mut self, timer: Timer, at: Instant) {
        self.deadlines[timer as usize].get_or_insert(at);
    }

    pub(crate) fn stop(&mut self, timer: Timer) {
        self.deadlines[timer as usize] = None;
    }

    pub(crate) fn stop_all(&mut self) {
        self.deadlines = [None; Timer::COUNT];
    }

    /// Whether `timer` is armed and due at `now`.
    pub(crate) fn is_due(&self, timer: Timer, now: Instant) -> bool {
        self.get(timer).is_some_and(|at| at <= now)
    }

    /// The earliest armed deadline.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.deadlines.iter().flatten().min().copied()
    }
}

impl Engine {
    /// Fires every timer due at `now`: pings, the idle sweep, then presence.
    pub(crate) fn fire_timers(&mut self, now: Now) {
        if self.timers.is_due(Timer::Ping, now.mono) {
            for (_, client) in &self.clients {
                self.outputs.push_back(Output::Ping { to: client.id });
            }
            self.timers
                .set(Timer::Ping, now.mono + self.config.ping_interval);
        }
        if self.timers.is_due(Timer::Sweep, now.mono) {
            self.sweep_idle(now.mono);
        }
        if self.timers.is_due(Timer::Presence, now.mono) {
            self.announce_presence(now);
        }
    }

    /// Dooms every client silent for `idle_timeout` (paused ones cannot talk, so they are
    /// spared), and arms the next sweep for the earliest deadline left.
    fn sweep_idle(&mut self, now: Instant) {
        let idle = self.config.idle_timeout;
        let mut silent = Vec::new();
        let mut next: Option<Instant> = None;
        for (slot, client) in &self.clients {
            if client.paused {
                continue;
            }
            let deadline = client.last_seen + idle;
            if deadline <= now {
                silent.push(slot);
            } else {
                next = Some(next.map_or(deadline, |n| n.min(deadline)));
            }
        }
        for slot in silent {
            self.doom(slot, CloseReason::IdleTimeout);
        }
        // Sweeps cost O(clients): never run them more often than this.
        let granularity = Duration::from_secs(1).min(idle / 4);
        let next = next.unwrap_or(now + idle);
        self.timers.set(Timer::Sweep, next.max(now + granularity));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_deadline_is_the_earliest_armed_one() {
        let t0 = Instant::now();
        let mut timers = TimerTable::default();
        assert_eq!(timers.next(), None);
        timers.set(Timer::Sweep, t0 + Duration::from_secs(2));
        timers.start(Timer::Ping, t0 + Duration::from_secs(1));
        timers.start(Timer::Ping, t0 + Duration::from_secs(9));
        assert_eq!(timers.get(Timer::Ping), Some(t0 + Duration::from_secs(1)));
        assert_eq!(timers.next(), Some(t0 + Duration::from_secs(1)));
        assert!(!timers.is_due(Timer::Ping, t0));
        assert!(timers.is_due(Timer::Ping, t0 + Duration::from_secs(1)));
        timers.stop_all();
        assert_eq!(timers.next(), None);
    }
}
