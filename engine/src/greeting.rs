//! The welcome a client gets on every (re)join: its nick, the room's member count and first page
//! of names, its history, and whether its `since` was recovered. History is trimmed, oldest
//! first, so the welcome stays within half the client's high-water mark: a welcome never pauses
//! or evicts its joiner. A trimmed recovery is reported as not recovered.

use bytes::Bytes;
use serde_json::value::RawValue;

use crate::engine::Engine;
use crate::protocol::Outgoing;
use crate::room::Stored;
use crate::Now;

impl Engine {
    /// Sends the (re)join greeting to the client in `slot`, now a member of room `r`.
    pub(crate) fn welcome(
        &mut self,
        slot: usize,
        now: Now,
        r: usize,
        since: Option<u64>,
        epoch: Option<&str>,
    ) {
        self.fill_first_page(r);
        let frame = self.greeting(slot, r, since, epoch);
        self.send_to(slot, now, frame);
    }

    fn greeting(&self, slot: usize, r: usize, since: Option<u64>, epoch: Option<&str>) -> Bytes {
        let room = &self.rooms[r];
        let recovery = match (since, epoch) {
            (Some(since), Some(epoch)) if epoch == room.epoch => room.history_after(since),
            _ => None,
        };
        let mut recovered = recovery.is_some();
        let entries: Vec<&Stored> = match recovery {
            Some(missed) => missed.collect(),
            None => room.history.iter().collect(),
        };
        let history: Vec<&RawValue> = entries
            .iter()
            .map(|stored| {
                serde_json::from_slice(&stored.frame)
                    .expect("history holds only frames this engine serialized")
            })
            .collect();
        let users = &room.first_page.as_ref().expect("filled by welcome").json;
        let client = &self.clients[slot];
        let greeting = |history: &[&RawValue], recovered: bool| -> Bytes {
            Outgoing::Welcome {
                nick: &client.nick,
                room: &room.name,
                users,
                user_count: room.user_count(),
                history,
                recovered,
                seq: room.seq,
                epoch: &room.epoch,
            }
            .to_frame()
        };
        // Well inside the queue bounds: a welcome never makes its joiner behind (and paused) or
        // evicted, however long the history.
        let budget = (self.config.queue_high_water_bytes / 2).saturating_sub(client.queued_bytes);
        // Keep the newest messages that fit: the empty welcome, then each message's bytes and,
        // after the first, a comma. Counted with `recovered: false`, which trimming makes it (one
        // byte longer than `true`).
        let mut size = greeting(&[], false).len();
        let mut kept = 0;
        for raw in history.iter().rev() {
            let cost = raw.get().len() + usize::from(kept > 0);
            if size + cost > budget {
                break;
            }
            size += cost;
            kept += 1;
        }
        let skip = history.len() - kept;
        recovered &= skip == 0;
        greeting(&history[skip..], recovered)
    }
}
