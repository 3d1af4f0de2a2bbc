//! A broker in memory for cluster-mode tests (`test_kit::FakeBroker`): one order per room, a
//! log per room trimmed to a retention, an epoch per room that changes when the broker loses
//! everything. It orders what `Output::Publish` asks and answers what `Output::Refill` asks,
//! the way the server's Redis broker does, so tests can drive several engines (nodes) through
//! one broker and delay, reorder, duplicate or drop what it sends each of them.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::Unnumbered;

/// One room as the broker keeps it.
#[derive(Clone, Debug, Default)]
struct BrokerRoom {
    epoch: String,
    seq: u64,
    log: BTreeMap<u64, Bytes>,
}

/// One ordered message, as the broker delivers it to every node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The room.
    pub room: String,
    /// The room's epoch at the broker.
    pub epoch: String,
    /// Its seq.
    pub seq: u64,
    /// The numbered frame.
    pub frame: Bytes,
}

/// What a refill gets: the broker's epoch, messages after the asked seq, and whether nothing
/// between was trimmed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Range {
    /// The room's epoch at the broker.
    pub epoch: String,
    /// Messages after the asked seq, oldest first.
    pub messages: Vec<(u64, Bytes)>,
    /// The first one follows the asked seq (or none was missing).
    pub complete: bool,
}

/// The broker.
#[derive(Debug)]
pub struct FakeBroker {
    rooms: BTreeMap<String, BrokerRoom>,
    /// Messages kept per room, oldest trimmed first.
    retention: usize,
    /// Epochs handed out so far (each new one is `b{n}`).
    epochs: u64,
}

impl FakeBroker {
    /// A broker keeping `retention` messages per room (at least 1).
    pub fn new(retention: usize) -> Self {
        Self {
            rooms: BTreeMap::new(),
            retention: retention.max(1),
            epochs: 0,
        }
    }

    fn room(&mut self, name: &str) -> &mut BrokerRoom {
        if !self.rooms.contains_key(name) {
            self.epochs += 1;
            let epoch = format!("b{}", self.epochs);
            (self.rooms).insert(
                name.to_owned(),
                BrokerRoom {
                    epoch,
                    ..Default::default()
                },
            );
        }
        self.rooms.get_mut(name).expect("inserted above")
    }

    /// Orders one message: the room's next seq, kept and trimmed to the retention.
    pub fn order(&mut self, room: &str, message: &Unnumbered) -> Delivery {
        let retention = self.retention;
        let kept = self.room(room);
        kept.seq += 1;
        let frame = message.numbered(kept.seq);
        kept.log.insert(kept.seq, frame.clone());
        while kept.log.len() > retention {
            kept.log.pop_first();
        }
        Delivery {
            room: room.to_owned(),
            epoch: kept.epoch.clone(),
            seq: kept.seq,
            frame,
        }
    }

    /// At most `limit` messages of `room` after `after`, oldest first.
    pub fn range(&mut self, room: &str, after: u64, limit: usize) -> Range {
        let kept = self.room(room);
        let messages: Vec<(u64, Bytes)> = (kept.log.range(after + 1..))
            .take(limit)
            .map(|(&seq, frame)| (seq, frame.clone()))
            .collect();
        let complete = match messages.first() {
            Some(&(first, _)) => first == after + 1,
            None => after >= kept.seq,
        };
        Range {
            epoch: kept.epoch.clone(),
            messages,
            complete,
        }
    }

    /// The broker loses every room (a restart with nothing saved): each gets a new epoch.
    pub fn lose_everything(&mut self) {
        self.rooms.clear();
    }

    /// The seq last handed out in `room` (0: none).
    pub fn seq(&self, room: &str) -> u64 {
        self.rooms.get(room).map_or(0, |kept| kept.seq)
    }
}

/// Nicknames as a cluster's broker claims them: each (room, likeness) has at most one owner, a
/// node and one of its clients. Rooms are keyed by likeness, as the server's Redis keys are.
#[derive(Debug, Default)]
pub struct FakeNicks {
    held: BTreeMap<(String, String), (usize, crate::ClientId)>,
}

impl FakeNicks {
    /// Carries out every claim and release node `node` asked for, in order, answering each claim
    /// (`Input::NickClaimed`) at once; `unavailable`: answer every claim so, change nothing.
    pub fn serve(&mut self, node: usize, shell: &mut crate::test_kit::Shell, unavailable: bool) {
        // Answers can ask for more (a late grant is released): serve until none is left.
        loop {
            let requests = shell.take_nick_requests();
            if requests.is_empty() {
                return;
            }
            for request in requests {
                self.carry_out(node, shell, request, unavailable);
            }
        }
    }

    /// Carries out one claim or release node `node` asked for, answering a claim at once.
    pub fn carry_out(
        &mut self,
        node: usize,
        shell: &mut crate::test_kit::Shell,
        request: crate::test_kit::NickRequest,
        unavailable: bool,
    ) {
        use crate::test_kit::NickRequest;
        use crate::{ClaimOutcome, Input};
        match request {
            NickRequest::Claim {
                client,
                room,
                likeness,
            } => {
                let key = (crate::names::room_likeness(&room), likeness.clone());
                let outcome = if unavailable {
                    ClaimOutcome::Unavailable
                } else {
                    match self.held.get(&key) {
                        Some(&owner) if owner != (node, client) => ClaimOutcome::Taken,
                        _ => {
                            self.held.insert(key, (node, client));
                            ClaimOutcome::Granted
                        }
                    }
                };
                let answer = Input::NickClaimed {
                    client,
                    room: &room,
                    likeness: &likeness,
                    outcome,
                };
                shell.handle(answer).expect("a claim's answer is an input");
            }
            NickRequest::Release {
                client,
                room,
                likeness,
            } => {
                let key = (crate::names::room_likeness(&room), likeness);
                if self.held.get(&key) == Some(&(node, client)) {
                    self.held.remove(&key);
                }
            }
        }
    }

    /// Every name held: (room likeness, nick likeness) -> (node, client).
    pub fn held(&self) -> &BTreeMap<(String, String), (usize, crate::ClientId)> {
        &self.held
    }

    /// Who holds `likeness` in `room` (a likeness, as a claim names it).
    pub fn owner(&self, room: &str, likeness: &str) -> Option<(usize, crate::ClientId)> {
        let key = (crate::names::room_likeness(room), likeness.to_owned());
        self.held.get(&key).copied()
    }

    /// How many names are held.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// Whether no name is held.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }
}
