//! A room: its members, the nickname index, the sequence counter and the history ring.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;

/// One message kept for history: its `seq` and its frame exactly as broadcast.
#[derive(Clone, Debug)]
pub(crate) struct Stored {
    pub(crate) seq: u64,
    pub(crate) frame: Bytes,
}

#[derive(Debug)]
pub(crate) struct Room {
    pub(crate) name: String,
    /// Server epoch plus this room's incarnation, so a recreated room never honours old `since`s.
    pub(crate) epoch: String,
    /// Last `seq` handed out; the next message gets `seq + 1`.
    pub(crate) seq: u64,
    pub(crate) history: VecDeque<Stored>,
    /// Client slots in join order.
    pub(crate) members: Vec<usize>,
    /// Lower-cased nickname to client slot: uniqueness ignoring case.
    pub(crate) nicks: BTreeMap<String, usize>,
    /// Members whose queue is at or above the high-water mark.
    pub(crate) behind: usize,
    /// Reading from members is paused (flow control).
    pub(crate) paused: bool,
    /// Monotonic order of last activity, used to pick which empty room to forget first.
    pub(crate) last_active: u64,
}

impl Room {
    pub(crate) fn new(name: String, epoch: String, last_active: u64) -> Self {
        Self {
            name,
            epoch,
            seq: 0,
            history: VecDeque::new(),
            members: Vec::new(),
            nicks: BTreeMap::new(),
            behind: 0,
            paused: false,
            last_active,
        }
    }

    /// Appends a message to the ring, dropping the oldest beyond `history_max`.
    pub(crate) fn remember(&mut self, stored: Stored, history_max: usize) {
        if history_max == 0 {
            return;
        }
        while self.history.len() >= history_max {
            self.history.pop_front();
        }
        self.history.push_back(stored);
    }

    /// Messages after `since`, if the ring still holds every one of them.
    pub(crate) fn history_after(&self, since: u64) -> Option<impl Iterator<Item = &Stored>> {
        if since > self.seq {
            return None;
        }
        let first_missing = since + 1;
        let oldest = self.history.front().map_or(self.seq + 1, |s| s.seq);
        if first_missing < oldest {
            return None;
        }
        Some(self.history.iter().filter(move |s| s.seq > since))
    }

    /// Flow control: pause when more than half the members are behind.
    pub(crate) fn should_pause(&self) -> bool {
        !self.paused && self.behind * 2 > self.members.len()
    }

    /// Flow control: resume once at most a quarter of the members are behind.
    pub(crate) fn should_resume(&self) -> bool {
        self.paused && self.behind * 4 <= self.members.len()
    }
}
