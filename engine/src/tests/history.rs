//! History's byte budgets: per room and over every room, the oldest message goes first, and a
//! `since` from before what is kept answers `recovered: false`.

use proptest::prelude::*;

use super::{history_seqs, shell, welcome};
use crate::protocol::JoinRequest;
use crate::test_kit::{unlimited, Shell};
use crate::{ClientId, Config};

/// A text of `len` bytes whose message frame has the same size for every seq below 10.
fn text(len: usize) -> String {
    "x".repeat(len)
}

/// What one message of `len` text bytes from a 3-letter nick in a 3-letter room costs the
/// history budgets.
fn frame_bytes(len: usize) -> usize {
    let mut h = shell(unlimited());
    let ann = h.connect_with(JoinRequest {
        room: Some("aaa".into()),
        nick: Some("ann".into()),
        ..Default::default()
    });
    h.send(ann, &text(len));
    h.engine.stats().history_bytes
}

/// Joins `room` as `nick` asking for what followed `since`; returns (recovered, kept seqs).
fn rejoin(h: &mut Shell, room: &str, nick: &str, since: u64, epoch: &str) -> (bool, Vec<u64>) {
    let id = h.connect_with(JoinRequest {
        room: Some(room.into()),
        nick: Some(nick.into()),
        since: Some(since),
        epoch: Some(epoch.into()),
    });
    let got = h.take(id);
    let (_, _, _, history, recovered, ..) = welcome(&got);
    (recovered, history_seqs(history))
}

fn epoch_of(h: &mut Shell, id: ClientId) -> String {
    let got = h.take(id);
    welcome(&got).6.to_owned()
}

#[test]
fn a_room_keeps_its_newest_messages_within_its_byte_budget() {
    let frame = frame_bytes(100);
    let mut h = shell(Config {
        history_bytes_max: 3 * frame,
        default_room: "aaa".into(),
        ..unlimited()
    });
    let ann = h.connect("ann");
    let epoch = epoch_of(&mut h, ann);
    for _ in 0..5 {
        h.send(ann, &text(100));
    }
    assert_eq!(
        h.engine.stats().history_bytes,
        3 * frame,
        "three frames, to the byte"
    );
    assert_eq!(
        rejoin(&mut h, "aaa", "bob", 2, &epoch),
        (true, vec![3, 4, 5])
    );
    assert_eq!(
        rejoin(&mut h, "aaa", "cy", 1, &epoch),
        (false, vec![3, 4, 5]),
        "message 2 is gone: not recovered, never a gap"
    );
}

#[test]
fn over_the_total_the_oldest_message_anywhere_goes() {
    let frame = frame_bytes(100);
    let mut h = shell(Config {
        history_total_bytes_max: 3 * frame,
        ..unlimited()
    });
    let ann = h.connect_with(JoinRequest {
        room: Some("aaa".into()),
        nick: Some("ann".into()),
        ..Default::default()
    });
    let epoch_a = epoch_of(&mut h, ann);
    h.send(ann, &text(100));
    h.send(ann, &text(100));
    // ann leaves: her empty room keeps its history only while the total has space.
    h.disconnect(ann);
    let bob = h.connect_with(JoinRequest {
        room: Some("bbb".into()),
        nick: Some("bob".into()),
        ..Default::default()
    });
    let epoch_b = epoch_of(&mut h, bob);
    h.send(bob, &text(100));
    assert_eq!(h.engine.stats().history_bytes, 3 * frame);
    h.send(bob, &text(100));
    assert_eq!(
        h.engine.stats().history_bytes,
        3 * frame,
        "one message went"
    );
    assert_eq!(rejoin(&mut h, "aaa", "a1", 1, &epoch_a), (true, vec![2]));
    assert_eq!(rejoin(&mut h, "aaa", "a2", 0, &epoch_a), (false, vec![2]));
    h.send(bob, &text(100));
    h.send(bob, &text(100));
    assert_eq!(rejoin(&mut h, "aaa", "a3", 0, &epoch_a), (false, vec![]));
    assert_eq!(
        rejoin(&mut h, "bbb", "b1", 1, &epoch_b),
        (true, vec![2, 3, 4])
    );
}

#[test]
fn a_message_larger_than_the_budget_empties_the_history_rather_than_leave_a_gap() {
    let small = frame_bytes(10);
    let mut h = shell(Config {
        history_bytes_max: 2 * small,
        ..unlimited()
    });
    let ann = h.connect("ann");
    let epoch = epoch_of(&mut h, ann);
    h.send(ann, &text(10));
    h.send(ann, &text(10));
    h.send(ann, &text(3 * small));
    assert_eq!(h.engine.stats().history_bytes, 0);
    assert_eq!(rejoin(&mut h, "general", "bob", 2, &epoch), (false, vec![]));
    h.send(ann, &text(10));
    assert_eq!(rejoin(&mut h, "general", "cy", 3, &epoch), (true, vec![4]));
}

#[test]
fn a_forgotten_room_gives_its_bytes_back() {
    let mut h = shell(Config {
        rooms_max: 1,
        ..unlimited()
    });
    let ann = h.connect_with(JoinRequest {
        room: Some("aaa".into()),
        nick: Some("ann".into()),
        ..Default::default()
    });
    h.send(ann, &text(50));
    h.disconnect(ann);
    assert!(h.engine.stats().history_bytes > 0);
    h.connect_with(JoinRequest {
        room: Some("bbb".into()),
        nick: Some("bob".into()),
        ..Default::default()
    });
    assert_eq!(h.engine.stats().rooms, 1);
    assert_eq!(h.engine.stats().history_bytes, 0);
}

/// The rule as a reference: every kept message in arrival order, dropped oldest first, a
/// room's own for its bounds, anyone's for the total.
#[derive(Default)]
struct Reference {
    /// (room, seq, frame bytes), oldest first.
    kept: Vec<(usize, u64, usize)>,
    seqs: [u64; 3],
}

impl Reference {
    fn post(&mut self, room: usize, bytes: usize, config: &Config) {
        self.seqs[room] += 1;
        let room_total = |kept: &[(usize, u64, usize)]| {
            let own = kept.iter().filter(|k| k.0 == room);
            (own.clone().count(), own.map(|k| k.2).sum::<usize>())
        };
        if bytes > config.history_bytes_max.min(config.history_total_bytes_max) {
            self.kept.retain(|k| k.0 != room);
            return;
        }
        self.kept.push((room, self.seqs[room], bytes));
        loop {
            let (count, total) = room_total(&self.kept);
            if count <= config.history_max && total <= config.history_bytes_max {
                break;
            }
            let oldest = self.kept.iter().position(|k| k.0 == room).expect("kept");
            self.kept.remove(oldest);
        }
        while self.kept.iter().map(|k| k.2).sum::<usize>() > config.history_total_bytes_max {
            self.kept.remove(0);
        }
    }

    fn seqs(&self, room: usize) -> Vec<u64> {
        self.kept
            .iter()
            .filter(|k| k.0 == room)
            .map(|k| k.1)
            .collect()
    }
}

const ROOMS: [&str; 3] = ["aaa", "bbb", "ccc"];

proptest! {
    /// Whatever is posted where, each room keeps exactly the messages the reference rule keeps:
    /// its newest, within the message count, its byte budget and the total's, the oldest
    /// anywhere going first (and the engine's invariants, checked after every call, hold).
    #[test]
    fn histories_keep_what_the_reference_rule_keeps(
        posts in proptest::collection::vec((0..3usize, 1..120usize), 1..60),
        history_max in 1..6usize,
        room_frames in 1..5usize,
        total_frames in 1..8usize,
    ) {
        let unit = frame_bytes(60);
        let config = Config {
            history_max,
            history_bytes_max: room_frames * unit,
            history_total_bytes_max: total_frames * unit,
            ..unlimited()
        };
        let mut h = shell(config.clone());
        let mut reference = Reference::default();
        let mut posters = Vec::new();
        let mut probes = Vec::new();
        for room in ROOMS {
            for (who, list) in [("n", &mut posters), ("p", &mut probes)] {
                list.push(h.connect_with(JoinRequest {
                    room: Some(room.into()),
                    nick: Some(format!("{who}{room}")),
                    ..Default::default()
                }));
            }
        }
        for &probe in &probes {
            h.stop_flushing(probe);
        }
        for &(room, len) in &posts {
            // The frame's size: what the room's probe, which reads nothing, has queued more.
            let queued = |h: &Shell| h.engine.queued(probes[room]).expect("connected").1;
            let before = queued(&h);
            h.send(posters[room], &text(len));
            let frame = queued(&h) - before;
            reference.post(room, frame + crate::history::ENTRY_OVERHEAD, &config);
            prop_assert_eq!(
                h.engine.stats().history_bytes,
                reference.kept.iter().map(|k| k.2).sum::<usize>()
            );
        }
        for (room, name) in ROOMS.iter().enumerate() {
            prop_assert_eq!(kept_seqs(&h, name), reference.seqs(room), "room {}", name);
        }
        prop_assert_eq!(
            h.engine.stats().history_bytes,
            reference.kept.iter().map(|k| k.2).sum::<usize>()
        );
    }
}

/// The seqs room `name` keeps, oldest first.
fn kept_seqs(h: &Shell, name: &str) -> Vec<u64> {
    let r = h.engine.room_index[&crate::names::room_likeness(name)];
    h.engine.rooms[r].history.iter().map(|s| s.seq).collect()
}
