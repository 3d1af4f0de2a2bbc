//! WebSocket frames as the tests see them (RFC 6455 section 5.2). [`ClientFrame`] writes what a
//! client sends, also what no conforming client would (unmasked, reserved bits or opcodes,
//! non-minimal or lying lengths), for the violation tests. [`parse_server_frame`] reads what the
//! server wrote and refuses anything a conforming server could not have written: a masked
//! frame, reserved bits or opcodes, a non-minimal length, a fragmented or over-long control
//! frame, a close frame with a 1-byte payload, an invalid code or a reason that is not UTF-8.
//!
//! It is written from the RFC alone and shares no code with fastwebsockets or with the server's
//! reader (`ws_read`) and writer (`ws_write`): checked by the code that wrote them, the server's
//! frames would pass with that code's bugs, like the invalid 126-byte close frame fastwebsockets
//! echoes to an over-long client close.

mod client_frame;
mod server_frame;

pub use client_frame::{ClientFrame, Length, MASK};
pub use server_frame::{parse_server_frame, parse_server_frames, Malformed, ServerFrame};

pub const OP_CONTINUATION: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// Control frames (close, ping, pong) have the high bit of the opcode set.
fn is_control(opcode: u8) -> bool {
    opcode & 0x8 != 0
}

/// Whether a close code may be sent on the wire (RFC 6455 section 7.4): the defined codes, the
/// IANA-registered 1012 and 1013, and the 3000-4999 application ranges. Never 1004-1006 or
/// 1014-2999, nor anything below 1000 or above 4999.
pub fn close_code_valid(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1013 | 3000..=4999)
}

#[cfg(test)]
mod tests {
    use super::*;

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
