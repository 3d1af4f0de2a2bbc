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

/// The first character chat text may not carry, if any: C0 controls other than tab and newline,
/// DEL, C1 controls, and the bidi embedding, override and isolate controls (U+202A-U+202E,
/// U+2066-U+2069). Controls are invisible or rewrite the terminal or page that shows them, and
/// a JSON escape makes each cost six bytes of every copy kept; bidi controls make a line read
/// as something other than what it says.
pub fn refused_text_char(text: &str) -> Option<char> {
    text.chars().find(|&c| {
        matches!(c,
            '\0'..='\u{8}' | '\u{b}'..='\u{1f}' | '\u{7f}'..='\u{9f}'
            | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    })
}

/// The key under which a nickname is unique in a room: case is ignored.
pub(crate) fn nick_key(nick: &str) -> String {
    nick.to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_refuses_controls_and_bidi_overrides_but_keeps_tab_and_newline() {
        assert_eq!(refused_text_char("a\tb\nc é 日本 👍"), None);
        for c in [
            '\0', '\u{1}', '\u{8}', '\u{b}', '\u{c}', '\r', '\u{1b}', '\u{1f}',
        ] {
            assert_eq!(refused_text_char(&format!("a{c}b")), Some(c), "C0 {:?}", c);
        }
        for c in ['\u{7f}', '\u{80}', '\u{85}', '\u{9f}'] {
            assert_eq!(
                refused_text_char(&format!("a{c}")),
                Some(c),
                "DEL/C1 {:?}",
                c
            );
        }
        for c in ['\u{202a}', '\u{202b}', '\u{202c}', '\u{202d}', '\u{202e}'] {
            assert_eq!(refused_text_char(&format!("{c}x")), Some(c), "bidi {:?}", c);
        }
        for c in ['\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}'] {
            assert_eq!(
                refused_text_char(&format!("{c}x")),
                Some(c),
                "isolate {:?}",
                c
            );
        }
        // Their neighbours are ordinary text.
        for c in [
            '\u{a0}', '\u{2029}', '\u{202f}', '\u{2065}', '\u{206a}', ' ', '~',
        ] {
            assert_eq!(refused_text_char(&format!("a{c}b")), None, "{:?}", c);
        }
    }

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
