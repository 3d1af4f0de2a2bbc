//! Members on other nodes (cluster mode with `Config::members_shared`): what this node tells the
//! others of its own members, and how it keeps theirs, so that a room's count, its lists and its
//! presence notices cover every node.
//!
//! A node tells a seat taken (`Output::Seated`: a join, a switch or a rename) or left
//! (`Output::Unseated`); only a client's latest seat matters, so the shell may coalesce them.
//! Another node's seats come in as `Input::RemoteSeated` and `Input::RemoteUnseated`, or as a
//! whole (`Input::RemoteNode`), which replaces what was known of that node: the answer to a gap
//! in its announcements, and, empty, its death (its members leave with `timeout`).
//!
//! A remote member is announced here exactly as a local one would be (`join`, `leave`, `nick`
//! at once in a small room, a `presence` frame in a large one) and is counted, listed and named
//! in the room; nothing is ever sent to it from here. Claims (`claims`) keep names unique across
//! nodes, but announcements from different nodes race: a name's next holder may be announced
//! before its last one's leave or rename. The later comer then waits, shadowed (neither counted
//! nor listed), until the name is free, so a name is never shown twice and every view ends up
//! right once the stale announcement's sequel arrives.

use std::collections::BTreeMap;

use crate::engine::Engine;
use crate::names::{normalized_nick, room_likeness, validate_room};
use crate::protocol::Outgoing;
use crate::room::{Holder, PresenceKey, RemoteKey, RemoteMember};
use crate::time::rfc3339_millis;
use crate::{LeaveReason, Now, Output};

/// One member of another node, in `Input::RemoteNode`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteSeat {
    /// The member's client number on its node.
    pub client: u64,
    /// Its room.
    pub room: String,
    /// Its nickname there.
    pub nick: String,
}

/// Where each remote member sits: by node, by client, the room's slot. A room with remote
/// members is never forgotten, so the slot stays valid.
pub(crate) type Remotes = BTreeMap<String, BTreeMap<u64, usize>>;

impl Engine {
    /// Tells the other nodes that the client in `slot` now sits in room `r` under its nick.
    pub(crate) fn tell_seated(&mut self, slot: usize, r: usize) {
        if self.config.members_shared {
            let client = &self.clients[slot];
            self.outputs.push_back(Output::Seated {
                client: client.id,
                room: self.rooms[r].name.clone(),
                nick: client.nick.clone(),
            });
        }
    }

    /// Tells the other nodes that the client in `slot` left its room.
    pub(crate) fn tell_unseated(&mut self, slot: usize, reason: LeaveReason) {
        if self.config.members_shared {
            let client = self.clients[slot].id;
            self.outputs.push_back(Output::Unseated { client, reason });
        }
    }

    /// Another node's client sits in `room` as `nick` now: it joined, switched or was renamed.
    /// A seat that is not valid here (a room or name this engine would refuse) is ignored.
    pub(crate) fn on_remote_seated(
        &mut self,
        node: &str,
        client: u64,
        room: &str,
        nick: &str,
        now: Now,
    ) {
        if validate_room(room).is_err() {
            return;
        }
        let Ok((nick, likeness)) = normalized_nick(nick) else {
            return;
        };
        let (nick, likeness) = (nick.to_owned(), likeness);
        let key = RemoteKey {
            node: node.to_owned(),
            client,
        };
        let target = self.room_index.get(&room_likeness(room)).copied();
        if let Some(r) = self.remote_room(&key) {
            let room = &self.rooms[r];
            let shown = room.remote.get(&key);
            if Some(r) == target {
                let same = |m: &RemoteMember| m.nick == nick;
                if shown.is_some_and(same) || room.shadowed.get(&key).is_some_and(same) {
                    return;
                }
                if shown.is_some() && room.holder(&nick, &likeness).is_none() {
                    return self.rename_remote(r, key, nick, likeness, now);
                }
            }
            let reason = match Some(r) == target {
                true => LeaveReason::Left,
                false => LeaveReason::Switched,
            };
            self.unseat_remote(&key, reason, now);
        }
        let r = match target {
            Some(r) => r,
            None => match self.create_room(room.to_owned()) {
                Some(r) => r,
                // Every room here is occupied: this node cannot show it.
                None => return,
            },
        };
        (self.remotes.entry(key.node.clone()).or_default()).insert(key.client, r);
        let member = RemoteMember { nick, likeness };
        if self.rooms[r]
            .holder(&member.nick, &member.likeness)
            .is_some()
        {
            self.rooms[r].shadowed.insert(key, member);
            return;
        }
        self.seat_remote(r, key, member, now);
    }

    /// Another node's client left its room. One not known here is ignored.
    pub(crate) fn on_remote_unseated(
        &mut self,
        node: &str,
        client: u64,
        reason: LeaveReason,
        now: Now,
    ) {
        let key = RemoteKey {
            node: node.to_owned(),
            client,
        };
        self.unseat_remote(&key, reason, now);
    }

    /// Everything another node seats now: whoever of it is not among `seats` leaves with
    /// `missing`, then every seat is taken as by `on_remote_seated`.
    pub(crate) fn on_remote_node(
        &mut self,
        node: &str,
        seats: &[crate::RemoteSeat],
        missing: LeaveReason,
        now: Now,
    ) {
        let known: Vec<u64> = (self.remotes.get(node))
            .map(|clients| clients.keys().copied().collect())
            .unwrap_or_default();
        let seated: std::collections::BTreeSet<u64> = seats.iter().map(|s| s.client).collect();
        for client in known.into_iter().filter(|c| !seated.contains(c)) {
            self.on_remote_unseated(node, client, missing, now);
        }
        for seat in seats {
            self.on_remote_seated(node, seat.client, &seat.room, &seat.nick, now);
        }
    }

    /// The room slot of remote member `key`, if it sits anywhere here (shown or shadowed).
    fn remote_room(&self, key: &RemoteKey) -> Option<usize> {
        self.remotes.get(&key.node)?.get(&key.client).copied()
    }

    /// Shows remote member `key` in room `r`, whose name nobody there holds.
    fn seat_remote(&mut self, r: usize, key: RemoteKey, member: RemoteMember, now: Now) {
        let list_max = self.config.presence_list_max;
        let room = &mut self.rooms[r];
        let holder = Holder::Remote(key.clone());
        room.index_nick(&member.nick, &member.likeness, holder, list_max);
        let nick = member.nick.clone();
        room.remote.insert(key.clone(), member);
        self.note_size(r);
        if !self.announces_at_once(r) {
            return self.pend_remote(r, key, None, Some(&nick), now);
        }
        let frame = Outgoing::Join {
            room: &self.rooms[r].name,
            nick: &nick,
            ts: &rfc3339_millis(now.wall),
        }
        .to_frame();
        self.broadcast(r, &frame, None, now);
    }

    /// Renames remote member `key` of room `r` to a name nobody there holds.
    fn rename_remote(
        &mut self,
        r: usize,
        key: RemoteKey,
        nick: String,
        likeness: String,
        now: Now,
    ) {
        let list_max = self.config.presence_list_max;
        let room = &mut self.rooms[r];
        let member = room
            .remote
            .get_mut(&key)
            .expect("a remote member of the room");
        let old = std::mem::replace(&mut member.nick, nick);
        let old_likeness = std::mem::replace(&mut member.likeness, likeness);
        let (nick, new_likeness) = (member.nick.clone(), member.likeness.clone());
        room.unindex_nick(&old, &old_likeness, list_max);
        room.index_nick(&nick, &new_likeness, Holder::Remote(key.clone()), list_max);
        if self.announces_at_once(r) {
            let frame = Outgoing::Nick {
                room: &self.rooms[r].name,
                old: &old,
                nick: &nick,
                ts: &rfc3339_millis(now.wall),
            }
            .to_frame();
            self.broadcast(r, &frame, None, now);
        } else {
            self.pend_remote(r, key, Some(&old), Some(&nick), now);
        }
        self.unshadow(r, now);
    }

    /// Takes remote member `key` out of its room, if it sits in one, and tells the room why
    /// (a shadowed one was never shown: it goes silently).
    fn unseat_remote(&mut self, key: &RemoteKey, reason: LeaveReason, now: Now) {
        let Some(clients) = self.remotes.get_mut(&key.node) else {
            return;
        };
        let Some(r) = clients.remove(&key.client) else {
            return;
        };
        if clients.is_empty() {
            self.remotes.remove(&key.node);
        }
        let list_max = self.config.presence_list_max;
        let room = &mut self.rooms[r];
        if room.shadowed.remove(key).is_some() {
            return;
        }
        let member = room
            .remote
            .remove(key)
            .expect("a remote member of the room");
        room.unindex_nick(&member.nick, &member.likeness, list_max);
        if self.announces_at_once(r) {
            let frame = Outgoing::Leave {
                room: &self.rooms[r].name,
                nick: &member.nick,
                ts: &rfc3339_millis(now.wall),
                reason: reason.as_str(),
            }
            .to_frame();
            self.broadcast(r, &frame, None, now);
        } else {
            self.pend_remote(r, key.clone(), Some(&member.nick), None, now);
        }
        self.unshadow(r, now);
    }

    /// A name in room `r` was given up: shadowed members whose name is free now are shown.
    pub(crate) fn unshadow(&mut self, r: usize, now: Now) {
        loop {
            let room = &self.rooms[r];
            let free = (room.shadowed.iter())
                .find(|(_, m)| room.holder(&m.nick, &m.likeness).is_none())
                .map(|(key, _)| key.clone());
            let Some(key) = free else {
                return;
            };
            let member = (self.rooms[r].shadowed.remove(&key)).expect("found above");
            self.seat_remote(r, key, member, now);
        }
    }

    /// Keeps a remote member's change for the room's next `presence` frame, if anyone here is
    /// connected to be told (with nobody connected no timer runs, and nothing is pending).
    fn pend_remote(
        &mut self,
        r: usize,
        key: RemoteKey,
        before: Option<&str>,
        after: Option<&str>,
        now: Now,
    ) {
        if !self.clients.is_empty() {
            self.pend_presence(r, PresenceKey::Remote(key), before, after, now);
        }
    }
}
