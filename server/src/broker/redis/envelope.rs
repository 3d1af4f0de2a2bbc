//! The envelope a publish sends on the deliveries channel, and its strict parser.
//!
//! Format: `c1\n<room>\n<epoch>\n<seq>\n<body>`. The room, the epoch and the seq never contain a
//! newline (both names are checked before they reach Redis), so the body is simply the rest: it is
//! length-safe for any bytes without escaping, and Lua builds it by concatenation (no cjson, whose
//! number formatting and byte handling we would have to trust).

use bytes::Bytes;

use super::keys::valid_room;

/// The version tag at the front of every envelope; a different one is rejected.
pub(crate) const TAG: &str = "c1";

/// The longest epoch accepted.
pub(crate) const EPOCH_BYTES_MAX: usize = 64;

/// An epoch is 1 to [`EPOCH_BYTES_MAX`] visible ASCII bytes: no spaces, no newlines.
pub(crate) fn valid_epoch(epoch: &str) -> bool {
    !epoch.is_empty()
        && epoch.len() <= EPOCH_BYTES_MAX
        && epoch.bytes().all(|b| b.is_ascii_graphic())
}

/// A delivery as parsed from the channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Envelope {
    pub(crate) room: String,
    pub(crate) epoch: String,
    pub(crate) seq: u64,
    pub(crate) body: Bytes,
}

/// Why an envelope was rejected (logged, then skipped).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum EnvelopeError {
    /// The envelope does not start with the expected version tag.
    #[error("unknown envelope tag")]
    Tag,
    /// A header line is missing.
    #[error("envelope truncated")]
    Truncated,
    /// The room name is not a valid room name.
    #[error("invalid room in envelope")]
    Room,
    /// The epoch is not a valid epoch.
    #[error("invalid epoch in envelope")]
    Epoch,
    /// The seq is not a canonical decimal number >= 1.
    #[error("invalid seq in envelope")]
    Seq,
}

/// Parses one envelope strictly: exact tag, valid room and epoch, canonical decimal seq >= 1.
pub(crate) fn parse(payload: &[u8]) -> Result<Envelope, EnvelopeError> {
    let mut rest = payload;
    let mut line = || -> Result<&[u8], EnvelopeError> {
        let at = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or(EnvelopeError::Truncated)?;
        let (head, tail) = rest.split_at(at);
        rest = &tail[1..];
        Ok(head)
    };
    if line()? != TAG.as_bytes() {
        return Err(EnvelopeError::Tag);
    }
    let room = std::str::from_utf8(line()?).map_err(|_| EnvelopeError::Room)?;
    if !valid_room(room) {
        return Err(EnvelopeError::Room);
    }
    let room = room.to_owned();
    let epoch = std::str::from_utf8(line()?).map_err(|_| EnvelopeError::Epoch)?;
    if !valid_epoch(epoch) {
        return Err(EnvelopeError::Epoch);
    }
    let epoch = epoch.to_owned();
    let seq = parse_seq(line()?).ok_or(EnvelopeError::Seq)?;
    if seq == 0 {
        return Err(EnvelopeError::Seq);
    }
    Ok(Envelope {
        room,
        epoch,
        seq,
        body: Bytes::copy_from_slice(rest),
    })
}

/// A canonical decimal u64: digits only, no sign, no leading zero (except "0" itself).
pub(crate) fn parse_seq(text: &[u8]) -> Option<u64> {
    if text.is_empty()
        || !text.iter().all(u8::is_ascii_digit)
        || (text.len() > 1 && text[0] == b'0')
    {
        return None;
    }
    std::str::from_utf8(text).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_round_trips_any_body_bytes() {
        let got = parse(b"c1\nlobby\nE1\n42\n{\"t\":\"a\nb\"}\n\xff").unwrap();
        assert_eq!(got.room, "lobby");
        assert_eq!(got.epoch, "E1");
        assert_eq!(got.seq, 42);
        assert_eq!(&got.body[..], b"{\"t\":\"a\nb\"}\n\xff");
        assert_eq!(parse(b"c1\nr\ne\n1\n").unwrap().body.len(), 0);
    }

    #[test]
    fn malformed_envelopes_are_rejected() {
        assert_eq!(parse(b""), Err(EnvelopeError::Truncated));
        assert_eq!(parse(b"c2\nr\ne\n1\nx"), Err(EnvelopeError::Tag));
        assert_eq!(parse(b"c1\nr\ne\n1"), Err(EnvelopeError::Truncated));
        assert_eq!(parse(b"c1\na b\ne\n1\nx"), Err(EnvelopeError::Room));
        assert_eq!(parse(b"c1\nr\n\n1\nx"), Err(EnvelopeError::Epoch));
        for seq in ["0", "01", "-1", "1e3", "", "18446744073709551616", "1.0"] {
            let text = format!("c1\nr\ne\n{seq}\nx");
            assert_eq!(parse(text.as_bytes()), Err(EnvelopeError::Seq), "{seq:?}");
        }
    }
}
