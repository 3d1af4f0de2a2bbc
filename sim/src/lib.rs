//! `chat-sim`: deterministic simulations of `chat-server` on turmoil's simulated network.
//!
//! The real serving code ([`chat_server::run`]) runs on a simulated host through [`SimListener`];
//! every user is a real WebSocket client ([`client::Client`]) on its own simulated host. Each
//! client records what it sees in a [`trace::Trace`]; after a run, [`checker::check`] asserts the
//! chat invariants over the whole record. [`seeds::run`] repeats a scenario over seeds and prints
//! the command that replays a failing one. The scenarios are the tests in `sim/tests/`.
//! Cluster scenarios run several nodes ([`add_node`]) on the in-memory broker of [`broker`].
//!
//! ```text
//! cargo test -p chat-sim                     # 3 seeds per scenario
//! CHAT_SIM_SEEDS=50 cargo test -p chat-sim   # a sweep (debug: the engine checks its invariants)
//! CHAT_SIM_SEED=17 cargo test -p chat-sim --test slow NAME -- --exact --nocapture  # replay
//! ```

pub mod broker;
pub mod checker;
pub mod client;
pub mod seeds;
pub mod trace;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use chat_engine::Config;
use chat_server::{Settings, WallClock};

pub use client::{sleep_until, Client, PORT, SERVER};
pub use trace::{Role, Trace};

/// turmoil's listener as the server's accept seam.
pub struct SimListener(pub turmoil::net::TcpListener);

impl chat_server::Listener for SimListener {
    type Io = turmoil::net::TcpStream;

    async fn accept(&mut self) -> io::Result<(Self::Io, SocketAddr)> {
        self.0.accept().await
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

/// Mixes a run's seed with a name, so every client gets its own random stream.
pub fn mix(seed: u64, name: &str) -> u64 {
    name.bytes().fold(seed ^ 0x9e37_79b9_7f4a_7c15, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A turmoil builder with this suite's defaults: the seed, a 5 ms tick, 1-20 ms of latency per
/// message, room in the accept backlog, and 60 s of simulated time at most.
pub fn builder(seed: u64) -> turmoil::Builder {
    let mut builder = turmoil::Builder::new();
    builder
        .rng_seed(seed)
        .epoch(UNIX_EPOCH + Duration::from_secs(1_800_000_000))
        .tick_duration(Duration::from_millis(5))
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(Duration::from_millis(20))
        .tcp_capacity(128)
        .simulation_duration(Duration::from_secs(60));
    builder
}

/// Engine limits for simulations: production defaults with quicker heartbeats.
pub fn engine_config() -> Config {
    Config {
        ping_interval: Duration::from_millis(500),
        idle_timeout: Duration::from_secs(3),
        ..Config::default()
    }
}

/// How the simulated server is started.
#[derive(Clone, Debug)]
pub struct ServerSpec {
    pub engine: Config,
    /// Time a socket may accept no bytes before the server drops the connection.
    pub write_timeout: Duration,
    /// When (simulated time since the run started) the server shuts down gracefully, if ever.
    pub shutdown_at: Option<Duration>,
    /// The message store's simulated disk (strict durability); `None`: in memory only.
    pub disk: Option<chat_server::Disk>,
    /// Rooms whose history a start reads before serving (`--preload-rooms`); the others read
    /// theirs when first joined.
    pub preload_rooms: usize,
}

impl Default for ServerSpec {
    fn default() -> Self {
        Self {
            engine: engine_config(),
            write_timeout: Settings::default().write_timeout,
            shutdown_at: None,
            disk: None,
            preload_rooms: chat_server::StoreSettings::default().preload_rooms,
        }
    }
}

/// The server's settings for its `start`-th start (1-based): fixed wall clock, epoch `sim-N`.
pub fn settings(spec: &ServerSpec, start: u64) -> Settings {
    Settings {
        engine: spec.engine.clone(),
        epoch: Some(format!("sim-{start}")),
        allowed_origins: vec!["*".to_owned()],
        handshake_timeout: Duration::from_secs(5),
        write_timeout: spec.write_timeout,
        shutdown_grace: Duration::from_secs(2),
        wall_clock: WallClock::Anchored(UNIX_EPOCH + Duration::from_secs(1_800_000_000)),
        // Simulated sockets live on the simulation's thread, and a run must repeat exactly.
        fanout_threads: 0,
        store: chat_server::StoreSettings {
            at: spec
                .disk
                .clone()
                .map_or(chat_server::StoreAt::InMemory, chat_server::StoreAt::Disk),
            // A disk that takes its time, so a crash can land between acceptance and commit.
            commit_delay: Duration::from_millis(15),
            preload_rooms: spec.preload_rooms,
            ..chat_server::StoreSettings::default()
        },
        // Everything else (connection and hub bounds, message size) as the binary's defaults.
        ..Settings::default()
    }
}

/// Adds the `server` host running `chat_server::run`. Returns its start counter: every
/// `Sim::bounce` starts it again with the next epoch (`sim-1`, `sim-2`, ...).
pub fn add_server(sim: &mut turmoil::Sim<'_>, spec: ServerSpec) -> Arc<AtomicU64> {
    let starts = Arc::new(AtomicU64::new(0));
    let counter = starts.clone();
    sim.host(SERVER, move || {
        let start = counter.fetch_add(1, Ordering::SeqCst) + 1;
        let spec = spec.clone();
        async move {
            let listener = turmoil::net::TcpListener::bind(("0.0.0.0", PORT)).await?;
            let shutdown = async move {
                match spec.shutdown_at {
                    Some(at) => sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            chat_server::run(SimListener(listener), settings(&spec, start), shutdown).await?;
            Ok(())
        }
    });
    starts
}

/// How a cluster node is started, besides its [`ServerSpec`].
#[derive(Clone, Debug)]
pub struct NodeSpec {
    pub server: ServerSpec,
    /// How long its nickname claims and its alive key outlive it (`--presence-ttl`).
    pub presence_ttl: Duration,
}

/// Adds a cluster node: host `name` running `chat_server::run_with_backend` on the sim broker
/// ([`broker::add_broker`]). Its epoch, which is also its identity among the nodes, is
/// `NAME-N` for its `N`th start. Returns its start counter.
pub fn add_node(sim: &mut turmoil::Sim<'_>, name: &str, spec: NodeSpec) -> Arc<AtomicU64> {
    let starts = Arc::new(AtomicU64::new(0));
    let counter = starts.clone();
    let host = name.to_owned();
    sim.host(name, move || {
        let start = counter.fetch_add(1, Ordering::SeqCst) + 1;
        let spec = spec.clone();
        let epoch = format!("{host}-{start}");
        async move {
            let listener = turmoil::net::TcpListener::bind(("0.0.0.0", PORT)).await?;
            let mut settings = settings(&spec.server, start);
            settings.epoch = Some(epoch);
            settings.presence_ttl = spec.presence_ttl;
            let backend = broker::SimBackend::new();
            let shutdown = std::future::pending();
            chat_server::run_with_backend(SimListener(listener), settings, backend, shutdown)
                .await?;
            Ok(())
        }
    });
    starts
}

/// Runs the simulation to the end; a client's error or panic fails the test.
pub fn run(sim: &mut turmoil::Sim<'_>) {
    if let Err(e) = sim.run() {
        panic!("the simulation failed: {e}");
    }
}

/// Runs the simulation one step; `false` once it is over. For scenarios that act between steps
/// (crash a host at a given time); a client's error or panic fails the test.
pub fn step(sim: &mut turmoil::Sim<'_>) -> bool {
    match sim.step() {
        Ok(done) => !done,
        Err(e) => panic!("the simulation failed: {e}"),
    }
}

/// A join request for `room` as `nick`.
pub fn join(room: &str, nick: &str) -> chat_engine::JoinRequest {
    chat_engine::JoinRequest {
        room: Some(room.to_owned()),
        nick: Some(nick.to_owned()),
        ..chat_engine::JoinRequest::default()
    }
}

/// The checker limits matching `spec`.
pub fn limits(spec: &ServerSpec) -> checker::Limits {
    checker::Limits {
        queue_frames_max: spec.engine.queue_frames_max,
    }
}
