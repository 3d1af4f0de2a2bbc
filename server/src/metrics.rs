//! Prometheus metrics (prometheus-client): engine counters mirrored from the hub's stats, plus
//! the HTTP layer's own counts of upgrades, refusals and failed admin authentications, and its
//! open plain HTTP connections.

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
        };
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
