//! Arbitrary bytes as an HTTP/1.1 request stream into the server's hyper service (every route,
//! the upgrade, keep-alive, pipelining, the handshake timeout), over an in-memory stream.
//!
//! Passes when nothing panics, the connection ends within the hang limit of virtual time, and
//! the output is nothing (a closed connection) or well-formed responses, with a valid WebSocket
//! stream after a `101`.

#![cfg_attr(fuzzing, no_main)]

use chat_fuzz::{chunk_size, http::check_responses, serve_one};

libfuzzer_sys::fuzz_target!(|data: &[u8]| check(data));

/// Without libFuzzer (a plain build): replays the inputs named on the command line.
#[cfg(not(fuzzing))]
fn main() -> std::process::ExitCode {
    chat_fuzz::replay::main(check)
}

fn check(data: &[u8]) {
    let out = serve_one(data, chunk_size(data.len()));
    // A response to HEAD declares a length it does not send, so responses after it cannot be
    // delimited without parsing the requests: check only the first one then.
    let lenient = data.windows(4).any(|w| w == b"HEAD");
    check_responses(&out, lenient).unwrap_or_else(|e| {
        panic!(
            "bad server output: {e}\n{:?}",
            String::from_utf8_lossy(&out)
        )
    });
}
