//! Everything the server is configured with, independent of how it was parsed (CLI, tests, sims),
//! and every server default, each written once: the engine's limits come from
//! `chat_engine::Config::default()`, one connection's from [`ConnLimits::default()`], the rest
//! from [`Settings::default()`]. The CLI's defaults are read from these (`cli.rs`), and the
//! README's configuration table is checked against the CLI (`tests/readme.rs`).
//!
//! Building settings reads no clock: the epoch, the one value that must differ between server
//! starts, is left to `run` unless one is given.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use chat_engine::Config;

/// Where the web client's files come from.
#[derive(Clone, Debug)]
pub enum StaticSource {
    /// The `static/` files compiled into the binary.
    Embedded,
    /// A directory on disk (`--static-dir`).
    Dir(PathBuf),
}

/// Where wall-clock time comes from.
#[derive(Clone, Copy, Debug)]
pub enum WallClock {
    /// The system clock.
    System,
    /// A fixed start time plus elapsed monotonic time: deterministic under simulation.
    Anchored(SystemTime),
}

/// Where chat messages are kept.
#[derive(Clone, Debug)]
pub enum StoreAt {
    /// Nowhere but memory: a restart loses history (`--in-memory`; the default of
    /// `Settings::default()`, which tests and simulations start from).
    InMemory,
    /// A redb file in this directory, created if missing (`--data-dir`, the binary's default).
    Dir(PathBuf),
    /// A simulated disk (simulations and tests: a crash loses what was not synced).
    #[doc(hidden)]
    Disk(crate::sim_disk::Disk),
}

/// How much an acknowledgement promises (`--durability`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Nothing of a message, its sender's acknowledgement included, leaves before it is
    /// committed and synced.
    Strict,
    /// Delivered at once, synced within `sync_interval`; after an unclean stop every room gets a
    /// new epoch, so clients are told they were not recovered.
    Relaxed,
}

/// The message store's settings.
#[derive(Clone, Debug)]
pub struct StoreSettings {
    pub at: StoreAt,
    pub durability: Durability,
    /// With relaxed durability, the longest a delivered message stays unsynced.
    pub sync_interval: Duration,
    /// Messages kept per room on disk (scrollback reaches this far).
    pub retention_messages: u64,
    /// Messages older than this are deleted in the background; `None`: kept by count only.
    pub retention_age: Option<Duration>,
    /// Simulations only: how long each batch waits before its commit (a slow disk).
    #[doc(hidden)]
    pub commit_delay: Duration,
    /// Record redb's allocator state in every synced commit, so a start after a crash does not
    /// walk the whole file (`--quick-repair`).
    pub quick_repair: bool,
    /// After this long without a write, the store records its allocator state in one small
    /// commit, so a crash while it is quiet restarts without the full repair; zero: never
    /// (`--quiet-checkpoint`).
    pub quiet_checkpoint: Duration,
    /// Rooms (the most recently written) whose history a start reads before it serves; every
    /// other stored room reads its history when someone first joins it (`--preload-rooms`).
    pub preload_rooms: usize,
    /// Tests only: the open of a store in a directory first waits at this barrier, so a test
    /// can see what the server answers while its store is opening.
    #[doc(hidden)]
    pub open_gate: Option<std::sync::Arc<std::sync::Barrier>>,
}

impl Default for StoreSettings {
    fn default() -> Self {
        Self {
            at: StoreAt::InMemory,
            durability: Durability::Strict,
            sync_interval: Duration::from_millis(100),
            retention_messages: 10_000,
            retention_age: None,
            commit_delay: Duration::ZERO,
            quick_repair: false,
            quiet_checkpoint: Duration::from_secs(1),
            preload_rooms: 100,
            open_gate: None,
        }
    }
}

/// The server's configuration.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Chat limits, enforced by the engine.
    pub engine: Config,
    /// Distinguishes this server start; clients' `since` from another epoch is not honoured.
    /// `None` (the default): `run` makes a fresh one from the start time and process id.
    /// Simulations and fuzzing set one, so their runs repeat exactly.
    pub epoch: Option<String>,
    pub static_source: StaticSource,
    /// Origins allowed to open WebSockets besides `localhost` and IP literals naming the
    /// request's own host; `*` allows every well-formed one. See `origin.rs`.
    pub allowed_origins: Vec<String>,
    /// The URL people open (`https://chat.example.com`); its origin may open WebSockets. A DNS
    /// name must be configured here or in `allowed_origins`: matching `Host` is not enough.
    pub public_url: Option<String>,
    /// Most simultaneous WebSocket connections; more get HTTP 503.
    pub max_connections: usize,
    /// Largest client message after reassembly, in bytes (close 1009 beyond).
    pub max_message_bytes: usize,
    /// Largest HTTP request head (request line and headers), in bytes; larger gets `431`.
    pub max_header_bytes: usize,
    /// Time a connection has to send its complete HTTP request headers; also how long a
    /// keep-alive connection may sit idle between requests.
    pub handshake_timeout: Duration,
    /// Most simultaneous plain HTTP connections (a connection stops counting when it upgrades
    /// to a WebSocket); more get `503` and are closed.
    pub max_http_connections: usize,
    /// Most simultaneous WebSockets from one address (an IPv6 /64); more get `503`. 0: no cap.
    pub max_connections_per_ip: usize,
    /// WebSocket upgrades per minute per address (an IPv6 /64), with a burst of as many;
    /// more get `503`. 0: no limit.
    pub connect_rate_per_ip: u32,
    /// Time a socket may accept no bytes before the connection is dropped.
    pub write_timeout: Duration,
    /// Time shutdown waits for connections to finish after sending them close 1001.
    pub shutdown_grace: Duration,
    /// Bearer token enabling `POST /admin/kick`; `None` disables the endpoint.
    pub admin_token: Option<String>,
    /// Frames a connection may have read that the engine has not taken yet; a paused reader
    /// stops reading after this many, so TCP pushes back on its sender.
    pub read_ahead_frames: usize,
    /// Pongs waiting to be written per connection; past it a new pong replaces the latest.
    pub pending_pongs_max: usize,
    /// Payload bytes a connection may have read that the engine has not taken yet (besides the
    /// one message being read); a paused reader stops reading past it, so TCP pushes back.
    pub read_ahead_bytes: usize,
    /// Pings and pongs a client may send at once before the sustained rate applies.
    pub ping_rate_burst: u32,
    /// Sustained pings and pongs per second per client (close 1008 beyond); 0 turns it off.
    pub ping_rate_per_second: u32,
    /// Time a fragmented message has to be completed from its first fragment (close 1008
    /// beyond); zero: no limit.
    pub message_timeout: Duration,
    /// Messages waiting for the hub; connections wait (and stop reading) beyond it.
    pub hub_inbox: usize,
    /// Inbox messages in one hub turn, after which it writes what they queued and yields.
    pub hub_turn: usize,
    /// Helper threads that write a share of a wide fan-out (a message to a large room) while the
    /// hub writes the rest; 0: the hub writes everything itself (simulations must: their sockets
    /// live on the simulation's thread).
    pub fanout_threads: usize,
    pub wall_clock: WallClock,
    /// Where messages are kept, and how durably.
    pub store: StoreSettings,
    /// The cluster's Redis (`redis://HOST:PORT[/DB]`): the node joins the nodes sharing it, which
    /// orders every message and keeps the history (then `store` is not used). `None`: one node.
    pub broker: Option<String>,
    /// With a broker: how long a node's nickname claims outlive it (renewed every third of it).
    pub presence_ttl: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        let engine = Config::default();
        let conn = ConnLimits::default();
        Self {
            // One flag (`--max-connections`) sets both caps: the HTTP layer's 503 and the
            // engine's, which only a race past the 503 reaches.
            max_connections: engine.clients_max,
            engine,
            epoch: None,
            static_source: StaticSource::Embedded,
            allowed_origins: Vec::new(),
            public_url: None,
            max_message_bytes: conn.max_message_bytes,
            max_header_bytes: 16 << 10,
            handshake_timeout: Duration::from_secs(10),
            max_http_connections: 1000,
            // Off: behind a reverse proxy every client has the proxy's address.
            max_connections_per_ip: 0,
            connect_rate_per_ip: 0,
            write_timeout: conn.write_timeout,
            shutdown_grace: Duration::from_secs(5),
            admin_token: None,
            read_ahead_frames: conn.read_ahead_frames,
            pending_pongs_max: conn.pending_pongs_max,
            read_ahead_bytes: conn.read_ahead_bytes,
            ping_rate_burst: conn.ping_rate_burst,
            ping_rate_per_second: conn.ping_rate_per_second,
            message_timeout: conn.message_timeout,
            hub_inbox: 4096,
            hub_turn: 32,
            fanout_threads: 1,
            wall_clock: WallClock::System,
            store: StoreSettings::default(),
            broker: None,
            presence_ttl: Duration::from_secs(30),
        }
    }
}

/// Transport limits of one connection, the part of [`Settings`] its reader and writer need
/// (see there for each).
#[derive(Clone, Copy, Debug)]
pub struct ConnLimits {
    pub max_message_bytes: usize,
    pub write_timeout: Duration,
    pub read_ahead_frames: usize,
    pub pending_pongs_max: usize,
    pub read_ahead_bytes: usize,
    pub ping_rate_burst: u32,
    pub ping_rate_per_second: u32,
    pub message_timeout: Duration,
}

impl ConnLimits {
    pub fn new(settings: &Settings) -> Self {
        Self {
            max_message_bytes: settings.max_message_bytes,
            write_timeout: settings.write_timeout,
            read_ahead_frames: settings.read_ahead_frames,
            pending_pongs_max: settings.pending_pongs_max,
            read_ahead_bytes: settings.read_ahead_bytes,
            ping_rate_burst: settings.ping_rate_burst,
            ping_rate_per_second: settings.ping_rate_per_second,
            message_timeout: settings.message_timeout,
        }
    }
}

/// The production defaults of these; `Settings::default()` takes them from here.
impl Default for ConnLimits {
    fn default() -> Self {
        Self {
            max_message_bytes: 64 << 10,
            write_timeout: Duration::from_secs(10),
            read_ahead_frames: 32,
            pending_pongs_max: 16,
            // As much as one largest message: a paused reader holds at most one more message's
            // worth than the one it is reading.
            read_ahead_bytes: 64 << 10,
            // Autobahn's case 2.10 sends 10 pings at once; browsers ping not at all, and answer
            // our pings (one per `--ping-interval`) with one pong each.
            ping_rate_burst: 32,
            ping_rate_per_second: 4,
            message_timeout: Duration::from_secs(10),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Default settings are a value, not a reading of the clock: built twice they are the same,
    /// and the epoch is left to `run`.
    #[test]
    fn default_settings_read_no_clock() {
        let (first, second) = (Settings::default(), Settings::default());
        assert_eq!(first.epoch, None);
        assert_eq!(format!("{first:?}"), format!("{second:?}"));
    }
}
