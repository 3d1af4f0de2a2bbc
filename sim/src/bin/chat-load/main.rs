//! `chat-load`: a load generator for chat-server over real loopback WebSockets.
//!
//! It opens `--clients` connections (spread over `--rooms` rooms), waits until everyone has joined
//! and seen every join notice, then lets `--senders` of them send chat messages for `--duration`
//! seconds, each at `--rate` messages/s or as fast as it can (open loop, or closed loop with
//! `--window` unacknowledged messages at most). Every message carries its sender, number and send
//! time, so each receiving client measures end-to-end latency and notices any message it never
//! got. `--slow` clients stop reading once sending starts. `--connect-only` just holds the
//! connections for `--duration` seconds, to measure the server's memory per connection.
//! `--churn` and `--attackers` add background clients while the measured ones send (see
//! `background.rs`), and `--rss-every` records the server's memory over the run.
//!
//! Prints a summary, then, as its last line, one JSON object with every figure. Only loopback
//! targets are accepted, and every phase is bounded in time.

mod background;
mod client;
mod procfs;
mod report;
mod ws;

use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use clap::Parser;
use tokio::sync::{watch, Semaphore};

use client::{ClientResult, Phase, Progress, Role, SendPlan, SenderState, Shared};

/// Load generator for chat-server (loopback only).
#[derive(Debug, Parser)]
#[command(name = "chat-load", version, about)]
pub(crate) struct Args {
    /// WebSocket URL of the server (loopback only). Given more than once (the nodes of a
    /// cluster), client i connects to URL i mod their count.
    #[arg(long, default_value = "ws://127.0.0.1:8080/ws")]
    url: Vec<String>,
    /// Clients to connect.
    #[arg(long, default_value_t = 100)]
    clients: usize,
    /// How many of the clients send (the first ones, spread round-robin over the rooms).
    #[arg(long, default_value_t = 10)]
    senders: usize,
    /// Messages per second per sender; 0 sends as fast as possible.
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// Closed loop: most messages per sender sent but not yet received back; 0 is open loop.
    #[arg(long, default_value_t = 0)]
    window: u64,
    /// Most frames per write when sending as fast as possible.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Filler bytes appended to every message text.
    #[arg(long, default_value_t = 0)]
    pad: usize,
    /// The filler is double quotes (`\"` in the JSON): every frame twice its text's bytes.
    #[arg(long)]
    pad_quoted: bool,
    /// Seconds of sending (or of holding the connections with --connect-only).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Longest wait, in seconds, after sending for every message to arrive.
    #[arg(long, default_value_t = 2.0)]
    drain: f64,
    /// Rooms to spread the clients over (client i joins room i mod rooms).
    #[arg(long, default_value_t = 1)]
    rooms: usize,
    /// Room name prefix (rooms are PREFIX0, PREFIX1, ...).
    #[arg(long, default_value = "load")]
    room_prefix: String,
    /// Clients (the last ones) that stop reading once sending starts.
    #[arg(long, default_value_t = 0)]
    slow: usize,
    /// Only connect and hold the connections idle (memory per connection).
    #[arg(long)]
    connect_only: bool,
    /// The server's pid, for its CPU seconds and RSS from /proc.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Handshakes in progress at once.
    #[arg(long, default_value_t = 128)]
    connect_concurrency: usize,
    /// Longest wait, in seconds, for every client to connect and see every join notice.
    #[arg(long, default_value_t = 60.0)]
    join_timeout: f64,
    /// Worker threads of the generator.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Initial read buffer per client, bytes (grows for larger frames).
    #[arg(long, default_value_t = 8192)]
    read_buffer: usize,
    /// A label copied into the JSON output.
    #[arg(long, default_value = "")]
    label: String,
    /// What the server speaks: `chat` (this project's protocol: a client is in once welcomed,
    /// and ready once it has counted every member of its room), or `go-seed` (the classic Go
    /// hub, ../shared/peers/go-seed: no welcome, no rooms; a client is ready once its upgrade is
    /// done, and sending starts `--settle` seconds after the last one).
    #[arg(long, value_enum, default_value = "chat")]
    peer: Peer,
    /// With `--peer go-seed`: seconds to wait after every upgrade, for the hub to register the
    /// clients (it registers them after answering the upgrade).
    #[arg(long, default_value_t = 1.0)]
    settle: f64,
    /// Background clients that connect to the measured clients' room, chat a little and leave
    /// at random, over and over while the measured clients send (not counted among them).
    #[arg(long, default_value_t = 0)]
    churn: usize,
    /// Background attackers while the measured clients send, kinds in turn: history poisoner
    /// (maximal messages, a new room every few), reconnect loop, typing flood, ping flood,
    /// room switcher.
    #[arg(long, default_value_t = 0)]
    attackers: usize,
    /// Text bytes of a poisoner's messages (the server's --max-text-bytes).
    #[arg(long, default_value_t = 4096)]
    attack_text_bytes: usize,
    /// Seconds between samples of the server's RSS while the measured clients send (needs
    /// --server-pid); 0: none.
    #[arg(long, default_value_t = 0.0)]
    rss_every: f64,
}

/// The protocol of the server under load.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Peer {
    Chat,
    GoSeed,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let nofile = procfs::raise_nofile_limit();
    if let Err(e) = check(&args, nofile) {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn check(args: &Args, nofile: u64) -> Result<(), String> {
    if args.clients == 0 {
        return Err("--clients must be at least 1".into());
    }
    if args.senders + args.slow > args.clients {
        return Err("--senders plus --slow must not exceed --clients".into());
    }
    if args.rooms == 0 || args.rooms > args.clients {
        return Err("--rooms must be between 1 and --clients".into());
    }
    if args.peer == Peer::GoSeed && args.rooms != 1 {
        return Err("the Go hub has no rooms: --peer go-seed needs --rooms 1".into());
    }
    if !(0.0..=60.0).contains(&args.settle) {
        return Err("--settle must be in [0, 60] seconds".into());
    }
    if !(args.duration > 0.0 && args.duration <= 600.0 && (0.0..=60.0).contains(&args.drain)) {
        return Err("--duration must be in (0, 600] and --drain in [0, 60] seconds".into());
    }
    if args.rate < 0.0 || !args.rate.is_finite() {
        return Err("--rate must be 0 (as fast as possible) or positive".into());
    }
    if args.rss_every < 0.0 || (args.rss_every > 0.0 && args.server_pid.is_none()) {
        return Err("--rss-every needs --server-pid and a positive number of seconds".into());
    }
    if args.connect_only && args.churn + args.attackers > 0 {
        return Err("--churn and --attackers run beside senders, not with --connect-only".into());
    }
    let needed = (args.clients + args.churn + args.attackers) as u64 + 64;
    if needed > nofile {
        return Err(format!(
            "{} clients need about {needed} open files, but the limit is {nofile}",
            args.clients
        ));
    }
    Ok(())
}

/// Polls `done` every 10 ms until it holds or `limit` passes; whether it held.
async fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn run(args: Args) -> Result<String, String> {
    let targets = (args.url.iter())
        .map(|url| ws::Target::parse(url))
        .collect::<Result<Vec<_>, _>>()?;
    let target = targets.first().cloned().ok_or("no --url")?;
    let server = args.server_pid.map(|p| p.to_string());
    let sample_server = || server.as_deref().and_then(procfs::sample);
    let server_idle = sample_server();
    if args.server_pid.is_some() && server_idle.is_none() {
        return Err("cannot read /proc of --server-pid".into());
    }
    let generator_start = procfs::sample("self");

    let senders = if args.connect_only { 0 } else { args.senders };
    let shared = Arc::new(Shared {
        target,
        targets,
        plan: SendPlan {
            rate: args.rate,
            window: args.window,
            batch: args.batch,
            pad: args.pad,
            pad_quoted: args.pad_quoted,
            senders,
        },
        senders: (0..senders).map(|_| SenderState::default()).collect(),
        progress: (0..args.clients)
            .map(|_| {
                let p = Progress::default();
                p.fd.store(-1, Ordering::Relaxed);
                p
            })
            .collect(),
        connected: Default::default(),
        failed: Default::default(),
        ready: Default::default(),
        first_error: Default::default(),
        window: OnceLock::new(),
        connect_gate: Semaphore::new(args.connect_concurrency.max(1)),
        read_buffer: args.read_buffer.max(256),
        peer: args.peer,
    });
    let (phase_tx, phase_rx) = watch::channel(Phase::Joining);
    let room_of = |i: usize| i % args.rooms;
    let room_size = |r: usize| (args.clients - r).div_ceil(args.rooms);
    let roles: Vec<Role> = (0..args.clients)
        .map(|i| {
            if i < senders {
                Role::Sender(i)
            } else if i >= args.clients - args.slow && !args.connect_only {
                Role::Slow
            } else {
                Role::Reader
            }
        })
        .collect();

    let connect_started = Instant::now();
    let tasks: Vec<_> = (0..args.clients)
        .map(|i| {
            let room = room_of(i);
            tokio::spawn(client::run(
                i,
                room,
                room_size(room),
                format!("{}{room}", args.room_prefix),
                roles[i],
                shared.clone(),
                phase_rx.clone(),
            ))
        })
        .collect();
    let join_limit = Duration::from_secs_f64(args.join_timeout);
    let all_in = wait_until(join_limit, || {
        shared.connected.load(Ordering::Relaxed) + shared.failed.load(Ordering::Relaxed)
            >= args.clients
    })
    .await;
    let connect_s = connect_started.elapsed().as_secs_f64();
    let joined = wait_until(join_limit.saturating_sub(connect_started.elapsed()), || {
        shared.ready.load(Ordering::Relaxed) >= shared.connected.load(Ordering::Relaxed)
    })
    .await;
    if args.peer == Peer::GoSeed {
        tokio::time::sleep(Duration::from_secs_f64(args.settle)).await;
    }
    let settle_s = connect_started.elapsed().as_secs_f64();
    let connected = shared.connected.load(Ordering::Relaxed);
    println!(
        "connected {connected}/{} clients in {connect_s:.2} s, all join notices seen after {settle_s:.2} s{}",
        args.clients,
        if all_in && joined { "" } else { " (TIMED OUT)" }
    );
    if let Some(e) = shared.first_error.lock().expect("not poisoned").as_ref() {
        println!("first connect error: {e}");
    }

    let mut out = report::Report::new(&args);
    out.connected = connected;
    out.connect_failures = shared.failed.load(Ordering::Relaxed);
    out.connect_s = connect_s;
    out.settle_s = settle_s;
    out.server_idle = server_idle;

    if args.connect_only {
        let held = sample_server();
        tokio::time::sleep(Duration::from_secs_f64(args.duration)).await;
        out.held_s = args.duration;
        out.server_held = held;
        out.server_end = sample_server();
    } else {
        let server_start = sample_server();
        let start = tokio::time::Instant::now();
        let deadline = start + Duration::from_secs_f64(args.duration);
        let _ = shared.window.set((start, deadline));
        let send_started = Instant::now();
        out.send_started_ns = client::unix_nanos();
        phase_tx.send_replace(Phase::Sending);
        let (stop_background, stopped) = watch::channel(false);
        let setup = Arc::new(background::Setup {
            target: shared.target.clone(),
            room: format!("{}0", args.room_prefix),
            text_bytes: args.attack_text_bytes,
            tally: background::Tally::default(),
        });
        let kinds = (0..args.churn)
            .map(|_| background::Kind::Churner)
            .chain((0..args.attackers).map(background::attacker));
        let background: Vec<_> = kinds
            .enumerate()
            .map(|(i, kind)| tokio::spawn(background::run(i, kind, setup.clone(), stopped.clone())))
            .collect();
        let curve = (args.rss_every > 0.0).then(|| {
            let every = Duration::from_secs_f64(args.rss_every);
            let pid = server.clone();
            let sample = move || pid.as_deref().and_then(procfs::sample);
            tokio::spawn(async move {
                let mut curve = Vec::new();
                let mut ticker = tokio::time::interval(every);
                while tokio::time::Instant::now() < deadline {
                    ticker.tick().await;
                    if let Some(s) = sample() {
                        curve.push((send_started.elapsed().as_secs_f64(), s.rss_kb));
                    }
                }
                curve
            })
        });
        tokio::time::sleep_until(deadline).await;
        stop_background.send_replace(true);
        for task in background {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        out.background = Some(setup.tally.json());
        if let Some(curve) = curve {
            out.rss_curve = curve.await.unwrap_or_default();
        }
        let _ = wait_until(Duration::from_secs(2), || {
            shared
                .senders
                .iter()
                .all(|s| s.done.load(Ordering::Acquire))
        })
        .await;
        let send_s = send_started.elapsed().as_secs_f64();
        // Drained when every client that is still connected has every message of every sender
        // that is still connected, and deliveries (also of cut-off senders) stopped for 200 ms.
        let mut last_total = u64::MAX;
        let mut still_since = Instant::now();
        let drained = wait_until(Duration::from_secs_f64(args.drain), || {
            let total: u64 = shared
                .progress
                .iter()
                .map(|p| p.delivered.load(Ordering::Relaxed))
                .sum();
            if total != last_total {
                last_total = total;
                still_since = Instant::now();
            }
            if still_since.elapsed() < Duration::from_millis(200) {
                return false;
            }
            let sent: Vec<u64> = shared
                .senders
                .iter()
                .map(|s| s.sent.load(Ordering::Acquire))
                .collect();
            let mut per_room = vec![0u64; args.rooms];
            for (id, n) in sent.iter().enumerate() {
                // A sender that was cut off counts only what arrived (see `Report::tally`).
                if !shared.progress[id].ended.load(Ordering::Acquire) {
                    per_room[room_of(id)] += n;
                }
            }
            shared.progress.iter().enumerate().all(|(i, p)| {
                roles[i] == Role::Slow
                    || p.ended.load(Ordering::Acquire)
                    || p.delivered.load(Ordering::Relaxed) >= per_room[room_of(i)]
            })
        })
        .await;
        out.send_s = send_s;
        out.drained = drained;
        out.drain_s = send_started.elapsed().as_secs_f64() - send_s;
        out.server_start = server_start;
        out.server_end = sample_server();
    }

    // Stop: wake every reader that still waits on its socket.
    phase_tx.send_replace(Phase::Stop);
    for (i, p) in shared.progress.iter().enumerate() {
        let fd = p.fd.load(Ordering::Acquire);
        if fd >= 0 && roles[i] != Role::Slow && !p.ended.load(Ordering::Acquire) {
            // SAFETY: shutdown on a descriptor has no memory-safety preconditions; the client
            // holds this socket open until it has cleared `fd`.
            unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
        }
    }
    let mut results: Vec<ClientResult> = Vec::with_capacity(tasks.len());
    for task in tasks {
        match tokio::time::timeout(Duration::from_secs(5), task).await {
            Ok(Ok(result)) => results.push(result),
            _ => return Err("a client did not stop within 5 s".into()),
        }
    }
    out.generator_cpu_s = match (generator_start, procfs::sample("self")) {
        (Some(a), Some(b)) => b.cpu_s - a.cpu_s,
        _ => 0.0,
    };
    let sent: Vec<(u64, bool)> = shared
        .senders
        .iter()
        .map(|s| {
            (
                s.sent.load(Ordering::Acquire),
                s.failed.load(Ordering::Acquire),
            )
        })
        .collect();
    out.tally(&results, &sent, args.rooms);
    out.print_summary();
    Ok(out.json())
}
