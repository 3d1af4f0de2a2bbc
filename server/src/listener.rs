//! The accept seam: the server takes any listener, so tests bind `127.0.0.1:0` and simulations
//! pass turmoil's simulated network, and the very same serving code runs on both.

use std::future::Future;
use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite};

/// A source of accepted byte streams.
pub trait Listener: Send + 'static {
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// Waits for the next connection. An error is the listener's, not one connection's: the
    /// accept loop backs off before trying again, so a problem with one accepted socket should
    /// be handled here (logged, the socket served or dropped) rather than returned.
    fn accept(&mut self) -> impl Future<Output = io::Result<(Self::Io, SocketAddr)>> + Send;

    /// The bound address (for the startup log line).
    fn local_addr(&self) -> io::Result<SocketAddr>;
}

impl Listener for tokio::net::TcpListener {
    type Io = tokio::net::TcpStream;

    async fn accept(&mut self) -> io::Result<(Self::Io, SocketAddr)> {
        let (stream, peer) = tokio::net::TcpListener::accept(self).await?;
        // Chat frames are small and latency-sensitive; writes are already batched by the writer.
        // Failing that costs this one socket some latency, nothing more: serve it anyway, and
        // keep accept errors for the listener's own trouble, which the accept loop backs off
        // from.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(peer = %peer, error = %e, "cannot set TCP_NODELAY; serving anyway");
        }
        Ok((stream, peer))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        tokio::net::TcpListener::local_addr(self)
    }
}
