//! Reading server frames, strictly: anything a conforming server could not have written is an
//! error naming what is wrong.

use std::fmt;

use super::{
    close_code_valid, is_control, OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_PONG, OP_TEXT,
};

const CONTROL_PAYLOAD_MAX: usize = 125;

/// One frame as a server wrote it, valid by [`parse_server_frame`]'s rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerFrame {
    pub fin: bool,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl ServerFrame {
    /// A final frame: what a test expects to read.
    pub fn new(opcode: u8, payload: impl Into<Vec<u8>>) -> Self {
        Self {
            fin: true,
            opcode,
            payload: payload.into(),
        }
    }

    pub fn text(text: &str) -> Self {
        Self::new(OP_TEXT, text)
    }

    /// A close frame's code, `None` for an empty close or another opcode.
    pub fn close_code(&self) -> Option<u16> {
        match (self.opcode, &self.payload[..]) {
            (OP_CLOSE, [high, low, ..]) => Some(u16::from_be_bytes([*high, *low])),
            _ => None,
        }
    }

    /// A close frame's reason, `None` for another opcode.
    pub fn close_reason(&self) -> Option<&str> {
        let reason = self.payload.get(2..).unwrap_or_default();
        // parse_server_frame admits only UTF-8 reasons: another is a hand-built frame's bug.
        (self.opcode == OP_CLOSE).then(|| std::str::from_utf8(reason).expect("a UTF-8 reason"))
    }
}

/// What no conforming server writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Malformed {
    /// RSV bits, though no extension was negotiated.
    ReservedBits(u8),
    ReservedOpcode(u8),
    /// A server must not mask (RFC 6455 section 5.1).
    Masked,
    /// A length in a longer form than it needs.
    NonMinimalLength {
        len: u64,
        form_bits: u8,
    },
    /// The most significant bit of a 64-bit length must be 0.
    LengthTopBit,
    /// More than this machine can address.
    Unaddressable(u64),
    FragmentedControl {
        opcode: u8,
    },
    ControlTooLong {
        opcode: u8,
        len: usize,
    },
    CloseOneByte,
    CloseCode(u16),
    CloseReasonNotUtf8,
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Malformed::ReservedBits(bits) => write!(f, "reserved bits {bits:#05b} set"),
            Malformed::ReservedOpcode(opcode) => write!(f, "reserved opcode {opcode:#x}"),
            Malformed::Masked => f.write_str("a masked server frame"),
            Malformed::NonMinimalLength { len, form_bits } => {
                write!(f, "non-minimal length: {len} in the {form_bits}-bit form")
            }
            Malformed::LengthTopBit => f.write_str("a 64-bit length with the top bit set"),
            Malformed::Unaddressable(len) => write!(f, "length {len} does not fit in memory"),
            Malformed::FragmentedControl { opcode } => {
                write!(f, "fragmented control frame (opcode {opcode:#x})")
            }
            Malformed::ControlTooLong { opcode, len } => {
                write!(
                    f,
                    "control frame (opcode {opcode:#x}) with {len} bytes, over 125"
                )
            }
            Malformed::CloseOneByte => f.write_str("close payload of 1 byte"),
            Malformed::CloseCode(code) => write!(f, "invalid close code {code}"),
            Malformed::CloseReasonNotUtf8 => f.write_str("close reason is not UTF-8"),
        }
    }
}

impl std::error::Error for Malformed {}

/// Parses the server frame at the start of `buf`, returning it and the bytes it took, or
/// `Ok(None)` while `buf` holds only part of one. A head is judged as soon as its bytes are
/// there, so a malformed frame is reported before its payload arrives.
pub fn parse_server_frame(buf: &[u8]) -> Result<Option<(ServerFrame, usize)>, Malformed> {
    let [first, second, ..] = *buf else {
        return Ok(None);
    };
    let fin = first & 0x80 != 0;
    let rsv = (first >> 4) & 0b111;
    let opcode = first & 0x0F;
    if rsv != 0 {
        return Err(Malformed::ReservedBits(rsv));
    }
    if !matches!(
        opcode,
        OP_CONTINUATION | OP_TEXT | OP_BINARY | OP_CLOSE | OP_PING | OP_PONG
    ) {
        return Err(Malformed::ReservedOpcode(opcode));
    }
    if second & 0x80 != 0 {
        return Err(Malformed::Masked);
    }
    if is_control(opcode) && !fin {
        return Err(Malformed::FragmentedControl { opcode });
    }
    let (len, head) = match second & 0x7F {
        126 => {
            let Some(bytes) = buf.get(2..4) else {
                return Ok(None);
            };
            let len = u64::from(u16::from_be_bytes([bytes[0], bytes[1]]));
            if len <= 125 {
                return Err(Malformed::NonMinimalLength { len, form_bits: 16 });
            }
            (len, 4)
        }
        127 => {
            let Some(bytes) = buf.get(2..10) else {
                return Ok(None);
            };
            let len = u64::from_be_bytes(bytes.try_into().expect("8 bytes"));
            if len >> 63 != 0 {
                return Err(Malformed::LengthTopBit);
            }
            if len <= u64::from(u16::MAX) {
                return Err(Malformed::NonMinimalLength { len, form_bits: 64 });
            }
            (len, 10)
        }
        short => (u64::from(short), 2),
    };
    let len = usize::try_from(len).map_err(|_| Malformed::Unaddressable(len))?;
    if is_control(opcode) && len > CONTROL_PAYLOAD_MAX {
        return Err(Malformed::ControlTooLong { opcode, len });
    }
    let Some(payload) = buf.get(head..).and_then(|rest| rest.get(..len)) else {
        return Ok(None);
    };
    if opcode == OP_CLOSE {
        check_close_payload(payload)?;
    }
    let frame = ServerFrame {
        fin,
        opcode,
        payload: payload.to_vec(),
    };
    Ok(Some((frame, head + len)))
}

/// Empty, or a valid code then a UTF-8 reason (RFC 6455 section 5.5.1).
fn check_close_payload(payload: &[u8]) -> Result<(), Malformed> {
    match payload {
        [] => Ok(()),
        [_] => Err(Malformed::CloseOneByte),
        [high, low, reason @ ..] => {
            let code = u16::from_be_bytes([*high, *low]);
            if !close_code_valid(code) {
                return Err(Malformed::CloseCode(code));
            }
            std::str::from_utf8(reason).map_err(|_| Malformed::CloseReasonNotUtf8)?;
            Ok(())
        }
    }
}

/// Every frame in `bytes`, which must end at a frame boundary; the error names the frame.
pub fn parse_server_frames(mut bytes: &[u8]) -> Result<Vec<ServerFrame>, String> {
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        let index = frames.len();
        match parse_server_frame(bytes) {
            Ok(Some((frame, used))) => {
                frames.push(frame);
                bytes = &bytes[used..];
            }
            Ok(None) => return Err(format!("frame {index}: the bytes end inside it: {bytes:?}")),
            Err(malformed) => return Err(format!("frame {index}: {malformed}")),
        }
    }
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The unmasked examples of RFC 6455 section 5.7, byte for byte.
    #[test]
    fn the_rfc_examples_parse() {
        let hello = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
        assert_eq!(
            parse_server_frames(&hello),
            Ok(vec![ServerFrame::text("Hello")])
        );
        let fragmented = [0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f];
        let frames = parse_server_frames(&fragmented).expect("valid");
        assert_eq!(
            frames,
            [
                ServerFrame {
                    fin: false,
                    opcode: OP_TEXT,
                    payload: b"Hel".to_vec(),
                },
                ServerFrame::new(OP_CONTINUATION, "lo"),
            ]
        );
        let ping = [0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
        assert_eq!(
            parse_server_frames(&ping),
            Ok(vec![ServerFrame::new(OP_PING, "Hello")])
        );
        let mut binary_256 = vec![0x82, 0x7E, 0x01, 0x00];
        binary_256.extend([7; 256]);
        assert_eq!(
            parse_server_frames(&binary_256),
            Ok(vec![ServerFrame::new(OP_BINARY, [7; 256])])
        );
        let mut binary_64k = vec![0x82, 0x7F, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00];
        binary_64k.extend(vec![9; 65536]);
        assert_eq!(
            parse_server_frames(&binary_64k),
            Ok(vec![ServerFrame::new(OP_BINARY, vec![9; 65536])])
        );
    }

    #[test]
    fn a_frame_is_complete_only_with_its_last_byte() {
        let mut bytes = vec![0x81, 126, 0x01, 0x00];
        bytes.extend([b'x'; 256]);
        for cut in 0..bytes.len() {
            assert_eq!(parse_server_frame(&bytes[..cut]), Ok(None), "cut at {cut}");
        }
        let (frame, used) = parse_server_frame(&bytes).expect("valid").expect("whole");
        assert_eq!((frame.payload.len(), used), (256, bytes.len()));
        assert!(parse_server_frames(&bytes[..100])
            .expect_err("truncated")
            .contains("end inside"));
    }

    #[test]
    fn what_no_server_writes_is_refused() {
        let cases: [(&[u8], Malformed); 12] = [
            (&[0xC1, 0], Malformed::ReservedBits(0b100)),
            (&[0x83, 0], Malformed::ReservedOpcode(0x3)),
            (&[0x8F, 0], Malformed::ReservedOpcode(0xF)),
            (&[0x81, 0x80], Malformed::Masked),
            (&[0x09, 0], Malformed::FragmentedControl { opcode: OP_PING }),
            (
                &[0x81, 126, 0, 125],
                Malformed::NonMinimalLength {
                    len: 125,
                    form_bits: 16,
                },
            ),
            (
                &[0x81, 127, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF],
                Malformed::NonMinimalLength {
                    len: 65535,
                    form_bits: 64,
                },
            ),
            (
                &[0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0],
                Malformed::LengthTopBit,
            ),
            (
                &[0x88, 126, 0, 126],
                Malformed::ControlTooLong {
                    opcode: OP_CLOSE,
                    len: 126,
                },
            ),
            (&[0x88, 1, 3], Malformed::CloseOneByte),
            (&[0x88, 2, 0x03, 0xED], Malformed::CloseCode(1005)),
            (&[0x88, 3, 0x03, 0xE8, 0xFF], Malformed::CloseReasonNotUtf8),
        ];
        for (bytes, malformed) in cases {
            assert_eq!(parse_server_frame(bytes), Err(malformed), "{bytes:x?}");
        }
    }

    #[test]
    fn close_frames_give_their_code_and_reason() {
        let (close, _) = parse_server_frame(&[0x88, 5, 0x0F, 0xA0, b'b', b'y', b'e'])
            .expect("valid")
            .expect("whole");
        assert_eq!(close.close_code(), Some(4000));
        assert_eq!(close.close_reason(), Some("bye"));
        let empty = ServerFrame::new(OP_CLOSE, []);
        assert_eq!((empty.close_code(), empty.close_reason()), (None, Some("")));
        assert_eq!(ServerFrame::text("x").close_reason(), None);
    }
}
