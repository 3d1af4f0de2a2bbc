//! Scenario tests: each drives the engine through the test shell and checks what clients see.

mod claims;
mod cluster;
mod commit;
mod history;
mod limits;
mod presence;
mod reconnect;
mod remote;
mod scrollback;
mod waking;

use std::collections::BTreeSet;
use std::time::Duration;

use crate::test_kit::{unlimited, Event, Shell};

use crate::protocol::{ChatMessage, JoinRequest};
use crate::{CloseReason, Config, Error, Input, ServerMessage};

/// The epoch the scenario tests' engines start with.
const EPOCH: &str = "test-epoch";

fn shell(config: Config) -> Shell {
    Shell::new(config, EPOCH)
}

fn welcome(messages: &[ServerMessage]) -> (&str, &str, &[String], &[ChatMessage], bool, u64, &str) {
    match messages.first() {
        Some(ServerMessage::Welcome {
            nick,
            room,
            users,
            history,
            recovered,
            seq,
            epoch,
            ..
        }) => (nick, room, users, history, *recovered, *seq, epoch),
        other => panic!("expected a welcome first, got {other:?}"),
    }
}

#[test]
fn join_welcomes_the_joiner_and_announces_it_to_the_room() {
    let mut h = shell(unlimited());
    let ann = h.connect("ann");
    let got = h.take(ann);
    let (nick, room, users, history, recovered, seq, epoch) = welcome(&got);
    assert_eq!(
        (nick, room, users, history.len(), recovered, seq),
        ("ann", "general", &["ann".to_owned()][..], 0, false, 0)
    );
    assert!(epoch.starts_with(EPOCH));

    let bob = h.connect("bob");
    let got = h.take(bob);
    assert_eq!(welcome(&got).2, ["ann", "bob"]);
    assert!(
        matches!(&h.take(ann)[..], [ServerMessage::Join { nick, room, .. }] if nick == "bob" && room == "general")
    );
}

#[test]
fn message_reaches_every_member_and_the_senders_copy_is_its_ack() {
    let mut h = shell(unlimited());
    let ann = h.connect("ann");
    let bob = h.connect("bob");
    h.take(ann);
    h.take(bob);
    h.send(ann, "  hello  ");
    h.send(bob, "hi ann");
    for id in [ann, bob] {
        let got = h.take(id);
        let seqs: Vec<(u64, &str, &str)> = got
            .iter()
            .map(|m| match m {
                ServerMessage::Message(m) => (m.seq, m.nick.as_str(), m.text.as_str()),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(seqs, [(1, "ann", "hello"), (2, "bob", "hi ann")]);
    }
    assert_eq!(h.engine.stats().messages_total, 2);
}

#[test]
fn timestamps_are_rfc3339_utc_with_milliseconds() {
    let mut h = shell(unlimited());
    let ann = h.connect("ann");
    h.advance(Duration::from_millis(1234));
    h.send(ann, "tick");
    let ts = h.take(ann).into_iter().find_map(|m| match m {
        ServerMessage::Message(m) => Some(m.ts),
        _ => None,
    });
    assert_eq!(ts.as_deref(), Some("2027-01-15T08:00:01.234Z"));
}

#[test]
fn the_server_stamps_the_nick_so_a_client_cannot_spoof_another() {
    let mut h = shell(unlimited());
    let mallory = h.connect("mallory");
    h.connect("ann");
    h.take(mallory);
    h.send(
        mallory,
        r#"{"type":"message","text":"I am ann","nick":"ann"}"#,
    );
    assert!(matches!(&h.take(mallory)[..], [ServerMessage::Message(m)] if m.nick == "mallory"));
}

#[test]
fn nick_taken_ignoring_case_leaves_the_client_outside_the_room() {
    let mut h = shell(unlimited());
    let ann = h.connect("Ann");
    h.take(ann);
    let copycat = h.connect("aNN");
    assert_eq!(h.errors(copycat), ["nick_taken"]);
    assert!(h.take(ann).is_empty(), "the room saw nothing");
    assert_eq!(h.engine.members("general"), Some(vec!["Ann"]));
    h.send(copycat, "anyone?");
    assert_eq!(h.errors(copycat), ["not_in_room"]);
    h.send(copycat, r#"{"type":"join","nick":"ann2"}"#);
    assert_eq!(welcome(&h.take(copycat)).0, "ann2");
}

#[test]
fn a_client_that_gives_no_nick_is_a_guest() {
    let mut h = shell(unlimited());
    let id = h.connect_with(JoinRequest::default());
    assert_eq!(welcome(&h.take(id)).0, format!("guest-{}", id.get()));
    h.send(id, r#"{"type":"nick","nick":"guest-99"}"#);
    assert_eq!(h.errors(id), ["invalid_nick"], "guest- names are reserved");
}

#[test]
fn disconnect_is_announced_as_left_and_frees_the_nick() {
    let mut h = shell(unlimited());
    let ann = h.connect("ann");
    let bob = h.connect("bob");
    h.take(ann);
    h.disconnect(bob);
    assert!(
        matches!(&h.take(ann)[..], [ServerMessage::Leave { nick, reason, .. }] if nick == "bob" && reason == "left")
    );
    assert_eq!(
        h.handle(Input::Pong { client: bob }),
        Err(Error::UnknownClient(bob))
    );
    let bob2 = h.connect("BOB");
    assert_eq!(welcome(&h.take(bob2)).0, "BOB");
}

#[test]
fn rooms_are_isolated() {
    let mut h = shell(unlimited());
    let ann = h.connect("ann");
    let rust = h.connect_with(JoinRequest {
        room: Some("rust".into()),
        nick: Some("ann".into()),
        ..Default::default()
    });
    h.take(ann);
    h.take(rust);
    h.send(rust, "in rust");
    assert!(h.take(ann).is_empty());
    assert_eq!(h.texts(rust), ["in rust"]);
}

#[test]
fn a_join_switches_rooms_leaving_the_old_one() {
    let mut h = shell(unlimited());
    let ann = h.connect("ann");
    let bob = h.connect("bob");
    h.take(ann);
    h.take(bob);
    h.send(bob, r#"{"type":"join","room":"rust"}"#);
    assert!(
        matches!(&h.take(ann)[..], [ServerMessage::Leave { nick, reason, .. }] if nick == "bob" && reason == "switched")
    );
    let got = h.take(bob);
    let (nick, room, users, ..) = welcome(&got);
    assert_eq!(
        (nick, room, users),
        ("bob", "rust", &["bob".to_owned()][..])
    );
    h.send(ann, "still here?");
    assert!(h.take(bob).is_empty());
    assert_eq!(h.engine.members("general"), Some(vec!["ann"]));
}

#[test]
fn invalid_room_and_nick_get_errors_and_change_nothing() {
    let mut h = shell(unlimited());
    let ann = h.connect("ann");
    h.take(ann);
    h.send(ann, r#"{"type":"join","room":"no spaces"}"#);
    h.send(ann, r#"{"type":"join","nick":"   "}"#);
    h.send(ann, r#"{"type":"nick","nick":"a\u0007b"}"#);
    h.send(ann, r#"{"type":"message","text":"   "}"#);
    h.send(
        ann,
        &format!(r#"{{"type":"message","text":"{}"}}"#, "x".repeat(4097)),
    );
    h.send(ann, r#"{"type":"message""#);
    h.send(ann, r#"{"type":"dance"}"#);
    assert_eq!(
        h.errors(ann),
        [
            "invalid_room",
            "invalid_nick",
            "invalid_nick",
            "empty_message",
            "message_too_long",
            "invalid_json",
            "unknown_type"
        ]
    );
    assert_eq!(h.engine.client_info(ann), Some(("ann", Some("general"))));
    assert_eq!(h.engine.stats().messages_total, 0);
}

#[test]
fn text_of_exactly_text_bytes_max_is_accepted() {
    let mut h = shell(unlimited());
    let ann = h.connect("ann");
    h.take(ann);
    h.send(ann, &"é".repeat(2048));
    assert_eq!(h.texts(ann).len(), 1);
}

#[test]
fn nick_change_is_broadcast_to_everyone_including_the_renamer() {
    let mut h = shell(unlimited());
    let ann = h.connect("ann");
    let bob = h.connect("bob");
    h.take(ann);
    h.take(bob);
    h.send(ann, r#"{"type":"nick","nick":"bob"}"#);
    assert_eq!(h.errors(ann), ["nick_taken"]);
    h.send(ann, r#"{"type":"nick","nick":"annie"}"#);
    for id in [ann, bob] {
        assert!(
            matches!(&h.take(id)[..], [ServerMessage::Nick { old, nick, .. }] if old == "ann" && nick == "annie")
        );
    }
    h.send(ann, "renamed");
    assert!(matches!(&h.take(bob)[..], [ServerMessage::Message(m)] if m.nick == "annie"));
}

#[test]
fn typing_is_relayed_to_the_others_and_never_stored() {
    let mut h = shell(unlimited());
    let ann = h.connect("ann");
    let bob = h.connect("bob");
    h.take(ann);
    h.take(bob);
    h.send(ann, r#"{"type":"typing"}"#);
    assert!(h.take(ann).is_empty());
    assert!(matches!(&h.take(bob)[..], [ServerMessage::Typing { nick, .. }] if nick == "ann"));
    let late = h.connect("late");
    assert!(welcome(&h.take(late)).3.is_empty());
}

#[test]
fn a_message_ends_typing_so_the_next_typing_is_relayed_at_once() {
    let mut h = shell(unlimited());
    let ann = h.connect("ann");
    let bob = h.connect("bob");
    h.all_events();
    h.send(ann, r#"{"type":"typing"}"#);
    h.send(ann, r#"{"type":"typing"}"#);
    assert_eq!(h.take(bob).len(), 1, "the second is within typing_interval");
    h.send(ann, "done");
    h.send(ann, r#"{"type":"typing"}"#);
    let got = h.take(bob);
    assert!(
        matches!(&got[..], [ServerMessage::Message(_), ServerMessage::Typing { nick, .. }] if nick == "ann"),
        "{got:?}"
    );
}

fn history_seqs(history: &[ChatMessage]) -> Vec<u64> {
    history.iter().map(|m| m.seq).collect()
}

#[test]
fn rejoin_with_since_recovers_exactly_the_missed_messages() {
    let mut h = shell(unlimited());
    let ann = h.connect("ann");
    let bob = h.connect("bob");
    for i in 1..=5 {
        h.send(ann, &format!("m{i}"));
    }
    let got = h.take(bob);
    let epoch = welcome(&got).6.to_owned();
    h.disconnect(bob);
    for i in 6..=8 {
        h.send(ann, &format!("m{i}"));
    }
    let back = h.connect_with(JoinRequest {
        nick: Some("bob".into()),
        since: Some(5),
        epoch: Some(epoch),
        ..Default::default()
    });
    let got = h.take(back);
    let (_, _, _, history, recovered, seq, _) = welcome(&got);
    assert!(recovered);
    assert_eq!(history_seqs(history), [6, 7, 8]);
    assert_eq!(seq, 8);
}

#[test]
fn rejoin_gets_recovered_false_when_history_no_longer_holds_the_gap() {
    let mut h = shell(Config {
        history_max: 3,
        ..unlimited()
    });
    let ann = h.connect("ann");
    let got = h.take(ann);
    let epoch = welcome(&got).6.to_owned();
    for i in 1..=6 {
        h.send(ann, &format!("m{i}"));
    }
    let hit = h.connect_with(JoinRequest {
        nick: Some("x".into()),
        since: Some(3),
        epoch: Some(epoch.clone()),
        ..Default::default()
    });
    let got = h.take(hit);
    assert!(welcome(&got).4, "4..=6 are all in a ring of 3");
    let miss = h.connect_with(JoinRequest {
        nick: Some("y".into()),
        since: Some(2),
        epoch: Some(epoch.clone()),
        ..Default::default()
    });
    let got = h.take(miss);
    let (_, _, _, history, recovered, ..) = welcome(&got);
    assert!(!recovered, "message 3 is gone");
    assert_eq!(
        history_seqs(history),
        [4, 5, 6],
        "the latest history instead"
    );
    let future = h.connect_with(JoinRequest {
        nick: Some("z".into()),
        since: Some(60),
        epoch: Some(epoch),
        ..Default::default()
    });
    assert!(
        !welcome(&h.take(future)).4,
        "a since beyond seq is not honoured"
    );
}

#[test]
fn rejoin_from_another_epoch_gets_recovered_false() {
    let mut h = shell(unlimited());
    let ann = h.connect("ann");
    h.send(ann, "before restart");
    let back = h.connect_with(JoinRequest {
        nick: Some("bob".into()),
        since: Some(1),
        epoch: Some("older-server-1".into()),
        ..Default::default()
    });
    let got = h.take(back);
    let (_, _, _, history, recovered, ..) = welcome(&got);
    assert!(!recovered);
    assert_eq!(history_seqs(history), [1]);
}

#[test]
fn slow_client_is_evicted_at_exactly_queue_frames_max() {
    let config = Config {
        queue_frames_max: 8,
        queue_high_water_frames: 8,
        ..unlimited()
    };
    let mut h = shell(config);
    let ann = h.connect("ann");
    let slow = h.connect("slow");
    h.stop_flushing(slow);
    // Its welcome was already read: 8 messages fill its queue to exactly 8 frames.
    for i in 0..8 {
        h.send(ann, &format!("m{i}"));
    }
    assert_eq!(h.engine.queued(slow).map(|q| q.0), Some(8));
    assert!(h.closed.is_empty(), "at the bound, not over it");
    h.send(ann, "one too many");
    assert_eq!(h.closed.get(&slow), Some(&CloseReason::SlowConsumer));
    assert_eq!(h.engine.stats().evictions_total, 1);
    let texts = h.texts(slow);
    assert_eq!(texts.len(), 8, "nothing after the overflowing message");
    let seen_by_ann = h.take(ann);
    assert!(
        matches!(seen_by_ann.last(), Some(ServerMessage::Leave { nick, reason, .. }) if nick == "slow" && reason == "evicted")
    );
    h.send(ann, "after");
    assert!(
        h.take(slow).is_empty(),
        "an evicted client gets nothing more"
    );
}

#[test]
fn slow_client_is_evicted_at_queue_bytes_max() {
    let config = Config {
        queue_bytes_max: 4000,
        queue_high_water_bytes: 4000,
        ..unlimited()
    };
    let mut h = shell(config);
    let ann = h.connect("ann");
    let slow = h.connect("slow");
    h.stop_flushing(slow);
    let text = "x".repeat(900);
    let mut sent = 0;
    while !h.closed.contains_key(&slow) {
        let before = h.engine.queued(slow).expect("still connected").1;
        h.send(ann, &text);
        sent += 1;
        if let Some((_, after)) = h.engine.queued(slow) {
            assert!(after <= 4000 && after > before);
        }
        assert!(sent < 10, "never evicted");
    }
    assert_eq!(h.closed.get(&slow), Some(&CloseReason::SlowConsumer));
    assert_eq!(h.texts(slow).len(), sent - 1);
    assert_eq!(
        h.texts(ann).len(),
        sent,
        "the healthy client received everything"
    );
}

#[test]
fn rate_limit_refuses_the_excess_then_refills() {
    let mut h = shell(Config::default());
    let ann = h.connect("ann");
    h.take(ann);
    for i in 0..25 {
        h.send(ann, &format!("m{i}"));
    }
    let got = h.take(ann);
    let delivered = got
        .iter()
        .filter(|m| matches!(m, ServerMessage::Message(_)))
        .count();
    let refused = got
        .iter()
        .filter(|m| matches!(m, ServerMessage::Error { code, .. } if code == "rate_limited"))
        .count();
    assert_eq!((delivered, refused), (20, 5));
    assert_eq!(h.engine.stats().rate_limited_total, 5);
    h.advance(Duration::from_millis(500));
    for i in 0..10 {
        h.send(ann, &format!("later{i}"));
    }
    assert_eq!(
        h.texts(ann).len(),
        5,
        "half a second refills five tokens at 10/s"
    );
}

#[test]
fn a_client_that_keeps_flooding_is_closed_with_1008() {
    let mut h = shell(Config {
        rate_limit_burst: 1,
        rate_limit_per_second: 1,
        rate_limit_strikes_max: 3,
        ..Config::default()
    });
    let ann = h.connect("ann");
    let bob = h.connect("bob");
    for _ in 0..4 {
        h.send(ann, "spam");
    }
    assert_eq!(h.closed.get(&ann), Some(&CloseReason::Flooding));
    assert_eq!(CloseReason::Flooding.code(), 1008);
    let bob_saw = h.take(bob);
    assert_eq!(
        bob_saw
            .iter()
            .filter(|m| matches!(m, ServerMessage::Message(_)))
            .count(),
        1
    );
    assert!(
        matches!(bob_saw.last(), Some(ServerMessage::Leave { reason, .. }) if reason == "flooding")
    );
}

#[test]
fn idle_client_is_closed_after_the_idle_timeout_and_pongs_keep_it_alive() {
    let mut h = shell(Config {
        idle_timeout: Duration::from_secs(60),
        ..unlimited()
    });
    let quiet = h.connect("quiet");
    let chatty = h.connect("chatty");
    h.advance(Duration::from_secs(50));
    h.handle(Input::Pong { client: chatty }).expect("connected");
    h.advance(Duration::from_secs(9));
    assert!(h.closed.is_empty());
    h.advance(Duration::from_secs(2));
    assert_eq!(h.closed.get(&quiet), Some(&CloseReason::IdleTimeout));
    assert!(!h.closed.contains_key(&chatty));
    assert!(
        matches!(h.take(chatty).last(), Some(ServerMessage::Leave { reason, .. }) if reason == "timeout")
    );
    h.advance(Duration::from_secs(50));
    assert_eq!(h.closed.get(&chatty), Some(&CloseReason::IdleTimeout));
    assert_eq!(
        h.engine.poll_timeout(),
        None,
        "no timers with nobody connected"
    );
}

#[test]
fn pings_go_to_every_client_each_ping_interval() {
    let mut h = shell(unlimited());
    let ann = h.connect("ann");
    let start = h.now;
    assert_eq!(
        h.engine.poll_timeout(),
        Some(start + Duration::from_secs(25))
    );
    h.advance(Duration::from_secs(24));
    assert!(h.pings.is_empty());
    h.advance(Duration::from_secs(1));
    let bob = h.connect("bob");
    h.advance(Duration::from_secs(25));
    assert_eq!(h.pings.get(&ann), Some(&2));
    assert_eq!(h.pings.get(&bob), Some(&1));
}

#[test]
fn an_early_tick_does_nothing() {
    let mut h = shell(unlimited());
    let ann = h.connect("ann");
    h.take(ann);
    h.advance(Duration::from_millis(1));
    assert!(h.take(ann).is_empty() && h.pings.is_empty() && h.closed.is_empty());
}

/// When most of a room falls behind together (everyone equally slow), the engine pushes back on
/// the senders instead of evicting healthy clients, and lets them go once the queues drain.
#[test]
fn flow_control_pauses_a_room_that_is_mostly_behind_and_resumes_it() {
    let config = Config {
        queue_frames_max: 20,
        queue_high_water_frames: 10,
        ..unlimited()
    };
    let mut h = shell(config);
    let ids: Vec<_> = ["a", "b", "c"].iter().map(|n| h.connect(n)).collect();
    for &id in &ids {
        h.stop_flushing(id);
    }
    let mut sent = 0;
    while h.paused.is_empty() {
        h.send(ids[0], "burst");
        sent += 1;
        assert!(sent < 20, "never paused");
    }
    assert_eq!(h.paused.len(), 3, "every member of the room is paused");
    assert!(h.closed.is_empty(), "nobody evicted");
    for &id in &ids[..2] {
        h.resume_flushing(id);
    }
    assert!(
        h.paused.len() == 3,
        "two of three still counts... a third behind is over a quarter"
    );
    h.resume_flushing(ids[2]);
    assert!(h.paused.is_empty(), "resumed once the queues drained");
}

#[test]
fn a_client_far_behind_a_healthy_room_is_evicted_not_the_room_paused() {
    let config = Config {
        queue_frames_max: 20,
        queue_high_water_frames: 10,
        ..unlimited()
    };
    let mut h = shell(config);
    let ann = h.connect("ann");
    let bob = h.connect("bob");
    let slow = h.connect("slow");
    h.stop_flushing(slow);
    for _ in 0..30 {
        h.send(ann, "m");
    }
    assert!(
        !h.paused.contains(&ann) && !h.paused.contains(&bob),
        "the room never paused: only the slow client itself stopped being read"
    );
    assert_eq!(h.closed.get(&slow), Some(&CloseReason::SlowConsumer));
    assert_eq!(h.texts(bob).len(), 30);
}

#[test]
fn a_client_behind_is_paused_alone_until_it_catches_up() {
    let mut h = shell(Config {
        queue_frames_max: 20,
        queue_high_water_frames: 10,
        ..unlimited()
    });
    let ann = h.connect("ann");
    let bob = h.connect("bob");
    let slow = h.connect("slow");
    h.stop_flushing(slow);
    for _ in 0..12 {
        h.send(ann, "m");
    }
    assert_eq!(
        h.paused,
        BTreeSet::from([slow]),
        "a client may not talk faster than it listens; its room goes on"
    );
    h.resume_flushing(slow);
    assert!(h.paused.is_empty(), "resumed once it caught up");
    assert_eq!(h.texts(slow).len(), 12);
    assert_eq!(h.texts(bob).len(), 12);
}

#[test]
fn welcome_history_is_trimmed_to_fit_the_queue_and_then_not_recovered() {
    let config = Config {
        queue_bytes_max: 3000,
        queue_high_water_bytes: 3000,
        ..unlimited()
    };
    let mut h = shell(config);
    let ann = h.connect("ann");
    let got = h.take(ann);
    let epoch = welcome(&got).6.to_owned();
    for _ in 0..10 {
        h.send(ann, &"y".repeat(500));
    }
    let late = h.connect_with(JoinRequest {
        nick: Some("late".into()),
        since: Some(0),
        epoch: Some(epoch),
        ..Default::default()
    });
    let got = h.take(late);
    let (_, _, _, history, recovered, ..) = welcome(&got);
    assert!(!recovered);
    assert!(!history.is_empty() && history.len() < 10);
    assert_eq!(
        history.last().map(|m| m.seq),
        Some(10),
        "the newest are kept"
    );
}

#[test]
fn kick_closes_with_4003_and_the_room_sees_kicked() {
    let mut h = shell(unlimited());
    let ann = h.connect("ann");
    let bob = h.connect("bob");
    h.take(ann);
    assert_eq!(h.kick("general", "BOB"), Ok(bob));
    assert_eq!(h.closed.get(&bob).map(|r| r.code()), Some(4003));
    assert!(
        matches!(&h.take(ann)[..], [ServerMessage::Leave { reason, .. }] if reason == "kicked")
    );
    assert!(matches!(
        h.kick("general", "bob"),
        Err(Error::NoSuchUser { .. })
    ));
}

#[test]
fn server_full_refuses_connect_and_ids_are_never_reused() {
    let mut h = shell(Config {
        clients_max: 2,
        ..unlimited()
    });
    let a = h.connect("a");
    let b = h.connect("b");
    assert_eq!(
        h.try_connect(JoinRequest::default()),
        Err(Error::ServerFull { max: 2 })
    );
    h.disconnect(a);
    let c = h.connect("c");
    assert!(c > b && c != a);
}

#[test]
fn flushing_more_than_was_queued_is_refused_and_changes_nothing() {
    let mut h = shell(unlimited());
    let ann = h.connect("ann");
    let before = h.engine.queued(ann);
    let result = h.engine.handle(
        h.at(),
        Input::Flushed {
            client: ann,
            frames: 1,
            bytes: 1,
        },
    );
    assert!(matches!(result, Err(Error::FlushExceedsQueue { .. })));
    assert_eq!(h.engine.queued(ann), before);
}

#[test]
fn too_many_rooms_forgets_the_stalest_empty_room_first() {
    let mut h = shell(Config {
        rooms_max: 2,
        ..unlimited()
    });
    let ann = h.connect("ann");
    h.send(ann, r#"{"type":"join","room":"second"}"#);
    h.send(ann, r#"{"type":"join","room":"third"}"#);
    assert_eq!(
        h.engine.members("general"),
        None,
        "the empty general room was forgotten"
    );
    let bob = h.connect_with(JoinRequest {
        room: Some("second".into()),
        nick: Some("bob".into()),
        ..Default::default()
    });
    let carl = h.connect_with(JoinRequest {
        room: Some("fourth".into()),
        nick: Some("carl".into()),
        ..Default::default()
    });
    assert_eq!(h.errors(carl), ["too_many_rooms"]);
    assert_eq!(h.engine.members("second"), Some(vec!["bob"]));
    assert_eq!(h.engine.client_info(bob), Some(("bob", Some("second"))));
    assert_eq!(h.engine.members("third"), Some(vec!["ann"]));
}

#[test]
fn time_going_backwards_is_treated_as_no_time_passing() {
    let mut h = shell(unlimited());
    let ann = h.connect("ann");
    h.take(ann);
    h.now -= Duration::from_secs(10);
    h.send(ann, "still fine");
    assert_eq!(h.texts(ann), ["still fine"]);
}

/// Regression (found by the reference model in `tests/model.rs`): a reply sent to one client only
/// (an `error`, a `welcome`) can push it over the high-water mark; flow control must then be
/// re-evaluated like after a broadcast, or a room whose only member is behind stays unpaused.
#[test]
fn an_error_reply_that_puts_the_room_behind_pauses_it() {
    let mut h = shell(Config {
        queue_frames_max: 6,
        queue_high_water_frames: 4,
        ..unlimited()
    });
    let ann = h.connect("ann");
    h.stop_flushing(ann);
    for _ in 0..4 {
        h.send(ann, "{oops");
    }
    assert_eq!(h.errors(ann).len(), 4);
    assert!(h.paused.contains(&ann), "its room is all behind");
}

/// Regression (found by the reference model): a broadcast that both overflows one member and
/// pauses the room must not tell the evicted member to pause; a doomed client gets only its close.
#[test]
fn a_client_evicted_by_the_broadcast_that_pauses_its_room_is_not_paused() {
    let mut h = shell(Config {
        queue_frames_max: 6,
        queue_high_water_frames: 4,
        ..unlimited()
    });
    let ann = h.connect("ann");
    let s1 = h.connect("s1");
    let s2 = h.connect("s2");
    h.stop_flushing(s1);
    for _ in 0..3 {
        h.send(ann, "m");
    }
    h.stop_flushing(s2);
    for _ in 0..4 {
        h.send(ann, "m");
    }
    assert_eq!(h.closed.get(&s1), Some(&CloseReason::SlowConsumer));
    assert!(h.paused.contains(&s2), "two of three members were behind");
    // s1 was paused for its own lag before the room was; the shell fails on a second pause,
    // which is what the room's pause would have sent the doomed client.
    let s1_got = h.events(s1);
    assert_eq!(
        s1_got.iter().filter(|e| **e == Event::Pause).count(),
        1,
        "paused for its own lag first, once"
    );
    assert_eq!(
        s1_got.last(),
        Some(&Event::Close(CloseReason::SlowConsumer))
    );
}

/// Regression (found by the reference model): a paused client that disconnects is gone; the shell
/// must not be told to resume reading from a connection the engine has already forgotten.
#[test]
fn a_paused_client_that_disconnects_is_not_resumed() {
    let mut h = shell(Config {
        queue_frames_max: 6,
        queue_high_water_frames: 4,
        ..unlimited()
    });
    let slow = h.connect("slow");
    h.stop_flushing(slow);
    for _ in 0..4 {
        h.send(slow, "m");
    }
    assert!(
        h.paused.contains(&slow),
        "alone and behind: its room paused"
    );
    h.events(slow);
    // The shell fails on anything but a ping for a client that disconnected in that call.
    h.handle(Input::Disconnect { client: slow })
        .expect("connected");
    assert_eq!(
        h.events(slow),
        [],
        "nothing is left to say to a gone client"
    );
}

/// A member paused only because its room is (it reads fine) is gone once it disconnects: leaving
/// the paused room must not resume it.
#[test]
fn a_member_of_a_paused_room_that_disconnects_is_not_resumed() {
    let mut h = shell(Config {
        queue_frames_max: 6,
        queue_high_water_frames: 4,
        ..unlimited()
    });
    let ann = h.connect("ann");
    let s1 = h.connect("s1");
    let s2 = h.connect("s2");
    h.stop_flushing(s1);
    h.stop_flushing(s2);
    for _ in 0..4 {
        h.send(ann, "m");
    }
    assert!(h.paused.contains(&ann), "its room is mostly behind");
    assert_eq!(h.engine.queued(ann), Some((0, 0)), "ann itself reads");
    h.events(ann);
    h.disconnect(ann);
    assert_eq!(h.events(ann), [], "nothing is left to say to a gone client");
}

/// Regression (found by the reference model): a refused `connect` still fires the timers that are
/// due; the clients they time out must be closed in that same call, not left doomed but open.
#[test]
fn a_refused_connect_still_closes_the_clients_its_timers_timed_out() {
    let mut h = shell(Config {
        clients_max: 2,
        idle_timeout: Duration::from_secs(60),
        ..unlimited()
    });
    let ann = h.connect("ann");
    let bob = h.connect("bob");
    h.now += Duration::from_secs(61);
    assert_eq!(
        h.try_connect(JoinRequest::default()),
        Err(Error::ServerFull { max: 2 })
    );
    assert_eq!(h.closed.get(&ann), Some(&CloseReason::IdleTimeout));
    assert_eq!(h.closed.get(&bob), Some(&CloseReason::IdleTimeout));
    h.engine.check_invariants();
}

/// Regression (found by the reference model): when the timers due at a `Disconnect` have just
/// timed the same client out, the peer's own disconnect wins: the room hears `left` once, and the
/// engine does not try to close a client it already removed.
#[test]
fn a_disconnect_in_the_call_that_times_the_client_out_is_a_plain_leave() {
    let mut h = shell(Config {
        idle_timeout: Duration::from_secs(60),
        ..unlimited()
    });
    let ann = h.connect("ann");
    let bob = h.connect("bob");
    h.advance(Duration::from_secs(50));
    h.handle(Input::Pong { client: ann }).expect("connected");
    h.take(ann);
    h.now += Duration::from_secs(11);
    h.disconnect(bob);
    assert!(h.closed.is_empty(), "a gone peer is not closed");
    assert!(
        matches!(&h.take(ann)[..], [ServerMessage::Leave { nick, reason, .. }] if nick == "bob" && reason == "left")
    );
}

/// A member that is behind takes its place in the count of members behind of the room it moves
/// to (the invariants recount it after every input), so the new room's flow control sees it.
#[test]
fn a_client_behind_that_switches_rooms_counts_as_behind_in_the_new_one() {
    let mut h = shell(Config {
        queue_frames_max: 20,
        queue_high_water_frames: 10,
        ..unlimited()
    });
    let ann = h.connect("ann");
    let slow = h.connect("slow");
    h.stop_flushing(slow);
    for _ in 0..12 {
        h.send(ann, "m");
    }
    assert_eq!(h.paused, BTreeSet::from([slow]));
    h.send(slow, r#"{"type":"join","room":"quiet"}"#);
    assert!(h.paused.contains(&slow), "still behind in its new room");
    h.resume_flushing(slow);
    assert!(h.paused.is_empty(), "caught up in its new room");
    assert_eq!(h.texts(slow).len(), 12, "everything from before the switch");
}

/// Nicknames are unique by how they read: full-width letters, case and look-alike letters from
/// another script are the name they imitate; hidden characters are refused outright.
#[test]
fn a_nickname_that_looks_like_a_members_is_taken_and_hidden_characters_are_refused() {
    let mut h = shell(unlimited());
    let alice = h.connect("alice");
    let bob = h.connect("bob");
    for imitation in [
        "ALICE",
        "\u{FF41}\u{FF4C}\u{FF49}\u{FF43}\u{FF45}",
        "\u{430}lice",
    ] {
        h.send(bob, &format!(r#"{{"type":"nick","nick":"{imitation}"}}"#));
        assert_eq!(h.errors(bob), ["nick_taken"], "{imitation:?}");
    }
    for hidden in [
        "alice\\u200b",
        "\\u202eecila",
        "\\u200bguest-7",
        "\\uff47uest-7",
    ] {
        h.send(bob, &format!(r#"{{"type":"nick","nick":"{hidden}"}}"#));
        assert_eq!(h.errors(bob), ["invalid_nick"], "{hidden:?}");
    }
    // Once alice is gone, her look-alike is free.
    h.disconnect(alice);
    h.send(bob, "{\"type\":\"nick\",\"nick\":\"\u{430}lice\"}");
    assert!(h.errors(bob).is_empty(), "free while nobody looks the same");
}

/// A room name confusable with an existing room's is that room: the joiner lands in it, under
/// its name, rather than in a look-alike room of its own.
#[test]
fn a_room_name_that_looks_like_an_existing_one_is_that_room() {
    let mut h = shell(unlimited());
    let ann = h.connect("ann");
    let bob = h.connect("bob");
    h.send(ann, r#"{"type":"join","room":"lounge"}"#);
    h.take(ann);
    h.send(bob, "{\"type\":\"join\",\"room\":\"l\u{43E}unge\"}");
    let got = h.take(bob);
    assert!(
        got.iter()
            .any(|m| matches!(m, ServerMessage::Welcome { room, .. } if room == "lounge")),
        "{got:?}"
    );
    assert_eq!(h.engine.members("l\u{43E}unge"), Some(vec!["ann", "bob"]));
}
