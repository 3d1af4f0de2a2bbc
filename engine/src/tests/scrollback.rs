//! The `history` command: pages of older messages, from the ring without a store and from the
//! store with one, never past what clients may see, trimmed to fit the asker's queue, and metered
//! like joins.

use super::{shell, EPOCH};
use crate::protocol::{JoinRequest, HISTORY_PAGE_MAX};
use crate::test_kit::{unlimited, Shell};
use crate::{ClientId, Config, Engine, ServerMessage};

/// The pages `id` got since last taken: (room, seqs, complete).
fn pages(h: &mut Shell, id: ClientId) -> Vec<(String, Vec<u64>, bool)> {
    (h.take(id).into_iter())
        .filter_map(|m| match m {
            ServerMessage::History {
                room,
                messages,
                complete,
            } => Some((room, messages.iter().map(|m| m.seq).collect(), complete)),
            _ => None,
        })
        .collect()
}

fn ask(h: &mut Shell, id: ClientId, before: Option<u64>, limit: u64) {
    let before = before.map_or(String::new(), |b| format!(",\"before\":{b}"));
    h.send(
        id,
        &format!("{{\"type\":\"history\",\"limit\":{limit}{before}}}"),
    );
}

/// A member of `general` who said `n` messages, with its frames taken.
fn talker(h: &mut Shell, n: usize) -> ClientId {
    let ann = h.connect("ann");
    for i in 0..n {
        h.send(ann, &format!("m{i}"));
    }
    h.all_events();
    ann
}

#[test]
fn without_a_store_pages_come_from_the_ring_back_to_its_start() {
    let mut h = shell(Config {
        history_max: 5,
        ..unlimited()
    });
    let ann = talker(&mut h, 8);
    ask(&mut h, ann, None, 2);
    assert_eq!(pages(&mut h, ann), [("general".into(), vec![7, 8], false)]);
    ask(&mut h, ann, Some(7), 2);
    assert_eq!(pages(&mut h, ann), [("general".into(), vec![5, 6], false)]);
    ask(&mut h, ann, Some(5), 2);
    assert_eq!(
        pages(&mut h, ann),
        [("general".into(), vec![4], true)],
        "the ring starts at 4: nothing older exists"
    );
    ask(&mut h, ann, Some(4), 2);
    assert_eq!(pages(&mut h, ann), [("general".into(), vec![], true)]);
    ask(&mut h, ann, Some(1_000), 1);
    assert_eq!(
        pages(&mut h, ann),
        [("general".into(), vec![8], false)],
        "clamped"
    );
}

#[test]
fn an_empty_room_has_a_complete_empty_page() {
    let mut h = shell(unlimited());
    let ann = talker(&mut h, 0);
    ask(&mut h, ann, None, 10);
    assert_eq!(pages(&mut h, ann), [("general".into(), vec![], true)]);
}

#[test]
fn a_limit_outside_one_to_a_hundred_and_a_bad_field_are_refused() {
    let mut h = shell(unlimited());
    let ann = talker(&mut h, 1);
    for limit in [0, HISTORY_PAGE_MAX as u64 + 1] {
        ask(&mut h, ann, None, limit);
        assert_eq!(h.errors(ann), ["invalid_field"], "limit {limit}");
    }
    h.send(ann, r#"{"type":"history","before":"x"}"#);
    assert_eq!(h.errors(ann), ["invalid_field"]);
    h.send(ann, r#"{"type":"history"}"#);
    assert_eq!(
        pages(&mut h, ann),
        [("general".into(), vec![1], true)],
        "defaults"
    );
}

#[test]
fn history_pages_are_metered_like_joins() {
    let mut h = shell(Config {
        membership_rate_burst: 2,
        membership_rate_interval: std::time::Duration::from_secs(10),
        ..unlimited()
    });
    let ann = talker(&mut h, 1);
    ask(&mut h, ann, None, 1);
    ask(&mut h, ann, None, 1);
    assert_eq!(pages(&mut h, ann).len(), 2);
    ask(&mut h, ann, None, 1);
    assert_eq!(h.errors(ann), ["rate_limited"]);
    h.advance(std::time::Duration::from_secs(10));
    ask(&mut h, ann, None, 1);
    assert_eq!(pages(&mut h, ann).len(), 1);
}

#[test]
fn a_client_outside_any_room_is_told_to_join_first() {
    let mut h = shell(unlimited());
    let _ann = h.connect("ann");
    let twin = h.connect("ann");
    h.all_events();
    ask(&mut h, twin, None, 1);
    assert_eq!(h.errors(twin), ["not_in_room"]);
}

/// With a store, a page is asked of it, never reaching past the room's committed seq (a held
/// message is not shown early), and its answer goes to the asker as a `history` frame.
#[test]
fn with_a_store_pages_come_from_it_and_stop_at_the_committed_seq() {
    let mut h = shell(Config {
        hold_until_committed: true,
        history_max: 2,
        ..unlimited()
    });
    let ann = h.connect("ann");
    for i in 0..5 {
        h.send(ann, &format!("m{i}"));
    }
    h.commit_all();
    h.send(ann, "held");
    h.all_events();
    ask(&mut h, ann, Some(99), 3);
    let fetch = h.fetches()[0].clone();
    assert_eq!(
        (fetch.room.as_str(), fetch.before, fetch.limit),
        ("general", 6, 3)
    );
    h.answer_fetches();
    assert_eq!(
        pages(&mut h, ann),
        [("general".into(), vec![3, 4, 5], false)]
    );
    ask(&mut h, ann, Some(3), 3);
    h.answer_fetches();
    assert_eq!(
        pages(&mut h, ann),
        [("general".into(), vec![1, 2], true)],
        "older than the ring: the store has it"
    );
}

#[test]
fn a_page_for_a_client_that_left_goes_nowhere() {
    let mut h = shell(Config {
        store_relaxed: true,
        ..unlimited()
    });
    let ann = talker(&mut h, 2);
    let bob = h.connect("bob");
    h.all_events();
    ask(&mut h, ann, None, 5);
    h.disconnect(ann);
    h.all_events();
    h.answer_fetches();
    assert!(h.all_events().is_empty(), "the page went to somebody");
    let _ = bob;
}

/// A page larger than half the asker's high-water mark keeps its newest messages (at least one)
/// and is then not complete, so the client asks again from there: history never evicts.
#[test]
fn a_page_is_trimmed_to_fit_the_askers_queue() {
    let config = Config {
        queue_high_water_bytes: 400,
        queue_bytes_max: 10_000,
        ..unlimited()
    };
    let mut h = Shell::around(Engine::new(config, EPOCH).expect("valid"));
    let ann = talker(&mut h, 6);
    ask(&mut h, ann, None, 6);
    let got = pages(&mut h, ann);
    let [(_, seqs, complete)] = &got[..] else {
        panic!("one page, got {got:?}")
    };
    assert!(!seqs.is_empty() && seqs.len() < 6, "{seqs:?}");
    assert_eq!(seqs.last(), Some(&6), "the newest are kept");
    assert!(!complete);
    assert!(h.closed.is_empty(), "nobody evicted");
}

#[test]
fn a_join_request_and_history_share_no_state() {
    // `history` reads only the current room: switching rooms pages the new one.
    let mut h = shell(unlimited());
    let ann = talker(&mut h, 2);
    h.send(
        ann,
        &crate::protocol::Command::Join(JoinRequest {
            room: Some("rust".into()),
            ..JoinRequest::default()
        })
        .encode(),
    );
    h.all_events();
    ask(&mut h, ann, None, 5);
    assert_eq!(pages(&mut h, ann), [("rust".into(), vec![], true)]);
}

/// A shell that keeps frames unflushed until told, whose `ann` said `m1`..`m9` (each flushed
/// but the last `unflushed`), and the bytes of one such message frame.
fn quiet_talker(config: Config, unflushed: usize) -> (Shell, ClientId, usize) {
    let mut h = Shell::around(Engine::new(config, EPOCH).expect("valid"));
    h.auto_flush = false;
    let ann = h.connect("ann");
    h.flush(ann, None).expect("flushed");
    let mut frame = 0;
    for i in 1..=9 {
        h.send(ann, &format!("m{i}"));
        frame = h.engine.queued(ann).expect("live").1;
        if i <= 9 - unflushed {
            h.flush(ann, None).expect("flushed");
        }
    }
    h.all_events();
    (h, ann, frame)
}

/// The bytes `ask` queues for `ann`.
fn page_bytes(h: &mut Shell, ann: ClientId, before: Option<u64>, limit: u64) -> usize {
    let start = h_queued(h, ann);
    ask(h, ann, before, limit);
    h_queued(h, ann) - start
}

fn h_queued(h: &Shell, id: ClientId) -> usize {
    h.engine.queued(id).expect("live").1
}

/// The page's budget is exact: half the high-water mark less what is already queued, counting
/// the page's own bytes and one comma between messages; `k` messages fit in exactly
/// `empty + k * frame + (k - 1)` bytes, and one byte less keeps `k - 1`.
#[test]
fn a_page_keeps_exactly_what_fits_in_its_budget() {
    let roomy = unlimited();
    let (mut h, ann, frame) = quiet_talker(roomy.clone(), 0);
    // An empty page (before the first message) is complete; the budget is counted against
    // an incomplete one, a byte longer.
    let empty = page_bytes(&mut h, ann, Some(1), 9) + 1;
    assert_eq!(pages(&mut h, ann), [("general".into(), vec![], true)]);
    let kept = |high_water: usize, unflushed: usize| {
        let config = Config {
            queue_high_water_bytes: high_water,
            ..roomy.clone()
        };
        let (mut h, ann, _) = quiet_talker(config, unflushed);
        ask(&mut h, ann, None, 9);
        let got = pages(&mut h, ann);
        let [(_, seqs, complete)] = &got[..] else {
            panic!("one page, got {got:?}")
        };
        assert_eq!(*complete, seqs.len() == 9, "{seqs:?}");
        assert_eq!(seqs.last(), Some(&9), "the newest are kept");
        seqs.len()
    };
    for k in [1, 2, 5, 9] {
        let budget = empty + k * frame + (k - 1);
        assert_eq!(kept(2 * budget, 0), k, "{k} fit in {budget} bytes");
        assert_eq!(kept(2 * budget + 1, 0), k, "the half rounds down");
        if k > 1 {
            assert_eq!(kept(2 * budget - 2, 0), k - 1, "a byte short of {k}");
        }
        // Queued bytes come off the budget.
        assert_eq!(
            kept(2 * (budget + frame), 1),
            k,
            "{k} behind one queued frame"
        );
        assert_eq!(kept(2 * (budget + frame) - 2, 1), k.max(2) - 1);
    }
    assert_eq!(kept(2, 0), 1, "at least one, whatever the budget");
}
