//! Arbitrary text as one client message into `protocol::decode`: every input is a command or an
//! `error` with a decoder code, and re-encoding a decoded command round-trips.

#![cfg_attr(fuzzing, no_main)]

use chat_engine::protocol::{decode, Command, ErrorCode};

libfuzzer_sys::fuzz_target!(|text: &str| check(text));

/// Without libFuzzer (a plain build): replays the inputs named on the command line, each made
/// text exactly as `fuzz_target!` makes it (the longest valid UTF-8 prefix).
#[cfg(not(fuzzing))]
fn main() -> std::process::ExitCode {
    use libfuzzer_sys::arbitrary::{Arbitrary, Unstructured};
    chat_fuzz::replay::main(|data| {
        let text = <&str>::arbitrary_take_rest(Unstructured::new(data))
            .expect("any bytes have a valid UTF-8 prefix");
        check(text);
    })
}

fn check(text: &str) {
    let is_object = text.trim_start().starts_with('{');
    match decode(text) {
        Ok(command) => {
            if !is_object {
                // Anything not starting with `{` is a chat message with exactly that text.
                assert_eq!(
                    command,
                    Command::Message {
                        text: text.to_owned()
                    }
                );
            }
            let encoded = command.encode();
            let value: serde_json::Value =
                serde_json::from_str(&encoded).expect("encode writes JSON");
            assert!(
                value["type"].is_string(),
                "encode names the type: {encoded}"
            );
            assert_eq!(
                decode(&encoded),
                Ok(command.clone()),
                "round trip of {encoded}"
            );
            assert_eq!(
                decode(&encoded).map(|c| c.encode()).as_deref(),
                Ok(encoded.as_str()),
                "encode is canonical"
            );
        }
        Err(error) => {
            assert!(is_object, "plain text is never refused: {text:?}");
            assert!(
                matches!(
                    error.code,
                    ErrorCode::InvalidJson | ErrorCode::UnknownType | ErrorCode::InvalidField
                ),
                "the decoder uses only decoding codes, not {:?}",
                error.code
            );
            assert!(!error.message.is_empty());
            if error.code != ErrorCode::InvalidJson {
                // Syntax only: `Value` would read an object keyed by serde_json's private
                // raw-value token as the text it holds (what this target once found in decode).
                serde_json::from_str::<serde::de::IgnoredAny>(text)
                    .expect("only invalid_json is for invalid JSON");
            }
        }
    }
}
