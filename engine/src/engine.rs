//! The chat state machine: clients, rooms, broadcast, queue accounting, flow control, timers.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::value::RawValue;
use slab::Slab;

use crate::names::{nick_key, validate_nick, validate_room};
use crate::protocol::{self, Command, ErrorCode, JoinRequest, Outgoing, ProtocolError};
use crate::rate::RateLimit;
use crate::room::{Room, Stored};
use crate::time::rfc3339_millis;
use crate::{ClientId, CloseReason, Config, Error, Input, Now, Output};

/// The whole chat server's logic, without any I/O.
///
/// Driving contract, for the shell that owns it (exactly one owner, no locks):
/// 1. Feed every event with the time it happened: `connect` for a new connection, `handle` for
///    everything else (`Input::Tick` when only time passed), `kick` for operators.
/// 2. After each call, drain `poll_output` until it returns `None`, carrying out every `Output`
///    in order (per client order matters: a `Close` comes after that client's last `Send`).
/// 3. Then re-read `poll_timeout` and call `handle(now, Input::Tick)` no later than that instant.
/// 4. Report written frames with `Input::Flushed`, so the engine's queue count matches the socket.
///
/// Time never goes backwards for the engine: an earlier `now` than the last one is treated as
/// the last one. Wall-clock time is used only to stamp messages.
#[derive(Debug)]
pub struct Engine {
    config: Config,
    epoch: String,
    clients: Slab<Client>,
    ids: BTreeMap<ClientId, usize>,
    rooms: Slab<Room>,
    room_index: BTreeMap<String, usize>,
    next_client: u64,
    room_incarnations: u64,
    activity: u64,
    outputs: VecDeque<Output>,
    /// Clients to close at the end of the current call, in decision order.
    doomed: VecDeque<(usize, CloseReason)>,
    last_now: Option<Instant>,
    ping_at: Option<Instant>,
    sweep_at: Option<Instant>,
    stats: Stats,
}

/// Counters since the engine started, plus current sizes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Clients connected now.
    pub clients: usize,
    /// Rooms that exist now (including empty ones that keep history).
    pub rooms: usize,
    /// Chat messages accepted and broadcast.
    pub messages_total: u64,
    /// Frames handed to the shell with `Output::Send`.
    pub frames_total: u64,
    /// Clients closed for a full outbound queue.
    pub evictions_total: u64,
    /// Clients closed for silence.
    pub timeouts_total: u64,
    /// Frames refused by the rate limit.
    pub rate_limited_total: u64,
    /// `error` frames sent.
    pub errors_total: u64,
}

#[derive(Debug)]
struct Client {
    id: ClientId,
    nick: String,
    room: Option<usize>,
    queued_frames: usize,
    queued_bytes: usize,
    /// At or above a high-water mark (counted in its room's `behind`).
    behind: bool,
    /// The shell was told to stop reading from it: its room is paused, or it is behind itself
    /// (a client may not talk faster than it listens).
    paused: bool,
    /// Decided to close during this call (or being removed); gets nothing more.
    doomed: bool,
    rate: RateLimit,
    strikes: u32,
    last_seen: Instant,
}

enum Pushed {
    Sent,
    SentNowBehind,
    Overflow,
    Skipped,
}

/// Accounts one frame to `client` and emits it, or reports that it would overflow the queue.
fn push_frame(
    client: &mut Client,
    frame: &Bytes,
    now: Now,
    config: &Config,
    outputs: &mut VecDeque<Output>,
) -> Pushed {
    if client.doomed {
        return Pushed::Skipped;
    }
    if client.queued_frames + 1 > config.queue_frames_max
        || client.queued_bytes + frame.len() > config.queue_bytes_max
    {
        return Pushed::Overflow;
    }
    client.queued_frames += 1;
    client.queued_bytes += frame.len();
    outputs.push_back(Output::Send {
        to: client.id,
        frame: frame.clone(),
    });
    if !client.behind && is_behind(client, config) {
        client.behind = true;
        // It stops being read from until it catches up, whatever its room does.
        set_paused(client, true, now, outputs);
        return Pushed::SentNowBehind;
    }
    Pushed::Sent
}

/// Tells the shell to pause or resume reading from `client`, if that changes anything.
fn set_paused(client: &mut Client, pause: bool, now: Now, outputs: &mut VecDeque<Output>) {
    // A client doomed during this call gets nothing more but its close.
    if client.paused == pause || client.doomed {
        return;
    }
    client.paused = pause;
    if pause {
        outputs.push_back(Output::Pause { to: client.id });
    } else {
        // It could not talk while paused: its silence starts now.
        client.last_seen = now.mono;
        outputs.push_back(Output::Resume { to: client.id });
    }
}

fn is_behind(client: &Client, config: &Config) -> bool {
    client.queued_frames >= config.queue_high_water_frames
        || client.queued_bytes >= config.queue_high_water_bytes
}

impl Engine {
    /// A new engine; `epoch` must differ between server starts (it invalidates old `since`s).
    pub fn new(config: Config, epoch: impl Into<String>) -> Result<Self, Error> {
        config.validate()?;
        Ok(Self {
            config,
            epoch: epoch.into(),
            clients: Slab::new(),
            ids: BTreeMap::new(),
            rooms: Slab::new(),
            room_index: BTreeMap::new(),
            next_client: 1,
            room_incarnations: 0,
            activity: 0,
            outputs: VecDeque::new(),
            doomed: VecDeque::new(),
            last_now: None,
            ping_at: None,
            sweep_at: None,
            stats: Stats::default(),
        })
    }

    /// Registers a new connection and performs its initial join (`welcome`, or an `error` that
    /// leaves it connected in no room, e.g. `nick_taken`).
    pub fn connect(&mut self, now: Now, join: JoinRequest) -> Result<ClientId, Error> {
        let now = self.advance(now);
        self.fire_timers(now);
        if self.clients.len() >= self.config.clients_max {
            // Whoever the timers just doomed is still closed in this call.
            self.finish(now);
            return Err(Error::ServerFull {
                max: self.config.clients_max,
            });
        }
        let id = ClientId::from_raw(self.next_client);
        self.next_client += 1;
        let slot = self.clients.insert(Client {
            id,
            nick: format!("{}{}", crate::names::GUEST_PREFIX, id.get()),
            room: None,
            queued_frames: 0,
            queued_bytes: 0,
            behind: false,
            paused: false,
            doomed: false,
            rate: RateLimit::new(),
            strikes: 0,
            last_seen: now.mono,
        });
        self.ids.insert(id, slot);
        self.ping_at
            .get_or_insert(now.mono + self.config.ping_interval);
        self.sweep_at
            .get_or_insert(now.mono + self.config.idle_timeout);
        self.join(slot, now, join);
        self.finish(now);
        Ok(id)
    }

    /// Handles one input at `now`.
    pub fn handle(&mut self, now: Now, input: Input<'_>) -> Result<(), Error> {
        let now = self.advance(now);
        self.fire_timers(now);
        let result = match input {
            Input::Frame { client, text } => {
                self.slot(client).map(|slot| self.on_frame(slot, now, text))
            }
            Input::Pong { client } => self.slot(client).map(|slot| {
                self.clients[slot].last_seen = now.mono;
            }),
            Input::Flushed {
                client,
                frames,
                bytes,
            } => self
                .slot(client)
                .and_then(|slot| self.on_flushed(slot, now, frames, bytes)),
            Input::Disconnect { client } => self.slot(client).map(|slot| {
                // The peer left first: a close the timers decided in this call is moot.
                if self.clients[slot].doomed {
                    self.doomed.retain(|&(doomed, _)| doomed != slot);
                }
                self.remove(slot, now, "left");
            }),
            Input::Tick => Ok(()),
        };
        self.finish(now);
        result
    }

    /// Closes the client called `nick` in `room` (close 4003; the room sees `leave` `kicked`).
    pub fn kick(&mut self, now: Now, room: &str, nick: &str) -> Result<ClientId, Error> {
        let now = self.advance(now);
        self.fire_timers(now);
        let slot = self
            .room_index
            .get(room)
            .and_then(|&r| self.rooms[r].nicks.get(&nick_key(nick.trim())).copied());
        let result = match slot {
            Some(slot) => {
                self.doom(slot, CloseReason::Kicked);
                Ok(self.clients[slot].id)
            }
            None => Err(Error::NoSuchUser {
                room: room.to_owned(),
                nick: nick.to_owned(),
            }),
        };
        self.finish(now);
        result
    }

    /// Next instruction for the shell; drain until `None` after every call.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When to call `handle(now, Input::Tick)` next; `None` while nobody is connected.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.ping_at, self.sweep_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn stats(&self) -> Stats {
        Stats {
            clients: self.clients.len(),
            rooms: self.rooms.len(),
            ..self.stats
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The epoch the shell supplied at start.
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// Nicknames in `room`, in join order (presence), or `None` if the room does not exist.
    pub fn members(&self, room: &str) -> Option<Vec<&str>> {
        let &r = self.room_index.get(room)?;
        Some(
            self.rooms[r]
                .members
                .iter()
                .map(|&s| self.clients[s].nick.as_str())
                .collect(),
        )
    }

    /// Frames and payload bytes queued for `client` and not yet reported flushed.
    pub fn queued(&self, client: ClientId) -> Option<(usize, usize)> {
        let &slot = self.ids.get(&client)?;
        let c = &self.clients[slot];
        Some((c.queued_frames, c.queued_bytes))
    }

    /// The nickname and room of a connected client.
    pub fn client_info(&self, client: ClientId) -> Option<(&str, Option<&str>)> {
        let &slot = self.ids.get(&client)?;
        let c = &self.clients[slot];
        Some((c.nick.as_str(), c.room.map(|r| self.rooms[r].name.as_str())))
    }

    fn advance(&mut self, now: Now) -> Now {
        let mono = self.last_now.map_or(now.mono, |last| last.max(now.mono));
        self.last_now = Some(mono);
        Now { mono, ..now }
    }

    fn slot(&self, client: ClientId) -> Result<usize, Error> {
        self.ids
            .get(&client)
            .copied()
            .ok_or(Error::UnknownClient(client))
    }

    /// Closes everyone doomed during this call, then checks the invariants (debug builds).
    fn finish(&mut self, now: Now) {
        while let Some((slot, reason)) = self.doomed.pop_front() {
            let id = self.clients[slot].id;
            self.outputs.push_back(Output::Close { client: id, reason });
            match reason {
                CloseReason::SlowConsumer => self.stats.evictions_total += 1,
                CloseReason::IdleTimeout => self.stats.timeouts_total += 1,
                CloseReason::Flooding | CloseReason::Kicked => {}
            }
            self.remove(slot, now, reason.leave_reason());
        }
        #[cfg(debug_assertions)]
        self.check_invariants();
    }

    fn doom(&mut self, slot: usize, reason: CloseReason) {
        let client = &mut self.clients[slot];
        if !client.doomed {
            client.doomed = true;
            self.doomed.push_back((slot, reason));
        }
    }

    fn remove(&mut self, slot: usize, now: Now, reason: &str) {
        // Gone (closed or disconnected): it gets nothing more, not even the `Resume` of leaving a
        // paused room.
        self.clients[slot].doomed = true;
        self.leave_room(slot, now, reason);
        let client = self.clients.remove(slot);
        self.ids.remove(&client.id);
        if self.clients.is_empty() {
            self.ping_at = None;
            self.sweep_at = None;
        }
    }

    fn fire_timers(&mut self, now: Now) {
        if self.ping_at.is_some_and(|at| at <= now.mono) {
            for (_, client) in &self.clients {
                self.outputs.push_back(Output::Ping { to: client.id });
            }
            self.ping_at = Some(now.mono + self.config.ping_interval);
        }
        if self.sweep_at.is_some_and(|at| at <= now.mono) {
            let idle = self.config.idle_timeout;
            let mut silent = Vec::new();
            let mut next: Option<Instant> = None;
            for (slot, client) in &self.clients {
                if client.paused {
                    continue;
                }
                let deadline = client.last_seen + idle;
                if deadline <= now.mono {
                    silent.push(slot);
                } else {
                    next = Some(next.map_or(deadline, |n| n.min(deadline)));
                }
            }
            for slot in silent {
                self.doom(slot, CloseReason::IdleTimeout);
            }
            // Sweeps cost O(clients): never run them more often than this.
            let granularity = Duration::from_secs(1).min(idle / 4);
            let next = next.unwrap_or(now.mono + idle);
            self.sweep_at = Some(next.max(now.mono + granularity));
        }
    }

    fn on_frame(&mut self, slot: usize, now: Now, text: &str) {
        let config = &self.config;
        let client = &mut self.clients[slot];
        client.last_seen = now.mono;
        if !client.rate.try_acquire(
            now.mono,
            config.rate_limit_burst,
            config.rate_limit_per_second,
        ) {
            client.strikes += 1;
            self.stats.rate_limited_total += 1;
            if config.rate_limit_strikes_max > 0 && client.strikes >= config.rate_limit_strikes_max
            {
                self.doom(slot, CloseReason::Flooding);
            } else {
                let message = format!(
                    "slow down: at most {} messages per second (bursts of {})",
                    config.rate_limit_per_second, config.rate_limit_burst
                );
                self.reply_error(slot, now, ErrorCode::RateLimited, &message);
            }
            return;
        }
        client.strikes = 0;
        match protocol::decode(text) {
            Err(ProtocolError { code, message }) => self.reply_error(slot, now, code, &message),
            Ok(Command::Message { text }) => self.post(slot, now, &text),
            Ok(Command::Join(join)) => self.join(slot, now, join),
            Ok(Command::Nick { nick }) => self.change_nick(slot, now, &nick),
            Ok(Command::Typing) => self.typing(slot, now),
        }
    }

    fn on_flushed(
        &mut self,
        slot: usize,
        now: Now,
        frames: usize,
        bytes: usize,
    ) -> Result<(), Error> {
        let client = &mut self.clients[slot];
        if frames > client.queued_frames || bytes > client.queued_bytes {
            return Err(Error::FlushExceedsQueue {
                client: client.id,
                frames,
                bytes,
                queued_frames: client.queued_frames,
                queued_bytes: client.queued_bytes,
            });
        }
        client.queued_frames -= frames;
        client.queued_bytes -= bytes;
        if client.behind && !is_behind(client, &self.config) {
            client.behind = false;
            if let Some(r) = client.room {
                self.rooms[r].behind -= 1;
                self.rebalance(r, now);
            }
            self.sync_pause(slot, now);
        }
        Ok(())
    }

    fn reply_error(&mut self, slot: usize, now: Now, code: ErrorCode, message: &str) {
        self.stats.errors_total += 1;
        let frame = Outgoing::Error {
            code: code.as_str(),
            message,
        }
        .to_frame();
        self.send_to(slot, now, frame);
    }

    /// Sends `frame` to one client. If that puts it behind, its room's flow control is
    /// re-evaluated exactly as after a broadcast.
    fn send_to(&mut self, slot: usize, now: Now, frame: Bytes) {
        let client = &mut self.clients[slot];
        match push_frame(client, &frame, now, &self.config, &mut self.outputs) {
            Pushed::Sent => self.stats.frames_total += 1,
            Pushed::SentNowBehind => {
                self.stats.frames_total += 1;
                if let Some(r) = client.room {
                    self.rooms[r].behind += 1;
                    self.rebalance(r, now);
                }
            }
            Pushed::Overflow => self.doom(slot, CloseReason::SlowConsumer),
            Pushed::Skipped => {}
        }
    }

    /// Sends `frame` to every member of room `r` but `except`; the per-recipient hot path.
    fn broadcast(&mut self, r: usize, frame: &Bytes, except: Option<usize>, now: Now) {
        let room = &self.rooms[r];
        let mut newly_behind = 0;
        let mut sent = 0;
        for &slot in &room.members {
            if Some(slot) == except {
                continue;
            }
            let client = &mut self.clients[slot];
            match push_frame(client, frame, now, &self.config, &mut self.outputs) {
                Pushed::Sent => sent += 1,
                Pushed::SentNowBehind => {
                    sent += 1;
                    newly_behind += 1;
                }
                Pushed::Overflow => {
                    client.doomed = true;
                    self.doomed.push_back((slot, CloseReason::SlowConsumer));
                }
                Pushed::Skipped => {}
            }
        }
        self.stats.frames_total += sent;
        self.rooms[r].behind += newly_behind;
        self.rebalance(r, now);
    }

    /// Applies flow control to room `r`: pause or resume reading from all its members (a member
    /// behind on its own queue stays paused either way).
    fn rebalance(&mut self, r: usize, now: Now) {
        let room = &mut self.rooms[r];
        let pause = if room.should_pause() {
            true
        } else if room.should_resume() {
            false
        } else {
            return;
        };
        room.paused = pause;
        for &slot in &room.members {
            let client = &mut self.clients[slot];
            set_paused(client, pause || client.behind, now, &mut self.outputs);
        }
    }

    /// Pauses or resumes one client to match its own and its room's state.
    fn sync_pause(&mut self, slot: usize, now: Now) {
        let client = &mut self.clients[slot];
        let room_paused = client.room.is_some_and(|r| self.rooms[r].paused);
        set_paused(client, room_paused || client.behind, now, &mut self.outputs);
    }

    fn post(&mut self, slot: usize, now: Now, text: &str) {
        let Some(r) = self.clients[slot].room else {
            return self.reply_error(
                slot,
                now,
                ErrorCode::NotInRoom,
                "join a room before sending messages",
            );
        };
        let text = text.trim();
        if text.is_empty() {
            return self.reply_error(
                slot,
                now,
                ErrorCode::EmptyMessage,
                "a message needs some text",
            );
        }
        let max = self.config.text_bytes_max;
        if text.len() > max {
            let message = format!(
                "a message has at most {max} bytes (this one has {})",
                text.len()
            );
            return self.reply_error(slot, now, ErrorCode::MessageTooLong, &message);
        }
        self.activity += 1;
        let room = &mut self.rooms[r];
        room.seq += 1;
        room.last_active = self.activity;
        let ts = rfc3339_millis(now.wall);
        let frame = Outgoing::Message {
            room: &room.name,
            seq: room.seq,
            nick: &self.clients[slot].nick,
            text,
            ts: &ts,
        }
        .to_frame();
        let stored = Stored {
            seq: room.seq,
            frame: frame.clone(),
        };
        room.remember(stored, self.config.history_max);
        self.stats.messages_total += 1;
        self.broadcast(r, &frame, None, now);
    }

    fn typing(&mut self, slot: usize, now: Now) {
        let client = &self.clients[slot];
        let Some(r) = client.room else {
            return self.reply_error(slot, now, ErrorCode::NotInRoom, "join a room first");
        };
        let room = &self.rooms[r];
        let frame = Outgoing::Typing {
            room: &room.name,
            nick: &client.nick,
        }
        .to_frame();
        self.broadcast(r, &frame, Some(slot), now);
    }

    fn change_nick(&mut self, slot: usize, now: Now, raw: &str) {
        let Some(r) = self.clients[slot].room else {
            return self.reply_error(
                slot,
                now,
                ErrorCode::NotInRoom,
                "join a room first (a join can carry a nick)",
            );
        };
        let nick = match validate_nick(raw) {
            Ok(nick) => nick.to_owned(),
            Err(why) => return self.reply_error(slot, now, ErrorCode::InvalidNick, &why),
        };
        if let Some(&holder) = self.rooms[r].nicks.get(&nick_key(&nick)) {
            if holder != slot {
                return self.nick_taken(slot, now, &nick, r);
            }
        }
        self.rename(slot, r, nick, now);
    }

    fn nick_taken(&mut self, slot: usize, now: Now, nick: &str, r: usize) {
        let message = format!(
            "the nickname {nick:?} is already used in room {}",
            self.rooms[r].name
        );
        self.reply_error(slot, now, ErrorCode::NickTaken, &message);
    }

    fn rename(&mut self, slot: usize, r: usize, nick: String, now: Now) {
        let client = &mut self.clients[slot];
        let old = std::mem::replace(&mut client.nick, nick);
        let room = &mut self.rooms[r];
        room.nicks.remove(&nick_key(&old));
        room.nicks.insert(nick_key(&client.nick), slot);
        let frame = Outgoing::Nick {
            room: &room.name,
            old: &old,
            nick: &client.nick,
            ts: &rfc3339_millis(now.wall),
        }
        .to_frame();
        self.broadcast(r, &frame, None, now);
    }

    fn join(&mut self, slot: usize, now: Now, join: JoinRequest) {
        let current = self.clients[slot].room;
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
        let nick = match &join.nick {
            Some(raw) => match validate_nick(raw) {
                Ok(nick) => nick.to_owned(),
                Err(why) => return self.reply_error(slot, now, ErrorCode::InvalidNick, &why),
            },
            None => self.clients[slot].nick.clone(),
        };
        let target = self.room_index.get(&room_name).copied();
        if let Some(t) = target {
            if let Some(&holder) = self.rooms[t].nicks.get(&nick_key(&nick)) {
                if holder != slot {
                    return self.nick_taken(slot, now, &nick, t);
                }
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
                self.rename(slot, r, nick, now);
            }
        } else {
            self.leave_room(slot, now, "switched");
            self.enter_room(slot, r, nick, now);
        }
        self.welcome(slot, now, r, join.since, join.epoch.as_deref());
    }

    fn enter_room(&mut self, slot: usize, r: usize, nick: String, now: Now) {
        self.activity += 1;
        let client = &mut self.clients[slot];
        client.nick = nick;
        client.room = Some(r);
        let room = &mut self.rooms[r];
        room.last_active = self.activity;
        room.members.push(slot);
        room.nicks.insert(nick_key(&client.nick), slot);
        if client.behind {
            room.behind += 1;
        }
        self.sync_pause(slot, now);
        let (room, client) = (&self.rooms[r], &self.clients[slot]);
        let frame = Outgoing::Join {
            room: &room.name,
            nick: &client.nick,
            ts: &rfc3339_millis(now.wall),
        }
        .to_frame();
        self.broadcast(r, &frame, Some(slot), now);
    }

    fn leave_room(&mut self, slot: usize, now: Now, reason: &str) {
        let client = &mut self.clients[slot];
        let Some(r) = client.room.take() else {
            return;
        };
        let room = &mut self.rooms[r];
        room.members.retain(|&s| s != slot);
        room.nicks.remove(&nick_key(&client.nick));
        if client.behind {
            room.behind -= 1;
        }
        self.sync_pause(slot, now);
        let (room, client) = (&self.rooms[r], &self.clients[slot]);
        let frame = Outgoing::Leave {
            room: &room.name,
            nick: &client.nick,
            ts: &rfc3339_millis(now.wall),
            reason,
        }
        .to_frame();
        self.broadcast(r, &frame, None, now);
    }

    fn create_room(&mut self, name: String) -> Option<usize> {
        if self.rooms.len() >= self.config.rooms_max {
            let (stale, _) = self
                .rooms
                .iter()
                .filter(|(_, room)| room.members.is_empty())
                .min_by_key(|(_, room)| room.last_active)?;
            let room = self.rooms.remove(stale);
            self.room_index.remove(&room.name);
        }
        self.room_incarnations += 1;
        self.activity += 1;
        let epoch = format!("{}-{}", self.epoch, self.room_incarnations);
        let r = self
            .rooms
            .insert(Room::new(name.clone(), epoch, self.activity));
        self.room_index.insert(name, r);
        Some(r)
    }

    /// Sends the (re)join greeting, recovering what the client missed when the ring still has it,
    /// and trimming history (oldest first) so the greeting fits the client's queue.
    fn welcome(
        &mut self,
        slot: usize,
        now: Now,
        r: usize,
        since: Option<u64>,
        epoch: Option<&str>,
    ) {
        let frame = self.greeting(slot, r, since, epoch);
        self.send_to(slot, now, frame);
    }

    fn greeting(&self, slot: usize, r: usize, since: Option<u64>, epoch: Option<&str>) -> Bytes {
        let room = &self.rooms[r];
        let recovery = match (since, epoch) {
            (Some(since), Some(epoch)) if epoch == room.epoch => room.history_after(since),
            _ => None,
        };
        let mut recovered = recovery.is_some();
        let entries: Vec<&Stored> = match recovery {
            Some(missed) => missed.collect(),
            None => room.history.iter().collect(),
        };
        let history: Vec<&RawValue> = entries
            .iter()
            .map(|stored| {
                serde_json::from_slice(&stored.frame)
                    .expect("history holds only frames this engine serialized")
            })
            .collect();
        let users: Vec<&str> = room
            .members
            .iter()
            .map(|&s| self.clients[s].nick.as_str())
            .collect();
        let client = &self.clients[slot];
        let greeting = |history: &[&RawValue], recovered: bool| -> Bytes {
            Outgoing::Welcome {
                nick: &client.nick,
                room: &room.name,
                users: &users,
                history,
                recovered,
                seq: room.seq,
                epoch: &room.epoch,
            }
            .to_frame()
        };
        let budget = self
            .config
            .queue_bytes_max
            .saturating_sub(client.queued_bytes);
        let mut size = greeting(&[], false).len()
            + history.iter().map(|raw| raw.get().len() + 1).sum::<usize>();
        let mut skip = 0;
        while size > budget && skip < history.len() {
            size -= history[skip].get().len() + 1;
            skip += 1;
            recovered = false;
        }
        greeting(&history[skip..], recovered)
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
            match client.room {
                Some(r) => {
                    in_rooms += 1;
                    let room = &self.rooms[r];
                    assert_eq!(
                        room.nicks.get(&nick_key(&client.nick)),
                        Some(&slot),
                        "{} not in its room's nick index",
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
        for (r, room) in &self.rooms {
            assert_eq!(
                self.room_index.get(&room.name),
                Some(&r),
                "room {} mis-indexed",
                room.name
            );
            assert_eq!(
                room.nicks.len(),
                room.members.len(),
                "room {} nick index size",
                room.name
            );
            for &slot in &room.members {
                assert_eq!(
                    self.clients.get(slot).and_then(|c| c.room),
                    Some(r),
                    "room {} lists a non-member",
                    room.name
                );
            }
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
                "room {} history behind seq",
                room.name
            );
        }
        assert_eq!(members, in_rooms, "room member lists count someone twice");
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
            }
        }
    }
}
