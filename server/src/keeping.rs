//! Where the server keeps its messages, decided once at start: no store (`--in-memory`), or the
//! redb store in `--data-dir` (or a simulated disk), opened before anything is served so that a
//! bad data directory stops the start with one clear line instead of a server that starts empty.

use std::io;
use std::sync::Arc;

use crate::settings::{Durability, Settings, StoreAt};
use crate::store::{self, Location, Opened, Store, StoreHandle, StoreOptions};

/// An opened store and what it kept.
pub(crate) struct Kept {
    pub(crate) rooms: Vec<chat_engine::RestoredRoom>,
    pub(crate) store: Store,
}

/// Opens the store `settings` name, if any, and sets the engine to hold (strict) or just store
/// (relaxed) every message. Fails with the store's own one-line reason.
pub(crate) fn open(settings: &mut Settings, start_epoch: &str) -> io::Result<Option<Kept>> {
    let engine = &mut settings.engine;
    engine.hold_until_committed = false;
    engine.store_relaxed = false;
    engine.tail_on_wake = false;
    let location = match &settings.store.at {
        StoreAt::InMemory => return Ok(None),
        StoreAt::Dir(dir) => Location::Dir(dir.clone()),
        StoreAt::Disk(disk) => disk.location(),
    };
    match settings.store.durability {
        Durability::Strict => engine.hold_until_committed = true,
        Durability::Relaxed => engine.store_relaxed = true,
    }
    // Rooms restored without their history read it when someone joins them.
    engine.tail_on_wake = true;
    let options = StoreOptions {
        durability: match settings.store.durability {
            Durability::Strict => store::Durability::Strict,
            Durability::Relaxed => store::Durability::Relaxed,
        },
        sync_interval: settings.store.sync_interval,
        retention_messages: settings.store.retention_messages,
        retention_age: settings.store.retention_age,
        history_max: engine.history_max,
        rooms_max: settings.store.preload_rooms.min(engine.rooms_max),
        wall_clock: settings.wall_clock,
        commit_delay: settings.store.commit_delay,
        quick_repair: settings.store.quick_repair,
        quiet_checkpoint: Some(settings.store.quiet_checkpoint).filter(|d| !d.is_zero()),
    };
    let started = std::time::Instant::now();
    let (opened, store) =
        store::open(location, options, start_epoch).map_err(|e| io::Error::other(e.to_string()))?;
    let Opened {
        rooms,
        rotated,
        messages,
        bytes_on_disk,
        repaired,
    } = opened;
    tracing::info!(
        rooms = rooms.len(),
        messages,
        bytes_on_disk,
        rotated,
        repaired,
        took_ms = started.elapsed().as_millis() as u64,
        "opened the message store"
    );
    if rotated {
        tracing::warn!("the last run may have lost acknowledged messages (an unclean stop with relaxed durability, or a failed sync): every room has a new epoch, so reconnecting clients are told they were not recovered");
    }
    Ok(Some(Kept { rooms, store }))
}

/// As [`open`], off the runtime's threads for a store on a real disk: its open can take a
/// minute (redb's repair after a crash), and meanwhile the server answers health checks
/// (`starting`). A simulated disk opens inline: a simulation must not wait on another thread.
pub(crate) async fn open_aside(
    settings: &mut Settings,
    start_epoch: &str,
) -> io::Result<Option<Kept>> {
    if !matches!(settings.store.at, StoreAt::Dir(_)) {
        return open(settings, start_epoch);
    }
    let mut aside = std::mem::take(settings);
    let epoch = start_epoch.to_owned();
    let opening = move || {
        if let Some(gate) = &aside.store.open_gate {
            gate.wait();
        }
        (open(&mut aside, &epoch), aside)
    };
    let (kept, aside) = (tokio::task::spawn_blocking(opening).await)
        .map_err(|e| io::Error::other(format!("the store's open failed: {e}")))?;
    *settings = aside;
    kept
}

/// Starts the store's runner: its own thread, or for a simulated disk a task of the simulation.
pub(crate) fn spawn(store: Store, settings: &Settings) -> io::Result<StoreHandle> {
    match settings.store.at {
        StoreAt::Disk(_) => Ok(store.spawn_task()),
        _ => store.spawn_thread(),
    }
}

/// The store's figures, shared with `/status`, `/metrics` and `/readyz`.
pub(crate) type StoreFigures = Arc<store::StoreStats>;
