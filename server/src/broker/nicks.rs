//! The node's nickname claims in Redis (`Output::ClaimNick`, `Output::ReleaseNick`): each claim
//! is an atomic check-and-set with this node's client as the owner and `--presence-ttl` as the
//! expiry, so two nodes racing for one name give it to exactly one, and a node that dies frees
//! its names within the ttl.
//!
//! Claims and releases go in lanes chosen by the name's key: one name's operations are carried
//! out in the order the engine asked (a release overtaken by a later claim of the same owner
//! would delete the claim), while different names go at once. Each lane renews the claims it
//! granted every third of the ttl, a room's in one call per 256, and forgets those released.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::time::Duration;

use chat_engine::names::room_likeness;
use chat_engine::{ClaimOutcome, ClientId};
use tokio::sync::mpsc;

use super::backend::Backend;
use super::node::Report;
use super::redis::keys::room_key;
use super::redis::Claim;

/// Lanes of claims at once; one name always uses the same lane.
const LANES: usize = 8;
/// Claims renewed in one call at most (a room's: its keys share the room's hash tag).
const RENEW_BATCH: usize = 256;

/// A claim or release, as the engine asked.
#[derive(Debug)]
pub(crate) enum NickOp {
    Claim {
        client: ClientId,
        room: String,
        likeness: String,
    },
    Release {
        client: ClientId,
        room: String,
        likeness: String,
    },
}

impl NickOp {
    fn name(&self) -> (&str, &str) {
        match self {
            NickOp::Claim { room, likeness, .. } | NickOp::Release { room, likeness, .. } => {
                (room, likeness)
            }
        }
    }
}

/// The broker task's end of the lanes.
pub(crate) struct Nicks {
    lanes: Vec<mpsc::UnboundedSender<NickOp>>,
    /// Fixed keys: a name's lane is the same in every run, so a simulation replays by its seed
    /// (the lanes only spread the work; nothing an attacker could gain from knowing the hash).
    hasher: BuildHasherDefault<DefaultHasher>,
}

impl Nicks {
    /// Starts the lanes; each reports its claims' answers on `reports`.
    pub(crate) fn spawn<B: Backend>(
        broker: &B,
        node_epoch: &str,
        ttl: Duration,
        reports: &mpsc::Sender<Report>,
    ) -> Self {
        let lanes = (0..LANES)
            .map(|_| {
                let (tx, rx) = mpsc::unbounded_channel();
                let lane = Lane {
                    broker: broker.clone(),
                    node_epoch: node_epoch.to_owned(),
                    ttl,
                    reports: reports.clone(),
                    held: BTreeMap::new(),
                };
                tokio::spawn(lane.run(rx));
                tx
            })
            .collect();
        Self {
            lanes,
            hasher: BuildHasherDefault::default(),
        }
    }

    /// Hands `op` to its name's lane.
    pub(crate) fn send(&self, op: NickOp) {
        let (room, likeness) = op.name();
        let lane = self.hasher.hash_one((room_likeness(room), likeness)) as usize % LANES;
        if self.lanes[lane].send(op).is_err() {
            tracing::warn!("a nickname lane has stopped; a claim or release was dropped");
        }
    }
}

struct Lane<B: Backend> {
    broker: B,
    node_epoch: String,
    ttl: Duration,
    reports: mpsc::Sender<Report>,
    /// The claims this lane granted and has not released: (room key, likeness) -> owner.
    held: BTreeMap<(String, String), String>,
}

impl<B: Backend> Lane<B> {
    async fn run(mut self, mut ops: mpsc::UnboundedReceiver<NickOp>) {
        let mut renew = tokio::time::interval(self.ttl / 3);
        renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        renew.tick().await;
        loop {
            // Biased, so a run is the same every time its seed is; renewals come once per
            // third of the ttl, so they cannot starve the claims.
            tokio::select! {
                biased;
                _ = renew.tick() => self.renew().await,
                op = ops.recv() => {
                    let Some(op) = op else { return };
                    if let Some(report) = self.carry_out(op).await {
                        if self.reports.send(report).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }
    }

    fn owner(&self, client: ClientId) -> String {
        format!("{}/{}", self.node_epoch, client.get())
    }

    async fn carry_out(&mut self, op: NickOp) -> Option<Report> {
        match op {
            NickOp::Claim {
                client,
                room,
                likeness,
            } => {
                let (key, owner) = (room_key(&room_likeness(&room)), self.owner(client));
                let outcome = match self
                    .broker
                    .claim_nick(&key, &likeness, &owner, self.ttl)
                    .await
                {
                    Ok(Claim::Won) => {
                        self.held.insert((key, likeness.clone()), owner);
                        ClaimOutcome::Granted
                    }
                    Ok(Claim::Taken) => ClaimOutcome::Taken,
                    Err(e) => {
                        tracing::warn!(%room, error = %e, "a nickname could not be claimed");
                        ClaimOutcome::Unavailable
                    }
                };
                Some(Report::NickClaimed {
                    client,
                    room,
                    likeness,
                    outcome,
                })
            }
            NickOp::Release {
                client,
                room,
                likeness,
            } => {
                let key = room_key(&room_likeness(&room));
                let owner = self.owner(client);
                self.held.remove(&(key.clone(), likeness.clone()));
                // Not released (Redis is away): the claim expires within the ttl instead.
                if let Err(e) = self.broker.release_nick(&key, &likeness, &owner).await {
                    tracing::debug!(%room, error = %e, "a nickname could not be released");
                }
                None
            }
        }
    }

    /// Renews every claim this lane holds, a room's at a time in calls of at most
    /// [`RENEW_BATCH`] claims. One found taken was lost (it expired while Redis was away, and
    /// another node took it).
    async fn renew(&mut self) {
        let mut by_room: BTreeMap<&str, Vec<(&str, &str)>> = BTreeMap::new();
        for ((room, likeness), owner) in &self.held {
            by_room.entry(room).or_default().push((likeness, owner));
        }
        let mut lost = Vec::new();
        for (room, claims) in by_room {
            for batch in claims.chunks(RENEW_BATCH) {
                match self.broker.renew_nicks(room, batch, self.ttl).await {
                    Ok(kept) => lost.extend(
                        (batch.iter().zip(kept))
                            .filter(|(_, kept)| !kept)
                            .map(|(&(likeness, _), _)| (room.to_owned(), likeness.to_owned())),
                    ),
                    // Redis is away: the next round tries again.
                    Err(_) => return,
                }
            }
        }
        for name in lost {
            tracing::warn!(room = %name.0, "a nickname claim expired and another node took it");
            self.held.remove(&name);
        }
    }
}
