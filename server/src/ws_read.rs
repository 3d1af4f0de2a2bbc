//! Reading client messages off a WebSocket, strictly by RFC 6455: fastwebsockets parses frames;
//! this adds what it leaves out (see ../shared/STACK.md): the mask requirement, a cap on the
//! *reassembled* message, control-frame sizes and close-frame validation.

use fastwebsockets::{CloseCode, Frame, OpCode, Payload, Role, WebSocketError, WebSocketRead};
use tokio::io::AsyncRead;

/// One complete thing a client said.
#[derive(Debug, PartialEq, Eq)]
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

pub(crate) const CLOSE_PROTOCOL: u16 = 1002;
pub(crate) const CLOSE_UNSUPPORTED: u16 = 1003;
pub(crate) const CLOSE_INVALID_DATA: u16 = 1007;
pub(crate) const CLOSE_TOO_BIG: u16 = 1009;

const CONTROL_PAYLOAD_MAX: usize = 125;

fn violation(code: u16, reason: &'static str) -> ReadEnd {
    ReadEnd::Violation { code, reason }
}

/// Reads whole messages, reassembling fragments up to `max_message_bytes`.
pub(crate) struct MessageReader<R> {
    ws: WebSocketRead<R>,
    max_message_bytes: usize,
    partial: Option<(OpCode, Vec<u8>)>,
}

impl<R: AsyncRead + Unpin> MessageReader<R> {
    pub(crate) fn new(read: R, max_message_bytes: usize) -> Self {
        let (mut ws, _) =
            fastwebsockets::after_handshake_split(read, tokio::io::sink(), Role::Server);
        // Pongs and close replies go through our own writer, after our own validation.
        ws.set_auto_close(false);
        ws.set_auto_pong(false);
        // fastwebsockets refuses frames with `len >= max`: allow exactly the cap.
        ws.set_max_message_size(max_message_bytes.saturating_add(1));
        Self {
            ws,
            max_message_bytes,
            partial: None,
        }
    }

    /// The next complete message. Not cancel-safe: only drop it when abandoning the connection.
    pub(crate) async fn next(&mut self) -> Result<Incoming, ReadEnd> {
        let Self {
            ws,
            max_message_bytes,
            partial,
        } = self;
        loop {
            let mut no_obligations =
                |_: Frame<'_>| async { Ok::<(), std::convert::Infallible>(()) };
            let mut frame = ws
                .read_frame(&mut no_obligations)
                .await
                .map_err(read_error)?;
            if !is_masked(&mut frame) {
                return Err(violation(CLOSE_PROTOCOL, "client frames must be masked"));
            }
            if let Some(message) = on_frame(partial, *max_message_bytes, frame)? {
                return Ok(message);
            }
        }
    }
}

/// Folds one frame into the message being assembled; `Some` when a message is complete.
fn on_frame(
    partial: &mut Option<(OpCode, Vec<u8>)>,
    max_message_bytes: usize,
    frame: Frame<'_>,
) -> Result<Option<Incoming>, ReadEnd> {
    {
        let Frame {
            fin,
            opcode,
            payload,
            ..
        } = frame;
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
                *partial = Some((opcode, payload.to_vec()));
                Ok(None)
            }
            OpCode::Continuation => {
                let Some((_, buffer)) = partial.as_mut() else {
                    return Err(violation(
                        CLOSE_PROTOCOL,
                        "continuation frame without a message",
                    ));
                };
                if buffer.len() + payload.len() > max_message_bytes {
                    return Err(violation(CLOSE_TOO_BIG, "message too big"));
                }
                buffer.extend_from_slice(&payload);
                if !fin {
                    return Ok(None);
                }
                let (opcode, buffer) = partial.take().expect("checked above");
                message(opcode, buffer).map(Some)
            }
            OpCode::Ping => Ok(Some(Incoming::Ping(payload.to_vec()))),
            OpCode::Pong if payload.len() > CONTROL_PAYLOAD_MAX => Err(violation(
                CLOSE_PROTOCOL,
                "control frame payload over 125 bytes",
            )),
            OpCode::Pong => Ok(Some(Incoming::Pong)),
            OpCode::Close => close_frame(&payload).map(Some),
        }
    }
}

fn message(opcode: OpCode, bytes: Vec<u8>) -> Result<Incoming, ReadEnd> {
    if opcode == OpCode::Binary {
        return Ok(Incoming::Binary(bytes));
    }
    String::from_utf8(bytes)
        .map(Incoming::Text)
        .map_err(|_| violation(CLOSE_INVALID_DATA, "text message is not valid UTF-8"))
}

/// Validates a close frame's payload (fastwebsockets echoes some invalid ones verbatim).
fn close_frame(payload: &Payload<'_>) -> Result<Incoming, ReadEnd> {
    match payload.len() {
        0 => Ok(Incoming::Close { code: None }),
        1 => Err(violation(
            CLOSE_PROTOCOL,
            "close frame with a 1-byte payload",
        )),
        len if len > CONTROL_PAYLOAD_MAX => Err(violation(
            CLOSE_PROTOCOL,
            "control frame payload over 125 bytes",
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

/// fastwebsockets keeps the mask private, but formats it into the frame head.
fn is_masked(frame: &mut Frame<'_>) -> bool {
    let mut head = [0u8; 16];
    frame.fmt_head(&mut head);
    head[1] & 0x80 != 0
}

fn read_error(error: WebSocketError) -> ReadEnd {
    match error {
        WebSocketError::InvalidUTF8 => {
            violation(CLOSE_INVALID_DATA, "text message is not valid UTF-8")
        }
        WebSocketError::FrameTooLarge => violation(CLOSE_TOO_BIG, "message too big"),
        WebSocketError::ReservedBitsNotZero => violation(CLOSE_PROTOCOL, "reserved bits set"),
        WebSocketError::ControlFrameFragmented => {
            violation(CLOSE_PROTOCOL, "fragmented control frame")
        }
        WebSocketError::PingFrameTooLarge => {
            violation(CLOSE_PROTOCOL, "control frame payload over 125 bytes")
        }
        WebSocketError::InvalidValue => violation(CLOSE_PROTOCOL, "reserved opcode"),
        WebSocketError::UnexpectedEOF
        | WebSocketError::IoError(_)
        | WebSocketError::ConnectionClosed => ReadEnd::Gone,
        _ => violation(CLOSE_PROTOCOL, "protocol error"),
    }
}
