//! The connection writer: drains everything queued, encodes it into one reusable buffer and
//! writes it with one call, then reports the flushed frames to the hub. A socket that accepts
//! nothing for the write timeout is dropped, so a slow client costs at most its queue bound.

use std::time::Duration;

use bytes::Bytes;
use chat_engine::ClientId;
use fastwebsockets::{Frame, OpCode, Payload};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::hub::{HubHandle, ToHub, WriterCmd};

/// Write as soon as this much is buffered, so one batch never holds much memory.
const BATCH_BYTES: usize = 256 << 10;
/// An idle writer keeps a buffer no larger than this.
const IDLE_BUFFER_BYTES: usize = 16 << 10;

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

/// Runs until a `Close` was written, every sender is gone, or the socket fails.
pub(crate) async fn write_loop<W: AsyncWrite + Unpin>(
    mut io: W,
    mut rx: mpsc::UnboundedReceiver<WriterCmd>,
    report: Report,
    write_timeout: Duration,
) {
    let mut buf = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut frames = 0;
        let mut bytes = 0;
        let mut closing = false;
        let mut next = Some(first);
        while let Some(cmd) = next.take() {
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
            if buf.len() < BATCH_BYTES {
                next = rx.try_recv().ok();
            }
        }
        let written = tokio::time::timeout(write_timeout, io.write_all(&buf)).await;
        if !matches!(written, Ok(Ok(()))) {
            report.failed().await;
            return;
        }
        buf.clear();
        if buf.capacity() > IDLE_BUFFER_BYTES && rx.is_empty() {
            buf = Vec::new();
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

/// A single close frame's bytes, for answers given before any writer exists.
pub(crate) fn close_frame_bytes(code: u16, reason: &str) -> Bytes {
    let mut buf = Vec::new();
    encode(&mut buf, OpCode::Close, &close_payload(code, reason));
    Bytes::from(buf)
}
