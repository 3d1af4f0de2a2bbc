//! What the cluster property tests (`claims.rs`, `shared_presence.rs`) share: three nodes, a
//! few names that collide by case or look, and the member actions proptest scripts on a node
//! (connect, rename, switch rooms, leave), carried out on that node's [`Shell`].

use chat_engine::protocol::JoinRequest;
use chat_engine::test_kit::Shell;
use chat_engine::ClientId;
use proptest::prelude::*;

pub(crate) const NODES: usize = 3;
/// Few names, some alike (by case or look), so claims collide.
pub(crate) const NAMES: [&str; 5] = ["ann", "ANN", "bob", "\u{430}nn", "cid"];

/// What a member of `node` does; `who` picks one of its live clients, `room` one of the test's
/// rooms.
#[derive(Clone, Debug)]
pub(crate) enum Act {
    /// A new client asks for `name` in `room`.
    Connect {
        node: usize,
        name: usize,
        room: usize,
    },
    /// A client asks to be `name` (a rename, in its room).
    Rename {
        node: usize,
        who: usize,
        name: usize,
    },
    /// A client switches to `room`.
    Switch {
        node: usize,
        who: usize,
        room: usize,
    },
    /// A client leaves.
    Leave { node: usize, who: usize },
}

/// Acts over `rooms` rooms, weighted connect 3, rename 2, switch `switch`, leave 1.
pub(crate) fn act(rooms: usize, switch: u32) -> impl Strategy<Value = Act> {
    let node = 0..NODES;
    prop_oneof![
        3 => (node.clone(), 0..NAMES.len(), 0..rooms)
            .prop_map(|(node, name, room)| Act::Connect { node, name, room }),
        2 => (node.clone(), 0..4usize, 0..NAMES.len())
            .prop_map(|(node, who, name)| Act::Rename { node, who, name }),
        switch => (node.clone(), 0..4usize, 0..rooms)
            .prop_map(|(node, who, room)| Act::Switch { node, who, room }),
        1 => (node, 0..4usize).prop_map(|(node, who)| Act::Leave { node, who }),
    ]
}

/// One of the node's live clients, if it has any.
fn pick(shell: &Shell, who: usize) -> Option<ClientId> {
    let live = shell.live_clients();
    (!live.is_empty()).then(|| live[who % live.len()])
}

/// Carries out `act` on its node; an act of a client the node does not have does nothing.
pub(crate) fn perform(nodes: &mut [Shell], rooms: &[&str], act: Act) {
    match act {
        Act::Connect { node, name, room } => {
            let join = JoinRequest {
                room: Some(rooms[room].to_owned()),
                nick: Some(NAMES[name].to_owned()),
                ..JoinRequest::default()
            };
            nodes[node].connect_with(join);
        }
        Act::Rename { node, who, name } => {
            if let Some(id) = pick(&nodes[node], who) {
                let frame = format!(r#"{{"type":"nick","nick":"{}"}}"#, NAMES[name]);
                nodes[node].send(id, &frame);
            }
        }
        Act::Switch { node, who, room } => {
            if let Some(id) = pick(&nodes[node], who) {
                let frame = format!(r#"{{"type":"join","room":"{}"}}"#, rooms[room]);
                nodes[node].send(id, &frame);
            }
        }
        Act::Leave { node, who } => {
            if let Some(id) = pick(&nodes[node], who) {
                nodes[node].disconnect(id);
            }
        }
    }
}
