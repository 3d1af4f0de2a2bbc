//! What a fuzz target binary does when built without libFuzzer, as `cargo build` and
//! `cargo test --workspace` build it: libFuzzer (C++) is linked only into cargo-fuzz's
//! `--cfg fuzzing` builds (see README.md), so a plain build gets this `main` instead. It replays
//! the inputs named on the command line (files, or directories of them) through the target, so a
//! crash cargo-fuzz found reproduces in an ordinary debug build, under a debugger, without
//! AddressSanitizer or `RUSTC_BOOTSTRAP`:
//!
//! ```sh
//! cargo run -p chat-fuzz --bin ws_frames -- fuzz/artifacts/ws_frames/crash-...
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Runs `target` on every input named in the arguments, in order (a directory's files sorted by
/// name). A panic anywhere, in any task, aborts the process as it does under libFuzzer: tokio
/// would otherwise catch a panic in a spawned task and the run could look like a pass.
pub fn main(target: impl Fn(&[u8])) -> ExitCode {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    if args.is_empty() {
        eprintln!(
            "usage: {} INPUT... (files or directories; built without libFuzzer, this replays \
             inputs: fuzz with `cargo fuzz run`)",
            std::env::args().next().unwrap_or_default()
        );
        return ExitCode::from(2);
    }
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        std::process::abort();
    }));
    let mut inputs = Vec::new();
    for arg in &args {
        if let Err(e) = collect(arg, &mut inputs) {
            eprintln!("{}: {e}", arg.display());
            return ExitCode::FAILURE;
        }
    }
    for path in &inputs {
        let data = match std::fs::read(path) {
            Ok(data) => data,
            Err(e) => {
                eprintln!("{}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        };
        eprintln!("replaying {} ({} bytes)", path.display(), data.len());
        target(&data);
    }
    eprintln!("{} inputs replayed, no crash", inputs.len());
    ExitCode::SUCCESS
}

/// `path` itself, or the files directly inside it, sorted so a replay is repeatable.
fn collect(path: &Path, inputs: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if !path.is_dir() {
        inputs.push(path.to_owned());
        return Ok(());
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path)? {
        let file = entry?.path();
        if file.is_file() {
            files.push(file);
        }
    }
    files.sort();
    inputs.extend(files);
    Ok(())
}
