//! Everything the shell tells the engine, besides `connect` and `kick` (which return a value).

use bytes::Bytes;

use crate::{ClaimOutcome, ClientId, LeaveReason, OpId, RemoteSeat};

/// One event from the outside world, handed to `Engine::handle` with the time it happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input<'a> {
    /// A complete text message from the client (already reassembled and UTF-8 checked).
    Frame {
        /// Who sent it.
        client: ClientId,
        /// Its text.
        text: &'a str,
    },
    /// A pong (or any other sign of life that carries no message).
    Pong {
        /// Who is alive.
        client: ClientId,
    },
    /// The shell wrote `frames` `Send` frames totalling `bytes` payload bytes to the client.
    Flushed {
        /// Whose frames were written.
        client: ClientId,
        /// How many `Send` frames, oldest first.
        frames: usize,
        /// Their payload bytes in all.
        bytes: usize,
    },
    /// The connection ended on its own (peer close, reset, write failure).
    Disconnect {
        /// Whose connection ended.
        client: ClientId,
    },
    /// The store made the message of `Output::Store { op, .. }` durable: it is now kept in the
    /// room's history and broadcast to the room's members (with `hold_until_committed`). Commits
    /// come in the order the stores were emitted; any other op is `Error::CommitOutOfOrder`.
    Committed {
        /// The op of the `Store` that was committed.
        op: OpId,
    },
    /// The store could not make the message of `Output::Store { op, .. }` durable, nor (one
    /// log) any held after it: every held message is dropped, its sender gets `unavailable`, and
    /// the rooms' next seqs are handed out again. The shell must make sure the store refuses
    /// every `Store` emitted before this input was handled (they are dropped here). A report for
    /// an op already dropped is ignored.
    StoreFailed {
        /// The first op that failed.
        op: OpId,
    },
    /// The page an `Output::Fetch` asked for: it goes to client `to` as a `history` frame.
    Fetched {
        /// Who asked (if it left meanwhile, nothing is sent).
        to: ClientId,
        /// The room, as in the `Fetch`.
        room: &'a str,
        /// Message frames exactly as stored, oldest first.
        messages: &'a [Bytes],
        /// Nothing older is stored.
        complete: bool,
    },
    /// The tail an `Output::LoadTail` asked for: room `room`'s newest stored messages as
    /// `(seq, frame)`, oldest first, consecutive and ending at the `LoadTail`'s seq (or empty).
    /// The room wakes with them and the joins that waited are carried out. One not asked for is
    /// ignored; one that is not the room's history wakes it without one.
    TailLoaded {
        /// The room, as in the `LoadTail`.
        room: &'a str,
        /// Message frames exactly as stored, with their seqs, oldest first.
        messages: &'a [(u64, Bytes)],
    },
    /// Cluster mode: the broker ordered the message of `Output::Publish { op, .. }` (its copy
    /// arrives as `Input::Ordered`, like everyone's). An op not pending is ignored.
    Published {
        /// The op of the `Publish`.
        op: OpId,
    },
    /// Cluster mode: the broker could not order the message of `Output::Publish { op, .. }`; its
    /// sender is told `unavailable`. An op not pending is ignored.
    PublishFailed {
        /// The op of the `Publish`.
        op: OpId,
    },
    /// Cluster mode: message `seq` of `room`, as the broker ordered it in `epoch`, from any node.
    /// Delivered in seq order; a duplicate is dropped and one past a gap waits for a refill.
    Ordered {
        /// The room's name.
        room: &'a str,
        /// The broker's epoch of the room.
        epoch: &'a str,
        /// Its seq in the room.
        seq: u64,
        /// The room's message frame for that seq (`Unnumbered::numbered`).
        frame: &'a Bytes,
    },
    /// Cluster mode: the answer to `Output::Refill`: what the broker keeps of the room after the
    /// seq the refill named, oldest first, as `(seq, frame)`.
    Refilled {
        /// The room, as in the `Refill`.
        room: &'a str,
        /// The broker's epoch of the room now.
        epoch: &'a str,
        /// Consecutive messages, oldest first (the newest the broker had, at most a page).
        messages: &'a [(u64, Bytes)],
        /// The first message follows the refill's `after` (or, none given, nothing followed
        /// it): the broker had trimmed nothing between. `false`: what was missing is gone.
        complete: bool,
    },
    /// Cluster mode: the deliveries resumed after a break (the broker's subscription was lost
    /// and made again), so every room asks for what it may have missed (`Output::Refill`).
    BrokerResumed,
    /// Cluster mode with `Config::nicks_claimed`: the broker's answer to
    /// `Output::ClaimNick { client, room, likeness }`. An answer to a claim the client no
    /// longer waits for (it asked for another name since, or left) is not used: a granted one
    /// is released.
    NickClaimed {
        /// Whom the claim was for.
        client: ClientId,
        /// The room, as in the `ClaimNick`.
        room: &'a str,
        /// The likeness, as in the `ClaimNick`.
        likeness: &'a str,
        /// The answer.
        outcome: ClaimOutcome,
    },
    /// Cluster mode: a frame another node relayed for `room`'s members (`Output::Relay`), to
    /// every member here. Only a `typing` notice naming `room` is taken, and only where the room
    /// relays typing (a small room); anything else is dropped.
    Relayed {
        /// The room's name.
        room: &'a str,
        /// The frame.
        frame: &'a Bytes,
    },
    /// Cluster mode with `Config::members_shared`: client `client` of node `node` sits in `room`
    /// as `nick` now (that node's `Output::Seated`): it joined, switched rooms or was renamed.
    /// Announced here like a member of this node. A seat whose room or nick this engine would
    /// refuse is ignored, and so is one whose name a member here holds.
    RemoteSeated {
        /// The other node's name (anything that tells nodes apart, never this node's).
        node: &'a str,
        /// The client's number on that node.
        client: u64,
        /// Its room.
        room: &'a str,
        /// Its nickname.
        nick: &'a str,
    },
    /// Cluster mode with `Config::members_shared`: client `client` of node `node` left its room
    /// for `reason` (that node's `Output::Unseated`). One not known here is ignored.
    RemoteUnseated {
        /// The other node's name.
        node: &'a str,
        /// The client's number on that node.
        client: u64,
        /// Why, as the room is told.
        reason: LeaveReason,
    },
    /// Cluster mode with `Config::members_shared`: everything node `node` seats now, replacing
    /// what this engine knew of it. Whoever of it is not among `seats` leaves with `missing`:
    /// empty with `LeaveReason::Timeout` when the node died.
    RemoteNode {
        /// The other node's name.
        node: &'a str,
        /// Its members, each once.
        seats: &'a [RemoteSeat],
        /// Why the members it no longer seats left.
        missing: LeaveReason,
    },
    /// Nothing happened but time passed: fires due timers. Calling it early is harmless.
    Tick,
}
