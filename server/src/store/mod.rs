//! The durable message store: every chat message the engine accepts, kept in one redb file so
//! that a restart brings back each room's epoch, `seq` and recent history, and clients recover
//! across it.
//!
//! The engine asks with `Output::Store` and waits for `Input::Committed` (acknowledged means
//! durable). The store lives on its own thread (or, in simulations, its own task) so the hub never
//! blocks on the disk:
//!
//! 1. [`open`] opens or creates the file, checks it, rotates epochs if the last run may have lost
//!    acknowledged messages, and hands back the rooms for `Engine::restore` ([`Opened`]).
//! 2. [`Store::spawn_thread`] (or [`Store::spawn_task`]) starts the runner and gives a
//!    [`StoreHandle`]: [`Request`]s go in, [`Report`]s come back, in request order.
//! 3. [`StoreHandle::shutdown`] commits what is queued and marks the stop clean.
//!
//! Modules: `schema` (the tables, opening and loading), `worker` (applying one batch), `runner`
//! (the loop and its timers), `backend` (what the file sits on, and the test disk).

pub(crate) mod backend;
mod fill;
mod runner;
mod schema;
mod worker;

#[cfg(test)]
mod tests;

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chat_engine::{ClientId, OpId, RestoredRoom};
use tokio::sync::{mpsc, oneshot};

use crate::settings::WallClock;

pub use fill::fill_store;

/// How much a reported commit promises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Durability {
    /// Every commit is fsynced before it is reported: nothing reported is ever lost.
    Strict,
    /// Commits are reported before they are synced; a durable commit follows at most every
    /// `sync_interval`. A crash loses the unsynced ones, so the next start gives every room a new
    /// epoch (clients are told they were not recovered instead of seeing reused seqs).
    Relaxed,
}

/// How the store keeps and hands back messages.
#[derive(Clone, Debug)]
pub(crate) struct StoreOptions {
    pub(crate) durability: Durability,
    /// The longest a relaxed commit stays unsynced.
    pub(crate) sync_interval: Duration,
    /// Messages kept per room; older ones are deleted in the commit that passes the bound.
    pub(crate) retention_messages: u64,
    /// Messages older than this are deleted by a background sweep (`None`: kept by count only).
    pub(crate) retention_age: Option<Duration>,
    /// Messages per room handed back at open: the engine's in-memory history window.
    pub(crate) history_max: usize,
    /// Rooms (the most recently written) handed back with their history; the others come back
    /// with none, so a start stays fast however many rooms the file holds.
    pub(crate) rooms_max: usize,
    /// The clock stamping each stored message (what `retention_age` counts from).
    pub(crate) wall_clock: WallClock,
    /// How long a batch waits before it is committed: zero, but for simulations of a slow disk,
    /// so that a crash can land between a message's acceptance and its commit.
    pub(crate) commit_delay: Duration,
    /// Every synced commit records redb's allocator state (and commits in two phases), so an
    /// open after a crash loads it instead of walking and verifying the whole file: a start
    /// after `kill -9` as fast as after a clean stop, for a cost in every commit that grows
    /// with the file (see `--quick-repair`).
    pub(crate) quick_repair: bool,
    /// After this long without a commit, one small commit records the allocator state, so a
    /// crash while the store is quiet restarts without the full walk (`None`: never).
    pub(crate) quiet_checkpoint: Option<Duration>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            durability: Durability::Strict,
            sync_interval: Duration::from_secs(1),
            retention_messages: 10_000,
            retention_age: None,
            history_max: 100,
            rooms_max: 10_000,
            wall_clock: WallClock::System,
            commit_delay: Duration::ZERO,
            quick_repair: false,
            quiet_checkpoint: Some(Duration::from_secs(1)),
        }
    }
}

/// A fresh storage backend for each open: the store reopens after an I/O error, as redb asks.
pub(crate) type OpenBackend = Box<dyn FnMut() -> Box<dyn redb::StorageBackend> + Send>;

/// Where the database lives.
pub(crate) enum Location {
    /// A directory (created if missing) holding the database file (`chat.redb`) and, after a failed sync, the
    /// `sync-failed` marker.
    Dir(PathBuf),
    /// Any storage backend (tests and simulations: see [`backend::Disk::location`]); `name` is what
    /// errors call it.
    Backend { name: String, open: OpenBackend },
}

impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Dir(dir) => f.debug_tuple("Dir").field(dir).finish(),
            Location::Backend { name, .. } => f.debug_tuple("Backend").field(name).finish(),
        }
    }
}

/// What [`open`] found.
#[derive(Debug)]
pub(crate) struct Opened {
    /// Every stored room, least recently written first (the order `Engine::restore` keeps when
    /// it drops the oldest history to fit its budgets). Only the `rooms_max` most recent carry
    /// history.
    pub(crate) rooms: Vec<RestoredRoom>,
    /// Every room got a new epoch: the last run may have lost acknowledged messages.
    pub(crate) rotated: bool,
    /// Messages in the store.
    pub(crate) messages: u64,
    pub(crate) bytes_on_disk: u64,
    /// The last run did not stop cleanly and redb repaired the file (walked and verified all
    /// of it) before it opened.
    pub(crate) repaired: bool,
}

/// Why the store could not open. Each names the file or directory and the cause.
#[derive(Debug)]
pub(crate) enum OpenError {
    /// The directory could not be created or read.
    Dir { path: PathBuf, source: io::Error },
    /// Another running server has the file open.
    Locked { path: String },
    /// The file is not a readable redb database, or fails its checksums.
    Corrupt { path: String, cause: String },
    /// The file is a database, but not one this version of the store wrote.
    Schema { path: String, cause: String },
    /// Reading or writing the file failed.
    Io { path: String, source: io::Error },
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::Dir { path, source } => write!(
                f,
                "cannot use the data directory {}: {source}",
                path.display()
            ),
            OpenError::Locked { path } => write!(
                f,
                "the message store {path} is in use by another running server \
                 (stop it, or give this one another data directory)"
            ),
            OpenError::Corrupt { path, cause } => write!(
                f,
                "the message store {path} is damaged or not a message store ({cause}); \
                 move it away to start empty, or restore it from a backup"
            ),
            OpenError::Schema { path, cause } => {
                write!(f, "the message store {path} cannot be used: {cause}")
            }
            OpenError::Io { path, source } => {
                write!(f, "cannot open the message store {path}: {source}")
            }
        }
    }
}

impl std::error::Error for OpenError {}

/// What the hub asks of the store.
#[derive(Debug)]
pub(crate) enum Request {
    /// `Output::Store`, as the engine gave it.
    Write {
        op: OpId,
        room: String,
        epoch: String,
        seq: u64,
        frame: Bytes,
    },
    /// After a `Report::Failed`: the writes sent before this were dropped by the engine, so
    /// refuse them unwritten (the store does from the failure on); write the ones after it.
    Resume,
    /// A client scrolls back: up to `limit` messages of `room` before `before`.
    Fetch {
        client: ClientId,
        room: String,
        before: u64,
        limit: usize,
    },
    /// Someone joins a dormant room: its newest `limit` messages up to `seq`.
    LoadTail {
        room: String,
        seq: u64,
        limit: usize,
    },
}

/// What the store tells the hub, in the order of the requests they answer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Report {
    /// Every write up to `through` is committed (`Input::Committed` for each, in op order).
    Committed { through: OpId },
    /// The writes `from..=through` failed (a full or read-only disk). The store keeps trying
    /// with later batches. redb cannot say whether a failed commit's changes reached the disk,
    /// so the ops may yet be found there; writing the same room and seq again replaces them.
    Failed {
        from: OpId,
        through: OpId,
        error: String,
    },
    /// A [`Request::Fetch`]'s answer: frames oldest first; `complete`: nothing older is kept.
    Fetched {
        client: ClientId,
        room: String,
        messages: Vec<Bytes>,
        complete: bool,
    },
    /// A [`Request::LoadTail`]'s answer: `(seq, frame)` oldest first, consecutive down from its
    /// seq (empty when none are kept, or the read failed).
    TailLoaded {
        room: String,
        messages: Vec<(u64, Bytes)>,
    },
    /// Writes failed (`false`) or work again (`true`); sent on each change only.
    Healthy(bool),
    /// A sync failed in a way that may have lost acknowledged data (the kernel may drop the
    /// dirty pages of a failed fsync, so a retry could "succeed" over a hole). The store has
    /// stopped; the server must exit, and the next start rotates every epoch.
    SyncFailed(String),
}

/// The store's figures, for `/status` and `/metrics`. Counters only grow.
#[derive(Debug, Default)]
pub(crate) struct StoreStats {
    pub(crate) commits: AtomicU64,
    pub(crate) messages_written: AtomicU64,
    pub(crate) commit_micros_last: AtomicU64,
    pub(crate) commit_micros_total: AtomicU64,
    /// Requests in the last batch (writes and fetches).
    pub(crate) batch_last: AtomicU64,
    pub(crate) write_errors: AtomicU64,
    /// The database file's length.
    pub(crate) bytes_on_disk: Arc<AtomicU64>,
    pub(crate) healthy: AtomicBool,
}

impl StoreStats {
    pub(crate) fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// An opened store, not yet running.
pub(crate) struct Store {
    worker: worker::Worker,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

/// Opens (or creates) the store at `location` for a server starting with `start_epoch`.
pub(crate) fn open(
    location: Location,
    options: StoreOptions,
    start_epoch: &str,
) -> Result<(Opened, Store), OpenError> {
    let (opened, worker) = worker::Worker::open(location, options, start_epoch)?;
    Ok((opened, Store { worker }))
}

impl Store {
    pub(crate) fn stats(&self) -> Arc<StoreStats> {
        self.worker.stats()
    }

    /// Runs the store on its own thread, `chat-store`: the production runner.
    pub(crate) fn spawn_thread(self) -> io::Result<StoreHandle> {
        runner::spawn_thread(self.worker)
    }

    /// Runs the store as a task of the current tokio runtime (simulations and tests: under
    /// turmoil or paused time its timers follow the simulated clock, and its disk work blocks
    /// the runtime, which a simulation wants for determinism).
    pub(crate) fn spawn_task(self) -> StoreHandle {
        runner::spawn_task(self.worker)
    }
}

/// The running store. Requests need no bound here: the engine bounds the writes it leaves
/// outstanding (`uncommitted_max`), and fetches come from rate-limited clients.
#[derive(Debug)]
pub(crate) struct StoreHandle {
    requests: Option<mpsc::UnboundedSender<Request>>,
    reports: mpsc::UnboundedReceiver<Report>,
    done: oneshot::Receiver<Result<(), String>>,
    #[cfg_attr(not(test), allow(dead_code))]
    stats: Arc<StoreStats>,
}

impl StoreHandle {
    /// Queues a request. `false`: the store has stopped (after [`Report::SyncFailed`]).
    pub(crate) fn send(&self, request: Request) -> bool {
        (self.requests.as_ref()).is_some_and(|requests| requests.send(request).is_ok())
    }

    /// The next report; `None` once the store has stopped and every report was taken.
    #[cfg(test)]
    pub(crate) async fn recv(&mut self) -> Option<Report> {
        self.reports.recv().await
    }

    /// The reports, for a caller that waits on them beside other things (the hub's `select!`);
    /// `recv` and `try_recv` see nothing after this.
    pub(crate) fn take_reports(&mut self) -> mpsc::UnboundedReceiver<Report> {
        let (_, empty) = mpsc::unbounded_channel();
        std::mem::replace(&mut self.reports, empty)
    }

    #[cfg(test)]
    pub(crate) fn stats(&self) -> &Arc<StoreStats> {
        &self.stats
    }

    /// Commits everything already sent, marks the stop clean (durably) and closes the file.
    /// Reports still arrive until then; the ones not taken are dropped. `Err`: the clean stop
    /// could not be recorded, so the next start treats this run as a crash.
    pub(crate) async fn shutdown(mut self) -> Result<(), String> {
        drop(self.requests.take());
        // The runner ends once the requests are drained; its reports are of no use any more,
        // but taking them keeps the runner from filling an unread queue meanwhile.
        let Self { reports, done, .. } = &mut self;
        let drain = async { while reports.recv().await.is_some() {} };
        let (_, done) = tokio::join!(drain, done);
        done.unwrap_or_else(|_| Err("the store runner panicked".to_owned()))
    }
}
