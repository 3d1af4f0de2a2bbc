//! One connected client as the engine keeps it: its name and room, its outbound queue's
//! accounting, its flow-control state and its rate limit.

use std::time::Instant;

use crate::claims::{NickClaim, PendingClaim};
use crate::departures::AddrKey;
use crate::rate::RateLimit;
use crate::waking::Waiting;
use crate::ClientId;

#[derive(Debug)]
pub(crate) struct Client {
    pub(crate) id: ClientId,
    pub(crate) nick: String,
    /// Its nickname's likeness (`names::nick_likeness`), while it is in a room.
    pub(crate) likeness: String,
    /// Slot of its room in the engine's room table, once it joined one.
    pub(crate) room: Option<usize>,
    /// Its index in its room's `members` (meaningless outside a room).
    pub(crate) member_pos: usize,
    /// Frames handed to the shell and not yet reported flushed.
    pub(crate) queued_frames: usize,
    /// Payload bytes of those frames.
    pub(crate) queued_bytes: usize,
    /// At or above a high-water mark (counted in its room's `behind`).
    pub(crate) behind: bool,
    /// The shell was told to stop reading from it: its room is paused, or it is behind itself
    /// (a client may not talk faster than it listens).
    pub(crate) paused: bool,
    /// Decided to close during this call (or being removed); gets nothing more.
    pub(crate) doomed: bool,
    /// Its address, for the rate buckets it leaves behind (`departures`); `None`: unknown.
    pub(crate) from: Option<AddrKey>,
    pub(crate) rate: RateLimit,
    /// Its joins, room switches and renames (see `Config::membership_rate_burst`).
    pub(crate) membership_rate: RateLimit,
    /// Frames refused by the rate limit in a row.
    pub(crate) strikes: u32,
    pub(crate) last_seen: Instant,
    /// When its last `typing` was relayed (see `Config::typing_interval`).
    pub(crate) typing_at: Option<Instant>,
    // The claims are boxed: only a cluster uses them, and inline they were 300 of a client's
    // 490 bytes on every node (BENCHMARKS.md, scenario 6: RSS per connection).
    /// Its nickname in its room, as the cluster granted it (with `Config::nicks_claimed`).
    pub(crate) claimed: Option<Box<NickClaim>>,
    /// A join or rename waiting for the cluster's answer to its claim.
    pub(crate) claiming: Option<Box<PendingClaim>>,
    /// A claim granted for the join or rename being carried out now, not yet in use.
    pub(crate) granted: Option<Box<NickClaim>>,
    /// A join waiting for its dormant room's tail (with `Config::tail_on_wake`); boxed like
    /// the claims, being rare.
    pub(crate) waking: Option<Box<Waiting>>,
}

impl Client {
    pub(crate) fn new(id: ClientId, nick: String, now: Instant) -> Self {
        Self {
            id,
            nick,
            likeness: String::new(),
            room: None,
            member_pos: 0,
            queued_frames: 0,
            queued_bytes: 0,
            behind: false,
            paused: false,
            doomed: false,
            from: None,
            rate: RateLimit::new(),
            membership_rate: RateLimit::new(),
            strikes: 0,
            last_seen: now,
            typing_at: None,
            claimed: None,
            claiming: None,
            granted: None,
            waking: None,
        }
    }
}
