//! A crash with the message store on (strict durability, a simulated disk): the server host dies
//! mid-burst, losing every write not yet synced, and comes back on the same disk. Everything any
//! sender was acknowledged is still there, exactly once and in order, under the same epoch, and
//! clients that reconnect asking to resume are told they recovered.
//!
//! Invariants, besides the global checker's (no gaps, one content per seq, acknowledged messages
//! reach everyone who stayed):
//! - every message acknowledged to its sender before the crash is in the store afterwards exactly
//!   once, at the seq it was acknowledged with (an auditor pages the whole room back with
//!   `history`);
//! - the store holds nothing twice and no gaps: its seqs are 1..=n in order;
//! - every room keeps its epoch across the crash, and every resume after it is `recovered`.
//!
//! The seed also picks how many rooms the restart reads before it serves (`--preload-rooms` 0,
//! 1 or 2): the others wake from the store when their first member comes back, and must recover
//! all the same.

use std::collections::BTreeMap;
use std::time::Duration;

use chat_engine::protocol::Command;
use chat_engine::ServerMessage;
use chat_sim::checker::assert_invariants;
use chat_sim::trace::{now, Received};
use chat_sim::{
    add_server, builder, join, limits, seeds, sleep_until, Client, ServerSpec, Trace, SERVER,
};
use rand::Rng;

const CLIENTS: usize = 6;
const ROOMS: [&str; 2] = ["even", "odd"];
const CRASH_AT: Duration = Duration::from_millis(2_500);
const DOWNTIME: Duration = Duration::from_millis(700);
const ACT_UNTIL: Duration = Duration::from_secs(6);
const SNAPSHOT_AT: Duration = Duration::from_secs(8);
const AUDIT_AT: Duration = Duration::from_secs(9);
const CLOSE_AT: Duration = Duration::from_secs(12);

fn name(i: usize) -> String {
    format!("user{i}")
}

/// Chats in bursts, and whenever the connection is gone, reconnects asking to resume.
async fn resilient(c: &mut Client) {
    while now() < ACT_UNTIL {
        if !c.is_open() {
            let backoff = Duration::from_millis(c.rng().random_range(50..250));
            tokio::time::sleep(backoff).await;
            let resume = c.resume_request();
            c.connect(resume).await;
            continue;
        }
        let ms = c.rng().random_range(20..120);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        c.say();
    }
}

/// Pages `room` back to its first message with `history`, a full page (100) at a time: within
/// the membership burst (history pages are metered like joins).
async fn audit(c: &mut Client, room: &str) {
    assert!(
        c.connect(join(room, &format!("auditor-{room}"))).await,
        "the auditor joins {room}"
    );
    let mut before = None;
    loop {
        let pages = page_count(c);
        c.send(&Command::History {
            before,
            limit: Some(100),
        });
        let deadline = now() + Duration::from_secs(2);
        while page_count(c) == pages && now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if page_count(c) == pages {
            let trace = c.trace().clone();
            let record = trace.lock();
            let seen: Vec<_> = (record.clients[c.name()].sessions.iter())
                .flat_map(|s| s.seen.iter().map(|x| format!("{:?}", x.what)))
                .collect();
            let last = &seen[seen.len().saturating_sub(2)..];
            panic!("{room}: no answer to history (before {before:?}); last seen {last:?}");
        }
        let Some((oldest, complete)) = last_page(c) else {
            panic!("no history page for {room}");
        };
        if complete {
            break;
        }
        before = Some(oldest.expect("an incomplete page has messages"));
    }
}

fn pages_of(c: &Client) -> Vec<(Option<u64>, bool)> {
    let trace = c.trace();
    let record = trace.lock();
    (record.clients[c.name()].sessions.iter())
        .flat_map(|s| s.seen.iter())
        .filter_map(|seen| match &seen.what {
            Received::Frame(ServerMessage::History {
                messages, complete, ..
            }) => Some((messages.first().map(|m| m.seq), *complete)),
            _ => None,
        })
        .collect()
}

fn page_count(c: &Client) -> usize {
    pages_of(c).len()
}

fn last_page(c: &Client) -> Option<(Option<u64>, bool)> {
    pages_of(c).last().copied()
}

fn crash(seed: u64) {
    let mut sim = builder(seed).build();
    let disk = chat_server::Disk::new();
    let spec = ServerSpec {
        disk: Some(disk.clone()),
        preload_rooms: (seed % 3) as usize,
        ..ServerSpec::default()
    };
    let starts = add_server(&mut sim, spec.clone());
    let trace = Trace::new();
    for i in 0..CLIENTS {
        let trace = trace.clone();
        sim.client(name(i), async move {
            let name = name(i);
            let mut c = Client::new(&trace, &name, seed);
            c.must_join(ROOMS[i % 2], &name).await;
            resilient(&mut c).await;
            c.snapshot_then_close(SNAPSHOT_AT, CLOSE_AT).await;
            Ok(())
        });
    }
    for room in ROOMS {
        let trace = trace.clone();
        sim.client(format!("auditor-{room}"), async move {
            let mut c = Client::new(&trace, &format!("auditor-{room}"), seed);
            sleep_until(AUDIT_AT).await;
            audit(&mut c, room).await;
            c.close().await;
            Ok(())
        });
    }
    let (mut down, mut up) = (false, false);
    while chat_sim::step(&mut sim) {
        let elapsed = sim.elapsed();
        if !down && elapsed >= CRASH_AT {
            // The power goes: what was not synced is gone, and so is the process.
            disk.crash();
            sim.crash(SERVER);
            down = true;
        }
        if down && !up && elapsed >= CRASH_AT + DOWNTIME {
            sim.bounce(SERVER);
            up = true;
        }
    }
    assert_eq!(
        starts.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "one restart"
    );
    assert_invariants(&trace, limits(&spec));

    let record = trace.lock();
    // What each sender was acknowledged: its own copy came back, with this seq.
    let mut acked: BTreeMap<(String, u64), String> = BTreeMap::new();
    let mut epochs: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for i in 0..CLIENTS {
        let name = name(i);
        let log = &record.clients[&name];
        let sent: std::collections::BTreeSet<&str> =
            log.sent.iter().map(|(_, text)| text.as_str()).collect();
        for session in &log.sessions {
            for seen in &session.seen {
                match &seen.what {
                    Received::Frame(ServerMessage::Message(m))
                        if sent.contains(m.text.as_str()) =>
                    {
                        acked.insert((m.room.clone(), m.seq), m.text.clone());
                    }
                    Received::Frame(ServerMessage::Welcome {
                        room,
                        epoch,
                        recovered,
                        ..
                    }) => {
                        epochs.entry(room.clone()).or_default().push(epoch.clone());
                        if session.request.since.is_some() {
                            assert!(
                                recovered,
                                "{name} resumed {room} after the crash unrecovered"
                            );
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    for (room, seen) in &epochs {
        assert!(
            seen.windows(2).all(|w| w[0] == w[1]),
            "{room} changed epoch across the crash: {seen:?}"
        );
    }
    let before_crash = acked.len();
    assert!(before_crash > 0, "nothing was acknowledged");
    for room in ROOMS {
        let auditor = &record.clients[&format!("auditor-{room}")];
        let mut stored: Vec<(u64, String)> = Vec::new();
        for seen in auditor.sessions.iter().flat_map(|s| s.seen.iter()) {
            if let Received::Frame(ServerMessage::History { messages, .. }) = &seen.what {
                // Pages come newest first, each oldest first: put them back in order.
                let page: Vec<(u64, String)> =
                    messages.iter().map(|m| (m.seq, m.text.clone())).collect();
                stored.splice(0..0, page);
            }
        }
        let seqs: Vec<u64> = stored.iter().map(|(seq, _)| *seq).collect();
        let want: Vec<u64> = (1..=seqs.len() as u64).collect();
        assert_eq!(
            seqs, want,
            "{room}: the store holds 1..=n once each, in order"
        );
        for ((r, seq), text) in &acked {
            if r == room {
                assert_eq!(
                    stored.get(*seq as usize - 1).map(|(_, t)| t),
                    Some(text),
                    "{room} seq {seq}, acknowledged as {text:?}, is not in the store as such"
                );
            }
        }
    }
}

#[test]
fn a_crash_with_the_store_on_loses_nothing_acknowledged() {
    seeds::run(
        "a_crash_with_the_store_on_loses_nothing_acknowledged",
        crash,
    );
}
