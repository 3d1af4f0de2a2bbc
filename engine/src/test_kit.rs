//! The one scripted shell every engine test drives the engine through: the scenario tests
//! (`src/tests`), the reference model (`tests/model.rs`) and the `engine_ops` fuzz target.
//!
//! [`Shell`] owns the engine and a clock and plays every client's socket the way the server's
//! hub does: it carries out each `Output`, keeps each client's frames written but not yet
//! reported flushed, and (unless a client was told to stop reading) reports them flushed. On
//! every output it checks the driving contract from the shell's side, so a test cannot pass on
//! an engine that breaks it:
//! - outputs name only live clients, and nothing follows a client's `Close`;
//! - `Pause` and `Resume` alternate per client;
//! - every `Send` is a protocol message (`ServerMessage`);
//! - every `Store` has a new, higher op and its frame is that room's `message` for that seq (the
//!   shell keeps the outstanding ones, oldest first, for [`Shell::commit_next`]);
//! - after every call the engine's invariants hold and its queue counts equal the frames the
//!   shell was given minus those it reported flushed.
//!
//! Enabled in the engine's own tests and, for other crates, with the `test-kit` feature.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use crate::fake_broker::{Delivery, FakeBroker, FakeNicks, Range};
use crate::protocol::JoinRequest;
use crate::{
    ClientId, CloseReason, Config, Engine, Error, Input, LeaveReason, Now, OpId, Output,
    RestoredRoom, ServerMessage,
};

/// What one client got from the engine, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A text frame, parsed.
    Frame(ServerMessage),
    /// A heartbeat ping.
    Ping,
    /// Told to stop reading it.
    Pause,
    /// Told to read it again.
    Resume,
    /// Closed, with this reason; nothing follows.
    Close(CloseReason),
}

/// One `Output::Store` the shell was given: the message to make durable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreRequest {
    /// The op to commit it with.
    pub op: OpId,
    /// The room's name.
    pub room: String,
    /// The room's epoch.
    pub epoch: String,
    /// The message's seq.
    pub seq: u64,
    /// The frame, exactly as it will be broadcast.
    pub frame: bytes::Bytes,
}

impl StoreRequest {
    /// The frame, parsed.
    pub fn message(&self) -> crate::protocol::ChatMessage {
        match serde_json::from_slice(&self.frame) {
            Ok(ServerMessage::Message(m)) => m,
            other => panic!("a Store frame is a message frame, got {other:?}"),
        }
    }
}

/// The shell's side of one live connection.
#[derive(Debug, Default)]
struct Conn {
    /// Payload sizes of frames written and not yet reported flushed, oldest first.
    unflushed: VecDeque<usize>,
    /// It reads nothing: what it is sent stays unflushed.
    stalled: bool,
    /// Everything it got since the test last took it.
    events: Vec<Event>,
}

/// An engine and the shell around it (see the module doc).
#[derive(Debug)]
pub struct Shell {
    /// The engine under test.
    pub engine: Engine,
    /// Monotonic time of the next input (tests may move it backwards to check the clamp).
    pub now: Instant,
    /// Wall-clock time of the next input.
    pub wall: SystemTime,
    start: Instant,
    wall_start: SystemTime,
    conns: BTreeMap<ClientId, Conn>,
    /// Events of clients that are gone, until taken.
    departed: BTreeMap<ClientId, Vec<Event>>,
    /// Every client that left (closed or disconnected), in order.
    gone: Vec<ClientId>,
    /// Why each closed client was closed.
    pub closed: BTreeMap<ClientId, CloseReason>,
    /// Clients told to stop reading and not yet resumed.
    pub paused: BTreeSet<ClientId>,
    /// Pings each client got.
    pub pings: BTreeMap<ClientId, usize>,
    /// Report reading clients' frames flushed after every call (the default).
    pub auto_flush: bool,
    /// Every flush the shell reported: the client and how many frames.
    flushes: Vec<(ClientId, usize)>,
    /// Stores asked for and not yet reported committed, oldest first.
    outstanding: VecDeque<StoreRequest>,
    /// Every store asked for since last taken.
    stores: Vec<StoreRequest>,
    /// The highest op seen in a `Store`.
    last_op: Option<OpId>,
    /// What a store would keep: committed (or, relaxed, stored) frames by room and seq.
    kept: BTreeMap<String, BTreeMap<u64, bytes::Bytes>>,
    /// `Fetch`es not yet answered, oldest first.
    fetches: VecDeque<FetchRequest>,
    /// `LoadTail`s not yet answered, oldest first (`Config::tail_on_wake`).
    tail_loads: VecDeque<TailRequest>,
    /// `Publish`es not yet taken, oldest first (cluster mode).
    publishes: VecDeque<PublishRequest>,
    /// `Refill`s not yet taken, oldest first (cluster mode).
    refills: VecDeque<RefillRequest>,
    /// `ClaimNick`s and `ReleaseNick`s not yet taken, in order (`Config::nicks_claimed`).
    nick_requests: VecDeque<NickRequest>,
    /// `Relay`s not yet taken, oldest first (cluster mode): room and frame.
    relays: VecDeque<(String, bytes::Bytes)>,
    /// `Seated`s and `Unseated`s not yet taken, in order (`Config::members_shared`).
    seats: VecDeque<SeatChange>,
}

/// One `Output::Seated` or `Output::Unseated` the shell was given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SeatChange {
    /// `client` sits in `room` as `nick` now.
    Seated {
        /// Who.
        client: ClientId,
        /// Its room.
        room: String,
        /// Its nick.
        nick: String,
    },
    /// `client` left its room.
    Unseated {
        /// Who.
        client: ClientId,
        /// Why.
        reason: LeaveReason,
    },
}

impl SeatChange {
    /// The input that tells another node's engine of this change, made on node `node`.
    pub fn input<'a>(&'a self, node: &'a str) -> Input<'a> {
        match self {
            SeatChange::Seated { client, room, nick } => Input::RemoteSeated {
                node,
                client: client.get(),
                room,
                nick,
            },
            SeatChange::Unseated { client, reason } => Input::RemoteUnseated {
                node,
                client: client.get(),
                reason: *reason,
            },
        }
    }
}

/// One `Output::ClaimNick` or `Output::ReleaseNick` the shell was given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NickRequest {
    /// Claim `likeness` in `room` for `client`.
    Claim {
        /// Whom for.
        client: ClientId,
        /// The room, as named.
        room: String,
        /// The nickname's likeness.
        likeness: String,
    },
    /// `client` gives `likeness` in `room` up.
    Release {
        /// Whose it was.
        client: ClientId,
        /// The room, as named.
        room: String,
        /// The nickname's likeness.
        likeness: String,
    },
}

/// One `Output::Publish` the shell was given (cluster mode).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishRequest {
    /// The op to report it with.
    pub op: OpId,
    /// The room.
    pub room: String,
    /// The frame waiting for its seq.
    pub message: crate::Unnumbered,
}

/// One `Output::Refill` the shell was given (cluster mode).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefillRequest {
    /// The room.
    pub room: String,
    /// Its epoch on the node.
    pub epoch: String,
    /// The last seq the node delivered.
    pub after: u64,
}

/// One `Output::Fetch` the shell was given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchRequest {
    /// Who asked.
    pub to: ClientId,
    /// The room.
    pub room: String,
    /// Messages below this seq.
    pub before: u64,
    /// At most this many.
    pub limit: usize,
}

/// One `Output::LoadTail` the shell was given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TailRequest {
    /// The dormant room.
    pub room: String,
    /// Its last seq.
    pub seq: u64,
    /// Messages at most.
    pub limit: usize,
}

/// The wall clock every shell starts at (2027-01-15T08:00:00Z): fixed, so `ts` is predictable.
pub const WALL_START_SECS: u64 = 1_800_000_000;

impl Shell {
    /// A shell around a new engine; panics on an invalid config (tests choose it).
    pub fn new(config: Config, epoch: &str) -> Self {
        Self::around(Engine::new(config, epoch).expect("the test's config is valid"))
    }

    /// A shell around an engine restored from `rooms`, as `Engine::restore` answers.
    pub fn restored(
        config: Config,
        epoch: &str,
        rooms: impl IntoIterator<Item = RestoredRoom>,
    ) -> Result<Self, Error> {
        Engine::restore(config, epoch, rooms).map(Self::around)
    }

    /// A shell around `engine`, which nobody has driven yet.
    pub fn around(engine: Engine) -> Self {
        let start = Instant::now();
        let wall_start = UNIX_EPOCH + Duration::from_secs(WALL_START_SECS);
        Self {
            engine,
            now: start,
            wall: wall_start,
            start,
            wall_start,
            conns: BTreeMap::new(),
            departed: BTreeMap::new(),
            gone: Vec::new(),
            closed: BTreeMap::new(),
            paused: BTreeSet::new(),
            pings: BTreeMap::new(),
            auto_flush: true,
            flushes: Vec::new(),
            outstanding: VecDeque::new(),
            stores: Vec::new(),
            last_op: None,
            kept: BTreeMap::new(),
            fetches: VecDeque::new(),
            tail_loads: VecDeque::new(),
            publishes: VecDeque::new(),
            refills: VecDeque::new(),
            nick_requests: VecDeque::new(),
            relays: VecDeque::new(),
            seats: VecDeque::new(),
        }
    }

    // ------------------------------------------------------------------------------ time

    /// The time the next input happens at.
    pub fn at(&self) -> Now {
        Now::new(self.now, self.wall)
    }

    /// Sets the clock to `elapsed` after the shell's start (both clocks).
    pub fn set_elapsed(&mut self, elapsed: Duration) {
        self.now = self.start + elapsed;
        self.wall = self.wall_start + elapsed;
    }

    /// The monotonic time the shell started at (`set_elapsed(0)`).
    pub fn started_at(&self) -> Instant {
        self.start
    }

    /// Moves both clocks on without telling the engine: the next input sees the time first.
    pub fn pass(&mut self, by: Duration) {
        self.now += by;
        self.wall += by;
    }

    /// Moves both clocks on, then ticks.
    pub fn advance(&mut self, by: Duration) {
        self.pass(by);
        self.tick();
    }

    /// Lets due timers fire (`Input::Tick`).
    pub fn tick(&mut self) {
        self.handle(Input::Tick).expect("a tick never fails");
    }

    // ---------------------------------------------------------------------------- inputs

    /// A new connection whose initial join asks for `nick`; panics if refused.
    pub fn connect(&mut self, nick: &str) -> ClientId {
        self.connect_with(JoinRequest {
            nick: Some(nick.to_owned()),
            ..JoinRequest::default()
        })
    }

    /// A new connection with this initial join; panics if refused.
    pub fn connect_with(&mut self, join: JoinRequest) -> ClientId {
        self.try_connect(join).expect("connect")
    }

    /// A new connection with this initial join, as the engine answers it.
    pub fn try_connect(&mut self, join: JoinRequest) -> Result<ClientId, Error> {
        self.try_connect_from(join, None)
    }

    /// A new connection from `from` with this initial join, as the engine answers it.
    pub fn try_connect_from(
        &mut self,
        join: JoinRequest,
        from: Option<std::net::IpAddr>,
    ) -> Result<ClientId, Error> {
        let result = self.engine.connect_from(self.at(), join, from);
        if let Ok(id) = result {
            let newest = self.gone.iter().chain(self.conns.keys()).max();
            assert!(newest.is_none_or(|&n| id > n), "ids are never reused");
            self.conns.insert(id, Conn::default());
        }
        self.after_call();
        result
    }

    /// A text frame from `id`; panics if the engine refuses the input.
    pub fn send(&mut self, id: ClientId, text: &str) {
        self.handle(Input::Frame { client: id, text })
            .expect("client is connected");
    }

    /// A pong from `id`.
    pub fn pong(&mut self, id: ClientId) {
        self.handle(Input::Pong { client: id })
            .expect("client is connected");
    }

    /// The peer of `id` hangs up.
    pub fn disconnect(&mut self, id: ClientId) {
        self.handle(Input::Disconnect { client: id })
            .expect("client is connected");
    }

    /// An operator kicks `nick` in `room`.
    pub fn kick(&mut self, room: &str, nick: &str) -> Result<ClientId, Error> {
        let result = self.engine.kick(self.at(), room, nick);
        self.after_call();
        result
    }

    /// Any input, as the engine answers it. A `Disconnect` makes the shell forget the client
    /// once the outputs of the call are carried out (timers fired first may still ping it).
    pub fn handle(&mut self, input: Input<'_>) -> Result<(), Error> {
        let result = self.engine.handle(self.at(), input);
        if let (Ok(()), Input::Committed { op }) = (&result, input) {
            let front = self.outstanding.pop_front();
            assert_eq!(
                front.as_ref().map(|store| store.op),
                Some(op),
                "the engine accepted a commit out of order"
            );
            if let Some(store) = front {
                self.keep(&store);
            }
        }
        if let (Ok(()), Input::StoreFailed { op }) = (&result, input) {
            // The engine dropped every held message; a stale report changes nothing.
            if self.outstanding.front().is_some_and(|store| store.op == op) {
                self.outstanding.clear();
            }
        }
        if let (Ok(()), Input::Disconnect { client }) = (&result, input) {
            self.carry_out(Some(client));
            self.forget(client);
            assert_eq!(self.engine.queued(client), None, "{client} disconnected");
        }
        self.after_call();
        result
    }

    /// The store reports the oldest outstanding `Store` committed; panics if there is none or
    /// the engine refuses it. Returns what was committed.
    pub fn commit_next(&mut self) -> StoreRequest {
        let store = (self.outstanding.front().cloned()).expect("a store is outstanding");
        self.handle(Input::Committed { op: store.op })
            .expect("the oldest store commits");
        store
    }

    /// The store fails the oldest outstanding `Store` (and so every one after it).
    pub fn fail_next(&mut self) -> Result<(), Error> {
        let store = (self.outstanding.front().cloned()).expect("a store is outstanding");
        self.handle(Input::StoreFailed { op: store.op })
    }

    /// The `Publish`es since last taken, oldest first (cluster mode).
    pub fn take_publishes(&mut self) -> Vec<PublishRequest> {
        self.publishes.drain(..).collect()
    }

    /// The `Refill`s since last taken, oldest first (cluster mode).
    pub fn take_refills(&mut self) -> Vec<RefillRequest> {
        self.refills.drain(..).collect()
    }

    /// The `Relay`s since last taken, oldest first: each room and frame.
    pub fn take_relays(&mut self) -> Vec<(String, bytes::Bytes)> {
        self.relays.drain(..).collect()
    }

    /// The `Seated`s and `Unseated`s since last taken, in order.
    pub fn take_seats(&mut self) -> Vec<SeatChange> {
        self.seats.drain(..).collect()
    }

    /// The `ClaimNick`s and `ReleaseNick`s since last taken, in order.
    pub fn take_nick_requests(&mut self) -> Vec<NickRequest> {
        self.nick_requests.drain(..).collect()
    }

    /// `Fetch`es not yet answered, oldest first.
    pub fn fetches(&self) -> &VecDeque<FetchRequest> {
        &self.fetches
    }

    /// Answers every pending `Fetch` from what the shell's store keeps, as a store would: the
    /// newest `limit` below `before`, oldest first, and whether nothing older is kept.
    pub fn answer_fetches(&mut self) {
        while let Some(fetch) = self.fetches.pop_front() {
            let kept = self.kept.get(&fetch.room);
            let below: Vec<(u64, bytes::Bytes)> = kept
                .map(|kept| {
                    (kept.range(..fetch.before).rev())
                        .take(fetch.limit)
                        .map(|(&seq, frame)| (seq, frame.clone()))
                        .collect()
                })
                .unwrap_or_default();
            let oldest = kept.and_then(|kept| kept.keys().next().copied());
            let complete = below.last().is_none_or(|&(seq, _)| Some(seq) == oldest);
            let messages: Vec<bytes::Bytes> = below.into_iter().rev().map(|(_, f)| f).collect();
            let input = Input::Fetched {
                to: fetch.to,
                room: &fetch.room,
                messages: &messages,
                complete,
            };
            self.handle(input)
                .expect("a page for a client is always taken");
        }
    }

    /// `LoadTail`s not yet answered, oldest first.
    pub fn tail_loads(&self) -> &VecDeque<TailRequest> {
        &self.tail_loads
    }

    /// Answers the oldest pending `LoadTail` from what the shell's store keeps, as the store
    /// does: the newest `limit` up to its seq that run consecutively down from it. Returns what
    /// it asked.
    pub fn answer_tail_load(&mut self) -> TailRequest {
        let load = (self.tail_loads.pop_front()).expect("a tail load is pending");
        let mut tail: Vec<(u64, bytes::Bytes)> = Vec::new();
        if let Some(kept) = self.kept.get(&load.room) {
            for (&seq, frame) in kept.range(..=load.seq).rev().take(load.limit) {
                if seq != load.seq - tail.len() as u64 {
                    break;
                }
                tail.push((seq, frame.clone()));
            }
        }
        tail.reverse();
        self.answer_tail_load_with(&load.room, &tail);
        load
    }

    /// Answers a `LoadTail` for `room` with `messages`, whatever was asked (a store gone wrong).
    pub fn answer_tail_load_with(&mut self, room: &str, messages: &[(u64, bytes::Bytes)]) {
        let input = Input::TailLoaded { room, messages };
        self.handle(input).expect("a tail is always taken");
    }

    /// Answers every pending `LoadTail`, oldest first.
    pub fn answer_tail_loads(&mut self) {
        while !self.tail_loads.is_empty() {
            self.answer_tail_load();
        }
    }

    /// Puts `messages` in the shell's store as if an earlier run had stored them (a restored
    /// engine's rooms, whose history only the store keeps).
    pub fn seed_store(
        &mut self,
        room: &str,
        messages: impl IntoIterator<Item = (u64, bytes::Bytes)>,
    ) {
        (self.kept.entry(room.to_owned()).or_default()).extend(messages);
    }

    /// What the shell's store keeps of `room`, by seq.
    pub fn kept(&self, room: &str) -> Vec<u64> {
        (self.kept.get(room)).map_or_else(Vec::new, |kept| kept.keys().copied().collect())
    }

    fn keep(&mut self, store: &StoreRequest) {
        (self.kept.entry(store.room.clone()).or_default()).insert(store.seq, store.frame.clone());
    }

    /// Commits every outstanding store, oldest first.
    pub fn commit_all(&mut self) {
        while !self.outstanding.is_empty() {
            self.commit_next();
        }
    }

    /// Stores asked for and not yet committed, oldest first.
    pub fn outstanding(&self) -> &VecDeque<StoreRequest> {
        &self.outstanding
    }

    /// Every store asked for since last taken, in order.
    pub fn take_stores(&mut self) -> Vec<StoreRequest> {
        std::mem::take(&mut self.stores)
    }

    /// Reports the oldest `frames` (all when `None`) of `id`'s unflushed frames written.
    pub fn flush(&mut self, id: ClientId, frames: Option<usize>) -> Result<(), Error> {
        let conn = self.conns.get_mut(&id).expect("a live client");
        let n = frames
            .unwrap_or(conn.unflushed.len())
            .min(conn.unflushed.len());
        let bytes = conn.unflushed.drain(..n).sum();
        self.flushes.push((id, n));
        let input = Input::Flushed {
            client: id,
            frames: n,
            bytes,
        };
        let result = self.engine.handle(self.at(), input);
        self.after_call();
        result
    }

    /// From now on `id` reads nothing: its frames stay unflushed.
    pub fn stop_flushing(&mut self, id: ClientId) {
        self.conns.get_mut(&id).expect("a live client").stalled = true;
    }

    /// `id` reads again; with `auto_flush`, everything it was sent is flushed now.
    pub fn resume_flushing(&mut self, id: ClientId) {
        self.conns.get_mut(&id).expect("a live client").stalled = false;
        if self.auto_flush {
            self.settle();
        }
    }

    // ----------------------------------------------------------------------- the socket

    fn after_call(&mut self) {
        self.drain();
        if self.auto_flush {
            self.settle();
        }
    }

    /// Carries out every pending output, checking the contract, then checks the invariants and
    /// the queue accounting.
    pub fn drain(&mut self) {
        self.carry_out(None);
        self.check();
    }

    /// Carries out the pending outputs. `leaving` disconnected in this call: the timers that
    /// fired before its input may still have pinged it, sent it a frame (a presence tick) or
    /// paused it, but it is never resumed or closed.
    fn carry_out(&mut self, leaving: Option<ClientId>) {
        while let Some(output) = self.engine.poll_output() {
            if let Some(gone) = leaving {
                let about_it = match &output {
                    Output::Resume { to } => *to == gone,
                    Output::Close { client, .. } => *client == gone,
                    Output::Send { .. }
                    | Output::Ping { .. }
                    | Output::Pause { .. }
                    | Output::Store { .. }
                    | Output::Publish { .. }
                    | Output::Refill { .. }
                    | Output::Fetch { .. }
                    | Output::LoadTail { .. }
                    | Output::ReleaseNick { .. }
                    | Output::Relay { .. }
                    | Output::Unseated { .. } => false,
                    Output::ClaimNick { client, .. } | Output::Seated { client, .. } => {
                        *client == gone
                    }
                };
                assert!(!about_it, "{output:?} for {gone}, which disconnected");
            }
            match output {
                Output::Send { to, frame } => {
                    let text = std::str::from_utf8(&frame).expect("frames are UTF-8");
                    let message: ServerMessage = serde_json::from_str(text)
                        .unwrap_or_else(|e| panic!("not a protocol message ({e}): {text}"));
                    let conn = self.live(to, "Send");
                    conn.unflushed.push_back(frame.len());
                    conn.events.push(Event::Frame(message));
                }
                Output::Ping { to } => {
                    self.live(to, "Ping").events.push(Event::Ping);
                    *self.pings.entry(to).or_default() += 1;
                }
                Output::Close { client, reason } => {
                    self.live(client, "Close").events.push(Event::Close(reason));
                    assert!(reason.text().len() <= 123, "close reason too long");
                    assert!(self.closed.insert(client, reason).is_none());
                    self.forget(client);
                    assert_eq!(self.engine.queued(client), None, "{client} closed");
                }
                Output::Pause { to } => {
                    self.live(to, "Pause").events.push(Event::Pause);
                    assert!(self.paused.insert(to), "{to} paused twice");
                }
                Output::Resume { to } => {
                    self.live(to, "Resume").events.push(Event::Resume);
                    assert!(self.paused.remove(&to), "{to} resumed while running");
                }
                Output::Store {
                    op,
                    room,
                    epoch,
                    seq,
                    frame,
                } => {
                    assert!(self.last_op.is_none_or(|last| op > last), "{op} not new");
                    self.last_op = Some(op);
                    let store = StoreRequest {
                        op,
                        room,
                        epoch,
                        seq,
                        frame,
                    };
                    let message = store.message();
                    assert_eq!((&message.room, message.seq), (&store.room, store.seq));
                    if self.engine.config().hold_until_committed {
                        self.outstanding.push_back(store.clone());
                    } else {
                        assert!(
                            self.engine.config().store_relaxed,
                            "a Store without a store"
                        );
                        self.keep(&store);
                    }
                    self.stores.push(store);
                }
                Output::Publish { op, room, message } => {
                    assert!(
                        self.engine.config().ordered_by_broker,
                        "a Publish without a broker"
                    );
                    assert!(self.last_op.is_none_or(|last| op > last), "{op} not new");
                    self.last_op = Some(op);
                    let numbered = message.numbered(7);
                    assert!(
                        crate::commit::is_message_frame(&numbered, &room, 7),
                        "a Publish is its room's message frame once numbered"
                    );
                    (self.publishes).push_back(PublishRequest { op, room, message });
                }
                Output::Refill { room, epoch, after } => {
                    assert!(
                        self.engine.config().ordered_by_broker,
                        "a Refill without a broker"
                    );
                    (self.refills).push_back(RefillRequest { room, epoch, after });
                }
                Output::ClaimNick {
                    client,
                    room,
                    likeness,
                } => {
                    assert!(
                        self.engine.config().nicks_claimed,
                        "a claim, names unclaimed"
                    );
                    self.live(client, "ClaimNick");
                    (self.nick_requests).push_back(NickRequest::Claim {
                        client,
                        room,
                        likeness,
                    });
                }
                Output::Seated { client, room, nick } => {
                    assert!(
                        self.engine.config().members_shared,
                        "a seat, members unshared"
                    );
                    self.live(client, "Seated");
                    (self.seats).push_back(SeatChange::Seated { client, room, nick });
                }
                Output::Unseated { client, reason } => {
                    assert!(
                        self.engine.config().members_shared,
                        "a seat, members unshared"
                    );
                    (self.seats).push_back(SeatChange::Unseated { client, reason });
                }
                Output::Relay { room, frame } => {
                    assert!(
                        self.engine.config().ordered_by_broker,
                        "a Relay without a broker"
                    );
                    let text = std::str::from_utf8(&frame).expect("frames are UTF-8");
                    let message: ServerMessage = serde_json::from_str(text)
                        .unwrap_or_else(|e| panic!("not a protocol message ({e}): {text}"));
                    assert!(
                        matches!(&message, ServerMessage::Typing { room: named, .. } if *named == room),
                        "only a typing notice of its room is relayed: {text}"
                    );
                    self.relays.push_back((room, frame));
                }
                Output::ReleaseNick {
                    client,
                    room,
                    likeness,
                } => {
                    assert!(
                        self.engine.config().nicks_claimed,
                        "a release, names unclaimed"
                    );
                    (self.nick_requests).push_back(NickRequest::Release {
                        client,
                        room,
                        likeness,
                    });
                }
                Output::Fetch {
                    to,
                    room,
                    before,
                    limit,
                } => {
                    self.live(to, "Fetch");
                    assert!(self.engine.config().persists(), "a Fetch without a store");
                    assert!((1..=crate::protocol::HISTORY_PAGE_MAX).contains(&limit));
                    (self.fetches).push_back(FetchRequest {
                        to,
                        room,
                        before,
                        limit,
                    });
                }
                Output::LoadTail { room, seq, limit } => {
                    assert!(self.engine.config().tail_on_wake, "a LoadTail, tails off");
                    assert!(
                        !(self.tail_loads.iter()).any(|load| load.room == room),
                        "a second LoadTail for {room} while one is out"
                    );
                    (self.tail_loads).push_back(TailRequest { room, seq, limit });
                }
            }
        }
    }

    fn check(&self) {
        self.engine.check_invariants();
        assert_eq!(self.engine.stats().clients, self.conns.len());
        for (&id, conn) in &self.conns {
            let written = (conn.unflushed.len(), conn.unflushed.iter().sum::<usize>());
            assert_eq!(
                self.engine.queued(id),
                Some(written),
                "{id} queue accounting"
            );
        }
    }

    /// Reports every reading client's unflushed frames written, lowest id first, one
    /// `Flushed` per client, until none has any (a flush can resume a room, which sends more).
    pub fn settle(&mut self) {
        for _ in 0..100_000 {
            let next = self
                .conns
                .iter()
                .find(|(_, conn)| !conn.stalled && !conn.unflushed.is_empty())
                .map(|(&id, _)| id);
            let Some(id) = next else { return };
            let conn = self.conns.get_mut(&id).expect("found above");
            let frames = conn.unflushed.len();
            let bytes = conn.unflushed.drain(..).sum();
            self.flushes.push((id, frames));
            let input = Input::Flushed {
                client: id,
                frames,
                bytes,
            };
            self.engine
                .handle(self.at(), input)
                .expect("flushing what was written");
            self.drain();
        }
        panic!("the engine did not go idle");
    }

    fn live(&mut self, id: ClientId, what: &str) -> &mut Conn {
        self.conns
            .get_mut(&id)
            .unwrap_or_else(|| panic!("{what} for {id}, which is not connected"))
    }

    fn forget(&mut self, id: ClientId) {
        let conn = self.conns.remove(&id).expect("a live client");
        self.paused.remove(&id);
        self.gone.push(id);
        self.departed.insert(id, conn.events);
    }

    // --------------------------------------------------------------------- what was seen

    /// Everything `id` got since last taken.
    pub fn events(&mut self, id: ClientId) -> Vec<Event> {
        match self.conns.get_mut(&id) {
            Some(conn) => std::mem::take(&mut conn.events),
            None => self.departed.remove(&id).unwrap_or_default(),
        }
    }

    /// Everything every client got since last taken.
    pub fn all_events(&mut self) -> BTreeMap<ClientId, Vec<Event>> {
        let mut all = std::mem::take(&mut self.departed);
        for (&id, conn) in &mut self.conns {
            if !conn.events.is_empty() {
                all.insert(id, std::mem::take(&mut conn.events));
            }
        }
        all
    }

    /// The frames `id` got since last taken (pings, pauses and closes are dropped).
    pub fn take(&mut self, id: ClientId) -> Vec<ServerMessage> {
        self.events(id)
            .into_iter()
            .filter_map(|event| match event {
                Event::Frame(message) => Some(message),
                _ => None,
            })
            .collect()
    }

    /// The texts of the chat messages `id` got since last taken.
    pub fn texts(&mut self, id: ClientId) -> Vec<String> {
        self.take(id)
            .into_iter()
            .filter_map(|m| match m {
                ServerMessage::Message(m) => Some(m.text),
                _ => None,
            })
            .collect()
    }

    /// The error codes `id` got since last taken.
    pub fn errors(&mut self, id: ClientId) -> Vec<String> {
        self.take(id)
            .into_iter()
            .filter_map(|m| match m {
                ServerMessage::Error { code, .. } => Some(code),
                _ => None,
            })
            .collect()
    }

    /// The flushes reported since last taken: each client and its frame count.
    pub fn take_flushes(&mut self) -> Vec<(ClientId, usize)> {
        std::mem::take(&mut self.flushes)
    }

    /// Connected clients, lowest id first.
    pub fn live_clients(&self) -> Vec<ClientId> {
        self.conns.keys().copied().collect()
    }

    /// Clients that left, in the order they left.
    pub fn gone_clients(&self) -> &[ClientId] {
        &self.gone
    }

    /// Frames written to `id` and not yet reported flushed.
    pub fn unflushed(&self, id: ClientId) -> usize {
        self.conns.get(&id).map_or(0, |conn| conn.unflushed.len())
    }
}

/// What one member believes its room holds, kept the way the web client keeps it: its
/// `welcome`'s room and names, then every `join`, `leave` and `nick` notice, and every `presence`
/// frame applied as one step (every `left` and renamed `old` out, then every renamed `nick` and
/// `joined` name in).
#[derive(Debug, Default)]
pub struct Roster {
    /// The room of its last `welcome` (`None` before any).
    pub room: Option<String>,
    /// The names it lists.
    pub names: BTreeSet<String>,
}

impl Roster {
    /// Moves the roster by one frame the member got (frames of other kinds change nothing).
    pub fn apply(&mut self, message: &ServerMessage) {
        match message {
            ServerMessage::Welcome { room, users, .. } => {
                self.room = Some(room.clone());
                self.names = users.iter().cloned().collect();
            }
            ServerMessage::Join { nick, .. } => {
                self.names.insert(nick.clone());
            }
            ServerMessage::Leave { nick, .. } => {
                self.names.remove(nick);
            }
            ServerMessage::Nick { old, nick, .. } => {
                self.names.remove(old);
                self.names.insert(nick.clone());
            }
            ServerMessage::Presence {
                joined,
                left,
                renamed,
                ..
            } => {
                for gone in left.iter().chain(renamed.iter().map(|r| &r.old)) {
                    self.names.remove(gone);
                }
                for came in joined.iter().chain(renamed.iter().map(|r| &r.nick)) {
                    self.names.insert(came.clone());
                }
            }
            _ => {}
        }
    }
}

/// The production config without the rate limits (messages, and joins and renames), so tests
/// that are not about them send freely.
pub fn unlimited() -> Config {
    Config {
        rate_limit_per_second: 0,
        membership_rate_interval: Duration::ZERO,
        ..Config::default()
    }
}
