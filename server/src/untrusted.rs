//! Request-supplied text on its way into a log line or a response body: [`clip`] is the one
//! place that bounds and escapes it. An `Origin`, `Host`, path, query or nickname is whatever an
//! attacker typed; written out raw, a 100 KB header becomes a 100 KB log line (and a 100 KB
//! error body), and a newline or terminal escape in it forges log lines or rewrites the
//! operator's terminal.

/// Most bytes of escaped text [`clip`] keeps; what follows is replaced by a note of the length.
pub(crate) const CLIP_BYTES_MAX: usize = 256;

/// `raw` as a quoted, escaped string of at most [`CLIP_BYTES_MAX`] bytes between the quotes,
/// followed by `...(N bytes)` when it was cut.
///
/// Invalid UTF-8 becomes U+FFFD. Escaping is `char::escape_debug` (`\n`, `\u{1b}`, `\"`, `\\`,
/// bidi overrides and other invisible code points), so the output is one line and cannot be
/// mistaken for the text around it. The cut falls between two whole escaped characters, so it
/// never splits a UTF-8 sequence or an escape.
pub(crate) fn clip(raw: impl AsRef<[u8]>) -> String {
    let raw = raw.as_ref();
    let text = String::from_utf8_lossy(raw);
    let mut out = String::with_capacity(CLIP_BYTES_MAX.min(raw.len()) + 24);
    out.push('"');
    let mut escaped = String::new();
    let mut kept = 0;
    for c in text.chars() {
        escaped.clear();
        escaped.extend(c.escape_debug());
        if kept + escaped.len() > CLIP_BYTES_MAX {
            out.push('"');
            out.push_str(&format!("...({} bytes)", raw.len()));
            return out;
        }
        kept += escaped.len();
        out.push_str(&escaped);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_printable_text_is_quoted_as_is() {
        assert_eq!(clip("https://chat.example"), r#""https://chat.example""#);
        assert_eq!(clip("ann b"), r#""ann b""#);
        assert_eq!(clip("zoë"), "\"zoë\"");
    }

    #[test]
    fn control_characters_quotes_and_bidi_overrides_are_escaped() {
        assert_eq!(clip("a\nb"), r#""a\nb""#);
        assert_eq!(clip("\u{1b}[2J"), r#""\u{1b}[2J""#);
        assert_eq!(clip("say \"hi\" \\"), r#""say \"hi\" \\""#);
        assert_eq!(clip("\u{202e}evil"), r#""\u{202e}evil""#);
        assert_eq!(clip(b"\xff\xfe"), "\"\u{fffd}\u{fffd}\"");
    }

    #[test]
    fn long_text_is_cut_and_its_length_named() {
        let clipped = clip("a".repeat(100_000));
        assert_eq!(
            clipped,
            format!("\"{}\"...(100000 bytes)", "a".repeat(CLIP_BYTES_MAX))
        );
        assert!(clipped.len() < CLIP_BYTES_MAX + 32);
    }

    /// Escapes make text longer; the bound is on what is written, whatever the input.
    #[test]
    fn the_bound_holds_for_text_that_escapes_to_more_bytes() {
        for unit in ["\u{1}", "é", "\u{10ffff}", "\u{202e}", "😀", "\""] {
            let raw = unit.repeat(10_000);
            let clipped = clip(&raw);
            let inner = clipped
                .strip_prefix('"')
                .and_then(|s| s.split_once("\"..."))
                .expect("cut")
                .0;
            assert!(inner.len() <= CLIP_BYTES_MAX, "{unit:?}: {}", inner.len());
            assert!(
                inner.len() > CLIP_BYTES_MAX - 16,
                "{unit:?}: {}",
                inner.len()
            );
            assert!(
                clipped.ends_with(&format!("...({} bytes)", raw.len())),
                "{clipped}"
            );
        }
    }

    #[test]
    fn text_of_exactly_the_bound_is_not_cut() {
        let raw = "x".repeat(CLIP_BYTES_MAX);
        assert_eq!(clip(&raw), format!("\"{raw}\""));
    }
}
