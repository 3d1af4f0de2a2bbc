//! The node's broker task (`--broker`): it carries out the engine's cluster-mode requests
//! (`Publish`, `Refill`, `Fetch`; nickname claims go to their lanes, `nicks`) against the shared Redis, a bounded number at a time, and turns
//! Redis's answers and the deliveries subscription into reports the hub feeds to the engine. The
//! hub never waits on Redis: it sends requests and selects on reports.
//!
//! A room's publishes from this node go one call at a time, in the order the engine asked: Redis
//! orders whatever arrives first, so two calls in flight for one room could swap a sender's
//! messages. What a room asks while its call is out waits, and goes as the next call, in one
//! batch (one script, consecutive seqs): a busy room pays one round trip per batch, not per
//! message, and a quiet one sends each message at once. Different rooms go at once.
//!
//! A publish carries an idempotency key (this node's epoch and the op), so a retry after a lost
//! reply orders the message once. A refill that fails is retried until it succeeds: the engine's
//! room waits for its answer, and Redis coming back is exactly when it is needed.

use std::collections::hash_map::{Entry, HashMap};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chat_engine::names::{nick_likeness, room_likeness};
use chat_engine::{
    ClaimOutcome, ClientId, LeaveReason, OpId, RemoteSeat, RestoredRoom, Unnumbered,
};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use super::backend::Backend;
use super::nicks::{NickOp, Nicks};
use super::redis::{keys::room_key, BrokerError, Event, Numbered};
use super::relay::{owner_node, Relay};
use super::seats::{Announcement, SeatChange, Seats};
use super::stats::BrokerStats;
use crate::admin::Kicked;

/// Messages one refill asks for at most; the engine asks again after a full page.
const REFILL_PAGE: usize = 256;
/// Messages one publish call carries at most.
const BATCH_MESSAGES: usize = 128;
/// Frame bytes one publish call carries at most (past the first message), so a batch stays a
/// small script call for Redis, which runs nothing else meanwhile.
const BATCH_BYTES: usize = 256 << 10;
/// How often a publish is tried before its sender is told `unavailable`.
const PUBLISH_TRIES: u32 = 3;
/// The pause before a failed refill is tried again.
const RETRY_PAUSE: Duration = Duration::from_millis(500);
/// Deliveries buffered between the subscription and this task; past it the subscription is
/// dropped and made again (a refill repairs what it missed).
const DELIVERIES_BUFFER: usize = 16_384;

/// What the hub asks of the broker.
#[derive(Debug)]
pub(crate) enum Request {
    Publish(Publish),
    Refill {
        room: String,
        after: u64,
    },
    Fetch {
        to: ClientId,
        room: String,
        before: u64,
        limit: usize,
    },
    Nick(NickOp),
    /// A typing notice for the room's members on the other nodes.
    Relay {
        room: String,
        frame: Bytes,
    },
    /// A seat of this node's, for the other nodes.
    Seat(SeatChange),
    /// An operator's kick this node could not carry out: for the node holding the name.
    Kick {
        room: String,
        nick: String,
        reply: oneshot::Sender<Kicked>,
    },
}

/// One message for the broker to order.
#[derive(Debug)]
pub(crate) struct Publish {
    pub(crate) op: OpId,
    pub(crate) room: String,
    pub(crate) message: Unnumbered,
}

impl Publish {
    fn bytes(&self) -> usize {
        self.message.head.len() + self.message.tail.len()
    }
}

/// What the broker tells the hub, each one an engine input.
#[derive(Debug)]
pub(crate) enum Report {
    Published {
        op: OpId,
    },
    PublishFailed {
        op: OpId,
    },
    Ordered {
        room: String,
        epoch: String,
        seq: u64,
        frame: Bytes,
    },
    Refilled {
        room: String,
        epoch: String,
        messages: Vec<(u64, Bytes)>,
        complete: bool,
    },
    Resumed,
    Fetched {
        to: ClientId,
        room: String,
        messages: Vec<Bytes>,
        complete: bool,
    },
    NickClaimed {
        client: ClientId,
        room: String,
        likeness: String,
        outcome: ClaimOutcome,
    },
    /// Another node's typing notice for this node's members.
    Relayed {
        room: String,
        frame: Bytes,
    },
    /// An operator's kick of a member of this node, asked on another.
    Kick {
        room: String,
        nick: String,
    },
    /// Another node's seat changes, in its order.
    RemoteSeats {
        node: String,
        changes: Vec<SeatChange>,
    },
    /// Everything another node seats now (empty with `Timeout`: it died).
    RemoteNode {
        node: String,
        seats: Vec<RemoteSeat>,
        missing: LeaveReason,
    },
}

/// The hub's ends of the broker task.
#[derive(Debug)]
pub(crate) struct BrokerHandle {
    pub(crate) requests: mpsc::UnboundedSender<Request>,
    pub(crate) reports: Option<mpsc::Receiver<Report>>,
    /// The subscription's state and the publishes' counts (`/readyz`, `/status`, `/metrics`).
    pub(crate) stats: Arc<BrokerStats>,
}

/// The room a chat frame names (the frame's own spelling).
pub(crate) fn frame_room(frame: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Probe<'a> {
        #[serde(borrow)]
        room: std::borrow::Cow<'a, str>,
    }
    serde_json::from_slice::<Probe<'_>>(frame)
        .ok()
        .map(|p| p.room.into_owned())
}

/// The key of `room` in Redis.
fn key(room: &str) -> String {
    room_key(&room_likeness(room))
}

/// Every room Redis keeps with messages, each with its last `history` messages, to start the
/// engine from (`Engine::restore`). A room whose messages name it in several spellings keeps
/// those of its latest spelling.
pub(crate) async fn rooms<B: Backend>(
    broker: &B,
    history: usize,
) -> Result<Vec<RestoredRoom>, BrokerError> {
    let mut restored = Vec::new();
    for state in broker.rooms().await? {
        if state.seq == 0 {
            continue;
        }
        let after = state.seq.saturating_sub(history.max(1) as u64);
        let Some(range) = broker.range(&state.room, after, history.max(1)).await? else {
            continue;
        };
        let Some(name) = range.messages.last().and_then(|(_, f)| frame_room(f)) else {
            continue;
        };
        let mut kept: Vec<(u64, Bytes)> = Vec::new();
        for (seq, frame) in range.messages.into_iter().rev() {
            let consecutive = kept.last().is_none_or(|(next, _)| *next == seq + 1);
            if !consecutive || frame_room(&frame).as_deref() != Some(name.as_str()) {
                break;
            }
            kept.push((seq, frame));
        }
        kept.reverse();
        restored.push(RestoredRoom {
            name,
            epoch: range.epoch,
            seq: range.seq,
            history: kept,
        });
    }
    Ok(restored)
}

/// Starts the broker task: requests in, reports out, at most `in_flight` Redis calls at once.
pub(crate) fn spawn<B: Backend>(
    broker: B,
    node_epoch: String,
    in_flight: usize,
    claim_ttl: Duration,
) -> Result<BrokerHandle, BrokerError> {
    let (events, subscription) = broker.subscribe(DELIVERIES_BUFFER)?;
    let (requests, inbox) = mpsc::unbounded_channel();
    // Bounded: a hub that falls behind stops this task, whose subscription then overflows and is
    // dropped (a refill repairs it), rather than deliveries piling up here.
    let (reports_tx, reports) = mpsc::channel(DELIVERIES_BUFFER);
    let stats = Arc::new(BrokerStats::default());
    let nicks = Nicks::spawn(&broker, &node_epoch, claim_ttl, &reports_tx);
    let seats = Seats::spawn(&broker, &node_epoch, claim_ttl, &reports_tx);
    let task = Task {
        nicks,
        seats,
        broker,
        node_epoch,
        in_flight: in_flight.max(1),
        reports: reports_tx,
        stats: stats.clone(),
    };
    tokio::spawn(async move {
        task.run(inbox, events).await;
        subscription.abort();
    });
    Ok(BrokerHandle {
        requests,
        reports: Some(reports),
        stats,
    })
}

struct Task<B: Backend> {
    broker: B,
    nicks: Nicks,
    seats: Seats,
    node_epoch: String,
    in_flight: usize,
    reports: mpsc::Sender<Report>,
    stats: Arc<BrokerStats>,
}

impl<B: Backend> Task<B> {
    async fn run(
        self,
        mut inbox: mpsc::UnboundedReceiver<Request>,
        mut events: mpsc::Receiver<Event>,
    ) {
        let mut calls: Calls = JoinSet::new();
        // Publishes waiting for their room's call in flight, by room key.
        let mut queued: Queued = HashMap::new();
        // Biased, so a simulated run is the same every time its seed is; finished calls first
        // (at most `in_flight` are out), then deliveries and requests by turns, so a flood of
        // either cannot starve the other.
        let mut events_first = false;
        loop {
            events_first = !events_first;
            let room_for_calls = calls.len() < self.in_flight;
            let turn = if events_first {
                tokio::select! {
                    biased;
                    Some(done) = calls.join_next(), if !calls.is_empty() => Turn::Finished(done),
                    event = events.recv() => Turn::Event(event),
                    request = inbox.recv(), if room_for_calls => Turn::Request(request),
                }
            } else {
                tokio::select! {
                    biased;
                    Some(done) = calls.join_next(), if !calls.is_empty() => Turn::Finished(done),
                    request = inbox.recv(), if room_for_calls => Turn::Request(request),
                    event = events.recv() => Turn::Event(event),
                }
            };
            match turn {
                Turn::Finished(Err(_)) => continue,
                Turn::Finished(Ok((room, reports))) => {
                    if let Some(room) = room {
                        // What waits for the room goes as one batch; nothing waits: it is free.
                        match queued.get_mut(&room).and_then(next_batch) {
                            Some(batch) => self.start_batch(&mut calls, room, batch),
                            None => {
                                queued.remove(&room);
                            }
                        }
                    }
                    for report in reports {
                        if self.reports.send(report).await.is_err() {
                            return;
                        }
                    }
                }
                Turn::Event(None) | Turn::Request(None) => break,
                Turn::Event(Some(event)) => {
                    let Some(report) = self.report_of(event) else {
                        continue;
                    };
                    if self.reports.send(report).await.is_err() {
                        break;
                    }
                }
                Turn::Request(Some(request)) => self.carry_out(request, &mut calls, &mut queued),
            }
        }
    }

    /// Carries out one request of the hub's: a call, or a message to the lanes.
    fn carry_out(&self, request: Request, calls: &mut Calls, queued: &mut Queued) {
        match request {
            Request::Publish(publish) => match queued.entry(key(&publish.room)) {
                Entry::Occupied(mut waiting) => waiting.get_mut().push_back(publish),
                Entry::Vacant(free) => {
                    let key = free.key().clone();
                    free.insert(VecDeque::new());
                    self.start_batch(calls, key, vec![publish]);
                }
            },
            Request::Refill { room, after } => {
                let (broker, epoch) = (self.broker.clone(), self.node_epoch.clone());
                calls
                    .spawn(async move { (None, vec![refill(&broker, &epoch, room, after).await]) });
            }
            Request::Fetch {
                to,
                room,
                before,
                limit,
            } => {
                let broker = self.broker.clone();
                calls.spawn(
                    async move { (None, vec![fetch(&broker, to, room, before, limit).await]) },
                );
            }
            Request::Nick(op) => self.nicks.send(op),
            Request::Seat(op) => self.seats.send(op),
            Request::Relay { room, frame } => {
                let relay = Relay::Typing {
                    from: self.node_epoch.clone(),
                    room,
                    frame: String::from_utf8_lossy(&frame).into_owned(),
                };
                let broker = self.broker.clone();
                calls.spawn(async move {
                    // Typing is a hint: without Redis it is dropped.
                    let _ = broker.relay(&relay.encode()).await;
                    (None, Vec::new())
                });
            }
            Request::Kick { room, nick, reply } => {
                let (broker, epoch) = (self.broker.clone(), self.node_epoch.clone());
                calls.spawn(async move {
                    let _ = reply.send(kick_elsewhere(&broker, &epoch, room, nick).await);
                    (None, Vec::new())
                });
            }
        }
    }

    /// The hub's report of one subscription event, if it has one (seat announcements go to the
    /// seats task instead).
    fn report_of(&self, event: Event) -> Option<Report> {
        let report = match event {
            Event::Delivery(ordered) => {
                let Some(room) = frame_room(&ordered.body) else {
                    tracing::warn!(
                        seq = ordered.seq,
                        "a delivery that is not a chat frame; skipped"
                    );
                    return None;
                };
                Report::Ordered {
                    room,
                    epoch: ordered.epoch,
                    seq: ordered.seq,
                    frame: ordered.body,
                }
            }
            Event::Relayed(payload) => match Relay::decode(&payload) {
                Some(Relay::Typing { from, room, frame }) if from != self.node_epoch => {
                    Report::Relayed {
                        room,
                        frame: Bytes::from(frame),
                    }
                }
                Some(Relay::Kick { to, room, nick }) if to == self.node_epoch => {
                    Report::Kick { room, nick }
                }
                Some(Relay::Seats {
                    from,
                    n,
                    full,
                    changes,
                }) => {
                    self.seats.heard(Announcement {
                        from,
                        n,
                        full,
                        changes,
                    });
                    return None;
                }
                Some(_) => return None,
                None => {
                    tracing::warn!("a relay that is not one of ours; skipped");
                    return None;
                }
            },
            Event::Lost => {
                tracing::warn!("lost the broker's deliveries; resubscribing");
                self.stats.set_subscribed(false);
                return None;
            }
            Event::Subscribed => {
                tracing::info!("subscribed to the broker's deliveries");
                self.stats.set_subscribed(true);
                self.seats.resubscribed();
                Report::Resumed
            }
        };
        Some(report)
    }
}

/// What woke the broker task.
enum Turn {
    Finished(Result<(Option<String>, Vec<Report>), tokio::task::JoinError>),
    Event(Option<Event>),
    Request(Option<Request>),
}

/// The broker task's calls in flight: each names the room whose publish it was, if one.
type Calls = JoinSet<(Option<String>, Vec<Report>)>;
/// Publishes waiting for their room's call in flight, by room key.
type Queued = HashMap<String, VecDeque<Publish>>;

/// The oldest waiting publishes that fit one call (one at least), or `None` if none wait.
fn next_batch(waiting: &mut VecDeque<Publish>) -> Option<Vec<Publish>> {
    let first = waiting.pop_front()?;
    let mut bytes = first.bytes();
    let mut batch = vec![first];
    while let Some(next) = waiting.front() {
        if batch.len() == BATCH_MESSAGES || bytes + next.bytes() > BATCH_BYTES {
            break;
        }
        bytes += next.bytes();
        batch.extend(waiting.pop_front());
    }
    Some(batch)
}

impl<B: Backend> Task<B> {
    /// Starts one publish call for the room under `key`, which names it in its answer so the
    /// room's next batch can follow.
    fn start_batch(
        &self,
        calls: &mut JoinSet<(Option<String>, Vec<Report>)>,
        key: String,
        batch: Vec<Publish>,
    ) {
        let (broker, epoch) = (self.broker.clone(), self.node_epoch.clone());
        let stats = self.stats.clone();
        calls.spawn(async move {
            let reports = publish(&broker, &epoch, &key, batch, &stats).await;
            (Some(key), reports)
        });
    }
}

/// Orders one room's `batch` in one script call, tried up to [`PUBLISH_TRIES`] times with the
/// same idempotency keys; one report per message.
async fn publish<B: Backend>(
    broker: &B,
    node_epoch: &str,
    key: &str,
    batch: Vec<Publish>,
    stats: &BrokerStats,
) -> Vec<Report> {
    let idems: Vec<String> = (batch.iter())
        .map(|p| format!("{node_epoch}-{}", p.op.get()))
        .collect();
    let messages: Vec<Numbered<'_>> = (batch.iter().zip(&idems))
        .map(|(p, idem)| Numbered {
            head: &p.message.head,
            tail: &p.message.tail,
            idem,
        })
        .collect();
    // A room Redis does not know yet (or lost) starts an epoch no node used before.
    let fresh = format!("{node_epoch}.{}", batch[0].op.get());
    for attempt in 1..=PUBLISH_TRIES {
        match broker.publish_batch(key, &messages, &fresh).await {
            Ok(_) => {
                stats.published(batch.len());
                return (batch.iter())
                    .map(|p| Report::Published { op: p.op })
                    .collect();
            }
            Err(e) if attempt < PUBLISH_TRIES && e.is_unavailable() => {
                tokio::time::sleep(RETRY_PAUSE / 5).await;
            }
            Err(e) => {
                let (room, n) = (&batch[0].room, batch.len());
                tracing::warn!(%room, messages = n, error = %e, "the broker could not order them");
                break;
            }
        }
    }
    stats.failed(batch.len());
    (batch.iter())
        .map(|p| Report::PublishFailed { op: p.op })
        .collect()
}

/// The room's messages after `after`, retried until Redis answers: the engine's room waits for
/// them, and Redis coming back is exactly when they are needed.
async fn refill<B: Backend>(broker: &B, node_epoch: &str, room: String, after: u64) -> Report {
    let key = key(&room);
    loop {
        let range = match broker.range(&key, after, REFILL_PAGE).await {
            Ok(Some(range)) => Ok((range.epoch, range.messages, range.complete)),
            // Redis lost the room (or never had it): it starts a new epoch now.
            Ok(None) => {
                let fresh = format!("{node_epoch}.r{after}");
                (broker.state(&key, &fresh).await).map(|state| (state.epoch, Vec::new(), true))
            }
            Err(e) => Err(e),
        };
        match range {
            Ok((epoch, messages, complete)) => {
                return Report::Refilled {
                    room,
                    epoch,
                    messages,
                    complete,
                }
            }
            Err(e) => {
                tracing::debug!(%room, error = %e, "a refill failed; retrying");
                tokio::time::sleep(RETRY_PAUSE).await;
            }
        }
    }
}

/// Sends an operator's kick to the node whose client holds `nick` in `room` (the claim names
/// it), unless nobody does.
async fn kick_elsewhere<B: Backend>(
    broker: &B,
    node_epoch: &str,
    room: String,
    nick: String,
) -> Kicked {
    let owner = match broker
        .nick_owner(&key(&room), &nick_likeness(nick.trim()))
        .await
    {
        Ok(Some(owner)) => owner,
        Ok(None) => return Kicked::NoSuchUser,
        Err(e) => {
            tracing::warn!(%room, error = %e, "a kick could not look the name up");
            return Kicked::Unavailable;
        }
    };
    let node = owner_node(&owner).to_owned();
    // Ours, yet not here: the member left since the engine looked.
    if node == node_epoch {
        return Kicked::NoSuchUser;
    }
    let relay = Relay::Kick {
        to: node.clone(),
        room,
        nick,
    };
    match broker.relay(&relay.encode()).await {
        Ok(()) => Kicked::Sent { node },
        Err(_) => Kicked::Unavailable,
    }
}

/// A page of the room's history for `to` (`history`); empty and incomplete if Redis fails.
async fn fetch<B: Backend>(
    broker: &B,
    to: ClientId,
    room: String,
    before: u64,
    limit: usize,
) -> Report {
    let (messages, complete) = match broker.page_before(&key(&room), before, limit).await {
        Ok(page) => {
            let complete = page.len() < limit || page.first().is_some_and(|(s, _)| *s == 1);
            (page.into_iter().map(|(_, frame)| frame).collect(), complete)
        }
        Err(e) => {
            tracing::warn!(%room, error = %e, "a history page could not be read from the broker");
            (Vec::new(), false)
        }
    };
    Report::Fetched {
        to,
        room,
        messages,
        complete,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiting(sizes: &[usize]) -> VecDeque<Publish> {
        (sizes.iter().enumerate())
            .map(|(i, &size)| Publish {
                op: OpId::from_raw(i as u64 + 1),
                room: "r".into(),
                message: Unnumbered {
                    head: Bytes::from(vec![b'h'; size / 2]),
                    tail: Bytes::from(vec![b't'; size - size / 2]),
                },
            })
            .collect()
    }

    fn ops(batch: &[Publish]) -> Vec<u64> {
        batch.iter().map(|p| p.op.get()).collect()
    }

    /// A batch takes the oldest waiting messages in order, up to the count or the byte bound
    /// (the byte bound counted exactly), and always one, however large.
    #[test]
    fn a_batch_is_the_oldest_that_fit_and_one_at_least() {
        assert!(next_batch(&mut VecDeque::new()).is_none());
        let mut many = waiting(&[10; BATCH_MESSAGES + 3]);
        let batch = next_batch(&mut many).expect("some wait");
        assert_eq!(ops(&batch), (1..=BATCH_MESSAGES as u64).collect::<Vec<_>>());
        let rest = BATCH_MESSAGES as u64 + 1..=BATCH_MESSAGES as u64 + 3;
        assert_eq!(
            ops(&next_batch(&mut many).unwrap()),
            rest.collect::<Vec<_>>()
        );
        assert!(many.is_empty());

        let half = BATCH_BYTES / 2;
        let mut exact = waiting(&[half, half, 1]);
        assert_eq!(
            ops(&next_batch(&mut exact).unwrap()),
            [1, 2],
            "exactly the bound fits"
        );
        assert_eq!(ops(&next_batch(&mut exact).unwrap()), [3]);

        let mut over = waiting(&[half, half + 1, 1]);
        assert_eq!(
            ops(&next_batch(&mut over).unwrap()),
            [1],
            "a byte over does not"
        );
        let mut huge = waiting(&[BATCH_BYTES * 2, 1]);
        assert_eq!(
            ops(&next_batch(&mut huge).unwrap()),
            [1],
            "alone, however large"
        );
        assert_eq!(ops(&next_batch(&mut huge).unwrap()), [2]);
    }
}
