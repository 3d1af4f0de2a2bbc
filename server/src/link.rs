//! The link between the hub and one connection: the writer's queue of commands, the reader's
//! control (run, pause, stop) and its credit of frames in flight. One allocation per connection,
//! and nothing more while the connection is idle: the queue's storage is handed to the writer
//! with every batch and dropped once written, so memory follows traffic (BENCHMARKS.md,
//! scenario 4: a channel per connection kept a 32-slot block allocated for good).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;

use bytes::Bytes;
use tokio::sync::{Notify, Semaphore};

/// How many of a connection's frames may be read but not yet taken by the engine (in the inbox
/// or held back by the hub). A reader takes one permit per frame; the hub gives it back when
/// the engine takes the frame.
pub(crate) const FRAME_CREDIT: usize = 32;

/// Pongs waiting to be written, at most. A client that pings without reading would otherwise
/// grow its writer's queue without bound (pongs are not chat frames, so the engine's queue
/// bounds do not count them); past this, a new pong replaces the latest waiting one, which
/// RFC 6455 (5.5.3) allows. Autobahn's case 2.10 sends 10 pings at once and wants 10 pongs.
pub(crate) const PENDING_PONGS_MAX: usize = 16;

/// What a connection's writer is asked to put on the wire, in order.
#[derive(Debug)]
pub(crate) enum WriterCmd {
    /// A text frame from the engine (counted in its queue; reported back as flushed).
    Text(Bytes),
    /// A binary frame (echo mode only; never counted).
    Binary(Bytes),
    Ping,
    Pong(Bytes),
    /// The last frame: close with this code and reason, then end the connection.
    Close {
        code: u16,
        reason: &'static str,
    },
}

/// Whether a connection's reader may read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum ReadControl {
    Run,
    /// Flow control: it or its room is behind, stop reading until resumed.
    Pause,
    /// The connection is over: stop reading (after a short linger for the peer's close).
    Stop,
}

impl ReadControl {
    fn from_u8(value: u8) -> Self {
        match value {
            0 => Self::Run,
            1 => Self::Pause,
            _ => Self::Stop,
        }
    }
}

#[derive(Debug, Default)]
struct Outbox {
    queue: VecDeque<WriterCmd>,
    /// No more commands are taken; the writer ends once `queue` is written.
    closed: bool,
}

#[derive(Debug)]
pub(crate) struct Link {
    outbox: Mutex<Outbox>,
    writer_wake: Notify,
    control: AtomicU8,
    reader_wake: Notify,
    credit: Semaphore,
}

impl Default for Link {
    fn default() -> Self {
        Self {
            outbox: Mutex::default(),
            writer_wake: Notify::new(),
            control: AtomicU8::new(ReadControl::Run as u8),
            reader_wake: Notify::new(),
            credit: Semaphore::new(FRAME_CREDIT),
        }
    }
}

impl Link {
    fn outbox(&self) -> std::sync::MutexGuard<'_, Outbox> {
        // Nothing panics while holding the lock, and a queue is valid whatever happened.
        self.outbox
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues `cmd` for the writer. Dropped once the link is closed: a writer that is gone or
    /// about to go has nobody to write it to.
    pub(crate) fn send(&self, cmd: WriterCmd) {
        let mut outbox = self.outbox();
        if outbox.closed {
            return;
        }
        if let WriterCmd::Pong(payload) = &cmd {
            // Counted, not tracked: the queue is short (the engine bounds its frames), and only
            // a ping looks.
            let mut waiting = outbox.queue.iter_mut().rev().filter_map(|cmd| match cmd {
                WriterCmd::Pong(waiting) => Some(waiting),
                _ => None,
            });
            if let Some(latest) = waiting.next() {
                if waiting.count() + 1 >= PENDING_PONGS_MAX {
                    *latest = payload.clone();
                    return;
                }
            }
        }
        outbox.queue.push_back(cmd);
        // A writer with a non-empty queue has been woken already and will take this too.
        let wake = outbox.queue.len() == 1;
        drop(outbox);
        if wake {
            self.writer_wake.notify_one();
        }
    }

    /// No more commands: the writer ends after writing what is queued.
    pub(crate) fn close(&self) {
        self.outbox().closed = true;
        self.writer_wake.notify_one();
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.outbox().closed
    }

    /// The writer's side: everything queued, oldest first, once there is anything; `None` once
    /// the link is closed and everything was taken.
    pub(crate) async fn take_all(&self) -> Option<VecDeque<WriterCmd>> {
        loop {
            {
                let mut outbox = self.outbox();
                if !outbox.queue.is_empty() {
                    return Some(std::mem::take(&mut outbox.queue));
                }
                if outbox.closed {
                    return None;
                }
            }
            self.writer_wake.notified().await;
        }
    }

    /// Puts back what a writer took but could not fit in one write, ahead of anything newer.
    pub(crate) fn put_back(&self, mut rest: VecDeque<WriterCmd>) {
        let mut outbox = self.outbox();
        rest.append(&mut outbox.queue);
        outbox.queue = rest;
    }

    /// The connection is over: `last` (a close frame) is written after what is queued, then
    /// the writer ends; the reader stops.
    pub(crate) fn hang_up(&self, last: Option<WriterCmd>) {
        if let Some(cmd) = last {
            self.send(cmd);
        }
        self.close();
        self.set_control(ReadControl::Stop);
    }

    pub(crate) fn set_control(&self, control: ReadControl) {
        self.control.store(control as u8, Ordering::Release);
        self.reader_wake.notify_one();
    }

    pub(crate) fn control(&self) -> ReadControl {
        ReadControl::from_u8(self.control.load(Ordering::Acquire))
    }

    /// Waits until the control satisfies `wanted` and returns it. For the one reader only.
    pub(crate) async fn wait_control(&self, wanted: impl Fn(ReadControl) -> bool) -> ReadControl {
        loop {
            let control = self.control();
            if wanted(control) {
                return control;
            }
            self.reader_wake.notified().await;
        }
    }

    pub(crate) fn credit(&self) -> &Semaphore {
        &self.credit
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn texts(batch: &VecDeque<WriterCmd>) -> Vec<&[u8]> {
        batch
            .iter()
            .map(|cmd| match cmd {
                WriterCmd::Text(bytes) => &bytes[..],
                other => panic!("not a text: {other:?}"),
            })
            .collect()
    }

    #[tokio::test]
    async fn the_writer_gets_commands_in_order_and_ends_after_close() {
        let link = Link::default();
        link.send(WriterCmd::Text(Bytes::from_static(b"a")));
        link.send(WriterCmd::Text(Bytes::from_static(b"b")));
        let mut batch = link.take_all().await.expect("queued");
        assert_eq!(texts(&batch), [b"a", b"b"]);
        link.send(WriterCmd::Text(Bytes::from_static(b"c")));
        link.put_back(batch.split_off(1));
        link.close();
        link.send(WriterCmd::Text(Bytes::from_static(b"after close")));
        let batch = link.take_all().await.expect("still queued");
        assert_eq!(texts(&batch), [b"b", b"c"], "put back ahead of newer");
        assert!(link.take_all().await.is_none(), "closed and drained");
    }

    #[tokio::test]
    async fn a_client_that_pings_without_reading_has_a_bounded_number_of_pongs_waiting() {
        let link = Link::default();
        link.send(WriterCmd::Text(Bytes::from_static(b"chat")));
        for n in 0..10_000u32 {
            link.send(WriterCmd::Pong(Bytes::from(n.to_be_bytes().to_vec())));
        }
        let batch = link.take_all().await.expect("queued");
        assert_eq!(batch.len(), 1 + PENDING_PONGS_MAX);
        let last = batch.back().expect("not empty");
        assert!(
            matches!(last, WriterCmd::Pong(p) if p[..] == 9_999u32.to_be_bytes()),
            "the latest ping is answered: {last:?}"
        );
        // Once written, pongs may queue again.
        link.send(WriterCmd::Pong(Bytes::from_static(b"again")));
        assert_eq!(link.take_all().await.expect("queued").len(), 1);
    }

    #[tokio::test]
    async fn a_waiting_writer_is_woken_by_a_send() {
        let link = Arc::new(Link::default());
        let writer = tokio::spawn({
            let link = link.clone();
            async move { link.take_all().await.map(|batch| batch.len()) }
        });
        tokio::task::yield_now().await;
        link.send(WriterCmd::Ping);
        assert_eq!(writer.await.expect("no panic"), Some(1));
    }

    #[tokio::test]
    async fn the_reader_waits_for_the_control_it_wants() {
        let link = Arc::new(Link::default());
        link.set_control(ReadControl::Pause);
        let reader = tokio::spawn({
            let link = link.clone();
            async move { link.wait_control(|c| c != ReadControl::Pause).await }
        });
        tokio::task::yield_now().await;
        assert!(!reader.is_finished(), "paused");
        link.set_control(ReadControl::Stop);
        assert_eq!(reader.await.expect("no panic"), ReadControl::Stop);
    }
}
