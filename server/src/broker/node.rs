//! The node's broker task (`--broker`): it carries out the engine's cluster-mode requests
//! (`Publish`, `Refill`, `Fetch`) against the shared Redis, a bounded number at a time, and turns
//! Redis's answers and the deliveries subscription into reports the hub feeds to the engine. The
//! hub never waits on Redis: it sends requests and selects on reports.
//!
//! A room's publishes from this node go one at a time, in the order the engine asked: Redis
//! orders whatever arrives first, so two in flight for one room could swap a sender's messages.
//! Different rooms go at once.
//!
//! A publish carries an idempotency key (this node's epoch and the op), so a retry after a lost
//! reply orders the message once. A refill that fails is retried until it succeeds: the engine's
//! room waits for its answer, and Redis coming back is exactly when it is needed.

use std::collections::hash_map::{Entry, HashMap};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chat_engine::names::room_likeness;
use chat_engine::{ClientId, OpId, RestoredRoom, Unnumbered};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::redis::{keys::room_key, subscribe, BrokerError, Event, RedisBroker};

/// Messages one refill asks for at most; the engine asks again after a full page.
const REFILL_PAGE: usize = 256;
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
    Publish {
        op: OpId,
        room: String,
        message: Unnumbered,
    },
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
}

/// The hub's ends of the broker task.
#[derive(Debug)]
pub(crate) struct BrokerHandle {
    pub(crate) requests: mpsc::UnboundedSender<Request>,
    pub(crate) reports: Option<mpsc::Receiver<Report>>,
    /// Whether the deliveries subscription is up (`/readyz`).
    pub(crate) healthy: Arc<AtomicBool>,
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
pub(crate) async fn rooms(
    broker: &RedisBroker,
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
pub(crate) fn spawn(
    broker: RedisBroker,
    url: &str,
    node_epoch: String,
    in_flight: usize,
) -> Result<BrokerHandle, BrokerError> {
    let (events, subscription) = subscribe(url, DELIVERIES_BUFFER)?;
    let (requests, inbox) = mpsc::unbounded_channel();
    // Bounded: a hub that falls behind stops this task, whose subscription then overflows and is
    // dropped (a refill repairs it), rather than deliveries piling up here.
    let (reports_tx, reports) = mpsc::channel(DELIVERIES_BUFFER);
    let healthy = Arc::new(AtomicBool::new(false));
    let task = Task {
        broker,
        node_epoch,
        in_flight: in_flight.max(1),
        reports: reports_tx,
        healthy: healthy.clone(),
    };
    tokio::spawn(async move {
        task.run(inbox, events).await;
        subscription.abort();
    });
    Ok(BrokerHandle {
        requests,
        reports: Some(reports),
        healthy,
    })
}

struct Task {
    broker: RedisBroker,
    node_epoch: String,
    in_flight: usize,
    reports: mpsc::Sender<Report>,
    healthy: Arc<AtomicBool>,
}

impl Task {
    async fn run(
        self,
        mut inbox: mpsc::UnboundedReceiver<Request>,
        mut events: mpsc::Receiver<Event>,
    ) {
        let mut calls: JoinSet<(Option<String>, Option<Report>)> = JoinSet::new();
        // Publishes waiting for their room's one in flight, by room key.
        let mut queued: HashMap<String, VecDeque<Request>> = HashMap::new();
        loop {
            tokio::select! {
                request = inbox.recv(), if calls.len() < self.in_flight => {
                    let Some(request) = request else { break };
                    if let Request::Publish { room, .. } = &request {
                        match queued.entry(key(room)) {
                            Entry::Occupied(mut waiting) => {
                                waiting.get_mut().push_back(request);
                                continue;
                            }
                            Entry::Vacant(free) => {
                                free.insert(VecDeque::new());
                            }
                        }
                    }
                    self.start(&mut calls, request);
                }
                Some(done) = calls.join_next(), if !calls.is_empty() => {
                    let Ok((room, report)) = done else { continue };
                    if let Some(room) = room {
                        // The room's next publish, if one waits; else the room is free.
                        match queued.get_mut(&room).and_then(VecDeque::pop_front) {
                            Some(next) => self.start(&mut calls, next),
                            None => {
                                queued.remove(&room);
                            }
                        }
                    }
                    if let Some(report) = report {
                        if self.reports.send(report).await.is_err() {
                            break;
                        }
                    }
                }
                event = events.recv() => {
                    let Some(event) = event else { break };
                    let report = match event {
                        Event::Delivery(ordered) => {
                            let Some(room) = frame_room(&ordered.body) else {
                                tracing::warn!(seq = ordered.seq, "a delivery that is not a chat frame; skipped");
                                continue;
                            };
                            Report::Ordered {
                                room,
                                epoch: ordered.epoch,
                                seq: ordered.seq,
                                frame: ordered.body,
                            }
                        }
                        Event::Lost => {
                            tracing::warn!("lost the broker's deliveries; resubscribing");
                            self.healthy.store(false, Ordering::Relaxed);
                            continue;
                        }
                        Event::Subscribed => {
                            tracing::info!("subscribed to the broker's deliveries");
                            self.healthy.store(true, Ordering::Relaxed);
                            Report::Resumed
                        }
                    };
                    if self.reports.send(report).await.is_err() {
                        break;
                    }
                }
            }
        }
    }
}

impl Task {
    /// Starts one Redis call; a publish names its room, so the next one for it can follow.
    fn start(&self, calls: &mut JoinSet<(Option<String>, Option<Report>)>, request: Request) {
        let room = match &request {
            Request::Publish { room, .. } => Some(key(room)),
            _ => None,
        };
        let broker = self.broker.clone();
        let epoch = self.node_epoch.clone();
        calls.spawn(async move { (room, carry_out(broker, epoch, request).await) });
    }
}

/// One request against Redis; its report (`None`: nobody to tell).
async fn carry_out(broker: RedisBroker, node_epoch: String, request: Request) -> Option<Report> {
    match request {
        Request::Publish { op, room, message } => {
            let idem = format!("{node_epoch}-{}", op.get());
            // A room Redis does not know yet (or lost) starts an epoch no node used before.
            let fresh = format!("{node_epoch}.{}", op.get());
            let key = key(&room);
            for attempt in 1..=PUBLISH_TRIES {
                match (broker)
                    .publish_numbered(&key, &message.head, &message.tail, &idem, &fresh)
                    .await
                {
                    Ok(_) => return Some(Report::Published { op }),
                    Err(e) if attempt < PUBLISH_TRIES && e.is_unavailable() => {
                        tokio::time::sleep(RETRY_PAUSE / 5).await;
                    }
                    Err(e) => {
                        tracing::warn!(%op, %room, error = %e, "the broker could not order a message");
                        return Some(Report::PublishFailed { op });
                    }
                }
            }
            Some(Report::PublishFailed { op })
        }
        Request::Refill { room, after } => {
            let key = key(&room);
            loop {
                let range = match broker.range(&key, after, REFILL_PAGE).await {
                    Ok(Some(range)) => Ok((range.epoch, range.messages, range.complete)),
                    // Redis lost the room (or never had it): it starts a new epoch now.
                    Ok(None) => {
                        let fresh = format!("{node_epoch}.r{after}");
                        (broker.state(&key, &fresh).await)
                            .map(|state| (state.epoch, Vec::new(), true))
                    }
                    Err(e) => Err(e),
                };
                match range {
                    Ok((epoch, messages, complete)) => {
                        return Some(Report::Refilled {
                            room,
                            epoch,
                            messages,
                            complete,
                        })
                    }
                    Err(e) => {
                        tracing::debug!(%room, error = %e, "a refill failed; retrying");
                        tokio::time::sleep(RETRY_PAUSE).await;
                    }
                }
            }
        }
        Request::Fetch {
            to,
            room,
            before,
            limit,
        } => {
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
            Some(Report::Fetched {
                to,
                room,
                messages,
                complete,
            })
        }
    }
}
