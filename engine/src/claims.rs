//! Nicknames unique across a cluster (`Config::nicks_claimed`): a join or rename that takes a
//! name first has the broker claim it for the client, and is carried out only once the claim is
//! granted. The room's own index still keeps names unique on this node; the claim is what keeps
//! two nodes from handing out one name at once. A name given up (a rename, a switch, a leave)
//! is released, and an answer that comes too late to be used gives back what it granted.
//!
//! Every claim a client holds or waits for is one of: `claimed` (its name in its room now),
//! `claiming` (asked, not answered) and `granted` (answered, being put to use within this call).

use crate::engine::Engine;
use crate::names::room_likeness;
use crate::protocol::{ErrorCode, JoinRequest};
use crate::{ClientId, Now, Output};

/// The broker's answer to a `ClaimNick`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClaimOutcome {
    /// The name is the client's (it was free, or already the client's).
    Granted,
    /// Someone else, on some node, holds it.
    Taken,
    /// The broker could not be asked: the join or rename is refused with `unavailable`.
    Unavailable,
}

/// One nickname in one room, as the cluster claims it.
#[derive(Clone, Debug)]
pub(crate) struct NickClaim {
    /// The room as its members named it (what the outputs carry).
    pub(crate) room: String,
    /// The room's likeness: two spellings of one room are one claim.
    pub(crate) room_key: String,
    /// The nickname's likeness.
    pub(crate) likeness: String,
}

impl NickClaim {
    pub(crate) fn new(room: &str, likeness: &str) -> Self {
        Self {
            room: room.to_owned(),
            room_key: room_likeness(room),
            likeness: likeness.to_owned(),
        }
    }

    fn same(&self, other: &NickClaim) -> bool {
        self.room_key == other.room_key && self.likeness == other.likeness
    }
}

/// What waits for a claim's answer: the command that asked, to be carried out once granted.
#[derive(Debug)]
pub(crate) struct PendingClaim {
    pub(crate) claim: NickClaim,
    pub(crate) action: Claimed,
}

/// The command behind a claim.
#[derive(Debug)]
pub(crate) enum Claimed {
    Join(JoinRequest),
    Rename(String),
}

impl Engine {
    /// Whether the client in `slot` may take `likeness` in `room` now (with `nicks_claimed`):
    /// the cluster gave this name to it. Otherwise the claim is asked for, `action` waits for
    /// the answer, and the caller stops here.
    pub(crate) fn claim_first(
        &mut self,
        slot: usize,
        room: &str,
        likeness: &str,
        action: Claimed,
    ) -> bool {
        let wanted = NickClaim::new(room, likeness);
        let client = &mut self.clients[slot];
        let holds = |held: &Option<Box<NickClaim>>| held.as_ref().is_some_and(|c| c.same(&wanted));
        if holds(&client.claimed) || holds(&client.granted) {
            return true;
        }
        // A second command for the name already asked for waits for the same answer; one for
        // another name asks again, and the first answer will find nobody waiting for it.
        let asked = (client.claiming.as_ref()).is_some_and(|p| p.claim.same(&wanted));
        if !asked {
            self.outputs.push_back(Output::ClaimNick {
                client: client.id,
                room: wanted.room.clone(),
                likeness: wanted.likeness.clone(),
            });
        }
        client.claiming = Some(Box::new(PendingClaim {
            claim: wanted,
            action,
        }));
        false
    }

    /// The broker's answer to a `ClaimNick`: the command waiting for it is carried out (granted)
    /// or refused (taken, unavailable); an answer nobody waits for gives back what it granted.
    pub(crate) fn on_nick_claimed(
        &mut self,
        client: ClientId,
        room: &str,
        likeness: &str,
        outcome: ClaimOutcome,
        now: Now,
    ) {
        let answered = NickClaim::new(room, likeness);
        let slot = self.ids.get(&client).copied();
        let waiting = slot.and_then(|slot| {
            let c = &mut self.clients[slot];
            let matches = (c.claiming.as_ref()).is_some_and(|p| p.claim.same(&answered));
            matches.then(|| c.claiming.take()).flatten()
        });
        let (Some(slot), Some(pending)) = (slot, waiting) else {
            let in_use = slot.is_some_and(|slot| {
                let held = &self.clients[slot].claimed;
                held.as_ref().is_some_and(|c| c.same(&answered))
            });
            if outcome == ClaimOutcome::Granted && !in_use {
                self.release_claim(client, answered);
            }
            return;
        };
        match outcome {
            ClaimOutcome::Granted => {
                let PendingClaim { claim, action } = *pending;
                self.clients[slot].granted = Some(Box::new(claim));
                match action {
                    Claimed::Join(join) => self.join(slot, now, join),
                    Claimed::Rename(nick) => self.change_nick(slot, now, &nick),
                }
                // Refused on this node after all (say, no room could be created): not used.
                if let Some(unused) = self.clients[slot].granted.take() {
                    self.release_claim(client, *unused);
                }
            }
            ClaimOutcome::Taken => {
                let message = format!(
                    "the nickname is already used in room {} (on another server)",
                    pending.claim.room
                );
                self.reply_error(slot, now, ErrorCode::NickTaken, &message);
            }
            ClaimOutcome::Unavailable => self.reply_error(
                slot,
                now,
                ErrorCode::Unavailable,
                "the nickname could not be confirmed across the cluster now; try again",
            ),
        }
    }

    /// The join or rename just carried out uses the claim granted for it: it becomes the
    /// client's name, and the one it had before is released.
    pub(crate) fn use_granted(&mut self, slot: usize) {
        let client = &mut self.clients[slot];
        let Some(granted) = client.granted.take() else {
            return;
        };
        let id = client.id;
        if let Some(before) = client.claimed.replace(granted) {
            self.release_claim(id, *before);
        }
    }

    /// The client in `slot` leaves its room: its name there is free again.
    pub(crate) fn release_claimed(&mut self, slot: usize) {
        let client = &mut self.clients[slot];
        if let Some(held) = client.claimed.take() {
            let id = client.id;
            self.release_claim(id, *held);
        }
    }

    fn release_claim(&mut self, client: ClientId, claim: NickClaim) {
        self.outputs.push_back(Output::ReleaseNick {
            client,
            room: claim.room,
            likeness: claim.likeness,
        });
    }
}
