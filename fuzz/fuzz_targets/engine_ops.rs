//! An arbitrary sequence of engine inputs under an arbitrary valid `Config`, with
//! `check_invariants()` after every step and a model of every client's queue: see
//! `src/engine_ops.rs` for the ops and every check.

#![cfg_attr(fuzzing, no_main)]

use chat_fuzz::engine_ops::{run_ops, Reached};

libfuzzer_sys::fuzz_target!(|data: &[u8]| check(data));

/// Without libFuzzer (a plain build): replays the inputs named on the command line.
#[cfg(not(fuzzing))]
fn main() -> std::process::ExitCode {
    chat_fuzz::replay::main(check)
}

fn check(data: &[u8]) {
    run_ops(data, &mut Reached::default());
}
