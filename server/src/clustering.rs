//! Joining a cluster at start (`--broker`): connect to the shared Redis, put the engine in
//! cluster mode (messages ordered and nicknames claimed by Redis), load the rooms Redis keeps, then start the broker task. A Redis that cannot be
//! reached at start stops the start with one line naming it, as an unreadable data directory
//! does: a node that started alone would hand out seqs no other node knows.

use std::future::Future;
use std::io;
use std::time::Duration;

use chat_engine::RestoredRoom;

use crate::broker::node::{self, BrokerHandle};
use crate::broker::redis::{BrokerError, BrokerOptions};
use crate::broker::Backend;
use crate::settings::Settings;

/// Redis calls at once from one node.
const IN_FLIGHT: usize = 64;
/// The shortest `--presence-ttl`: claims are renewed every third of it.
const PRESENCE_TTL_MIN: Duration = Duration::from_millis(300);

/// A node connected to its cluster, before it serves.
pub(crate) struct Cluster<B> {
    broker: B,
    /// The broker's name in errors (its URL).
    name: String,
    /// The rooms Redis keeps, each with its latest messages (`--history`).
    pub(crate) rooms: Vec<RestoredRoom>,
    /// How long this node's nickname claims outlive it.
    claim_ttl: Duration,
}

/// How the Redis broker keeps history and waits, for these settings.
pub(crate) fn redis_options(settings: &Settings) -> BrokerOptions {
    BrokerOptions {
        retention: usize::try_from(settings.store.retention_messages)
            .unwrap_or(usize::MAX)
            .max(1),
        op_ttl: Duration::from_secs(60),
        call_timeout: Duration::from_secs(2),
    }
}

/// Connects to the broker `name` (`connect` is awaited only once the settings are found fit)
/// and sets the engine up for it.
pub(crate) async fn join<B: Backend>(
    name: &str,
    connect: impl Future<Output = Result<B, BrokerError>>,
    settings: &mut Settings,
) -> io::Result<Cluster<B>> {
    if settings.presence_ttl < PRESENCE_TTL_MIN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("--presence-ttl must be at least {PRESENCE_TTL_MIN:?}"),
        ));
    }
    let engine = &mut settings.engine;
    engine.ordered_by_broker = true;
    engine.nicks_claimed = true;
    engine.members_shared = true;
    engine.hold_until_committed = false;
    engine.tail_on_wake = false;
    engine.store_relaxed = false;
    let unreachable = |e: BrokerError| io::Error::other(format!("broker {name}: {e}"));
    let broker = connect.await.map_err(unreachable)?;
    let rooms = node::rooms(&broker, settings.engine.history_max)
        .await
        .map_err(unreachable)?;
    // Guests of different nodes get different names; their claims make sure of it.
    let number = broker.node_number().await.map_err(unreachable)?;
    settings.engine.guest_tag = format!("{}-", number % 1_000_000_000);
    tracing::info!(broker = name, rooms = rooms.len(), "joined the cluster");
    Ok(Cluster {
        broker,
        name: name.to_owned(),
        rooms,
        claim_ttl: settings.presence_ttl,
    })
}

/// Starts the broker task of a node that joined.
pub(crate) fn spawn<B: Backend>(
    cluster: Cluster<B>,
    node_epoch: String,
) -> io::Result<BrokerHandle> {
    node::spawn(cluster.broker, node_epoch, IN_FLIGHT, cluster.claim_ttl)
        .map_err(|e| io::Error::other(format!("broker {}: {e}", cluster.name)))
}
