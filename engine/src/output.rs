//! Everything the engine asks the shell to do, drained with `Engine::poll_output`, and the
//! reasons it gives: why a connection is closed (with its WebSocket close code) and why a member
//! left a room (the `reason` of a `leave` frame).

use bytes::Bytes;

use crate::{ClientId, OpId, Unnumbered};

/// One instruction for the shell. Carry them out in order, per client.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub enum Output {
    /// Write `frame` as one text frame. Report it back with `Input::Flushed` once written.
    Send {
        /// The recipient.
        to: ClientId,
        /// The JSON text, serialized once and shared by every recipient.
        frame: Bytes,
    },
    /// Write a ping frame (heartbeat). Not counted in the queue.
    Ping {
        /// The client to ping.
        to: ClientId,
    },
    /// Close the connection with `reason` after what is already queued. The engine has already
    /// forgotten the client: later inputs about it get `Error::UnknownClient`.
    Close {
        /// The client to close.
        client: ClientId,
        /// Why; gives the close code and text.
        reason: CloseReason,
    },
    /// Stop reading from this client until `Resume`: it is behind on its own queue, or most of its
    /// room is (flow control).
    Pause {
        /// The client to stop reading from.
        to: ClientId,
    },
    /// Read from this client again.
    Resume {
        /// The client to read from again.
        to: ClientId,
    },
    /// Make this chat message durable (with `Config::hold_until_committed` or
    /// `Config::store_relaxed`). Held, report `Input::Committed { op }` once it is, or
    /// `Input::StoreFailed { op }` if it cannot be: until then no client gets its frame, its
    /// sender included (acknowledged means durable). Commit in the order the stores come.
    Store {
        /// Names this store in the `Committed` report.
        op: OpId,
        /// The room's name.
        room: String,
        /// The room's epoch: a restart restores the room with it (see `Engine::restore`).
        epoch: String,
        /// The message's `seq` in the room (consecutive per room and epoch).
        seq: u64,
        /// The frame exactly as it will be broadcast and kept in history.
        frame: Bytes,
    },
    /// Cluster mode: have the broker order this chat message: give it the room's next seq,
    /// keep `message.numbered(seq)` in the room's history and deliver it to every node (this one
    /// included, as `Input::Ordered`). Then report `Input::Published { op }`, or
    /// `Input::PublishFailed { op }` if it could not be ordered. A retry must not order it twice.
    Publish {
        /// Names this publish in the report.
        op: OpId,
        /// The room's name.
        room: String,
        /// The frame, waiting for its seq.
        message: Unnumbered,
    },
    /// Cluster mode with `Config::members_shared`: tell the other nodes that `client` sits in
    /// `room` as `nick` now (`Input::RemoteSeated` there): it joined, switched or was renamed.
    /// Keep a client's seats in order; only its latest one matters, so they may be coalesced.
    Seated {
        /// The client, whose number (`ClientId::get`) names it to the other nodes.
        client: ClientId,
        /// Its room.
        room: String,
        /// Its nickname.
        nick: String,
    },
    /// Cluster mode with `Config::members_shared`: tell the other nodes that `client` left its
    /// room for `reason` (`Input::RemoteUnseated` there). A switch is followed by its `Seated`.
    Unseated {
        /// The client.
        client: ClientId,
        /// Why.
        reason: LeaveReason,
    },
    /// Cluster mode: room `room` missed messages (a gap, or the deliveries broke off): report
    /// what the broker keeps after seq `after` with `Input::Refilled`.
    Refill {
        /// The room's name.
        room: String,
        /// The epoch the room is in here (the broker's may have changed since).
        epoch: String,
        /// The last seq delivered here.
        after: u64,
    },
    /// Cluster mode with `Config::nicks_claimed`: claim nickname `likeness` in room `room` (keyed
    /// by the room's likeness) for `client`, across the cluster, and report the answer with
    /// `Input::NickClaimed`. Until released, the claim is `client`'s; claiming what it already
    /// holds again is granted. Keep it alive (it expires only if this node stops refreshing it).
    ClaimNick {
        /// Whom the claim is for.
        client: ClientId,
        /// The room's name, as the client named it.
        room: String,
        /// The nickname's likeness (`names::nick_likeness`): two names alike are one claim.
        likeness: String,
    },
    /// Cluster mode with `Config::nicks_claimed`: `client` no longer uses the nickname of
    /// `ClaimNick { client, room, likeness }`; release it (if `client` still holds it). Comes
    /// after the `ClaimNick` it releases, and must be carried out after it.
    ReleaseNick {
        /// Whose claim it was.
        client: ClientId,
        /// The room's name.
        room: String,
        /// The nickname's likeness.
        likeness: String,
    },
    /// Cluster mode: hand `frame` to room `room`'s members on the other nodes (a `typing`
    /// notice), as `Input::Relayed` there. Unordered and best effort: never stored, dropped
    /// while the broker is away.
    Relay {
        /// The room's name.
        room: String,
        /// The frame, as this node's members got it.
        frame: Bytes,
    },
    /// Read a page of room `room`'s stored messages for client `to` (its `history` command, when
    /// a store keeps them): the newest `limit` with a seq below `before`, then report them with
    /// `Input::Fetched`. Every `Store` emitted before it must be readable by then.
    Fetch {
        /// Who asked.
        to: ClientId,
        /// The room, named as in `Store`.
        room: String,
        /// Messages with a seq below this one (never above the room's committed `seq` + 1).
        before: u64,
        /// At most this many (at most `HISTORY_PAGE_MAX`).
        limit: usize,
    },
    /// With `Config::tail_on_wake`: someone joins dormant room `room`, whose history only the
    /// store keeps. Read its newest `limit` stored messages up to seq `seq` (its last), as long
    /// as they run consecutively down from it, and report them with `Input::TailLoaded` (empty
    /// if none are kept). Every `Store` emitted before it must be readable by then.
    LoadTail {
        /// The room, named as in `Store`.
        room: String,
        /// Its last seq.
        seq: u64,
        /// Messages at most (`Config::history_max`).
        limit: usize,
    },
}

/// The WebSocket close codes the engine's closes carry (the shell's own, such as 1001 for
/// shutdown, are the shell's to name).
pub mod close_code {
    /// Nothing heard from the client for `idle_timeout`.
    pub const IDLE_TIMEOUT: u16 = 4000;
    /// Its outbound queue overflowed: too slow to read.
    pub const EVICTED: u16 = 4001;
    /// An operator kicked it.
    pub const KICKED: u16 = 4003;
    /// RFC 6455's policy violation: it kept flooding past the rate limit.
    pub const POLICY_VIOLATION: u16 = 1008;
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
    /// Every reason, for documentation and exhaustive tests.
    pub const ALL: [CloseReason; 4] = [
        CloseReason::SlowConsumer,
        CloseReason::IdleTimeout,
        CloseReason::Flooding,
        CloseReason::Kicked,
    ];

    /// The WebSocket close code sent to the client.
    pub fn code(self) -> u16 {
        match self {
            CloseReason::SlowConsumer => close_code::EVICTED,
            CloseReason::IdleTimeout => close_code::IDLE_TIMEOUT,
            CloseReason::Flooding => close_code::POLICY_VIOLATION,
            CloseReason::Kicked => close_code::KICKED,
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

    /// Why the room sees this client leave.
    pub fn leave_reason(self) -> LeaveReason {
        match self {
            CloseReason::SlowConsumer => LeaveReason::Evicted,
            CloseReason::IdleTimeout => LeaveReason::Timeout,
            CloseReason::Flooding => LeaveReason::Flooding,
            CloseReason::Kicked => LeaveReason::Kicked,
        }
    }
}

/// Why a member left a room: the `reason` of the `leave` frame the others get.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LeaveReason {
    /// It closed the connection (or the connection ended on its own).
    Left,
    /// It joined another room.
    Switched,
    /// It was evicted for reading too slowly.
    Evicted,
    /// It was silent for too long.
    Timeout,
    /// It kept exceeding the rate limit.
    Flooding,
    /// An operator kicked it.
    Kicked,
}

impl LeaveReason {
    /// Every reason, for documentation and exhaustive tests.
    pub const ALL: [LeaveReason; 6] = [
        LeaveReason::Left,
        LeaveReason::Switched,
        LeaveReason::Evicted,
        LeaveReason::Timeout,
        LeaveReason::Flooding,
        LeaveReason::Kicked,
    ];

    /// The reason of a wire spelling (`as_str`'s inverse).
    pub fn parse(spelling: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == spelling)
    }

    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            LeaveReason::Left => "left",
            LeaveReason::Switched => "switched",
            LeaveReason::Evicted => "evicted",
            LeaveReason::Timeout => "timeout",
            LeaveReason::Flooding => "flooding",
            LeaveReason::Kicked => "kicked",
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn every_close_reason_has_its_own_code_and_a_short_text() {
        let codes: BTreeSet<u16> = CloseReason::ALL.iter().map(|r| r.code()).collect();
        assert_eq!(codes, BTreeSet::from([1008, 4000, 4001, 4003]));
        for reason in CloseReason::ALL {
            assert!(!reason.text().is_empty() && reason.text().len() <= 123);
        }
    }

    #[test]
    fn leave_reasons_are_distinct_snake_case() {
        let spelled: BTreeSet<&str> = LeaveReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(spelled.len(), LeaveReason::ALL.len());
        assert!(spelled
            .iter()
            .all(|s| s.chars().all(|c| c.is_ascii_lowercase())));
        let from_closes: Vec<&str> = CloseReason::ALL
            .iter()
            .map(|r| r.leave_reason().as_str())
            .collect();
        assert_eq!(from_closes, ["evicted", "timeout", "flooding", "kicked"]);
        for reason in LeaveReason::ALL {
            assert_eq!(LeaveReason::parse(reason.as_str()), Some(reason));
        }
        assert_eq!(LeaveReason::parse("Left"), None);
    }
}
