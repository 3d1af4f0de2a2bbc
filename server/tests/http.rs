//! The HTTP surface over real TCP: status, metrics, static files, handshake refusals.

mod common;

use std::collections::BTreeMap;

use common::{http_get, http_post, settings, Client, RawWs, TestServer};
use serde_json::Value;

/// `/status` with its volatile fields replaced, so the snapshot pins the shape and the counts.
fn redacted_status(body: &str) -> Value {
    let json = body.split("\r\n\r\n").nth(1).expect("body");
    let mut status: Value = serde_json::from_str(json).expect("status is JSON");
    let timestamp = status["timestamp"].as_str().expect("timestamp");
    assert!(
        humantime::parse_rfc3339(timestamp).is_ok(),
        "RFC 3339: {timestamp}"
    );
    status["timestamp"] = "[timestamp]".into();
    assert!(status["uptime_seconds"].is_u64());
    status["uptime_seconds"] = "[uptime]".into();
    status["version"] = "[version]".into();
    status
}

#[tokio::test]
async fn status_reports_users_rooms_and_counters() {
    let server = TestServer::start(settings()).await;
    let (mut ann, _) = Client::join(&server, "?nick=ann").await;
    let (_bob, _) = Client::join(&server, "?nick=bob&room=rust").await;
    ann.send("one").await;
    ann.recv_type("message").await;
    let (code, body) = http_get(&server, "/status", &[]).await;
    assert_eq!(code, 200);
    assert!(body
        .to_ascii_lowercase()
        .contains("content-type: application/json"));
    insta::assert_json_snapshot!(redacted_status(&body));
    server.shutdown().await;
}

/// Prometheus text: `name{labels} value` lines into a map.
fn parse_metrics(body: &str) -> BTreeMap<String, f64> {
    body.split("\r\n\r\n")
        .nth(1)
        .expect("body")
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let (name, value) = line.rsplit_once(' ').expect("name value");
            (name.to_owned(), value.parse().expect("numeric value"))
        })
        .collect()
}

#[tokio::test]
async fn metrics_count_what_happened() {
    let mut settings = settings();
    settings.engine.queue_frames_max = 4;
    settings.engine.queue_high_water_frames = 4;
    let server = TestServer::start(settings).await;
    let (mut ann, _) = Client::join(&server, "?nick=ann").await;
    for i in 0..3 {
        ann.send(&format!("m{i}")).await;
        ann.recv_type("message").await;
    }
    ann.send(r#"{"type":"nope"}"#).await;
    ann.recv_type("error").await;
    assert_eq!(
        http_get(&server, "/ws", &[("Origin", "http://evil.example")])
            .await
            .0,
        400
    );
    let (_ws, status) = RawWs::open(&server, "Origin: http://evil.example\r\n").await;
    assert!(status.starts_with("HTTP/1.1 403"), "{status}");

    let (code, body) = http_get(&server, "/metrics", &[]).await;
    assert_eq!(code, 200);
    let metrics = parse_metrics(&body);
    assert_eq!(
        metrics.get("chat_messages_total"),
        Some(&3.0),
        "{metrics:?}"
    );
    assert_eq!(metrics.get("chat_errors_total"), Some(&1.0));
    assert_eq!(metrics.get("chat_connected_users"), Some(&1.0));
    assert_eq!(metrics.get("chat_rooms"), Some(&1.0));
    assert_eq!(metrics.get("chat_ws_upgrades_total"), Some(&1.0));
    assert_eq!(metrics.get("chat_evictions_total"), Some(&0.0));
    assert_eq!(
        metrics.get(r#"chat_http_refused_total{reason="origin"}"#),
        Some(&1.0)
    );
    assert_eq!(
        metrics.get(r#"chat_http_refused_total{reason="not_upgrade"}"#),
        Some(&1.0)
    );
    // welcome + 3 messages + 1 error
    assert_eq!(metrics.get("chat_frames_sent_total"), Some(&5.0));
    server.shutdown().await;
}

#[tokio::test]
async fn the_web_client_and_health_are_served_and_unknown_paths_are_404() {
    let server = TestServer::start(settings()).await;
    let (code, body) = http_get(&server, "/", &[]).await;
    assert_eq!(code, 200);
    assert!(body
        .to_ascii_lowercase()
        .contains("content-type: text/html"));
    assert!(body.contains("<html") || body.contains("<!doctype") || body.contains("<!DOCTYPE"));
    assert_eq!(http_get(&server, "/healthz", &[]).await.0, 200);
    assert_eq!(http_get(&server, "/no-such-file.txt", &[]).await.0, 404);
    assert_eq!(http_get(&server, "/../Cargo.toml", &[]).await.0, 404);
    server.shutdown().await;
}

/// The web client takes its limits from `/config.json`, so it must report the flags this server
/// was started with, not the defaults.
#[tokio::test]
async fn config_json_reports_the_configured_limits() {
    let mut settings = settings();
    settings.engine.text_bytes_max = 300;
    settings.engine.default_room = "lobby".into();
    settings.engine.history_max = 7;
    settings.engine.rate_limit_burst = 3;
    settings.engine.rate_limit_per_second = 2;
    let server = TestServer::start(settings).await;
    let (code, response) = http_get(&server, "/config.json", &[]).await;
    assert_eq!(code, 200);
    let head = response.to_ascii_lowercase();
    assert!(
        head.contains("content-type: application/json"),
        "{response}"
    );
    assert!(head.contains("cache-control: no-cache"), "{response}");
    let json = response.split("\r\n\r\n").nth(1).expect("body");
    let config: Value = serde_json::from_str(json).expect("config is JSON");
    assert_eq!(config["text_bytes_max"], 300);
    assert_eq!(config["default_room"], "lobby");
    assert_eq!(config["history_max"], 7);
    assert_eq!(config["rate_limit_burst"], 3);
    assert_eq!(config["rate_limit_per_second"], 2);
    assert_eq!(config["nick_chars_max"], 32);
    assert_eq!(config["room_chars_max"], 64);
    let codes = config["close_codes"].as_array().expect("close_codes");
    for code in [1001, 1008, 1013, 4000, 4001, 4003] {
        assert!(codes.contains(&code.into()), "{code} in {codes:?}");
    }
    let reasons = config["leave_reasons"].as_array().expect("leave_reasons");
    for reason in [
        "left", "switched", "evicted", "timeout", "flooding", "kicked",
    ] {
        assert!(reasons.contains(&reason.into()), "{reason} in {reasons:?}");
    }
    assert_eq!(http_post(&server, "/config.json", &[]).await.0, 405);
    server.shutdown().await;
}

#[tokio::test]
async fn a_static_dir_is_served_without_escaping_it() {
    let root = std::env::temp_dir().join(format!("chat-static-{}", std::process::id()));
    let public = root.join("public");
    std::fs::create_dir_all(&public).expect("mkdir");
    std::fs::write(
        public.join("index.html"),
        "<!doctype html><title>custom</title>",
    )
    .expect("write");
    std::fs::write(public.join("app.js"), "console.log(1)").expect("write");
    std::fs::write(root.join("secret.txt"), "do not serve").expect("write");
    let mut settings = settings();
    settings.static_source = chat_server::StaticSource::Dir(public.clone());
    let server = TestServer::start(settings).await;
    let (code, body) = http_get(&server, "/", &[]).await;
    assert_eq!(code, 200);
    assert!(body.contains("custom"));
    let (code, body) = http_get(&server, "/app.js", &[]).await;
    assert_eq!(code, 200);
    assert!(body
        .to_ascii_lowercase()
        .contains("content-type: text/javascript"));
    for escape in [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/..%2fsecret.txt",
        "//etc/passwd",
    ] {
        let (code, body) = http_get(&server, escape, &[]).await;
        assert!(code == 404 || code == 400, "{escape}: {code}");
        assert!(
            !body.contains("do not serve"),
            "{escape} escaped the static dir"
        );
    }
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(root);
}

#[tokio::test]
async fn an_unreadable_static_dir_fails_startup_naming_the_path() {
    let mut settings = settings();
    settings.static_source = chat_server::StaticSource::Dir("/definitely/not/here".into());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let error = chat_server::run(listener, settings, std::future::pending())
        .await
        .expect_err("must fail");
    assert!(
        error.to_string().contains("/definitely/not/here"),
        "{error}"
    );
}

#[tokio::test]
async fn cross_site_upgrades_are_refused_unless_allowed() {
    let mut settings = settings();
    settings.allowed_origins = vec!["https://app.example".into()];
    let server = TestServer::start(settings).await;
    let same = format!("Origin: http://{}\r\n", server.addr);
    for (headers, expected) in [
        ("", "HTTP/1.1 101"),
        (same.as_str(), "HTTP/1.1 101"),
        ("Origin: https://app.example\r\n", "HTTP/1.1 101"),
        ("Origin: https://evil.example\r\n", "HTTP/1.1 403"),
    ] {
        let (_ws, status) = RawWs::open(&server, headers).await;
        assert!(status.starts_with(expected), "{headers:?}: {status}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn past_max_connections_upgrades_get_503_and_the_others_are_fine() {
    let mut settings = settings();
    settings.max_connections = 2;
    settings.engine.clients_max = 2;
    let server = TestServer::start(settings).await;
    let (mut ann, _) = Client::join(&server, "?nick=ann").await;
    let (_bob, _) = Client::join(&server, "?nick=bob").await;
    let (_ws, status) = RawWs::open(&server, "").await;
    assert!(status.starts_with("HTTP/1.1 503"), "{status}");
    ann.recv_type("join").await;
    ann.send("still fine").await;
    assert_eq!(ann.recv_type("message").await["text"], "still fine");
    server.shutdown().await;
}

#[tokio::test]
async fn a_bad_handshake_gets_400_with_the_reason() {
    let server = TestServer::start(settings()).await;
    let (code, body) = http_get(&server, "/ws", &[]).await;
    assert_eq!(code, 400);
    assert!(body.contains("bad handshake"), "{body}");
    let (code, body) = http_get(
        &server,
        "/ws?since=yesterday",
        &[
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("Sec-WebSocket-Version", "13"),
        ],
    )
    .await;
    assert_eq!(code, 400);
    assert!(body.contains("since"), "{body}");
    server.shutdown().await;
}
