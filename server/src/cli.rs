//! Command-line flags (each also an environment variable) and how they become `Settings`.
//!
//! A flag's default is read from the library's (`Settings::default()`, whose `engine` is
//! `chat_engine::Config::default()`), never restated here: `--help` shows what the code uses.
//! Only the binary's own flags (`--addr`, `--worker-threads`, `--log-format`) have theirs here.

use std::net::SocketAddr;
use std::path::PathBuf;

use chat_engine::Config;
use clap::{Parser, ValueEnum};
use humantime::Duration;

use crate::settings::{Durability, Settings, StaticSource, StoreAt, StoreSettings, WallClock};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Where every library default comes from.
/// `--listen-backlog`'s default: Linux's own default cap (net.core.somaxconn) since 5.4. Rust's
/// standard listener asks for 128, which a room of 19,000 reconnecting at once overflows
/// (BENCHMARKS.md, scenario 6).
pub const LISTEN_BACKLOG: u32 = 4096;

fn defaults() -> Settings {
    Settings::default()
}

/// A real-time chat server: web client at /, WebSocket hub at /ws, status at /status.
#[derive(Debug, Parser)]
#[command(name = "chat-server", version, about)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, env = "CHAT_ADDR", default_value = "0.0.0.0:8080")]
    pub addr: SocketAddr,
    /// Serve the web client from this directory instead of the copy embedded in the binary.
    #[arg(long, env = "CHAT_STATIC_DIR")]
    pub static_dir: Option<PathBuf>,
    /// Origin allowed to open WebSockets (repeatable; `*` allows all). Pages from `localhost` or
    /// an IP address of this server need none; a DNS name does (or --public-url).
    #[arg(
        long = "allowed-origin",
        env = "CHAT_ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    pub allowed_origins: Vec<String>,
    /// The URL people open, such as https://chat.example.com: pages from its origin may open
    /// WebSockets (a DNS name that merely matches the Host header may not: DNS rebinding).
    #[arg(long, env = "CHAT_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Threads running connections and the hub. The chat state is one task, and it writes to
    /// idle sockets itself; more threads spread reads and writes to full sockets over cores. On
    /// two shared cores one thread delivered more for less CPU (BENCHMARKS.md, 3w and 3cw).
    #[arg(long, env = "CHAT_WORKER_THREADS", default_value_t = 1,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1024))]
    pub worker_threads: usize,
    /// Connections the kernel queues for accepting, at most (capped by net.core.somaxconn). A
    /// burst of reconnects (a restart with thousands of clients) beyond it has its SYNs dropped
    /// and retried a second or more later.
    #[arg(long, env = "CHAT_LISTEN_BACKLOG", default_value_t = LISTEN_BACKLOG,
          value_parser = clap::value_parser!(u32).range(1..=65535))]
    pub listen_backlog: u32,
    /// Log format.
    #[arg(long, env = "CHAT_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Most simultaneous WebSocket connections; more get HTTP 503.
    #[arg(long, env = "CHAT_MAX_CONNECTIONS", default_value_t = defaults().max_connections)]
    pub max_connections: usize,
    /// Largest client message after reassembly, in bytes (close 1009 beyond).
    #[arg(long, env = "CHAT_MAX_MESSAGE_BYTES", default_value_t = defaults().max_message_bytes)]
    pub max_message_bytes: usize,
    /// Longest chat text, in bytes after trimming (error `message_too_long` beyond).
    #[arg(long, env = "CHAT_MAX_TEXT_BYTES", default_value_t = defaults().engine.text_bytes_max)]
    pub max_text_bytes: usize,
    /// Messages kept per room for history and reconnect recovery.
    #[arg(long, env = "CHAT_HISTORY", default_value_t = defaults().engine.history_max)]
    pub history: usize,
    /// Bytes one room's history keeps at most, each message its frame plus 64 (its oldest
    /// messages go past it).
    #[arg(long, env = "CHAT_HISTORY_BYTES", default_value_t = defaults().engine.history_bytes_max)]
    pub history_bytes: usize,
    /// Bytes every room's history together keeps at most, counted alike (the oldest message kept
    /// anywhere goes past it, so empty rooms cannot pin memory).
    #[arg(long, env = "CHAT_HISTORY_TOTAL_BYTES",
          default_value_t = defaults().engine.history_total_bytes_max)]
    pub history_total_bytes: usize,
    /// Outbound frames queued per client before it is evicted (close 4001).
    #[arg(long, env = "CHAT_QUEUE_FRAMES", default_value_t = defaults().engine.queue_frames_max)]
    pub queue_frames: usize,
    /// Outbound bytes queued per client before it is evicted (close 4001).
    #[arg(long, env = "CHAT_QUEUE_BYTES", default_value_t = defaults().engine.queue_bytes_max)]
    pub queue_bytes: usize,
    /// Queued frames at which a client counts as behind (flow control pauses a room most of
    /// whose members are behind).
    #[arg(long, env = "CHAT_QUEUE_HIGH_WATER_FRAMES",
          default_value_t = defaults().engine.queue_high_water_frames)]
    pub queue_high_water_frames: usize,
    /// Queued bytes at which a client counts as behind.
    #[arg(long, env = "CHAT_QUEUE_HIGH_WATER_BYTES",
          default_value_t = defaults().engine.queue_high_water_bytes)]
    pub queue_high_water_bytes: usize,
    /// Messages a client may send in one burst.
    #[arg(long, env = "CHAT_RATE_LIMIT_BURST",
          default_value_t = defaults().engine.rate_limit_burst)]
    pub rate_limit_burst: u32,
    /// Sustained messages per second per client; 0 turns the rate limit off.
    #[arg(long, env = "CHAT_RATE_LIMIT_PER_SECOND",
          default_value_t = defaults().engine.rate_limit_per_second)]
    pub rate_limit_per_second: u32,
    /// Refused messages in a row after which a flooding client is closed (1008); 0 never closes.
    #[arg(long, env = "CHAT_RATE_LIMIT_STRIKES",
          default_value_t = defaults().engine.rate_limit_strikes_max)]
    pub rate_limit_strikes: u32,
    /// Heartbeat ping interval.
    #[arg(long, env = "CHAT_PING_INTERVAL", default_value_t = defaults().engine.ping_interval.into())]
    pub ping_interval: Duration,
    /// A client silent for longer than this is closed (4000).
    #[arg(long, env = "CHAT_IDLE_TIMEOUT", default_value_t = defaults().engine.idle_timeout.into())]
    pub idle_timeout: Duration,
    /// Time a connection has to send complete HTTP request headers (slowloris defence), and
    /// the longest a keep-alive HTTP connection may sit idle between requests.
    #[arg(long, env = "CHAT_HANDSHAKE_TIMEOUT", default_value_t = defaults().handshake_timeout.into())]
    pub handshake_timeout: Duration,
    /// Largest HTTP request head (request line and headers), in bytes; larger gets 431.
    #[arg(long, env = "CHAT_MAX_HEADER_BYTES", default_value_t = defaults().max_header_bytes,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1024..=1 << 20))]
    pub max_header_bytes: usize,
    /// Most simultaneous plain HTTP connections (not counting upgraded WebSockets); more get
    /// 503 and are closed.
    #[arg(long, env = "CHAT_MAX_HTTP_CONNECTIONS", default_value_t = defaults().max_http_connections,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_http_connections: usize,
    /// Most simultaneous WebSockets from one IP address (IPv6: one /64); more get 503. 0: no
    /// cap (the default: behind a reverse proxy every client has the proxy's address).
    #[arg(long, env = "CHAT_MAX_CONNECTIONS_PER_IP", default_value_t = defaults().max_connections_per_ip)]
    pub max_connections_per_ip: usize,
    /// WebSocket upgrades per minute from one IP address (IPv6: one /64), in a burst of as
    /// many; more get 503. 0: no limit.
    #[arg(long, env = "CHAT_CONNECT_RATE_PER_IP", default_value_t = defaults().connect_rate_per_ip)]
    pub connect_rate_per_ip: u32,
    /// A socket that accepts no bytes for this long is dropped.
    #[arg(long, env = "CHAT_WRITE_TIMEOUT", default_value_t = defaults().write_timeout.into())]
    pub write_timeout: Duration,
    /// How long shutdown waits for connections after sending close 1001.
    #[arg(long, env = "CHAT_SHUTDOWN_GRACE", default_value_t = defaults().shutdown_grace.into())]
    pub shutdown_grace: Duration,
    /// Most rooms kept (empty rooms keep their history until space is needed).
    #[arg(long, env = "CHAT_MAX_ROOMS", default_value_t = defaults().engine.rooms_max)]
    pub max_rooms: usize,
    /// Room for clients that name none.
    #[arg(long, env = "CHAT_DEFAULT_ROOM", default_value_t = defaults().engine.default_room)]
    pub default_room: String,
    /// Frames a connection may have read that the engine has not taken yet (a paused reader
    /// stops after this many, so TCP pushes back on its sender).
    #[arg(long, env = "CHAT_READ_AHEAD_FRAMES", default_value_t = defaults().read_ahead_frames,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=65_536))]
    pub read_ahead_frames: usize,
    /// Pongs waiting to be written per connection; past it a new pong replaces the latest.
    #[arg(long, env = "CHAT_PENDING_PONGS", default_value_t = defaults().pending_pongs_max,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=65_536))]
    pub pending_pongs: usize,
    /// Payload bytes a connection may have read that the engine has not taken yet, besides the
    /// message being read (a paused reader stops past this, so TCP pushes back on its sender).
    #[arg(long, env = "CHAT_READ_AHEAD_BYTES", default_value_t = defaults().read_ahead_bytes,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1 << 30))]
    pub read_ahead_bytes: usize,
    /// Pings and pongs a client may send at once; past it, --ping-rate-per-second (close 1008
    /// beyond).
    #[arg(long, env = "CHAT_PING_RATE_BURST", default_value_t = defaults().ping_rate_burst,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub ping_rate_burst: u32,
    /// Sustained pings and pongs per second per client; 0 turns the meter off.
    #[arg(long, env = "CHAT_PING_RATE_PER_SECOND", default_value_t = defaults().ping_rate_per_second)]
    pub ping_rate_per_second: u32,
    /// Time a fragmented message has to be completed from its first fragment (close 1008
    /// beyond); 0s: no limit.
    #[arg(long, env = "CHAT_MESSAGE_TIMEOUT", default_value_t = defaults().message_timeout.into())]
    pub message_timeout: Duration,
    /// Messages waiting for the hub; connections wait (and stop reading) beyond it.
    #[arg(long, env = "CHAT_HUB_INBOX", default_value_t = defaults().hub_inbox,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1 << 20))]
    pub hub_inbox: usize,
    /// Inbox messages in one hub turn, after which the hub writes what they queued and yields.
    #[arg(long, env = "CHAT_HUB_TURN", default_value_t = defaults().hub_turn,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=65_536))]
    pub hub_turn: usize,
    /// Helper threads that write a share of a message to a large room while the hub writes the
    /// rest (fan-outs of 32 sockets or more), so the last recipient waits less; 0: the hub
    /// writes everything itself.
    #[arg(long, env = "CHAT_FANOUT_THREADS", default_value_t = defaults().fanout_threads,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(0..=64))]
    pub fanout_threads: usize,
    /// Names at most in a welcome's `users` and in one `who` page.
    #[arg(long, env = "CHAT_PRESENCE_LIST_MAX", default_value_t = defaults().engine.presence_list_max,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=100_000))]
    pub presence_list_max: usize,
    /// Rooms of at most this many members get join/leave/nick/typing notices at once; larger
    /// ones get one coalesced `presence` frame per --presence-interval (and no typing).
    #[arg(long, env = "CHAT_PRESENCE_NOTIFY_MAX", default_value_t = defaults().engine.presence_notify_max)]
    pub presence_notify_max: usize,
    /// A large room gets at most one `presence` frame per this interval.
    #[arg(long, env = "CHAT_PRESENCE_INTERVAL",
          default_value_t = defaults().engine.presence_interval.into())]
    pub presence_interval: Duration,
    /// `presence` frames per second at most that one room's announcements may cost (all its
    /// members together): a room larger than this times --presence-interval announces less
    /// often, every members/this seconds; 0: no budget.
    #[arg(long, env = "CHAT_PRESENCE_FRAMES_PER_SECOND",
          default_value_t = defaults().engine.presence_frames_per_second)]
    pub presence_frames_per_second: usize,
    /// Names at most in each list of one `presence` frame (it says how many more there were).
    #[arg(long, env = "CHAT_PRESENCE_CHANGES_MAX", default_value_t = defaults().engine.presence_changes_max,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=100_000))]
    pub presence_changes_max: usize,
    /// A client's `typing` is relayed at most once per this interval (the ones between are
    /// dropped without an error); 0s relays every one.
    #[arg(long, env = "CHAT_TYPING_INTERVAL",
          default_value_t = defaults().engine.typing_interval.into())]
    pub typing_interval: Duration,
    /// Joins, room switches and renames a client may make in a burst (each costs its room a
    /// notice); past it, one per --membership-rate-interval, else `rate_limited`.
    #[arg(long, env = "CHAT_MEMBERSHIP_RATE_BURST",
          default_value_t = defaults().engine.membership_rate_burst,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub membership_rate_burst: u32,
    /// How often a client regains one join, switch or rename past its burst; 0s: no limit.
    #[arg(long, env = "CHAT_MEMBERSHIP_RATE_INTERVAL",
          default_value_t = defaults().engine.membership_rate_interval.into())]
    pub membership_rate_interval: Duration,
    /// Bearer token enabling POST /admin/kick?room=&nick= (disabled when unset).
    #[arg(long, env = "CHAT_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// File holding the admin token (one trailing newline is ignored), so it appears in neither
    /// argv nor the environment; an unreadable or empty file stops the start.
    #[arg(long, env = "CHAT_ADMIN_TOKEN_FILE", conflicts_with = "admin_token")]
    pub admin_token_file: Option<PathBuf>,
    /// Directory of the message store (created if missing): history survives restarts and
    /// crashes, and clients scroll back through it. Relative to the working directory.
    #[arg(long, env = "CHAT_DATA_DIR", default_value = DATA_DIR)]
    pub data_dir: PathBuf,
    /// Join a cluster: the nodes sharing this Redis (redis://HOST:PORT[/DB]) serve the same
    /// rooms. Redis orders every message and keeps each room's last --retention-messages; the
    /// node keeps no store of its own (--data-dir is not used).
    #[arg(long, env = "CHAT_BROKER", conflicts_with_all = ["data_dir", "in_memory"])]
    pub broker: Option<String>,
    /// With --broker: how long a node that stops (crashes, loses Redis) keeps its members'
    /// nicknames claimed; a running node renews its claims every third of it.
    #[arg(long, env = "CHAT_PRESENCE_TTL", default_value_t = defaults().presence_ttl.into())]
    pub presence_ttl: Duration,
    /// Keep messages in memory only, as before the store: a restart loses history.
    #[arg(long, env = "CHAT_IN_MEMORY", conflicts_with = "data_dir")]
    pub in_memory: bool,
    /// strict: no frame of a message, its sender's acknowledgement included, leaves before it
    /// is synced to disk. relaxed: delivered at once and synced within --sync-interval; after
    /// an unclean stop every room gets a new epoch (clients are told they were not recovered).
    #[arg(long, env = "CHAT_DURABILITY", value_enum, default_value = "strict")]
    pub durability: DurabilityArg,
    /// With --durability relaxed, the longest a delivered message stays unsynced.
    #[arg(long, env = "CHAT_SYNC_INTERVAL", default_value_t = defaults().store.sync_interval.into())]
    pub sync_interval: Duration,
    /// Messages kept on disk per room (how far scrollback reaches); older ones are deleted.
    #[arg(long, env = "CHAT_RETENTION_MESSAGES", default_value_t = defaults().store.retention_messages,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub retention_messages: u64,
    /// Delete stored messages older than this (for example 30d); unset: kept by count only.
    #[arg(long, env = "CHAT_RETENTION_AGE")]
    pub retention_age: Option<Duration>,
    /// Make a start after a crash as fast as after a clean stop: every synced commit also
    /// records the store's free-page map and commits in two phases. Without it, a start after
    /// an unclean stop verifies the whole file first (2-3 s per GB). Costs every commit a
    /// second sync and a write that grows with the file (README, "Durable history").
    #[arg(long, env = "CHAT_QUICK_REPAIR")]
    pub quick_repair: bool,
    /// After this long without a write, one small commit records the store's free-page map,
    /// so a crash while the server is quiet restarts as fast as a clean stop; 0s: never.
    #[arg(long, env = "CHAT_QUIET_CHECKPOINT", default_value_t = defaults().store.quiet_checkpoint.into())]
    pub quiet_checkpoint: Duration,
    /// Rooms (the most recently written) whose recent history a start reads before it serves.
    /// Every other stored room reads its history from disk when someone first joins it, so a
    /// start with many rooms serves at once, even from a cold disk.
    #[arg(long, env = "CHAT_PRELOAD_ROOMS", default_value_t = defaults().store.preload_rooms)]
    pub preload_rooms: usize,
    /// Messages waiting to be stored at most; past it readers are paused, and a message that
    /// still arrives is refused with unavailable.
    #[arg(long, env = "CHAT_MAX_UNCOMMITTED", default_value_t = defaults().engine.uncommitted_max,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_uncommitted: usize,
}

/// The binary's default data directory.
pub const DATA_DIR: &str = "chat-data";

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum DurabilityArg {
    Strict,
    Relaxed,
}

/// The token in `path`, without its trailing line break.
fn read_token_file(path: &std::path::Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read --admin-token-file {}: {e}", path.display()))?;
    let token = text
        .strip_suffix('\n')
        .map_or(&*text, |t| t.strip_suffix('\r').unwrap_or(t));
    if token.trim().is_empty() {
        return Err(format!(
            "--admin-token-file {} holds no token (it is empty)",
            path.display()
        ));
    }
    Ok(token.to_owned())
}

impl Args {
    /// The settings these flags describe. The epoch is left to `run`: a fresh one per start.
    /// Fails when `--admin-token-file` cannot be read or is empty.
    pub fn settings(&self) -> Result<Settings, String> {
        let admin_token = match &self.admin_token_file {
            Some(path) => Some(read_token_file(path)?),
            None => self.admin_token.clone(),
        };
        Ok(Settings {
            engine: Config {
                default_room: self.default_room.clone(),
                history_max: self.history,
                history_bytes_max: self.history_bytes,
                history_total_bytes_max: self.history_total_bytes,
                queue_frames_max: self.queue_frames,
                queue_bytes_max: self.queue_bytes,
                queue_high_water_frames: self.queue_high_water_frames,
                queue_high_water_bytes: self.queue_high_water_bytes,
                text_bytes_max: self.max_text_bytes,
                rate_limit_burst: self.rate_limit_burst,
                rate_limit_per_second: self.rate_limit_per_second,
                rate_limit_strikes_max: self.rate_limit_strikes,
                ping_interval: self.ping_interval.into(),
                idle_timeout: self.idle_timeout.into(),
                clients_max: self.max_connections,
                rooms_max: self.max_rooms,
                presence_list_max: self.presence_list_max,
                presence_notify_max: self.presence_notify_max,
                presence_interval: self.presence_interval.into(),
                presence_frames_per_second: self.presence_frames_per_second,
                typing_interval: self.typing_interval.into(),
                membership_rate_burst: self.membership_rate_burst,
                membership_rate_interval: self.membership_rate_interval.into(),
                presence_changes_max: self.presence_changes_max,
                // Set from `store` when the server starts (`Server::start`).
                hold_until_committed: false,
                uncommitted_max: self.max_uncommitted,
                tail_on_wake: false,
                store_relaxed: false,
                // Set when the node joins a cluster (`--broker`).
                ordered_by_broker: false,
                nicks_claimed: false,
                members_shared: false,
                guest_tag: String::new(),
            },
            epoch: None,
            static_source: self
                .static_dir
                .clone()
                .map_or(StaticSource::Embedded, StaticSource::Dir),
            allowed_origins: self.allowed_origins.clone(),
            public_url: self.public_url.clone(),
            max_connections: self.max_connections,
            max_message_bytes: self.max_message_bytes,
            max_header_bytes: self.max_header_bytes,
            handshake_timeout: self.handshake_timeout.into(),
            max_http_connections: self.max_http_connections,
            max_connections_per_ip: self.max_connections_per_ip,
            connect_rate_per_ip: self.connect_rate_per_ip,
            write_timeout: self.write_timeout.into(),
            shutdown_grace: self.shutdown_grace.into(),
            admin_token,
            read_ahead_frames: self.read_ahead_frames,
            pending_pongs_max: self.pending_pongs,
            read_ahead_bytes: self.read_ahead_bytes,
            ping_rate_burst: self.ping_rate_burst,
            ping_rate_per_second: self.ping_rate_per_second,
            message_timeout: self.message_timeout.into(),
            hub_inbox: self.hub_inbox,
            hub_turn: self.hub_turn,
            fanout_threads: self.fanout_threads,
            wall_clock: WallClock::System,
            store: StoreSettings {
                at: if self.in_memory {
                    StoreAt::InMemory
                } else {
                    StoreAt::Dir(self.data_dir.clone())
                },
                durability: match self.durability {
                    DurabilityArg::Strict => Durability::Strict,
                    DurabilityArg::Relaxed => Durability::Relaxed,
                },
                sync_interval: self.sync_interval.into(),
                retention_messages: self.retention_messages,
                retention_age: self.retention_age.map(Into::into),
                commit_delay: std::time::Duration::ZERO,
                quick_repair: self.quick_repair,
                quiet_checkpoint: self.quiet_checkpoint.into(),
                preload_rooms: self.preload_rooms,
                open_gate: None,
            },
            broker: self.broker.clone(),
            presence_ttl: self.presence_ttl.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_defaults_match_the_library_defaults() {
        let args = Args::try_parse_from(["chat-server"]).expect("defaults parse");
        let settings = args.settings().expect("valid");
        let defaults = Settings::default();
        assert_eq!(settings.engine, Config::default());
        assert_eq!(settings.max_connections, defaults.max_connections);
        assert_eq!(settings.max_message_bytes, defaults.max_message_bytes);
        assert_eq!(settings.handshake_timeout, defaults.handshake_timeout);
        assert_eq!(settings.max_header_bytes, defaults.max_header_bytes);
        assert_eq!(settings.max_http_connections, defaults.max_http_connections);
        assert_eq!(
            settings.max_connections_per_ip,
            defaults.max_connections_per_ip
        );
        assert_eq!(settings.connect_rate_per_ip, defaults.connect_rate_per_ip);
        assert_eq!(settings.write_timeout, defaults.write_timeout);
        assert_eq!(settings.shutdown_grace, defaults.shutdown_grace);
        assert_eq!(settings.read_ahead_frames, defaults.read_ahead_frames);
        assert_eq!(settings.pending_pongs_max, defaults.pending_pongs_max);
        assert_eq!(settings.read_ahead_bytes, defaults.read_ahead_bytes);
        assert_eq!(settings.ping_rate_burst, defaults.ping_rate_burst);
        assert_eq!(settings.ping_rate_per_second, defaults.ping_rate_per_second);
        assert_eq!(settings.message_timeout, defaults.message_timeout);
        assert_eq!(settings.hub_inbox, defaults.hub_inbox);
        assert_eq!(settings.hub_turn, defaults.hub_turn);
        assert_eq!(settings.fanout_threads, defaults.fanout_threads);
        assert_eq!(settings.public_url, defaults.public_url);
        assert_eq!(settings.admin_token, defaults.admin_token);
        assert_eq!(args.addr.to_string(), "0.0.0.0:8080");
    }

    #[test]
    fn the_connection_and_hub_bounds_are_flags() {
        let args = Args::try_parse_from([
            "chat-server",
            "--read-ahead-frames",
            "8",
            "--pending-pongs",
            "3",
            "--hub-inbox",
            "100",
            "--hub-turn",
            "4",
        ])
        .expect("valid flags");
        let settings = args.settings().expect("valid");
        assert_eq!(
            (
                settings.read_ahead_frames,
                settings.pending_pongs_max,
                settings.hub_inbox,
                settings.hub_turn
            ),
            (8, 3, 100, 4)
        );
        assert!(Args::try_parse_from(["chat-server", "--hub-turn", "0"]).is_err());
    }

    #[test]
    fn the_public_url_and_the_admin_token_file_are_flags() {
        let dir = std::env::temp_dir().join(format!("chat-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let file = dir.join("token");
        std::fs::write(&file, "t0k\r\n").expect("write");
        let file = file.to_str().expect("UTF-8 path");
        let args = Args::try_parse_from([
            "chat-server",
            "--public-url",
            "https://chat.example.com",
            "--admin-token-file",
            file,
        ])
        .expect("valid flags");
        let settings = args.settings().expect("readable token file");
        assert_eq!(
            settings.public_url.as_deref(),
            Some("https://chat.example.com")
        );
        assert_eq!(settings.admin_token.as_deref(), Some("t0k"));
        let both = Args::try_parse_from([
            "chat-server",
            "--admin-token",
            "x",
            "--admin-token-file",
            file,
        ]);
        assert!(both.is_err());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn the_frame_limits_are_flags() {
        let args = Args::try_parse_from([
            "chat-server",
            "--read-ahead-bytes",
            "4096",
            "--ping-rate-burst",
            "8",
            "--ping-rate-per-second",
            "0",
            "--message-timeout",
            "2s",
        ])
        .expect("valid flags");
        let settings = args.settings().expect("valid settings");
        assert_eq!(
            (
                settings.read_ahead_bytes,
                settings.ping_rate_burst,
                settings.ping_rate_per_second,
                settings.message_timeout
            ),
            (4096, 8, 0, std::time::Duration::from_secs(2))
        );
        for (flag, bad) in [("--read-ahead-bytes", "0"), ("--ping-rate-burst", "0")] {
            assert!(
                Args::try_parse_from(["chat-server", flag, bad]).is_err(),
                "{flag}"
            );
        }
    }
}
