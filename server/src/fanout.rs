//! Spreading a wide fan-out's writes over more than one core.
//!
//! At the end of a turn the hub writes every parked writer's frames straight into its socket
//! (`Link::flush_direct`). For a message to a large room that is hundreds of `send`s, and on one
//! thread the last recipient waits for all the others' system calls (on loopback each also does
//! the receiver's TCP work). The hub keeps the first share of the list for itself and hands the
//! rest to helper threads, one batch each, which write their shares at the same time. The frames
//! are the same shared `Bytes`, serialized once; a batch is one allocation per helper per turn.
//!
//! Helpers are plain OS threads: a direct write never waits (a socket that does not take all of
//! it goes to its connection's writer task), so they need no runtime. They report what they wrote
//! back to the hub in one inbox message per batch, which the engine counts as flushed on the
//! hub's next turn. A link is flushed by one party at a time: its lock covers the write.

use std::sync::mpsc as std_mpsc;
use std::sync::Arc;

use chat_engine::ClientId;

use crate::link::Link;
use crate::ws_write::{Tally, SCRATCH_KEPT};

/// Below this many sockets to write, the hub writes them all itself: waking a helper costs more
/// than it saves.
pub(crate) const SPLIT_AT: usize = 32;

/// Sockets one helper writes in one go, and who they belong to.
type Batch = Vec<(ClientId, Arc<Link>)>;

/// The helper threads (none: the hub writes everything itself). Dropping it closes their
/// channels: each ends once its last batch is written (or at once, if the hub is gone).
pub(crate) struct Fanout {
    helpers: Vec<std_mpsc::Sender<Batch>>,
}

impl Fanout {
    /// `threads` helpers, each handing what it wrote to `report` (which returns `false` once
    /// nobody listens: the hub has stopped).
    pub(crate) fn new<R>(threads: usize, report: R) -> Self
    where
        R: Fn(Vec<(ClientId, Tally)>) -> bool + Clone + Send + 'static,
    {
        let helpers = (0..threads)
            .map(|n| {
                let (batches, received) = std_mpsc::channel::<Batch>();
                let report = report.clone();
                // Detached: it ends by itself when this `Fanout` (its channel) is dropped.
                std::thread::Builder::new()
                    .name(format!("chat-fanout-{n}"))
                    .spawn(move || write_batches(&received, report))
                    .expect("the OS starts a thread");
                batches
            })
            .collect();
        Self { helpers }
    }

    /// How many of `pending` sockets the hub writes itself; the rest go to `split`.
    pub(crate) fn own_share(&self, pending: usize) -> usize {
        if self.helpers.is_empty() || pending < SPLIT_AT {
            return pending;
        }
        pending.div_ceil(self.helpers.len() + 1)
    }

    /// Hands `links` to the helpers, an even share each.
    pub(crate) fn split(&self, mut links: Batch) {
        let shares = self.helpers.len();
        for (n, helper) in self.helpers.iter().enumerate() {
            let take = links.len().div_ceil(shares - n);
            let batch = links.split_off(links.len() - take);
            if batch.is_empty() {
                continue;
            }
            // A helper only ends when its channel closes, which is when this is dropped.
            let _ = helper.send(batch);
        }
    }
}

/// A helper's life: write each batch, tell the hub what went out, wait for the next.
fn write_batches(
    received: &std_mpsc::Receiver<Batch>,
    report: impl Fn(Vec<(ClientId, Tally)>) -> bool,
) {
    let mut scratch = Vec::new();
    while let Ok(batch) = received.recv() {
        let mut flushed: Vec<(ClientId, Tally)> = Vec::with_capacity(batch.len());
        for (client, link) in batch {
            let tally = link.flush_direct(&mut scratch);
            if tally.frames > 0 {
                flushed.push((client, tally));
            }
        }
        if scratch.capacity() > SCRATCH_KEPT {
            scratch = Vec::new();
        }
        if !flushed.is_empty() && !report(flushed) {
            // The hub has stopped: nobody is left to count.
            return;
        }
    }
}
