//! Everything the engine asks the shell to do, drained with `Engine::poll_output`.

use bytes::Bytes;

use crate::ClientId;

/// One instruction for the shell. Carry them out in order, per client.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub enum Output {
    /// Write `frame` as one text frame. Report it back with `Input::Flushed` once written.
    Send { to: ClientId, frame: Bytes },
    /// Write a ping frame (heartbeat). Not counted in the queue.
    Ping { to: ClientId },
    /// Close the connection with `reason` after what is already queued. The engine has already
    /// forgotten the client: later inputs about it get `Error::UnknownClient`.
    Close {
        client: ClientId,
        reason: CloseReason,
    },
    /// Stop reading from this client until `Resume`: it is behind on its own queue, or most of its
    /// room is (flow control).
    Pause { to: ClientId },
    /// Read from this client again.
    Resume { to: ClientId },
}

/// Why the engine closed a connection; each has a WebSocket close code and a reason text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// Its outbound queue went over `queue_frames_max` or `queue_bytes_max`.
    SlowConsumer,
    /// Silent for longer than `idle_timeout`.
    IdleTimeout,
    /// Kept sending over the rate limit for `rate_limit_strikes_max` frames in a row.
    Flooding,
    /// An operator kicked it.
    Kicked,
}

impl CloseReason {
    /// The WebSocket close code sent to the client.
    pub fn code(self) -> u16 {
        match self {
            CloseReason::SlowConsumer => 4001,
            CloseReason::IdleTimeout => 4000,
            CloseReason::Flooding => 1008,
            CloseReason::Kicked => 4003,
        }
    }

    /// The close frame's reason text (well under the 123-byte limit).
    pub fn text(self) -> &'static str {
        match self {
            CloseReason::SlowConsumer => "evicted: too slow (outbound queue full)",
            CloseReason::IdleTimeout => "idle timeout",
            CloseReason::Flooding => "rate limit exceeded",
            CloseReason::Kicked => "kicked by an operator",
        }
    }

    /// The `reason` of the `leave` the room sees.
    pub fn leave_reason(self) -> &'static str {
        match self {
            CloseReason::SlowConsumer => "evicted",
            CloseReason::IdleTimeout => "timeout",
            CloseReason::Flooding => "flooding",
            CloseReason::Kicked => "kicked",
        }
    }
}
