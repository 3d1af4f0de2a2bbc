//! Dormant rooms woken with their stored tail (`tail_on_wake`): a join into one waits for the
//! store's read, one read per room, and is then carried out as if the room had never slept.

use super::{history_seqs, welcome};
use crate::protocol::JoinRequest;
use crate::test_kit::{unlimited, Shell, StoreRequest, TailRequest};
use crate::{ClientId, Config, RestoredRoom, ServerMessage};

fn waking() -> Config {
    Config {
        hold_until_committed: true,
        tail_on_wake: true,
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

/// The welcome `id` got: (history seqs, recovered, seq, epoch).
fn greeted(h: &mut Shell, id: ClientId) -> (Vec<u64>, bool, u64, String) {
    let got = h.take(id);
    let (_, _, _, history, recovered, seq, epoch) = welcome(&got);
    (history_seqs(history), recovered, seq, epoch.to_owned())
}

/// A first run that posts `count` messages into each of `rooms` and commits them: its stores.
fn first_run(rooms: &[&str], count: usize) -> Vec<StoreRequest> {
    let mut first = Shell::new(waking(), "first-start");
    for (n, room) in rooms.iter().enumerate() {
        let id = first.connect_with(join(room, &format!("poster{n}"), None));
        for i in 0..count {
            first.send(id, &format!("{room} {i}"));
        }
    }
    first.commit_all();
    first.take_stores()
}

/// A second start from what the first stored, every room handed back without its history (a
/// start that reads none), the store keeping them all.
fn second_start(config: Config, stores: &[StoreRequest]) -> Shell {
    let mut rooms: Vec<RestoredRoom> = Vec::new();
    for store in stores {
        match rooms.iter_mut().find(|r| r.name == store.room) {
            Some(room) => room.seq = store.seq,
            None => rooms.push(RestoredRoom {
                name: store.room.clone(),
                epoch: store.epoch.clone(),
                seq: store.seq,
                history: Vec::new(),
            }),
        }
    }
    let mut h = Shell::restored(config, "second-start", rooms).expect("a valid restore");
    for store in stores {
        h.seed_store(&store.room, [(store.seq, store.frame.clone())]);
    }
    h
}

fn epoch_of(stores: &[StoreRequest], room: &str) -> String {
    let store = stores.iter().find(|s| s.room == room).expect("stored");
    store.epoch.clone()
}

/// Restored without their history, rooms sleep; a join waits (nothing is sent to it) while the
/// room's tail is read, then is welcomed with it: a `since` recovers exactly what it missed.
#[test]
fn a_join_into_a_room_restored_without_history_waits_for_its_tail_and_recovers() {
    let stores = first_run(&["general", "rust"], 5);
    let mut h = second_start(waking(), &stores);
    let stats = h.engine.stats();
    assert_eq!((stats.rooms, stats.dormant_rooms), (0, 2), "all asleep");
    let epoch = epoch_of(&stores, "general");
    let carl = h.connect_with(join("general", "carl", Some((3, &epoch))));
    assert!(h.take(carl).is_empty(), "nothing before the room is awake");
    let asked: Vec<TailRequest> = h.tail_loads().iter().cloned().collect();
    let want = TailRequest {
        room: "general".into(),
        seq: 5,
        limit: 100,
    };
    assert_eq!(asked, [want]);
    h.answer_tail_loads();
    let (history, recovered, seq, woken) = greeted(&mut h, carl);
    assert_eq!((history, recovered, seq), (vec![4, 5], true, 5));
    assert_eq!(woken, epoch, "the room's own epoch");
    let stats = h.engine.stats();
    assert_eq!(
        (stats.rooms, stats.dormant_rooms),
        (1, 1),
        "only 'general' woke"
    );
    h.send(carl, "six");
    assert_eq!(h.take_stores()[0].seq, 6, "its seqs go on");
}

/// However many join a sleeping room before its tail comes, it is read once, and each join is
/// carried out when it comes, in the order they were asked.
#[test]
fn joins_into_one_sleeping_room_share_one_read_and_are_carried_out_in_order() {
    let stores = first_run(&["general"], 3);
    let mut h = second_start(waking(), &stores);
    let ann = h.connect_with(join("general", "ann", None));
    let bob = h.connect_with(join("general", "bob", None));
    assert_eq!(h.tail_loads().len(), 1, "one read for both");
    h.answer_tail_loads();
    let got = h.take(ann);
    let (_, _, users, history, _, _, _) = welcome(&got);
    assert_eq!(
        (users, history_seqs(history)),
        (&["ann".to_owned()][..], vec![1, 2, 3])
    );
    assert!(
        matches!(&got[1..], [ServerMessage::Join { nick, .. }] if nick == "bob"),
        "ann, first in, hears bob: {got:?}"
    );
    let (history, _, seq, _) = greeted(&mut h, bob);
    assert_eq!((history, seq), (vec![1, 2, 3], 3));
}

/// A join that waits is replaced by the client's next one, and forgotten when it leaves: a
/// tail nobody waits for any more wakes nothing, and the room sleeps on.
#[test]
fn a_tail_whose_joiners_left_or_went_elsewhere_wakes_nothing() {
    let stores = first_run(&["general", "rust"], 2);
    let mut h = second_start(waking(), &stores);
    let ann = h.connect_with(join("general", "ann", None));
    let bob = h.connect_with(join("general", "bob", None));
    h.disconnect(ann);
    h.send(bob, r#"{"type":"join","room":"fresh"}"#);
    let got = h.take(bob);
    assert!(
        matches!(&got[..], [ServerMessage::Welcome { room, .. }] if room == "fresh"),
        "bob's later join is the one carried out: {got:?}"
    );
    h.answer_tail_loads();
    assert!(h.take(bob).is_empty(), "the old join is not carried out");
    let stats = h.engine.stats();
    assert_eq!(
        (stats.rooms, stats.dormant_rooms),
        (1, 2),
        "'general' sleeps on"
    );
    // Asked again, it is read again.
    let carl = h.connect_with(join("general", "carl", None));
    h.answer_tail_loads();
    assert_eq!(greeted(&mut h, carl).0, [1, 2]);
}

/// While its join waits, a client stays where it was: it still hears its room, and leaves it
/// only once the woken room takes it.
#[test]
fn a_switch_into_a_sleeping_room_leaves_the_old_room_only_once_it_is_awake() {
    let stores = first_run(&["rust"], 1);
    let mut h = second_start(waking(), &stores);
    let ann = h.connect_with(join("general", "ann", None));
    let bob = h.connect_with(join("general", "bob", None));
    h.all_events();
    h.send(ann, r#"{"type":"join","room":"rust"}"#);
    h.send(bob, "still here?");
    h.commit_all();
    let texts: Vec<String> = (h.take(ann).into_iter())
        .filter_map(|m| match m {
            ServerMessage::Message(m) => Some(m.text),
            _ => None,
        })
        .collect();
    assert_eq!(texts, ["still here?"], "ann still hears 'general'");
    h.take(bob);
    h.answer_tail_loads();
    let got = h.take(bob);
    assert!(
        matches!(&got[..], [ServerMessage::Leave { nick, .. }] if nick == "ann"),
        "{got:?}"
    );
    let got = h.take(ann);
    assert!(
        matches!(&got[..], [ServerMessage::Welcome { room, seq: 1, .. }] if room == "rust"),
        "{got:?}"
    );
}

/// A tail that is not the room's history (a gap, a frame of another room or seq) wakes the room
/// without one: a `since` is then not recovered, never answered with the wrong messages.
#[test]
fn a_tail_that_is_not_the_rooms_history_wakes_it_empty() {
    let stores = first_run(&["general", "rust"], 3);
    let mut h = second_start(waking(), &stores);
    let epoch = epoch_of(&stores, "general");
    let carl = h.connect_with(join("general", "carl", Some((1, &epoch))));
    let rust_frame = (stores.iter().find(|s| s.room == "rust")).expect("stored");
    let wrong = [(2, stores[1].frame.clone()), (3, rust_frame.frame.clone())];
    h.answer_tail_load_with("general", &wrong);
    let (history, recovered, seq, _) = greeted(&mut h, carl);
    assert_eq!((history, recovered, seq), (vec![], false, 3));
    assert_eq!(h.engine.stats().tails_refused_total, 1);
}

/// A room forgotten to make space (`rooms_max`) comes back with its history: an old `since`
/// into it recovers, where without `tail_on_wake` it wakes empty.
#[test]
fn a_room_forgotten_for_space_comes_back_with_its_history() {
    let mut h = Shell::new(
        Config {
            rooms_max: 1,
            ..waking()
        },
        "only-start",
    );
    let ann = h.connect_with(join("old", "ann", None));
    h.send(ann, "one");
    h.send(ann, "two");
    h.commit_all();
    let epoch = h.take_stores()[0].epoch.clone();
    h.disconnect(ann);
    let bob = h.connect_with(join("new", "bob", None));
    h.disconnect(bob);
    assert!(h.tail_loads().is_empty(), "'new' had no history to read");
    let carl = h.connect_with(join("old", "carl", Some((1, &epoch))));
    h.answer_tail_loads();
    let (history, recovered, seq, woken) = greeted(&mut h, carl);
    assert_eq!((history, recovered, seq, woken), (vec![2], true, 2, epoch));
}

/// A room that cannot wake (every room in memory occupied) refuses the joins that waited, as a
/// room that cannot be created does.
#[test]
fn a_tail_with_no_room_to_wake_in_refuses_its_joins() {
    let stores = first_run(&["general"], 1);
    let mut h = second_start(
        Config {
            rooms_max: 1,
            ..waking()
        },
        &stores,
    );
    let ann = h.connect_with(join("general", "ann", None));
    let bob = h.connect_with(join("busy", "bob", None));
    assert_eq!(greeted(&mut h, bob).2, 0, "'busy' took the only place");
    h.answer_tail_loads();
    assert_eq!(h.errors(ann), ["too_many_rooms"]);
    assert_eq!(h.engine.stats().dormant_rooms, 1, "'general' sleeps on");
}

/// Only rooms handed back without their history, and with messages, sleep: a room with its
/// history is awake at once, and so is one that never had a message (there is nothing to read).
#[test]
fn a_restore_puts_to_sleep_only_the_rooms_whose_history_the_store_keeps() {
    let stores = first_run(&["general"], 2);
    let rooms = [
        RestoredRoom {
            name: "general".into(),
            epoch: stores[0].epoch.clone(),
            seq: 2,
            history: stores.iter().map(|s| (s.seq, s.frame.clone())).collect(),
        },
        RestoredRoom {
            name: "quiet".into(),
            epoch: "first-start-9".into(),
            seq: 0,
            history: Vec::new(),
        },
    ];
    let mut h = Shell::restored(waking(), "second-start", rooms).expect("a valid restore");
    let stats = h.engine.stats();
    assert_eq!((stats.rooms, stats.dormant_rooms), (2, 0), "both awake");
    let ann = h.connect_with(join("general", "ann", None));
    assert!(h.tail_loads().is_empty(), "an awake room reads nothing");
    assert_eq!(greeted(&mut h, ann).0, [1, 2]);
}

/// A sleeping room that never had a message wakes at once: there is no tail to wait for.
#[test]
fn a_sleeping_room_without_messages_wakes_without_a_read() {
    let mut h = Shell::new(
        Config {
            rooms_max: 1,
            ..waking()
        },
        "only-start",
    );
    let ann = h.connect_with(join("silent", "ann", None));
    h.disconnect(ann);
    let bob = h.connect_with(join("other", "bob", None));
    h.disconnect(bob);
    assert_eq!(h.engine.stats().dormant_rooms, 1, "'silent' sleeps");
    let carl = h.connect_with(join("silent", "carl", None));
    assert!(h.tail_loads().is_empty());
    assert_eq!(greeted(&mut h, carl).2, 0, "welcomed at once");
}

/// A tail reaching down to a seq 0 (which no message has) is not the room's history.
#[test]
fn a_tail_from_seq_0_is_refused() {
    let stores = first_run(&["general"], 1);
    let mut h = second_start(waking(), &stores);
    let carl = h.connect_with(join("general", "carl", None));
    let zero = r#"{"type":"message","room":"general","seq":0,"nick":"x","text":"t","ts":"t"}"#;
    let tail = [
        (0, bytes::Bytes::from_static(zero.as_bytes())),
        (1, stores[0].frame.clone()),
    ];
    h.answer_tail_load_with("general", &tail);
    assert_eq!(greeted(&mut h, carl).0, Vec::<u64>::new());
    assert_eq!(h.engine.stats().tails_refused_total, 1);
}
