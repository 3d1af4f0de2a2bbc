//! The chat state machine's driving core: the `Engine` type and its contract with the shell,
//! the calls that feed it inputs, the polls that drain its outputs, and the bookkeeping every
//! call shares (time, client lookup, closing the doomed at the end of a call). The rest of its
//! logic lives by concept in `commands`, `membership`, `presence`, `greeting`, `flow`, `timer`
//! and `invariants`.

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;
use std::time::Instant;

use slab::Slab;

use crate::client::Client;
use crate::commit::Uncommitted;
use crate::departures::{AddrKey, Departures};
use crate::dormant::Dormant;
use crate::history::{Budget, Histories};
use crate::names::{nick_key, room_likeness};
use crate::protocol::JoinRequest;
use crate::room::{Holder, Room};
use crate::timer::{Timer, TimerTable};
use crate::{ClientId, CloseReason, Config, Error, Input, LeaveReason, Now, Output};

/// The whole chat server's logic, without any I/O.
///
/// Driving contract, for the shell that owns it (exactly one owner, no locks):
/// 1. Feed every event with the time it happened: [`connect`](Self::connect) for a new
///    connection, [`handle`](Self::handle) for everything else (`Input::Tick` when only time
///    passed), [`kick`](Self::kick) for operators.
/// 2. After each call, drain [`poll_output`](Self::poll_output) until it returns `None`,
///    carrying out every `Output` in order (per client order matters: a `Close` comes after that
///    client's last `Send`).
/// 3. Then re-read [`poll_timeout`](Self::poll_timeout) and call `handle(now, Input::Tick)` no
///    later than that instant.
/// 4. Report written frames with `Input::Flushed`, so the engine's queue count matches the socket.
///
/// Time never goes backwards for the engine: an earlier `now` than the last one is treated as
/// the last one. Wall-clock time is used only to stamp messages.
///
/// With `Config::hold_until_committed`, a chat message goes out as `Output::Store` and nothing
/// else until the shell reports `Input::Committed` for it (see [`Output::Store`]); commits come
/// in the order of the stores.
///
/// The methods, by role:
/// - **constructors**: [`new`](Self::new), [`restore`](Self::restore) (rooms a store kept);
/// - **inputs**: [`connect`](Self::connect) and [`kick`](Self::kick) (which return a value),
///   [`handle`](Self::handle) for every [`Input`];
/// - **polls**: [`poll_output`](Self::poll_output), [`poll_timeout`](Self::poll_timeout);
/// - **getters**: [`stats`](Self::stats), [`config`](Self::config), [`members`](Self::members),
///   [`queued`](Self::queued), [`client_info`](Self::client_info);
/// - **test introspection**: [`check_invariants`](Self::check_invariants).
#[derive(Debug)]
pub struct Engine {
    pub(crate) config: Config,
    /// The shell's epoch for this start; each room's epoch extends it.
    pub(crate) epoch: String,
    pub(crate) clients: Slab<Client>,
    pub(crate) ids: BTreeMap<ClientId, usize>,
    pub(crate) rooms: Slab<Room>,
    pub(crate) room_index: BTreeMap<String, usize>,
    pub(crate) next_client: u64,
    pub(crate) room_incarnations: u64,
    /// A counter of joins and posts: the order in which rooms were last active.
    pub(crate) activity: u64,
    pub(crate) outputs: VecDeque<Output>,
    /// Clients to close at the end of the current call, in decision order.
    pub(crate) doomed: VecDeque<(usize, CloseReason)>,
    pub(crate) last_now: Option<Instant>,
    pub(crate) timers: TimerTable,
    /// Rooms with presence changes waiting to be announced: slot and when, by incarnation, so
    /// rooms due together are announced in the order they were created.
    pub(crate) presence_due: BTreeMap<u64, (usize, Instant)>,
    pub(crate) histories: Histories,
    /// Messages waiting for the store's commit (with `hold_until_committed`).
    pub(crate) uncommitted: Uncommitted,
    /// Rate buckets clients left with, for the next connection from their address.
    pub(crate) departures: Departures,
    /// Rooms the store keeps that are not in memory (with `Config::persists`).
    pub(crate) dormant: Dormant,
    /// Dormant rooms whose tail was asked for (`Output::LoadTail`), by likeness, with the
    /// clients whose joins wait for it (with `tail_on_wake`). A client listed may have left or
    /// gone elsewhere since: its own `waking` says whether it still waits.
    pub(crate) waking: BTreeMap<String, Vec<ClientId>>,
    /// Publishes the broker has not answered yet (with `ordered_by_broker`).
    pub(crate) publishing: crate::ordering::Publishing,
    /// Members on other nodes, where they sit (with `members_shared`).
    pub(crate) remotes: crate::remote::Remotes,
    pub(crate) stats: Stats,
}

/// Counters since the engine started, plus current sizes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Clients connected now.
    pub clients: usize,
    /// Rooms that exist now (including empty ones that keep history).
    pub rooms: usize,
    /// Bytes every room's history holds now: frames plus 64 per message of bookkeeping.
    pub history_bytes: usize,
    /// Chat messages broadcast (with `hold_until_committed`: committed and released).
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
    /// Held messages dropped because the store could not write them (`Input::StoreFailed`).
    pub store_failures_total: u64,
    /// Messages waiting for their commit now.
    pub uncommitted: usize,
    /// Rooms the store keeps that are not in memory now.
    pub dormant_rooms: usize,
    /// Tails a store handed back that were not the room's history (`Input::TailLoaded`): the
    /// room woke without one.
    pub tails_refused_total: u64,
    /// Ordered messages refused: not the message frame of their room and seq (cluster mode).
    pub broker_refused_total: u64,
    /// Ordered messages dropped as already delivered (cluster mode).
    pub broker_duplicates_total: u64,
    /// Times a room went on from another epoch or past a gap the broker no longer kept, its
    /// members welcomed again with `recovered: false` (cluster mode).
    pub broker_resets_total: u64,
}

impl Engine {
    /// A new engine; `epoch` must differ between server starts (it invalidates old `since`s). To
    /// start from what a store kept, see [`restore`](Self::restore).
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
            timers: TimerTable::default(),
            presence_due: BTreeMap::new(),
            histories: Histories::default(),
            uncommitted: Uncommitted::default(),
            publishing: Default::default(),
            remotes: Default::default(),
            departures: Departures::default(),
            dormant: Dormant::default(),
            waking: BTreeMap::new(),
            stats: Stats::default(),
        })
    }

    // ---------------------------------------------------------------------------- inputs

    /// Registers a new connection and performs its initial join (`welcome`, or an `error` that
    /// leaves it connected in no room, e.g. `nick_taken`).
    pub fn connect(&mut self, now: Now, join: JoinRequest) -> Result<ClientId, Error> {
        self.connect_from(now, join, None)
    }

    /// [`connect`](Self::connect) for a connection from `from`: a client reconnecting from an
    /// address that another just left with a drawn-down rate limit starts where that one
    /// stopped, not with a fresh burst (until the buckets have refilled).
    pub fn connect_from(
        &mut self,
        now: Now,
        join: JoinRequest,
        from: Option<IpAddr>,
    ) -> Result<ClientId, Error> {
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
        let (prefix, tag) = (crate::names::GUEST_PREFIX, &self.config.guest_tag);
        let nick = format!("{prefix}{tag}{}", id.get());
        let mut client = Client::new(id, nick, now.mono);
        client.from = from.map(AddrKey::of);
        if let Some(left) = client
            .from
            .and_then(|a| self.departures.arrive(a, now.mono))
        {
            client.rate = left.rate;
            client.membership_rate = left.membership;
        }
        let slot = self.clients.insert(client);
        self.ids.insert(id, slot);
        self.timers
            .start(Timer::Ping, now.mono + self.config.ping_interval);
        self.timers
            .start(Timer::Sweep, now.mono + self.config.idle_timeout);
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
                self.remove(slot, now, LeaveReason::Left);
            }),
            Input::Committed { op } => self.on_committed(op, now),
            Input::StoreFailed { op } => self.on_store_failed(op, now),
            Input::Fetched {
                to,
                room,
                messages,
                complete,
            } => {
                self.on_fetched(to, now, room, messages, complete);
                Ok(())
            }
            Input::TailLoaded { room, messages } => {
                self.on_tail_loaded(room, messages, now);
                Ok(())
            }
            Input::Published { .. }
            | Input::PublishFailed { .. }
            | Input::Ordered { .. }
            | Input::Refilled { .. }
            | Input::BrokerResumed
                if !self.config.ordered_by_broker =>
            {
                Err(Error::NotClustered)
            }
            Input::Published { op } => {
                self.on_published(op);
                Ok(())
            }
            Input::PublishFailed { op } => {
                self.on_publish_failed(op, now);
                Ok(())
            }
            Input::Ordered {
                room,
                epoch,
                seq,
                frame,
            } => {
                self.on_ordered(room, epoch, seq, frame, now);
                Ok(())
            }
            Input::Refilled {
                room,
                epoch,
                messages,
                complete,
            } => {
                self.on_refilled(room, epoch, messages, complete, now);
                Ok(())
            }
            Input::BrokerResumed => {
                self.on_broker_resumed();
                Ok(())
            }
            Input::Relayed { .. } if !self.config.ordered_by_broker => Err(Error::NotClustered),
            Input::Relayed { room, frame } => {
                self.on_relayed(room, frame, now);
                Ok(())
            }
            Input::NickClaimed { .. } if !self.config.nicks_claimed => Err(Error::NotClustered),
            Input::NickClaimed {
                client,
                room,
                likeness,
                outcome,
            } => {
                self.on_nick_claimed(client, room, likeness, outcome, now);
                Ok(())
            }
            Input::RemoteSeated { .. }
            | Input::RemoteUnseated { .. }
            | Input::RemoteNode { .. }
                if !self.config.members_shared =>
            {
                Err(Error::NotClustered)
            }
            Input::RemoteSeated {
                node,
                client,
                room,
                nick,
            } => {
                self.on_remote_seated(node, client, room, nick, now);
                Ok(())
            }
            Input::RemoteUnseated {
                node,
                client,
                reason,
            } => {
                self.on_remote_unseated(node, client, reason, now);
                Ok(())
            }
            Input::RemoteNode {
                node,
                seats,
                missing,
            } => {
                self.on_remote_node(node, seats, missing, now);
                Ok(())
            }
            Input::Tick => Ok(()),
        };
        self.finish(now);
        result
    }

    /// Closes the client called `nick` in `room` (close 4003; the room sees `leave` `kicked`).
    pub fn kick(&mut self, now: Now, room: &str, nick: &str) -> Result<ClientId, Error> {
        let now = self.advance(now);
        self.fire_timers(now);
        let slot = self.room_index.get(&room_likeness(room)).and_then(|&r| {
            match self.rooms[r].nicks.get(&nick_key(nick.trim())) {
                Some(&Holder::Local(slot)) => Some(slot),
                // On another node: the shell asks that node (see `Error::NoSuchUser`).
                _ => None,
            }
        });
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

    // ----------------------------------------------------------------------------- polls

    /// Next instruction for the shell; drain until `None` after every call.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When to call `handle(now, Input::Tick)` next; `None` while nobody is connected.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    // --------------------------------------------------------------------------- getters

    /// Counters since start and current sizes.
    pub fn stats(&self) -> Stats {
        Stats {
            clients: self.clients.len(),
            rooms: self.rooms.len(),
            history_bytes: self.histories.bytes,
            uncommitted: self.uncommitted.len() + self.publishing.pending.len(),
            dormant_rooms: self.dormant.len(),
            ..self.stats
        }
    }

    /// The limits this engine enforces.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Nicknames in `room`, in join order (presence), or `None` if the room does not exist.
    pub fn members(&self, room: &str) -> Option<Vec<&str>> {
        let &r = self.room_index.get(&room_likeness(room))?;
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

    /// Everyone in `room` on every node (`welcome`'s `user_count`), if the room exists here.
    pub fn user_count(&self, room: &str) -> Option<usize> {
        let &r = self.room_index.get(&room_likeness(room))?;
        Some(self.rooms[r].user_count())
    }

    /// The nickname and room of a connected client.
    pub fn client_info(&self, client: ClientId) -> Option<(&str, Option<&str>)> {
        let &slot = self.ids.get(&client)?;
        let c = &self.clients[slot];
        Some((c.nick.as_str(), c.room.map(|r| self.rooms[r].name.as_str())))
    }

    // -------------------------------------------------------------- shared by every call

    /// The bounds a room's history is kept within.
    pub(crate) fn history_budget(&self) -> Budget {
        Budget {
            messages: self.config.history_max,
            room_bytes: self.config.history_bytes_max,
            total_bytes: self.config.history_total_bytes_max,
        }
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

    /// Decides to close the client in `slot` at the end of this call; it gets nothing more.
    pub(crate) fn doom(&mut self, slot: usize, reason: CloseReason) {
        let client = &mut self.clients[slot];
        if !client.doomed {
            client.doomed = true;
            self.doomed.push_back((slot, reason));
        }
    }

    fn remove(&mut self, slot: usize, now: Now, reason: LeaveReason) {
        // Gone (closed or disconnected): it gets nothing more, not even the `Resume` of leaving a
        // paused room.
        self.clients[slot].doomed = true;
        self.leave_room(slot, now, reason);
        let client = self.clients.remove(slot);
        self.ids.remove(&client.id);
        if let Some(addr) = client.from {
            let max = self.config.clients_max;
            (self.departures).leave(addr, &client.rate, &client.membership_rate, now.mono, max);
        }
        if self.clients.is_empty() {
            self.timers.stop_all();
            self.forget_presence();
        }
    }
}
