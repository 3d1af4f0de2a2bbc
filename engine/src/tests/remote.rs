//! Members on other nodes (`members_shared`), scenario by scenario: this node tells its seats,
//! another node's seats are counted, listed, named and announced like its own in rooms of every
//! size, a dead node's members leave with `timeout` once, and a node's whole seats replace what
//! was known of it.

use std::time::Duration;

use super::shell;
use crate::protocol::JoinRequest;
use crate::test_kit::{unlimited, FakeNicks, SeatChange, Shell};
use crate::{ClientId, Config, Error, Input, LeaveReason, RemoteSeat, ServerMessage};

const INTERVAL: Duration = Duration::from_secs(1);

fn shared() -> Config {
    Config {
        ordered_by_broker: true,
        nicks_claimed: true,
        members_shared: true,
        presence_interval: INTERVAL,
        ..unlimited()
    }
}

/// Rooms of more than two members (on every node) coalesce; lists hold two names.
fn shared_tiny() -> Config {
    Config {
        presence_notify_max: 2,
        presence_list_max: 2,
        ..shared()
    }
}

/// A node whose claims are all granted.
struct Node {
    h: Shell,
    nicks: FakeNicks,
}

impl Node {
    fn new(config: Config) -> Self {
        Self {
            h: shell(config),
            nicks: FakeNicks::default(),
        }
    }

    fn connect(&mut self, room: &str, nick: &str) -> ClientId {
        let id = self.h.connect_with(JoinRequest {
            room: Some(room.to_owned()),
            nick: Some(nick.to_owned()),
            ..JoinRequest::default()
        });
        self.nicks.serve(0, &mut self.h, false);
        id
    }

    fn seat(&mut self, node: &str, client: u64, room: &str, nick: &str) {
        let input = Input::RemoteSeated {
            node,
            client,
            room,
            nick,
        };
        self.h.handle(input).unwrap();
    }

    fn unseat(&mut self, node: &str, client: u64, reason: LeaveReason) {
        let input = Input::RemoteUnseated {
            node,
            client,
            reason,
        };
        self.h.handle(input).unwrap();
    }

    fn node(&mut self, node: &str, seats: &[RemoteSeat], missing: LeaveReason) {
        let input = Input::RemoteNode {
            node,
            seats,
            missing,
        };
        self.h.handle(input).unwrap();
    }

    /// Every member's name in `room`'s `who` pages, as `id` sees them, and the count.
    fn who(&mut self, id: ClientId) -> (Vec<String>, usize) {
        let mut names = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let text = match &after {
                Some(a) => format!(r#"{{"type":"who","after":{a:?}}}"#),
                None => r#"{"type":"who"}"#.to_owned(),
            };
            self.h.send(id, &text);
            let got = self.h.take(id);
            let Some(ServerMessage::Users {
                users,
                user_count,
                next,
                ..
            }) = got.last()
            else {
                panic!("no users page: {got:?}");
            };
            names.extend(users.iter().cloned());
            match next {
                Some(n) => after = Some(n.clone()),
                None => return (names, *user_count),
            }
        }
    }
}

fn seat(client: u64, room: &str, nick: &str) -> RemoteSeat {
    RemoteSeat {
        client,
        room: room.to_owned(),
        nick: nick.to_owned(),
    }
}

/// (nick, reason) of each `leave` and nick of each `join` in `got`, in order.
fn notices(got: &[ServerMessage]) -> Vec<String> {
    (got.iter())
        .filter_map(|m| match m {
            ServerMessage::Join { nick, .. } => Some(format!("+{nick}")),
            ServerMessage::Leave { nick, reason, .. } => Some(format!("-{nick}:{reason}")),
            ServerMessage::Nick { old, nick, .. } => Some(format!("{old}>{nick}")),
            _ => None,
        })
        .collect()
}

#[test]
fn a_node_tells_every_seat_it_takes_and_leaves_in_order() {
    let mut a = Node::new(shared());
    let ann = a.connect("lobby", "ann");
    a.h.send(ann, r#"{"type":"nick","nick":"anna"}"#);
    a.nicks.serve(0, &mut a.h, false);
    a.h.send(ann, r#"{"type":"join","room":"den"}"#);
    a.nicks.serve(0, &mut a.h, false);
    a.h.disconnect(ann);
    let seated = |room: &str, nick: &str| SeatChange::Seated {
        client: ann,
        room: room.into(),
        nick: nick.into(),
    };
    let unseated = |reason| SeatChange::Unseated {
        client: ann,
        reason,
    };
    assert_eq!(
        a.h.take_seats(),
        [
            seated("lobby", "ann"),
            seated("lobby", "anna"),
            unseated(LeaveReason::Switched),
            seated("den", "anna"),
            unseated(LeaveReason::Left),
        ]
    );
}

#[test]
fn members_elsewhere_are_announced_counted_listed_and_named_like_members_here() {
    let mut a = Node::new(shared());
    let ann = a.connect("lobby", "ann");
    a.h.take(ann);
    a.seat("b", 7, "lobby", "bob");
    assert_eq!(notices(&a.h.take(ann)), ["+bob"]);

    let cy = a.connect("lobby", "cy");
    let got = a.h.take(cy);
    let Some(ServerMessage::Welcome {
        users, user_count, ..
    }) = got.first()
    else {
        panic!("no welcome: {got:?}");
    };
    assert_eq!(
        (users.as_slice(), *user_count),
        (&["ann", "bob", "cy"].map(String::from)[..], 3)
    );
    assert_eq!(
        a.who(ann),
        (vec!["ann".into(), "bob".into(), "cy".into()], 3)
    );

    // A name held elsewhere is taken, here as there.
    let dup = a.h.connect_with(JoinRequest {
        room: Some("lobby".into()),
        nick: Some("BOB".into()),
        ..JoinRequest::default()
    });
    assert!(
        a.h.errors(dup).iter().any(|e| e.contains("nick_taken")),
        "refused at once"
    );
    assert!(
        a.h.take_nick_requests().is_empty(),
        "without asking the broker"
    );

    a.seat("b", 7, "lobby", "bobby");
    a.unseat("b", 7, LeaveReason::Kicked);
    // (`who` took the `+cy`.)
    assert_eq!(notices(&a.h.take(ann)), ["bob>bobby", "-bobby:kicked"]);
    assert_eq!(a.who(ann).1, 2);
    // Unknown clients, and leaves told twice, change nothing.
    a.unseat("b", 7, LeaveReason::Left);
    a.unseat("z", 1, LeaveReason::Left);
    assert!(a.h.take(ann).is_empty());
    // A kick of a member elsewhere is for its node.
    assert!(matches!(
        a.h.kick("lobby", "bob"),
        Err(Error::NoSuchUser { .. })
    ));
}

#[test]
fn a_member_switching_rooms_elsewhere_leaves_one_and_joins_the_other() {
    let mut a = Node::new(shared());
    let ann = a.connect("lobby", "ann");
    let dan = a.connect("den", "dan");
    a.seat("b", 1, "lobby", "bob");
    a.h.take(ann);
    a.h.take(dan);
    a.seat("b", 1, "den", "bob");
    assert_eq!(notices(&a.h.take(ann)), ["-bob:switched"]);
    assert_eq!(notices(&a.h.take(dan)), ["+bob"]);
}

#[test]
fn a_dead_node_s_members_leave_with_timeout_exactly_once() {
    let mut a = Node::new(shared());
    let ann = a.connect("lobby", "ann");
    a.seat("b", 1, "lobby", "bob");
    a.seat("b", 2, "lobby", "cy");
    a.seat("c", 1, "lobby", "dee");
    a.h.take(ann);
    a.node("b", &[], LeaveReason::Timeout);
    assert_eq!(notices(&a.h.take(ann)), ["-bob:timeout", "-cy:timeout"]);
    a.node("b", &[], LeaveReason::Timeout);
    assert!(a.h.take(ann).is_empty(), "once");
    assert_eq!(a.who(ann), (vec!["ann".into(), "dee".into()], 2));
}

#[test]
fn a_node_s_whole_seats_replace_what_was_known_of_it() {
    let mut a = Node::new(shared());
    let ann = a.connect("lobby", "ann");
    a.seat("b", 1, "lobby", "bob");
    a.seat("b", 2, "lobby", "cy");
    a.h.take(ann);
    // Client 2 left and 3 came while this node was not listening; 1 is unchanged.
    a.node(
        "b",
        &[seat(1, "lobby", "bob"), seat(3, "lobby", "eve")],
        LeaveReason::Left,
    );
    assert_eq!(notices(&a.h.take(ann)), ["-cy:left", "+eve"]);
}

#[test]
fn remote_members_count_toward_the_large_room_rules() {
    let mut a = Node::new(shared_tiny());
    let ann = a.connect("lobby", "ann");
    a.seat("b", 1, "lobby", "bob");
    a.h.take(ann);
    // Three members in all: past the threshold, so the join waits for the tick.
    a.seat("b", 2, "lobby", "cy");
    assert!(a.h.take(ann).is_empty(), "coalesced");
    a.h.advance(INTERVAL);
    let got = a.h.take(ann);
    assert!(
        matches!(&got[..], [ServerMessage::Presence { user_count: 3, joined, .. }] if *joined == ["cy"]),
        "{got:?}"
    );
    assert_eq!(a.h.engine.user_count("lobby"), Some(3));
    assert_eq!(a.h.engine.user_count("nowhere"), None);
    // Typing is not relayed in a large room, wherever its members are.
    a.h.send(ann, r#"{"type":"typing"}"#);
    assert!(a.h.take_relays().is_empty());
    // Back to two: the next tick returns it to notices.
    a.node("b", &[seat(1, "lobby", "bob")], LeaveReason::Left);
    a.h.advance(INTERVAL);
    let got = a.h.take(ann);
    assert!(
        matches!(&got[..], [ServerMessage::Presence { user_count: 2, left, .. }] if *left == ["cy"]),
        "{got:?}"
    );
    a.unseat("b", 1, LeaveReason::Left);
    assert_eq!(notices(&a.h.take(ann)), ["-bob:left"]);
}

#[test]
fn a_room_left_by_everyone_here_is_judged_small_or_large_by_the_members_elsewhere() {
    let mut a = Node::new(shared_tiny());
    let ann = a.connect("lobby", "ann");
    a.seat("b", 1, "lobby", "bob");
    a.seat("b", 2, "lobby", "cy");
    // Nobody here: two members elsewhere is small again, three would not be.
    a.h.disconnect(ann);
    a.unseat("b", 2, LeaveReason::Left);
    let dan = a.connect("lobby", "dan");
    a.h.take(dan);
    a.seat("b", 1, "lobby", "bobby");
    assert_eq!(notices(&a.h.take(dan)), ["bob>bobby"], "small: at once");

    let mut a = Node::new(shared_tiny());
    let ann = a.connect("lobby", "ann");
    for (client, nick) in [(1, "bob"), (2, "cy"), (3, "eve")] {
        a.seat("b", client, "lobby", nick);
    }
    a.h.disconnect(ann);
    let dan = a.connect("lobby", "dan");
    a.h.take(dan);
    a.seat("b", 1, "lobby", "bobby");
    assert!(a.h.take(dan).is_empty(), "large: at the tick");
}

#[test]
fn a_late_leave_gives_way_to_the_next_holder_but_a_name_held_here_wins() {
    let mut a = Node::new(shared());
    let ann = a.connect("lobby", "ann");
    a.seat("b", 1, "lobby", "bob");
    a.h.take(ann);
    // Node c's new bob joined before node b's leave of its bob arrived.
    a.seat("c", 5, "lobby", "Bob");
    a.unseat("b", 1, LeaveReason::Left);
    assert_eq!(notices(&a.h.take(ann)), ["-bob:left", "+Bob"]);
    // A name held here is not given away.
    a.seat("c", 6, "lobby", "ann");
    assert!(a.h.take(ann).is_empty());
    assert_eq!(a.who(ann), (vec!["ann".into(), "Bob".into()], 2));
}

#[test]
fn renames_elsewhere_onto_a_held_name_wait_and_a_waiting_member_renamed_free_is_shown() {
    let mut a = Node::new(shared());
    let ann = a.connect("lobby", "ann");
    a.seat("b", 1, "lobby", "bob");
    a.seat("c", 2, "lobby", "cy");
    a.h.take(ann);
    // bob's rename to a name someone here holds is stale news: bob waits, unlisted.
    a.seat("b", 1, "lobby", "Cy");
    assert_eq!(notices(&a.h.take(ann)), ["-bob:left"]);
    assert_eq!(a.who(ann), (vec!["ann".into(), "cy".into()], 2));
    // Renamed again, to a free name: shown under it.
    a.seat("b", 1, "lobby", "dan");
    assert_eq!(notices(&a.h.take(ann)), ["+dan"]);
    assert_eq!(
        a.who(ann),
        (vec!["ann".into(), "cy".into(), "dan".into()], 3)
    );
}

#[test]
fn a_room_with_members_elsewhere_only_is_kept_and_seats_not_valid_here_are_ignored() {
    let mut a = Node::new(Config {
        rooms_max: 2,
        ..shared()
    });
    a.seat("b", 1, "far", "bob");
    let ann = a.connect("lobby", "ann");
    a.h.disconnect(ann);
    // Two rooms exist; lobby is empty and goes, far has bob and stays.
    let cy = a.connect("third", "cy");
    a.h.take(cy);
    a.h.send(cy, r#"{"type":"join","room":"far"}"#);
    a.nicks.serve(0, &mut a.h, false);
    let got = a.h.take(cy);
    assert!(
        matches!(
            got.first(),
            Some(ServerMessage::Welcome { user_count: 2, .. })
        ),
        "{got:?}"
    );
    a.seat("b", 2, "no room!", "eve");
    a.seat("b", 3, "far", "");
    assert!(a.h.take(cy).is_empty());
}

#[test]
fn without_shared_members_other_nodes_seats_are_refused() {
    let mut h = shell(Config {
        ordered_by_broker: true,
        nicks_claimed: true,
        ..unlimited()
    });
    let input = Input::RemoteSeated {
        node: "b",
        client: 1,
        room: "r",
        nick: "n",
    };
    assert_eq!(h.handle(input), Err(Error::NotClustered));
    assert!(h.take_seats().is_empty());
    let bad = Config {
        members_shared: true,
        ..unlimited()
    };
    assert!(bad.validate().is_err());
}
