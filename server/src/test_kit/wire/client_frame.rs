//! Writing client frames: what a browser sends, masked, and every way of getting it wrong the
//! violation tests need.

use super::{OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_PONG, OP_TEXT};

/// The masking key of client frames unless a test picks one: RFC 6455 section 5.7's.
pub const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// How a client frame writes its payload length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Length {
    /// The shortest form that holds the length, as RFC 6455 requires.
    Minimal,
    /// The 16-bit form, even for a length under 126 (non-minimal: a violation).
    Extended16,
    /// The 64-bit form, even for a length that fits in 16 bits (non-minimal: a violation).
    Extended64,
    /// The 64-bit form holding this value whatever the payload's length: a lie, for caps and
    /// lengths no machine can address.
    Claimed(u64),
}

/// A frame a client sends: final, masked with [`MASK`], its length in the minimal form, unless
/// a builder method says otherwise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientFrame {
    fin: bool,
    rsv: u8,
    opcode: u8,
    mask: Option<[u8; 4]>,
    length: Length,
    payload: Vec<u8>,
}

impl ClientFrame {
    /// Any opcode, the reserved ones (0x3-0x7, 0xB-0xF) included.
    pub fn new(opcode: u8, payload: impl Into<Vec<u8>>) -> Self {
        assert!(opcode <= 0xF, "an opcode has 4 bits, not {opcode:#x}");
        Self {
            fin: true,
            rsv: 0,
            opcode,
            mask: Some(MASK),
            length: Length::Minimal,
            payload: payload.into(),
        }
    }

    /// A text frame; bytes rather than `&str`, so invalid UTF-8 can be sent too.
    pub fn text(payload: impl Into<Vec<u8>>) -> Self {
        Self::new(OP_TEXT, payload)
    }

    pub fn binary(payload: impl Into<Vec<u8>>) -> Self {
        Self::new(OP_BINARY, payload)
    }

    pub fn continuation(payload: impl Into<Vec<u8>>) -> Self {
        Self::new(OP_CONTINUATION, payload)
    }

    pub fn ping(payload: impl Into<Vec<u8>>) -> Self {
        Self::new(OP_PING, payload)
    }

    pub fn pong(payload: impl Into<Vec<u8>>) -> Self {
        Self::new(OP_PONG, payload)
    }

    /// A close frame carrying `code` and `reason`, not checked: any code, any bytes.
    pub fn close(code: u16, reason: &[u8]) -> Self {
        Self::new(OP_CLOSE, [&code.to_be_bytes()[..], reason].concat())
    }

    /// A close frame with this exact payload (empty, 1 byte, over 125 bytes...).
    pub fn close_payload(payload: impl Into<Vec<u8>>) -> Self {
        Self::new(OP_CLOSE, payload)
    }

    /// `false`: a fragment that more frames continue.
    pub fn fin(mut self, fin: bool) -> Self {
        self.fin = fin;
        self
    }

    /// RSV1, RSV2 and RSV3 as the bits `0b123`: non-zero is a violation without an extension.
    pub fn rsv(mut self, bits: u8) -> Self {
        assert!(bits <= 0b111, "three reserved bits, not {bits:#b}");
        self.rsv = bits;
        self
    }

    /// Masked with `key` instead of [`MASK`].
    pub fn mask(mut self, key: [u8; 4]) -> Self {
        self.mask = Some(key);
        self
    }

    /// Not masked, which a server must refuse.
    pub fn unmasked(mut self) -> Self {
        self.mask = None;
        self
    }

    pub fn length(mut self, length: Length) -> Self {
        self.length = length;
        self
    }

    /// The frame's bytes on the wire.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(14 + self.payload.len());
        out.push((u8::from(self.fin) << 7) | (self.rsv << 4) | self.opcode);
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        let len = self.payload.len();
        match self.length {
            Length::Minimal if len <= 125 => out.push(mask_bit | len as u8),
            Length::Minimal if len <= usize::from(u16::MAX) => {
                out.push(mask_bit | 126);
                out.extend_from_slice(&(len as u16).to_be_bytes());
            }
            Length::Minimal | Length::Extended64 => {
                out.push(mask_bit | 127);
                out.extend_from_slice(&(len as u64).to_be_bytes());
            }
            Length::Extended16 => {
                let len = u16::try_from(len).expect("the 16-bit form holds at most 65535 bytes");
                out.push(mask_bit | 126);
                out.extend_from_slice(&len.to_be_bytes());
            }
            Length::Claimed(claimed) => {
                out.push(mask_bit | 127);
                out.extend_from_slice(&claimed.to_be_bytes());
            }
        }
        match self.mask {
            Some(key) => {
                out.extend_from_slice(&key);
                out.extend(
                    self.payload
                        .iter()
                        .zip(key.iter().cycle())
                        .map(|(b, k)| b ^ k),
                );
            }
            None => out.extend_from_slice(&self.payload),
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The masked example of RFC 6455 section 5.7, byte for byte.
    #[test]
    fn the_rfc_example_encodes() {
        assert_eq!(
            ClientFrame::text("Hello").encode(),
            [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
        );
    }

    #[test]
    fn client_lengths_take_the_form_asked_for() {
        let head = |frame: ClientFrame| frame.encode()[..2].to_vec();
        assert_eq!(head(ClientFrame::binary([0; 125])), [0x82, 0x80 | 125]);
        assert_eq!(head(ClientFrame::binary([0; 126])), [0x82, 0x80 | 126]);
        assert_eq!(head(ClientFrame::binary(vec![0; 65536])), [0x82, 0xFF]);
        let short_in_16 = ClientFrame::text("x").length(Length::Extended16).encode();
        assert_eq!(short_in_16[..4], [0x81, 0x80 | 126, 0, 1]);
        let short_in_64 = ClientFrame::text("x").length(Length::Extended64).encode();
        assert_eq!(short_in_64[..10], [0x81, 0xFF, 0, 0, 0, 0, 0, 0, 0, 1]);
        let lie = ClientFrame::text("")
            .length(Length::Claimed(u64::MAX))
            .encode();
        assert_eq!(lie, [&[0x81, 0xFF][..], &[0xFF; 8], &MASK].concat());
    }

    #[test]
    fn malformed_client_frames_are_what_they_say() {
        let plain = ClientFrame::ping("x")
            .fin(false)
            .rsv(0b101)
            .unmasked()
            .encode();
        assert_eq!(plain, [0x59, 0x01, b'x']);
        let keyed = ClientFrame::new(0xB, "ab").mask([1, 2, 3, 4]).encode();
        assert_eq!(keyed, [0x8B, 0x82, 1, 2, 3, 4, b'a' ^ 1, b'b' ^ 2]);
        assert_eq!(
            ClientFrame::close(1000, b"bye").encode()[6..],
            ClientFrame::close_payload([0x03, 0xE8, b'b', b'y', b'e']).encode()[6..]
        );
    }
}
