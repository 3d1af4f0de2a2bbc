//! The server's life, shaped like mini-redis's `server::run`: set up the hub and what every
//! connection shares ([`Server::start`]), accept until told to stop ([`Server::accept_loop`]),
//! serve each connection's HTTP on its own task ([`serve_http`]), then shut down in order
//! ([`Server::shut_down`]).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use chat_engine::Engine;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clock::{new_epoch, Clock};
use crate::http::{self, AppState};
use crate::hub::Hub;
use crate::listener::Listener;
use crate::metrics::Metrics;
use crate::origin::OriginPolicy;
use crate::settings::Settings;
use crate::static_files::StaticFiles;
use crate::ws_write::CLOSE_GOING_AWAY;

/// How long the accept loop waits after a failed accept (out of file descriptors and the
/// like), instead of spinning on an error that will not clear at once.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves until `shutdown` resolves, then closes every WebSocket with 1001 and waits (at most
/// `shutdown_grace`) for connections to finish.
pub async fn run<L: Listener>(
    mut listener: L,
    settings: Settings,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let server = Server::start(listener.local_addr()?, settings)?;
    // The accept loop never ends on its own: it runs until `shutdown` resolves and drops it.
    tokio::select! {
        biased;
        () = shutdown => {}
        () = server.accept_loop(&mut listener) => {}
    }
    // Stop accepting first, so nobody new arrives while we say goodbye.
    drop(listener);
    server.shut_down().await;
    Ok(())
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
    hub_task: JoinHandle<()>,
    /// Tells the hub to close every WebSocket with 1001 and end.
    stop_hub: CancellationToken,
    /// HTTP connections: keep-alive ones, and those still sending their request.
    http_tasks: TaskTracker,
    /// Tells HTTP connections to finish what they are serving and close.
    stop_http: CancellationToken,
}

impl Server {
    /// Builds the engine from `settings` (a fresh epoch unless one is given), spawns the hub
    /// that owns it, and opens the web client's files. Fails on settings the engine refuses and
    /// on a `--static-dir` that cannot be read, before anything is served.
    fn start(addr: SocketAddr, settings: Settings) -> io::Result<Self> {
        let epoch = settings.epoch.clone().unwrap_or_else(new_epoch);
        let engine = Engine::new(settings.engine.clone(), epoch)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let statics = StaticFiles::open(&settings.static_source)?;
        let clock = Clock::new(settings.wall_clock);
        let metrics = Arc::new(Metrics::new());
        let (mut hub, stats) = Hub::new(engine, clock, metrics.clone(), settings.hub_turn);
        let (hub_handle, inbox) = Hub::channel(settings.hub_inbox);
        hub.spread_writes(settings.fanout_threads);
        let stop_hub = CancellationToken::new();
        let hub_task = tokio::spawn(hub.run(inbox, stop_hub.clone()));
        let origins = OriginPolicy::new(&settings.allowed_origins, settings.public_url.as_deref())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
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
        });
        tracing::info!("Server started on {}", display_url(addr));
        Ok(Self {
            state,
            hub_task,
            stop_hub,
            http_tasks: TaskTracker::new(),
            stop_http: CancellationToken::new(),
        })
    }

    /// Accepts connections and gives each its own HTTP task, for as long as it is polled.
    async fn accept_loop<L: Listener>(&self, listener: &mut L) {
        loop {
            match listener.accept().await {
                Ok((io, peer)) => {
                    let serving = serve_http(io, peer, self.state.clone(), self.stop_http.clone());
                    self.http_tasks.spawn(serving);
                }
                // One connection's trouble never gets here (`Listener::accept`): this is the
                // listener's own, such as running out of file descriptors.
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            }
        }
    }

    /// Says goodbye to every connection and waits for them, at most `shutdown_grace`.
    async fn shut_down(self) {
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
        let drained = tokio::time::timeout(grace, async {
            let _ = self.hub_task.await;
            self.http_tasks.wait().await;
            self.state.tracker.wait().await;
        })
        .await;
        if drained.is_err() {
            tracing::warn!(grace = ?grace, "some connections did not finish within the shutdown grace period");
        }
    }
}

/// One accepted connection's HTTP: requests are routed to `http::route` (a WebSocket upgrade
/// spawns its connection's task there) until the peer closes or `stop` asks it to finish.
async fn serve_http<I>(io: I, peer: SocketAddr, state: Arc<AppState>, stop: CancellationToken)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let handshake_timeout = state.settings.handshake_timeout;
    let service = service_fn(move |req| http::route(req, state.clone()));
    let mut builder = http1::Builder::new();
    // Slowloris: a connection gets this long to send its request headers.
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(handshake_timeout);
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
}
