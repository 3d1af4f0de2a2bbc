//! Hostile and broken clients, over real TCP: each gets its defined answer and nobody else suffers.

mod common;

use std::time::Duration;

use chat_server::test_kit::wire::ClientFrame;
use chat_server::Settings;
use common::{settings, Client, RawWs, TestServer};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn violation(server: &TestServer, frames: &[ClientFrame]) -> u16 {
    let (mut ws, status) = RawWs::open(server, "").await;
    assert!(status.starts_with("HTTP/1.1 101"), "{status}");
    for frame in frames {
        ws.send(frame).await;
    }
    ws.close_code().await
}

#[tokio::test]
async fn rfc6455_violations_get_their_close_codes() {
    let mut settings = settings();
    settings.max_message_bytes = 1024;
    let server = TestServer::start(settings).await;
    let cases: Vec<(&str, Vec<ClientFrame>, u16)> = vec![
        ("binary frame", vec![ClientFrame::binary(b"\x00\x01")], 1003),
        (
            "invalid UTF-8 text",
            vec![ClientFrame::text([0xff, 0xfe, 0x41])],
            1007,
        ),
        (
            "invalid UTF-8 across fragments",
            vec![
                ClientFrame::text("ok").fin(false),
                ClientFrame::continuation([0xc3]),
            ],
            1007,
        ),
        (
            "one frame over the cap",
            vec![ClientFrame::text([b'a'; 1025])],
            1009,
        ),
        (
            "fragments over the cap",
            vec![
                ClientFrame::text([b'a'; 600]).fin(false),
                ClientFrame::continuation([b'a'; 600]),
            ],
            1009,
        ),
        (
            "unmasked frame",
            vec![ClientFrame::text("hi").unmasked()],
            1002,
        ),
        (
            "reserved bit",
            vec![ClientFrame::text("hi").rsv(0b100)],
            1002,
        ),
        ("reserved opcode", vec![ClientFrame::new(0x3, "hi")], 1002),
        (
            "ping over 125 bytes",
            vec![ClientFrame::ping([0; 126])],
            1002,
        ),
        (
            "pong over 125 bytes",
            vec![ClientFrame::pong([0; 126])],
            1002,
        ),
        (
            "fragmented ping",
            vec![ClientFrame::ping("x").fin(false)],
            1002,
        ),
        (
            "continuation without start",
            vec![ClientFrame::continuation("x")],
            1002,
        ),
        (
            "text inside a fragmented message",
            vec![ClientFrame::text("a").fin(false), ClientFrame::text("b")],
            1002,
        ),
        (
            "close with 1-byte payload",
            vec![ClientFrame::close_payload([3])],
            1002,
        ),
        (
            "close with invalid code",
            vec![ClientFrame::close(999, b"")],
            1002,
        ),
        (
            "close with 126-byte payload",
            vec![ClientFrame::close(1000, &[b'a'; 124])],
            1002,
        ),
        (
            "close with invalid UTF-8 reason",
            vec![ClientFrame::close(1000, &[0xff])],
            1007,
        ),
        (
            "a valid close is echoed",
            vec![ClientFrame::close(4321, b"")],
            4321,
        ),
    ];
    for (name, frames, expected) in cases {
        assert_eq!(violation(&server, &frames).await, expected, "{name}");
    }
    // A fragmented message exactly at the cap is fine.
    let (mut ws, _) = RawWs::open(&server, "").await;
    ws.send(&ClientFrame::text([b'a'; 512]).fin(false)).await;
    ws.send(&ClientFrame::continuation([b'a'; 512])).await;
    ws.send(&ClientFrame::close(1000, b"")).await;
    assert_eq!(ws.close_code().await, 1000);
    server.shutdown().await;
}

#[tokio::test]
async fn application_errors_get_codes_and_keep_the_connection_open() {
    let server = TestServer::start(settings()).await;
    let (mut ann, _) = Client::join(&server, "?nick=ann").await;
    let cases = [
        (
            r#"{"type":"message","text":"unterminated"#.to_owned(),
            "invalid_json",
        ),
        (r#"{"type":"shout"}"#.to_owned(), "unknown_type"),
        (
            r#"{"type":"message","text":42}"#.to_owned(),
            "invalid_field",
        ),
        (
            r#"{"type":"message","text":"   "}"#.to_owned(),
            "empty_message",
        ),
        (
            json!({"type":"message","text":"x".repeat(4097)}).to_string(),
            "message_too_long",
        ),
        (
            json!({"type":"message","text":"\u{1}".repeat(4096)}).to_string(),
            "invalid_text",
        ),
        (
            json!({"type":"message","text":"evil \u{202e}txt.exe"}).to_string(),
            "invalid_text",
        ),
        (r#"{"type":"nick","nick":""}"#.to_owned(), "invalid_nick"),
        (
            r#"{"type":"join","room":"bad room!"}"#.to_owned(),
            "invalid_room",
        ),
    ];
    for (frame, code) in cases {
        ann.send(&frame).await;
        let error = ann.recv_type("error").await;
        assert_eq!(error["code"], code, "{frame}");
    }
    ann.send("still connected").await;
    assert_eq!(ann.recv_type("message").await["text"], "still connected");
    server.shutdown().await;
}

#[tokio::test]
async fn a_flood_is_refused_then_closed_with_1008_and_others_are_unaffected() {
    let mut settings = settings();
    settings.engine.rate_limit_burst = 5;
    settings.engine.rate_limit_per_second = 1;
    settings.engine.rate_limit_strikes_max = 10;
    let server = TestServer::start(settings).await;
    let (mut calm, _) = Client::join(&server, "?nick=calm").await;
    let (mut flood, _) = Client::join(&server, "?nick=flood").await;
    calm.recv_type("join").await;
    for i in 0..15 {
        flood.send(&format!("spam {i}")).await;
    }
    let mut delivered = 0;
    let mut refused = 0;
    let (code, _) = loop {
        use futures_util::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        match tokio::time::timeout(common::WAIT, flood.ws.next())
            .await
            .expect("in time")
        {
            Some(Ok(Message::Text(text))) => {
                let value: serde_json::Value = serde_json::from_str(&text).expect("json");
                match value["type"].as_str() {
                    Some("message") => delivered += 1,
                    Some("error") if value["code"] == "rate_limited" => refused += 1,
                    other => panic!("unexpected {other:?}"),
                }
            }
            Some(Ok(Message::Close(Some(frame)))) => break (u16::from(frame.code), frame.reason),
            Some(Ok(_)) => {}
            other => panic!("expected a close, got {other:?}"),
        }
    };
    assert_eq!((delivered, refused, code), (5, 9, 1008));
    for _ in 0..5 {
        assert_eq!(calm.recv_type("message").await["nick"], "flood");
    }
    assert_eq!(calm.recv_type("leave").await["reason"], "flooding");
    calm.send("I can still talk").await;
    assert_eq!(calm.recv_type("message").await["text"], "I can still talk");
    server.shutdown().await;
}

#[tokio::test]
async fn a_connection_that_never_finishes_its_request_is_dropped() {
    let mut settings = settings();
    settings.handshake_timeout = Duration::from_millis(300);
    let server = TestServer::start(settings).await;
    let mut slow = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    slow.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("partial request");
    let mut buf = [0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(5), slow.read(&mut buf))
        .await
        .expect("dropped in time");
    // hyper answers 408 or just closes; either way the connection ends.
    let n = read.unwrap_or(0);
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(n == 0 || head.starts_with("HTTP/1.1 408"), "{head}");
    let (mut ok, _) = Client::join(&server, "?nick=ok").await;
    ok.send("fine").await;
    ok.recv_type("message").await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_silent_websocket_is_closed_after_the_idle_timeout() {
    let mut settings = settings();
    settings.engine.idle_timeout = Duration::from_millis(400);
    settings.engine.ping_interval = Duration::from_secs(60);
    let server = TestServer::start(settings).await;
    // tungstenite answers pings, but nothing pings within the test: the client stays silent.
    let (mut quiet, _) = Client::join(&server, "?nick=quiet").await;
    let (code, reason) = quiet.recv_close().await;
    assert_eq!(code, 4000, "{reason}");
    server.shutdown().await;
}

#[tokio::test]
async fn pings_keep_a_responsive_client_alive() {
    let mut settings = settings();
    settings.engine.idle_timeout = Duration::from_millis(600);
    settings.engine.ping_interval = Duration::from_millis(100);
    let server = TestServer::start(settings).await;
    let (mut alive, _) = Client::join(&server, "?nick=alive").await;
    // Reading lets tungstenite answer the pings with pongs.
    alive.assert_silent(Duration::from_millis(1500)).await;
    alive.send("still here").await;
    assert_eq!(alive.recv_type("message").await["text"], "still here");
    server.shutdown().await;
}

#[tokio::test]
async fn a_socket_that_accepts_nothing_is_dropped_after_the_write_timeout() {
    let mut settings = settings();
    settings.write_timeout = Duration::from_millis(300);
    settings.engine.text_bytes_max = 60_000;
    settings.engine.queue_frames_max = 100_000;
    settings.engine.queue_high_water_frames = 100_000;
    settings.engine.queue_bytes_max = 1 << 30;
    settings.engine.queue_high_water_bytes = 1 << 30;
    let server = TestServer::start(settings).await;
    let (mut sender, _) = Client::join(&server, "?nick=sender").await;
    let (_stuck, _) = RawWs::open(&server, "").await;
    sender.recv_type("join").await;
    let big = "y".repeat(60_000);
    let mut left = false;
    for _ in 0..2_000 {
        sender.send(&big).await;
        loop {
            let frame = sender.recv().await;
            if frame["type"] == "leave" {
                assert_eq!(frame["reason"], "left");
                left = true;
            } else {
                break;
            }
        }
        if left {
            break;
        }
    }
    assert!(left, "the stuck connection was never dropped");
    server.shutdown().await;
}

/// Nicknames cannot impersonate (README, "Hostile input"): look-alikes of a member's name are
/// taken, hidden characters and disguised guest names are refused, over the real service.
#[tokio::test]
async fn look_alike_and_hidden_nicknames_are_refused_over_tcp() {
    let mut settings = settings();
    // Eight attempts in a row: past the burst of renames this test is not about.
    settings.engine.membership_rate_interval = Duration::ZERO;
    let server = TestServer::start(settings).await;
    let (_alice, _) = Client::join(&server, "?nick=alice").await;
    let (mut bob, _) = Client::join(&server, "?nick=bob").await;
    let cases = [
        ("\u{FF41}\u{FF4C}\u{FF49}\u{FF43}\u{FF45}", "nick_taken"),
        ("\u{430}lice", "nick_taken"),
        ("alice\u{200B}", "invalid_nick"),
        ("\u{202E}ecila", "invalid_nick"),
        ("\u{200B}guest-7", "invalid_nick"),
        ("guest\u{2011}7", "invalid_nick"),
        ("\u{FF47}uest-7", "invalid_nick"),
    ];
    for (nick, code) in cases {
        bob.send(&json!({"type":"nick","nick":nick}).to_string())
            .await;
        let error = bob.recv_type("error").await;
        assert_eq!(error["code"], code, "{nick:?}");
    }
    // A confusable room name is the existing room.
    bob.send(&json!({"type":"join","room":"g\u{435}neral"}).to_string())
        .await;
    let welcome = bob.recv_type("welcome").await;
    assert_eq!(
        (&welcome["room"], &welcome["user_count"]),
        (&json!("general"), &json!(2))
    );
    server.shutdown().await;
}

/// A typing flood is relayed once per interval (README, "Hostile input"): the rest are dropped
/// without an error, and the sender's next message comes right after the one relayed typing.
#[tokio::test]
async fn a_typing_flood_is_relayed_once_per_interval_over_tcp() {
    let server = TestServer::start(settings()).await;
    let (mut ann, _) = Client::join(&server, "?nick=ann").await;
    let (mut bob, _) = Client::join(&server, "?nick=bob").await;
    ann.recv_type("join").await;
    for _ in 0..50 {
        bob.send(r#"{"type":"typing"}"#).await;
    }
    bob.send("done typing").await;
    assert_eq!(ann.recv_type("typing").await["nick"], "bob");
    assert_eq!(ann.recv_type("message").await["text"], "done typing");
    assert_eq!(
        bob.recv_type("message").await["text"],
        "done typing",
        "no error first"
    );
    server.shutdown().await;
}

/// Renames and room switches past their burst get `rate_limited` and change nothing, over the
/// real service; chat goes on.
#[tokio::test]
async fn rename_and_switch_churn_is_rate_limited_over_tcp() {
    let server = TestServer::start(settings()).await;
    let (mut ann, _) = Client::join(&server, "?nick=ann").await;
    let burst = Settings::default().engine.membership_rate_burst;
    for n in 0..burst {
        ann.send(&json!({"type":"nick","nick":format!("ann{n}")}).to_string())
            .await;
        assert_eq!(ann.recv_type("nick").await["nick"], format!("ann{n}"));
    }
    ann.send(r#"{"type":"join","room":"elsewhere"}"#).await;
    let refused = ann.recv_type("error").await;
    assert_eq!(refused["code"], "rate_limited", "{refused}");
    ann.send("still here").await;
    let said = ann.recv_type("message").await;
    assert_eq!(
        (&said["room"], &said["text"]),
        (&json!("general"), &json!("still here"))
    );
    server.shutdown().await;
}

/// History poisoning: maximal messages across rooms whose senders left keep at most the total
/// history budget, the oldest going first, and a rejoin from before what is kept is told
/// `recovered: false`; `/metrics` shows the bytes kept.
#[tokio::test]
async fn poisoned_histories_stay_within_their_byte_budgets_over_tcp() {
    let mut settings = settings();
    settings.engine.history_bytes_max = 9 << 10;
    settings.engine.history_total_bytes_max = 20 << 10;
    let server = TestServer::start(settings).await;
    let text = "x".repeat(Settings::default().engine.text_bytes_max);
    let mut first_epoch = String::new();
    for room in 0..6 {
        let (mut poisoner, welcome) =
            Client::join(&server, &format!("?nick=p{room}&room=r{room}")).await;
        if room == 0 {
            first_epoch = welcome["epoch"].as_str().expect("an epoch").to_owned();
        }
        for _ in 0..5 {
            poisoner.send(&text).await;
            poisoner.recv_type("message").await;
        }
    }
    let (_, metrics) = common::http_get(&server, "/metrics", &[]).await;
    let kept: usize = metrics
        .lines()
        .find_map(|line| line.strip_prefix("chat_history_bytes "))
        .expect("chat_history_bytes in /metrics")
        .parse()
        .expect("a number");
    assert!(kept > 0 && kept <= 20 << 10, "{kept} bytes kept");
    // Room r0's messages were the oldest anywhere: all gone, and said so.
    let (_, welcome) = Client::join(
        &server,
        &format!("?nick=back&room=r0&since=0&epoch={first_epoch}"),
    )
    .await;
    assert_eq!(welcome["recovered"], false);
    assert_eq!(welcome["history"], json!([]));
    // The newest room keeps its newest messages: at most its own budget of two 4 KiB frames.
    let (_, welcome) = Client::join(&server, "?nick=late&room=r5").await;
    let seqs: Vec<u64> = (welcome["history"].as_array().expect("history").iter())
        .map(|m| m["seq"].as_u64().expect("a seq"))
        .collect();
    assert_eq!(seqs, [4, 5]);
    server.shutdown().await;
}

/// A flooder that reconnects from the same address starts with the message budget it left
/// with, not a fresh burst, over the real service.
#[tokio::test]
async fn reconnecting_in_a_loop_does_not_refill_the_message_burst_over_tcp() {
    let mut settings = settings();
    settings.engine.rate_limit_burst = 3;
    settings.engine.rate_limit_per_second = 1;
    settings.engine.rate_limit_strikes_max = 0;
    let server = TestServer::start(settings).await;
    let (mut watcher, _) = Client::join(&server, "?nick=watcher").await;
    let (mut flood, _) = Client::join(&server, "?nick=flood").await;
    watcher.recv_type("join").await;
    for n in 0..3 {
        flood.send(&format!("m{n}")).await;
        assert_eq!(flood.recv_type("message").await["text"], format!("m{n}"));
    }
    flood.ws.close(None).await.expect("close");
    for n in 0..3 {
        assert_eq!(watcher.recv_type("message").await["text"], format!("m{n}"));
    }
    assert_eq!(watcher.recv_type("leave").await["nick"], "flood");
    let (mut again, _) = Client::join(&server, "?nick=flood").await;
    again.send("one more").await;
    let refused = again.recv_type("error").await;
    assert_eq!(refused["code"], "rate_limited", "{refused}");
    server.shutdown().await;
}
