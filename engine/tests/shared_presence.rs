//! Presence across a cluster (`members_shared`): three engines (nodes) share one claim
//! registry, and each node's seat changes reach every other node in order but late, interleaved
//! with the claims and with each other, now and then replaced by a read of the node's whole
//! seats (a repaired gap). Proptest scripts joins, renames, switches and leaves on every node in
//! rooms small and large (the large-room threshold is two members), and what is carried out next.
//!
//! Invariant: once every claim is carried out, every seat change delivered and a presence
//! interval has passed, **every member's view of its room (its welcome, then every `join`,
//! `leave`, `nick` and `presence` frame applied in order) is exactly the room's members on all
//! nodes**, and so is the room's count on every node.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

mod common;

use chat_engine::test_kit::{unlimited, Event, FakeNicks, NickRequest, Roster, SeatChange, Shell};
use chat_engine::{ClientId, Config, Input, LeaveReason, RemoteSeat};
use common::{act, perform, Act, NODES};
use proptest::prelude::*;

const ROOMS: [&str; 2] = ["general", "den"];
const INTERVAL: Duration = Duration::from_millis(500);

fn config() -> Config {
    Config {
        ordered_by_broker: true,
        nicks_claimed: true,
        members_shared: true,
        presence_notify_max: 2,
        presence_interval: INTERVAL,
        ..unlimited()
    }
}

#[derive(Clone, Debug)]
enum Step {
    /// A member of some node acts.
    Member(Act),
    /// The broker carries out `node`'s oldest claim or release.
    Answer { node: usize },
    /// `to` hears `from`'s oldest seat change not yet told to it.
    Tell { from: usize, to: usize },
    /// `to` reads `from`'s whole seats (what it had not heard yet is covered).
    Read { from: usize, to: usize },
    /// Time passes (presence ticks).
    Wait { ms: u16 },
}

fn step() -> impl Strategy<Value = Step> {
    let node = 0..NODES;
    prop_oneof![
        8 => act(ROOMS.len(), 2).prop_map(Step::Member),
        5 => node.clone().prop_map(|node| Step::Answer { node }),
        5 => (node.clone(), node.clone()).prop_map(|(from, to)| Step::Tell { from, to }),
        1 => (node.clone(), node).prop_map(|(from, to)| Step::Read { from, to }),
        1 => (0..1200u16).prop_map(|ms| Step::Wait { ms }),
    ]
}

struct Cluster {
    nodes: Vec<Shell>,
    registry: FakeNicks,
    asked: Vec<VecDeque<NickRequest>>,
    /// Seat changes of node `from` not yet told to node `to`: `untold[from][to]`.
    untold: Vec<Vec<VecDeque<SeatChange>>>,
    /// Each node's seats as it told them (what a read of its seats returns).
    seats: Vec<BTreeMap<u64, (String, String)>>,
    views: BTreeMap<(usize, ClientId), Roster>,
}

impl Cluster {
    fn new() -> Self {
        Self {
            nodes: (0..NODES)
                .map(|n| Shell::new(config(), &format!("n{n}")))
                .collect(),
            registry: FakeNicks::default(),
            asked: vec![VecDeque::new(); NODES],
            untold: vec![vec![VecDeque::new(); NODES]; NODES],
            seats: vec![BTreeMap::new(); NODES],
            views: BTreeMap::new(),
        }
    }

    fn name(node: usize) -> String {
        format!("n{node}")
    }

    fn run(&mut self, step: Step) {
        match step {
            Step::Member(act) => perform(&mut self.nodes, &ROOMS, act),
            Step::Answer { node } => {
                self.collect();
                if let Some(request) = self.asked[node].pop_front() {
                    (self.registry).carry_out(node, &mut self.nodes[node], request, false);
                }
            }
            Step::Tell { from, to } => {
                self.collect();
                if from != to {
                    if let Some(change) = self.untold[from][to].pop_front() {
                        let node = Self::name(from);
                        self.nodes[to].handle(change.input(&node)).unwrap();
                    }
                }
            }
            Step::Read { from, to } => {
                self.collect();
                if from != to {
                    self.read(from, to);
                }
            }
            Step::Wait { ms } => {
                for shell in &mut self.nodes {
                    shell.advance(Duration::from_millis(u64::from(ms)));
                }
            }
        }
        self.collect();
    }

    /// `to` reads `from`'s seats as they stand: everything untold so far is covered.
    fn read(&mut self, from: usize, to: usize) {
        self.untold[from][to].clear();
        let seats: Vec<RemoteSeat> = (self.seats[from].iter())
            .map(|(&client, (room, nick))| RemoteSeat {
                client,
                room: room.clone(),
                nick: nick.clone(),
            })
            .collect();
        let node = Self::name(from);
        let input = Input::RemoteNode {
            node: &node,
            seats: &seats,
            missing: LeaveReason::Left,
        };
        self.nodes[to].handle(input).unwrap();
    }

    /// Takes every node's new claims, seat changes and client frames.
    fn collect(&mut self) {
        for node in 0..NODES {
            let shell = &mut self.nodes[node];
            self.asked[node].extend(shell.take_nick_requests());
            for change in shell.take_seats() {
                match &change {
                    SeatChange::Seated { client, room, nick } => {
                        self.seats[node].insert(client.get(), (room.clone(), nick.clone()));
                    }
                    SeatChange::Unseated { client, .. } => {
                        self.seats[node].remove(&client.get());
                    }
                }
                for to in (0..NODES).filter(|&to| to != node) {
                    self.untold[node][to].push_back(change.clone());
                }
            }
            for (id, events) in shell.all_events() {
                let view = self.views.entry((node, id)).or_default();
                for event in &events {
                    if let Event::Frame(message) = event {
                        view.apply(message);
                    }
                }
            }
        }
    }

    fn quiesce(&mut self) {
        for _ in 0..10_000 {
            self.collect();
            if let Some(node) = (0..NODES).find(|&n| !self.asked[n].is_empty()) {
                let request = self.asked[node].pop_front().expect("found above");
                (self.registry).carry_out(node, &mut self.nodes[node], request, false);
                continue;
            }
            let untold = (0..NODES)
                .flat_map(|from| (0..NODES).map(move |to| (from, to)))
                .find(|&(from, to)| !self.untold[from][to].is_empty());
            let Some((from, to)) = untold else {
                for shell in &mut self.nodes {
                    shell.advance(INTERVAL * 2);
                }
                self.collect();
                return;
            };
            let change = self.untold[from][to].pop_front().expect("found above");
            let node = Self::name(from);
            self.nodes[to].handle(change.input(&node)).unwrap();
        }
        panic!("the cluster did not go quiet");
    }

    /// Every room's members on all nodes, by room.
    fn members(&self) -> BTreeMap<String, BTreeSet<String>> {
        let mut rooms: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for shell in &self.nodes {
            for id in shell.live_clients() {
                if let Some((nick, Some(room))) = shell.engine.client_info(id) {
                    rooms
                        .entry(room.to_owned())
                        .or_default()
                        .insert(nick.to_owned());
                }
            }
        }
        rooms
    }

    fn check_views(&self) -> Result<(), String> {
        let members = self.members();
        for (node, shell) in self.nodes.iter().enumerate() {
            for id in shell.live_clients() {
                let Some((_, Some(room))) = shell.engine.client_info(id) else {
                    continue;
                };
                let view = &self.views[&(node, id)];
                let want = &members[room];
                if view.room.as_deref() != Some(room) || &view.names != want {
                    return Err(format!(
                        "{id} on n{node} in {room} sees {view:?}, the room holds {want:?}"
                    ));
                }
            }
            for (room, want) in &members {
                let count = shell.engine.user_count(room).unwrap_or(0);
                if count != want.len() {
                    return Err(format!(
                        "n{node} counts {count} in {room}, it holds {want:?}"
                    ));
                }
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::default())]

    /// Once everything is told and a presence interval has passed, every member's view of its
    /// room is exactly the room's members on all nodes.
    #[test]
    fn every_member_s_view_converges_to_the_cluster_s_membership(
        steps in proptest::collection::vec(step(), 1..80)
    ) {
        let mut cluster = Cluster::new();
        for step in steps {
            cluster.run(step);
        }
        cluster.quiesce();
        cluster.check_views().map_err(TestCaseError::fail)?;
    }
}
