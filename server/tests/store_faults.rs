//! A store that cannot write (a full disk): messages are refused with `unavailable` and nobody
//! gets them, `/readyz` answers 503, the connection, reading and scrollback keep working, and
//! everything recovers by itself once the disk has room again. A failed sync stops the server
//! with an error, since acknowledged data may be gone.

mod common;

use std::time::Duration;

use chat_server::{Disk, StoreAt, StoreSettings};
use common::{http_get, settings, status_json, Client, TestServer, WAIT};
use serde_json::json;

async fn ready(server: &TestServer) -> u16 {
    http_get(server, "/readyz", &[]).await.0
}

#[tokio::test]
async fn a_full_disk_refuses_messages_and_recovers_by_itself() {
    let disk = Disk::new();
    let mut settings = settings();
    settings.store = StoreSettings {
        at: StoreAt::Disk(disk.clone()),
        ..StoreSettings::default()
    };
    let server = TestServer::start(settings).await;
    let (mut ann, _) = Client::join(&server, "?nick=ann&room=r").await;
    let (mut bob, _) = Client::join(&server, "?nick=bob&room=r").await;
    let _ = ann.recv_type("join").await;
    ann.send("one").await;
    assert_eq!(ann.recv_type("message").await["seq"], 1);
    assert_eq!(bob.recv_type("message").await["text"], "one");
    assert_eq!(ready(&server).await, 200);

    disk.set_full(true);
    ann.send("two").await;
    let refused = ann.recv_type("error").await;
    assert_eq!(refused["code"], "unavailable", "{refused}");
    assert_eq!(ready(&server).await, 503);
    // Nobody got it; the connection and scrollback still work.
    ann.send_json(json!({"type": "history", "limit": 10})).await;
    let page = ann.recv_type("history").await;
    let seqs: Vec<u64> = (page["messages"].as_array().expect("messages").iter())
        .map(|m| m["seq"].as_u64().expect("seq"))
        .collect();
    assert_eq!(seqs, [1], "{page}");
    bob.assert_silent(Duration::from_millis(200)).await;

    disk.set_full(false);
    let deadline = tokio::time::Instant::now() + WAIT;
    while ready(&server).await != 200 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "/readyz never recovered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ann.send("three").await;
    let acked = ann.recv_type("message").await;
    assert_eq!(
        (acked["seq"].as_u64(), acked["text"].as_str()),
        (Some(2), Some("three"))
    );
    assert_eq!(bob.recv_type("message").await["text"], "three");
    let status = status_json(&server).await;
    assert_eq!(status["store"]["healthy"], true, "{status}");
    assert!(
        status["store"]["write_errors"].as_u64() >= Some(1),
        "{status}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_failed_sync_stops_the_server_with_an_error_and_acknowledges_nothing() {
    let disk = Disk::new();
    let mut settings = settings();
    settings.store = StoreSettings {
        at: StoreAt::Disk(disk.clone()),
        ..StoreSettings::default()
    };
    let server = TestServer::start(settings).await;
    let (mut ann, _) = Client::join(&server, "?nick=ann&room=r").await;
    disk.set_sync_broken(true);
    ann.send("lost?").await;
    let error = server
        .exited()
        .await
        .expect_err("the server stops with an error");
    assert!(error.to_string().contains("sync"), "{error}");
    // Whatever it sent before going: never the message, whose sync failed.
    while let Ok(Some(Ok(frame))) =
        tokio::time::timeout(WAIT, futures_util::StreamExt::next(&mut ann.ws)).await
    {
        if let tokio_tungstenite::tungstenite::Message::Text(text) = frame {
            assert!(
                !text.contains("lost?"),
                "acknowledged after a failed sync: {text}"
            );
        }
    }
}

/// While the store opens (after a crash, redb's repair can take a minute), the server already
/// answers: `/healthz` 200, so a supervisor does not kill it mid-repair, and everything else
/// `503` with `retry-after`, a WebSocket upgrade included. Once open, it serves as usual.
#[tokio::test]
async fn while_the_store_opens_liveness_answers_and_the_rest_is_told_to_wait() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let gate = std::sync::Arc::new(std::sync::Barrier::new(2));
    let mut settings = settings();
    settings.store = StoreSettings {
        at: StoreAt::Dir(dir.path().into()),
        open_gate: Some(gate.clone()),
        ..StoreSettings::default()
    };
    let server = TestServer::start(settings).await;
    // Opened however the test ends: a failed assertion must not leave the open waiting for ever.
    let release = Release(Some(gate));
    assert_eq!(http_get(&server, "/healthz", &[]).await.0, 200);
    let (status, response) = http_get(&server, "/readyz", &[]).await;
    assert_eq!(status, 503, "{response}");
    assert!(
        response.to_ascii_lowercase().contains("retry-after: 1"),
        "{response}"
    );
    assert!(response.contains("starting"), "{response}");
    assert_eq!(http_get(&server, "/", &[]).await.0, 503);
    let upgrade = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];
    assert_eq!(http_get(&server, "/ws?nick=ann", &upgrade).await.0, 503);

    drop(release);
    let deadline = tokio::time::Instant::now() + WAIT;
    while ready(&server).await != 200 {
        assert!(tokio::time::Instant::now() < deadline, "never became ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (mut ann, welcome) = Client::join(&server, "?nick=ann&room=r").await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    ann.send("after the open").await;
    assert_eq!(ann.recv_type("message").await["seq"], 1);
    server.shutdown().await;
}

/// Lets a gated store open go on when dropped.
struct Release(Option<std::sync::Arc<std::sync::Barrier>>);

impl Drop for Release {
    fn drop(&mut self) {
        if let Some(gate) = self.0.take() {
            std::thread::spawn(move || gate.wait());
        }
    }
}
