//! Validation of user-chosen names: nicknames and rooms.

/// Longest nickname, in characters, after trimming.
pub const NICK_CHARS_MAX: usize = 32;
/// Longest room name, in characters.
pub const ROOM_CHARS_MAX: usize = 64;
/// Nicknames the server assigns start with this; people may not pick them.
pub(crate) const GUEST_PREFIX: &str = "guest-";

/// Returns the trimmed nickname, or why it is refused.
pub fn validate_nick(raw: &str) -> Result<&str, String> {
    let nick = raw.trim();
    let chars = nick.chars().count();
    if chars == 0 {
        return Err("a nickname needs at least one visible character".to_owned());
    }
    if chars > NICK_CHARS_MAX {
        return Err(format!(
            "a nickname has at most {NICK_CHARS_MAX} characters (this one has {chars})"
        ));
    }
    if nick.chars().any(char::is_control) {
        return Err("a nickname cannot contain control characters".to_owned());
    }
    let reserved = nick
        .get(..GUEST_PREFIX.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(GUEST_PREFIX));
    if reserved {
        return Err(format!(
            "nicknames starting with {GUEST_PREFIX:?} are reserved for guests"
        ));
    }
    Ok(nick)
}

/// Returns the room name, or why it is refused: 1-64 of letters, digits, `-`, `_`, `.`.
pub fn validate_room(room: &str) -> Result<&str, String> {
    let chars = room.chars().count();
    if chars == 0 || chars > ROOM_CHARS_MAX {
        return Err(format!(
            "a room name has 1 to {ROOM_CHARS_MAX} characters (this one has {chars})"
        ));
    }
    if let Some(bad) = room
        .chars()
        .find(|c| !(c.is_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!(
            "a room name may contain letters, digits, '-', '_' and '.', not {bad:?}"
        ));
    }
    Ok(room)
}

/// The key under which a nickname is unique in a room: case is ignored.
pub(crate) fn nick_key(nick: &str) -> String {
    nick.to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nick_is_trimmed_and_bounded() {
        assert_eq!(validate_nick("  ann  "), Ok("ann"));
        assert!(validate_nick("   ").is_err());
        assert!(validate_nick(&"x".repeat(33)).is_err());
        assert_eq!(validate_nick(&"é".repeat(32)).map(str::len), Ok(64));
        assert!(validate_nick("a\u{7}b").is_err());
        assert!(validate_nick("Guest-3").is_err());
        assert_eq!(validate_nick("guest"), Ok("guest"));
    }

    #[test]
    fn room_allows_only_its_alphabet() {
        assert!(validate_room("rust-lang_2.0").is_ok());
        assert!(validate_room("").is_err());
        assert!(validate_room("a b").is_err());
        assert!(validate_room("a/b").is_err());
        assert!(validate_room(&"r".repeat(65)).is_err());
        assert!(validate_room(&"r".repeat(64)).is_ok());
    }
}
