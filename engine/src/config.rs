//! Every limit the engine enforces, with its default. Units are the last word of each name.

use std::time::Duration;

use crate::Error;

/// Engine limits and timings. `Config::default()` is the production configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Room a client lands in when it names none.
    pub default_room: String,
    /// Messages kept per room for history and `since` recovery.
    pub history_max: usize,
    /// Bytes one room's history keeps at most, each message counted as its frame (the JSON as
    /// broadcast) plus 64 for its bookkeeping; past it the room's oldest messages go.
    pub history_bytes_max: usize,
    /// Bytes (counted as for `history_bytes_max`) every room's history together keeps at most;
    /// past it the oldest message kept anywhere goes (so empty rooms cannot pin memory for ever).
    pub history_total_bytes_max: usize,
    /// Outbound frames a client may have queued before it is evicted.
    pub queue_frames_max: usize,
    /// Outbound payload bytes a client may have queued before it is evicted.
    pub queue_bytes_max: usize,
    /// A client with at least this many frames queued counts as "behind" for flow control.
    pub queue_high_water_frames: usize,
    /// A client with at least this many bytes queued counts as "behind" for flow control.
    pub queue_high_water_bytes: usize,
    /// Longest chat message text, in UTF-8 bytes after trimming.
    pub text_bytes_max: usize,
    /// Frames a client may send in one burst.
    pub rate_limit_burst: u32,
    /// Sustained frames per second per client; 0 turns the rate limit off.
    pub rate_limit_per_second: u32,
    /// Refused frames in a row after which a flooding client is closed (1008).
    pub rate_limit_strikes_max: u32,
    /// Interval between heartbeat pings to every client.
    pub ping_interval: Duration,
    /// A client silent for longer than this is closed (4000).
    pub idle_timeout: Duration,
    /// Connected clients at most; `connect` beyond it fails with `Error::ServerFull`.
    pub clients_max: usize,
    /// Rooms kept at most (empty rooms keep their history until space is needed).
    pub rooms_max: usize,
    /// Names at most in a `welcome`'s `users` and in one `users` page (`who`).
    pub presence_list_max: usize,
    /// Rooms of at most this many members get `join`, `leave`, `nick` and `typing` at once;
    /// larger ones get coalesced `presence` frames instead (and no `typing`).
    pub presence_notify_max: usize,
    /// A large room gets at most one `presence` frame per this interval.
    pub presence_interval: Duration,
    /// `presence` frames per second at most that one room's announcements may cost, all its
    /// members together (0: no budget). A room so large that one frame per member per
    /// `presence_interval` would exceed it waits longer between announcements: members divided
    /// by this, in seconds. Sending a frame to each of 19,000 members every second was most of
    /// the server's work while such a room filled; its count may lag a few seconds instead.
    pub presence_frames_per_second: usize,
    /// Names at most in each list (`joined`, `left`, `renamed`) of one `presence` frame; the
    /// frame says how many more there were.
    pub presence_changes_max: usize,
    /// A client's `typing` is relayed at most once per this interval; the ones between are
    /// dropped without an error (a typing indicator needs no more, and each relay costs every
    /// member of the room a frame). Zero relays every one.
    pub typing_interval: Duration,
    /// Joins, room switches and renames (`join` and `nick` commands) a client may make in a
    /// burst, each one costing the whole room a notice; past it, one per
    /// `membership_rate_interval` (`rate_limited`).
    pub membership_rate_burst: u32,
    /// How often a client regains one join, switch or rename past its burst (zero: no limit).
    pub membership_rate_interval: Duration,
    /// "Acknowledged means durable": a chat message is handed to the store (`Output::Store`) and
    /// held, and no frame of it leaves, its sender's own copy included, until the store reports
    /// it with `Input::Committed`. Off (the default), messages are broadcast at once and the
    /// engine emits no `Store`.
    pub hold_until_committed: bool,
    /// Relaxed durability: every chat message also goes out as `Output::Store`, but is broadcast
    /// at once; no `Committed` is expected. A store that loses what it was handed must then tell
    /// clients so (a new epoch). Not together with `hold_until_committed`.
    pub store_relaxed: bool,
    /// Messages held at most, waiting for their commit (with `hold_until_committed`), or for the
    /// broker's answer (with `ordered_by_broker`); past it a chat message is refused with
    /// `unavailable`: the store or the broker is not keeping up.
    pub uncommitted_max: usize,
    /// With a store (`hold_until_committed` or `store_relaxed`): a join into a dormant room
    /// waits while the room's newest messages are read back (`Output::LoadTail`, answered by
    /// `Input::TailLoaded`), and the room wakes with them as its history. So a start need read
    /// no history at all (every stored room restored without one sleeps), and a room forgotten
    /// to make space comes back with its history, so a `since` into it still recovers. Off,
    /// a dormant room wakes with its epoch and seq but no history.
    pub tail_on_wake: bool,
    /// Cluster mode: a broker shared by several nodes orders every chat message (see
    /// `Output::Publish`); this engine delivers what the broker ordered (`Input::Ordered`), its
    /// senders' own copies included, and keeps no store of its own. Not together with
    /// `hold_until_committed` or `store_relaxed`.
    pub ordered_by_broker: bool,
    /// Cluster mode: a nickname is unique in its room across every node, not only this one. A
    /// join or rename that takes a name asks the broker to claim it first (`Output::ClaimNick`)
    /// and is carried out, or refused with `nick_taken` or `unavailable`, when the answer comes
    /// (`Input::NickClaimed`); a name given up is released (`Output::ReleaseNick`). Needs
    /// `ordered_by_broker`.
    pub nicks_claimed: bool,
    /// Cluster mode: a room's members on every node are its members here too: counted in
    /// `user_count`, listed in `welcome` and `who`, announced in `join`, `leave`, `nick` and
    /// `presence`, and judged by the large-room rules together. This node tells its seats
    /// (`Output::Seated`, `Output::Unseated`) and takes the others' (`Input::RemoteSeated`,
    /// `Input::RemoteUnseated`, `Input::RemoteNode`). Needs `nicks_claimed`.
    pub members_shared: bool,
    /// Put between the guest prefix and a guest's number (`guest-<tag><n>`), so guests of
    /// different nodes of a cluster get different names: ASCII letters, digits and '-', at most
    /// 16 bytes. Empty (the default) on a node of its own.
    pub guest_tag: String,
}

/// The longest interval or timeout a config may hold.
pub(crate) const DURATION_MAX: Duration = Duration::from_secs(366 * 24 * 60 * 60);

impl Default for Config {
    fn default() -> Self {
        Self {
            default_room: "general".to_owned(),
            history_max: 100,
            history_bytes_max: 256 << 10,
            history_total_bytes_max: 256 << 20,
            queue_frames_max: 256,
            queue_bytes_max: 1 << 20,
            queue_high_water_frames: 128,
            queue_high_water_bytes: 512 << 10,
            text_bytes_max: 4096,
            rate_limit_burst: 20,
            rate_limit_per_second: 10,
            rate_limit_strikes_max: 50,
            ping_interval: Duration::from_secs(25),
            idle_timeout: Duration::from_secs(60),
            clients_max: 10_000,
            rooms_max: 10_000,
            presence_list_max: 200,
            presence_notify_max: 200,
            presence_interval: Duration::from_secs(1),
            presence_frames_per_second: 5_000,
            presence_changes_max: 100,
            typing_interval: Duration::from_secs(2),
            membership_rate_burst: 5,
            membership_rate_interval: Duration::from_secs(2),
            hold_until_committed: false,
            uncommitted_max: 1024,
            tail_on_wake: false,
            store_relaxed: false,
            ordered_by_broker: false,
            nicks_claimed: false,
            members_shared: false,
            guest_tag: String::new(),
        }
    }
}

impl Config {
    /// Checks that the limits are usable together; the engine refuses to start otherwise.
    pub fn validate(&self) -> Result<(), Error> {
        let fail = |why: &str| Err(Error::InvalidConfig(why.to_owned()));
        if crate::names::validate_room(&self.default_room).is_err() {
            return fail("default_room is not a valid room name");
        }
        // Also rules out empty queue bounds: a high-water mark of at least 1 fits under them.
        if self.queue_high_water_frames == 0
            || self.queue_high_water_frames > self.queue_frames_max
            || self.queue_high_water_bytes == 0
            || self.queue_high_water_bytes > self.queue_bytes_max
        {
            return fail("queue high-water marks must be at least 1 and at most the queue bounds");
        }
        if self.text_bytes_max == 0 {
            return fail("text_bytes_max must be at least 1");
        }
        if !self.membership_rate_interval.is_zero() && self.membership_rate_burst == 0 {
            return fail("membership_rate_burst must be at least 1 when its limit is on");
        }
        if self.rate_limit_per_second > 0 && self.rate_limit_burst == 0 {
            return fail("rate_limit_burst must be at least 1 when the rate limit is on");
        }
        if self.ping_interval.is_zero() || self.idle_timeout.is_zero() {
            return fail("ping_interval and idle_timeout must be positive");
        }
        if self.clients_max == 0 || self.rooms_max == 0 {
            return fail("clients_max and rooms_max must be at least 1");
        }
        if self.presence_list_max == 0 || self.presence_changes_max == 0 {
            return fail("presence_list_max and presence_changes_max must be at least 1");
        }
        if (self.hold_until_committed || self.ordered_by_broker) && self.uncommitted_max == 0 {
            return fail("uncommitted_max must be at least 1 when messages wait for their commit");
        }
        if self.ordered_by_broker && (self.hold_until_committed || self.store_relaxed) {
            return fail("ordered_by_broker excludes a store of the node's own");
        }
        if self.nicks_claimed && !self.ordered_by_broker {
            return fail("nicks_claimed needs ordered_by_broker: only a cluster claims names");
        }
        if self.members_shared && !self.nicks_claimed {
            return fail("members_shared needs nicks_claimed: shared members need unique names");
        }
        let tag_byte = |b: u8| b.is_ascii_alphanumeric() || b == b'-';
        if self.guest_tag.len() > 16 || !self.guest_tag.bytes().all(tag_byte) {
            return fail("guest_tag is at most 16 ASCII letters, digits and '-'");
        }
        if self.hold_until_committed && self.store_relaxed {
            return fail("hold_until_committed and store_relaxed exclude each other");
        }
        if self.tail_on_wake && !(self.hold_until_committed || self.store_relaxed) {
            return fail("tail_on_wake needs a store (hold_until_committed or store_relaxed)");
        }
        if self.presence_interval.is_zero() {
            return fail("presence_interval must be positive");
        }
        // Deadlines are instants plus these: a year keeps every sum far from overflowing.
        let durations = [
            self.ping_interval,
            self.idle_timeout,
            self.presence_interval,
            self.typing_interval,
            self.membership_rate_interval,
        ];
        if durations.iter().any(|&d| d > DURATION_MAX) {
            return fail("intervals and timeouts must be at most a year (366 days)");
        }
        Ok(())
    }

    /// Whether a store or a broker keeps the messages (held, relaxed or ordered): rooms then outlive their time in
    /// memory (see `dormant`) and `history` pages come from the store.
    pub(crate) fn persists(&self) -> bool {
        self.hold_until_committed || self.store_relaxed || self.ordered_by_broker
    }
}
