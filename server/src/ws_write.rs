//! The connection writer: takes everything queued on the link, encodes it into one buffer and
//! writes it with one call, then reports the flushed frames to the hub. A socket that accepts
//! nothing for the write timeout is dropped, so a slow client costs at most its queue bound.
//! Nothing is kept between batches: an idle connection's writer holds no buffer. The encoding
//! is shared with the hub's direct writes (`Link::flush_direct`).

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use chat_engine::ClientId;
use fastwebsockets::{Frame, OpCode, Payload};

use crate::hub::{HubHandle, ToHub};
use crate::link::{Link, WriterCmd};

/// Write as soon as this much is buffered, so one batch never holds much memory.
const BATCH_BYTES: usize = 256 << 10;

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

/// Who hears about what the writer did.
pub(crate) enum Report {
    /// Chat connections: flushed counts and failures go to the hub.
    Hub { hub: HubHandle, client: ClientId },
    /// Echo connections: nobody keeps accounts.
    Nobody,
}

impl Report {
    async fn flushed(&self, tally: Tally) {
        if let Report::Hub { hub, client } = self {
            hub.send(ToHub::Flushed {
                client: *client,
                tally,
            })
            .await;
        }
    }

    async fn failed(&self) {
        if let Report::Hub { hub, client } = self {
            hub.send(ToHub::Disconnect { client: *client }).await;
        }
    }
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

/// Encodes commands from the front of `queue` into `buf` until `buf` holds `BATCH_BYTES` or the
/// queue is empty. A close frame ends the batch: with `take_close` it is encoded (and `true`
/// returned: what follows it is never written), otherwise it stays queued for the writer.
pub(crate) fn encode_batch(
    queue: &mut VecDeque<WriterCmd>,
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

/// Runs until a `Close` was written, the link is closed and drained, or the socket fails.
pub(crate) async fn write_loop(link: &Link, report: Report, write_timeout: Duration) {
    while let Some(mut batch) = link.take_all().await {
        let mut buf = Vec::with_capacity(batch_size_hint(&batch));
        let (tally, closing) = encode_batch(&mut batch, &mut buf, true);
        if !closing && !batch.is_empty() {
            link.put_back(batch);
        }
        let written = tokio::time::timeout(write_timeout, link.write_all(&buf)).await;
        if !matches!(written, Ok(Ok(()))) {
            link.close();
            report.failed().await;
            return;
        }
        if tally.frames > 0 {
            report.flushed(tally).await;
        }
        if closing {
            break;
        }
    }
    let _ = tokio::time::timeout(write_timeout, link.shutdown()).await;
}

/// Bytes the encoded batch will take, up to one write's worth, so the buffer is sized once.
fn batch_size_hint(batch: &VecDeque<WriterCmd>) -> usize {
    let mut size = 0;
    for cmd in batch {
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

    fn queue() -> VecDeque<WriterCmd> {
        VecDeque::from([
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
        let mut queue: VecDeque<WriterCmd> = (0..4).map(|_| WriterCmd::Text(big.clone())).collect();
        let mut buf = Vec::new();
        let (tally, _) = encode_batch(&mut queue, &mut buf, true);
        assert_eq!(tally.frames, 2);
        assert_eq!(queue.len(), 2, "the rest waits for the next write");
    }
}
