//! Reference-model property test (STYLE.md section 6): a small model of the chat semantics,
//! written to be obviously correct rather than fast, runs side by side with the real `Engine`
//! over random sequences of client actions. After every step each client must have received
//! exactly the frames, pings, pauses, resumes and closes the model predicts, and the engine's
//! state must agree with the model's (see `EngineVsModel::check_invariants`).
//!
//! One step: proptest generates an abstract `Transition` (clients are picked by an index taken
//! modulo the live clients, so every sequence is valid and shrinking stays meaningful). The
//! model resolves it into a concrete `Action` plus the `Event`s each client should see; the
//! system under test performs that action on the engine, drains `poll_output`, reports what it
//! wrote to reading clients as flushed (as a shell would), and compares.
//!
//! The configuration is tiny so the rare paths are common: 6 queued frames evict, 4 make a client
//! "behind" for flow control, 2 rooms and 6 clients at most, 8-byte messages, 4 messages of
//! history. The byte bounds are set so high that they never bind (every frame here is well under
//! 1 KiB), so the model counts frames only; byte-bound eviction is covered by the scenario test
//! `slow_client_is_evicted_at_queue_bytes_max`. The rate limit is off.
//!
//! Rules the model states that the scenario tests do not spell out:
//! - Every call first fires the timers due by its time (pings, idle sweep), then handles its
//!   input; clients it decided to close are closed at the end of the call, in decision order.
//! - A client being closed, or gone, gets nothing more: no frames, no pause or resume, only its
//!   `Close` (and a peer that disconnects gets no `Close` at all).
//! - The idle sweep visits clients in the engine's table order (a freed slot is reused first);
//!   the model keeps that order because simultaneous timeouts announce their `leave`s in it.
//! - A client that goes behind is paused at once, right after the frame that put it there, and
//!   stays paused until it is neither behind nor in a paused room (a client may not talk faster
//!   than it listens).
//! - A room's epoch is the server epoch and a count of rooms created, so a forgotten and
//!   recreated room never honours an old `since`.
//! - Half the cases run with `hold_until_committed`: a message then takes its seq and a `Store`
//!   but reaches nobody, its sender included, until its `Commit` (oldest first), when it enters
//!   history and goes to the room's members of that moment (a forgotten room's is dropped);
//!   `welcome` shows only committed messages and seqs, and past `UNCOMMITTED_MAX` held messages
//!   a message is refused `unavailable`. A store failure (`StoreFailed` for the oldest held op)
//!   drops every held message, tells each sender still here `unavailable`, and the rooms hand
//!   those seqs out again. A room with held messages is never forgotten, and with a store a
//!   forgotten room sleeps: created again, it has its old epoch, seq and history. (The engine
//!   reads that history back from the store, `tail_on_wake`: a join into a sleeping room waits
//!   for the store's answer, which the test's store gives at once, in the same step.)
//!
//! `PROPTEST_CASES=5000 cargo test -p chat-engine --test model` searches longer.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

use chat_engine::test_kit::{Event as KitEvent, Shell};
use chat_engine::{ClientId, CloseReason, Config, Error, Input, JoinRequest, OpId, ServerMessage};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, FileFailurePersistence, TestRunner};
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest};

/// Cases when `PROPTEST_CASES` is not set: keeps `cargo test -p chat-engine` quick (a few
/// seconds) while the rarest path the run must show (a `presence` frame that leaves names out,
/// now in half the cases, the others holding messages) still comes up a dozen times or more.
const DEFAULT_CASES: u32 = 512;
/// Transitions per case.
const STEPS: std::ops::Range<usize> = 1..80;

const EPOCH: &str = "model";
const DEFAULT_ROOM: &str = "general";
const HISTORY_MAX: usize = 4;
const QUEUE_FRAMES_MAX: usize = 6;
const HIGH_WATER_FRAMES: usize = 4;
const QUEUE_BYTES_MAX: usize = 1 << 20;
const TEXT_BYTES_MAX: usize = 8;
const CLIENTS_MAX: usize = 6;
const ROOMS_MAX: usize = 2;
/// Rooms of more than this many members coalesce presence into `presence` frames.
const NOTIFY_MAX: usize = 3;
/// Names in a welcome and in one `who` page.
const LIST_MAX: usize = 2;
/// Names per list in one `presence` frame.
const CHANGES_MAX: usize = 1;
const PRESENCE_MS: u64 = 2_000;
/// A room's presence frames per second at most: a room of three members or more waits a second
/// per member, longer than `PRESENCE_MS`; one that shrank to two or one waits `PRESENCE_MS`.
const PRESENCE_FRAMES_PER_SECOND: u64 = 1;
const PING_MS: u64 = 3_000;
/// A client's `typing` is relayed at most once per this.
const TYPING_MS: u64 = 1_500;
/// Joins, switches and renames a client may make at once, then one per `MEMBERSHIP_MS`.
const MEMBERSHIP_BURST: u64 = 3;
const MEMBERSHIP_MS: u64 = 1_000;
const IDLE_MS: u64 = 10_000;
/// Idle sweeps run at most this often: `min(1 s, idle_timeout / 4)`.
const SWEEP_EVERY_MS: u64 = 1_000;
/// Nicknames the server gives clients that pick none: this prefix and the client id.
const GUEST_PREFIX: &str = "guest-";
/// Messages held for their commit at most (cases with `hold_until_committed`).
const UNCOMMITTED_MAX: usize = 2;

fn engine_config(hold: bool) -> Config {
    Config {
        hold_until_committed: hold,
        tail_on_wake: hold,
        uncommitted_max: UNCOMMITTED_MAX,
        default_room: DEFAULT_ROOM.to_owned(),
        history_max: HISTORY_MAX,
        queue_frames_max: QUEUE_FRAMES_MAX,
        queue_bytes_max: QUEUE_BYTES_MAX,
        queue_high_water_frames: HIGH_WATER_FRAMES,
        queue_high_water_bytes: QUEUE_BYTES_MAX,
        text_bytes_max: TEXT_BYTES_MAX,
        rate_limit_per_second: 0,
        ping_interval: Duration::from_millis(PING_MS),
        idle_timeout: Duration::from_millis(IDLE_MS),
        clients_max: CLIENTS_MAX,
        rooms_max: ROOMS_MAX,
        presence_list_max: LIST_MAX,
        presence_notify_max: NOTIFY_MAX,
        presence_interval: Duration::from_millis(PRESENCE_MS),
        presence_frames_per_second: PRESENCE_FRAMES_PER_SECOND as usize,
        presence_changes_max: CHANGES_MAX,
        typing_interval: Duration::from_millis(TYPING_MS),
        membership_rate_burst: MEMBERSHIP_BURST as u32,
        membership_rate_interval: Duration::from_millis(MEMBERSHIP_MS),
        ..Config::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Alphabets and the naming rules for them.

/// Nicknames clients ask for, as sent: "ANN" collides with "ann" (case is ignored), " cy " is
/// trimmed, "Guest-7" is reserved for guests and "   " is blank. Kicks use them too.
const NICKS: [&str; 6] = ["ann", "ANN", "bob", " cy ", "Guest-7", "   "];

/// Rooms clients ask for: three valid names against `ROOMS_MAX = 2` force rooms to be recycled.
const ROOMS: [&str; 4] = ["general", "rust", "go", "no room"];

/// What a client frame means to the model.
#[derive(Clone, Copy, Debug)]
enum Decoded {
    /// A chat message with this text, before trimming.
    Say(&'static str),
    /// A malformed frame, refused with this error code.
    Bad(&'static str),
}

/// Chat frames clients send, with what they decode to.
const TEXTS: [(&str, Decoded); 11] = [
    ("hi", Decoded::Say("hi")),
    ("  yo \n", Decoded::Say("  yo \n")),
    // Exactly text_bytes_max bytes, fewer characters.
    ("éééé", Decoded::Say("éééé")),
    (
        r#"{"type":"message","text":" json "}"#,
        Decoded::Say(" json "),
    ),
    (" \t ", Decoded::Say(" \t ")),
    // Ten bytes, five characters.
    ("ééééé", Decoded::Say("ééééé")),
    ("much too long", Decoded::Say("much too long")),
    // A control character and a bidi override: refused, whatever else is wrong with the text.
    ("a\u{1}b", Decoded::Say("a\u{1}b")),
    (" \u{202e}x ", Decoded::Say(" \u{202e}x ")),
    ("{oops", Decoded::Bad("invalid_json")),
    (r#"{"type":"shout"}"#, Decoded::Bad("unknown_type")),
];

fn decode(wire: &str) -> Decoded {
    TEXTS
        .iter()
        .find(|(w, _)| *w == wire)
        .map(|&(_, decoded)| decoded)
        .expect("only table texts are generated")
}

/// A nickname is trimmed, not blank, and does not start with the guest prefix (in any case).
fn valid_nick(wire: &str) -> Option<String> {
    let nick = wire.trim();
    let reserved = nick.to_lowercase().starts_with(GUEST_PREFIX);
    (!nick.is_empty() && !reserved).then(|| nick.to_owned())
}

/// A room name is letters, digits, '-', '_' and '.'.
fn valid_room(wire: &str) -> bool {
    !wire.is_empty()
        && wire
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Nicknames are the same if they differ only in case.
fn same_nick(a: &str, b: &str) -> bool {
    a.to_lowercase() == b.to_lowercase()
}

/// The epoch of the n-th room created: the server epoch and that count.
fn epoch_of(incarnation: u64) -> String {
    format!("{EPOCH}-{incarnation}")
}

fn leave_reason(reason: CloseReason) -> &'static str {
    match reason {
        CloseReason::SlowConsumer => "evicted",
        CloseReason::IdleTimeout => "timeout",
        CloseReason::Flooding => "flooding",
        CloseReason::Kicked => "kicked",
    }
}

// ---------------------------------------------------------------------------------------------
// Transitions (what proptest generates) and events (what clients see).

#[derive(Clone, Debug)]
enum Transition {
    Connect {
        nick: Option<&'static str>,
        room: Option<&'static str>,
    },
    Join {
        client: usize,
        room: Option<&'static str>,
        nick: Option<&'static str>,
        since: Option<Since>,
    },
    Message {
        client: usize,
        text: &'static str,
    },
    Nick {
        client: usize,
        nick: &'static str,
    },
    Typing {
        client: usize,
    },
    /// A page of the member list, after a nickname (perhaps nobody's).
    Who {
        client: usize,
        after: Option<&'static str>,
    },
    /// The client reads everything it was sent.
    Flush {
        client: usize,
    },
    /// The client stops reading: what it is sent stays queued.
    Stall {
        client: usize,
    },
    /// The client reads again (everything queued is flushed at the end of the step).
    Unstall {
        client: usize,
    },
    Pong {
        client: usize,
    },
    Kick {
        room: &'static str,
        nick: &'static str,
    },
    Disconnect {
        client: usize,
    },
    /// Time passes; with `tick` the shell calls `Input::Tick`, else the next input sees it first.
    AdvanceTime {
        ms: u64,
        tick: bool,
    },
    /// The store commits the oldest held message (only generated with the hold).
    Commit,
    /// The store fails the oldest held message (only generated with the hold).
    StoreFail,
    /// The store reports an op that is not the oldest held: the next held one, one never handed
    /// out, or one already committed (`pick` chooses; only generated with the hold).
    CommitWrong {
        pick: u8,
    },
}

/// A `since` for a join: `back` messages before the room's current seq (negative: beyond it), with
/// the room's current epoch or a stale one.
#[derive(Clone, Copy, Debug)]
struct Since {
    back: i64,
    same_epoch: bool,
}

/// One chat message as stored and sent.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Said {
    seq: u64,
    nick: String,
    text: String,
}

/// One thing a client gets from the engine (timestamps and error wording are not compared).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Event {
    Welcome {
        nick: String,
        room: String,
        users: Vec<String>,
        user_count: usize,
        history: Vec<Said>,
        recovered: bool,
        seq: u64,
        epoch: String,
    },
    Message {
        room: String,
        said: Said,
    },
    Joined {
        room: String,
        nick: String,
    },
    Left {
        room: String,
        nick: String,
        reason: String,
    },
    Renamed {
        room: String,
        old: String,
        nick: String,
    },
    Typing {
        room: String,
        nick: String,
    },
    Users {
        room: String,
        users: Vec<String>,
        user_count: usize,
        next: Option<String>,
    },
    Presence {
        room: String,
        user_count: usize,
        joined: Vec<String>,
        left: Vec<String>,
        renamed: Vec<(String, String)>,
        more: (usize, usize, usize),
    },
    Error {
        code: String,
    },
    Ping,
    Pause,
    Resume,
    Close(CloseReason),
}

impl From<ServerMessage> for Event {
    fn from(message: ServerMessage) -> Self {
        match message {
            ServerMessage::Welcome {
                nick,
                room,
                users,
                user_count,
                history,
                recovered,
                seq,
                epoch,
            } => Event::Welcome {
                history: history
                    .into_iter()
                    .map(|m| {
                        assert_eq!(m.room, room, "welcome history from another room");
                        Said {
                            seq: m.seq,
                            nick: m.nick,
                            text: m.text,
                        }
                    })
                    .collect(),
                nick,
                room,
                users,
                user_count,
                recovered,
                seq,
                epoch,
            },
            ServerMessage::Message(m) => Event::Message {
                room: m.room,
                said: Said {
                    seq: m.seq,
                    nick: m.nick,
                    text: m.text,
                },
            },
            ServerMessage::Join { room, nick, .. } => Event::Joined { room, nick },
            ServerMessage::Leave {
                room, nick, reason, ..
            } => Event::Left { room, nick, reason },
            ServerMessage::Nick {
                room, old, nick, ..
            } => Event::Renamed { room, old, nick },
            ServerMessage::Typing { room, nick } => Event::Typing { room, nick },
            ServerMessage::Users {
                room,
                users,
                user_count,
                next,
            } => Event::Users {
                room,
                users,
                user_count,
                next,
            },
            ServerMessage::Presence {
                room,
                user_count,
                joined,
                left,
                renamed,
                joined_more,
                left_more,
                renamed_more,
            } => Event::Presence {
                room,
                user_count,
                joined,
                left,
                renamed: renamed.into_iter().map(|r| (r.old, r.nick)).collect(),
                more: (joined_more, left_more, renamed_more),
            },
            ServerMessage::Error { code, .. } => Event::Error { code },
            ServerMessage::History { .. } => panic!("the model never asks for history"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The reference model.

#[derive(Clone, Debug)]
struct Client {
    nick: String,
    room: Option<String>,
    /// Frames sent and not yet flushed.
    queued: usize,
    /// Not reading: nothing it is sent gets flushed until `Flush` or `Unstall`.
    stalled: bool,
    /// Told to stop sending (flow control).
    paused: bool,
    /// Being closed (or gone): gets nothing more but its `Close`.
    closing: bool,
    last_seen_ms: u64,
    /// When its last `typing` was relayed.
    typing_at_ms: Option<u64>,
    /// Joins and renames it made, as one membership change per `MEMBERSHIP_MS` from here: it
    /// may be at most `MEMBERSHIP_BURST - 1` intervals ahead of now.
    membership_due_ms: u64,
    /// Position in the engine's client table, which orders idle sweeps (see `take_slot`).
    slot: usize,
}

#[derive(Clone, Debug)]
struct Room {
    /// Which room creation this is (rooms are forgotten and recreated).
    incarnation: u64,
    /// The incarnation its epoch was minted for (an older one for a room woken from sleep).
    epoch: u64,
    /// The last seq released (committed, with the hold): what clients are told.
    seq: u64,
    /// The last seq handed out (ahead of `seq` by the messages held).
    assigned: u64,
    history: VecDeque<Said>,
    /// Client ids; a leaver's place is taken by the last member (the engine's order).
    members: Vec<u64>,
    paused: bool,
    /// Announces membership changes in `presence` frames rather than one by one.
    coalescing: bool,
    /// Changes since the last `presence` frame, by client: its name when the interval began,
    /// now, and every other name it held in between.
    pending: BTreeMap<u64, Pending>,
}

/// One client's names in a room over a presence interval: when it began, now, and in between.
type Pending = (Option<String>, Option<String>, Vec<String>);

/// What one transition does: the concrete call(s) to make and what every client should see.
#[derive(Clone, Debug, Default)]
struct Step {
    action: Action,
    /// Reading clients reported flushed after the action, in order, with their queued frames.
    auto_flush: Vec<(u64, usize)>,
    expected: BTreeMap<u64, Vec<Event>>,
    /// The `Store`s the engine should emit: op, room, epoch and the message.
    stores: Vec<(u64, String, String, Said)>,
}

/// A message waiting for its commit: its op, its room (name and incarnation) and itself.
#[derive(Clone, Debug)]
struct Held {
    op: u64,
    sender: u64,
    room: String,
    incarnation: u64,
    said: Said,
}

#[derive(Clone, Debug, Default)]
enum Action {
    #[default]
    Nothing,
    /// `result` is the id the engine hands out, or `None` for `ServerFull`.
    Connect {
        join: JoinRequest,
        result: Option<u64>,
    },
    Frame {
        client: u64,
        text: String,
    },
    Pong {
        client: u64,
    },
    Flush {
        client: u64,
        frames: usize,
    },
    /// The shell stops reading from the client (no engine call).
    Stall {
        client: u64,
    },
    /// The shell reads from the client again (no engine call; its frames are flushed after).
    Unstall {
        client: u64,
    },
    Kick {
        room: String,
        nick: String,
        result: Option<u64>,
    },
    Disconnect {
        client: u64,
    },
    Tick,
    /// `Input::Committed` for the oldest held op.
    Commit {
        op: u64,
    },
    /// `Input::StoreFailed` for the oldest held op.
    StoreFailed {
        op: u64,
    },
    /// `Input::Committed` for `op`, refused: `expected` is the oldest held.
    CommitWrong {
        op: u64,
        expected: Option<u64>,
    },
}

/// What a client frame asks for.
#[derive(Clone, Debug)]
enum Command {
    Decoded(Decoded),
    Join {
        room: Option<&'static str>,
        nick: Option<&'static str>,
        since: Option<(u64, String)>,
    },
    Nick(&'static str),
    Typing,
    Who(Option<&'static str>),
}

#[derive(Clone, Debug)]
struct Model {
    /// Messages wait for their commit (`hold_until_committed`).
    hold: bool,
    /// Held messages, oldest first, and the next op.
    held: VecDeque<Held>,
    next_op: u64,
    now_ms: u64,
    next_id: u64,
    clients: BTreeMap<u64, Client>,
    /// The engine's client table: a freed slot is reused before new ones, most recent first.
    slots: Vec<Option<u64>>,
    free_slots: Vec<usize>,
    rooms: BTreeMap<String, Room>,
    /// Room names, least recently active first (a post or a join makes a room active).
    recency: Vec<String>,
    rooms_created: u64,
    /// The epoch (as an incarnation) a forgotten room had, by name (for old `since`s).
    forgotten: BTreeMap<String, u64>,
    /// With the hold (a store): forgotten rooms' epochs (as incarnations), seqs and histories
    /// (what the store hands back when they wake: `tail_on_wake`), by name.
    dormant: BTreeMap<String, (u64, u64, VecDeque<Said>)>,
    ping_at_ms: Option<u64>,
    sweep_at_ms: Option<u64>,
    presence_at_ms: Option<u64>,
    /// Rooms with presence changes waiting: when each is announced, by incarnation (rooms due
    /// at once are announced in this order).
    presence_due: BTreeMap<u64, u64>,
    /// Clients to close at the end of the current call, in decision order.
    doomed: VecDeque<(u64, CloseReason)>,
    messages_total: u64,
    evictions_total: u64,
    last: Step,
}

impl Model {
    fn new(hold: bool) -> Self {
        Self {
            hold,
            held: VecDeque::new(),
            next_op: 1,
            now_ms: 0,
            next_id: 1,
            clients: BTreeMap::new(),
            slots: Vec::new(),
            free_slots: Vec::new(),
            rooms: BTreeMap::new(),
            recency: Vec::new(),
            rooms_created: 0,
            forgotten: BTreeMap::new(),
            dormant: BTreeMap::new(),
            ping_at_ms: None,
            sweep_at_ms: None,
            presence_at_ms: None,
            presence_due: BTreeMap::new(),
            doomed: VecDeque::new(),
            messages_total: 0,
            evictions_total: 0,
            last: Step::default(),
        }
    }

    fn client(&mut self, id: u64) -> &mut Client {
        self.clients.get_mut(&id).expect("a live client")
    }

    fn room(&mut self, name: &str) -> &mut Room {
        self.rooms.get_mut(name).expect("an existing room")
    }

    fn is_behind(&self, id: u64) -> bool {
        self.clients[&id].queued >= HIGH_WATER_FRAMES
    }

    fn take_slot(&mut self, id: u64) -> usize {
        match self.free_slots.pop() {
            Some(slot) => {
                self.slots[slot] = Some(id);
                slot
            }
            None => {
                self.slots.push(Some(id));
                self.slots.len() - 1
            }
        }
    }

    /// Applies one transition and records what it should do in `self.last`.
    fn apply(&mut self, transition: &Transition) {
        self.last = Step::default();
        let live: Vec<u64> = self.clients.keys().copied().collect();
        let pick = |i: usize| (!live.is_empty()).then(|| live[i % live.len()]);
        match *transition {
            Transition::Connect { nick, room } => self.connect(nick, room),
            Transition::Join {
                client,
                room,
                nick,
                since,
            } => {
                if let Some(id) = pick(client) {
                    let since = since.map(|since| self.resolve_since(id, room, since));
                    let mut frame = serde_json::Map::new();
                    frame.insert("type".into(), "join".into());
                    if let Some(room) = room {
                        frame.insert("room".into(), room.into());
                    }
                    if let Some(nick) = nick {
                        frame.insert("nick".into(), nick.into());
                    }
                    if let Some((since, epoch)) = &since {
                        frame.insert("since".into(), (*since).into());
                        frame.insert("epoch".into(), epoch.clone().into());
                    }
                    let text = serde_json::Value::Object(frame).to_string();
                    self.frame(id, text, Command::Join { room, nick, since });
                }
            }
            Transition::Message { client, text } => {
                if let Some(id) = pick(client) {
                    self.frame(id, text.to_owned(), Command::Decoded(decode(text)));
                }
            }
            Transition::Nick { client, nick } => {
                if let Some(id) = pick(client) {
                    let text = serde_json::json!({"type": "nick", "nick": nick}).to_string();
                    self.frame(id, text, Command::Nick(nick));
                }
            }
            Transition::Typing { client } => {
                if let Some(id) = pick(client) {
                    self.frame(id, r#"{"type":"typing"}"#.to_owned(), Command::Typing);
                }
            }
            Transition::Who { client, after } => {
                if let Some(id) = pick(client) {
                    let text = match after {
                        Some(after) => serde_json::json!({"type": "who", "after": after}),
                        None => serde_json::json!({"type": "who"}),
                    };
                    self.frame(id, text.to_string(), Command::Who(after));
                }
            }
            Transition::Flush { client } => {
                if let Some(id) = pick(client) {
                    let frames = self.clients[&id].queued;
                    self.call(Action::Flush { client: id, frames }, |m| {
                        m.flushed(id, frames)
                    });
                }
            }
            Transition::Stall { client } => {
                if let Some(id) = pick(client) {
                    self.client(id).stalled = true;
                    self.last.action = Action::Stall { client: id };
                }
            }
            Transition::Unstall { client } => {
                if let Some(id) = pick(client) {
                    self.client(id).stalled = false;
                    self.last.action = Action::Unstall { client: id };
                }
            }
            Transition::Pong { client } => {
                if let Some(id) = pick(client) {
                    self.call(Action::Pong { client: id }, |m| {
                        m.client(id).last_seen_ms = m.now_ms;
                    });
                }
            }
            Transition::Kick { room, nick } => self.kick(room, nick),
            Transition::Disconnect { client } => {
                if let Some(id) = pick(client) {
                    // The peer is gone at once, even if the timers just decided to close it.
                    self.call(Action::Disconnect { client: id }, |m| {
                        m.client(id).closing = true;
                        m.doomed.retain(|&(doomed, _)| doomed != id);
                        m.remove(id, "left");
                    });
                }
            }
            Transition::AdvanceTime { ms, tick } => {
                self.now_ms += ms;
                if tick {
                    self.call(Action::Tick, |_| {});
                }
            }
            Transition::Commit => {
                if let Some(op) = self.held.front().map(|held| held.op) {
                    self.call(Action::Commit { op }, |m| m.commit());
                }
            }
            Transition::StoreFail => {
                if let Some(op) = self.held.front().map(|held| held.op) {
                    self.call(Action::StoreFailed { op }, |m| m.store_failed());
                }
            }
            Transition::CommitWrong { pick } => {
                let expected = self.held.front().map(|held| held.op);
                let op = match pick % 3 {
                    0 => self.next_op,
                    1 => self.held.get(1).map_or(self.next_op + 1, |held| held.op),
                    _ => expected.unwrap_or(self.next_op).saturating_sub(1),
                };
                // Refused; the call still fires the timers due.
                self.call(Action::CommitWrong { op, expected }, |_| {});
            }
        }
        self.flush_readers();
    }

    /// One engine call: timers due by now fire first, the action runs, then the doomed close.
    fn call(&mut self, action: Action, body: impl FnOnce(&mut Self)) {
        self.last.action = action;
        self.fire_timers();
        body(self);
        self.finish();
    }

    /// The shell writes out everything queued for clients that read, one `Flushed` per client,
    /// until none of them has anything queued.
    fn flush_readers(&mut self) {
        while let Some((&id, client)) = self
            .clients
            .iter()
            .find(|(_, c)| !c.stalled && c.queued > 0)
        {
            let frames = client.queued;
            self.last.auto_flush.push((id, frames));
            self.fire_timers();
            self.flushed(id, frames);
            self.finish();
        }
    }

    fn emit(&mut self, to: u64, event: Event) {
        self.last.expected.entry(to).or_default().push(event);
    }

    /// A pause or resume for `to`, unless it is being closed.
    fn notify(&mut self, to: u64, event: Event) {
        if !self.clients[&to].closing {
            self.emit(to, event);
        }
    }

    /// Queues one frame for `to`. A client being closed gets nothing; one whose queue is full is
    /// closed as a slow consumer instead.
    fn send(&mut self, to: u64, event: Event) {
        let client = self.client(to);
        if client.closing {
            return;
        }
        if client.queued == QUEUE_FRAMES_MAX {
            return self.doom(to, CloseReason::SlowConsumer);
        }
        client.queued += 1;
        let now_behind = client.queued == HIGH_WATER_FRAMES;
        self.emit(to, event);
        if now_behind {
            self.sync_pause(to);
        }
    }

    /// Pauses or resumes `id` to match its own and its room's state.
    fn sync_pause(&mut self, id: u64) {
        let room_paused = (self.clients[&id].room.as_ref()).is_some_and(|r| self.rooms[r].paused);
        let pause = room_paused || self.is_behind(id);
        let now = self.now_ms;
        let client = self.client(id);
        if client.paused == pause {
            return;
        }
        client.paused = pause;
        if pause {
            self.notify(id, Event::Pause);
        } else {
            client.last_seen_ms = now;
            self.notify(id, Event::Resume);
        }
    }

    /// A frame for one client; flow control then looks at its room again.
    fn unicast(&mut self, to: u64, event: Event) {
        self.send(to, event);
        if let Some(room) = self.clients[&to].room.clone() {
            self.rebalance(&room);
        }
    }

    fn error(&mut self, to: u64, code: &str) {
        self.unicast(
            to,
            Event::Error {
                code: code.to_owned(),
            },
        );
    }

    /// A frame for every member of `room` (in join order) but `except`; flow control follows.
    fn broadcast(&mut self, room: &str, event: Event, except: Option<u64>) {
        for member in self.rooms[room].members.clone() {
            if Some(member) != except {
                self.send(member, event.clone());
            }
        }
        self.rebalance(room);
    }

    /// Flow control: a room pauses when more than half its members are behind (at or over the
    /// high-water mark) and resumes once at most a quarter are; a resumed client's silence starts
    /// now.
    fn rebalance(&mut self, name: &str) {
        let room = &self.rooms[name];
        let members = room.members.clone();
        let behind = members.iter().filter(|&&m| self.is_behind(m)).count();
        let pause = if !room.paused && behind * 2 > members.len() {
            true
        } else if room.paused && behind * 4 <= members.len() {
            false
        } else {
            return;
        };
        self.room(name).paused = pause;
        for member in members {
            self.sync_pause(member);
        }
    }

    fn doom(&mut self, id: u64, reason: CloseReason) {
        let client = self.client(id);
        if !client.closing {
            client.closing = true;
            self.doomed.push_back((id, reason));
        }
    }

    /// Closes the doomed in order; each one's room hears it left (which may doom others).
    fn finish(&mut self) {
        while let Some((id, reason)) = self.doomed.pop_front() {
            self.emit(id, Event::Close(reason));
            if reason == CloseReason::SlowConsumer {
                self.evictions_total += 1;
            }
            self.remove(id, leave_reason(reason));
        }
    }

    fn remove(&mut self, id: u64, reason: &str) {
        self.leave(id, reason);
        let client = self.clients.remove(&id).expect("a live client");
        self.slots[client.slot] = None;
        self.free_slots.push(client.slot);
        if self.clients.is_empty() {
            self.ping_at_ms = None;
            self.sweep_at_ms = None;
            // Nobody is left to be told what changed.
            self.presence_at_ms = None;
            for incarnation in std::mem::take(&mut self.presence_due).into_keys() {
                let room = self.room_of(incarnation);
                room.pending.clear();
                room.coalescing = false;
            }
        }
    }

    fn room_of(&mut self, incarnation: u64) -> &mut Room {
        (self.rooms.values_mut())
            .find(|r| r.incarnation == incarnation)
            .expect("due rooms exist")
    }

    /// Pings everyone every ping interval; closes clients silent for the idle timeout, except
    /// paused ones (they cannot talk), sweeping at most once a second.
    fn fire_timers(&mut self) {
        let now = self.now_ms;
        if self.ping_at_ms.is_some_and(|at| at <= now) {
            for id in self.clients.keys().copied().collect::<Vec<_>>() {
                self.emit(id, Event::Ping);
            }
            self.ping_at_ms = Some(now + PING_MS);
        }
        if self.sweep_at_ms.is_some_and(|at| at <= now) {
            let mut next: Option<u64> = None;
            let mut silent = Vec::new();
            for &id in self.slots.iter().flatten() {
                let client = &self.clients[&id];
                if client.paused {
                    continue;
                }
                let deadline = client.last_seen_ms + IDLE_MS;
                if deadline <= now {
                    silent.push(id);
                } else {
                    next = Some(next.map_or(deadline, |n| n.min(deadline)));
                }
            }
            for id in silent {
                self.doom(id, CloseReason::IdleTimeout);
            }
            self.sweep_at_ms = Some(next.unwrap_or(now + IDLE_MS).max(now + SWEEP_EVERY_MS));
        }
        if self.presence_at_ms.is_some_and(|at| at <= now) {
            let due: Vec<u64> = (self.presence_due.iter())
                .filter(|&(_, &at)| at <= now)
                .map(|(&incarnation, _)| incarnation)
                .collect();
            for incarnation in &due {
                self.presence_due.remove(incarnation);
            }
            // The next room's turn, or nothing if none waits.
            self.presence_at_ms = self.presence_due.values().min().copied();
            for incarnation in due {
                let name = (self.rooms.iter())
                    .find(|(_, r)| r.incarnation == incarnation)
                    .map(|(name, _)| name.clone())
                    .expect("due rooms exist");
                self.announce(&name);
            }
        }
    }

    /// A large room's changes since its last `presence` frame, in one frame to every member
    /// (even when they cancel out: the count may have been seen to move); every name a changed
    /// client held meanwhile but not now counts as left, and one that ends under the name it began
    /// with is gone and back (a member welcomed meanwhile saw it away or renamed). A room that is
    /// small again announces at once from now on.
    fn announce(&mut self, name: &str) {
        let room = self.room(name);
        let pending = std::mem::take(&mut room.pending);
        if room.members.len() <= NOTIFY_MAX {
            room.coalescing = false;
        }
        if pending.is_empty() {
            return;
        }
        let (mut joined, mut left, mut renamed) = (Vec::new(), Vec::new(), Vec::new());
        for (before, after, held) in pending.into_values() {
            match (before, after) {
                (None, Some(nick)) => joined.push(nick),
                (Some(nick), None) => left.push(nick),
                (Some(old), Some(nick)) if old != nick => renamed.push((old, nick)),
                (Some(old), Some(nick)) => {
                    left.push(old);
                    joined.push(nick);
                }
                (None, None) => {}
            }
            left.extend(held);
        }
        let more = (
            joined.len().saturating_sub(CHANGES_MAX),
            left.len().saturating_sub(CHANGES_MAX),
            renamed.len().saturating_sub(CHANGES_MAX),
        );
        joined.truncate(CHANGES_MAX);
        left.truncate(CHANGES_MAX);
        renamed.truncate(CHANGES_MAX);
        let user_count = self.rooms[name].members.len();
        let presence = Event::Presence {
            room: name.to_owned(),
            user_count,
            joined,
            left,
            renamed,
            more,
        };
        self.broadcast(name, presence, None);
    }

    /// Keeps `id`'s change in coalescing room `name` for its next `presence` frame.
    fn pend(&mut self, name: &str, id: u64, before: Option<String>, after: Option<String>) {
        let now = self.now_ms;
        let room = self.room(name);
        let (first, now_called, held) = room.pending.entry(id).or_insert((before, None, vec![]));
        if let Some(between) = now_called.take() {
            if first.as_ref() != Some(&between) && !held.contains(&between) {
                held.push(between);
            }
        }
        *now_called = after;
        let incarnation = room.incarnation;
        // A room whose every member getting a frame each interval would pass the budget waits
        // members / budget seconds instead.
        let spacing =
            PRESENCE_MS.max(room.members.len() as u64 * 1_000 / PRESENCE_FRAMES_PER_SECOND);
        let due = *self
            .presence_due
            .entry(incarnation)
            .or_insert(now + spacing);
        self.presence_at_ms = Some(self.presence_at_ms.map_or(due, |at| at.min(due)));
    }

    fn connect(&mut self, nick: Option<&'static str>, room: Option<&'static str>) {
        let join = JoinRequest {
            room: room.map(str::to_owned),
            nick: nick.map(str::to_owned),
            ..JoinRequest::default()
        };
        self.fire_timers();
        let result = if self.clients.len() >= CLIENTS_MAX {
            None
        } else {
            let id = self.next_id;
            self.next_id += 1;
            let slot = self.take_slot(id);
            self.clients.insert(
                id,
                Client {
                    nick: format!("{GUEST_PREFIX}{id}"),
                    room: None,
                    queued: 0,
                    stalled: false,
                    paused: false,
                    closing: false,
                    last_seen_ms: self.now_ms,
                    typing_at_ms: None,
                    membership_due_ms: 0,
                    slot,
                },
            );
            self.ping_at_ms.get_or_insert(self.now_ms + PING_MS);
            self.sweep_at_ms.get_or_insert(self.now_ms + IDLE_MS);
            self.join(id, room, nick, None);
            Some(id)
        };
        self.finish();
        self.last.action = Action::Connect { join, result };
    }

    /// A text frame from `id`: it is a sign of life, then the command runs.
    fn frame(&mut self, id: u64, text: String, command: Command) {
        self.call(Action::Frame { client: id, text }, |m| {
            m.client(id).last_seen_ms = m.now_ms;
            if matches!(command, Command::Join { .. } | Command::Nick(_)) {
                let now = m.now_ms;
                let client = m.client(id);
                let due = client.membership_due_ms.max(now);
                if due - now > (MEMBERSHIP_BURST - 1) * MEMBERSHIP_MS {
                    return m.error(id, "rate_limited");
                }
                client.membership_due_ms = due + MEMBERSHIP_MS;
            }
            match command {
                Command::Decoded(Decoded::Bad(code)) => m.error(id, code),
                Command::Decoded(Decoded::Say(text)) => m.post(id, text),
                Command::Join { room, nick, since } => m.join(id, room, nick, since),
                Command::Nick(nick) => m.change_nick(id, nick),
                Command::Typing => m.typing(id),
                Command::Who(after) => m.who(id, after),
            }
        });
    }

    /// The shell reports `frames` written: the ones queued when it looked, before the timers of
    /// this very call (a presence tick) queued more.
    fn flushed(&mut self, id: u64, frames: usize) {
        let was_behind = self.is_behind(id);
        self.client(id).queued -= frames;
        if was_behind && !self.is_behind(id) {
            if let Some(room) = self.clients[&id].room.clone() {
                self.rebalance(&room);
            }
            self.sync_pause(id);
        }
    }

    fn kick(&mut self, room: &'static str, nick: &'static str) {
        self.fire_timers();
        let target = self.rooms.get(room).and_then(|r| {
            r.members
                .iter()
                .copied()
                .find(|m| same_nick(&self.clients[m].nick, nick.trim()))
        });
        if let Some(id) = target {
            self.doom(id, CloseReason::Kicked);
        }
        self.finish();
        self.last.action = Action::Kick {
            room: room.to_owned(),
            nick: nick.to_owned(),
            result: target,
        };
    }

    /// Someone other than `id` in `room` already uses `nick` (ignoring case).
    fn taken(&self, room: &str, nick: &str, id: u64) -> bool {
        self.rooms.get(room).is_some_and(|r| {
            r.members
                .iter()
                .any(|&m| m != id && same_nick(&self.clients[&m].nick, nick))
        })
    }

    fn touch(&mut self, room: &str) {
        self.recency.retain(|r| r != room);
        self.recency.push(room.to_owned());
    }

    fn post(&mut self, id: u64, raw: &str) {
        let Some(room) = self.clients[&id].room.clone() else {
            return self.error(id, "not_in_room");
        };
        let text = raw.trim();
        if text.is_empty() {
            return self.error(id, "empty_message");
        }
        if text.len() > TEXT_BYTES_MAX {
            return self.error(id, "message_too_long");
        }
        let refused = |c: char| {
            (c.is_control() && c != '\t' && c != '\n')
                || ('\u{202a}'..='\u{202e}').contains(&c)
                || ('\u{2066}'..='\u{2069}').contains(&c)
        };
        if text.chars().any(refused) {
            return self.error(id, "invalid_text");
        }
        if self.hold && self.held.len() >= UNCOMMITTED_MAX {
            return self.error(id, "unavailable");
        }
        // A message ends its sender's typing: the next one is relayed at once.
        self.clients.get_mut(&id).expect("live").typing_at_ms = None;
        self.touch(&room);
        let nick = self.clients[&id].nick.clone();
        let r = self.room(&room);
        r.assigned += 1;
        let incarnation = r.incarnation;
        let epoch = r.epoch;
        let said = Said {
            seq: r.assigned,
            nick,
            text: text.to_owned(),
        };
        if self.hold {
            let op = self.next_op;
            self.next_op += 1;
            let epoch = epoch_of(epoch);
            (self.last.stores).push((op, room.clone(), epoch, said.clone()));
            return self.held.push_back(Held {
                op,
                sender: id,
                room,
                incarnation,
                said,
            });
        }
        self.release(&room, said);
    }

    /// A message from now on: in the room's history and to every member.
    fn release(&mut self, room: &str, said: Said) {
        let r = self.room(room);
        r.seq = said.seq;
        r.history.push_back(said.clone());
        if r.history.len() > HISTORY_MAX {
            r.history.pop_front();
        }
        self.messages_total += 1;
        let message = Event::Message {
            room: room.to_owned(),
            said,
        };
        self.broadcast(room, message, None);
    }

    /// The store committed the oldest held message: released, unless its room was forgotten
    /// (a room of that name now is another incarnation).
    fn commit(&mut self) {
        let held = self.held.pop_front().expect("a held message");
        let alive = (self.rooms.get(&held.room)).is_some_and(|r| r.incarnation == held.incarnation);
        if alive {
            self.release(&held.room, held.said);
        }
    }

    /// The store failed the oldest held message, so every held one: dropped, their seqs
    /// handed out again, and each sender still here told `unavailable`, in op order.
    fn store_failed(&mut self) {
        for held in std::mem::take(&mut self.held) {
            if let Some(r) =
                (self.rooms.get_mut(&held.room)).filter(|r| r.incarnation == held.incarnation)
            {
                r.assigned = r.seq;
            }
            if self.clients.contains_key(&held.sender) {
                self.error(held.sender, "unavailable");
            }
        }
    }

    fn typing(&mut self, id: u64) {
        let Some(room) = self.clients[&id].room.clone() else {
            return self.error(id, "not_in_room");
        };
        // A large room does not relay typing.
        if self.rooms[&room].coalescing {
            return;
        }
        // Nor more than one per client per TYPING_MS.
        let now = self.now_ms;
        let client = self.clients.get_mut(&id).expect("a live client");
        if client.typing_at_ms.is_some_and(|at| now < at + TYPING_MS) {
            return;
        }
        client.typing_at_ms = Some(now);
        let nick = self.clients[&id].nick.clone();
        self.broadcast(&room.clone(), Event::Typing { room, nick }, Some(id));
    }

    /// One page of the room's members in nickname-key order after `after`, at most `LIST_MAX`;
    /// `next` names the last one when more follow.
    fn who(&mut self, id: u64, after: Option<&str>) {
        let Some(room) = self.clients[&id].room.clone() else {
            return self.error(id, "not_in_room");
        };
        let after = after.map(|a| a.trim().to_lowercase());
        let mut users: Vec<String> = (self.by_nick_key(&room).into_iter())
            .filter(|(key, _)| after.as_ref().is_none_or(|a| key > a))
            .map(|(_, nick)| nick)
            .collect();
        let next = (users.len() > LIST_MAX).then(|| users[LIST_MAX - 1].clone());
        users.truncate(LIST_MAX);
        let user_count = self.rooms[&room].members.len();
        self.unicast(
            id,
            Event::Users {
                room,
                users,
                user_count,
                next,
            },
        );
    }

    /// The room's members' (nickname key, nickname), in key order.
    fn by_nick_key(&self, room: &str) -> Vec<(String, String)> {
        let mut all: Vec<(String, String)> = (self.rooms[room].members.iter())
            .map(|m| {
                let nick = &self.clients[m].nick;
                (nick.to_lowercase(), nick.clone())
            })
            .collect();
        all.sort();
        all
    }

    fn change_nick(&mut self, id: u64, wire: &str) {
        let Some(room) = self.clients[&id].room.clone() else {
            return self.error(id, "not_in_room");
        };
        let Some(nick) = valid_nick(wire) else {
            return self.error(id, "invalid_nick");
        };
        if self.taken(&room, &nick, id) {
            return self.error(id, "nick_taken");
        }
        self.rename(id, nick);
    }

    /// Everyone in a small room, the renamed client included, hears the new name; in a large
    /// room only the renamed client does, the others in the next `presence` frame.
    fn rename(&mut self, id: u64, nick: String) {
        let client = self.client(id);
        let old = std::mem::replace(&mut client.nick, nick.clone());
        let room = client.room.clone().expect("renamed in a room");
        if self.rooms[&room].coalescing {
            self.pend(&room, id, Some(old.clone()), Some(nick.clone()));
            return self.unicast(id, Event::Renamed { room, old, nick });
        }
        self.broadcast(&room.clone(), Event::Renamed { room, old, nick }, None);
    }

    /// The `since` and `epoch` a rejoining client would send: `back` messages before the target
    /// room's seq, with that room's current epoch or the stale epoch of an earlier incarnation.
    fn resolve_since(&self, id: u64, room: Option<&str>, since: Since) -> (u64, String) {
        let name = match room {
            Some(room) => room.to_owned(),
            None => (self.clients[&id].room.clone()).unwrap_or_else(|| DEFAULT_ROOM.to_owned()),
        };
        let current = self.rooms.get(&name);
        let seq = current.map_or(0, |r| r.seq);
        let since_seq = seq.saturating_add_signed(-since.back);
        let epoch = match (current, self.forgotten.get(&name)) {
            (Some(r), _) if since.same_epoch => epoch_of(r.epoch),
            (_, Some(&old)) => epoch_of(old),
            _ => "elsewhere-1".to_owned(),
        };
        (since_seq, epoch)
    }

    fn join(
        &mut self,
        id: u64,
        room: Option<&str>,
        nick: Option<&str>,
        since: Option<(u64, String)>,
    ) {
        let current = self.clients[&id].room.clone();
        let room = match room {
            Some(room) if !valid_room(room) => return self.error(id, "invalid_room"),
            Some(room) => room.to_owned(),
            None => current.clone().unwrap_or_else(|| DEFAULT_ROOM.to_owned()),
        };
        let nick = match nick {
            Some(wire) => match valid_nick(wire) {
                Some(nick) => nick,
                None => return self.error(id, "invalid_nick"),
            },
            None => self.clients[&id].nick.clone(),
        };
        if self.taken(&room, &nick, id) {
            return self.error(id, "nick_taken");
        }
        if !self.rooms.contains_key(&room) && !self.create_room(&room) {
            return self.error(id, "too_many_rooms");
        }
        if current.as_deref() == Some(room.as_str()) {
            if nick != self.clients[&id].nick {
                self.rename(id, nick);
            }
        } else {
            self.leave(id, "switched");
            self.enter(id, &room, nick);
        }
        self.welcome(id, since);
    }

    /// Makes room for a new room by forgetting the least recently active empty one, if needed.
    fn create_room(&mut self, name: &str) -> bool {
        if self.rooms.len() >= ROOMS_MAX {
            let Some(stale) = (self.recency.iter())
                .find(|r| {
                    self.rooms[*r].members.is_empty()
                        && self.rooms[*r].assigned == self.rooms[*r].seq
                })
                .cloned()
            else {
                return false;
            };
            let old = self.rooms.remove(&stale).expect("listed rooms exist");
            self.presence_due.remove(&old.incarnation);
            if self.presence_due.is_empty() {
                self.presence_at_ms = None;
            }
            self.recency.retain(|r| *r != stale);
            if self.hold {
                (self.dormant).insert(stale.clone(), (old.epoch, old.seq, old.history));
            }
            self.forgotten.insert(stale, old.epoch);
        }
        self.rooms_created += 1;
        let (epoch, seq, history) =
            (self.dormant.remove(name)).unwrap_or((self.rooms_created, 0, VecDeque::new()));
        self.rooms.insert(
            name.to_owned(),
            Room {
                incarnation: self.rooms_created,
                epoch,
                seq,
                assigned: seq,
                history,
                members: Vec::new(),
                paused: false,
                coalescing: false,
                pending: BTreeMap::new(),
            },
        );
        self.touch(name);
        true
    }

    fn enter(&mut self, id: u64, room: &str, nick: String) {
        self.touch(room);
        let client = self.client(id);
        client.nick = nick.clone();
        client.room = Some(room.to_owned());
        let r = self.room(room);
        r.members.push(id);
        if r.members.len() > NOTIFY_MAX {
            r.coalescing = true;
        }
        let coalescing = r.coalescing;
        self.sync_pause(id);
        if coalescing {
            // No notice, but flow control looks at the room again (its size changed).
            self.pend(room, id, None, Some(nick));
            return self.rebalance(room);
        }
        let joined = Event::Joined {
            room: room.to_owned(),
            nick,
        };
        self.broadcast(room, joined, Some(id));
    }

    fn leave(&mut self, id: u64, reason: &str) {
        let client = self.client(id);
        let Some(room) = client.room.take() else {
            return;
        };
        let nick = client.nick.clone();
        let r = self.room(&room);
        let pos = (r.members.iter().position(|&m| m == id)).expect("a member");
        r.members.swap_remove(pos);
        let coalescing = r.coalescing;
        self.sync_pause(id);
        if coalescing {
            self.pend(&room, id, Some(nick), None);
            return self.rebalance(&room);
        }
        let left = Event::Left {
            room: room.clone(),
            nick,
            reason: reason.to_owned(),
        };
        self.broadcast(&room, left, None);
    }

    /// The greeting: the room's users and history, recovered (only what was missed) when the
    /// client names this incarnation of the room and the history still holds every message after
    /// its `since`.
    fn welcome(&mut self, id: u64, since: Option<(u64, String)>) {
        let client = &self.clients[&id];
        let name = client.room.clone().expect("welcomed into a room");
        let room = &self.rooms[&name];
        let epoch = epoch_of(room.epoch);
        let held = |seq: u64| room.history.iter().any(|said| said.seq == seq);
        let recovered = since.as_ref().is_some_and(|(since, their_epoch)| {
            *their_epoch == epoch && *since <= room.seq && (since + 1..=room.seq).all(held)
        });
        let history = room
            .history
            .iter()
            .filter(|said| !recovered || since.as_ref().is_some_and(|(s, _)| said.seq > *s))
            .cloned()
            .collect();
        let mut users: Vec<String> = (self.by_nick_key(&name).into_iter())
            .map(|(_, nick)| nick)
            .collect();
        users.truncate(LIST_MAX);
        let welcome = Event::Welcome {
            nick: client.nick.clone(),
            users,
            user_count: room.members.len(),
            room: name,
            history,
            recovered,
            seq: room.seq,
            epoch,
        };
        self.unicast(id, welcome);
    }
}

struct ChatModel;

impl ReferenceStateMachine for ChatModel {
    type State = Model;
    type Transition = Transition;

    fn init_state() -> BoxedStrategy<Model> {
        any::<bool>().prop_map(Model::new).boxed()
    }

    fn transitions(state: &Model) -> BoxedStrategy<Transition> {
        let pick = || 0..CLIENTS_MAX * 2;
        let nick = || prop::sample::select(&NICKS[..]);
        let room = || prop::sample::select(&ROOMS[..]);
        let text = prop::sample::select(TEXTS.map(|(wire, _)| wire).to_vec());
        let since =
            (-2i64..=6, any::<bool>()).prop_map(|(back, same_epoch)| Since { back, same_epoch });
        let actions = prop_oneof![
            3 => (prop::option::of(nick()), prop::option::of(room()))
                .prop_map(|(nick, room)| Transition::Connect { nick, room }),
            2 => (
                pick(),
                prop::option::of(room()),
                prop::option::of(nick()),
                prop::option::of(since),
            )
                .prop_map(|(client, room, nick, since)| Transition::Join {
                    client,
                    room,
                    nick,
                    since,
                }),
            8 => (pick(), text).prop_map(|(client, text)| Transition::Message { client, text }),
            1 => (pick(), nick()).prop_map(|(client, nick)| Transition::Nick { client, nick }),
            1 => pick().prop_map(|client| Transition::Typing { client }),
            1 => (pick(), prop::option::of(nick()))
                .prop_map(|(client, after)| Transition::Who { client, after }),
            2 => pick().prop_map(|client| Transition::Flush { client }),
            2 => pick().prop_map(|client| Transition::Stall { client }),
            1 => pick().prop_map(|client| Transition::Unstall { client }),
            1 => pick().prop_map(|client| Transition::Pong { client }),
            1 => (room(), nick()).prop_map(|(room, nick)| Transition::Kick { room, nick }),
            1 => pick().prop_map(|client| Transition::Disconnect { client }),
            2 => (0..4_000u64, any::<bool>())
                .prop_map(|(ms, tick)| Transition::AdvanceTime { ms, tick }),
        ];
        if !state.hold {
            return actions.boxed();
        }
        prop_oneof![
            26 => actions,
            4 => Just(Transition::Commit),
            1 => Just(Transition::StoreFail),
            1 => any::<u8>().prop_map(|pick| Transition::CommitWrong { pick }),
        ]
        .boxed()
    }

    fn apply(mut model: Model, transition: &Transition) -> Model {
        model.apply(transition);
        model
    }
}

// ---------------------------------------------------------------------------------------------
// The system under test: the engine plus a scripted shell.

/// Evictions seen across the whole run ("sometimes" check).
static EVICTIONS: AtomicUsize = AtomicUsize::new(0);
/// Chat messages that reached two or more clients across the whole run ("sometimes" check).
static WIDE_BROADCASTS: AtomicUsize = AtomicUsize::new(0);
/// `presence` frames, those that left names out, and `who` pages with more to come ("sometimes").
static PRESENCE_FRAMES: AtomicUsize = AtomicUsize::new(0);
static TRUNCATED_PRESENCE: AtomicUsize = AtomicUsize::new(0);
static PAGED: AtomicUsize = AtomicUsize::new(0);
/// Informational counters, printed at the end.
static PAUSES: AtomicUsize = AtomicUsize::new(0);
static TIMEOUTS: AtomicUsize = AtomicUsize::new(0);
static RECOVERED: AtomicUsize = AtomicUsize::new(0);
static STEPS_RUN: AtomicUsize = AtomicUsize::new(0);
/// Commits accepted, and those whose message reached two or more clients ("sometimes").
static COMMITS: AtomicUsize = AtomicUsize::new(0);
static WIDE_COMMITS: AtomicUsize = AtomicUsize::new(0);
/// Sleeping rooms woken from the store's tail (`tail_on_wake`, the cases that hold).
/// Informational: a few in 512 cases (126 in 20,000), too few to require at the default count;
/// the scenario tests in `engine/src/tests/waking.rs` pin each path.
static WAKES: AtomicUsize = AtomicUsize::new(0);
/// Informational: how often each error code and close reason was seen.
static OUTCOMES: Mutex<BTreeMap<String, usize>> = Mutex::new(BTreeMap::new());

/// The engine in the shared test shell, which engine id each model client has, and what each
/// client believes its room's membership is, built only from the frames it got.
struct Sut {
    shell: Shell,
    ids: BTreeMap<u64, ClientId>,
    views: BTreeMap<u64, View>,
}

/// A client's idea of who is in its room, as a client would keep it: set by `welcome`, moved by
/// `join`, `leave`, `nick` and `presence`.
#[derive(Debug, Default)]
struct View {
    room: String,
    count: usize,
    names: BTreeSet<String>,
    /// A `presence` frame said it left names out: the names may be stale (a client would page
    /// `who` again); the count is still exact.
    stale: bool,
}

impl View {
    fn apply(&mut self, event: &Event) {
        match event {
            Event::Welcome {
                room,
                users,
                user_count,
                ..
            } => {
                *self = View {
                    room: room.clone(),
                    count: *user_count,
                    names: users.iter().cloned().collect(),
                    stale: false,
                }
            }
            Event::Joined { room, nick } if *room == self.room => {
                self.count += 1;
                self.names.insert(nick.clone());
            }
            Event::Left { room, nick, .. } if *room == self.room => {
                self.count = (self.count.checked_sub(1)).expect("a leave from an empty room");
                self.names.remove(nick);
            }
            Event::Renamed { room, old, nick } if *room == self.room => {
                self.names.remove(old);
                self.names.insert(nick.clone());
            }
            Event::Presence {
                room,
                user_count,
                joined,
                left,
                renamed,
                more,
            } if *room == self.room => {
                for gone in left.iter().chain(renamed.iter().map(|(old, _)| old)) {
                    self.names.remove(gone);
                }
                let came = joined.iter().chain(renamed.iter().map(|(_, nick)| nick));
                self.names.extend(came.cloned());
                self.count = *user_count;
                self.stale |= *more != (0, 0, 0);
            }
            Event::Users {
                room,
                users,
                user_count,
                ..
            } if *room == self.room => {
                self.names.extend(users.iter().cloned());
                self.count = *user_count;
            }
            _ => {}
        }
    }
}

impl Sut {
    fn new(hold: bool) -> Self {
        Self {
            shell: Shell::new(engine_config(hold), EPOCH),
            ids: BTreeMap::new(),
            views: BTreeMap::new(),
        }
    }

    fn id(&self, client: u64) -> ClientId {
        *self
            .ids
            .get(&client)
            .expect("the model names a client the engine handed out")
    }

    /// Everything every client got during the step, in the model's terms; forgets the gone.
    fn got(&mut self) -> BTreeMap<u64, Vec<Event>> {
        let mut got = BTreeMap::new();
        for (id, events) in self.shell.all_events() {
            let events: Vec<Event> = events.into_iter().map(Event::from).collect();
            let view = self.views.entry(id.get()).or_default();
            for event in &events {
                view.apply(event);
            }
            got.insert(id.get(), events);
        }
        let live: BTreeSet<ClientId> = self.shell.live_clients().into_iter().collect();
        self.ids.retain(|_, id| live.contains(id));
        self.views.retain(|id, _| self.ids.contains_key(id));
        got
    }
}

impl From<KitEvent> for Event {
    fn from(event: KitEvent) -> Self {
        match event {
            KitEvent::Frame(message) => Event::from(message),
            KitEvent::Ping => Event::Ping,
            KitEvent::Pause => Event::Pause,
            KitEvent::Resume => Event::Resume,
            KitEvent::Close(reason) => Event::Close(reason),
        }
    }
}

fn assert_same_events(
    got: &BTreeMap<u64, Vec<Event>>,
    expected: &BTreeMap<u64, Vec<Event>>,
    transition: &Transition,
) {
    let clients: BTreeSet<u64> = got.keys().chain(expected.keys()).copied().collect();
    for client in clients {
        let got = got.get(&client).map_or(&[][..], Vec::as_slice);
        let want = expected.get(&client).map_or(&[][..], Vec::as_slice);
        assert_eq!(
            got, want,
            "after {transition:?}: c{client} got (left) what the model did not predict (right)"
        );
    }
}

/// Flushes as each client's total, in client order.
fn per_client(flushes: &[(u64, usize)]) -> Vec<(u64, usize)> {
    let mut totals: BTreeMap<u64, usize> = BTreeMap::new();
    for &(client, frames) in flushes {
        *totals.entry(client).or_default() += frames;
    }
    totals.into_iter().collect()
}

fn count_sometimes(got: &BTreeMap<u64, Vec<Event>>) {
    let events = || got.values().flatten();
    let evictions = events()
        .filter(|e| matches!(e, Event::Close(CloseReason::SlowConsumer)))
        .count();
    EVICTIONS.fetch_add(evictions, Relaxed);
    let timeouts = events()
        .filter(|e| matches!(e, Event::Close(CloseReason::IdleTimeout)))
        .count();
    TIMEOUTS.fetch_add(timeouts, Relaxed);
    PAUSES.fetch_add(
        events().filter(|e| matches!(e, Event::Pause)).count(),
        Relaxed,
    );
    let recovered = events()
        .filter(
            |e| matches!(e, Event::Welcome { recovered: true, history, .. } if !history.is_empty()),
        )
        .count();
    RECOVERED.fetch_add(recovered, Relaxed);
    let mut reached: BTreeMap<(&str, u64), usize> = BTreeMap::new();
    for event in events() {
        if let Event::Message { room, said } = event {
            *reached.entry((room, said.seq)).or_default() += 1;
        }
    }
    let wide = reached.values().filter(|&&n| n >= 2).count();
    let mut outcomes = OUTCOMES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    for event in events() {
        let outcome = match event {
            Event::Error { code } => code.clone(),
            Event::Close(reason) => format!("close {}", leave_reason(*reason)),
            _ => continue,
        };
        *outcomes.entry(outcome).or_default() += 1;
    }
    WIDE_BROADCASTS.fetch_add(wide, Relaxed);
    let count = |wanted: fn(&Event) -> bool| events().filter(|e| wanted(e)).count();
    PRESENCE_FRAMES.fetch_add(count(|e| matches!(e, Event::Presence { .. })), Relaxed);
    TRUNCATED_PRESENCE.fetch_add(
        count(|e| matches!(e, Event::Presence { more, .. } if *more != (0, 0, 0))),
        Relaxed,
    );
    PAGED.fetch_add(
        count(|e| matches!(e, Event::Users { next: Some(_), .. })),
        Relaxed,
    );
    STEPS_RUN.fetch_add(1, Relaxed);
}

struct EngineVsModel;

impl StateMachineTest for EngineVsModel {
    type SystemUnderTest = Sut;
    type Reference = ChatModel;

    fn init_test(model: &Model) -> Sut {
        Sut::new(model.hold)
    }

    fn apply(mut sut: Sut, model: &Model, transition: Transition) -> Sut {
        let step = &model.last;
        sut.shell.set_elapsed(Duration::from_millis(model.now_ms));
        let mut flushes = Vec::new();
        match &step.action {
            Action::Nothing => {}
            Action::Connect { join, result } => {
                match (sut.shell.try_connect(join.clone()), result) {
                    (Ok(id), Some(want)) => {
                        assert_eq!(id.get(), *want, "ids are handed out in order");
                        sut.ids.insert(*want, id);
                    }
                    (Err(Error::ServerFull { max: CLIENTS_MAX }), None) => {}
                    (result, want) => {
                        panic!("connect returned {result:?}, the model says {want:?}")
                    }
                }
            }
            Action::Frame { client, text } => {
                let input = Input::Frame {
                    client: sut.id(*client),
                    text,
                };
                sut.shell.handle(input).expect("a live client");
            }
            Action::Pong { client } => sut.shell.pong(sut.id(*client)),
            Action::Flush { client, frames } => {
                flushes.push((*client, *frames));
                let id = sut.id(*client);
                sut.shell
                    .flush(id, None)
                    .expect("flushing what was written");
            }
            Action::Stall { client } => sut.shell.stop_flushing(sut.id(*client)),
            Action::Unstall { client } => sut.shell.resume_flushing(sut.id(*client)),
            Action::Kick { room, nick, result } => {
                let kicked = sut.shell.kick(room, nick);
                assert_eq!(
                    kicked.as_ref().ok().map(|id| id.get()),
                    *result,
                    "kick {nick:?} in {room:?}: {kicked:?}"
                );
            }
            Action::Disconnect { client } => sut.shell.disconnect(sut.id(*client)),
            Action::Tick => sut.shell.tick(),
            Action::Commit { op } => {
                let committed = sut.shell.commit_next();
                assert_eq!(committed.op.get(), *op, "the oldest held op");
                COMMITS.fetch_add(1, Relaxed);
            }
            Action::StoreFailed { op } => {
                let front = sut.shell.outstanding().front().map(|store| store.op.get());
                assert_eq!(front, Some(*op), "the oldest held op");
                sut.shell.fail_next().expect("the oldest store fails");
                assert!(
                    sut.shell.outstanding().is_empty(),
                    "every held message dropped"
                );
            }
            Action::CommitWrong { op, expected } => {
                let got = OpId::from_raw(*op);
                let result = sut.shell.handle(Input::Committed { op: got });
                let expected = expected.map(OpId::from_raw);
                assert_eq!(result, Err(Error::CommitOutOfOrder { expected, got }));
            }
        }
        // A join into a sleeping room waits for its tail; the store answers at once, so the
        // step ends as the model's, where the join is carried out in one go.
        let woke = !sut.shell.tail_loads().is_empty();
        while !sut.shell.tail_loads().is_empty() {
            sut.shell.answer_tail_load();
            WAKES.fetch_add(1, Relaxed);
        }
        let stores: Vec<(u64, String, String, Said)> = (sut.shell.take_stores().into_iter())
            .map(|store| {
                let m = store.message();
                assert_eq!(m.seq, store.seq, "a Store's seq is its frame's");
                let said = Said {
                    seq: m.seq,
                    nick: m.nick,
                    text: m.text,
                };
                (store.op.get(), store.room, store.epoch, said)
            })
            .collect();
        assert_eq!(
            stores, step.stores,
            "after {transition:?}: the engine stored (left) what the model did not (right)"
        );
        flushes.extend(step.auto_flush.iter().copied());
        let mut reported: Vec<(u64, usize)> = (sut.shell.take_flushes().into_iter())
            .map(|(id, frames)| (id.get(), frames))
            .collect();
        if woke {
            // The wake was a call of its own, flushed after it: a client's frames of the step
            // may be reported in two parts.
            (reported, flushes) = (per_client(&reported), per_client(&flushes));
        }
        assert_eq!(
            reported, flushes,
            "after {transition:?}: the shell flushed (left) what the model did not (right)"
        );
        let got = sut.got();
        assert_same_events(&got, &step.expected, &transition);
        count_sometimes(&got);
        if matches!(step.action, Action::Commit { .. }) {
            let reached = (got.values().flatten())
                .filter(|e| matches!(e, Event::Message { .. }))
                .count();
            if reached >= 2 {
                WIDE_COMMITS.fetch_add(1, Relaxed);
            }
        }
        sut
    }

    /// Runs once before the first transition and after every one (the runner's hook).
    fn check_invariants(sut: &Sut, model: &Model) {
        engine_invariants_hold(sut);
        same_clients_nicks_and_rooms(sut, model);
        queues_match_the_model(sut, model);
        reading_clients_are_drained(model);
        same_room_members_in_join_order(sut, model);
        nicks_unique_in_each_room(model);
        history_is_the_latest_consecutive_run(model);
        held_messages_match_the_model(sut, model);
        pause_state_agrees_everywhere(sut, model);
        flow_control_is_settled(model);
        presence_views_converge(sut, model);
        timers_match_the_model(sut, model);
        counters_match_the_model(sut, model);
    }
}

/// The engine's own cross-field invariants hold (the shell also checks, after every call, that
/// the engine's queue counts equal the frames it was given minus those it reported flushed).
fn engine_invariants_hold(sut: &Sut) {
    sut.shell.engine.check_invariants();
}

/// Exactly the model's clients are connected, each with the model's nickname and room.
fn same_clients_nicks_and_rooms(sut: &Sut, model: &Model) {
    assert_eq!(sut.shell.engine.stats().clients, model.clients.len());
    assert!(sut.ids.keys().eq(model.clients.keys()), "live ids differ");
    for (id, client) in &model.clients {
        let info = sut.shell.engine.client_info(sut.id(*id));
        assert_eq!(
            info,
            Some((client.nick.as_str(), client.room.as_deref())),
            "c{id}"
        );
    }
}

/// Every outbound queue holds exactly the frames the model counts, never more than the bound.
fn queues_match_the_model(sut: &Sut, model: &Model) {
    for (id, client) in &model.clients {
        assert!(client.queued <= QUEUE_FRAMES_MAX, "c{id} over the bound");
        let queued = sut
            .shell
            .engine
            .queued(sut.id(*id))
            .map(|(frames, _)| frames);
        assert_eq!(queued, Some(client.queued), "c{id} queued frames");
    }
}

/// Between steps a client that reads has nothing left queued.
fn reading_clients_are_drained(model: &Model) {
    for (id, client) in &model.clients {
        assert!(
            client.stalled || client.queued == 0,
            "c{id} reads but has frames queued"
        );
    }
}

/// Every room lists exactly the model's members, by nickname, in join order.
fn same_room_members_in_join_order(sut: &Sut, model: &Model) {
    assert_eq!(sut.shell.engine.stats().rooms, model.rooms.len());
    for name in ROOMS {
        let want = model.rooms.get(name).map(|room| {
            room.members
                .iter()
                .map(|m| model.clients[m].nick.as_str())
                .collect::<Vec<_>>()
        });
        assert_eq!(sut.shell.engine.members(name), want, "members of {name}");
    }
}

/// No two members of a room have nicknames that differ only in case.
fn nicks_unique_in_each_room(model: &Model) {
    for (name, room) in &model.rooms {
        let keys: BTreeSet<String> = (room.members.iter())
            .map(|m| model.clients[m].nick.to_lowercase())
            .collect();
        assert_eq!(keys.len(), room.members.len(), "duplicate nick in {name}");
    }
}

/// A room's history is at most `history_max` consecutive messages ending at the room's seq: the
/// latest ones, but in a room woken from sleep only those said since (the rest is the store's).
fn history_is_the_latest_consecutive_run(model: &Model) {
    for (name, room) in &model.rooms {
        let seqs: Vec<u64> = room.history.iter().map(|said| said.seq).collect();
        let want: Vec<u64> = (room.seq.saturating_sub(HISTORY_MAX as u64) + 1..=room.seq).collect();
        if room.epoch == room.incarnation {
            assert_eq!(seqs, want, "history of {name}");
        } else {
            assert!(want.ends_with(&seqs), "history of woken {name}: {seqs:?}");
        }
    }
}

/// The messages waiting for their commit are the model's, in op order; a room's are exactly the
/// seqs after its last committed one; without the hold nothing ever waits.
fn held_messages_match_the_model(sut: &Sut, model: &Model) {
    let ops: Vec<u64> = (sut.shell.outstanding().iter())
        .map(|s| s.op.get())
        .collect();
    let want: Vec<u64> = model.held.iter().map(|held| held.op).collect();
    assert_eq!(ops, want, "ops waiting for their commit");
    assert!(model.hold || want.is_empty(), "held without the hold");
    for (name, room) in &model.rooms {
        let seqs: Vec<u64> = (model.held.iter())
            .filter(|h| h.room == *name && h.incarnation == room.incarnation)
            .map(|h| h.said.seq)
            .collect();
        let want: Vec<u64> = (room.seq + 1..=room.assigned).collect();
        assert_eq!(seqs, want, "held seqs of {name}");
    }
}

/// A client is paused exactly when its room is or it is behind itself, and the shell was told so.
fn pause_state_agrees_everywhere(sut: &Sut, model: &Model) {
    for (id, client) in &model.clients {
        let room_paused = client.room.as_ref().is_some_and(|r| model.rooms[r].paused);
        assert_eq!(
            client.paused,
            room_paused || model.is_behind(*id),
            "c{id} pause differs from its room's and its own"
        );
    }
    let paused: BTreeSet<u64> = (model.clients.iter())
        .filter(|(_, c)| c.paused)
        .map(|(id, _)| *id)
        .collect();
    let told: BTreeSet<u64> = sut.shell.paused.iter().map(|id| id.get()).collect();
    assert_eq!(told, paused, "clients the shell was told to pause");
}

/// A paused room has more than a quarter of its members behind, an unpaused one at most half.
fn flow_control_is_settled(model: &Model) {
    for (name, room) in &model.rooms {
        let behind = room.members.iter().filter(|&&m| model.is_behind(m)).count();
        let n = room.members.len();
        match room.paused {
            true => assert!(behind * 4 > n, "{name} paused with {behind} of {n} behind"),
            false => assert!(
                behind * 2 <= n,
                "{name} running with {behind} of {n} behind"
            ),
        }
    }
}

/// Once a room has no change waiting to be announced, every member's view of it (built from
/// the frames it got) has the room's exact member count, and names nobody who is not a member
/// unless a `presence` frame told it that it left names out.
fn presence_views_converge(sut: &Sut, model: &Model) {
    for (id, client) in &model.clients {
        let Some(name) = &client.room else { continue };
        let room = &model.rooms[name];
        if !room.pending.is_empty() {
            continue;
        }
        let view = &sut.views[id];
        assert_eq!(&view.room, name, "c{id} believes it is elsewhere");
        assert_eq!(view.count, room.members.len(), "c{id}'s count of {name}");
        if !view.stale {
            let members: BTreeSet<String> = (room.members.iter())
                .map(|m| model.clients[m].nick.clone())
                .collect();
            let ghosts: Vec<&String> = view.names.difference(&members).collect();
            assert!(ghosts.is_empty(), "c{id} sees {ghosts:?} in {name}");
        }
    }
}

/// The next deadline is the model's next ping or sweep, and nothing is armed with nobody connected.
fn timers_match_the_model(sut: &Sut, model: &Model) {
    let next = [model.ping_at_ms, model.sweep_at_ms, model.presence_at_ms]
        .into_iter()
        .flatten()
        .min();
    assert_eq!(model.clients.is_empty(), next.is_none());
    let want = next.map(|ms| sut.shell.started_at() + Duration::from_millis(ms));
    assert_eq!(sut.shell.engine.poll_timeout(), want, "next timeout");
}

/// The engine's message and eviction counters agree with the model's.
fn counters_match_the_model(sut: &Sut, model: &Model) {
    let stats = sut.shell.engine.stats();
    assert_eq!(stats.messages_total, model.messages_total, "messages_total");
    assert_eq!(
        stats.evictions_total, model.evictions_total,
        "evictions_total"
    );
}

/// Runs the state machine, then checks the run exercised what it is for: at least one slow
/// consumer was evicted and at least one chat message reached two or more clients.
#[test]
fn engine_matches_the_reference_model() {
    let mut config = ProptestConfig {
        source_file: Some(file!()),
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    };
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = DEFAULT_CASES;
    }
    let mut runner = TestRunner::new(config.clone());
    let result = runner.run(
        &ChatModel::sequential_strategy(STEPS),
        |(initial, transitions, seen)| {
            EngineVsModel::test_sequential(config.clone(), initial, transitions, seen);
            Ok(())
        },
    );
    if let Err(failure) = result {
        panic!("{failure}");
    }
    let count = |counter: &AtomicUsize| counter.load(Relaxed);
    eprintln!(
        "model: {} cases, {} steps: {} evictions, {} messages to 2+ clients, {} pauses, {} idle \
         timeouts, {} recovered welcomes, {} presence frames ({} leaving names out), {} who pages \
         with more",
        config.cases,
        count(&STEPS_RUN),
        count(&EVICTIONS),
        count(&WIDE_BROADCASTS),
        count(&PAUSES),
        count(&TIMEOUTS),
        count(&RECOVERED),
        count(&PRESENCE_FRAMES),
        count(&TRUNCATED_PRESENCE),
        count(&PAGED),
    );
    eprintln!(
        "model: {} commits ({} reaching 2+ clients), {} rooms woken from the store",
        count(&COMMITS),
        count(&WIDE_COMMITS),
        count(&WAKES),
    );
    eprintln!(
        "model: outcomes {:?}",
        OUTCOMES.lock().map(|o| o.clone()).unwrap_or_default()
    );
    // Whether the run exercised what it is for is judged at the default case count. Fewer (the
    // mutation stage runs 64 per mutant, to catch what fails, not to measure coverage) may miss
    // a rare path by chance, which says nothing about the engine.
    if config.cases < DEFAULT_CASES {
        return;
    }
    assert!(count(&EVICTIONS) > 0, "no slow consumer was ever evicted");
    assert!(
        count(&WIDE_BROADCASTS) > 0,
        "no message ever reached two clients"
    );
    assert!(
        count(&PRESENCE_FRAMES) > 0,
        "no presence frame was ever sent"
    );
    assert!(
        count(&TRUNCATED_PRESENCE) > 0,
        "no presence frame ever left names out"
    );
    assert!(count(&PAGED) > 0, "no who page ever had a next one");
    assert!(
        count(&WIDE_COMMITS) > 0,
        "no committed message ever reached two clients"
    );
    let unavailable = OUTCOMES
        .lock()
        .map(|o| o.get("unavailable").copied().unwrap_or(0))
        .unwrap_or(0);
    assert!(unavailable > 0, "no message was ever refused unavailable");
}
