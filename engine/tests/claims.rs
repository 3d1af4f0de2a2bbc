//! Nicknames claimed across a cluster, under a broker whose answers come late and interleaved:
//! three engines (nodes) share one claim registry, and proptest scripts joins, renames, room
//! switches and leaves on every node, and which node's oldest claim or release the broker
//! carries out next (each node's in the order asked, as the server's lanes keep one name's).
//!
//! Invariants: **no two members of one room, on any nodes, have names alike** (checked after
//! every step), and once every claim and release is carried out, **the registry holds exactly
//! the names members use**: none leaked by a late answer or a leave, none used without a claim.

use std::collections::{BTreeMap, VecDeque};

mod common;

use chat_engine::names::{nick_likeness, room_likeness};
use chat_engine::test_kit::{unlimited, FakeNicks, NickRequest, Shell};
use chat_engine::{ClientId, Config};
use common::{act, perform, Act, NODES};
use proptest::prelude::*;

const ROOMS: [&str; 2] = ["general", "GENERAL2"];

fn config() -> Config {
    Config {
        ordered_by_broker: true,
        nicks_claimed: true,
        ..unlimited()
    }
}

#[derive(Clone, Debug)]
enum Step {
    /// A member of some node acts.
    Member(Act),
    /// The broker carries out `node`'s oldest claim or release.
    Answer { node: usize },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        7 => act(ROOMS.len(), 1).prop_map(Step::Member),
        6 => (0..NODES).prop_map(|node| Step::Answer { node }),
    ]
}

/// Who holds each name: (room likeness, nick likeness) -> (node, client).
type Registry = BTreeMap<(String, String), (usize, ClientId)>;

struct Cluster {
    nodes: Vec<Shell>,
    registry: FakeNicks,
    /// Claims and releases each node asked for, not yet carried out, oldest first.
    asked: Vec<VecDeque<NickRequest>>,
}

impl Cluster {
    fn new() -> Self {
        Self {
            nodes: (0..NODES)
                .map(|n| Shell::new(config(), &format!("n{n}")))
                .collect(),
            registry: FakeNicks::default(),
            asked: vec![VecDeque::new(); NODES],
        }
    }

    fn run(&mut self, step: Step) {
        match step {
            Step::Member(act) => perform(&mut self.nodes, &ROOMS, act),
            Step::Answer { node } => {
                self.collect();
                if let Some(request) = self.asked[node].pop_front() {
                    self.carry_out(node, request);
                }
            }
        }
        self.collect();
        for shell in &mut self.nodes {
            shell.all_events();
        }
    }

    fn collect(&mut self) {
        for (node, shell) in self.nodes.iter_mut().enumerate() {
            self.asked[node].extend(shell.take_nick_requests());
        }
    }

    fn carry_out(&mut self, node: usize, request: NickRequest) {
        (self.registry).carry_out(node, &mut self.nodes[node], request, false);
    }

    /// Everyone in a room, on every node: (room likeness, nick likeness) -> (node, client).
    fn in_rooms(&self) -> Result<Registry, String> {
        let mut seen = Registry::new();
        for (node, shell) in self.nodes.iter().enumerate() {
            for id in shell.live_clients() {
                let Some((nick, Some(room))) = shell.engine.client_info(id) else {
                    continue;
                };
                let key = (room_likeness(room), nick_likeness(nick));
                if let Some(other) = seen.insert(key.clone(), (node, id)) {
                    return Err(format!("{key:?} held by {other:?} and ({node}, {id})"));
                }
            }
        }
        Ok(seen)
    }

    fn quiesce(&mut self) {
        for _ in 0..10_000 {
            self.collect();
            let Some(node) = (0..NODES).find(|&n| !self.asked[n].is_empty()) else {
                return;
            };
            let request = self.asked[node].pop_front().expect("found above");
            self.carry_out(node, request);
        }
        panic!("the claims did not go quiet");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::default())]

    /// No two members of one room, on any nodes, have names alike; once everything is carried
    /// out the registry holds exactly the names in use.
    #[test]
    fn names_stay_unique_across_nodes_and_no_claim_leaks(
        steps in proptest::collection::vec(step(), 1..60)
    ) {
        let mut cluster = Cluster::new();
        for step in steps {
            cluster.run(step);
            prop_assert!(cluster.in_rooms().is_ok(), "{:?}", cluster.in_rooms());
        }
        cluster.quiesce();
        let in_rooms = cluster.in_rooms().map_err(TestCaseError::fail)?;
        prop_assert_eq!(&in_rooms, cluster.registry.held());
    }
}
