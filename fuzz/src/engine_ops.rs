//! `engine_ops`: an arbitrary sequence of engine inputs (connect, frames, pongs, flushes,
//! disconnects, kicks, time steps) under an arbitrary valid `Config`, driven like the server's hub drives it, with
//! `check_invariants()` after every step and a shell-side model of every client's queue.
//!
//! It drives the engine through the one engine test shell (`chat_engine::test_kit::Shell`), which
//! checks the driving contract from the shell's side on every output: outputs name only live
//! clients, nothing follows a client's `Close`, `Pause` and `Resume` alternate, every `Send` frame
//! is a protocol message, the engine's queue counts equal the frames sent minus the frames
//! reported flushed. Here the shell's calls must also never fail except as documented
//! (`ServerFull` when full, `UnknownClient` for a gone client, `NoSuchUser`).

use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use chat_engine::protocol::Command;
use chat_engine::test_kit::{Event, FakeBroker, FakeNicks, Shell};
use chat_engine::{
    ClientId, Config, Error, Input, JoinRequest, LeaveReason, RemoteSeat, ServerMessage,
};

/// Names drawn mostly from a small pool, so nicknames collide (also by case) and rooms fill up.
#[derive(Arbitrary, Debug, Clone)]
enum Name {
    Pool(u8),
    Raw(String),
}

const POOL: [&str; 12] = [
    "ann", "Ann", "bob", "general", "rust", " ann ", "a", "", "x y", "guest-1", "é", "lobby",
];

impl Name {
    fn get(&self) -> String {
        match self {
            Name::Pool(i) => POOL[*i as usize % POOL.len()].to_owned(),
            Name::Raw(s) => s.clone(),
        }
    }
}

/// A `since`/`epoch` pair: the epoch of a room this engine made, or an arbitrary one.
#[derive(Arbitrary, Debug, Clone)]
struct Resume {
    since: u8,
    /// `Some(n)`: the n-th room incarnation of this engine's epoch; `None`: a foreign epoch.
    incarnation: Option<u8>,
}

#[derive(Arbitrary, Debug, Clone)]
struct Join {
    room: Option<Name>,
    nick: Option<Name>,
    resume: Option<Resume>,
}

impl Join {
    fn request(&self) -> JoinRequest {
        let (since, epoch) = match &self.resume {
            None => (None, None),
            Some(r) => (
                Some(u64::from(r.since)),
                Some(match r.incarnation {
                    Some(n) => format!("{EPOCH}-{n}"),
                    None => "other".to_owned(),
                }),
            ),
        };
        JoinRequest {
            room: self.room.as_ref().map(Name::get),
            nick: self.nick.as_ref().map(Name::get),
            since,
            epoch,
        }
    }
}

/// What a client sends: a structured command (encoded as the client would), or raw text.
#[derive(Arbitrary, Debug, Clone)]
enum Body {
    Message(Name),
    LongMessage(u16),
    Join(Join),
    Nick(Name),
    Typing,
    Who(Option<Name>),
    History { before: Option<u8>, limit: u8 },
    Raw(String),
}

impl Body {
    fn text(&self) -> String {
        match self {
            Body::Message(text) => Command::Message { text: text.get() }.encode(),
            Body::LongMessage(len) => "m".repeat(usize::from(*len) % 600),
            Body::Join(join) => Command::Join(join.request()).encode(),
            Body::Nick(nick) => Command::Nick { nick: nick.get() }.encode(),
            Body::Typing => Command::Typing.encode(),
            Body::Who(after) => Command::Who {
                after: after.as_ref().map(Name::get),
            }
            .encode(),
            Body::History { before, limit } => Command::History {
                before: before.map(u64::from),
                limit: Some(u64::from(*limit % 110)),
            }
            .encode(),
            Body::Raw(text) => text.clone(),
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
enum Op {
    Connect(Join),
    /// `client` indexes the live clients (modulo their count).
    Frame {
        client: u8,
        body: Body,
    },
    /// A burst of the same frame (reaches the rate limit and flooding close).
    Burst {
        client: u8,
        body: Body,
        count: u8,
    },
    Pong {
        client: u8,
    },
    /// Report some (`Some(n)`: n modulo queued + 1) or all (`None`) of the queued frames written.
    Flushed {
        client: u8,
        frames: Option<u8>,
    },
    /// Every client's writer catches up.
    FlushAll,
    Disconnect {
        client: u8,
    },
    /// Kick a live client by its nick and room.
    Kick {
        client: u8,
    },
    /// Kick a name that may be nobody.
    KickName {
        room: Name,
        nick: Name,
    },
    /// An input about a client that is gone: always `UnknownClient`.
    Stale {
        client: u8,
        flushed: bool,
    },
    Advance(u16),
    AdvanceSecs(u8),
    Tick,
    /// The store commits the oldest held message (with a store that holds).
    Commit,
    /// The store fails the oldest held message, and so every one held.
    StoreFail,
    /// The store answers every `Fetch` asked so far.
    AnswerFetches,
    /// The store answers the oldest `LoadTail` (with `tail_on_wake`), or with `garbage` a
    /// tail that is not the room's.
    AnswerTailLoad {
        garbage: bool,
    },
    /// Cluster mode: the broker orders every publish and delivers each back, skipping every
    /// `skip`th delivery (0: none), or fails them all.
    Order {
        skip: u8,
        fail: bool,
    },
    /// Cluster mode: the broker answers every `Refill` asked so far, `page` messages at most.
    Refill {
        page: u8,
    },
    /// Cluster mode: the broker loses every room.
    BrokerLost,
    /// Cluster mode: the deliveries broke off and resumed.
    BrokerResumed,
    /// Cluster mode with claimed nicknames: the broker answers every claim and release asked so
    /// far, or (`unavailable`) answers every claim `unavailable`.
    Claims {
        unavailable: bool,
    },
    /// Cluster mode with shared members: another node's client sits somewhere (`kind` 0-1), leaves
    /// (2), or the node tells all it seats (3: this one seat; 4: none, it died).
    Remote {
        node: u8,
        client: u8,
        room: u8,
        nick: u8,
        kind: u8,
    },
}

const EPOCH: &str = "fz";

/// The fuzzer's choice of limits, mapped into plausible ranges; invalid ones fall back.
#[derive(Arbitrary, Debug)]
struct Limits {
    history_max: u8,
    queue_frames_max: u8,
    queue_bytes_max: u16,
    high_water_frames: u8,
    high_water_bytes: u16,
    text_bytes_max: u16,
    rate_limit_burst: u8,
    rate_limit_per_second: u8,
    rate_limit_strikes_max: u8,
    ping_interval_ms: u16,
    idle_timeout_ms: u16,
    clients_max: u8,
    rooms_max: u8,
    presence_list_max: u8,
    presence_notify_max: u8,
    presence_interval_ms: u16,
    presence_changes_max: u8,
    presence_frames_per_second: u8,
    typing_interval_ms: u16,
    membership_rate_burst: u8,
    membership_rate_interval_ms: u16,
    history_bytes_max: u16,
    history_total_bytes_max: u16,
    /// 0: no store (the server's `--in-memory`); 1: held until committed (strict); 2: relaxed;
    /// 3: ordered by a broker (cluster mode). With a store, its bit 4 turns `tail_on_wake` off.
    store: u8,
    uncommitted_max: u8,
}

impl Limits {
    fn config(&self) -> Config {
        let config = Config {
            default_room: "general".to_owned(),
            history_max: usize::from(self.history_max % 16),
            history_bytes_max: usize::from(self.history_bytes_max),
            history_total_bytes_max: usize::from(self.history_total_bytes_max),
            queue_frames_max: usize::from(self.queue_frames_max % 32),
            queue_bytes_max: usize::from(self.queue_bytes_max),
            queue_high_water_frames: usize::from(self.high_water_frames % 32),
            queue_high_water_bytes: usize::from(self.high_water_bytes),
            text_bytes_max: usize::from(self.text_bytes_max % 1024),
            rate_limit_burst: u32::from(self.rate_limit_burst % 8),
            rate_limit_per_second: u32::from(self.rate_limit_per_second % 8),
            rate_limit_strikes_max: u32::from(self.rate_limit_strikes_max % 8),
            ping_interval: Duration::from_millis(u64::from(self.ping_interval_ms)),
            idle_timeout: Duration::from_millis(u64::from(self.idle_timeout_ms)),
            clients_max: usize::from(self.clients_max % 12),
            rooms_max: usize::from(self.rooms_max % 6),
            presence_list_max: usize::from(self.presence_list_max % 8),
            presence_notify_max: usize::from(self.presence_notify_max % 8),
            presence_interval: Duration::from_millis(u64::from(self.presence_interval_ms)),
            presence_changes_max: usize::from(self.presence_changes_max % 4),
            presence_frames_per_second: usize::from(self.presence_frames_per_second % 8),
            typing_interval: Duration::from_millis(u64::from(self.typing_interval_ms)),
            membership_rate_burst: u32::from(self.membership_rate_burst % 8),
            membership_rate_interval: Duration::from_millis(u64::from(
                self.membership_rate_interval_ms,
            )),
            hold_until_committed: self.store % 4 == 1,
            uncommitted_max: usize::from(self.uncommitted_max % 8),
            store_relaxed: self.store % 4 == 2,
            tail_on_wake: matches!(self.store % 4, 1 | 2) && self.store & 16 == 0,
            ordered_by_broker: self.store % 4 == 3,
            nicks_claimed: self.store % 8 == 7,
            members_shared: self.store % 16 == 15,
            guest_tag: if self.store % 8 == 7 { "n1-" } else { "" }.to_owned(),
        };
        match config.validate() {
            Ok(()) => config,
            Err(_) => Config {
                history_max: 4,
                history_bytes_max: 600,
                history_total_bytes_max: 1200,
                queue_frames_max: 8,
                queue_bytes_max: 4096,
                queue_high_water_frames: 4,
                queue_high_water_bytes: 2048,
                text_bytes_max: 64,
                rate_limit_burst: 4,
                rate_limit_per_second: 2,
                rate_limit_strikes_max: 5,
                ping_interval: Duration::from_millis(700),
                idle_timeout: Duration::from_secs(2),
                clients_max: 6,
                rooms_max: 3,
                presence_list_max: 2,
                presence_notify_max: 2,
                presence_interval: Duration::from_millis(500),
                presence_changes_max: 1,
                presence_frames_per_second: 2,
                ..Config::default()
            },
        }
    }
}

/// Picks a live client by index (modulo their count).
fn pick(shell: &Shell, index: u8) -> Option<ClientId> {
    let live = shell.live_clients();
    (!live.is_empty()).then(|| live[usize::from(index) % live.len()])
}

/// Applies one op. The engine may close clients at any call (timers fire first), so ids are
/// resolved against the live clients right before use. The shell checks the driving contract
/// and the engine's invariants after every call.
/// A broker's input: taken in cluster mode, refused (changing nothing) otherwise.
fn broker_input(shell: &mut Shell, input: Input<'_>) {
    let want = match shell.engine.config().ordered_by_broker {
        true => Ok(()),
        false => Err(Error::NotClustered),
    };
    assert_eq!(shell.handle(input), want, "{input:?}");
}

fn step(shell: &mut Shell, broker: &mut FakeBroker, nicks: &mut FakeNicks, op: &Op) {
    match op {
        Op::Connect(join) => {
            let full = shell.live_clients().len() >= shell.engine.config().clients_max;
            match shell.try_connect(join.request()) {
                Ok(_) => assert!(!full, "connected beyond clients_max"),
                Err(Error::ServerFull { .. }) => assert!(full, "ServerFull below clients_max"),
                Err(e) => panic!("connect failed: {e}"),
            }
        }
        Op::Frame { client, body } => {
            if let Some(id) = pick(shell, *client) {
                shell.send(id, &body.text());
            }
        }
        Op::Burst {
            client,
            body,
            count,
        } => {
            let text = body.text();
            if let Some(id) = pick(shell, *client) {
                for _ in 0..*count % 64 {
                    if !shell.live_clients().contains(&id) {
                        break;
                    }
                    shell.send(id, &text);
                }
            }
        }
        Op::Pong { client } => {
            if let Some(id) = pick(shell, *client) {
                shell.pong(id);
            }
        }
        Op::Flushed { client, frames } => {
            if let Some(id) = pick(shell, *client) {
                let n = frames.map(|n| usize::from(n) % (shell.unflushed(id) + 1));
                assert_eq!(shell.flush(id, n), Ok(()));
            }
        }
        Op::FlushAll => {
            for id in shell.live_clients() {
                // An earlier flush can resume a room, and nothing closes on a flush, but be
                // robust: skip whoever is gone.
                if shell.live_clients().contains(&id) {
                    assert_eq!(shell.flush(id, None), Ok(()));
                }
            }
        }
        Op::Disconnect { client } => {
            if let Some(id) = pick(shell, *client) {
                shell.disconnect(id);
            }
        }
        Op::Kick { client } => {
            let Some(id) = pick(shell, *client) else {
                return;
            };
            let (nick, room) = shell.engine.client_info(id).expect("live");
            if let Some(room) = room {
                let (nick, room) = (nick.to_owned(), room.to_owned());
                assert_eq!(shell.kick(&room, &nick), Ok(id), "kick {nick}");
            }
        }
        Op::KickName { room, nick } => {
            let live = shell.live_clients();
            match shell.kick(&room.get(), &nick.get()) {
                Ok(id) => assert!(live.contains(&id), "kicked {id}, who was not connected"),
                Err(Error::NoSuchUser { .. }) => {}
                Err(e) => panic!("kick failed: {e}"),
            }
        }
        Op::Stale { client, flushed } => {
            let gone = shell.gone_clients();
            if gone.is_empty() {
                return;
            }
            let id = gone[usize::from(*client) % gone.len()];
            let input = if *flushed {
                Input::Flushed {
                    client: id,
                    frames: 1,
                    bytes: 1,
                }
            } else {
                Input::Frame {
                    client: id,
                    text: "hi",
                }
            };
            assert_eq!(shell.handle(input), Err(Error::UnknownClient(id)));
        }
        Op::Advance(ms) => shell.pass(Duration::from_millis(u64::from(*ms))),
        Op::AdvanceSecs(s) => shell.pass(Duration::from_secs(u64::from(*s))),
        Op::Tick => shell.tick(),
        Op::Commit => {
            if !shell.outstanding().is_empty() {
                shell.commit_next();
            }
        }
        Op::StoreFail => {
            if !shell.outstanding().is_empty() {
                assert_eq!(shell.fail_next(), Ok(()));
            }
        }
        Op::AnswerFetches => shell.answer_fetches(),
        Op::AnswerTailLoad { garbage } => {
            if let Some(load) = shell.tail_loads().front().cloned() {
                if *garbage {
                    let wrong = bytes::Bytes::from_static(b"{\"type\":\"message\"}");
                    shell.answer_tail_load_with(&load.room, &[(load.seq, wrong)]);
                } else {
                    shell.answer_tail_load();
                }
            }
        }
        Op::Order { skip, fail } => {
            for (at, publish) in shell.take_publishes().into_iter().enumerate() {
                if *fail {
                    assert_eq!(
                        shell.handle(Input::PublishFailed { op: publish.op }),
                        Ok(())
                    );
                    continue;
                }
                let delivery = broker.order(&publish.room, &publish.message);
                broker_input(shell, Input::Published { op: publish.op });
                if *skip > 0 && at % usize::from(*skip) == 0 {
                    continue;
                }
                let input = Input::Ordered {
                    room: &delivery.room,
                    epoch: &delivery.epoch,
                    seq: delivery.seq,
                    frame: &delivery.frame,
                };
                broker_input(shell, input);
            }
        }
        Op::Refill { page } => {
            for refill in shell.take_refills() {
                let range = broker.range(&refill.room, refill.after, usize::from(*page % 8) + 1);
                let input = Input::Refilled {
                    room: &refill.room,
                    epoch: &range.epoch,
                    messages: &range.messages,
                    complete: range.complete,
                };
                broker_input(shell, input);
            }
        }
        Op::BrokerLost => broker.lose_everything(),
        Op::BrokerResumed => broker_input(shell, Input::BrokerResumed),
        Op::Claims { unavailable } => nicks.serve(0, shell, *unavailable),
        Op::Remote {
            node,
            client,
            room,
            nick,
            kind,
        } => {
            let node = format!("node{}", node % 3);
            let (client, room) = (u64::from(client % 8), format!("r{}", room % 3));
            // Names like the local clients', so remote seats collide with them now and then.
            let nick = format!("u{}", nick % 8);
            let input = match kind % 5 {
                0 | 1 => Input::RemoteSeated {
                    node: &node,
                    client,
                    room: &room,
                    nick: &nick,
                },
                2 => Input::RemoteUnseated {
                    node: &node,
                    client,
                    reason: LeaveReason::ALL[usize::from(*kind) % LeaveReason::ALL.len()],
                },
                n => {
                    let seats = if n == 3 {
                        vec![RemoteSeat { client, room, nick }]
                    } else {
                        Vec::new()
                    };
                    let input = Input::RemoteNode {
                        node: &node,
                        seats: &seats,
                        missing: LeaveReason::Timeout,
                    };
                    return remote_input(shell, input);
                }
            };
            remote_input(shell, input);
        }
    }
}

/// Feeds another node's seats: refused exactly when members are not shared.
fn remote_input(shell: &mut Shell, input: Input<'_>) {
    let shared = shell.engine.config().members_shared;
    let result = shell.handle(input);
    assert_eq!(result.is_ok(), shared, "{input:?}: {result:?}");
    shell.take_seats();
}

fn run(u: &mut Unstructured<'_>, reached: &mut Reached) -> arbitrary::Result<()> {
    let limits = Limits::arbitrary(u)?;
    let mut shell = Shell::new(limits.config(), EPOCH);
    let mut broker = FakeBroker::new(4);
    let mut nicks = FakeNicks::default();
    // The ops decide what each client reads, as a hub's writers would.
    shell.auto_flush = false;
    shell.engine.check_invariants();
    let mut steps = 0;
    while !u.is_empty() && steps < 512 {
        let op = Op::arbitrary(u)?;
        step(&mut shell, &mut broker, &mut nicks, &op);
        let events = shell.all_events();
        reached.pauses += (events.values().flatten())
            .filter(|event| **event == Event::Pause)
            .count() as u64;
        reached.presence += (events.values().flatten())
            .filter(|event| matches!(event, Event::Frame(ServerMessage::Presence { .. })))
            .count() as u64;
        steps += 1;
    }
    let stats = shell.engine.stats();
    reached.steps += steps;
    reached.messages += stats.messages_total;
    reached.evictions += stats.evictions_total;
    reached.timeouts += stats.timeouts_total;
    reached.rate_limited += stats.rate_limited_total;
    reached.errors += stats.errors_total;
    Ok(())
}

/// What a set of inputs made the engine do (to see what a corpus reaches).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reached {
    pub steps: usize,
    pub messages: u64,
    pub evictions: u64,
    pub timeouts: u64,
    pub rate_limited: u64,
    pub errors: u64,
    pub pauses: u64,
    pub presence: u64,
}

/// Replays one input: an `Arbitrary` config, then ops until the input runs out (at most 512).
/// Panics when the engine or the driving contract is broken.
pub fn run_ops(data: &[u8], reached: &mut Reached) {
    let _ = run(&mut Unstructured::new(data), reached);
}
