//! `chat-load` against a real `chat-server` over loopback, as `sim/bench.sh` runs them, but small
//! and with counts asserted, never times: the benchmarks' figures are only worth something if the
//! generator's accounting closes and the server loses nothing under load.
//!
//! Invariant: every message a sender wrote reaches every client of its room once and in order,
//! and no client that kept reading is evicted, whether senders are paced or saturate a closed
//! loop; in connect-only mode every connection is held to the end.

use std::net::SocketAddr;
use std::process::Command;

use chat_engine::Config;
use chat_server::{Disk, Settings, StoreAt, StoreSettings};
use serde_json::Value;
use tokio::sync::oneshot;

/// A server on `127.0.0.1:0` in this process, with the rate limit off as in the benchmarks.
async fn start_server() -> (SocketAddr, oneshot::Sender<()>) {
    start_server_with(StoreSettings::default()).await
}

async fn start_server_with(store: StoreSettings) -> (SocketAddr, oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let settings = Settings {
        engine: Config {
            rate_limit_per_second: 0,
            ..Config::default()
        },
        store,
        ..Settings::default()
    };
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(chat_server::run(listener, settings, async {
        let _ = stopped.await;
    }));
    (addr, stop)
}

/// Runs `chat-load` against `addr` with `args` and returns its last line, parsed.
async fn chat_load(addr: SocketAddr, args: &[&str]) -> Value {
    let mut command = Command::new(env!("CARGO_BIN_EXE_chat-load"));
    command
        .arg("--url")
        .arg(format!("ws://{addr}/ws"))
        .arg("--server-pid")
        .arg(std::process::id().to_string())
        // A server that stopped delivering fails the test in seconds, not after the default 60.
        .args(["--join-timeout", "20"])
        .args(args);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("no panic")
        .expect("chat-load runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "chat-load failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    let last = stdout.lines().last().expect("some output");
    serde_json::from_str(last).expect("the last line is one JSON object")
}

fn count(report: &Value, field: &str) -> u64 {
    report[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} in {report}"))
}

/// All clients in one room: each of them should have every message sent.
fn assert_everything_arrived(report: &Value, clients: u64) {
    let sent = count(report, "sent");
    assert!(sent > 0, "nothing was sent: {report}");
    assert_eq!(count(report, "connected"), clients, "{report}");
    assert_eq!(count(report, "stayed"), clients, "{report}");
    assert_eq!(count(report, "evicted"), 0, "{report}");
    assert_eq!(count(report, "lost"), 0, "{report}");
    assert_eq!(count(report, "duplicates"), 0, "{report}");
    assert_eq!(count(report, "errors"), 0, "{report}");
    assert_eq!(count(report, "delivered"), sent * clients, "{report}");
    assert!(
        report["server_end"]["rss_kb"].as_u64() > Some(0),
        "the server's /proc was read: {report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn paced_senders_reach_every_client() {
    let (addr, _stop) = start_server().await;
    let report = chat_load(
        addr,
        &[
            "--clients",
            "20",
            "--senders",
            "4",
            "--rate",
            "40",
            "--duration",
            "1",
            "--drain",
            "10",
        ],
    )
    .await;
    assert_everything_arrived(&report, 20);
}

/// Senders as fast as a window of 8 unacknowledged messages allows: the server's queues, flow
/// control and direct writes under saturation.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_saturated_closed_loop_loses_nothing() {
    let (addr, _stop) = start_server().await;
    let report = chat_load(
        addr,
        &[
            "--clients",
            "20",
            "--senders",
            "4",
            "--rate",
            "0",
            "--window",
            "8",
            "--duration",
            "1",
            "--drain",
            "10",
        ],
    )
    .await;
    assert_everything_arrived(&report, 20);
}

/// 20 clients, `senders` of them sending as fast as TCP lets them for 0.05 s (with `extra`
/// chat-load arguments), into a room whose messages wait for a slow store (strict durability,
/// each commit 10 ms late); chat-load's report once everything has drained.
async fn flood_a_room_waiting_for_its_store(senders: &str, extra: &[&str]) -> Value {
    let store = StoreSettings {
        at: StoreAt::Disk(Disk::new()),
        commit_delay: std::time::Duration::from_millis(10),
        ..StoreSettings::default()
    };
    let (addr, _stop) = start_server_with(store).await;
    let mut args = vec!["--clients", "20", "--senders", senders, "--rate", "0"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--duration", "0.05", "--drain", "20"]);
    chat_load(addr, &args).await
}

/// A commit releases its whole batch to every member at once, and that batch must fit a
/// reading member's queue. It did not: every client was evicted as a slow consumer (close
/// 4001) within the first commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_flood_into_a_room_that_waits_for_its_store_evicts_nobody() {
    let report = flood_a_room_waiting_for_its_store("4", &[]).await;
    assert_everything_arrived(&report, 20);
}

/// The same flood with the largest frames printable text makes (4,060 double quotes, each
/// escaped in the JSON: about 8.3 KB a frame), from every member at once. The hub's bound
/// counts messages (128), and 128 of these would be about 1.06 MB, more than a member's whole
/// queue (1 MiB); in these runs fewer wait for one commit (members fall behind and the room
/// pauses first), and nobody may be evicted.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_flood_of_the_largest_frames_into_a_room_that_waits_for_its_store_evicts_nobody() {
    let report = flood_a_room_waiting_for_its_store("20", &["--pad", "4060", "--pad-quoted"]).await;
    assert_everything_arrived(&report, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn connect_only_holds_every_connection() {
    let (addr, _stop) = start_server().await;
    let report = chat_load(
        addr,
        &[
            "--clients",
            "200",
            "--rooms",
            "20",
            "--connect-only",
            "--duration",
            "0.5",
        ],
    )
    .await;
    assert_eq!(report["mode"], "connect", "{report}");
    assert_eq!(count(&report, "connected"), 200, "{report}");
    assert_eq!(count(&report, "stayed"), 200, "{report}");
    assert!(
        report["rss_per_connection_kb"].is_number(),
        "memory per connection reported: {report}"
    );
}
