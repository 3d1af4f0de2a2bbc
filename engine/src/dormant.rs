//! Rooms a store keeps that are not in memory: their names, epochs and last seqs.
//!
//! Without a store, a room forgotten to make space (`rooms_max`) is gone, and one created again
//! under its name starts a new epoch at seq 1: nothing of the old one exists to clash with. With a
//! store its messages live on, keyed by room and seq, so a room created again must continue them:
//! the same epoch (a client's `since` still means what it meant) and the next seq. A dormant room
//! costs its name and epoch in memory and nothing else; `rooms_max` bounds rooms in memory, not
//! rooms on disk.

use std::collections::BTreeMap;

/// A room that sleeps until someone joins it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DormantRoom {
    pub(crate) name: String,
    pub(crate) epoch: String,
    /// Its last committed seq.
    pub(crate) seq: u64,
}

/// Dormant rooms by likeness (the `room_index` key).
#[derive(Debug, Default)]
pub(crate) struct Dormant {
    rooms: BTreeMap<String, DormantRoom>,
}

impl Dormant {
    pub(crate) fn insert(&mut self, likeness: String, room: DormantRoom) {
        self.rooms.insert(likeness, room);
    }

    pub(crate) fn get(&self, likeness: &str) -> Option<&DormantRoom> {
        self.rooms.get(likeness)
    }

    pub(crate) fn get_mut(&mut self, likeness: &str) -> Option<&mut DormantRoom> {
        self.rooms.get_mut(likeness)
    }

    /// Wakes the room of this likeness, if one sleeps.
    pub(crate) fn take(&mut self, likeness: &str) -> Option<DormantRoom> {
        self.rooms.remove(likeness)
    }

    pub(crate) fn len(&self) -> usize {
        self.rooms.len()
    }
}

impl crate::engine::Engine {
    /// Facts about dormant rooms (part of `check_invariants`).
    pub(crate) fn check_dormant(&self) {
        if !self.config.persists() {
            assert_eq!(self.dormant.len(), 0, "dormant rooms without a store");
        }
        for (likeness, room) in &self.dormant.rooms {
            assert_eq!(
                &crate::names::room_likeness(&room.name),
                likeness,
                "dormant room {} filed under another likeness",
                room.name
            );
            // One room per name: awake or asleep, never both.
            assert!(
                !self.room_index.contains_key(likeness),
                "room {} both dormant and in memory",
                room.name
            );
        }
    }
}
