//! The connection writer: takes everything queued on the link, encodes it into one buffer and
//! writes it with one call, then reports the flushed frames to the hub. A socket that accepts
//! nothing for the write timeout is dropped, so a slow client costs at most its queue bound.
//! Nothing is kept between batches: an idle connection's writer holds no buffer.

use std::time::Duration;

use bytes::Bytes;
use chat_engine::ClientId;
use fastwebsockets::{Frame, OpCode, Payload};
use tokio::io::{AsyncWrite, AsyncWriteExt};

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
    async fn flushed(&self, frames: usize, bytes: usize) {
        if let Report::Hub { hub, client } = self {
            hub.send(ToHub::Flushed {
                client: *client,
                frames,
                bytes,
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

/// Runs until a `Close` was written, the link is closed and drained, or the socket fails.
pub(crate) async fn write_loop<W: AsyncWrite + Unpin>(
    mut io: W,
    link: &Link,
    report: Report,
    write_timeout: Duration,
) {
    while let Some(mut batch) = link.take_all().await {
        let mut buf = Vec::with_capacity(batch_size_hint(&batch));
        let mut frames = 0;
        let mut bytes = 0;
        let mut closing = false;
        while let Some(cmd) = batch.pop_front() {
            match cmd {
                WriterCmd::Text(payload) => {
                    encode(&mut buf, OpCode::Text, &payload);
                    frames += 1;
                    bytes += payload.len();
                }
                WriterCmd::Binary(payload) => encode(&mut buf, OpCode::Binary, &payload),
                WriterCmd::Ping => encode(&mut buf, OpCode::Ping, &[]),
                WriterCmd::Pong(payload) => encode(&mut buf, OpCode::Pong, &payload),
                WriterCmd::Close { code, reason } => {
                    encode(&mut buf, OpCode::Close, &close_payload(code, reason));
                    closing = true;
                    break;
                }
            }
            if buf.len() >= BATCH_BYTES {
                break;
            }
        }
        if !closing && !batch.is_empty() {
            link.put_back(batch);
        }
        let written = tokio::time::timeout(write_timeout, io.write_all(&buf)).await;
        if !matches!(written, Ok(Ok(()))) {
            link.close();
            report.failed().await;
            return;
        }
        if frames > 0 {
            report.flushed(frames, bytes).await;
        }
        if closing {
            break;
        }
    }
    let _ = tokio::time::timeout(write_timeout, io.shutdown()).await;
}

/// Bytes the encoded batch will take, up to one write's worth, so the buffer is sized once.
fn batch_size_hint(batch: &std::collections::VecDeque<WriterCmd>) -> usize {
    let mut size = 0;
    for cmd in batch {
        size += match cmd {
            WriterCmd::Text(payload) | WriterCmd::Binary(payload) | WriterCmd::Pong(payload) => {
                payload.len()
            }
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
