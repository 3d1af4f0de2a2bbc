//! Messages accepted but not yet reported committed by the store, and the rooms a store hands
//! back at start.
//!
//! With `Config::hold_until_committed`, "acknowledged means durable": a chat message gets its
//! `seq` when it is accepted and goes out as `Output::Store`, but it is held here, outside every
//! history ring, and no frame of it leaves (not even its sender's copy, which is its
//! acknowledgement) until `Input::Committed` names its op. Then it enters the history ring and
//! is broadcast to the room's members of that moment, exactly as an unheld message is at once.
//!
//! What clients see of a room meanwhile is only what was committed: a room's `seq` (reported in
//! `welcome`, and the end of its history ring) is its last committed message, so `welcome`'s
//! `history` and `since` recovery never show a held message, and a client that joins during a
//! hold gets the held messages as live broadcasts when they are committed. Nothing is ever
//! skipped: a room's held messages are exactly the seqs after its `seq`, committed in order.
//!
//! The store commits in the order it was asked (one store thread, one log), so commits must come
//! in op order; any other is refused and changes nothing, which catches a store that lost or
//! reordered a write instead of letting the rooms' sequences diverge from what it keeps.

use std::borrow::Cow;
use std::collections::VecDeque;

use bytes::Bytes;

use crate::dormant::DormantRoom;
use crate::engine::Engine;
use crate::names::{room_likeness, validate_room};
use crate::protocol::ErrorCode;
use crate::room::Room;
use crate::{ClientId, Config, Error, Now, OpId, Output};

/// One message waiting for its commit.
#[derive(Debug)]
pub(crate) struct Held {
    pub(crate) op: OpId,
    /// The room's slot, and which creation of a room it was (slots are reused).
    pub(crate) room: usize,
    pub(crate) incarnation: u64,
    pub(crate) seq: u64,
    pub(crate) frame: Bytes,
    /// Who sent it: told `unavailable` if the store fails it.
    pub(crate) sender: ClientId,
}

/// The held messages, oldest first (op order, which is also seq order within each room).
#[derive(Debug)]
pub(crate) struct Uncommitted {
    pub(crate) held: VecDeque<Held>,
    /// The next op's raw id: ids start at 1 and are never reused.
    pub(crate) next_op: u64,
}

impl Default for Uncommitted {
    fn default() -> Self {
        Self {
            held: VecDeque::new(),
            next_op: 1,
        }
    }
}

impl Uncommitted {
    pub(crate) fn len(&self) -> usize {
        self.held.len()
    }
}

/// A room as the store kept it, to start an engine from ([`Engine::restore`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoredRoom {
    /// The room's name (a valid room name, unique ignoring case and look-alikes).
    pub name: String,
    /// The room's epoch, kept across the restart so `since` recovery still works.
    pub epoch: String,
    /// The room's last committed `seq`; the next message gets `seq + 1`.
    pub seq: u64,
    /// Kept messages as `(seq, frame)`, oldest first, consecutive and ending at `seq` (or empty).
    /// Each frame is the room's `message` frame exactly as it was broadcast.
    pub history: Vec<(u64, Bytes)>,
}

impl Engine {
    /// Holds room `r`'s message `seq` for its commit and asks the store for it.
    pub(crate) fn hold(&mut self, r: usize, seq: u64, frame: Bytes, sender: ClientId) {
        let op = self.ask_store(r, seq, frame.clone());
        let room = &self.rooms[r];
        self.uncommitted.held.push_back(Held {
            op,
            room: r,
            incarnation: room.incarnation,
            seq,
            frame,
            sender,
        });
    }

    /// Asks the store to keep room `r`'s message `seq` (held or, relaxed, already released).
    pub(crate) fn ask_store(&mut self, r: usize, seq: u64, frame: Bytes) -> OpId {
        let op = OpId::from_raw(self.uncommitted.next_op);
        self.uncommitted.next_op += 1;
        let room = &self.rooms[r];
        self.outputs.push_back(Output::Store {
            op,
            room: room.name.clone(),
            epoch: room.epoch.clone(),
            seq,
            frame,
        });
        op
    }

    /// `Input::StoreFailed`: the store could not write `op`, which must be the oldest held, so
    /// (one log, written in order) nothing held will be: every held message is dropped, each
    /// sender still here is told `unavailable`, and each room hands out its next seqs again. A
    /// report about an op already dropped changes nothing.
    pub(crate) fn on_store_failed(&mut self, op: OpId, now: Now) -> Result<(), Error> {
        let front = self.uncommitted.held.front().map(|held| held.op);
        let refused = Err(Error::CommitOutOfOrder {
            expected: front,
            got: op,
        });
        let stale = match front {
            Some(front) => match op.cmp(&front) {
                std::cmp::Ordering::Less => true,
                std::cmp::Ordering::Equal => false,
                std::cmp::Ordering::Greater => return refused,
            },
            None if op.get() < self.uncommitted.next_op => true,
            None => return refused,
        };
        if stale {
            return Ok(());
        }
        let dropped = std::mem::take(&mut self.uncommitted.held);
        for held in &dropped {
            if let Some(room) =
                (self.rooms.get_mut(held.room)).filter(|room| room.incarnation == held.incarnation)
            {
                room.assigned = room.seq;
            }
        }
        self.stats.store_failures_total += dropped.len() as u64;
        for held in dropped {
            if let Some(&slot) = self.ids.get(&held.sender) {
                let message = format!(
                    "unavailable: message {} was not stored (the store cannot write now); \
                     send it again later",
                    held.seq
                );
                self.reply_error(slot, now, ErrorCode::Unavailable, &message);
            }
        }
        Ok(())
    }

    /// `Input::Committed`: releases the oldest held message, which must be `op`.
    ///
    /// A held message is released whatever happened meanwhile: it was accepted, so its sender
    /// leaving or its room emptying does not undo it (whoever is a member now gets it). Its room
    /// is still there: a room with held messages is never forgotten (`create_room`).
    pub(crate) fn on_committed(&mut self, op: OpId, now: Now) -> Result<(), Error> {
        let expected = self.uncommitted.held.front().map(|held| held.op);
        if expected != Some(op) {
            return Err(Error::CommitOutOfOrder { expected, got: op });
        }
        let held = (self.uncommitted.held.pop_front()).expect("its op was just read");
        debug_assert_eq!(self.rooms[held.room].incarnation, held.incarnation);
        self.release(held.room, held.seq, held.frame, now);
        Ok(())
    }

    /// An engine that starts from what a store kept: `rooms` exist, empty of members, each with
    /// its own epoch and `seq` (not new ones, so clients recover across the restart) and its
    /// history loaded within the budgets (oldest dropped first, in the order given). `epoch` is
    /// this start's, as for [`new`](Self::new): rooms created from now on get epochs from it, so
    /// it must differ from every earlier start's.
    ///
    /// With a store (`Config::persists`), more rooms than `rooms_max` may be given: the first ones
    /// (the least recently active, by the order given) stay dormant (see `dormant`), their
    /// history left to the store, and get their epoch and seq back when someone joins them.
    /// With `Config::tail_on_wake`, so does every room given with messages but no history: its
    /// history is read back when someone joins it (see `waking`).
    ///
    /// Refused with `Error::InvalidRestore`: without a store, more rooms than `rooms_max`; an
    /// invalid or duplicate
    /// room name (ignoring case and look-alikes), an empty epoch or one this start could hand out
    /// itself, a history that is not consecutive or does not end at `seq`, or a frame that is not
    /// that room's `message` frame for that seq.
    pub fn restore(
        config: Config,
        epoch: impl Into<String>,
        rooms: impl IntoIterator<Item = RestoredRoom>,
    ) -> Result<Self, Error> {
        let mut engine = Self::new(config, epoch)?;
        let fail = |why: String| Err(Error::InvalidRestore(why));
        let rooms: Vec<RestoredRoom> = rooms.into_iter().collect();
        let rooms_max = engine.config.rooms_max;
        if rooms.len() > rooms_max && !engine.config.persists() {
            return fail(format!("more rooms than rooms_max ({rooms_max})"));
        }
        let asleep = rooms.len().saturating_sub(rooms_max);
        for (at, restored) in rooms.into_iter().enumerate() {
            let RestoredRoom {
                name,
                epoch,
                seq,
                history,
            } = restored;
            if let Err(why) = validate_room(&name) {
                return fail(format!("room {name:?}: {why}"));
            }
            let likeness = room_likeness(&name);
            let other = (engine.room_index.get(&likeness))
                .map(|&other| engine.rooms[other].name.as_str())
                .or_else(|| engine.dormant.get(&likeness).map(|d| d.name.as_str()));
            if let Some(other) = other {
                return fail(format!("room {name:?} given twice (or like {other:?})"));
            }
            if epoch.is_empty() || engine.could_mint(&epoch) {
                return fail(format!(
                    "room {name:?}: epoch {epoch:?} is empty or one this start would hand out"
                ));
            }
            if history.last().is_some_and(|&(last, _)| last != seq) {
                return fail(format!("room {name:?}: history does not end at seq {seq}"));
            }
            let consecutive = (history.iter().zip(history.iter().skip(1)))
                .all(|((a, _), (b, _))| a.checked_add(1) == Some(*b));
            if !consecutive || history.first().is_some_and(|&(first, _)| first == 0) {
                return fail(format!(
                    "room {name:?}: history is not consecutive seqs from 1 on"
                ));
            }
            for (at, frame) in &history {
                if !is_message_frame(frame, &name, *at) {
                    return fail(format!(
                        "room {name:?}: the frame of seq {at} is not its message frame"
                    ));
                }
            }
            // With `tail_on_wake`, a room handed back without its history sleeps until someone
            // joins it, and then reads it back.
            let untold = engine.config.tail_on_wake && history.is_empty() && seq > 0;
            if at < asleep || untold {
                engine
                    .dormant
                    .insert(likeness, DormantRoom { name, epoch, seq });
                continue;
            }
            // Numbered as if created now, in the order given: a room created later gets the
            // next incarnation, so a forgotten and recreated room still gets a fresh epoch.
            engine.room_incarnations += 1;
            engine.activity += 1;
            let mut room = Room::new(name, engine.room_incarnations, epoch, engine.activity);
            room.seq = seq;
            room.assigned = seq;
            let r = engine.rooms.insert(room);
            engine.room_index.insert(likeness, r);
            let budget = engine.history_budget();
            for (at, frame) in history {
                (engine.histories).remember(&mut engine.rooms, r, at, frame, budget);
            }
        }
        #[cfg(debug_assertions)]
        engine.check_invariants();
        Ok(engine)
    }

    /// Whether `epoch` is one `create_room` could give a room of this start (`{epoch}-{n}`).
    fn could_mint(&self, epoch: &str) -> bool {
        (epoch.strip_prefix(self.epoch.as_str()))
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|n| n.parse::<u64>().is_ok())
    }

    /// Facts about the held messages (part of `check_invariants`).
    pub(crate) fn check_uncommitted(&self) {
        let held = &self.uncommitted.held;
        if !self.config.hold_until_committed {
            assert!(
                held.is_empty(),
                "messages held without hold_until_committed"
            );
        }
        assert!(
            held.len() <= self.config.uncommitted_max,
            "over uncommitted_max"
        );
        assert!(
            (held.iter().zip(held.iter().skip(1))).all(|(a, b)| a.op < b.op),
            "held messages out of op order"
        );
        assert!(
            held.back()
                .is_none_or(|last| last.op.get() < self.uncommitted.next_op),
            "a held op not below the op counter"
        );
        for (r, room) in &self.rooms {
            assert!(
                room.seq <= room.assigned,
                "room {} released past what it handed out",
                room.name
            );
            // A live room's held messages are exactly the seqs after its last committed one, in
            // op order: nothing is skipped and nothing is released twice.
            let seqs: Vec<u64> = (held.iter())
                .filter(|h| h.room == r && h.incarnation == room.incarnation)
                .map(|h| h.seq)
                .collect();
            let want: Vec<u64> = (room.seq + 1..=room.assigned).collect();
            assert_eq!(seqs, want, "room {} held seqs", room.name);
            // The ring ends at `seq`, so no frame of a held message is in it.
            assert!(
                (room.history.iter()).all(|s| s.seq <= room.seq),
                "room {} history holds an uncommitted message",
                room.name
            );
        }
    }
}

/// Whether `frame` is a `message` frame of room `room` with `seq` (what a store hands back must
/// be what this engine serialized: `welcome` embeds history frames as they are).
///
/// A restart checks every message it loads (a million for 10,000 rooms), so this reads the frame
/// into borrowed fields rather than building a `ServerMessage`; it accepts exactly the frames
/// that parse as `ServerMessage::Message` (see the test).
pub(crate) fn is_message_frame(frame: &[u8], room: &str, seq: u64) -> bool {
    message_frame_room(frame, seq).is_some_and(|named| named == room)
}

/// The room a `message` frame with `seq` names, if `frame` is one (see [`is_message_frame`]).
pub(crate) fn message_frame_room(frame: &[u8], seq: u64) -> Option<Cow<'_, str>> {
    /// The fields of a `message` frame; the unused ones are read to prove they are strings.
    #[derive(serde::Deserialize)]
    struct Probe<'a> {
        #[serde(rename = "type", borrow)]
        kind: Cow<'a, str>,
        #[serde(borrow)]
        room: Cow<'a, str>,
        seq: u64,
        #[serde(borrow)]
        #[allow(dead_code)]
        nick: Cow<'a, str>,
        #[serde(borrow)]
        #[allow(dead_code)]
        text: Cow<'a, str>,
        #[serde(borrow)]
        #[allow(dead_code)]
        ts: Cow<'a, str>,
    }
    match serde_json::from_slice::<Probe<'_>>(frame) {
        Ok(p) if p.kind == "message" && p.seq == seq => Some(p.room),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::is_message_frame;
    use crate::ServerMessage;

    /// The quick check agrees with a full parse, on message frames and on near misses.
    #[test]
    fn the_quick_frame_check_agrees_with_a_full_parse() {
        let frames = [
            r#"{"type":"message","room":"r","seq":3,"nick":"a","text":"hi","ts":"t"}"#,
            r#"{"type":"message","room":"r","seq":3,"nick":"a","text":"h\u00e9 \"q\"","ts":"t","x":1}"#,
            r#"{"type":"message","room":"r","seq":3,"nick":"a","ts":"t"}"#,
            r#"{"type":"message","room":"r","seq":3,"nick":"a","text":7,"ts":"t"}"#,
            r#"{"type":"message","room":"q","seq":3,"nick":"a","text":"hi","ts":"t"}"#,
            r#"{"type":"message","room":"r","seq":4,"nick":"a","text":"hi","ts":"t"}"#,
            r#"{"type":"join","room":"r","nick":"a","ts":"t"}"#,
            r#"{"type":"message","room":"r","seq":3,"nick":"a","text":"hi","ts":"t""#,
            "not json",
        ];
        for frame in frames {
            let full = matches!(
                serde_json::from_str::<ServerMessage>(frame),
                Ok(ServerMessage::Message(m)) if m.room == "r" && m.seq == 3
            );
            assert_eq!(is_message_frame(frame.as_bytes(), "r", 3), full, "{frame}");
        }
    }
}
