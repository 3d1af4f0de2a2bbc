//! Membership and naming: joining, switching and leaving rooms, renaming, nickname uniqueness
//! per room (ignoring case), and creating rooms within `rooms_max` (forgetting the stalest empty
//! one when full). In a cluster, a name is claimed across nodes before it is taken (`claims`),
//! and the other nodes hear of every seat taken or left (`remote`).

use crate::claims::Claimed;
use crate::dormant::DormantRoom;
use crate::engine::Engine;
use crate::names::{checked_nick, nick_likeness, room_likeness, validate_room};
use crate::protocol::{ErrorCode, JoinRequest, Outgoing};
use crate::room::{Holder, PresenceKey, Room};
use crate::time::rfc3339_millis;
use crate::timer::Timer;
use crate::{LeaveReason, Now};

impl Engine {
    /// A join (at connect or later): into the named room (or the current, or the default one),
    /// with the named nick (or the current one); answered with a welcome or an error.
    pub(crate) fn join(&mut self, slot: usize, now: Now, join: JoinRequest) {
        // The latest join is the one carried out: one still waiting for a tail is dropped.
        self.clients[slot].waking = None;
        let current = self.clients[slot].room;
        // Kept for the claim's answer, in a cluster only.
        let asked = self.config.nicks_claimed.then(|| join.clone());
        let room_name = match join.room {
            Some(name) => match validate_room(&name) {
                Ok(_) => name,
                Err(why) => return self.reply_error(slot, now, ErrorCode::InvalidRoom, &why),
            },
            None => match current {
                Some(r) => self.rooms[r].name.clone(),
                None => self.config.default_room.clone(),
            },
        };
        let (nick, likeness) = match &join.nick {
            Some(raw) => match checked_nick(raw) {
                Ok((nick, likeness)) => (nick.to_owned(), likeness),
                Err(why) => return self.reply_error(slot, now, ErrorCode::InvalidNick, &why),
            },
            None => {
                let nick = self.clients[slot].nick.clone();
                let likeness = nick_likeness(&nick);
                (nick, likeness)
            }
        };
        let room_key = room_likeness(&room_name);
        let target = self.room_index.get(&room_key).copied();
        if target.is_none() && self.must_wake(&room_key) {
            let join = JoinRequest {
                room: Some(room_name),
                ..join
            };
            return self.wait_for_tail(slot, room_key, join);
        }
        if let Some(t) = target {
            if let Some(holder) = self.rooms[t].holder(&nick, &likeness) {
                if *holder != Holder::Local(slot) {
                    return self.nick_taken(slot, now, &nick, t);
                }
            }
        }
        if let Some(asked) = asked {
            if !self.claim_first(slot, &room_name, &likeness, Claimed::Join(asked)) {
                return;
            }
        }
        let r = match target {
            Some(t) => t,
            None => match self.create_room(room_name) {
                Some(r) => r,
                None => {
                    let message = format!(
                        "no room can be created: {} rooms exist and none is empty",
                        self.config.rooms_max
                    );
                    return self.reply_error(slot, now, ErrorCode::TooManyRooms, &message);
                }
            },
        };
        if current == Some(r) {
            if nick != self.clients[slot].nick {
                self.rename(slot, r, nick, likeness, now);
            }
        } else {
            self.leave_room(slot, now, LeaveReason::Switched);
            self.enter_room(slot, r, nick, likeness, now);
        }
        self.use_granted(slot);
        self.welcome(slot, now, r, join.since, join.epoch.as_deref());
    }

    /// A `nick` command: rename within the current room.
    pub(crate) fn change_nick(&mut self, slot: usize, now: Now, raw: &str) {
        let Some(r) = self.clients[slot].room else {
            return self.reply_error(
                slot,
                now,
                ErrorCode::NotInRoom,
                "join a room first (a join can carry a nick)",
            );
        };
        let (nick, likeness) = match checked_nick(raw) {
            Ok((nick, likeness)) => (nick.to_owned(), likeness),
            Err(why) => return self.reply_error(slot, now, ErrorCode::InvalidNick, &why),
        };
        if let Some(holder) = self.rooms[r].holder(&nick, &likeness) {
            if *holder != Holder::Local(slot) {
                return self.nick_taken(slot, now, &nick, r);
            }
        }
        if self.config.nicks_claimed {
            let room = self.rooms[r].name.clone();
            if !self.claim_first(slot, &room, &likeness, Claimed::Rename(raw.to_owned())) {
                return;
            }
        }
        self.rename(slot, r, nick, likeness, now);
        self.use_granted(slot);
    }

    fn nick_taken(&mut self, slot: usize, now: Now, nick: &str, r: usize) {
        let message = format!(
            "the nickname {nick:?} is already used in room {}",
            self.rooms[r].name
        );
        self.reply_error(slot, now, ErrorCode::NickTaken, &message);
    }

    /// Everyone in a small room, the renamed client included, hears the new name at once; in a
    /// large room only the renamed client does, the others at the next presence tick.
    fn rename(&mut self, slot: usize, r: usize, nick: String, likeness: String, now: Now) {
        let client = &mut self.clients[slot];
        let old = std::mem::replace(&mut client.nick, nick);
        let room = &mut self.rooms[r];
        let list_max = self.config.presence_list_max;
        let old_likeness = std::mem::replace(&mut client.likeness, likeness);
        room.unindex_nick(&old, &old_likeness, list_max);
        room.index_nick(
            &client.nick,
            &client.likeness,
            Holder::Local(slot),
            list_max,
        );
        let frame = Outgoing::Nick {
            room: &room.name,
            old: &old,
            nick: &client.nick,
            ts: &rfc3339_millis(now.wall),
        }
        .to_frame();
        let (id, nick) = (client.id, client.nick.clone());
        self.tell_seated(slot, r);
        if self.announces_at_once(r) {
            self.broadcast(r, &frame, None, now);
        } else {
            self.pend_presence(r, PresenceKey::Local(id), Some(&old), Some(&nick), now);
            self.send_to(slot, now, frame);
        }
        self.unshadow(r, now);
    }

    fn enter_room(&mut self, slot: usize, r: usize, nick: String, likeness: String, now: Now) {
        self.activity += 1;
        let client = &mut self.clients[slot];
        client.nick = nick;
        client.room = Some(r);
        let room = &mut self.rooms[r];
        room.last_active = self.activity;
        client.member_pos = room.members.len();
        room.members.push(slot);
        client.likeness = likeness;
        room.index_nick(
            &client.nick,
            &client.likeness,
            Holder::Local(slot),
            self.config.presence_list_max,
        );
        if client.behind {
            room.behind += 1;
        }
        self.note_size(r);
        self.sync_pause(slot, now);
        self.tell_seated(slot, r);
        let (room, client) = (&self.rooms[r], &self.clients[slot]);
        if !self.announces_at_once(r) {
            let (id, nick) = (client.id, client.nick.clone());
            self.pend_presence(r, PresenceKey::Local(id), None, Some(&nick), now);
            // No notice goes out, whose broadcast would look at flow control again: the share
            // of members behind changed, so look now.
            return self.rebalance(r, now);
        }
        let frame = Outgoing::Join {
            room: &room.name,
            nick: &client.nick,
            ts: &rfc3339_millis(now.wall),
        }
        .to_frame();
        self.broadcast(r, &frame, Some(slot), now);
    }

    /// Takes the client out of its room (if any) and tells the others why.
    pub(crate) fn leave_room(&mut self, slot: usize, now: Now, reason: LeaveReason) {
        self.release_claimed(slot);
        let client = &mut self.clients[slot];
        let Some(r) = client.room.take() else {
            return;
        };
        let room = &mut self.rooms[r];
        // O(1) whatever the room's size: the last member takes the leaver's place.
        let pos = client.member_pos;
        room.members.swap_remove(pos);
        if let Some(&moved) = room.members.get(pos) {
            self.clients[moved].member_pos = pos;
        }
        let client = &self.clients[slot];
        room.unindex_nick(
            &client.nick,
            &client.likeness,
            self.config.presence_list_max,
        );
        if client.behind {
            room.behind -= 1;
        }
        self.sync_pause(slot, now);
        self.tell_unseated(slot, reason);
        let (room, client) = (&self.rooms[r], &self.clients[slot]);
        if !self.announces_at_once(r) {
            let (id, nick) = (client.id, client.nick.clone());
            self.pend_presence(r, PresenceKey::Local(id), Some(&nick), None, now);
            self.rebalance(r, now);
        } else {
            let frame = Outgoing::Leave {
                room: &room.name,
                nick: &client.nick,
                ts: &rfc3339_millis(now.wall),
                reason: reason.as_str(),
            }
            .to_frame();
            self.broadcast(r, &frame, None, now);
        }
        // Told after the leave, so whoever sees both ends up with the name listed.
        self.unshadow(r, now);
    }

    /// A new room, making space by forgetting the stalest empty one; `None` if every room is
    /// occupied. A room with messages waiting for their commit is not forgotten: they will be
    /// released to whoever joins it. With a store, the forgotten room sleeps (`dormant`), and a
    /// room created under a dormant one's name wakes it: its name, epoch and next seq.
    pub(crate) fn create_room(&mut self, name: String) -> Option<usize> {
        if self.rooms.len() >= self.config.rooms_max {
            let (stale, _) = self
                .rooms
                .iter()
                .filter(|(_, room)| room.user_count() == 0 && room.assigned == room.seq)
                .min_by_key(|(_, room)| room.last_active)?;
            self.histories.clear(&mut self.rooms, stale);
            let room = self.rooms.remove(stale);
            let likeness = room_likeness(&room.name);
            self.room_index.remove(&likeness);
            // Its changes have nobody left to be told.
            self.presence_due.remove(&room.incarnation);
            if self.presence_due.is_empty() {
                self.timers.stop(Timer::Presence);
            }
            if self.config.persists() {
                let Room {
                    name, epoch, seq, ..
                } = room;
                self.dormant
                    .insert(likeness, DormantRoom { name, epoch, seq });
            }
        }
        self.room_incarnations += 1;
        let likeness = room_likeness(&name);
        let (name, epoch, seq) = match self.dormant.take(&likeness) {
            Some(DormantRoom { name, epoch, seq }) => (name, epoch, seq),
            None => (
                name,
                format!("{}-{}", self.epoch, self.room_incarnations),
                0,
            ),
        };
        // Its creator's join (`enter_room`) makes it the most recently active room.
        let mut room = Room::new(name, self.room_incarnations, epoch, self.activity);
        room.seq = seq;
        room.assigned = seq;
        let r = self.rooms.insert(room);
        self.room_index.insert(likeness, r);
        Some(r)
    }
}
