//! Tests against a real `redis-server` (each spawns its own, see [`super::process`]). They are
//! `#[ignore]`d so a plain `cargo test` does not need Redis; `.ci/redis.sh` runs them.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::join_all;
use tokio::sync::mpsc;

use super::process::RedisServer;
use super::*;

const WAIT: Duration = Duration::from_secs(5);

fn options() -> BrokerOptions {
    BrokerOptions {
        retention: 1000,
        op_ttl: Duration::from_secs(60),
        call_timeout: Duration::from_millis(500),
    }
}

async fn broker(server: &RedisServer) -> RedisBroker {
    RedisBroker::connect(&server.url(), options())
        .await
        .expect("connect")
}

/// Waits until `broker` answers again (the manager reconnects on the first call after a drop).
async fn until_reachable(broker: &RedisBroker) {
    let deadline = Instant::now() + WAIT;
    while let Err(e) = broker.ping().await {
        assert!(Instant::now() < deadline, "redis still unreachable: {e}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn next(rx: &mut mpsc::Receiver<Event>) -> Event {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("no event within 5 s")
        .expect("subscription task ended")
}

async fn delivery(rx: &mut mpsc::Receiver<Event>) -> Ordered {
    match next(rx).await {
        Event::Delivery(o) => o,
        other => panic!("expected a delivery, got {other:?}"),
    }
}

async fn raw(broker: &RedisBroker, cmd: &::redis::Cmd) -> ::redis::Value {
    cmd.query_async(&mut broker.connection())
        .await
        .expect("raw command")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server (CI stage: redis)"]
async fn publish_assigns_gap_free_seqs_from_one() {
    let server = RedisServer::spawn();
    let b = broker(&server).await;
    for n in 1..=50u64 {
        let p = b
            .publish("lobby", format!("m{n}").as_bytes(), &format!("op{n}"), "E1")
            .await
            .unwrap();
        assert_eq!(
            p,
            Published {
                epoch: "E1".into(),
                seq: n,
                fresh: true
            }
        );
    }
    let state = b.state("lobby", "ignored").await.unwrap();
    assert_eq!((state.epoch.as_str(), state.seq), ("E1", 50));
    let range = b.range("lobby", 0, 100).await.unwrap().unwrap();
    assert!(range.complete);
    assert_eq!(range.seq, 50);
    let want: Vec<(u64, Bytes)> = (1..=50)
        .map(|n| (n, Bytes::from(format!("m{n}"))))
        .collect();
    assert_eq!(range.messages, want);
    // `limit` bounds the page, oldest first.
    let page = b.range("lobby", 10, 3).await.unwrap().unwrap();
    assert_eq!(
        page.messages.iter().map(|m| m.0).collect::<Vec<_>>(),
        [11, 12, 13]
    );
}

/// Two nodes (two connections) publishing 200 messages each, all in flight at once, to one room:
/// the seqs are exactly 1..=400 and the stream holds each body under its own seq.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server (CI stage: redis)"]
async fn concurrent_brokers_get_distinct_gap_free_seqs() {
    let server = RedisServer::spawn();
    let nodes = [broker(&server).await, broker(&server).await];
    let calls = nodes.iter().enumerate().flat_map(|(node, b)| {
        (0..200).map(move |i| async move {
            let body = format!("n{node}-{i}");
            let p = b
                .publish("race", body.as_bytes(), &body, "E")
                .await
                .unwrap();
            (p.seq, body)
        })
    });
    let mut got = join_all(calls).await;
    got.sort();
    assert_eq!(
        got.iter().map(|g| g.0).collect::<Vec<_>>(),
        (1..=400).collect::<Vec<u64>>()
    );
    let range = nodes[0].range("race", 0, 1000).await.unwrap().unwrap();
    let stored: Vec<(u64, String)> = range
        .messages
        .into_iter()
        .map(|(seq, body)| (seq, String::from_utf8(body.to_vec()).unwrap()))
        .collect();
    assert_eq!(stored, got);
}

/// A publish whose reply was lost is retried with the same idem key: same epoch and seq back,
/// and no second stream entry or delivery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server (CI stage: redis)"]
async fn retried_publish_returns_the_same_seq_and_writes_nothing() {
    let server = RedisServer::spawn();
    let b = broker(&server).await;
    let (mut rx, _task) = subscribe(&server.url(), 16).unwrap();
    assert_eq!(next(&mut rx).await, Event::Subscribed);
    let first = b.publish("r", b"hello", "op-1", "E1").await.unwrap();
    let retry = b.publish("r", b"hello again", "op-1", "E2").await.unwrap();
    assert_eq!(
        first,
        Published {
            epoch: "E1".into(),
            seq: 1,
            fresh: true
        }
    );
    assert_eq!(
        retry,
        Published {
            epoch: "E1".into(),
            seq: 1,
            fresh: false
        }
    );
    let second = b.publish("r", b"next", "op-2", "E1").await.unwrap();
    assert_eq!(second.seq, 2);
    let range = b.range("r", 0, 10).await.unwrap().unwrap();
    assert_eq!(
        range.messages,
        [
            (1, Bytes::from_static(b"hello")),
            (2, Bytes::from_static(b"next"))
        ]
    );
    assert_eq!(delivery(&mut rx).await.seq, 1);
    let d = delivery(&mut rx).await;
    assert_eq!(
        (d.seq, &d.body[..]),
        (2, &b"next"[..]),
        "the retry published nothing"
    );
}

/// A batch takes consecutive seqs in its order, each message numbered in its own frame and
/// delivered once; retried (its reply lost) with one message more, the first ones keep their
/// seqs and only the new one is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server (CI stage: redis)"]
async fn a_batch_takes_consecutive_seqs_and_its_retry_writes_only_what_is_new() {
    let server = RedisServer::spawn();
    let b = broker(&server).await;
    let (mut rx, _task) = subscribe(&server.url(), 16).unwrap();
    assert_eq!(next(&mut rx).await, Event::Subscribed);
    b.publish("r", b"alone", "op-0", "E1").await.unwrap();
    let m = |idem| Numbered {
        head: b"<",
        tail: b">",
        idem,
    };
    let first = b
        .publish_batch("r", &[m("op-1"), m("op-2"), m("op-3")], "E9")
        .await
        .unwrap();
    let seqs = |p: &[Published]| p.iter().map(|p| (p.seq, p.fresh)).collect::<Vec<_>>();
    assert_eq!(seqs(&first), [(2, true), (3, true), (4, true)]);
    assert!(first.iter().all(|p| p.epoch == "E1"), "the room's epoch");
    let retry = b
        .publish_batch("r", &[m("op-2"), m("op-3"), m("op-4")], "E9")
        .await
        .unwrap();
    assert_eq!(seqs(&retry), [(3, false), (4, false), (5, true)]);
    let range = b.range("r", 1, 10).await.unwrap().unwrap();
    let frames: Vec<(u64, &[u8])> = (range.messages.iter())
        .map(|(seq, body)| (*seq, &body[..]))
        .collect();
    assert_eq!(
        frames,
        [(2, &b"<2>"[..]), (3, b"<3>"), (4, b"<4>"), (5, b"<5>")]
    );
    let mut got = Vec::new();
    for _ in 0..5 {
        let d = delivery(&mut rx).await;
        got.push((d.seq, d.body));
    }
    assert_eq!(
        got.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5],
        "each message delivered once"
    );
    assert_eq!(&got[4].1[..], b"<5>");
    assert!(
        matches!(
            b.publish_batch("r", &[], "E9").await,
            Err(BrokerError::InvalidArgument(_))
        ),
        "an empty batch is refused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server (CI stage: redis)"]
async fn retention_trims_and_range_from_before_the_trim_is_incomplete() {
    let server = RedisServer::spawn();
    let b = RedisBroker::connect(
        &server.url(),
        BrokerOptions {
            retention: 5,
            ..options()
        },
    )
    .await
    .unwrap();
    for n in 1..=12u64 {
        b.publish("r", n.to_string().as_bytes(), &n.to_string(), "E")
            .await
            .unwrap();
    }
    let seqs = |r: &Range| r.messages.iter().map(|m| m.0).collect::<Vec<_>>();
    let from0 = b.range("r", 0, 100).await.unwrap().unwrap();
    assert_eq!(
        (seqs(&from0), from0.complete, from0.seq),
        (vec![8, 9, 10, 11, 12], false, 12)
    );
    let from6 = b.range("r", 6, 100).await.unwrap().unwrap();
    assert!(!from6.complete, "seq 7 was trimmed");
    let from7 = b.range("r", 7, 100).await.unwrap().unwrap();
    assert_eq!(
        (seqs(&from7), from7.complete),
        (vec![8, 9, 10, 11, 12], true)
    );
    let top = b.range("r", 12, 100).await.unwrap().unwrap();
    assert_eq!((seqs(&top), top.complete), (vec![], true));
    let page = b.page_before("r", 12, 3).await.unwrap();
    assert_eq!(page.iter().map(|m| m.0).collect::<Vec<_>>(), [9, 10, 11]);
    assert_eq!(&page[0].1[..], b"9");
    assert_eq!(
        b.page_before("r", 8, 5).await.unwrap(),
        vec![],
        "all before 8 was trimmed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server (CI stage: redis)"]
async fn an_empty_redis_after_restart_means_a_new_epoch() {
    let mut server = RedisServer::spawn();
    let b = broker(&server).await;
    assert_eq!(
        b.range("r", 0, 10).await.unwrap(),
        None,
        "no epoch before any use"
    );
    let s = b.state("r", "E1").await.unwrap();
    assert_eq!((s.epoch.as_str(), s.seq), ("E1", 0));
    for _ in 0..3 {
        let p = b
            .publish("r", b"x", &format!("{:?}", Instant::now()), "E2")
            .await
            .unwrap();
        assert_eq!(p.epoch, "E1", "an existing epoch is kept");
    }
    b.publish("other", b"y", "o1", "E1").await.unwrap();
    server.restart();
    until_reachable(&b).await;
    assert_eq!(b.range("r", 3, 10).await.unwrap(), None);
    let s = b.state("r", "E3").await.unwrap();
    assert_eq!((s.epoch.as_str(), s.seq), ("E3", 0));
    let p = b.publish("r", b"z", "after", "E4").await.unwrap();
    assert_eq!((p.epoch.as_str(), p.seq), ("E3", 1));
    let p = b.publish("other", b"y", "o1", "E5").await.unwrap();
    assert_eq!(
        (p.epoch.as_str(), p.seq, p.fresh),
        ("E5", 1, true),
        "the op key was lost too"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server (CI stage: redis)"]
async fn the_subscription_delivers_envelopes_and_skips_malformed_ones() {
    let server = RedisServer::spawn();
    let b = broker(&server).await;
    let (mut rx, _task) = subscribe(&server.url(), 16).unwrap();
    assert_eq!(next(&mut rx).await, Event::Subscribed);
    let body = b"{\"text\":\"line\\none\"}\n\xff";
    b.publish("a", body, "1", "EA").await.unwrap();
    let mut bad = ::redis::cmd("PUBLISH");
    bad.arg(DELIVERIES).arg("c1\nno room\nE\n1\nx");
    raw(&b, &bad).await;
    b.publish("b.2", b"second", "1", "EB").await.unwrap();
    let first = delivery(&mut rx).await;
    assert_eq!(
        first,
        Ordered {
            room: "a".into(),
            epoch: "EA".into(),
            seq: 1,
            body: Bytes::from_static(body)
        }
    );
    let second = delivery(&mut rx).await;
    assert_eq!(
        (second.room.as_str(), second.epoch.as_str(), second.seq),
        ("b.2", "EB", 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server (CI stage: redis)"]
async fn a_killed_subscription_reports_lost_then_subscribed() {
    let server = RedisServer::spawn();
    let b = broker(&server).await;
    let (mut rx, _task) = subscribe(&server.url(), 16).unwrap();
    assert_eq!(next(&mut rx).await, Event::Subscribed);
    let mut kill = ::redis::cmd("CLIENT");
    kill.arg("KILL").arg("TYPE").arg("pubsub");
    assert_eq!(raw(&b, &kill).await, ::redis::Value::Int(1));
    assert_eq!(next(&mut rx).await, Event::Lost);
    assert_eq!(next(&mut rx).await, Event::Subscribed);
    b.publish("r", b"after", "1", "E").await.unwrap();
    assert_eq!(delivery(&mut rx).await.body, Bytes::from_static(b"after"));
}

/// A consumer that does not keep up: the task drops the subscription instead of buffering without
/// bound, and the consumer sees every delivery up to the overflow, then Lost, then Subscribed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server (CI stage: redis)"]
async fn a_slow_consumer_gets_lost_instead_of_an_unbounded_backlog() {
    let server = RedisServer::spawn();
    let b = broker(&server).await;
    let (mut rx, _task) = subscribe(&server.url(), 4).unwrap();
    assert_eq!(next(&mut rx).await, Event::Subscribed);
    for n in 1..=20u64 {
        assert_eq!(
            b.publish("r", b"x", &n.to_string(), "E").await.unwrap().seq,
            n
        );
    }
    let mut seqs = Vec::new();
    loop {
        match next(&mut rx).await {
            Event::Delivery(d) => seqs.push(d.seq),
            Event::Lost => break,
            Event::Subscribed => panic!("subscribed again before lost"),
            Event::Relayed(_) => panic!("nothing was relayed"),
        }
    }
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "in order, no gap"
    );
    assert!(seqs.len() <= 4, "the channel bounds the backlog: {seqs:?}");
    assert_eq!(next(&mut rx).await, Event::Subscribed);
    let p = b.publish("r", b"y", "after", "E").await.unwrap();
    assert_eq!(delivery(&mut rx).await.seq, p.seq);
}

/// Redis down: every call fails with an unavailable error within its timeout (no hang), and the
/// subscription reports the loss; Redis back: calls work again (a new, empty Redis) and the
/// subscription is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server (CI stage: redis)"]
async fn calls_fail_while_redis_is_stopped_and_work_once_it_is_back() {
    let mut server = RedisServer::spawn();
    let b = broker(&server).await;
    let (mut rx, _task) = subscribe(&server.url(), 16).unwrap();
    assert_eq!(next(&mut rx).await, Event::Subscribed);
    b.publish("r", b"x", "1", "E1").await.unwrap();
    assert_eq!(delivery(&mut rx).await.seq, 1);
    server.stop();
    assert_eq!(next(&mut rx).await, Event::Lost);
    for _ in 0..3 {
        let started = Instant::now();
        let err = b.publish("r", b"y", "2", "E1").await.unwrap_err();
        assert!(err.is_unavailable(), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "took {:?}",
            started.elapsed()
        );
        assert!(b.state("r", "E1").await.unwrap_err().is_unavailable());
        assert!(b.ping().await.is_err());
    }
    assert!(RedisBroker::connect(&server.url(), options())
        .await
        .unwrap_err()
        .is_unavailable());
    server.start();
    until_reachable(&b).await;
    let p = b.publish("r", b"y", "2", "E2").await.unwrap();
    assert_eq!((p.epoch.as_str(), p.seq), ("E2", 1));
    assert_eq!(next(&mut rx).await, Event::Subscribed);
    let p = b.publish("r", b"z", "3", "E2").await.unwrap();
    assert_eq!(delivery(&mut rx).await.seq, p.seq);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server (CI stage: redis)"]
async fn eight_concurrent_claims_of_one_nick_have_one_winner() {
    let server = RedisServer::spawn();
    let mut nodes = Vec::new();
    for _ in 0..8 {
        nodes.push(broker(&server).await);
    }
    let ttl = Duration::from_secs(30);
    let claims = nodes.iter().enumerate().map(|(i, b)| async move {
        (
            b.claim_nick("r", "alice", &format!("node{i}"), ttl)
                .await
                .unwrap(),
            i,
        )
    });
    let results = join_all(claims).await;
    let winners: Vec<usize> = results
        .iter()
        .filter(|r| r.0 == Claim::Won)
        .map(|r| r.1)
        .collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    let owner = format!("node{}", winners[0]);
    assert_eq!(
        nodes[0]
            .claim_nick("r", "alice", &owner, ttl)
            .await
            .unwrap(),
        Claim::Won
    );
    assert_eq!(
        nodes[0]
            .claim_nick("r", "alice", "someone", ttl)
            .await
            .unwrap(),
        Claim::Taken
    );
    assert_eq!(
        nodes[0]
            .claim_nick("other", "alice", "someone", ttl)
            .await
            .unwrap(),
        Claim::Won
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server (CI stage: redis)"]
async fn only_the_owner_releases_a_nick_and_claims_expire() {
    let server = RedisServer::spawn();
    let b = broker(&server).await;
    let long = Duration::from_secs(30);
    assert_eq!(
        b.claim_nick("r", "bob", "A", long).await.unwrap(),
        Claim::Won
    );
    b.release_nick("r", "bob", "B").await.unwrap();
    assert_eq!(
        b.claim_nick("r", "bob", "B", long).await.unwrap(),
        Claim::Taken
    );
    b.release_nick("r", "bob", "A").await.unwrap();
    assert_eq!(
        b.claim_nick("r", "bob", "B", long).await.unwrap(),
        Claim::Won
    );
    // A claim nobody refreshes expires; a refresh by the owner extends it.
    let short = Duration::from_millis(300);
    assert_eq!(
        b.claim_nick("r", "eve", "A", short).await.unwrap(),
        Claim::Won
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        b.claim_nick("r", "eve", "A", short).await.unwrap(),
        Claim::Won
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        b.claim_nick("r", "eve", "C", short).await.unwrap(),
        Claim::Taken,
        "refreshed"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        b.claim_nick("r", "eve", "C", short).await.unwrap(),
        Claim::Won,
        "expired"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server (CI stage: redis)"]
async fn rooms_lists_every_room_with_an_epoch() {
    let server = RedisServer::spawn();
    let b = broker(&server).await;
    for (room, n) in [("b", 2), ("a", 1), ("c.d", 3)] {
        for i in 0..n {
            b.publish(room, b"x", &i.to_string(), "E").await.unwrap();
        }
    }
    b.state("empty", "F").await.unwrap();
    b.claim_nick("zzz", "n", "o", Duration::from_secs(9))
        .await
        .unwrap(); // not a room's meta
    let rooms = b.rooms().await.unwrap();
    let got: Vec<(&str, &str, u64)> = rooms
        .iter()
        .map(|r| (r.room.as_str(), r.epoch.as_str(), r.seq))
        .collect();
    assert_eq!(
        got,
        [
            ("a", "E", 1),
            ("b", "E", 2),
            ("c.d", "E", 3),
            ("empty", "F", 0)
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server (CI stage: redis)"]
async fn bad_arguments_are_refused_before_redis() {
    let server = RedisServer::spawn();
    let b = broker(&server).await;
    assert!(matches!(
        b.publish("a b", b"x", "1", "E").await,
        Err(BrokerError::InvalidRoom(_))
    ));
    assert!(matches!(
        b.publish("{a}", b"x", "1", "E").await,
        Err(BrokerError::InvalidRoom(_))
    ));
    assert!(matches!(
        b.publish("a", b"x", "1", "E\n1").await,
        Err(BrokerError::InvalidArgument(_))
    ));
    assert!(matches!(
        RedisBroker::connect("nonsense://x", options()).await,
        Err(BrokerError::BadUrl { .. })
    ));
}

/// A relay reaches every subscriber as it was sent, beside the deliveries; a claim's owner can be
/// read back (and is gone once released); every node that joins gets a number of its own.
#[tokio::test]
#[ignore = "needs redis-server (CI stage: redis)"]
async fn relays_reach_subscribers_and_owners_and_node_numbers_can_be_read() {
    let server = RedisServer::spawn();
    let b = broker(&server).await;
    let (mut rx, _task) = subscribe(&server.url(), 16).unwrap();
    assert_eq!(next(&mut rx).await, Event::Subscribed);
    b.relay(b"{\"kind\":\"x\"}").await.unwrap();
    let p = b.publish("r", b"m", "1", "E").await.unwrap();
    assert_eq!(
        next(&mut rx).await,
        Event::Relayed(Bytes::from_static(b"{\"kind\":\"x\"}"))
    );
    assert_eq!(delivery(&mut rx).await.seq, p.seq);

    let ttl = Duration::from_secs(10);
    assert_eq!(b.nick_owner("r", "ann").await.unwrap(), None);
    assert_eq!(
        b.claim_nick("r", "ann", "node-a/7", ttl).await.unwrap(),
        Claim::Won
    );
    assert_eq!(
        b.nick_owner("r", "ann").await.unwrap().as_deref(),
        Some("node-a/7")
    );
    b.release_nick("r", "ann", "node-a/7").await.unwrap();
    assert_eq!(b.nick_owner("r", "ann").await.unwrap(), None);

    let first = b.node_number().await.unwrap();
    assert_eq!(b.node_number().await.unwrap(), first + 1);
}

/// Renewing a room's claims in one call gives each the ttl afresh and says which one another
/// owner took; one that expired and nobody took is the owner's again.
#[tokio::test]
#[ignore = "needs redis-server (CI stage: redis)"]
async fn renewing_claims_keeps_them_and_names_the_lost_ones() {
    let server = RedisServer::spawn();
    let b = broker(&server).await;
    let short = Duration::from_millis(300);
    for nick in ["ann", "bob", "cid"] {
        assert_eq!(
            b.claim_nick("r", nick, "A", short).await.unwrap(),
            Claim::Won
        );
    }
    // bob expires and B takes it; cid expires and nobody does.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        b.claim_nick("r", "bob", "B", Duration::from_secs(10))
            .await
            .unwrap(),
        Claim::Won
    );
    let kept = b
        .renew_nicks(
            "r",
            &[("ann", "A"), ("bob", "A"), ("cid", "A")],
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_eq!(kept, [true, false, true]);
    tokio::time::sleep(Duration::from_millis(400)).await;
    for (nick, owner) in [("ann", "A"), ("bob", "B"), ("cid", "A")] {
        assert_eq!(
            b.nick_owner("r", nick).await.unwrap().as_deref(),
            Some(owner),
            "{nick}"
        );
    }
    assert_eq!(
        b.renew_nicks("r", &[], short).await.unwrap(),
        Vec::<bool>::new()
    );
}

/// A node's seat announcements keep its seats in Redis and reach every subscriber numbered one
/// after another; a full one replaces the seats; a read gives the seats with the last number;
/// once the node stops announcing, its alive key lapses and a read says it is gone.
#[tokio::test]
#[ignore = "needs redis-server (CI stage: redis)"]
async fn seat_announcements_are_numbered_kept_and_lapse_with_their_node() {
    let server = RedisServer::spawn();
    let b = broker(&server).await;
    let (mut rx, _task) = subscribe(&server.url(), 16).unwrap();
    assert_eq!(next(&mut rx).await, Event::Subscribed);
    let ttl = Duration::from_millis(400);
    let seat = |c: &str, v: &str| (c.to_owned(), v.to_owned());
    let n1 = (b.announce_seats("A", ttl, false, "{\"n\":", &[seat("1", r#"["r","ann"]"#)]))
        .await
        .unwrap();
    assert_eq!(
        next(&mut rx).await,
        Event::Relayed(Bytes::from(format!("{{\"n\":{n1}}}")))
    );
    let n2 = (b.announce_seats(
        "A",
        ttl,
        false,
        "{\"n\":",
        &[seat("2", r#"["r","bob"]"#), seat("1", "")],
    ))
    .await
    .unwrap();
    assert_eq!(n2, n1 + 1);
    next(&mut rx).await;
    let read = b.seats_of("A").await.unwrap();
    assert!(read.alive);
    assert_eq!(
        (read.n, read.seats),
        (n2, vec![seat("2", r#"["r","bob"]"#)])
    );
    let n3 = (b.announce_seats("A", ttl, true, "{\"n\":", &[seat("3", r#"["s","cid"]"#)]))
        .await
        .unwrap();
    assert_eq!(
        b.seats_of("A").await.unwrap().seats,
        [seat("3", r#"["s","cid"]"#)]
    );
    assert_eq!(b.seats_of("A").await.unwrap().n, n3);
    assert_eq!(b.seat_nodes().await.unwrap(), ["A"]);
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    assert!(!b.seats_of("A").await.unwrap().alive, "lapsed");
    b.forget_seat_node("A").await.unwrap();
    assert!(b.seat_nodes().await.unwrap().is_empty());
}
