//! Errors returned to the shell: caller mistakes and refusals. Hostile peer input never shows up
//! here; it becomes an `error` frame or a close for that peer.

use crate::{ClientId, OpId};

/// Why the engine refused a call from the shell.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The id was never handed out, or that client is already gone (closed or disconnected).
    #[error("unknown client {0}")]
    UnknownClient(ClientId),
    /// `connect` while `clients_max` clients are connected.
    #[error("server full: {max} clients connected")]
    ServerFull {
        /// `clients_max`.
        max: usize,
    },
    /// The shell reported more flushed than the engine had queued for that client.
    #[error("client {client} flushed {frames} frames / {bytes} bytes but only {queued_frames} / {queued_bytes} were queued")]
    FlushExceedsQueue {
        /// The client the report was about.
        client: ClientId,
        /// Frames reported written.
        frames: usize,
        /// Payload bytes reported written.
        bytes: usize,
        /// Frames the engine had queued for it.
        queued_frames: usize,
        /// Payload bytes the engine had queued for it.
        queued_bytes: usize,
    },
    /// `kick` named nobody in that room.
    #[error("no user {nick:?} in room {room:?}")]
    NoSuchUser {
        /// The room named.
        room: String,
        /// The nickname named.
        nick: String,
    },
    /// The configuration's limits contradict each other.
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    /// `Input::Committed` named an op that is not the oldest one still held: commits come in the
    /// order the stores were emitted. Nothing was changed.
    #[error("commit of {got} out of order: the oldest held op is {expected:?}")]
    CommitOutOfOrder {
        /// The oldest op still waiting for its commit (`None`: none is).
        expected: Option<OpId>,
        /// The op the commit named.
        got: OpId,
    },
    /// A cluster-mode input (`Published`, `PublishFailed`, `Ordered`, `Refilled`,
    /// `BrokerResumed`) to an engine without `Config::ordered_by_broker`. Nothing was changed.
    #[error("a broker's input, but this engine is not in cluster mode")]
    NotClustered,
    /// `Engine::restore` was given rooms it cannot start from (the reason says which and why).
    #[error("invalid restore: {0}")]
    InvalidRestore(String),
}
