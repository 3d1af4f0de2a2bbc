//! Cluster mode (`ordered_by_broker`) scenario by scenario: nothing is delivered before the
//! broker orders it, the sender's copy is its acknowledgement, a failed publish tells the sender
//! `unavailable`, the pending publishes are bounded, and a room follows the broker's epoch and
//! gaps (the property test `tests/cluster.rs` drives the same under a misbehaving broker).

use bytes::Bytes;

use super::{shell, welcome};
use crate::protocol::JoinRequest;
use crate::test_kit::{unlimited, Delivery, FakeBroker, Shell};
use crate::{Config, Input, ServerMessage};

fn ordered() -> Config {
    Config {
        ordered_by_broker: true,
        ..unlimited()
    }
}

/// Orders every pending publish of `h` at `broker` and delivers each back to `h`.
fn order_all(h: &mut Shell, broker: &mut FakeBroker) {
    for publish in h.take_publishes() {
        let delivery = broker.order(&publish.room, &publish.message);
        h.handle(Input::Published { op: publish.op }).unwrap();
        let input = Input::Ordered {
            room: &delivery.room,
            epoch: &delivery.epoch,
            seq: delivery.seq,
            frame: &delivery.frame,
        };
        h.handle(input).unwrap();
    }
}

#[test]
fn a_message_is_delivered_only_as_the_broker_ordered_it() {
    let mut h = shell(ordered());
    let mut broker = FakeBroker::new(10);
    let ann = h.connect("ann");
    let bob = h.connect("bob");
    h.all_events();
    h.send(ann, "hello");
    assert!(
        h.take(ann).is_empty() && h.take(bob).is_empty(),
        "held for the broker"
    );
    assert_eq!(h.engine.stats().uncommitted, 1);
    order_all(&mut h, &mut broker);
    // The room takes the broker's epoch first: its members are welcomed again, then get it.
    for id in [ann, bob] {
        let got = h.take(id);
        let (_, _, _, history, recovered, seq, epoch) = welcome(&got);
        assert_eq!((history.len(), recovered, seq, epoch), (0, false, 0, "b1"));
        assert!(
            matches!(&got[1..], [ServerMessage::Message(m)] if m.seq == 1 && m.text == "hello" && m.nick == "ann")
        );
    }
    assert_eq!(h.engine.stats().uncommitted, 0);
    // The next one needs no new welcome.
    h.send(bob, "again");
    order_all(&mut h, &mut broker);
    assert_eq!(h.texts(ann), ["again"]);
}

#[test]
fn a_failed_publish_tells_its_sender_and_nobody_else() {
    let mut h = shell(ordered());
    let ann = h.connect("ann");
    let bob = h.connect("bob");
    h.all_events();
    h.send(ann, "hello");
    let publish = h.take_publishes().pop().unwrap();
    h.handle(Input::PublishFailed { op: publish.op }).unwrap();
    let errors = h.errors(ann);
    assert_eq!(errors.len(), 1);
    assert!(errors[0].starts_with("unavailable"), "{errors:?}");
    assert!(h.take(bob).is_empty());
    // A second report of it changes nothing.
    h.handle(Input::PublishFailed { op: publish.op }).unwrap();
    assert!(h.take(ann).is_empty());
    assert_eq!(h.engine.stats().store_failures_total, 1);
}

#[test]
fn publishes_waiting_for_the_broker_are_bounded() {
    let mut h = shell(Config {
        uncommitted_max: 2,
        ..ordered()
    });
    let ann = h.connect("ann");
    h.all_events();
    for text in ["a", "b", "c"] {
        h.send(ann, text);
    }
    assert_eq!(h.take_publishes().len(), 2);
    let errors = h.errors(ann);
    assert!(
        matches!(&errors[..], [e] if e.starts_with("unavailable")),
        "{errors:?}"
    );
}

#[test]
fn a_gap_waits_for_its_refill_and_a_lost_gap_rewelcomes() {
    let mut h = shell(ordered());
    let mut broker = FakeBroker::new(2);
    let ann = h.connect("ann");
    let remote = |broker: &mut FakeBroker, text: &str| {
        let mut other = shell(ordered());
        let id = other.connect("zed");
        other.send(id, text);
        let publish = other.take_publishes().pop().unwrap();
        broker.order(&publish.room, &publish.message)
    };
    let first = remote(&mut broker, "one");
    let deliver = |h: &mut Shell, d: &crate::test_kit::Delivery| {
        let input = Input::Ordered {
            room: &d.room,
            epoch: &d.epoch,
            seq: d.seq,
            frame: &d.frame,
        };
        h.handle(input).unwrap();
    };
    deliver(&mut h, &first);
    h.all_events();
    let second = remote(&mut broker, "two");
    let third = remote(&mut broker, "three");
    deliver(&mut h, &third);
    assert!(h.take(ann).is_empty(), "seq 3 waits for seq 2");
    let refill = h.take_refills().pop().expect("a refill is asked");
    assert_eq!(refill.after, 1);
    // A duplicate of what was delivered is dropped.
    deliver(&mut h, &first);
    assert_eq!(h.engine.stats().broker_duplicates_total, 1);
    let range = broker.range(&refill.room, refill.after, 10);
    assert!(range.complete);
    let input = Input::Refilled {
        room: &refill.room,
        epoch: &range.epoch,
        messages: &range.messages,
        complete: range.complete,
    };
    h.handle(input).unwrap();
    assert_eq!(h.texts(ann), ["two", "three"]);
    drop(second);

    // Four more, of which the broker keeps two: seqs 5 and 6 are gone by the refill.
    let lost: Vec<_> = ["4", "5", "6", "7", "8"]
        .iter()
        .map(|text| remote(&mut broker, text))
        .collect();
    deliver(&mut h, &lost[4]);
    let refill = h.take_refills().pop().expect("a refill is asked");
    let range = broker.range(&refill.room, refill.after, 10);
    assert!(!range.complete);
    let input = Input::Refilled {
        room: &refill.room,
        epoch: &range.epoch,
        messages: &range.messages,
        complete: range.complete,
    };
    h.handle(input).unwrap();
    let got = h.take(ann);
    let (_, _, _, history, recovered, seq, _) = welcome(&got);
    assert_eq!((history.len(), recovered, seq), (0, false, 6));
    let texts: Vec<&str> = (got[1..].iter())
        .filter_map(|m| match m {
            ServerMessage::Message(m) => Some(m.text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(texts, ["7", "8"]);
}

#[test]
fn an_empty_broker_means_a_new_epoch_for_every_member() {
    let mut h = shell(ordered());
    let mut broker = FakeBroker::new(10);
    let ann = h.connect("ann");
    h.send(ann, "one");
    order_all(&mut h, &mut broker);
    h.all_events();
    broker.lose_everything();
    h.send(ann, "two");
    order_all(&mut h, &mut broker);
    let got = h.take(ann);
    let (_, _, _, _, recovered, seq, epoch) = welcome(&got);
    assert_eq!((recovered, seq, epoch), (false, 0, "b2"));
    assert!(matches!(&got[1..], [ServerMessage::Message(m)] if m.seq == 1 && m.text == "two"));
}

#[test]
fn resumed_deliveries_ask_every_room_for_what_it_missed() {
    let mut h = shell(ordered());
    let ann = h.connect("ann");
    h.send(ann, r#"{"type":"join","room":"side"}"#);
    h.handle(Input::BrokerResumed).unwrap();
    let mut rooms: Vec<String> = h.take_refills().into_iter().map(|r| r.room).collect();
    rooms.sort();
    assert_eq!(rooms, ["general", "side"]);
    // Asked once: a second break while the refills are out asks nothing more.
    h.handle(Input::BrokerResumed).unwrap();
    assert!(h.take_refills().is_empty());
}

/// The regression proptest `tests/cluster.rs` found: a break while a refill is out must not be
/// forgotten, since that refill's page may have been read before what the break lost.
#[test]
fn a_break_while_a_refill_is_out_asks_again_once_it_is_answered() {
    let mut h = shell(ordered());
    let mut broker = FakeBroker::new(10);
    let mut zed = Remote::new("general");
    let ann = h.connect("ann");
    h.all_events();
    h.handle(Input::BrokerResumed).unwrap();
    let d = zed.say_all(&mut broker, 1..=4);
    for delivery in &d[..3] {
        deliver(&mut h, delivery);
    }
    // 4 is lost in a second break; the refill asked after 0 is still out.
    h.handle(Input::BrokerResumed).unwrap();
    assert_eq!(
        seen(&mut h, ann),
        lines(&["welcome 0 b1 false h0", "1 t1", "2 t2", "3 t3"])
    );
    // Its page stops at its limit before 4, and brings nothing new.
    assert_eq!(answer_refill(&mut h, &mut broker, 3), 0);
    assert!(h.take(ann).is_empty());
    assert_eq!(answer_refill(&mut h, &mut broker, 3), 3, "asked again");
    assert_eq!(seen(&mut h, ann), lines(&["4 t4"]));
    // Caught up: the empty page after 4 is the last.
    assert_eq!(answer_refill(&mut h, &mut broker, 3), 4);
    assert!(h.take_refills().is_empty());
}

/// Epochs have no order, so a late delivery from the broker's previous epoch is followed like
/// one from its next; the refill every switch asks for brings the room back to the broker's.
#[test]
fn a_late_delivery_from_an_old_epoch_is_undone_by_the_brokers_word() {
    let mut h = shell(ordered());
    let mut broker = FakeBroker::new(10);
    let mut zed = Remote::new("general");
    let ann = h.connect("ann");
    h.all_events();
    let old = zed.say(&mut broker, "old");
    broker.lose_everything();
    let new = zed.say(&mut broker, "new");
    deliver(&mut h, &new);
    assert_eq!(
        seen(&mut h, ann),
        lines(&["welcome 0 b2 false h0", "1 new"])
    );
    deliver(&mut h, &old);
    assert_eq!(
        seen(&mut h, ann),
        lines(&["welcome 0 b1 false h0", "1 old"])
    );
    // The refill asked on the switch to b2 answers in b2: the room goes back, from its start.
    assert_eq!(answer_refill(&mut h, &mut broker, 10), 1);
    assert_eq!(seen(&mut h, ann), lines(&["welcome 0 b2 false h0"]));
    assert_eq!(answer_refill(&mut h, &mut broker, 10), 0);
    assert_eq!(seen(&mut h, ann), lines(&["1 new"]));
    assert_eq!(answer_refill(&mut h, &mut broker, 10), 1);
    assert!(h.take_refills().is_empty());
}

#[test]
fn a_broker_frame_that_is_not_the_rooms_message_is_refused() {
    let mut h = shell(ordered());
    let ann = h.connect("ann");
    h.all_events();
    let frame = bytes::Bytes::from_static(
        br#"{"type":"message","room":"other","seq":1,"nick":"x","text":"t","ts":"t"}"#,
    );
    let input = Input::Ordered {
        room: "general",
        epoch: "b1",
        seq: 1,
        frame: &frame,
    };
    h.handle(input).unwrap();
    assert!(h.take(ann).is_empty());
    assert_eq!(h.engine.stats().broker_refused_total, 1);
}

#[test]
fn a_cluster_config_has_no_store_of_its_own() {
    for config in [
        Config {
            hold_until_committed: true,
            ..ordered()
        },
        Config {
            store_relaxed: true,
            ..ordered()
        },
        Config {
            uncommitted_max: 0,
            ..ordered()
        },
    ] {
        assert!(config.validate().is_err(), "{config:?}");
    }
}

#[test]
fn a_node_without_a_broker_refuses_broker_inputs() {
    let mut h = shell(unlimited());
    let frame = bytes::Bytes::from_static(b"{}");
    let inputs = [
        Input::Published {
            op: crate::OpId::from_raw(1),
        },
        Input::PublishFailed {
            op: crate::OpId::from_raw(1),
        },
        Input::Ordered {
            room: "general",
            epoch: "b1",
            seq: 1,
            frame: &frame,
        },
        Input::Refilled {
            room: "general",
            epoch: "b1",
            messages: &[],
            complete: true,
        },
        Input::BrokerResumed,
    ];
    for input in inputs {
        assert_eq!(
            h.handle(input),
            Err(crate::Error::NotClustered),
            "{input:?}"
        );
    }
}

// ------------------------------------------------------------- sleeping rooms, gaps, refills

/// A member of `room` on another node: what it says is ordered at the broker, and the delivery
/// is handed back for the node under test to get (or not).
struct Remote {
    node: Shell,
    id: crate::ClientId,
}

impl Remote {
    fn new(room: &str) -> Self {
        let mut node = shell(ordered());
        let id = node.connect_with(join_to("zed", room));
        Self { node, id }
    }

    fn say(&mut self, broker: &mut FakeBroker, text: &str) -> Delivery {
        self.node.send(self.id, text);
        let publish = self.node.take_publishes().pop().expect("a publish");
        let delivery = broker.order(&publish.room, &publish.message);
        (self.node)
            .handle(Input::Published { op: publish.op })
            .unwrap();
        delivery
    }

    /// `texts` said one after another.
    fn say_all(
        &mut self,
        broker: &mut FakeBroker,
        texts: impl IntoIterator<Item = u64>,
    ) -> Vec<Delivery> {
        (texts.into_iter())
            .map(|text| self.say(broker, &format!("t{text}")))
            .collect()
    }
}

fn join_to(nick: &str, room: &str) -> JoinRequest {
    JoinRequest {
        nick: Some(nick.to_owned()),
        room: Some(room.to_owned()),
        ..JoinRequest::default()
    }
}

fn deliver(h: &mut Shell, d: &Delivery) {
    let input = Input::Ordered {
        room: &d.room,
        epoch: &d.epoch,
        seq: d.seq,
        frame: &d.frame,
    };
    h.handle(input).unwrap();
}

fn refilled(h: &mut Shell, room: &str, epoch: &str, messages: &[(u64, Bytes)], complete: bool) {
    let input = Input::Refilled {
        room,
        epoch,
        messages,
        complete,
    };
    h.handle(input).unwrap();
}

/// Takes the one refill asked (its `after`), and answers it from `broker`, `limit` at most.
fn answer_refill(h: &mut Shell, broker: &mut FakeBroker, limit: usize) -> u64 {
    let refills = h.take_refills();
    let [refill] = &refills[..] else {
        panic!("one refill asked, not {refills:?}");
    };
    let range = broker.range(&refill.room, refill.after, limit);
    refilled(
        h,
        &refill.room,
        &range.epoch,
        &range.messages,
        range.complete,
    );
    refill.after
}

/// What a client got, welcomes and messages, as short lines: `welcome <seq> <epoch>
/// <recovered> h<history length>` and `<seq> <text>`.
fn seen(h: &mut Shell, id: crate::ClientId) -> Vec<String> {
    (h.take(id).into_iter())
        .filter_map(|m| match m {
            ServerMessage::Welcome {
                history,
                recovered,
                seq,
                epoch,
                ..
            } => Some(format!(
                "welcome {seq} {epoch} {recovered} h{}",
                history.len()
            )),
            ServerMessage::Message(m) => Some(format!("{} {}", m.seq, m.text)),
            _ => None,
        })
        .collect()
}

fn lines(expected: &[&str]) -> Vec<String> {
    expected.iter().map(|s| s.to_string()).collect()
}

#[test]
fn a_sleeping_room_keeps_where_the_broker_stands_for_its_next_member() {
    let mut h = shell(Config {
        rooms_max: 1,
        ..ordered()
    });
    let mut broker = FakeBroker::new(10);
    let mut zed = Remote::new("general");
    let ann = h.connect("ann");
    h.all_events();
    let d = zed.say_all(&mut broker, 1..=4);
    deliver(&mut h, &d[0]);
    assert_eq!(seen(&mut h, ann), lines(&["welcome 0 b1 false h0", "1 t1"]));
    assert_eq!(h.take_refills().len(), 1, "the broker's epoch is confirmed");
    // Emptied, then forgotten to make space for another room: it sleeps at seq 1.
    h.disconnect(ann);
    let bob = h.connect_with(join_to("bob", "side"));
    assert_eq!(h.engine.stats().dormant_rooms, 1);
    // Asleep, it follows the broker forward, never back.
    deliver(&mut h, &d[2]);
    deliver(&mut h, &d[1]);
    assert_eq!(h.engine.stats().dormant_rooms, 1);
    h.disconnect(bob);
    let carl = h.connect("carl");
    assert_eq!(seen(&mut h, carl), lines(&["welcome 3 b1 false h0"]));
    // Awake, it goes on from there: no refill, no new welcome.
    deliver(&mut h, &d[3]);
    assert_eq!(seen(&mut h, carl), lines(&["4 t4"]));
    assert!(h.take_refills().is_empty());
    assert_eq!(h.engine.stats().broker_resets_total, 1);

    // Asleep again, it follows a new epoch of the broker's, even to a lower seq.
    h.disconnect(carl);
    let dan = h.connect_with(join_to("dan", "side"));
    broker.lose_everything();
    let d = zed.say(&mut broker, "new");
    assert_eq!((d.epoch.as_str(), d.seq), ("b2", 1));
    deliver(&mut h, &d);
    h.disconnect(dan);
    let eve = h.connect("eve");
    assert_eq!(seen(&mut h, eve), lines(&["welcome 1 b2 false h0"]));
}

#[test]
fn a_room_first_heard_of_from_the_broker_starts_where_the_broker_is() {
    let mut h = shell(ordered());
    let mut broker = FakeBroker::new(10);
    let mut zed = Remote::new("side");
    let ann = h.connect("ann");
    h.all_events();
    let d = zed.say_all(&mut broker, 1..=4);
    // Nobody here is in "side": seqs 1 and 2 went by before this node heard of it.
    deliver(&mut h, &d[2]);
    assert!(h.take(ann).is_empty());
    assert!(h.take_refills().is_empty(), "nothing is missing");
    let bob = h.connect_with(join_to("bob", "side"));
    let got = h.take(bob);
    let (_, room, _, history, recovered, seq, epoch) = welcome(&got);
    assert_eq!((room, recovered, seq, epoch), ("side", false, 3, "b1"));
    assert!(
        matches!(history, [m] if m.seq == 3 && m.text == "t3"),
        "{history:?}"
    );
    deliver(&mut h, &d[3]);
    assert_eq!(seen(&mut h, bob), lines(&["4 t4"]));
    let stats = h.engine.stats();
    assert_eq!(
        (stats.broker_duplicates_total, stats.broker_resets_total),
        (0, 0)
    );
}

#[test]
fn an_early_message_goes_out_as_soon_as_its_gap_fills() {
    let mut h = shell(ordered());
    let mut broker = FakeBroker::new(10);
    let mut zed = Remote::new("general");
    let ann = h.connect("ann");
    h.all_events();
    let d = zed.say_all(&mut broker, 1..=5);
    deliver(&mut h, &d[0]);
    deliver(&mut h, &d[2]);
    deliver(&mut h, &d[4]);
    assert_eq!(seen(&mut h, ann), lines(&["welcome 0 b1 false h0", "1 t1"]));
    // 3 follows 2 at once; 5, past another gap, waits on.
    deliver(&mut h, &d[1]);
    assert_eq!(seen(&mut h, ann), lines(&["2 t2", "3 t3"]));
    deliver(&mut h, &d[3]);
    assert_eq!(seen(&mut h, ann), lines(&["4 t4", "5 t5"]));
    // The refill asked for the gap brings nothing new: nothing is delivered or asked again.
    assert_eq!(answer_refill(&mut h, &mut broker, 10), 1);
    assert!(h.take(ann).is_empty());
    assert!(h.take_refills().is_empty());
    assert_eq!(h.engine.stats().broker_duplicates_total, 0);
}

#[test]
fn early_messages_are_kept_up_to_a_bound_and_the_rest_refilled() {
    // Queues that take a thousand messages at once, so its member does not fall behind.
    let mut h = shell(Config {
        queue_frames_max: 4 * crate::ordering::EARLY_MAX,
        queue_high_water_frames: 2 * crate::ordering::EARLY_MAX,
        ..ordered()
    });
    let mut broker = FakeBroker::new(2 * crate::ordering::EARLY_MAX);
    let mut zed = Remote::new("general");
    let ann = h.connect("ann");
    h.all_events();
    let last = crate::ordering::EARLY_MAX as u64 + 3;
    let d = zed.say_all(&mut broker, 1..=last);
    deliver(&mut h, &d[0]);
    // Seq 2 is missing: 3 onwards wait, the newest past the bound dropped.
    for delivery in &d[2..] {
        deliver(&mut h, delivery);
    }
    assert_eq!(seen(&mut h, ann), lines(&["welcome 0 b1 false h0", "1 t1"]));
    assert_eq!(answer_refill(&mut h, &mut broker, 1), 1);
    let expected: Vec<String> = (2..last).map(|seq| format!("{seq} t{seq}")).collect();
    let got = seen(&mut h, ann);
    assert!(
        got == expected,
        "got {} messages, up to {:?}",
        got.len(),
        got.last()
    );
    assert_eq!(answer_refill(&mut h, &mut broker, 1), last - 1);
    assert_eq!(seen(&mut h, ann), [format!("{last} t{last}")]);
    assert_eq!(answer_refill(&mut h, &mut broker, 1), last);
    assert!(h.take_refills().is_empty());
}

#[test]
fn a_refill_page_cut_at_its_limit_asks_for_the_rest() {
    let mut h = shell(ordered());
    let mut broker = FakeBroker::new(10);
    let mut zed = Remote::new("general");
    let ann = h.connect("ann");
    let d = zed.say_all(&mut broker, 1..=6);
    deliver(&mut h, &d[0]);
    h.all_events();
    // Seqs 2 to 6 were lost with the subscription.
    h.handle(Input::BrokerResumed).unwrap();
    assert_eq!(answer_refill(&mut h, &mut broker, 3), 1);
    assert_eq!(seen(&mut h, ann), lines(&["2 t2", "3 t3", "4 t4"]));
    assert_eq!(answer_refill(&mut h, &mut broker, 3), 4);
    assert_eq!(seen(&mut h, ann), lines(&["5 t5", "6 t6"]));
    assert_eq!(answer_refill(&mut h, &mut broker, 3), 6);
    assert!(h.take(ann).is_empty());
    assert!(
        h.take_refills().is_empty(),
        "nothing came: nothing more to ask"
    );
    assert_eq!(h.engine.stats().broker_resets_total, 1);
}

#[test]
fn a_complete_page_short_of_the_early_ones_asks_again_and_skips_nothing() {
    let mut h = shell(ordered());
    let mut broker = FakeBroker::new(10);
    let mut zed = Remote::new("general");
    let ann = h.connect("ann");
    let d = zed.say_all(&mut broker, 1..=9);
    deliver(&mut h, &d[0]);
    deliver(&mut h, &d[8]);
    h.all_events();
    assert_eq!(answer_refill(&mut h, &mut broker, 3), 1);
    assert_eq!(seen(&mut h, ann), lines(&["2 t2", "3 t3", "4 t4"]));
    assert_eq!(answer_refill(&mut h, &mut broker, 3), 4);
    assert_eq!(seen(&mut h, ann), lines(&["5 t5", "6 t6", "7 t7"]));
    assert_eq!(answer_refill(&mut h, &mut broker, 3), 7);
    assert_eq!(seen(&mut h, ann), lines(&["8 t8", "9 t9"]));
    assert_eq!(answer_refill(&mut h, &mut broker, 3), 9);
    assert!(h.take_refills().is_empty());
    assert_eq!(h.engine.stats().broker_resets_total, 1);
}

#[test]
fn a_page_past_a_trimmed_gap_rewelcomes_once_and_the_rest_is_refilled() {
    let mut h = shell(ordered());
    // Keeps 4: of seqs 1 to 9, 2 to 5 are gone by the refill.
    let mut broker = FakeBroker::new(4);
    let mut zed = Remote::new("general");
    let ann = h.connect("ann");
    h.all_events();
    let d = zed.say_all(&mut broker, 1..=9);
    deliver(&mut h, &d[0]);
    deliver(&mut h, &d[8]);
    assert_eq!(seen(&mut h, ann), lines(&["welcome 0 b1 false h0", "1 t1"]));
    assert_eq!(answer_refill(&mut h, &mut broker, 2), 1);
    assert_eq!(
        seen(&mut h, ann),
        lines(&["welcome 5 b1 false h0", "6 t6", "7 t7"])
    );
    assert_eq!(h.engine.stats().broker_resets_total, 2);
    // The page was cut at its limit, not at what the broker keeps: 8 comes, then the early 9.
    assert_eq!(answer_refill(&mut h, &mut broker, 2), 7);
    assert_eq!(seen(&mut h, ann), lines(&["8 t8", "9 t9"]));
    assert_eq!(answer_refill(&mut h, &mut broker, 2), 9);
    assert!(h.take_refills().is_empty());
    assert_eq!(h.engine.stats().broker_resets_total, 2);
}

#[test]
fn a_broker_keeping_nothing_before_the_early_ones_skips_to_them() {
    let mut h = shell(ordered());
    let mut broker = FakeBroker::new(10);
    let mut zed = Remote::new("general");
    let ann = h.connect("ann");
    h.all_events();
    let d = zed.say_all(&mut broker, 1..=5);
    deliver(&mut h, &d[0]);
    deliver(&mut h, &d[4]);
    assert_eq!(seen(&mut h, ann), lines(&["welcome 0 b1 false h0", "1 t1"]));
    let refill = h.take_refills().pop().expect("a refill");
    // Nothing after seq 1 when the broker read it, and nothing missing: 5 came later. Ask again.
    refilled(&mut h, "general", "b1", &[], true);
    assert!(h.take(ann).is_empty());
    let again = h.take_refills();
    assert!(matches!(&again[..], [r] if r.after == 1), "{again:?}");
    // Now what followed seq 1 is gone, and a frame that is not seq 2 is refused: skip to 5.
    let wrong = [(2, d[2].frame.clone())];
    refilled(&mut h, &refill.room, "b1", &wrong, false);
    assert_eq!(seen(&mut h, ann), lines(&["welcome 4 b1 false h0", "5 t5"]));
    let stats = h.engine.stats();
    assert_eq!(
        (stats.broker_refused_total, stats.broker_resets_total),
        (1, 2)
    );
    assert_eq!(answer_refill(&mut h, &mut broker, 10), 5);
    assert!(h.take_refills().is_empty());
}

#[test]
fn a_refill_in_a_new_epoch_of_the_brokers_asks_for_all_of_it() {
    let mut h = shell(ordered());
    let mut broker = FakeBroker::new(10);
    let mut zed = Remote::new("general");
    let ann = h.connect("ann");
    h.all_events();
    let d = zed.say_all(&mut broker, 1..=2);
    deliver(&mut h, &d[0]);
    deliver(&mut h, &d[1]);
    assert_eq!(
        seen(&mut h, ann),
        lines(&["welcome 0 b1 false h0", "1 t1", "2 t2"])
    );
    // The broker confirms its epoch; the page brings nothing new.
    assert_eq!(answer_refill(&mut h, &mut broker, 10), 1);
    assert!(h.take(ann).is_empty() && h.take_refills().is_empty());
    // The broker starts over, and its first message of the new epoch is lost with the
    // subscription: seq 1 of b2 is not what followed seq 2 of b1.
    broker.lose_everything();
    zed.say(&mut broker, "new");
    h.handle(Input::BrokerResumed).unwrap();
    assert_eq!(answer_refill(&mut h, &mut broker, 10), 2);
    assert_eq!(seen(&mut h, ann), lines(&["welcome 0 b2 false h0"]));
    assert_eq!(answer_refill(&mut h, &mut broker, 10), 0);
    assert_eq!(seen(&mut h, ann), lines(&["1 new"]));
    assert_eq!(answer_refill(&mut h, &mut broker, 10), 1);
    assert!(h.take_refills().is_empty());
}

#[test]
fn the_room_that_heard_from_the_broker_last_is_forgotten_last() {
    let mut h = shell(Config {
        rooms_max: 2,
        ..ordered()
    });
    let mut broker = FakeBroker::new(10);
    let mut zed = Remote::new("general");
    let ann = h.connect("ann");
    h.send(ann, r#"{"type":"join","room":"side"}"#);
    h.disconnect(ann);
    // "general" was left before "side", but a message since makes it the more recent.
    let d = zed.say(&mut broker, "hi");
    deliver(&mut h, &d);
    let bob = h.connect_with(join_to("bob", "third"));
    h.take(bob);
    assert_eq!(h.engine.stats().dormant_rooms, 1);
    // "general" is still in memory, history and all; "side" sleeps.
    let carl = h.connect("carl");
    let got = h.take(carl);
    let (_, _, _, history, _, seq, epoch) = welcome(&got);
    assert_eq!((seq, epoch), (1, "b1"));
    assert!(matches!(history, [m] if m.text == "hi"), "{history:?}");
    assert_eq!(h.engine.stats().dormant_rooms, 1);
}

/// Typing goes to the other nodes as a `Relay` of the very frame this node's members got; a
/// relayed typing notice reaches every member here, and only where the room relays typing.
#[test]
fn typing_is_relayed_to_the_other_nodes_and_taken_from_them_in_small_rooms_only() {
    let config = Config {
        presence_notify_max: 2,
        ..ordered()
    };
    let (mut a, mut b) = (shell(config.clone()), shell(config));
    let ann = a.connect("ann");
    let (bob, cid) = (b.connect("bob"), b.connect("cid"));
    a.all_events();
    b.all_events();
    a.send(ann, r#"{"type":"typing"}"#);
    let relays = a.take_relays();
    assert_eq!(relays.len(), 1);
    let (room, frame) = &relays[0];
    assert_eq!(room, "general");
    b.handle(Input::Relayed { room, frame }).unwrap();
    for id in [bob, cid] {
        assert!(
            matches!(&b.take(id)[..], [ServerMessage::Typing { nick, .. }] if nick == "ann"),
            "every member here"
        );
    }
    // Nothing that is not a typing notice of that room passes.
    let message = Bytes::from_static(
        br#"{"type":"message","room":"general","seq":1,"nick":"x","text":"hi","ts":"t"}"#,
    );
    let elsewhere = Bytes::from_static(br#"{"type":"typing","room":"lobby","nick":"x"}"#);
    for (room, frame) in [
        ("general", &message),
        ("general", &elsewhere),
        ("nowhere", frame),
    ] {
        b.handle(Input::Relayed { room, frame }).unwrap();
    }
    assert!(b.take(bob).is_empty() && b.take(cid).is_empty());
    // A large room here (over presence_notify_max) relays no typing, either way.
    let dan = b.connect("dan");
    b.all_events();
    b.handle(Input::Relayed { room, frame }).unwrap();
    assert!(b.take(bob).is_empty() && b.take(dan).is_empty());
    b.send(dan, r#"{"type":"typing"}"#);
    assert!(b.take_relays().is_empty());

    // Without a broker there is nothing to relay to, and a relayed frame is refused.
    let mut alone = shell(unlimited());
    let eve = alone.connect("eve");
    alone.connect("fay");
    alone.send(eve, r#"{"type":"typing"}"#);
    assert!(alone.take_relays().is_empty());
    let input = Input::Relayed { room, frame };
    assert_eq!(
        alone.engine.handle(alone.at(), input),
        Err(crate::Error::NotClustered)
    );
}
