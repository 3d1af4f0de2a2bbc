//! The hub's side of the message store: the engine's `Store`, `Fetch` and `LoadTail` outputs become store
//! requests, and the store's reports become engine inputs, in order.
//!
//! The store commits in the order it is asked and reports `Committed { through }` for a whole
//! batch; the engine wants one `Committed` per op, oldest first, so this link keeps the ops it
//! sent and is waiting for. A failed batch fails every op the engine still holds
//! (`Input::StoreFailed`): the engine drops them all, so the store is told to refuse whatever
//! of them it has not written yet (`Request::Resume` marks where the dropped ones end).

use std::collections::VecDeque;

use chat_engine::{Engine, Input, Now, OpId, Output};

use crate::store::{Report, Request, StoreHandle};

/// What a report asks of the hub besides feeding the engine.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Followup {
    /// Nothing: carry out the engine's outputs as usual.
    None,
    /// A sync failed: acknowledged messages may be lost, so the server must stop now.
    Fatal(String),
}

#[derive(Debug)]
pub(crate) struct StoreLink {
    handle: StoreHandle,
    /// Ops sent and not yet reported, oldest first (held messages only: relaxed writes are not
    /// waited for).
    awaiting: VecDeque<OpId>,
    hold: bool,
}

impl StoreLink {
    pub(crate) fn new(handle: StoreHandle, hold: bool) -> Self {
        Self {
            handle,
            awaiting: VecDeque::new(),
            hold,
        }
    }

    /// Sends the engine's `Store`, `Fetch` or `LoadTail` to the store; hands any other output
    /// back.
    pub(crate) fn take(&mut self, output: Output) -> Option<Output> {
        let request = match output {
            Output::Store {
                op,
                room,
                epoch,
                seq,
                frame,
            } => {
                if self.hold {
                    self.awaiting.push_back(op);
                }
                Request::Write {
                    op,
                    room,
                    epoch,
                    seq,
                    frame,
                }
            }
            Output::Fetch {
                to,
                room,
                before,
                limit,
            } => Request::Fetch {
                client: to,
                room,
                before,
                limit,
            },
            Output::LoadTail { room, seq, limit } => Request::LoadTail { room, seq, limit },
            other => return Some(other),
        };
        if !self.handle.send(request) {
            // Only after a failed sync, when the server is about to exit.
            tracing::warn!("the store has stopped; a request was dropped");
        }
        None
    }

    /// Held messages waiting for the store.
    pub(crate) fn awaiting(&self) -> usize {
        self.awaiting.len()
    }

    /// The store's reports, for the hub to wait on beside its inbox.
    pub(crate) fn take_reports(&mut self) -> tokio::sync::mpsc::UnboundedReceiver<Report> {
        self.handle.take_reports()
    }

    /// Feeds one report to the engine. The caller then dispatches the engine's outputs.
    pub(crate) fn apply(&mut self, report: Report, engine: &mut Engine, now: Now) -> Followup {
        match report {
            Report::Committed { through } => {
                while let Some(&op) = self.awaiting.front().filter(|&&op| op <= through) {
                    self.awaiting.pop_front();
                    if let Err(e) = engine.handle(now, Input::Committed { op }) {
                        tracing::error!(error = %e, "the engine refused a commit");
                    }
                }
            }
            Report::Failed { from, error, .. } => {
                tracing::error!(%error, "the store could not write; refusing the messages that wait for it");
                if !self.hold {
                    // Relaxed: those messages went out already and nothing waits; the store
                    // rotates the epochs at the next start, so nobody is handed the hole.
                    self.handle.send(Request::Resume);
                    return Followup::None;
                }
                // A report about ops already dropped (the store refusing what was sent before
                // it heard of an earlier failure) is stale.
                let Some(&oldest) = self.awaiting.front().filter(|&&oldest| from >= oldest) else {
                    return Followup::None;
                };
                // Every held op fails with the oldest: the engine drops them all, and the
                // store must not write the ones it has not reached yet.
                self.awaiting.clear();
                if let Err(e) = engine.handle(now, Input::StoreFailed { op: oldest }) {
                    tracing::error!(error = %e, "the engine refused a store failure");
                }
                self.handle.send(Request::Resume);
            }
            Report::Fetched {
                client,
                room,
                messages,
                complete,
            } => {
                let fetched = Input::Fetched {
                    to: client,
                    room: &room,
                    messages: &messages,
                    complete,
                };
                if let Err(e) = engine.handle(now, fetched) {
                    tracing::error!(error = %e, "the engine refused a history page");
                }
            }
            Report::TailLoaded { room, messages } => {
                let loaded = Input::TailLoaded {
                    room: &room,
                    messages: &messages,
                };
                if let Err(e) = engine.handle(now, loaded) {
                    tracing::error!(error = %e, "the engine refused a room's tail");
                }
            }
            Report::Healthy(healthy) => {
                if healthy {
                    tracing::info!("the store writes again");
                } else {
                    tracing::warn!("the store cannot write: new messages are refused with unavailable until it can");
                }
            }
            Report::SyncFailed(error) => {
                return Followup::Fatal(format!(
                    "the message store could not sync its writes to disk ({error}); the kernel \
                     may have dropped them, so the server stops rather than acknowledge more; \
                     the next start gives every room a new epoch"
                ))
            }
        }
        Followup::None
    }

    /// The handle, for a clean shutdown.
    pub(crate) fn into_handle(self) -> StoreHandle {
        self.handle
    }
}
