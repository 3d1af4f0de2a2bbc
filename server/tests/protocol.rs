//! The chat protocol end to end over real TCP, seen from an independent WebSocket client.

mod common;

use std::time::Duration;

use common::{settings, Client, TestServer};
use serde_json::json;

#[tokio::test]
async fn every_server_message_type_reaches_the_right_clients() {
    let server = TestServer::start(settings()).await;
    let (mut ann, welcome) = Client::join(&server, "?nick=ann").await;
    assert_eq!(welcome["nick"], "ann");
    assert_eq!(welcome["room"], "general");
    assert_eq!(welcome["users"], json!(["ann"]));
    assert_eq!(welcome["recovered"], false);
    assert!(welcome["epoch"]
        .as_str()
        .is_some_and(|e| e.starts_with("test")));

    let (mut bob, welcome) = Client::join(&server, "?nick=bob").await;
    assert_eq!(welcome["users"], json!(["ann", "bob"]));
    let join = ann.recv_type("join").await;
    assert_eq!(
        (join["nick"].as_str(), join["room"].as_str()),
        (Some("bob"), Some("general"))
    );

    ann.send_json(json!({"type": "message", "text": "hello bob"}))
        .await;
    for client in [&mut ann, &mut bob] {
        let message = client.recv_type("message").await;
        assert_eq!(
            (
                message["nick"].as_str(),
                message["text"].as_str(),
                message["seq"].as_u64()
            ),
            (Some("ann"), Some("hello bob"), Some(1))
        );
        let ts = message["ts"].as_str().expect("ts");
        assert!(
            ts.len() == 24 && ts.ends_with('Z'),
            "RFC 3339 with milliseconds: {ts}"
        );
    }

    bob.send("plain text works too").await;
    assert_eq!(
        ann.recv_type("message").await["text"],
        "plain text works too"
    );
    assert_eq!(bob.recv_type("message").await["seq"], 2);

    bob.send_json(json!({"type": "typing"})).await;
    assert_eq!(ann.recv_type("typing").await["nick"], "bob");

    bob.send_json(json!({"type": "nick", "nick": "robert"}))
        .await;
    for client in [&mut ann, &mut bob] {
        let nick = client.recv_type("nick").await;
        assert_eq!(
            (nick["old"].as_str(), nick["nick"].as_str()),
            (Some("bob"), Some("robert"))
        );
    }

    bob.send_json(json!({"type": "frobnicate"})).await;
    let error = bob.recv_type("error").await;
    assert_eq!(error["code"], "unknown_type");
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));

    drop(bob);
    let leave = ann.recv_type("leave").await;
    assert_eq!(
        (leave["nick"].as_str(), leave["reason"].as_str()),
        (Some("robert"), Some("left"))
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_client_cannot_post_under_another_name() {
    let server = TestServer::start(settings()).await;
    let (mut ann, _) = Client::join(&server, "?nick=ann").await;
    let (mut mallory, _) = Client::join(&server, "?nick=mallory").await;
    ann.recv_type("join").await;
    mallory
        .send_json(json!({"type": "message", "text": "trust me", "nick": "ann"}))
        .await;
    assert_eq!(ann.recv_type("message").await["nick"], "mallory");
    server.shutdown().await;
}

#[tokio::test]
async fn a_taken_nick_gets_an_error_and_a_join_with_another_works() {
    let server = TestServer::start(settings()).await;
    let (_ann, _) = Client::join(&server, "?nick=ann").await;
    let mut copy = Client::connect(&server, "?nick=ANN").await;
    assert_eq!(copy.recv_type("error").await["code"], "nick_taken");
    copy.send_json(json!({"type": "join", "nick": "ann2"}))
        .await;
    assert_eq!(
        copy.recv_type("welcome").await["users"],
        json!(["ann", "ann2"])
    );
    server.shutdown().await;
}

#[tokio::test]
async fn rooms_are_isolated_and_a_join_switches_rooms() {
    let server = TestServer::start(settings()).await;
    let (mut general, _) = Client::join(&server, "?nick=g").await;
    let (mut rust, welcome) = Client::join(&server, "?nick=r&room=rust").await;
    assert_eq!(welcome["room"], "rust");
    rust.send("only rust sees this").await;
    assert_eq!(rust.recv_type("message").await["room"], "rust");
    general.assert_silent(Duration::from_millis(200)).await;

    general
        .send_json(json!({"type": "join", "room": "rust"}))
        .await;
    let welcome = general.recv_type("welcome").await;
    assert_eq!(welcome["users"], json!(["g", "r"]), "in nickname order");
    assert_eq!(welcome["user_count"], 2);
    assert_eq!(welcome["history"][0]["text"], "only rust sees this");
    assert_eq!(rust.recv_type("join").await["nick"], "g");
    server.shutdown().await;
}

#[tokio::test]
async fn reconnect_with_since_recovers_exactly_what_was_missed() {
    let server = TestServer::start(settings()).await;
    let (mut ann, _) = Client::join(&server, "?nick=ann").await;
    let (bob, welcome) = Client::join(&server, "?nick=bob").await;
    let epoch = welcome["epoch"].as_str().expect("epoch").to_owned();
    ann.recv_type("join").await;
    ann.send("before").await;
    let last_seen = ann.recv_type("message").await["seq"].as_u64().expect("seq");
    drop(bob);
    ann.recv_type("leave").await;
    for text in ["missed 1", "missed 2"] {
        ann.send(text).await;
        ann.recv_type("message").await;
    }
    let (_bob, welcome) = Client::join(
        &server,
        &format!("?nick=bob&since={last_seen}&epoch={epoch}"),
    )
    .await;
    assert_eq!(welcome["recovered"], true);
    let texts: Vec<&str> = welcome["history"]
        .as_array()
        .expect("history")
        .iter()
        .filter_map(|m| m["text"].as_str())
        .collect();
    assert_eq!(texts, ["missed 1", "missed 2"]);

    let (_carl, welcome) = Client::join(
        &server,
        &format!("?nick=carl&since={last_seen}&epoch=an-older-server-1"),
    )
    .await;
    assert_eq!(
        welcome["recovered"], false,
        "another epoch is never silently recovered"
    );
    assert_eq!(welcome["history"].as_array().map(Vec::len), Some(3));
    server.shutdown().await;
}

/// A client that stops reading is evicted once its queue overflows, while a client that keeps
/// reading receives every message, in order.
#[tokio::test]
async fn a_client_that_stops_reading_is_evicted_and_the_others_get_everything() {
    let mut settings = settings();
    settings.engine.queue_frames_max = 32;
    settings.engine.queue_high_water_frames = 32;
    settings.engine.text_bytes_max = 60_000;
    let server = TestServer::start(settings).await;
    let (mut sender, _) = Client::join(&server, "?nick=sender").await;
    let (mut stalled, _) = Client::join(&server, "?nick=stalled").await;
    sender.recv_type("join").await;
    let big = "x".repeat(60_000);
    let mut evicted = false;
    let mut sent = 0u64;
    // Loopback socket buffers hold megabytes: keep sending until the stalled queue overflows.
    while !evicted {
        sender.send(&big).await;
        sent += 1;
        loop {
            let frame = sender.recv().await;
            match frame["type"].as_str() {
                Some("message") => {
                    assert_eq!(
                        frame["seq"].as_u64(),
                        Some(sent),
                        "the reader gets every message in order"
                    );
                    break;
                }
                Some("leave") => {
                    assert_eq!(
                        (frame["nick"].as_str(), frame["reason"].as_str()),
                        (Some("stalled"), Some("evicted"))
                    );
                    evicted = true;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(sent < 2_000, "never evicted");
    }
    let mut received = 0;
    let (code, reason) = loop {
        use futures_util::StreamExt;
        match tokio::time::timeout(common::WAIT, stalled.ws.next())
            .await
            .expect("frames in time")
        {
            Some(Ok(tokio_tungstenite::tungstenite::Message::Text(_))) => received += 1,
            Some(Ok(tokio_tungstenite::tungstenite::Message::Close(Some(frame)))) => {
                break (u16::from(frame.code), frame.reason.to_string())
            }
            Some(Ok(_)) => {}
            other => panic!("expected frames then a close, got {other:?}"),
        }
    };
    assert_eq!(code, 4001, "{reason}");
    assert!(
        received < sent,
        "the evicted client got less than everything ({received} of {sent})"
    );
    sender.send("after the eviction").await;
    assert_eq!(
        sender.recv_type("message").await["text"],
        "after the eviction"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn graceful_shutdown_closes_every_client_with_1001() {
    let server = TestServer::start(settings()).await;
    let (mut ann, _) = Client::join(&server, "?nick=ann").await;
    let (mut bob, _) = Client::join(&server, "?nick=bob&room=other").await;
    let shutdown = tokio::spawn(server.shutdown());
    assert_eq!(
        ann.recv_close().await,
        (1001, "server shutting down".to_owned())
    );
    assert_eq!(bob.recv_close().await.0, 1001);
    shutdown.await.expect("shutdown finished");
}

#[tokio::test]
async fn the_operator_kick_closes_with_4003() {
    let mut settings = settings();
    settings.admin_token = Some("s3cret".into());
    let server = TestServer::start(settings).await;
    let (mut ann, _) = Client::join(&server, "?nick=ann").await;
    let (mut bob, _) = Client::join(&server, "?nick=bob").await;
    ann.recv_type("join").await;
    assert_eq!(
        common::http_post(&server, "/admin/kick?room=general&nick=bob", &[])
            .await
            .0,
        401
    );
    for wrong in [
        "Bearer nope",
        "Bearer s3creT",
        "Bearer s3cre",
        "Bearer s3cret2",
    ] {
        assert_eq!(
            common::http_post(
                &server,
                "/admin/kick?room=general&nick=bob",
                &[("Authorization", wrong)]
            )
            .await
            .0,
            403,
            "{wrong}"
        );
    }
    assert_eq!(
        common::http_post(
            &server,
            "/admin/kick?room=general&nick=zed",
            &[("Authorization", "Bearer s3cret")]
        )
        .await
        .0,
        404
    );
    assert_eq!(
        common::http_post(
            &server,
            "/admin/kick?room=general&nick=bob",
            &[("Authorization", "Bearer s3cret")]
        )
        .await
        .0,
        204
    );
    assert_eq!(bob.recv_close().await.0, 4003);
    assert_eq!(ann.recv_type("leave").await["reason"], "kicked");
    server.shutdown().await;
}

/// A client that sends its first message in the same packet as its upgrade request: the HTTP
/// layer has read those bytes already, and they must still reach the reader, first.
#[tokio::test]
async fn a_message_sent_with_the_upgrade_request_is_read() {
    use chat_server::test_kit::wire::{parse_server_frame, ClientFrame, OP_TEXT};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start(settings()).await;
    let mut stream = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    let mut bytes = format!(
        "GET /ws?nick=eager HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        server.addr
    )
    .into_bytes();
    bytes.extend(ClientFrame::new(OP_TEXT, b"hi right away").encode());
    bytes.extend(ClientFrame::new(OP_TEXT, b"and again").encode());
    stream.write_all(&bytes).await.expect("write");
    let mut buf = Vec::new();
    let mut texts = Vec::new();
    let deadline = tokio::time::Instant::now() + common::WAIT;
    while texts.len() < 2 {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout_at(deadline, stream.read(&mut chunk))
            .await
            .expect("both messages in time")
            .expect("read");
        assert!(n > 0, "the server hung up");
        buf.extend_from_slice(&chunk[..n]);
        let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n");
        let Some(start) = head_end.map(|at| at + 4) else {
            continue;
        };
        let mut frames = &buf[start..];
        texts.clear();
        while let Some((frame, used)) = parse_server_frame(frames).expect("well-formed") {
            let value: serde_json::Value = serde_json::from_slice(&frame.payload).expect("JSON");
            if value["type"] == "message" {
                texts.push(value["text"].as_str().expect("text").to_owned());
            }
            frames = &frames[used..];
        }
    }
    assert_eq!(texts, ["hi right away", "and again"]);
    server.shutdown().await;
}
