//! Test support: a real server on `127.0.0.1:0` and an independent WebSocket client
//! (tokio-tungstenite), plus a raw-socket client for protocol violations whose frames are
//! written and read by `chat_server::test_kit::wire`.

#![allow(dead_code, unreachable_pub)]

pub mod binary;

use std::net::SocketAddr;
use std::time::Duration;

use chat_server::test_kit::wire::{parse_server_frame, ClientFrame, OP_CLOSE};
use chat_server::Settings;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const WAIT: Duration = Duration::from_secs(10);

pub struct TestServer {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl TestServer {
    pub async fn start(settings: Settings) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        Self::start_on(listener, settings)
    }

    /// Serves on a listener the test made (say, with small socket buffers).
    pub fn start_on(listener: tokio::net::TcpListener, settings: Settings) -> Self {
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(chat_server::run(listener, settings, async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            stop: Some(stop),
            task,
        }
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("ws://{}{}", self.addr, path_and_query)
    }

    pub fn http(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Waits for `run` to return by itself (the server stopped on its own), with its result.
    pub async fn exited(self) -> std::io::Result<()> {
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("the server stops in time")
            .expect("join")
    }

    /// Triggers graceful shutdown and waits for `run` to return.
    pub async fn shutdown(mut self) {
        let _ = self.stop.take().expect("once").send(());
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("shutdown in time")
            .expect("join")
            .expect("run ok");
    }
}

/// Settings for tests: no rate limit unless a test sets one.
pub fn settings() -> Settings {
    let mut settings = Settings::default();
    settings.engine.rate_limit_per_second = 0;
    settings.epoch = Some("test".into());
    settings
}

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub struct Client {
    pub ws: Ws,
}

impl Client {
    pub async fn connect(server: &TestServer, query: &str) -> Self {
        let (ws, _) = tokio_tungstenite::connect_async(server.url(&format!("/ws{query}")))
            .await
            .expect("handshake");
        Self { ws }
    }

    /// Connects and consumes the welcome, returning it.
    pub async fn join(server: &TestServer, query: &str) -> (Self, Value) {
        let mut client = Self::connect(server, query).await;
        let welcome = client.recv_type("welcome").await;
        (client, welcome)
    }

    pub async fn send(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.expect("send");
    }

    pub async fn send_json(&mut self, value: Value) {
        self.send(&value.to_string()).await;
    }

    /// The next JSON frame (skipping pings).
    pub async fn recv(&mut self) -> Value {
        loop {
            let message = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a frame in time")
                .expect("stream open")
                .expect("frame ok");
            match message {
                Message::Text(text) => {
                    return serde_json::from_str(&text).expect("server sends JSON")
                }
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// The next frame of `kind`, failing on anything else.
    pub async fn recv_type(&mut self, kind: &str) -> Value {
        let value = self.recv().await;
        assert_eq!(value["type"], kind, "got {value}");
        value
    }

    /// Reads until the close frame; returns its code and reason.
    pub async fn recv_close(&mut self) -> (u16, String) {
        loop {
            let next = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("close in time");
            match next {
                Some(Ok(Message::Close(Some(CloseFrame { code, reason })))) => {
                    return (code.into(), reason.to_string())
                }
                Some(Ok(Message::Close(None))) => return (1005, String::new()),
                Some(Ok(_)) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    }

    /// Asserts nothing but pings arrives within `quiet` (a fixed window, however many pings).
    pub async fn assert_silent(&mut self, quiet: Duration) {
        let deadline = tokio::time::Instant::now() + quiet;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return,
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                Ok(other) => panic!("expected silence, got {other:?}"),
            }
        }
    }
}

/// A plain HTTP GET (via a raw socket, to stay independent of the server's stack).
pub async fn http_get(server: &TestServer, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    http_request(server, "GET", path, headers).await
}

/// `server`'s `/status` (which must answer 200), parsed.
pub async fn status_json(server: &TestServer) -> Value {
    let (status, response) = http_get(server, "/status", &[]).await;
    assert_eq!(status, 200, "{response}");
    let (_, body) = response.split_once("\r\n\r\n").expect("a body");
    serde_json::from_str(body).expect("JSON")
}

/// A body-less HTTP POST.
pub async fn http_post(server: &TestServer, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    http_request(server, "POST", path, headers).await
}

/// Sends one request with `Connection: close` and returns the status and the whole response.
async fn http_request(
    server: &TestServer,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: 0\r\n",
        server.addr
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    raw_exchange(&mut stream, request.as_bytes()).await
}

async fn raw_exchange(stream: &mut TcpStream, request: &[u8]) -> (u16, String) {
    stream.write_all(request).await.expect("write");
    let mut response = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut response))
        .await
        .expect("response in time")
        .expect("read");
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    (status, response)
}

/// A WebSocket opened by hand, for sending frames no well-behaved client library would.
pub struct RawWs {
    pub stream: TcpStream,
}

impl RawWs {
    pub async fn open(server: &TestServer, extra_headers: &str) -> (Self, String) {
        let stream = TcpStream::connect(server.addr).await.expect("connect");
        Self::open_on(stream, server, extra_headers).await
    }

    /// The handshake over a stream the test connected itself (say, with small socket buffers).
    pub async fn open_on(
        mut stream: TcpStream,
        server: &TestServer,
        extra_headers: &str,
    ) -> (Self, String) {
        let request = format!(
            "GET /ws HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra_headers}\r\n",
            server.addr
        );
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            let n = tokio::time::timeout(WAIT, stream.read(&mut byte))
                .await
                .expect("response in time")
                .expect("read");
            assert_eq!(
                n,
                1,
                "connection closed during handshake: {}",
                String::from_utf8_lossy(&head)
            );
            head.push(byte[0]);
        }
        (Self { stream }, String::from_utf8_lossy(&head).into_owned())
    }

    /// Sends one frame, however malformed. The server may already have closed: a failed write
    /// is fine, its close frame tells.
    pub async fn send(&mut self, frame: &ClientFrame) {
        let _ = self.stream.write_all(&frame.encode()).await;
    }

    /// Reads server frames until a close frame, returning its code (1005 for an empty close,
    /// 1006 if the stream ended without one). Every frame must pass the test kit's strict
    /// parser: a malformed one, or a stream that ends inside a frame, fails the test.
    pub async fn close_code(&mut self) -> u16 {
        let mut buf = Vec::new();
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            while let Some((frame, used)) = parse_server_frame(&buf)
                .unwrap_or_else(|e| panic!("a malformed server frame: {e}: {buf:?}"))
            {
                if frame.opcode == OP_CLOSE {
                    assert_eq!(used, buf.len(), "bytes after the close frame");
                    return frame.close_code().unwrap_or(1005);
                }
                buf.drain(..used);
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout_at(deadline, self.stream.read(&mut chunk))
                .await
                .expect("close in time")
                .unwrap_or(0);
            if n == 0 {
                assert!(buf.is_empty(), "the stream ended inside a frame: {buf:?}");
                return 1006;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    }
}
