//! Key names and the room-name check. Every key of a room carries the hash tag `{room}`, which is
//! why a room name may never contain braces: a brace inside would move the tag.

/// The one pub/sub channel every node subscribes to; the envelope names the room.
pub const DELIVERIES: &str = "chat:deliveries";

/// The pub/sub channel of what nodes tell each other outside the rooms' order (typing, kicks).
pub const RELAY: &str = "chat:relay";

/// The set of nodes that announced seats (see `seats`), alive or not yet found dead. Every seat
/// key carries the hash tag `{seats}`, so one announcement's script stays on one slot of a Redis
/// Cluster (presence is small beside the rooms, which shard by their own tags).
pub(crate) const SEAT_NODES: &str = "chat:{seats}:nodes";

/// The count of nodes that joined (each node's number, for its guests' names).
pub(crate) const NODES: &str = "chat:nodes";

/// The longest room name accepted, so a key stays small (a chat room's key, [`room_key`], is at
/// most 64 characters of 4 bytes, each byte at most 3 bytes encoded).
pub(crate) const ROOM_BYTES_MAX: usize = 1024;

/// The name a chat room goes by in Redis: its likeness (`chat_engine::names::room_likeness`, so
/// the spellings one node takes for one room are one room everywhere), with every byte other
/// than an ASCII letter, digit or '-' written `_xx` (hex): one-to-one, and a valid room here.
pub fn room_key(likeness: &str) -> String {
    let mut key = String::with_capacity(likeness.len());
    for byte in likeness.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'-' {
            key.push(char::from(byte));
        } else {
            key.push_str(&format!("_{byte:02x}"));
        }
    }
    key
}

/// A room name is letters, digits, '-', '_' and '.', 1 to [`ROOM_BYTES_MAX`] bytes: no braces (the
/// hash tag), no ':' (the key separator), no spaces or newlines (the envelope's separator).
pub fn valid_room(room: &str) -> bool {
    !room.is_empty()
        && room.len() <= ROOM_BYTES_MAX
        && room
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// A node's seats: client number to `[room, nick]`.
pub(crate) fn seats(node: &str) -> String {
    format!("chat:{{seats}}:{node}")
}

/// A node's announcement counter.
pub(crate) fn seats_counter(node: &str) -> String {
    format!("chat:{{seats}}:{node}:n")
}

/// Present while a node lives (it renews it with every announcement).
pub(crate) fn alive(node: &str) -> String {
    format!("chat:{{seats}}:{node}:alive")
}

pub(crate) fn meta(room: &str) -> String {
    format!("chat:{{{room}}}:meta")
}

pub(crate) fn log(room: &str) -> String {
    format!("chat:{{{room}}}:log")
}

pub(crate) fn op(room: &str, idem: &str) -> String {
    format!("chat:{{{room}}}:op:{idem}")
}

pub(crate) fn nick(room: &str, nick_key: &str) -> String {
    format!("chat:{{{room}}}:nick:{nick_key}")
}

/// The SCAN pattern for every room's meta key. Braces are literal in Redis's glob.
pub(crate) const META_PATTERN: &str = "chat:{*}:meta";

/// The room named by a meta key, if the key is one of ours with a valid room name.
pub(crate) fn room_of_meta(key: &str) -> Option<&str> {
    let room = key.strip_prefix("chat:{")?.strip_suffix("}:meta")?;
    valid_room(room).then_some(room)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_carry_the_room_hash_tag() {
        assert_eq!(meta("lobby"), "chat:{lobby}:meta");
        assert_eq!(log("a.b"), "chat:{a.b}:log");
        assert_eq!(op("r", "x1"), "chat:{r}:op:x1");
        assert_eq!(room_of_meta(&meta("r-1_b.c")), Some("r-1_b.c"));
        assert_eq!(room_of_meta("chat:{a}b}:meta"), None);
        assert_eq!(room_of_meta("chat:{x}:log"), None);
    }

    #[test]
    fn room_names_exclude_tag_and_separator_bytes() {
        assert!(valid_room("Lobby-1_x.y"));
        for bad in ["", "a b", "a{b", "a}b", "a:b", "a\nb", "é"] {
            assert!(!valid_room(bad), "{bad:?}");
        }
        assert!(!valid_room(&"a".repeat(ROOM_BYTES_MAX + 1)));
    }
}
