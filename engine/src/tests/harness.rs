//! A scripted shell for scenario tests: owns the engine, a clock and an inbox per client, and
//! plays the socket (reporting writes as flushed unless a client was told to stop reading).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::protocol::JoinRequest;
use crate::{ClientId, CloseReason, Config, Engine, Input, Now, Output, ServerMessage};

pub(crate) const EPOCH: &str = "test-epoch";

pub(crate) struct Harness {
    pub(crate) engine: Engine,
    pub(crate) now: Instant,
    wall: SystemTime,
    inbox: BTreeMap<ClientId, Vec<ServerMessage>>,
    pub(crate) closed: BTreeMap<ClientId, CloseReason>,
    pub(crate) paused: BTreeSet<ClientId>,
    pub(crate) pings: BTreeMap<ClientId, usize>,
    stalled: BTreeSet<ClientId>,
}

impl Harness {
    pub(crate) fn new(config: Config) -> Self {
        Self {
            engine: Engine::new(config, EPOCH).expect("test config is valid"),
            now: Instant::now(),
            wall: UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            inbox: BTreeMap::new(),
            closed: BTreeMap::new(),
            paused: BTreeSet::new(),
            pings: BTreeMap::new(),
            stalled: BTreeSet::new(),
        }
    }

    pub(crate) fn at(&self) -> Now {
        Now::new(self.now, self.wall)
    }

    pub(crate) fn connect(&mut self, nick: &str) -> ClientId {
        self.connect_with(JoinRequest {
            nick: Some(nick.to_owned()),
            ..JoinRequest::default()
        })
    }

    pub(crate) fn connect_with(&mut self, join: JoinRequest) -> ClientId {
        let id = self.engine.connect(self.at(), join).expect("connect");
        self.drive();
        id
    }

    pub(crate) fn send(&mut self, id: ClientId, text: &str) {
        self.engine
            .handle(self.at(), Input::Frame { client: id, text })
            .expect("client is connected");
        self.drive();
    }

    pub(crate) fn disconnect(&mut self, id: ClientId) {
        self.engine
            .handle(self.at(), Input::Disconnect { client: id })
            .expect("client is connected");
        self.drive();
    }

    pub(crate) fn advance(&mut self, by: Duration) {
        self.now += by;
        self.wall += by;
        self.engine.handle(self.at(), Input::Tick).expect("tick");
        self.drive();
    }

    /// From now on the client reads nothing: its frames stay queued in the engine's account.
    pub(crate) fn stop_flushing(&mut self, id: ClientId) {
        self.stalled.insert(id);
    }

    /// Lets a stalled client read everything it was sent.
    pub(crate) fn resume_flushing(&mut self, id: ClientId) {
        self.stalled.remove(&id);
        if let Some((frames, bytes)) = self.engine.queued(id) {
            self.engine
                .handle(
                    self.at(),
                    Input::Flushed {
                        client: id,
                        frames,
                        bytes,
                    },
                )
                .expect("flush what was queued");
            self.drive();
        }
    }

    /// Drains outputs and reports writes until the engine has nothing more to say.
    pub(crate) fn drive(&mut self) {
        for _ in 0..10_000 {
            let mut flushed = Vec::new();
            while let Some(output) = self.engine.poll_output() {
                match output {
                    Output::Send { to, frame } => {
                        let message = serde_json::from_slice(&frame)
                            .expect("server frames parse as ServerMessage");
                        self.inbox.entry(to).or_default().push(message);
                        if !self.stalled.contains(&to) {
                            flushed.push((to, frame.len()));
                        }
                    }
                    Output::Ping { to } => *self.pings.entry(to).or_default() += 1,
                    Output::Close { client, reason } => {
                        assert!(
                            self.closed.insert(client, reason).is_none(),
                            "{client} closed twice"
                        );
                        flushed.retain(|(id, _)| *id != client);
                    }
                    Output::Pause { to } => assert!(self.paused.insert(to), "{to} paused twice"),
                    Output::Resume { to } => {
                        assert!(self.paused.remove(&to), "{to} resumed while running")
                    }
                }
            }
            if flushed.is_empty() {
                return;
            }
            for (client, bytes) in flushed {
                self.engine
                    .handle(
                        self.at(),
                        Input::Flushed {
                            client,
                            frames: 1,
                            bytes,
                        },
                    )
                    .expect("flush a frame that was sent");
            }
        }
        panic!("engine did not go idle");
    }

    /// Everything `id` received since the last call.
    pub(crate) fn take(&mut self, id: ClientId) -> Vec<ServerMessage> {
        self.inbox.remove(&id).unwrap_or_default()
    }

    /// The texts of the chat messages `id` received since the last call.
    pub(crate) fn texts(&mut self, id: ClientId) -> Vec<String> {
        self.take(id)
            .into_iter()
            .filter_map(|m| match m {
                ServerMessage::Message(m) => Some(m.text),
                _ => None,
            })
            .collect()
    }

    /// The error codes `id` received since the last call.
    pub(crate) fn errors(&mut self, id: ClientId) -> Vec<String> {
        self.take(id)
            .into_iter()
            .filter_map(|m| match m {
                ServerMessage::Error { code, .. } => Some(code),
                _ => None,
            })
            .collect()
    }
}

/// A config without the rate limit, so tests that are not about it can send freely.
pub(crate) fn unlimited() -> Config {
    Config {
        rate_limit_per_second: 0,
        ..Config::default()
    }
}
