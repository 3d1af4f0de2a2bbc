//! The harness itself, on the committed seeds: each `ws_frames` seed ends the way its name says
//! (so the checks in `websocket` are known to see real closes), and every `http_upgrade` seed
//! passes. `cargo test -p chat-fuzz`, part of `cargo test --workspace` (a plain build: no
//! sanitizer, no libFuzzer).

use std::path::Path;

use chat_fuzz::http::check_responses;
use chat_fuzz::websocket::End;
use chat_fuzz::{chunk_size, serve_one, UPGRADE_REQUEST};

fn seed(target: &str, name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target)
        .join(format!("seed-{name}"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn ws_end(name: &str) -> End {
    let data = seed("ws_frames", name);
    let mut input = UPGRADE_REQUEST.to_vec();
    input.extend_from_slice(&data);
    let out = serve_one(&input, chunk_size(data.len()));
    let transcript = check_responses(&out, false).expect("valid output");
    assert_eq!(transcript.statuses, [101]);
    transcript.websocket.expect("upgraded")
}

#[test]
fn ws_seeds_end_as_named() {
    let expected = [
        ("message-close", End::Close(Some(1000))),
        ("commands", End::Close(Some(1000))),
        ("fragmented", End::Close(Some(1001))),
        ("ping-pong", End::Close(Some(1000))),
        ("close-3000", End::Close(Some(3000))),
        ("binary", End::Close(Some(1003))),
        ("unmasked", End::Close(Some(1002))),
        ("too-big", End::Close(Some(1009))),
        ("bad-utf8", End::Close(Some(1007))),
        ("bad-close-code", End::Close(Some(1002))),
        ("long-close", End::Close(Some(1002))),
        ("rsv-bits", End::Close(Some(1002))),
        ("hang-up", End::Clean),
        ("long-text", End::Clean),
    ];
    for (name, end) in expected {
        assert_eq!(ws_end(name), end, "seed-{name}");
    }
}

#[test]
fn http_seeds_are_answered_well() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/http_upgrade");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).expect("seed dir") {
        let path = entry.expect("entry").path();
        if !path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("seed-")
        {
            continue;
        }
        let data = std::fs::read(&path).expect("seed");
        let out = serve_one(&data, chunk_size(data.len()));
        let lenient = data.windows(4).any(|w| w == b"HEAD");
        check_responses(&out, lenient).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        seen += 1;
    }
    assert!(seen >= 10);
}

/// Replays `corpus/engine_ops` (the seeds, plus whatever a local campaign added) and prints what
/// it reached: `cargo test engine_ops_corpus -- --nocapture`.
#[test]
fn engine_ops_corpus() {
    use chat_fuzz::engine_ops::{run_ops, Reached};
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/engine_ops");
    let mut reached = Reached::default();
    let mut inputs = 0;
    for entry in std::fs::read_dir(dir).expect("corpus dir") {
        let data = std::fs::read(entry.expect("entry").path()).expect("input");
        run_ops(&data, &mut reached);
        inputs += 1;
    }
    println!("{inputs} inputs reached {reached:#?}");
    assert!(reached.steps > 0);
}
