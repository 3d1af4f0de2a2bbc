//! Applying requests to the database, one batch at a time, and the store's upkeep between
//! batches: the relaxed mode's periodic sync, the probe that finds a failed disk working again,
//! and the age-retention sweep. Synchronous: the runner decides when, this decides what.
//!
//! A batch's writes share one write transaction (group commit: one fsync for all of them), and
//! its fetches and tail loads are answered after that commit, so each sees every write queued
//! before it. A batch's tail loads (many rooms woken at once, as after a restart) are read
//! together, in parallel.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::fs;
use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use chat_engine::OpId;
use redb::{Database, ReadableDatabase, ReadableTable, WriteTransaction};
use tokio::sync::mpsc::UnboundedSender;

use super::schema::{self, key, RoomRow, Source, TailAsk, MESSAGES, META, ROOMS};
use super::{Durability, Location, OpenError, Opened, Report, Request, StoreOptions, StoreStats};
use crate::clock::Clock;

/// How often an unhealthy, idle store tries a small durable write.
pub(super) const PROBE_EVERY: Duration = Duration::from_secs(1);
/// How often the age-retention sweep runs.
pub(super) const SWEEP_EVERY: Duration = Duration::from_secs(5);
/// One sweep's bounds, so it never holds the writer (and the next batch) for long.
const SWEEP_DELETES_MAX: usize = 2_000;
const SWEEP_ROOMS_MAX: usize = 500;

pub(super) type Reports = UnboundedSender<Report>;

/// Whether the runner goes on.
#[must_use]
pub(super) enum Flow {
    Go,
    /// The store cannot go on safely (the reason was reported as [`Report::SyncFailed`]).
    Stop(String),
}

/// Why a commit failed.
enum Fault {
    /// The disk refuses writes for now (full, read-only, no permission): later ones may work.
    Unavailable(String),
    /// Anything else: the disk may have dropped data the store was told is there.
    Fatal(String),
}

/// Error kinds of a disk that is fine but refuses to take more for now.
fn unavailable(kind: io::ErrorKind) -> bool {
    use io::ErrorKind::*;
    matches!(
        kind,
        StorageFull | ReadOnlyFilesystem | PermissionDenied | QuotaExceeded | FileTooLarge
    )
}

impl From<redb::Error> for Fault {
    fn from(e: redb::Error) -> Self {
        match e {
            redb::Error::Io(e) if unavailable(e.kind()) => Fault::Unavailable(e.to_string()),
            other => Fault::Fatal(other.to_string()),
        }
    }
}

impl From<OpenError> for Fault {
    fn from(e: OpenError) -> Self {
        match &e {
            OpenError::Io { source, .. } if unavailable(source.kind()) => {
                Fault::Unavailable(e.to_string())
            }
            _ => Fault::Fatal(e.to_string()),
        }
    }
}

struct Write {
    op: OpId,
    room: String,
    epoch: String,
    seq: u64,
    frame: Bytes,
}

struct Fetch {
    client: chat_engine::ClientId,
    room: String,
    before: u64,
    limit: usize,
}

pub(super) struct Worker {
    source: Source,
    /// `None` after a failed commit: redb must be closed and reopened before it is used again.
    db: Option<Database>,
    /// While the disk refuses writes (and so `db` cannot be reopened): the last good state,
    /// for fetches.
    reader: Option<Database>,
    options: StoreOptions,
    clock: Clock,
    stats: Arc<StoreStats>,
    /// The store-wide write counter (orders rooms by recency).
    writes: u64,
    healthy: bool,
    /// When the last durable commit was.
    synced_at: Instant,
    /// A commit since then was not synced (relaxed mode).
    unsynced: bool,
    /// When the last commit was (a quiet checkpoint follows `quiet_checkpoint` after it).
    committed_at: Instant,
    /// The last commit recorded redb's allocator state: a crash now needs no full repair.
    checkpointed: bool,
    /// Set while unhealthy.
    next_probe: Option<Instant>,
    /// Set with `retention_age`.
    next_sweep: Option<Instant>,
    /// Where the next sweep starts: the sweeps walk the rooms in name order and wrap around.
    sweep_from: Option<String>,
    /// A write failed and the hub has not yet said where the writes it dropped end
    /// ([`Request::Resume`]): every write until then is refused unwritten, so nothing the engine
    /// told its sender was refused is ever stored.
    refusing: bool,
}

impl Worker {
    pub(super) fn open(
        location: Location,
        options: StoreOptions,
        start_epoch: &str,
    ) -> Result<(Opened, Self), OpenError> {
        let stats = Arc::new(StoreStats::default());
        let mut source = Source::new(location, stats.bytes_on_disk.clone())?;
        let path = source.name();
        let marker = source.marker();
        let sync_failed = match &marker {
            Some(marker) => (marker.try_exists()).map_err(|source| OpenError::Io {
                path: marker.display().to_string(),
                source,
            })?,
            None => false,
        };
        let db = source.open()?;
        let prepared = schema::prepare(&db, &path, &options, start_epoch, sync_failed)?;
        if let Some(marker) = marker.filter(|_| sync_failed) {
            // The rotation is committed; a marker left behind only rotates once more.
            if let Err(e) = fs::remove_file(&marker) {
                tracing::warn!(marker = %marker.display(), error = %e, "could not remove the sync-failed marker");
            }
        }
        let (rooms, messages) = schema::load(&db, &path, &options)?;
        stats.healthy.store(true, Ordering::Relaxed);
        let now = Clock::mono();
        let opened = Opened {
            rooms,
            rotated: prepared.rotated,
            messages,
            bytes_on_disk: StoreStats::get(&stats.bytes_on_disk),
            repaired: source.repaired(),
        };
        let checkpointed = options.quick_repair;
        let worker = Self {
            source,
            db: Some(db),
            reader: None,
            clock: Clock::new(options.wall_clock),
            next_sweep: options.retention_age.map(|_| now + SWEEP_EVERY),
            options,
            stats,
            writes: prepared.writes,
            healthy: true,
            synced_at: now,
            unsynced: false,
            committed_at: now,
            // The open's own commit recorded it with `quick_repair`.
            checkpointed,
            next_probe: None,
            sweep_from: None,
            refusing: false,
        };
        Ok((opened, worker))
    }

    pub(super) fn commit_delay(&self) -> std::time::Duration {
        self.options.commit_delay
    }

    pub(super) fn stats(&self) -> Arc<StoreStats> {
        self.stats.clone()
    }

    /// Applies one batch: all its writes in one commit, then its fetches, in order.
    pub(super) fn batch(&mut self, batch: Vec<Request>, reports: &Reports) -> Flow {
        (self.stats.batch_last).store(batch.len() as u64, Ordering::Relaxed);
        let mut writes = Vec::new();
        let mut refused: Vec<OpId> = Vec::new();
        let mut fetches = Vec::new();
        let mut tails = Vec::new();
        for request in batch {
            match request {
                Request::Write { op, .. } if self.refusing => refused.push(op),
                Request::Resume => self.refusing = false,
                Request::Write {
                    op,
                    room,
                    epoch,
                    seq,
                    frame,
                } => writes.push(Write {
                    op,
                    room,
                    epoch,
                    seq,
                    frame,
                }),
                Request::Fetch {
                    client,
                    room,
                    before,
                    limit,
                } => fetches.push(Fetch {
                    client,
                    room,
                    before,
                    limit,
                }),
                Request::LoadTail { room, seq, limit } => tails.push(TailAsk { room, seq, limit }),
            }
        }
        if let (Some(&from), Some(&through)) = (refused.first(), refused.last()) {
            let _ = reports.send(Report::Failed {
                from,
                through,
                error: "not written: an earlier write failed".to_owned(),
            });
        }
        if let (Some(first), Some(last)) = (writes.first(), writes.last()) {
            let (from, through) = (first.op, last.op);
            match self.write(&writes) {
                Ok(()) => {
                    (self.stats.messages_written).fetch_add(writes.len() as u64, Ordering::Relaxed);
                    let _ = reports.send(Report::Committed { through });
                    self.set_healthy(true, reports);
                }
                Err(fault) => {
                    self.refusing = true;
                    let error = match &fault {
                        Fault::Unavailable(error) | Fault::Fatal(error) => error.clone(),
                    };
                    let _ = reports.send(Report::Failed {
                        from,
                        through,
                        error,
                    });
                    if let Flow::Stop(why) = self.failed(fault, reports) {
                        return Flow::Stop(why);
                    }
                }
            }
        }
        for fetch in fetches {
            let (messages, complete) = match self.fetch(&fetch) {
                Ok(found) => found,
                // Nothing, and not complete: the client may ask again once the disk is back.
                Err(e) => {
                    tracing::warn!(room = %fetch.room, error = %e, "store fetch failed");
                    self.db = None;
                    self.reader = None;
                    (Vec::new(), false)
                }
            };
            let _ = reports.send(Report::Fetched {
                client: fetch.client,
                room: fetch.room,
                messages,
                complete,
            });
        }
        if !tails.is_empty() {
            self.load_tails(tails, reports);
        }
        Flow::Go
    }

    /// Reads and reports the tails of rooms being woken. A read that fails reports them empty:
    /// the rooms wake without history (their joiners told `recovered: false`), never with a
    /// wrong one.
    fn load_tails(&mut self, asks: Vec<TailAsk>, reports: &Reports) {
        let read = match self.readable() {
            Ok(db) => schema::tails(db, &asks).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let tails = read.unwrap_or_else(|error| {
            tracing::warn!(rooms = asks.len(), %error, "reading rooms' tails failed: they wake without history");
            self.db = None;
            self.reader = None;
            vec![Vec::new(); asks.len()]
        });
        for (ask, messages) in asks.into_iter().zip(tails) {
            let _ = reports.send(Report::TailLoaded {
                room: ask.room,
                messages,
            });
        }
    }

    /// The next time [`on_timer`](Self::on_timer) has something to do.
    pub(super) fn deadline(&self) -> Option<Instant> {
        let sync = (self.unsynced).then(|| self.synced_at + self.options.sync_interval);
        [sync, self.next_probe, self.next_sweep, self.checkpoint_at()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Whatever upkeep is due (an early call does nothing).
    pub(super) fn on_timer(&mut self, reports: &Reports) -> Flow {
        let now = Clock::mono();
        let probe = self.next_probe.is_some_and(|at| now >= at);
        let sync = self.unsynced && now >= self.synced_at + self.options.sync_interval;
        if self.checkpoint_at().is_some_and(|at| now >= at) {
            if let Flow::Stop(why) = self.checkpoint(reports) {
                return Flow::Stop(why);
            }
        }
        if probe || sync {
            // One small durable commit serves both: it syncs what is pending, and its success
            // is the proof the disk takes writes again.
            let probes = key::PROBES;
            let result = self.commit(true, |txn, _| {
                let mut meta = txn.open_table(META)?;
                let n = meta.get(probes)?.map_or(0, |v| v.value());
                meta.insert(probes, n + 1)?;
                Ok(())
            });
            match result {
                Ok(()) => self.set_healthy(true, reports),
                Err(fault) => {
                    if let Flow::Stop(why) = self.failed(fault, reports) {
                        return Flow::Stop(why);
                    }
                }
            }
        }
        if self.next_sweep.is_some_and(|at| now >= at) {
            self.next_sweep = Some(now + SWEEP_EVERY);
            if let Err(fault) = self.sweep() {
                if let Flow::Stop(why) = self.failed(fault, reports) {
                    return Flow::Stop(why);
                }
            }
        }
        Flow::Go
    }

    /// When a quiet checkpoint is due: `quiet_checkpoint` after the last commit, unless that
    /// one recorded the allocator state already, or the disk is failing (the probe is on it).
    fn checkpoint_at(&self) -> Option<Instant> {
        let quiet = self.options.quiet_checkpoint?;
        let due = !self.checkpointed && self.healthy && !self.refusing;
        due.then(|| self.committed_at + quiet)
    }

    /// One small synced commit that records redb's allocator state (its quick-repair mode), so
    /// that a crash while the store is quiet needs no walk of the whole file at the next start.
    fn checkpoint(&mut self, reports: &Reports) -> Flow {
        let result = self.commit_with(true, true, |txn, _| {
            let mut meta = txn.open_table(META)?;
            let n = meta.get(key::CHECKPOINTS)?.map_or(0, |v| v.value());
            meta.insert(key::CHECKPOINTS, n + 1)?;
            Ok(())
        });
        match result {
            Ok(()) => Flow::Go,
            Err(fault) => self.failed(fault, reports),
        }
    }

    /// The clean stop: one last durable commit clears the `running` marker, then the file is
    /// closed.
    pub(super) fn shutdown(mut self) -> Result<(), String> {
        let cleared = self.commit(true, |txn, _| {
            txn.open_table(META)?.remove(key::RUNNING)?;
            Ok(())
        });
        if let Err(Fault::Unavailable(e) | Fault::Fatal(e)) = cleared {
            return Err(format!("could not record the clean stop: {e}"));
        }
        match self.db.take() {
            Some(db) => db.close().map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }

    fn write(&mut self, writes: &[Write]) -> Result<(), Fault> {
        let stamp = self.wall_millis();
        let keep = self.options.retention_messages;
        let durable = self.durable_due();
        self.commit(durable, |txn, counter| {
            let mut messages = txn.open_table(MESSAGES)?;
            let mut rooms = txn.open_table(ROOMS)?;
            let mut rows: HashMap<&str, RoomRow> = HashMap::new();
            for w in writes {
                let room = w.room.as_str();
                let row = match rows.entry(room) {
                    Entry::Occupied(row) => row.into_mut(),
                    Entry::Vacant(slot) => {
                        let stored = rooms.get(room)?.map(|v| {
                            let (epoch, seq, written) = v.value();
                            RoomRow {
                                epoch: epoch.to_owned(),
                                seq,
                                written,
                            }
                        });
                        slot.insert(stored.unwrap_or(RoomRow {
                            epoch: w.epoch.clone(),
                            seq: 0,
                            written: 0,
                        }))
                    }
                };
                if row.epoch != w.epoch {
                    // The engine forgot the room and made it anew: the old epoch's messages can
                    // never be asked for again, and must not run into the new one's history.
                    messages.retain_in((room, 0)..=(room, u64::MAX), |_, _| false)?;
                    row.epoch = w.epoch.clone();
                } else if w.seq <= row.seq {
                    // A seq written again (its first commit failed, but may have landed): what
                    // followed it is no longer this room's, so a room never holds seqs past its
                    // last one.
                    messages.retain_in((room, w.seq)..=(room, u64::MAX), |_, _| false)?;
                }
                messages.insert((room, w.seq), (stamp, &w.frame[..]))?;
                *counter += 1;
                row.seq = w.seq;
                row.written = *counter;
            }
            for (room, row) in &rows {
                let cutoff = row.seq.saturating_sub(keep);
                if cutoff > 0 {
                    messages.retain_in((*room, 0)..=(*room, cutoff), |_, _| false)?;
                }
                rooms.insert(*room, (row.epoch.as_str(), row.seq, row.written))?;
            }
            txn.open_table(META)?.insert(key::WRITES, *counter)?;
            Ok(())
        })
    }

    /// The newest `limit` messages of the room before `before`, oldest first, and whether
    /// nothing older is kept.
    fn fetch(&mut self, fetch: &Fetch) -> Result<(Vec<Bytes>, bool), redb::Error> {
        let room = fetch.room.as_str();
        let db = self
            .readable()
            .map_err(|e| redb::Error::Io(io::Error::other(e.to_string())))?;
        let txn = db.begin_read()?;
        let messages = txn.open_table(MESSAGES)?;
        let mut found = Vec::new();
        // One more than asked: whether it exists is what `complete` says.
        let range = messages.range((room, 0)..(room, fetch.before))?;
        for entry in range.rev().take(fetch.limit.saturating_add(1)) {
            let (_, value) = entry?;
            found.push(Bytes::copy_from_slice(value.value().1));
        }
        let complete = found.len() <= fetch.limit;
        found.truncate(fetch.limit);
        found.reverse();
        Ok((found, complete))
    }

    /// Deletes messages older than `retention_age`, a bounded slice of rooms per call.
    fn sweep(&mut self) -> Result<(), Fault> {
        let Some(age) = self.options.retention_age else {
            return Ok(());
        };
        let cutoff = self.wall_millis().saturating_sub(age.as_millis() as u64);
        let from = self.sweep_from.take();
        let mut next = None;
        let durable = self.durable_due();
        self.commit(durable, |txn, _| {
            let mut messages = txn.open_table(MESSAGES)?;
            let rooms = txn.open_table(ROOMS)?;
            let names = match &from {
                Some(from) => rooms.range(from.as_str()..)?,
                None => rooms.iter()?,
            };
            let names = (names.take(SWEEP_ROOMS_MAX))
                .map(|entry| entry.map(|(name, _)| name.value().to_owned()))
                .collect::<Result<Vec<String>, _>>()?;
            let mut budget = SWEEP_DELETES_MAX;
            for name in &names {
                let room = name.as_str();
                let mut old = None;
                let mut count = 0;
                // Oldest first: stamps grow with seq, so the first young message ends the room.
                for entry in messages.range((room, 0)..=(room, u64::MAX))?.take(budget) {
                    let (k, v) = entry?;
                    if v.value().0 >= cutoff {
                        break;
                    }
                    old = Some(k.value().1);
                    count += 1;
                }
                if let Some(last) = old {
                    messages.retain_in((room, 0)..=(room, last), |_, _| false)?;
                }
                budget -= count;
                if budget == 0 {
                    // This room may hold more: the next sweep starts with it.
                    next = Some(name.clone());
                    return Ok(());
                }
            }
            if names.len() == SWEEP_ROOMS_MAX {
                // "\0" makes the smallest name after the last one swept.
                next = names.last().map(|last| format!("{last}\0"));
            }
            Ok(())
        })?;
        self.sweep_from = next;
        Ok(())
    }

    /// Runs one write transaction; `fill` gets the write counter to advance.
    fn commit(
        &mut self,
        durable: bool,
        fill: impl FnOnce(&WriteTransaction, &mut u64) -> Result<(), redb::Error>,
    ) -> Result<(), Fault> {
        self.commit_with(durable, self.options.quick_repair, fill)
    }

    /// As [`commit`](Self::commit); `quick_repair`: record the allocator state (only a synced
    /// commit does: it is the only kind a crash can come back to).
    fn commit_with(
        &mut self,
        durable: bool,
        quick_repair: bool,
        fill: impl FnOnce(&WriteTransaction, &mut u64) -> Result<(), redb::Error>,
    ) -> Result<(), Fault> {
        let started = Instant::now();
        let mut counter = self.writes;
        let quick_repair = durable && quick_repair;
        let db = self.database()?;
        let result = (|| -> Result<(), redb::Error> {
            let mut txn = db.begin_write()?;
            let durability = match durable {
                true => redb::Durability::Immediate,
                false => redb::Durability::None,
            };
            (txn.set_durability(durability))
                .expect("only a persistent savepoint refuses it, and the store makes none");
            txn.set_quick_repair(quick_repair);
            fill(&txn, &mut counter)?;
            txn.commit()?;
            Ok(())
        })();
        if let Err(e) = result {
            // redb refuses every later transaction after an I/O error until it is reopened.
            self.db = None;
            return Err(e.into());
        }
        self.writes = counter;
        self.committed_at = Clock::mono();
        self.checkpointed = quick_repair;
        let micros = started.elapsed().as_micros() as u64;
        self.stats.commits.fetch_add(1, Ordering::Relaxed);
        (self.stats.commit_micros_last).store(micros, Ordering::Relaxed);
        (self.stats.commit_micros_total).fetch_add(micros, Ordering::Relaxed);
        if durable {
            self.synced_at = Clock::mono();
            self.unsynced = false;
        } else {
            self.unsynced = true;
        }
        Ok(())
    }

    /// Whether this commit must be durable: always in strict mode; in relaxed mode once
    /// `sync_interval` has passed since the last durable one.
    fn durable_due(&self) -> bool {
        match self.options.durability {
            Durability::Strict => true,
            Durability::Relaxed => Clock::mono() >= self.synced_at + self.options.sync_interval,
        }
    }

    /// The open database, reopened if an error closed it.
    fn database(&mut self) -> Result<&Database, OpenError> {
        if self.db.is_none() {
            // It holds the file's lock, and its view would go stale.
            self.reader = None;
            self.db = Some(self.source.open()?);
        }
        Ok(self.db.as_ref().expect("just set"))
    }

    /// A database to read from: the open one, or while the disk refuses writes (and a reopen
    /// with it, since redb's reopen writes), the last good state.
    fn readable(&mut self) -> Result<&Database, OpenError> {
        if self.db.is_none() && !self.healthy {
            if self.reader.is_none() {
                self.reader = Some(self.source.open_for_reading()?);
            }
            return Ok(self.reader.as_ref().expect("just set"));
        }
        self.database()
    }

    /// After a failed commit: unhealthy if the disk may recover, stopped if data may be lost.
    fn failed(&mut self, fault: Fault, reports: &Reports) -> Flow {
        self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
        match fault {
            // Closing redb after a failure drops its unsynced commits, which were reported
            // committed: as good as a lost sync.
            Fault::Unavailable(e) if self.unsynced => self.fatal(format!(
                "{e} (and the relaxed commits not yet synced were lost with it)"
            )),
            Fault::Unavailable(_) => {
                self.set_healthy(false, reports);
                self.next_probe = Some(Clock::mono() + PROBE_EVERY);
                Flow::Go
            }
            Fault::Fatal(e) => self.fatal(e),
        }
        .report(reports)
    }

    /// Stops the store: leaves the marker that makes the next start rotate every epoch.
    fn fatal(&mut self, error: String) -> Flow {
        self.db = None;
        if let Some(marker) = self.source.marker() {
            // Best effort: the disk is failing, and an unclean relaxed stop rotates anyway.
            if let Err(e) = fs::write(&marker, format!("{error}\n")) {
                tracing::error!(marker = %marker.display(), error = %e, "could not write the sync-failed marker");
            }
        }
        Flow::Stop(error)
    }

    fn set_healthy(&mut self, healthy: bool, reports: &Reports) {
        if healthy {
            self.next_probe = None;
        }
        if self.healthy != healthy {
            self.healthy = healthy;
            self.stats.healthy.store(healthy, Ordering::Relaxed);
            let _ = reports.send(Report::Healthy(healthy));
        }
    }

    fn wall_millis(&self) -> u64 {
        let since = self.clock.now().wall.duration_since(SystemTime::UNIX_EPOCH);
        since.map_or(0, |d| d.as_millis() as u64)
    }
}

impl Flow {
    /// Sends [`Report::SyncFailed`] for a stop.
    fn report(self, reports: &Reports) -> Self {
        if let Flow::Stop(why) = &self {
            let _ = reports.send(Report::SyncFailed(why.clone()));
        }
        self
    }
}
