//! The hub: the one task that owns the engine. Connections talk to it through a bounded inbox;
//! it answers through each connection's writer channel and read control. No locks around chat
//! state: every change goes through this task, in order.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, DefaultHasher};
use std::pin::pin;
use std::sync::Arc;

use bytes::Bytes;
use chat_engine::{ClientId, Engine, Error, Input, JoinRequest, Output, Stats};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::metrics::Metrics;

/// What a connection's writer is asked to put on the wire, in order.
#[derive(Debug)]
pub(crate) enum WriterCmd {
    /// A text frame from the engine (counted in its queue; reported back as flushed).
    Text(Bytes),
    /// A binary frame (echo mode only; never counted).
    Binary(Bytes),
    Ping,
    Pong(Bytes),
    /// The last frame: close with this code and reason, then end the connection.
    Close {
        code: u16,
        reason: &'static str,
    },
}

/// Whether a connection's reader may read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReadControl {
    Run,
    /// Flow control: its room is behind, stop reading until resumed.
    Pause,
    /// The connection is over: stop reading (after a short linger for the peer's close).
    Stop,
}

/// The hub's grip on one connection.
#[derive(Debug)]
pub(crate) struct ConnHandle {
    pub(crate) writer: mpsc::UnboundedSender<WriterCmd>,
    pub(crate) control: watch::Sender<ReadControl>,
}

pub(crate) enum ToHub {
    Connect {
        join: JoinRequest,
        conn: ConnHandle,
        reply: oneshot::Sender<Result<ClientId, Error>>,
    },
    Frame {
        client: ClientId,
        text: String,
    },
    Pong {
        client: ClientId,
    },
    Flushed {
        client: ClientId,
        frames: usize,
        bytes: usize,
    },
    Disconnect {
        client: ClientId,
    },
    Kick {
        room: String,
        nick: String,
        reply: oneshot::Sender<Result<ClientId, Error>>,
    },
}

/// A connection's (or the HTTP layer's) way to reach the hub. Sends fail only once the hub has
/// stopped, at shutdown, when there is nobody left to tell.
#[derive(Clone, Debug)]
pub(crate) struct HubHandle {
    tx: mpsc::Sender<ToHub>,
}

impl HubHandle {
    pub(crate) async fn connect(
        &self,
        join: JoinRequest,
        conn: ConnHandle,
    ) -> Option<Result<ClientId, Error>> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(ToHub::Connect { join, conn, reply })
            .await
            .ok()?;
        answer.await.ok()
    }

    pub(crate) async fn kick(&self, room: String, nick: String) -> Option<Result<ClientId, Error>> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(ToHub::Kick { room, nick, reply }).await.ok()?;
        answer.await.ok()
    }

    pub(crate) async fn send(&self, message: ToHub) {
        let _ = self.tx.send(message).await;
    }
}

type ConnMap = HashMap<ClientId, ConnHandle, BuildHasherDefault<DefaultHasher>>;

pub(crate) struct Hub {
    engine: Engine,
    clock: Clock,
    conns: ConnMap,
    stats: watch::Sender<Stats>,
    metrics: Arc<Metrics>,
    last_stats: Stats,
}

/// How many messages the hub takes from its inbox per wake-up.
const INBOX_BATCH: usize = 256;
/// Inbox bound: readers wait (and so stop reading their sockets) when the hub is this far behind.
pub(crate) const INBOX_CAPACITY: usize = 4096;

impl Hub {
    pub(crate) fn new(
        engine: Engine,
        clock: Clock,
        metrics: Arc<Metrics>,
    ) -> (Self, watch::Receiver<Stats>) {
        let (stats, stats_rx) = watch::channel(engine.stats());
        let hub = Self {
            last_stats: engine.stats(),
            engine,
            clock,
            conns: ConnMap::default(),
            stats,
            metrics,
        };
        (hub, stats_rx)
    }

    pub(crate) fn channel() -> (HubHandle, mpsc::Receiver<ToHub>) {
        let (tx, rx) = mpsc::channel(INBOX_CAPACITY);
        (HubHandle { tx }, rx)
    }

    /// Runs until `stop` is cancelled, then closes every connection with 1001.
    pub(crate) async fn run(mut self, mut inbox: mpsc::Receiver<ToHub>, stop: CancellationToken) {
        let mut batch = Vec::with_capacity(INBOX_BATCH);
        let mut timer = pin!(tokio::time::sleep_until(tokio::time::Instant::now()));
        let mut armed: Option<std::time::Instant> = None;
        loop {
            let deadline = self.engine.poll_timeout();
            // Re-arm the timer only when the deadline moved: resetting is not free.
            if deadline != armed {
                armed = deadline;
                if let Some(at) = deadline {
                    timer.as_mut().reset(tokio::time::Instant::from_std(at));
                }
            }
            tokio::select! {
                biased;
                () = stop.cancelled() => break,
                received = inbox.recv_many(&mut batch, INBOX_BATCH) => {
                    if received == 0 {
                        break;
                    }
                    for message in batch.drain(..) {
                        self.on_message(message);
                        self.dispatch();
                    }
                }
                () = timer.as_mut(), if armed.is_some() => {
                    armed = None;
                    let _ = self.engine.handle(self.clock.now(), Input::Tick);
                    self.dispatch();
                }
            }
            self.publish();
        }
        self.close_all();
        self.publish();
    }

    fn on_message(&mut self, message: ToHub) {
        let now = self.clock.now();
        let result = match message {
            ToHub::Connect { join, conn, reply } => {
                let result = self.engine.connect(now, join);
                if let Ok(id) = result {
                    self.conns.insert(id, conn);
                    tracing::info!(client = %id, "connected");
                }
                let _ = reply.send(result);
                Ok(())
            }
            ToHub::Frame { client, text } => self.engine.handle(
                now,
                Input::Frame {
                    client,
                    text: &text,
                },
            ),
            ToHub::Pong { client } => self.engine.handle(now, Input::Pong { client }),
            ToHub::Flushed {
                client,
                frames,
                bytes,
            } => self.engine.handle(
                now,
                Input::Flushed {
                    client,
                    frames,
                    bytes,
                },
            ),
            ToHub::Disconnect { client } => {
                if let Some(conn) = self.conns.remove(&client) {
                    conn.control.send_replace(ReadControl::Stop);
                }
                self.engine.handle(now, Input::Disconnect { client })
            }
            ToHub::Kick { room, nick, reply } => {
                let _ = reply.send(self.engine.kick(now, &room, &nick));
                Ok(())
            }
        };
        match result {
            // The connection ended on both sides at once, or was already closed by the engine.
            Ok(()) | Err(Error::UnknownClient(_)) => {}
            Err(e) => tracing::error!(error = %e, "engine refused an input from the server"),
        }
    }

    /// Carries out everything the engine asked for.
    fn dispatch(&mut self) {
        while let Some(output) = self.engine.poll_output() {
            match output {
                Output::Send { to, frame } => self.to_writer(to, WriterCmd::Text(frame)),
                Output::Ping { to } => self.to_writer(to, WriterCmd::Ping),
                Output::Close { client, reason } => {
                    if let Some(conn) = self.conns.remove(&client) {
                        let _ = conn.writer.send(WriterCmd::Close {
                            code: reason.code(),
                            reason: reason.text(),
                        });
                        conn.control.send_replace(ReadControl::Stop);
                    }
                    tracing::info!(client = %client, code = reason.code(), reason = reason.text(), "closed by the server");
                }
                Output::Pause { to } => self.control(to, ReadControl::Pause),
                Output::Resume { to } => self.control(to, ReadControl::Run),
            }
        }
    }

    fn to_writer(&self, to: ClientId, cmd: WriterCmd) {
        if let Some(conn) = self.conns.get(&to) {
            // A dead writer has already reported its Disconnect, which is on its way here.
            let _ = conn.writer.send(cmd);
        }
    }

    fn control(&self, to: ClientId, control: ReadControl) {
        if let Some(conn) = self.conns.get(&to) {
            conn.control.send_replace(control);
        }
    }

    fn publish(&mut self) {
        let stats = self.engine.stats();
        if stats != self.last_stats {
            self.metrics.observe(&self.last_stats, &stats);
            self.last_stats = stats;
            self.stats.send_replace(stats);
        }
    }

    /// Shutdown: every client gets close 1001 after what it was already sent.
    fn close_all(&mut self) {
        let mut ids: Vec<ClientId> = self.conns.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            if let Some(conn) = self.conns.remove(&id) {
                let _ = conn.writer.send(WriterCmd::Close {
                    code: 1001,
                    reason: "server shutting down",
                });
                conn.control.send_replace(ReadControl::Stop);
            }
        }
    }
}
