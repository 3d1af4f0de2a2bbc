//! The simulations' cluster broker: a small in-memory broker host ([`add_broker`]) speaking
//! newline-delimited JSON over turmoil's TCP, and [`SimBackend`], the node's
//! [`chat_server::broker::Backend`] over it. turmoil cannot run Redis, so this broker keeps the
//! semantics of the Redis scripts (`server/src/broker/redis/scripts.rs`) instead: per room an
//! epoch, a counter and a retention-trimmed history; idempotent publish batches; nickname claims
//! with a ttl by the broker's clock; seat hashes, counters and alive keys per node; and pub/sub
//! of deliveries and relays to every subscribed connection.
//!
//! Its state lives in the host's future, so a `crash` or `bounce` of the broker host loses it
//! all (a restart is an empty broker: every room gets a new epoch), and its connections die with
//! it: calls then fail as unavailable and subscriptions report `Lost`, as with a Redis restart.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use chat_server::broker::redis::{
    BrokerError, Claim, Event, NodeSeats, Numbered, Ordered, Published, Range, RoomState,
};
use chat_server::broker::Backend;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The broker's host name.
pub const BROKER: &str = "broker";
/// The port it listens on.
pub const BROKER_PORT: u16 = 6379;
/// The bound on every call, connecting included (as `BrokerOptions::call_timeout`).
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// How often a subscription pings: a partitioned link stalls silently, so silence is checked.
const PING_EVERY: Duration = Duration::from_millis(500);
/// Silence after which a subscription counts as lost.
const SILENCE_MAX: Duration = Duration::from_secs(2);
const BACKOFF: Duration = Duration::from_millis(100);

/// How the broker keeps history (as `BrokerOptions`).
#[derive(Clone, Copy, Debug)]
pub struct BrokerSpec {
    /// Messages kept per room.
    pub retention: usize,
    /// How long a publish's idempotency key lives.
    pub op_ttl: Duration,
}

impl Default for BrokerSpec {
    fn default() -> Self {
        Self {
            retention: 1000,
            op_ttl: Duration::from_secs(60),
        }
    }
}

// The wire: one JSON value per line each way. Bodies travel as strings: every body the server
// orders or relays is JSON text (a chat frame split around its seq, or a relay).

#[derive(Debug, Serialize, Deserialize)]
enum Request {
    Publish {
        room: String,
        fresh_epoch: String,
        /// (head, tail, idem) per message.
        batch: Vec<(String, String, String)>,
    },
    State {
        room: String,
        fresh_epoch: String,
    },
    Range {
        room: String,
        after: u64,
        limit: usize,
    },
    PageBefore {
        room: String,
        before: u64,
        limit: usize,
    },
    Rooms,
    NodeNumber,
    Relay {
        payload: String,
    },
    Announce {
        node: String,
        ttl_ms: u64,
        full: bool,
        json: String,
        changes: Vec<(String, String)>,
    },
    SeatsOf {
        node: String,
    },
    SeatNodes,
    Forget {
        node: String,
    },
    NickOwner {
        room: String,
        nick: String,
    },
    Claim {
        room: String,
        nick: String,
        owner: String,
        ttl_ms: u64,
    },
    Renew {
        room: String,
        claims: Vec<(String, String)>,
        ttl_ms: u64,
    },
    Release {
        room: String,
        nick: String,
        owner: String,
    },
    Subscribe,
    Ping,
}

#[derive(Debug, Serialize, Deserialize)]
struct Call {
    id: u64,
    request: Request,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
enum Reply {
    /// (epoch, seq, fresh) per message.
    Published(Vec<(String, u64, bool)>),
    State(String, u64),
    /// `None`: the room has no epoch.
    Range(Option<RangeReply>),
    Page(Vec<(u64, String)>),
    Rooms(Vec<(String, String, u64)>),
    Number(u64),
    Done,
    Seats(bool, u64, Vec<(String, String)>),
    Nodes(Vec<String>),
    Owner(Option<String>),
    Claimed(bool),
    Renewed(Vec<bool>),
    Subscribed,
    Pong,
    Refused(String),
}

/// A range's epoch, seq, completeness and messages.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct RangeReply {
    epoch: String,
    seq: u64,
    complete: bool,
    messages: Vec<(u64, String)>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
enum Down {
    Reply {
        id: u64,
        reply: Reply,
    },
    Delivery {
        room: String,
        epoch: String,
        seq: u64,
        body: String,
    },
    Relayed {
        payload: String,
    },
}

/// One room: the meta hash (epoch, seq) and the stream (trimmed to the retention).
#[derive(Debug)]
struct Room {
    epoch: String,
    seq: u64,
    log: VecDeque<(u64, String)>,
}

/// One node's seat keys: the hash and the counter (each expiring), and the alive key.
#[derive(Debug, Default)]
struct NodeKeys {
    seats: BTreeMap<String, String>,
    seats_until: Option<Instant>,
    n: u64,
    n_until: Option<Instant>,
    alive_until: Option<Instant>,
}

impl NodeKeys {
    /// Drops what expired, as Redis would have by `now`.
    fn expire(&mut self, now: Instant) {
        if self.seats_until.is_some_and(|t| t <= now) {
            self.seats.clear();
            self.seats_until = None;
        }
        if self.n_until.is_some_and(|t| t <= now) {
            self.n = 0;
            self.n_until = None;
        }
        if self.alive_until.is_some_and(|t| t <= now) {
            self.alive_until = None;
        }
    }
}

/// Everything the broker knows; gone when its host crashes.
#[derive(Debug)]
struct State {
    spec: BrokerSpec,
    rooms: BTreeMap<String, Room>,
    /// (room, idem) -> (seq, epoch, expiry).
    ops: HashMap<(String, String), (u64, String, Instant)>,
    /// (room, nick key) -> (owner, expiry).
    nicks: BTreeMap<(String, String), (String, Instant)>,
    nodes: u64,
    seat_keys: BTreeMap<String, NodeKeys>,
    seat_nodes: BTreeSet<String>,
    /// Subscribed connections, by connection number (in order, so a run repeats exactly).
    subscribers: BTreeMap<u64, mpsc::UnboundedSender<Down>>,
}

impl State {
    fn new(spec: BrokerSpec) -> Self {
        Self {
            spec,
            rooms: BTreeMap::new(),
            ops: HashMap::new(),
            nicks: BTreeMap::new(),
            nodes: 0,
            seat_keys: BTreeMap::new(),
            seat_nodes: BTreeSet::new(),
            subscribers: BTreeMap::new(),
        }
    }

    fn push(&self, down: &Down) {
        for subscriber in self.subscribers.values() {
            let _ = subscriber.send(down.clone());
        }
    }

    /// The room, created with `fresh_epoch` at seq 0 if it has no epoch (as the scripts do).
    fn room(&mut self, room: &str, fresh_epoch: &str) -> &mut Room {
        self.rooms.entry(room.to_owned()).or_insert_with(|| Room {
            epoch: fresh_epoch.to_owned(),
            seq: 0,
            log: VecDeque::new(),
        })
    }

    fn owner(&mut self, room: &str, nick: &str, now: Instant) -> Option<String> {
        let key = (room.to_owned(), nick.to_owned());
        match self.nicks.get(&key) {
            Some((_, until)) if *until <= now => {
                self.nicks.remove(&key);
                None
            }
            Some((owner, _)) => Some(owner.clone()),
            None => None,
        }
    }

    /// CLAIM_NICK: free or already the owner's, it is the owner's for `ttl` afresh.
    fn claim(&mut self, room: &str, nick: &str, owner: &str, ttl: Duration, now: Instant) -> bool {
        match self.owner(room, nick, now) {
            Some(held) if held != owner => false,
            _ => {
                let key = (room.to_owned(), nick.to_owned());
                self.nicks.insert(key, (owner.to_owned(), now + ttl));
                true
            }
        }
    }

    fn carry_out(
        &mut self,
        request: Request,
        subscribe: &mpsc::UnboundedSender<Down>,
        conn: u64,
    ) -> Reply {
        let now = Instant::now();
        self.ops.retain(|_, (_, _, until)| *until > now);
        match request {
            Request::Publish {
                room,
                fresh_epoch,
                batch,
            } => {
                let (retention, op_ttl) = (self.spec.retention, self.spec.op_ttl);
                let mut out = Vec::with_capacity(batch.len());
                for (head, tail, idem) in batch {
                    let op = (room.clone(), idem);
                    if let Some((seq, epoch, _)) = self.ops.get(&op) {
                        out.push((epoch.clone(), *seq, false));
                        continue;
                    }
                    let r = self.room(&room, &fresh_epoch);
                    r.seq += 1;
                    let (seq, epoch) = (r.seq, r.epoch.clone());
                    let body = format!("{head}{seq}{tail}");
                    r.log.push_back((seq, body.clone()));
                    while r.log.len() > retention {
                        r.log.pop_front();
                    }
                    self.ops.insert(op, (seq, epoch.clone(), now + op_ttl));
                    self.push(&Down::Delivery {
                        room: room.clone(),
                        epoch: epoch.clone(),
                        seq,
                        body,
                    });
                    out.push((epoch, seq, true));
                }
                Reply::Published(out)
            }
            Request::State { room, fresh_epoch } => {
                let r = self.room(&room, &fresh_epoch);
                Reply::State(r.epoch.clone(), r.seq)
            }
            Request::Range { room, after, limit } => Reply::Range(self.rooms.get(&room).map(|r| {
                let oldest = r.log.front().map(|(seq, _)| *seq);
                let complete = after >= r.seq || oldest.is_some_and(|o| o <= after + 1);
                let messages = (r.log.iter())
                    .filter(|(seq, _)| *seq > after)
                    .take(limit)
                    .cloned()
                    .collect();
                RangeReply {
                    epoch: r.epoch.clone(),
                    seq: r.seq,
                    complete,
                    messages,
                }
            })),
            Request::PageBefore {
                room,
                before,
                limit,
            } => {
                let mut page: Vec<(u64, String)> = (self.rooms.get(&room).into_iter())
                    .flat_map(|r| r.log.iter().rev())
                    .filter(|(seq, _)| *seq < before)
                    .take(limit)
                    .cloned()
                    .collect();
                page.reverse();
                Reply::Page(page)
            }
            Request::Rooms => Reply::Rooms(
                (self.rooms.iter())
                    .map(|(name, r)| (name.clone(), r.epoch.clone(), r.seq))
                    .collect(),
            ),
            Request::NodeNumber => {
                self.nodes += 1;
                Reply::Number(self.nodes)
            }
            Request::Relay { payload } => {
                self.push(&Down::Relayed { payload });
                Reply::Done
            }
            Request::Announce {
                node,
                ttl_ms,
                full,
                json,
                changes,
            } => {
                let ttl = Duration::from_millis(ttl_ms);
                let keys = self.seat_keys.entry(node.clone()).or_default();
                keys.expire(now);
                if full {
                    keys.seats.clear();
                }
                for (field, value) in changes {
                    if value.is_empty() {
                        keys.seats.remove(&field);
                    } else {
                        keys.seats.insert(field, value);
                    }
                }
                keys.n += 1;
                let n = keys.n;
                keys.alive_until = Some(now + ttl);
                // PEXPIRE on a hash that is empty (so absent in Redis) sets nothing.
                keys.seats_until = (!keys.seats.is_empty()).then_some(now + ttl * 4);
                keys.n_until = Some(now + ttl * 4);
                self.seat_nodes.insert(node);
                self.push(&Down::Relayed {
                    payload: format!("{json}{n}}}"),
                });
                Reply::Number(n)
            }
            Request::SeatsOf { node } => {
                let keys = self.seat_keys.entry(node).or_default();
                keys.expire(now);
                let seats = keys.seats.iter().map(|(k, v)| (k.clone(), v.clone()));
                Reply::Seats(keys.alive_until.is_some(), keys.n, seats.collect())
            }
            Request::SeatNodes => Reply::Nodes(self.seat_nodes.iter().cloned().collect()),
            Request::Forget { node } => {
                self.seat_nodes.remove(&node);
                Reply::Done
            }
            Request::NickOwner { room, nick } => Reply::Owner(self.owner(&room, &nick, now)),
            Request::Claim {
                room,
                nick,
                owner,
                ttl_ms,
            } => {
                Reply::Claimed(self.claim(&room, &nick, &owner, Duration::from_millis(ttl_ms), now))
            }
            Request::Renew {
                room,
                claims,
                ttl_ms,
            } => {
                let ttl = Duration::from_millis(ttl_ms);
                Reply::Renewed(
                    (claims.iter())
                        .map(|(nick, owner)| self.claim(&room, nick, owner, ttl, now))
                        .collect(),
                )
            }
            Request::Release { room, nick, owner } => {
                if self.owner(&room, &nick, now).as_deref() == Some(owner.as_str()) {
                    self.nicks.remove(&(room, nick));
                }
                Reply::Done
            }
            Request::Subscribe => {
                self.subscribers.insert(conn, subscribe.clone());
                Reply::Subscribed
            }
            Request::Ping => Reply::Pong,
        }
    }
}

/// Adds the broker host. Every start (the first, or after a `crash`/`bounce`) is an empty
/// broker.
pub fn add_broker(sim: &mut turmoil::Sim<'_>, spec: BrokerSpec) {
    sim.host(BROKER, move || async move {
        let listener = turmoil::net::TcpListener::bind(("0.0.0.0", BROKER_PORT)).await?;
        let state = Arc::new(Mutex::new(State::new(spec)));
        let mut conns = 0_u64;
        loop {
            let (stream, _) = listener.accept().await?;
            conns += 1;
            tokio::spawn(serve(stream, state.clone(), conns));
        }
    });
}

/// Serves one connection: its calls in order, and what it subscribed to.
async fn serve(stream: turmoil::net::TcpStream, state: Arc<Mutex<State>>, conn: u64) {
    let (read, mut write) = tokio::io::split(stream);
    let (out, mut out_rx) = mpsc::unbounded_channel::<Down>();
    let writer = tokio::spawn(async move {
        while let Some(down) = out_rx.recv().await {
            let mut line = serde_json::to_vec(&down).expect("a frame serializes");
            line.push(b'\n');
            if write.write_all(&line).await.is_err() {
                return;
            }
        }
    });
    let mut lines = BufReader::new(read).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let Ok(call) = serde_json::from_str::<Call>(&line) else {
            break;
        };
        // Replied under the lock: a subscriber's `Subscribed` comes before any delivery.
        let mut state = state.lock().expect("no panic while the state is locked");
        let reply = state.carry_out(call.request, &out, conn);
        if out.send(Down::Reply { id: call.id, reply }).is_err() {
            break;
        }
    }
    let mut state = state.lock().expect("no panic while the state is locked");
    state.subscribers.remove(&conn);
    drop(state);
    writer.abort();
}

/// One connection of a node to the broker, shared by its calls.
struct Link {
    out: mpsc::UnboundedSender<Vec<u8>>,
    pending: Arc<Mutex<BTreeMap<u64, oneshot::Sender<Reply>>>>,
    tasks: [JoinHandle<()>; 2],
}

impl Link {
    fn closed(&self) -> bool {
        self.out.is_closed() || self.tasks.iter().any(JoinHandle::is_finished)
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// A node's broker client: calls over one connection, made again after it fails or stalls.
#[derive(Clone)]
pub struct SimBackend {
    inner: Arc<Inner>,
}

struct Inner {
    host: String,
    link: tokio::sync::Mutex<Option<Arc<Link>>>,
    next_id: AtomicU64,
}

impl SimBackend {
    /// A client of the broker at [`BROKER`]; it connects on its first call.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                host: BROKER.to_owned(),
                link: tokio::sync::Mutex::new(None),
                next_id: AtomicU64::new(1),
            }),
        }
    }

    async fn link(&self) -> Result<Arc<Link>, BrokerError> {
        let mut held = self.inner.link.lock().await;
        if let Some(link) = held.as_ref().filter(|l| !l.closed()) {
            return Ok(link.clone());
        }
        *held = None;
        let stream = turmoil::net::TcpStream::connect((self.inner.host.as_str(), BROKER_PORT))
            .await
            .map_err(|e| BrokerError::unavailable(format!("connect: {e}")))?;
        let (read, mut write) = tokio::io::split(stream);
        let pending: Arc<Mutex<BTreeMap<u64, oneshot::Sender<Reply>>>> = Arc::default();
        let (out, mut out_rx) = mpsc::unbounded_channel::<Vec<u8>>();
        let writer = tokio::spawn(async move {
            while let Some(line) = out_rx.recv().await {
                if write.write_all(&line).await.is_err() {
                    return;
                }
            }
        });
        let waiting = pending.clone();
        let reader = tokio::spawn(async move {
            let mut lines = BufReader::new(read).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(Down::Reply { id, reply }) = serde_json::from_str::<Down>(&line) {
                    let caller = waiting.lock().expect("never poisoned").remove(&id);
                    if let Some(caller) = caller {
                        let _ = caller.send(reply);
                    }
                }
            }
            // The connection is gone: every call waiting on it fails now, not at its timeout.
            waiting.lock().expect("never poisoned").clear();
        });
        let link = Arc::new(Link {
            out,
            pending,
            tasks: [writer, reader],
        });
        *held = Some(link.clone());
        Ok(link)
    }

    /// One call, bounded by [`CALL_TIMEOUT`]. A call that times out drops the connection: a
    /// partition stalls it silently, and the next call must not queue behind it.
    async fn call(&self, request: Request) -> Result<Reply, BrokerError> {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let attempt = async {
            let link = self.link().await?;
            let (tx, rx) = oneshot::channel();
            link.pending.lock().expect("never poisoned").insert(id, tx);
            let mut line = serde_json::to_vec(&Call { id, request }).expect("a call serializes");
            line.push(b'\n');
            if link.out.send(line).is_err() {
                return Err(BrokerError::unavailable("the connection dropped"));
            }
            match rx.await {
                Ok(Reply::Refused(why)) => Err(BrokerError::malformed(why)),
                Ok(reply) => Ok(reply),
                Err(_) => Err(BrokerError::unavailable("the connection dropped")),
            }
        };
        match tokio::time::timeout(CALL_TIMEOUT, attempt).await {
            Ok(result) => result,
            Err(_) => {
                *self.inner.link.lock().await = None;
                Err(BrokerError::Timeout(CALL_TIMEOUT))
            }
        }
    }
}

impl Default for SimBackend {
    fn default() -> Self {
        Self::new()
    }
}

fn text(bytes: &[u8]) -> Result<String, BrokerError> {
    String::from_utf8(bytes.to_vec())
        .map_err(|_| BrokerError::InvalidArgument("the sim broker carries UTF-8 bodies only"))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn unexpected(reply: Reply) -> BrokerError {
    BrokerError::malformed(format!("unexpected reply {reply:?}"))
}

impl Backend for SimBackend {
    async fn publish_batch(
        &self,
        room: &str,
        batch: &[Numbered<'_>],
        fresh_epoch: &str,
    ) -> Result<Vec<Published>, BrokerError> {
        let batch = (batch.iter())
            .map(|m| Ok((text(m.head)?, text(m.tail)?, m.idem.to_owned())))
            .collect::<Result<_, BrokerError>>()?;
        let request = Request::Publish {
            room: room.to_owned(),
            fresh_epoch: fresh_epoch.to_owned(),
            batch,
        };
        match self.call(request).await? {
            Reply::Published(out) => Ok(out
                .into_iter()
                .map(|(epoch, seq, fresh)| Published { epoch, seq, fresh })
                .collect()),
            other => Err(unexpected(other)),
        }
    }

    async fn state(&self, room: &str, fresh_epoch: &str) -> Result<RoomState, BrokerError> {
        let request = Request::State {
            room: room.to_owned(),
            fresh_epoch: fresh_epoch.to_owned(),
        };
        match self.call(request).await? {
            Reply::State(epoch, seq) => Ok(RoomState {
                room: room.to_owned(),
                epoch,
                seq,
            }),
            other => Err(unexpected(other)),
        }
    }

    async fn range(
        &self,
        room: &str,
        after: u64,
        limit: usize,
    ) -> Result<Option<Range>, BrokerError> {
        let request = Request::Range {
            room: room.to_owned(),
            after,
            limit,
        };
        match self.call(request).await? {
            Reply::Range(range) => Ok(range.map(|r| Range {
                epoch: r.epoch,
                seq: r.seq,
                messages: (r.messages.into_iter())
                    .map(|(seq, body)| (seq, Bytes::from(body)))
                    .collect(),
                complete: r.complete,
            })),
            other => Err(unexpected(other)),
        }
    }

    async fn page_before(
        &self,
        room: &str,
        before: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Bytes)>, BrokerError> {
        if before <= 1 || limit == 0 {
            return Ok(Vec::new());
        }
        let request = Request::PageBefore {
            room: room.to_owned(),
            before,
            limit,
        };
        match self.call(request).await? {
            Reply::Page(page) => Ok((page.into_iter())
                .map(|(seq, body)| (seq, Bytes::from(body)))
                .collect()),
            other => Err(unexpected(other)),
        }
    }

    async fn rooms(&self) -> Result<Vec<RoomState>, BrokerError> {
        match self.call(Request::Rooms).await? {
            Reply::Rooms(rooms) => Ok((rooms.into_iter())
                .map(|(room, epoch, seq)| RoomState { room, epoch, seq })
                .collect()),
            other => Err(unexpected(other)),
        }
    }

    async fn node_number(&self) -> Result<u64, BrokerError> {
        match self.call(Request::NodeNumber).await? {
            Reply::Number(n) => Ok(n),
            other => Err(unexpected(other)),
        }
    }

    async fn relay(&self, payload: &[u8]) -> Result<(), BrokerError> {
        let payload = text(payload)?;
        match self.call(Request::Relay { payload }).await? {
            Reply::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    async fn announce_seats(
        &self,
        node: &str,
        ttl: Duration,
        full: bool,
        json: &str,
        changes: &[(String, String)],
    ) -> Result<u64, BrokerError> {
        if millis(ttl) == 0 {
            return Err(BrokerError::InvalidArgument("a ttl is at least 1 ms"));
        }
        let request = Request::Announce {
            node: node.to_owned(),
            ttl_ms: millis(ttl),
            full,
            json: json.to_owned(),
            changes: changes.to_vec(),
        };
        match self.call(request).await? {
            Reply::Number(n) => Ok(n),
            other => Err(unexpected(other)),
        }
    }

    async fn seats_of(&self, node: &str) -> Result<NodeSeats, BrokerError> {
        let request = Request::SeatsOf {
            node: node.to_owned(),
        };
        match self.call(request).await? {
            Reply::Seats(alive, n, seats) => Ok(NodeSeats { alive, n, seats }),
            other => Err(unexpected(other)),
        }
    }

    async fn seat_nodes(&self) -> Result<Vec<String>, BrokerError> {
        match self.call(Request::SeatNodes).await? {
            Reply::Nodes(nodes) => Ok(nodes),
            other => Err(unexpected(other)),
        }
    }

    async fn forget_seat_node(&self, node: &str) -> Result<(), BrokerError> {
        let request = Request::Forget {
            node: node.to_owned(),
        };
        match self.call(request).await? {
            Reply::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    async fn nick_owner(&self, room: &str, nick_key: &str) -> Result<Option<String>, BrokerError> {
        let request = Request::NickOwner {
            room: room.to_owned(),
            nick: nick_key.to_owned(),
        };
        match self.call(request).await? {
            Reply::Owner(owner) => Ok(owner),
            other => Err(unexpected(other)),
        }
    }

    async fn claim_nick(
        &self,
        room: &str,
        nick_key: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<Claim, BrokerError> {
        if millis(ttl) == 0 || owner.is_empty() {
            return Err(BrokerError::InvalidArgument("a ttl and an owner"));
        }
        let request = Request::Claim {
            room: room.to_owned(),
            nick: nick_key.to_owned(),
            owner: owner.to_owned(),
            ttl_ms: millis(ttl),
        };
        match self.call(request).await? {
            Reply::Claimed(true) => Ok(Claim::Won),
            Reply::Claimed(false) => Ok(Claim::Taken),
            other => Err(unexpected(other)),
        }
    }

    async fn renew_nicks(
        &self,
        room: &str,
        claims: &[(&str, &str)],
        ttl: Duration,
    ) -> Result<Vec<bool>, BrokerError> {
        if claims.is_empty() {
            return Ok(Vec::new());
        }
        let request = Request::Renew {
            room: room.to_owned(),
            claims: (claims.iter())
                .map(|(nick, owner)| ((*nick).to_owned(), (*owner).to_owned()))
                .collect(),
            ttl_ms: millis(ttl).max(1),
        };
        match self.call(request).await? {
            Reply::Renewed(kept) if kept.len() == claims.len() => Ok(kept),
            other => Err(unexpected(other)),
        }
    }

    async fn release_nick(
        &self,
        room: &str,
        nick_key: &str,
        owner: &str,
    ) -> Result<(), BrokerError> {
        let request = Request::Release {
            room: room.to_owned(),
            nick: nick_key.to_owned(),
            owner: owner.to_owned(),
        };
        match self.call(request).await? {
            Reply::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    fn subscribe(
        &self,
        capacity: usize,
    ) -> Result<(mpsc::Receiver<Event>, JoinHandle<()>), BrokerError> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let host = self.inner.host.clone();
        Ok((rx, tokio::spawn(subscription(host, tx))))
    }
}

/// How one subscribed connection ended.
enum Held {
    ReceiverGone,
    NeverSubscribed,
    /// It dropped, stalled, or the consumer fell behind.
    Lost,
}

/// The subscription task: subscribe, forward, and around every gap `Lost` then `Subscribed`
/// (as the Redis one does).
async fn subscription(host: String, tx: mpsc::Sender<Event>) {
    loop {
        match hold(&host, &tx).await {
            Held::ReceiverGone => return,
            Held::NeverSubscribed => {}
            Held::Lost => {
                if tx.send(Event::Lost).await.is_err() {
                    return;
                }
            }
        }
        tokio::select! {
            biased;
            () = tx.closed() => return,
            () = tokio::time::sleep(BACKOFF) => {}
        }
    }
}

async fn hold(host: &str, tx: &mpsc::Sender<Event>) -> Held {
    let connect = turmoil::net::TcpStream::connect((host, BROKER_PORT));
    let Ok(Ok(stream)) = tokio::time::timeout(CALL_TIMEOUT, connect).await else {
        return Held::NeverSubscribed;
    };
    let (read, mut write) = tokio::io::split(stream);
    let mut lines = BufReader::new(read).lines();
    let line = |request| {
        let mut line = serde_json::to_vec(&Call { id: 0, request }).expect("a call serializes");
        line.push(b'\n');
        line
    };
    if write.write_all(&line(Request::Subscribe)).await.is_err() {
        return Held::NeverSubscribed;
    }
    let first = tokio::time::timeout(CALL_TIMEOUT, lines.next_line()).await;
    let Ok(Ok(Some(first))) = first else {
        return Held::NeverSubscribed;
    };
    let Ok(Down::Reply {
        reply: Reply::Subscribed,
        ..
    }) = serde_json::from_str(&first)
    else {
        return Held::NeverSubscribed;
    };
    if tx.send(Event::Subscribed).await.is_err() {
        return Held::ReceiverGone;
    }
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut heard = Instant::now();
    loop {
        tokio::select! {
            biased;
            () = tx.closed() => return Held::ReceiverGone,
            next = lines.next_line() => {
                let Ok(Some(text)) = next else { return Held::Lost };
                heard = Instant::now();
                let event = match serde_json::from_str::<Down>(&text) {
                    Ok(Down::Delivery { room, epoch, seq, body }) => {
                        Event::Delivery(Ordered { room, epoch, seq, body: Bytes::from(body) })
                    }
                    Ok(Down::Relayed { payload }) => Event::Relayed(Bytes::from(payload)),
                    Ok(Down::Reply { .. }) => continue,
                    Err(_) => return Held::Lost,
                };
                match tx.try_send(event) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => return Held::Lost,
                    Err(mpsc::error::TrySendError::Closed(_)) => return Held::ReceiverGone,
                }
            }
            _ = ping.tick() => {
                if heard.elapsed() > SILENCE_MAX {
                    return Held::Lost;
                }
                if write.write_all(&line(Request::Ping)).await.is_err() {
                    return Held::Lost;
                }
            }
        }
    }
}
