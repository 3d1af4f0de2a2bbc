//! Nodes sharing one real Redis (`--broker`), each a `chat_server::run` in this process: a
//! message from node A reaches node B with the same `seq`; what waits for a publish in flight
//! goes as one batch; bursts from senders on three nodes keep one order and each sender's; a
//! client that reconnects to the other node with `since` gets exactly what it missed; a dropped
//! pub/sub subscription is repaired from the room's stream; Redis stopped refuses messages with
//! `unavailable` (the connection stays) and `/readyz` answers 503, and Redis back (empty: no
//! persistence) serves again under a new epoch, members told `recovered: false`.
//!
//! Nicknames are unique per room across nodes: two nodes racing for one give it to exactly one,
//! and a join Redis cannot confirm is refused with `unavailable`. Typing and an operator's kick
//! reach the node the member is on.
//!
//! With the real binaries: `kill -9` of one node leaves the other serving, and the killed node's
//! client resumes on the other with `since`, recovering everything, under its own name once the
//! dead node's claim on it expires (`--presence-ttl`).
//!
//! Each test starts its own `redis-server` on a free loopback port (the Debian package; CI stage
//! "redis"), so `cargo test` skips them (`#[ignore]`).

mod common;

use std::time::Duration;

use chat_server::broker::redis::process::RedisServer;
use common::binary::{recv, Binary};
use common::{http_get, http_post, settings, status_json, Client, TestServer, WAIT};
use futures_util::SinkExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

async fn node(redis: &RedisServer, name: &str) -> TestServer {
    node_with(redis, name, |_| {}).await
}

/// A node as [`node`] makes it, with `tweak` applied to its settings first.
async fn node_with(
    redis: &RedisServer,
    name: &str,
    tweak: impl FnOnce(&mut chat_server::settings::Settings),
) -> TestServer {
    let mut settings = settings();
    settings.epoch = Some(format!("node-{name}"));
    settings.broker = Some(redis.url());
    tweak(&mut settings);
    TestServer::start(settings).await
}

/// Nodes `a` and `b` on `redis`, each answering `/readyz` with 200.
async fn ready_pair(redis: &RedisServer) -> (TestServer, TestServer) {
    let (a, b) = (node(redis, "a").await, node(redis, "b").await);
    ready_is(&a, 200).await;
    ready_is(&b, 200).await;
    (a, b)
}

/// `ann` in `lobby` on node `a` and `bob` in it on node `b`, their welcomes read.
async fn ann_on_a_bob_on_b(a: &TestServer, b: &TestServer) -> (Client, Client) {
    let (ann, _) = Client::join(a, "?nick=ann&room=lobby").await;
    let (bob, _) = Client::join(b, "?nick=bob&room=lobby").await;
    (ann, bob)
}

/// A connection of its own to `redis`, for the commands a test sends it (`CLIENT ...`).
async fn admin(redis: &RedisServer) -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(redis.url()).unwrap();
    client.get_multiplexed_async_connection().await.unwrap()
}

/// The next chat message `client` gets, skipping welcomes (a room that takes the broker's epoch
/// welcomes its members again) and presence.
async fn message(client: &mut Client) -> Value {
    loop {
        let frame = client.recv().await;
        if frame["type"] == "message" {
            return frame;
        }
        assert!(
            matches!(
                frame["type"].as_str(),
                Some("welcome" | "join" | "leave" | "presence")
            ),
            "unexpected {frame}"
        );
    }
}

/// The next frame of `kind` `client` gets, skipping presence (members come and go on every
/// node).
async fn next_of(client: &mut Client, kind: &str) -> Value {
    loop {
        let frame = client.recv().await;
        if frame["type"] == kind {
            return frame;
        }
        assert!(
            matches!(
                frame["type"].as_str(),
                Some("join" | "leave" | "nick" | "presence")
            ),
            "unexpected {frame} before a {kind}"
        );
    }
}

/// What a member believes its room holds: its welcome, then every notice applied in order.
#[derive(Debug, Default)]
struct View {
    names: std::collections::BTreeSet<String>,
    count: Option<u64>,
    /// Every `leave` seen, as (nick, reason).
    leaves: Vec<(String, String)>,
}

impl View {
    fn apply(&mut self, frame: &Value) {
        let name = |v: &Value| v.as_str().expect("a name").to_owned();
        let names = |v: &Value| -> Vec<String> {
            v.as_array()
                .map_or_else(Vec::new, |a| a.iter().map(name).collect())
        };
        match frame["type"].as_str() {
            Some("welcome") => {
                self.names = names(&frame["users"]).into_iter().collect();
                self.count = frame["user_count"].as_u64();
            }
            Some("join") => {
                self.names.insert(name(&frame["nick"]));
                self.count = self.count.map(|c| c + 1);
            }
            Some("leave") => {
                self.names.remove(&name(&frame["nick"]));
                self.count = self.count.map(|c| c.saturating_sub(1));
                self.leaves
                    .push((name(&frame["nick"]), name(&frame["reason"])));
            }
            Some("nick") => {
                self.names.remove(&name(&frame["old"]));
                self.names.insert(name(&frame["nick"]));
            }
            Some("presence") => {
                for gone in names(&frame["left"]) {
                    self.names.remove(&gone);
                }
                for renamed in frame["renamed"].as_array().into_iter().flatten() {
                    self.names.remove(&name(&renamed["old"]));
                    self.names.insert(name(&renamed["nick"]));
                }
                self.names.extend(names(&frame["joined"]));
                self.count = frame["user_count"].as_u64();
            }
            _ => {}
        }
    }

    /// Reads `client`'s frames into the view until it lists exactly `names` (and, in a large
    /// room, counts them).
    async fn until(&mut self, client: &mut Client, names: &[&str]) {
        let want: std::collections::BTreeSet<String> =
            names.iter().map(|n| n.to_string()).collect();
        let deadline = tokio::time::Instant::now() + WAIT;
        while self.names != want || self.count.is_some_and(|c| c != want.len() as u64) {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let frame = tokio::time::timeout(left, client.recv())
                .await
                .unwrap_or_else(|_| panic!("{self:?} never came to {want:?}"));
            self.apply(&frame);
        }
    }
}

/// Waits until `server`'s `/readyz` answers `status`.
async fn ready_is(server: &TestServer, status: u16) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if http_get(server, "/readyz", &[]).await.0 == status {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/readyz never answered {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server (CI stage: redis)"]
async fn a_message_from_one_node_reaches_the_other_with_the_same_seq() {
    let redis = RedisServer::spawn();
    let (a, b) = ready_pair(&redis).await;
    let (mut ann, mut bob) = ann_on_a_bob_on_b(&a, &b).await;
    for text in ["one", "two", "three"] {
        ann.send(text).await;
    }
    for text in ["one", "two", "three"] {
        let mine = message(&mut ann).await;
        let theirs = message(&mut bob).await;
        assert_eq!(mine, theirs, "the same frame on both nodes");
        assert_eq!(mine["text"], text);
    }
    bob.send("back").await;
    let (mine, theirs) = (message(&mut bob).await, message(&mut ann).await);
    assert_eq!(mine, theirs);
    assert_eq!(mine["seq"], 4);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server (CI stage: redis)"]
async fn reconnecting_to_the_other_node_with_since_recovers_exactly_what_was_missed() {
    let redis = RedisServer::spawn();
    let (a, b) = ready_pair(&redis).await;
    let (mut ann, _) = Client::join(&a, "?nick=ann&room=lobby").await;
    let (mut cat, _) = Client::join(&a, "?nick=cat&room=lobby").await;
    ann.send("one").await;
    // cat's last welcome (the room taking the broker's epoch) names the epoch to resume in.
    let mut epoch = None;
    loop {
        let frame = cat.recv().await;
        if frame["type"] == "welcome" {
            epoch = Some(frame["epoch"].as_str().unwrap().to_owned());
        }
        if frame["type"] == "message" {
            assert_eq!(frame["seq"], 1);
            break;
        }
    }
    let epoch = epoch.expect("re-welcomed in the broker's epoch");
    drop(cat);
    for text in ["two", "three"] {
        ann.send(text).await;
    }
    assert_eq!(message(&mut ann).await["seq"], 1);
    assert_eq!(message(&mut ann).await["seq"], 2);
    assert_eq!(message(&mut ann).await["seq"], 3);
    // Node B followed the room through the broker, so it holds what cat missed.
    let (_cat, welcome) =
        Client::join(&b, &format!("?nick=cat&room=lobby&since=1&epoch={epoch}")).await;
    assert_eq!(welcome["recovered"], true, "{welcome}");
    assert_eq!(welcome["epoch"], epoch.as_str());
    let texts: Vec<&str> = (welcome["history"].as_array().unwrap().iter())
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["two", "three"]);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server (CI stage: redis)"]
async fn a_dropped_subscription_is_repaired_from_the_stream() {
    let redis = RedisServer::spawn();
    let (a, b) = ready_pair(&redis).await;
    let (mut ann, mut bob) = ann_on_a_bob_on_b(&a, &b).await;
    let mut admin = admin(&redis).await;
    for round in 0..20 {
        ann.send(&format!("m{round}")).await;
        if round % 5 == 2 {
            // Every node's subscription drops: what is published meanwhile is lost on pub/sub.
            let _: i64 = redis::cmd("CLIENT")
                .arg("KILL")
                .arg("TYPE")
                .arg("pubsub")
                .query_async(&mut admin)
                .await
                .unwrap();
        }
    }
    for round in 0..20 {
        let got = message(&mut bob).await;
        assert_eq!(got["text"], format!("m{round}"), "{got}");
        assert_eq!(got["seq"], round + 1);
    }
    let _ = message(&mut ann).await;
    a.shutdown().await;
    b.shutdown().await;
}

/// Waits until `server`'s `/status` counts `count` messages waiting for the broker.
async fn uncommitted_is(server: &TestServer, count: u64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let status = status_json(server).await;
        if status["uncommitted"] == count {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never {count} uncommitted: {status}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `server`'s `/status` figures of its broker task.
async fn broker_figures(server: &TestServer) -> Value {
    status_json(server).await["broker"].clone()
}

/// What a room asks while its publish is out goes as one batch when the answer comes: Redis
/// holds writes (`CLIENT PAUSE ... WRITE`), the first message waits in it, the other 39 wait on
/// the node, and once all 40 are there Redis goes on and they take one call; every member still
/// gets all 40 in order. (The pause ends when the node holds all 40, not after a set time: on a
/// busy machine reading 40 messages once took longer than a 1 s pause, and a third call.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server (CI stage: redis)"]
async fn messages_that_wait_for_a_publish_in_flight_go_as_one_batch() {
    let redis = RedisServer::spawn();
    let (a, b) = ready_pair(&redis).await;
    let (mut ann, mut bob) = ann_on_a_bob_on_b(&a, &b).await;
    let mut admin = admin(&redis).await;
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(WAIT.as_millis() as u64)
        .arg("WRITE")
        .query_async(&mut admin)
        .await
        .unwrap();
    for n in 0..40 {
        ann.send(&format!("m{n}")).await;
    }
    uncommitted_is(&a, 40).await;
    let _: () = redis::cmd("CLIENT")
        .arg("UNPAUSE")
        .query_async(&mut admin)
        .await
        .unwrap();
    for n in 0..40 {
        let got = message(&mut bob).await;
        assert_eq!(
            (got["seq"].as_u64(), got["text"].as_str()),
            (Some(n + 1), Some(format!("m{n}").as_str()))
        );
        assert_eq!(message(&mut ann).await, got, "the same frame on both nodes");
    }
    let figures = broker_figures(&a).await;
    assert_eq!(figures["messages_published"], 40, "{figures}");
    assert_eq!(
        figures["publish_calls"], 2,
        "one alone, then one batch: {figures}"
    );
    assert_eq!(figures["subscribed"], true);
    a.shutdown().await;
    b.shutdown().await;
}

/// Three nodes, senders on each at once, each sending as fast as it can: every member on every
/// node gets one sequence (seq 1 up, no gap, the same frames), in which each sender's messages
/// keep the order it sent them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server (CI stage: redis)"]
async fn bursts_from_three_nodes_keep_one_order_and_each_senders_order() {
    const EACH: usize = 50;
    let redis = RedisServer::spawn();
    let nodes = [
        node(&redis, "a").await,
        node(&redis, "b").await,
        node(&redis, "c").await,
    ];
    for n in &nodes {
        ready_is(n, 200).await;
    }
    let mut senders = Vec::new();
    let nicks = ["ann", "bea", "cal", "dot", "eli", "fox"];
    for (i, nick) in nicks.iter().enumerate() {
        let server = &nodes[i % nodes.len()];
        let query = format!("?nick={nick}&room=lobby");
        senders.push((*nick, Client::join(server, &query).await.0));
    }
    let mut listeners = Vec::new();
    for (i, server) in nodes.iter().enumerate() {
        let query = format!("?nick=ear{i}&room=lobby");
        listeners.push(Client::join(server, &query).await.0);
    }
    let bursts = senders.iter_mut().map(|(nick, client)| async move {
        for n in 0..EACH {
            client.send(&format!("{nick} {n}")).await;
        }
    });
    futures_util::future::join_all(bursts).await;
    let total = EACH * senders.len();
    let mut seen = Vec::new();
    for _ in 0..total {
        let got = message(&mut listeners[0]).await;
        for other in &mut listeners[1..] {
            assert_eq!(message(other).await, got, "the same frame on every node");
        }
        seen.push(got);
    }
    for (i, got) in seen.iter().enumerate() {
        assert_eq!(got["seq"], i + 1, "gap-free from 1: {got}");
    }
    for (nick, _) in &senders {
        let theirs: Vec<String> = (seen.iter())
            .filter(|m| m["nick"] == *nick)
            .map(|m| m["text"].as_str().unwrap().to_owned())
            .collect();
        let sent: Vec<String> = (0..EACH).map(|n| format!("{nick} {n}")).collect();
        assert_eq!(theirs, sent, "{nick}'s messages in the order sent");
    }
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server (CI stage: redis)"]
async fn redis_down_refuses_with_unavailable_and_redis_back_empty_is_a_new_epoch() {
    let mut redis = RedisServer::spawn();
    let a = node(&redis, "a").await;
    ready_is(&a, 200).await;
    let (mut ann, _) = Client::join(&a, "?nick=ann&room=lobby").await;
    ann.send("one").await;
    assert_eq!(message(&mut ann).await["seq"], 1);
    redis.stop();
    ready_is(&a, 503).await;
    ann.send("lost?").await;
    let error = ann.recv_type("error").await;
    assert_eq!(error["code"], "unavailable", "{error}");
    // Back, but empty (no persistence): the room starts a new epoch, and ann is told.
    redis.start();
    ready_is(&a, 200).await;
    ann.send("two").await;
    let mut rewelcomed = false;
    loop {
        let frame = ann.recv().await;
        match frame["type"].as_str() {
            Some("welcome") => {
                assert_eq!(frame["recovered"], false);
                rewelcomed = true;
            }
            Some("message") => {
                assert_eq!(
                    (frame["seq"].as_u64(), frame["text"].as_str()),
                    (Some(1), Some("two"))
                );
                break;
            }
            _ => {}
        }
    }
    assert!(rewelcomed, "a new epoch is announced with a welcome");
    a.shutdown().await;
}

/// Connects to `server` and reads the first frame: a welcome, or the join's error.
async fn first_frame(server: &TestServer, query: &str) -> (Client, Value) {
    let mut client = Client::connect(server, query).await;
    let first = client.recv().await;
    (client, first)
}

/// Two nodes racing for one nickname in one room give it to exactly one, the other told
/// `nick_taken`; names alike (by case here) are one name across nodes too; the name is free
/// again once its holder leaves; and guests of the two nodes get different names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server (CI stage: redis)"]
async fn a_nickname_race_between_two_nodes_gives_it_to_exactly_one() {
    let redis = RedisServer::spawn();
    let (a, b) = ready_pair(&redis).await;
    let mut holders = Vec::new();
    for round in 0..20 {
        let (on_a, on_b) = (
            format!("?nick=racer{round}&room=lobby"),
            format!("?nick=RACER{round}&room=lobby"),
        );
        let ((ca, fa), (cb, fb)) = tokio::join!(first_frame(&a, &on_a), first_frame(&b, &on_b));
        let welcomed = [&fa, &fb].map(|f| f["type"] == "welcome");
        assert_eq!(
            welcomed.iter().filter(|&&w| w).count(),
            1,
            "round {round}: {fa} / {fb}"
        );
        let (winner, loser) = if welcomed[0] {
            ((ca, &a), (fb, &b))
        } else {
            ((cb, &b), (fa, &a))
        };
        assert_eq!(
            (loser.0["type"].as_str(), loser.0["code"].as_str()),
            (Some("error"), Some("nick_taken")),
            "{}",
            loser.0
        );
        holders.push((winner.0, loser.1, round));
    }
    // Every holder leaves: each name is then free for the node that lost it.
    for (holder, other, round) in holders.into_iter().take(3) {
        drop(holder);
        let query = format!("?nick=racer{round}&room=lobby");
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let (_client, first) = first_frame(other, &query).await;
            if first["type"] == "welcome" {
                break;
            }
            assert_eq!(first["code"], "nick_taken", "{first}");
            assert!(
                tokio::time::Instant::now() < deadline,
                "racer{round} never freed"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let (_ga, wa) = Client::join(&a, "?room=lobby").await;
    let (_gb, wb) = Client::join(&b, "?room=lobby").await;
    assert_ne!(wa["nick"], wb["nick"], "guests of two nodes");
    a.shutdown().await;
    b.shutdown().await;
}

/// A node renews its members' claims (every third of `--presence-ttl`), so a name in use stays
/// taken however long it is held, and is free as soon as its holder leaves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server (CI stage: redis)"]
async fn a_living_node_keeps_its_names_past_the_ttl() {
    let redis = RedisServer::spawn();
    let short = |name| {
        node_with(&redis, name, |s| {
            s.presence_ttl = Duration::from_millis(600)
        })
    };
    let (a, b) = (short("a").await, short("b").await);
    ready_is(&a, 200).await;
    ready_is(&b, 200).await;
    let (ann, _) = Client::join(&a, "?nick=ann&room=lobby").await;
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(600)).await;
        let (_, first) = first_frame(&b, "?nick=ann&room=lobby").await;
        assert_eq!(first["code"], "nick_taken", "{first}");
    }
    drop(ann);
    let deadline = tokio::time::Instant::now() + WAIT;
    while first_frame(&b, "?nick=ann&room=lobby").await.1["type"] != "welcome" {
        assert!(tokio::time::Instant::now() < deadline, "never freed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    a.shutdown().await;
    b.shutdown().await;
}

/// Typing on one node shows on the other. An operator's kick on node A of a member of node B is
/// sent to B (`202`), which closes it with 4003; a name nobody holds is `404` on every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server (CI stage: redis)"]
async fn typing_and_an_operators_kick_reach_the_other_node() {
    let redis = RedisServer::spawn();
    let with_token = |name| node_with(&redis, name, |s| s.admin_token = Some("tok".into()));
    let (a, b) = (with_token("a").await, with_token("b").await);
    ready_is(&a, 200).await;
    ready_is(&b, 200).await;
    let (mut ann, mut bob) = ann_on_a_bob_on_b(&a, &b).await;
    ann.send_json(serde_json::json!({"type": "typing"})).await;
    let typing = next_of(&mut bob, "typing").await;
    assert_eq!(
        (typing["nick"].as_str(), typing["room"].as_str()),
        (Some("ann"), Some("lobby"))
    );
    bob.send_json(serde_json::json!({"type": "typing"})).await;
    assert_eq!(next_of(&mut ann, "typing").await["nick"], "bob");

    let auth = [("Authorization", "Bearer tok")];
    let (code, body) = http_post(&a, "/admin/kick?room=lobby&nick=BOB", &auth).await;
    assert_eq!(code, 202, "{body}");
    assert_eq!(bob.recv_close().await.0, 4003);
    for node in [&a, &b] {
        let (code, body) = http_post(node, "/admin/kick?room=lobby&nick=nobody", &auth).await;
        assert_eq!(code, 404, "{body}");
    }
    // Still a plain kick where the member is.
    let (code, _) = http_post(&a, "/admin/kick?room=lobby&nick=ann", &auth).await;
    assert_eq!(code, 204);
    assert_eq!(ann.recv_close().await.0, 4003);
    a.shutdown().await;
    b.shutdown().await;
}

/// A room's members on every node are its members everywhere: welcomes and `who` list them and
/// count them, and joins, renames and leaves on one node reach the other's members.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server (CI stage: redis)"]
async fn presence_covers_the_members_on_every_node() {
    let redis = RedisServer::spawn();
    let (a, b) = ready_pair(&redis).await;
    let (mut ann, first) = Client::join(&a, "?nick=ann&room=lobby").await;
    let mut anns = View::default();
    anns.apply(&first);
    let (mut bob, first) = Client::join(&b, "?nick=bob&room=lobby").await;
    let mut bobs = View::default();
    bobs.apply(&first);
    anns.until(&mut ann, &["ann", "bob"]).await;
    bobs.until(&mut bob, &["ann", "bob"]).await;

    // A newcomer's welcome lists and counts both nodes' members.
    // ann and bob each saw the other, so both nodes know both: a welcome lists them.
    let (mut cid, welcome) = Client::join(&b, "?nick=cid&room=lobby").await;
    assert_eq!(welcome["user_count"], 3, "{welcome}");
    let users: Vec<&str> = (welcome["users"].as_array().unwrap().iter())
        .map(|u| u.as_str().unwrap())
        .collect();
    assert_eq!(users, ["ann", "bob", "cid"]);
    cid.send_json(serde_json::json!({"type": "who"})).await;
    let page = next_of(&mut cid, "users").await;
    assert_eq!(
        (
            page["user_count"].as_u64(),
            page["users"].as_array().map(Vec::len)
        ),
        (Some(3), Some(3))
    );

    ann.send_json(serde_json::json!({"type": "nick", "nick": "anna"}))
        .await;
    bobs.until(&mut bob, &["anna", "bob", "cid"]).await;
    anns.until(&mut ann, &["anna", "bob", "cid"]).await;
    // A name held on the other node is taken.
    cid.send_json(serde_json::json!({"type": "nick", "nick": "ANNA"}))
        .await;
    assert_eq!(next_of(&mut cid, "error").await["code"], "nick_taken");
    drop(ann);
    bobs.until(&mut bob, &["bob", "cid"]).await;
    assert_eq!(bobs.leaves, [("anna".to_owned(), "left".to_owned())]);
    a.shutdown().await;
    b.shutdown().await;
}

/// Past `--presence-notify-max`, counted over every node, a room coalesces its notices into
/// `presence` frames on every node, and their count covers both nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server (CI stage: redis)"]
async fn the_large_room_rules_count_the_members_of_every_node() {
    let redis = RedisServer::spawn();
    let tiny = |s: &mut chat_server::settings::Settings| {
        s.engine.presence_notify_max = 2;
        s.engine.presence_interval = Duration::from_millis(200);
    };
    let (a, b) = (
        node_with(&redis, "a", tiny).await,
        node_with(&redis, "b", tiny).await,
    );
    ready_is(&a, 200).await;
    ready_is(&b, 200).await;
    let (mut ann, first) = Client::join(&a, "?nick=ann&room=hall").await;
    let mut anns = View::default();
    anns.apply(&first);
    let (_bob, _) = Client::join(&b, "?nick=bob&room=hall").await;
    anns.until(&mut ann, &["ann", "bob"]).await;
    let (_cid, _) = Client::join(&b, "?nick=cid&room=hall").await;
    // A third member in all: the join comes in a presence frame that counts three.
    let presence = next_of(&mut ann, "presence").await;
    assert_eq!(presence["user_count"], 3, "{presence}");
    anns.apply(&presence);
    anns.until(&mut ann, &["ann", "bob", "cid"]).await;
    a.shutdown().await;
    b.shutdown().await;
}

/// Redis restarted empty forgets every node's seats: each node tells all of its own again, and
/// a newcomer still sees the members of both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server (CI stage: redis)"]
async fn presence_survives_redis_restarted_empty() {
    let mut redis = RedisServer::spawn();
    let (a, b) = ready_pair(&redis).await;
    let (mut ann, first) = Client::join(&a, "?nick=ann&room=lobby").await;
    let mut anns = View::default();
    anns.apply(&first);
    let (_bob, _) = Client::join(&b, "?nick=bob&room=lobby").await;
    anns.until(&mut ann, &["ann", "bob"]).await;
    redis.stop();
    ready_is(&a, 503).await;
    redis.start();
    ready_is(&a, 200).await;
    ready_is(&b, 200).await;
    // The newcomer on b may come before a's seats are told again: then ann joins its view.
    let (mut cid, first) = Client::join(&b, "?nick=cid&room=lobby").await;
    let mut cids = View::default();
    cids.apply(&first);
    cids.until(&mut cid, &["ann", "bob", "cid"]).await;
    anns.until(&mut ann, &["ann", "bob", "cid"]).await;
    a.shutdown().await;
    b.shutdown().await;
}

/// With Redis away a join cannot be confirmed: it is refused with `unavailable` and the
/// connection stays, and the same join once Redis is back is welcomed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server (CI stage: redis)"]
async fn a_join_while_redis_is_down_is_refused_with_unavailable_and_works_once_it_is_back() {
    let mut redis = RedisServer::spawn();
    let a = node(&redis, "a").await;
    ready_is(&a, 200).await;
    redis.stop();
    ready_is(&a, 503).await;
    let (mut cid, first) = first_frame(&a, "?nick=cid&room=lobby").await;
    assert_eq!(first["code"], "unavailable", "{first}");
    redis.start();
    ready_is(&a, 200).await;
    cid.send_json(serde_json::json!({"type": "join", "nick": "cid", "room": "lobby"}))
        .await;
    let welcome = cid.recv_type("welcome").await;
    assert_eq!(welcome["nick"], "cid");
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server (CI stage: redis)"]
async fn a_node_that_cannot_reach_redis_at_start_says_so() {
    let mut redis = RedisServer::spawn();
    redis.stop();
    let mut settings = settings();
    settings.broker = Some(redis.url());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let result = chat_server::run(listener, settings, std::future::pending()).await;
    let error = result.expect_err("no start without the broker");
    assert!(error.to_string().contains("broker"), "{error}");
}

/// Sends `text` on `ws` and waits for its own copy (its acknowledgement); returns the frame.
async fn say(ws: &mut common::Ws, text: &str) -> Value {
    ws.send(Message::text(text)).await.expect("send");
    loop {
        let frame = recv(ws).await;
        if frame["type"] == "message" && frame["text"] == text {
            return frame;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server (CI stage: redis)"]
async fn a_node_killed_with_sigkill_loses_nothing_its_clients_resume_on_the_other() {
    let redis = RedisServer::spawn();
    let url = redis.url();
    let flags = ["--broker", url.as_str(), "--presence-ttl", "2s"];
    let (a, b) = (Binary::start(&flags), Binary::start(&flags));
    let (mut ann, _) = a.join("nick=ann&room=hall").await;
    let (mut bob, _) = b.join("nick=bob&room=hall").await;
    let first = say(&mut ann, "before").await;
    let epoch = loop {
        // bob's copy; the room took the broker's epoch with a welcome just before it.
        let frame = recv(&mut bob).await;
        if frame["type"] == "message" {
            assert_eq!(frame, first);
            break None;
        }
        if frame["type"] == "welcome" {
            let epoch = frame["epoch"].as_str().unwrap().to_owned();
            let next = recv(&mut bob).await;
            assert_eq!(next, first);
            break Some(epoch);
        }
    }
    .expect("re-welcomed in the broker's epoch");
    a.kill();
    let killed = tokio::time::Instant::now();
    drop(ann);
    // Within the ttl (give or take a busy machine), ann leaves bob's view, with `timeout`.
    let leave = loop {
        let frame = recv(&mut bob).await;
        if frame["type"] == "leave" {
            break frame;
        }
    };
    assert_eq!(
        (leave["nick"].as_str(), leave["reason"].as_str()),
        (Some("ann"), Some("timeout"))
    );
    assert!(killed.elapsed() < Duration::from_secs(2) + WAIT);
    // Node B goes on; what it orders now, ann missed.
    let missed = say(&mut bob, "while ann was away").await;
    assert_eq!(missed["seq"], first["seq"].as_u64().unwrap() + 1);
    let since = first["seq"].as_u64().unwrap();
    // The dead node's claim on "ann" holds until it expires (--presence-ttl): until then the
    // name is taken, after it ann is back.
    let query = format!("nick=ann&room=hall&since={since}&epoch={epoch}");
    let freed_by = tokio::time::Instant::now() + Duration::from_secs(2) + WAIT;
    let (_ann, welcome) = loop {
        let (ws, first) = b.open(&query).await;
        if first["type"] == "welcome" {
            break (ws, first);
        }
        assert_eq!(first["code"], "nick_taken", "{first}");
        assert!(
            tokio::time::Instant::now() < freed_by,
            "the dead node's claim never expired"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(welcome["recovered"], true, "{welcome}");
    let texts: Vec<&str> = (welcome["history"].as_array().unwrap().iter())
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["while ann was away"]);
    // Once: bob's next presence news is ann's return, not a second leave.
    let next = loop {
        let frame = recv(&mut bob).await;
        if matches!(frame["type"].as_str(), Some("join" | "leave")) {
            break frame;
        }
    };
    assert_eq!(
        (next["type"].as_str(), next["nick"].as_str()),
        (Some("join"), Some("ann"))
    );
    assert!(b.terminate().success());
}
