//! `engine_ops`: an arbitrary sequence of engine inputs (connect, frames, pongs, flushes,
//! disconnects, kicks, time steps) under an arbitrary valid `Config`, driven like the server's hub drives it, with
//! `check_invariants()` after every step and a shell-side model of every client's queue.
//!
//! Besides the engine's own invariants, this checks the driving contract from the shell's side:
//! outputs name only live clients, nothing follows a client's `Close`, `Pause` and `Resume`
//! alternate, every `Send` frame is a protocol message, the engine's queue counts equal the
//! frames sent minus the frames reported flushed, and the shell's calls never fail except as
//! documented (`ServerFull` when full, `UnknownClient` for a gone client, `NoSuchUser`).

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant, SystemTime};

use arbitrary::{Arbitrary, Unstructured};
use chat_engine::protocol::Command;
use chat_engine::{
    ClientId, Config, Engine, Error, Input, JoinRequest, Now, Output, ServerMessage,
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
}

impl Limits {
    fn config(&self) -> Config {
        let config = Config {
            default_room: "general".to_owned(),
            history_max: usize::from(self.history_max % 16),
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
        };
        match config.validate() {
            Ok(()) => config,
            Err(_) => Config {
                history_max: 4,
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
                ..Config::default()
            },
        }
    }
}

/// The shell's view of one connection.
#[derive(Debug, Default)]
struct Conn {
    /// Payload sizes of frames sent and not yet reported flushed, oldest first.
    queue: VecDeque<usize>,
    paused: bool,
}

struct Shell {
    engine: Engine,
    base: Instant,
    elapsed: Duration,
    live: BTreeMap<ClientId, Conn>,
    gone: Vec<ClientId>,
    /// Disconnected during the current call: timers fired first may still ping it.
    just_gone: Option<ClientId>,
    pauses: u64,
}

impl Shell {
    fn now(&self) -> Now {
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000) + self.elapsed;
        Now::new(self.base + self.elapsed, wall)
    }

    fn pick(&self, index: u8) -> Option<ClientId> {
        let n = self.live.len();
        (n > 0).then(|| {
            *self
                .live
                .keys()
                .nth(usize::from(index) % n)
                .expect("in range")
        })
    }

    /// Carries out every output, checking it against the model; then the invariants.
    fn drain(&mut self) {
        while let Some(output) = self.engine.poll_output() {
            match output {
                Output::Send { to, frame } => {
                    let conn = self.live.get_mut(&to).expect("Send to a live client");
                    conn.queue.push_back(frame.len());
                    let text = std::str::from_utf8(&frame).expect("frames are UTF-8");
                    serde_json::from_str::<ServerMessage>(text)
                        .unwrap_or_else(|e| panic!("not a protocol message ({e}): {text}"));
                }
                Output::Ping { to } => assert!(
                    self.live.contains_key(&to) || self.just_gone == Some(to),
                    "Ping to a gone client {to}"
                ),
                Output::Close { client, reason } => {
                    assert!(
                        self.live.remove(&client).is_some(),
                        "Close of a gone client"
                    );
                    assert!((1000..5000).contains(&reason.code()));
                    assert!(reason.text().len() <= 123);
                    self.gone.push(client);
                    assert_eq!(self.engine.queued(client), None, "closed but still queued");
                }
                Output::Pause { to } => {
                    let conn = self.live.get_mut(&to).expect("Pause of a live client");
                    assert!(!conn.paused, "{to} paused twice");
                    conn.paused = true;
                    self.pauses += 1;
                }
                Output::Resume { to } => {
                    let conn = self.live.get_mut(&to).expect("Resume of a live client");
                    assert!(conn.paused, "{to} resumed without a pause");
                    conn.paused = false;
                }
            }
        }
        self.just_gone = None;
        self.engine.check_invariants();
        assert_eq!(self.engine.stats().clients, self.live.len());
        for (&id, conn) in &self.live {
            let model = (conn.queue.len(), conn.queue.iter().sum::<usize>());
            assert_eq!(self.engine.queued(id), Some(model), "{id} queue accounting");
            assert!(self.engine.client_info(id).is_some());
        }
    }

    fn handle(&mut self, input: Input<'_>) {
        let result = self.engine.handle(self.now(), input);
        assert_eq!(result, Ok(()), "{input:?}");
    }

    fn flush(&mut self, id: ClientId, frames: Option<u8>) {
        let conn = self.live.get_mut(&id).expect("live");
        let n = match frames {
            Some(n) => usize::from(n) % (conn.queue.len() + 1),
            None => conn.queue.len(),
        };
        let bytes: usize = conn.queue.drain(..n).sum();
        self.handle(Input::Flushed {
            client: id,
            frames: n,
            bytes,
        });
    }

    /// Applies one op. The engine may close clients at any call (timers fire first), so ids
    /// are resolved against `live` right before use.
    fn step(&mut self, op: &Op) {
        let now = self.now();
        match op {
            Op::Connect(join) => {
                let full = self.live.len() >= self.engine.config().clients_max;
                match self.engine.connect(now, join.request()) {
                    Ok(id) => {
                        let newest = self.gone.iter().chain(self.live.keys()).max();
                        assert!(newest.is_none_or(|&n| id > n), "ids are never reused");
                        self.live.insert(id, Conn::default());
                    }
                    Err(Error::ServerFull { .. }) => assert!(full, "ServerFull below clients_max"),
                    Err(e) => panic!("connect failed: {e}"),
                }
            }
            Op::Frame { client, body } => {
                if let Some(id) = self.pick(*client) {
                    self.handle(Input::Frame {
                        client: id,
                        text: &body.text(),
                    });
                }
            }
            Op::Burst {
                client,
                body,
                count,
            } => {
                let text = body.text();
                if let Some(id) = self.pick(*client) {
                    for _ in 0..*count % 64 {
                        if !self.live.contains_key(&id) {
                            break;
                        }
                        self.handle(Input::Frame {
                            client: id,
                            text: &text,
                        });
                        self.drain();
                    }
                }
            }
            Op::Pong { client } => {
                if let Some(id) = self.pick(*client) {
                    self.handle(Input::Pong { client: id });
                }
            }
            Op::Flushed { client, frames } => {
                if let Some(id) = self.pick(*client) {
                    self.flush(id, *frames);
                }
            }
            Op::FlushAll => {
                let ids: Vec<ClientId> = self.live.keys().copied().collect();
                for id in ids {
                    // An earlier flush can resume a room, and nothing closes on a flush, but
                    // be robust: skip whoever is gone.
                    if self.live.contains_key(&id) {
                        self.flush(id, None);
                        self.drain();
                    }
                }
            }
            Op::Disconnect { client } => {
                if let Some(id) = self.pick(*client) {
                    // The shell forgets it at once; the engine must say nothing more to it but
                    // the pings its timers fired before reading this input.
                    self.live.remove(&id);
                    self.gone.push(id);
                    self.just_gone = Some(id);
                    self.handle(Input::Disconnect { client: id });
                }
            }
            Op::Kick { client } => {
                let Some(id) = self.pick(*client) else {
                    return;
                };
                let (nick, room) = self.engine.client_info(id).expect("live");
                if let Some(room) = room {
                    let (nick, room) = (nick.to_owned(), room.to_owned());
                    assert_eq!(self.engine.kick(now, &room, &nick), Ok(id), "kick {nick}");
                }
            }
            Op::KickName { room, nick } => match self.engine.kick(now, &room.get(), &nick.get()) {
                Ok(id) => assert!(self.live.contains_key(&id)),
                Err(Error::NoSuchUser { .. }) => {}
                Err(e) => panic!("kick failed: {e}"),
            },
            Op::Stale { client, flushed } => {
                if self.gone.is_empty() {
                    return;
                }
                let id = self.gone[usize::from(*client) % self.gone.len()];
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
                assert_eq!(
                    self.engine.handle(now, input),
                    Err(Error::UnknownClient(id))
                );
            }
            Op::Advance(ms) => self.elapsed += Duration::from_millis(u64::from(*ms)),
            Op::AdvanceSecs(s) => self.elapsed += Duration::from_secs(u64::from(*s)),
            Op::Tick => self.handle(Input::Tick),
        }
        self.drain();
    }
}

fn run(u: &mut Unstructured<'_>, reached: &mut Reached) -> arbitrary::Result<()> {
    let limits = Limits::arbitrary(u)?;
    let engine = Engine::new(limits.config(), EPOCH).expect("a validated config");
    let mut shell = Shell {
        engine,
        base: Instant::now(),
        elapsed: Duration::ZERO,
        live: BTreeMap::new(),
        gone: Vec::new(),
        just_gone: None,
        pauses: 0,
    };
    shell.engine.check_invariants();
    let mut steps = 0;
    while !u.is_empty() && steps < 512 {
        let op = Op::arbitrary(u)?;
        shell.step(&op);
        steps += 1;
    }
    let stats = shell.engine.stats();
    reached.steps += steps;
    reached.messages += stats.messages_total;
    reached.evictions += stats.evictions_total;
    reached.timeouts += stats.timeouts_total;
    reached.rate_limited += stats.rate_limited_total;
    reached.errors += stats.errors_total;
    reached.pauses += shell.pauses;
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
}

/// Replays one input: an `Arbitrary` config, then ops until the input runs out (at most 512).
/// Panics when the engine or the driving contract is broken.
pub fn run_ops(data: &[u8], reached: &mut Reached) {
    let _ = run(&mut Unstructured::new(data), reached);
}
