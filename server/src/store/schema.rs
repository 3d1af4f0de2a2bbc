//! The database's layout and everything done to it at open: opening (or reopening after an I/O
//! error), checking it is a store this version wrote, rotating epochs after a run that may have
//! lost acknowledged messages, and loading the rooms for `Engine::restore`.
//!
//! Tables:
//! - `messages`: `(room, seq)` → `(stored at, unix millis; frame)`. Tuple keys sort by room, then
//!   seq, so one room's messages are one contiguous range, read from either end.
//! - `rooms`: `room` → `(epoch, last seq, last write)`. It outlives the room's messages (retention
//!   may delete them all), so a known room's seqs never restart. "Last write" is a store-wide
//!   counter that orders rooms by recency without a clock.
//! - `meta`: `schema_version`, `starts`, `writes` (the counter), `probes`, `checkpoints` (quiet
//!   checkpoints made) and `running`: the durability mode of a run that has not stopped cleanly.

use std::cell::Cell;
use std::fs::{self, OpenOptions};
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use chat_engine::RestoredRoom;
use redb::backends::FileBackend;
use redb::{
    Database, DatabaseError, ReadableDatabase, ReadableTable, ReadableTableMetadata, RepairSession,
    TableDefinition, TableError,
};

use super::backend::{Metered, Overlay};
use super::{Durability, Location, OpenBackend, OpenError, StoreOptions};

/// The database file's name inside a [`Location::Dir`].
pub(crate) const DB_FILE: &str = "chat.redb";
/// Left in the directory when a sync failed: the next start must not trust the epochs.
pub(super) const SYNC_FAILED_FILE: &str = "sync-failed";

pub(super) const MESSAGES: TableDefinition<(&str, u64), (u64, &[u8])> =
    TableDefinition::new("messages");
pub(super) const ROOMS: TableDefinition<&str, (&str, u64, u64)> = TableDefinition::new("rooms");
pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// Bumped by any change to the tables above; a file of another version is refused, not guessed
/// at (a migration step would go here).
pub(super) const SCHEMA_VERSION: u64 = 1;

pub(super) mod key {
    pub(crate) const SCHEMA_VERSION: &str = "schema_version";
    pub(crate) const STARTS: &str = "starts";
    pub(crate) const WRITES: &str = "writes";
    pub(crate) const PROBES: &str = "probes";
    pub(crate) const RUNNING: &str = "running";
    pub(crate) const CHECKPOINTS: &str = "checkpoints";
}

/// `running`'s value: the mode of the run that set it.
pub(super) fn mode_code(durability: Durability) -> u64 {
    match durability {
        Durability::Strict => 1,
        Durability::Relaxed => 2,
    }
}

/// Where the database is, able to open it again (redb must be closed and reopened after an I/O
/// error, and the reopen gets a fresh file descriptor or backend).
pub(super) struct Source {
    place: Place,
    /// The file's length, published by [`Metered`].
    pub(super) len: Arc<AtomicU64>,
    /// An open found the file not stopped cleanly and redb repaired it.
    repaired: Arc<AtomicBool>,
}

enum Place {
    Dir { dir: PathBuf, file: PathBuf },
    Backend { name: String, open: OpenBackend },
}

impl Source {
    /// Creates the directory if it is missing.
    pub(super) fn new(location: Location, len: Arc<AtomicU64>) -> Result<Self, OpenError> {
        let place = match location {
            Location::Dir(dir) => {
                let checked = fs::create_dir_all(&dir).and_then(|()| fs::read_dir(&dir));
                if let Err(source) = checked {
                    return Err(OpenError::Dir { path: dir, source });
                }
                let file = dir.join(DB_FILE);
                Place::Dir { dir, file }
            }
            Location::Backend { name, open } => Place::Backend { name, open },
        };
        Ok(Self {
            place,
            len,
            repaired: Arc::default(),
        })
    }

    /// Whether an open so far had to repair the file.
    pub(super) fn repaired(&self) -> bool {
        self.repaired.load(Ordering::Relaxed)
    }

    /// The file (or backend) as errors name it.
    pub(super) fn name(&self) -> String {
        match &self.place {
            Place::Dir { file, .. } => file.display().to_string(),
            Place::Backend { name, .. } => name.clone(),
        }
    }

    /// The `sync-failed` marker's path (a backend has none: its runs cannot outlive the process).
    pub(super) fn marker(&self) -> Option<PathBuf> {
        match &self.place {
            Place::Dir { dir, .. } => Some(dir.join(SYNC_FAILED_FILE)),
            Place::Backend { .. } => None,
        }
    }

    pub(super) fn open(&mut self) -> Result<Database, OpenError> {
        let backend = self.backend()?;
        let backend =
            (Metered::new(backend, self.len.clone())).map_err(|source| OpenError::Io {
                path: self.name(),
                source,
            })?;
        self.database(backend)
    }

    /// The database as the file last held it, for reading only: whatever redb writes (its
    /// repair) stays in memory ([`Overlay`]), so this opens even on a disk that refuses writes.
    pub(super) fn open_for_reading(&mut self) -> Result<Database, OpenError> {
        let backend = self.backend()?;
        let backend = Overlay::new(backend).map_err(|source| OpenError::Io {
            path: self.name(),
            source,
        })?;
        self.database(backend)
    }

    fn backend(&mut self) -> Result<Box<dyn redb::StorageBackend>, OpenError> {
        let name = self.name();
        let backend: Box<dyn redb::StorageBackend> = match &mut self.place {
            Place::Dir { file, .. } => {
                let opened = (OpenOptions::new().read(true).write(true).create(true))
                    .truncate(false)
                    .open(&*file);
                match opened {
                    Ok(file) => Box::new(FileBackend::new(file).map_err(|e| database(&name, e))?),
                    Err(source) => return Err(OpenError::Io { path: name, source }),
                }
            }
            Place::Backend { open, .. } => open(),
        };
        Ok(backend)
    }

    fn database(&self, backend: impl redb::StorageBackend) -> Result<Database, OpenError> {
        let name = self.name();
        // redb's own docs: a plain open of a file altered behind its back "may panic". Checking
        // every page at each open would read the whole file (far too slow for a big store), so
        // a panic is taken for what it means: the file is damaged.
        let mut builder = Database::builder();
        builder.set_repair_callback(repair_log(name.clone(), self.repaired.clone()));
        let opened = panic::catch_unwind(AssertUnwindSafe(|| builder.create_with_backend(backend)));
        match opened {
            Ok(Ok(db)) => Ok(db),
            Ok(Err(e)) => Err(database(&name, e)),
            Err(_) => Err(OpenError::Corrupt {
                path: name,
                cause: "redb could not read it".to_owned(),
            }),
        }
    }
}

/// redb's repair callback: after an unclean stop (without `quick_repair`) redb walks and
/// verifies the whole file before it opens, about a minute for a 30 GB store, and a start that
/// seems to hang that long must say why. Logs the start of a repair and each tenth done.
fn repair_log(path: String, repaired: Arc<AtomicBool>) -> impl Fn(&mut RepairSession) + 'static {
    let tenths_logged = Cell::new(None);
    move |session| {
        let tenths = (session.progress() * 10.0) as u8;
        if tenths_logged.get() == Some(tenths) {
            return;
        }
        if tenths_logged.replace(Some(tenths)).is_none() {
            repaired.store(true, Ordering::Relaxed);
            tracing::warn!(path, "the message store was not stopped cleanly: verifying the whole file before serving (--quick-repair makes this instant, at a cost in every commit)");
        } else {
            tracing::info!(
                path,
                done_percent = tenths * 10,
                "repairing the message store"
            );
        }
    }
}

fn database(path: &str, e: DatabaseError) -> OpenError {
    let path = path.to_owned();
    match e {
        DatabaseError::DatabaseAlreadyOpen => OpenError::Locked { path },
        DatabaseError::LockProtocolMismatch => OpenError::Locked { path },
        DatabaseError::UpgradeRequired(format) => OpenError::Schema {
            path,
            cause: format!("its redb file format {format} is not one this build reads"),
        },
        DatabaseError::Storage(e) => storage(&path, e.into()),
        other => OpenError::Corrupt {
            path,
            cause: other.to_string(),
        },
    }
}

/// Any redb error met while opening, as the [`OpenError`] it means.
pub(super) fn storage(path: &str, e: redb::Error) -> OpenError {
    let path = path.to_owned();
    match e {
        redb::Error::Io(source) if source.kind() == io::ErrorKind::InvalidData => {
            OpenError::Corrupt {
                path,
                cause: source.to_string(),
            }
        }
        redb::Error::Io(source) => OpenError::Io { path, source },
        redb::Error::TableTypeMismatch { .. }
        | redb::Error::TypeDefinitionChanged { .. }
        | redb::Error::TableIsMultimap(_)
        | redb::Error::TableIsNotMultimap(_) => OpenError::Schema {
            path,
            cause: format!("it is not a message store of this version ({e})"),
        },
        other => OpenError::Corrupt {
            path,
            cause: other.to_string(),
        },
    }
}

/// What [`prepare`] decided and read.
pub(super) struct Prepared {
    pub(super) rotated: bool,
    pub(super) writes: u64,
}

/// Checks the schema, rotates epochs if the last run may have lost acknowledged messages
/// (`sync_failed`: its marker file exists), and marks this run as running, durably: a crash from
/// here on is seen by the next start.
pub(super) fn prepare(
    db: &Database,
    path: &str,
    options: &StoreOptions,
    start_epoch: &str,
    sync_failed: bool,
) -> Result<Prepared, OpenError> {
    let fail = |e: redb::Error| storage(path, e);
    let mut txn = db.begin_write().map_err(|e| fail(e.into()))?;
    (txn.set_durability(redb::Durability::Immediate))
        .expect("only a persistent savepoint refuses it, and the store makes none");
    // The open's own commit is the last one a crash right after the start would find.
    txn.set_quick_repair(options.quick_repair);
    let prepared = {
        let fresh = txn
            .list_tables()
            .map_err(|e| fail(e.into()))?
            .next()
            .is_none();
        let mut meta = txn.open_table(META).map_err(|e| table(path, e))?;
        let version = meta.get(key::SCHEMA_VERSION).map_err(|e| fail(e.into()))?;
        match version.map(|v| v.value()) {
            Some(SCHEMA_VERSION) => {}
            None if fresh => {}
            None => {
                return Err(OpenError::Schema {
                    path: path.to_owned(),
                    cause: "it has tables but no schema version: not a message store".to_owned(),
                });
            }
            Some(other) => {
                return Err(OpenError::Schema {
                    path: path.to_owned(),
                    cause: format!(
                        "schema version {other}, and this server knows only {SCHEMA_VERSION}"
                    ),
                });
            }
        }
        let read = |meta: &redb::Table<&str, u64>, k| -> Result<Option<u64>, OpenError> {
            let got = meta.get(k).map_err(|e| fail(e.into()))?;
            Ok(got.map(|v| v.value()))
        };
        let running = read(&meta, key::RUNNING)?;
        let starts = read(&meta, key::STARTS)?.unwrap_or(0);
        let writes = read(&meta, key::WRITES)?.unwrap_or(0);
        // A strict run that crashed synced everything it reported; a relaxed one did not.
        let rotated = sync_failed || running == Some(mode_code(Durability::Relaxed));
        let mut set = |k, v| meta.insert(k, v).map(drop).map_err(|e| fail(e.into()));
        set(key::SCHEMA_VERSION, SCHEMA_VERSION)?;
        set(key::STARTS, starts + 1)?;
        set(key::RUNNING, mode_code(options.durability))?;
        drop(meta);
        txn.open_table(MESSAGES).map_err(|e| table(path, e))?;
        let mut rooms = txn.open_table(ROOMS).map_err(|e| table(path, e))?;
        if rotated {
            let mut renamed = Vec::new();
            for (n, entry) in rooms.iter().map_err(|e| fail(e.into()))?.enumerate() {
                let (name, value) = entry.map_err(|e| fail(e.into()))?;
                let (_, seq, written) = value.value();
                // `-r`: an engine mints `{start_epoch}-{n}` for new rooms, which this must not
                // collide with (`Engine::restore` refuses such an epoch).
                let epoch = format!("{start_epoch}-r{}", n + 1);
                renamed.push((name.value().to_owned(), epoch, seq, written));
            }
            for (name, epoch, seq, written) in &renamed {
                (rooms.insert(name.as_str(), (epoch.as_str(), *seq, *written)))
                    .map_err(|e| fail(e.into()))?;
            }
        }
        Prepared { rotated, writes }
    };
    txn.commit().map_err(|e| fail(e.into()))?;
    Ok(prepared)
}

fn table(path: &str, e: TableError) -> OpenError {
    storage(path, e.into())
}

/// Every room, least recently written first; the `rooms_max` most recent with their last
/// `history_max` messages. Each history is a range read back from the room's end, so the cost
/// is one B-tree seek per room plus the messages handed back, whatever the store holds.
pub(super) fn load(
    db: &Database,
    path: &str,
    options: &StoreOptions,
) -> Result<(Vec<RestoredRoom>, u64), OpenError> {
    let fail = |e: redb::Error| storage(path, e);
    let txn = db.begin_read().map_err(|e| fail(e.into()))?;
    let rooms = txn.open_table(ROOMS).map_err(|e| table(path, e))?;
    let messages = txn.open_table(MESSAGES).map_err(|e| table(path, e))?;
    let mut found = Vec::new();
    for entry in rooms.iter().map_err(|e| fail(e.into()))? {
        let (name, value) = entry.map_err(|e| fail(e.into()))?;
        let (epoch, seq, written) = value.value();
        found.push((written, name.value().to_owned(), epoch.to_owned(), seq));
    }
    found.sort_unstable_by_key(|&(written, ..)| written);
    let with_history = found.len().saturating_sub(options.rooms_max);
    let asks: Vec<TailAsk> = (found[with_history..].iter())
        .map(|(_, name, _, seq)| TailAsk {
            room: name.clone(),
            seq: *seq,
            limit: options.history_max,
        })
        .collect();
    let mut tails = tails(db, &asks).map_err(fail)?.into_iter();
    let mut restored = Vec::with_capacity(found.len());
    for (i, (_, name, epoch, seq)) in found.into_iter().enumerate() {
        let history = match i >= with_history {
            true => tails.next().expect("one tail per room with history"),
            false => Vec::new(),
        };
        restored.push(RestoredRoom {
            name,
            epoch,
            seq,
            history,
        });
    }
    let count = messages.len().map_err(|e| fail(e.into()))?;
    Ok((restored, count))
}

/// Threads reading the rooms' tails at a start. Warm, the reads are B-tree walks and copies and
/// two threads do them as fast as 32; cold (after a reboot), nearly every read waits on the
/// disk, and the disk serves many at once: a 3 GB store's 10,000 tails took 6.4-7.5 s on 2
/// threads, 2.9-3.3 s on 8 and 1.8-2.1 s on 32, no better on 64 or 128 (BENCHMARKS.md).
const TAIL_READERS: usize = 32;

/// One room's tail to read: its newest `limit` messages up to `seq`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct TailAsk {
    pub(super) room: String,
    pub(super) seq: u64,
    pub(super) limit: usize,
}

/// Reading many rooms' tails (a start, or many rooms woken at once) is B-tree walks and copies,
/// or the disk when the file is not in the page cache, and they are independent: they are read
/// on up to [`TAIL_READERS`] threads, each in a read transaction of its own. One alone is read
/// on the caller's thread. In `asks`' order.
pub(super) fn tails(
    db: &Database,
    asks: &[TailAsk],
) -> Result<Vec<Vec<(u64, Bytes)>>, redb::Error> {
    let read = |part: &[TailAsk]| -> Result<Vec<_>, redb::Error> {
        let txn = db.begin_read()?;
        let messages = txn.open_table(MESSAGES)?;
        (part.iter())
            .map(|ask| tail(&messages, &ask.room, ask.seq, ask.limit))
            .collect()
    };
    if asks.len() <= 1 {
        return read(asks);
    }
    let share = asks.len().div_ceil(TAIL_READERS);
    std::thread::scope(|scope| {
        let readers: Vec<_> = (asks.chunks(share))
            .map(|part| scope.spawn(move || read(part)))
            .collect();
        let mut all = Vec::with_capacity(asks.len());
        for reader in readers {
            let part = reader.join().unwrap_or_else(|p| panic::resume_unwind(p))?;
            all.extend(part);
        }
        Ok(all)
    })
}

/// The room's last `max` messages, oldest first, as long as they run consecutively down from
/// `seq` (what `Engine::restore` accepts; retention only ever deletes from the start, so a gap
/// means nothing newer than it is missing).
fn tail(
    messages: &redb::ReadOnlyTable<(&str, u64), (u64, &[u8])>,
    room: &str,
    seq: u64,
    max: usize,
) -> Result<Vec<(u64, Bytes)>, redb::Error> {
    let mut history = Vec::new();
    let mut want = seq;
    for entry in messages.range((room, 0)..=(room, seq))?.rev().take(max) {
        let (key, value) = entry?;
        let (_, at) = key.value();
        if at != want {
            break;
        }
        let (_, frame) = value.value();
        history.push((at, Bytes::copy_from_slice(frame)));
        want = at.saturating_sub(1);
    }
    history.reverse();
    Ok(history)
}

/// A room's row as the worker keeps it within one batch.
#[derive(Clone, Debug)]
pub(super) struct RoomRow {
    pub(super) epoch: String,
    pub(super) seq: u64,
    pub(super) written: u64,
}
