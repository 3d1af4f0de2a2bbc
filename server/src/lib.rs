//! `chat-server`: hyper 1 + fastwebsockets + tokio around `chat-engine`.
//!
//! [`run`] serves HTTP and WebSockets on any [`Listener`], so tests pass a TCP listener on
//! `127.0.0.1:0` and the simulations pass turmoil's: the very same code runs on both.

pub mod cli;
mod clock;
mod connection;
mod http;
mod hub;
mod link;
pub mod listener;
mod metrics;
mod origin;
pub mod settings;
mod static_files;
#[cfg(any(test, feature = "test-kit"))]
pub mod test_kit;
mod ws_read;
mod ws_write;

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
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use connection::{serve_echo, ConnLimits};
pub use listener::Listener;
pub use settings::{Settings, StaticSource, WallClock};

use crate::clock::Clock;
use crate::http::AppState;
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::static_files::StaticFiles;

/// The URL people should open, for the startup line: an unspecified address means "this host".
pub fn display_url(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        format!("http://localhost:{}", addr.port())
    } else {
        format!("http://{addr}")
    }
}

/// Serves until `shutdown` resolves, then closes every WebSocket with 1001 and waits (at most
/// `shutdown_grace`) for connections to finish.
pub async fn run<L: Listener>(
    mut listener: L,
    settings: Settings,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let addr = listener.local_addr()?;
    let engine = Engine::new(settings.engine.clone(), settings.epoch.clone())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let statics = StaticFiles::open(&settings.static_source)?;
    let clock = Clock::new(settings.wall_clock);
    let metrics = Arc::new(Metrics::new());
    let (hub, stats) = Hub::new(engine, clock, metrics.clone(), settings.hub_turn);
    let (hub_handle, inbox) = Hub::channel(settings.hub_inbox);
    let stop_hub = CancellationToken::new();
    let hub_task = tokio::spawn(hub.run(inbox, stop_hub.clone()));
    let tracker = TaskTracker::new();
    let grace = settings.shutdown_grace;
    let handshake_timeout = settings.handshake_timeout;
    let state = Arc::new(AppState {
        settings,
        hub: hub_handle,
        stats,
        metrics,
        statics,
        clock,
        connections: Arc::new(AtomicUsize::new(0)),
        tracker: tracker.clone(),
    });
    // HTTP connections (keep-alive, or mid-handshake) are told to finish at shutdown.
    let http_tracker = TaskTracker::new();
    let stop_http = CancellationToken::new();
    if state.settings.allowed_origins.iter().any(|o| o == "*") {
        tracing::warn!("--allowed-origin '*': any web page may open WebSockets to this server");
    }
    tracing::info!("Server started on {}", display_url(addr));

    let mut shutdown = pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (io, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let state = state.clone();
        let service = service_fn(move |req| http::route(req, state.clone()));
        let mut builder = http1::Builder::new();
        // Slowloris: a connection gets this long to send its request headers.
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(handshake_timeout);
        let conn = builder
            .serve_connection(TokioIo::new(io), service)
            .with_upgrades();
        let stop = stop_http.clone();
        http_tracker.spawn(async move {
            let mut conn = pin!(conn);
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
        });
    }

    // Stop accepting first, so nobody new arrives while we say goodbye.
    drop(listener);
    tracing::info!("shutting down: closing every connection with 1001");
    stop_hub.cancel();
    stop_http.cancel();
    tracker.close();
    http_tracker.close();
    let drained = tokio::time::timeout(grace, async {
        let _ = hub_task.await;
        http_tracker.wait().await;
        tracker.wait().await;
    })
    .await;
    if drained.is_err() {
        tracing::warn!(grace = ?grace, "some connections did not finish within the shutdown grace period");
    }
    Ok(())
}
