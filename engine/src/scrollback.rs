//! The `history` command: a page of the current room's older messages, for scrolling back.
//!
//! With a store the page comes from it (`Output::Fetch`, answered by `Input::Fetched`), since it
//! keeps far more than the in-memory ring; without one, from the ring. Either way a page never
//! reaches past what clients may see (a room's committed `seq`), so a held message is never
//! shown early, and it is trimmed, oldest first, to what fits well inside the asker's queue, as
//! a `welcome` is: asking for history never gets a client evicted.

use bytes::Bytes;
use serde_json::value::RawValue;

use crate::engine::Engine;
use crate::protocol::{ErrorCode, Outgoing, HISTORY_PAGE_DEFAULT, HISTORY_PAGE_MAX};
use crate::{ClientId, Now, Output};

impl Engine {
    /// `history` from the client in `slot` (already metered like a join).
    pub(crate) fn history(
        &mut self,
        slot: usize,
        now: Now,
        before: Option<u64>,
        limit: Option<u64>,
    ) {
        let Some(r) = self.clients[slot].room else {
            return self.reply_error(slot, now, ErrorCode::NotInRoom, "join a room first");
        };
        let limit = match limit {
            None => HISTORY_PAGE_DEFAULT,
            Some(n) if (1..=HISTORY_PAGE_MAX as u64).contains(&n) => n as usize,
            Some(n) => {
                let message =
                    format!("field \"limit\" must be from 1 to {HISTORY_PAGE_MAX} (got {n})");
                return self.reply_error(slot, now, ErrorCode::InvalidField, &message);
            }
        };
        let room = &self.rooms[r];
        let top = room.seq + 1;
        let before = before.map_or(top, |before| before.min(top));
        if self.config.persists() {
            let fetch = Output::Fetch {
                to: self.clients[slot].id,
                room: room.name.clone(),
                before,
                limit,
            };
            return self.outputs.push_back(fetch);
        }
        let page: Vec<&Bytes> = (room.history.iter().rev())
            .filter(|stored| stored.seq < before)
            .take(limit)
            .map(|stored| &stored.frame)
            .collect();
        // What the ring no longer holds exists nowhere.
        let oldest_kept = room.history.front().map(|stored| stored.seq);
        let oldest_given = page.last().map(|_| before - page.len() as u64);
        let complete = oldest_given.is_none_or(|given| Some(given) == oldest_kept);
        let frames: Vec<Bytes> = page.into_iter().rev().cloned().collect();
        let name = room.name.clone();
        self.send_page(slot, now, &name, &frames, complete);
    }

    /// `Input::Fetched`: the store's page for `to`, if it is still here.
    pub(crate) fn on_fetched(
        &mut self,
        to: ClientId,
        now: Now,
        room: &str,
        messages: &[Bytes],
        complete: bool,
    ) {
        if let Some(&slot) = self.ids.get(&to) {
            self.send_page(slot, now, room, messages, complete);
        }
    }

    /// Sends `frames` (oldest first) as a `history` frame, keeping the newest that fit in half
    /// the asker's high-water mark (at least one): what does not fit is paged for next.
    fn send_page(&mut self, slot: usize, now: Now, room: &str, frames: &[Bytes], complete: bool) {
        let raws: Vec<&RawValue> = (frames.iter())
            .filter_map(|frame| serde_json::from_slice(frame).ok())
            .collect();
        let page = |messages: &[&RawValue], complete: bool| {
            Outgoing::History {
                room,
                messages,
                complete,
            }
            .to_frame()
        };
        let client = &self.clients[slot];
        let budget = (self.config.queue_high_water_bytes / 2).saturating_sub(client.queued_bytes);
        let mut size = page(&[], false).len();
        let mut kept = 0;
        for raw in raws.iter().rev() {
            let cost = raw.get().len() + usize::from(kept > 0);
            if kept > 0 && size + cost > budget {
                break;
            }
            size += cost;
            kept += 1;
        }
        let skip = raws.len() - kept;
        let frame = page(&raws[skip..], complete && skip == 0);
        self.send_to(slot, now, frame);
    }
}
