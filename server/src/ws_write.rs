//! What the server writes on a WebSocket: the commands a connection's writer is asked to put on
//! the wire ([`WriterCmd`]), their encoding into unmasked server frames, the tally of chat frames
//! written, and the close codes the server sends. Both writers of a socket use it, the
//! connection's writer task (`writer.rs`) and the hub's direct writes (`Link::flush_direct`), so
//! it imports nothing else of the crate but a generic queue: neither needs the other to speak it.

use bytes::Bytes;
use fastwebsockets::{Frame, OpCode, Payload};

use crate::inline_queue::InlineQueue;

/// Normal closure: the answer to a client's own empty close.
pub(crate) const CLOSE_NORMAL: u16 = 1000;
/// The server is shutting down.
pub(crate) const CLOSE_GOING_AWAY: u16 = 1001;
/// The client broke RFC 6455 (unmasked frame, reserved bits, bad control frame...).
pub(crate) const CLOSE_PROTOCOL: u16 = 1002;
/// A binary frame: this is a text protocol.
pub(crate) const CLOSE_UNSUPPORTED: u16 = 1003;
/// What a close without a code is logged as (never sent: RFC 6455 reserves it for that).
pub(crate) const CLOSE_NO_STATUS: u16 = 1005;
/// Invalid UTF-8 in a text message or a close reason.
pub(crate) const CLOSE_INVALID_DATA: u16 = 1007;
/// A client that broke the server's own limits on frames: pings past `--ping-rate-*`, a
/// fragmented message not finished within `--message-timeout`.
pub(crate) const CLOSE_POLICY: u16 = 1008;
/// A message over `--max-message-bytes`.
pub(crate) const CLOSE_TOO_BIG: u16 = 1009;
/// The engine is full: a race past the HTTP-level 503.
pub(crate) const CLOSE_TRY_AGAIN: u16 = 1013;

/// Write as soon as this much is buffered, so one batch never holds much memory.
pub(crate) const BATCH_BYTES: usize = 256 << 10;

/// A buffer direct writes are encoded into is kept between turns up to this size: one large
/// broadcast should not pin its buffer for good.
pub(crate) const SCRATCH_KEPT: usize = 64 << 10;

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
    /// What the hub began writing and the socket did not take (boxed: rare, and it would
    /// otherwise make every command larger).
    Unfinished(Box<Unfinished>),
}

/// A connection's commands waiting to be written, oldest first.
pub(crate) type Commands = InlineQueue<WriterCmd>;

/// Frames the hub encoded and partly wrote: the writer writes `rest`, then reports `tally`.
#[derive(Debug)]
pub(crate) struct Unfinished {
    pub(crate) rest: Bytes,
    pub(crate) tally: Tally,
}

/// Text frames and their payload bytes, as reported to the hub once written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    pub(crate) frames: usize,
    pub(crate) bytes: usize,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.frames += other.frames;
        self.bytes += other.bytes;
    }
}

/// Appends one unmasked (server) frame to `buf`.
pub(crate) fn encode(buf: &mut Vec<u8>, opcode: OpCode, payload: &[u8]) {
    let mut head = [0u8; 16];
    let len = Frame::new(true, opcode, None, Payload::Borrowed(payload)).fmt_head(&mut head);
    buf.extend_from_slice(&head[..len]);
    buf.extend_from_slice(payload);
}

fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason.as_bytes());
    payload
}

/// Encodes commands from the front of `queue` into `buf` until `buf` holds `BATCH_BYTES` or the
/// queue is empty. A close frame ends the batch: with `take_close` it is encoded (and `true`
/// returned: what follows it is never written), otherwise it stays queued for the writer.
pub(crate) fn encode_batch(
    queue: &mut Commands,
    buf: &mut Vec<u8>,
    take_close: bool,
) -> (Tally, bool) {
    let mut tally = Tally::default();
    while buf.len() < BATCH_BYTES {
        if matches!(queue.front(), Some(WriterCmd::Close { .. })) && !take_close {
            break;
        }
        let Some(cmd) = queue.pop_front() else { break };
        match cmd {
            WriterCmd::Text(payload) => {
                encode(buf, OpCode::Text, &payload);
                tally.add(Tally {
                    frames: 1,
                    bytes: payload.len(),
                });
            }
            WriterCmd::Binary(payload) => encode(buf, OpCode::Binary, &payload),
            WriterCmd::Ping => encode(buf, OpCode::Ping, &[]),
            WriterCmd::Pong(payload) => encode(buf, OpCode::Pong, &payload),
            WriterCmd::Unfinished(unfinished) => {
                buf.extend_from_slice(&unfinished.rest);
                tally.add(unfinished.tally);
            }
            WriterCmd::Close { code, reason } => {
                encode(buf, OpCode::Close, &close_payload(code, reason));
                return (tally, true);
            }
        }
    }
    (tally, false)
}

/// Bytes the encoded batch will take, up to one write's worth, so the buffer is sized once.
pub(crate) fn batch_size_hint(batch: &Commands) -> usize {
    let mut size = 0;
    for cmd in batch.iter() {
        size += match cmd {
            WriterCmd::Text(payload) | WriterCmd::Binary(payload) | WriterCmd::Pong(payload) => {
                payload.len()
            }
            WriterCmd::Unfinished(unfinished) => unfinished.rest.len(),
            WriterCmd::Ping => 0,
            WriterCmd::Close { reason, .. } => 2 + reason.len(),
        } + 10;
        if size >= BATCH_BYTES {
            return BATCH_BYTES;
        }
    }
    size
}

/// A single close frame's bytes, for answers given before any writer exists.
pub(crate) fn close_frame_bytes(code: u16, reason: &str) -> Bytes {
    let mut buf = Vec::new();
    encode(&mut buf, OpCode::Close, &close_payload(code, reason));
    Bytes::from(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_kit::wire::{parse_server_frames, ServerFrame, OP_CLOSE, OP_PING};

    fn queue() -> Commands {
        Commands::from_iter([
            WriterCmd::Text(Bytes::from_static(b"chat")),
            WriterCmd::Ping,
            WriterCmd::Close {
                code: 1000,
                reason: "bye",
            },
            WriterCmd::Text(Bytes::from_static(b"never")),
        ])
    }

    #[test]
    fn the_hub_leaves_a_close_frame_and_what_follows_to_the_writer() {
        let mut queue = queue();
        let mut buf = Vec::new();
        let (tally, closing) = encode_batch(&mut queue, &mut buf, false);
        assert_eq!(
            tally,
            Tally {
                frames: 1,
                bytes: 4
            }
        );
        assert!(!closing);
        // Read back by the test kit's strict parser: with minimal lengths and no mask, these
        // are the only bytes that encode these frames.
        assert_eq!(
            parse_server_frames(&buf),
            Ok(vec![
                ServerFrame::text("chat"),
                ServerFrame::new(OP_PING, [])
            ])
        );
        assert!(matches!(queue.front(), Some(WriterCmd::Close { .. })));
        assert_eq!(queue.len(), 2);
    }

    #[test]
    fn the_writer_ends_its_batch_with_the_close_frame() {
        let mut queue = queue();
        let mut buf = Vec::new();
        let (tally, closing) = encode_batch(&mut queue, &mut buf, true);
        assert_eq!(
            tally,
            Tally {
                frames: 1,
                bytes: 4
            }
        );
        assert!(closing);
        assert_eq!(
            parse_server_frames(&buf),
            Ok(vec![
                ServerFrame::text("chat"),
                ServerFrame::new(OP_PING, []),
                ServerFrame::new(OP_CLOSE, [0x03, 0xE8, b'b', b'y', b'e']),
            ])
        );
        assert_eq!(queue.len(), 1, "nothing after a close is encoded");
    }

    #[test]
    fn a_batch_stops_at_the_write_size() {
        let big = Bytes::from(vec![b'x'; BATCH_BYTES / 2]);
        let mut queue: Commands = (0..4).map(|_| WriterCmd::Text(big.clone())).collect();
        let mut buf = Vec::new();
        let (tally, _) = encode_batch(&mut queue, &mut buf, true);
        assert_eq!(tally.frames, 2);
        assert_eq!(queue.len(), 2, "the rest waits for the next write");
    }
}
