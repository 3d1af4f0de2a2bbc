//! The deliveries subscription: one task per node holds one pub/sub connection to
//! [`DELIVERIES`] (and [`RELAY`]), turns envelopes into [`Event::Delivery`] (relays into
//! [`Event::Relayed`]), and reconnects with backoff.
//!
//! Pub/sub is lossy: a message published while the connection is down is never seen, and Redis
//! drops a subscriber whose output buffer passes `client-output-buffer-limit pubsub`. So the task
//! reports every gap it can see ([`Event::Lost`], then [`Event::Subscribed`] once back) and the
//! consumer re-reads the streams of its rooms; a jump in a room's seq is the gap it cannot see.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::client::{bounded, open, Ordered};
use super::envelope;
use super::error::BrokerError;
use super::keys::{DELIVERIES, RELAY};

/// What the subscription task reports, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A message as ordered by the broker.
    Delivery(Ordered),
    /// What a node published on [`RELAY`] (its payload, undecoded).
    Relayed(bytes::Bytes),
    /// The task is (re)subscribed: anything published while it was not may have been missed.
    Subscribed,
    /// The subscription dropped; [`Event::Subscribed`] follows once it is back.
    Lost,
}

/// How long connecting and subscribing may take before the attempt counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How often an idle connection is pinged: a half-open TCP connection never ends the stream by
/// itself, so silence must be checked.
const PING_EVERY: Duration = Duration::from_secs(5);
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Starts the task holding the deliveries subscription; it ends when the receiver is dropped.
///
/// The channel holds `capacity` events. When a delivery finds it full, the task drops the
/// connection and reports [`Event::Lost`] (once there is room), then resubscribes: a slow consumer
/// costs a resync, never silent loss and never unbounded memory. Waiting instead would not push
/// back on Redis: redis-rs reads the socket into an unbounded queue of its own, so the backlog
/// would grow in this process rather than hit Redis's `client-output-buffer-limit pubsub`.
pub fn subscribe(
    url: &str,
    capacity: usize,
) -> Result<(mpsc::Receiver<Event>, JoinHandle<()>), BrokerError> {
    let client = open(url)?;
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let task = tokio::spawn(run(client, tx));
    Ok((rx, task))
}

async fn run(client: ::redis::Client, tx: mpsc::Sender<Event>) {
    let mut backoff = BACKOFF_MIN;
    loop {
        match hold(&client, &tx, &mut backoff).await {
            Held::ReceiverGone => return,
            Held::NeverSubscribed(e) => {
                tracing::debug!(error = %e, "redis deliveries: subscribe failed, retrying");
            }
            Held::Overflow => {
                tracing::warn!("redis deliveries: the consumer fell behind, resubscribing");
                if tx.send(Event::Lost).await.is_err() {
                    return;
                }
            }
            Held::Dropped => {
                tracing::warn!("redis deliveries: subscription lost, resubscribing");
                if tx.send(Event::Lost).await.is_err() {
                    return;
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = tx.closed() => return,
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

enum Held {
    ReceiverGone,
    NeverSubscribed(BrokerError),
    Dropped,
    /// The event channel was full: the connection was dropped on purpose.
    Overflow,
}

/// One connection's life: subscribe, report [`Event::Subscribed`], forward until it drops.
async fn hold(client: &::redis::Client, tx: &mpsc::Sender<Event>, backoff: &mut Duration) -> Held {
    let subscribed = bounded(CONNECT_TIMEOUT, async {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(&[DELIVERIES, RELAY]).await?;
        Ok(pubsub)
    })
    .await;
    let (mut sink, mut stream) = match subscribed {
        Ok(pubsub) => pubsub.split(),
        Err(e) => return Held::NeverSubscribed(e),
    };
    *backoff = BACKOFF_MIN;
    if tx.send(Event::Subscribed).await.is_err() {
        return Held::ReceiverGone;
    }
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.tick().await; // the first tick is immediate
    loop {
        tokio::select! {
            msg = stream.next() => {
                let Some(msg) = msg else { return Held::Dropped };
                if msg.get_channel_name() == RELAY {
                    let relayed = bytes::Bytes::copy_from_slice(msg.get_payload_bytes());
                    match tx.try_send(Event::Relayed(relayed)) {
                        Ok(()) => continue,
                        Err(mpsc::error::TrySendError::Full(_)) => return Held::Overflow,
                        Err(mpsc::error::TrySendError::Closed(_)) => return Held::ReceiverGone,
                    }
                }
                match envelope::parse(msg.get_payload_bytes()) {
                    Ok(e) => {
                        let ordered =
                            Ordered { room: e.room, epoch: e.epoch, seq: e.seq, body: e.body };
                        match tx.try_send(Event::Delivery(ordered)) {
                            Ok(()) => {}
                            Err(mpsc::error::TrySendError::Full(_)) => return Held::Overflow,
                            Err(mpsc::error::TrySendError::Closed(_)) => return Held::ReceiverGone,
                        }
                    }
                    Err(e) => tracing::warn!(
                        error = %e,
                        channel = msg.get_channel_name(),
                        "redis deliveries: skipping a malformed envelope"
                    ),
                }
            }
            _ = ping.tick() => {
                if let Err(e) = bounded(CONNECT_TIMEOUT, sink.ping::<::redis::Value>()).await {
                    tracing::warn!(error = %e, "redis deliveries: ping failed");
                    return Held::Dropped;
                }
            }
            () = tx.closed() => return Held::ReceiverGone,
        }
    }
}
