//! The broker task's figures: whether its deliveries subscription is up (`/readyz`), and how its
//! publishes went (`/status`, `/metrics`). The task writes them; HTTP handlers read them.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Shared between the broker task and the HTTP side.
#[derive(Debug, Default)]
pub(crate) struct BrokerStats {
    subscribed: AtomicBool,
    publish_calls: AtomicU64,
    messages_published: AtomicU64,
    publish_failures: AtomicU64,
}

/// A reading of [`BrokerStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub(crate) struct BrokerFigures {
    /// The deliveries subscription is up.
    pub(crate) subscribed: bool,
    /// Publish script calls that succeeded (one per batch).
    pub(crate) publish_calls: u64,
    /// Messages those calls ordered.
    pub(crate) messages_published: u64,
    /// Messages whose publish failed for good (their senders were told `unavailable`).
    pub(crate) publish_failures: u64,
}

impl BrokerStats {
    pub(crate) fn subscribed(&self) -> bool {
        self.subscribed.load(Ordering::Relaxed)
    }

    pub(crate) fn set_subscribed(&self, up: bool) {
        self.subscribed.store(up, Ordering::Relaxed);
    }

    /// One publish call that ordered `messages`.
    pub(crate) fn published(&self, messages: usize) {
        self.publish_calls.fetch_add(1, Ordering::Relaxed);
        (self.messages_published).fetch_add(messages as u64, Ordering::Relaxed);
    }

    /// `messages` whose publish failed for good.
    pub(crate) fn failed(&self, messages: usize) {
        (self.publish_failures).fetch_add(messages as u64, Ordering::Relaxed);
    }

    pub(crate) fn read(&self) -> BrokerFigures {
        BrokerFigures {
            subscribed: self.subscribed(),
            publish_calls: self.publish_calls.load(Ordering::Relaxed),
            messages_published: self.messages_published.load(Ordering::Relaxed),
            publish_failures: self.publish_failures.load(Ordering::Relaxed),
        }
    }
}
