//! Spreading a wide fan-out's writes over more than one core.
//!
//! At the end of a turn the hub writes every parked writer's frames straight into its socket
//! (`Link::flush_direct`). For a message to a large room that is hundreds of `send`s, and on one
//! thread the last recipient waits for all the others' system calls (on loopback each also does
//! the receiver's TCP work). So the hub shares the list with helper threads: everyone takes the
//! next socket not yet taken, one at a time, until none is left. The frames are the same shared
//! `Bytes`, serialized once; the list is one allocation per wide fan-out.
//!
//! Taking from one list, rather than handing each helper a fixed share, matters on a busy
//! machine: a helper the OS has not run yet takes nothing, and the hub writes everything itself,
//! as fast as it would alone. With fixed shares the hub waited for a helper that was not
//! running, a scheduler slice or more (scenario 1's tail went from 3 to 10 ms on two shared
//! cores). The hub waits only for sockets a helper took and is still writing, a few `send`s.
//!
//! The hub then knows every write before it ends the turn, so the engine learns of the helpers'
//! writes as promptly as of its own. A report that came later (through the inbox, behind a
//! turn's worth of frames) left members looking behind while their sockets had taken
//! everything, and healthy members of a busy room were evicted (BENCHMARKS.md, "Fan-out").
//!
//! Helpers are plain OS threads: a direct write never waits (a socket that does not take all of
//! it goes to its connection's writer task), so they need no runtime. A link is flushed by one
//! party at a time: its lock covers the write.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chat_engine::ClientId;

use crate::link::Link;
use crate::ws_write::{Tally, SCRATCH_KEPT};

/// Below this many sockets to write, the hub writes them all itself: waking a helper costs more
/// than it saves.
pub(crate) const SPLIT_AT: usize = 32;

/// Sockets taken at a time: the shared counter is touched once per this many `send`s rather
/// than once per `send` (each touch moves its cache line between cores), and a helper stopped
/// by the OS in the middle holds up at most this many.
const TAKE: usize = 8;

/// How long the hub waits for a socket a helper took. A helper never waits on a socket, so this
/// only bounds a helper the OS stopped in the middle of one write (or one that died: a bug,
/// logged).
const TAKEN_WAIT: Duration = Duration::from_secs(5);

/// Sockets to write, and who they belong to.
pub(crate) type Links = Vec<(ClientId, Arc<Link>)>;

/// What was written, by client.
pub(crate) type Written = Vec<(ClientId, Tally)>;

/// One wide fan-out, shared by the hub and its helpers.
struct Shared {
    links: Links,
    /// The next socket nobody took yet.
    next: AtomicUsize,
    /// What the helpers wrote.
    helped: Mutex<Written>,
    /// Sockets the helpers finished (their writes are in `helped` by then).
    finished: AtomicUsize,
}

impl Shared {
    /// Writes sockets nobody took yet until none is left; how many this caller took, and what
    /// of theirs was written.
    fn take_and_write(&self, scratch: &mut Vec<u8>) -> (usize, Written) {
        let mut taken = 0;
        let mut written = Vec::new();
        loop {
            let from = self.next.fetch_add(TAKE, Ordering::Relaxed);
            let Some(some) = self.links.get(from..(from + TAKE).min(self.links.len())) else {
                return (taken, written);
            };
            taken += some.len();
            for (client, link) in some {
                let tally = link.flush_direct(scratch);
                if tally.frames > 0 {
                    written.push((*client, tally));
                }
            }
        }
    }
}

/// The helper threads (none: the hub writes everything itself). Dropping it closes their
/// channels, and each ends.
pub(crate) struct Fanout {
    helpers: Vec<mpsc::Sender<Arc<Shared>>>,
    /// Fan-outs shared with the helpers since the start.
    shared: u64,
}

impl Fanout {
    /// `threads` helper threads.
    pub(crate) fn new(threads: usize) -> Self {
        let helpers = (0..threads)
            .map(|n| {
                let (lists, received) = mpsc::channel::<Arc<Shared>>();
                // Detached: it ends by itself when this `Fanout` (its channel) is dropped.
                std::thread::Builder::new()
                    .name(format!("chat-fanout-{n}"))
                    .spawn(move || help(&received))
                    .expect("the OS starts a thread");
                lists
            })
            .collect();
        Self { helpers, shared: 0 }
    }

    /// Writes every link of `links`, leaving it empty (the last first when the hub writes them
    /// alone, keeping its storage), with the helpers when there are enough, and returns what
    /// was written. Every socket is written (or found with nothing to write) when it returns.
    pub(crate) fn write_all(&mut self, links: &mut Links, scratch: &mut Vec<u8>) -> Written {
        if self.helpers.is_empty() || links.len() < SPLIT_AT {
            let mut written = Vec::new();
            // A link closed since it was listed writes nothing: its writer owns it for the
            // close (`Link::hang_up`).
            while let Some((client, link)) = links.pop() {
                let tally = link.flush_direct(scratch);
                if tally.frames > 0 {
                    written.push((client, tally));
                }
            }
            return written;
        }
        let count = links.len();
        let shared = Arc::new(Shared {
            links: std::mem::take(links),
            next: AtomicUsize::new(0),
            helped: Mutex::new(Vec::new()),
            finished: AtomicUsize::new(0),
        });
        for helper in &self.helpers {
            // A helper that is gone (a bug, logged there) leaves more for the others.
            let _ = helper.send(shared.clone());
        }
        self.shared += 1;
        let (mine, mut written) = shared.take_and_write(scratch);
        let deadline = Instant::now() + TAKEN_WAIT;
        while mine + shared.finished.load(Ordering::Acquire) < count {
            if Instant::now() > deadline {
                tracing::error!("a fan-out helper did not finish the sockets it took");
                break;
            }
            // The rest is a `send` or two in progress on another core.
            std::thread::yield_now();
        }
        written.append(&mut shared.helped.lock().unwrap_or_else(PoisonError::into_inner));
        written
    }

    /// Fan-outs shared with the helpers since the start.
    #[cfg(test)]
    pub(crate) fn shared(&self) -> u64 {
        self.shared
    }
}

/// A helper's life: take and write sockets of each fan-out it is handed, report what it wrote,
/// wait for the next. One it is handed after the hub took everything costs it nothing.
fn help(received: &mpsc::Receiver<Arc<Shared>>) {
    let mut scratch = Vec::new();
    while let Ok(shared) = received.recv() {
        let (taken, written) = shared.take_and_write(&mut scratch);
        if taken > 0 {
            (shared.helped.lock().unwrap_or_else(PoisonError::into_inner)).extend(written);
            shared.finished.fetch_add(taken, Ordering::Release);
        }
        if scratch.capacity() > SCRATCH_KEPT {
            scratch = Vec::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::ws_write::WriterCmd;

    /// Links that each hold one queued frame and a socket that takes everything.
    fn loaded(count: usize) -> (Links, Vec<tokio::io::DuplexStream>) {
        loaded_where(count, |_| true)
    }

    /// As [`loaded`], with a frame queued only on the links `queued` picks (by index).
    fn loaded_where(
        count: usize,
        queued: impl Fn(usize) -> bool,
    ) -> (Links, Vec<tokio::io::DuplexStream>) {
        let mut engine =
            chat_engine::Engine::new(chat_engine::Config::default(), "test").expect("valid config");
        let now = chat_engine::Now::new(std::time::Instant::now(), std::time::SystemTime::now());
        let mut peers = Vec::new();
        let links = (0..count)
            .map(|at| {
                let (ours, peer) = tokio::io::duplex(1 << 12);
                peers.push(peer);
                let link = Arc::new(Link::new(
                    crate::sink::Sink::new(ours),
                    crate::link::LinkLimits::default(),
                ));
                if queued(at) {
                    assert!(link.push(WriterCmd::Text(Bytes::from_static(b"hi"))));
                }
                let id =
                    (engine.connect(now, chat_engine::JoinRequest::default())).expect("accepted");
                (id, link)
            })
            .collect();
        (links, peers)
    }

    /// Invariant: however the hub and the helpers divide a fan-out, every socket is written
    /// exactly once and reported exactly once, before `write_all` returns.
    #[test]
    fn every_socket_is_written_and_reported_once_whoever_takes_it() {
        for helpers in [0, 1, 3] {
            let mut fanout = Fanout::new(helpers);
            let mut scratch = Vec::new();
            for round in 0..20 {
                let count = [1, SPLIT_AT - 1, SPLIT_AT, 200][round % 4];
                let (links, _peers) = loaded(count);
                let mut listed = links.clone();
                let mut written = fanout.write_all(&mut listed, &mut scratch);
                assert!(listed.is_empty());
                written.sort_by_key(|(client, _)| *client);
                let expected: Vec<(ClientId, Tally)> = (links.iter())
                    .map(|(client, _)| {
                        (
                            *client,
                            Tally {
                                frames: 1,
                                bytes: 2,
                            },
                        )
                    })
                    .collect();
                assert_eq!(written, expected, "{helpers} helpers, {count} sockets");
                for (_, link) in &links {
                    let mut again = Vec::new();
                    assert_eq!(
                        link.flush_direct(&mut again),
                        Tally::default(),
                        "written twice"
                    );
                }
            }
        }
    }

    /// A fan-out of `SPLIT_AT` sockets is shared with the helpers; one of fewer the hub writes
    /// alone (a handoff costs more than a few writes).
    #[test]
    fn the_helpers_share_a_fan_out_from_split_at_sockets_on() {
        let mut fanout = Fanout::new(1);
        let mut scratch = Vec::new();
        for (count, shared) in [(SPLIT_AT - 1, 0), (SPLIT_AT, 1), (SPLIT_AT + 1, 2)] {
            let (mut links, _peers) = loaded(count);
            assert_eq!(fanout.write_all(&mut links, &mut scratch).len(), count);
            assert_eq!(fanout.shared(), shared, "{count} sockets");
        }
    }

    /// A socket with nothing queued (its writer took the frames first) is not reported: the
    /// engine would be told of a write of nothing.
    #[test]
    fn a_socket_with_nothing_to_write_is_not_reported() {
        for (helpers, count) in [(0, 5), (1, SPLIT_AT * 2)] {
            let mut fanout = Fanout::new(helpers);
            let (links, _peers) = loaded_where(count, |at| at % 2 == 0);
            let mut listed = links.clone();
            let written = fanout.write_all(&mut listed, &mut Vec::new());
            let mut reported: Vec<ClientId> = written.iter().map(|(client, _)| *client).collect();
            reported.sort();
            let expected: Vec<ClientId> = (links.iter().step_by(2))
                .map(|(client, _)| *client)
                .collect();
            assert_eq!(reported, expected, "{helpers} helpers");
        }
    }

    /// A helper takes what is left of each fan-out it is handed, writes it, and reports it in
    /// `helped` and `finished`, which the hub waits on.
    #[test]
    fn a_helper_writes_and_reports_what_it_takes() {
        let (links, _peers) = loaded(TAKE * 2 + 3);
        let count = links.len();
        let shared = Arc::new(Shared {
            links,
            next: AtomicUsize::new(0),
            helped: Mutex::new(Vec::new()),
            finished: AtomicUsize::new(0),
        });
        let (lists, received) = mpsc::channel();
        lists
            .send(shared.clone())
            .expect("the helper's channel is open");
        drop(lists);
        help(&received);
        assert_eq!(shared.finished.load(Ordering::Acquire), count);
        let helped = shared.helped.lock().expect("not poisoned");
        assert_eq!(helped.len(), count);
        assert!(helped.iter().all(|(_, tally)| tally.frames == 1));
    }
}
