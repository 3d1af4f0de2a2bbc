//! Arbitrary bytes from a client after a valid upgrade to `/ws`, through the server's real
//! connection path (hyper upgrade, frame parsing, fragmentation, size cap, close validation,
//! protocol decoding, the hub and the engine) over an in-memory stream.
//!
//! Passes when nothing panics (in any task: libFuzzer's panic hook aborts), the connection ends
//! within the hang limit of virtual time, and the server's output is `101 Switching Protocols`
//! followed by well-formed frames ending in a valid close frame or a clean end.

#![cfg_attr(fuzzing, no_main)]

use chat_fuzz::{chunk_size, http::check_responses, serve_one, UPGRADE_REQUEST};

libfuzzer_sys::fuzz_target!(|data: &[u8]| check(data));

/// Without libFuzzer (a plain build): replays the inputs named on the command line.
#[cfg(not(fuzzing))]
fn main() -> std::process::ExitCode {
    chat_fuzz::replay::main(check)
}

fn check(data: &[u8]) {
    let mut input = UPGRADE_REQUEST.to_vec();
    input.extend_from_slice(data);
    let out = serve_one(&input, chunk_size(data.len()));
    let transcript = check_responses(&out, false).unwrap_or_else(|e| {
        panic!(
            "bad server output: {e}\n{:?}",
            String::from_utf8_lossy(&out)
        )
    });
    assert_eq!(transcript.statuses, [101], "the upgrade must succeed");
    assert!(transcript.websocket.is_some());
}
