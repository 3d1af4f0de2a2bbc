//! Presence that scales: who is in a room, told in a way whose cost does not grow with the room.
//!
//! A room of at most `presence_notify_max` members announces every join, leave and rename at once
//! (`join`, `leave`, `nick`). A larger room coalesces them: each member's net change since the
//! last announcement is kept (by client, so a join and a leave in one interval cancel out) and
//! one `presence` frame per `presence_interval` tells everyone, so a thousand joins in a second
//! cost every member one frame rather than a thousand. The member list itself is paged: a
//! `welcome` carries the count and the first `presence_list_max` names, `who` pages the rest in
//! nickname order.

use std::ops::Bound;
use std::time::{Duration, Instant};

use crate::engine::Engine;
use crate::protocol::{ErrorCode, Outgoing, RenamedRef};
use crate::room::{Change, FirstPage, PresenceKey};
use crate::timer::Timer;
use crate::Now;

impl Engine {
    /// Whether room `r` announces membership changes one by one (a small room).
    pub(crate) fn announces_at_once(&self, r: usize) -> bool {
        !self.rooms[r].coalescing
    }

    /// Room `r` just got a member: past `presence_notify_max` it coalesces from now on.
    pub(crate) fn note_size(&mut self, r: usize) {
        let room = &mut self.rooms[r];
        if room.user_count() > self.config.presence_notify_max {
            room.coalescing = true;
        }
    }

    /// Keeps a membership change of `id` in coalescing room `r` for the next `presence` frame:
    /// `before` is its name in the room before this change (`None`: it was not a member),
    /// `after` its name now (`None`: it is not a member now).
    pub(crate) fn pend_presence(
        &mut self,
        r: usize,
        id: PresenceKey,
        before: Option<&str>,
        after: Option<&str>,
        now: Now,
    ) {
        let room = &mut self.rooms[r];
        let room_incarnation = room.incarnation;
        let change = room.pending.entry(id).or_insert_with(|| Change {
            before: before.map(str::to_owned),
            after: None,
            held: Vec::new(),
        });
        if let Some(between) = change.after.take() {
            if change.before.as_ref() != Some(&between) && !change.held.contains(&between) {
                change.held.push(between);
            }
        }
        change.after = after.map(str::to_owned);
        let at = now.mono + self.presence_spacing(r);
        let (_, due) = *self.presence_due.entry(room_incarnation).or_insert((r, at));
        let next = self.timers.get(Timer::Presence).map_or(due, |t| t.min(due));
        self.timers.set(Timer::Presence, next);
    }

    /// How long room `r`'s changes wait for their announcement: `presence_interval`, or longer
    /// in a room so large that a frame to every member each interval would exceed
    /// `presence_frames_per_second`.
    pub(crate) fn presence_spacing(&self, r: usize) -> Duration {
        let base = self.config.presence_interval;
        match self.config.presence_frames_per_second {
            0 => base,
            budget => {
                let members = self.rooms[r].members.len() as u64;
                base.max(Duration::from_micros(members * 1_000_000 / budget as u64))
            }
        }
    }

    /// The presence tick: every room with changes gets its one `presence` frame; a room that is
    /// small again goes back to announcing changes at once.
    ///
    /// A frame is applied as one step (every `left` and renamed `old` out, then every renamed
    /// `nick` and `joined` in), so a member's list ends up right whatever it saw in between:
    /// names are unique in a room, and every name a changed client held is taken out before its
    /// final one is put back.
    pub(crate) fn announce_presence(&mut self, now: Now) {
        self.timers.stop(Timer::Presence);
        let mut later = None::<Instant>;
        let mut due = Vec::new();
        self.presence_due.retain(|_, &mut (r, at)| {
            if at <= now.mono {
                due.push(r);
                return false;
            }
            later = Some(later.map_or(at, |l| l.min(at)));
            true
        });
        if let Some(at) = later {
            self.timers.set(Timer::Presence, at);
        }
        for r in due {
            self.announce_room(r, now);
        }
    }

    fn announce_room(&mut self, r: usize, now: Now) {
        let max = self.config.presence_changes_max;
        let room = &mut self.rooms[r];
        let pending = std::mem::take(&mut room.pending);
        if room.user_count() <= self.config.presence_notify_max {
            room.coalescing = false;
        }
        let mut joined = Vec::new();
        let mut left = Vec::new();
        let mut renamed = Vec::new();
        for change in pending.values() {
            match (&change.before, &change.after) {
                (None, Some(nick)) => joined.push(nick.as_str()),
                (Some(nick), None) => left.push(nick.as_str()),
                (Some(old), Some(nick)) if old != nick => renamed.push(RenamedRef { old, nick }),
                // Back where it began, but a member welcomed meanwhile saw it away or under
                // another name: gone and back again is right for every list.
                (Some(old), Some(nick)) => {
                    left.push(old.as_str());
                    joined.push(nick.as_str());
                }
                (None, None) => {}
            }
            // Names it no longer holds, though someone may have seen them meanwhile. Even when
            // everything cancelled out, the frame goes: a member may have seen the count move.
            left.extend(change.held.iter().map(String::as_str));
        }
        let more = |list_len: usize| list_len.saturating_sub(max);
        let (joined_more, left_more, renamed_more) =
            (more(joined.len()), more(left.len()), more(renamed.len()));
        joined.truncate(max);
        left.truncate(max);
        renamed.truncate(max);
        let frame = Outgoing::Presence {
            room: &room.name,
            user_count: room.user_count(),
            joined: &joined,
            left: &left,
            renamed: &renamed,
            joined_more,
            left_more,
            renamed_more,
        }
        .to_frame();
        self.broadcast(r, &frame, None, now);
    }

    /// A `who`: one page of the client's room, in nickname order after `after`.
    pub(crate) fn who(&mut self, slot: usize, now: Now, after: Option<&str>) {
        let Some(r) = self.clients[slot].room else {
            return self.reply_error(slot, now, ErrorCode::NotInRoom, "join a room first");
        };
        let room = &self.rooms[r];
        let after = after.map(|nick| crate::names::nick_key(nick.trim()));
        let start = match &after {
            Some(key) => Bound::Excluded(key.as_str()),
            None => Bound::Unbounded,
        };
        let max = self.config.presence_list_max;
        let mut users: Vec<&str> = room
            .nicks
            .range::<str, _>((start, Bound::Unbounded))
            .take(max + 1)
            .map(|(_, holder)| room.name_of(holder, &self.clients))
            .collect();
        let next = (users.len() > max).then(|| {
            users.truncate(max);
            users[max - 1]
        });
        let frame = Outgoing::Users {
            room: &room.name,
            users: &users,
            user_count: room.user_count(),
            next,
        }
        .to_frame();
        self.send_to(slot, now, frame);
    }

    /// Makes sure room `r` has its first page of members serialized, for a welcome: once, and
    /// again only after a change that reaches it.
    pub(crate) fn fill_first_page(&mut self, r: usize) {
        let room = &self.rooms[r];
        if room.first_page.is_none() {
            let page: Vec<(&String, &str)> = room
                .nicks
                .iter()
                .take(self.config.presence_list_max)
                .map(|(key, holder)| (key, room.name_of(holder, &self.clients)))
                .collect();
            let names: Vec<&str> = page.iter().map(|&(_, nick)| nick).collect();
            let json = serde_json::value::to_raw_value(&names)
                .expect("a list of strings always serializes");
            let last_key = page.last().map(|(key, _)| (*key).clone());
            self.rooms[r].first_page = Some(FirstPage { json, last_key });
        }
    }

    /// Nobody is connected any more: what was pending has nobody to be told.
    pub(crate) fn forget_presence(&mut self) {
        for (r, _) in std::mem::take(&mut self.presence_due).into_values() {
            let room = &mut self.rooms[r];
            room.pending.clear();
            // Members on other nodes still count.
            room.coalescing = room.user_count() > self.config.presence_notify_max;
        }
    }
}
