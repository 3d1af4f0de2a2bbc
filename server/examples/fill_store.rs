//! Fills a data directory with rooms of stored messages, for the restart benchmark
//! (BENCHMARKS.md, "Restart with a full store"):
//!
//! `cargo run --release -p chat-server --example fill_store -- --data-dir /tmp/d --rooms 10000 --per-room 10000`

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;

#[derive(Parser)]
struct Args {
    #[arg(long)]
    data_dir: PathBuf,
    #[arg(long, default_value_t = 10_000)]
    rooms: usize,
    #[arg(long, default_value_t = 10_000)]
    per_room: u64,
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let started = Instant::now();
    runtime.block_on(chat_server::fill_store(
        &args.data_dir,
        args.rooms,
        args.per_room,
        "fill",
    ))?;
    println!(
        "filled {} rooms x {} messages in {:.1} s",
        args.rooms,
        args.per_room,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
