//! What rooms remember: each room's ring of kept messages, and the byte budgets over them, per
//! room (`history_bytes_max`) and over every room together (`history_total_bytes_max`).
//!
//! A count bound alone let 10,000 rooms of 100 maximal messages pin gigabytes, kept by empty
//! rooms after their senders left. Past a budget the oldest messages go: a room's own oldest for
//! its budget, the oldest kept anywhere for the total. Rooms keep a consecutive run ending at
//! their latest `seq`, so recovery from before the run answers `recovered: false`, never a gap.

use std::collections::BTreeMap;

use slab::Slab;

use crate::room::{Room, Stored};

/// What keeping one message costs besides its frame's bytes: its record and deque slot, and the
/// frame's allocation. Charged to the budgets so that they bound memory, not only text: a
/// million one-letter messages would otherwise fit a budget of a few megabytes.
pub(crate) const ENTRY_OVERHEAD: usize = 64;

/// What keeping `frame` costs the budgets.
pub(crate) fn cost(frame: &[u8]) -> usize {
    frame.len() + ENTRY_OVERHEAD
}

/// The total across rooms, and which room holds the oldest message kept anywhere.
#[derive(Debug, Default)]
pub(crate) struct Histories {
    /// What every room's history costs together (see [`cost`]).
    pub(crate) bytes: usize,
    /// Each room with history, by the arrival number of its oldest kept message: the first
    /// entry is the room that gives up a message when the total is over budget.
    pub(crate) oldest: BTreeMap<u64, usize>,
    /// Messages kept so far, across rooms: the next one's arrival number.
    arrivals: u64,
}

/// The bounds one message is kept within.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Budget {
    pub(crate) messages: usize,
    pub(crate) room_bytes: usize,
    pub(crate) total_bytes: usize,
}

impl Histories {
    /// Keeps `frame` as room `r`'s newest message (`seq` is the room's latest), then drops the
    /// oldest messages until every budget holds again. A frame larger than a room's whole budget
    /// empties the room's history: keeping older messages without it would leave a gap.
    pub(crate) fn remember(
        &mut self,
        rooms: &mut Slab<Room>,
        r: usize,
        seq: u64,
        frame: bytes::Bytes,
        budget: Budget,
    ) {
        let cost = cost(&frame);
        if budget.messages == 0 || cost > budget.room_bytes.min(budget.total_bytes) {
            self.clear(rooms, r);
            return;
        }
        let room = &mut rooms[r];
        let arrival = self.arrivals;
        self.arrivals += 1;
        if room.history.is_empty() {
            self.oldest.insert(arrival, r);
        }
        room.history_bytes += cost;
        self.bytes += cost;
        room.history.push_back(Stored {
            seq,
            arrival,
            frame,
        });
        while room_over(&rooms[r], budget) {
            self.drop_oldest(rooms, r);
        }
        while self.bytes > budget.total_bytes {
            let (_, &oldest) = self.oldest.first_key_value().expect("bytes kept somewhere");
            self.drop_oldest(rooms, oldest);
        }
    }

    /// Forgets all of room `r`'s history (the room is being forgotten, or cannot keep a frame).
    pub(crate) fn clear(&mut self, rooms: &mut Slab<Room>, r: usize) {
        let room = &mut rooms[r];
        if let Some(front) = room.history.front() {
            self.oldest.remove(&front.arrival);
        }
        self.bytes -= room.history_bytes;
        room.history_bytes = 0;
        room.history.clear();
    }

    fn drop_oldest(&mut self, rooms: &mut Slab<Room>, r: usize) {
        let room = &mut rooms[r];
        let gone = room
            .history
            .pop_front()
            .expect("a room over budget keeps something");
        self.oldest.remove(&gone.arrival);
        room.history_bytes -= cost(&gone.frame);
        self.bytes -= cost(&gone.frame);
        if let Some(front) = room.history.front() {
            self.oldest.insert(front.arrival, r);
        }
    }
}

fn room_over(room: &Room, budget: Budget) -> bool {
    room.history.len() > budget.messages || room.history_bytes > budget.room_bytes
}
