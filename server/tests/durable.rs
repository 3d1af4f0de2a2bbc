//! The real binary with its message store: after `kill -9` and after a clean SIGTERM stop, a
//! restart on the same data directory keeps every room's epoch and seq, a client that resumes
//! with `since`/`epoch` gets exactly what it missed (`recovered: true`), and scrollback pages
//! back to the first message. A data directory another server holds, or a damaged store, stops
//! the start with one line naming the path.

mod common;

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::WAIT;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

type Ws = common::Ws;

/// A running `chat-server` on a data directory, and the address it serves.
struct Binary {
    child: Child,
    addr: String,
}

impl Binary {
    fn start(data_dir: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_chat-server"))
            .args(["--addr", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the binary");
        let stdout = child.stdout.take().expect("piped");
        let (lines, logged) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if lines.send(line).is_err() {
                    return;
                }
            }
        });
        let addr = loop {
            let line = logged
                .recv_timeout(WAIT)
                .expect("startup log lines in time");
            if let Some((_, url)) = line.split_once("Server started on http://") {
                break url.trim().to_owned();
            }
        };
        Self { child, addr }
    }

    /// `kill -9`: no chance to flush or close anything.
    fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }

    /// SIGTERM, and the exit status of the clean stop.
    fn terminate(mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success());
        self.child.wait().expect("reaped")
    }

    async fn join(&self, query: &str) -> (Ws, Value) {
        let url = format!("ws://{}/ws?{query}", self.addr);
        let (mut ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("handshake");
        let welcome = recv(&mut ws).await;
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        (ws, welcome)
    }
}

async fn recv(ws: &mut Ws) -> Value {
    loop {
        let message = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a frame in time")
            .expect("open")
            .expect("frame");
        if let Message::Text(text) = message {
            return serde_json::from_str(&text).expect("JSON");
        }
    }
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

/// One restart scenario: five messages, a stop by `stop`, then a resume from seq 2.
async fn survives(stop: impl FnOnce(Binary)) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let first = Binary::start(dir.path());
    let (mut ann, welcome) = first.join("nick=ann&room=durable").await;
    let epoch = welcome["epoch"].as_str().expect("epoch").to_owned();
    for (seq, text) in texts("note", 5) {
        assert_eq!(say(&mut ann, &text).await, seq);
    }
    stop(first);

    let second = Binary::start(dir.path());
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
    survives(Binary::kill).await;
}

#[tokio::test]
async fn a_clean_stop_keeps_everything_and_clients_recover() {
    survives(|server| {
        let status = server.terminate();
        assert!(status.success(), "a clean stop exits 0: {status}");
    })
    .await;
}

/// Starts the binary expecting it to refuse: its exit status and what it wrote to stderr.
fn refused_start(data_dir: &Path) -> (std::process::ExitStatus, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chat-server"))
        .args(["--addr", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the binary");
    let deadline = std::time::Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the binary started on a data directory it should refuse");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("piped"), &mut stderr)
        .expect("stderr");
    (status, stderr)
}

#[tokio::test]
async fn a_data_directory_in_use_by_another_server_stops_the_start() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let running = Binary::start(dir.path());
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
