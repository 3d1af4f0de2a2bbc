//! The link between the hub and one connection: the writer's queue of commands, the socket's
//! write half, the reader's control (run, pause, stop) and its credit of frames and bytes in
//! flight. One
//! allocation per connection, and nothing more while the connection is idle: the queue's storage
//! is handed to the writer with every batch and dropped once written, so memory follows traffic
//! (BENCHMARKS.md, scenario 4: a channel per connection kept a 32-slot block allocated for good).
//!
//! Two parties write to the socket, never at once. While the connection's writer task is parked,
//! the hub writes what it queued straight into the socket at the end of its turn
//! ([`Link::flush_direct`]): a chat message to a hundred idle clients is then a hundred `send`s
//! from one loop rather than a hundred task wake-ups, each followed by a report back through the
//! hub's inbox (BENCHMARKS.md, "Direct writes"). Whatever the socket does not take at once goes
//! to the writer, which owns the socket from then until its queue is empty again.

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::task::Poll;

use bytes::Bytes;
use tokio::sync::{Notify, Semaphore};

use crate::settings::ConnLimits;
use crate::sink::Sink;
use crate::ws_write::{encode_batch, Commands, Tally, Unfinished, WriterCmd};

/// A connection's bounds outside the engine (`--read-ahead-frames`, `--read-ahead-bytes`,
/// `--pending-pongs`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct LinkLimits {
    /// How many of a connection's frames may be read but not yet taken by the engine (in the
    /// inbox or held back by the hub). A reader takes one permit per frame; the hub gives it
    /// back when the engine takes the frame.
    pub(crate) read_ahead_frames: usize,
    /// How many payload bytes of those frames, at most. Frames alone do not bound memory: 32
    /// frames of 64 KiB are 2 MiB per connection. A reader takes a frame's length in permits
    /// once it has read it (it cannot know it before), so besides these it holds at most the
    /// one message it is reading; a frame longer than this takes all of it.
    pub(crate) read_ahead_bytes: usize,
    /// Pongs waiting to be written, at most. A client that pings without reading would
    /// otherwise grow its writer's queue without bound (pongs are not chat frames, so the
    /// engine's queue bounds do not count them); past this, a new pong replaces the latest
    /// waiting one, which RFC 6455 (5.5.3) allows. Autobahn's case 2.10 sends 10 pings at once
    /// and wants 10 pongs.
    pub(crate) pending_pongs_max: usize,
}

impl From<&ConnLimits> for LinkLimits {
    fn from(limits: &ConnLimits) -> Self {
        Self {
            read_ahead_frames: limits.read_ahead_frames,
            read_ahead_bytes: limits.read_ahead_bytes,
            pending_pongs_max: limits.pending_pongs_max,
        }
    }
}

impl Default for LinkLimits {
    fn default() -> Self {
        Self::from(&ConnLimits::default())
    }
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

#[derive(Default)]
struct Outbox {
    queue: Commands,
    /// No more commands are taken; the writer ends once `queue` is written.
    closed: bool,
    /// The writer was woken or is writing, and owns the socket until it finds `queue` empty.
    /// While it is set the hub leaves the socket alone, so bytes never interleave.
    writer_busy: bool,
    /// The hub has this link on its list to flush at the end of its turn.
    flush_pending: bool,
    /// `None` only in tests that read the queue themselves.
    sink: Option<Sink>,
    /// `LinkLimits::pending_pongs_max`.
    pongs_max: usize,
}

impl fmt::Debug for Outbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outbox")
            .field("queue", &self.queue)
            .field("closed", &self.closed)
            .field("writer_busy", &self.writer_busy)
            .field("flush_pending", &self.flush_pending)
            .field("sink", &self.sink.is_some())
            .field("pongs_max", &self.pongs_max)
            .finish()
    }
}

#[derive(Debug)]
pub(crate) struct Link {
    outbox: Mutex<Outbox>,
    writer_wake: Notify,
    control: AtomicU8,
    reader_wake: Notify,
    credit: Semaphore,
    byte_credit: Semaphore,
    /// `LinkLimits::read_ahead_bytes`: what one frame is charged at most.
    read_ahead_bytes: usize,
}

impl Default for Link {
    /// A link with no socket, for tests that read its queue themselves.
    fn default() -> Self {
        Self::with_sink(None, LinkLimits::default())
    }
}

impl Link {
    /// A link whose writer (and hub) write into `sink`.
    pub(crate) fn new(sink: Sink, limits: LinkLimits) -> Self {
        Self::with_sink(Some(sink), limits)
    }

    fn with_sink(sink: Option<Sink>, limits: LinkLimits) -> Self {
        Self {
            outbox: Mutex::new(Outbox {
                pongs_max: limits.pending_pongs_max,
                sink,
                ..Outbox::default()
            }),
            writer_wake: Notify::new(),
            control: AtomicU8::new(ReadControl::Run as u8),
            reader_wake: Notify::new(),
            credit: Semaphore::new(limits.read_ahead_frames),
            byte_credit: Semaphore::new(limits.read_ahead_bytes),
            read_ahead_bytes: limits.read_ahead_bytes,
        }
    }

    fn outbox(&self) -> MutexGuard<'_, Outbox> {
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
            let pongs_max = outbox.pongs_max;
            let mut waiting = outbox.queue.iter_mut().rev().filter_map(|cmd| match cmd {
                WriterCmd::Pong(waiting) => Some(waiting),
                _ => None,
            });
            if let Some(latest) = waiting.next() {
                if waiting.count() + 1 >= pongs_max {
                    *latest = payload.clone();
                    return;
                }
            }
        }
        outbox.queue.push_back(cmd);
        self.hand_to_writer(outbox);
    }

    /// The writer owns the socket from now until it finds its queue empty. It is woken unless it
    /// is already busy: a busy writer looks at the queue (and `closed`) again before it parks.
    fn hand_to_writer(&self, mut outbox: MutexGuard<'_, Outbox>) {
        let busy = std::mem::replace(&mut outbox.writer_busy, true);
        drop(outbox);
        if !busy {
            self.writer_wake.notify_one();
        }
    }

    /// The hub's side: queues `cmd` without waking the writer. `true` when the hub should call
    /// [`Link::flush_direct`] at the end of its turn (once per turn, and only while the writer
    /// is parked; a busy writer takes it anyway).
    pub(crate) fn push(&self, cmd: WriterCmd) -> bool {
        let mut outbox = self.outbox();
        if outbox.closed {
            return false;
        }
        outbox.queue.push_back(cmd);
        if outbox.writer_busy || outbox.flush_pending {
            return false;
        }
        outbox.flush_pending = true;
        true
    }

    /// The hub's end of turn: while the writer is parked, encodes what is queued into `scratch`
    /// (reused across calls) and writes it straight into the socket without waiting. Returns the
    /// text frames that were written whole. What the socket did not take, a close frame (and
    /// anything after it) and anything past one write's worth go to the writer, woken for them.
    pub(crate) fn flush_direct(&self, scratch: &mut Vec<u8>) -> Tally {
        let mut outbox = self.outbox();
        outbox.flush_pending = false;
        if outbox.writer_busy || outbox.queue.is_empty() {
            return Tally::default();
        }
        let Outbox { queue, sink, .. } = &mut *outbox;
        let mut flushed = Tally::default();
        if let Some(sink) = sink.as_mut() {
            scratch.clear();
            let (tally, _) = encode_batch(queue, scratch, false);
            let written = sink.write_now(scratch);
            if written == scratch.len() {
                flushed = tally;
            } else {
                queue.push_front(WriterCmd::Unfinished(Box::new(Unfinished {
                    rest: Bytes::copy_from_slice(&scratch[written..]),
                    tally,
                })));
            }
        }
        // An idle connection holds no queue storage (BENCHMARKS.md, scenario 4): the queue
        // gives a burst's back once it is written.
        if !queue.is_empty() {
            self.hand_to_writer(outbox);
        }
        flushed
    }

    /// No more commands: the writer ends after writing what is queued.
    pub(crate) fn close(&self) {
        let mut outbox = self.outbox();
        outbox.closed = true;
        self.hand_to_writer(outbox);
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.outbox().closed
    }

    /// The writer's side: everything queued, oldest first, once there is anything; `None` once
    /// the link is closed and everything was taken. Finding nothing, the writer parks and the
    /// socket is the hub's to write until the writer is woken again.
    pub(crate) async fn take_all(&self) -> Option<Commands> {
        loop {
            {
                let mut outbox = self.outbox();
                if !outbox.queue.is_empty() {
                    outbox.writer_busy = true;
                    return Some(std::mem::take(&mut outbox.queue));
                }
                if outbox.closed {
                    return None;
                }
                outbox.writer_busy = false;
            }
            self.writer_wake.notified().await;
        }
    }

    /// Writes all of `buf` into the socket, for the writer (or before there is one).
    pub(crate) async fn write_all(&self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let n =
                std::future::poll_fn(|cx| self.poll_sink(|sink| sink.poll_write(cx, buf))).await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            buf = &buf[n..];
        }
        Ok(())
    }

    /// Shuts the socket's write side down (a FIN after the close frame).
    pub(crate) async fn shutdown(&self) -> io::Result<()> {
        std::future::poll_fn(|cx| self.poll_sink(|sink| sink.poll_shutdown(cx))).await
    }

    fn poll_sink<T>(
        &self,
        poll: impl FnOnce(&mut Sink) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match self.outbox().sink.as_mut() {
            Some(sink) => poll(sink),
            None => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }

    /// Puts back what a writer took but could not fit in one write, ahead of anything newer.
    pub(crate) fn put_back(&self, mut rest: Commands) {
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

    /// Payload bytes the reader may still read ahead of the engine.
    pub(crate) fn byte_credit(&self) -> &Semaphore {
        &self.byte_credit
    }

    /// The byte credit a text of `len` bytes takes: its length, but never more than there is,
    /// or a frame longer than the read-ahead would wait for ever.
    pub(crate) fn charge(&self, len: usize) -> u32 {
        // The CLI caps `--read-ahead-bytes` at 1 GiB; the saturation only guards library use.
        u32::try_from(len.min(self.read_ahead_bytes)).unwrap_or(u32::MAX)
    }

    /// The engine took a text of `len` bytes: its frame and its bytes go back to the reader.
    pub(crate) fn taken(&self, len: usize) {
        self.credit.add_permits(1);
        self.byte_credit.add_permits(self.charge(len) as usize);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use std::time::Duration;

    use futures_util::FutureExt;
    use tokio::io::{AsyncReadExt, DuplexStream};

    use super::*;
    use crate::test_kit::wire::{parse_server_frames, OP_PONG, OP_TEXT};
    use crate::writer::write_loop;

    fn text(s: &'static str) -> WriterCmd {
        WriterCmd::Text(Bytes::from_static(s.as_bytes()))
    }

    /// A link writing into an in-memory socket that holds `capacity` bytes, and its far end.
    fn linked(capacity: usize) -> (Link, DuplexStream) {
        let (ours, peer) = tokio::io::duplex(capacity);
        (
            Link::new(crate::sink::Sink::new(ours), LinkLimits::default()),
            peer,
        )
    }

    /// The payloads of the frames in `bytes`, which must be whole, well-formed final text frames
    /// (read by the test kit's parser, not by the encoder under test).
    fn payloads(bytes: &[u8]) -> Vec<String> {
        let frames = parse_server_frames(bytes).unwrap_or_else(|e| panic!("{e}"));
        frames
            .into_iter()
            .map(|frame| {
                assert_eq!((frame.fin, frame.opcode), (true, OP_TEXT), "{frame:?}");
                String::from_utf8(frame.payload).expect("UTF-8")
            })
            .collect()
    }

    /// Whatever the far end can read right now.
    fn readable(peer: &mut DuplexStream) -> Vec<u8> {
        let mut all = Vec::new();
        let mut buf = [0u8; 1024];
        while let Some(Ok(n @ 1..)) = peer.read(&mut buf).now_or_never() {
            all.extend_from_slice(&buf[..n]);
        }
        all
    }

    #[tokio::test]
    async fn the_hub_writes_straight_into_a_parked_writers_socket() {
        let (link, mut peer) = linked(1024);
        let mut scratch = Vec::new();
        assert!(link.push(text("one")), "parked: the hub should flush");
        assert!(!link.push(text("two")), "already on the hub's list");
        let tally = link.flush_direct(&mut scratch);
        assert_eq!(
            tally,
            Tally {
                frames: 2,
                bytes: 6
            }
        );
        assert_eq!(payloads(&readable(&mut peer)), ["one", "two"]);
        assert!(link.take_all().now_or_never().is_none(), "nothing left");
        assert!(link.push(text("three")), "parked again: next turn flushes");
    }

    #[tokio::test]
    async fn what_a_full_socket_does_not_take_goes_to_the_writer_in_order() {
        let (link, mut peer) = linked(8);
        let mut scratch = Vec::new();
        link.push(text("hello"));
        link.push(text("world"));
        assert_eq!(
            link.flush_direct(&mut scratch),
            Tally::default(),
            "nothing written whole yet"
        );
        assert!(!link.push(text("again")), "the writer owns the socket now");
        assert_eq!(link.flush_direct(&mut scratch), Tally::default());
        link.close();
        let mut tallies = Vec::new();
        let mut received = Vec::new();
        let flushed = |tally| {
            tallies.push(tally);
            async {}
        };
        let (written, read) = tokio::join!(
            write_loop(&link, Duration::from_secs(5), flushed),
            peer.read_to_end(&mut received)
        );
        assert_eq!(written, Ok(()));
        read.expect("read to the end");
        assert_eq!(payloads(&received), ["hello", "world", "again"]);
        assert_eq!(
            tallies,
            [Tally {
                frames: 3,
                bytes: 15
            }],
            "the writer reports what it flushed: the hub's frames count once written"
        );
    }

    /// The hub, the writer and the reader (answering pings) on two threads, with a socket small
    /// enough that the hub hands over to the writer again and again: every chat frame arrives
    /// once, whole and in order.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hub_and_writer_never_interleave_or_reorder_frames() {
        const FRAMES: usize = 3_000;
        let (ours, mut peer) = tokio::io::duplex(64);
        let link = Arc::new(Link::new(
            crate::sink::Sink::new(ours),
            LinkLimits::default(),
        ));
        let writer = tokio::spawn({
            let link = link.clone();
            async move { write_loop(&link, Duration::from_secs(30), |_| async {}).await }
        });
        let reader = tokio::spawn({
            let link = link.clone();
            async move {
                for _ in 0..300 {
                    link.send(WriterCmd::Pong(Bytes::from_static(b"pong")));
                    tokio::task::yield_now().await;
                }
            }
        });
        let hub = tokio::spawn({
            let link = link.clone();
            async move {
                let mut scratch = Vec::new();
                for n in 0..FRAMES {
                    let flush = link.push(WriterCmd::Text(Bytes::from(n.to_string())));
                    if flush || n % 5 == 0 {
                        link.flush_direct(&mut scratch);
                        tokio::task::yield_now().await;
                    }
                }
                link.flush_direct(&mut scratch);
            }
        });
        let mut received = Vec::new();
        let read =
            tokio::spawn(async move { peer.read_to_end(&mut received).await.map(|_| received) });
        hub.await.expect("no panic");
        reader.await.expect("no panic");
        link.close();
        let written = writer.await.expect("no panic");
        assert_eq!(written, Ok(()));
        let received = read.await.expect("no panic").expect("read to the end");
        let mut texts = Vec::new();
        let frames = parse_server_frames(&received)
            .unwrap_or_else(|e| panic!("{e}: bytes interleaved or frames cut"));
        for frame in frames {
            match (frame.fin, frame.opcode) {
                (true, OP_TEXT) => texts.push(String::from_utf8(frame.payload).expect("UTF-8")),
                (true, OP_PONG) => assert_eq!(frame.payload, b"pong", "a pong cut into"),
                _ => panic!("not a chat frame or pong: {frame:?}, bytes interleaved"),
            }
        }
        let expected: Vec<String> = (0..FRAMES).map(|n| n.to_string()).collect();
        assert_eq!(texts, expected);
    }

    #[tokio::test]
    async fn a_woken_writer_keeps_the_socket_to_itself() {
        let (link, mut peer) = linked(1024);
        let mut scratch = Vec::new();
        link.send(WriterCmd::Pong(Bytes::from_static(b"p")));
        assert!(
            !link.push(text("chat")),
            "the writer was woken and takes it"
        );
        assert_eq!(link.flush_direct(&mut scratch), Tally::default());
        assert!(readable(&mut peer).is_empty(), "the hub wrote nothing");
        let batch = link.take_all().now_or_never().flatten().expect("queued");
        assert_eq!(batch.len(), 2);
    }

    fn texts(batch: &Commands) -> Vec<&[u8]> {
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
        batch.pop_front();
        link.put_back(batch);
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
        assert_eq!(batch.len(), 1 + LinkLimits::default().pending_pongs_max);
        let last = batch.iter().next_back().expect("not empty");
        assert!(
            matches!(last, WriterCmd::Pong(p) if p[..] == 9_999u32.to_be_bytes()),
            "the latest ping is answered: {last:?}"
        );
        // Once written, pongs may queue again.
        link.send(WriterCmd::Pong(Bytes::from_static(b"again")));
        assert_eq!(link.take_all().await.expect("queued").len(), 1);
    }

    #[tokio::test]
    async fn the_pong_bound_and_the_read_ahead_are_the_configured_ones() {
        let limits = LinkLimits {
            read_ahead_frames: 5,
            read_ahead_bytes: 100,
            pending_pongs_max: 3,
        };
        let link = Link::with_sink(None, limits);
        assert_eq!(link.credit().available_permits(), 5);
        assert_eq!(link.byte_credit().available_permits(), 100);
        assert_eq!((link.charge(40), link.charge(1000)), (40, 100));
        for _ in 0..100 {
            link.send(WriterCmd::Pong(Bytes::from_static(b"p")));
        }
        assert_eq!(link.take_all().await.expect("queued").len(), 3);
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
