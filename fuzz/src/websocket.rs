//! The WebSocket stream as the chat server writes it after `101 Switching Protocols`: every frame
//! must pass `chat_server::test_kit::wire`'s strict parser (the frame codec independent of
//! fastwebsockets that every test trusts), and the stream must follow the chat protocol's rules
//! on top of RFC 6455's.

use chat_engine::ServerMessage;
use chat_server::test_kit::wire::{
    parse_server_frame, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT,
};

/// How a server's WebSocket stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// With a close frame carrying this code (`None`: an empty close frame).
    Close(Option<u16>),
    /// At a frame boundary without a close (the client hung up first).
    Clean,
}

/// Checks the frames a chat server wrote after `101 Switching Protocols`: every frame
/// well-formed by RFC 6455 (unmasked, no reserved bits or opcodes, minimal lengths, control
/// frames short and final, a close frame with a valid code and a UTF-8 reason), never
/// fragmented, every text frame one protocol message (`ServerMessage`), no binary frames,
/// nothing after a close frame, and no partial frame at the end.
pub fn check_server_frames(mut buf: &[u8]) -> Result<End, String> {
    let mut index = 0;
    while !buf.is_empty() {
        let (frame, used) = parse_server_frame(buf)
            .map_err(|e| format!("frame {index}: {e}"))?
            .ok_or_else(|| format!("frame {index}: stream ends inside a frame: {buf:?}"))?;
        buf = &buf[used..];
        let what = format!("frame {index} (opcode {:#x})", frame.opcode);
        if !frame.fin {
            return Err(format!("{what}: the server never fragments"));
        }
        match frame.opcode {
            OP_TEXT => {
                let text = std::str::from_utf8(&frame.payload)
                    .map_err(|e| format!("{what}: text frame is not UTF-8: {e}"))?;
                serde_json::from_str::<ServerMessage>(text)
                    .map_err(|e| format!("{what}: not a protocol message ({e}): {text}"))?;
            }
            OP_PING | OP_PONG => {}
            OP_CLOSE => {
                if !buf.is_empty() {
                    return Err(format!("{what}: {} bytes after the close frame", buf.len()));
                }
                return Ok(End::Close(frame.close_code()));
            }
            OP_BINARY => return Err(format!("{what}: the chat server sends no binary frames")),
            _ => {
                return Err(format!(
                    "{what}: a continuation, though nothing is fragmented"
                ))
            }
        }
        index += 1;
    }
    Ok(End::Clean)
}
