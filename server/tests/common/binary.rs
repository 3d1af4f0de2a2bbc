//! The real `chat-server` binary for tests: started with flags on `127.0.0.1:0`, its address read
//! from its startup line, stopped by `kill -9` or SIGTERM; or one that must refuse to start.

use std::ffi::OsStr;
use std::io::BufRead;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use super::{Ws, WAIT};

/// A running `chat-server`, and the address it serves.
pub struct Binary {
    child: Child,
    pub addr: String,
}

impl Binary {
    /// Starts the binary with `flags` after `--addr 127.0.0.1:0`; returns once it logged
    /// `Server started on ...`.
    pub fn start<S: AsRef<OsStr>>(flags: &[S]) -> Self {
        Self::start_logging(flags).0
    }

    /// As [`start`](Self::start), also returning the lines it logged before it started.
    pub fn start_logging<S: AsRef<OsStr>>(flags: &[S]) -> (Self, Vec<String>) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_chat-server"))
            .args(["--addr", "127.0.0.1:0"])
            .args(flags)
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
        let mut before = Vec::new();
        let addr = loop {
            let line = logged
                .recv_timeout(WAIT)
                .expect("startup log lines in time");
            if let Some((_, url)) = line.split_once("Server started on http://") {
                break url.trim().to_owned();
            }
            before.push(line);
        };
        (Self { child, addr }, before)
    }

    /// `kill -9`: no chance to flush or close anything.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }

    /// SIGTERM, and the exit status of the clean stop.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success());
        self.child.wait().expect("reaped")
    }

    /// Opens `/ws?{query}` and reads its first frame (a welcome, or the join's error).
    pub async fn open(&self, query: &str) -> (Ws, Value) {
        let url = format!("ws://{}/ws?{query}", self.addr);
        let (mut ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("handshake");
        let first = recv(&mut ws).await;
        (ws, first)
    }

    /// Opens `/ws?{query}` and reads its welcome.
    pub async fn join(&self, query: &str) -> (Ws, Value) {
        let (ws, welcome) = self.open(query).await;
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        (ws, welcome)
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the binary with `flags` (and no admin token from the environment) expecting it to exit
/// before it listens: its exit status and everything it wrote to stderr.
pub fn refused<S: AsRef<OsStr>>(flags: &[S]) -> (ExitStatus, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chat-server"))
        .args(flags)
        .env_remove("CHAT_ADMIN_TOKEN")
        .env_remove("CHAT_ADMIN_TOKEN_FILE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the binary");
    let deadline = Instant::now() + WAIT;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let args: Vec<_> = flags.iter().map(|f| f.as_ref().to_owned()).collect();
            panic!("the binary started, and should have refused: {args:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().expect("output");
    (
        output.status,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The next JSON text frame.
pub async fn recv(ws: &mut Ws) -> Value {
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
