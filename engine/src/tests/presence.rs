//! Presence in rooms of every size: notices at once in small rooms, coalesced `presence` frames
//! in large ones, the crossing between the two, `who` paging and the bounded welcome.

use std::collections::BTreeSet;
use std::time::Duration;

use super::shell;
use crate::protocol::{JoinRequest, Renamed};
use crate::test_kit::{unlimited, Roster, Shell};
use crate::{ClientId, Config, ServerMessage};

const INTERVAL: Duration = Duration::from_secs(1);

/// Rooms of more than two members coalesce; welcomes and pages list two names.
fn tiny_presence() -> Config {
    Config {
        presence_notify_max: 2,
        presence_list_max: 2,
        presence_interval: INTERVAL,
        ..unlimited()
    }
}

/// The `presence` frames in `messages`, as (user_count, joined, left, renamed, more).
type PresenceFrame = (usize, Vec<String>, Vec<String>, Vec<Renamed>, [usize; 3]);

fn presences(messages: &[ServerMessage]) -> Vec<PresenceFrame> {
    messages
        .iter()
        .filter_map(|m| match m {
            ServerMessage::Presence {
                user_count,
                joined,
                left,
                renamed,
                joined_more,
                left_more,
                renamed_more,
                ..
            } => Some((
                *user_count,
                joined.clone(),
                left.clone(),
                renamed.clone(),
                [*joined_more, *left_more, *renamed_more],
            )),
            _ => None,
        })
        .collect()
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn connect_all(h: &mut Shell, nicks: &[&str]) -> Vec<ClientId> {
    nicks.iter().map(|nick| h.connect(nick)).collect()
}

#[test]
fn a_small_room_announces_joins_renames_and_leaves_at_once() {
    let mut h = shell(tiny_presence());
    let ann = h.connect("ann");
    let bob = h.connect("bob");
    assert!(matches!(&h.take(ann)[..], [_, ServerMessage::Join { nick, .. }] if nick == "bob"));
    h.send(bob, r#"{"type":"nick","nick":"rob"}"#);
    assert!(
        matches!(&h.take(ann)[..], [ServerMessage::Nick { old, nick, .. }] if old == "bob" && nick == "rob")
    );
    h.disconnect(bob);
    assert!(matches!(&h.take(ann)[..], [ServerMessage::Leave { nick, .. }] if nick == "rob"));
    h.advance(INTERVAL * 3);
    assert!(
        presences(&h.take(ann)).is_empty(),
        "a small room gets no presence frames"
    );
}

#[test]
fn a_large_room_tells_its_members_once_per_interval() {
    let mut h = shell(tiny_presence());
    let ids = connect_all(&mut h, &["ann", "bob", "cy"]);
    h.advance(INTERVAL);
    for &id in &ids {
        h.take(id);
    }
    let dee = h.connect("dee");
    let eve = h.connect("eve");
    h.disconnect(ids[1]);
    assert!(h.take(ids[0]).is_empty(), "nothing at once in a large room");
    h.advance(INTERVAL / 2);
    assert!(h.take(ids[0]).is_empty(), "not before the interval");
    h.advance(INTERVAL / 2);
    for id in [ids[0], ids[2], dee, eve] {
        let got = presences(&h.take(id));
        assert_eq!(
            got,
            [(4, names(&["dee", "eve"]), names(&["bob"]), vec![], [0; 3])],
            "{id}"
        );
    }
    h.advance(INTERVAL * 2);
    assert!(h.take(ids[0]).is_empty(), "no changes, no frame");
}

/// Changes pending in a large room when its last member leaves have nobody to be told: a
/// newcomer to the emptied room is not told of people who left before it came.
#[test]
fn a_large_room_emptied_before_its_tick_tells_a_newcomer_nothing_of_it() {
    let mut h = shell(tiny_presence());
    let ids = connect_all(&mut h, &["ann", "bob", "cy"]);
    h.advance(INTERVAL);
    let dee = h.connect("dee");
    for id in ids.into_iter().chain([dee]) {
        h.disconnect(id);
    }
    h.all_events();
    let eve = h.connect("eve");
    h.advance(INTERVAL * 2);
    let got = h.take(eve);
    assert!(presences(&got).is_empty(), "{got:?}");
    assert_eq!(h.engine.members("general"), Some(vec!["eve"]));
}

#[test]
fn at_most_one_presence_frame_per_interval_however_much_changes() {
    let mut h = shell(tiny_presence());
    let ann = h.connect("ann");
    connect_all(&mut h, &["b1", "b2", "b3"]);
    h.take(ann);
    for step in 0..10 {
        h.advance(INTERVAL / 5);
        h.connect(&format!("n{step}"));
    }
    // Two seconds of joins, five per interval: two frames.
    assert_eq!(presences(&h.take(ann)).len(), 2);
}

#[test]
fn crossing_the_threshold_up_coalesces_and_down_returns_to_notices_at_the_next_tick() {
    let mut h = shell(tiny_presence());
    let ann = h.connect("ann");
    let bob = h.connect("bob");
    h.take(ann);
    h.take(bob);
    // The third member makes the room large: its join waits for the tick.
    let cy = h.connect("cy");
    assert!(h.take(ann).is_empty());
    h.advance(INTERVAL);
    assert_eq!(
        presences(&h.take(ann)),
        [(3, names(&["cy"]), vec![], vec![], [0; 3])]
    );
    // Back to two members: still coalesced until the tick finds the room small...
    h.disconnect(cy);
    assert!(h.take(ann).is_empty());
    h.advance(INTERVAL);
    assert_eq!(
        presences(&h.take(ann)),
        [(2, vec![], names(&["cy"]), vec![], [0; 3])]
    );
    // ...after which changes are notices again.
    h.send(bob, r#"{"type":"nick","nick":"rob"}"#);
    assert!(matches!(&h.take(ann)[..], [ServerMessage::Nick { nick, .. }] if nick == "rob"));
    h.disconnect(bob);
    assert!(matches!(&h.take(ann)[..], [ServerMessage::Leave { nick, .. }] if nick == "rob"));
}

#[test]
fn presence_lists_are_capped_and_say_how_many_more() {
    let mut h = shell(Config {
        presence_changes_max: 2,
        ..tiny_presence()
    });
    let ann = h.connect("ann");
    connect_all(&mut h, &["b1", "b2"]);
    h.advance(INTERVAL);
    h.take(ann);
    connect_all(&mut h, &["c1", "c2", "c3", "c4", "c5"]);
    h.advance(INTERVAL);
    assert_eq!(
        presences(&h.take(ann)),
        [(8, names(&["c1", "c2"]), vec![], vec![], [3, 0, 0])]
    );
}

#[test]
fn renames_in_a_large_room_reach_the_renamer_at_once_and_the_others_at_the_tick() {
    let mut h = shell(tiny_presence());
    let ids = connect_all(&mut h, &["ann", "bob", "cy"]);
    h.advance(INTERVAL);
    for &id in &ids {
        h.take(id);
    }
    h.send(ids[1], r#"{"type":"nick","nick":"rob"}"#);
    assert!(
        matches!(&h.take(ids[1])[..], [ServerMessage::Nick { old, nick, .. }] if old == "bob" && nick == "rob"),
        "the renamer learns its new name at once"
    );
    assert!(h.take(ids[0]).is_empty());
    h.advance(INTERVAL);
    let renamed = vec![Renamed {
        old: "bob".into(),
        nick: "rob".into(),
    }];
    assert_eq!(
        presences(&h.take(ids[0])),
        [(3, vec![], vec![], renamed, [0; 3])]
    );
}

/// A member that joined, was seen (in a welcome or a `who` page), and left within one interval
/// must not stay in anyone's list: the names it held count as left, even though its join and
/// leave cancel out.
#[test]
fn a_member_that_comes_and_goes_within_an_interval_is_announced_as_left() {
    let mut h = shell(tiny_presence());
    let ids = connect_all(&mut h, &["ann", "bob", "cy"]);
    h.advance(INTERVAL);
    for &id in &ids {
        h.take(id);
    }
    let zed = h.connect("zed");
    h.send(zed, r#"{"type":"nick","nick":"zee"}"#);
    h.disconnect(zed);
    h.advance(INTERVAL);
    assert_eq!(
        presences(&h.take(ids[0])),
        [(3, vec![], names(&["zed", "zee"]), vec![], [0; 3])]
    );
}

/// Renames back and forth within one interval: every name held in between is announced as gone
/// once, the one held at the start is the rename's `old`, and a rename back to where it started
/// is no rename: the name is announced as gone and back.
#[test]
fn renames_within_an_interval_are_announced_by_their_net_effect() {
    let mut h = shell(tiny_presence());
    let ids = connect_all(&mut h, &["ann", "bob", "cy"]);
    h.advance(INTERVAL);
    for &id in &ids {
        h.take(id);
    }
    for nick in ["y", "x", "y", "z"] {
        h.send(ids[1], &format!(r#"{{"type":"nick","nick":"{nick}"}}"#));
    }
    h.advance(INTERVAL);
    let renamed = vec![Renamed {
        old: "bob".into(),
        nick: "z".into(),
    }];
    assert_eq!(
        presences(&h.take(ids[0])),
        [(3, vec![], names(&["y", "x"]), renamed, [0; 3])]
    );
    for nick in ["q", "z"] {
        h.send(ids[1], &format!(r#"{{"type":"nick","nick":"{nick}"}}"#));
    }
    h.advance(INTERVAL);
    assert_eq!(
        presences(&h.take(ids[0])),
        [(3, names(&["z"]), names(&["z", "q"]), vec![], [0; 3])],
        "z and back to z: q is gone, z gone and back (whoever came meanwhile saw q)"
    );
}

/// A member that leaves and comes back under the same name, then renames: its first name is the
/// rename's `old`, not also a name that left.
#[test]
fn a_member_that_leaves_returns_and_renames_is_one_rename() {
    let mut h = shell(tiny_presence());
    let ids = connect_all(&mut h, &["ann", "bob", "cy"]);
    h.advance(INTERVAL);
    for &id in &ids {
        h.take(id);
    }
    h.send(ids[1], r#"{"type":"join","room":"elsewhere"}"#);
    h.send(ids[1], r#"{"type":"join","room":"general"}"#);
    h.send(ids[1], r#"{"type":"nick","nick":"rob"}"#);
    h.advance(INTERVAL);
    let renamed = vec![Renamed {
        old: "bob".into(),
        nick: "rob".into(),
    }];
    assert_eq!(
        presences(&h.take(ids[0])),
        [(3, vec![], vec![], renamed, [0; 3])]
    );
}

/// The names a member believes its room holds after these frames.
fn roster(messages: &[ServerMessage]) -> BTreeSet<String> {
    let mut roster = Roster::default();
    for message in messages {
        roster.apply(message);
    }
    roster.names
}

/// A member that is away or under another name for part of an interval and ends it as it began
/// was seen meanwhile by whoever came in between: the tick announces the name as gone and back,
/// so that newcomer's list has it too (and for everyone else it stays where it is).
#[test]
fn a_newcomer_welcomed_while_a_member_was_away_or_renamed_learns_it_is_back() {
    let config = Config {
        presence_list_max: 100,
        ..tiny_presence()
    };
    let mut h = shell(config);
    let ids = connect_all(&mut h, &["ann", "bob", "cy"]);
    h.advance(INTERVAL);
    h.send(ids[1], r#"{"type":"join","room":"elsewhere"}"#);
    let dee = h.connect("dee");
    h.send(ids[1], r#"{"type":"join","room":"general"}"#);
    h.send(ids[2], r#"{"type":"nick","nick":"q"}"#);
    let eve = h.connect("eve");
    h.send(ids[2], r#"{"type":"nick","nick":"cy"}"#);
    h.advance(INTERVAL);
    let everyone: BTreeSet<String> = names(&["ann", "bob", "cy", "dee", "eve"])
        .into_iter()
        .collect();
    for id in ids.into_iter().chain([dee, eve]) {
        assert_eq!(roster(&h.take(id)), everyone, "{id}'s list");
    }
}

#[test]
fn typing_is_relayed_in_a_small_room_only() {
    let mut h = shell(tiny_presence());
    let ann = h.connect("ann");
    let bob = h.connect("bob");
    h.take(ann);
    h.send(bob, r#"{"type":"typing"}"#);
    assert!(matches!(&h.take(ann)[..], [ServerMessage::Typing { nick, .. }] if nick == "bob"));
    h.connect("cy");
    h.advance(INTERVAL);
    h.take(ann);
    h.send(bob, r#"{"type":"typing"}"#);
    assert!(
        h.take(ann).is_empty(),
        "one typist would cost every member a frame"
    );
    assert!(h.errors(bob).is_empty(), "dropped silently");
}

#[test]
fn welcome_carries_the_count_and_the_first_page_of_names() {
    let mut h = shell(tiny_presence());
    connect_all(&mut h, &["Zoe", "bob", "Ann", "cy"]);
    let me = h.connect_with(JoinRequest {
        nick: Some("dee".into()),
        ..JoinRequest::default()
    });
    match &h.take(me)[..] {
        [ServerMessage::Welcome {
            users, user_count, ..
        }, ..] => {
            assert_eq!(*user_count, 5, "the joiner included");
            assert_eq!(
                users,
                &names(&["Ann", "bob"]),
                "nickname order, ignoring case"
            );
        }
        other => panic!("expected a welcome, got {other:?}"),
    }
}

#[test]
fn who_pages_every_member_once_in_nickname_order() {
    let mut h = shell(tiny_presence());
    let ids = connect_all(&mut h, &["Zoe", "bob", "Ann", "cy", "dee"]);
    let me = ids[0];
    h.take(me);
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..10 {
        let frame = match &after {
            Some(a) => serde_json::json!({"type": "who", "after": a}),
            None => serde_json::json!({"type": "who"}),
        };
        h.send(me, &frame.to_string());
        let page = h.take(me);
        let [ServerMessage::Users {
            users,
            user_count,
            next,
            room,
        }] = &page[..]
        else {
            panic!("expected one users page, got {page:?}");
        };
        assert_eq!((room.as_str(), *user_count), ("general", 5));
        assert!(users.len() <= 2, "at most presence_list_max per page");
        seen.extend(users.iter().cloned());
        match next {
            Some(next) => {
                assert_eq!(
                    Some(next),
                    users.last(),
                    "the next page starts after this one"
                );
                after = Some(next.clone());
            }
            None => break,
        }
    }
    assert_eq!(seen, names(&["Ann", "bob", "cy", "dee", "Zoe"]));
    h.send(me, r#"{"type":"who","after":"ZZZ"}"#);
    assert!(
        matches!(&h.take(me)[..], [ServerMessage::Users { users, next: None, .. }] if users.is_empty())
    );
}

#[test]
fn who_outside_a_room_is_not_in_room() {
    let mut h = shell(tiny_presence());
    let ann = h.connect("ann");
    let copy = h.connect("ANN");
    assert_eq!(h.errors(copy), ["nick_taken"]);
    h.send(copy, r#"{"type":"who"}"#);
    assert_eq!(h.errors(copy), ["not_in_room"]);
    h.take(ann);
}

/// However long the history, the welcome stays under half the high-water mark: the joiner is
/// never paused (or evicted) by its own greeting.
#[test]
fn the_welcome_never_puts_its_joiner_behind() {
    let config = Config {
        queue_high_water_bytes: 16 << 10,
        queue_bytes_max: 32 << 10,
        history_max: 100,
        text_bytes_max: 1000,
        ..tiny_presence()
    };
    let mut h = shell(config);
    let ann = h.connect("ann");
    let long = "x".repeat(1000);
    for _ in 0..100 {
        h.send(ann, &long);
    }
    // Nothing is reported written: the welcome alone is what carl has queued.
    h.auto_flush = false;
    let carl = h.connect("carl");
    let (frames, bytes) = h.engine.queued(carl).expect("connected");
    assert_eq!(frames, 1);
    assert!(bytes <= 8 << 10, "the welcome is {bytes} bytes");
    assert!(!h.paused.contains(&carl) && h.closed.is_empty());
    match &h.take(carl)[..] {
        [ServerMessage::Welcome { history, .. }] => {
            assert!(
                !history.is_empty() && history.len() < 100,
                "trimmed, oldest first"
            );
            assert_eq!(history.last().map(|m| m.seq), Some(100), "the newest kept");
        }
        other => panic!("expected a welcome, got {other:?}"),
    }
}

/// A room so large that a frame to every member each interval would pass
/// `presence_frames_per_second` waits members / budget seconds between its announcements; a
/// room under the budget keeps the interval.
#[test]
fn a_room_past_the_presence_budget_announces_less_often() {
    let mut h = shell(Config {
        presence_frames_per_second: 1,
        ..tiny_presence()
    });
    let ids = connect_all(&mut h, &["a", "b", "c", "d"]);
    h.advance(Duration::from_secs(10));
    h.drain();
    for &id in &ids {
        h.take(id);
    }
    h.connect("e");
    // Five members at one frame a second: five seconds, not the one-second interval.
    h.advance(Duration::from_millis(4_999));
    assert!(presences(&h.take(ids[0])).is_empty(), "too early");
    h.advance(Duration::from_millis(1));
    let got = presences(&h.take(ids[0]));
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].0, got[0].1.clone()), (5, names(&["e"])));

    // Under the budget the interval rules.
    let mut h = shell(Config {
        presence_frames_per_second: 100,
        ..tiny_presence()
    });
    let ids = connect_all(&mut h, &["a", "b", "c", "d"]);
    h.advance(Duration::from_secs(10));
    for &id in &ids {
        h.take(id);
    }
    h.connect("e");
    h.advance(INTERVAL);
    assert_eq!(presences(&h.take(ids[0])).len(), 1);
}

/// A client's `typing` is relayed at most once per `typing_interval`; the ones between are
/// dropped without an error, and the interval is per client.
#[test]
fn typing_is_relayed_at_most_once_per_interval_per_client() {
    let typing_interval = Duration::from_secs(2);
    let mut h = shell(Config {
        typing_interval,
        ..unlimited()
    });
    let ann = h.connect("ann");
    let bob = h.connect("bob");
    let cy = h.connect("cy");
    h.take(ann);
    let typists = |h: &mut Shell| -> Vec<String> {
        (h.take(ann).into_iter())
            .filter_map(|m| match m {
                ServerMessage::Typing { nick, .. } => Some(nick),
                _ => None,
            })
            .collect()
    };
    h.send(bob, r#"{"type":"typing"}"#);
    h.send(cy, r#"{"type":"typing"}"#);
    h.pass(typing_interval - Duration::from_millis(1));
    h.send(bob, r#"{"type":"typing"}"#);
    assert_eq!(typists(&mut h), ["bob", "cy"], "bob's second is too soon");
    assert!(h.errors(bob).is_empty(), "dropped silently");
    h.pass(Duration::from_millis(1));
    h.send(bob, r#"{"type":"typing"}"#);
    assert_eq!(
        typists(&mut h),
        ["bob"],
        "a whole interval after the last relayed one"
    );
}
