//! A room: its members (here and, in a cluster, on other nodes), the nickname index, the
//! sequence counter, the history ring, and the presence changes waiting to be announced in a
//! large room.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;

use crate::names::nick_key;
use crate::ClientId;

/// One message kept for history: its `seq` and its frame exactly as broadcast.
#[derive(Clone, Debug)]
pub(crate) struct Stored {
    pub(crate) seq: u64,
    /// Its place among the messages kept by every room (see `history::Histories`).
    pub(crate) arrival: u64,
    pub(crate) frame: Bytes,
}

/// A room's first page of names, serialized once.
#[derive(Debug)]
pub(crate) struct FirstPage {
    pub(crate) json: Box<serde_json::value::RawValue>,
    /// The nickname key of the page's last name (`None`: the page is empty).
    pub(crate) last_key: Option<String>,
}

/// Who holds a name in a room: a client of this node (its slot), or a member on another node.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Holder {
    Local(usize),
    Remote(RemoteKey),
}

/// A member on another node: the node's name and its client's number there.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct RemoteKey {
    pub(crate) node: String,
    pub(crate) client: u64,
}

/// A member on another node, as that node last told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RemoteMember {
    pub(crate) nick: String,
    pub(crate) likeness: String,
}

/// Whose change a pending presence change is.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum PresenceKey {
    Local(ClientId),
    Remote(RemoteKey),
}

/// One client's changes in a room within a presence interval.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Change {
    /// Its name in the room when the interval began (`None`: not a member then).
    pub(crate) before: Option<String>,
    /// Its name in the room now (`None`: not a member now).
    pub(crate) after: Option<String>,
    /// Names it held in between, neither `before` nor `after` (a member may have seen them in a
    /// `welcome` or a `who` page meanwhile, so they are announced as gone).
    pub(crate) held: Vec<String>,
}

#[derive(Debug)]
pub(crate) struct Room {
    pub(crate) name: String,
    /// Which room creation this is: rooms are forgotten and their names reused.
    pub(crate) incarnation: u64,
    /// Server epoch plus this room's incarnation, so a recreated room never honours old `since`s.
    pub(crate) epoch: String,
    /// Last `seq` released to clients: broadcast, kept in history and reported in `welcome`.
    /// With `hold_until_committed` that is the last committed one; otherwise the last handed out.
    pub(crate) seq: u64,
    /// Last `seq` handed out; the next message gets `assigned + 1`. Ahead of `seq` exactly by
    /// the messages held for their commit (see `commit`).
    pub(crate) assigned: u64,
    /// Kept messages, a consecutive run ending at `seq` (see `history::Histories`).
    pub(crate) history: VecDeque<Stored>,
    /// What `history` costs the byte budgets (`history::cost` of each message).
    pub(crate) history_bytes: usize,
    /// Client slots, in no particular order: a member leaves in O(1) by swapping the last one
    /// into its place (each client knows its position, `Client::member_pos`).
    pub(crate) members: Vec<usize>,
    /// Members on other nodes (cluster mode with `members_shared`): counted, listed and named
    /// like the members here, but nothing is sent to them from here.
    pub(crate) remote: BTreeMap<RemoteKey, RemoteMember>,
    /// Members on other nodes whose name someone here already holds: one of the two
    /// announcements is stale (a leave or a rename still on its way), so neither is counted
    /// twice; the first to free the name lets it in (see `remote`).
    pub(crate) shadowed: BTreeMap<RemoteKey, RemoteMember>,
    /// Nickname key to its holder: uniqueness ignoring case, and the order of `who` pages.
    pub(crate) nicks: BTreeMap<String, Holder>,
    /// Holders by the likeness of their nickname (see `names::nick_likeness`): no two members
    /// of a room look alike.
    pub(crate) likeness: BTreeMap<String, Holder>,
    /// Membership changes are announced in coalesced `presence` frames rather than one notice
    /// each (the room grew past `presence_notify_max`; it returns to notices at a presence tick
    /// that finds it small again).
    pub(crate) coalescing: bool,
    /// Changes since the last `presence` frame, by member.
    pub(crate) pending: BTreeMap<PresenceKey, Change>,
    /// The welcome's `users` (the first page of `nicks`) as serialized, and the key of its last
    /// name; `None` once a change may have altered it. Every welcome would otherwise serialize
    /// up to `presence_list_max` names again, which was a tenth of the CPU of filling a room of
    /// 19,000 (BENCHMARKS.md, "Side by side with the classic Go hub").
    pub(crate) first_page: Option<FirstPage>,
    /// Members whose queue is at or above the high-water mark.
    pub(crate) behind: usize,
    /// Reading from members is paused (flow control).
    pub(crate) paused: bool,
    /// Monotonic order of last activity, used to pick which empty room to forget first.
    pub(crate) last_active: u64,
    /// Cluster mode: messages the broker ordered past a gap, waiting for it (see `ordering`).
    pub(crate) early: BTreeMap<u64, Bytes>,
    /// Cluster mode: a `Refill` is out and not answered yet.
    pub(crate) refilling: bool,
    /// Cluster mode: the subscription resumed while that `Refill` was out. Its answer may have
    /// been read before the messages missed during the drop, so the room asks once more.
    pub(crate) refill_again: bool,
}

impl Room {
    pub(crate) fn new(name: String, incarnation: u64, epoch: String, last_active: u64) -> Self {
        Self {
            name,
            incarnation,
            epoch,
            seq: 0,
            assigned: 0,
            history: VecDeque::new(),
            history_bytes: 0,
            members: Vec::new(),
            remote: BTreeMap::new(),
            shadowed: BTreeMap::new(),
            nicks: BTreeMap::new(),
            likeness: BTreeMap::new(),
            coalescing: false,
            pending: BTreeMap::new(),
            first_page: None,
            behind: 0,
            paused: false,
            last_active,
            early: BTreeMap::new(),
            refilling: false,
            refill_again: false,
        }
    }

    /// Everyone in the room, on every node.
    pub(crate) fn user_count(&self) -> usize {
        self.members.len() + self.remote.len()
    }

    /// Indexes a member's nickname, under its ordering key and its likeness (computed once, by
    /// the caller, and kept by the client).
    pub(crate) fn index_nick(
        &mut self,
        nick: &str,
        likeness: &str,
        holder: Holder,
        list_max: usize,
    ) {
        let key = nick_key(nick);
        self.forget_page_if_changed(&key, list_max);
        self.nicks.insert(key, holder.clone());
        self.likeness.insert(likeness.to_owned(), holder);
    }

    /// Removes a member's nickname from the index.
    pub(crate) fn unindex_nick(&mut self, nick: &str, likeness: &str, list_max: usize) {
        let key = nick_key(nick);
        self.nicks.remove(&key);
        self.likeness.remove(likeness);
        self.forget_page_if_changed(&key, list_max);
    }

    /// The member whose nickname is `nick` (of this `likeness`, see `names::nick_likeness`) to a
    /// reader: the same ignoring case, or one that looks the same.
    pub(crate) fn holder(&self, nick: &str, likeness: &str) -> Option<&Holder> {
        (self.nicks.get(&nick_key(nick))).or_else(|| self.likeness.get(likeness))
    }

    /// The name `holder` goes by (`clients` are the engine's, for a holder here).
    pub(crate) fn name_of<'a>(
        &'a self,
        holder: &Holder,
        clients: &'a slab::Slab<crate::client::Client>,
    ) -> &'a str {
        match holder {
            Holder::Local(slot) => &clients[*slot].nick,
            Holder::Remote(key) => &self.remote[key].nick,
        }
    }

    /// A key came or went: the cached first page stays only if the key sorts after its last
    /// name and the page is full (it lists `list_max` names, so a name past its end is not on it).
    /// Called with the index as it is without the key: then the page is full exactly when at
    /// least `list_max` other members remain.
    fn forget_page_if_changed(&mut self, key: &str, list_max: usize) {
        let unchanged = self.first_page.as_ref().is_some_and(|page| {
            self.nicks.len() >= list_max && page.last_key.as_deref().is_some_and(|last| key > last)
        });
        if !unchanged {
            self.first_page = None;
        }
    }

    /// Messages after `since`, if the ring still holds every one of them.
    pub(crate) fn history_after(&self, since: u64) -> Option<impl Iterator<Item = &Stored>> {
        if since > self.seq {
            return None;
        }
        let first_missing = since + 1;
        let oldest = self.history.front().map_or(self.seq + 1, |s| s.seq);
        if first_missing < oldest {
            return None;
        }
        Some(self.history.iter().filter(move |s| s.seq > since))
    }

    /// Flow control: pause when more than half the members are behind.
    pub(crate) fn should_pause(&self) -> bool {
        !self.paused && self.behind * 2 > self.members.len()
    }

    /// Flow control: resume once at most a quarter of the members are behind.
    pub(crate) fn should_resume(&self) -> bool {
        self.paused && self.behind * 4 <= self.members.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST_MAX: usize = 3;

    /// A room of `members` keyed `k0`, `k1`, ... with its first page cached.
    fn room_with_page(members: usize) -> Room {
        let mut room = Room::new("r".into(), 1, "e".into(), 0);
        for i in 0..members {
            room.index_nick(
                &format!("k{i}"),
                &format!("k{i}"),
                Holder::Local(i),
                LIST_MAX,
            );
        }
        let last_key = room.nicks.keys().take(LIST_MAX).next_back().cloned();
        room.first_page = Some(FirstPage {
            json: serde_json::value::to_raw_value(&[0u8; 0]).unwrap(),
            last_key,
        });
        room
    }

    #[test]
    fn the_first_page_is_kept_exactly_while_a_change_cannot_reach_it() {
        // Full pages: a key past the end leaves them as they are, coming or going.
        for members in [LIST_MAX, LIST_MAX + 1, LIST_MAX + 5] {
            let mut room = room_with_page(members);
            room.index_nick("z", "z", Holder::Local(members), LIST_MAX);
            assert!(
                room.first_page.is_some(),
                "join past a full page of {members}"
            );
            room.unindex_nick("z", "z", LIST_MAX);
            assert!(
                room.first_page.is_some(),
                "leave past a full page of {members}"
            );
        }
        // A page that lists everyone gains the newcomer, wherever it sorts.
        let mut room = room_with_page(LIST_MAX - 1);
        room.index_nick("z", "z", Holder::Local(LIST_MAX), LIST_MAX);
        assert!(
            room.first_page.is_none(),
            "join into a page that lists everyone"
        );
        // A key on the page changes it.
        let mut room = room_with_page(LIST_MAX + 5);
        room.index_nick("a", "a", Holder::Local(99), LIST_MAX);
        assert!(room.first_page.is_none(), "join onto the page");
        let mut room = room_with_page(LIST_MAX + 5);
        room.unindex_nick("k0", "k0", LIST_MAX);
        assert!(room.first_page.is_none(), "leave from the page");
        // A full page that one leave past its end would leave short.
        let mut room = room_with_page(LIST_MAX);
        room.unindex_nick("k2", "k2", LIST_MAX);
        assert!(room.first_page.is_none(), "the page's own last name left");
    }
}
