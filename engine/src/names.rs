//! Validation of user-chosen names: nicknames and rooms, and the keys that make two names the
//! same. A nickname is normalized as PRECIS UsernameCaseMapped does (RFC 8265: width mapping,
//! case mapping, NFC, no default-ignorable or bidi control code points), each space-separated
//! part on its own, and compared by the UTS #39 confusable skeleton of that form, so `ａｌｉｃｅ`
//! and a Cyrillic `аlice` are taken while `alice` is in the room. Room names are compared by
//! their skeleton: a name confusable with an existing room's is that room.

use precis_core::profile::Profile;
use precis_core::Error as PrecisError;
use precis_profiles::UsernameCaseMapped;
use unicode_security::confusable_detection::skeleton;

/// Longest nickname, in characters, after trimming.
pub const NICK_CHARS_MAX: usize = 32;
/// Longest room name, in characters.
pub const ROOM_CHARS_MAX: usize = 64;
/// Nicknames the server assigns start with this; people may not pick them.
pub(crate) const GUEST_PREFIX: &str = "guest-";

/// Returns the trimmed nickname, or why it is refused.
pub fn validate_nick(raw: &str) -> Result<&str, String> {
    checked_nick(raw).map(|(nick, _)| nick)
}

/// The trimmed nickname and its likeness (see [`nick_likeness`]), normalizing it once (a join
/// or rename needs both, and PRECIS and the skeleton are the costly part of a join), or why it
/// is refused. Guests' names pass: another node's members may be guests.
pub(crate) fn normalized_nick(raw: &str) -> Result<(&str, String), String> {
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
    let profile = UsernameCaseMapped::new();
    let mut parts = Vec::new();
    for part in nick.split(' ').filter(|part| !part.is_empty()) {
        match profile.enforce(part) {
            Ok(normalized) => parts.push(normalized.into_owned()),
            Err(PrecisError::BadCodepoint(bad)) => {
                return Err(format!(
                    "a nickname cannot contain U+{:04X} (invisible, a direction control, a \
                     symbol or an emoji)",
                    bad.cp
                ))
            }
            Err(_) => {
                return Err(
                    "a nickname must be letters, digits and ordinary punctuation".to_owned(),
                )
            }
        }
    }
    Ok((nick, skeleton(&parts.join(" ")).collect()))
}

/// A name a client may choose: [`validate_nick`] and its likeness (`normalized_nick`, and not
/// a guest's name).
pub(crate) fn checked_nick(raw: &str) -> Result<(&str, String), String> {
    let (nick, likeness) = normalized_nick(raw)?;
    // Checked on the skeleton, so neither width, case nor a look-alike letter gets past it.
    if likeness.starts_with(GUEST_PREFIX) {
        return Err(format!(
            "nicknames starting with {GUEST_PREFIX:?} are reserved for guests"
        ));
    }
    Ok((nick, likeness))
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

/// The key under which two nicknames are the same person to a reader: the confusable skeleton of
/// the PRECIS form (of each space-separated part). A name PRECIS refuses (only server-assigned
/// names reach here unvalidated, and they pass) is taken in lower case instead.
pub fn nick_likeness(nick: &str) -> String {
    let profile = UsernameCaseMapped::new();
    let parts: Vec<String> = nick
        .trim()
        .split(' ')
        .filter(|part| !part.is_empty())
        .map(|part| {
            profile
                .enforce(part)
                .map_or_else(|_| part.to_lowercase(), |p| p.into_owned())
        })
        .collect();
    skeleton(&parts.join(" ")).collect()
}

/// The key under which a room name is one room: its confusable skeleton. A broker shared by
/// several nodes keys rooms by it too, so two spellings one node takes for one room are one room
/// on every node.
pub fn room_likeness(room: &str) -> String {
    skeleton(room).collect()
}

/// The key that orders a room's member list (`who` pages, the welcome's first page), and under
/// which a nickname is also unique: case is ignored.
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
        assert_eq!(validate_nick("Ann Marie"), Ok("Ann Marie"));
        assert_eq!(validate_nick("Zoë O'Brien"), Ok("Zoë O'Brien"));
        assert_eq!(validate_nick("日本"), Ok("日本"));
    }

    #[test]
    fn nicknames_cannot_hide_characters_or_pass_for_a_guest() {
        for bad in [
            "alice\u{200B}",
            "\u{202E}ecila",
            "al\u{2066}ice",
            "bob\u{1F44D}",
        ] {
            let why = validate_nick(bad).expect_err(bad);
            assert!(why.contains("U+"), "{bad:?}: {why}");
        }
        for guest in [
            "\u{200B}guest-7",
            "guest\u{2011}7",
            "\u{FF47}uest-7",
            "GUEST-7",
        ] {
            assert!(validate_nick(guest).is_err(), "{guest:?}");
        }
    }

    #[test]
    fn look_alike_nicknames_have_one_likeness() {
        let alice = nick_likeness("alice");
        for same in [
            "ALICE",
            "\u{FF41}\u{FF4C}\u{FF49}\u{FF43}\u{FF45}",
            "\u{430}lice",
            " alice ",
        ] {
            assert_eq!(nick_likeness(same), alice, "{same:?}");
        }
        for other in ["alicia", "bob", "al ice"] {
            assert_ne!(nick_likeness(other), alice, "{other:?}");
        }
        assert_eq!(nick_likeness("Ann  Marie"), nick_likeness("ann marie"));
        assert_eq!(room_likeness("g\u{435}neral"), room_likeness("general"));
        assert_ne!(room_likeness("general"), room_likeness("generals"));
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
