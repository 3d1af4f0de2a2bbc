//! Seeds: which ones a scenario runs (`CHAT_SIM_SEEDS=N`, `CHAT_SIM_SEED=S`), the replay command
//! printed when one fails, and catching panics inside simulated hosts (which turmoil swallows).

use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

/// Seeds per scenario under a plain `cargo test`.
pub const DEFAULT_SEEDS: u64 = 3;

thread_local! {
    /// Panics raised on this thread since the current seed started (the whole simulation runs on
    /// the test's thread, so this includes every simulated host's tasks).
    static PANICS: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

fn install_panic_recorder() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            PANICS.with(|p| p.borrow_mut().push(info.to_string()));
            previous(info);
        }));
    });
}

/// The seeds to run: just `CHAT_SIM_SEED` if set, else `CHAT_SIM_SEEDS` (default
/// [`DEFAULT_SEEDS`]) seeds starting at 1.
pub fn seeds() -> Vec<u64> {
    let var = |name: &str| {
        std::env::var(name).ok().map(|v| {
            v.trim()
                .parse::<u64>()
                .unwrap_or_else(|_| panic!("{name} must be a non-negative integer, not {v:?}"))
        })
    };
    match var("CHAT_SIM_SEED") {
        Some(seed) => vec![seed],
        None => (1..=var("CHAT_SIM_SEEDS").unwrap_or(DEFAULT_SEEDS)).collect(),
    }
}

/// Runs `body` once per seed. A failure (a panic in `body`, or any panic inside the simulation
/// even if turmoil swallowed it) fails the test with the seed and the command that replays it.
/// `test` is the test function's name.
#[track_caller]
pub fn run(test: &str, body: impl Fn(u64)) {
    install_panic_recorder();
    let file = std::path::Path::new(panic::Location::caller().file())
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("TEST")
        .to_owned();
    for seed in seeds() {
        eprintln!("chat-sim: {file}::{test} seed {seed}");
        PANICS.with(|p| p.borrow_mut().clear());
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| body(seed)));
        let mut panics = PANICS.with(|p| std::mem::take(&mut *p.borrow_mut()));
        if outcome.is_err() {
            // The last one recorded is the failure itself.
            panics.pop();
        }
        let inside = (!panics.is_empty()).then(|| {
            format!(
                "{} panic(s) inside the simulation (e.g. in a server task, which turmoil swallows):\n  {}",
                panics.len(),
                panics.join("\n  ")
            )
        });
        let failure = match (outcome, inside) {
            (Err(payload), inside) => {
                let message = payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_else(|| "a panic without a message".to_owned());
                Some(match inside {
                    Some(inside) => format!("{inside}\nand then: {message}"),
                    None => message,
                })
            }
            (Ok(()), inside) => inside,
        };
        if let Some(failure) = failure {
            panic!(
                "scenario {test} FAILED with seed {seed}:\n{failure}\n\nreplay it with:\n  \
                 CHAT_SIM_SEED={seed} cargo test -p chat-sim --test {file} {test} -- --exact --nocapture\n"
            );
        }
    }
}
