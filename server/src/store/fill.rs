//! Fills a data directory with many rooms of stored messages, through the store's own write
//! path, for the restart benchmark (`examples/fill_store.rs`, BENCHMARKS.md).

use std::io;
use std::path::Path;

use bytes::Bytes;
use chat_engine::OpId;

use super::{open, Durability, Location, Report, Request, StoreOptions};

/// Messages per write batch (one transaction each).
const BATCH: u64 = 20_000;

/// Writes `rooms` rooms (`room-0`, `room-1`, ...) of `per_room` messages each, room after room,
/// with epoch `{epoch}-{n}`, into the store in `dir`, and closes it cleanly.
pub async fn fill_store(dir: &Path, rooms: usize, per_room: u64, epoch: &str) -> io::Result<()> {
    let options = StoreOptions {
        durability: Durability::Strict,
        retention_messages: per_room,
        ..StoreOptions::default()
    };
    let (_, store) = open(Location::Dir(dir.to_owned()), options, epoch)
        .map_err(|e| io::Error::other(e.to_string()))?;
    let mut handle = store.spawn_task();
    let mut op = 0;
    let mut pending = 0;
    for r in 0..rooms {
        let room = format!("room-{r}");
        let room_epoch = format!("{epoch}-{}", r + 1);
        for seq in 1..=per_room {
            op += 1;
            let frame = format!(
                r#"{{"type":"message","room":"{room}","seq":{seq},"nick":"filler","text":"message {seq} of {room}","ts":"2026-12-01T00:00:00.000Z"}}"#
            );
            let write = Request::Write {
                op: OpId::from_raw(op),
                room: room.clone(),
                epoch: room_epoch.clone(),
                seq,
                frame: Bytes::from(frame),
            };
            if !handle.send(write) {
                return Err(io::Error::other("the store stopped"));
            }
            pending += 1;
            if pending == BATCH {
                wait_committed(&mut handle, op).await?;
                pending = 0;
            }
        }
    }
    if pending > 0 {
        wait_committed(&mut handle, op).await?;
    }
    handle.shutdown().await.map_err(io::Error::other)
}

async fn wait_committed(handle: &mut super::StoreHandle, op: u64) -> io::Result<()> {
    loop {
        match handle.reports.recv().await {
            Some(Report::Committed { through }) if through.get() >= op => return Ok(()),
            Some(Report::Failed { error, .. } | Report::SyncFailed(error)) => {
                return Err(io::Error::other(error))
            }
            Some(_) => {}
            None => return Err(io::Error::other("the store stopped")),
        }
    }
}
