//! Cluster mode (`ordered_by_broker`) scenario by scenario: nothing is delivered before the
//! broker orders it, the sender's copy is its acknowledgement, a failed publish tells the sender
//! `unavailable`, the pending publishes are bounded, and a room follows the broker's epoch and
//! gaps (the property test `tests/cluster.rs` drives the same under a misbehaving broker).

use super::{shell, welcome};
use crate::test_kit::{unlimited, FakeBroker, Shell};
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
