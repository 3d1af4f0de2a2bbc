//! Presence across nodes: this node's seats told to the others, and theirs kept for the engine
//! (`Config::members_shared`).
//!
//! **Telling.** The engine's `Seated` and `Unseated` go out in announcements, one call at a
//! time, so they arrive in order: a script keeps the node's seats in a Redis hash, numbers the
//! announcement with the node's counter, renews the node's alive key and publishes the
//! announcement on the relay channel. What the engine says while a call is out is coalesced per
//! client (only a client's latest seat matters), so the work stays bounded by the clients, not
//! by the changes. With nothing to tell, an announcement still goes every quarter of
//! `--presence-ttl`: the heartbeat. If the counter did not follow on (Redis lost it), the next
//! announcement is full: it replaces the hash and every node's view of this one.
//!
//! **Keeping.** Another node's announcements apply in their numbers' order. A gap (pub/sub lost
//! one, or this node just came) is repaired from the hash, read with its number in one script;
//! what arrives meanwhile waits and follows. A node unheard for half the ttl is looked up: once
//! its alive key is gone (at most half the ttl after its last announcement), it is dead, and its
//! members leave every room here with `timeout`: within the ttl, and once, since the node is
//! then forgotten.

use std::collections::BTreeMap;
use std::time::Duration;

use chat_engine::{LeaveReason, RemoteSeat};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::backend::Backend;
use super::node::Report;
use super::redis::NodeSeats;

/// Seat changes one announcement carries at most (a full one carries every seat).
const BATCH: usize = 1024;
/// Announcements of one node kept while its seats are read, at most; past it, read again.
const EARLY_MAX: usize = 1024;
/// The pause before a failed Redis call is tried again.
const RETRY_PAUSE: Duration = Duration::from_millis(250);

/// A seat change of one client (by its number on its node): this node's, as the engine told
/// it, or another node's, for the engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SeatChange {
    Seated {
        client: u64,
        room: String,
        nick: String,
    },
    Unseated {
        client: u64,
        reason: LeaveReason,
    },
}

/// One change in an announcement, as JSON: a client's seat now, or its leave.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Change {
    pub(crate) c: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) seat: Option<(String, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) left: Option<String>,
}

/// An announcement another node published (the relay's `seats`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Announcement {
    pub(crate) from: String,
    pub(crate) n: u64,
    pub(crate) full: bool,
    pub(crate) changes: Vec<Change>,
}

/// The JSON of an announcement up to its number, which the script appends, then `}`.
fn announcement_head(node: &str, full: bool, changes: &[Change]) -> String {
    let from = serde_json::to_string(node).expect("a string serializes");
    let changes = serde_json::to_string(changes).expect("changes serialize");
    format!(r#"{{"kind":"seats","from":{from},"full":{full},"changes":{changes},"n":"#)
}

/// A seat's value in the node's hash: `[room, nick]`.
fn seat_value(room: &str, nick: &str) -> String {
    serde_json::to_string(&(room, nick)).expect("strings serialize")
}

/// Another node's changes, for the engine; what does not parse is skipped.
fn remote_changes(changes: &[Change]) -> Vec<SeatChange> {
    let one = |change: &Change| match (&change.seat, &change.left) {
        (Some((room, nick)), _) => Some(SeatChange::Seated {
            client: change.c,
            room: room.clone(),
            nick: nick.clone(),
        }),
        (None, Some(reason)) => Some(SeatChange::Unseated {
            client: change.c,
            reason: LeaveReason::parse(reason)?,
        }),
        (None, None) => None,
    };
    changes.iter().filter_map(one).collect()
}

/// The seats of a full announcement.
fn full_seats(changes: &[Change]) -> Vec<RemoteSeat> {
    (changes.iter())
        .filter_map(|change| {
            let (room, nick) = change.seat.clone()?;
            Some(RemoteSeat {
                client: change.c,
                room,
                nick,
            })
        })
        .collect()
}

/// The seats Redis keeps for a node, for the engine; what does not parse is skipped.
fn snapshot_seats(seats: &NodeSeats) -> Vec<RemoteSeat> {
    (seats.seats.iter())
        .filter_map(|(client, value)| {
            let (room, nick) = serde_json::from_str::<(String, String)>(value).ok()?;
            Some(RemoteSeat {
                client: client.parse().ok()?,
                room,
                nick,
            })
        })
        .collect()
}

/// What the broker task sends this one.
#[derive(Debug)]
enum Message {
    Op(SeatChange),
    Heard(Announcement),
    /// The subscription was (re)made: announcements may have been lost meanwhile.
    Resubscribed,
}

/// The broker task's end of the seats task.
#[derive(Debug)]
pub(crate) struct Seats {
    tx: mpsc::UnboundedSender<Message>,
}

impl Seats {
    pub(crate) fn spawn<B: Backend>(
        broker: &B,
        node: &str,
        ttl: Duration,
        reports: &mpsc::Sender<Report>,
    ) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = Task {
            broker: broker.clone(),
            node: node.to_owned(),
            ttl,
            reports: reports.clone(),
            mine: Mine::default(),
            peers: BTreeMap::new(),
        };
        tokio::spawn(task.run(rx));
        Self { tx }
    }

    pub(crate) fn send(&self, op: SeatChange) {
        let _ = self.tx.send(Message::Op(op));
    }

    pub(crate) fn heard(&self, announcement: Announcement) {
        let _ = self.tx.send(Message::Heard(announcement));
    }

    pub(crate) fn resubscribed(&self) {
        let _ = self.tx.send(Message::Resubscribed);
    }
}

/// This node's seats and what the others have not been told yet.
#[derive(Debug)]
struct Mine {
    /// Every client's seat now.
    seats: BTreeMap<u64, (String, String)>,
    /// Clients whose seat changed since the last announcement Redis took: `None` seated now
    /// (see `seats`), `Some` left for that reason.
    pending: BTreeMap<u64, Option<LeaveReason>>,
    /// The next announcement replaces the node's hash (at start, and after Redis lost it).
    full: bool,
    /// The number of the last announcement Redis took.
    last_n: Option<u64>,
    /// An announcement is out.
    calling: bool,
    /// The heartbeat is due.
    beat: bool,
}

impl Default for Mine {
    fn default() -> Self {
        Self {
            seats: BTreeMap::new(),
            pending: BTreeMap::new(),
            full: true,
            last_n: None,
            calling: false,
            beat: true,
        }
    }
}

impl Mine {
    fn note(&mut self, op: SeatChange) {
        match op {
            SeatChange::Seated { client, room, nick } => {
                self.seats.insert(client, (room, nick));
                self.pending.insert(client, None);
            }
            SeatChange::Unseated { client, reason } => {
                if self.seats.remove(&client).is_some() {
                    self.pending.insert(client, Some(reason));
                }
            }
        }
    }

    /// The next announcement, if one is due and none is out.
    fn next(&mut self) -> Option<Told> {
        if self.calling || !(self.full || self.beat || !self.pending.is_empty()) {
            return None;
        }
        self.calling = true;
        self.beat = false;
        let mut changes = Vec::new();
        let mut fields = Vec::new();
        if self.full {
            self.pending.clear();
            for (&c, (room, nick)) in &self.seats {
                changes.push(Change {
                    c,
                    seat: Some((room.clone(), nick.clone())),
                    left: None,
                });
                fields.push((c.to_string(), seat_value(room, nick)));
            }
            return Some(Told {
                full: true,
                changes,
                fields,
            });
        }
        while changes.len() < BATCH {
            let Some((c, left)) = self.pending.pop_first() else {
                break;
            };
            let change = match (left, self.seats.get(&c)) {
                (None, Some((room, nick))) => {
                    fields.push((c.to_string(), seat_value(room, nick)));
                    Change {
                        c,
                        seat: Some((room.clone(), nick.clone())),
                        left: None,
                    }
                }
                (reason, _) => {
                    fields.push((c.to_string(), String::new()));
                    Change {
                        c,
                        seat: None,
                        left: Some(reason.unwrap_or(LeaveReason::Left).as_str().to_owned()),
                    }
                }
            };
            changes.push(change);
        }
        Some(Told {
            full: false,
            changes,
            fields,
        })
    }

    /// Redis took the announcement numbered `n`.
    fn took(&mut self, full: bool, n: u64) {
        self.calling = false;
        let follows = self.last_n.is_none_or(|last| n == last + 1);
        if full {
            self.full = false;
        } else if !follows {
            // Redis lost the node's counter, and so its hash: tell everything again.
            self.full = true;
        }
        self.last_n = Some(n);
    }

    /// The announcement failed: its changes are told again, unless newer ones replaced them.
    fn failed(&mut self, full: bool, changes: Vec<Change>) {
        self.calling = false;
        if full {
            self.full = true;
            return;
        }
        for change in changes {
            let left = change
                .left
                .as_deref()
                .map(|r| LeaveReason::parse(r).unwrap_or(LeaveReason::Left));
            self.pending.entry(change.c).or_insert(left);
        }
    }
}

/// One announcement of this node's: whether it is full, its changes as JSON and as the hash's
/// fields (client number, `[room, nick]` or empty for a leave).
#[derive(Debug)]
struct Told {
    full: bool,
    changes: Vec<Change>,
    fields: Vec<(String, String)>,
}

/// What this node knows of another.
#[derive(Debug)]
struct Peer {
    /// The number of the last announcement applied (0: none yet).
    n: u64,
    heard: Instant,
    /// Its seats are being read; announcements wait in `early`.
    reading: bool,
    early: Vec<Announcement>,
}

/// A Redis call of this task, done.
enum Done {
    Announced {
        full: bool,
        changes: Vec<Change>,
        result: Result<u64, super::redis::BrokerError>,
    },
    Read {
        node: String,
        seats: Option<NodeSeats>,
    },
    Listed(Vec<String>),
    /// A dead node was taken out of the set of nodes.
    Forgot,
}

struct Task<B: Backend> {
    broker: B,
    node: String,
    ttl: Duration,
    reports: mpsc::Sender<Report>,
    mine: Mine,
    peers: BTreeMap<String, Peer>,
}

impl<B: Backend> Task<B> {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Message>) {
        let mut calls: JoinSet<Done> = JoinSet::new();
        let mut beat = tokio::time::interval(self.ttl / 4);
        let mut check = tokio::time::interval(self.ttl / 8);
        for ticker in [&mut beat, &mut check] {
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        }
        loop {
            let mut reports = Vec::new();
            // Biased, so a run is the same every time its seed is: finished calls (at most a
            // few out) and the tickers (periodic) cannot starve the messages.
            tokio::select! {
                biased;
                Some(done) = calls.join_next(), if !calls.is_empty() => {
                    let Ok(done) = done else { continue };
                    self.done(done, &mut calls, &mut reports);
                }
                _ = beat.tick() => self.mine.beat = true,
                _ = check.tick() => self.check(&mut calls),
                message = rx.recv() => match message {
                    Some(Message::Op(op)) => self.mine.note(op),
                    Some(Message::Heard(announcement)) => {
                        self.heard(announcement, &mut calls, &mut reports);
                    }
                    Some(Message::Resubscribed) => {
                        let broker = self.broker.clone();
                        calls.spawn(async move { Done::Listed(list(&broker).await) });
                    }
                    None => break,
                },
            }
            self.announce(&mut calls);
            for report in reports {
                if self.reports.send(report).await.is_err() {
                    return;
                }
            }
        }
    }

    fn announce(&mut self, calls: &mut JoinSet<Done>) {
        let Some(Told {
            full,
            changes,
            fields,
        }) = self.mine.next()
        else {
            return;
        };
        let (broker, node, ttl) = (self.broker.clone(), self.node.clone(), self.ttl / 2);
        calls.spawn(async move {
            let head = announcement_head(&node, full, &changes);
            let result = broker
                .announce_seats(&node, ttl, full, &head, &fields)
                .await;
            if let Err(e) = &result {
                tracing::debug!(error = %e, "an announcement of seats failed; retrying");
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            Done::Announced {
                full,
                changes,
                result,
            }
        });
    }

    fn heard(
        &mut self,
        announcement: Announcement,
        calls: &mut JoinSet<Done>,
        reports: &mut Vec<Report>,
    ) {
        if announcement.from == self.node {
            return;
        }
        let now = Instant::now();
        let node = announcement.from.clone();
        let peer = self.peers.entry(node.clone()).or_insert(Peer {
            n: 0,
            heard: now,
            reading: false,
            early: Vec::new(),
        });
        peer.heard = now;
        if peer.reading {
            if peer.early.len() < EARLY_MAX {
                peer.early.push(announcement);
            }
            return;
        }
        if !apply(peer, announcement, reports, false) {
            self.read(node, calls);
        }
    }

    /// Reads node `node`'s seats from Redis (its announcements wait meanwhile).
    fn read(&mut self, node: String, calls: &mut JoinSet<Done>) {
        if let Some(peer) = self.peers.get_mut(&node) {
            if peer.reading {
                return;
            }
            peer.reading = true;
        }
        let broker = self.broker.clone();
        calls.spawn(async move {
            loop {
                match broker.seats_of(&node).await {
                    Ok(seats) => return Done::Read { node, seats: Some(seats) },
                    Err(e) if e.is_unavailable() => {
                        tracing::debug!(%node, error = %e, "reading a node's seats failed; retrying");
                        tokio::time::sleep(RETRY_PAUSE).await;
                    }
                    Err(e) => {
                        tracing::warn!(%node, error = %e, "a node's seats could not be read");
                        return Done::Read { node, seats: None };
                    }
                }
            }
        });
    }

    /// Looks up every node unheard for half the ttl: dead, or only its heartbeats were lost.
    fn check(&mut self, calls: &mut JoinSet<Done>) {
        let quiet: Vec<String> = (self.peers.iter())
            .filter(|(_, peer)| !peer.reading && peer.heard.elapsed() > self.ttl / 2)
            .map(|(node, _)| node.clone())
            .collect();
        for node in quiet {
            self.read(node, calls);
        }
    }

    fn done(&mut self, done: Done, calls: &mut JoinSet<Done>, reports: &mut Vec<Report>) {
        match done {
            Done::Announced {
                full,
                changes,
                result,
            } => match result {
                Ok(n) => self.mine.took(full, n),
                Err(_) => self.mine.failed(full, changes),
            },
            Done::Read { node, seats } => self.read_done(node, seats, calls, reports),
            Done::Forgot => {}
            Done::Listed(nodes) => {
                let known: Vec<String> = self.peers.keys().cloned().collect();
                let all = nodes.into_iter().chain(known);
                for node in all.filter(|n| *n != self.node).collect::<Vec<_>>() {
                    self.peers.entry(node.clone()).or_insert(Peer {
                        n: 0,
                        heard: Instant::now(),
                        reading: false,
                        early: Vec::new(),
                    });
                    self.read(node, calls);
                }
            }
        }
    }

    fn read_done(
        &mut self,
        node: String,
        seats: Option<NodeSeats>,
        calls: &mut JoinSet<Done>,
        reports: &mut Vec<Report>,
    ) {
        let Some(peer) = self.peers.get_mut(&node) else {
            return;
        };
        peer.reading = false;
        let Some(seats) = seats else {
            return;
        };
        if !seats.alive {
            tracing::info!(%node, "a node is gone: its members leave");
            self.peers.remove(&node);
            reports.push(Report::RemoteNode {
                node: node.clone(),
                seats: Vec::new(),
                missing: LeaveReason::Timeout,
            });
            let broker = self.broker.clone();
            calls.spawn(async move {
                let _ = broker.forget_seat_node(&node).await;
                Done::Forgot
            });
            return;
        }
        peer.heard = Instant::now();
        let mut early = std::mem::take(&mut peer.early);
        // A read is the node's seats as they stand, whatever came before it: even numbered
        // below the last one applied (Redis lost the counter, and it counts again).
        peer.n = seats.n;
        reports.push(Report::RemoteNode {
            node: node.clone(),
            seats: snapshot_seats(&seats),
            missing: LeaveReason::Left,
        });
        early.sort_by_key(|a| a.n);
        for announcement in early {
            if !apply(peer, announcement, reports, true) {
                return self.read(node, calls);
            }
        }
    }
}

/// Applies `announcement` to what is known of its node, if it follows on (or is full); `false`
/// if only the node's seats in Redis can tell: it is past a gap, from a node not read yet, or
/// numbered at or below the last one applied (Redis lost the node's counter and it counts
/// again from 1; or it was on its way while a read overtook it, and a second read costs
/// nothing). `after_read`: it waited for a read, which covers every one numbered up to it.
fn apply(
    peer: &mut Peer,
    announcement: Announcement,
    reports: &mut Vec<Report>,
    after_read: bool,
) -> bool {
    if after_read && announcement.n <= peer.n {
        return true;
    }
    if announcement.full {
        peer.n = announcement.n;
        reports.push(Report::RemoteNode {
            node: announcement.from,
            seats: full_seats(&announcement.changes),
            missing: LeaveReason::Left,
        });
        return true;
    }
    if peer.n == 0 || announcement.n != peer.n + 1 {
        return false;
    }
    peer.n = announcement.n;
    reports.push(Report::RemoteSeats {
        node: announcement.from,
        changes: remote_changes(&announcement.changes),
    });
    true
}

/// The nodes with seats, retried until Redis answers.
async fn list<B: Backend>(broker: &B) -> Vec<String> {
    loop {
        match broker.seat_nodes().await {
            Ok(nodes) => return nodes,
            Err(e) => {
                tracing::debug!(error = %e, "listing the nodes failed; retrying");
                tokio::time::sleep(RETRY_PAUSE).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seated(c: u64, room: &str, nick: &str) -> SeatChange {
        SeatChange::Seated {
            client: c,
            room: room.into(),
            nick: nick.into(),
        }
    }

    /// Only a client's latest seat is told; a client that came and went before anything was
    /// told is told as gone (the others may have seen it), and one never seated is not told.
    #[test]
    fn changes_coalesce_per_client_and_a_full_one_tells_every_seat() {
        let mut mine = Mine::default();
        mine.note(seated(1, "r", "ann"));
        let Told {
            full,
            changes,
            fields,
        } = mine.next().expect("the first is due");
        assert!(full);
        assert_eq!(changes.len(), 1);
        assert_eq!(fields, [("1".to_owned(), r#"["r","ann"]"#.to_owned())]);
        assert!(mine.next().is_none(), "one at a time");
        mine.took(true, 1);

        mine.note(seated(2, "r", "bob"));
        mine.note(seated(2, "r", "bobby"));
        mine.note(seated(1, "s", "ann"));
        mine.note(SeatChange::Unseated {
            client: 3,
            reason: LeaveReason::Left,
        });
        mine.note(seated(4, "r", "cy"));
        mine.note(SeatChange::Unseated {
            client: 4,
            reason: LeaveReason::Kicked,
        });
        let Told { full, changes, .. } = mine.next().expect("changes wait");
        assert!(!full);
        let left = |c: u64, reason: &str| Change {
            c,
            seat: None,
            left: Some(reason.into()),
        };
        assert_eq!(
            changes,
            [
                sits_in(1, "s", "ann"),
                sits_in(2, "r", "bobby"),
                left(4, "kicked")
            ]
        );
        // It failed: told again, unless a newer change replaced it meanwhile.
        mine.note(seated(2, "r", "b2"));
        mine.failed(false, changes);
        let again = mine.next().expect("told again").changes;
        let again: Vec<(u64, Option<(String, String)>)> =
            again.iter().map(|c| (c.c, c.seat.clone())).collect();
        assert_eq!(
            again,
            [
                (1, Some(("s".into(), "ann".into()))),
                (2, Some(("r".into(), "b2".into()))),
                (4, None)
            ]
        );
        // Redis's number did not follow on: it lost the node's seats, so all are told again.
        mine.took(false, 9);
        assert!(mine.full);
        mine.beat = true;
        let Told { full, changes, .. } = mine.next().expect("full");
        assert!(full);
        assert_eq!(changes.len(), 2, "clients 1 and 2 sit");
    }

    fn sits_in(c: u64, room: &str, nick: &str) -> Change {
        Change {
            c,
            seat: Some((room.into(), nick.into())),
            left: None,
        }
    }

    fn announcement(n: u64, full: bool, changes: Vec<Change>) -> Announcement {
        Announcement {
            from: "b".into(),
            n,
            full,
            changes,
        }
    }

    fn sits(c: u64, nick: &str) -> Change {
        Change {
            c,
            seat: Some(("r".into(), nick.into())),
            left: None,
        }
    }

    /// Announcements apply in order; one past a gap does not (the node's seats are read); a
    /// full one always applies; one numbered at or below the last asks for a read (Redis may
    /// have lost the node's counter), unless it waited for a read, which covers it.
    #[test]
    fn announcements_apply_in_order_and_a_gap_or_a_restart_asks_for_a_read() {
        let mut peer = Peer {
            n: 0,
            heard: Instant::now(),
            reading: false,
            early: Vec::new(),
        };
        let mut reports = Vec::new();
        let mut live = |peer: &mut Peer, n, full, changes| {
            apply(peer, announcement(n, full, changes), &mut reports, false)
        };
        assert!(
            !live(&mut peer, 5, false, vec![sits(1, "a")]),
            "a node first heard of is read first"
        );
        assert!(live(&mut peer, 5, true, vec![sits(1, "a")]));
        assert!(live(&mut peer, 6, false, vec![sits(2, "b")]));
        assert_eq!(peer.n, 6);
        assert!(!live(&mut peer, 8, false, vec![]), "past a gap");
        assert!(
            !live(&mut peer, 1, false, vec![sits(3, "c")]),
            "counting again"
        );
        assert!(!live(&mut peer, 6, false, vec![]), "the same number again");
        assert!(
            live(&mut peer, 1, true, vec![sits(3, "c")]),
            "a full one, whatever its number"
        );
        assert_eq!(peer.n, 1);
        assert!(
            matches!(
                &reports[..],
                [
                    Report::RemoteNode { seats: first, missing: LeaveReason::Left, .. },
                    Report::RemoteSeats { .. },
                    Report::RemoteNode { seats: after_restart, .. },
                ] if first.len() == 1 && after_restart.len() == 1
            ),
            "{reports:?}"
        );
        let mut after = Vec::new();
        peer.n = 9;
        assert!(apply(
            &mut peer,
            announcement(9, false, vec![]),
            &mut after,
            true
        ));
        assert!(after.is_empty(), "covered by the read it waited for");
        assert!(apply(
            &mut peer,
            announcement(10, false, vec![]),
            &mut after,
            true
        ));
        assert_eq!(after.len(), 1);
    }

    #[test]
    fn a_head_becomes_a_relay_once_numbered() {
        let head = announcement_head("n1", false, &[sits(7, "ann")]);
        let relay = super::super::relay::Relay::decode(format!("{head}12}}").as_bytes());
        let Some(super::super::relay::Relay::Seats {
            from,
            n,
            full,
            changes,
        }) = relay
        else {
            panic!("not a seats relay: {head}");
        };
        assert_eq!((from.as_str(), n, full), ("n1", 12, false));
        assert_eq!(changes, [sits(7, "ann")]);
    }
}
