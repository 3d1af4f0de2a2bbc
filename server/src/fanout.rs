//! Spreading a wide fan-out's writes over more than one core.
//!
//! At the end of a turn the hub writes every parked writer's frames straight into its socket
//! (`Link::flush_direct`). For a message to a large room that is hundreds of `send`s, and on one
//! thread the last recipient waits for all the others' system calls (on loopback each also does
//! the receiver's TCP work). The hub keeps the first share of the list for itself and hands the
//! rest to helper threads, one batch each, which write their shares at the same time. The frames
//! are the same shared `Bytes`, serialized once; a batch is one allocation per helper per turn.
//!
//! The hub then waits for the helpers' reports before it ends the turn, so the engine learns of
//! their writes as promptly as of its own. A report that came later (through the inbox, behind
//! a turn's worth of frames) left members looking behind while their sockets had taken
//! everything, and healthy members of a busy room were evicted (BENCHMARKS.md, "Fan-out").
//!
//! Helpers are plain OS threads: a direct write never waits (a socket that does not take all of
//! it goes to its connection's writer task), so they need no runtime. A link is flushed by one
//! party at a time: its lock covers the write.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use chat_engine::ClientId;

use crate::link::Link;
use crate::ws_write::{Tally, SCRATCH_KEPT};

/// Below this many sockets to write, the hub writes them all itself: waking a helper costs more
/// than it saves.
pub(crate) const SPLIT_AT: usize = 32;

/// How long the hub waits for a helper's report. A helper never waits on a socket, so this only
/// bounds a helper the OS has stopped running (or one that died: a bug, logged).
const REPORT_WAIT: Duration = Duration::from_secs(5);

/// Sockets one helper writes in one go, and who they belong to.
type Batch = Vec<(ClientId, Arc<Link>)>;

/// What one helper wrote of one batch.
type Report = Vec<(ClientId, Tally)>;

/// The helper threads (none: the hub writes everything itself). Dropping it closes their
/// channels, and each ends.
pub(crate) struct Fanout {
    helpers: Vec<mpsc::Sender<Batch>>,
    reports: mpsc::Receiver<Report>,
    /// Batches handed out whose reports have not been collected.
    outstanding: usize,
    /// Batches handed out since the start.
    batches: u64,
}

impl Fanout {
    /// `threads` helper threads.
    pub(crate) fn new(threads: usize) -> Self {
        let (report, reports) = mpsc::channel();
        let helpers = (0..threads)
            .map(|n| {
                let (batches, received) = mpsc::channel::<Batch>();
                let report = report.clone();
                // Detached: it ends by itself when this `Fanout` (its channel) is dropped.
                std::thread::Builder::new()
                    .name(format!("chat-fanout-{n}"))
                    .spawn(move || write_batches(&received, &report))
                    .expect("the OS starts a thread");
                batches
            })
            .collect();
        Self {
            helpers,
            reports,
            outstanding: 0,
            batches: 0,
        }
    }

    /// How many of `pending` sockets the hub writes itself; the rest go to `split`.
    pub(crate) fn own_share(&self, pending: usize) -> usize {
        if self.helpers.is_empty() || pending < SPLIT_AT {
            return pending;
        }
        pending.div_ceil(self.helpers.len() + 1)
    }

    /// Hands `links` to the helpers, an even share each; `collect` gets what they wrote.
    pub(crate) fn split(&mut self, mut links: Batch) {
        let shares = self.helpers.len();
        for (n, helper) in self.helpers.iter().enumerate() {
            let take = links.len().div_ceil(shares - n);
            let batch = links.split_off(links.len() - take);
            if batch.is_empty() {
                continue;
            }
            if helper.send(batch).is_ok() {
                self.outstanding += 1;
                self.batches += 1;
            }
        }
    }

    /// Batches handed to helpers since the start.
    #[cfg(test)]
    pub(crate) fn batches(&self) -> u64 {
        self.batches
    }

    /// Waits for every batch handed out since the last call and returns what was written.
    pub(crate) fn collect(&mut self) -> Report {
        let mut written = Vec::new();
        while self.outstanding > 0 {
            self.outstanding -= 1;
            match self.reports.recv_timeout(REPORT_WAIT) {
                Ok(report) => written.extend(report),
                Err(e) => tracing::error!(error = %e, "a fan-out helper did not report"),
            }
        }
        written
    }
}

/// A helper's life: write each batch, report what went out, wait for the next.
fn write_batches(received: &mpsc::Receiver<Batch>, report: &mpsc::Sender<Report>) {
    let mut scratch = Vec::new();
    while let Ok(batch) = received.recv() {
        let mut written: Report = Vec::with_capacity(batch.len());
        for (client, link) in batch {
            let tally = link.flush_direct(&mut scratch);
            if tally.frames > 0 {
                written.push((client, tally));
            }
        }
        if scratch.capacity() > SCRATCH_KEPT {
            scratch = Vec::new();
        }
        if report.send(written).is_err() {
            // The hub is gone: nobody is left to count.
            return;
        }
    }
}
