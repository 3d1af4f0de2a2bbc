//! Flow control and queue accounting: every frame the engine hands out is counted against its
//! client's queue bounds (over them, the client is evicted), a client at a high-water mark is
//! "behind" and paused (it may not talk faster than it listens), and a room most of whose members
//! are behind stops being read from until they catch up.

use std::collections::VecDeque;

use bytes::Bytes;

use crate::client::Client;
use crate::engine::Engine;
use crate::output::Output;
use crate::{CloseReason, Config, Error, Now};

/// What pushing one frame to one client did.
enum Pushed {
    Sent,
    /// Sent, and it put the client at a high-water mark.
    SentNowBehind,
    /// Not sent: it would go over a queue bound.
    Overflow,
    /// Not sent: the client is being closed.
    Skipped,
}

/// Accounts one frame to `client` and emits it, or reports that it would overflow the queue.
fn push_frame(
    client: &mut Client,
    frame: &Bytes,
    now: Now,
    config: &Config,
    outputs: &mut VecDeque<Output>,
) -> Pushed {
    if client.doomed {
        return Pushed::Skipped;
    }
    if client.queued_frames + 1 > config.queue_frames_max
        || client.queued_bytes + frame.len() > config.queue_bytes_max
    {
        return Pushed::Overflow;
    }
    client.queued_frames += 1;
    client.queued_bytes += frame.len();
    outputs.push_back(Output::Send {
        to: client.id,
        frame: frame.clone(),
    });
    if !client.behind && is_behind(client, config) {
        client.behind = true;
        // It stops being read from until it catches up, whatever its room does.
        set_paused(client, true, now, outputs);
        return Pushed::SentNowBehind;
    }
    Pushed::Sent
}

/// Tells the shell to pause or resume reading from `client`, if that changes anything.
pub(crate) fn set_paused(
    client: &mut Client,
    pause: bool,
    now: Now,
    outputs: &mut VecDeque<Output>,
) {
    // A client doomed during this call gets nothing more but its close.
    if client.paused == pause || client.doomed {
        return;
    }
    client.paused = pause;
    if pause {
        outputs.push_back(Output::Pause { to: client.id });
    } else {
        // It could not talk while paused: its silence starts now.
        client.last_seen = now.mono;
        outputs.push_back(Output::Resume { to: client.id });
    }
}

/// At or above either high-water mark.
pub(crate) fn is_behind(client: &Client, config: &Config) -> bool {
    client.queued_frames >= config.queue_high_water_frames
        || client.queued_bytes >= config.queue_high_water_bytes
}

impl Engine {
    /// The shell wrote `frames` frames of `bytes` payload bytes to the client in `slot`.
    pub(crate) fn on_flushed(
        &mut self,
        slot: usize,
        now: Now,
        frames: usize,
        bytes: usize,
    ) -> Result<(), Error> {
        let client = &mut self.clients[slot];
        if frames > client.queued_frames || bytes > client.queued_bytes {
            return Err(Error::FlushExceedsQueue {
                client: client.id,
                frames,
                bytes,
                queued_frames: client.queued_frames,
                queued_bytes: client.queued_bytes,
            });
        }
        client.queued_frames -= frames;
        client.queued_bytes -= bytes;
        if client.behind && !is_behind(client, &self.config) {
            client.behind = false;
            if let Some(r) = client.room {
                self.rooms[r].behind -= 1;
                self.rebalance(r, now);
            }
            self.sync_pause(slot, now);
        }
        Ok(())
    }

    /// Sends `frame` to one client. If that puts it behind, its room's flow control is
    /// re-evaluated exactly as after a broadcast.
    pub(crate) fn send_to(&mut self, slot: usize, now: Now, frame: Bytes) {
        let client = &mut self.clients[slot];
        match push_frame(client, &frame, now, &self.config, &mut self.outputs) {
            Pushed::Sent => self.stats.frames_total += 1,
            Pushed::SentNowBehind => {
                self.stats.frames_total += 1;
                if let Some(r) = client.room {
                    self.rooms[r].behind += 1;
                    self.rebalance(r, now);
                }
            }
            Pushed::Overflow => self.doom(slot, CloseReason::SlowConsumer),
            Pushed::Skipped => {}
        }
    }

    /// Sends `frame` to every member of room `r` but `except`; the per-recipient hot path.
    pub(crate) fn broadcast(&mut self, r: usize, frame: &Bytes, except: Option<usize>, now: Now) {
        let room = &self.rooms[r];
        let mut newly_behind = 0;
        let mut sent = 0;
        for &slot in &room.members {
            if Some(slot) == except {
                continue;
            }
            let client = &mut self.clients[slot];
            match push_frame(client, frame, now, &self.config, &mut self.outputs) {
                Pushed::Sent => sent += 1,
                Pushed::SentNowBehind => {
                    sent += 1;
                    newly_behind += 1;
                }
                Pushed::Overflow => {
                    client.doomed = true;
                    self.doomed.push_back((slot, CloseReason::SlowConsumer));
                }
                Pushed::Skipped => {}
            }
        }
        self.stats.frames_total += sent;
        self.rooms[r].behind += newly_behind;
        self.rebalance(r, now);
    }

    /// Applies flow control to room `r`: pause or resume reading from all its members (a member
    /// behind on its own queue stays paused either way).
    pub(crate) fn rebalance(&mut self, r: usize, now: Now) {
        let room = &mut self.rooms[r];
        let pause = if room.should_pause() {
            true
        } else if room.should_resume() {
            false
        } else {
            return;
        };
        room.paused = pause;
        for &slot in &room.members {
            let client = &mut self.clients[slot];
            set_paused(client, pause || client.behind, now, &mut self.outputs);
        }
    }

    /// Pauses or resumes one client to match its own and its room's state.
    pub(crate) fn sync_pause(&mut self, slot: usize, now: Now) {
        let client = &mut self.clients[slot];
        let room_paused = client.room.is_some_and(|r| self.rooms[r].paused);
        set_paused(client, room_paused || client.behind, now, &mut self.outputs);
    }
}
