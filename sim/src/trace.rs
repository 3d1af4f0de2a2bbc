//! The record of a run: what every simulated client sent and saw, with simulated timestamps. The
//! clients write it while the simulation runs; the checker reads it afterwards.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chat_engine::{JoinRequest, ServerMessage};

/// Simulated time since the run started (zero outside a simulation).
pub fn now() -> Duration {
    turmoil::sim_elapsed().unwrap_or_default()
}

/// What one run recorded, shared by every client of that run.
#[derive(Clone, Debug, Default)]
pub struct Trace(Arc<Mutex<Record>>);

impl Trace {
    pub fn new() -> Self {
        Self::default()
    }

    /// The record, for reading or writing. A poisoned lock still holds a usable record.
    pub fn lock(&self) -> MutexGuard<'_, Record> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A short, stable digest of everything observed (what determinism tests compare).
    pub fn fingerprint(&self) -> String {
        let record = self.lock();
        let mut text = String::new();
        for (name, log) in &record.clients {
            let _ = write!(text, "{name}:{:?}", log.sessions);
        }
        // FNV-1a: small, stable across platforms and Rust versions.
        let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        format!("{hash:016x} ({} bytes)", text.len())
    }
}

/// Everything recorded in one run, by client name.
#[derive(Debug, Default)]
pub struct Record {
    pub clients: BTreeMap<String, ClientLog>,
}

/// How a client behaves, which decides what the checker expects of it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Role {
    /// Reads everything promptly.
    #[default]
    Reader,
    /// Stops reading at some point (its link to the server is held).
    Slow,
}

/// One client's record.
#[derive(Debug, Default)]
pub struct ClientLog {
    pub role: Role,
    /// One entry per WebSocket connection, in order.
    pub sessions: Vec<Session>,
    /// Chat texts this client sent, with when (texts are unique within a run).
    pub sent: Vec<(Duration, String)>,
    /// When a slow client stopped reading.
    pub stopped_reading: Option<Duration>,
    /// Its view of its room once the run had gone quiet, if it was connected then.
    pub snapshot: Option<Snapshot>,
    /// Earlier views taken at quiet moments (every client at the same instant), checked like
    /// the final one.
    pub checkpoints: Vec<Snapshot>,
}

/// One WebSocket connection of a client.
#[derive(Debug)]
pub struct Session {
    pub opened_at: Duration,
    /// The join carried by the handshake (`/ws?nick=&room=&since=&epoch=`).
    pub request: JoinRequest,
    pub seen: Vec<Seen>,
    /// When this client sent its own close frame, if it did.
    pub we_closed_at: Option<Duration>,
    /// How and when the connection ended; `None` while it is open.
    pub end: Option<(Duration, End)>,
}

/// One thing received, with when.
#[derive(Clone, Debug)]
pub struct Seen {
    pub at: Duration,
    pub what: Received,
}

/// A frame as the client saw it.
#[derive(Clone, Debug)]
pub enum Received {
    Frame(ServerMessage),
    /// A close frame and its code (`None`: no code).
    Close(Option<u16>),
    /// A text frame that is not a `ServerMessage`, or a binary frame.
    Garbage(String),
}

/// How a connection ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum End {
    /// The stream ended or failed (after a close frame or not: see `seen`).
    Ended,
    /// This client dropped it without a close handshake.
    Dropped,
    /// The handshake failed (refused, reset, server down).
    Refused(String),
}

/// A client's view of its room at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub at: Duration,
    pub room: String,
    pub nick: String,
    pub users: BTreeSet<String>,
    /// The member count the client believes.
    pub user_count: usize,
    /// It believes `users` lists every member (see `View::users_complete`).
    pub users_complete: bool,
    /// Its list may name people who left (see `View::users_stale`).
    pub users_stale: bool,
}
