//! Cluster mode under a misbehaving broker: three engines (nodes) share one `FakeBroker`, and
//! proptest scripts what the broker's replies and deliveries do on the way to each node: late,
//! out of order, twice, or never (a dropped subscription), besides the broker losing everything.
//!
//! Invariant (checked on every frame every client gets, in `Audit::see`): **no member ever gets
//! a gap silently** — after a `welcome` of seq `s` a member's messages in that room are exactly
//! `s + 1, s + 2, ...`, each the broker's frame for that room, epoch and seq; a `welcome` that
//! says `recovered: true` holds exactly the messages after the join's `since`; and once the
//! broker's deliveries and refills are all carried out, every member stands at the broker's seq
//! of its room (nothing acknowledged is lost to anyone who stayed).

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;
use chat_engine::protocol::JoinRequest;
use chat_engine::test_kit::{unlimited, Delivery, Event, FakeBroker, Shell};
use chat_engine::{ClientId, Config, Input, ServerMessage};
use proptest::prelude::*;

const NODES: usize = 3;
const ROOM: &str = "general";

fn config() -> Config {
    Config {
        ordered_by_broker: true,
        history_max: 4,
        ..unlimited()
    }
}

/// What proptest scripts.
#[derive(Clone, Debug)]
enum Step {
    /// A member of `node` sends a message.
    Send { node: usize, who: usize },
    /// The broker orders `node`'s oldest publish; the reply to it is lost when `lose_reply`.
    Order { node: usize, lose_reply: bool },
    /// `node` gets its next delivery.
    Deliver { node: usize },
    /// `node` gets a delivery from further back in its queue (out of order).
    Reorder { node: usize, back: usize },
    /// `node` gets its next delivery twice.
    Duplicate { node: usize },
    /// `node`'s subscription drops: its queued deliveries are lost, then it resubscribes.
    Drop { node: usize },
    /// `node`'s refills are answered.
    Refill { node: usize },
    /// The broker loses every room.
    LoseEverything,
    /// A member of `node` reconnects to `to`, with `since` and `epoch`.
    Move { node: usize, who: usize, to: usize },
}

fn step() -> impl Strategy<Value = Step> {
    let node = 0..NODES;
    prop_oneof![
        4 => (node.clone(), 0..3usize).prop_map(|(node, who)| Step::Send { node, who }),
        4 => (node.clone(), proptest::bool::weighted(0.2))
            .prop_map(|(node, lose_reply)| Step::Order { node, lose_reply }),
        6 => node.clone().prop_map(|node| Step::Deliver { node }),
        1 => (node.clone(), 1..4usize).prop_map(|(node, back)| Step::Reorder { node, back }),
        1 => node.clone().prop_map(|node| Step::Duplicate { node }),
        1 => node.clone().prop_map(|node| Step::Drop { node }),
        2 => node.clone().prop_map(|node| Step::Refill { node }),
        1 => Just(Step::LoseEverything),
        1 => (node.clone(), 0..3usize, node).prop_map(|(node, who, to)| Step::Move { node, who, to }),
    ]
}

/// Where one client stands: its room's epoch and the last seq it got.
#[derive(Clone, Debug)]
struct Standing {
    epoch: String,
    seq: u64,
}

/// The cluster, its broker and what every client was seen to get.
struct Cluster {
    nodes: Vec<Shell>,
    broker: FakeBroker,
    /// Deliveries on their way to each node, oldest first.
    inbox: Vec<VecDeque<Delivery>>,
    /// Every frame the broker ever ordered, by (epoch, seq): what a member must get.
    ordered: BTreeMap<(String, u64), Bytes>,
    /// Members of each node.
    members: Vec<Vec<ClientId>>,
    standing: BTreeMap<(usize, ClientId), Standing>,
    /// The (since, epoch) each client joined with, until its welcome.
    asked: BTreeMap<(usize, ClientId), Option<(u64, String)>>,
    texts: u64,
    /// Publishes each node handed over and the broker has not ordered yet.
    publishes: Vec<VecDeque<chat_engine::test_kit::PublishRequest>>,
    /// Ops whose reply was lost, reported at the node's next `Order`.
    late_replies: Vec<Vec<chat_engine::OpId>>,
}

impl Cluster {
    fn new() -> Self {
        let mut cluster = Self {
            nodes: (0..NODES)
                .map(|n| Shell::new(config(), &format!("n{n}")))
                .collect(),
            broker: FakeBroker::new(6),
            inbox: vec![VecDeque::new(); NODES],
            ordered: BTreeMap::new(),
            members: vec![Vec::new(); NODES],
            standing: BTreeMap::new(),
            asked: BTreeMap::new(),
            texts: 0,
            publishes: vec![VecDeque::new(); NODES],
            late_replies: vec![Vec::new(); NODES],
        };
        for node in 0..NODES {
            for who in 0..3 {
                cluster.join(node, &format!("u{node}x{who}"), None);
            }
        }
        cluster
    }

    fn join(&mut self, node: usize, nick: &str, since: Option<(u64, String)>) {
        let join = JoinRequest {
            room: Some(ROOM.into()),
            nick: Some(nick.into()),
            since: since.as_ref().map(|(seq, _)| *seq),
            epoch: since.as_ref().map(|(_, epoch)| epoch.clone()),
        };
        let id = self.nodes[node].connect_with(join);
        self.asked.insert((node, id), since);
        self.members[node].push(id);
        self.audit(node);
    }

    /// Checks every frame node `node`'s members got since last looked.
    fn audit(&mut self, node: usize) {
        for (id, events) in self.nodes[node].all_events() {
            for event in events {
                if let Event::Frame(message) = event {
                    self.see((node, id), message);
                }
            }
        }
    }

    fn see(&mut self, id: (usize, ClientId), message: ServerMessage) {
        match message {
            ServerMessage::Welcome {
                history,
                recovered,
                seq,
                epoch,
                ..
            } => {
                let asked = self.asked.insert(id, None).flatten();
                if recovered {
                    let (since, asked_epoch) = asked.expect("recovered only what was asked");
                    assert_eq!(asked_epoch, epoch, "recovered in another epoch");
                    let seqs: Vec<u64> = history.iter().map(|m| m.seq).collect();
                    assert_eq!(seqs, (since + 1..=seq).collect::<Vec<_>>(), "recovered");
                }
                for message in &history {
                    self.check_content(&epoch, message.seq, message);
                }
                self.standing.insert(id, Standing { epoch, seq });
            }
            ServerMessage::Message(message) => {
                let standing = self.standing.get(&id).expect("welcomed first").clone();
                assert_eq!(
                    message.seq,
                    standing.seq + 1,
                    "{:?} got seq {} after {} with no welcome between: a silent gap",
                    id,
                    message.seq,
                    standing.seq
                );
                self.check_content(&standing.epoch, message.seq, &message);
                self.standing.get_mut(&id).expect("above").seq = message.seq;
            }
            _ => {}
        }
    }

    fn check_content(&self, epoch: &str, seq: u64, message: &chat_engine::protocol::ChatMessage) {
        let frame = (self.ordered.get(&(epoch.to_owned(), seq)))
            .unwrap_or_else(|| panic!("seq {seq} of epoch {epoch} was never ordered"));
        let ordered: ServerMessage = serde_json::from_slice(frame).expect("a frame");
        assert_eq!(ordered, ServerMessage::Message(message.clone()), "content");
    }

    fn deliver(&mut self, node: usize, delivery: &Delivery) {
        let input = Input::Ordered {
            room: &delivery.room,
            epoch: &delivery.epoch,
            seq: delivery.seq,
            frame: &delivery.frame,
        };
        self.nodes[node].handle(input).expect("ordered");
        self.audit(node);
    }

    /// Answers `node`'s refills; whether there were any.
    fn refill(&mut self, node: usize) -> bool {
        let refills = self.nodes[node].take_refills();
        let any = !refills.is_empty();
        for refill in refills {
            let range = self.broker.range(&refill.room, refill.after, 3);
            let input = Input::Refilled {
                room: &refill.room,
                epoch: &range.epoch,
                messages: &range.messages,
                complete: range.complete,
            };
            self.nodes[node].handle(input).expect("refilled");
            self.audit(node);
        }
        any
    }

    fn run(&mut self, step: Step) {
        match step {
            Step::Send { node, who } => {
                let members = &self.members[node];
                if members.is_empty() {
                    return;
                }
                let id = members[who % members.len()];
                self.texts += 1;
                self.nodes[node].send(id, &format!("t{}", self.texts));
                self.audit(node);
            }
            Step::Order { node, lose_reply } => {
                let taken = self.nodes[node].take_publishes();
                self.publishes[node].extend(taken);
                // A reply lost earlier: the shell's retry finds the write done and reports it.
                for op in std::mem::take(&mut self.late_replies[node]) {
                    self.nodes[node]
                        .handle(Input::Published { op })
                        .expect("late reply");
                }
                let Some(publish) = self.publishes[node].pop_front() else {
                    return;
                };
                let delivery = self.broker.order(&publish.room, &publish.message);
                self.publish(delivery);
                if lose_reply {
                    self.late_replies[node].push(publish.op);
                } else {
                    (self.nodes[node])
                        .handle(Input::Published { op: publish.op })
                        .expect("reply");
                }
                self.audit(node);
            }
            Step::Deliver { node } => {
                if let Some(delivery) = self.inbox[node].pop_front() {
                    self.deliver(node, &delivery);
                }
            }
            Step::Reorder { node, back } => {
                let inbox = &mut self.inbox[node];
                if let Some(delivery) = inbox.remove(back.min(inbox.len().saturating_sub(1))) {
                    self.deliver(node, &delivery);
                }
            }
            Step::Duplicate { node } => {
                if let Some(delivery) = self.inbox[node].front().cloned() {
                    self.deliver(node, &delivery);
                    self.deliver(node, &delivery);
                    self.inbox[node].pop_front();
                }
            }
            Step::Drop { node } => {
                self.inbox[node].clear();
                self.nodes[node]
                    .handle(Input::BrokerResumed)
                    .expect("resumed");
                self.audit(node);
            }
            Step::Refill { node } => {
                self.refill(node);
            }
            Step::LoseEverything => self.broker.lose_everything(),
            Step::Move { node, who, to } => {
                if self.members[node].is_empty() {
                    return;
                }
                let at = who % self.members[node].len();
                let id = self.members[node].remove(at);
                let since = self
                    .standing
                    .get(&(node, id))
                    .map(|s| (s.seq, s.epoch.clone()));
                self.nodes[node].disconnect(id);
                self.audit(node);
                self.texts += 1;
                self.join(to, &format!("m{}", self.texts), since);
            }
        }
    }

    fn publish(&mut self, delivery: Delivery) {
        let key = (delivery.epoch.clone(), delivery.seq);
        self.ordered.insert(key, delivery.frame.clone());
        for inbox in &mut self.inbox {
            inbox.push_back(delivery.clone());
        }
    }

    /// Carries out everything in flight, in order, with every refill answered.
    fn quiesce(&mut self) {
        for _ in 0..1000 {
            let mut busy = false;
            for node in 0..NODES {
                let taken = self.nodes[node].take_publishes();
                self.publishes[node].extend(taken);
                for op in std::mem::take(&mut self.late_replies[node]) {
                    self.nodes[node]
                        .handle(Input::Published { op })
                        .expect("late reply");
                }
                while let Some(publish) = self.publishes[node].pop_front() {
                    busy = true;
                    let delivery = self.broker.order(&publish.room, &publish.message);
                    self.publish(delivery);
                    (self.nodes[node])
                        .handle(Input::Published { op: publish.op })
                        .expect("reply");
                    self.audit(node);
                }
            }
            for node in 0..NODES {
                while let Some(delivery) = self.inbox[node].pop_front() {
                    busy = true;
                    self.deliver(node, &delivery);
                }
                busy |= self.refill(node);
            }
            if !busy {
                return;
            }
        }
        panic!("the cluster did not go quiet");
    }
}

proptest! {
    // 256 cases (proptest's default), or PROPTEST_CASES (the mutation stage's 64).
    #![proptest_config(ProptestConfig::default())]

    /// No member ever gets a gap silently, and once everything in flight is carried out every
    /// member stands at the broker's seq.
    #[test]
    fn no_member_gets_a_gap_silently(steps in proptest::collection::vec(step(), 1..80)) {
        let mut cluster = Cluster::new();
        for step in steps {
            cluster.run(step);
        }
        cluster.quiesce();
        let top = cluster.broker.seq(ROOM);
        for node in 0..NODES {
            for id in cluster.members[node].clone() {
                let standing = &cluster.standing[&(node, id)];
                if top > 0 {
                    prop_assert_eq!(standing.seq, top, "{} on node {} behind", id, node);
                }
            }
        }
    }
}
