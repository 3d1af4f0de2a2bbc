//! The commit seam (`hold_until_committed`): nothing of a message leaves before the store
//! reports it committed, commits come in order, a full hold refuses with `unavailable`, clients
//! see only committed messages in `welcome` and `since` recovery, and an engine restored from a
//! store keeps each room's epoch and seq.

use super::{history_seqs, shell, welcome, EPOCH};
use crate::protocol::JoinRequest;
use crate::test_kit::{unlimited, Shell, StoreRequest};
use crate::{ClientId, Config, Engine, Error, Input, OpId, RestoredRoom, ServerMessage};

fn holding() -> Config {
    Config {
        hold_until_committed: true,
        ..unlimited()
    }
}

fn join(room: &str, nick: &str, since: Option<(u64, &str)>) -> JoinRequest {
    JoinRequest {
        room: Some(room.into()),
        nick: Some(nick.into()),
        since: since.map(|(seq, _)| seq),
        epoch: since.map(|(_, epoch)| epoch.to_owned()),
    }
}

/// Connects `nick` to `room`, drops its welcome and the others' notices of it.
fn member(h: &mut Shell, room: &str, nick: &str) -> ClientId {
    let id = h.connect_with(join(room, nick, None));
    h.all_events();
    id
}

/// The welcome `id` got: (history seqs, recovered, seq, epoch).
fn greeted(h: &mut Shell, id: ClientId) -> (Vec<u64>, bool, u64, String) {
    let got = h.take(id);
    let (_, _, _, history, recovered, seq, epoch) = welcome(&got);
    (history_seqs(history), recovered, seq, epoch.to_owned())
}

/// The seqs of the chat messages `id` got since last taken.
fn seqs(h: &mut Shell, id: ClientId) -> Vec<u64> {
    (h.take(id).into_iter())
        .filter_map(|m| match m {
            ServerMessage::Message(m) => Some(m.seq),
            _ => None,
        })
        .collect()
}

#[test]
fn nothing_leaves_before_the_commit_not_even_the_senders_copy() {
    let mut h = shell(holding());
    let ann = member(&mut h, "general", "ann");
    let bob = member(&mut h, "general", "bob");
    h.send(ann, "hello");
    assert!(h.all_events().is_empty(), "a frame left before the commit");
    let stores = h.take_stores();
    let [store] = &stores[..] else {
        panic!("one store, got {stores:?}")
    };
    assert_eq!((store.room.as_str(), store.seq), ("general", 1));
    assert!(store.epoch.starts_with(EPOCH));
    assert_eq!(store.message().text, "hello");
    assert_eq!(h.engine.stats().messages_total, 0);
    assert_eq!(h.engine.stats().history_bytes, 0, "held outside history");

    let committed = h.commit_next();
    for id in [ann, bob] {
        let got = h.take(id);
        assert_eq!(got, [ServerMessage::Message(committed.message())], "{id}");
    }
    assert_eq!(h.engine.stats().messages_total, 1);
    assert!(h.outstanding().is_empty());
}

/// The same conversation with and without the hold: once everything is committed, every client
/// has exactly the frames it got without the hold, in the same order, and the stores carried
/// exactly the broadcast frames.
#[test]
fn commit_releases_exactly_the_frames_sent_without_a_hold() {
    // Each message is committed as soon as it is stored, before anything else happens.
    let script = |h: &mut Shell| {
        let say = |h: &mut Shell, id: ClientId, text: &str| {
            h.send(id, text);
            h.commit_all();
        };
        let ann = h.connect("ann");
        let bob = h.connect("bob");
        say(h, ann, "one");
        say(h, bob, "two");
        let carl = h.connect_with(join("general", "carl", Some((1, "nobody"))));
        say(h, carl, "three");
        h.disconnect(bob);
        say(h, ann, "four");
        h.all_events()
    };
    let mut plain = shell(unlimited());
    let mut held = shell(holding());
    let want = script(&mut plain);
    assert!(plain.take_stores().is_empty(), "a Store without the hold");
    let got = script(&mut held);
    assert_eq!(got, want);
    assert_eq!(held.engine.stats(), plain.engine.stats());
    let sent: Vec<ServerMessage> = (held.take_stores().iter())
        .map(|store| ServerMessage::Message(store.message()))
        .collect();
    let broadcast: Vec<ServerMessage> = (want.values().next().into_iter().flatten())
        .filter_map(|event| match event {
            crate::test_kit::Event::Frame(m @ ServerMessage::Message(_)) => Some(m.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(sent, broadcast, "ann saw every message");
}

#[test]
fn out_of_order_and_unknown_commits_are_refused_and_change_nothing() {
    let mut h = shell(holding());
    let ann = member(&mut h, "general", "ann");
    let none = h.handle(Input::Committed {
        op: OpId::from_raw(1),
    });
    assert_eq!(
        none,
        Err(Error::CommitOutOfOrder {
            expected: None,
            got: OpId::from_raw(1)
        })
    );
    h.send(ann, "one");
    h.send(ann, "two");
    let ops: Vec<OpId> = h.outstanding().iter().map(|s| s.op).collect();
    assert!(ops[0] < ops[1]);
    for wrong in [ops[1], OpId::from_raw(ops[1].get() + 1), OpId::from_raw(0)] {
        let result = h.handle(Input::Committed { op: wrong });
        assert_eq!(
            result,
            Err(Error::CommitOutOfOrder {
                expected: Some(ops[0]),
                got: wrong
            })
        );
        assert!(h.all_events().is_empty(), "{wrong} released something");
        assert_eq!(h.outstanding().len(), 2);
    }
    h.commit_next();
    assert_eq!(seqs(&mut h, ann), [1]);
    // An op already committed is no longer outstanding either.
    let again = h.handle(Input::Committed { op: ops[0] });
    assert!(
        matches!(again, Err(Error::CommitOutOfOrder { expected: Some(op), .. }) if op == ops[1])
    );
    h.commit_next();
    assert_eq!(seqs(&mut h, ann), [2]);
}

#[test]
fn a_full_hold_refuses_messages_with_unavailable() {
    let mut h = shell(Config {
        uncommitted_max: 2,
        ..holding()
    });
    let ann = member(&mut h, "general", "ann");
    let bob = member(&mut h, "general", "bob");
    h.send(ann, "one");
    h.send(bob, "two");
    h.send(ann, "three");
    assert_eq!(h.errors(ann), ["unavailable"]);
    assert!(h.take(bob).is_empty());
    assert_eq!(h.outstanding().len(), 2, "the refused message is not held");
    // A refused message takes no seq: the next accepted one follows on.
    h.commit_next();
    h.send(ann, "three again");
    h.commit_all();
    assert_eq!(seqs(&mut h, bob), [1, 2, 3]);
    assert_eq!(
        h.take_stores().iter().map(|s| s.seq).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    // Other frames are not held back meanwhile.
    h.send(ann, "four");
    h.send(ann, "five");
    h.send(ann, r#"{"type":"typing"}"#);
    assert!(matches!(&h.take(bob)[..], [ServerMessage::Typing { .. }]));
}

/// Rule: a room's `seq` in a `welcome` is its last committed one and its history holds only
/// committed messages; held ones reach a client that joined meanwhile as live broadcasts at
/// their commit, so recovery from that `seq` has no gap.
#[test]
fn welcome_and_since_during_a_hold_show_only_committed_messages() {
    let mut h = shell(holding());
    let ann = member(&mut h, "general", "ann");
    h.send(ann, "one");
    h.commit_next();
    h.send(ann, "two");
    h.send(ann, "three");
    assert_eq!(seqs(&mut h, ann), [1]);
    let epoch = h.outstanding()[0].epoch.clone();

    let bob = h.connect_with(join("general", "bob", Some((0, &epoch))));
    assert_eq!(greeted(&mut h, bob), (vec![1], true, 1, epoch.clone()));
    let carl = h.connect_with(join("general", "carl", None));
    assert_eq!(greeted(&mut h, carl), (vec![1], false, 1, epoch.clone()));
    // A `since` past the last committed seq cannot be honoured: its client cannot have seen it.
    let dan = h.connect_with(join("general", "dan", Some((2, &epoch))));
    assert_eq!(greeted(&mut h, dan), (vec![1], false, 1, epoch.clone()));
    h.all_events();

    h.commit_next();
    for id in [ann, bob, carl, dan] {
        assert_eq!(seqs(&mut h, id), [2], "{id}");
    }
    // Bob reconnects with what it saw: the committed one is recovered, the held one comes live.
    h.disconnect(bob);
    let bob = h.connect_with(join("general", "bob", Some((1, &epoch))));
    assert_eq!(greeted(&mut h, bob), (vec![2], true, 2, epoch.clone()));
    h.commit_next();
    assert_eq!(seqs(&mut h, bob), [3]);
    h.disconnect(bob);
    let bob = h.connect_with(join("general", "bob", Some((3, &epoch))));
    assert_eq!(greeted(&mut h, bob), (vec![], true, 3, epoch));
}

#[test]
fn a_held_message_is_released_after_its_sender_left() {
    let mut h = shell(holding());
    let ann = member(&mut h, "general", "ann");
    let bob = member(&mut h, "general", "bob");
    h.send(ann, "bye");
    h.disconnect(ann);
    h.all_events();
    h.commit_next();
    let got = h.take(bob);
    assert!(
        matches!(&got[..], [ServerMessage::Message(m)] if m.nick == "ann" && m.text == "bye"),
        "{got:?}"
    );
}

/// A room with a message waiting for its commit is not forgotten to make space: the message
/// will be released to whoever joins it, so its room must still be there.
#[test]
fn a_room_with_a_held_message_is_not_forgotten() {
    let mut h = shell(Config {
        rooms_max: 1,
        ..holding()
    });
    let ann = member(&mut h, "old", "ann");
    h.send(ann, "kept");
    h.disconnect(ann);
    let carl = h.connect_with(join("new", "carl", None));
    assert_eq!(h.errors(carl), ["too_many_rooms"], "'old' holds a message");
    h.commit_next();
    let dan = h.connect_with(join("new", "dan", None));
    let (history, _, seq, _) = greeted(&mut h, dan);
    assert_eq!(
        (history, seq),
        (vec![], 0),
        "once committed, 'old' made way"
    );
    assert_eq!(h.engine.stats().dormant_rooms, 1);
}

/// With a store, a room forgotten to make space sleeps: created again, it has its old epoch and
/// continues its seqs (the store keeps its messages under them), so an old `since` recovers.
#[test]
fn a_forgotten_room_sleeps_and_wakes_with_its_epoch_and_seq() {
    let mut h = shell(Config {
        rooms_max: 1,
        ..holding()
    });
    let ann = member(&mut h, "old", "ann");
    h.send(ann, "one");
    h.send(ann, "two");
    h.commit_all();
    let epoch = h.take_stores()[0].epoch.clone();
    h.disconnect(ann);
    let bob = member(&mut h, "new", "bob");
    assert_eq!(h.engine.stats().dormant_rooms, 1);
    h.disconnect(bob);
    let carl = h.connect_with(join("old", "carl", Some((2, &epoch))));
    let (history, recovered, seq, woken) = greeted(&mut h, carl);
    assert_eq!((woken, seq), (epoch, 2), "its epoch and seq");
    assert_eq!(
        (history, recovered),
        (vec![], true),
        "nothing missed since 2"
    );
    h.send(carl, "three");
    let stores = h.take_stores();
    assert_eq!(
        (stores[0].room.as_str(), stores[0].seq),
        ("old", 3),
        "its own name"
    );
    assert_eq!(h.engine.stats().dormant_rooms, 1, "'new' sleeps now");
}

/// Without a store a forgotten room is gone: created again, it starts a new epoch at seq 1.
#[test]
fn without_a_store_a_forgotten_room_starts_afresh() {
    let mut h = shell(Config {
        rooms_max: 1,
        ..unlimited()
    });
    let ann = h.connect_with(join("old", "ann", None));
    let (_, _, _, first) = greeted(&mut h, ann);
    h.send(ann, "one");
    h.disconnect(ann);
    let bob = member(&mut h, "new", "bob");
    h.disconnect(bob);
    let carl = h.connect_with(join("old", "carl", None));
    let (_, _, seq, epoch) = greeted(&mut h, carl);
    assert_eq!(seq, 0);
    assert_ne!(epoch, first);
    assert_eq!(h.engine.stats().dormant_rooms, 0);
}

/// What the first start's store kept: the commits of `room`, as the store would hand them back.
fn kept(stores: &[StoreRequest], room: &str) -> RestoredRoom {
    let mine: Vec<&StoreRequest> = stores.iter().filter(|s| s.room == room).collect();
    let last = mine.last().expect("the room has messages");
    RestoredRoom {
        name: room.to_owned(),
        epoch: last.epoch.clone(),
        seq: last.seq,
        history: mine.iter().map(|s| (s.seq, s.frame.clone())).collect(),
    }
}

#[test]
fn a_restored_room_keeps_its_epoch_and_seq_and_since_recovers_exactly_the_missed() {
    let mut first = shell(holding());
    let ann = member(&mut first, "general", "ann");
    let bob = member(&mut first, "rust", "bob");
    for text in ["one", "two", "three"] {
        first.send(ann, text);
    }
    first.send(bob, "elsewhere");
    first.commit_all();
    let stores = first.take_stores();
    let epoch = stores[0].epoch.clone();
    let frames: Vec<_> = stores.iter().take(3).map(|s| s.message()).collect();

    let rooms = [kept(&stores, "general"), kept(&stores, "rust")];
    let mut h = Shell::restored(holding(), "second-start", rooms).expect("a valid restore");
    assert_eq!(h.engine.stats().rooms, 2);
    assert_eq!(h.engine.members("general"), Some(vec![]));
    let ann = h.connect_with(join("general", "ann", Some((1, &epoch))));
    let got = h.take(ann);
    let (_, _, _, history, recovered, seq, room_epoch) = welcome(&got);
    assert_eq!((recovered, seq, room_epoch), (true, 3, epoch.as_str()));
    assert_eq!(
        history,
        &frames[1..],
        "exactly the missed messages, as first sent"
    );
    // The sequence goes on from there; a room created now gets an epoch of this start.
    h.send(ann, "four");
    assert_eq!(h.take_stores()[0].seq, 4);
    let carl = h.connect_with(join("go", "carl", None));
    assert_eq!(greeted(&mut h, carl).3, "second-start-3");
}

#[test]
fn a_restored_history_is_trimmed_to_the_budgets_oldest_first() {
    let mut first = shell(holding());
    let ann = member(&mut first, "general", "ann");
    for text in ["one", "two", "three"] {
        first.send(ann, text);
    }
    first.commit_all();
    let room = kept(&first.take_stores(), "general");
    let epoch = room.epoch.clone();
    let config = Config {
        history_max: 2,
        ..holding()
    };
    let mut h = Shell::restored(config, "second-start", [room]).expect("a valid restore");
    let a = h.connect_with(join("general", "a", Some((0, &epoch))));
    assert_eq!(greeted(&mut h, a), (vec![2, 3], false, 3, epoch.clone()));
    let b = h.connect_with(join("general", "b", Some((1, &epoch))));
    assert_eq!(greeted(&mut h, b), (vec![2, 3], true, 3, epoch));
}

#[test]
fn invalid_restores_are_refused() {
    let mut first = shell(holding());
    let ann = member(&mut first, "general", "ann");
    for text in ["one", "two", "three"] {
        first.send(ann, text);
    }
    first.commit_all();
    let good = kept(&first.take_stores(), "general");
    let with = |change: &dyn Fn(&mut RestoredRoom)| {
        let mut room = good.clone();
        change(&mut room);
        room
    };
    let cases: Vec<(&str, Vec<RestoredRoom>, Config)> = vec![
        (
            "a gap",
            vec![with(&|r| drop(r.history.remove(1)))],
            holding(),
        ),
        ("not ending at seq", vec![with(&|r| r.seq = 4)], holding()),
        (
            "seq 0 in history",
            vec![with(&|r| {
                r.history = vec![(0, r.history[0].1.clone())];
                r.seq = 0;
            })],
            holding(),
        ),
        (
            "out of order",
            vec![with(&|r| r.history.swap(0, 1))],
            holding(),
        ),
        (
            "another seq's frame",
            vec![with(&|r| r.history[2].1 = r.history[1].1.clone())],
            holding(),
        ),
        (
            "not a frame",
            vec![with(&|r| r.history[2].1 = "{}".into())],
            holding(),
        ),
        (
            "a renamed room",
            vec![with(&|r| r.name = "other".into())],
            holding(),
        ),
        (
            "an invalid name",
            vec![with(&|r| {
                r.name = "no room".into();
                r.history.clear();
            })],
            holding(),
        ),
        (
            "an empty epoch",
            vec![with(&|r| r.epoch.clear())],
            holding(),
        ),
        (
            "an epoch of this start",
            vec![with(&|r| r.epoch = "second-start-7".into())],
            holding(),
        ),
        (
            "a look-alike of another (capital i for l)",
            vec![
                good.clone(),
                with(&|r| {
                    r.name = "generaI".into();
                    r.history.clear();
                }),
            ],
            holding(),
        ),
        (
            "a duplicate",
            vec![good.clone(), with(&|r| r.history.clear())],
            holding(),
        ),
        (
            "too many rooms",
            vec![
                good.clone(),
                with(&|r| {
                    r.name = "rust".into();
                    r.history.clear();
                }),
            ],
            Config {
                rooms_max: 1,
                ..unlimited()
            },
        ),
    ];
    for (what, rooms, config) in cases {
        let result = Engine::restore(config, "second-start", rooms);
        assert!(
            matches!(result, Err(Error::InvalidRestore(_))),
            "{what}: {result:?}"
        );
    }
    // A room whose history was lost but whose seq was kept is valid: nothing to recover.
    let bare = with(&|r| r.history.clear());
    assert!(Engine::restore(holding(), "second-start", [bare]).is_ok());
    assert!(Engine::restore(holding(), "second-start", [good]).is_ok());
}

#[test]
fn holding_needs_room_for_one_message() {
    let config = Config {
        uncommitted_max: 0,
        ..holding()
    };
    assert!(matches!(
        Engine::new(config, "e"),
        Err(Error::InvalidConfig(_))
    ));
    let off = Config {
        uncommitted_max: 0,
        ..unlimited()
    };
    assert!(
        Engine::new(off, "e").is_ok(),
        "the bound is unused without the hold"
    );
}

/// With a store, more rooms than `rooms_max` restore: the least recently active (given first)
/// sleep, and wake with their epoch and seq when joined.
#[test]
fn a_restore_past_rooms_max_puts_the_least_recent_rooms_to_sleep() {
    let mut first = shell(holding());
    let ann = member(&mut first, "general", "ann");
    let bob = member(&mut first, "rust", "bob");
    first.send(ann, "one");
    first.send(bob, "two");
    first.send(bob, "three");
    first.commit_all();
    let stores = first.take_stores();
    let rooms = [kept(&stores, "general"), kept(&stores, "rust")];
    let config = Config {
        rooms_max: 1,
        ..holding()
    };
    let mut h = Shell::restored(config, "second-start", rooms).expect("a valid restore");
    assert_eq!(
        (h.engine.stats().rooms, h.engine.stats().dormant_rooms),
        (1, 1)
    );
    let carl = h.connect_with(join("rust", "carl", None));
    let (history, _, seq, _) = greeted(&mut h, carl);
    assert_eq!(
        (history, seq),
        (vec![1, 2], 2),
        "the awake room has its history"
    );
    h.disconnect(carl);
    let dan = h.connect_with(join("general", "dan", None));
    let (history, _, seq, epoch) = greeted(&mut h, dan);
    assert_eq!(
        (history, seq),
        (vec![], 1),
        "woken: its seq, its history left to the store"
    );
    assert_eq!(epoch, stores[0].epoch);
}

/// A store failure drops every held message: each sender is told `unavailable`, nobody gets a
/// frame of them, and the rooms hand the same seqs out again.
#[test]
fn a_store_failure_refuses_every_held_message_and_reuses_their_seqs() {
    let mut h = shell(holding());
    let ann = member(&mut h, "general", "ann");
    let bob = member(&mut h, "general", "bob");
    h.send(ann, "one");
    h.send(bob, "two");
    let failed: Vec<u64> = h.take_stores().iter().map(|s| s.seq).collect();
    assert_eq!(failed, [1, 2]);
    h.fail_next().expect("the oldest op fails");
    assert_eq!(h.errors(ann), ["unavailable"]);
    assert_eq!(h.errors(bob), ["unavailable"]);
    assert_eq!(h.engine.stats().uncommitted, 0);
    assert_eq!(h.engine.stats().store_failures_total, 2);
    h.send(ann, "again");
    let stores = h.take_stores();
    assert_eq!(stores[0].seq, 1, "the seq is handed out again");
    h.commit_next();
    assert_eq!(seqs(&mut h, bob), [1]);
    assert_eq!(h.engine.stats().messages_total, 1);
}

/// A failure report for an op already dropped is stale and changes nothing; one for an op
/// that is not the oldest held is refused.
#[test]
fn stale_store_failures_are_ignored_and_out_of_order_ones_refused() {
    let mut h = shell(holding());
    let ann = member(&mut h, "general", "ann");
    h.send(ann, "one");
    h.send(ann, "two");
    let ops: Vec<OpId> = h.take_stores().iter().map(|s| s.op).collect();
    let wrong = h.handle(Input::StoreFailed { op: ops[1] });
    assert_eq!(
        wrong,
        Err(Error::CommitOutOfOrder {
            expected: Some(ops[0]),
            got: ops[1]
        })
    );
    assert_eq!(h.engine.stats().uncommitted, 2, "nothing dropped");
    h.fail_next().expect("the oldest fails");
    h.all_events();
    for op in ops {
        assert_eq!(h.handle(Input::StoreFailed { op }), Ok(()), "stale");
    }
    assert!(h.all_events().is_empty());
    let never = OpId::from_raw(99);
    assert!(h.handle(Input::StoreFailed { op: never }).is_err());
    h.send(ann, "three");
    h.commit_next();
    assert_eq!(seqs(&mut h, ann), [1]);
}

/// A sender that left before its message failed is told nothing (it is gone); the others still
/// get nothing of the message.
#[test]
fn a_failed_message_of_a_sender_who_left_goes_nowhere() {
    let mut h = shell(holding());
    let ann = member(&mut h, "general", "ann");
    let bob = member(&mut h, "general", "bob");
    h.send(ann, "bye");
    h.disconnect(ann);
    h.all_events();
    h.fail_next().expect("fails");
    assert!(h.all_events().is_empty(), "{:?}", h.take(bob));
}

/// Relaxed durability: messages go out at once and are handed to the store too; nothing is held.
#[test]
fn relaxed_durability_broadcasts_at_once_and_stores_too() {
    let mut h = shell(Config {
        store_relaxed: true,
        ..unlimited()
    });
    let ann = member(&mut h, "general", "ann");
    h.send(ann, "hi");
    assert_eq!(seqs(&mut h, ann), [1], "at once");
    let stores = h.take_stores();
    assert_eq!(stores.iter().map(|s| s.seq).collect::<Vec<_>>(), [1]);
    assert_eq!(h.engine.stats().uncommitted, 0);
    assert!(h.outstanding().is_empty());
    let both = Config {
        store_relaxed: true,
        ..holding()
    };
    assert!(matches!(
        Engine::new(both, "e"),
        Err(Error::InvalidConfig(_))
    ));
}

/// A failure report for an op dropped earlier, arriving while newer messages are held, is stale:
/// it drops none of them. One for the op the engine would hand out next, never handed out yet,
/// is refused.
#[test]
fn a_stale_failure_spares_messages_held_since() {
    let mut h = shell(holding());
    let ann = member(&mut h, "general", "ann");
    h.send(ann, "one");
    let first = h.take_stores()[0].op;
    h.fail_next().expect("fails");
    h.all_events();
    h.send(ann, "two");
    assert_eq!(h.handle(Input::StoreFailed { op: first }), Ok(()), "stale");
    assert_eq!(
        h.engine.stats().uncommitted,
        1,
        "the newer message is still held"
    );
    h.commit_next();
    assert_eq!(seqs(&mut h, ann), [1]);
    let next = OpId::from_raw(h.take_stores().last().expect("a store").op.get() + 1);
    assert!(matches!(
        h.handle(Input::StoreFailed { op: next }),
        Err(Error::CommitOutOfOrder { expected: None, .. })
    ));
}

/// Without a store, exactly `rooms_max` rooms restore; with one, a duplicate name among the
/// rooms put to sleep is refused like any duplicate.
#[test]
fn restore_limits_hold_at_their_edges() {
    let mut first = shell(holding());
    let ann = member(&mut first, "general", "ann");
    let bob = member(&mut first, "rust", "bob");
    first.send(ann, "one");
    first.send(bob, "two");
    first.commit_all();
    let stores = first.take_stores();
    let rooms = [kept(&stores, "general"), kept(&stores, "rust")];
    let two = Config {
        rooms_max: 2,
        ..unlimited()
    };
    assert!(Engine::restore(two, "second-start", rooms.clone()).is_ok());
    let twice = [
        kept(&stores, "general"),
        kept(&stores, "general"),
        kept(&stores, "rust"),
    ];
    let one = Config {
        rooms_max: 1,
        ..holding()
    };
    assert!(matches!(
        Engine::restore(one, "second-start", twice),
        Err(Error::InvalidRestore(_))
    ));
}
