//! Shared harness of the fuzz targets: one in-memory connection served by the real
//! `chat_server::run`, and checkers for what the server wrote back.
//!
//! The server is driven through its public seam only: [`chat_server::run`] with a [`Listener`]
//! whose single `accept` yields one end of a `tokio::io::duplex` pipe. Each input gets a fresh
//! current-thread runtime with a paused clock, so every timeout (handshake, idle, linger, write,
//! shutdown grace) fires as soon as the runtime has nothing else to do: a run is bounded by the
//! work its input causes, not by wall-clock time.

pub mod engine_ops;
pub mod http;
pub mod replay;
pub mod websocket;

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, SystemTime};

use chat_server::{Listener, Settings, StaticSource, WallClock};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

/// Virtual time after which a connection that has not ended counts as hung (a liveness bug).
pub const HANG_LIMIT: Duration = Duration::from_secs(3600);

/// The upgrade request `ws_frames` prefixes to every input: a valid handshake to `/ws`.
pub const UPGRADE_REQUEST: &[u8] = b"GET /ws?nick=fuzz&room=lobby HTTP/1.1\r\n\
Host: localhost\r\n\
Upgrade: websocket\r\n\
Connection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Version: 13\r\n\
\r\n";

/// The admin token of the fuzzed server, so `/admin/kick` is reachable.
pub const ADMIN_TOKEN: &str = "fuzz-token";

/// Production settings with the limits scaled down so inputs of a few KiB reach every refusal
/// (message-size cap, text length, rate limit), and a fixed epoch and wall clock so runs are
/// deterministic.
pub fn settings() -> Settings {
    let mut settings = Settings {
        epoch: Some("fuzz".to_owned()),
        static_source: StaticSource::Embedded,
        max_message_bytes: 2048,
        // One connection never fans out, and a run must repeat exactly.
        fanout_threads: 0,
        admin_token: Some(ADMIN_TOKEN.to_owned()),
        wall_clock: WallClock::Anchored(
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        ),
        ..Settings::default()
    };
    settings.engine.text_bytes_max = 256;
    settings
}

/// A listener that yields one connection, then never another.
struct OneConnection(Option<DuplexStream>);

const PEER: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 40000);

impl Listener for OneConnection {
    type Io = DuplexStream;

    async fn accept(&mut self) -> io::Result<(DuplexStream, SocketAddr)> {
        match self.0.take() {
            Some(io) => Ok((io, PEER)),
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 8080))
    }
}

/// How the client writes its bytes: the input length picks the chunk size, so the same corpus
/// exercises both whole-buffer reads and frames split across many reads (with a yield between
/// chunks the server sees each chunk separately).
pub fn chunk_size(len: usize) -> usize {
    match len % 4 {
        0 => usize::MAX,
        1 => 3,
        2 => 61,
        _ => 509,
    }
}

/// With `CHAT_FUZZ_PRINT=1` in the environment, prints what the server wrote (for replaying one
/// input: `CHAT_FUZZ_PRINT=1 cargo fuzz run ws_frames fuzz/corpus/ws_frames/seed-flood`).
pub fn print_output(out: &[u8]) {
    static PRINT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *PRINT.get_or_init(|| std::env::var_os("CHAT_FUZZ_PRINT").is_some()) {
        eprintln!(
            "--- server output ({} bytes):\n{}",
            out.len(),
            out.escape_ascii()
        );
    }
}

/// Serves one connection whose client sends `input` (in `chunk`-byte writes), then ends its
/// write side; returns every byte the server wrote until it ended the connection.
///
/// Panics if the connection is still open after [`HANG_LIMIT`] of virtual time, or if the
/// server fails to start or stop.
pub fn serve_one(input: &[u8], chunk: usize) -> Vec<u8> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime");
    runtime.block_on(async {
        let (client, server) = tokio::io::duplex(64 << 10);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(chat_server::run(
            OneConnection(Some(server)),
            settings(),
            async {
                let _ = stopped.await;
            },
        ));
        let (mut read, mut write) = tokio::io::split(client);
        let writer = async move {
            for piece in input.chunks(chunk.max(1)) {
                // The server may hang up first (close, refusal): the rest is simply not sent.
                if write.write_all(piece).await.is_err() {
                    return;
                }
                tokio::task::yield_now().await;
            }
            let _ = write.shutdown().await;
        };
        let reader = async move {
            let mut out = Vec::new();
            read.read_to_end(&mut out)
                .await
                .expect("reading from a duplex pipe cannot fail");
            out
        };
        let out = tokio::time::timeout(HANG_LIMIT, async {
            let ((), out) = tokio::join!(writer, reader);
            out
        })
        .await
        .unwrap_or_else(|_| panic!("the connection was still open after {HANG_LIMIT:?}"));
        print_output(&out);
        let _ = stop.send(());
        tokio::time::timeout(HANG_LIMIT, server)
            .await
            .expect("the server did not stop after shutdown")
            .expect("the server task panicked")
            .expect("the server failed");
        out
    })
}
