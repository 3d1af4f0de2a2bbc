//! Joining a cluster at start (`--broker`): connect to the shared Redis, put the engine in
//! cluster mode (messages ordered and nicknames claimed by Redis), load the rooms Redis keeps, then start the broker task. A Redis that cannot be
//! reached at start stops the start with one line naming it, as an unreadable data directory
//! does: a node that started alone would hand out seqs no other node knows.

use std::io;
use std::time::Duration;

use chat_engine::RestoredRoom;

use crate::broker::node::{self, BrokerHandle};
use crate::broker::redis::{BrokerOptions, RedisBroker};
use crate::settings::Settings;

/// Redis calls at once from one node.
const IN_FLIGHT: usize = 64;
/// The shortest `--presence-ttl`: claims are renewed every third of it.
const PRESENCE_TTL_MIN: Duration = Duration::from_millis(300);

/// A node connected to its cluster, before it serves.
pub(crate) struct Cluster {
    broker: RedisBroker,
    url: String,
    /// The rooms Redis keeps, each with its latest messages (`--history`).
    pub(crate) rooms: Vec<RestoredRoom>,
    /// How long this node's nickname claims outlive it.
    claim_ttl: Duration,
}

/// Connects to the broker at `url` and sets the engine up for it.
pub(crate) async fn join(url: &str, settings: &mut Settings) -> io::Result<Cluster> {
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
    engine.store_relaxed = false;
    let options = BrokerOptions {
        retention: usize::try_from(settings.store.retention_messages)
            .unwrap_or(usize::MAX)
            .max(1),
        op_ttl: Duration::from_secs(60),
        call_timeout: Duration::from_secs(2),
    };
    let unreachable =
        |e: crate::broker::redis::BrokerError| io::Error::other(format!("broker {url}: {e}"));
    let broker = RedisBroker::connect(url, options)
        .await
        .map_err(unreachable)?;
    let rooms = node::rooms(&broker, settings.engine.history_max)
        .await
        .map_err(unreachable)?;
    // Guests of different nodes get different names; their claims make sure of it.
    let number = broker.node_number().await.map_err(unreachable)?;
    settings.engine.guest_tag = format!("{}-", number % 1_000_000_000);
    tracing::info!(broker = url, rooms = rooms.len(), "joined the cluster");
    Ok(Cluster {
        broker,
        url: url.to_owned(),
        rooms,
        claim_ttl: settings.presence_ttl,
    })
}

/// Starts the broker task of a node that joined.
pub(crate) fn spawn(cluster: Cluster, node_epoch: String) -> io::Result<BrokerHandle> {
    node::spawn(
        cluster.broker,
        &cluster.url,
        node_epoch,
        IN_FLIGHT,
        cluster.claim_ttl,
    )
    .map_err(|e| io::Error::other(format!("broker {}: {e}", cluster.url)))
}
