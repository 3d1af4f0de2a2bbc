//! The checker: after a run, asserts the chat invariants over everything every client recorded.
//! Each invariant is one function returning its violations; [`check`] runs them all. Queries that
//! scenarios assert on (close codes, welcomes, delivery delays) live here too.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chat_engine::names::nick_likeness;
use chat_engine::protocol::ChatMessage;
use chat_engine::ServerMessage;

use crate::trace::{ClientLog, Received, Record, Role, Session, Snapshot, Trace};

/// What the checker needs to know about the server's configuration.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// The engine's `queue_frames_max` (with `queue_bytes_max` set out of reach).
    pub queue_frames_max: usize,
}

/// One client's continuous membership of one room: from a `welcome` to the next one or the end
/// of the connection.
#[derive(Debug)]
pub struct Stint<'a> {
    pub client: &'a str,
    pub session: usize,
    pub at: Duration,
    pub room: &'a str,
    /// Room epoch from the `welcome`.
    pub epoch: &'a str,
    pub nick: &'a str,
    pub welcome_seq: u64,
    pub recovered: bool,
    pub history: &'a [ChatMessage],
    /// Live messages of this room, in arrival order, with when they arrived.
    pub messages: Vec<(Duration, &'a ChatMessage)>,
    /// The client took its final snapshot during this stint: it stayed until the run went quiet.
    pub stayed: bool,
}

/// Every stint of every client, in order.
pub fn stints(record: &Record) -> Vec<Stint<'_>> {
    let mut all = Vec::new();
    for (name, log) in &record.clients {
        let first = all.len();
        for (index, session) in log.sessions.iter().enumerate() {
            for seen in &session.seen {
                match &seen.what {
                    Received::Frame(ServerMessage::Welcome {
                        nick,
                        room,
                        history,
                        recovered,
                        seq,
                        epoch,
                        ..
                    }) => all.push(Stint {
                        client: name,
                        session: index,
                        at: seen.at,
                        room,
                        epoch,
                        nick,
                        welcome_seq: *seq,
                        recovered: *recovered,
                        history,
                        messages: Vec::new(),
                        stayed: false,
                    }),
                    Received::Frame(ServerMessage::Message(m)) => {
                        if let Some(stint) = all[first..]
                            .last_mut()
                            .filter(|s| s.session == index && s.room == m.room)
                        {
                            stint.messages.push((seen.at, m));
                        }
                    }
                    _ => {}
                }
            }
        }
        if let Some(snapshot) = &log.snapshot {
            if let Some(stint) = all[first..]
                .iter_mut()
                .rev()
                .find(|s| s.at <= snapshot.at)
                .filter(|s| s.room == snapshot.room)
            {
                stint.stayed = true;
            }
        }
    }
    all
}

/// Each client saw `seq`s strictly increasing and gap-free in each room while it was in it.
pub fn seqs_strictly_increasing_without_gaps(record: &Record) -> Vec<String> {
    let mut violations = Vec::new();
    for stint in stints(record) {
        let mut expected = stint.welcome_seq + 1;
        for (at, m) in &stint.messages {
            if m.seq != expected {
                violations.push(format!(
                    "{} (session {}, room {} epoch {}) expected seq {expected} but got {} at {at:?}",
                    stint.client, stint.session, stint.room, stint.epoch, m.seq
                ));
            }
            expected = m.seq + 1;
        }
    }
    violations
}

/// A `welcome`'s history is consecutive `seq`s ending at its `seq`, and with `recovered: true` it
/// is exactly what followed the `since` the client asked with.
pub fn welcome_history_is_exact(record: &Record) -> Vec<String> {
    let mut violations = Vec::new();
    for (name, log) in &record.clients {
        for (index, session) in log.sessions.iter().enumerate() {
            let mut first_welcome = true;
            for seen in &session.seen {
                let Received::Frame(ServerMessage::Welcome {
                    history,
                    recovered,
                    seq,
                    epoch,
                    room,
                    ..
                }) = &seen.what
                else {
                    continue;
                };
                let seqs: Vec<u64> = history.iter().map(|m| m.seq).collect();
                let consecutive = seqs.windows(2).all(|w| w[1] == w[0] + 1);
                let ends_at_seq = seqs.last().is_none_or(|last| last == seq);
                let in_room = history.iter().all(|m| &m.room == room);
                if !(consecutive && ends_at_seq && in_room) {
                    violations.push(format!(
                        "{name} (session {index}) welcome to {room} with seq {seq} has history {seqs:?}"
                    ));
                }
                if *recovered && first_welcome {
                    let request = &session.request;
                    let asked = (request.since, request.epoch.as_deref());
                    let exact = match asked {
                        (Some(since), Some(asked_epoch)) => {
                            asked_epoch == epoch && seqs == ((since + 1)..=*seq).collect::<Vec<_>>()
                        }
                        _ => false,
                    };
                    if !exact {
                        violations.push(format!(
                            "{name} (session {index}) asked since {:?} epoch {:?} and was told \
                             recovered: true with epoch {epoch}, seq {seq}, history {seqs:?}",
                            request.since, request.epoch
                        ));
                    }
                }
                first_welcome = false;
            }
        }
    }
    violations
}

/// All clients saw identical contents (nick, text, timestamp) for each `seq` of a room.
pub fn same_contents_for_each_seq(record: &Record) -> Vec<String> {
    let mut violations = Vec::new();
    let mut contents: BTreeMap<(&str, &str, u64), (&ChatMessage, &str)> = BTreeMap::new();
    for stint in stints(record) {
        let seen = stint
            .history
            .iter()
            .chain(stint.messages.iter().map(|(_, m)| *m));
        for m in seen {
            let key = (stint.epoch, m.room.as_str(), m.seq);
            match contents.get(&key) {
                None => {
                    contents.insert(key, (m, stint.client));
                }
                Some((first, who)) if *first != m => violations.push(format!(
                    "room {} epoch {} seq {}: {who} saw {:?}/{:?}, {} saw {:?}/{:?}",
                    m.room,
                    stint.epoch,
                    m.seq,
                    first.nick,
                    first.text,
                    stint.client,
                    m.nick,
                    m.text
                )),
                Some(_) => {}
            }
        }
    }
    violations
}

/// Every message acknowledged to its sender (it got its own copy back) reached every member of
/// that room who was there before it and stayed until the run went quiet.
pub fn acknowledged_messages_reach_everyone_who_stayed(record: &Record) -> Vec<String> {
    let all = stints(record);
    let mut acked: BTreeSet<(&str, &str, u64, &str)> = BTreeSet::new();
    for stint in &all {
        let sent: BTreeSet<&str> = record.clients[stint.client]
            .sent
            .iter()
            .map(|(_, text)| text.as_str())
            .collect();
        for (_, m) in &stint.messages {
            if sent.contains(m.text.as_str()) {
                acked.insert((stint.epoch, m.room.as_str(), m.seq, stint.client));
            }
        }
    }
    let mut violations = Vec::new();
    for stint in all.iter().filter(|s| s.stayed) {
        let got: BTreeSet<u64> = stint.messages.iter().map(|(_, m)| m.seq).collect();
        for &(epoch, room, seq, sender) in &acked {
            let due = epoch == stint.epoch && room == stint.room && seq > stint.welcome_seq;
            if due && !got.contains(&seq) {
                violations.push(format!(
                    "{} stayed in {room} (epoch {epoch}) but never got seq {seq}, which \
                     {sender} had acknowledged",
                    stint.client
                ));
            }
        }
    }
    violations
}

/// Nobody received anything after its own close, nor about a room after it left it (including
/// its own `leave`).
pub fn nothing_after_leaving(record: &Record) -> Vec<String> {
    let mut violations = Vec::new();
    for (name, log) in &record.clients {
        for (index, session) in log.sessions.iter().enumerate() {
            let mut closed = false;
            let mut room: Option<&str> = None;
            let mut nick: Option<&str> = None;
            for seen in &session.seen {
                let at = seen.at;
                if closed {
                    violations.push(format!(
                        "{name} (session {index}) received {:?} at {at:?} after its close",
                        seen.what
                    ));
                    continue;
                }
                let message = match &seen.what {
                    Received::Close(_) => {
                        closed = true;
                        continue;
                    }
                    Received::Garbage(text) => {
                        violations.push(format!("{name} received garbage {text:?} at {at:?}"));
                        continue;
                    }
                    Received::Frame(message) => message,
                };
                let about = match message {
                    ServerMessage::Welcome {
                        room: r, nick: n, ..
                    } => {
                        room = Some(r);
                        nick = Some(n);
                        continue;
                    }
                    ServerMessage::Message(m) => &m.room,
                    ServerMessage::Join { room, .. }
                    | ServerMessage::Typing { room, .. }
                    | ServerMessage::Users { room, .. }
                    | ServerMessage::History { room, .. }
                    | ServerMessage::Presence { room, .. } => room,
                    ServerMessage::Leave {
                        room: r, nick: n, ..
                    } => {
                        if room == Some(r) && nick == Some(n) {
                            violations.push(format!(
                                "{name} (session {index}) was told at {at:?} that it left {r} itself"
                            ));
                        }
                        r
                    }
                    ServerMessage::Nick {
                        room: r,
                        old,
                        nick: n,
                        ..
                    } => {
                        if room == Some(r) && nick == Some(old) {
                            nick = Some(n);
                        }
                        r
                    }
                    ServerMessage::Error { .. } => continue,
                };
                if room != Some(about.as_str()) {
                    violations.push(format!(
                        "{name} (session {index}) in room {room:?} received {message:?} at {at:?}"
                    ));
                }
            }
        }
    }
    violations
}

/// Only clients whose queue really overflowed were evicted: every 4001 went to a client that had
/// stopped reading and was then sent more than `queue_frames_max` frames.
pub fn only_overflowing_clients_evicted(record: &Record, limits: Limits) -> Vec<String> {
    let mut violations = Vec::new();
    for (name, log) in &record.clients {
        for (index, session) in log.sessions.iter().enumerate() {
            let Some(close) = session
                .seen
                .iter()
                .position(|s| matches!(s.what, Received::Close(Some(4001))))
            else {
                continue;
            };
            let stopped = match (log.role, log.stopped_reading) {
                (Role::Slow, Some(at)) => at,
                _ => {
                    violations.push(format!(
                        "{name} (session {index}) was evicted (4001) but never stopped reading"
                    ));
                    continue;
                }
            };
            let after = session.seen[..close]
                .iter()
                .filter(|s| s.at >= stopped && matches!(s.what, Received::Frame(_)))
                .count();
            if after < limits.queue_frames_max {
                violations.push(format!(
                    "{name} (session {index}) was evicted (4001) with only {after} frames sent \
                     after it stopped reading (queue_frames_max {})",
                    limits.queue_frames_max
                ));
            }
        }
    }
    violations
}

/// Once the run has gone quiet (longer than a presence interval), each connected client's member
/// count is exactly the number of clients in its room, and its list of names is exactly them when
/// it believes the list complete, else some of them and never anyone else (unless a `presence`
/// frame told it that it left names out: then only the count is known).
pub fn presence_converges(record: &Record) -> Vec<String> {
    // Views taken at the same instant, by client.
    let mut moments: BTreeMap<Duration, Vec<(&str, &Snapshot)>> = BTreeMap::new();
    for (name, log) in &record.clients {
        for s in log.checkpoints.iter().chain(&log.snapshot) {
            moments.entry(s.at).or_default().push((name.as_str(), s));
        }
    }
    let mut violations = Vec::new();
    for views in moments.values() {
        let mut members: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        for (_, s) in views {
            (members.entry(s.room.as_str()).or_default()).insert(s.nick.clone());
        }
        for (name, s) in views {
            let real = &members[s.room.as_str()];
            if s.user_count != real.len() {
                violations.push(format!(
                    "{name} counts {} in {} at {:?}, but the room holds {}",
                    s.user_count,
                    s.room,
                    s.at,
                    real.len()
                ));
            }
            let wrong = match (s.users_complete, s.users_stale) {
                (true, _) => &s.users != real,
                (false, false) => !s.users.is_subset(real),
                (false, true) => false,
            };
            if wrong {
                violations.push(format!(
                    "{name} sees {:?} in {} at {:?}, but the room holds {real:?}",
                    s.users, s.room, s.at
                ));
            }
        }
    }
    violations
}

/// How close together two clients' frames may be and still not prove they were members at the
/// same instant (a client-to-node hop plus ticks).
const SAME_INSTANT_SLACK: Duration = Duration::from_millis(100);

/// No two clients were members of one room under alike nicknames at one instant, on any nodes:
/// wherever the trace can tell, i.e. one of them was welcomed under the name before the other
/// last received a frame under it (beyond a hop's slack), both being served meanwhile.
pub fn nicks_unique_per_room(record: &Record) -> Vec<String> {
    // Per client: (room, likeness, welcomed at, last frame at) while it held the name.
    let mut held: Vec<(&str, &str, String, Duration, Duration)> = Vec::new();
    for (name, log) in &record.clients {
        for session in &log.sessions {
            let mut current: Option<(&str, String, Duration, Duration)> = None;
            for seen in &session.seen {
                let Received::Frame(message) = &seen.what else {
                    continue;
                };
                let renamed = match message {
                    ServerMessage::Welcome { room, nick, .. } => {
                        Some((room.as_str(), nick.as_str()))
                    }
                    ServerMessage::Nick {
                        room, old, nick, ..
                    } if current
                        .as_ref()
                        .is_some_and(|c| c.0 == room && c.1 == nick_likeness(old)) =>
                    {
                        Some((room.as_str(), nick.as_str()))
                    }
                    _ => None,
                };
                if let Some((room, nick)) = renamed {
                    if let Some((room, likeness, from, to)) = current.take() {
                        held.push((name, room, likeness, from, to));
                    }
                    current = Some((room, nick_likeness(nick), seen.at, seen.at));
                } else if let Some(c) = &mut current {
                    c.3 = seen.at;
                }
            }
            if let Some((room, likeness, from, to)) = current {
                held.push((name, room, likeness, from, to));
            }
        }
    }
    // (room, likeness) -> (client, from, to).
    type Holders<'a> = Vec<(&'a str, Duration, Duration)>;
    let mut by_name: BTreeMap<(&str, &str), Holders<'_>> = BTreeMap::new();
    for (client, room, likeness, from, to) in &held {
        by_name
            .entry((room, likeness.as_str()))
            .or_default()
            .push((client, *from, *to));
    }
    let mut violations = Vec::new();
    for ((room, likeness), holders) in by_name {
        for (i, a) in holders.iter().enumerate() {
            for b in &holders[i + 1..] {
                let overlap = a.1 + SAME_INSTANT_SLACK < b.2 && b.1 + SAME_INSTANT_SLACK < a.2;
                if a.0 != b.0 && overlap {
                    violations.push(format!(
                        "{} ({:?}..{:?}) and {} ({:?}..{:?}) both held {likeness:?} in {room}",
                        a.0, a.1, a.2, b.0, b.1, b.2
                    ));
                }
            }
        }
    }
    violations
}

/// Runs every invariant; `Err` lists the violations (the first few of each).
pub fn check(trace: &Trace, limits: Limits) -> Result<(), String> {
    let record = trace.lock();
    let results = [
        (
            "seqs strictly increasing, gap-free",
            seqs_strictly_increasing_without_gaps(&record),
        ),
        ("welcome history exact", welcome_history_is_exact(&record)),
        ("same contents per seq", same_contents_for_each_seq(&record)),
        (
            "acknowledged messages reach everyone who stayed",
            acknowledged_messages_reach_everyone_who_stayed(&record),
        ),
        ("nothing after leaving", nothing_after_leaving(&record)),
        (
            "only overflowing clients evicted",
            only_overflowing_clients_evicted(&record, limits),
        ),
        ("presence converges", presence_converges(&record)),
        ("nicknames unique per room", nicks_unique_per_room(&record)),
    ];
    let mut report = String::new();
    for (invariant, violations) in results {
        if violations.is_empty() {
            continue;
        }
        report.push_str(&format!(
            "invariant violated: {invariant} ({} times)\n",
            violations.len()
        ));
        for v in violations.iter().take(5) {
            report.push_str(&format!("  - {v}\n"));
        }
    }
    if report.is_empty() {
        Ok(())
    } else {
        Err(report)
    }
}

/// Panics with the checker's report if any invariant is violated.
pub fn assert_invariants(trace: &Trace, limits: Limits) {
    if let Err(report) = check(trace, limits) {
        panic!("{report}");
    }
}

/// Close codes `name` received, over all its sessions, in order.
pub fn close_codes(record: &Record, name: &str) -> Vec<Option<u16>> {
    record.clients[name]
        .sessions
        .iter()
        .flat_map(|s| &s.seen)
        .filter_map(|s| match s.what {
            Received::Close(code) => Some(code),
            _ => None,
        })
        .collect()
}

/// Every `welcome` `name` received: (recovered, room epoch, number of history entries).
pub fn welcomes(record: &Record, name: &str) -> Vec<(bool, String, usize)> {
    record.clients[name]
        .sessions
        .iter()
        .flat_map(|s| &s.seen)
        .filter_map(|s| match &s.what {
            Received::Frame(ServerMessage::Welcome {
                recovered,
                epoch,
                history,
                ..
            }) => Some((*recovered, epoch.clone(), history.len())),
            _ => None,
        })
        .collect()
}

/// The `leave`s about `nick` that `observer` saw: (when, reason).
pub fn leaves_seen(record: &Record, observer: &str, nick: &str) -> Vec<(Duration, String)> {
    record.clients[observer]
        .sessions
        .iter()
        .flat_map(|s| &s.seen)
        .filter_map(|s| match &s.what {
            Received::Frame(ServerMessage::Leave {
                nick: n, reason, ..
            }) if n == nick => Some((s.at, reason.clone())),
            _ => None,
        })
        .collect()
}

/// Texts `name` sent that never came back to it (unacknowledged).
pub fn unacknowledged(record: &Record, name: &str) -> Vec<String> {
    let log: &ClientLog = &record.clients[name];
    let back: BTreeSet<&str> = log
        .sessions
        .iter()
        .flat_map(live_messages)
        .map(|m| m.text.as_str())
        .collect();
    log.sent
        .iter()
        .filter(|(_, text)| !back.contains(text.as_str()))
        .map(|(_, text)| text.clone())
        .collect()
}

fn live_messages(session: &Session) -> impl Iterator<Item = &ChatMessage> {
    session.seen.iter().filter_map(|s| match &s.what {
        Received::Frame(ServerMessage::Message(m)) => Some(m),
        _ => None,
    })
}

/// The longest time between a message being sent and reaching a client, over every message
/// sent by anyone and every receiving client not in `except`; with the worst (sender, receiver).
pub fn max_delivery_delay(record: &Record, except: &[&str]) -> (Duration, String) {
    let mut sent_at: BTreeMap<&str, Duration> = BTreeMap::new();
    for log in record.clients.values() {
        for (at, text) in &log.sent {
            sent_at.insert(text, *at);
        }
    }
    let mut worst = (Duration::ZERO, String::new());
    for (name, log) in &record.clients {
        if except.contains(&name.as_str()) {
            continue;
        }
        for seen in log.sessions.iter().flat_map(|s| &s.seen) {
            if let Received::Frame(ServerMessage::Message(m)) = &seen.what {
                if let Some(&at) = sent_at.get(m.text.as_str()) {
                    let delay = seen.at.saturating_sub(at);
                    if delay > worst.0 {
                        worst = (delay, format!("{:?} to {name}", m.text));
                    }
                }
            }
        }
    }
    worst
}
