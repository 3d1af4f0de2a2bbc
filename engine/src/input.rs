//! Everything the shell tells the engine, besides `connect` and `kick` (which return a value).

use bytes::Bytes;

use crate::{ClientId, OpId};

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
    /// Nothing happened but time passed: fires due timers. Calling it early is harmless.
    Tick,
}
