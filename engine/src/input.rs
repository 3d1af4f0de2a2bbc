//! Everything the shell tells the engine, besides `connect` and `kick` (which return a value).

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
    /// Nothing happened but time passed: fires due timers. Calling it early is harmless.
    Tick,
}
