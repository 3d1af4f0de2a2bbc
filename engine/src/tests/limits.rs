//! Every bound exactly at its limit, every counter to the unit, and every rule of
//! `Config::validate`: the tests that pin the arithmetic a looser test would let drift by one.

use std::time::Duration;

use super::shell;
use crate::protocol::JoinRequest;
use crate::test_kit::{unlimited, Shell};
use crate::{ClientId, CloseReason, Config, Error, Input, Stats};

/// Payload bytes of one chat message frame from `nick` with `text` (seq below 10), measured by
/// sending it once to a reader that does not flush.
fn message_frame_bytes(config: &Config, text: &str) -> usize {
    let mut h = shell(config.clone());
    let ann = h.connect("ann");
    let probe = h.connect("probe");
    h.stop_flushing(probe);
    h.send(ann, text);
    h.engine.queued(probe).expect("connected").1
}

#[test]
fn the_byte_bound_admits_exactly_queue_bytes_max() {
    let base = unlimited();
    let frame = message_frame_bytes(&base, "0123456789");
    let mut h = shell(Config {
        queue_bytes_max: 3 * frame,
        queue_high_water_bytes: 3 * frame,
        ..base
    });
    let ann = h.connect("ann");
    let slow = h.connect("slow");
    h.stop_flushing(slow);
    for _ in 0..3 {
        h.send(ann, "0123456789");
    }
    assert_eq!(
        h.engine.queued(slow),
        Some((3, 3 * frame)),
        "full to the byte"
    );
    assert!(h.closed.is_empty(), "at the bound, not over it");
    h.send(ann, "0123456789");
    assert_eq!(h.closed.get(&slow), Some(&CloseReason::SlowConsumer));
}

#[test]
fn the_frame_bound_admits_exactly_queue_frames_max_whatever_the_bytes() {
    let mut h = shell(Config {
        queue_frames_max: 1,
        queue_high_water_frames: 1,
        ..unlimited()
    });
    let ann = h.connect("ann");
    let slow = h.connect("slow");
    h.stop_flushing(slow);
    h.send(ann, "one");
    assert_eq!(h.engine.queued(slow).map(|q| q.0), Some(1));
    assert!(h.closed.is_empty());
    h.send(ann, "two");
    assert_eq!(h.closed.get(&slow), Some(&CloseReason::SlowConsumer));
}

#[test]
fn every_counter_counts_each_event_once() {
    let mut h = shell(Config {
        rate_limit_per_second: 1,
        rate_limit_burst: 3,
        rate_limit_strikes_max: 0,
        idle_timeout: Duration::from_secs(60),
        queue_frames_max: 4,
        queue_high_water_frames: 4,
        ..Config::default()
    });
    let ann = h.connect("ann");
    let bob = h.connect("bob");
    // ann's welcome, bob's welcome and the join ann sees.
    assert_eq!(stats(&h).frames_total, 3);
    h.send(ann, "hello");
    h.send(bob, "{oops");
    h.send(ann, "again");
    h.send(ann, "third");
    // ann's burst of three is spent: the next frame is refused.
    h.send(ann, "too fast");
    let got = stats(&h);
    assert_eq!(
        (got.messages_total, got.errors_total, got.rate_limited_total),
        (3, 2, 1),
        "the refusal is an error frame too"
    );
    assert_eq!(got.frames_total, 3 + 2 + 1 + 2 + 2 + 1);
    let slow = h.connect("slow");
    h.stop_flushing(slow);
    let before = stats(&h).frames_total;
    // An error reply that puts slow behind counts like any other frame (and pauses it).
    for _ in 0..4 {
        h.send(slow, "{bad");
    }
    assert!(h.paused.contains(&slow));
    assert_eq!(stats(&h).frames_total, before + 4);
    h.advance(Duration::from_secs(10));
    for _ in 0..5 {
        h.send(bob, "fill");
        h.advance(Duration::from_secs(1));
    }
    h.advance(Duration::from_secs(120));
    let got = stats(&h);
    assert_eq!((got.evictions_total, got.timeouts_total), (1, 2));
    assert_eq!((got.clients, got.rooms), (0, 1));
}

fn stats(h: &Shell) -> Stats {
    h.engine.stats()
}

#[test]
fn no_strike_limit_means_a_flooder_is_refused_but_never_closed() {
    let mut h = shell(Config {
        rate_limit_per_second: 1,
        rate_limit_burst: 1,
        rate_limit_strikes_max: 0,
        ..Config::default()
    });
    let ann = h.connect("ann");
    for _ in 0..200 {
        h.send(ann, "flood");
    }
    assert!(h.closed.is_empty());
    assert_eq!(h.engine.stats().rate_limited_total, 199);
}

#[test]
fn time_that_goes_backwards_counts_as_the_latest_time_seen() {
    let mut h = shell(Config {
        idle_timeout: Duration::from_secs(60),
        ..unlimited()
    });
    let ann = h.connect("ann");
    h.advance(Duration::from_secs(50));
    // A pong stamped 30 s in the past still counts as heard at 50 s.
    h.now -= Duration::from_secs(30);
    h.pong(ann);
    h.now += Duration::from_secs(30);
    h.advance(Duration::from_secs(59));
    assert!(h.closed.is_empty(), "silent for 59 s since the pong");
    h.advance(Duration::from_secs(2));
    assert_eq!(h.closed.get(&ann), Some(&CloseReason::IdleTimeout));
}

/// Idle sweeps run at most every `min(1 s, idle_timeout / 4)`, but no later than the next
/// client's deadline allows.
#[test]
fn the_idle_sweep_runs_at_a_quarter_of_a_short_idle_timeout() {
    let mut h = shell(Config {
        idle_timeout: Duration::from_secs(2),
        ..unlimited()
    });
    let start = h.now;
    h.connect("ann");
    h.pass(Duration::from_millis(100));
    h.connect("bob");
    h.set_elapsed(Duration::from_secs(2));
    h.tick();
    assert_eq!(h.closed.len(), 1, "ann timed out");
    assert_eq!(
        h.engine.poll_timeout(),
        Some(start + Duration::from_millis(2500)),
        "bob's deadline (2.1 s) is sooner than the sweep granularity allows"
    );
}

#[test]
fn a_sweep_that_finds_everyone_paused_comes_back_after_a_whole_idle_timeout() {
    let mut h = shell(Config {
        idle_timeout: Duration::from_secs(8),
        queue_frames_max: 4,
        queue_high_water_frames: 2,
        ..unlimited()
    });
    let start = h.now;
    let ann = h.connect("ann");
    h.stop_flushing(ann);
    h.send(ann, "a");
    h.send(ann, "b");
    assert!(h.paused.contains(&ann), "alone and behind");
    h.set_elapsed(Duration::from_secs(8));
    h.tick();
    assert!(
        h.closed.is_empty(),
        "paused clients cannot talk, so are not idle"
    );
    assert_eq!(
        h.engine.poll_timeout(),
        Some(start + Duration::from_secs(16))
    );
}

#[test]
fn with_no_history_kept_a_since_behind_the_room_is_not_recovered() {
    let mut h = shell(Config {
        history_max: 0,
        ..unlimited()
    });
    let ann = h.connect("ann");
    h.send(ann, "missed");
    let epoch = match h.take(ann).first() {
        Some(crate::ServerMessage::Welcome { epoch, .. }) => epoch.clone(),
        other => panic!("expected a welcome, got {other:?}"),
    };
    let late = h.connect_with(JoinRequest {
        nick: Some("late".into()),
        since: Some(0),
        epoch: Some(epoch.clone()),
        ..JoinRequest::default()
    });
    assert!(matches!(
        h.take(late).first(),
        Some(crate::ServerMessage::Welcome { recovered: false, history, .. }) if history.is_empty()
    ));
    let current = h.connect_with(JoinRequest {
        nick: Some("current".into()),
        since: Some(1),
        epoch: Some(epoch),
        ..JoinRequest::default()
    });
    assert!(
        matches!(
            h.take(current).first(),
            Some(crate::ServerMessage::Welcome {
                recovered: true,
                ..
            })
        ),
        "nothing was missed"
    );
}

/// The welcome keeps as much history as fits its budget (half the high-water mark), to the
/// byte: the newest messages that fit, and not one byte over.
#[test]
fn welcome_history_is_trimmed_to_the_byte() {
    let text = "x".repeat(100);
    let sizes = |hw: usize| -> (usize, usize) {
        let mut h = shell(Config {
            queue_high_water_bytes: hw,
            ..unlimited()
        });
        let ann = h.connect("ann");
        for _ in 0..5 {
            h.send(ann, &text);
        }
        h.auto_flush = false;
        let late = h.connect("late");
        let bytes = h.engine.queued(late).expect("connected").1;
        let kept = match h.take(late).first() {
            Some(crate::ServerMessage::Welcome { history, .. }) => history.len(),
            other => panic!("expected a welcome, got {other:?}"),
        };
        (kept, bytes)
    };
    let (all, full) = sizes(1 << 20);
    assert_eq!(all, 5);
    // A budget of exactly the full welcome keeps everything; a byte less drops the oldest.
    assert_eq!(sizes(2 * full), (5, full));
    let (kept, bytes) = sizes(2 * full - 2);
    assert_eq!(kept, 4);
    assert!(bytes < full);
    // The budget of exactly a four-message welcome keeps four.
    assert_eq!(sizes(2 * bytes), (4, bytes));
    assert_eq!(sizes(2 * bytes - 2).0, 3);
    // Nothing fits: an empty history, never a partial message.
    assert_eq!(sizes(2).0, 0);
}

#[test]
fn the_room_forgotten_first_is_the_one_least_recently_joined() {
    let mut h = shell(Config {
        rooms_max: 3,
        ..unlimited()
    });
    let ann = h.connect_with(JoinRequest {
        room: Some("a".into()),
        nick: Some("ann".into()),
        ..JoinRequest::default()
    });
    for room in ["b", "a", "z", "w"] {
        h.send(ann, &format!(r#"{{"type":"join","room":"{room}"}}"#));
    }
    assert_eq!(h.engine.members("b"), None, "b was the stalest empty room");
    assert_eq!(h.engine.members("a"), Some(vec![]), "a was joined after b");
}

#[test]
fn the_engine_reports_the_config_it_was_given() {
    let config = Config {
        history_max: 7,
        ..unlimited()
    };
    let h = shell(config.clone());
    assert_eq!(h.engine.config(), &config);
}

#[test]
fn client_ids_print_as_c_and_their_number() {
    let mut h = shell(unlimited());
    let ann: ClientId = h.connect("ann");
    assert_eq!(ann.to_string(), format!("c{}", ann.get()));
    assert_eq!(ann.to_string(), "c1");
}

#[test]
fn close_reasons_have_their_own_codes_and_texts() {
    let table: Vec<(u16, &str)> = CloseReason::ALL
        .iter()
        .map(|r| (r.code(), r.text()))
        .collect();
    assert_eq!(
        table,
        [
            (4001, "evicted: too slow (outbound queue full)"),
            (4000, "idle timeout"),
            (1008, "rate limit exceeded"),
            (4003, "kicked by an operator"),
        ]
    );
}

#[test]
fn flushing_more_frames_or_more_bytes_than_queued_is_refused() {
    let mut h = shell(unlimited());
    let ann = h.connect("ann");
    let bob = h.connect("bob");
    h.stop_flushing(bob);
    h.send(ann, "hi");
    let (frames, bytes) = h.engine.queued(bob).expect("connected");
    assert_eq!(frames, 1);
    let flushed = |frames, bytes| Input::Flushed {
        client: bob,
        frames,
        bytes,
    };
    for (f, b) in [(2, bytes), (1, bytes + 1)] {
        assert!(matches!(
            h.engine.handle(h.at(), flushed(f, b)),
            Err(Error::FlushExceedsQueue { .. })
        ));
    }
    assert_eq!(h.engine.queued(bob), Some((1, bytes)), "nothing changed");
    assert_eq!(h.engine.handle(h.at(), flushed(1, bytes)), Ok(()));
    assert_eq!(h.engine.queued(bob), Some((0, 0)));
}

/// Each rule of `Config::validate`, broken alone.
#[test]
fn every_limit_rule_is_checked_on_its_own() {
    let ok = Config::default();
    assert_eq!(ok.validate(), Ok(()));
    let broken: Vec<(&str, Config)> = vec![
        (
            "default_room",
            Config {
                default_room: "no room".into(),
                ..ok.clone()
            },
        ),
        (
            "queue_frames_max",
            Config {
                queue_frames_max: 0,
                ..ok.clone()
            },
        ),
        (
            "queue_bytes_max",
            Config {
                queue_bytes_max: 0,
                ..ok.clone()
            },
        ),
        (
            "high water frames 0",
            Config {
                queue_high_water_frames: 0,
                ..ok.clone()
            },
        ),
        (
            "high water frames over the bound",
            Config {
                queue_high_water_frames: ok.queue_frames_max + 1,
                ..ok.clone()
            },
        ),
        (
            "high water bytes 0",
            Config {
                queue_high_water_bytes: 0,
                ..ok.clone()
            },
        ),
        (
            "high water bytes over the bound",
            Config {
                queue_high_water_bytes: ok.queue_bytes_max + 1,
                ..ok.clone()
            },
        ),
        (
            "text_bytes_max",
            Config {
                text_bytes_max: 0,
                ..ok.clone()
            },
        ),
        (
            "burst 0 with a rate",
            Config {
                rate_limit_per_second: 1,
                rate_limit_burst: 0,
                ..ok.clone()
            },
        ),
        (
            "ping_interval",
            Config {
                ping_interval: Duration::ZERO,
                ..ok.clone()
            },
        ),
        (
            "idle_timeout",
            Config {
                idle_timeout: Duration::ZERO,
                ..ok.clone()
            },
        ),
        (
            "clients_max",
            Config {
                clients_max: 0,
                ..ok.clone()
            },
        ),
        (
            "rooms_max",
            Config {
                rooms_max: 0,
                ..ok.clone()
            },
        ),
        (
            "presence_list_max",
            Config {
                presence_list_max: 0,
                ..ok.clone()
            },
        ),
        (
            "presence_changes_max",
            Config {
                presence_changes_max: 0,
                ..ok.clone()
            },
        ),
        (
            "presence_interval",
            Config {
                presence_interval: Duration::ZERO,
                ..ok.clone()
            },
        ),
        (
            "membership_rate_burst",
            Config {
                membership_rate_burst: 0,
                ..ok.clone()
            },
        ),
    ];
    // Past a year, any interval or timeout (an instant plus it must not overflow). Written out
    // rather than read from `DURATION_MAX`, so the bound itself is pinned: 366 days.
    let a_year = Duration::from_secs(31_622_400);
    let past_a_year = a_year + Duration::from_secs(1);
    let long: Vec<(&str, Config)> = vec![
        (
            "ping_interval",
            Config {
                ping_interval: past_a_year,
                ..ok.clone()
            },
        ),
        (
            "idle_timeout",
            Config {
                idle_timeout: past_a_year,
                ..ok.clone()
            },
        ),
        (
            "presence_interval",
            Config {
                presence_interval: past_a_year,
                ..ok.clone()
            },
        ),
        (
            "typing_interval",
            Config {
                typing_interval: past_a_year,
                ..ok.clone()
            },
        ),
        (
            "membership_rate_interval",
            Config {
                membership_rate_interval: past_a_year,
                ..ok.clone()
            },
        ),
    ];
    let broken = broken.into_iter().chain(long);
    for (what, config) in broken {
        assert!(
            matches!(config.validate(), Err(Error::InvalidConfig(_))),
            "{what} accepted"
        );
        assert!(
            crate::Engine::new(config, "e").is_err(),
            "{what}: engine started"
        );
    }
    let edges = [
        Config {
            rate_limit_per_second: 0,
            rate_limit_burst: 0,
            ..ok.clone()
        },
        Config {
            membership_rate_interval: Duration::ZERO,
            membership_rate_burst: 0,
            typing_interval: Duration::ZERO,
            ..ok.clone()
        },
        Config {
            ping_interval: a_year,
            idle_timeout: a_year,
            presence_interval: a_year,
            typing_interval: a_year,
            membership_rate_interval: a_year,
            ..ok.clone()
        },
        Config {
            queue_high_water_frames: ok.queue_frames_max,
            queue_high_water_bytes: ok.queue_bytes_max,
            ..ok.clone()
        },
        Config {
            queue_frames_max: 1,
            queue_bytes_max: 1,
            queue_high_water_frames: 1,
            queue_high_water_bytes: 1,
            ..ok.clone()
        },
    ];
    for config in edges {
        assert_eq!(config.validate(), Ok(()), "{config:?}");
    }
}

#[test]
fn frames_that_put_their_recipient_behind_are_counted_like_any_other() {
    let mut h = shell(Config {
        queue_frames_max: 8,
        queue_high_water_frames: 2,
        ..unlimited()
    });
    let ann = h.connect("ann");
    let bob = h.connect("bob");
    let cy = h.connect("cy");
    h.stop_flushing(cy);
    let before = h.engine.stats().frames_total;
    h.send(ann, "one");
    h.send(ann, "two");
    assert!(h.paused.contains(&cy), "the second message put cy behind");
    assert_eq!(h.engine.stats().frames_total, before + 6);
    h.take(bob);
}

#[test]
fn a_post_makes_its_room_the_most_recently_active() {
    let mut h = shell(Config {
        rooms_max: 2,
        ..unlimited()
    });
    let ann = h.connect_with(JoinRequest {
        room: Some("a".into()),
        nick: Some("ann".into()),
        ..JoinRequest::default()
    });
    let bob = h.connect_with(JoinRequest {
        room: Some("b".into()),
        nick: Some("bob".into()),
        ..JoinRequest::default()
    });
    h.send(ann, "a is where the talk is");
    h.disconnect(ann);
    h.disconnect(bob);
    h.connect_with(JoinRequest {
        room: Some("c".into()),
        nick: Some("cy".into()),
        ..JoinRequest::default()
    });
    assert_eq!(
        h.engine.members("b"),
        None,
        "b was joined before a's last post"
    );
    assert_eq!(h.engine.members("a"), Some(vec![]));
}

/// Joins, room switches and renames share their own bucket: a burst, then one per interval,
/// `rate_limited` past it (and nothing changes); chat messages do not draw from it.
#[test]
fn joins_switches_and_renames_share_a_bucket_of_their_own() {
    let interval = Duration::from_secs(2);
    let mut h = Shell::new(
        Config {
            membership_rate_burst: 3,
            membership_rate_interval: interval,
            ..unlimited()
        },
        "e",
    );
    let ann = h.connect("ann");
    h.send(ann, r#"{"type":"nick","nick":"ann1"}"#);
    h.send(ann, r#"{"type":"join","room":"other"}"#);
    h.send(ann, r#"{"type":"nick","nick":"ann2"}"#);
    assert!(h.errors(ann).is_empty(), "the burst");
    h.send(ann, r#"{"type":"join","room":"third"}"#);
    h.send(ann, r#"{"type":"nick","nick":"ann3"}"#);
    assert_eq!(h.errors(ann), ["rate_limited", "rate_limited"]);
    assert_eq!(stats(&h).rate_limited_total, 2, "counted like any refusal");
    h.send(ann, "messages are not membership changes");
    assert!(h.errors(ann).is_empty());
    assert_eq!(
        h.engine.members("other"),
        Some(vec!["ann2"]),
        "nothing changed"
    );
    h.pass(interval - Duration::from_millis(1));
    h.send(ann, r#"{"type":"nick","nick":"ann3"}"#);
    assert_eq!(h.errors(ann), ["rate_limited"]);
    h.pass(Duration::from_millis(1));
    h.send(ann, r#"{"type":"nick","nick":"ann3"}"#);
    assert!(h.errors(ann).is_empty(), "one more per interval");
    assert_eq!(h.engine.members("other"), Some(vec!["ann3"]));
}
