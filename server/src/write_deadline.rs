//! [`WriteDeadline`]: a byte stream whose writes fail once the peer has accepted nothing for a
//! while. hyper has no write timeout, so without it a client that pipelines requests and never
//! reads the responses would park its connection (a task, a socket, hyper's buffers) for ever.
//!
//! Only the plain HTTP part of a connection needs it: `serve_http` disarms it when hyper lets
//! go of the connection, so an upgraded WebSocket keeps its own write timeout (`writer.rs`),
//! which also sees bytes the hub queued.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Wraps `inner`: a write (or flush, or shutdown) that has been waiting `timeout` since the
/// socket last accepted bytes fails with `TimedOut`, until [`Disarm::disarm`] is called.
pub(crate) struct WriteDeadline<I> {
    inner: I,
    timeout: Duration,
    /// Set while a write waits: when it times out. Cleared whenever a write makes progress.
    stalled: Option<Pin<Box<Sleep>>>,
    armed: Arc<AtomicBool>,
}

/// Turns a [`WriteDeadline`] into a plain pass-through, from another owner.
#[derive(Clone)]
pub(crate) struct Disarm(Arc<AtomicBool>);

impl Disarm {
    pub(crate) fn disarm(&self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

impl<I> WriteDeadline<I> {
    pub(crate) fn new(inner: I, timeout: Duration) -> (Self, Disarm) {
        let armed = Arc::new(AtomicBool::new(true));
        let io = Self {
            inner,
            timeout,
            stalled: None,
            armed: armed.clone(),
        };
        (io, Disarm(armed))
    }

    /// The stream itself, for an owner that has its own write timeout.
    pub(crate) fn into_inner(self) -> I {
        self.inner
    }

    /// After the inner stream answered `poll`: progress clears the deadline; waiting starts it
    /// (once) and fails the call when it has passed. The sleep is polled here, so the task is
    /// woken when it fires even if the socket never becomes writable.
    fn watch<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if poll.is_ready() {
            self.stalled = None;
            return poll;
        }
        if !self.armed.load(Ordering::Relaxed) {
            self.stalled = None;
            return poll;
        }
        let timeout = self.timeout;
        let stalled = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(Instant::now() + timeout)));
        match stalled.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the peer accepted no bytes within the write timeout",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for WriteDeadline<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.watch(cx, poll)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    /// A peer that never reads: the write fails once the deadline passes; disarmed, it waits.
    #[tokio::test]
    async fn a_write_nobody_reads_fails_after_the_timeout_unless_disarmed() {
        let (ours, _theirs) = tokio::io::duplex(64);
        let (mut io, _disarm) = WriteDeadline::new(ours, Duration::from_millis(50));
        let written = io.write_all(&[0; 1024]).await;
        assert_eq!(
            written.expect_err("timed out").kind(),
            io::ErrorKind::TimedOut
        );

        let (ours, _theirs) = tokio::io::duplex(64);
        let (mut io, disarm) = WriteDeadline::new(ours, Duration::from_millis(50));
        disarm.disarm();
        let waited =
            tokio::time::timeout(Duration::from_millis(300), io.write_all(&[0; 1024])).await;
        assert!(
            waited.is_err(),
            "a disarmed write waits like the socket does"
        );
    }
}
