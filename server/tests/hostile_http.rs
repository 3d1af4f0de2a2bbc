//! Hostile HTTP before (and instead of) the WebSocket upgrade, over real TCP against the real
//! service: oversized headers, idle keep-alive, too many connections, responses nobody reads,
//! per-address caps and rates, and the accept loop and file limit (README, "Hostile input").

mod common;

use std::time::Duration;

use common::binary::Binary;
use common::{http_get, settings, Client, RawWs, TestServer, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until the server closes (or resets) the connection; what arrived before.
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut seen = Vec::new();
    let mut chunk = [0u8; 64 << 10];
    loop {
        match tokio::time::timeout(WAIT, stream.read(&mut chunk))
            .await
            .expect("the server closed the connection in time")
        {
            Ok(0) | Err(_) => return seen,
            Ok(n) => seen.extend_from_slice(&chunk[..n]),
        }
    }
}

/// The value of an unlabelled metric.
async fn metric(server: &TestServer, name: &str) -> i64 {
    let (status, response) = http_get(server, "/metrics", &[]).await;
    assert_eq!(status, 200, "{response}");
    response
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {response}"))
}

/// Polls until `check` holds, within the hang guard.
async fn eventually<F: std::future::Future<Output = bool>>(mut check: impl FnMut() -> F) {
    tokio::time::timeout(WAIT, async {
        while !check().await {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("in time");
}

/// An upgrade the server refuses: its status and body (the connection stays open).
async fn refused_upgrade(server: &TestServer) -> (u16, String) {
    let (mut ws, head) = RawWs::open(server, "").await;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let length = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("a content-length: {head}"));
    let mut body = vec![0u8; length];
    tokio::time::timeout(WAIT, ws.stream.read_exact(&mut body))
        .await
        .expect("the body in time")
        .expect("read");
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Request headers past `--max-header-bytes` (16 KiB) get hyper's `431` and a close; a
/// request just under the limit is served.
#[tokio::test]
async fn request_headers_over_16_kib_get_431_and_a_close() {
    let server = TestServer::start(settings()).await;
    let filler = "a".repeat(16 << 10);
    let (status, response) = http_get(&server, "/healthz", &[("X-Filler", &filler)]).await;
    assert_eq!(status, 431, "{response}");
    assert!(
        response.starts_with("HTTP/1.1 431 Request Header Fields Too Large"),
        "{response}"
    );
    assert!(response.contains("--max-header-bytes"), "{response}");
    let fits = "a".repeat(15 << 10);
    let (status, response) = http_get(&server, "/healthz", &[("X-Filler", &fits)]).await;
    assert_eq!(status, 200, "{response}");
    // Past eight times the limit hyper stops buffering and answers 431 itself.
    let huge = "a".repeat(200 << 10);
    let (status, response) = http_get(&server, "/healthz", &[("X-Filler", &huge)]).await;
    assert_eq!(status, 431, "{}", &response[..response.len().min(200)]);
    server.shutdown().await;
}

/// hyper's header read timeout restarts when a keep-alive connection goes idle, so an idle
/// one is closed after `--handshake-timeout` too.
#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_handshake_timeout() {
    let mut settings = settings();
    settings.handshake_timeout = Duration::from_millis(300);
    let server = TestServer::start(settings).await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: chat\r\n\r\n")
        .await
        .expect("write");
    // The answer arrives, then the connection sits idle until the server closes it.
    let seen = read_until_closed(&mut stream).await;
    let seen = String::from_utf8_lossy(&seen);
    assert!(seen.starts_with("HTTP/1.1 200"), "{seen}");
    assert!(
        seen.ends_with("ok\n"),
        "one response, nothing after it: {seen}"
    );
    assert_eq!(
        metric(&server, "chat_http_connections").await,
        1,
        "only ours"
    );
    server.shutdown().await;
}

/// Past `--max-http-connections`, a new connection gets `503` and a close; one that upgrades
/// to a WebSocket stops counting, so WebSockets never use up the HTTP cap.
#[tokio::test]
async fn past_max_http_connections_a_new_connection_gets_503_and_upgrades_stop_counting() {
    let mut settings = settings();
    settings.max_http_connections = 2;
    settings.handshake_timeout = Duration::from_secs(60);
    let server = TestServer::start(settings).await;
    // Two upgraded WebSockets first: they do not count.
    let (mut ann, _) = Client::join(&server, "?nick=ann").await;
    let (_bob, _) = Client::join(&server, "?nick=bob").await;
    ann.recv_type("join").await;
    eventually(|| async { metric(&server, "chat_http_connections").await == 1 }).await;
    // Two idle connections take the cap.
    let idle_one = TcpStream::connect(server.addr).await.expect("connect");
    let idle_two = TcpStream::connect(server.addr).await.expect("connect");
    let mut third = TcpStream::connect(server.addr).await.expect("connect");
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: chat\r\n\r\n")
        .await
        .expect("write");
    let seen = read_until_closed(&mut third).await;
    let seen = String::from_utf8_lossy(&seen);
    assert!(seen.starts_with("HTTP/1.1 503"), "{seen}");
    assert!(seen.contains("server busy"), "{seen}");
    // The WebSockets are fine, and once the idle ones go, HTTP is served again.
    ann.send("still here").await;
    assert_eq!(ann.recv_type("message").await["text"], "still here");
    drop((idle_one, idle_two));
    eventually(|| async {
        let mut stream = TcpStream::connect(server.addr).await.expect("connect");
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: chat\r\nConnection: close\r\n\r\n")
            .await
            .expect("write");
        read_until_closed(&mut stream)
            .await
            .starts_with(b"HTTP/1.1 200")
    })
    .await;
    server.shutdown().await;
}

/// A client that pipelines requests and never reads the answers: once the socket takes no
/// more, the connection is dropped after `--write-timeout` instead of parked for ever.
#[tokio::test]
async fn pipelined_responses_nobody_reads_are_dropped_after_the_write_timeout() {
    let mut settings = settings();
    settings.write_timeout = Duration::from_millis(300);
    let server = TestServer::start(settings).await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    let batch = "GET / HTTP/1.1\r\nHost: chat\r\n\r\n".repeat(100);
    // Each answer is the web client's page, so the socket buffers fill long before the client
    // runs out of requests. The writes fail once the server has dropped the connection (it
    // resets it, with requests unread); a server that never drops it hangs them.
    let dropped = tokio::time::timeout(WAIT, async {
        for _ in 0..100_000 {
            if stream.write_all(batch.as_bytes()).await.is_err() {
                return true;
            }
        }
        false
    })
    .await
    .expect("the server dropped the connection in time");
    assert!(
        dropped,
        "the server kept answering a client that never reads"
    );
    read_until_closed(&mut stream).await;
    eventually(|| async { metric(&server, "chat_http_connections").await == 1 }).await;
    server.shutdown().await;
}

/// Past `--max-connections-per-ip`, the next upgrade from the address gets `503` saying why,
/// and the room hears nothing of it; when one closes, the address may connect again.
#[tokio::test]
async fn past_max_connections_per_ip_the_upgrade_gets_503_and_no_join() {
    let mut settings = settings();
    settings.max_connections_per_ip = 2;
    let server = TestServer::start(settings).await;
    let (mut ann, _) = Client::join(&server, "?nick=ann").await;
    let (bob, _) = Client::join(&server, "?nick=bob").await;
    assert_eq!(ann.recv_type("join").await["nick"], "bob");
    let (status, body) = refused_upgrade(&server).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("too many connections from your address"),
        "{body}"
    );
    ann.assert_silent(Duration::from_millis(300)).await;
    drop(bob);
    assert_eq!(ann.recv_type("leave").await["nick"], "bob");
    let (_carol, _) = Client::join(&server, "?nick=carol").await;
    assert_eq!(ann.recv_type("join").await["nick"], "carol");
    server.shutdown().await;
}

/// Past `--connect-rate-per-ip` upgrades in a minute, the next gets `503` saying why, even
/// with the earlier ones closed; other limits are untouched.
#[tokio::test]
async fn past_connect_rate_per_ip_the_upgrade_gets_503() {
    let mut settings = settings();
    settings.connect_rate_per_ip = 3;
    let server = TestServer::start(settings).await;
    let (mut ann, _) = Client::join(&server, "?nick=ann").await;
    for nick in ["b1", "b2"] {
        let (client, _) = Client::join(&server, &format!("?nick={nick}")).await;
        drop(client);
    }
    let (status, body) = refused_upgrade(&server).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("at most 3 a minute"), "{body}");
    let (status, response) = http_get(&server, "/healthz", &[]).await;
    assert_eq!(status, 200, "plain HTTP is not rate-limited: {response}");
    ann.send("still here").await;
    loop {
        let frame = ann.recv().await;
        if frame["type"] == "message" {
            assert_eq!(frame["text"], "still here");
            break;
        }
    }
    server.shutdown().await;
}

/// The binary raises its soft open-files limit to the hard one and says so, and connections
/// reset before they are served cost the accept loop nothing: the next is served.
#[tokio::test]
async fn the_binary_raises_its_open_files_limit_and_serves_past_reset_connections() {
    let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).expect("getrlimit");
    let (server, logged) = Binary::start_logging(&["--in-memory"]);
    let limit = (logged.iter())
        .find_map(|line| line.split_once("open files limit: "))
        .map(|(_, n)| n.trim().parse::<u64>().expect("a number"));
    let addr = server.addr.clone();
    let limit = limit.expect("the limit is logged before the server starts");
    assert!(limit >= soft, "{limit} < the soft limit {soft}");
    // rlimit caps the raise where the system does (macOS: OPEN_MAX).
    assert!(limit <= hard, "{limit} > the hard limit {hard}");
    for _ in 0..50 {
        let stream = TcpStream::connect(&addr).await.expect("connect");
        // Linger 0: closing sends a reset, not a FIN.
        #[allow(deprecated)]
        stream.set_linger(Some(Duration::ZERO)).expect("linger");
        drop(stream);
    }
    let mut stream = TcpStream::connect(&addr).await.expect("connect");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: chat\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let seen = read_until_closed(&mut stream).await;
    server.kill();
    assert!(seen.starts_with(b"HTTP/1.1 200"), "{seen:?}");
}
