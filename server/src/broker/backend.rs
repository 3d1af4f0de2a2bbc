//! [`Backend`]: the seam between the broker task and the shared broker it talks to. Production
//! has one implementation, [`RedisBroker`](super::redis::RedisBroker); the simulations give a
//! node an in-memory broker over simulated TCP through [`crate::run_with_backend`], so the same
//! broker task, lanes and seats code runs under turmoil's faults.
//!
//! Every method is one atomic step of the broker, with the semantics documented on
//! `RedisBroker`'s method of the same name (and, for scripts, in `redis/scripts.rs`): an
//! implementation must keep them, since the engine's guarantees across nodes rest on them.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::redis::{BrokerError, Claim, Event, NodeSeats, Numbered, Published, Range, RoomState};

/// What a node needs of the shared broker. Cheap to clone: every task of the node holds one.
///
/// The futures are `Send` because the node's tasks run on tokio's multi-threaded runtime.
pub trait Backend: Clone + Send + Sync + 'static {
    /// Orders `batch` in `room` in one atomic step: consecutive seqs in order, each message kept
    /// (trimmed to the retention) and delivered as `head`, its seq in decimal, then `tail`; a
    /// message whose `idem` an earlier call used returns that call's epoch and seq, writing
    /// nothing. `fresh_epoch` becomes the room's epoch (at seq 0, history dropped) if it has none.
    fn publish_batch(
        &self,
        room: &str,
        batch: &[Numbered<'_>],
        fresh_epoch: &str,
    ) -> impl Future<Output = Result<Vec<Published>, BrokerError>> + Send;

    /// The room's epoch and seq, creating `fresh_epoch` at seq 0 if it has none.
    fn state(
        &self,
        room: &str,
        fresh_epoch: &str,
    ) -> impl Future<Output = Result<RoomState, BrokerError>> + Send;

    /// Up to `limit` messages after `after` with the room's epoch and seq read at once; `None`
    /// when the room has no epoch.
    fn range(
        &self,
        room: &str,
        after: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Option<Range>, BrokerError>> + Send;

    /// The newest `limit` messages with seq < `before`, oldest first.
    fn page_before(
        &self,
        room: &str,
        before: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<(u64, Bytes)>, BrokerError>> + Send;

    /// Every room with an epoch, sorted by name.
    fn rooms(&self) -> impl Future<Output = Result<Vec<RoomState>, BrokerError>> + Send;

    /// A number no other node got before from this broker.
    fn node_number(&self) -> impl Future<Output = Result<u64, BrokerError>> + Send;

    /// Sends `payload` to every node subscribed now (best effort, like pub/sub).
    fn relay(&self, payload: &[u8]) -> impl Future<Output = Result<(), BrokerError>> + Send;

    /// Keeps `changes` in the node's seats (all of them when `full`), numbers the announcement,
    /// keeps the node alive for `ttl` (its seats for four), and relays `json` with the number
    /// and `}` appended. Returns the number.
    fn announce_seats(
        &self,
        node: &str,
        ttl: Duration,
        full: bool,
        json: &str,
        changes: &[(String, String)],
    ) -> impl Future<Output = Result<u64, BrokerError>> + Send;

    /// A node's seats, its last announcement's number and whether it is alive, read at once.
    fn seats_of(&self, node: &str) -> impl Future<Output = Result<NodeSeats, BrokerError>> + Send;

    /// The nodes that announced seats and were not forgotten.
    fn seat_nodes(&self) -> impl Future<Output = Result<Vec<String>, BrokerError>> + Send;

    /// Forgets a dead node (out of [`seat_nodes`](Self::seat_nodes)).
    fn forget_seat_node(&self, node: &str) -> impl Future<Output = Result<(), BrokerError>> + Send;

    /// Who holds `nick_key` in `room`, if anyone.
    fn nick_owner(
        &self,
        room: &str,
        nick_key: &str,
    ) -> impl Future<Output = Result<Option<String>, BrokerError>> + Send;

    /// Claims `nick_key` in `room` for `owner` for `ttl` (by the broker's clock); the owner's
    /// own claim is refreshed, another's is [`Claim::Taken`].
    fn claim_nick(
        &self,
        room: &str,
        nick_key: &str,
        owner: &str,
        ttl: Duration,
    ) -> impl Future<Output = Result<Claim, BrokerError>> + Send;

    /// Renews `(nick_key, owner)` claims of `room`: `true` for each still (or again) its
    /// owner's, `false` for one another owner took.
    fn renew_nicks(
        &self,
        room: &str,
        claims: &[(&str, &str)],
        ttl: Duration,
    ) -> impl Future<Output = Result<Vec<bool>, BrokerError>> + Send;

    /// Releases `nick_key` in `room` if `owner` still holds it.
    fn release_nick(
        &self,
        room: &str,
        nick_key: &str,
        owner: &str,
    ) -> impl Future<Output = Result<(), BrokerError>> + Send;

    /// Starts the node's subscription to deliveries and relays: a task reporting [`Event`]s on a
    /// channel of `capacity` ([`Event::Lost`] then [`Event::Subscribed`] around every gap it
    /// can see), ending when the receiver is dropped.
    fn subscribe(
        &self,
        capacity: usize,
    ) -> Result<(mpsc::Receiver<Event>, JoinHandle<()>), BrokerError>;
}
