//! Everything the shell tells the engine, besides `connect` and `kick` (which return a value).

use crate::ClientId;

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
    /// Nothing happened but time passed: fires due timers. Calling it early is harmless.
    Tick,
}
