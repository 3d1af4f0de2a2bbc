//! WebSocket frames: an independent parser of what the server writes (RFC 6455 section 5.2),
//! the checks the server's output must pass, and, in its tests, an encoder for client frames.

use chat_engine::ServerMessage;

pub const OP_CONTINUATION: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// One frame as it was on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireFrame {
    pub fin: bool,
    pub rsv: u8,
    pub opcode: u8,
    pub masked: bool,
    /// Unmasked payload.
    pub payload: Vec<u8>,
}

/// Parses one frame at the start of `buf`: `Ok(None)` if `buf` holds only part of one.
/// Errors name a header that no conforming endpoint would write.
pub fn parse_frame(buf: &[u8]) -> Result<Option<(WireFrame, usize)>, String> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let fin = buf[0] & 0x80 != 0;
    let rsv = (buf[0] >> 4) & 0x7;
    let opcode = buf[0] & 0x0F;
    let masked = buf[1] & 0x80 != 0;
    let short = (buf[1] & 0x7F) as usize;
    let (len, mut at) = match short {
        126 => {
            if buf.len() < 4 {
                return Ok(None);
            }
            let len = u16::from_be_bytes([buf[2], buf[3]]) as u64;
            if len < 126 {
                return Err(format!("non-minimal 16-bit length {len}"));
            }
            (len, 4)
        }
        127 => {
            if buf.len() < 10 {
                return Ok(None);
            }
            let len = u64::from_be_bytes(buf[2..10].try_into().expect("8 bytes"));
            if len <= u16::MAX as u64 {
                return Err(format!("non-minimal 64-bit length {len}"));
            }
            if len >> 63 != 0 {
                return Err("64-bit length with the top bit set".to_owned());
            }
            (len, 10)
        }
        n => (n as u64, 2),
    };
    let mut mask = [0u8; 4];
    if masked {
        if buf.len() < at + 4 {
            return Ok(None);
        }
        mask.copy_from_slice(&buf[at..at + 4]);
        at += 4;
    }
    let Ok(len) = usize::try_from(len) else {
        return Err(format!("length {len} does not fit in memory"));
    };
    if buf.len() - at < len {
        return Ok(None);
    }
    let mut payload = buf[at..at + len].to_vec();
    if masked {
        for (i, byte) in payload.iter_mut().enumerate() {
            *byte ^= mask[i % 4];
        }
    }
    let frame = WireFrame {
        fin,
        rsv,
        opcode,
        masked,
        payload,
    };
    Ok(Some((frame, at + len)))
}

/// Whether a close code may be sent on the wire (RFC 6455 section 7.4): the defined codes,
/// the IANA-registered 1012 and 1013, and the 3000-4999 application ranges. Never 1004-1006,
/// 1014-2999, 1015 or anything below 1000 or above 4999.
pub fn close_code_valid(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1013 | 3000..=4999)
}

/// How a server's WebSocket stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// With a close frame carrying this code (`None`: an empty close frame).
    Close(Option<u16>),
    /// At a frame boundary without a close (the client hung up first).
    Clean,
}

/// Checks the frames a chat server wrote after `101 Switching Protocols`: every frame well-formed
/// and unmasked, control frames short and final, every text frame one protocol message
/// (`ServerMessage`), no binary frames, nothing after a close frame, a close frame with a valid
/// code and a UTF-8 reason, and no partial frame at the end.
pub fn check_server_frames(mut buf: &[u8]) -> Result<End, String> {
    let mut index = 0;
    while !buf.is_empty() {
        let (frame, used) = parse_frame(buf)
            .map_err(|e| format!("frame {index}: {e}"))?
            .ok_or_else(|| format!("frame {index}: stream ends inside a frame: {buf:?}"))?;
        buf = &buf[used..];
        let what = format!("frame {index} (opcode {:#x})", frame.opcode);
        if frame.masked {
            return Err(format!("{what}: server frames must not be masked"));
        }
        if frame.rsv != 0 {
            return Err(format!("{what}: reserved bits set"));
        }
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
            OP_PING | OP_PONG if frame.payload.len() > 125 => {
                return Err(format!("{what}: control payload over 125 bytes"));
            }
            OP_PING | OP_PONG => {}
            OP_CLOSE => {
                let end =
                    check_close_payload(&frame.payload).map_err(|e| format!("{what}: {e}"))?;
                if !buf.is_empty() {
                    return Err(format!("{what}: {} bytes after the close frame", buf.len()));
                }
                return Ok(end);
            }
            OP_BINARY => return Err(format!("{what}: the chat server sends no binary frames")),
            _ => return Err(format!("{what}: unexpected opcode")),
        }
        index += 1;
    }
    Ok(End::Clean)
}

fn check_close_payload(payload: &[u8]) -> Result<End, String> {
    match payload.len() {
        0 => Ok(End::Close(None)),
        1 => Err("close payload of 1 byte".to_owned()),
        len if len > 125 => Err(format!("close payload of {len} bytes")),
        _ => {
            let code = u16::from_be_bytes([payload[0], payload[1]]);
            if !close_code_valid(code) {
                return Err(format!("invalid close code {code}"));
            }
            std::str::from_utf8(&payload[2..])
                .map_err(|e| format!("close reason is not UTF-8: {e}"))?;
            Ok(End::Close(Some(code)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client frame: masked with `mask`, the length in its minimal encoding.
    fn client_frame(fin: bool, opcode: u8, mask: [u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut out = vec![(u8::from(fin) << 7) | opcode];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n if n <= u16::MAX as usize => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    #[test]
    fn client_frames_parse_back() {
        for len in [0, 1, 125, 126, 65535, 65536] {
            let payload = vec![b'x'; len];
            let bytes = client_frame(true, OP_TEXT, [9, 8, 7, 6], &payload);
            let (frame, used) = parse_frame(&bytes).unwrap().unwrap();
            assert_eq!(used, bytes.len());
            assert!(frame.masked && frame.fin);
            assert_eq!(frame.payload, payload);
            assert_eq!(parse_frame(&bytes[..bytes.len() - 1]).unwrap(), None);
        }
    }

    #[test]
    fn close_codes() {
        for ok in [1000, 1003, 1007, 1011, 1013, 3000, 4000, 4999] {
            assert!(close_code_valid(ok), "{ok}");
        }
        for bad in [0, 999, 1004, 1005, 1006, 1014, 1015, 2999, 5000] {
            assert!(!close_code_valid(bad), "{bad}");
        }
    }
}
