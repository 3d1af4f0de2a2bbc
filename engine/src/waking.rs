//! Dormant rooms woken with their stored history (`Config::tail_on_wake`).
//!
//! A dormant room's messages live only in the store. A join into one waits here (the client
//! stays where it was, as a join waiting for a nickname claim does) while the store reads the
//! room's newest messages (`Output::LoadTail`, one per room however many wait). The answer
//! (`Input::TailLoaded`) wakes the room with them as its history, and every join that waited is
//! carried out then, exactly as if the room had been in memory all along: a `since` into it
//! recovers. This is what lets a start read no history at all: every stored room sleeps until
//! someone joins it, so a server with 10,000 rooms on a cold disk serves at once.
//!
//! A tail the store hands back is checked as `Engine::restore` checks one (consecutive, ending
//! at the room's last seq, each frame that room's `message` frame); one that fails wakes the room
//! empty, so its joiners are told `recovered: false` rather than handed a wrong history.

use bytes::Bytes;

use crate::commit::is_message_frame;
use crate::engine::Engine;
use crate::names::room_likeness;
use crate::protocol::{ErrorCode, JoinRequest};
use crate::{Now, Output};

/// A join waiting for its room's tail.
#[derive(Debug)]
pub(crate) struct Waiting {
    /// The room's likeness (its key in `Engine::waking`).
    pub(crate) room_key: String,
    /// The join, naming its room, to carry out once the room is awake.
    pub(crate) join: JoinRequest,
}

impl Engine {
    /// Whether a join into the room of likeness `key` must wait for its tail: it sleeps, and
    /// has messages a store may keep.
    pub(crate) fn must_wake(&self, key: &str) -> bool {
        self.config.tail_on_wake && self.dormant.get(key).is_some_and(|room| room.seq > 0)
    }

    /// Has the client in `slot` wait for the dormant room `key`'s tail, asking for it if no
    /// one else did.
    pub(crate) fn wait_for_tail(&mut self, slot: usize, key: String, join: JoinRequest) {
        let room = (self.dormant.get(&key)).expect("only a dormant room is waited for");
        let waiters = self.waking.entry(key.clone()).or_default();
        if waiters.is_empty() {
            self.outputs.push_back(Output::LoadTail {
                room: room.name.clone(),
                seq: room.seq,
                limit: self.config.history_max,
            });
        }
        let client = &mut self.clients[slot];
        waiters.push(client.id);
        client.waking = Some(Box::new(Waiting {
            room_key: key,
            join,
        }));
    }

    /// `Input::TailLoaded`: wakes the room with `messages` as its history and carries out the
    /// joins that waited for it. A tail nobody asked for, or whose joiners all left or went
    /// elsewhere meanwhile, is dropped (the room sleeps on).
    pub(crate) fn on_tail_loaded(&mut self, room: &str, messages: &[(u64, Bytes)], now: Now) {
        let key = room_likeness(room);
        let Some(waiters) = self.waking.remove(&key) else {
            return;
        };
        let mut joins = Vec::new();
        for id in waiters {
            let Some(&slot) = self.ids.get(&id) else {
                continue;
            };
            let client = &mut self.clients[slot];
            if client.waking.as_ref().is_some_and(|w| w.room_key == key) {
                let waiting = client.waking.take().expect("just looked at");
                joins.push((id, waiting.join));
            }
        }
        if joins.is_empty() {
            return;
        }
        // Still asleep: nothing wakes a room but this while its tail is out (`join` waits).
        if let Some(dormant) = self.dormant.get(&key) {
            let (name, seq) = (dormant.name.clone(), dormant.seq);
            let history = match valid_tail(messages, &name, seq) {
                true => messages,
                false => {
                    self.stats.tails_refused_total += 1;
                    &[]
                }
            };
            let Some(r) = self.create_room(name) else {
                let message = format!(
                    "no room can be created: {} rooms exist and none is empty",
                    self.config.rooms_max
                );
                for (id, _) in joins {
                    let slot = self.ids[&id];
                    self.reply_error(slot, now, ErrorCode::TooManyRooms, &message);
                }
                return;
            };
            let budget = self.history_budget();
            for (at, frame) in history {
                (self.histories).remember(&mut self.rooms, r, *at, frame.clone(), budget);
            }
        }
        for (id, join) in joins {
            // Each join may close someone (an eviction); whoever is gone is skipped.
            if let Some(&slot) = self.ids.get(&id) {
                if !self.clients[slot].doomed {
                    self.join(slot, now, join);
                }
            }
        }
    }

    /// Facts about the joins waiting for tails (part of `check_invariants`).
    pub(crate) fn check_waking(&self) {
        if !self.config.tail_on_wake {
            assert!(self.waking.is_empty(), "waking rooms without tail_on_wake");
        }
        for (key, waiters) in &self.waking {
            assert!(!waiters.is_empty(), "a room {key} waking for nobody");
            // Only a sleeping room's tail is out: it wakes when the tail comes.
            assert!(
                self.dormant.get(key).is_some(),
                "room {key} waking, not dormant"
            );
        }
        for (_, client) in &self.clients {
            if let Some(waiting) = &client.waking {
                let listed = self.waking.get(&waiting.room_key);
                assert!(
                    listed.is_some_and(|ids| ids.contains(&client.id)),
                    "client {} waits for room {} unlisted",
                    client.id.get(),
                    waiting.room_key
                );
                assert_eq!(
                    waiting.join.room.as_deref().map(room_likeness).as_ref(),
                    Some(&waiting.room_key),
                    "a waiting join names another room"
                );
            }
        }
    }
}

/// Whether `tail` is what `Engine::restore` accepts as room `room`'s history ending at `seq`.
fn valid_tail(tail: &[(u64, Bytes)], room: &str, seq: u64) -> bool {
    let ends = tail.last().is_none_or(|&(last, _)| last == seq);
    let consecutive =
        (tail.iter().zip(tail.iter().skip(1))).all(|((a, _), (b, _))| a.checked_add(1) == Some(*b));
    let from_one = tail.first().is_none_or(|&(first, _)| first > 0);
    ends && consecutive
        && from_one
        && (tail.iter()).all(|(at, frame)| is_message_frame(frame, room, *at))
}
