//! The accept seam: the server takes any listener, so tests bind `127.0.0.1:0` and simulations
//! pass turmoil's simulated network, and the very same serving code runs on both.

use std::future::Future;
use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite};

/// A TCP listener as the standard library makes one (address reuse on Unix, so a restart need
/// not wait out the old sockets' TIME_WAIT), but queueing up to `backlog` connections for
/// accepting (`--listen-backlog`) instead of its 128. Must run within a tokio runtime.
pub fn listen_tcp(addr: SocketAddr, backlog: u32) -> io::Result<tokio::net::TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Connections the server has not accepted yet wait in the kernel's queue, as many as the
    /// backlog: past it (the standard library's 128) a SYN is dropped and the client retries a
    /// second or more later, which is what a burst of reconnects met.
    #[tokio::test]
    async fn a_burst_of_connections_past_128_waits_in_the_queue() {
        let listener =
            listen_tcp("127.0.0.1:0".parse().expect("an address"), 4096).expect("listens");
        let addr = listener.local_addr().expect("bound");
        // The kernel caps every backlog at net.core.somaxconn (4096 by default since Linux 5.4).
        let cap = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .ok()
            .and_then(|text| text.trim().parse::<usize>().ok())
            .unwrap_or(4096);
        let mut waiting = Vec::new();
        for n in 0..cap.min(400) {
            let connect = tokio::net::TcpStream::connect(addr);
            match tokio::time::timeout(Duration::from_millis(500), connect).await {
                Ok(Ok(stream)) => waiting.push(stream),
                Ok(Err(e)) => panic!("connection {n} refused: {e}"),
                Err(_) => panic!("connection {n} was not queued: the backlog is smaller"),
            }
        }
        let (_first, _) = listener.accept().await.expect("the first one is accepted");
    }
}
