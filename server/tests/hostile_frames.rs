//! Hostile frames over real TCP (README, "Hostile input"): what a client can make the server hold
//! or do with frames that are valid on their own. Read-ahead is bounded in bytes, pings are
//! metered, a fragmented message has a deadline, and pings are no sign of life.

mod common;

use std::time::Duration;

use chat_server::test_kit::wire::{parse_server_frame, ClientFrame, OP_CLOSE, OP_PING, OP_PONG};
use common::{settings, RawWs, TestServer, WAIT};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// What the server sent up to and including its close: pongs and text frames counted, then
/// the close's code and reason (1006 if the stream ended without one). Pings are skipped.
#[derive(Debug, Default)]
struct Heard {
    pongs: usize,
    texts: Vec<String>,
    close: Option<(u16, String)>,
}

async fn until_close(stream: &mut (impl AsyncRead + Unpin)) -> Heard {
    let mut heard = Heard::default();
    let mut buf = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        while let Some((frame, used)) =
            parse_server_frame(&buf).unwrap_or_else(|e| panic!("a malformed server frame: {e}"))
        {
            buf.drain(..used);
            match frame.opcode {
                OP_CLOSE => {
                    let code = frame.close_code().unwrap_or(1005);
                    let reason = frame.close_reason().unwrap_or_default().to_owned();
                    heard.close = Some((code, reason));
                    return heard;
                }
                OP_PONG => heard.pongs += 1,
                OP_PING => {}
                _ => heard
                    .texts
                    .push(String::from_utf8(frame.payload).expect("UTF-8")),
            }
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout_at(deadline, stream.read(&mut chunk))
            .await
            .expect("a close in time (hang guard)")
            .unwrap_or(0);
        if n == 0 {
            heard.close = Some((1006, String::new()));
            return heard;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Socket buffers as small as the kernel allows (it doubles the request and has a floor), so
/// the bytes TCP itself holds stay small next to what the test measures.
const SOCKET_BUFFER: u32 = 4096;

/// Bytes a client that never reads manages to write before its writes stall, against a server
/// with this `--read-ahead-bytes`. Its own messages' echoes fill its socket, flow control pauses
/// it, and the server stops reading; the frame credit alone would let it read 10,000 messages
/// (10 MB) ahead.
async fn written_until_the_server_stops_reading(read_ahead_bytes: usize) -> usize {
    let mut settings = settings();
    settings.read_ahead_frames = 10_000;
    settings.read_ahead_bytes = read_ahead_bytes;
    // One queued frame puts the client behind (and pauses it); none gets it evicted.
    settings.engine.queue_high_water_frames = 1;
    settings.engine.queue_frames_max = 100_000;
    settings.engine.queue_bytes_max = 1 << 30;
    // One inbox message per hub turn: the reader runs ahead of the hub, as under load.
    settings.hub_turn = 1;
    // Long enough that the stuck socket is not dropped during the test.
    settings.write_timeout = Duration::from_secs(60);
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(SOCKET_BUFFER).expect("rcvbuf");
    socket.set_send_buffer_size(SOCKET_BUFFER).expect("sndbuf");
    socket
        .bind("127.0.0.1:0".parse().expect("addr"))
        .expect("bind");
    let server = TestServer::start_on(socket.listen(64).expect("listen"), settings);
    let client = TcpSocket::new_v4().expect("socket");
    client.set_recv_buffer_size(SOCKET_BUFFER).expect("rcvbuf");
    client.set_send_buffer_size(SOCKET_BUFFER).expect("sndbuf");
    let stream: TcpStream = client.connect(server.addr).await.expect("connect");
    let (RawWs { mut stream }, status) = RawWs::open_on(stream, &server, "").await;
    assert!(status.starts_with("HTTP/1.1 101"), "{status}");
    // Far more than any read-ahead here, the socket buffers and what the echoes fill on the
    // way back; far less than the frame credit.
    let limit = 4 << 20;
    let frame = ClientFrame::text(vec![b'x'; MESSAGE]).encode();
    let mut written = 0;
    let mut stalled = false;
    while written < limit && !stalled {
        let mut at = 0;
        while at < frame.len() {
            // A hang guard rather than a threshold: a write into a socket with room finishes at
            // once, and a server that keeps reading never stalls here and fails on `limit`.
            match tokio::time::timeout(Duration::from_secs(1), stream.write(&frame[at..])).await {
                Ok(Ok(n)) => at += n,
                Ok(Err(e)) => panic!("write failed: {e}"),
                Err(_) => {
                    stalled = true;
                    break;
                }
            }
        }
        written += at;
    }
    assert!(stalled, "the server kept reading: {written} bytes");
    drop(stream);
    server.shutdown().await;
    written
}

/// Payload bytes of each message the paused client sends.
const MESSAGE: usize = 1000;

/// A paused reader stops reading once `--read-ahead-bytes` of what it read wait for the engine
/// (besides the one message it holds): with a larger budget its sender gets about that many more
/// bytes out before TCP pushes back, and no more. The baseline, a budget of one byte, is one
/// message in flight at a time; what it writes beyond that is TCP's buffers and the messages
/// that were handled before the pause, which the budget does not change.
#[tokio::test]
async fn a_paused_reader_stops_reading_after_its_read_ahead_bytes() {
    const READ_AHEAD: usize = 16 << 10;
    let baseline = written_until_the_server_stops_reading(1).await;
    let written = written_until_the_server_stops_reading(READ_AHEAD).await;
    let ahead = written.saturating_sub(baseline);
    eprintln!("written: {baseline} with 1 byte of read-ahead, {written} with {READ_AHEAD}");
    assert!(
        ahead >= READ_AHEAD / 2,
        "the read-ahead was not used: {ahead} bytes more than with none"
    );
    // A frame's head is 8 bytes; a few frames of slack for where the pause falls.
    let frame = MESSAGE + 8;
    assert!(
        ahead <= READ_AHEAD + 8 * frame + (4 << 10),
        "read {ahead} bytes ahead with a budget of {READ_AHEAD}"
    );
}

/// Pings past the budget close the connection with 1008: the burst is answered, the next one is
/// the last. Other clients are not metered by it.
#[tokio::test]
async fn a_ping_flood_is_closed_with_1008() {
    let mut settings = settings();
    settings.ping_rate_burst = 5;
    settings.ping_rate_per_second = 1;
    let server = TestServer::start(settings).await;
    let (mut calm, _) = RawWs::open(&server, "").await;
    let (mut flood, _) = RawWs::open(&server, "").await;
    for n in 0..20u8 {
        flood.send(&ClientFrame::ping([n])).await;
    }
    let heard = until_close(&mut flood.stream).await;
    assert_eq!(heard.pongs, 5, "the burst is answered");
    assert_eq!(heard.close, Some((1008, "ping flood".to_owned())));
    calm.send(&ClientFrame::ping("ok")).await;
    calm.send(&ClientFrame::close(1000, b"")).await;
    let heard = until_close(&mut calm.stream).await;
    assert_eq!((heard.pongs, heard.close), (1, Some((1000, String::new()))));
    server.shutdown().await;
}

/// A fragmented message must end within `--message-timeout` of its first fragment, else close
/// 1008; one that ends in time is delivered as usual.
#[tokio::test]
async fn an_unfinished_fragmented_message_is_closed_after_the_message_timeout() {
    let mut settings = settings();
    settings.message_timeout = Duration::from_millis(300);
    let server = TestServer::start(settings).await;
    let (mut ws, _) = RawWs::open(&server, "").await;
    ws.send(&ClientFrame::text("in ").fin(false)).await;
    ws.send(&ClientFrame::continuation("time")).await;
    ws.send(&ClientFrame::text("never ").fin(false)).await;
    ws.send(&ClientFrame::continuation("finished").fin(false))
        .await;
    let heard = until_close(&mut ws.stream).await;
    assert_eq!(heard.close, Some((1008, "message timeout".to_owned())));
    assert!(
        heard
            .texts
            .iter()
            .any(|t| t.contains(r#""text":"in time""#)),
        "the finished message was delivered: {:?}",
        heard.texts
    );
    server.shutdown().await;
}

/// Pings cost a client nothing to send without listening, so they are no sign of life: one that
/// pings often but never says anything nor answers the server's pings is closed 4000 after the
/// idle timeout. (Pongs do count: `pings_keep_a_responsive_client_alive` in hostile.rs.)
#[tokio::test]
async fn a_client_that_only_pings_is_closed_for_idleness() {
    let mut settings = settings();
    settings.engine.idle_timeout = Duration::from_millis(600);
    settings.engine.ping_interval = Duration::from_secs(60);
    // Not the flood this test is about.
    settings.ping_rate_per_second = 0;
    let server = TestServer::start(settings).await;
    let (RawWs { stream }, _) = RawWs::open(&server, "").await;
    let (mut read, mut write) = stream.into_split();
    let pinger = tokio::spawn(async move {
        loop {
            if write
                .write_all(&ClientFrame::ping("still here?").encode())
                .await
                .is_err()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let heard = until_close(&mut read).await;
    pinger.abort();
    assert_eq!(heard.close.map(|(code, _)| code), Some(4000));
    assert!(heard.pongs > 0, "its pings were answered");
    server.shutdown().await;
}
