//! Reading client messages off a WebSocket, strictly by RFC 6455. Frame heads are parsed here
//! rather than by fastwebsockets' reader, which allocates a fixed 8 KiB buffer for every
//! connection, most of what an idle connection cost (BENCHMARKS.md, scenario 4). This reader
//! waits on the socket through a buffer on the stack and keeps on the heap only the bytes of a
//! frame not yet complete, so an idle connection's reader holds no buffer at all. It also checks
//! what fastwebsockets leaves out (../shared/STACK.md): the mask requirement, a cap on the
//! *reassembled* message, control-frame sizes and close-frame validation.
//!
//! It also holds a client to what those checks cannot see: a fragmented message must end within
//! `--message-timeout` of its first fragment, and pings and pongs are metered
//! (`--ping-rate-burst`, `--ping-rate-per-second`); either breach is a close 1008.

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{ready, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use fastwebsockets::{CloseCode, OpCode};
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};
use tokio::time::Sleep;

use crate::bucket::TokenBucket;
use crate::clock::Clock;
use crate::settings::ConnLimits;
use crate::ws_write::{CLOSE_INVALID_DATA, CLOSE_POLICY, CLOSE_PROTOCOL, CLOSE_TOO_BIG};

/// One complete thing a client said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Incoming {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong,
    /// The peer's close, already validated; `code` is what to echo back (`None`: empty close).
    Close {
        code: Option<u16>,
    },
}

/// Why reading stopped.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ReadEnd {
    /// The peer broke the protocol: close with this code and reason.
    Violation { code: u16, reason: &'static str },
    /// The stream ended or failed: nothing more can be said.
    Gone,
}

const CONTROL_PAYLOAD_MAX: usize = 125;
/// Bytes asked of the socket at a time through the stack; a frame missing more than this is read
/// straight into its heap buffer.
const STACK_READ: usize = 4096;

fn violation(code: u16, reason: &'static str) -> ReadEnd {
    ReadEnd::Violation { code, reason }
}

/// What a reader holds its client to (see `ConnLimits`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ReadLimits {
    pub(crate) max_message_bytes: usize,
    /// Zero: no limit.
    pub(crate) message_timeout: Duration,
    pub(crate) ping_rate_burst: u32,
    /// Zero: not metered.
    pub(crate) ping_rate_per_second: u32,
}

impl From<&ConnLimits> for ReadLimits {
    fn from(limits: &ConnLimits) -> Self {
        Self {
            max_message_bytes: limits.max_message_bytes,
            message_timeout: limits.message_timeout,
            ping_rate_burst: limits.ping_rate_burst,
            ping_rate_per_second: limits.ping_rate_per_second,
        }
    }
}

impl ReadLimits {
    /// The defaults, with this cap on messages.
    #[cfg(test)]
    fn capped(max_message_bytes: usize) -> Self {
        Self {
            max_message_bytes,
            ..Self::from(&ConnLimits::default())
        }
    }
}

/// Reads whole messages, reassembling fragments up to `max_message_bytes`.
pub(crate) struct MessageReader<R> {
    io: R,
    buf: BytesMut,
    limits: ReadLimits,
    partial: Option<Partial>,
    /// The client's pings and pongs so far.
    control: TokenBucket,
}

/// A fragmented message being reassembled.
struct Partial {
    opcode: OpCode,
    buffer: Vec<u8>,
    /// Bytes at the start of `buffer` known to be valid UTF-8 (text messages).
    valid: usize,
    /// When it must be complete (`None`: no limit).
    deadline: Option<Instant>,
    /// Wakes a reader waiting on the socket at the deadline. Made the first time the reader
    /// waits with this message unfinished, and boxed: the connection's task stays as small
    /// while nothing is fragmented (`the_connection_task_stays_small`).
    timer: Option<Pin<Box<Sleep>>>,
}

/// What one frame costs the clock: its arrival time, read only when something needs it.
struct Arrival(Option<Instant>);

impl Arrival {
    fn now(&mut self) -> Instant {
        *self.0.get_or_insert_with(Clock::mono)
    }
}

impl<R: AsyncRead + Unpin> MessageReader<R> {
    pub(crate) fn new(io: R, limits: ReadLimits) -> Self {
        Self::with_buffered(io, limits, &[])
    }

    /// A reader that reads `already` (what an earlier layer read of the stream) first.
    pub(crate) fn with_buffered(io: R, limits: ReadLimits, already: &[u8]) -> Self {
        Self {
            io,
            buf: BytesMut::from(already),
            limits,
            partial: None,
            control: TokenBucket::new(),
        }
    }

    /// The next complete message. Cancel-safe: what was read stays buffered for the next call.
    pub(crate) async fn next(&mut self) -> Result<Incoming, ReadEnd> {
        let Self {
            io,
            buf,
            limits,
            partial,
            control,
        } = self;
        loop {
            // Bytes still missing of the frame being read: known once its head is complete.
            let mut missing = 0;
            if let Some(head) = parse_head(buf, limits.max_message_bytes)? {
                let end = head.len + head.payload_len;
                if buf.len() >= end {
                    let payload = &mut buf[head.len..end];
                    fastwebsockets::unmask(payload, head.mask);
                    let mut arrival = Arrival(None);
                    let message = on_frame(partial, control, limits, &head, payload, &mut arrival);
                    buf.advance(end);
                    if buf.is_empty() {
                        // Nothing pending: hold no memory while waiting for the next frame.
                        *buf = BytesMut::new();
                    }
                    match message? {
                        Some(message) => return Ok(message),
                        None => continue,
                    }
                }
                missing = end - buf.len();
            }
            if let Some(started) = partial.as_mut() {
                if let (Some(deadline), None) = (started.deadline, &started.timer) {
                    let at = tokio::time::Instant::from_std(deadline);
                    started.timer = Some(Box::pin(tokio::time::sleep_until(at)));
                }
            }
            let read = async {
                if missing > STACK_READ {
                    buf.reserve(missing);
                    io.read_buf(buf).await
                } else {
                    read_through_stack(io, buf).await
                }
            };
            let timer = partial.as_mut().and_then(|started| started.timer.as_mut());
            let read = tokio::select! {
                biased;
                () = expired(timer) => return Err(message_timeout()),
                read = read => read,
            };
            match read {
                Ok(0) | Err(_) => return Err(ReadEnd::Gone),
                Ok(_) => {}
            }
        }
    }
}

/// Resolves when `timer` fires; never without one.
async fn expired(timer: Option<&mut Pin<Box<Sleep>>>) {
    match timer {
        Some(timer) => timer.await,
        None => std::future::pending().await,
    }
}

fn message_timeout() -> ReadEnd {
    violation(CLOSE_POLICY, "message timeout")
}

/// Reads what the socket has into `buf` through a buffer on the stack, which exists only while
/// the read is polled: a reader waiting on an idle socket holds no heap buffer.
async fn read_through_stack<R: AsyncRead + Unpin>(
    io: &mut R,
    buf: &mut BytesMut,
) -> io::Result<usize> {
    std::future::poll_fn(|cx| {
        let mut stack = [MaybeUninit::<u8>::uninit(); STACK_READ];
        let mut chunk = ReadBuf::uninit(&mut stack);
        ready!(Pin::new(&mut *io).poll_read(cx, &mut chunk))?;
        buf.extend_from_slice(chunk.filled());
        Poll::Ready(Ok(chunk.filled().len()))
    })
    .await
}

/// A client frame's head.
#[derive(Debug, PartialEq, Eq)]
struct Head {
    fin: bool,
    opcode: OpCode,
    mask: [u8; 4],
    /// Bytes of the head itself.
    len: usize,
    payload_len: usize,
}

/// Parses the head of the frame at the start of `buf`: `None` until all of it has arrived. Every
/// check that needs only the head happens here, before any payload is buffered.
fn parse_head(buf: &[u8], max_payload: usize) -> Result<Option<Head>, ReadEnd> {
    let [b0, b1, ..] = *buf else {
        return Ok(None);
    };
    if b0 & 0x70 != 0 {
        return Err(violation(CLOSE_PROTOCOL, "reserved bits set"));
    }
    let opcode =
        OpCode::try_from(b0 & 0x0F).map_err(|_| violation(CLOSE_PROTOCOL, "reserved opcode"))?;
    let fin = b0 & 0x80 != 0;
    let control = matches!(opcode, OpCode::Close | OpCode::Ping | OpCode::Pong);
    if control && !fin {
        return Err(violation(CLOSE_PROTOCOL, "fragmented control frame"));
    }
    if b1 & 0x80 == 0 {
        return Err(violation(CLOSE_PROTOCOL, "client frames must be masked"));
    }
    let (payload_len, at) = match b1 & 0x7F {
        126 => match buf.get(2..4) {
            Some(&[a, b]) => (u64::from(u16::from_be_bytes([a, b])), 4),
            _ => return Ok(None),
        },
        127 => match buf.get(2..10).and_then(|b| <[u8; 8]>::try_from(b).ok()) {
            Some(bytes) => (u64::from_be_bytes(bytes), 10),
            None => return Ok(None),
        },
        n => (u64::from(n), 2),
    };
    if control && payload_len > CONTROL_PAYLOAD_MAX as u64 {
        return Err(violation(
            CLOSE_PROTOCOL,
            "control frame payload over 125 bytes",
        ));
    }
    let payload_len = match usize::try_from(payload_len) {
        Ok(len) if len <= max_payload && len.checked_add(at + 4).is_some() => len,
        _ => return Err(violation(CLOSE_TOO_BIG, "message too big")),
    };
    let Some(&[m0, m1, m2, m3]) = buf.get(at..at + 4) else {
        return Ok(None);
    };
    Ok(Some(Head {
        fin,
        opcode,
        mask: [m0, m1, m2, m3],
        len: at + 4,
        payload_len,
    }))
}

/// Folds one frame into the message being assembled; `Some` when a message is complete.
/// `arrival` is the frame's time, read only for a fragment or a control frame: an unfragmented
/// message, the common case, costs no reading of the clock.
fn on_frame(
    partial: &mut Option<Partial>,
    control: &mut TokenBucket,
    limits: &ReadLimits,
    head: &Head,
    payload: &[u8],
    arrival: &mut Arrival,
) -> Result<Option<Incoming>, ReadEnd> {
    let Head { fin, opcode, .. } = *head;
    let max_message_bytes = limits.max_message_bytes;
    if let Some(deadline) = partial.as_ref().and_then(|started| started.deadline) {
        // Fragments that were already buffered when the timer fired are too late too.
        if arrival.now() >= deadline {
            return Err(message_timeout());
        }
    }
    if matches!(opcode, OpCode::Ping | OpCode::Pong)
        && !control.try_take(
            arrival.now(),
            limits.ping_rate_burst,
            limits.ping_rate_per_second,
        )
    {
        let reason = if opcode == OpCode::Ping {
            "ping flood"
        } else {
            "pong flood"
        };
        return Err(violation(CLOSE_POLICY, reason));
    }
    match opcode {
        OpCode::Text | OpCode::Binary => {
            if partial.is_some() {
                return Err(violation(
                    CLOSE_PROTOCOL,
                    "new message before the fragmented one ended",
                ));
            }
            if fin {
                return message(opcode, payload.to_vec()).map(Some);
            }
            // The clock starts at the first fragment.
            let timeout = limits.message_timeout;
            let mut started = Partial {
                opcode,
                buffer: payload.to_vec(),
                valid: 0,
                // A timeout too large to add is no limit.
                deadline: (!timeout.is_zero())
                    .then(|| arrival.now().checked_add(timeout))
                    .flatten(),
                timer: None,
            };
            started.check_text_so_far()?;
            *partial = Some(started);
            Ok(None)
        }
        OpCode::Continuation => {
            let Some(started) = partial.as_mut() else {
                return Err(violation(
                    CLOSE_PROTOCOL,
                    "continuation frame without a message",
                ));
            };
            if started.buffer.len() + payload.len() > max_message_bytes {
                return Err(violation(CLOSE_TOO_BIG, "message too big"));
            }
            started.buffer.extend_from_slice(payload);
            started.check_text_so_far()?;
            if !fin {
                return Ok(None);
            }
            let Partial {
                opcode, mut buffer, ..
            } = partial.take().expect("checked above");
            // It grew by doubling: a message that waits for read-ahead credit, or in the hub,
            // holds its length, not up to twice it (README, "What one connection can cost").
            buffer.shrink_to_fit();
            message(opcode, buffer).map(Some)
        }
        OpCode::Ping => Ok(Some(Incoming::Ping(payload.to_vec()))),
        OpCode::Pong => Ok(Some(Incoming::Pong)),
        OpCode::Close => close_frame(payload).map(Some),
    }
}

impl Partial {
    /// Fails a fragmented text message at the first invalid byte rather than at its end: checks
    /// what arrived since the last fragment, allowing only an unfinished character at the end.
    fn check_text_so_far(&mut self) -> Result<(), ReadEnd> {
        if self.opcode != OpCode::Text {
            return Ok(());
        }
        match std::str::from_utf8(&self.buffer[self.valid..]) {
            Ok(_) => self.valid = self.buffer.len(),
            Err(e) if e.error_len().is_none() => self.valid += e.valid_up_to(),
            Err(_) => return Err(invalid_utf8()),
        }
        Ok(())
    }
}

fn invalid_utf8() -> ReadEnd {
    violation(CLOSE_INVALID_DATA, "text message is not valid UTF-8")
}

fn message(opcode: OpCode, bytes: Vec<u8>) -> Result<Incoming, ReadEnd> {
    if opcode == OpCode::Binary {
        return Ok(Incoming::Binary(bytes));
    }
    String::from_utf8(bytes)
        .map(Incoming::Text)
        .map_err(|_| invalid_utf8())
}

/// Validates a close frame's payload (its length is already at most 125).
fn close_frame(payload: &[u8]) -> Result<Incoming, ReadEnd> {
    match payload.len() {
        0 => Ok(Incoming::Close { code: None }),
        1 => Err(violation(
            CLOSE_PROTOCOL,
            "close frame with a 1-byte payload",
        )),
        _ => {
            let code = u16::from_be_bytes([payload[0], payload[1]]);
            if !CloseCode::from(code).is_allowed() {
                return Err(violation(CLOSE_PROTOCOL, "invalid close code"));
            }
            if std::str::from_utf8(&payload[2..]).is_err() {
                return Err(violation(
                    CLOSE_INVALID_DATA,
                    "close reason is not valid UTF-8",
                ));
            }
            Ok(Incoming::Close { code: Some(code) })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_kit::wire::{
        ClientFrame, Length, OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_PONG, OP_TEXT,
    };

    /// A masked client frame, as a browser would send it, written by the test kit (not by
    /// fastwebsockets, whose reader this one replaces).
    fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        ClientFrame::new(opcode, payload).fin(fin).encode()
    }

    async fn read_all(bytes: &[u8], max: usize) -> (Vec<Incoming>, ReadEnd) {
        let mut reader = MessageReader::new(bytes, ReadLimits::capped(max));
        let mut messages = Vec::new();
        loop {
            match reader.next().await {
                Ok(message) => messages.push(message),
                Err(end) => return (messages, end),
            }
        }
    }

    fn violation_of(bytes: &[u8]) -> ReadEnd {
        parse_head(bytes, 1 << 16).expect_err("a violation")
    }

    #[test]
    fn heads_are_parsed_only_once_complete() {
        let whole = frame(true, OP_TEXT, &[b'x'; 300]);
        for cut in 0..8 {
            assert_eq!(parse_head(&whole[..cut], 1 << 16), Ok(None), "cut at {cut}");
        }
        let head = parse_head(&whole, 1 << 16)
            .expect("valid")
            .expect("complete");
        assert_eq!((head.len, head.payload_len, head.fin), (8, 300, true));
        let long = frame(false, OP_BINARY, &vec![0; 70_000]);
        assert_eq!(parse_head(&long[..13], 1 << 20), Ok(None));
        let head = parse_head(&long, 1 << 20)
            .expect("valid")
            .expect("complete");
        assert_eq!((head.len, head.payload_len, head.fin), (14, 70_000, false));
    }

    #[test]
    fn head_violations_get_their_close_codes() {
        let protocol = |reason| violation(CLOSE_PROTOCOL, reason);
        let rsv = ClientFrame::text("x").rsv(0b100).encode();
        assert_eq!(violation_of(&rsv), protocol("reserved bits set"));
        let reserved = ClientFrame::new(0x3, "x").encode();
        assert_eq!(violation_of(&reserved), protocol("reserved opcode"));
        assert_eq!(
            violation_of(&frame(false, OP_PING, b"x")),
            protocol("fragmented control frame")
        );
        assert_eq!(
            violation_of(&frame(true, OP_PONG, &[0; 126])),
            protocol("control frame payload over 125 bytes")
        );
        let unmasked = ClientFrame::text("x").unmasked().encode();
        assert_eq!(
            violation_of(&unmasked),
            protocol("client frames must be masked")
        );
        assert_eq!(
            parse_head(&frame(true, OP_TEXT, &[0; 101]), 100),
            Err(violation(CLOSE_TOO_BIG, "message too big"))
        );
        // A length the machine cannot even address is just too big, not a panic.
        let huge = ClientFrame::text("")
            .length(Length::Claimed(u64::MAX))
            .mask([1, 2, 3, 4])
            .encode();
        assert_eq!(
            parse_head(&huge, usize::MAX),
            Err(violation(CLOSE_TOO_BIG, "message too big"))
        );
    }

    #[tokio::test]
    async fn messages_come_out_whole_however_the_bytes_are_split() {
        let mut wire = frame(true, OP_TEXT, "héllo".as_bytes());
        wire.extend(frame(false, OP_TEXT, b"frag"));
        wire.extend(frame(true, OP_PING, b"ping"));
        wire.extend(frame(true, OP_CONTINUATION, b"mented"));
        wire.extend(frame(true, OP_CLOSE, &[0x03, 0xE8, b'o', b'k']));
        let expected = vec![
            Incoming::Text("héllo".into()),
            Incoming::Ping(b"ping".to_vec()),
            Incoming::Text("fragmented".into()),
            Incoming::Close { code: Some(1000) },
        ];
        let (messages, end) = read_all(&wire, 1 << 16).await;
        assert_eq!((messages, end), (expected.clone(), ReadEnd::Gone));
        // One byte per read: a socket may hand over any split.
        let (tx, rx) = tokio::io::duplex(1);
        let writer = tokio::spawn(async move {
            let mut tx = tx;
            tokio::io::AsyncWriteExt::write_all(&mut tx, &wire).await
        });
        let mut reader = MessageReader::new(rx, ReadLimits::capped(1 << 16));
        for want in expected {
            assert_eq!(reader.next().await, Ok(want));
        }
        writer.await.expect("no panic").expect("written");
    }

    #[tokio::test]
    async fn fragmented_text_fails_at_the_first_invalid_byte_not_at_its_end() {
        // "é" split across fragments is fine; 0xFF is never valid.
        let mut wire = frame(false, OP_TEXT, &[b'a', 0xC3]);
        wire.extend(frame(false, OP_CONTINUATION, &[0xA9]));
        wire.extend(frame(false, OP_CONTINUATION, &[b'b', 0xFF]));
        let (messages, end) = read_all(&wire, 1 << 16).await;
        assert!(messages.is_empty());
        assert_eq!(
            end,
            invalid_utf8(),
            "no final fragment was needed to see it"
        );
        let mut wire = frame(false, OP_TEXT, &[b'a', 0xC3]);
        wire.extend(frame(true, OP_CONTINUATION, &[0xA9]));
        let (messages, _) = read_all(&wire, 1 << 16).await;
        assert_eq!(messages, [Incoming::Text("aé".into())]);
        // An unfinished character at the very end is caught when the message ends.
        let (messages, end) = read_all(&frame(true, OP_TEXT, &[b'a', 0xC3]), 1 << 16).await;
        assert!(messages.is_empty());
        assert_eq!(end, invalid_utf8());
    }

    #[tokio::test]
    async fn the_cap_applies_to_the_reassembled_message() {
        let mut wire = frame(false, OP_TEXT, &[b'a'; 60]);
        wire.extend(frame(true, OP_CONTINUATION, &[b'b'; 60]));
        let (messages, end) = read_all(&wire, 100).await;
        assert!(messages.is_empty());
        assert_eq!(end, violation(CLOSE_TOO_BIG, "message too big"));
    }

    #[tokio::test]
    async fn a_large_frame_buffer_is_given_back_once_consumed() {
        let big = "x".repeat(20_000);
        let mut wire = frame(true, OP_TEXT, big.as_bytes());
        wire.extend(frame(true, OP_TEXT, b"small"));
        let mut reader = MessageReader::new(&wire[..], ReadLimits::capped(1 << 16));
        assert_eq!(reader.next().await, Ok(Incoming::Text(big)));
        assert_eq!(reader.buf.capacity(), 0, "nothing kept once consumed");
        assert_eq!(reader.next().await, Ok(Incoming::Text("small".into())));
    }

    #[tokio::test]
    async fn an_idle_reader_holds_a_small_buffer() {
        let (_tx, rx) = tokio::io::duplex(64);
        let mut reader = MessageReader::new(rx, ReadLimits::capped(1 << 16));
        let pending = tokio::time::timeout(std::time::Duration::from_millis(10), reader.next());
        assert!(pending.await.is_err(), "nothing to read");
        assert_eq!(reader.buf.capacity(), 0, "waiting costs no heap buffer");
    }

    #[tokio::test]
    async fn close_frames_with_no_code_or_half_a_code() {
        let (messages, end) = read_all(&frame(true, OP_CLOSE, &[]), 1 << 16).await;
        assert_eq!(messages, [Incoming::Close { code: None }]);
        assert_eq!(end, ReadEnd::Gone);
        let (messages, end) = read_all(&frame(true, OP_CLOSE, &[0x03]), 1 << 16).await;
        assert!(messages.is_empty());
        assert_eq!(
            end,
            violation(CLOSE_PROTOCOL, "close frame with a 1-byte payload")
        );
    }

    #[tokio::test]
    async fn control_frames_of_exactly_125_bytes_are_fine() {
        let (messages, _) = read_all(&frame(true, OP_PING, &[7; 125]), 1 << 16).await;
        assert_eq!(messages, [Incoming::Ping(vec![7; 125])]);
    }

    #[tokio::test]
    async fn a_reassembled_message_of_exactly_the_cap_is_fine() {
        let mut wire = frame(false, OP_TEXT, &[b'a'; 60]);
        wire.extend(frame(true, OP_CONTINUATION, &[b'b'; 40]));
        let (messages, _) = read_all(&wire, 100).await;
        let text = format!("{}{}", "a".repeat(60), "b".repeat(40));
        assert_eq!(messages, [Incoming::Text(text)]);
        let mut wire = frame(false, OP_TEXT, &[b'a'; 60]);
        wire.extend(frame(true, OP_CONTINUATION, &[b'b'; 41]));
        assert_eq!(
            read_all(&wire, 100).await.1,
            violation(CLOSE_TOO_BIG, "message too big")
        );
    }

    /// A length the machine can address, however large, is a head like any other: the reader
    /// then waits for its bytes (within the cap, which here is the address space).
    #[test]
    fn a_huge_but_addressable_length_is_a_head() {
        let len = (usize::MAX - 20) as u64;
        let mut head = vec![0x81, 0xFF];
        head.extend_from_slice(&len.to_be_bytes());
        head.extend_from_slice(&[1, 2, 3, 4]);
        let parsed = parse_head(&head, usize::MAX)
            .expect("valid")
            .expect("complete");
        assert_eq!((parsed.len, parsed.payload_len), (14, usize::MAX - 20));
    }

    /// Each fragment's bytes are checked once: what is known valid is not scanned again (a
    /// message of many fragments, each ending in half a character, would cost quadratic time).
    #[test]
    fn text_known_valid_is_not_checked_again() {
        let mut partial = None;
        let first = frame(false, OP_TEXT, &[b'a', b'b', 0xC3]);
        let head = parse_head(&first, 1 << 16)
            .expect("valid")
            .expect("complete");
        let mut payload = first[head.len..].to_vec();
        fastwebsockets::unmask(&mut payload, head.mask);
        let mut arrival = Arrival(Some(Instant::now()));
        let (mut control, limits) = (TokenBucket::new(), ReadLimits::capped(1 << 16));
        assert_eq!(
            on_frame(
                &mut partial,
                &mut control,
                &limits,
                &head,
                &payload,
                &mut arrival
            ),
            Ok(None)
        );
        assert_eq!(
            partial.as_ref().map(|p| p.valid),
            Some(2),
            "up to the half character"
        );
    }

    #[tokio::test]
    async fn pings_and_pongs_past_the_budget_are_a_flood() {
        let burst = ReadLimits::capped(1 << 16).ping_rate_burst as usize;
        let mut wire = Vec::new();
        for _ in 0..burst {
            wire.extend(frame(true, OP_PING, b"p"));
        }
        wire.extend(frame(true, OP_PING, b"one too many"));
        let (messages, end) = read_all(&wire, 1 << 16).await;
        assert_eq!(messages.len(), burst, "the burst is answered");
        assert_eq!(end, violation(CLOSE_POLICY, "ping flood"));
        // Pongs draw from the same bucket: each is a message to the hub.
        let mut wire = frame(true, OP_PING, b"p");
        for _ in 0..burst {
            wire.extend(frame(true, OP_PONG, b""));
        }
        let (messages, end) = read_all(&wire, 1 << 16).await;
        assert_eq!(messages.len(), burst);
        assert_eq!(end, violation(CLOSE_POLICY, "pong flood"));
        // Off: any number.
        let limits = ReadLimits {
            ping_rate_per_second: 0,
            ..ReadLimits::capped(1 << 16)
        };
        let mut reader = MessageReader::new(&wire[..], limits);
        for _ in 0..=burst {
            assert!(reader.next().await.is_ok());
        }
    }

    /// A fragment read after the deadline fails the message even if it was buffered in time,
    /// and even if it would finish it.
    #[test]
    fn a_fragment_after_the_deadline_is_too_late() {
        let t0 = Instant::now();
        let limits = ReadLimits {
            message_timeout: Duration::from_secs(10),
            ..ReadLimits::capped(1 << 16)
        };
        let mut control = TokenBucket::new();
        let mut fold = |partial: &mut Option<Partial>, fin, opcode, at| {
            let wire = frame(fin, opcode, b"abc");
            let head = parse_head(&wire, 1 << 16)
                .expect("valid")
                .expect("complete");
            let mut payload = wire[head.len..].to_vec();
            fastwebsockets::unmask(&mut payload, head.mask);
            let mut arrival = Arrival(Some(at));
            on_frame(
                partial,
                &mut control,
                &limits,
                &head,
                &payload,
                &mut arrival,
            )
        };
        let mut partial = None;
        assert_eq!(fold(&mut partial, false, OP_TEXT, t0), Ok(None));
        let in_time = t0 + Duration::from_millis(9_999);
        assert_eq!(
            fold(&mut partial, false, OP_CONTINUATION, in_time),
            Ok(None)
        );
        let late = t0 + Duration::from_secs(10);
        assert_eq!(
            fold(&mut partial, true, OP_CONTINUATION, late),
            Err(message_timeout())
        );
        // The clock starts at the first fragment, not at the connection or an earlier message.
        let mut partial = None;
        assert_eq!(fold(&mut partial, false, OP_TEXT, late), Ok(None));
        let text = fold(
            &mut partial,
            true,
            OP_CONTINUATION,
            late + Duration::from_secs(9),
        );
        assert_eq!(text, Ok(Some(Incoming::Text("abcabc".into()))));
    }

    #[tokio::test]
    async fn a_reader_waiting_for_the_rest_of_a_message_gives_up_at_the_deadline() {
        let limits = ReadLimits {
            message_timeout: Duration::from_millis(50),
            ..ReadLimits::capped(1 << 16)
        };
        let (mut tx, rx) = tokio::io::duplex(1024);
        let first = frame(false, OP_TEXT, b"never finished");
        tokio::io::AsyncWriteExt::write_all(&mut tx, &first)
            .await
            .expect("written");
        let mut reader = MessageReader::new(rx, limits);
        let end = tokio::time::timeout(Duration::from_secs(10), reader.next()).await;
        assert_eq!(end.expect("no hang"), Err(message_timeout()));
    }
}
