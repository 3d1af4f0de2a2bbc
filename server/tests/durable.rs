//! The real binary with its message store: after `kill -9` and after a clean SIGTERM stop, a
//! restart on the same data directory keeps every room's epoch and seq, a client that resumes
//! with `since`/`epoch` gets exactly what it missed (`recovered: true`), and scrollback pages
//! back to the first message. A data directory another server holds, or a damaged store, stops
//! the start with one line naming the path.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::binary::{recv, refused, Binary};
use common::WAIT;
use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

type Ws = common::Ws;

/// The binary on a data directory.
fn start(data_dir: &Path) -> Binary {
    start_with(data_dir, &[])
}

fn start_with(data_dir: &Path, flags: &[&str]) -> Binary {
    let mut args: Vec<&std::ffi::OsStr> = vec!["--data-dir".as_ref(), data_dir.as_os_str()];
    args.extend(flags.iter().map(std::ffi::OsStr::new));
    Binary::start(&args)
}

/// Sends `text` and waits for its acknowledgement (its own copy); returns its seq.
async fn say(ws: &mut Ws, text: &str) -> u64 {
    ws.send(Message::text(text)).await.expect("send");
    loop {
        let frame = recv(ws).await;
        if frame["type"] == "message" && frame["text"] == text {
            return frame["seq"].as_u64().expect("a seq");
        }
    }
}

/// Pages `ws`'s room back with `history`, `limit` at a time, to the first message: every seq
/// and text, oldest first.
async fn scroll_back(ws: &mut Ws, limit: u64) -> Vec<(u64, String)> {
    let mut all: Vec<(u64, String)> = Vec::new();
    let mut before: Option<u64> = None;
    loop {
        let mut ask = json!({"type": "history", "limit": limit});
        if let Some(before) = before {
            ask["before"] = before.into();
        }
        ws.send(Message::text(ask.to_string())).await.expect("send");
        let page = loop {
            let frame = recv(ws).await;
            if frame["type"] == "history" {
                break frame;
            }
        };
        let messages = page["messages"].as_array().expect("messages");
        let got: Vec<(u64, String)> = messages
            .iter()
            .map(|m| {
                (
                    m["seq"].as_u64().expect("seq"),
                    m["text"].as_str().expect("text").to_owned(),
                )
            })
            .collect();
        assert!(got.len() as u64 <= limit);
        before = got.first().map(|(seq, _)| *seq);
        all.splice(0..0, got);
        if page["complete"] == true {
            return all;
        }
        assert!(
            before.is_some(),
            "an incomplete page with no messages: {page}"
        );
    }
}

fn texts(prefix: &str, n: u64) -> Vec<(u64, String)> {
    (1..=n).map(|i| (i, format!("{prefix} {i}"))).collect()
}

/// One restart scenario: five messages, a stop by `stop`, then a resume from seq 2 into a
/// second start with `flags`.
async fn survives(stop: impl FnOnce(Binary), flags: &[&str]) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let first = start(dir.path());
    let (mut ann, welcome) = first.join("nick=ann&room=durable").await;
    let epoch = welcome["epoch"].as_str().expect("epoch").to_owned();
    for (seq, text) in texts("note", 5) {
        assert_eq!(say(&mut ann, &text).await, seq);
    }
    stop(first);

    let second = start_with(dir.path(), flags);
    let (mut bob, welcome) = second
        .join(&format!("nick=bob&room=durable&since=2&epoch={epoch}"))
        .await;
    assert_eq!(welcome["epoch"], epoch, "the room keeps its epoch");
    assert_eq!(welcome["seq"], 5, "and its seq");
    assert_eq!(welcome["recovered"], true, "{welcome}");
    let missed: Vec<u64> = (welcome["history"].as_array().expect("history").iter())
        .map(|m| m["seq"].as_u64().expect("seq"))
        .collect();
    assert_eq!(missed, [3, 4, 5], "exactly the missed messages");
    assert_eq!(say(&mut bob, "after the restart").await, 6, "seq continues");
    let mut want = texts("note", 5);
    want.push((6, "after the restart".to_owned()));
    assert_eq!(
        scroll_back(&mut bob, 2).await,
        want,
        "scrollback reaches the first message"
    );
    second.kill();
}

#[tokio::test]
async fn a_kill_9_loses_nothing_acknowledged_and_clients_recover() {
    survives(Binary::kill, &[]).await;
}

/// The same with a start that reads no room's history before it serves: the room wakes from
/// the store when bob joins it, and he recovers just the same.
#[tokio::test]
async fn a_start_that_preloads_no_room_wakes_it_from_the_store_when_joined() {
    survives(Binary::kill, &["--preload-rooms", "0"]).await;
}

#[tokio::test]
async fn a_clean_stop_keeps_everything_and_clients_recover() {
    survives(
        |server| {
            let status = server.terminate();
            assert!(status.success(), "a clean stop exits 0: {status}");
        },
        &[],
    )
    .await;
}

/// The store's open line a start on `data_dir` with `flags` logs, and whether it says it
/// repaired the file.
fn restart_repairs(data_dir: &Path, flags: &[&str]) -> bool {
    let mut args: Vec<&std::ffi::OsStr> = vec!["--data-dir".as_ref(), data_dir.as_os_str()];
    args.extend(flags.iter().map(std::ffi::OsStr::new));
    let (server, logged) = Binary::start_logging(&args);
    server.kill();
    let line = (logged.iter())
        .find(|line| line.contains("opened the message store"))
        .unwrap_or_else(|| panic!("the open is logged: {logged:?}"));
    match (
        line.contains("repaired=true"),
        line.contains("repaired=false"),
    ) {
        (true, false) => true,
        (false, true) => false,
        _ => panic!("the open line says whether it repaired: {line}"),
    }
}

/// After a `kill -9`, redb walks the whole file before it opens, unless every commit recorded
/// its allocator state (`--quick-repair`), which makes a crash's restart as quick as a clean
/// one's. What was acknowledged is there either way (`survives`). (The quiet checkpoint, which
/// records it after a quiet second, is the store's unit tests' to check.)
#[tokio::test]
async fn quick_repair_spares_a_restart_after_a_kill_9_the_full_repair() {
    // No quiet checkpoint: a slow machine's pause must not record the state before the kill.
    let plain = ["--quiet-checkpoint", "0s"];
    for (flags, repairs) in [(&plain[..], true), (&["--quick-repair"][..], false)] {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let first = start_with(dir.path(), flags);
        let (mut ann, _) = first.join("nick=ann&room=repair").await;
        assert_eq!(say(&mut ann, "before the crash").await, 1);
        first.kill();
        assert_eq!(restart_repairs(dir.path(), flags), repairs, "{flags:?}");
        // A start that ends in kill -9 again still needs no repair with the flag: its own
        // commit at open recorded the state too.
        assert_eq!(restart_repairs(dir.path(), flags), repairs, "{flags:?}");
    }
}

/// Starts the binary on `data_dir` expecting it to refuse: its exit status and stderr.
fn refused_start(data_dir: &Path) -> (std::process::ExitStatus, String) {
    refused(&[
        "--addr".as_ref(),
        "127.0.0.1:0".as_ref(),
        "--data-dir".as_ref(),
        data_dir.as_os_str(),
    ])
}

/// Relaxed durability acknowledges before the sync, so after a `kill -9` the next start cannot
/// know what was lost: every room gets a new epoch, and a resume is told `recovered: false`
/// rather than handed a silent gap. A clean stop keeps the epochs.
#[tokio::test]
async fn relaxed_durability_after_a_kill_9_changes_every_epoch() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let relaxed = ["--durability", "relaxed"];
    let first = start_with(dir.path(), &relaxed);
    let (mut ann, welcome) = first.join("nick=ann&room=loose").await;
    let epoch = welcome["epoch"].as_str().expect("epoch").to_owned();
    for (seq, text) in texts("fast", 3) {
        assert_eq!(say(&mut ann, &text).await, seq);
    }
    // A clean stop syncs: same epoch after it.
    let status = first.terminate();
    assert!(status.success());
    let second = start_with(dir.path(), &relaxed);
    let (mut bob, welcome) = second
        .join(&format!("nick=bob&room=loose&since=3&epoch={epoch}"))
        .await;
    assert_eq!(
        (welcome["epoch"].as_str(), welcome["recovered"].as_bool()),
        (Some(epoch.as_str()), Some(true))
    );
    assert_eq!(say(&mut bob, "then a crash").await, 4);
    second.kill();
    let third = start_with(dir.path(), &relaxed);
    let (_carl, welcome) = third
        .join(&format!("nick=carl&room=loose&since=4&epoch={epoch}"))
        .await;
    assert_ne!(
        welcome["epoch"], epoch,
        "a new epoch after the unclean stop"
    );
    assert_eq!(welcome["recovered"], false, "{welcome}");
    third.kill();
}

#[tokio::test]
async fn a_data_directory_that_is_a_file_stops_the_start() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let file = dir.path().join("not-a-directory");
    std::fs::write(&file, b"x").expect("write");
    let (status, stderr) = refused_start(&file);
    assert!(!status.success());
    let line = stderr.lines().last().unwrap_or_default();
    assert!(line.contains(&file.display().to_string()), "{stderr}");
    assert!(line.contains("data directory"), "{stderr}");
}

#[tokio::test]
async fn a_data_directory_in_use_by_another_server_stops_the_start() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let running = start(dir.path());
    let (status, stderr) = refused_start(dir.path());
    running.kill();
    assert!(!status.success());
    let line = stderr.lines().last().unwrap_or_default();
    assert!(line.contains(&dir.path().display().to_string()), "{stderr}");
    assert!(
        line.contains("in use by another running server"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_damaged_store_stops_the_start_rather_than_start_empty() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let file = dir.path().join("chat.redb");
    std::fs::write(&file, vec![0x5a; 64 << 10]).expect("write garbage");
    let (status, stderr) = refused_start(dir.path());
    assert!(!status.success());
    let line = stderr.lines().last().unwrap_or_default();
    assert!(line.contains(&file.display().to_string()), "{stderr}");
    assert!(line.contains("damaged or not a message store"), "{stderr}");
    assert_eq!(
        std::fs::read(&file).expect("still there"),
        vec![0x5a; 64 << 10],
        "the damaged file is left as it was"
    );
}

/// A real full disk: the data directory on a 16 MiB tmpfs that a filler file fills up. New
/// messages are refused with `unavailable` and `/readyz` says 503 while connections stay; once
/// the filler is gone, writes succeed again by themselves. Needs root (it mounts), so it is
/// ignored by `cargo test` and run by `.ci/run` (its "store on a full disk" stage).
#[tokio::test]
#[ignore = "mounts a tmpfs: needs root; .ci/run runs it"]
async fn a_full_tmpfs_refuses_messages_then_recovers() {
    let mount = tempfile::tempdir().expect("a mount point");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=16m", "tmpfs"])
        .arg(mount.path())
        .status()
        .expect("run mount");
    assert!(mounted.success(), "mount a tmpfs (this test needs root)");
    let unmount = scopeguard(mount.path().to_owned());
    let data = mount.path().join("data");
    let server = start_with(&data, &["--rate-limit-per-second", "0"]);
    let (mut ann, _) = server.join("nick=ann&room=full").await;
    assert_eq!(say(&mut ann, "before").await, 1);
    // Fill the rest of the disk.
    let filler = mount.path().join("filler");
    {
        use std::io::Write;
        let mut file = std::fs::File::create(&filler).expect("filler");
        let block = vec![0u8; 64 << 10];
        while file.write_all(&block).is_ok() {}
    }
    let text = "x".repeat(4000);
    let mut refused = false;
    for _ in 0..2_000 {
        ws_send(&mut ann, &text).await;
        let frame = loop {
            let frame = recv(&mut ann).await;
            if frame["type"] == "message" || frame["type"] == "error" {
                break frame;
            }
        };
        if frame["type"] == "error" {
            assert_eq!(frame["code"], "unavailable", "{frame}");
            refused = true;
            break;
        }
    }
    assert!(refused, "a full disk refused nothing");
    assert_eq!(http_status(&server.addr, "/readyz").await, 503);
    std::fs::remove_file(&filler).expect("free the disk");
    let deadline = std::time::Instant::now() + WAIT;
    while http_status(&server.addr, "/readyz").await != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "/readyz never recovered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ws_send(&mut ann, "after").await;
    loop {
        let frame = recv(&mut ann).await;
        if frame["type"] == "message" && frame["text"] == "after" {
            break;
        }
        assert_ne!(frame["type"], "error", "{frame}");
    }
    server.kill();
    drop(unmount);
}

async fn ws_send(ws: &mut Ws, text: &str) {
    ws.send(Message::text(text)).await.expect("send");
}

/// The status code of a plain GET.
async fn http_status(addr: &str, path: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: chat\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("read");
    let head = String::from_utf8_lossy(&response);
    head.split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("a status line")
}

/// Unmounts `path` when dropped, so a failing test leaves no mount behind.
fn scopeguard(path: std::path::PathBuf) -> impl Drop {
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    Unmount(path)
}
