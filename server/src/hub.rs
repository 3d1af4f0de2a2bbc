//! The hub: the one task that owns the engine. Connections talk to it through a bounded inbox;
//! it answers through each connection's link (writer queue and read control). No locks around chat
//! state: every change goes through this task, in order.
//!
//! A turn is a batch of inbox messages. What it queued for clients whose writers are parked, the
//! hub writes into their sockets itself at the end of the turn (`flush`), and tells the engine at
//! once what went out; a writer task wakes only for a socket that could not take it all.
//!
//! Flow control is the hub's to finish: when the engine pauses a client, its reader stops, but
//! frames it read before it heard of the pause may still be in the inbox. The hub holds those
//! back until the client is resumed, so a paused room gets nothing more from its own members.
//! Each reader has a small credit of frames the engine has not taken yet (`--read-ahead-frames`,
//! `--read-ahead-bytes`), so what the hub holds back is bounded too: a paused reader runs out of
//! credit and stops.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::hash::{BuildHasherDefault, DefaultHasher};
use std::net::IpAddr;
use std::pin::pin;
use std::sync::Arc;

use chat_engine::{ClientId, Engine, Error, Input, JoinRequest, Output, Stats};
use futures_util::FutureExt;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::admin::Kicked;
use crate::broker::link::BrokerLink;
use crate::broker::node::BrokerHandle;
use crate::clock::Clock;
use crate::fanout::Fanout;
use crate::link::{Link, ReadControl};
use crate::metrics::Metrics;
use crate::store::{Report, StoreHandle};
use crate::store_link::{Followup, StoreLink};
use crate::ws_write::{Tally, WriterCmd, CLOSE_GOING_AWAY, SCRATCH_KEPT};

/// How long a stopping hub waits for the store to commit what it holds, so those messages are
/// delivered (and acknowledged) before everyone is told goodbye.
const COMMIT_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// How the hub ended: the store to shut down cleanly, and why the server must stop if the hub
/// decided that itself.
#[derive(Debug, Default)]
pub(crate) struct HubEnd {
    pub(crate) store: Option<StoreHandle>,
    pub(crate) fatal: Option<String>,
}

pub(crate) enum ToHub {
    Connect(Box<Arrival>),
    Frame { client: ClientId, text: String },
    Pong { client: ClientId },
    Flushed { client: ClientId, tally: Tally },
    Disconnect { client: ClientId },
    Kick(Box<KickRequest>),
}

/// A new connection asking to join. Boxed, like [`KickRequest`], because every message is as
/// large as `ToHub`'s largest variant, and so is every connection's send in flight: each
/// connection's task holds two of those for its whole life (BENCHMARKS.md, scenario 6).
#[derive(Debug)]
pub(crate) struct Arrival {
    pub(crate) join: JoinRequest,
    /// The peer's address, for the rate buckets it left with last time.
    pub(crate) from: Option<IpAddr>,
    pub(crate) link: Arc<Link>,
    pub(crate) reply: oneshot::Sender<Result<ClientId, Error>>,
}

/// An operator's kick (`POST /admin/kick`).
#[derive(Debug)]
pub(crate) struct KickRequest {
    pub(crate) room: String,
    pub(crate) nick: String,
    pub(crate) reply: oneshot::Sender<Kicked>,
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
        from: Option<IpAddr>,
        link: Arc<Link>,
    ) -> Option<Result<ClientId, Error>> {
        let (reply, answer) = oneshot::channel();
        let arrival = Arrival {
            join,
            from,
            link,
            reply,
        };
        self.tx.send(ToHub::Connect(Box::new(arrival))).await.ok()?;
        answer.await.ok()
    }

    pub(crate) async fn kick(&self, room: String, nick: String) -> Option<Kicked> {
        let (reply, answer) = oneshot::channel();
        let kick = KickRequest { room, nick, reply };
        self.tx.send(ToHub::Kick(Box::new(kick))).await.ok()?;
        answer.await.ok()
    }

    /// The channel's own send future, not an `async fn` around it: that would keep `message`
    /// a second time beside the copy the channel's future holds.
    pub(crate) fn send(&self, message: ToHub) -> impl Future<Output = ()> + '_ {
        self.tx.send(message).map(|_| ())
    }
}

/// One connection as the hub sees it.
#[derive(Debug)]
struct Conn {
    link: Arc<Link>,
    /// Frames it read before its reader stopped, in order, not yet given to the engine.
    held: VecDeque<String>,
}

impl Conn {
    /// The engine paused it (its link says so): its frames wait in `held` until it is resumed.
    fn is_paused(&self) -> bool {
        self.link.control() == ReadControl::Pause
    }
}

type ConnMap = HashMap<ClientId, Conn, BuildHasherDefault<DefaultHasher>>;

pub(crate) struct Hub {
    engine: Engine,
    clock: Clock,
    conns: ConnMap,
    stats: watch::Sender<Stats>,
    metrics: Arc<Metrics>,
    last_stats: Stats,
    /// Clients resumed while they had frames held back, to be replayed before anything newer.
    resumed: Vec<ClientId>,
    /// Clients given frames this turn while their writers were parked: the hub writes those
    /// frames itself at the end of the turn (`flush`), one write per client. Their links are
    /// listed beside them so the flush needs no second lookup per recipient.
    to_flush: Vec<(ClientId, Arc<Link>)>,
    /// The buffer those writes are encoded into, reused from turn to turn.
    scratch: Vec<u8>,
    /// Inbox messages per turn (`--hub-turn`).
    turn: usize,
    /// Helper threads that write a share of a wide fan-out (`--fanout-threads`).
    fanout: Fanout,
    /// The message store, when messages are kept (`--data-dir`).
    store: Option<StoreLink>,
    /// The cluster's broker (`--broker`): it orders every message and keeps the history.
    broker: Option<BrokerLink>,
    /// Cancelled when the hub must stop the server (a failed sync); the reason is in `HubEnd`.
    fatal: CancellationToken,
}

impl Hub {
    /// `turn`: how many inbox messages make one turn, after which the hub writes what they
    /// queued and lets other tasks run. One message can be a broadcast that puts a frame on every
    /// member's queue: when turns were unbounded, one put hundreds of frames on each queue before
    /// anything was written, and members evenly behind were evicted (BENCHMARKS.md, 3c). Keep it
    /// well under the gap between a queue's high-water mark and its bound (32 against 128 by
    /// default).
    pub(crate) fn new(
        engine: Engine,
        clock: Clock,
        metrics: Arc<Metrics>,
        turn: usize,
    ) -> (Self, watch::Receiver<Stats>) {
        let (stats, stats_rx) = watch::channel(engine.stats());
        let hub = Self {
            last_stats: engine.stats(),
            engine,
            clock,
            conns: ConnMap::default(),
            stats,
            metrics,
            resumed: Vec::new(),
            to_flush: Vec::new(),
            scratch: Vec::new(),
            turn: turn.max(1),
            fanout: Fanout::new(0),
            store: None,
            broker: None,
            fatal: CancellationToken::new(),
        };
        (hub, stats_rx)
    }

    /// Keeps messages in `store`: the engine's `Store` and `Fetch` go to it, its reports come
    /// back as inputs. `fatal` is cancelled if the store fails in a way that must stop the server.
    pub(crate) fn keep_in(&mut self, store: StoreHandle, fatal: CancellationToken) {
        let hold = self.engine.config().hold_until_committed;
        self.store = Some(StoreLink::new(store, hold));
        self.fatal = fatal;
    }

    /// Joins the cluster of `broker`: the engine's `Publish`, `Refill` and `Fetch` go to it, its
    /// reports come back as inputs (the engine must be in cluster mode).
    pub(crate) fn join_cluster(&mut self, broker: BrokerHandle) {
        self.broker = Some(BrokerLink::new(broker));
    }

    /// Hands a share of every wide fan-out to `threads` helper threads (see `fanout.rs`).
    pub(crate) fn spread_writes(&mut self, threads: usize) {
        self.fanout = Fanout::new(threads);
    }

    /// The inbox: connections wait (and so stop reading their sockets) once `capacity` messages
    /// are waiting for the hub.
    pub(crate) fn channel(capacity: usize) -> (HubHandle, mpsc::Receiver<ToHub>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (HubHandle { tx }, rx)
    }

    /// Runs until `stop` is cancelled (or the store fails for good), then closes every
    /// connection with 1001.
    pub(crate) async fn run(self, inbox: mpsc::Receiver<ToHub>, stop: CancellationToken) -> HubEnd {
        // Unconstrained: one turn writes into hundreds of sockets (`flush`), and past Tokio's
        // per-task budget those writes would fail as if the sockets were full, waking a writer
        // task for each. The hub yields on its own after every turn that filled up.
        tokio::task::coop::unconstrained(self.serve(inbox, stop)).await
    }

    async fn serve(mut self, mut inbox: mpsc::Receiver<ToHub>, stop: CancellationToken) -> HubEnd {
        let mut reports = self.store.as_mut().map(StoreLink::take_reports);
        let mut broker_reports = self.broker.as_mut().map(BrokerLink::take_reports);
        let mut fatal = None;
        let mut batch = Vec::with_capacity(self.turn);
        let mut delivered = Vec::new();
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
            // With the store behind, stop taking frames: connections then wait on the inbox and
            // stop reading their sockets (the inbox's bound is the flow control), rather than
            // every message beyond `uncommitted_max` being refused, or a commit releasing more
            // frames at once than a member's queue has room for (`awaiting_max`).
            let waiting_max = awaiting_max(self.engine.config());
            let accepting = (self.store.as_ref())
                .is_none_or(|store| store.awaiting() + self.turn <= waiting_max);
            tokio::select! {
                biased;
                () = stop.cancelled() => break,
                report = next_report(&mut reports) => {
                    let Some(report) = report else {
                        fatal = Some("the message store stopped unexpectedly".to_owned());
                        break;
                    };
                    if let Some(why) = self.on_report(report) {
                        fatal = Some(why);
                        break;
                    }
                }
                received = next_broker_reports(&mut broker_reports, &mut delivered, self.turn) => {
                    if received == 0 {
                        fatal = Some("the broker task stopped unexpectedly".to_owned());
                        break;
                    }
                    // Every report waiting, then one flush: a busy room's deliveries reach each
                    // socket in one write, as the messages of one inbox turn do.
                    let now = self.clock.now();
                    for report in delivered.drain(..) {
                        BrokerLink::apply(report, &mut self.engine, now);
                        self.dispatch();
                    }
                    self.replay_held();
                    self.flush();
                }
                received = inbox.recv_many(&mut batch, self.turn), if accepting => {
                    if received == 0 {
                        break;
                    }
                    for message in batch.drain(..) {
                        self.handle(message);
                    }
                    self.flush();
                    // The hub is outside Tokio's budget, so nothing else makes it yield: with
                    // more waiting, let the connections on this thread run before the next turn
                    // (on more than one thread, readers elsewhere could keep the inbox from ever
                    // emptying).
                    if received == self.turn || !inbox.is_empty() {
                        tokio::task::yield_now().await;
                    }
                }
                () = timer.as_mut(), if armed.is_some() => {
                    armed = None;
                    let _ = self.engine.handle(self.clock.now(), Input::Tick);
                    self.dispatch();
                    self.replay_held();
                    self.flush();
                }
            }
            self.publish();
        }
        if fatal.is_none() {
            self.await_commits(&mut reports).await;
        } else {
            self.fatal.cancel();
        }
        self.close_all();
        self.publish();
        let store = self.store.take().map(StoreLink::into_handle);
        HubEnd { store, fatal }
    }

    /// One store report, and everything the engine asked for because of it; `Some` if the
    /// server must stop.
    fn on_report(&mut self, report: Report) -> Option<String> {
        let now = self.clock.now();
        let store = self.store.as_mut()?;
        let followup = store.apply(report, &mut self.engine, now);
        self.dispatch();
        self.replay_held();
        self.flush();
        match followup {
            Followup::None => None,
            Followup::Fatal(why) => Some(why),
        }
    }

    /// Stopping: lets the store commit what is held (at most `COMMIT_GRACE`), so those messages
    /// reach their room before the goodbye.
    async fn await_commits(&mut self, reports: &mut Option<mpsc::UnboundedReceiver<Report>>) {
        let settled = tokio::time::timeout(COMMIT_GRACE, async {
            while self
                .store
                .as_ref()
                .is_some_and(|store| store.awaiting() > 0)
            {
                match next_report(reports).await {
                    Some(report) => {
                        if self.on_report(report).is_some() {
                            return;
                        }
                    }
                    None => return,
                }
            }
        })
        .await;
        if settled.is_err() {
            tracing::warn!("stopping with messages the store has not committed: their senders were not acknowledged");
        }
    }

    /// One inbox message, and everything the engine asked for because of it.
    fn handle(&mut self, message: ToHub) {
        self.on_message(message);
        self.dispatch();
        self.replay_held();
    }

    fn on_message(&mut self, message: ToHub) {
        let now = self.clock.now();
        let result = match message {
            ToHub::Connect(arrival) => {
                let Arrival {
                    join,
                    from,
                    link,
                    reply,
                } = *arrival;
                let result = self.engine.connect_from(now, join, from);
                if let Ok(id) = result {
                    let conn = Conn {
                        link,
                        held: VecDeque::new(),
                    };
                    self.conns.insert(id, conn);
                    tracing::info!(client = %id, "connected");
                }
                let _ = reply.send(result);
                Ok(())
            }
            ToHub::Frame { client, text } => match self.conns.get_mut(&client) {
                Some(conn) if conn.is_paused() || !conn.held.is_empty() => {
                    conn.held.push_back(text);
                    Ok(())
                }
                _ => {
                    self.feed(client, &text);
                    Ok(())
                }
            },
            ToHub::Pong { client } => self.engine.handle(now, Input::Pong { client }),
            ToHub::Flushed { client, tally } => self.flushed(client, tally),
            ToHub::Disconnect { client } => {
                if let Some(conn) = self.conns.remove(&client) {
                    conn.link.hang_up(None);
                    // What it said before it left was read and counts: deliver it, even into a
                    // paused room (a bounded excess: its reader stopped at the pause).
                    for text in conn.held {
                        self.feed(client, &text);
                    }
                }
                self.engine.handle(now, Input::Disconnect { client })
            }
            ToHub::Kick(kick) => {
                let KickRequest { room, nick, reply } = *kick;
                match (self.engine.kick(now, &room, &nick), self.broker.as_mut()) {
                    (Ok(client), _) => {
                        let _ = reply.send(Kicked::Here(client));
                    }
                    // Not here: the node holding the name is asked, without waiting for it.
                    (Err(_), Some(broker)) => broker.kick_elsewhere(room, nick, reply),
                    (Err(_), None) => {
                        let _ = reply.send(Kicked::NoSuchUser);
                    }
                }
                Ok(())
            }
        };
        report(result);
    }

    /// Carries out everything the engine asked for.
    fn dispatch(&mut self) {
        while let Some(output) = self.engine.poll_output() {
            let output = match self.broker.as_mut() {
                Some(broker) => match broker.take(output) {
                    Some(output) => output,
                    None => continue,
                },
                None => output,
            };
            let output = match self.store.as_mut() {
                Some(store) => match store.take(output) {
                    Some(output) => output,
                    None => continue,
                },
                None => output,
            };
            match output {
                Output::Send { to, frame } => self.queue_for(to, WriterCmd::Text(frame)),
                Output::Ping { to } => self.queue_for(to, WriterCmd::Ping),
                Output::Close { client, reason } => {
                    // Frames still held are dropped with it: the engine takes nothing more from
                    // a client it closed.
                    if let Some(conn) = self.conns.remove(&client) {
                        conn.link.hang_up(Some(WriterCmd::Close {
                            code: reason.code(),
                            reason: reason.text(),
                        }));
                    }
                    tracing::info!(client = %client, code = reason.code(), reason = reason.text(), "closed by the server");
                }
                Output::Pause { to } => {
                    if let Some(conn) = self.conns.get(&to) {
                        conn.link.set_control(ReadControl::Pause);
                    }
                }
                Output::Resume { to } => {
                    if let Some(conn) = self.conns.get(&to) {
                        conn.link.set_control(ReadControl::Run);
                        if !conn.held.is_empty() {
                            self.resumed.push(to);
                        }
                    }
                }
                // Taken by the store link above; without a store the engine is configured never
                // to ask (`Config::persists` is off).
                Output::Store { op, .. } => {
                    tracing::error!(%op, "the engine asked for a store, but none is running");
                }
                Output::Fetch { to, .. } => {
                    tracing::error!(client = %to, "the engine asked for a fetch, but no store is running");
                }
                Output::LoadTail { room, .. } => {
                    tracing::error!(%room, "the engine asked for a room's tail, but no store is running");
                }
                // Only in cluster mode (`Config::ordered_by_broker`), which a node without a
                // broker never turns on.
                Output::Publish { op, .. } => {
                    tracing::error!(%op, "the engine asked for a publish, but no broker is running");
                }
                Output::Refill { room, .. } => {
                    tracing::error!(%room, "the engine asked for a refill, but no broker is running");
                }
                Output::ClaimNick { room, .. }
                | Output::ReleaseNick { room, .. }
                | Output::Relay { room, .. }
                | Output::Seated { room, .. } => {
                    tracing::error!(%room, "the engine asked for a cluster's help, but no broker is running");
                }
                Output::Unseated { client, .. } => {
                    tracing::error!(%client, "the engine told a seat, but no broker is running");
                }
            }
        }
    }

    /// Gives resumed clients' held frames to the engine, oldest first, until each is paused
    /// again or has none left. Runs before the next inbox message, so order per client holds.
    fn replay_held(&mut self) {
        while let Some(client) = self.resumed.pop() {
            while let Some(text) = self
                .conns
                .get_mut(&client)
                .filter(|conn| !conn.is_paused())
                .and_then(|conn| conn.held.pop_front())
            {
                self.feed(client, &text);
                self.dispatch();
            }
        }
    }

    /// One frame from `client` into the engine, and its credit (frame and bytes) back to the
    /// reader.
    fn feed(&mut self, client: ClientId, text: &str) {
        if let Some(conn) = self.conns.get(&client) {
            conn.link.taken(text.len());
        }
        let now = self.clock.now();
        report(self.engine.handle(now, Input::Frame { client, text }));
    }

    fn queue_for(&mut self, to: ClientId, cmd: WriterCmd) {
        // A dead writer closed its link (pushes are dropped) and stopped its reader, whose
        // Disconnect is on its way here.
        if let Some(conn) = self.conns.get(&to) {
            if conn.link.push(cmd) {
                self.to_flush.push((to, conn.link.clone()));
            }
        }
    }

    /// Tells the engine that `client`'s writer (or the hub) wrote these frames out.
    fn flushed(&mut self, client: ClientId, tally: Tally) -> Result<(), Error> {
        let Tally { frames, bytes } = tally;
        let flushed = Input::Flushed {
            client,
            frames,
            bytes,
        };
        self.engine.handle(self.clock.now(), flushed)
    }

    /// The end of a turn: writes what this turn queued for parked writers straight into their
    /// sockets, and tells the engine what went out. That can resume a room and replay held
    /// frames, which queue more (and put more clients on the list): go on until it is empty.
    ///
    /// A wide fan-out is written in parallel, by the hub and the helpers together (`fanout`),
    /// and every write is known before the hub goes on, so the engine counts them in this very
    /// turn.
    fn flush(&mut self) {
        while !self.to_flush.is_empty() {
            let written = self.fanout.write_all(&mut self.to_flush, &mut self.scratch);
            for (client, tally) in written {
                self.written(client, tally);
            }
        }
        // One large broadcast should not pin its buffer for good.
        if self.scratch.capacity() > SCRATCH_KEPT {
            self.scratch = Vec::new();
        }
    }

    /// A direct write of `client`'s frames went out: the engine counts it, and whatever that
    /// resumes is carried out (which may put more clients on the list to flush).
    fn written(&mut self, client: ClientId, tally: Tally) {
        report(self.flushed(client, tally));
        self.dispatch();
        self.replay_held();
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
                conn.link.hang_up(Some(WriterCmd::Close {
                    code: CLOSE_GOING_AWAY,
                    reason: "server shutting down",
                }));
            }
        }
    }
}

/// The broker's waiting reports (at least one, at most `limit`) into `batch`, how many (0: the
/// broker task is gone); never, without a broker.
async fn next_broker_reports(
    reports: &mut Option<mpsc::Receiver<crate::broker::node::Report>>,
    batch: &mut Vec<crate::broker::node::Report>,
    limit: usize,
) -> usize {
    match reports {
        Some(reports) => reports.recv_many(batch, limit).await,
        None => std::future::pending().await,
    }
}

/// The store's next report; never, without a store.
async fn next_report(reports: &mut Option<mpsc::UnboundedReceiver<Report>>) -> Option<Report> {
    match reports {
        Some(reports) => reports.recv().await,
        None => std::future::pending().await,
    }
}

/// Logs what the engine refused, but for the races that are expected.
/// Messages the hub lets wait for the store at most before it stops taking frames. Held
/// messages are released when their batch commits, all at once, so a room's members each get
/// them in one turn. A member below the high-water mark (a healthy one: above it, it is behind)
/// has room for `queue_frames_max - queue_high_water_frames` more: let no more wait, or a flood
/// into a room evicts everyone in it as a slow consumer when its batch commits (scenario 3,
/// with the store: all 50 clients, within 25 ms). Messages delivered at once (relaxed
/// durability, or no store) only need `uncommitted_max`.
fn awaiting_max(config: &chat_engine::Config) -> usize {
    if !config.hold_until_committed {
        return config.uncommitted_max;
    }
    let room = config.queue_frames_max - config.queue_high_water_frames;
    config.uncommitted_max.min(room).max(1)
}

fn report(result: Result<(), Error>) {
    match result {
        // The connection ended on both sides at once, or was already closed by the engine.
        Ok(()) | Err(Error::UnknownClient(_)) => {}
        Err(e) => tracing::error!(error = %e, "engine refused an input from the server"),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chat_engine::{Config, JoinRequest};
    use futures_util::FutureExt;
    use tokio::io::{AsyncReadExt, DuplexStream};

    use super::*;
    use crate::link::LinkLimits;
    use crate::settings::WallClock;

    /// What a connection's reader and writer would see of the hub.
    struct Probe {
        id: ClientId,
        link: Arc<Link>,
    }

    impl Probe {
        /// Chat texts written to this client since last asked, in order.
        fn texts(&mut self) -> Vec<String> {
            let mut texts = Vec::new();
            let taken = self.link.take_all().now_or_never();
            for cmd in taken.flatten().unwrap_or_default() {
                if let WriterCmd::Text(frame) = cmd {
                    let value: serde_json::Value =
                        serde_json::from_slice(&frame).expect("frames are JSON");
                    if value["type"] == "message" {
                        texts.push(value["text"].as_str().unwrap_or_default().to_owned());
                    }
                }
            }
            texts
        }

        fn control(&self) -> ReadControl {
            self.link.control()
        }

        fn credit(&self) -> usize {
            self.link.credit().available_permits()
        }

        fn frames_queued(&self, hub: &Hub) -> usize {
            hub.engine.queued(self.id).expect("connected").0
        }
    }

    fn hub(config: Config) -> Hub {
        let engine = Engine::new(config, "test").expect("valid config");
        let clock = Clock::new(WallClock::System);
        Hub::new(engine, clock, Arc::new(Metrics::new()), 32).0
    }

    fn connect(hub: &mut Hub, nick: &str) -> Probe {
        connect_with(hub, nick, Link::default())
    }

    /// A client whose link writes into an in-memory socket, and the socket's far end.
    fn connect_wired(hub: &mut Hub, nick: &str) -> (Probe, DuplexStream) {
        let (ours, peer) = tokio::io::duplex(1 << 16);
        let link = Link::new(crate::sink::Sink::new(ours), LinkLimits::default());
        (connect_with(hub, nick, link), peer)
    }

    /// Everything the far end can read now, as text.
    fn received(peer: &mut DuplexStream) -> String {
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        while let Some(Ok(n @ 1..)) = peer.read(&mut buf).now_or_never() {
            all.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&all).into_owned()
    }

    fn connect_with(hub: &mut Hub, nick: &str, link: Link) -> Probe {
        let link = Arc::new(link);
        let (reply, mut answer) = oneshot::channel();
        let join = JoinRequest {
            nick: Some(nick.to_owned()),
            room: None,
            since: None,
            epoch: None,
        };
        hub.handle(ToHub::Connect(Box::new(Arrival {
            from: None,
            join,
            link: link.clone(),
            reply,
        })));
        let id = answer.try_recv().expect("answered").expect("accepted");
        Probe { id, link }
    }

    /// What a reader does with one chat message: take a permit, hand the frame over.
    fn say(hub: &mut Hub, from: &Probe, text: &str) {
        from.link
            .credit()
            .try_acquire()
            .expect("the reader has credit")
            .forget();
        let text = serde_json::json!({"type": "message", "text": text}).to_string();
        hub.handle(ToHub::Frame {
            client: from.id,
            text,
        });
    }

    /// What a writer does after writing everything it was given.
    fn writer_flushed(hub: &mut Hub, probe: &mut Probe) {
        let (frames, bytes) = hub.engine.queued(probe.id).expect("connected");
        probe.texts();
        hub.handle(ToHub::Flushed {
            client: probe.id,
            tally: Tally { frames, bytes },
        });
    }

    fn small_queues() -> Config {
        Config {
            queue_frames_max: 8,
            queue_high_water_frames: 4,
            rate_limit_per_second: 0,
            ping_interval: Duration::from_secs(3600),
            idle_timeout: Duration::from_secs(3600),
            ..Config::default()
        }
    }

    /// Ann and Bob after Ann said m1 to m4 and neither wrote anything out: both are behind and
    /// their room is paused.
    fn paused_pair() -> (Hub, Probe, Probe) {
        let mut hub = hub(small_queues());
        let mut ann = connect(&mut hub, "ann");
        let mut bob = connect(&mut hub, "bob");
        writer_flushed(&mut hub, &mut ann);
        writer_flushed(&mut hub, &mut bob);
        for n in 1..=4 {
            say(&mut hub, &ann, &format!("m{n}"));
        }
        (hub, ann, bob)
    }

    #[test]
    fn frames_read_before_a_pause_are_held_back_and_delivered_in_order_after_resume() {
        let (mut hub, mut ann, mut bob) = paused_pair();
        assert_eq!(ann.control(), ReadControl::Pause);
        assert_eq!(bob.control(), ReadControl::Pause);
        // Its reader had already read two more before it saw the pause.
        say(&mut hub, &ann, "m5");
        say(&mut hub, &ann, "m6");
        assert_eq!(
            bob.frames_queued(&hub),
            4,
            "nothing more reached the paused room"
        );
        assert_eq!(
            ann.credit(),
            LinkLimits::default().read_ahead_frames - 2,
            "held frames keep their credit: a paused reader runs out and stops"
        );
        assert_eq!(bob.texts(), ["m1", "m2", "m3", "m4"]);
        writer_flushed(&mut hub, &mut ann);
        hub.handle(ToHub::Flushed {
            client: bob.id,
            tally: Tally {
                frames: 4,
                bytes: hub.engine.queued(bob.id).expect("connected").1,
            },
        });
        assert_eq!(ann.control(), ReadControl::Run);
        assert_eq!(bob.texts(), ["m5", "m6"], "replayed in order once resumed");
        assert_eq!(ann.credit(), LinkLimits::default().read_ahead_frames);
        // And what it says next comes after them.
        say(&mut hub, &ann, "m7");
        assert_eq!(bob.texts(), ["m7"]);
    }

    #[test]
    fn a_paused_client_that_disconnects_still_has_its_held_frames_delivered() {
        let (mut hub, ann, mut bob) = paused_pair();
        say(&mut hub, &ann, "last words");
        assert_eq!(bob.texts(), ["m1", "m2", "m3", "m4"]);
        hub.handle(ToHub::Disconnect { client: ann.id });
        assert_eq!(
            bob.texts(),
            ["last words"],
            "read before it left, so delivered"
        );
    }

    #[test]
    fn a_reader_behind_on_its_own_queue_is_paused_alone() {
        let mut hub = hub(small_queues());
        let mut ann = connect(&mut hub, "ann");
        let mut bob = connect(&mut hub, "bob");
        let mut cid = connect(&mut hub, "cid");
        for probe in [&mut ann, &mut bob, &mut cid] {
            writer_flushed(&mut hub, probe);
        }
        for n in 1..=4 {
            say(&mut hub, &ann, &format!("m{n}"));
            writer_flushed(&mut hub, &mut ann);
            writer_flushed(&mut hub, &mut bob);
        }
        assert_eq!(cid.control(), ReadControl::Pause);
        assert_eq!(ann.control(), ReadControl::Run, "the room goes on");
        say(&mut hub, &ann, "m5");
        assert_eq!(bob.texts(), ["m5"]);
        writer_flushed(&mut hub, &mut cid);
        assert_eq!(cid.control(), ReadControl::Run);
    }

    #[test]
    fn a_turn_ends_by_writing_into_parked_writers_sockets_and_counting_it_flushed() {
        let mut hub = hub(small_queues());
        let (ann, mut ann_peer) = connect_wired(&mut hub, "ann");
        let (bob, mut bob_peer) = connect_wired(&mut hub, "bob");
        hub.flush();
        assert!(received(&mut bob_peer).contains(r#""type":"welcome""#));
        received(&mut ann_peer);
        say(&mut hub, &ann, "hello");
        assert_eq!(bob.frames_queued(&hub), 1, "queued during the turn");
        assert_eq!(received(&mut bob_peer), "", "written at its end");
        hub.flush();
        assert!(received(&mut bob_peer).contains(r#""text":"hello""#));
        assert_eq!(bob.frames_queued(&hub), 0, "written whole, so flushed");
        assert_eq!(ann.frames_queued(&hub), 0);
    }

    /// One turn writes into every member's socket: past Tokio's per-task budget (128) those
    /// writes would come back as if the sockets were full, and with no writer task running here
    /// nothing would arrive.
    #[tokio::test]
    async fn the_running_hub_writes_a_broadcast_into_hundreds_of_sockets_in_one_turn() {
        const MEMBERS: usize = 200;
        let config = Config {
            rate_limit_per_second: 0,
            ..Config::default()
        };
        let engine = Engine::new(config, "test").expect("valid config");
        let metrics = Arc::new(Metrics::new());
        let (hub, _stats) = Hub::new(engine, Clock::new(WallClock::System), metrics, 32);
        let (handle, inbox) = Hub::channel(4096);
        let stop = CancellationToken::new();
        let running = tokio::spawn(hub.run(inbox, stop.clone()));
        let mut peers = Vec::new();
        let mut first = None;
        for n in 0..MEMBERS {
            let (ours, peer) = tokio::io::duplex(1 << 16);
            let join = JoinRequest {
                nick: Some(format!("m{n}")),
                ..JoinRequest::default()
            };
            let link = Arc::new(Link::new(
                crate::sink::Sink::new(ours),
                LinkLimits::default(),
            ));
            let id = handle
                .connect(join, None, link)
                .await
                .expect("running")
                .expect("accepted");
            first.get_or_insert(id);
            peers.push(peer);
        }
        let text = serde_json::json!({"type": "message", "text": "to everyone"}).to_string();
        handle
            .send(ToHub::Frame {
                client: first.expect("connected"),
                text,
            })
            .await;
        let mut missing: Vec<usize> = (0..MEMBERS).collect();
        let mut seen = vec![String::new(); MEMBERS];
        for _ in 0..100 {
            tokio::task::yield_now().await;
            missing.retain(|&n| {
                seen[n].push_str(&received(&mut peers[n]));
                !seen[n].contains("to everyone")
            });
            if missing.is_empty() {
                break;
            }
        }
        assert!(missing.is_empty(), "{} members got nothing", missing.len());
        stop.cancel();
        running.await.expect("no panic");
    }

    /// With helper threads writing a share of every wide fan-out, every member still gets every
    /// message, and what the helpers wrote is counted as flushed: 300 messages are more than a
    /// queue holds (256), so members whose writes the engine never heard of would be evicted.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn helpers_write_a_share_of_wide_fan_outs_and_report_it_flushed() {
        const MEMBERS: usize = 64;
        const MESSAGES: usize = 300;
        let config = Config {
            rate_limit_per_second: 0,
            ..Config::default()
        };
        let engine = Engine::new(config, "test").expect("valid config");
        let metrics = Arc::new(Metrics::new());
        let (mut hub, _stats) = Hub::new(engine, Clock::new(WallClock::System), metrics, 32);
        let (handle, inbox) = Hub::channel(4096);
        hub.spread_writes(2);
        let stop = CancellationToken::new();
        let running = tokio::spawn(hub.run(inbox, stop.clone()));
        let mut readers = Vec::new();
        let mut first = None;
        for n in 0..MEMBERS {
            let (ours, mut peer) = tokio::io::duplex(1 << 20);
            let join = JoinRequest {
                nick: Some(format!("m{n}")),
                ..JoinRequest::default()
            };
            let link = Arc::new(Link::new(
                crate::sink::Sink::new(ours),
                LinkLimits::default(),
            ));
            let id = handle
                .connect(join, None, link)
                .await
                .expect("running")
                .expect("accepted");
            first.get_or_insert(id);
            readers.push(tokio::spawn(async move {
                let mut all = Vec::new();
                let mut buf = [0u8; 8192];
                let last = format!("\"text\":\"m{}\"", MESSAGES - 1);
                while !String::from_utf8_lossy(&all).contains(&last) {
                    match peer.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => all.extend_from_slice(&buf[..n]),
                    }
                }
                String::from_utf8_lossy(&all)
                    .matches("\"type\":\"message\"")
                    .count()
            }));
        }
        for n in 0..MESSAGES {
            let text = serde_json::json!({"type": "message", "text": format!("m{n}")});
            let frame = ToHub::Frame {
                client: first.expect("connected"),
                text: text.to_string(),
            };
            handle.send(frame).await;
        }
        for reader in readers {
            let got = tokio::time::timeout(Duration::from_secs(20), reader)
                .await
                .expect("every member got the last message")
                .expect("no panic");
            assert_eq!(got, MESSAGES, "a member missed messages (evicted?)");
        }
        stop.cancel();
        running.await.expect("no panic");
    }

    /// Held messages are released a commit at a time: at most a healthy member's spare queue
    /// waits, so a release never overflows it; without holding, only `uncommitted_max` counts.
    #[test]
    fn what_waits_for_the_store_fits_a_healthy_members_queue() {
        let held = Config {
            hold_until_committed: true,
            ..Config::default()
        };
        assert_eq!(super::awaiting_max(&held), 256 - 128);
        let small = Config {
            uncommitted_max: 10,
            ..held.clone()
        };
        assert_eq!(super::awaiting_max(&small), 10);
        let relaxed = Config {
            hold_until_committed: false,
            ..Config::default()
        };
        assert_eq!(super::awaiting_max(&relaxed), relaxed.uncommitted_max);
    }

    /// The end of a turn with a wide fan-out: the hub writes its own share, hands the rest to a
    /// helper, and counts what the helper wrote before the turn ends; a narrow fan-out the hub
    /// writes itself.
    #[test]
    fn a_wide_fan_out_is_split_between_the_hub_and_its_helpers() {
        const MEMBERS: usize = 64;
        let mut hub = hub(Config {
            rate_limit_per_second: 0,
            ..Config::default()
        });
        hub.spread_writes(1);
        let mut wired: Vec<(Probe, DuplexStream)> = (0..MEMBERS)
            .map(|n| connect_wired(&mut hub, &format!("m{n}")))
            .collect();
        // Sixty-four welcomes (and the join notices) wait for the end of the turn.
        hub.flush();
        assert_eq!(hub.fanout.shared(), 1, "the helper was offered a share");
        for (probe, peer) in &mut wired {
            assert!(
                received(peer).contains("welcome"),
                "{} got its welcome",
                probe.id
            );
            assert_eq!(
                probe.frames_queued(&hub),
                0,
                "{}'s write is counted",
                probe.id
            );
        }
        // One error reply is a fan-out of one: the hub writes it itself.
        let (probe, peer) = &mut wired[0];
        probe.link.credit().try_acquire().expect("credit").forget();
        hub.handle(ToHub::Frame {
            client: probe.id,
            text: "{oops".to_owned(),
        });
        hub.flush();
        assert!(received(peer).contains("invalid_json"));
        assert_eq!(hub.fanout.shared(), 1, "the helper had nothing to do");
    }

    /// One large turn grows the write buffer; it is not kept beyond `SCRATCH_KEPT`, while a
    /// small one's buffer is kept for the next turn.
    #[test]
    fn the_write_buffer_is_kept_only_while_small() {
        let mut hub = hub(Config {
            rate_limit_per_second: 0,
            ..Config::default()
        });
        let (ann, _ann_peer) = connect_wired(&mut hub, "ann");
        hub.flush();
        assert!(hub.scratch.capacity() > 0, "a small turn's buffer is kept");
        assert!(hub.scratch.capacity() <= SCRATCH_KEPT);
        let big = "x".repeat(4000);
        for _ in 0..20 {
            say(&mut hub, &ann, &big);
        }
        hub.flush();
        assert_eq!(hub.scratch.capacity(), 0, "a large turn's buffer is let go");
    }
}
