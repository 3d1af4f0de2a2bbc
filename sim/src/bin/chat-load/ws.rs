//! A minimal WebSocket client for load: a raw HTTP/1.1 upgrade over a `TcpStream`, a reader that
//! parses the server's (unmasked) frames straight out of one reusable buffer, and an encoder for
//! masked client text frames. No per-frame allocation, so the generator stays cheap per message
//! while it shares the machine's cores with the server it measures.

use std::io;
use std::net::SocketAddr;

use fastwebsockets::{OpCode, Payload};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

pub(crate) const OP_TEXT: u8 = 0x1;
pub(crate) const OP_BINARY: u8 = 0x2;
pub(crate) const OP_CLOSE: u8 = 0x8;
pub(crate) const OP_PING: u8 = 0x9;
pub(crate) const OP_PONG: u8 = 0xA;

/// Where to connect: a loopback socket address, the `Host` header and the request path.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    pub(crate) addr: SocketAddr,
    pub(crate) host: String,
    pub(crate) path: String,
}

impl Target {
    /// Parses `ws://HOST:PORT/PATH`; refuses anything that does not resolve to loopback.
    pub(crate) fn parse(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("ws://")
            .ok_or_else(|| format!("{url:?}: only ws:// URLs are supported"))?;
        let (host, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/ws"),
        };
        let addr = std::net::ToSocketAddrs::to_socket_addrs(host)
            .map_err(|e| format!("{host:?}: {e}"))?
            .next()
            .ok_or_else(|| format!("{host:?} resolves to nothing"))?;
        if !addr.ip().is_loopback() {
            return Err(format!(
                "{addr}: chat-load only targets loopback addresses (127.0.0.1)"
            ));
        }
        Ok(Self {
            addr,
            host: host.to_owned(),
            path: path.to_owned(),
        })
    }
}

/// A connected, upgraded client: its halves plus whatever bytes followed the 101 response.
pub(crate) struct Conn {
    pub(crate) read: OwnedReadHalf,
    pub(crate) write: OwnedWriteHalf,
    pub(crate) leftover: Vec<u8>,
}

/// Connects and performs the upgrade to `path?query`.
pub(crate) async fn connect(target: &Target, query: &str) -> io::Result<Conn> {
    let mut stream = TcpStream::connect(target.addr).await?;
    stream.set_nodelay(true)?;
    let sep = if target.path.contains('?') { '&' } else { '?' };
    let request = format!(
        "GET {}{sep}{query} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        target.path, target.host
    );
    stream.write_all(request.as_bytes()).await?;
    let mut buf = Vec::with_capacity(1024);
    let end = loop {
        let mut chunk = [0u8; 1024];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed during the handshake",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 16 << 10 {
            return Err(io::Error::other("handshake response too long"));
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]);
    let status = head.lines().next().unwrap_or_default();
    if !status.starts_with("HTTP/1.1 101") {
        return Err(io::Error::other(format!("upgrade refused: {status}")));
    }
    let leftover = buf.split_off(end);
    let (read, write) = stream.into_split();
    Ok(Conn {
        read,
        write,
        leftover,
    })
}

/// Appends one masked client text frame.
pub(crate) fn encode_text(buf: &mut Vec<u8>, payload: &[u8], mask: [u8; 4]) {
    encode(buf, OP_TEXT, payload, mask);
}

/// Appends one masked client frame with `opcode` (a defined one; fastwebsockets formats the head).
pub(crate) fn encode(buf: &mut Vec<u8>, opcode: u8, payload: &[u8], mask: [u8; 4]) {
    let opcode = OpCode::try_from(opcode).expect("a defined opcode");
    let mut head = [0u8; 14];
    let len = fastwebsockets::Frame::new(true, opcode, Some(mask), Payload::Borrowed(payload))
        .fmt_head(&mut head);
    buf.extend_from_slice(&head[..len]);
    buf.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
}

/// A frame the server sent, borrowed from the reader's buffer.
pub(crate) struct Frame<'a> {
    pub(crate) opcode: u8,
    pub(crate) payload: &'a [u8],
}

/// Reads server frames from one buffer that grows only for frames larger than it.
pub(crate) struct FrameReader {
    read: OwnedReadHalf,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Length of the frame handed out last, consumed on the next call.
    pending: usize,
}

impl FrameReader {
    pub(crate) fn new(read: OwnedReadHalf, leftover: Vec<u8>, capacity: usize) -> Self {
        let mut buf = leftover;
        let end = buf.len();
        buf.resize(end.max(capacity), 0);
        Self {
            read,
            buf,
            start: 0,
            end,
            pending: 0,
        }
    }

    /// The next whole frame, or `None` at end of stream.
    pub(crate) async fn next(&mut self) -> io::Result<Option<Frame<'_>>> {
        self.start += std::mem::take(&mut self.pending);
        loop {
            if let Some((header, len)) = parse_head(&self.buf[self.start..self.end])? {
                if self.end - self.start >= header + len {
                    let at = self.start;
                    self.pending = header + len;
                    let opcode = self.buf[at] & 0x0F;
                    return Ok(Some(Frame {
                        opcode,
                        payload: &self.buf[at + header..at + header + len],
                    }));
                }
                if header + len > self.buf.len() {
                    self.buf.resize(header + len, 0);
                }
            }
            // Make room: move the partial frame to the front.
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.end == self.buf.len() {
                let len = self.buf.len() * 2;
                self.buf.resize(len, 0);
            }
            let n = self.read.read(&mut self.buf[self.end..]).await?;
            if n == 0 {
                return Ok(None);
            }
            self.end += n;
        }
    }
}

/// `(header length, payload length)` once the whole header is buffered.
fn parse_head(b: &[u8]) -> io::Result<Option<(usize, usize)>> {
    if b.len() < 2 {
        return Ok(None);
    }
    if b[1] & 0x80 != 0 {
        return Err(io::Error::other("server frame is masked"));
    }
    if b[0] & 0x80 == 0 {
        return Err(io::Error::other(
            "fragmented server frames are not supported",
        ));
    }
    Ok(match b[1] & 0x7F {
        126 if b.len() >= 4 => Some((4, u16::from_be_bytes([b[2], b[3]]) as usize)),
        127 if b.len() >= 10 => {
            let mut len = [0u8; 8];
            len.copy_from_slice(&b[2..10]);
            Some((10, u64::from_be_bytes(len) as usize))
        }
        126 | 127 => None,
        n => Some((2, n as usize)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_frames_unmask_to_the_payload() {
        let mut buf = Vec::new();
        let payload = vec![b'x'; 300];
        encode_text(&mut buf, &payload, [1, 2, 3, 4]);
        assert_eq!(buf[0], 0x81);
        assert_eq!(buf[1], 0x80 | 126);
        assert_eq!(u16::from_be_bytes([buf[2], buf[3]]), 300);
        let mask = &buf[4..8];
        let unmasked: Vec<u8> = buf[8..]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ mask[i & 3])
            .collect();
        assert_eq!(unmasked, payload);
    }

    #[test]
    fn heads_parse_all_three_lengths() {
        assert_eq!(parse_head(&[0x81, 5]).unwrap(), Some((2, 5)));
        assert_eq!(parse_head(&[0x81, 126, 1]).unwrap(), None);
        assert_eq!(parse_head(&[0x81, 126, 1, 0]).unwrap(), Some((4, 256)));
        assert_eq!(
            parse_head(&[0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0]).unwrap(),
            Some((10, 65536))
        );
        assert!(parse_head(&[0x81, 0x85]).is_err());
    }

    #[test]
    fn only_loopback_targets_are_accepted() {
        assert!(Target::parse("ws://127.0.0.1:1/ws").is_ok());
        assert!(Target::parse("ws://10.0.0.1:1/ws").is_err());
        assert!(Target::parse("http://127.0.0.1:1/ws").is_err());
    }
}
