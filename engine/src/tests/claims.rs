//! Nicknames claimed across a cluster (`nicks_claimed`), scenario by scenario: a join or rename
//! waits for its claim, two nodes racing for one name give it to exactly one, a name given up
//! is released, and an answer that comes too late gives back what it granted.

use super::{shell, welcome};
use crate::protocol::JoinRequest;
use crate::test_kit::{unlimited, FakeNicks, NickRequest, Shell};
use crate::{ClaimOutcome, ClientId, Config, Error, Input, ServerMessage};

fn claimed() -> Config {
    Config {
        ordered_by_broker: true,
        nicks_claimed: true,
        ..unlimited()
    }
}

fn join(room: &str, nick: &str) -> JoinRequest {
    JoinRequest {
        room: Some(room.to_owned()),
        nick: Some(nick.to_owned()),
        ..JoinRequest::default()
    }
}

fn claim(client: ClientId, room: &str, likeness: &str) -> NickRequest {
    NickRequest::Claim {
        client,
        room: room.to_owned(),
        likeness: likeness.to_owned(),
    }
}

fn release(client: ClientId, room: &str, likeness: &str) -> NickRequest {
    NickRequest::Release {
        client,
        room: room.to_owned(),
        likeness: likeness.to_owned(),
    }
}

fn answer(h: &mut Shell, client: ClientId, room: &str, likeness: &str, outcome: ClaimOutcome) {
    let input = Input::NickClaimed {
        client,
        room,
        likeness,
        outcome,
    };
    h.handle(input).unwrap();
}

/// The welcome `id` got, as (nick, room, users), or `None` if it got none.
fn welcomed(h: &mut Shell, id: ClientId) -> Option<(String, String, Vec<String>)> {
    let got = h.take(id);
    matches!(got.first(), Some(ServerMessage::Welcome { .. })).then(|| {
        let (nick, room, users, ..) = welcome(&got);
        (nick.to_owned(), room.to_owned(), users.to_vec())
    })
}

#[test]
fn a_join_waits_for_its_claim_and_is_welcomed_once_granted() {
    let mut h = shell(claimed());
    let ann = h.connect_with(join("General", "Ann"));
    assert!(h.take(ann).is_empty(), "nothing before the claim's answer");
    assert_eq!(h.engine.members("general"), None, "not in the room yet");
    assert_eq!(h.take_nick_requests(), [claim(ann, "General", "ann")]);

    answer(&mut h, ann, "General", "ann", ClaimOutcome::Granted);
    let (nick, room, users) = welcomed(&mut h, ann).expect("welcomed");
    assert_eq!((nick.as_str(), room.as_str()), ("Ann", "General"));
    assert_eq!(users, ["Ann"]);
    assert!(h.take_nick_requests().is_empty());

    // The same answer again finds nobody waiting, and the name is in use: nothing happens.
    answer(&mut h, ann, "General", "ann", ClaimOutcome::Granted);
    assert!(h.take(ann).is_empty());
    assert!(h.take_nick_requests().is_empty(), "not released: in use");
}

#[test]
fn two_nodes_racing_for_one_name_give_it_to_exactly_one() {
    let mut nicks = FakeNicks::default();
    let (mut a, mut b) = (shell(claimed()), shell(claimed()));
    let on_a = a.connect("alice");
    let on_b = b.connect("ALICE");
    // Both asked before either was answered; the broker answers A first.
    nicks.serve(0, &mut a, false);
    nicks.serve(1, &mut b, false);
    assert_eq!(welcomed(&mut a, on_a).map(|w| w.0), Some("alice".into()));
    assert_eq!(b.errors(on_b), ["nick_taken"]);
    assert_eq!(b.engine.members("general"), None, "B's alice is in no room");
    assert_eq!(nicks.owner("general", "alice"), Some((0, on_a)));

    // A's alice leaves: the name is released, and B's may now have it.
    a.disconnect(on_a);
    nicks.serve(0, &mut a, false);
    assert!(nicks.is_empty());
    b.send(on_b, r#"{"type":"join","nick":"ALICE"}"#);
    nicks.serve(1, &mut b, false);
    assert_eq!(welcomed(&mut b, on_b).map(|w| w.0), Some("ALICE".into()));
    assert_eq!(nicks.owner("general", "alice"), Some((1, on_b)));
}

#[test]
fn a_name_looking_like_one_claimed_elsewhere_is_the_same_claim() {
    let mut nicks = FakeNicks::default();
    let (mut a, mut b) = (shell(claimed()), shell(claimed()));
    let on_a = a.connect("alice");
    nicks.serve(0, &mut a, false);
    // A Cyrillic "а" and full-width letters: the likeness is alice's.
    let on_b = b.connect("\u{430}ｌｉｃｅ");
    nicks.serve(1, &mut b, false);
    assert!(welcomed(&mut a, on_a).is_some());
    assert_eq!(b.errors(on_b), ["nick_taken"]);
    assert_eq!(nicks.len(), 1);
}

#[test]
fn a_rename_claims_the_new_name_first_and_then_releases_the_old() {
    let mut h = shell(claimed());
    let mut nicks = FakeNicks::default();
    let ann = h.connect("ann");
    let bob = h.connect("bob");
    nicks.serve(0, &mut h, false);
    h.all_events();

    h.send(ann, r#"{"type":"nick","nick":"anna"}"#);
    assert!(
        h.take(bob).is_empty(),
        "nobody hears of it before the claim"
    );
    assert_eq!(h.take_nick_requests(), [claim(ann, "general", "anna")]);
    answer(&mut h, ann, "general", "anna", ClaimOutcome::Granted);
    assert_eq!(h.take_nick_requests(), [release(ann, "general", "ann")]);
    assert!(
        matches!(&h.take(bob)[..], [ServerMessage::Nick { old, nick, .. }] if old == "ann" && nick == "anna")
    );

    // A rename to what it already holds (a change of case) asks nothing.
    h.send(ann, r#"{"type":"nick","nick":"ANNA"}"#);
    assert!(h.take_nick_requests().is_empty());
    assert!(matches!(&h.take(bob)[..], [ServerMessage::Nick { nick, .. }] if nick == "ANNA"));
    h.take(ann);

    // A rename the cluster refuses changes nothing here.
    h.send(bob, r#"{"type":"nick","nick":"carol"}"#);
    assert_eq!(h.take_nick_requests(), [claim(bob, "general", "carol")]);
    answer(&mut h, bob, "general", "carol", ClaimOutcome::Taken);
    assert_eq!(h.errors(bob), ["nick_taken"]);
    assert!(h.take(ann).is_empty());
    assert_eq!(h.engine.client_info(bob), Some(("bob", Some("general"))));
    assert!(h.take_nick_requests().is_empty(), "nothing to release");
}

#[test]
fn a_switch_claims_the_name_in_the_new_room_and_releases_it_in_the_old() {
    let mut h = shell(claimed());
    let ann = h.connect("ann");
    answer(&mut h, ann, "general", "ann", ClaimOutcome::Granted);
    h.take_nick_requests();
    h.all_events();

    h.send(ann, r#"{"type":"join","room":"games"}"#);
    assert_eq!(h.take_nick_requests(), [claim(ann, "games", "ann")]);
    assert_eq!(
        h.engine.client_info(ann),
        Some(("ann", Some("general"))),
        "stays meanwhile"
    );
    answer(&mut h, ann, "games", "ann", ClaimOutcome::Granted);
    assert_eq!(h.take_nick_requests(), [release(ann, "general", "ann")]);
    assert_eq!(welcomed(&mut h, ann).map(|w| w.1), Some("games".into()));

    // Joining the room it is in, as it is (a resume), needs no claim.
    h.send(ann, r#"{"type":"join","room":"games","nick":"ann"}"#);
    assert!(h.take_nick_requests().is_empty());
    assert!(welcomed(&mut h, ann).is_some());
}

#[test]
fn a_cluster_that_cannot_answer_refuses_with_unavailable_and_keeps_the_connection() {
    let mut h = shell(claimed());
    let mut nicks = FakeNicks::default();
    let ann = h.connect("ann");
    nicks.serve(0, &mut h, true);
    assert_eq!(h.errors(ann), ["unavailable"]);
    assert_eq!(h.live_clients(), [ann]);
    // Asked again once the broker is back, it is welcomed.
    h.send(ann, r#"{"type":"join","nick":"ann"}"#);
    nicks.serve(0, &mut h, false);
    assert!(welcomed(&mut h, ann).is_some());
}

#[test]
fn an_answer_nobody_waits_for_gives_back_what_it_granted() {
    let mut h = shell(claimed());
    let ann = h.connect("ann");
    // It changed its mind before the answer: the first name's grant is released.
    h.send(ann, r#"{"type":"join","nick":"bea"}"#);
    assert_eq!(
        h.take_nick_requests(),
        [claim(ann, "general", "ann"), claim(ann, "general", "bea")]
    );
    answer(&mut h, ann, "general", "ann", ClaimOutcome::Granted);
    assert_eq!(h.take_nick_requests(), [release(ann, "general", "ann")]);
    assert!(h.take(ann).is_empty());
    // A refusal nobody waits for asks nothing.
    answer(&mut h, ann, "general", "ann", ClaimOutcome::Taken);
    assert!(h.take_nick_requests().is_empty() && h.take(ann).is_empty());
    answer(&mut h, ann, "general", "bea", ClaimOutcome::Granted);
    assert_eq!(welcomed(&mut h, ann).map(|w| w.0), Some("bea".into()));

    // One that left before its answer: the grant goes back too.
    let cid = h.connect("cid");
    h.disconnect(cid);
    h.take_nick_requests();
    answer(&mut h, cid, "general", "cid", ClaimOutcome::Granted);
    assert_eq!(h.take_nick_requests(), [release(cid, "general", "cid")]);
    answer(&mut h, cid, "general", "cid", ClaimOutcome::Unavailable);
    assert!(h.take_nick_requests().is_empty());
}

#[test]
fn a_second_command_for_the_name_asked_for_waits_for_the_same_answer() {
    let mut h = shell(claimed());
    let ann = h.connect("ann");
    h.send(ann, r#"{"type":"join","nick":"ann","room":"general"}"#);
    assert_eq!(
        h.take_nick_requests(),
        [claim(ann, "general", "ann")],
        "asked once"
    );
    answer(&mut h, ann, "general", "ann", ClaimOutcome::Granted);
    let got = h.take(ann);
    let welcomes = got
        .iter()
        .filter(|m| matches!(m, ServerMessage::Welcome { .. }));
    assert_eq!(welcomes.count(), 1, "{got:?}");
}

#[test]
fn a_grant_the_node_cannot_use_is_released() {
    let mut h = shell(Config {
        rooms_max: 1,
        ..claimed()
    });
    let ann = h.connect("ann");
    answer(&mut h, ann, "general", "ann", ClaimOutcome::Granted);
    let bob = h.connect_with(join("games", "bob"));
    h.take_nick_requests();
    answer(&mut h, bob, "games", "bob", ClaimOutcome::Granted);
    assert_eq!(h.errors(bob), ["too_many_rooms"]);
    assert_eq!(h.take_nick_requests(), [release(bob, "games", "bob")]);
}

#[test]
fn a_name_held_on_this_node_is_refused_without_asking_the_cluster() {
    let mut h = shell(claimed());
    let ann = h.connect("ann");
    answer(&mut h, ann, "general", "ann", ClaimOutcome::Granted);
    h.take_nick_requests();
    let other = h.connect("Ann");
    assert_eq!(h.errors(other), ["nick_taken"]);
    assert!(h.take_nick_requests().is_empty());
}

#[test]
fn guests_of_a_tagged_node_are_named_with_its_tag_and_claimed_too() {
    let mut h = shell(Config {
        guest_tag: "n7-".into(),
        ..claimed()
    });
    let guest = h.connect_with(JoinRequest::default());
    let name = format!("guest-n7-{}", guest.get());
    let likeness = crate::names::nick_likeness(&name);
    assert_eq!(h.take_nick_requests(), [claim(guest, "general", &likeness)]);
    answer(&mut h, guest, "general", &likeness, ClaimOutcome::Granted);
    assert_eq!(welcomed(&mut h, guest).map(|w| w.0), Some(name));
}

#[test]
fn claims_need_a_cluster_and_a_tag_is_short_and_plain() {
    let mut h = shell(unlimited());
    let ann = h.connect("ann");
    let input = Input::NickClaimed {
        client: ann,
        room: "general",
        likeness: "ann",
        outcome: ClaimOutcome::Granted,
    };
    assert_eq!(h.engine.handle(h.at(), input), Err(Error::NotClustered));
    // Without nicks_claimed, a cluster node takes names at once.
    let mut plain = shell(Config {
        ordered_by_broker: true,
        ..unlimited()
    });
    let bob = plain.connect("bob");
    assert!(welcomed(&mut plain, bob).is_some());
    assert!(plain.take_nick_requests().is_empty());

    let bad = [
        Config {
            nicks_claimed: true,
            ..unlimited()
        },
        Config {
            guest_tag: "x".repeat(17),
            ..unlimited()
        },
        Config {
            guest_tag: "a b".into(),
            ..unlimited()
        },
    ];
    for config in bad {
        assert!(config.validate().is_err(), "{config:?}");
    }
    let good = Config {
        guest_tag: "Node-1234567890a".into(),
        ..claimed()
    };
    assert_eq!(good.validate(), Ok(()));
}
