//! An arbitrary sequence of engine inputs under an arbitrary valid `Config`, with
//! `check_invariants()` after every step and a model of every client's queue: see
//! `src/engine_ops.rs` for the ops and every check.

#![no_main]

use chat_fuzz::engine_ops::{run_ops, Reached};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    run_ops(data, &mut Reached::default());
});
