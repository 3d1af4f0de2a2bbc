//! `GET /config.json`: what the web client needs to know about this running server.
//!
//! The client checks names and message lengths before sending them (an error shown at once rather
//! than after a round trip), says which room it will land in, and has a sentence for every close
//! code and leave reason it may meet. All of that comes from here, built from the server's own
//! `Settings`, so a flag such as `--max-text-bytes` reaches the client and no copy can drift.
//! The browser test fails when a close code or leave reason listed here has no text in the client.

use chat_engine::names::{NICK_CHARS_MAX, ROOM_CHARS_MAX};
use chat_engine::{CloseReason, LeaveReason};

use crate::settings::Settings;
use crate::ws_write::{
    CLOSE_GOING_AWAY, CLOSE_INVALID_DATA, CLOSE_NORMAL, CLOSE_POLICY, CLOSE_PROTOCOL,
    CLOSE_TOO_BIG, CLOSE_TRY_AGAIN, CLOSE_UNSUPPORTED,
};

/// Close codes the server sends itself, besides the engine's (`CloseReason::ALL`): every one
/// named in `ws_write.rs` but `CLOSE_NO_STATUS`, which is only logged. README's close-code table
/// lists them all. (1008 is the engine's too, for flooding.)
const SHELL_CLOSE_CODES: [u16; 8] = [
    CLOSE_NORMAL,
    CLOSE_GOING_AWAY,
    CLOSE_PROTOCOL,
    CLOSE_UNSUPPORTED,
    CLOSE_INVALID_DATA,
    CLOSE_POLICY,
    CLOSE_TOO_BIG,
    CLOSE_TRY_AGAIN,
];

/// Every close code the server can send, ascending.
fn close_codes() -> Vec<u16> {
    let mut codes: Vec<u16> = SHELL_CLOSE_CODES
        .into_iter()
        .chain(CloseReason::ALL.map(CloseReason::code))
        .collect();
    codes.sort_unstable();
    codes.dedup();
    codes
}

/// Every `reason` a `leave` frame can carry.
fn leave_reasons() -> Vec<&'static str> {
    LeaveReason::ALL.map(LeaveReason::as_str).to_vec()
}

/// The body of `/config.json` for a server running with `settings`.
pub(crate) fn body(settings: &Settings) -> String {
    let engine = &settings.engine;
    serde_json::json!({
        "default_room": engine.default_room,
        "text_bytes_max": engine.text_bytes_max,
        "nick_chars_max": NICK_CHARS_MAX,
        "room_chars_max": ROOM_CHARS_MAX,
        "history_max": engine.history_max,
        "rate_limit_burst": engine.rate_limit_burst,
        "rate_limit_per_second": engine.rate_limit_per_second,
        "close_codes": close_codes(),
        "leave_reasons": leave_reasons(),
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const README: &str = include_str!("../../README.md");

    /// The first cell of each row of the table under `heading`.
    fn first_column(heading: &str) -> Vec<&'static str> {
        let section = README
            .split_once(heading)
            .unwrap_or_else(|| panic!("README has no {heading:?}"))
            .1;
        section
            .lines()
            .skip_while(|line| !line.starts_with('|'))
            .take_while(|line| line.starts_with('|'))
            .skip(2) // the header and the |---| line
            .map(|line| line.split('|').nth(1).expect("a cell").trim())
            .collect()
    }

    #[test]
    fn the_close_codes_are_the_ones_readme_documents() {
        let documented: Vec<u16> = first_column("### Close codes")
            .into_iter()
            .map(|cell| cell.parse().expect("a close code"))
            .collect();
        assert_eq!(close_codes(), documented, "README's close-code table");
    }

    #[test]
    fn the_leave_reasons_are_the_ones_readme_documents() {
        let paragraph = README
            .split_once("Leave reasons:")
            .expect("README lists the leave reasons")
            .1
            .split("\n\n")
            .next()
            .expect("a paragraph");
        // "`left` (closed the connection), `switched` (...)": every other piece between backticks.
        let documented: Vec<&str> = paragraph.split('`').skip(1).step_by(2).collect();
        assert_eq!(leave_reasons(), documented, "README's leave reasons");
    }
}
