//! The server's life, shaped like mini-redis's `server::run`: set up the hub and what every
//! connection shares ([`Server::start`]), accept until told to stop ([`Server::accept_loop`]),
//! serve each connection's HTTP on its own task ([`serve_http`]), then shut down in order
//! ([`Server::shut_down`]).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chat_engine::Engine;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::metrics::gauge::Gauge;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::broker::redis::RedisBroker;
use crate::broker::Backend;
use crate::clock::{new_epoch, Clock};
use crate::clustering;
use crate::http::{self, AppState};
use crate::hub::{Hub, HubEnd};
use crate::keeping;
use crate::listener::Listener;
use crate::metrics::Metrics;
use crate::origin::OriginPolicy;
use crate::per_ip::PerIp;
use crate::settings::Settings;
use crate::starting;
use crate::static_files::StaticFiles;
use crate::write_deadline::WriteDeadline;
use crate::ws_write::CLOSE_GOING_AWAY;

/// hyper's limit on a request head, as a multiple of `--max-header-bytes` (see `serve_http`).
const HEAD_BUFFER_FACTOR: usize = 8;

/// How long the accept loop waits after a failed accept (out of file descriptors and the
/// like), instead of spinning on an error that will not clear at once.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Addresses the per-address table remembers besides those with WebSockets open (at most
/// `--max-connections` of them): room for the recent connectors whose rate it must remember.
const PER_IP_SPARE_ENTRIES: usize = 4096;

/// How long a connection refused for `--max-http-connections` is read (and what it sent thrown
/// away) after its `503`, so closing it does not reset the connection before the client has
/// read the answer (nginx's lingering close, bounded much tighter).
const REFUSED_LINGER: Duration = Duration::from_secs(1);

/// Serves until `shutdown` resolves, then closes every WebSocket with 1001 and waits (at most
/// `shutdown_grace`) for connections to finish. With `settings.broker`, the node joins the
/// cluster sharing that Redis first.
pub async fn run<L: Listener>(
    listener: L,
    mut settings: Settings,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let addr = listener.local_addr()?;
    let cluster = match settings.broker.clone() {
        Some(url) => {
            let options = clustering::redis_options(&settings);
            let connect = RedisBroker::connect(&url, options);
            Some(clustering::join(&url, connect, &mut settings).await?)
        }
        None => None,
    };
    serve(listener, addr, settings, cluster, shutdown).await
}

/// As [`run`], for a node of a cluster whose shared broker is `backend` instead of a Redis
/// (`settings.broker` is not used): the simulations run nodes on an in-memory broker this way.
pub async fn run_with_backend<L: Listener, B: Backend>(
    listener: L,
    mut settings: Settings,
    backend: B,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let addr = listener.local_addr()?;
    let connect = async { Ok(backend) };
    let cluster = clustering::join("(backend)", connect, &mut settings).await?;
    serve(listener, addr, settings, Some(cluster), shutdown).await
}

async fn serve<L: Listener, B: Backend>(
    mut listener: L,
    addr: SocketAddr,
    settings: Settings,
    cluster: Option<clustering::Cluster<B>>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let server = {
        // Until the server is built (the store's open can take a minute after a crash), every
        // request gets an answer: liveness yes, anything else 503, never a silent socket.
        let max_http = settings.max_http_connections;
        let header_timeout = settings.handshake_timeout;
        let mut start = pin!(Server::start(addr, settings, cluster));
        let answering = TaskTracker::new();
        loop {
            tokio::select! {
                biased;
                server = start.as_mut() => break server?,
                accepted = listener.accept() => match accepted {
                    Ok((io, _)) if answering.len() < max_http => {
                        answering.spawn(starting::answer(io, header_timeout));
                    }
                    Ok((io, _)) => {
                        answering.spawn(refuse_http_connection(io, max_http));
                    }
                    // Out of descriptors, say: the start goes on on its own thread meanwhile.
                    Err(_) => tokio::time::sleep(ACCEPT_BACKOFF).await,
                },
            }
        }
    };
    let fatal = server.fatal.clone();
    // The accept loop never ends on its own: it runs until `shutdown` resolves (or the store
    // fails for good) and drops it.
    tokio::select! {
        biased;
        () = shutdown => {}
        () = fatal.cancelled() => {}
        () = server.accept_loop(&mut listener) => {}
    }
    // Stop accepting first, so nobody new arrives while we say goodbye.
    drop(listener);
    match server.shut_down().await {
        Some(why) => Err(io::Error::other(why)),
        None => Ok(()),
    }
}

/// The URL people should open, for the startup line: an unspecified address means "this host".
pub fn display_url(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        format!("http://localhost:{}", addr.port())
    } else {
        format!("http://{addr}")
    }
}

/// A running server: what its connections share, and what shutdown stops and waits for.
struct Server {
    state: Arc<AppState>,
    /// The hub's task, which owns the engine.
    hub_task: JoinHandle<HubEnd>,
    /// Tells the hub to close every WebSocket with 1001 and end.
    stop_hub: CancellationToken,
    /// HTTP connections: keep-alive ones, and those still sending their request.
    http_tasks: TaskTracker,
    /// Tells HTTP connections to finish what they are serving and close.
    stop_http: CancellationToken,
    /// Cancelled by the hub when the server must stop (the store failed a sync).
    fatal: CancellationToken,
}

impl Server {
    /// Builds the engine from `settings` (a fresh epoch unless one is given), spawns the hub
    /// that owns it, and opens the web client's files. Fails on settings the engine refuses and
    /// on a `--static-dir` that cannot be read, before anything is served.
    async fn start<B: Backend>(
        addr: SocketAddr,
        mut settings: Settings,
        cluster: Option<clustering::Cluster<B>>,
    ) -> io::Result<Self> {
        let epoch = settings.epoch.clone().unwrap_or_else(new_epoch);
        let kept = match cluster {
            Some(_) => None,
            None => keeping::open_aside(&mut settings, &epoch).await?,
        };
        let node_epoch = epoch.clone();
        let engine = match (&kept, &cluster) {
            (Some(kept), _) => Engine::restore(settings.engine.clone(), epoch, kept.rooms.clone()),
            (None, Some(cluster)) => {
                Engine::restore(settings.engine.clone(), epoch, cluster.rooms.clone())
            }
            (None, None) => Engine::new(settings.engine.clone(), epoch),
        }
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let statics = StaticFiles::open(&settings.static_source)?;
        let origins = OriginPolicy::new(&settings.allowed_origins, settings.public_url.as_deref())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let clock = Clock::new(settings.wall_clock);
        let metrics = Arc::new(Metrics::new());
        let (mut hub, stats) = Hub::new(engine, clock, metrics.clone(), settings.hub_turn);
        let (hub_handle, inbox) = Hub::channel(settings.hub_inbox);
        hub.spread_writes(settings.fanout_threads);
        let fatal = CancellationToken::new();
        let store_stats = match kept {
            Some(kept) => {
                let stats = kept.store.stats();
                hub.keep_in(keeping::spawn(kept.store, &settings)?, fatal.clone());
                Some(stats)
            }
            None => None,
        };
        let broker = match cluster {
            Some(cluster) => {
                let handle = clustering::spawn(cluster, node_epoch)?;
                let stats = handle.stats.clone();
                hub.join_cluster(handle);
                Some(stats)
            }
            None => None,
        };
        let stop_hub = CancellationToken::new();
        let hub_task = tokio::spawn(hub.run(inbox, stop_hub.clone()));
        let per_ip = Arc::new(Mutex::new(PerIp::new(
            settings.max_connections_per_ip,
            settings.connect_rate_per_ip,
            settings
                .max_connections
                .saturating_add(PER_IP_SPARE_ENTRIES),
        )));
        let state = Arc::new(AppState {
            settings,
            hub: hub_handle,
            stats,
            metrics,
            statics,
            clock,
            origins,
            admin_failures: Default::default(),
            connections: Arc::new(AtomicUsize::new(0)),
            tracker: TaskTracker::new(),
            per_ip,
            store: store_stats,
            broker,
        });
        tracing::info!("Server started on {}", display_url(addr));
        Ok(Self {
            state,
            hub_task,
            stop_hub,
            http_tasks: TaskTracker::new(),
            stop_http: CancellationToken::new(),
            fatal,
        })
    }

    /// Accepts connections and gives each its own HTTP task, for as long as it is polled.
    async fn accept_loop<L: Listener>(&self, listener: &mut L) {
        let max_http = self.state.settings.max_http_connections;
        loop {
            match listener.accept().await {
                // Only this task adds to the count, so checking then adding is not a race.
                Ok((io, peer)) if self.state.metrics.http_connections.get() >= max_http as i64 => {
                    self.state.metrics.refuse("http_capacity");
                    tracing::warn!(peer = %peer, max = max_http, "refused an HTTP connection: --max-http-connections reached");
                    self.http_tasks.spawn(refuse_http_connection(io, max_http));
                }
                Ok((io, peer)) => {
                    let slot = HttpSlot::new(&self.state.metrics.http_connections);
                    let serving =
                        serve_http(io, peer, self.state.clone(), self.stop_http.clone(), slot);
                    self.http_tasks.spawn(serving);
                }
                // A connection that was reset or aborted before we took it is that one
                // connection's trouble: take the next at once.
                Err(e) if is_one_connections_error(&e) => {
                    tracing::debug!(error = %e, "an accepted connection failed; accepting the next");
                }
                // The listener's own trouble, such as running out of file descriptors.
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            }
        }
    }

    /// Says goodbye to every connection and waits for them, at most `shutdown_grace`, then
    /// closes the store cleanly. `Some`: why the hub stopped the server.
    async fn shut_down(self) -> Option<String> {
        let grace = self.state.settings.shutdown_grace;
        tracing::info!("shutting down: closing every connection with {CLOSE_GOING_AWAY}");
        // The hub queues a close frame after whatever each client was already sent, so nobody
        // loses a message that was on its way, then ends and lets go of the engine.
        self.stop_hub.cancel();
        // Keep-alive connections would otherwise wait for their next request for ever; each
        // finishes the response it is writing first.
        self.stop_http.cancel();
        // A tracker's `wait` returns only once it is closed: nothing more will be added that
        // shutdown would have to wait for. (A handshake still in flight may yet spawn its
        // WebSocket task; the hub is stopping, so that connection is told 1001 at once.)
        self.state.tracker.close();
        self.http_tasks.close();
        // Bounded: a client that never reads must not keep the process alive.
        let mut end = HubEnd::default();
        let drained = tokio::time::timeout(grace, async {
            if let Ok(ended) = self.hub_task.await {
                end = ended;
            }
            self.http_tasks.wait().await;
            self.state.tracker.wait().await;
        })
        .await;
        if drained.is_err() {
            tracing::warn!(grace = ?grace, "some connections did not finish within the shutdown grace period");
        }
        if let Some(store) = end.store {
            match store.shutdown().await {
                Ok(()) => tracing::info!("the message store was closed cleanly"),
                Err(e) => tracing::error!(error = %e, "the message store was not closed cleanly"),
            }
        }
        end.fatal
    }
}

/// Errors `accept` returns for one connection that went wrong before it was taken, not for
/// the listener (the list hyper 0.14's `AddrIncoming` used).
fn is_one_connections_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
    )
}

/// One plain HTTP connection counted in `chat_http_connections` (the `--max-http-connections`
/// cap); dropping it, when hyper lets go of the connection (closed or upgraded), uncounts it.
struct HttpSlot(Gauge);

impl HttpSlot {
    fn new(gauge: &Gauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for HttpSlot {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Over `--max-http-connections`: `503` without reading the request (hyper is not involved,
/// so a refused connection costs one small write), then a bounded lingering close.
async fn refuse_http_connection<I>(mut io: I, max: usize)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let body = format!("server busy ({max} HTTP connections), try again later\n");
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n\
         content-length: {}\r\nconnection: close\r\nretry-after: 1\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(REFUSED_LINGER, async {
        io.write_all(response.as_bytes()).await?;
        io.shutdown().await?;
        // Read what the client sent until it closes, at most 64 KiB: closing with unread bytes
        // would reset the connection, and a reset can discard the 503 before it is read.
        let mut sink = [0u8; 4096];
        let mut left = 64usize << 10;
        while left > 0 {
            let n = io.read(&mut sink).await?;
            if n == 0 {
                break;
            }
            left = left.saturating_sub(n);
        }
        io::Result::Ok(())
    })
    .await;
}

/// One accepted connection's HTTP: requests are routed to `http::route` (a WebSocket upgrade
/// spawns its connection's task there) until the peer closes or `stop` asks it to finish.
/// `slot` counts it until then.
async fn serve_http<I>(
    io: I,
    peer: SocketAddr,
    state: Arc<AppState>,
    stop: CancellationToken,
    slot: HttpSlot,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let settings = &state.settings;
    let (handshake_timeout, max_header_bytes) =
        (settings.handshake_timeout, settings.max_header_bytes);
    // A client that pipelines requests and never reads the answers would otherwise park this
    // connection for ever: hyper has no write timeout.
    let (io, disarm) = WriteDeadline::new(io, settings.write_timeout);
    let ip = peer.ip();
    let service = service_fn(move |req| http::route(req, ip, state.clone()));
    let mut builder = http1::Builder::new();
    // Slowloris: a connection gets this long to send its request headers. hyper restarts the
    // timer whenever a keep-alive connection goes idle, so it also closes one that sends no
    // next request in that time (tests/hostile_http.rs checks both).
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(handshake_timeout)
        // `route` answers heads over `max_header_bytes` with `431` (after the origin check, so
        // a huge refused `Origin` gets its `403`); this bounds what hyper buffers for one
        // connection's head before routing: more gets hyper's own `431` and a close.
        .max_header_size(max_header_bytes.saturating_mul(HEAD_BUFFER_FACTOR));
    let mut conn = pin!(builder
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades());
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    // hyper has let go: the socket is closed, or a WebSocket now, which has its own write
    // timeout and its own count.
    disarm.disarm();
    drop(slot);
    if let Err(e) = result {
        tracing::debug!(peer = %peer, error = %e, "HTTP connection ended with an error");
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::net::{Ipv4Addr, SocketAddrV4};
    use std::sync::Mutex;
    use std::time::Instant;

    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    use super::*;

    const PEER: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 40000));

    /// Hands out the given accept results in order, then waits for ever; notes when each
    /// accept was asked for.
    struct Scripted {
        accepts: VecDeque<io::Result<DuplexStream>>,
        asked: Arc<Mutex<Vec<Instant>>>,
    }

    impl Listener for Scripted {
        type Io = DuplexStream;

        async fn accept(&mut self) -> io::Result<(DuplexStream, SocketAddr)> {
            self.asked
                .lock()
                .expect("not poisoned")
                .push(Instant::now());
            match self.accepts.pop_front() {
                Some(accepted) => accepted.map(|io| (io, PEER)),
                None => std::future::pending().await,
            }
        }

        fn local_addr(&self) -> io::Result<SocketAddr> {
            Ok(PEER)
        }
    }

    /// The room epoch a client is welcomed with by a server started with `settings`.
    async fn welcome_epoch(settings: Settings) -> String {
        let (ours, mut client) = tokio::io::duplex(1 << 16);
        let listener = Scripted {
            accepts: VecDeque::from([Ok(ours)]),
            asked: Arc::default(),
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(run(listener, settings, async {
            let _ = stopped.await;
        }));
        let upgrade = "GET /ws?nick=ann HTTP/1.1\r\nHost: chat\r\nUpgrade: websocket\r\n\
            Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
            Sec-WebSocket-Version: 13\r\n\r\n";
        client.write_all(upgrade.as_bytes()).await.expect("written");
        // The 101 response, then the welcome: one unmasked text frame.
        let mut seen = Vec::new();
        let welcome = loop {
            let mut buf = [0u8; 4096];
            let n = tokio::time::timeout(Duration::from_secs(5), client.read(&mut buf))
                .await
                .expect("the welcome in time")
                .expect("read");
            assert_ne!(
                n,
                0,
                "the server hung up: {}",
                String::from_utf8_lossy(&seen)
            );
            seen.extend_from_slice(&buf[..n]);
            let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let (len, payload) = match &seen[end + 4..] {
                [0x81, 126, a, b, payload @ ..] => {
                    (usize::from(u16::from_be_bytes([*a, *b])), payload)
                }
                [0x81, len @ 0..126, payload @ ..] => (usize::from(*len), payload),
                _ => continue,
            };
            if payload.len() >= len {
                break payload[..len].to_vec();
            }
        };
        // Gone before the shutdown, so the server does not linger for its close.
        drop(client);
        stop.send(()).expect("running");
        running.await.expect("no panic").expect("run ok");
        let welcome: serde_json::Value = serde_json::from_slice(&welcome).expect("JSON");
        welcome["epoch"].as_str().expect("an epoch").to_owned()
    }

    /// Settings without an epoch get a fresh one at each start, so a client's `since` from a
    /// server that has since restarted is never honoured; a given epoch is used as it is.
    #[tokio::test]
    async fn each_start_without_a_given_epoch_has_its_own() {
        let first = welcome_epoch(Settings::default()).await;
        let second = welcome_epoch(Settings::default()).await;
        assert_ne!(first, second);
        let given = Settings {
            epoch: Some("given".to_owned()),
            ..Settings::default()
        };
        let epoch = welcome_epoch(given).await;
        assert!(epoch.starts_with("given"), "{epoch}");
    }

    #[tokio::test]
    async fn a_failed_accept_is_backed_off_and_the_next_connection_served() {
        let (ours, mut client) = tokio::io::duplex(4096);
        let asked = Arc::new(Mutex::new(Vec::new()));
        let listener = Scripted {
            accepts: VecDeque::from([Err(io::Error::other("too many open files")), Ok(ours)]),
            asked: asked.clone(),
        };
        let settings = Settings {
            epoch: Some("test".to_owned()),
            ..Settings::default()
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(run(listener, settings, async {
            let _ = stopped.await;
        }));
        client
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: chat\r\nConnection: close\r\n\r\n")
            .await
            .expect("written");
        let mut response = String::new();
        tokio::time::timeout(Duration::from_secs(5), client.read_to_string(&mut response))
            .await
            .expect("answered in time")
            .expect("read");
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        let asked = asked.lock().expect("not poisoned").clone();
        assert!(
            asked[1] - asked[0] >= ACCEPT_BACKOFF,
            "the loop waited before accepting again"
        );
        stop.send(()).expect("running");
        running.await.expect("no panic").expect("run ok");
    }

    /// One connection's failure (reset or aborted before it was taken) is not the listener's:
    /// the loop takes the next at once. A thousand of them in a row, each backed off, would
    /// take 100 s; the hang guard is a tenth of that.
    #[tokio::test]
    async fn one_connections_accept_error_is_not_backed_off() {
        let (ours, mut client) = tokio::io::duplex(4096);
        let mut accepts: VecDeque<io::Result<DuplexStream>> = (0..1000)
            .map(|_| Err(io::Error::from(io::ErrorKind::ConnectionAborted)))
            .collect();
        accepts.push_back(Ok(ours));
        let listener = Scripted {
            accepts,
            asked: Arc::default(),
        };
        let settings = Settings {
            epoch: Some("test".to_owned()),
            ..Settings::default()
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(run(listener, settings, async {
            let _ = stopped.await;
        }));
        client
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: chat\r\nConnection: close\r\n\r\n")
            .await
            .expect("written");
        let mut response = String::new();
        tokio::time::timeout(
            Duration::from_secs(10),
            client.read_to_string(&mut response),
        )
        .await
        .expect("served without a backoff per aborted connection")
        .expect("read");
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        stop.send(()).expect("running");
        running.await.expect("no panic").expect("run ok");
    }
}
