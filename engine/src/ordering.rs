//! Cluster mode (`Config::ordered_by_broker`): a broker shared by every node, not this engine,
//! decides each chat message's `seq`, and what every node delivers is the broker's ordered
//! stream, the sender's own copy (its acknowledgement) included.
//!
//! A chat message accepted here goes out as `Output::Publish` without a seq: the frame's two
//! halves around it, which the broker joins with the seq it hands out, so every node keeps and
//! delivers the same bytes for that seq. It is pending until `Input::Published` (the broker
//! ordered it) or `Input::PublishFailed` (it could not: the sender is told `unavailable`).
//!
//! `Input::Ordered` brings one ordered message, from any node. A room delivers its messages
//! strictly one after another: a duplicate or an old one is ignored; one past a gap waits here
//! while the room asks the broker to refill it (`Output::Refill`, answered by
//! `Input::Refilled`). What the broker no longer keeps cannot be refilled: the room then skips
//! to what it has and re-welcomes its members with `recovered: false`, so a member never misses
//! a message without being told. The same happens when the broker's epoch for a room changes
//! (it lost the room, or the room was created here before the broker numbered it).

use std::collections::{BTreeMap, VecDeque};

use bytes::{BufMut, Bytes, BytesMut};

use crate::engine::Engine;
use crate::names::room_likeness;
use crate::protocol::ErrorCode;
use crate::room::Room;
use crate::{ClientId, Now, OpId, Output};

/// A message frame without its seq: the broker numbers it (`head`, the seq, then `tail`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unnumbered {
    /// The frame up to its seq: `{"type":"message","room":...,"seq":`.
    pub head: Bytes,
    /// The frame after its seq: `,"nick":...}`.
    pub tail: Bytes,
}

impl Unnumbered {
    /// Splits a message frame serialized with seq 0 around that seq (a room name has no quote,
    /// so the first `"seq":0,` is the field's).
    pub(crate) fn from_zero_frame(frame: &Bytes) -> Self {
        const MARK: &[u8] = b"\"seq\":0,";
        let at = (frame.windows(MARK.len()))
            .position(|w| w == MARK)
            .expect("a message frame has its seq after the room");
        let digit = at + MARK.len() - 2;
        Self {
            head: frame.slice(..digit),
            tail: frame.slice(digit + 1..),
        }
    }

    /// The frame numbered `seq`, exactly as the broker makes it.
    pub fn numbered(&self, seq: u64) -> Bytes {
        let digits = seq.to_string();
        let mut frame = BytesMut::with_capacity(self.head.len() + digits.len() + self.tail.len());
        frame.put_slice(&self.head);
        frame.put_slice(digits.as_bytes());
        frame.put_slice(&self.tail);
        frame.freeze()
    }
}

/// Early messages a room keeps at most while its gap is refilled; past it the newest are
/// dropped (the refill, or a later one, brings them again).
pub(crate) const EARLY_MAX: usize = 1024;

/// Whether `frame` is message `seq` of the room of this likeness: the node that published it
/// may spell the room otherwise (case aside, a look-alike), and it is the same room.
fn frame_of(frame: &[u8], likeness: &str, seq: u64) -> bool {
    crate::commit::message_frame_room(frame, seq)
        .is_some_and(|named| room_likeness(&named) == likeness)
}

/// Asks the broker for what follows `room`'s seq; the room waits for the answer.
fn ask_refill(outputs: &mut VecDeque<Output>, room: &mut Room) {
    room.refilling = true;
    outputs.push_back(Output::Refill {
        room: room.name.clone(),
        epoch: room.epoch.clone(),
        after: room.seq,
    });
}

/// Asks the broker where `room` stands now: at once, or, with a refill out (whose page may
/// already have been read), once that one is answered.
fn ask_refill_afresh(outputs: &mut VecDeque<Output>, room: &mut Room) {
    if room.refilling {
        room.refill_again = true;
    } else {
        ask_refill(outputs, room);
    }
}

/// Publishes waiting for the broker's answer.
#[derive(Debug, Default)]
pub(crate) struct Publishing {
    /// The sender of each pending publish.
    pub(crate) pending: BTreeMap<OpId, ClientId>,
}

impl Engine {
    /// A validated chat message in cluster mode: handed to the broker, nothing delivered yet.
    pub(crate) fn publish(&mut self, slot: usize, r: usize, frame: Bytes, now: Now) {
        if self.publishing.pending.len() >= self.config.uncommitted_max {
            let message = format!(
                "unavailable: {} messages wait for the broker; try again shortly",
                self.config.uncommitted_max
            );
            return self.reply_error(slot, now, ErrorCode::Unavailable, &message);
        }
        let op = OpId::from_raw(self.uncommitted.next_op);
        self.uncommitted.next_op += 1;
        self.publishing.pending.insert(op, self.clients[slot].id);
        self.outputs.push_back(Output::Publish {
            op,
            room: self.rooms[r].name.clone(),
            message: Unnumbered::from_zero_frame(&frame),
        });
    }

    /// `Input::Published`: the broker ordered `op`; its copy comes back with `Input::Ordered`.
    pub(crate) fn on_published(&mut self, op: OpId) {
        self.publishing.pending.remove(&op);
    }

    /// `Input::PublishFailed`: the broker could not order `op`; its sender, if still here, is
    /// told. Unknown ops (already answered) change nothing.
    pub(crate) fn on_publish_failed(&mut self, op: OpId, now: Now) {
        let Some(sender) = self.publishing.pending.remove(&op) else {
            return;
        };
        self.stats.store_failures_total += 1;
        if let Some(&slot) = self.ids.get(&sender) {
            self.reply_error(
                slot,
                now,
                ErrorCode::Unavailable,
                "unavailable: your message was not sent (the broker cannot be reached now); \
                 send it again later",
            );
        }
    }

    /// `Input::Ordered`: message `seq` of `room` in the broker's `epoch`.
    pub(crate) fn on_ordered(
        &mut self,
        room: &str,
        epoch: &str,
        seq: u64,
        frame: &Bytes,
        now: Now,
    ) {
        let likeness = room_likeness(room);
        if seq == 0 || !frame_of(frame, &likeness, seq) {
            self.stats.broker_refused_total += 1;
            return;
        }
        let r = match self.room_index.get(&likeness) {
            Some(&r) => r,
            None => {
                if let Some(dormant) = self.dormant.get_mut(&likeness) {
                    // Nobody here reads it: only where it stands is kept, for its next member.
                    if dormant.epoch != epoch || dormant.seq < seq {
                        dormant.epoch = epoch.to_owned();
                        dormant.seq = seq;
                    }
                    return;
                }
                match self.create_room(room.to_owned()) {
                    Some(r) => {
                        // First heard of here: it starts where the broker is.
                        let created = &mut self.rooms[r];
                        created.epoch = epoch.to_owned();
                        created.seq = seq - 1;
                        created.assigned = seq - 1;
                        r
                    }
                    None => return,
                }
            }
        };
        let switched = self.rooms[r].epoch != epoch;
        if switched {
            self.renumber(r, epoch, 0, now);
        }
        self.deliver(r, seq, frame.clone(), now);
        if switched {
            // Epochs have no order: a late delivery from the broker's previous epoch looks just
            // like one from its next. Only the broker's word on where the room stands now (a
            // refill's answer) settles which one the room follows.
            ask_refill_afresh(&mut self.outputs, &mut self.rooms[r]);
        }
    }

    /// Delivers `seq` if it is room `r`'s next, keeps it for later if it is past a gap (and
    /// asks for the gap), and drops it if it was delivered already.
    fn deliver(&mut self, r: usize, seq: u64, frame: Bytes, now: Now) {
        let room = &mut self.rooms[r];
        if seq <= room.seq {
            self.stats.broker_duplicates_total += 1;
            return;
        }
        if seq > room.seq + 1 {
            if room.early.len() < EARLY_MAX {
                room.early.insert(seq, frame);
            }
            if !room.refilling {
                ask_refill(&mut self.outputs, room);
            }
            return;
        }
        self.activity += 1;
        room.last_active = self.activity;
        room.assigned = seq;
        self.release(r, seq, frame, now);
        self.drain_early(r, now);
    }

    /// Delivers the early messages that are next now.
    fn drain_early(&mut self, r: usize, now: Now) {
        loop {
            let room = &mut self.rooms[r];
            let Some(entry) = room.early.first_entry() else {
                return;
            };
            let seq = *entry.key();
            if seq > room.seq + 1 {
                return;
            }
            let frame = entry.remove();
            if seq == room.seq + 1 {
                room.assigned = seq;
                self.release(r, seq, frame, now);
            }
        }
    }

    /// `Input::Refilled`: what the broker keeps of `room` after the seq its `Refill` named.
    pub(crate) fn on_refilled(
        &mut self,
        room: &str,
        epoch: &str,
        messages: &[(u64, Bytes)],
        complete: bool,
        now: Now,
    ) {
        let likeness = room_likeness(room);
        let Some(&r) = self.room_index.get(&likeness) else {
            return;
        };
        self.rooms[r].refilling = false;
        let again = std::mem::take(&mut self.rooms[r].refill_again);
        if self.rooms[r].epoch != epoch {
            // The page lies after a seq of the old epoch, which means nothing in this one: go on
            // from the new epoch's start, and ask for all of it.
            self.renumber(r, epoch, 0, now);
            return ask_refill(&mut self.outputs, &mut self.rooms[r]);
        }
        let before = self.rooms[r].seq;
        let mut kept = false;
        for (seq, frame) in messages {
            if !frame_of(frame, &likeness, *seq) {
                self.stats.broker_refused_total += 1;
                continue;
            }
            kept = true;
            let next = self.rooms[r].seq + 1;
            if *seq > next && !complete {
                // The broker no longer keeps what lies between: say so, then go on from here.
                self.renumber(r, epoch, seq - 1, now);
            }
            if *seq == self.rooms[r].seq + 1 {
                self.deliver(r, *seq, frame.clone(), now);
            }
        }
        self.drain_early(r, now);
        if !complete && !kept {
            if let Some(&first) = self.rooms[r].early.keys().next() {
                // The broker keeps nothing after this room's seq, so nothing kept reaches the
                // early ones: skip to them. (A page that held some may have been cut at its
                // limit: what lies between is asked for again below.)
                self.renumber(r, epoch, first - 1, now);
                self.drain_early(r, now);
            }
        }
        let progressed = self.rooms[r].seq > before;
        let room = &mut self.rooms[r];
        if (again || progressed || !room.early.is_empty()) && !room.refilling {
            // A page may not hold all the broker has; what waits was published after the broker
            // read its range, or lies past another gap; or the subscription dropped while the
            // page was out, so it may have been read before what the drop lost (and cut at its
            // limit before it, even if it brought nothing new): ask again.
            ask_refill(&mut self.outputs, room);
        }
    }

    /// `Input::BrokerResumed`: the deliveries may have missed anything meanwhile, so every room
    /// here asks for what came after its last one.
    pub(crate) fn on_broker_resumed(&mut self) {
        for (_, room) in self.rooms.iter_mut() {
            ask_refill_afresh(&mut self.outputs, room);
        }
    }

    /// Room `r` goes on in `epoch` after `seq`, not after what it delivered: its history is
    /// dropped (it would no longer end at its seq) and every member is welcomed again with
    /// `recovered: false`, so a member never misses a message without being told.
    fn renumber(&mut self, r: usize, epoch: &str, seq: u64, now: Now) {
        self.histories.clear(&mut self.rooms, r);
        let room = &mut self.rooms[r];
        if room.epoch != epoch {
            // Seqs of another epoch mean other messages.
            room.early.clear();
            room.epoch = epoch.to_owned();
        }
        room.seq = seq;
        room.assigned = seq;
        room.early.retain(|&early, _| early > seq);
        self.stats.broker_resets_total += 1;
        let members = room.members.clone();
        for slot in members {
            self.welcome(slot, now, r, None, None);
        }
    }
}

impl Engine {
    /// Facts about cluster mode (part of `check_invariants`).
    pub(crate) fn check_ordering(&self) {
        let ordered = self.config.ordered_by_broker;
        if !ordered {
            assert!(
                self.publishing.pending.is_empty(),
                "publishes without a broker"
            );
        }
        assert!(
            self.publishing.pending.len() <= self.config.uncommitted_max,
            "over uncommitted_max publishes"
        );
        for (_, room) in &self.rooms {
            if !ordered {
                assert!(
                    room.early.is_empty() && !room.refilling,
                    "{} refills",
                    room.name
                );
                continue;
            }
            assert_eq!(
                room.assigned, room.seq,
                "room {} numbers its own",
                room.name
            );
            // What waits is past a gap: the next one would have been delivered.
            assert!(
                room.early.keys().all(|&seq| seq > room.seq + 1),
                "room {} keeps a deliverable message waiting",
                room.name
            );
            assert!(room.early.len() <= EARLY_MAX, "room {} early", room.name);
            assert!(
                !room.refill_again || room.refilling,
                "room {} would ask again with no refill out",
                room.name
            );
            assert!(
                room.early.is_empty() || room.refilling,
                "room {} waits without asking for a refill",
                room.name
            );
        }
    }
}
