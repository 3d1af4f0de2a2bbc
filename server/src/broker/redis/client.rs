//! [`RedisBroker`]: the calls a node makes to the shared Redis. Each call is one command or one
//! script (see [`super::scripts`]), bounded by [`BrokerOptions::call_timeout`], so a Redis that is
//! down or stuck turns into a [`BrokerError`] instead of a hang.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{Client, RedisResult, Value};
use bytes::Bytes;

use super::envelope::{parse_seq, valid_epoch};
use super::error::BrokerError;
use super::keys::{self, valid_room, DELIVERIES};
use super::scripts;

/// The longest idempotency key accepted (it becomes part of a key name).
const IDEM_BYTES_MAX: usize = 200;
/// How many keys one SCAN step asks for when listing rooms.
const SCAN_COUNT: usize = 256;

/// How the broker keeps history and how long it waits for Redis.
#[derive(Debug, Clone)]
pub struct BrokerOptions {
    /// Messages kept per room in its stream (exact `MAXLEN`), at least 1.
    pub retention: usize,
    /// How long a publish's idempotency key lives: a retry after that writes a second message.
    pub op_ttl: Duration,
    /// The bound on every call, connecting included.
    pub call_timeout: Duration,
}

impl Default for BrokerOptions {
    fn default() -> Self {
        Self {
            retention: 1000,
            op_ttl: Duration::from_secs(60),
            call_timeout: Duration::from_secs(2),
        }
    }
}

/// A message as ordered by the broker, delivered to every node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ordered {
    pub room: String,
    pub epoch: String,
    pub seq: u64,
    pub body: Bytes,
}

/// The result of a publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub epoch: String,
    pub seq: u64,
    /// True when this call wrote (and published) the message; false when an earlier call with the
    /// same idem key already had, and this one returned that call's epoch and seq.
    pub fresh: bool,
}

/// One message of a [`RedisBroker::publish_batch`]: kept and delivered as `head`, its seq in
/// decimal, then `tail`; `idem` makes a retry of it write nothing twice.
#[derive(Debug, Clone, Copy)]
pub struct Numbered<'a> {
    pub head: &'a [u8],
    pub tail: &'a [u8],
    pub idem: &'a str,
}

/// A room's epoch and last seq.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomState {
    pub room: String,
    pub epoch: String,
    pub seq: u64,
}

/// A node's seats as Redis keeps them (`RedisBroker::seats_of`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSeats {
    /// Its alive key is there: it announced within its ttl.
    pub alive: bool,
    /// The number of its last announcement (0: none kept).
    pub n: u64,
    /// Each client's number and its `[room, nick]` JSON.
    pub seats: Vec<(String, String)>,
}

/// Messages after `after`, oldest first, read together with the room's epoch and seq.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    pub epoch: String,
    /// The room's seq now.
    pub seq: u64,
    pub messages: Vec<(u64, Bytes)>,
    /// Nothing between `after` and the first message was trimmed away (when `after` is at or past
    /// the room's seq there is nothing to miss, so this is true).
    pub complete: bool,
}

/// The outcome of a nickname claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The caller holds the nickname now (it was free, or the caller's already).
    Won,
    /// Another owner holds it.
    Taken,
}

/// The client of the shared Redis. Cheap to clone (one multiplexed connection underneath, which
/// [`ConnectionManager`] re-establishes by itself after a drop).
#[derive(Clone)]
pub struct RedisBroker {
    conn: ConnectionManager,
    options: BrokerOptions,
    /// Where it connected: the subscription opens its own connection there.
    url: String,
}

impl std::fmt::Debug for RedisBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBroker")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// Opens a client for `url`, mapping a parse failure to [`BrokerError::BadUrl`].
pub(crate) fn open(url: &str) -> Result<Client, BrokerError> {
    Client::open(url).map_err(|e| BrokerError::BadUrl {
        url: url.to_owned(),
        reason: e.to_string(),
    })
}

/// Runs `fut` under `limit`.
pub(crate) async fn bounded<T>(
    limit: Duration,
    fut: impl Future<Output = RedisResult<T>>,
) -> Result<T, BrokerError> {
    match tokio::time::timeout(limit, fut).await {
        Ok(result) => result.map_err(BrokerError::from),
        Err(_) => Err(BrokerError::Timeout(limit)),
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn check_room(room: &str) -> Result<(), BrokerError> {
    if valid_room(room) {
        Ok(())
    } else {
        Err(BrokerError::InvalidRoom(room.to_owned()))
    }
}

fn check_epoch(epoch: &str) -> Result<(), BrokerError> {
    if valid_epoch(epoch) {
        Ok(())
    } else {
        Err(BrokerError::InvalidArgument(
            "an epoch is 1 to 64 visible ASCII bytes",
        ))
    }
}

fn check_ttl(ttl: Duration) -> Result<(), BrokerError> {
    if millis(ttl) == 0 {
        Err(BrokerError::InvalidArgument("a ttl is at least 1 ms"))
    } else {
        Ok(())
    }
}

impl RedisBroker {
    /// Connects to `url` (`redis://HOST:PORT[/DB]`) and checks that Redis answers.
    pub async fn connect(url: &str, options: BrokerOptions) -> Result<Self, BrokerError> {
        if options.retention == 0 {
            return Err(BrokerError::InvalidArgument("retention is at least 1"));
        }
        check_ttl(options.op_ttl)?;
        if options.call_timeout.is_zero() {
            return Err(BrokerError::InvalidArgument("call_timeout is above zero"));
        }
        let client = open(url)?;
        // The manager's own timeouts make a dead connection fail fast inside; `bounded` is the
        // outer bound that also covers its reconnect backoff. A failed reconnect is retried on the
        // next call, so a few attempts per call are enough.
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(options.call_timeout))
            .set_connection_timeout(Some(options.call_timeout))
            .set_number_of_retries(2)
            .set_max_delay(options.call_timeout / 4);
        let conn = bounded(
            options.call_timeout,
            client.get_connection_manager_with_config(config),
        )
        .await?;
        let broker = Self {
            conn,
            options,
            url: url.to_owned(),
        };
        broker.ping().await?;
        Ok(broker)
    }

    /// The URL this broker connected to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The options this broker was built with.
    pub fn options(&self) -> &BrokerOptions {
        &self.options
    }

    /// A handle on the connection, for tests that send raw commands.
    #[cfg(test)]
    pub(crate) fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }

    async fn run(&self, invocation: &::redis::ScriptInvocation<'_>) -> Result<Value, BrokerError> {
        let mut conn = self.conn.clone();
        bounded(
            self.options.call_timeout,
            invocation.invoke_async::<Value>(&mut conn),
        )
        .await
    }

    async fn command(&self, cmd: &::redis::Cmd) -> Result<Value, BrokerError> {
        let mut conn = self.conn.clone();
        bounded(
            self.options.call_timeout,
            cmd.query_async::<Value>(&mut conn),
        )
        .await
    }

    /// Orders `body` in `room`: the next seq, appended to the room's stream and published on
    /// [`DELIVERIES`]. A retry with the same `idem` (within `op_ttl`) returns the first call's
    /// epoch and seq and writes nothing. `fresh_epoch` becomes the room's epoch if it has none.
    pub async fn publish(
        &self,
        room: &str,
        body: &[u8],
        idem: &str,
        fresh_epoch: &str,
    ) -> Result<Published, BrokerError> {
        let batch = [Numbered {
            head: body,
            tail: &[],
            idem,
        }];
        let mut published = self.order(room, &batch, false, fresh_epoch).await?;
        Ok(published.remove(0))
    }

    /// As [`publish`](Self::publish), for a message numbered by the broker: what is kept and
    /// delivered is `head`, the seq in decimal, then `tail` (a chat frame whose seq the broker
    /// decides, `chat_engine::Unnumbered`).
    pub async fn publish_numbered(
        &self,
        room: &str,
        head: &[u8],
        tail: &[u8],
        idem: &str,
        fresh_epoch: &str,
    ) -> Result<Published, BrokerError> {
        let batch = [Numbered { head, tail, idem }];
        let mut published = self.order(room, &batch, true, fresh_epoch).await?;
        Ok(published.remove(0))
    }

    /// As [`publish_numbered`](Self::publish_numbered) for several messages of one room in one
    /// atomic step: they take consecutive seqs in `batch`'s order (those an earlier call with the
    /// same idem key wrote keep theirs), one result each, in order.
    pub async fn publish_batch(
        &self,
        room: &str,
        batch: &[Numbered<'_>],
        fresh_epoch: &str,
    ) -> Result<Vec<Published>, BrokerError> {
        self.order(room, batch, true, fresh_epoch).await
    }

    async fn order(
        &self,
        room: &str,
        batch: &[Numbered<'_>],
        numbered: bool,
        fresh_epoch: &str,
    ) -> Result<Vec<Published>, BrokerError> {
        check_room(room)?;
        check_epoch(fresh_epoch)?;
        if batch.is_empty() {
            return Err(BrokerError::InvalidArgument(
                "a batch holds a message at least",
            ));
        }
        if (batch.iter()).any(|m| m.idem.is_empty() || m.idem.len() > IDEM_BYTES_MAX) {
            return Err(BrokerError::InvalidArgument(
                "an idem key is 1 to 200 bytes",
            ));
        }
        let mut invocation = scripts::PUBLISH.prepare_invoke();
        invocation.key(keys::meta(room)).key(keys::log(room));
        for message in batch {
            invocation.key(keys::op(room, message.idem));
        }
        invocation
            .arg(fresh_epoch)
            .arg(self.options.retention)
            .arg(millis(self.options.op_ttl))
            .arg(DELIVERIES)
            .arg(room)
            .arg(if numbered { "1" } else { "0" });
        for message in batch {
            invocation.arg(message.head).arg(message.tail);
        }
        let items = array(self.run(&invocation).await?, "publish")?;
        if items.len() != 3 * batch.len() {
            return Err(BrokerError::malformed(format!(
                "publish: {} items for {} messages",
                items.len(),
                batch.len()
            )));
        }
        let mut items = items.into_iter();
        let mut published = Vec::with_capacity(batch.len());
        while let (Some(epoch), Some(seq), Some(fresh)) = (items.next(), items.next(), items.next())
        {
            published.push(Published {
                epoch: text(epoch, "publish epoch")?,
                seq: seq_of(seq, "publish seq")?,
                fresh: int(fresh, "publish fresh")? == 1,
            });
        }
        Ok(published)
    }

    /// The room's epoch and seq, creating the epoch (at seq 0) from `fresh_epoch` if it has none.
    pub async fn state(&self, room: &str, fresh_epoch: &str) -> Result<RoomState, BrokerError> {
        check_room(room)?;
        check_epoch(fresh_epoch)?;
        let mut invocation = scripts::STATE.prepare_invoke();
        invocation
            .key(keys::meta(room))
            .key(keys::log(room))
            .arg(fresh_epoch);
        let [epoch, seq] = fixed::<2>(self.run(&invocation).await?, "state")?;
        Ok(RoomState {
            room: room.to_owned(),
            epoch: text(epoch, "state epoch")?,
            seq: seq_of(seq, "state seq")?,
        })
    }

    /// Up to `limit` messages with seq > `after`, oldest first, with the room's epoch and seq read
    /// in the same script. `None` when the room has no epoch in Redis (never used, or Redis lost
    /// it): [`Self::state`] creates one.
    pub async fn range(
        &self,
        room: &str,
        after: u64,
        limit: usize,
    ) -> Result<Option<Range>, BrokerError> {
        check_room(room)?;
        let mut invocation = scripts::RANGE.prepare_invoke();
        invocation
            .key(keys::meta(room))
            .key(keys::log(room))
            .arg(after)
            .arg(limit);
        let reply = self.run(&invocation).await?;
        if reply == Value::Nil {
            return Ok(None);
        }
        let mut items = array(reply, "range")?.into_iter();
        let (Some(epoch), Some(seq), Some(oldest)) = (items.next(), items.next(), items.next())
        else {
            return Err(BrokerError::malformed("range: short reply"));
        };
        let epoch = text(epoch, "range epoch")?;
        let seq = seq_of(seq, "range seq")?;
        let oldest = bulk(oldest, "range oldest")?;
        let oldest = if oldest.is_empty() {
            None
        } else {
            Some(parse_seq(&oldest).ok_or_else(|| BrokerError::malformed("range: oldest seq"))?)
        };
        let mut messages = Vec::with_capacity(items.len() / 2);
        while let Some(id) = items.next() {
            let body = items
                .next()
                .ok_or_else(|| BrokerError::malformed("range: odd entries"))?;
            messages.push((entry_id(id)?, Bytes::from(bulk(body, "range body")?)));
        }
        let complete = after >= seq || oldest.is_some_and(|o| o <= after.saturating_add(1));
        Ok(Some(Range {
            epoch,
            seq,
            messages,
            complete,
        }))
    }

    /// The newest `limit` messages with seq < `before`, oldest first (scrollback).
    pub async fn page_before(
        &self,
        room: &str,
        before: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Bytes)>, BrokerError> {
        check_room(room)?;
        if before <= 1 || limit == 0 {
            return Ok(Vec::new());
        }
        let mut cmd = ::redis::cmd("XREVRANGE");
        cmd.arg(keys::log(room))
            .arg(format!("({before}-0"))
            .arg("-")
            .arg("COUNT")
            .arg(limit);
        let mut page = Vec::new();
        for entry in array(self.command(&cmd).await?, "xrevrange")? {
            page.push(stream_entry(entry)?);
        }
        page.reverse();
        Ok(page)
    }

    /// Every room that has an epoch in Redis, sorted by name (for a node starting).
    pub async fn rooms(&self) -> Result<Vec<RoomState>, BrokerError> {
        let mut found = BTreeMap::new();
        let mut cursor = String::from("0");
        loop {
            let mut scan = ::redis::cmd("SCAN");
            scan.arg(&cursor)
                .arg("MATCH")
                .arg(keys::META_PATTERN)
                .arg("COUNT")
                .arg(SCAN_COUNT);
            let [next, batch] = fixed::<2>(self.command(&scan).await?, "scan")?;
            cursor = text(next, "scan cursor")?;
            // SCAN may return a key twice, and a key it returns may be gone by now: both are
            // fine, the map keeps one entry and a vanished room is skipped.
            let mut pipe = ::redis::pipe();
            let mut rooms = Vec::new();
            for key in array(batch, "scan keys")? {
                let key = text(key, "scan key")?;
                match keys::room_of_meta(&key) {
                    Some(room) => {
                        pipe.cmd("HMGET").arg(&key).arg("epoch").arg("seq");
                        rooms.push(room.to_owned());
                    }
                    None => tracing::warn!(key, "skipping a meta key with an invalid room name"),
                }
            }
            if !rooms.is_empty() {
                let mut conn = self.conn.clone();
                let replies: Vec<Value> =
                    bounded(self.options.call_timeout, pipe.query_async(&mut conn)).await?;
                for (room, reply) in rooms.into_iter().zip(replies) {
                    let [epoch, seq] = fixed::<2>(reply, "hmget")?;
                    if epoch == Value::Nil {
                        continue;
                    }
                    let seq = if seq == Value::Nil {
                        0
                    } else {
                        seq_of(seq, "meta seq")?
                    };
                    let epoch = text(epoch, "meta epoch")?;
                    found.insert(room.clone(), RoomState { room, epoch, seq });
                }
            }
            if cursor == "0" {
                return Ok(found.into_values().collect());
            }
        }
    }

    /// Checks that Redis answers.
    pub async fn ping(&self) -> Result<(), BrokerError> {
        match self.command(&::redis::cmd("PING")).await? {
            Value::SimpleString(s) if s == "PONG" => Ok(()),
            other => Err(BrokerError::malformed(format!("ping: {other:?}"))),
        }
    }

    /// A number no other node that joined this Redis got before: the count of nodes that did.
    pub async fn node_number(&self) -> Result<u64, BrokerError> {
        let n = int(
            self.command(::redis::cmd("INCR").arg(keys::NODES)).await?,
            "node number",
        )?;
        u64::try_from(n).map_err(|_| BrokerError::malformed(format!("node number: {n}")))
    }

    /// Publishes `payload` on [`RELAY`](keys::RELAY), to every node subscribed now.
    pub async fn relay(&self, payload: &[u8]) -> Result<(), BrokerError> {
        int(
            self.command(::redis::cmd("PUBLISH").arg(keys::RELAY).arg(payload))
                .await?,
            "relay",
        )?;
        Ok(())
    }

    /// Announces this node's seat changes: `changes` pairs a client's number with its
    /// `[room, nick]` JSON, or an empty value for a client that left (`full`: these are all its
    /// seats, replacing what Redis kept). `json` is the relay's announcement up to its number,
    /// which Redis appends (and then `}`). Keeps the node alive for `ttl`. Returns the number.
    pub async fn announce_seats(
        &self,
        node: &str,
        ttl: Duration,
        full: bool,
        json: &str,
        changes: &[(String, String)],
    ) -> Result<u64, BrokerError> {
        check_ttl(ttl)?;
        let mut invocation = scripts::SEATS_ANNOUNCE.prepare_invoke();
        invocation
            .key(keys::seats(node))
            .key(keys::seats_counter(node))
            .key(keys::alive(node))
            .key(keys::SEAT_NODES)
            .arg(node)
            .arg(millis(ttl))
            .arg(if full { "1" } else { "0" })
            .arg(keys::RELAY)
            .arg(json);
        for (field, value) in changes {
            invocation.arg(field).arg(value);
        }
        seq_of(self.run(&invocation).await?, "announce")
    }

    /// Node `node`'s seats as Redis keeps them: whether it is alive, its last announcement's
    /// number, and each client's number with its `[room, nick]` JSON.
    pub async fn seats_of(&self, node: &str) -> Result<NodeSeats, BrokerError> {
        let mut invocation = scripts::SEATS_SNAPSHOT.prepare_invoke();
        invocation
            .key(keys::seats(node))
            .key(keys::seats_counter(node))
            .key(keys::alive(node));
        let [alive, n, pairs] = fixed::<3>(self.run(&invocation).await?, "seats")?;
        let mut items = array(pairs, "seats pairs")?.into_iter();
        let mut seats = Vec::new();
        while let Some(field) = items.next() {
            let value = (items.next()).ok_or_else(|| BrokerError::malformed("seats: odd"))?;
            seats.push((text(field, "seat client")?, text(value, "seat")?));
        }
        Ok(NodeSeats {
            alive: int(alive, "alive")? == 1,
            n: seq_of(n, "seats n")?,
            seats,
        })
    }

    /// The nodes that announced seats; those found dead are taken out of the set meanwhile.
    pub async fn seat_nodes(&self) -> Result<Vec<String>, BrokerError> {
        let mut cmd = ::redis::cmd("SMEMBERS");
        cmd.arg(keys::SEAT_NODES);
        let mut nodes = Vec::new();
        for node in array(self.command(&cmd).await?, "seat nodes")? {
            nodes.push(text(node, "seat node")?);
        }
        Ok(nodes)
    }

    /// Forgets a dead node: out of the set of nodes with seats.
    pub async fn forget_seat_node(&self, node: &str) -> Result<(), BrokerError> {
        let mut cmd = ::redis::cmd("SREM");
        cmd.arg(keys::SEAT_NODES).arg(node);
        int(self.command(&cmd).await?, "forget node")?;
        Ok(())
    }

    /// Who holds `nick_key` in `room` (the owner a claim named), if anyone.
    pub async fn nick_owner(
        &self,
        room: &str,
        nick_key: &str,
    ) -> Result<Option<String>, BrokerError> {
        check_room(room)?;
        match self
            .command(::redis::cmd("GET").arg(keys::nick(room, nick_key)))
            .await?
        {
            Value::Nil => Ok(None),
            Value::BulkString(owner) => String::from_utf8(owner)
                .map(Some)
                .map_err(|_| BrokerError::malformed("a nickname's owner is not UTF-8")),
            other => Err(BrokerError::malformed(format!("nick owner: {other:?}"))),
        }
    }

    /// Claims `nick_key` in `room` for `owner` until `ttl` passes. The same owner claiming again
    /// refreshes the expiry; another owner gets [`Claim::Taken`] until it is released or expires.
    pub async fn claim_nick(
        &self,
        room: &str,
        nick_key: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<Claim, BrokerError> {
        check_room(room)?;
        check_ttl(ttl)?;
        if owner.is_empty() {
            return Err(BrokerError::InvalidArgument("an owner is not empty"));
        }
        let mut invocation = scripts::CLAIM_NICK.prepare_invoke();
        invocation
            .key(keys::nick(room, nick_key))
            .arg(owner)
            .arg(millis(ttl));
        match int(self.run(&invocation).await?, "claim")? {
            1 => Ok(Claim::Won),
            0 => Ok(Claim::Taken),
            n => Err(BrokerError::malformed(format!("claim: {n}"))),
        }
    }

    /// Renews the claims of `room` this node holds, `(nick_key, owner)` each, in one call: each
    /// gets `ttl` afresh, in order, `true` for one still (or again) its owner's, `false` for one
    /// another owner took meanwhile (it expired while its owner could not renew it).
    pub async fn renew_nicks(
        &self,
        room: &str,
        claims: &[(&str, &str)],
        ttl: Duration,
    ) -> Result<Vec<bool>, BrokerError> {
        check_room(room)?;
        check_ttl(ttl)?;
        if claims.is_empty() {
            return Ok(Vec::new());
        }
        let mut invocation = scripts::RENEW_NICKS.prepare_invoke();
        invocation.arg(millis(ttl));
        for (nick_key, owner) in claims {
            invocation.key(keys::nick(room, nick_key)).arg(*owner);
        }
        let kept = array(self.run(&invocation).await?, "renew")?;
        if kept.len() != claims.len() {
            return Err(BrokerError::malformed(format!(
                "renew: {} answers for {} claims",
                kept.len(),
                claims.len()
            )));
        }
        kept.into_iter()
            .map(|v| Ok(int(v, "renew")? == 1))
            .collect()
    }

    /// Releases `nick_key` in `room` if `owner` still holds it; otherwise does nothing.
    pub async fn release_nick(
        &self,
        room: &str,
        nick_key: &str,
        owner: &str,
    ) -> Result<(), BrokerError> {
        check_room(room)?;
        let mut invocation = scripts::RELEASE_NICK.prepare_invoke();
        invocation.key(keys::nick(room, nick_key)).arg(owner);
        int(self.run(&invocation).await?, "release")?;
        Ok(())
    }
}

// Reply parsing: strict, so a reply of the wrong shape is a `Malformed` error, never a panic.

fn array(v: Value, what: &str) -> Result<Vec<Value>, BrokerError> {
    match v {
        Value::Array(items) => Ok(items),
        other => Err(BrokerError::malformed(format!(
            "{what}: expected an array, got {other:?}"
        ))),
    }
}

fn fixed<const N: usize>(v: Value, what: &str) -> Result<[Value; N], BrokerError> {
    let items = array(v, what)?;
    let len = items.len();
    items
        .try_into()
        .map_err(|_| BrokerError::malformed(format!("{what}: expected {N} items, got {len}")))
}

fn bulk(v: Value, what: &str) -> Result<Vec<u8>, BrokerError> {
    match v {
        Value::BulkString(b) => Ok(b),
        Value::SimpleString(s) => Ok(s.into_bytes()),
        other => Err(BrokerError::malformed(format!(
            "{what}: expected a string, got {other:?}"
        ))),
    }
}

fn text(v: Value, what: &str) -> Result<String, BrokerError> {
    String::from_utf8(bulk(v, what)?)
        .map_err(|_| BrokerError::malformed(format!("{what}: not UTF-8")))
}

fn int(v: Value, what: &str) -> Result<i64, BrokerError> {
    match v {
        Value::Int(n) => Ok(n),
        other => Err(BrokerError::malformed(format!(
            "{what}: expected an integer, got {other:?}"
        ))),
    }
}

fn seq_of(v: Value, what: &str) -> Result<u64, BrokerError> {
    match v {
        Value::Int(n) => {
            u64::try_from(n).map_err(|_| BrokerError::malformed(format!("{what}: {n}")))
        }
        other => {
            let b = bulk(other, what)?;
            parse_seq(&b).ok_or_else(|| BrokerError::malformed(format!("{what}: {b:?}")))
        }
    }
}

/// A stream entry id of ours, `<seq>-0`.
fn entry_id(v: Value) -> Result<u64, BrokerError> {
    let id = bulk(v, "entry id")?;
    id.strip_suffix(b"-0").and_then(parse_seq).ok_or_else(|| {
        BrokerError::malformed(format!("entry id {:?}", String::from_utf8_lossy(&id)))
    })
}

/// One XRANGE/XREVRANGE entry: `[id, [field, value, ...]]` with our one field `p`.
fn stream_entry(v: Value) -> Result<(u64, Bytes), BrokerError> {
    let [id, fields] = fixed::<2>(v, "entry")?;
    let [field, body] = fixed::<2>(fields, "entry fields")?;
    if bulk(field, "entry field")? != b"p" {
        return Err(BrokerError::malformed("entry: field is not p"));
    }
    Ok((entry_id(id)?, Bytes::from(bulk(body, "entry body")?)))
}

/// The production backend: each method is the inherent one of the same name, unchanged.
impl crate::broker::Backend for RedisBroker {
    fn publish_batch(
        &self,
        room: &str,
        batch: &[Numbered<'_>],
        fresh_epoch: &str,
    ) -> impl Future<Output = Result<Vec<Published>, BrokerError>> + Send {
        RedisBroker::publish_batch(self, room, batch, fresh_epoch)
    }

    fn state(
        &self,
        room: &str,
        fresh_epoch: &str,
    ) -> impl Future<Output = Result<RoomState, BrokerError>> + Send {
        RedisBroker::state(self, room, fresh_epoch)
    }

    fn range(
        &self,
        room: &str,
        after: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Option<Range>, BrokerError>> + Send {
        RedisBroker::range(self, room, after, limit)
    }

    fn page_before(
        &self,
        room: &str,
        before: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<(u64, Bytes)>, BrokerError>> + Send {
        RedisBroker::page_before(self, room, before, limit)
    }

    fn rooms(&self) -> impl Future<Output = Result<Vec<RoomState>, BrokerError>> + Send {
        RedisBroker::rooms(self)
    }

    fn node_number(&self) -> impl Future<Output = Result<u64, BrokerError>> + Send {
        RedisBroker::node_number(self)
    }

    fn relay(&self, payload: &[u8]) -> impl Future<Output = Result<(), BrokerError>> + Send {
        RedisBroker::relay(self, payload)
    }

    fn announce_seats(
        &self,
        node: &str,
        ttl: Duration,
        full: bool,
        json: &str,
        changes: &[(String, String)],
    ) -> impl Future<Output = Result<u64, BrokerError>> + Send {
        RedisBroker::announce_seats(self, node, ttl, full, json, changes)
    }

    fn seats_of(&self, node: &str) -> impl Future<Output = Result<NodeSeats, BrokerError>> + Send {
        RedisBroker::seats_of(self, node)
    }

    fn seat_nodes(&self) -> impl Future<Output = Result<Vec<String>, BrokerError>> + Send {
        RedisBroker::seat_nodes(self)
    }

    fn forget_seat_node(&self, node: &str) -> impl Future<Output = Result<(), BrokerError>> + Send {
        RedisBroker::forget_seat_node(self, node)
    }

    fn nick_owner(
        &self,
        room: &str,
        nick_key: &str,
    ) -> impl Future<Output = Result<Option<String>, BrokerError>> + Send {
        RedisBroker::nick_owner(self, room, nick_key)
    }

    fn claim_nick(
        &self,
        room: &str,
        nick_key: &str,
        owner: &str,
        ttl: Duration,
    ) -> impl Future<Output = Result<Claim, BrokerError>> + Send {
        RedisBroker::claim_nick(self, room, nick_key, owner, ttl)
    }

    fn renew_nicks(
        &self,
        room: &str,
        claims: &[(&str, &str)],
        ttl: Duration,
    ) -> impl Future<Output = Result<Vec<bool>, BrokerError>> + Send {
        RedisBroker::renew_nicks(self, room, claims, ttl)
    }

    fn release_nick(
        &self,
        room: &str,
        nick_key: &str,
        owner: &str,
    ) -> impl Future<Output = Result<(), BrokerError>> + Send {
        RedisBroker::release_nick(self, room, nick_key, owner)
    }

    fn subscribe(
        &self,
        capacity: usize,
    ) -> Result<
        (
            tokio::sync::mpsc::Receiver<super::Event>,
            tokio::task::JoinHandle<()>,
        ),
        BrokerError,
    > {
        super::subscribe(&self.url, capacity)
    }
}
