//! Traffic beside the measured clients while they send: churners, who connect, chat a little and
//! leave at random (`--churn`), and attackers (`--attackers`), who poison histories with maximal
//! messages across rooms, reconnect in a loop, flood typing and pings, and switch rooms. Neither
//! is counted as a reading client; what they did and how the server answered them is tallied
//! here, so a run shows the honest clients' figures with and without them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::watch;

use crate::ws::{self, FrameReader, Target};

/// What one background client does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Connects, sends a few messages over a few seconds, leaves, and again.
    Churner,
    /// Maximal messages at the rate limit, moving to a new room every few.
    Poisoner,
    /// Connects and closes at once, as fast as it can.
    Reconnector,
    /// `typing` as fast as it can.
    Typist,
    /// Pings as fast as it can.
    Pinger,
    /// Room switches as fast as it can.
    Switcher,
}

/// Attackers' kinds, in the order `--attackers` hands them out.
const ATTACKS: [Kind; 5] = [
    Kind::Poisoner,
    Kind::Reconnector,
    Kind::Typist,
    Kind::Pinger,
    Kind::Switcher,
];

pub(crate) fn attacker(i: usize) -> Kind {
    ATTACKS[i % ATTACKS.len()]
}

/// Counts by kind.
#[derive(Default)]
pub(crate) struct Tally {
    sessions: [AtomicU64; 6],
    refused: [AtomicU64; 6],
    frames: [AtomicU64; 6],
    closes: Mutex<BTreeMap<(usize, u16), u64>>,
}

impl Tally {
    pub(crate) fn json(&self) -> Value {
        let names = [
            "churner",
            "poisoner",
            "reconnector",
            "typist",
            "pinger",
            "switcher",
        ];
        let closes = self.closes.lock().expect("not poisoned");
        let mut out = serde_json::Map::new();
        for (k, name) in names.iter().enumerate() {
            let sessions = self.sessions[k].load(Ordering::Relaxed);
            if sessions == 0 && self.refused[k].load(Ordering::Relaxed) == 0 {
                continue;
            }
            let codes: serde_json::Map<String, Value> = (closes.iter())
                .filter(|((kind, _), _)| *kind == k)
                .map(|((_, code), n)| (code.to_string(), Value::from(*n)))
                .collect();
            out.insert(
                (*name).to_owned(),
                json!({
                    "sessions": sessions,
                    "refused_upgrades": self.refused[k].load(Ordering::Relaxed),
                    "frames_sent": self.frames[k].load(Ordering::Relaxed),
                    "closed_by_server": codes,
                }),
            );
        }
        Value::Object(out)
    }
}

/// What every background client shares.
pub(crate) struct Setup {
    pub(crate) target: Target,
    /// The measured clients' room: churners and typists go there.
    pub(crate) room: String,
    /// Text bytes of a poisoner's message (the server's `--max-text-bytes`).
    pub(crate) text_bytes: usize,
    pub(crate) tally: Tally,
}

/// Runs background client `index` of `kind` until `stop` turns true.
pub(crate) async fn run(index: usize, kind: Kind, setup: Arc<Setup>, stop: watch::Receiver<bool>) {
    let k = kind as usize;
    let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ (index as u64 + 1).wrapping_mul(0xA24B_AED4_963E_E407);
    let mut session = 0u64;
    while !*stop.borrow() {
        session += 1;
        let room = match kind {
            Kind::Poisoner => format!("poison{index}-{session}"),
            Kind::Switcher => format!("switch{index}"),
            _ => setup.room.clone(),
        };
        let query = format!("nick=bg{index}s{session}&room={room}");
        let conn = match ws::connect(&setup.target, &query).await {
            Ok(conn) => conn,
            Err(_) => {
                setup.tally.refused[k].fetch_add(1, Ordering::Relaxed);
                // Refused (503, or the server is busy): back off a little, as a client would.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        setup.tally.sessions[k].fetch_add(1, Ordering::Relaxed);
        let reader = FrameReader::new(conn.read, conn.leftover, 8192);
        let closed = tokio::spawn(read_until_closed(reader));
        let mut write = conn.write;
        let sent = act(kind, index, &mut write, &setup, &mut rng, stop.clone()).await;
        setup.tally.frames[k].fetch_add(sent, Ordering::Relaxed);
        let mut close = Vec::new();
        ws::encode(
            &mut close,
            ws::OP_CLOSE,
            &1000u16.to_be_bytes(),
            mask(&mut rng),
        );
        let _ = write.write_all(&close).await;
        if let Ok(Ok(Some(code))) = tokio::time::timeout(Duration::from_secs(2), closed).await {
            if code != 1000 {
                *(setup.tally.closes.lock().expect("not poisoned"))
                    .entry((k, code))
                    .or_default() += 1;
            }
        }
        drop(write);
    }
}

/// One session's misbehaviour; returns the frames it wrote. Ends when the socket fails, the
/// session's time is up, or `stop` turns true.
async fn act(
    kind: Kind,
    index: usize,
    write: &mut OwnedWriteHalf,
    setup: &Setup,
    rng: &mut u64,
    mut stop: watch::Receiver<bool>,
) -> u64 {
    let (period, frames_per_tick, session) = match kind {
        // A few seconds of a person's pace.
        Kind::Churner => (
            Duration::from_millis(500 + next(rng) % 1500),
            1,
            Duration::from_millis(1_000 + next(rng) % 9_000),
        ),
        // The message rate limit's pace, in room after room (see `run`).
        Kind::Poisoner => (Duration::from_millis(100), 1, Duration::from_secs(3)),
        Kind::Reconnector => return 0,
        Kind::Typist | Kind::Pinger => (Duration::from_millis(10), 32, Duration::from_secs(30)),
        Kind::Switcher => (Duration::from_millis(50), 1, Duration::from_secs(30)),
    };
    let poison = "x".repeat(setup.text_bytes);
    let mut ticker = tokio::time::interval(period);
    let until = tokio::time::Instant::now() + session;
    let mut sent = 0u64;
    let mut buf = Vec::new();
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => return sent,
            () = tokio::time::sleep_until(until) => return sent,
        }
        buf.clear();
        for _ in 0..frames_per_tick {
            let m = mask(rng);
            match kind {
                Kind::Churner => {
                    ws::encode_text(&mut buf, format!("churn {index} {sent}").as_bytes(), m);
                }
                Kind::Poisoner => ws::encode_text(&mut buf, poison.as_bytes(), m),
                Kind::Typist => ws::encode_text(&mut buf, br#"{"type":"typing"}"#, m),
                Kind::Pinger => ws::encode(&mut buf, ws::OP_PING, b"flood", m),
                Kind::Switcher => {
                    let join = format!(r#"{{"type":"join","room":"switch{index}-{}"}}"#, sent % 2);
                    ws::encode_text(&mut buf, join.as_bytes(), m);
                }
                Kind::Reconnector => {}
            }
            sent += 1;
        }
        if write.write_all(&buf).await.is_err() {
            return sent;
        }
    }
}

/// Reads (and drops) everything the server sends; the close code it sent, if it did.
async fn read_until_closed(mut reader: FrameReader) -> Option<u16> {
    loop {
        match reader.next().await {
            Ok(Some(frame)) if frame.opcode == ws::OP_CLOSE => {
                return Some(match frame.payload {
                    [a, b, ..] => u16::from_be_bytes([*a, *b]),
                    _ => 1005,
                });
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => return None,
        }
    }
}

fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn mask(state: &mut u64) -> [u8; 4] {
    (next(state) as u32).to_le_bytes()
}
