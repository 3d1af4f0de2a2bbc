//! A connection's write half, as its writer task and the hub's direct writes use it: any byte
//! stream, or a TCP stream's own write half.
//!
//! On TCP a direct write is one non-blocking `send(2)` on the socket (through rustix), with no
//! waker, no lock shared with the read half and no trip through tokio's readiness tracking. When
//! every delivery is its own `send` (a large room at a modest rate), that machinery was about a
//! tenth of the server's CPU (BENCHMARKS.md, scenario 7). The writer task still goes through
//! tokio: if a direct write found the socket full, tokio's cached readiness is at worst stale,
//! and its next write attempt learns the truth and registers for the socket's wake-up.

use std::io;
use std::os::fd::AsFd;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use rustix::net::SendFlags;
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
            // The write half keeps the stream, so its descriptor, open while it is borrowed.
            Kind::Tcp(tcp) => {
                let flags = SendFlags::DONTWAIT | SendFlags::NOSIGNAL;
                rustix::net::send(tcp.as_ref().as_fd(), buf, flags).unwrap_or(0)
            }
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
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    async fn tcp_pair() -> (tokio::net::TcpStream, tokio::net::TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let client = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        (server, client)
    }

    /// A shutdown reaches the peer, which reads what was written and then the end (a close's
    /// last frame is followed by a FIN, not left for a timeout).
    #[tokio::test]
    async fn a_shutdown_on_tcp_ends_the_peers_stream_after_what_was_written() {
        let (server, mut peer) = tcp_pair().await;
        let (_read, write) = server.into_split();
        let mut sink = Sink::tcp(write);
        assert_eq!(sink.write_now(b"bye"), 3);
        std::future::poll_fn(|cx| sink.poll_shutdown(cx))
            .await
            .expect("shut down");
        let mut got = Vec::new();
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            peer.read_to_end(&mut got),
        );
        read.await.expect("the stream ends").expect("read");
        assert_eq!(got, b"bye");
    }

    /// On TCP a direct write goes out whole while the socket has room, is refused (0 bytes,
    /// never an error or a wait) once it has none, and the writer's own async write, which
    /// tokio believed could go on, waits for room instead and then finishes.
    #[tokio::test]
    async fn direct_writes_on_tcp_take_what_fits_never_wait_and_leave_the_writer_working() {
        let (server, mut peer) = tcp_pair().await;
        let (_read, write) = server.into_split();
        let mut sink = Sink::tcp(write);
        assert_eq!(sink.write_now(b"hello"), 5);
        let mut got = [0u8; 5];
        peer.read_exact(&mut got).await.expect("read");
        assert_eq!(&got, b"hello");

        let chunk = vec![7u8; 1 << 16];
        let mut sent = 0;
        for _ in 0..10_000 {
            let n = sink.write_now(&chunk);
            sent += n;
            if n == 0 {
                break;
            }
        }
        assert_eq!(sink.write_now(b"x"), 0, "a full socket takes nothing");
        let last = b"the end";
        let writing = async {
            std::future::poll_fn(|cx| sink.poll_write(cx, last))
                .await
                .expect("written once the peer reads")
        };
        let reading = async {
            let mut all = vec![0u8; sent + last.len()];
            peer.read_exact(&mut all).await.expect("read all");
            all
        };
        let (n, all) = tokio::join!(writing, reading);
        assert_eq!(n, last.len());
        assert!(all[..sent].iter().all(|&b| b == 7));
        assert_eq!(&all[sent..], last);
    }

    /// A peer that is gone makes a direct write take nothing, never a signal or a panic.
    #[tokio::test]
    async fn a_direct_write_to_a_closed_peer_takes_nothing() {
        let (server, peer) = tcp_pair().await;
        drop(peer);
        let (_read, write) = server.into_split();
        let mut sink = Sink::tcp(write);
        let mut zero_seen = false;
        for _ in 0..100 {
            if sink.write_now(b"are you there?") == 0 {
                zero_seen = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(zero_seen, "the reset peer shows as nothing written");
    }

    /// Any other stream goes through its own async write.
    #[tokio::test]
    async fn any_stream_is_written_through_its_own_writes() {
        let (ours, mut peer) = tokio::io::duplex(8);
        let mut sink = Sink::new(ours);
        assert_eq!(sink.write_now(b"0123456789"), 8, "what the pipe holds");
        let mut got = [0u8; 8];
        peer.read_exact(&mut got).await.expect("read");
        assert_eq!(&got, b"01234567");
        std::future::poll_fn(|cx| sink.poll_shutdown(cx))
            .await
            .expect("shut down");
        peer.write_all(b"").await.expect("the pipe is still there");
    }
}
