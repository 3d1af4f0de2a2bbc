//! Prometheus metrics (prometheus-client): engine counters mirrored from the hub's stats, plus
//! the HTTP layer's own counts of upgrades, refusals and failed admin authentications, and its
//! open plain HTTP connections, and the store's and the broker's figures.

use chat_engine::Stats;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Refusal {
    pub(crate) reason: &'static str,
}

pub(crate) struct Metrics {
    registry: Registry,
    connected_users: Gauge,
    rooms: Gauge,
    history_bytes: Gauge,
    messages: Counter,
    frames_sent: Counter,
    evictions: Counter,
    idle_timeouts: Counter,
    rate_limited: Counter,
    errors: Counter,
    pub(crate) upgrades: Counter,
    pub(crate) refused: Family<Refusal, Counter>,
    /// Plain HTTP connections open now; the `--max-http-connections` cap reads it.
    pub(crate) http_connections: Gauge,
    pub(crate) admin_auth_failures: Counter,
    uncommitted: Gauge,
    store_failures: Counter,
    store: StoreMetrics,
    broker: BrokerMetrics,
}

/// The broker task's figures (`--broker`), copied when `/metrics` is read; zero without one.
#[derive(Default)]
struct BrokerMetrics {
    subscribed: Gauge,
    publish_calls: Counter,
    messages_published: Counter,
    publish_failures: Counter,
}

/// The message store's figures, copied from its atomics when `/metrics` is read.
#[derive(Default)]
struct StoreMetrics {
    commits: Counter,
    messages_written: Counter,
    commit_microseconds: Counter,
    commit_last_microseconds: Gauge,
    batch_last: Gauge,
    write_errors: Counter,
    bytes: Gauge,
    healthy: Gauge,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let mut metrics = Self {
            registry: Registry::with_prefix("chat"),
            connected_users: Gauge::default(),
            rooms: Gauge::default(),
            history_bytes: Gauge::default(),
            messages: Counter::default(),
            frames_sent: Counter::default(),
            evictions: Counter::default(),
            idle_timeouts: Counter::default(),
            rate_limited: Counter::default(),
            errors: Counter::default(),
            upgrades: Counter::default(),
            refused: Family::default(),
            http_connections: Gauge::default(),
            admin_auth_failures: Counter::default(),
            uncommitted: Gauge::default(),
            store_failures: Counter::default(),
            store: StoreMetrics::default(),
            broker: BrokerMetrics::default(),
        };
        metrics.store.healthy.set(1);
        let store = &metrics.store;
        let registry = &mut metrics.registry;
        registry.register(
            "uncommitted",
            "Messages waiting for the store's commit now",
            metrics.uncommitted.clone(),
        );
        registry.register(
            "store_refused_messages",
            "Messages refused with unavailable because the store could not write them",
            metrics.store_failures.clone(),
        );
        registry.register(
            "store_commits",
            "Store transactions committed",
            store.commits.clone(),
        );
        registry.register(
            "store_messages_written",
            "Messages the store wrote",
            store.messages_written.clone(),
        );
        registry.register(
            "store_commit_microseconds",
            "Time spent committing (and syncing), in microseconds",
            store.commit_microseconds.clone(),
        );
        registry.register(
            "store_commit_last_microseconds",
            "The last commit's duration, in microseconds",
            store.commit_last_microseconds.clone(),
        );
        registry.register(
            "store_batch_last",
            "Requests in the store's last batch",
            store.batch_last.clone(),
        );
        registry.register(
            "store_write_errors",
            "Store commits that failed",
            store.write_errors.clone(),
        );
        registry.register(
            "store_bytes",
            "Size of the store's file on disk",
            store.bytes.clone(),
        );
        registry.register(
            "store_healthy",
            "1 while the store can write (and without a store), 0 while it cannot",
            store.healthy.clone(),
        );
        let broker = &metrics.broker;
        let registry = &mut metrics.registry;
        registry.register(
            "broker_subscribed",
            "1 while the broker's deliveries subscription is up, 0 while it is not (and without a broker)",
            broker.subscribed.clone(),
        );
        registry.register(
            "broker_publish_calls",
            "Publish calls the broker answered (each orders one batch of a room's messages)",
            broker.publish_calls.clone(),
        );
        registry.register(
            "broker_messages_published",
            "Messages the broker ordered for this node",
            broker.messages_published.clone(),
        );
        registry.register(
            "broker_publish_failures",
            "Messages the broker could not order (their senders were told unavailable)",
            broker.publish_failures.clone(),
        );
        metrics.registry.register(
            "connected_users",
            "Clients connected now",
            metrics.connected_users.clone(),
        );
        metrics
            .registry
            .register("rooms", "Rooms that exist now", metrics.rooms.clone());
        metrics.registry.register(
            "history_bytes",
            "Bytes held by every room's history (frames plus 64 per message)",
            metrics.history_bytes.clone(),
        );
        metrics.registry.register(
            "messages",
            "Chat messages accepted and broadcast",
            metrics.messages.clone(),
        );
        metrics.registry.register(
            "frames_sent",
            "Frames queued to clients",
            metrics.frames_sent.clone(),
        );
        metrics.registry.register(
            "evictions",
            "Clients closed for a full outbound queue",
            metrics.evictions.clone(),
        );
        metrics.registry.register(
            "idle_timeouts",
            "Clients closed for silence",
            metrics.idle_timeouts.clone(),
        );
        metrics.registry.register(
            "rate_limited",
            "Frames refused by the rate limit",
            metrics.rate_limited.clone(),
        );
        metrics.registry.register(
            "errors",
            "Error frames sent to clients",
            metrics.errors.clone(),
        );
        metrics.registry.register(
            "ws_upgrades",
            "WebSocket upgrades accepted",
            metrics.upgrades.clone(),
        );
        metrics.registry.register(
            "http_refused",
            "Upgrade requests refused, by reason",
            metrics.refused.clone(),
        );
        metrics.registry.register(
            "http_connections",
            "Plain HTTP connections open now (an upgraded WebSocket no longer counts)",
            metrics.http_connections.clone(),
        );
        metrics.registry.register(
            "admin_auth_failures",
            "Requests to /admin/kick refused for a missing or wrong token",
            metrics.admin_auth_failures.clone(),
        );
        metrics
    }

    /// Mirrors the change between two engine snapshots.
    pub(crate) fn observe(&self, before: &Stats, after: &Stats) {
        self.connected_users.set(after.clients as i64);
        self.rooms.set(after.rooms as i64);
        self.history_bytes.set(after.history_bytes as i64);
        self.messages
            .inc_by(after.messages_total - before.messages_total);
        self.frames_sent
            .inc_by(after.frames_total - before.frames_total);
        self.evictions
            .inc_by(after.evictions_total - before.evictions_total);
        self.idle_timeouts
            .inc_by(after.timeouts_total - before.timeouts_total);
        self.rate_limited
            .inc_by(after.rate_limited_total - before.rate_limited_total);
        self.errors.inc_by(after.errors_total - before.errors_total);
        self.uncommitted.set(after.uncommitted as i64);
        self.store_failures
            .inc_by(after.store_failures_total - before.store_failures_total);
    }

    /// Copies the store's figures (read when `/metrics` is asked for).
    pub(crate) fn observe_store(&self, stats: &crate::store::StoreStats) {
        use crate::store::StoreStats as S;
        let counter = catch_up;
        let store = &self.store;
        counter(&store.commits, S::get(&stats.commits));
        counter(&store.messages_written, S::get(&stats.messages_written));
        counter(
            &store.commit_microseconds,
            S::get(&stats.commit_micros_total),
        );
        counter(&store.write_errors, S::get(&stats.write_errors));
        store
            .commit_last_microseconds
            .set(S::get(&stats.commit_micros_last) as i64);
        store.batch_last.set(S::get(&stats.batch_last) as i64);
        store.bytes.set(S::get(&stats.bytes_on_disk) as i64);
        let healthy = stats.healthy.load(std::sync::atomic::Ordering::Relaxed);
        store.healthy.set(i64::from(healthy));
    }

    /// Copies the broker task's figures (read when `/metrics` is asked for).
    pub(crate) fn observe_broker(&self, figures: &crate::broker::stats::BrokerFigures) {
        let counter = catch_up;
        let broker = &self.broker;
        broker.subscribed.set(i64::from(figures.subscribed));
        counter(&broker.publish_calls, figures.publish_calls);
        counter(&broker.messages_published, figures.messages_published);
        counter(&broker.publish_failures, figures.publish_failures);
    }

    pub(crate) fn refuse(&self, reason: &'static str) {
        self.refused.get_or_create(&Refusal { reason }).inc();
    }

    /// The text exposition format.
    pub(crate) fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// Brings a counter mirrored from an atomic up to that atomic's reading `now`.
fn catch_up(counter: &Counter, now: u64) {
    counter.inc_by(now.saturating_sub(counter.get()));
}
