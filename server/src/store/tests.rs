//! The store's behaviours, each test named after one. They run the real runner as a task (the
//! thread runner shares its loop), on real files in throwaway directories or on the in-memory
//! [`Disk`], and with tokio's clock paused where upkeep timers matter, so nothing here waits on
//! wall-clock time.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use chat_engine::protocol::ChatMessage;
use chat_engine::{ClientId, Config, Engine, JoinRequest, Now, OpId, ServerMessage};

use super::backend::Disk;
use super::schema::{self, DB_FILE, SYNC_FAILED_FILE};
use super::worker::SWEEP_EVERY;
use super::*;

/// A room's `message` frame exactly as the engine serializes it (`Engine::restore` checks).
fn frame(room: &str, seq: u64) -> Bytes {
    let message = ServerMessage::Message(ChatMessage {
        room: room.to_owned(),
        seq,
        nick: "alice".to_owned(),
        text: format!("message {seq}"),
        ts: "2026-01-01T00:00:00.000Z".to_owned(),
    });
    Bytes::from(serde_json::to_vec(&message).expect("a message serializes"))
}

fn seq_of(frame: &Bytes) -> u64 {
    match serde_json::from_slice(frame) {
        Ok(ServerMessage::Message(m)) => m.seq,
        other => panic!("not a message frame: {other:?}"),
    }
}

/// Hands out op ids in order, as the engine does.
struct Ops(u64);

impl Ops {
    fn new() -> Self {
        Self(0)
    }

    fn write(&mut self, room: &str, epoch: &str, seq: u64) -> Request {
        self.0 += 1;
        Request::Write {
            op: OpId::from_raw(self.0),
            room: room.to_owned(),
            epoch: epoch.to_owned(),
            seq,
            frame: frame(room, seq),
        }
    }

    fn last(&self) -> OpId {
        OpId::from_raw(self.0)
    }
}

/// A client id (only an engine mints them).
fn client() -> ClientId {
    let mut engine = Engine::new(Config::default(), "ids").expect("the default config is valid");
    let now = Now::new(Instant::now(), SystemTime::now());
    (engine.connect(now, JoinRequest::default())).expect("an empty engine takes a client")
}

fn fetch(client: ClientId, room: &str, before: u64, limit: usize) -> Request {
    Request::Fetch {
        client,
        room: room.to_owned(),
        before,
        limit,
    }
}

fn strict() -> StoreOptions {
    StoreOptions::default()
}

fn relaxed() -> StoreOptions {
    StoreOptions {
        durability: Durability::Relaxed,
        // Long enough that no test's writes are synced by the interval.
        sync_interval: Duration::from_secs(3600),
        ..StoreOptions::default()
    }
}

fn start(location: Location, options: StoreOptions, epoch: &str) -> (Opened, StoreHandle) {
    let (opened, store) = open(location, options, epoch).expect("the store opens");
    (opened, store.spawn_task())
}

fn open_err(location: Location) -> OpenError {
    open(location, strict(), "e9").expect_err("the open is refused")
}

async fn next(store: &mut StoreHandle) -> Report {
    store.recv().await.expect("the store is running")
}

/// Writes `seqs` of `room` as one batch and waits for its commit.
async fn commit(store: &mut StoreHandle, ops: &mut Ops, room: &str, epoch: &str, seqs: &[u64]) {
    for &seq in seqs {
        assert!(store.send(ops.write(room, epoch, seq)));
    }
    assert_eq!(
        next(store).await,
        Report::Committed {
            through: ops.last()
        }
    );
}

/// The seqs a fetch answers with, and its `complete`.
async fn page(store: &mut StoreHandle, room: &str, before: u64, limit: usize) -> (Vec<u64>, bool) {
    let asker = client();
    assert!(store.send(fetch(asker, room, before, limit)));
    match next(store).await {
        Report::Fetched {
            client,
            room: answered,
            messages,
            complete,
        } => {
            assert_eq!((client, answered.as_str()), (asker, room));
            (messages.iter().map(seq_of).collect(), complete)
        }
        other => panic!("expected Fetched, got {other:?}"),
    }
}

fn history_seqs(room: &RestoredRoom) -> Vec<u64> {
    room.history.iter().map(|(seq, _)| *seq).collect()
}

#[tokio::test]
async fn strict_write_then_reopen_keeps_epoch_seq_and_frames() {
    let dir = tempfile::tempdir().unwrap();
    let (opened, mut store) = start(Location::Dir(dir.path().into()), strict(), "e1");
    assert!(opened.rooms.is_empty() && !opened.rotated);
    let mut ops = Ops::new();
    commit(&mut store, &mut ops, "lobby", "e1-1", &[1, 2]).await;
    commit(&mut store, &mut ops, "lobby", "e1-1", &[3]).await;
    store.shutdown().await.unwrap();

    let (opened, store) = open(Location::Dir(dir.path().into()), strict(), "e2").unwrap();
    assert!(!opened.rotated);
    assert_eq!(opened.messages, 3);
    assert!(opened.bytes_on_disk > 0);
    assert_eq!(
        opened.rooms,
        [RestoredRoom {
            name: "lobby".to_owned(),
            epoch: "e1-1".to_owned(),
            seq: 3,
            history: (1..=3).map(|seq| (seq, frame("lobby", seq))).collect(),
        }]
    );
    Engine::restore(Config::default(), "e2", opened.rooms).expect("the engine takes them back");
    store.spawn_task().shutdown().await.unwrap();
}

#[tokio::test]
async fn group_commit_commits_a_waiting_batch_in_one_transaction() {
    let (_, store) = open(Disk::new().location(), strict(), "e1").unwrap();
    let mut store = store.spawn_task();
    let mut ops = Ops::new();
    // All queued before the runner task first runs: one batch.
    for seq in 1..=5 {
        assert!(store.send(ops.write("lobby", "e1-1", seq)));
    }
    assert!(store.send(ops.write("other", "e1-2", 1)));
    assert_eq!(
        next(&mut store).await,
        Report::Committed {
            through: OpId::from_raw(6)
        }
    );
    let stats = store.stats().clone();
    assert_eq!(StoreStats::get(&stats.commits), 1);
    assert_eq!(StoreStats::get(&stats.batch_last), 6);
    assert_eq!(StoreStats::get(&stats.messages_written), 6);
    assert_eq!(
        page(&mut store, "lobby", u64::MAX, 10).await,
        ((1..=5).collect(), true)
    );
    store.shutdown().await.unwrap();
}

#[tokio::test]
async fn retention_deletes_beyond_retention_messages() {
    let disk = Disk::new();
    let options = StoreOptions {
        retention_messages: 3,
        ..strict()
    };
    let (_, mut store) = start(disk.location(), options.clone(), "e1");
    let mut ops = Ops::new();
    commit(&mut store, &mut ops, "lobby", "e1-1", &[1, 2, 3, 4]).await;
    commit(&mut store, &mut ops, "lobby", "e1-1", &[5]).await;
    assert_eq!(
        page(&mut store, "lobby", 100, 10).await,
        (vec![3, 4, 5], true)
    );
    store.shutdown().await.unwrap();

    let (opened, _) = open(disk.location(), options, "e2").unwrap();
    assert_eq!(opened.messages, 3);
    assert_eq!(history_seqs(&opened.rooms[0]), [3, 4, 5]);
    assert_eq!(opened.rooms[0].seq, 5);
}

#[tokio::test]
async fn fetch_pages_back_to_the_first_message_complete_only_at_the_end() {
    let (_, mut store) = start(Disk::new().location(), strict(), "e1");
    let mut ops = Ops::new();
    commit(
        &mut store,
        &mut ops,
        "lobby",
        "e1-1",
        &(1..=9).collect::<Vec<_>>(),
    )
    .await;
    commit(&mut store, &mut ops, "other", "e1-2", &[1, 2]).await;
    let mut seen = Vec::new();
    let mut before = 10;
    loop {
        let (seqs, complete) = page(&mut store, "lobby", before, 3).await;
        assert!(seqs.len() <= 3);
        seen.splice(0..0, seqs.iter().copied());
        if complete {
            break;
        }
        assert_eq!(seqs.len(), 3, "an incomplete page is a full one");
        before = seqs[0];
    }
    // Nine messages in pages of three: the last page is full and still knows it is the end.
    assert_eq!(seen, (1..=9).collect::<Vec<_>>());
    assert_eq!(page(&mut store, "lobby", 1, 3).await, (vec![], true));
    assert_eq!(page(&mut store, "lobby", 5, 0).await, (vec![], false));
    assert_eq!(page(&mut store, "nowhere", 5, 3).await, (vec![], true));
    store.shutdown().await.unwrap();
}

#[tokio::test]
async fn fetch_in_a_batch_sees_the_writes_queued_before_it() {
    let (_, mut store) = start(Disk::new().location(), strict(), "e1");
    let mut ops = Ops::new();
    let asker = client();
    assert!(store.send(ops.write("lobby", "e1-1", 1)));
    assert!(store.send(fetch(asker, "lobby", 10, 10)));
    assert_eq!(
        next(&mut store).await,
        Report::Committed {
            through: ops.last()
        }
    );
    match next(&mut store).await {
        Report::Fetched { messages, .. } => assert_eq!(messages, [frame("lobby", 1)]),
        other => panic!("expected Fetched, got {other:?}"),
    }
    store.shutdown().await.unwrap();
}

#[tokio::test]
async fn strict_crash_loses_nothing_reported_committed_and_keeps_the_epoch() {
    let disk = Disk::new();
    let (_, mut store) = start(disk.location(), strict(), "e1");
    let mut ops = Ops::new();
    for seq in 1..=4 {
        commit(&mut store, &mut ops, "lobby", "e1-1", &[seq]).await;
    }
    disk.crash();
    // The old process is gone: its clean stop cannot be recorded.
    assert!(store.shutdown().await.is_err());

    let (opened, _) = open(disk.location(), strict(), "e2").unwrap();
    assert!(!opened.rotated);
    assert_eq!(opened.rooms.len(), 1);
    assert_eq!(opened.rooms[0].epoch, "e1-1");
    assert_eq!(opened.rooms[0].seq, 4);
    assert_eq!(history_seqs(&opened.rooms[0]), [1, 2, 3, 4]);
}

#[tokio::test]
async fn relaxed_unclean_stop_rotates_epochs_on_reopen_and_seqs_continue() {
    let disk = Disk::new();
    let (_, mut store) = start(disk.location(), strict(), "e1");
    let mut ops = Ops::new();
    commit(&mut store, &mut ops, "lobby", "e1-1", &[1]).await;
    commit(&mut store, &mut ops, "attic", "e1-2", &[1]).await;
    store.shutdown().await.unwrap();

    let (opened, mut store) = start(disk.location(), relaxed(), "e2");
    assert!(!opened.rotated);
    let syncs = disk.syncs();
    commit(&mut store, &mut ops, "lobby", "e1-1", &[2, 3]).await;
    assert_eq!(
        disk.syncs(),
        syncs,
        "a relaxed commit is reported before any sync"
    );
    disk.crash();
    drop(store);

    let (opened, _) = open(disk.location(), strict(), "e3").unwrap();
    assert!(opened.rotated);
    let rooms: Vec<(&str, &str, u64)> = (opened.rooms.iter())
        .map(|r| (r.name.as_str(), r.epoch.as_str(), r.seq))
        .collect();
    // The unsynced messages are gone, and with new epochs no client is told it recovered them.
    assert_eq!(rooms, [("lobby", "e3-r2", 1), ("attic", "e3-r1", 1)]);
    Engine::restore(Config::default(), "e3", opened.rooms).expect("the engine takes them back");
}

#[tokio::test]
async fn relaxed_clean_shutdown_syncs_and_keeps_epochs() {
    let disk = Disk::new();
    let (_, mut store) = start(disk.location(), relaxed(), "e1");
    let mut ops = Ops::new();
    commit(&mut store, &mut ops, "lobby", "e1-1", &[1, 2]).await;
    store.shutdown().await.unwrap();
    // What the clean stop wrote is durable: a power loss now changes nothing.
    disk.crash();

    let (opened, _) = open(disk.location(), relaxed(), "e2").unwrap();
    assert!(!opened.rotated);
    assert_eq!(opened.rooms[0].epoch, "e1-1");
    assert_eq!(history_seqs(&opened.rooms[0]), [1, 2]);
}

#[tokio::test]
async fn strict_unclean_stop_keeps_epochs() {
    let disk = Disk::new();
    let (_, mut store) = start(disk.location(), strict(), "e1");
    let mut ops = Ops::new();
    commit(&mut store, &mut ops, "lobby", "e1-1", &[1]).await;
    disk.crash();
    drop(store);
    let (opened, _) = open(disk.location(), strict(), "e2").unwrap();
    assert!(!opened.rotated);
    assert_eq!(opened.rooms[0].epoch, "e1-1");
}

/// A crash after synced commits, then an open: what the open found, and the room it restored.
async fn crash_and_reopen(options: StoreOptions) -> Opened {
    let disk = Disk::new();
    let (opened, mut store) = start(disk.location(), options.clone(), "e1");
    assert!(!opened.repaired, "a new store needs no repair");
    let mut ops = Ops::new();
    for seq in 1..=3 {
        commit(&mut store, &mut ops, "lobby", "e1-1", &[seq]).await;
    }
    disk.crash();
    drop(store);
    let (opened, _) = open(disk.location(), options, "e2").unwrap();
    assert_eq!(history_seqs(&opened.rooms[0]), [1, 2, 3]);
    assert!(!opened.rotated);
    opened
}

/// Strict, with no quiet checkpoint: only the commits' own records count.
fn no_checkpoint() -> StoreOptions {
    StoreOptions {
        quiet_checkpoint: None,
        ..strict()
    }
}

#[tokio::test]
async fn a_crash_is_repaired_by_a_full_walk_without_quick_repair() {
    assert!(crash_and_reopen(no_checkpoint()).await.repaired);
}

/// A store left quiet for `quiet_checkpoint` records the allocator state in one commit of its
/// own, so a crash after that needs no repair; a write after it makes one needed again.
#[tokio::test(start_paused = true)]
async fn a_crash_after_a_quiet_while_needs_no_repair() {
    let disk = Disk::new();
    let (_, mut store) = start(disk.location(), strict(), "e1");
    let mut ops = Ops::new();
    commit(&mut store, &mut ops, "lobby", "e1-1", &[1, 2]).await;
    let commits = StoreStats::get(&store.stats().commits);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        StoreStats::get(&store.stats().commits),
        commits + 1,
        "one checkpoint, and only one, however long it stays quiet"
    );
    disk.crash();
    drop(store);
    let (opened, mut store) = start(disk.location(), strict(), "e2");
    assert!(!opened.repaired);
    assert_eq!(history_seqs(&opened.rooms[0]), [1, 2]);

    // The open's commit records nothing; within the quiet while a crash needs the walk again.
    commit(&mut store, &mut ops, "lobby", "e1-1", &[3]).await;
    disk.crash();
    drop(store);
    let (opened, _) = open(disk.location(), strict(), "e3").unwrap();
    assert!(opened.repaired);
    assert_eq!(history_seqs(&opened.rooms[0]), [1, 2, 3]);
}

#[tokio::test]
async fn quick_repair_reopens_after_a_crash_without_a_full_walk() {
    let options = StoreOptions {
        quick_repair: true,
        ..no_checkpoint()
    };
    assert!(!crash_and_reopen(options).await.repaired);
}

#[tokio::test]
async fn a_clean_stop_needs_no_repair() {
    let disk = Disk::new();
    let (_, mut store) = start(disk.location(), strict(), "e1");
    let mut ops = Ops::new();
    commit(&mut store, &mut ops, "lobby", "e1-1", &[1]).await;
    store.shutdown().await.unwrap();
    let (opened, _) = open(disk.location(), strict(), "e2").unwrap();
    assert!(!opened.repaired);
}

#[tokio::test(start_paused = true)]
async fn full_disk_fails_the_batch_and_the_probe_finds_it_healthy_again() {
    let disk = Disk::new();
    let (_, mut store) = start(disk.location(), strict(), "e1");
    let mut ops = Ops::new();
    commit(&mut store, &mut ops, "lobby", "e1-1", &[1]).await;

    disk.set_full(true);
    assert!(store.send(ops.write("lobby", "e1-1", 2)));
    match next(&mut store).await {
        Report::Failed { from, through, .. } => {
            assert_eq!((from, through), (ops.last(), ops.last()));
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    assert_eq!(next(&mut store).await, Report::Healthy(false));
    assert!(StoreStats::get(&store.stats().write_errors) >= 1);
    // The hub dropped op 2 with everything held; from here on, writes are new.
    assert!(store.send(Request::Resume));
    // Reads still answer, from the last good state.
    assert_eq!(page(&mut store, "lobby", 10, 10).await, (vec![1], true));

    disk.set_full(false);
    // Idle and unhealthy: the probe (on tokio's paused clock) finds the disk working.
    assert_eq!(next(&mut store).await, Report::Healthy(true));
    commit(&mut store, &mut ops, "lobby", "e1-1", &[2]).await;
    assert_eq!(page(&mut store, "lobby", 10, 10).await, (vec![1, 2], true));
    store.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn full_disk_retried_by_a_new_batch_recovers_without_waiting_for_the_probe() {
    let disk = Disk::new();
    let (_, mut store) = start(disk.location(), strict(), "e1");
    let mut ops = Ops::new();
    disk.set_full(true);
    assert!(store.send(ops.write("lobby", "e1-1", 1)));
    assert!(matches!(next(&mut store).await, Report::Failed { .. }));
    assert_eq!(next(&mut store).await, Report::Healthy(false));
    disk.set_full(false);
    assert!(store.send(Request::Resume));
    assert!(store.send(ops.write("lobby", "e1-1", 1)));
    assert_eq!(
        next(&mut store).await,
        Report::Committed {
            through: ops.last()
        }
    );
    assert_eq!(next(&mut store).await, Report::Healthy(true));
    store.shutdown().await.unwrap();
}

#[tokio::test]
async fn failed_sync_reports_sync_failed_and_stops() {
    let disk = Disk::new();
    let (_, mut store) = start(disk.location(), strict(), "e1");
    let mut ops = Ops::new();
    disk.set_sync_broken(true);
    assert!(store.send(ops.write("lobby", "e1-1", 1)));
    assert!(matches!(next(&mut store).await, Report::Failed { .. }));
    assert!(matches!(next(&mut store).await, Report::SyncFailed(_)));
    assert_eq!(store.recv().await, None, "the store has stopped");
    assert!(!store.send(ops.write("lobby", "e1-1", 1)));
    assert!(store.shutdown().await.is_err());
}

#[tokio::test]
async fn sync_failed_marker_rotates_epochs_once_and_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let (_, mut store) = start(Location::Dir(dir.path().into()), strict(), "e1");
    let mut ops = Ops::new();
    commit(&mut store, &mut ops, "lobby", "e1-1", &[1]).await;
    store.shutdown().await.unwrap();
    let marker = dir.path().join(SYNC_FAILED_FILE);
    std::fs::write(&marker, "input/output error\n").unwrap();

    let (opened, store) = open(Location::Dir(dir.path().into()), strict(), "e2").unwrap();
    assert!(opened.rotated);
    assert_eq!(opened.rooms[0].epoch, "e2-r1");
    assert_eq!(opened.rooms[0].seq, 1);
    assert!(!marker.exists());
    store.spawn_task().shutdown().await.unwrap();

    let (opened, _) = open(Location::Dir(dir.path().into()), strict(), "e3").unwrap();
    assert!(!opened.rotated);
    assert_eq!(opened.rooms[0].epoch, "e2-r1");
}

#[tokio::test(start_paused = true)]
async fn retention_age_sweep_deletes_old_messages() {
    let options = StoreOptions {
        retention_age: Some(Duration::from_secs(60)),
        wall_clock: crate::settings::WallClock::Anchored(SystemTime::UNIX_EPOCH),
        ..strict()
    };
    let (_, mut store) = start(Disk::new().location(), options, "e1");
    let mut ops = Ops::new();
    commit(&mut store, &mut ops, "lobby", "e1-1", &[1, 2]).await;
    commit(&mut store, &mut ops, "attic", "e1-2", &[1]).await;
    tokio::time::sleep(Duration::from_secs(61)).await;
    commit(&mut store, &mut ops, "lobby", "e1-1", &[3]).await;
    tokio::time::sleep(SWEEP_EVERY * 2).await;
    assert_eq!(page(&mut store, "lobby", 10, 10).await, (vec![3], true));
    assert_eq!(page(&mut store, "attic", 10, 10).await, (vec![], true));
    store.shutdown().await.unwrap();
}

#[tokio::test]
async fn open_hands_back_every_room_least_recent_first_with_history_only_for_the_newest() {
    let disk = Disk::new();
    let (_, mut store) = start(disk.location(), strict(), "e1");
    let mut ops = Ops::new();
    for (n, room) in ["a", "b", "c", "d"].iter().enumerate() {
        commit(
            &mut store,
            &mut ops,
            room,
            &format!("e1-{}", n + 1),
            &[1, 2, 3],
        )
        .await;
    }
    commit(&mut store, &mut ops, "b", "e1-2", &[4]).await;
    store.shutdown().await.unwrap();

    let options = StoreOptions {
        history_max: 2,
        rooms_max: 2,
        ..strict()
    };
    let (opened, _) = open(disk.location(), options, "e2").unwrap();
    let rooms: Vec<(&str, u64, Vec<u64>)> = (opened.rooms.iter())
        .map(|r| (r.name.as_str(), r.seq, history_seqs(r)))
        .collect();
    assert_eq!(
        rooms,
        [
            ("a", 3, vec![]),
            ("c", 3, vec![]),
            ("d", 3, vec![2, 3]),
            ("b", 4, vec![3, 4]),
        ]
    );
    Engine::restore(Config::default(), "e2", opened.rooms).expect("the engine takes them back");
}

/// Rooms' tails are read on several threads: each room still gets its own frames, in order,
/// and the rooms keep their least-recent-first order across the threads' shares.
#[tokio::test]
async fn every_room_gets_its_own_tail_however_the_reading_is_shared() {
    let disk = Disk::new();
    let (_, mut store) = start(disk.location(), strict(), "e1");
    let mut ops = Ops::new();
    let names: Vec<String> = (0..37).map(|n| format!("room-{n:02}")).collect();
    for (n, room) in names.iter().enumerate() {
        let seqs: Vec<u64> = (1..=(n as u64 % 5 + 1)).collect();
        commit(&mut store, &mut ops, room, &format!("e1-{n}"), &seqs).await;
    }
    store.shutdown().await.unwrap();

    let options = StoreOptions {
        history_max: 3,
        ..strict()
    };
    let (opened, _) = open(disk.location(), options, "e2").unwrap();
    assert_eq!(
        (opened.rooms.iter()).map(|r| &r.name).collect::<Vec<_>>(),
        names.iter().collect::<Vec<_>>()
    );
    for (n, room) in opened.rooms.iter().enumerate() {
        let last = n as u64 % 5 + 1;
        let want: Vec<(u64, Bytes)> = (last.saturating_sub(2).max(1)..=last)
            .map(|seq| (seq, frame(&room.name, seq)))
            .collect();
        assert_eq!(room.history, want, "{}", room.name);
    }
    Engine::restore(Config::default(), "e2", opened.rooms).expect("the engine takes them back");
}

/// Tail loads (rooms woken after a start that read no history) are answered after the batch's
/// writes, in the order asked, each with its room's newest messages up to the seq it named; a
/// batch of many is read in parallel and still answered in order.
#[tokio::test]
async fn tail_loads_see_the_writes_before_them_and_come_back_in_order() {
    let (_, mut store) = start(Disk::new().location(), strict(), "e1");
    let mut ops = Ops::new();
    let names: Vec<String> = (0..40).map(|n| format!("room-{n:02}")).collect();
    for (n, room) in names.iter().enumerate() {
        let seqs: Vec<u64> = (1..=(n as u64 % 6 + 1)).collect();
        commit(&mut store, &mut ops, room, "e1-1", &seqs).await;
    }
    // One more write, in the same batch as the loads: they must see it.
    assert!(store.send(ops.write("room-00", "e1-1", 2)));
    for (n, room) in names.iter().enumerate() {
        let seq = if n == 0 { 2 } else { n as u64 % 6 + 1 };
        let load = Request::LoadTail {
            room: room.clone(),
            seq,
            limit: 4,
        };
        assert!(store.send(load));
    }
    assert_eq!(
        next(&mut store).await,
        Report::Committed {
            through: ops.last()
        }
    );
    for (n, room) in names.iter().enumerate() {
        let last = if n == 0 { 2 } else { n as u64 % 6 + 1 };
        let want: Vec<(u64, Bytes)> = (last.saturating_sub(3).max(1)..=last)
            .map(|seq| (seq, frame(room, seq)))
            .collect();
        let got = next(&mut store).await;
        assert_eq!(
            got,
            Report::TailLoaded {
                room: room.clone(),
                messages: want
            }
        );
    }
    // A room the store has nothing of loads empty.
    let load = Request::LoadTail {
        room: "nowhere".to_owned(),
        seq: 5,
        limit: 4,
    };
    assert!(store.send(load));
    let empty = Report::TailLoaded {
        room: "nowhere".to_owned(),
        messages: Vec::new(),
    };
    assert_eq!(next(&mut store).await, empty);
    store.shutdown().await.unwrap();
}

/// With `rooms_max` 0 at open, no room comes back with history: a start that reads none.
#[tokio::test]
async fn an_open_that_preloads_no_room_reads_no_history() {
    let disk = Disk::new();
    let (_, mut store) = start(disk.location(), strict(), "e1");
    let mut ops = Ops::new();
    commit(&mut store, &mut ops, "lobby", "e1-1", &[1, 2, 3]).await;
    store.shutdown().await.unwrap();
    let options = StoreOptions {
        rooms_max: 0,
        ..strict()
    };
    let (opened, _) = open(disk.location(), options, "e2").unwrap();
    let [room] = &opened.rooms[..] else {
        panic!("one room, got {:?}", opened.rooms)
    };
    assert_eq!((room.seq, room.history.len()), (3, 0));
}

#[tokio::test]
async fn a_recreated_room_drops_the_old_epochs_messages() {
    let (_, mut store) = start(Disk::new().location(), strict(), "e1");
    let mut ops = Ops::new();
    commit(&mut store, &mut ops, "lobby", "e1-1", &[1, 2, 3]).await;
    commit(&mut store, &mut ops, "lobby", "e1-7", &[1]).await;
    assert_eq!(page(&mut store, "lobby", 10, 10).await, (vec![1], true));
    store.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_seq_written_again_replaces_what_followed_it() {
    let disk = Disk::new();
    let (_, mut store) = start(disk.location(), strict(), "e1");
    let mut ops = Ops::new();
    commit(&mut store, &mut ops, "lobby", "e1-1", &[1, 2, 3]).await;
    commit(&mut store, &mut ops, "lobby", "e1-1", &[2]).await;
    assert_eq!(page(&mut store, "lobby", 10, 10).await, (vec![1, 2], true));
    store.shutdown().await.unwrap();
    let (opened, _) = open(disk.location(), strict(), "e2").unwrap();
    assert_eq!(
        (opened.rooms[0].seq, history_seqs(&opened.rooms[0])),
        (2, vec![1, 2])
    );
}

#[test]
fn a_corrupt_file_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(DB_FILE);
    std::fs::write(&file, vec![0xA5; 64 << 10]).unwrap();
    let e = open_err(Location::Dir(dir.path().into()));
    assert!(matches!(e, OpenError::Corrupt { .. }), "{e:?}");
    let said = e.to_string();
    assert!(said.contains(&file.display().to_string()), "{said}");
    // Never silently started over: the bytes are still there.
    assert_eq!(std::fs::read(&file).unwrap(), vec![0xA5; 64 << 10]);
}

#[test]
fn a_damaged_database_is_refused() {
    let disk = Disk::new();
    let (_, store) = open(disk.location(), strict(), "e1").unwrap();
    drop(store);
    // The header's magic number.
    disk.edit(|bytes| bytes[..9].fill(0));
    let e = open_err(disk.location());
    assert!(matches!(e, OpenError::Corrupt { .. }), "{e:?}");
    assert!(e.to_string().contains("in-memory disk"));
}

#[test]
fn a_second_open_of_a_running_store_is_refused_as_locked() {
    let dir = tempfile::tempdir().unwrap();
    let (_, first) = open(Location::Dir(dir.path().into()), strict(), "e1").unwrap();
    let e = open_err(Location::Dir(dir.path().into()));
    assert!(matches!(e, OpenError::Locked { .. }), "{e:?}");
    let said = e.to_string();
    assert!(
        said.contains(DB_FILE) && said.contains("another running server"),
        "{said}"
    );
    drop(first);
    open(Location::Dir(dir.path().into()), strict(), "e2").expect("free once the first closed");
}

#[test]
fn an_unusable_directory_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file");
    std::fs::write(&file, "").unwrap();
    let e = open_err(Location::Dir(file.join("data")));
    assert!(matches!(e, OpenError::Dir { .. }), "{e:?}");
    assert!(e.to_string().contains("plain-file"));
}

#[test]
fn a_missing_directory_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("chat-data");
    open(Location::Dir(data.clone()), strict(), "e1").unwrap();
    assert!(Path::new(&data).join(DB_FILE).exists());
}

#[test]
fn an_unknown_schema_version_is_refused() {
    let disk = Disk::new();
    drop(open(disk.location(), strict(), "e1").unwrap());
    let db = redb::Database::builder()
        .create_with_backend(disk.backend())
        .unwrap();
    let txn = db.begin_write().unwrap();
    (txn.open_table(schema::META).unwrap())
        .insert(schema::key::SCHEMA_VERSION, 99)
        .unwrap();
    txn.commit().unwrap();
    drop(db);
    let e = open_err(disk.location());
    assert!(matches!(e, OpenError::Schema { .. }), "{e:?}");
    assert!(e.to_string().contains("schema version 99"), "{e}");
}

#[test]
fn a_database_of_other_tables_is_refused() {
    let disk = Disk::new();
    let db = redb::Database::builder()
        .create_with_backend(disk.backend())
        .unwrap();
    let txn = db.begin_write().unwrap();
    let other: redb::TableDefinition<u64, u64> = redb::TableDefinition::new("other");
    txn.open_table(other).unwrap().insert(1, 1).unwrap();
    txn.commit().unwrap();
    drop(db);
    let e = open_err(disk.location());
    assert!(matches!(e, OpenError::Schema { .. }), "{e:?}");
}

#[test]
fn the_thread_runner_commits_and_stops_cleanly() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let disk = Disk::new();
    let (_, store) = open(disk.location(), strict(), "e1").unwrap();
    let mut store = store.spawn_thread().unwrap();
    let mut ops = Ops::new();
    runtime.block_on(async {
        commit(&mut store, &mut ops, "lobby", "e1-1", &[1]).await;
        store.shutdown().await.unwrap();
    });
    let (opened, _) = open(disk.location(), strict(), "e2").unwrap();
    assert_eq!(opened.rooms[0].seq, 1);
}

/// After a failed write, the store refuses every write until the hub's `Resume` (the engine
/// dropped them all with the failed one, so none may be stored), and writes the ones after it.
#[tokio::test(start_paused = true)]
async fn after_a_failure_writes_are_refused_unwritten_until_resume() {
    let disk = Disk::new();
    let (_, mut store) = start(disk.location(), strict(), "e1");
    let mut ops = Ops::new();
    disk.set_full(true);
    assert!(store.send(ops.write("lobby", "e1-1", 1)));
    assert!(matches!(next(&mut store).await, Report::Failed { .. }));
    assert_eq!(next(&mut store).await, Report::Healthy(false));
    disk.set_full(false);
    // Sent before the hub heard of the failure: the engine dropped it.
    assert!(store.send(ops.write("lobby", "e1-1", 2)));
    let dropped = ops.last();
    match next(&mut store).await {
        Report::Failed { from, through, .. } => assert_eq!((from, through), (dropped, dropped)),
        other => panic!("expected the dropped write refused, got {other:?}"),
    }
    assert!(store.send(Request::Resume));
    commit(&mut store, &mut ops, "lobby", "e1-1", &[1]).await;
    assert_eq!(next(&mut store).await, Report::Healthy(true));
    assert_eq!(
        page(&mut store, "lobby", 10, 10).await,
        (vec![1], true),
        "op 2's seq never stored"
    );
    store.shutdown().await.unwrap();
}
