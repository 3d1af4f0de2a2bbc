//! A connection's write half as its writer task and the hub's direct writes use it: any byte
//! stream, or a TCP stream's own write half. On TCP, a direct write is `try_write`: one
//! non-blocking `send` with no waker, no lock shared with the read half and no trip through the
//! async write machinery, which was a twentieth of the server's CPU when every delivery is its
//! own `send` (BENCHMARKS.md, "Large rooms", scenario 7).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use tokio::io::AsyncWrite;
use tokio::net::tcp::OwnedWriteHalf;

/// The socket's write half.
pub(crate) struct Sink(Kind);

enum Kind {
    Tcp(OwnedWriteHalf),
    Any(Pin<Box<dyn AsyncWrite + Send>>),
}

impl Sink {
    /// Any writable byte stream (a simulated socket, an in-memory pipe, hyper's upgraded IO).
    pub(crate) fn new(write: impl AsyncWrite + Send + 'static) -> Self {
        Self(Kind::Any(Box::pin(write)))
    }

    /// A TCP stream's own write half.
    pub(crate) fn tcp(write: OwnedWriteHalf) -> Self {
        Self(Kind::Tcp(write))
    }

    /// Writes what the socket takes right now and never waits. An error counts as nothing
    /// written: the writer task meets it again and reports the connection gone.
    pub(crate) fn write_now(&mut self, buf: &[u8]) -> usize {
        if buf.is_empty() {
            return 0;
        }
        match &mut self.0 {
            Kind::Tcp(tcp) => tcp.try_write(buf).unwrap_or(0),
            // The waker is a no-op: if the socket is full, its writer task retries with its own
            // (the writer owns the socket from then on, so nothing registers one over it).
            Kind::Any(any) => match any
                .as_mut()
                .poll_write(&mut Context::from_waker(Waker::noop()), buf)
            {
                Poll::Ready(Ok(n)) => n,
                Poll::Ready(Err(_)) | Poll::Pending => 0,
            },
        }
    }

    pub(crate) fn poll_write(
        &mut self,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.0 {
            Kind::Tcp(tcp) => Pin::new(tcp).poll_write(cx, buf),
            Kind::Any(any) => any.as_mut().poll_write(cx, buf),
        }
    }

    pub(crate) fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.0 {
            Kind::Tcp(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Kind::Any(any) => any.as_mut().poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;

    /// On TCP a direct write goes out whole while the socket has room, and is refused (0 bytes,
    /// never an error or a wait) once it has none.
    #[tokio::test]
    async fn direct_writes_on_tcp_take_what_fits_and_never_wait() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let client = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        let (_read, write) = server.into_split();
        let mut sink = Sink::tcp(write);
        // Wait until the socket reports writable once, as a connection's first write would.
        std::future::poll_fn(|cx| sink.poll_write(cx, b""))
            .await
            .expect("writable");
        assert_eq!(sink.write_now(b"hello"), 5);
        let mut peer = client;
        let mut got = [0u8; 5];
        peer.read_exact(&mut got).await.expect("read");
        assert_eq!(&got, b"hello");
        let chunk = vec![0u8; 1 << 20];
        let mut total = 0;
        while sink.write_now(&chunk) > 0 {
            total += 1;
            assert!(total < 1000, "the socket never filled");
        }
        assert_eq!(sink.write_now(&chunk), 0, "full: nothing, at once");
    }
}
