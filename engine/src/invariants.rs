//! The engine's invariants: facts that span fields, asserted after every call in debug builds
//! (so every unit test, property test, simulation and fuzz run checks them). A broken one is a
//! bug in the engine, never the peer's fault.

use crate::engine::Engine;
use crate::flow::is_behind;
use crate::names::{nick_key, nick_likeness, room_likeness};
use crate::room::{Holder, PresenceKey, RemoteKey};
use crate::timer::Timer;

impl Engine {
    /// A client's claims (with `nicks_claimed`): it holds exactly its name in its room, and a
    /// grant never outlives the call that put it to use.
    fn check_claims(&self, client: &crate::client::Client) {
        assert!(
            client.granted.is_none(),
            "{} kept an unused grant",
            client.id
        );
        if !self.config.nicks_claimed {
            assert!(
                client.claimed.is_none() && client.claiming.is_none(),
                "{} has claims, but names are not claimed",
                client.id
            );
            return;
        }
        match (client.room, &client.claimed) {
            (Some(r), Some(held)) => {
                assert_eq!(
                    (held.room_key.as_str(), held.likeness.as_str()),
                    (
                        room_likeness(&self.rooms[r].name).as_str(),
                        client.likeness.as_str()
                    ),
                    "{} holds another name than it uses",
                    client.id
                );
            }
            (None, None) => {}
            (Some(_), None) => panic!("{} is in a room under an unclaimed name", client.id),
            (None, Some(_)) => panic!("{} holds a claim outside any room", client.id),
        }
    }

    /// Asserts every fact that spans fields. Runs after every call in debug builds; panics on a
    /// broken invariant (a bug in the engine, never the peer's fault).
    pub fn check_invariants(&self) {
        let config = &self.config;
        assert!(self.doomed.is_empty(), "doomed clients left unclosed");
        assert_eq!(
            self.ids.len(),
            self.clients.len(),
            "id index out of step with clients"
        );
        assert!(self.clients.len() <= config.clients_max, "over clients_max");
        assert!(self.rooms.len() <= config.rooms_max, "over rooms_max");
        assert_eq!(
            self.room_index.len(),
            self.rooms.len(),
            "room index out of step with rooms"
        );
        let mut in_rooms = 0;
        for (slot, client) in &self.clients {
            assert!(
                client.id.get() < self.next_client,
                "{} not below the id counter",
                client.id
            );
            assert_eq!(
                self.ids.get(&client.id),
                Some(&slot),
                "{} mis-indexed",
                client.id
            );
            assert!(
                client.queued_frames <= config.queue_frames_max,
                "{} over queue_frames_max",
                client.id
            );
            assert!(
                client.queued_bytes <= config.queue_bytes_max,
                "{} over queue_bytes_max",
                client.id
            );
            assert!(
                client.queued_bytes >= client.queued_frames.min(1),
                "{} has frames but no bytes",
                client.id
            );
            assert_eq!(
                client.behind,
                is_behind(client, config),
                "{} behind flag stale",
                client.id
            );
            assert!(!client.doomed, "{} doomed but still present", client.id);
            self.check_claims(client);
            match client.room {
                Some(r) => {
                    in_rooms += 1;
                    let room = &self.rooms[r];
                    assert_eq!(
                        room.nicks.get(&nick_key(&client.nick)),
                        Some(&Holder::Local(slot)),
                        "{} not in its room's nick index",
                        client.id
                    );
                    assert_eq!(
                        room.likeness.get(&client.likeness),
                        Some(&Holder::Local(slot)),
                        "{} not in its room's likeness index (or someone looks like it)",
                        client.id
                    );
                    assert_eq!(
                        client.paused,
                        room.paused || client.behind,
                        "{} pause state differs from its room's and its own",
                        client.id
                    );
                }
                None => assert_eq!(
                    client.paused, client.behind,
                    "{} paused outside any room but not behind",
                    client.id
                ),
            }
        }
        let mut members = 0;
        let mut history_bytes = 0;
        for (r, room) in &self.rooms {
            assert_eq!(
                self.room_index.get(&room_likeness(&room.name)),
                Some(&r),
                "room {} mis-indexed",
                room.name
            );
            assert_eq!(
                room.nicks.len(),
                room.user_count(),
                "room {} nick index size",
                room.name
            );
            assert_eq!(
                room.likeness.len(),
                room.user_count(),
                "room {} likeness index size",
                room.name
            );
            self.check_remote(r);
            for (pos, &slot) in room.members.iter().enumerate() {
                assert_eq!(
                    self.clients.get(slot).and_then(|c| c.room),
                    Some(r),
                    "room {} lists a non-member",
                    room.name
                );
                assert_eq!(
                    self.clients[slot].member_pos, pos,
                    "room {} member position stale",
                    room.name
                );
            }
            self.check_presence(r);
            members += room.members.len();
            let behind = room
                .members
                .iter()
                .filter(|&&s| self.clients[s].behind)
                .count();
            assert_eq!(room.behind, behind, "room {} behind count", room.name);
            if room.paused {
                assert!(
                    room.behind * 4 > room.members.len(),
                    "room {} paused with few behind",
                    room.name
                );
            } else {
                assert!(
                    room.behind * 2 <= room.members.len(),
                    "room {} not paused with most behind",
                    room.name
                );
            }
            assert!(
                room.history.len() <= config.history_max,
                "room {} history over bound",
                room.name
            );
            assert!(
                room.history
                    .iter()
                    .zip(room.history.iter().skip(1))
                    .all(|(a, b)| a.seq < b.seq),
                "room {} history out of order",
                room.name
            );
            assert!(
                room.history.back().is_none_or(|last| last.seq == room.seq),
                "room {} history does not end at its last committed seq",
                room.name
            );
            assert!(
                (room.history.iter().zip(room.history.iter().skip(1)))
                    .all(|(a, b)| b.seq == a.seq + 1 && a.arrival < b.arrival),
                "room {} history not a consecutive run",
                room.name
            );
            let bytes: usize = room
                .history
                .iter()
                .map(|s| crate::history::cost(&s.frame))
                .sum();
            assert_eq!(
                room.history_bytes, bytes,
                "room {} history bytes",
                room.name
            );
            assert!(
                bytes <= config.history_bytes_max,
                "room {} history over its byte budget",
                room.name
            );
            history_bytes += bytes;
            if let Some(front) = room.history.front() {
                assert_eq!(
                    self.histories.oldest.get(&front.arrival),
                    Some(&r),
                    "room {} oldest message not indexed",
                    room.name
                );
            }
        }
        assert_eq!(members, in_rooms, "room member lists count someone twice");
        self.check_uncommitted();
        self.check_dormant();
        self.check_waking();
        self.check_ordering();
        assert_eq!(self.histories.bytes, history_bytes, "total history bytes");
        assert!(
            self.departures.len() <= config.clients_max,
            "departed clients' buckets over their bound"
        );
        assert!(
            history_bytes <= config.history_total_bytes_max,
            "histories over their total byte budget"
        );
        let with_history = self
            .rooms
            .iter()
            .filter(|(_, room)| !room.history.is_empty());
        assert_eq!(
            self.histories.oldest.len(),
            with_history.count(),
            "rooms indexed by their oldest message"
        );
        if let Some(first) = self.presence_due.values().map(|&(_, at)| at).min() {
            assert!(
                self.timers.get(Timer::Presence).is_some_and(|t| t <= first),
                "presence timer later than a room's announcement"
            );
        }
        for (&incarnation, &(r, _)) in &self.presence_due {
            assert_eq!(
                self.rooms[r].incarnation, incarnation,
                "presence due in a reused slot"
            );
            assert!(
                !self.rooms[r].pending.is_empty(),
                "room {} due for presence with nothing to tell",
                self.rooms[r].name
            );
        }
        match self.clients.is_empty() {
            true => assert!(
                self.poll_timeout().is_none(),
                "timer armed with nobody connected"
            ),
            false => {
                let next = self
                    .poll_timeout()
                    .expect("timers armed while clients are connected");
                assert!(
                    self.last_now.is_some_and(|now| next > now),
                    "next timeout not in the future"
                );
                assert_eq!(
                    self.presence_due.is_empty(),
                    self.timers.get(Timer::Presence).is_none(),
                    "presence timer armed exactly while changes wait"
                );
            }
        }
    }

    /// Room `r`'s presence bookkeeping: a small room announces at once and keeps nothing
    /// pending; every pending change names the client's membership as it is now.
    fn check_presence(&self, r: usize) {
        let room = &self.rooms[r];
        if room.user_count() > self.config.presence_notify_max {
            assert!(
                room.coalescing,
                "room {} large but not coalescing",
                room.name
            );
        }
        if !room.coalescing {
            assert!(
                room.pending.is_empty(),
                "room {} small with changes pending",
                room.name
            );
        }
        if let Some(page) = &room.first_page {
            let names: Vec<&str> = (room.nicks.values())
                .take(self.config.presence_list_max)
                .map(|holder| room.name_of(holder, &self.clients))
                .collect();
            let fresh = serde_json::to_string(&names).expect("strings serialize");
            assert_eq!(
                page.json.get(),
                fresh,
                "room {} first page stale",
                room.name
            );
        }
        if !room.pending.is_empty() {
            assert_eq!(
                self.presence_due
                    .get(&room.incarnation)
                    .map(|&(slot, _)| slot),
                Some(r),
                "room {} changes not due",
                room.name
            );
        }
        for (id, change) in &room.pending {
            let now = match id {
                PresenceKey::Local(id) => (self.ids.get(id))
                    .map(|&slot| &self.clients[slot])
                    .filter(|client| client.room == Some(r))
                    .map(|client| client.nick.as_str()),
                PresenceKey::Remote(key) => room.remote.get(key).map(|m| m.nick.as_str()),
            };
            assert_eq!(
                change.after.as_deref(),
                now,
                "room {} pending change of {id:?} is not its membership now",
                room.name
            );
        }
    }

    /// Room `r`'s members on other nodes: each is where the engine's map of them says, under
    /// its own name in both indexes; and a room's index lists nobody but its members.
    fn check_remote(&self, r: usize) {
        let room = &self.rooms[r];
        for (key, member) in &room.remote {
            assert_eq!(
                self.remotes.get(&key.node).and_then(|c| c.get(&key.client)),
                Some(&r),
                "room {} remote member {key:?} not mapped to it",
                room.name
            );
            let holder = Some(Holder::Remote(key.clone()));
            assert_eq!(
                room.nicks.get(&nick_key(&member.nick)).cloned(),
                holder,
                "room {} remote {key:?} not in the nick index",
                room.name
            );
            assert_eq!(
                room.likeness.get(&member.likeness).cloned(),
                holder,
                "room {} remote {key:?} not in the likeness index",
                room.name
            );
            assert_eq!(member.likeness, nick_likeness(&member.nick));
        }
        for (key, member) in &room.shadowed {
            assert!(
                !room.remote.contains_key(key),
                "room {} remote {key:?} both shown and shadowed",
                room.name
            );
            assert!(
                room.holder(&member.nick, &member.likeness).is_some(),
                "room {} remote {key:?} shadowed though its name is free",
                room.name
            );
            assert_eq!(
                self.remotes.get(&key.node).and_then(|c| c.get(&key.client)),
                Some(&r),
                "room {} shadowed {key:?} not mapped to it",
                room.name
            );
        }
        for (node, clients) in &self.remotes {
            assert!(!clients.is_empty(), "node {node} kept with nobody");
            for (&client, &seat) in clients {
                let key = RemoteKey {
                    node: node.clone(),
                    client,
                };
                assert!(
                    self.rooms.get(seat).is_some_and(|room| {
                        room.remote.contains_key(&key) || room.shadowed.contains_key(&key)
                    }),
                    "remote {key:?} mapped to a room that does not hold it"
                );
            }
        }
    }
}
